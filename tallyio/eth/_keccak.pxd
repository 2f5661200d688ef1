# Keccak-256 for other Cython modules (tallyio/_ext/include/tio_keccak.h), e.g. a node source
# checking a transaction hash without the GIL:
#
#     from tallyio.eth._keccak cimport tio_keccak256
#     cdef uint8_t digest[32]
#     tio_keccak256(raw, n, digest)       # noexcept nogil, reentrant, no allocation
from libc.stdint cimport uint8_t

cdef extern from "tio_keccak.h" nogil:
    void tio_keccak256(const uint8_t *data, size_t n, uint8_t *out)

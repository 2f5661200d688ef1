# The EVM's uint256 as C sees it (tallyio/_ext/include/tio_u256.h): four 64-bit limbs, least
# significant first. Shared by the decoder (tallyio.eth) and the pool math (tallyio.amm).
from libc.stdint cimport uint8_t, uint64_t

cdef extern from "tio_u256.h" nogil:
    ctypedef struct tio_u256:
        uint64_t w[4]
    void tio_u256_from_be32(tio_u256 *out, const uint8_t *be)
    void tio_u256_to_be32(const tio_u256 *inp, uint8_t *be)
    void tio_u256_from_u64(tio_u256 *out, uint64_t v)
    int tio_u256_is_zero(const tio_u256 *a)
    int tio_u256_cmp(const tio_u256 *a, const tio_u256 *b)
    int tio_u256_bit_length(const tio_u256 *a)

# The nogil calldata decoder (tallyio/eth/_decode.pyx) as other Cython modules call it:
#
#     from tallyio.eth._decode cimport tio_decode_call
#     from tallyio._ext.swap cimport tio_decoded_call, tio_decode_stats, TIO_DECODE_OK
#
#     cdef tio_decoded_call call          # ~2.3 KB: keep one per worker, not per tx
#     cdef tio_decode_stats stats         # zero it once (memset), one per thread
#     status = tio_decode_call(data, n, &call, &stats)   # noexcept nogil, no allocation
#
# `data[0..n)` is a transaction's input (selector first). Returns a TIO_DECODE_* status
# (tio_swap.h): OK (call.n_swaps swaps in call.swaps, possibly 0), UNKNOWN (not a call we
# decode), or a malformed reason (then call.n_swaps == 0). Each outcome is counted in
# stats.by_status[status]; stats are plain integers: one tio_decode_stats per thread.
# The input is only read; `call` and `stats` are written; nothing else is touched.
from libc.stdint cimport uint8_t
from tallyio._ext.swap cimport tio_decoded_call, tio_decode_stats

cdef int tio_decode_call(const uint8_t *data, size_t n, tio_decoded_call *out,
                         tio_decode_stats *stats) noexcept nogil

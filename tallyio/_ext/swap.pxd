# A swap as the decoder (tallyio.eth) hands it to the analyzer (tallyio.mempool):
# tallyio/_ext/include/tio_swap.h, plain fixed-size data read and written without the GIL.
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from tallyio._ext.u256 cimport tio_u256

cdef extern from "tio_swap.h" nogil:
    enum: TIO_SWAP_MAX_PATH
    enum: TIO_SWAP_MAX_PER_CALL
    enum: TIO_PROTOCOL_V2
    enum: TIO_PROTOCOL_V3
    enum: TIO_SWAP_EXACT_IN
    enum: TIO_SWAP_EXACT_OUT
    enum: TIO_SWAP_ETH_IN
    enum: TIO_SWAP_ETH_OUT
    enum: TIO_SWAP_FEE_ON_TRANSFER
    enum: TIO_SWAP_AMOUNT_UNKNOWN
    ctypedef struct tio_swap:
        uint8_t protocol
        uint8_t kind
        uint8_t flags
        uint8_t path_len
        uint32_t fees[7]
        tio_u256 amount
        tio_u256 amount_limit
        uint64_t deadline
        uint8_t path[8][20]
        uint8_t recipient[20]
        tio_u256 sqrt_price_limit
    ctypedef struct tio_decoded_call:
        uint32_t selector
        uint32_t n_swaps
        tio_swap swaps[8]
    enum: TIO_DECODE_OK
    enum: TIO_DECODE_UNKNOWN
    enum: TIO_DECODE_TRUNCATED
    enum: TIO_DECODE_BAD_OFFSET
    enum: TIO_DECODE_BAD_LENGTH
    enum: TIO_DECODE_BAD_VALUE
    enum: TIO_DECODE_BAD_PATH
    enum: TIO_DECODE_PATH_TOO_LONG
    enum: TIO_DECODE_TOO_DEEP
    enum: TIO_DECODE_TOO_MANY_SWAPS
    enum: TIO_DECODE_TOO_MANY_CALLS
    enum: TIO_DECODE_COMMANDS_MISMATCH
    enum: TIO_DECODE_N_STATUS
    enum: TIO_DECODE_MAX_DEPTH
    enum: TIO_DECODE_MAX_CALLS
    ctypedef struct tio_decode_stats:
        uint64_t by_status[12]
        uint64_t inner_unknown
        uint64_t commands_skipped

/*
 * tio_swap.h -- a swap as the decoder (tallyio/eth) hands it to the analyzer
 * (tallyio/mempool): what a router call asks a pool to do, normalized across
 * Uniswap V2 Router01/02 (and forks), V3 SwapRouter/SwapRouter02 and the
 * Universal Router, with multicalls unwrapped.  Plain data, fixed size, no
 * pointers: it is filled and read without the GIL.
 */
#ifndef TIO_SWAP_H
#define TIO_SWAP_H

#include <stdint.h>
#include "tio_u256.h"

#define TIO_SWAP_MAX_PATH 8      /* tokens in one path; a longer path is rejected (counted) */
#define TIO_SWAP_MAX_PER_CALL 8  /* swaps in one transaction (multicall, Universal Router) */

enum {
    TIO_PROTOCOL_V2 = 1,         /* constant product pairs, a fee in basis points */
    TIO_PROTOCOL_V3 = 2          /* concentrated liquidity pools, fee in pips per hop */
};

enum {
    TIO_SWAP_EXACT_IN = 1,       /* amount = exact input; amount_limit = minimum output */
    TIO_SWAP_EXACT_OUT = 2       /* amount = exact output; amount_limit = maximum input */
};

/* flags */
#define TIO_SWAP_ETH_IN          0x01  /* the input is the call's ETH value (wrapped by the router) */
#define TIO_SWAP_ETH_OUT         0x02  /* the output is unwrapped to ETH */
#define TIO_SWAP_FEE_ON_TRANSFER 0x04  /* ...SupportingFeeOnTransferTokens: amounts are not exact */
#define TIO_SWAP_AMOUNT_UNKNOWN  0x08  /* the input amount is decided at run time (router balance, a
                                          previous command's output): `amount` is not meaningful */

typedef struct {
    uint8_t protocol;            /* TIO_PROTOCOL_* */
    uint8_t kind;                /* TIO_SWAP_EXACT_* */
    uint8_t flags;               /* TIO_SWAP_* flags */
    uint8_t path_len;            /* tokens in `path`, 2..TIO_SWAP_MAX_PATH */
    uint32_t fees[TIO_SWAP_MAX_PATH - 1];  /* V3: fee in pips of hop i (path[i] -> path[i+1]); V2: 0 */
    tio_u256 amount;             /* see kind; 0 when the call does not carry it: an ETH_IN exact-in
                                    V2 swap spends the transaction's value */
    tio_u256 amount_limit;       /* see kind; 0 for swapETHForExactTokens (the limit is the value) */
    uint64_t deadline;           /* unix seconds; 0 when the call carries none */
    uint8_t path[TIO_SWAP_MAX_PATH][20];   /* token addresses in the order the tokens flow
                                              (a V3 exactOutput path is stored reversed) */
    uint8_t recipient[20];
    tio_u256 sqrt_price_limit;   /* V3 exactInputSingle/exactOutputSingle: sqrtPriceLimitX96 (the pool
                                    stops there); 0 when the call has none (the router then passes
                                    MIN_SQRT_RATIO + 1 / MAX_SQRT_RATIO - 1: no limit) */
} tio_swap;

typedef struct {
    uint32_t selector;           /* the outer call's 4-byte selector, big-endian as an integer */
    uint32_t n_swaps;            /* swaps found, 0..TIO_SWAP_MAX_PER_CALL */
    tio_swap swaps[TIO_SWAP_MAX_PER_CALL];
} tio_decoded_call;

/* ---- decoding status and counters (tallyio/eth/_decode.pxd: tio_decode_call) ------------- */

/* What tio_decode_call returns.  OK: `out` holds the call's swaps (possibly none: a known
   call that moves no tokens through a pool, e.g. refundETH).  UNKNOWN: not a call we decode
   (an ERC-20 transfer, an empty input): not an error.  Everything from TRUNCATED on is a
   MALFORMED call of a function we know, by reason; `out->n_swaps` is then 0. */
enum {
    TIO_DECODE_OK = 0,
    TIO_DECODE_UNKNOWN = 1,
    TIO_DECODE_TRUNCATED = 2,        /* shorter than the head or a length word needs */
    TIO_DECODE_BAD_OFFSET = 3,       /* a dynamic offset points into the head or past the end */
    TIO_DECODE_BAD_LENGTH = 4,       /* a length (bytes, array) runs past the end */
    TIO_DECODE_BAD_VALUE = 5,        /* dirty padding: address/uintN/bool/bytes with stray bits */
    TIO_DECODE_BAD_PATH = 6,         /* V2 path under 2 tokens; V3 path not 20 + 23k bytes, k >= 1 */
    TIO_DECODE_PATH_TOO_LONG = 7,    /* more than TIO_SWAP_MAX_PATH tokens */
    TIO_DECODE_TOO_DEEP = 8,         /* multicalls nested deeper than TIO_DECODE_MAX_DEPTH */
    TIO_DECODE_TOO_MANY_SWAPS = 9,   /* more than TIO_SWAP_MAX_PER_CALL swaps */
    TIO_DECODE_TOO_MANY_CALLS = 10,  /* more than TIO_DECODE_MAX_CALLS decoded calls in one input */
    TIO_DECODE_COMMANDS_MISMATCH = 11, /* Universal Router: len(commands) != len(inputs) */
    TIO_DECODE_N_STATUS = 12
};

#define TIO_DECODE_MAX_DEPTH 4   /* multicall nesting: the outer call is depth 0 */
#define TIO_DECODE_MAX_CALLS 32  /* decoded calls (outer + inner + commands) in one input */

/* One decoder's counters: plain integers, owned by one thread (give each worker its own and
   add them up when reading).  by_status[s] counts the inputs that returned status s. */
typedef struct {
    uint64_t by_status[TIO_DECODE_N_STATUS];
    uint64_t inner_unknown;      /* multicall elements whose selector we do not decode (skipped) */
    uint64_t commands_skipped;   /* Universal Router commands other than V2/V3 swaps (skipped) */
} tio_decode_stats;

#endif /* TIO_SWAP_H */

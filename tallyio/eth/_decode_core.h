/*
 * _decode_core.h -- the calldata decoder's C core, included by tallyio/eth/_decode.pyx
 * only (other modules reach it through tallyio/eth/_decode.pxd: tio_decode_call).
 *
 * Owns: the table of calls we decode (tio_call_specs), the ABI walk that validates
 * an encoded argument tuple the way eth-abi 6 does (offsets, lengths, padding), and
 * the normalization of each swap into a tio_swap (tallyio/_ext/include/tio_swap.h).
 * Touches: the caller's tio_decoded_call, tio_decode_stats and optional trace.
 *
 * Safety, by construction:
 *  - every read is preceded by a check that the bytes lie inside the current call's
 *    region [start, end) of the input (sizes are compared by subtraction, never by an
 *    addition that could wrap);
 *  - every loop runs over an array length that was first checked against the bytes
 *    left (an element needs at least one 32-byte word), so work is linear in the input;
 *  - recursion (multicall inside multicall) stops at TIO_DECODE_MAX_DEPTH, and the
 *    calls decoded per input at TIO_DECODE_MAX_CALLS;
 *  - no allocation: everything lives in the caller's structs and on a small stack.
 */
#ifndef TIO_DECODE_CORE_H
#define TIO_DECODE_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "tio_swap.h"

#define TIO_ABI_MAX_ARGS 8

/* ABI argument types we meet (static tuples are flattened into their fields) */
enum {
    TIO_T_UINT256 = 1,
    TIO_T_UINT24 = 2,
    TIO_T_UINT160 = 3,
    TIO_T_ADDRESS = 4,
    TIO_T_BOOL = 5,
    TIO_T_BYTES32 = 6,
    TIO_T_BYTES = 7,
    TIO_T_ADDRESS_ARRAY = 8,
    TIO_T_BYTES_ARRAY = 9
};

/* how the arguments sit after the selector */
enum {
    TIO_LAYOUT_FLAT = 0,        /* one head word per argument (a static struct is inline) */
    TIO_LAYOUT_DYN_TUPLE = 1    /* one offset word to a struct holding a dynamic field */
};

/* what the decoder does with a call once its arguments are valid */
enum {
    TIO_ROLE_HELPER = 0,        /* known, moves nothing through a pool (refundETH, sweepToken) */
    TIO_ROLE_UNWRAP = 1,        /* unwrapWETH9: the multicall's output leaves as ETH */
    TIO_ROLE_V2_SWAP = 2,       /* path is address[] */
    TIO_ROLE_V3_SINGLE = 3,     /* tokenIn, tokenOut, fee */
    TIO_ROLE_V3_PATH = 4,       /* path is packed bytes: token (fee token)+ */
    TIO_ROLE_MULTICALL = 5,     /* bytes[] of calls to the same router */
    TIO_ROLE_EXECUTE = 6        /* Universal Router: commands + inputs */
};

/* when the amount argument is a marker meaning "decided at run time" */
#define TIO_SPEC_ZERO_IS_BALANCE     0x01  /* SwapRouter02 (CONTRACT_BALANCE = 0), UR V2 (ALREADY_PAID = 0) */
#define TIO_SPEC_HIGH_BIT_IS_BALANCE 0x02  /* Universal Router CONTRACT_BALANCE = 1 << 255 */

#define TIO_NO_COMMAND 0xff

typedef struct {
    uint32_t selector;          /* 4-byte selector, big-endian as an integer; 0 for UR commands */
    uint8_t command;            /* Universal Router command type; TIO_NO_COMMAND for calls */
    uint8_t role;               /* TIO_ROLE_* */
    uint8_t layout;             /* TIO_LAYOUT_* */
    uint8_t nargs;
    uint8_t protocol;           /* swaps: TIO_PROTOCOL_* */
    uint8_t kind;               /* swaps: TIO_SWAP_EXACT_* */
    uint8_t swap_flags;         /* TIO_SWAP_* flags every swap of this call has */
    uint8_t spec_flags;         /* TIO_SPEC_* */
    /* argument index of each swap field, -1 when the call has none */
    int8_t a_amount, a_limit, a_path, a_recipient, a_deadline, a_token_in, a_token_out, a_fee;
    uint8_t types[TIO_ABI_MAX_ARGS];
    const char *names[TIO_ABI_MAX_ARGS];
    const char *name;           /* ABI function name (UR: the command's name) */
    const char *signature;      /* canonical signature; the selector is keccak256 of it */
} tio_call_spec;

#define U256 TIO_T_UINT256
#define U24 TIO_T_UINT24
#define U160 TIO_T_UINT160
#define ADDR TIO_T_ADDRESS
#define ADDRS TIO_T_ADDRESS_ARRAY
#define BYTES TIO_T_BYTES
#define V2 TIO_PROTOCOL_V2
#define V3 TIO_PROTOCOL_V3
#define IN TIO_SWAP_EXACT_IN
#define OUT TIO_SWAP_EXACT_OUT
#define ETH_IN TIO_SWAP_ETH_IN
#define ETH_OUT TIO_SWAP_ETH_OUT
#define FOT TIO_SWAP_FEE_ON_TRANSFER

/* V2 Router01/Router02 (and SushiSwap's copy): (amountIn|amountOut, limit, path, to, deadline) */
#define V2_5(sel, nm, knd, fl, a0, a1) \
    {sel, TIO_NO_COMMAND, TIO_ROLE_V2_SWAP, TIO_LAYOUT_FLAT, 5, V2, knd, fl, 0, 0, 1, 2, 3, 4, -1, -1, -1, \
     {U256, U256, ADDRS, ADDR, U256}, {a0, a1, "path", "to", "deadline"}, nm, \
     nm "(uint256,uint256,address[],address,uint256)"}
/* the payable ETH-in swaps: the amount (in or max in) is the call's value */
#define V2_ETH_IN(sel, nm, knd, fl, a0, amount_at, limit_at) \
    {sel, TIO_NO_COMMAND, TIO_ROLE_V2_SWAP, TIO_LAYOUT_FLAT, 4, V2, knd, fl, 0, amount_at, limit_at, 1, 2, 3, -1, -1, -1, \
     {U256, ADDRS, ADDR, U256}, {a0, "path", "to", "deadline"}, nm, \
     nm "(uint256,address[],address,uint256)"}
/* SwapRouter02's V2 swaps: no deadline; amountIn 0 means the router's balance */
#define V2_4(sel, nm, knd, sfl, a0, a1) \
    {sel, TIO_NO_COMMAND, TIO_ROLE_V2_SWAP, TIO_LAYOUT_FLAT, 4, V2, knd, 0, sfl, 0, 1, 2, 3, -1, -1, -1, -1, \
     {U256, U256, ADDRS, ADDR}, {a0, a1, "path", "to"}, nm, \
     nm "(uint256,uint256,address[],address)"}

static const tio_call_spec tio_call_specs[] = {
    V2_5(0x38ed1739u, "swapExactTokensForTokens", IN, 0, "amountIn", "amountOutMin"),
    V2_5(0x8803dbeeu, "swapTokensForExactTokens", OUT, 0, "amountOut", "amountInMax"),
    V2_ETH_IN(0x7ff36ab5u, "swapExactETHForTokens", IN, ETH_IN, "amountOutMin", -1, 0),
    V2_5(0x4a25d94au, "swapTokensForExactETH", OUT, ETH_OUT, "amountOut", "amountInMax"),
    V2_5(0x18cbafe5u, "swapExactTokensForETH", IN, ETH_OUT, "amountIn", "amountOutMin"),
    V2_ETH_IN(0xfb3bdb41u, "swapETHForExactTokens", OUT, ETH_IN, "amountOut", 0, -1),
    V2_5(0x5c11d795u, "swapExactTokensForTokensSupportingFeeOnTransferTokens", IN, FOT, "amountIn", "amountOutMin"),
    V2_ETH_IN(0xb6f9de95u, "swapExactETHForTokensSupportingFeeOnTransferTokens", IN, ETH_IN | FOT, "amountOutMin", -1, 0),
    V2_5(0x791ac947u, "swapExactTokensForETHSupportingFeeOnTransferTokens", IN, ETH_OUT | FOT, "amountIn", "amountOutMin"),
    V2_4(0x472b43f3u, "swapExactTokensForTokens", IN, TIO_SPEC_ZERO_IS_BALANCE, "amountIn", "amountOutMin"),
    V2_4(0x42712a67u, "swapTokensForExactTokens", OUT, 0, "amountOut", "amountInMax"),

    /* V3 SwapRouter: one struct argument, deadline inside */
    {0x414bf389u, TIO_NO_COMMAND, TIO_ROLE_V3_SINGLE, TIO_LAYOUT_FLAT, 8, V3, IN, 0, 0, 5, 6, -1, 3, 4, 0, 1, 2,
     {ADDR, ADDR, U24, ADDR, U256, U256, U256, U160},
     {"tokenIn", "tokenOut", "fee", "recipient", "deadline", "amountIn", "amountOutMinimum", "sqrtPriceLimitX96"},
     "exactInputSingle", "exactInputSingle((address,address,uint24,address,uint256,uint256,uint256,uint160))"},
    {0xc04b8d59u, TIO_NO_COMMAND, TIO_ROLE_V3_PATH, TIO_LAYOUT_DYN_TUPLE, 5, V3, IN, 0, 0, 3, 4, 0, 1, 2, -1, -1, -1,
     {BYTES, ADDR, U256, U256, U256}, {"path", "recipient", "deadline", "amountIn", "amountOutMinimum"},
     "exactInput", "exactInput((bytes,address,uint256,uint256,uint256))"},
    {0xdb3e2198u, TIO_NO_COMMAND, TIO_ROLE_V3_SINGLE, TIO_LAYOUT_FLAT, 8, V3, OUT, 0, 0, 5, 6, -1, 3, 4, 0, 1, 2,
     {ADDR, ADDR, U24, ADDR, U256, U256, U256, U160},
     {"tokenIn", "tokenOut", "fee", "recipient", "deadline", "amountOut", "amountInMaximum", "sqrtPriceLimitX96"},
     "exactOutputSingle", "exactOutputSingle((address,address,uint24,address,uint256,uint256,uint256,uint160))"},
    {0xf28c0498u, TIO_NO_COMMAND, TIO_ROLE_V3_PATH, TIO_LAYOUT_DYN_TUPLE, 5, V3, OUT, 0, 0, 3, 4, 0, 1, 2, -1, -1, -1,
     {BYTES, ADDR, U256, U256, U256}, {"path", "recipient", "deadline", "amountOut", "amountInMaximum"},
     "exactOutput", "exactOutput((bytes,address,uint256,uint256,uint256))"},

    /* SwapRouter02: the same without deadline (the multicall carries it) */
    {0x04e45aafu, TIO_NO_COMMAND, TIO_ROLE_V3_SINGLE, TIO_LAYOUT_FLAT, 7, V3, IN, 0, TIO_SPEC_ZERO_IS_BALANCE,
     4, 5, -1, 3, -1, 0, 1, 2,
     {ADDR, ADDR, U24, ADDR, U256, U256, U160},
     {"tokenIn", "tokenOut", "fee", "recipient", "amountIn", "amountOutMinimum", "sqrtPriceLimitX96"},
     "exactInputSingle", "exactInputSingle((address,address,uint24,address,uint256,uint256,uint160))"},
    {0xb858183fu, TIO_NO_COMMAND, TIO_ROLE_V3_PATH, TIO_LAYOUT_DYN_TUPLE, 4, V3, IN, 0, TIO_SPEC_ZERO_IS_BALANCE,
     2, 3, 0, 1, -1, -1, -1, -1,
     {BYTES, ADDR, U256, U256}, {"path", "recipient", "amountIn", "amountOutMinimum"},
     "exactInput", "exactInput((bytes,address,uint256,uint256))"},
    {0x5023b4dfu, TIO_NO_COMMAND, TIO_ROLE_V3_SINGLE, TIO_LAYOUT_FLAT, 7, V3, OUT, 0, 0, 4, 5, -1, 3, -1, 0, 1, 2,
     {ADDR, ADDR, U24, ADDR, U256, U256, U160},
     {"tokenIn", "tokenOut", "fee", "recipient", "amountOut", "amountInMaximum", "sqrtPriceLimitX96"},
     "exactOutputSingle", "exactOutputSingle((address,address,uint24,address,uint256,uint256,uint160))"},
    {0x09b81346u, TIO_NO_COMMAND, TIO_ROLE_V3_PATH, TIO_LAYOUT_DYN_TUPLE, 4, V3, OUT, 0, 0, 2, 3, 0, 1, -1, -1, -1, -1,
     {BYTES, ADDR, U256, U256}, {"path", "recipient", "amountOut", "amountInMaximum"},
     "exactOutput", "exactOutput((bytes,address,uint256,uint256))"},

    /* multicalls: each element is a call to the same router */
    {0xac9650d8u, TIO_NO_COMMAND, TIO_ROLE_MULTICALL, TIO_LAYOUT_FLAT, 1, 0, 0, 0, 0, -1, -1, -1, -1, -1, -1, -1, -1,
     {TIO_T_BYTES_ARRAY}, {"data"}, "multicall", "multicall(bytes[])"},
    {0x5ae401dcu, TIO_NO_COMMAND, TIO_ROLE_MULTICALL, TIO_LAYOUT_FLAT, 2, 0, 0, 0, 0, -1, -1, -1, -1, 0, -1, -1, -1,
     {U256, TIO_T_BYTES_ARRAY}, {"deadline", "data"}, "multicall", "multicall(uint256,bytes[])"},
    {0x1f0464d1u, TIO_NO_COMMAND, TIO_ROLE_MULTICALL, TIO_LAYOUT_FLAT, 2, 0, 0, 0, 0, -1, -1, -1, -1, -1, -1, -1, -1,
     {TIO_T_BYTES32, TIO_T_BYTES_ARRAY}, {"previousBlockhash", "data"}, "multicall", "multicall(bytes32,bytes[])"},

    /* Universal Router */
    {0x3593564cu, TIO_NO_COMMAND, TIO_ROLE_EXECUTE, TIO_LAYOUT_FLAT, 3, 0, 0, 0, 0, -1, -1, -1, -1, 2, -1, -1, -1,
     {BYTES, TIO_T_BYTES_ARRAY, U256}, {"commands", "inputs", "deadline"}, "execute", "execute(bytes,bytes[],uint256)"},
    {0x24856bc3u, TIO_NO_COMMAND, TIO_ROLE_EXECUTE, TIO_LAYOUT_FLAT, 2, 0, 0, 0, 0, -1, -1, -1, -1, -1, -1, -1, -1,
     {BYTES, TIO_T_BYTES_ARRAY}, {"commands", "inputs"}, "execute", "execute(bytes,bytes[])"},

    /* the periphery helpers that share a multicall with the swaps */
    {0x49404b7cu, TIO_NO_COMMAND, TIO_ROLE_UNWRAP, TIO_LAYOUT_FLAT, 2, 0, 0, 0, 0, -1, -1, -1, -1, -1, -1, -1, -1,
     {U256, ADDR}, {"amountMinimum", "recipient"}, "unwrapWETH9", "unwrapWETH9(uint256,address)"},
    {0x49616997u, TIO_NO_COMMAND, TIO_ROLE_UNWRAP, TIO_LAYOUT_FLAT, 1, 0, 0, 0, 0, -1, -1, -1, -1, -1, -1, -1, -1,
     {U256}, {"amountMinimum"}, "unwrapWETH9", "unwrapWETH9(uint256)"},
    {0x12210e8au, TIO_NO_COMMAND, TIO_ROLE_HELPER, TIO_LAYOUT_FLAT, 0, 0, 0, 0, 0, -1, -1, -1, -1, -1, -1, -1, -1,
     {0}, {0}, "refundETH", "refundETH()"},
    {0xdf2ab5bbu, TIO_NO_COMMAND, TIO_ROLE_HELPER, TIO_LAYOUT_FLAT, 3, 0, 0, 0, 0, -1, -1, -1, -1, -1, -1, -1, -1,
     {ADDR, U256, ADDR}, {"token", "amountMinimum", "recipient"}, "sweepToken", "sweepToken(address,uint256,address)"},
    {0xe90a182fu, TIO_NO_COMMAND, TIO_ROLE_HELPER, TIO_LAYOUT_FLAT, 2, 0, 0, 0, 0, -1, -1, -1, -1, -1, -1, -1, -1,
     {ADDR, U256}, {"token", "amountMinimum"}, "sweepToken", "sweepToken(address,uint256)"},

    /* Universal Router commands (inputs[i] is the ABI encoding of these arguments).  The
       signature is the argument tuple eth-abi decodes the input with. */
    {0, 0x00, TIO_ROLE_V3_PATH, TIO_LAYOUT_FLAT, 5, V3, IN, 0, TIO_SPEC_HIGH_BIT_IS_BALANCE, 1, 2, 3, 0, -1, -1, -1, -1,
     {ADDR, U256, U256, BYTES, TIO_T_BOOL}, {"recipient", "amountIn", "amountOutMin", "path", "payerIsUser"},
     "V3_SWAP_EXACT_IN", "(address,uint256,uint256,bytes,bool)"},
    {0, 0x01, TIO_ROLE_V3_PATH, TIO_LAYOUT_FLAT, 5, V3, OUT, 0, 0, 1, 2, 3, 0, -1, -1, -1, -1,
     {ADDR, U256, U256, BYTES, TIO_T_BOOL}, {"recipient", "amountOut", "amountInMax", "path", "payerIsUser"},
     "V3_SWAP_EXACT_OUT", "(address,uint256,uint256,bytes,bool)"},
    {0, 0x08, TIO_ROLE_V2_SWAP, TIO_LAYOUT_FLAT, 5, V2, IN, 0, TIO_SPEC_ZERO_IS_BALANCE | TIO_SPEC_HIGH_BIT_IS_BALANCE,
     1, 2, 3, 0, -1, -1, -1, -1,
     {ADDR, U256, U256, ADDRS, TIO_T_BOOL}, {"recipient", "amountIn", "amountOutMin", "path", "payerIsUser"},
     "V2_SWAP_EXACT_IN", "(address,uint256,uint256,address[],bool)"},
    {0, 0x09, TIO_ROLE_V2_SWAP, TIO_LAYOUT_FLAT, 5, V2, OUT, 0, 0, 1, 2, 3, 0, -1, -1, -1, -1,
     {ADDR, U256, U256, ADDRS, TIO_T_BOOL}, {"recipient", "amountOut", "amountInMax", "path", "payerIsUser"},
     "V2_SWAP_EXACT_OUT", "(address,uint256,uint256,address[],bool)"},
};

#undef U256
#undef U24
#undef U160
#undef ADDR
#undef ADDRS
#undef BYTES
#undef V2
#undef V3
#undef IN
#undef OUT
#undef ETH_IN
#undef ETH_OUT
#undef FOT
#undef V2_5
#undef V2_ETH_IN
#undef V2_4

#define TIO_N_CALL_SPECS ((int)(sizeof tio_call_specs / sizeof tio_call_specs[0]))
#define TIO_N_SELECTOR_SPECS (TIO_N_CALL_SPECS - 4)   /* the last four are UR commands */

/* Universal Router command types we look at but do not decode (their effect on the swaps) */
#define TIO_UR_COMMAND_MASK 0x3f
#define TIO_UR_WRAP_ETH 0x0b
#define TIO_UR_UNWRAP_WETH 0x0c

/* ---- the trace the Python face reads (the hot path passes NULL) ------------------------ */

typedef struct {
    size_t off;    /* static: the 32-byte word; bytes: the content; arrays: the first element word */
    size_t len;    /* static: 32; bytes: the byte length; arrays: the element count */
} tio_abi_arg;

typedef struct {
    int16_t spec;           /* index into tio_call_specs */
    int16_t parent;         /* record index of the multicall/execute holding it; -1 at the top */
    uint8_t swap_first;     /* its swaps are out->swaps[swap_first .. swap_end) */
    uint8_t swap_end;
    uint32_t skipped;       /* inner calls or commands it holds that were not decoded */
    tio_abi_arg args[TIO_ABI_MAX_ARGS];
} tio_call_record;

typedef struct {
    uint32_t n_calls;
    tio_call_record calls[TIO_DECODE_MAX_CALLS];
} tio_decode_trace;

/* ---- the ABI walk -------------------------------------------------------------------- */

typedef struct {
    const uint8_t *buf;
    tio_decoded_call *out;
    tio_decode_trace *trace;    /* NULL on the hot path */
    uint32_t calls;
    uint32_t inner_unknown;
    uint32_t commands_skipped;
} tio_decode_ctx;

static inline uint32_t tio_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* 1 when the first `zeros` bytes of the word are zero */
static inline int tio_word_high_zero(const uint8_t *w, int zeros)
{
    /* eight bytes at a time (memcpy: no alignment or aliasing assumption); `zeros` is a
       constant at every call site, so this unrolls into three or four loads */
    uint64_t acc = 0;
    int i = 0;
    for (; i + 8 <= zeros; i += 8) {
        uint64_t chunk;
        memcpy(&chunk, w + i, 8);
        acc |= chunk;
    }
    for (; i < zeros; i++)
        acc |= w[i];
    return acc == 0;
}

/* a word that must fit 64 bits (an offset or a length); 0 when it does not */
static inline int tio_word_u64(const uint8_t *w, uint64_t *out)
{
    if (!tio_word_high_zero(w, 24))
        return 0;
    uint64_t v = 0;
    for (int i = 24; i < 32; i++)
        v = (v << 8) | w[i];
    *out = v;
    return 1;
}

/* Follow the offset word `ptr` of a dynamic item in the container starting at `container`
   whose head holds `head_words` words, as eth-abi does: the item must start at or after the
   head and before `end`.  On success *at is the item's absolute position (its length word). */
static inline int tio_abi_follow(const uint8_t *ptr, size_t container, size_t head_words, size_t end, size_t *at)
{
    uint64_t o;
    if (!tio_word_u64(ptr, &o) || o < (uint64_t)head_words * 32 || o >= (uint64_t)(end - container))
        return TIO_DECODE_BAD_OFFSET;
    *at = container + (size_t)o;
    return TIO_DECODE_OK;
}

/* a `bytes` item whose length word is at `at`: content [*off, *off + *len), zero padding after */
static inline int tio_abi_bytes(const uint8_t *buf, size_t at, size_t end, size_t *off, size_t *len)
{
    uint64_t n;
    if (end - at < 32)
        return TIO_DECODE_TRUNCATED;
    size_t room = end - at - 32;
    if (!tio_word_u64(buf + at, &n) || n > room)
        return TIO_DECODE_BAD_LENGTH;
    size_t padded = ((size_t)n + 31) & ~(size_t)31;
    if (padded > room)
        return TIO_DECODE_BAD_LENGTH;
    for (size_t i = (size_t)n; i < padded; i++)
        if (buf[at + 32 + i])
            return TIO_DECODE_BAD_VALUE;
    *off = at + 32;
    *len = (size_t)n;
    return TIO_DECODE_OK;
}

/* the array whose length word is at `at`, of `words_each`-word elements: count and first word */
static inline int tio_abi_array(const uint8_t *buf, size_t at, size_t end, size_t *first, size_t *count)
{
    uint64_t n;
    if (end - at < 32)
        return TIO_DECODE_TRUNCATED;
    size_t room = end - at - 32;
    if (!tio_word_u64(buf + at, &n) || n > room / 32)
        return TIO_DECODE_BAD_LENGTH;
    *first = at + 32;
    *count = (size_t)n;
    return TIO_DECODE_OK;
}

/* element i of a validated bytes[] whose element area starts at `area` (count elements) */
static inline int tio_abi_bytes_element(const uint8_t *buf, size_t area, size_t count, size_t i, size_t end,
                                        size_t *off, size_t *len)
{
    size_t at;
    int st = tio_abi_follow(buf + area + 32 * i, area, count, end, &at);
    if (st != TIO_DECODE_OK)
        return st;
    return tio_abi_bytes(buf, at, end, off, len);
}

/* Element i of a bytes[] that tio_abi_args has already validated (offset, length and padding
   checked against the same bytes): only locates it, so a multicall or execute does not pay
   for the validation twice. */
static inline void tio_abi_locate_element(const uint8_t *buf, size_t area, size_t i, size_t *off, size_t *len)
{
    uint64_t o = 0, n = 0;
    (void)tio_word_u64(buf + area + 32 * i, &o);
    (void)tio_word_u64(buf + area + (size_t)o, &n);
    *off = area + (size_t)o + 32;
    *len = (size_t)n;
}

/* Validate the arguments of `spec` encoded in [start, end) and locate each one in args[]. */
static inline int tio_abi_args(const uint8_t *buf, size_t start, size_t end, const tio_call_spec *spec,
                               tio_abi_arg *args)
{
    int st;
    size_t head = start;
    if (spec->layout == TIO_LAYOUT_DYN_TUPLE) {
        if (end - start < 32)
            return TIO_DECODE_TRUNCATED;
        st = tio_abi_follow(buf + start, start, 1, end, &head);
        if (st != TIO_DECODE_OK)
            return st;
    }
    if ((end - head) / 32 < spec->nargs)
        return TIO_DECODE_TRUNCATED;
    for (int i = 0; i < spec->nargs; i++) {
        const uint8_t *w = buf + head + 32 * (size_t)i;
        size_t at;
        args[i].off = head + 32 * (size_t)i;
        args[i].len = 32;
        switch (spec->types[i]) {
        case TIO_T_UINT256:
        case TIO_T_BYTES32:
            break;
        case TIO_T_UINT24:
            if (!tio_word_high_zero(w, 29))
                return TIO_DECODE_BAD_VALUE;
            break;
        case TIO_T_UINT160:
        case TIO_T_ADDRESS:
            if (!tio_word_high_zero(w, 12))
                return TIO_DECODE_BAD_VALUE;
            break;
        case TIO_T_BOOL:
            if (!tio_word_high_zero(w, 31) || w[31] > 1)
                return TIO_DECODE_BAD_VALUE;
            break;
        case TIO_T_BYTES:
            st = tio_abi_follow(w, head, spec->nargs, end, &at);
            if (st == TIO_DECODE_OK)
                st = tio_abi_bytes(buf, at, end, &args[i].off, &args[i].len);
            if (st != TIO_DECODE_OK)
                return st;
            break;
        case TIO_T_ADDRESS_ARRAY:
            st = tio_abi_follow(w, head, spec->nargs, end, &at);
            if (st == TIO_DECODE_OK)
                st = tio_abi_array(buf, at, end, &args[i].off, &args[i].len);
            if (st != TIO_DECODE_OK)
                return st;
            for (size_t k = 0; k < args[i].len; k++)
                if (!tio_word_high_zero(buf + args[i].off + 32 * k, 12))
                    return TIO_DECODE_BAD_VALUE;
            break;
        case TIO_T_BYTES_ARRAY:
            st = tio_abi_follow(w, head, spec->nargs, end, &at);
            if (st == TIO_DECODE_OK)
                st = tio_abi_array(buf, at, end, &args[i].off, &args[i].len);
            if (st != TIO_DECODE_OK)
                return st;
            for (size_t k = 0; k < args[i].len; k++) {
                size_t off, len;
                st = tio_abi_bytes_element(buf, args[i].off, args[i].len, k, end, &off, &len);
                if (st != TIO_DECODE_OK)
                    return st;
            }
            break;
        default:
            return TIO_DECODE_BAD_VALUE;   /* unreachable: the table names every type */
        }
    }
    return TIO_DECODE_OK;
}

/* ---- swaps ---------------------------------------------------------------------------- */

static inline void tio_copy_address(uint8_t dst[20], const uint8_t *word)
{
    memcpy(dst, word + 12, 20);
}

static inline int tio_emit_swap(tio_decode_ctx *c, const tio_call_spec *s, const tio_abi_arg *a)
{
    const uint8_t *buf = c->buf;
    tio_decoded_call *out = c->out;
    if (out->n_swaps >= TIO_SWAP_MAX_PER_CALL)
        return TIO_DECODE_TOO_MANY_SWAPS;
    tio_swap *w = &out->swaps[out->n_swaps];
    memset(w, 0, sizeof *w);
    w->protocol = s->protocol;
    w->kind = s->kind;
    w->flags = s->swap_flags;
    if (s->a_amount >= 0) {
        tio_u256_from_be32(&w->amount, buf + a[s->a_amount].off);
        if ((s->spec_flags & TIO_SPEC_ZERO_IS_BALANCE) && tio_u256_is_zero(&w->amount))
            w->flags |= TIO_SWAP_AMOUNT_UNKNOWN;
        if ((s->spec_flags & TIO_SPEC_HIGH_BIT_IS_BALANCE) && w->amount.w[3] == 0x8000000000000000ULL
            && (w->amount.w[2] | w->amount.w[1] | w->amount.w[0]) == 0)
            w->flags |= TIO_SWAP_AMOUNT_UNKNOWN;
    }
    if (s->a_limit >= 0)
        tio_u256_from_be32(&w->amount_limit, buf + a[s->a_limit].off);
    if (s->a_deadline >= 0) {
        uint64_t d;
        w->deadline = tio_word_u64(buf + a[s->a_deadline].off, &d) ? d : UINT64_MAX;
    }
    if (s->a_recipient >= 0)
        tio_copy_address(w->recipient, buf + a[s->a_recipient].off);

    if (s->role == TIO_ROLE_V2_SWAP) {
        size_t first = a[s->a_path].off, count = a[s->a_path].len;
        if (count < 2)
            return TIO_DECODE_BAD_PATH;
        if (count > TIO_SWAP_MAX_PATH)
            return TIO_DECODE_PATH_TOO_LONG;
        for (size_t i = 0; i < count; i++)
            tio_copy_address(w->path[i], buf + first + 32 * i);
        w->path_len = (uint8_t)count;
    } else if (s->role == TIO_ROLE_V3_SINGLE) {
        tio_copy_address(w->path[0], buf + a[s->a_token_in].off);
        tio_copy_address(w->path[1], buf + a[s->a_token_out].off);
        const uint8_t *fee = buf + a[s->a_fee].off + 29;
        w->fees[0] = ((uint32_t)fee[0] << 16) | ((uint32_t)fee[1] << 8) | fee[2];
        w->path_len = 2;
        /* the single-pool calls end with sqrtPriceLimitX96 (uint160, checked by tio_abi_args) */
        tio_u256_from_be32(&w->sqrt_price_limit, buf + a[s->nargs - 1].off);
    } else {  /* TIO_ROLE_V3_PATH: token (fee token)+, read in the direction it is encoded */
        const uint8_t *p = buf + a[s->a_path].off;
        size_t len = a[s->a_path].len;
        if (len < 43 || (len - 20) % 23 != 0)
            return TIO_DECODE_BAD_PATH;
        size_t hops = (len - 20) / 23;
        if (hops + 1 > TIO_SWAP_MAX_PATH)
            return TIO_DECODE_PATH_TOO_LONG;
        int reverse = s->kind == TIO_SWAP_EXACT_OUT;   /* exactOutput paths start at the output */
        for (size_t t = 0; t <= hops; t++) {
            size_t slot = reverse ? hops - t : t;
            memcpy(w->path[slot], p + 23 * t, 20);
            if (t < hops) {
                const uint8_t *fee = p + 23 * t + 20;
                size_t hop = reverse ? hops - 1 - t : t;
                w->fees[hop] = ((uint32_t)fee[0] << 16) | ((uint32_t)fee[1] << 8) | fee[2];
            }
        }
        w->path_len = (uint8_t)(hops + 1);
    }
    out->n_swaps++;
    return TIO_DECODE_OK;
}

/* ---- calls ---------------------------------------------------------------------------- */

static inline int tio_find_command(uint8_t command)
{
    for (int i = TIO_N_SELECTOR_SPECS; i < TIO_N_CALL_SPECS; i++)
        if (tio_call_specs[i].command == command)
            return i;
    return -1;
}

/* The selectors of tio_call_specs[0 .. TIO_N_SELECTOR_SPECS), in the same order, packed so
   that the lookup every transaction pays touches one cache line instead of one spec per line.
   tio_decode_selfcheck() (run when the module is imported) proves the two lists agree. */
static const uint32_t tio_selectors[] = {
    0x38ed1739u, 0x8803dbeeu, 0x7ff36ab5u, 0x4a25d94au, 0x18cbafe5u, 0xfb3bdb41u, 0x5c11d795u, 0xb6f9de95u,
    0x791ac947u, 0x472b43f3u, 0x42712a67u,
    0x414bf389u, 0xc04b8d59u, 0xdb3e2198u, 0xf28c0498u,
    0x04e45aafu, 0xb858183fu, 0x5023b4dfu, 0x09b81346u,
    0xac9650d8u, 0x5ae401dcu, 0x1f0464d1u,
    0x3593564cu, 0x24856bc3u,
    0x49404b7cu, 0x49616997u, 0x12210e8au, 0xdf2ab5bbu, 0xe90a182fu,
};

/* A collision-free hash of the selectors into 64 slots (multiplier found offline by trying
   random odd multipliers; tio_decode_selfcheck proves it at import): one multiply, one load and
   one compare decide any transaction, known or not. */
#define TIO_SELECTOR_HASH_MULTIPLIER 0x05373b77u
static const int8_t tio_selector_slots[64] = {
     1, -1,  2, -1, -1, 10,  8, -1,  6, -1, -1, 21, 25,  0, -1, -1,
    -1, 27, -1, -1,  3, -1, -1,  7, -1,  9, 13, 16, 18, 19, -1, 20,
    24, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 23, 17, -1,  4, -1,
    -1, 28, -1, 15, -1, -1, 11, 26, 22, 12, -1, -1, -1,  5, 14, -1,
};

static inline int tio_find_selector(uint32_t selector)
{
    int i = tio_selector_slots[(uint32_t)(selector * TIO_SELECTOR_HASH_MULTIPLIER) >> 26];
    return (i >= 0 && tio_selectors[i] == selector) ? i : -1;
}

/* 0 when tio_selectors mirrors the spec table and every spec is reachable; else the
   1-based index of the first spec that is not */
static inline int tio_decode_selfcheck(void)
{
    if ((int)(sizeof tio_selectors / sizeof tio_selectors[0]) != TIO_N_SELECTOR_SPECS)
        return TIO_N_SELECTOR_SPECS + 1;
    for (int i = 0; i < TIO_N_SELECTOR_SPECS; i++)
        if (tio_selectors[i] != tio_call_specs[i].selector || tio_find_selector(tio_call_specs[i].selector) != i
            || (tio_call_specs[i].role == TIO_ROLE_V3_SINGLE
                && tio_call_specs[i].types[tio_call_specs[i].nargs - 1] != TIO_T_UINT160))
            return i + 1;   /* tio_emit_swap reads a single-pool call's last argument as its price limit */
    for (int i = TIO_N_SELECTOR_SPECS; i < TIO_N_CALL_SPECS; i++)
        if (tio_call_specs[i].command == TIO_NO_COMMAND || tio_find_command(tio_call_specs[i].command) != i)
            return i + 1;
    return 0;
}

/* Benchmarks only: make the compiler forget what it knows about `p` and treat all memory as
   read and written, so a loop over the same input really decodes it each time. */
static inline const uint8_t *tio_bench_opaque(const uint8_t *p)
{
    __asm__ volatile("" : "+r"(p) : : "memory");
    return p;
}


/* Claim a record slot for a decoded call; -1 when the trace is off. */
static inline int tio_begin_record(tio_decode_ctx *c, int spec, int parent, int *record)
{
    if (c->calls >= TIO_DECODE_MAX_CALLS)
        return TIO_DECODE_TOO_MANY_CALLS;
    c->calls++;
    *record = -1;
    if (c->trace) {
        *record = (int)c->trace->n_calls++;
        tio_call_record *r = &c->trace->calls[*record];
        r->spec = (int16_t)spec;
        r->parent = (int16_t)parent;
        r->swap_first = r->swap_end = (uint8_t)c->out->n_swaps;
        r->skipped = 0;
    }
    return TIO_DECODE_OK;
}

static inline void tio_end_record(tio_decode_ctx *c, int record, const tio_abi_arg *args, int nargs, int skipped)
{
    if (record < 0)
        return;
    tio_call_record *r = &c->trace->calls[record];
    memcpy(r->args, args, sizeof(tio_abi_arg) * (size_t)nargs);
    r->swap_end = (uint8_t)c->out->n_swaps;
    r->skipped = (uint32_t)skipped;
}

/* the deadline and flags a container (multicall, execute) gives the swaps inside it */
static inline void tio_apply_container(tio_decode_ctx *c, uint32_t first, const uint8_t *deadline_word,
                                       uint8_t flags)
{
    for (uint32_t i = first; i < c->out->n_swaps; i++) {
        tio_swap *w = &c->out->swaps[i];
        w->flags |= flags;
        if (deadline_word && w->deadline == 0) {
            uint64_t d;
            w->deadline = tio_word_u64(deadline_word, &d) ? d : UINT64_MAX;
        }
    }
}

static int tio_decode_at(tio_decode_ctx *c, size_t start, size_t end, int depth, int parent);

/* Universal Router execute: decode the swap commands, skip (and count) the others.
   Its arguments (commands, inputs and every element) were validated by tio_abi_args. */
static inline int tio_decode_execute(tio_decode_ctx *c, const tio_call_spec *s, const tio_abi_arg *a, int me,
                                     int *skipped)
{
    const uint8_t *buf = c->buf;
    size_t commands = a[0].off, n_commands = a[0].len, area = a[1].off, n_inputs = a[1].len;
    uint32_t first = c->out->n_swaps;
    uint8_t flags = 0;
    if (n_commands != n_inputs)
        return TIO_DECODE_COMMANDS_MISMATCH;
    for (size_t i = 0; i < n_commands; i++) {
        uint8_t type = buf[commands + i] & TIO_UR_COMMAND_MASK;
        int spec = tio_find_command(type);
        if (spec < 0) {
            if (type == TIO_UR_WRAP_ETH)
                flags |= TIO_SWAP_ETH_IN;
            else if (type == TIO_UR_UNWRAP_WETH)
                flags |= TIO_SWAP_ETH_OUT;
            (*skipped)++;
            c->commands_skipped++;
            continue;
        }
        size_t off, len;
        tio_abi_locate_element(buf, area, i, &off, &len);
        int record;
        int st = tio_begin_record(c, spec, me, &record);
        if (st != TIO_DECODE_OK)
            return st;
        tio_abi_arg args[TIO_ABI_MAX_ARGS];
        const tio_call_spec *cs = &tio_call_specs[spec];
        st = tio_abi_args(buf, off, off + len, cs, args);
        if (st == TIO_DECODE_OK)
            st = tio_emit_swap(c, cs, args);
        if (st != TIO_DECODE_OK)
            return st;
        tio_end_record(c, record, args, cs->nargs, 0);
    }
    tio_apply_container(c, first, s->a_deadline >= 0 ? buf + a[s->a_deadline].off : NULL, flags);
    return TIO_DECODE_OK;
}

/* multicall: each element is a call to the same router; unknown ones are skipped (counted),
   a malformed known one rejects the whole input (the router would revert). */
static inline int tio_decode_multicall(tio_decode_ctx *c, const tio_call_spec *s, const tio_abi_arg *a, int depth,
                                       int me, int *skipped)
{
    const tio_abi_arg *data = &a[s->nargs - 1];
    uint32_t first = c->out->n_swaps;
    uint8_t flags = 0;
    if (depth >= TIO_DECODE_MAX_DEPTH)
        return TIO_DECODE_TOO_DEEP;
    for (size_t i = 0; i < data->len; i++) {
        size_t off, len;
        tio_abi_locate_element(c->buf, data->off, i, &off, &len);
        if (len >= 4) {
            int inner = tio_find_selector(tio_be32(c->buf + off));
            if (inner >= 0 && tio_call_specs[inner].role == TIO_ROLE_UNWRAP)
                flags |= TIO_SWAP_ETH_OUT;
        }
        int st = tio_decode_at(c, off, off + len, depth + 1, me);
        if (st == TIO_DECODE_UNKNOWN) {
            (*skipped)++;
            c->inner_unknown++;
            continue;
        }
        if (st != TIO_DECODE_OK)
            return st;
    }
    tio_apply_container(c, first, s->a_deadline >= 0 ? c->buf + a[s->a_deadline].off : NULL, flags);
    return TIO_DECODE_OK;
}

/* the call in [start, end) of the input: selector, then its arguments */
static int tio_decode_at(tio_decode_ctx *c, size_t start, size_t end, int depth, int parent)
{
    if (end - start < 4)
        return TIO_DECODE_UNKNOWN;
    int spec = tio_find_selector(tio_be32(c->buf + start));
    if (spec < 0)
        return TIO_DECODE_UNKNOWN;
    const tio_call_spec *s = &tio_call_specs[spec];
    int record, skipped = 0;
    int st = tio_begin_record(c, spec, parent, &record);
    if (st != TIO_DECODE_OK)
        return st;
    tio_abi_arg args[TIO_ABI_MAX_ARGS];
    st = tio_abi_args(c->buf, start + 4, end, s, args);
    if (st != TIO_DECODE_OK)
        return st;
    switch (s->role) {
    case TIO_ROLE_V2_SWAP:
    case TIO_ROLE_V3_SINGLE:
    case TIO_ROLE_V3_PATH:
        st = tio_emit_swap(c, s, args);
        break;
    case TIO_ROLE_MULTICALL:
        st = tio_decode_multicall(c, s, args, depth, record, &skipped);
        break;
    case TIO_ROLE_EXECUTE:
        st = tio_decode_execute(c, s, args, record, &skipped);
        break;
    default:
        break;
    }
    if (st != TIO_DECODE_OK)
        return st;
    tio_end_record(c, record, args, s->nargs, skipped);
    return TIO_DECODE_OK;
}

/* Decode data[0..n) into *out; count the outcome in *stats; fill *trace unless it is NULL.
   Returns a TIO_DECODE_* status (see tio_swap.h). */
static inline int tio_decode_run(const uint8_t *data, size_t n, tio_decoded_call *out, tio_decode_stats *stats,
                                 tio_decode_trace *trace)
{
    tio_decode_ctx c;
    c.buf = data;
    c.out = out;
    c.trace = trace;
    c.calls = 0;
    c.inner_unknown = 0;
    c.commands_skipped = 0;
    out->selector = n >= 4 ? tio_be32(data) : 0;
    out->n_swaps = 0;
    if (trace)
        trace->n_calls = 0;
    int st = tio_decode_at(&c, 0, n, 0, -1);
    if (st != TIO_DECODE_OK) {
        out->n_swaps = 0;
        if (trace)
            trace->n_calls = 0;
    }
    stats->by_status[st]++;
    stats->inner_unknown += c.inner_unknown;
    stats->commands_skipped += c.commands_skipped;
    return st;
}

#endif /* TIO_DECODE_CORE_H */

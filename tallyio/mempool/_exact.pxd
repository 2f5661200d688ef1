# cython: language_level=3
# Owns: the analyzer's STAND-IN for the amm branch's exact V2 math (tallyio/amm/_v2.pxd:
# v2_amount_out / v2_amount_in, same signatures and statuses), used until that C API is
# merged; then the analyzer's cimport switches to tallyio.amm._v2 and this file goes.
# Touches nothing else.  uint256 arithmetic on tio_u256: add/sub/mul with overflow flags,
# division by Knuth's algorithm D on 32-bit digits (no __int128 division, no allocation).
from libc.stdint cimport uint32_t
from tallyio._ext.u256 cimport tio_u256

cdef extern from * nogil:
    """
    #ifndef TIO_MEMPOOL_EXACT
    #define TIO_MEMPOOL_EXACT
    #include <stdint.h>
    #include <string.h>
    #include "tio_u256.h"

    enum { XM_OK = 0, XM_INSUFFICIENT_INPUT_AMOUNT = 101, XM_INSUFFICIENT_OUTPUT_AMOUNT = 102,
           XM_INSUFFICIENT_LIQUIDITY = 103, XM_OVERFLOW = 104, XM_OUTPUT_EXCEEDS_RESERVE = 105,
           XM_BAD_FEE = 106 };

    /* out = a + b; returns 1 on overflow past 2**256 */
    static inline int x_add(const tio_u256 *a, const tio_u256 *b, tio_u256 *out) {
        unsigned __int128 c = 0;
        for (int i = 0; i < 4; i++) {
            c += (unsigned __int128)a->w[i] + b->w[i];
            out->w[i] = (uint64_t)c;
            c >>= 64;
        }
        return c != 0;
    }

    /* out = a - b; returns 1 when b > a (out wraps) */
    static inline int x_sub(const tio_u256 *a, const tio_u256 *b, tio_u256 *out) {
        uint64_t borrow = 0;
        for (int i = 0; i < 4; i++) {
            uint64_t ai = a->w[i], bi = b->w[i];
            uint64_t d = ai - bi - borrow;
            borrow = (ai < bi) || (ai - bi < borrow);
            out->w[i] = d;
        }
        return borrow != 0;
    }

    /* out = a * b mod 2**256; returns 1 when the product needs more than 256 bits */
    static inline int x_mul(const tio_u256 *a, const tio_u256 *b, tio_u256 *out) {
        uint64_t r[8] = {0};
        for (int i = 0; i < 4; i++) {
            if (!a->w[i]) continue;
            uint64_t carry = 0;
            for (int j = 0; j < 4; j++) {
                unsigned __int128 t = (unsigned __int128)a->w[i] * b->w[j] + r[i + j] + carry;
                r[i + j] = (uint64_t)t;
                carry = (uint64_t)(t >> 64);
            }
            r[i + 4] = carry;
        }
        memcpy(out->w, r, 32);
        return (r[4] | r[5] | r[6] | r[7]) != 0;
    }

    static inline int x_mul_u64(const tio_u256 *a, uint64_t b, tio_u256 *out) {
        tio_u256 bb = {{b, 0, 0, 0}};
        return x_mul(a, &bb, out);
    }

    /* q = u / v (v != 0): Knuth's algorithm D (TAOCP 4.3.1) on 32-bit digits */
    static inline void x_div(const tio_u256 *u, const tio_u256 *v, tio_u256 *q) {
        uint32_t un[9], vn[8], uu[8], vv[8], qq[8] = {0};
        int m = 8, n = 8;
        for (int i = 0; i < 4; i++) {
            uu[2 * i] = (uint32_t)u->w[i]; uu[2 * i + 1] = (uint32_t)(u->w[i] >> 32);
            vv[2 * i] = (uint32_t)v->w[i]; vv[2 * i + 1] = (uint32_t)(v->w[i] >> 32);
        }
        while (m > 0 && uu[m - 1] == 0) m--;
        while (n > 0 && vv[n - 1] == 0) n--;
        memset(q, 0, sizeof *q);
        if (m < n || n == 0) return;
        if (n == 1) {
            uint64_t k = 0;
            for (int j = m - 1; j >= 0; j--) {
                uint64_t cur = (k << 32) | uu[j];
                qq[j] = (uint32_t)(cur / vv[0]);
                k = cur - (uint64_t)qq[j] * vv[0];
            }
        } else {
            int s = __builtin_clz(vv[n - 1]);
            for (int i = n - 1; i > 0; i--)
                vn[i] = (vv[i] << s) | (s ? (uint32_t)((uint64_t)vv[i - 1] >> (32 - s)) : 0);
            vn[0] = vv[0] << s;
            un[m] = s ? (uint32_t)((uint64_t)uu[m - 1] >> (32 - s)) : 0;
            for (int i = m - 1; i > 0; i--)
                un[i] = (uu[i] << s) | (s ? (uint32_t)((uint64_t)uu[i - 1] >> (32 - s)) : 0);
            un[0] = uu[0] << s;
            const uint64_t b = 1ull << 32;
            for (int j = m - n; j >= 0; j--) {
                uint64_t num = ((uint64_t)un[j + n] << 32) | un[j + n - 1];
                uint64_t qhat = num / vn[n - 1];
                uint64_t rhat = num - qhat * vn[n - 1];
                while (qhat >= b || qhat * vn[n - 2] > ((rhat << 32) | un[j + n - 2])) {
                    qhat--;
                    rhat += vn[n - 1];
                    if (rhat >= b) break;
                }
                int64_t k = 0, t;
                for (int i = 0; i < n; i++) {
                    uint64_t p = qhat * vn[i];
                    t = (int64_t)un[i + j] - k - (int64_t)(p & 0xFFFFFFFFu);
                    un[i + j] = (uint32_t)t;
                    k = (int64_t)(p >> 32) - (t >> 32);
                }
                t = (int64_t)un[j + n] - k;
                un[j + n] = (uint32_t)t;
                qq[j] = (uint32_t)qhat;
                if (t < 0) {
                    qq[j]--;
                    uint64_t c = 0;
                    for (int i = 0; i < n; i++) {
                        uint64_t sum = (uint64_t)un[i + j] + vn[i] + c;
                        un[i + j] = (uint32_t)sum;
                        c = sum >> 32;
                    }
                    un[j + n] += (uint32_t)c;
                }
            }
        }
        for (int i = 0; i < 4; i++)
            q->w[i] = (uint64_t)qq[2 * i] | ((uint64_t)qq[2 * i + 1] << 32);
    }

    /* UniswapV2Library.getAmountOut with a fee in basis points */
    static inline int x_v2_amount_out(const tio_u256 *ain, const tio_u256 *rin, const tio_u256 *rout,
                                      uint32_t fee_bps, tio_u256 *out) {
        tio_u256 with_fee, num, den;
        uint64_t scale = (fee_bps % 10 == 0) ? 1000 : 10000;
        uint64_t keep = scale - (scale == 1000 ? fee_bps / 10 : fee_bps);
        if (fee_bps >= 10000) return XM_BAD_FEE;
        if (tio_u256_is_zero(ain)) return XM_INSUFFICIENT_INPUT_AMOUNT;
        if (tio_u256_is_zero(rin) || tio_u256_is_zero(rout)) return XM_INSUFFICIENT_LIQUIDITY;
        if (x_mul_u64(ain, keep, &with_fee)) return XM_OVERFLOW;
        if (x_mul(&with_fee, rout, &num)) return XM_OVERFLOW;
        if (x_mul_u64(rin, scale, &den)) return XM_OVERFLOW;
        if (x_add(&den, &with_fee, &den)) return XM_OVERFLOW;
        x_div(&num, &den, out);
        return XM_OK;
    }

    /* UniswapV2Library.getAmountIn with a fee in basis points */
    static inline int x_v2_amount_in(const tio_u256 *aout, const tio_u256 *rin, const tio_u256 *rout,
                                     uint32_t fee_bps, tio_u256 *ain) {
        tio_u256 num, den, left, one = {{1, 0, 0, 0}};
        uint64_t scale = (fee_bps % 10 == 0) ? 1000 : 10000;
        uint64_t keep = scale - (scale == 1000 ? fee_bps / 10 : fee_bps);
        if (fee_bps >= 10000) return XM_BAD_FEE;
        if (tio_u256_is_zero(aout)) return XM_INSUFFICIENT_OUTPUT_AMOUNT;
        if (tio_u256_is_zero(rin) || tio_u256_is_zero(rout)) return XM_INSUFFICIENT_LIQUIDITY;
        if (tio_u256_cmp(aout, rout) >= 0) return XM_OUTPUT_EXCEEDS_RESERVE;
        if (x_mul(rin, aout, &num)) return XM_OVERFLOW;
        if (x_mul_u64(&num, scale, &num)) return XM_OVERFLOW;
        x_sub(rout, aout, &left);
        if (x_mul_u64(&left, keep, &den)) return XM_OVERFLOW;
        x_div(&num, &den, ain);
        if (x_add(ain, &one, ain)) return XM_OVERFLOW;
        return XM_OK;
    }
    #endif
    """
    enum: XM_OK
    int x_add(const tio_u256 *a, const tio_u256 *b, tio_u256 *out)
    int x_sub(const tio_u256 *a, const tio_u256 *b, tio_u256 *out)
    int x_mul(const tio_u256 *a, const tio_u256 *b, tio_u256 *out)
    int x_mul_u64(const tio_u256 *a, unsigned long long b, tio_u256 *out)
    void x_div(const tio_u256 *u, const tio_u256 *v, tio_u256 *q)
    int x_v2_amount_out(const tio_u256 *ain, const tio_u256 *rin, const tio_u256 *rout,
                        uint32_t fee_bps, tio_u256 *out)
    int x_v2_amount_in(const tio_u256 *aout, const tio_u256 *rin, const tio_u256 *rout,
                       uint32_t fee_bps, tio_u256 *ain)

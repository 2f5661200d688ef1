/*
 * tio_u256.h -- the EVM's uint256 in C: four 64-bit limbs, least significant
 * first (w[0] holds bits 0..63).  The type and the conversions from and to the
 * 32-byte big-endian words of ABI calldata and storage live here so that the
 * decoder (tallyio/eth) and the exact pool math (tallyio/amm) share one
 * representation; the arithmetic (tallyio/amm) is added below the conversions.
 * Everything is static inline, allocation-free and safe to call without the GIL.
 */
#ifndef TIO_U256_H
#define TIO_U256_H

#include <stdint.h>
#include <string.h>

typedef struct {
    uint64_t w[4];
} tio_u256;

/* a 32-byte big-endian word (an ABI uint256) -> tio_u256 */
static inline void tio_u256_from_be32(tio_u256 *out, const uint8_t *be)
{
    for (int limb = 0; limb < 4; limb++) {
        const uint8_t *p = be + 24 - 8 * limb;
        uint64_t v = 0;
        for (int i = 0; i < 8; i++)
            v = (v << 8) | p[i];
        out->w[limb] = v;
    }
}

/* tio_u256 -> a 32-byte big-endian word */
static inline void tio_u256_to_be32(const tio_u256 *in, uint8_t *be)
{
    for (int limb = 0; limb < 4; limb++) {
        uint64_t v = in->w[limb];
        uint8_t *p = be + 24 - 8 * limb;
        for (int i = 7; i >= 0; i--) {
            p[i] = (uint8_t)v;
            v >>= 8;
        }
    }
}

static inline void tio_u256_from_u64(tio_u256 *out, uint64_t v)
{
    out->w[0] = v;
    out->w[1] = out->w[2] = out->w[3] = 0;
}

static inline int tio_u256_is_zero(const tio_u256 *a)
{
    return (a->w[0] | a->w[1] | a->w[2] | a->w[3]) == 0;
}

/* -1, 0, 1 as a <, ==, > b */
static inline int tio_u256_cmp(const tio_u256 *a, const tio_u256 *b)
{
    for (int limb = 3; limb >= 0; limb--) {
        if (a->w[limb] != b->w[limb])
            return a->w[limb] < b->w[limb] ? -1 : 1;
    }
    return 0;
}

/* the number of significant bits (0 for zero) */
static inline int tio_u256_bit_length(const tio_u256 *a)
{
    for (int limb = 3; limb >= 0; limb--) {
        if (a->w[limb])
            return 64 * limb + 64 - __builtin_clzll(a->w[limb]);
    }
    return 0;
}

/* ---- arithmetic (tallyio/amm) ---------------------------------------------------------- */

/*
 * Everything below returns plainly (no errno, no exceptions): additions and
 * subtractions hand back their carry/borrow, the checked operations a status
 * (TIO_U256_OK / TIO_U256_OVERFLOW / TIO_U256_DIV_ZERO) that the caller maps
 * to the revert the contract would have raised.  Outputs may alias inputs.
 * 64x64->128 products and 128/64 quotients use the compiler's unsigned __int128
 * (GCC and Clang on every 64-bit target we build wheels for).
 */
#define TIO_U256_OK 0
#define TIO_U256_OVERFLOW 1   /* the exact result does not fit in 256 bits (SafeMath/FullMath revert) */
#define TIO_U256_DIV_ZERO 2   /* division by zero (a Solidity require/assert revert) */

typedef unsigned __int128 tio_u128_t;

/* a 512-bit product: eight limbs, least significant first */
typedef struct {
    uint64_t w[8];
} tio_u512;

/* out = a + b mod 2**256; returns the carry out (1 when the true sum overflowed) */
static inline uint64_t tio_u256_add(tio_u256 *out, const tio_u256 *a, const tio_u256 *b)
{
    uint64_t carry = 0;
    for (int i = 0; i < 4; i++) {
        tio_u128_t t = (tio_u128_t)a->w[i] + b->w[i] + carry;
        out->w[i] = (uint64_t)t;
        carry = (uint64_t)(t >> 64);
    }
    return carry;
}

/* out = a - b mod 2**256; returns the borrow out (1 when a < b) */
static inline uint64_t tio_u256_sub(tio_u256 *out, const tio_u256 *a, const tio_u256 *b)
{
    uint64_t borrow = 0;
    for (int i = 0; i < 4; i++) {
        tio_u128_t t = (tio_u128_t)a->w[i] - b->w[i] - borrow;
        out->w[i] = (uint64_t)t;
        borrow = (uint64_t)(t >> 64) & 1;   /* the high half is all ones after a wrap */
    }
    return borrow;
}

/* out = a * b mod 2**256 for a 64-bit b; returns the limb that fell off the top
   (non-zero exactly when the true product needs more than 256 bits) */
static inline uint64_t tio_u256_mul_u64(tio_u256 *out, const tio_u256 *a, uint64_t b)
{
    uint64_t carry = 0;
    for (int i = 0; i < 4; i++) {
        tio_u128_t t = (tio_u128_t)a->w[i] * b + carry;
        out->w[i] = (uint64_t)t;
        carry = (uint64_t)(t >> 64);
    }
    return carry;
}

/* the full 512-bit product a * b (schoolbook, 16 limb products) */
static inline void tio_u256_mul_full(tio_u512 *out, const tio_u256 *a, const tio_u256 *b)
{
    uint64_t r[8] = {0};
    int nb = 4;
    while (nb > 0 && b->w[nb - 1] == 0)      /* pool amounts use 1-2 limbs: skip the zero ones */
        nb--;
    for (int i = 0; i < 4; i++) {
        uint64_t carry = 0;
        if (a->w[i] == 0)
            continue;
        for (int j = 0; j < nb; j++) {
            tio_u128_t t = (tio_u128_t)a->w[i] * b->w[j] + r[i + j] + carry;
            r[i + j] = (uint64_t)t;
            carry = (uint64_t)(t >> 64);
        }
        r[i + nb] = carry;
    }
    memcpy(out->w, r, sizeof r);
}

/* out = a * b mod 2**256 (EVM MUL); returns TIO_U256_OVERFLOW when the true
   product needs more than 256 bits (SafeMath.mul would revert) */
static inline int tio_u256_mul(tio_u256 *out, const tio_u256 *a, const tio_u256 *b)
{
    tio_u512 p;
    tio_u256_mul_full(&p, a, b);
    memcpy(out->w, p.w, 4 * sizeof(uint64_t));
    return (p.w[4] | p.w[5] | p.w[6] | p.w[7]) ? TIO_U256_OVERFLOW : TIO_U256_OK;
}

/* significant limbs of an n-limb number (0 for zero) */
static inline int tio_limbs_used(const uint64_t *x, int n)
{
    while (n > 0 && x[n - 1] == 0)
        n--;
    return n;
}

/* (hi:lo) / d for hi < d (so the quotient fits 64 bits): one DIV instruction on x86-64,
   where the compiler would otherwise call the much slower 128-bit division of libgcc */
static inline uint64_t tio_div_128_64(uint64_t hi, uint64_t lo, uint64_t d, uint64_t *rem)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    uint64_t q, r;
    __asm__("divq %4" : "=a"(q), "=d"(r) : "a"(lo), "d"(hi), "rm"(d));
    *rem = r;
    return q;
#else
    tio_u128_t n = ((tio_u128_t)hi << 64) | lo;
    *rem = (uint64_t)(n % d);
    return (uint64_t)(n / d);
#endif
}

/*
 * Knuth's Algorithm D (TAOCP vol. 2, 4.3.1) on 64-bit digits: q = u / v and
 * r = u % v for u of m limbs (m <= 8) and v of n limbs (1 <= n <= 4, v[n-1] != 0,
 * m >= n).  q gets m - n + 1 limbs, r gets n limbs.  The trial quotient from
 * the top two digits of the normalised remainder is at most 2 too large; the
 * rhat test removes almost every such case and the add-back the rest.
 */
#if defined(__GNUC__) || defined(__clang__)
#define TIO_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define TIO_ALWAYS_INLINE inline
#endif

static TIO_ALWAYS_INLINE void tio_divmod_limbs(uint64_t *q, uint64_t *r, const uint64_t *u, int m,
                                               const uint64_t *v, int n)
{
    if (n == 1) {
        uint64_t rem = 0;
        for (int i = m - 1; i >= 0; i--)
            q[i] = tio_div_128_64(rem, u[i], v[0], &rem);     /* rem < v[0] throughout */
        r[0] = rem;
        return;
    }
    uint64_t un[9], vn[4];
    int s = __builtin_clzll(v[n - 1]);      /* shift so that vn's top digit has its top bit set */
    for (int i = n - 1; i > 0; i--)
        vn[i] = (v[i] << s) | (s ? v[i - 1] >> (64 - s) : 0);
    vn[0] = v[0] << s;
    un[m] = s ? u[m - 1] >> (64 - s) : 0;
    for (int i = m - 1; i > 0; i--)
        un[i] = (u[i] << s) | (s ? u[i - 1] >> (64 - s) : 0);
    un[0] = u[0] << s;

    for (int j = m - n; j >= 0; j--) {
        /* the running remainder keeps un[j+n] <= vn[n-1]; when equal the trial quotient
           is b - 1 (it cannot be b or more) and rhat = un[j+n-1] + vn[n-1] */
        uint64_t qhat, rhat;
        int rhat_big = 0;
        if (un[j + n] >= vn[n - 1]) {
            qhat = UINT64_MAX;
            rhat = un[j + n - 1] + vn[n - 1];
            rhat_big = rhat < vn[n - 1];          /* rhat >= b: the test below cannot hold */
        } else {
            qhat = tio_div_128_64(un[j + n], un[j + n - 1], vn[n - 1], &rhat);
        }
        while (!rhat_big &&
               (tio_u128_t)qhat * vn[n - 2] > (((tio_u128_t)rhat << 64) | un[j + n - 2])) {
            qhat--;
            rhat += vn[n - 1];
            rhat_big = rhat < vn[n - 1];          /* wrapped: rhat >= b */
        }
        /* un[j .. j+n] -= qhat * vn, tracking the borrow as a signed 128-bit value */
        __int128 borrow = 0, t;
        for (int i = 0; i < n; i++) {
            tio_u128_t p = (tio_u128_t)qhat * vn[i];
            t = (__int128)un[i + j] - borrow - (__int128)(uint64_t)p;
            un[i + j] = (uint64_t)t;
            borrow = (__int128)(uint64_t)(p >> 64) - (t >> 64);
        }
        t = (__int128)un[j + n] - borrow;
        un[j + n] = (uint64_t)t;
        q[j] = qhat;
        if (t < 0) {                          /* qhat was one too large: add v back */
            q[j]--;
            uint64_t carry = 0;
            for (int i = 0; i < n; i++) {
                tio_u128_t sum = (tio_u128_t)un[i + j] + vn[i] + carry;
                un[i + j] = (uint64_t)sum;
                carry = (uint64_t)(sum >> 64);
            }
            un[j + n] += carry;
        }
    }
    for (int i = 0; i < n; i++)
        r[i] = s ? (un[i] >> s) | (un[i + 1] << (64 - s)) : un[i];
}

/* q = a / b, r = a % b (either may be NULL); TIO_U256_DIV_ZERO when b == 0 */
static inline int tio_u256_divmod(tio_u256 *q, tio_u256 *r, const tio_u256 *a, const tio_u256 *b)
{
    int n = tio_limbs_used(b->w, 4);
    if (n == 0)
        return TIO_U256_DIV_ZERO;
    int m = tio_limbs_used(a->w, 4);
    uint64_t qq[4] = {0}, rr[4] = {0};
    if (m < n || (m == n && tio_u256_cmp(a, b) < 0)) {
        memcpy(rr, a->w, sizeof rr);          /* a < b: quotient 0, remainder a */
    } else {
        /* a constant divisor length lets the compiler unroll the digit loops */
        switch (n) {
        case 1: tio_divmod_limbs(qq, rr, a->w, m, b->w, 1); break;
        case 2: tio_divmod_limbs(qq, rr, a->w, m, b->w, 2); break;
        case 3: tio_divmod_limbs(qq, rr, a->w, m, b->w, 3); break;
        default: tio_divmod_limbs(qq, rr, a->w, m, b->w, 4); break;
        }
    }
    if (q) memcpy(q->w, qq, sizeof qq);
    if (r) memcpy(r->w, rr, sizeof rr);
    return TIO_U256_OK;
}

/* q = u / d and r = u % d for a 512-bit u (either may be NULL);
   TIO_U256_OVERFLOW when the quotient needs more than 256 bits */
static inline int tio_u512_divmod_u256(tio_u256 *q, tio_u256 *r, const tio_u512 *u, const tio_u256 *d)
{
    int n = tio_limbs_used(d->w, 4);
    if (n == 0)
        return TIO_U256_DIV_ZERO;
    int m = tio_limbs_used(u->w, 8);
    uint64_t qq[8] = {0}, rr[4] = {0};
    if (m < n) {
        memcpy(rr, u->w, sizeof rr);
    } else {
        switch (n) {
        case 1: tio_divmod_limbs(qq, rr, u->w, m, d->w, 1); break;
        case 2: tio_divmod_limbs(qq, rr, u->w, m, d->w, 2); break;
        case 3: tio_divmod_limbs(qq, rr, u->w, m, d->w, 3); break;
        default: tio_divmod_limbs(qq, rr, u->w, m, d->w, 4); break;
        }
    }
    if (qq[4] | qq[5] | qq[6] | qq[7])
        return TIO_U256_OVERFLOW;
    if (q) memcpy(q->w, qq, 4 * sizeof(uint64_t));
    if (r) memcpy(r->w, rr, sizeof rr);
    return TIO_U256_OK;
}

/* Uniswap V3 FullMath.mulDiv: floor(a * b / d) with a 512-bit intermediate.
   Reverts (a status here) when d == 0 or the result needs more than 256 bits. */
static inline int tio_u256_mul_div(tio_u256 *out, const tio_u256 *a, const tio_u256 *b, const tio_u256 *d)
{
    tio_u512 p;
    tio_u256_mul_full(&p, a, b);
    return tio_u512_divmod_u256(out, NULL, &p, d);
}

/* FullMath.mulDivRoundingUp: ceil(a * b / d); reverts like mulDiv, and when the
   rounded-up result would be 2**256 */
static inline int tio_u256_mul_div_rounding_up(tio_u256 *out, const tio_u256 *a, const tio_u256 *b,
                                               const tio_u256 *d)
{
    tio_u512 p;
    tio_u256 rem;
    tio_u256_mul_full(&p, a, b);
    int status = tio_u512_divmod_u256(out, &rem, &p, d);
    if (status != TIO_U256_OK)
        return status;
    if (!tio_u256_is_zero(&rem)) {
        tio_u256 one = {{1, 0, 0, 0}};
        if (tio_u256_add(out, out, &one))
            return TIO_U256_OVERFLOW;
    }
    return TIO_U256_OK;
}

/* UnsafeMath.divRoundingUp: ceil(a / b) with the EVM's DIV/MOD, which give 0 for b == 0 */
static inline void tio_u256_div_rounding_up(tio_u256 *out, const tio_u256 *a, const tio_u256 *b)
{
    tio_u256 q, r;
    if (tio_u256_divmod(&q, &r, a, b) != TIO_U256_OK) {
        tio_u256_from_u64(out, 0);
        return;
    }
    if (!tio_u256_is_zero(&r)) {
        tio_u256 one = {{1, 0, 0, 0}};
        tio_u256_add(&q, &q, &one);           /* q < 2**256 - 1 here since b >= 2 */
    }
    *out = q;
}

/* out = a << n mod 2**256 (EVM SHL: 0 for n >= 256) */
static inline void tio_u256_shl(tio_u256 *out, const tio_u256 *a, unsigned n)
{
    uint64_t r[4] = {0};
    if (n < 256) {
        unsigned limbs = n / 64, bits = n % 64;
        for (int i = 3; i >= (int)limbs; i--) {
            r[i] = a->w[i - limbs] << bits;
            if (bits && i - (int)limbs - 1 >= 0)
                r[i] |= a->w[i - limbs - 1] >> (64 - bits);
        }
    }
    memcpy(out->w, r, sizeof r);
}

/* out = a >> n (EVM SHR: 0 for n >= 256) */
static inline void tio_u256_shr(tio_u256 *out, const tio_u256 *a, unsigned n)
{
    uint64_t r[4] = {0};
    if (n < 256) {
        unsigned limbs = n / 64, bits = n % 64;
        for (int i = 0; i + (int)limbs < 4; i++) {
            r[i] = a->w[i + limbs] >> bits;
            if (bits && i + (int)limbs + 1 < 4)
                r[i] |= a->w[i + limbs + 1] << (64 - bits);
        }
    }
    memcpy(out->w, r, sizeof r);
}

/* the nearest long double at or below a (for screening and starting points only:
   never for a result that must be exact) */
static inline long double tio_u256_to_ld(const tio_u256 *a)
{
    return (((long double)a->w[3] * 18446744073709551616.0L + (long double)a->w[2])
             * 18446744073709551616.0L + (long double)a->w[1]) * 18446744073709551616.0L
           + (long double)a->w[0];
}

/* floor(x) for 0 <= x < 2**256 as a tio_u256; x below 0 (or NaN) gives 0 and
   x at or above 2**256 gives 2**256 - 1 */
static inline void tio_u256_from_ld(tio_u256 *out, long double x)
{
    const long double limb = 18446744073709551616.0L;
    tio_u256_from_u64(out, 0);
    if (!(x >= 1.0L))
        return;
    if (x >= limb * limb * limb * limb) {
        out->w[0] = out->w[1] = out->w[2] = out->w[3] = UINT64_MAX;
        return;
    }
    for (int i = 3; i >= 0; i--) {
        long double scale = 1.0L;
        for (int k = 0; k < i; k++)
            scale *= limb;
        long double digit = x / scale;        /* the cast below truncates: floor for x >= 0 */
        if (digit >= limb)
            digit = limb - 1.0L;
        out->w[i] = (uint64_t)digit;
        x -= (long double)out->w[i] * scale;
        if (x < 0)
            x = 0;
    }
}

#endif /* TIO_U256_H */

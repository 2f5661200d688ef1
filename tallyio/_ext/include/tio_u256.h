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

#endif /* TIO_U256_H */

/*
 * tio_keccak.h -- Keccak-256 as Ethereum uses it (the original Keccak padding
 * 0x01, not SHA3-256's 0x06): function selectors, transaction hashes, storage
 * slots.  Owned by tallyio/eth; also meant for the node source, which checks
 * that a transaction's hash matches its fields.  Written from the Keccak
 * reference specification (FIPS 202 section 3, with the pre-standard padding).
 *
 * Everything is static inline, allocation-free, reentrant and safe to call
 * without the GIL.  The state is read and written lane by lane with explicit
 * little-endian byte order, so it is correct on any host byte order.
 */
#ifndef TIO_KECCAK_H
#define TIO_KECCAK_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define TIO_KECCAK256_RATE 136   /* bytes absorbed per permutation: 1600 - 2*256 bits */

static const uint64_t tio_keccak_round_constants[24] = {
    0x0000000000000001ULL, 0x0000000000008082ULL, 0x800000000000808aULL, 0x8000000080008000ULL,
    0x000000000000808bULL, 0x0000000080000001ULL, 0x8000000080008081ULL, 0x8000000000008009ULL,
    0x000000000000008aULL, 0x0000000000000088ULL, 0x0000000080008009ULL, 0x000000008000000aULL,
    0x000000008000808bULL, 0x800000000000008bULL, 0x8000000000008089ULL, 0x8000000000008003ULL,
    0x8000000000008002ULL, 0x8000000000000080ULL, 0x000000000000800aULL, 0x800000008000000aULL,
    0x8000000080008081ULL, 0x8000000000008080ULL, 0x0000000080000001ULL, 0x8000000080008008ULL,
};

/* rho rotation of lane x + 5*y */
static const uint8_t tio_keccak_rotations[25] = {
     0,  1, 62, 28, 27,
    36, 44,  6, 55, 20,
     3, 10, 43, 25, 39,
    41, 45, 15, 21,  8,
    18,  2, 61, 56, 14,
};

static inline uint64_t tio_keccak_rotl(uint64_t v, unsigned n)
{
    return n ? (v << n) | (v >> (64 - n)) : v;
}

/* Keccak-f[1600] on 25 lanes, lane (x, y) at index x + 5*y */
static inline void tio_keccak_f1600(uint64_t a[25])
{
    uint64_t c[5], d[5], b[25];
    for (int round = 0; round < 24; round++) {
        /* theta: each column's parity folds into its two neighbours */
        for (int x = 0; x < 5; x++)
            c[x] = a[x] ^ a[x + 5] ^ a[x + 10] ^ a[x + 15] ^ a[x + 20];
        for (int x = 0; x < 5; x++)
            d[x] = c[(x + 4) % 5] ^ tio_keccak_rotl(c[(x + 1) % 5], 1);
        for (int i = 0; i < 25; i++)
            a[i] ^= d[i % 5];
        /* rho and pi: rotate each lane, move (x, y) to (y, 2x + 3y) */
        for (int x = 0; x < 5; x++)
            for (int y = 0; y < 5; y++)
                b[y + 5 * ((2 * x + 3 * y) % 5)] = tio_keccak_rotl(a[x + 5 * y], tio_keccak_rotations[x + 5 * y]);
        /* chi: the only non-linear step, along each row */
        for (int y = 0; y < 5; y++)
            for (int x = 0; x < 5; x++)
                a[x + 5 * y] = b[x + 5 * y] ^ (~b[(x + 1) % 5 + 5 * y] & b[(x + 2) % 5 + 5 * y]);
        /* iota */
        a[0] ^= tio_keccak_round_constants[round];
    }
}

static inline void tio_keccak_absorb_block(uint64_t a[25], const uint8_t *block)
{
    for (int i = 0; i < TIO_KECCAK256_RATE / 8; i++) {
        uint64_t lane = 0;
        for (int k = 7; k >= 0; k--)
            lane = (lane << 8) | block[8 * i + k];
        a[i] ^= lane;
    }
    tio_keccak_f1600(a);
}

/* out[32] = keccak256(data[0..n)); data may be NULL when n == 0 */
static inline void tio_keccak256(const uint8_t *data, size_t n, uint8_t out[32])
{
    uint64_t a[25];
    uint8_t last[TIO_KECCAK256_RATE];
    memset(a, 0, sizeof a);
    while (n >= TIO_KECCAK256_RATE) {
        tio_keccak_absorb_block(a, data);
        data += TIO_KECCAK256_RATE;
        n -= TIO_KECCAK256_RATE;
    }
    /* the final block: the rest, the 0x01 domain byte, zeros, and 0x80 on the last byte
       (both land on one byte when the rest is rate - 1 long) */
    memset(last, 0, sizeof last);
    if (n)
        memcpy(last, data, n);
    last[n] ^= 0x01;
    last[TIO_KECCAK256_RATE - 1] ^= 0x80;
    tio_keccak_absorb_block(a, last);
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 8; k++)
            out[8 * i + k] = (uint8_t)(a[i] >> (8 * k));
}

#endif /* TIO_KECCAK_H */

/*
 * A standalone driver for the decoder's C core under AddressSanitizer and UBSan
 * (compiled and run by tests/test_eth_asan.py). Every input lives in a heap block of
 * exactly its size, so a read one byte past the end is reported. It decodes each seed
 * file given on the command line, then `rounds` mutations of random seeds (truncations,
 * bit flips, words overwritten with offset-like values, duplicated tails), with the trace
 * on and off, and checks the invariants the callers rely on. Prints one summary line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../tallyio/eth/_decode_core.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static int check(const uint8_t *data, size_t n, tio_decode_stats *stats)
{
    tio_decoded_call out, again;
    tio_decode_trace trace;
    uint8_t *copy = malloc(n ? n : 1);   /* exactly n bytes: ASan sees any over-read */
    if (n)
        memcpy(copy, data, n);
    int st = tio_decode_run(copy, n, &out, stats, &trace);
    int st2 = tio_decode_run(copy, n, &again, stats, NULL);
    free(copy);
    if (st != st2 || st < 0 || st >= TIO_DECODE_N_STATUS) {
        fprintf(stderr, "status differs with and without the trace: %d %d\n", st, st2);
        exit(2);
    }
    if (st != TIO_DECODE_OK && out.n_swaps != 0) {
        fprintf(stderr, "a rejected input kept swaps\n");
        exit(2);
    }
    if (out.n_swaps > TIO_SWAP_MAX_PER_CALL || (st == TIO_DECODE_OK && trace.n_calls == 0)
        || trace.n_calls > TIO_DECODE_MAX_CALLS) {
        fprintf(stderr, "bounds broken: swaps %u calls %u\n", out.n_swaps, trace.n_calls);
        exit(2);
    }
    for (uint32_t i = 0; i < out.n_swaps; i++)
        if (out.swaps[i].path_len < 2 || out.swaps[i].path_len > TIO_SWAP_MAX_PATH) {
            fprintf(stderr, "path length %u\n", out.swaps[i].path_len);
            exit(2);
        }
    return st;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s ROUNDS SEED_FILE...\n", argv[0]);
        return 2;
    }
    if (tio_decode_selfcheck() != 0) {
        fprintf(stderr, "selector table inconsistent\n");
        return 2;
    }
    long rounds = atol(argv[1]);
    int n_seeds = argc - 2;
    uint8_t **seeds = calloc((size_t)n_seeds, sizeof *seeds);
    size_t *sizes = calloc((size_t)n_seeds, sizeof *sizes);
    tio_decode_stats stats;
    memset(&stats, 0, sizeof stats);
    for (int i = 0; i < n_seeds; i++) {
        FILE *f = fopen(argv[i + 2], "rb");
        if (!f)
            return 2;
        seeds[i] = malloc(1 << 16);
        sizes[i] = fread(seeds[i], 1, 1 << 16, f);
        fclose(f);
        check(seeds[i], sizes[i], &stats);
    }
    uint8_t *buf = malloc(1 << 17);
    for (long r = 0; r < rounds; r++) {
        int s = (int)(rng() % (uint64_t)n_seeds);
        size_t n = sizes[s];
        memcpy(buf, seeds[s], n);
        int edits = 1 + (int)(rng() % 4);
        for (int e = 0; e < edits; e++) {
            switch (rng() % 5) {
            case 0:   /* truncate */
                if (n)
                    n = (size_t)(rng() % n);
                break;
            case 1:   /* flip a bit */
                if (n)
                    buf[rng() % n] ^= (uint8_t)(1u << (rng() % 8));
                break;
            case 2:   /* a word becomes an offset-like or huge value */
                if (n >= 36) {
                    size_t w = 4 + 32 * (size_t)(rng() % ((n - 4) / 32));
                    static const uint64_t values[] = {0, 1, 31, 32, 64, 0x7fffffff, 0xffffffffu,
                                                      0xffffffffffffffffULL, 0x100, 0xa0, 0x20};
                    uint64_t v = values[rng() % (sizeof values / sizeof values[0])];
                    memset(buf + w, (rng() % 8) == 0 ? 0xff : 0, 24);
                    for (int k = 0; k < 8; k++)
                        buf[w + 24 + k] = (uint8_t)(v >> (56 - 8 * k));
                }
                break;
            case 3:   /* a random byte anywhere */
                if (n)
                    buf[rng() % n] = (uint8_t)rng();
                break;
            default:  /* duplicate a tail (grows nested-looking structure) */
                if (n && n < (1 << 16)) {
                    size_t from = (size_t)(rng() % n);
                    memcpy(buf + n, buf + from, n - from);
                    n += n - from;
                }
                break;
            }
        }
        check(buf, n, &stats);
    }
    uint64_t total = 0;
    for (int i = 0; i < TIO_DECODE_N_STATUS; i++)
        total += stats.by_status[i];
    printf("inputs %llu", (unsigned long long)total);
    for (int i = 0; i < TIO_DECODE_N_STATUS; i++)
        printf(" %d:%llu", i, (unsigned long long)stats.by_status[i]);
    printf("\n");
    free(buf);
    for (int i = 0; i < n_seeds; i++)
        free(seeds[i]);
    free(seeds);
    free(sizes);
    return total == 2 * ((uint64_t)n_seeds + (uint64_t)rounds) ? 0 : 3;
}

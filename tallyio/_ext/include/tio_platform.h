/*
 * tio_platform.h -- cache geometry, branch hints, CPU pause, aligned memory,
 * a monotonic clock and the back-off used by blocking waits.  No atomics here
 * (those live only in tio_atomic.h).
 */
#ifndef TIO_PLATFORM_H
#define TIO_PLATFORM_H

#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sched.h>

/* 128 bytes, not 64: x86-64 prefetches cache lines in adjacent pairs, so two
 * hot indices 64 bytes apart still ping-pong (crossbeam's CachePadded, Intel
 * optimisation manual 3.7.3).  Also the line size on Apple M-series. */
#define TIO_CACHE_LINE 128

#if defined(__GNUC__) || defined(__clang__)
#  define TIO_LIKELY(x)   __builtin_expect(!!(x), 1)
#  define TIO_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#  define TIO_LIKELY(x)   (x)
#  define TIO_UNLIKELY(x) (x)
#endif

/* A hint to the core that we are spinning (PAUSE on x86, YIELD on ARM). */
static inline void tio_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#else
    /* nothing: a plain busy loop */
#endif
}

/* Zeroed memory aligned to `alignment` (a power of two, >= sizeof(void*)).
 * Returns NULL on failure.  Free with tio_aligned_free. */
static inline void *tio_aligned_calloc(size_t alignment, size_t size) {
    void *p = NULL;
    if (size == 0) size = alignment;
    /* round the size up so the allocation ends on an alignment boundary too */
    size = (size + alignment - 1) & ~(alignment - 1);
    if (posix_memalign(&p, alignment, size) != 0) return NULL;
    memset(p, 0, size);   /* zeroing also first-touches the pages on this thread's node */
    return p;
}
static inline void tio_aligned_free(void *p) { free(p); }

static inline uint64_t tio_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* A cheap timestamp for latency histograms: the TSC on x86-64 (about 10 ns
 * here against 26 ns for clock_gettime, and invariant on every CPU with
 * constant_tsc/nonstop_tsc), nanoseconds elsewhere.  Its rate is calibrated
 * against tio_now_ns by whoever converts ticks to time (the scheduler). */
#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
static inline uint64_t tio_ticks(void) { return __rdtsc(); }
#else
static inline uint64_t tio_ticks(void) { return tio_now_ns(); }
#endif

static inline int tio_is_pow2(uint64_t x) { return x != 0 && (x & (x - 1)) == 0; }

/* Smallest power of two >= x, or 0 if that does not fit in 64 bits. */
static inline uint64_t tio_next_pow2(uint64_t x) {
    if (x <= 1) return 1;
    if (x > (1ull << 63)) return 0;
    return 1ull << (64 - __builtin_clzll(x - 1));
}

/* A full 64-bit avalanche (splitmix64's finalizer): every input bit reaches every
 * output bit, so a table indexed by its low bits spreads keys that differ only in
 * their high bits (sequential big-endian hashes, structured addresses) as well as
 * random ones.  A bijection: distinct inputs give distinct outputs. */
static inline uint64_t tio_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/*
 * Back-off for a waiter that has nothing to do: spin with PAUSE (cheap, keeps
 * latency at tens of nanoseconds), then yield the core, then sleep in growing
 * steps capped at TIO_BACKOFF_MAX_SLEEP_NS so an idle waiter costs almost no
 * CPU yet notices new work within ~0.1 ms.
 */
#define TIO_BACKOFF_SPIN_LIMIT   6     /* 2^0 .. 2^6 pauses */
#define TIO_BACKOFF_YIELD_LIMIT  10
#define TIO_BACKOFF_MAX_SLEEP_NS 100000

typedef struct { uint32_t step; } tio_backoff;

static inline void tio_backoff_reset(tio_backoff *b) { b->step = 0; }

static inline void tio_backoff_snooze(tio_backoff *b) {
    if (b->step <= TIO_BACKOFF_SPIN_LIMIT) {
        for (uint32_t i = 0; i < (1u << b->step); i++) tio_cpu_relax();
    } else if (b->step <= TIO_BACKOFF_YIELD_LIMIT) {
        sched_yield();
    } else {
        uint64_t ns = 1000ull << (b->step - TIO_BACKOFF_YIELD_LIMIT);
        if (ns > TIO_BACKOFF_MAX_SLEEP_NS) ns = TIO_BACKOFF_MAX_SLEEP_NS;
        struct timespec ts = { 0, (long)ns };
        nanosleep(&ts, NULL);
    }
    if (b->step < 64) b->step++;
}

/*
 * TIO_DEBUG_ASSERT(cond): checks an invariant the protocols in
 * tallyio/_ext/README.md state (idle counts never underflow, a record is in
 * one queue, band hints cover non-empty rings).  On when TIO_DEBUG is defined
 * (setup.py defines it in the TALLYIO_SANITIZE builds): a failure prints the
 * condition and aborts, so a sanitizer run stops at the first broken
 * invariant.  Off otherwise: cond is not evaluated (sizeof only names it, so
 * variables used only in assertions do not become unused).  A check that
 * calls functions goes under `if TIO_DEBUG_ENABLED:` (Cython evaluates a
 * call's argument before the macro sees it; the compiler drops the branch).
 */
#ifdef TIO_DEBUG
#include <stdio.h>
#include <stdlib.h>
static inline void tio_debug_assert_failed(const char *cond, const char *file, int line) {
    fprintf(stderr, "tallyio: invariant broken: %s (%s:%d)\n", cond, file, line);
    abort();
}
#define TIO_DEBUG_ASSERT(cond) ((cond) ? (void)0 : tio_debug_assert_failed(#cond, __FILE__, __LINE__))
#define TIO_DEBUG_ENABLED 1
#else
#define TIO_DEBUG_ASSERT(cond) ((void)sizeof(cond))
#define TIO_DEBUG_ENABLED 0
#endif

#endif /* TIO_PLATFORM_H */

/*
 * tio_atomic.h -- the ONLY place in tallyio where atomics are spelled.
 *
 * Every operation is a static inline function whose name carries its memory
 * ordering, so a reader of a call site never has to guess:
 *
 *     tio_atomic_load_u64_acquire(&q->tail)    // pairs with a *_release store
 *
 * Atomic cells are wrapped in one-member structs so that a plain load or store
 * on them does not compile: every access goes through a named function.
 *
 * ThreadSanitizer does not model atomic_thread_fence.  Protocols that need a
 * store->load fence (Chase-Lev take/steal) use the *_fenced_relaxed accessors
 * next to tio_fence_seqcst().  In a normal build those are relaxed and the
 * fence is a real seq_cst fence.  In a TIO_TSAN build the fence disappears and
 * the accessors become seq_cst, which is at least as strong: the seq_cst total
 * order forbids the same store->load reordering the fence forbids, and TSan
 * understands it.
 */
#ifndef TIO_ATOMIC_H
#define TIO_ATOMIC_H

#include <stdatomic.h>
#include <stdint.h>

#if !defined(__STDC_VERSION__) || __STDC_VERSION__ < 201112L || defined(__STDC_NO_ATOMICS__)
#error "tallyio needs a C11 compiler with <stdatomic.h>"
#endif

typedef struct { _Atomic uint64_t v; } tio_atomic_u64;
typedef struct { _Atomic uint32_t v; } tio_atomic_u32;
typedef struct { _Atomic uint8_t  v; } tio_atomic_u8;

#define TIO_MO_RELAXED memory_order_relaxed
#define TIO_MO_ACQUIRE memory_order_acquire
#define TIO_MO_RELEASE memory_order_release
#define TIO_MO_ACQREL  memory_order_acq_rel
#define TIO_MO_SEQCST  memory_order_seq_cst

#if defined(TIO_TSAN)
#  define TIO_MO_FENCED TIO_MO_SEQCST
#else
#  define TIO_MO_FENCED TIO_MO_RELAXED
#endif

/* ---- initialisation (not atomic: only before the cell is shared) ------- */
static inline void tio_atomic_init_u64(tio_atomic_u64 *a, uint64_t v) { atomic_init(&a->v, v); }
static inline void tio_atomic_init_u32(tio_atomic_u32 *a, uint32_t v) { atomic_init(&a->v, v); }
static inline void tio_atomic_init_u8(tio_atomic_u8 *a, uint8_t v)    { atomic_init(&a->v, v); }

/* ---- u64 loads --------------------------------------------------------- */
static inline uint64_t tio_atomic_load_u64_relaxed(const tio_atomic_u64 *a) {
    return atomic_load_explicit((_Atomic uint64_t *)&a->v, TIO_MO_RELAXED);
}
static inline uint64_t tio_atomic_load_u64_acquire(const tio_atomic_u64 *a) {
    return atomic_load_explicit((_Atomic uint64_t *)&a->v, TIO_MO_ACQUIRE);
}
static inline uint64_t tio_atomic_load_u64_seqcst(const tio_atomic_u64 *a) {
    return atomic_load_explicit((_Atomic uint64_t *)&a->v, TIO_MO_SEQCST);
}
/* Relaxed, adjacent to tio_fence_seqcst(); seq_cst under TIO_TSAN. */
static inline uint64_t tio_atomic_load_u64_fenced_relaxed(const tio_atomic_u64 *a) {
    return atomic_load_explicit((_Atomic uint64_t *)&a->v, TIO_MO_FENCED);
}

/* ---- u64 stores -------------------------------------------------------- */
static inline void tio_atomic_store_u64_relaxed(tio_atomic_u64 *a, uint64_t v) {
    atomic_store_explicit(&a->v, v, TIO_MO_RELAXED);
}
static inline void tio_atomic_store_u64_release(tio_atomic_u64 *a, uint64_t v) {
    atomic_store_explicit(&a->v, v, TIO_MO_RELEASE);
}
static inline void tio_atomic_store_u64_seqcst(tio_atomic_u64 *a, uint64_t v) {
    atomic_store_explicit(&a->v, v, TIO_MO_SEQCST);
}
/* Relaxed, adjacent to tio_fence_seqcst(); seq_cst under TIO_TSAN. */
static inline void tio_atomic_store_u64_fenced_relaxed(tio_atomic_u64 *a, uint64_t v) {
    atomic_store_explicit(&a->v, v, TIO_MO_FENCED);
}

/* ---- u64 read-modify-write -------------------------------------------- */
/* Strong CAS.  On failure *expected receives the current value. Returns 1 on success. */
static inline int tio_atomic_cas_u64_seqcst(tio_atomic_u64 *a, uint64_t *expected, uint64_t desired) {
    return atomic_compare_exchange_strong_explicit(&a->v, expected, desired, TIO_MO_SEQCST, TIO_MO_RELAXED);
}
static inline int tio_atomic_cas_u64_acqrel(tio_atomic_u64 *a, uint64_t *expected, uint64_t desired) {
    return atomic_compare_exchange_strong_explicit(&a->v, expected, desired, TIO_MO_ACQREL, TIO_MO_ACQUIRE);
}
static inline int tio_atomic_cas_u64_acquire(tio_atomic_u64 *a, uint64_t *expected, uint64_t desired) {
    return atomic_compare_exchange_strong_explicit(&a->v, expected, desired, TIO_MO_ACQUIRE, TIO_MO_ACQUIRE);
}
static inline int tio_atomic_cas_u64_release(tio_atomic_u64 *a, uint64_t *expected, uint64_t desired) {
    return atomic_compare_exchange_strong_explicit(&a->v, expected, desired, TIO_MO_RELEASE, TIO_MO_RELAXED);
}
static inline int tio_atomic_cas_u64_relaxed(tio_atomic_u64 *a, uint64_t *expected, uint64_t desired) {
    return atomic_compare_exchange_strong_explicit(&a->v, expected, desired, TIO_MO_RELAXED, TIO_MO_RELAXED);
}
/* Weak CAS (may fail spuriously): only inside retry loops. */
static inline int tio_atomic_cas_weak_u64_relaxed(tio_atomic_u64 *a, uint64_t *expected, uint64_t desired) {
    return atomic_compare_exchange_weak_explicit(&a->v, expected, desired, TIO_MO_RELAXED, TIO_MO_RELAXED);
}
static inline int tio_atomic_cas_weak_u64_acqrel(tio_atomic_u64 *a, uint64_t *expected, uint64_t desired) {
    return atomic_compare_exchange_weak_explicit(&a->v, expected, desired, TIO_MO_ACQREL, TIO_MO_ACQUIRE);
}
static inline uint64_t tio_atomic_fetch_add_u64_relaxed(tio_atomic_u64 *a, uint64_t v) {
    return atomic_fetch_add_explicit(&a->v, v, TIO_MO_RELAXED);
}
static inline uint64_t tio_atomic_fetch_add_u64_acqrel(tio_atomic_u64 *a, uint64_t v) {
    return atomic_fetch_add_explicit(&a->v, v, TIO_MO_ACQREL);
}
static inline uint64_t tio_atomic_fetch_sub_u64_relaxed(tio_atomic_u64 *a, uint64_t v) {
    return atomic_fetch_sub_explicit(&a->v, v, TIO_MO_RELAXED);
}
static inline uint64_t tio_atomic_exchange_u64_acqrel(tio_atomic_u64 *a, uint64_t v) {
    return atomic_exchange_explicit(&a->v, v, TIO_MO_ACQREL);
}
static inline uint64_t tio_atomic_fetch_add_u64_seqcst(tio_atomic_u64 *a, uint64_t v) {
    return atomic_fetch_add_explicit(&a->v, v, TIO_MO_SEQCST);
}
static inline uint64_t tio_atomic_fetch_or_u64_seqcst(tio_atomic_u64 *a, uint64_t v) {
    return atomic_fetch_or_explicit(&a->v, v, TIO_MO_SEQCST);
}

/* ---- u32 --------------------------------------------------------------- */
static inline uint32_t tio_atomic_load_u32_relaxed(const tio_atomic_u32 *a) {
    return atomic_load_explicit((_Atomic uint32_t *)&a->v, TIO_MO_RELAXED);
}
static inline uint32_t tio_atomic_load_u32_acquire(const tio_atomic_u32 *a) {
    return atomic_load_explicit((_Atomic uint32_t *)&a->v, TIO_MO_ACQUIRE);
}
static inline void tio_atomic_store_u32_relaxed(tio_atomic_u32 *a, uint32_t v) {
    atomic_store_explicit(&a->v, v, TIO_MO_RELAXED);
}
static inline void tio_atomic_store_u32_release(tio_atomic_u32 *a, uint32_t v) {
    atomic_store_explicit(&a->v, v, TIO_MO_RELEASE);
}
static inline uint32_t tio_atomic_fetch_add_u32_acqrel(tio_atomic_u32 *a, uint32_t v) {
    return atomic_fetch_add_explicit(&a->v, v, TIO_MO_ACQREL);
}
static inline int tio_atomic_cas_u32_acqrel(tio_atomic_u32 *a, uint32_t *expected, uint32_t desired) {
    return atomic_compare_exchange_strong_explicit(&a->v, expected, desired, TIO_MO_ACQREL, TIO_MO_ACQUIRE);
}
static inline uint32_t tio_atomic_load_u32_fenced_relaxed(const tio_atomic_u32 *a) {
    return atomic_load_explicit((_Atomic uint32_t *)&a->v, TIO_MO_FENCED);
}
static inline void tio_atomic_store_u32_seqcst(tio_atomic_u32 *a, uint32_t v) {
    atomic_store_explicit(&a->v, v, TIO_MO_SEQCST);
}
static inline int tio_atomic_cas_u32_seqcst(tio_atomic_u32 *a, uint32_t *expected, uint32_t desired) {
    return atomic_compare_exchange_strong_explicit(&a->v, expected, desired, TIO_MO_SEQCST, TIO_MO_SEQCST);
}
static inline uint32_t tio_atomic_fetch_or_u32_seqcst(tio_atomic_u32 *a, uint32_t v) {
    return atomic_fetch_or_explicit(&a->v, v, TIO_MO_SEQCST);
}
static inline uint32_t tio_atomic_fetch_and_u32_seqcst(tio_atomic_u32 *a, uint32_t v) {
    return atomic_fetch_and_explicit(&a->v, v, TIO_MO_SEQCST);
}

/* ---- u8 ---------------------------------------------------------------- */
static inline uint8_t tio_atomic_load_u8_relaxed(const tio_atomic_u8 *a) {
    return atomic_load_explicit((_Atomic uint8_t *)&a->v, TIO_MO_RELAXED);
}
static inline void tio_atomic_store_u8_relaxed(tio_atomic_u8 *a, uint8_t v) {
    atomic_store_explicit(&a->v, v, TIO_MO_RELAXED);
}
static inline uint8_t tio_atomic_exchange_u8_acqrel(tio_atomic_u8 *a, uint8_t v) {
    return atomic_exchange_explicit(&a->v, v, TIO_MO_ACQREL);
}

/* ---- fences ------------------------------------------------------------ */
/* Full fence.  In a TIO_TSAN build the *_fenced_relaxed accessors around it
 * carry seq_cst (see the header comment) and the C11 fence, which TSan cannot
 * model (gcc warns -Wtsan), becomes a bare hardware fence: TSan ignores it, but
 * protocols whose other side is not a *_fenced_relaxed accessor (the
 * scheduler's sleep protocol: a queue push, then a load of the idle word)
 * still get the store->load ordering on the real machine, so a sanitizer run
 * cannot lose a wake-up and hang. */
static inline void tio_fence_seqcst(void) {
#if !defined(TIO_TSAN)
    atomic_thread_fence(TIO_MO_SEQCST);
#elif defined(__x86_64__) || defined(__i386__)
    __asm__ __volatile__("mfence" ::: "memory");
#elif defined(__aarch64__)
    __asm__ __volatile__("dmb ish" ::: "memory");
#else
    __sync_synchronize();
#endif
}

/* ---- waiting on a u32 (futex) --------------------------------------------
 * Like C++20 atomic<uint32_t>::wait/notify: tio_atomic_wait_u32 sleeps while
 * *a == expected (returns at once if it differs; may return spuriously, so
 * callers loop), for at most timeout_ns (0 = no limit).  Linux futex with the
 * PRIVATE flag; elsewhere a short sleep stands in (correct, just slower). */
#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <time.h>
static inline void tio_atomic_wait_u32(tio_atomic_u32 *a, uint32_t expected, uint64_t timeout_ns) {
    struct timespec ts, *tsp = NULL;
    if (timeout_ns) {
        ts.tv_sec = (time_t)(timeout_ns / 1000000000ull);
        ts.tv_nsec = (long)(timeout_ns % 1000000000ull);
        tsp = &ts;
    }
    syscall(SYS_futex, (uint32_t *)&a->v, FUTEX_WAIT_PRIVATE, expected, tsp, NULL, 0);
}
static inline void tio_atomic_wake_u32(tio_atomic_u32 *a, int n) {
    syscall(SYS_futex, (uint32_t *)&a->v, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}
#else
#include <time.h>
static inline void tio_atomic_wait_u32(tio_atomic_u32 *a, uint32_t expected, uint64_t timeout_ns) {
    struct timespec ts = { 0, 50000 };
    (void)timeout_ns;
    if (atomic_load_explicit(&a->v, TIO_MO_ACQUIRE) == expected) nanosleep(&ts, NULL);
}
static inline void tio_atomic_wake_u32(tio_atomic_u32 *a, int n) { (void)a; (void)n; }
#endif

/* ---- seqlock accessors (tallyio.state) ----------------------------------
 * A seqlock (Boehm, "Can Seqlocks Get Along With Programming Language Memory
 * Models?", MSPC 2012) accesses its data words with relaxed atomics ordered
 * by one release fence in the writer (after the odd sequence store, before
 * the data stores) and one acquire fence in the reader (after the data loads,
 * before re-reading the sequence).  ThreadSanitizer does not model fences, so
 * under TIO_TSAN the fences become compiler barriers and the data accessors
 * themselves carry the ordering: stores release, loads acquire.  That is at
 * least as strong: a reader whose acquire load sees a new data word
 * synchronises with the writer's release store of it, which comes after the
 * odd sequence store, so the reader's re-read of the sequence sees the write
 * in progress (see docs/state.md, "Seqlock"). */
#if defined(TIO_TSAN)
#  define TIO_MO_RELFENCED TIO_MO_RELEASE
#  define TIO_MO_ACQFENCED TIO_MO_ACQUIRE
#else
#  define TIO_MO_RELFENCED TIO_MO_RELAXED
#  define TIO_MO_ACQFENCED TIO_MO_RELAXED
#endif
/* Relaxed data store after tio_fence_release(); release under TIO_TSAN. */
static inline void tio_atomic_store_u64_relfenced_relaxed(tio_atomic_u64 *a, uint64_t v) {
    atomic_store_explicit(&a->v, v, TIO_MO_RELFENCED);
}
/* Relaxed data load before tio_fence_acquire(); acquire under TIO_TSAN. */
static inline uint64_t tio_atomic_load_u64_acqfenced_relaxed(const tio_atomic_u64 *a) {
    return atomic_load_explicit((_Atomic uint64_t *)&a->v, TIO_MO_ACQFENCED);
}
/* Release / acquire fences; compiler barriers only under TIO_TSAN (the
 * *fenced_relaxed accessors above carry the ordering there). */
static inline void tio_fence_release(void) {
#if !defined(TIO_TSAN)
    atomic_thread_fence(TIO_MO_RELEASE);
#else
    __asm__ __volatile__("" ::: "memory");
#endif
}
static inline void tio_fence_acquire(void) {
#if !defined(TIO_TSAN)
    atomic_thread_fence(TIO_MO_ACQUIRE);
#else
    __asm__ __volatile__("" ::: "memory");
#endif
}

#endif /* TIO_ATOMIC_H */

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
/* Full fence.  In a TIO_TSAN build it is empty and the *_fenced_relaxed
 * accessors around it carry seq_cst instead (see the header comment). */
static inline void tio_fence_seqcst(void) {
#if !defined(TIO_TSAN)
    atomic_thread_fence(TIO_MO_SEQCST);
#endif
}

#endif /* TIO_ATOMIC_H */

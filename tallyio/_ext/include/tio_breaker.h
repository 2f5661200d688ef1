/*
 * tio_breaker.h -- the circuit breaker of tallyio.engine: its state machine
 * (CLOSED -> OPEN -> HALF_OPEN -> CLOSED | OPEN), its sliding windows (the
 * last N outcomes, or the outcomes of the last T seconds in buckets), its
 * counters and its transition log.  Owns struct tio_breaker and nothing else;
 * atomics only through tio_atomic.h.  The protocol (states, invariants, which
 * atomic stops which race) is written up in docs/breaker.md.
 *
 * Every function here is lock-free and safe to call from any number of
 * threads at once, without the GIL.  Hot paths return a tio_status:
 *
 *     uint64_t permit;
 *     if (tio_breaker_acquire(b, &permit) == TIO_OK) {
 *         uint64_t t0 = tio_now_ns();
 *         int failed = do_the_call();
 *         tio_breaker_record(b, permit, failed ? TIO_BRK_FAILURE : TIO_BRK_SUCCESS,
 *                            tio_now_ns() - t0);
 *     }
 *
 * A permit names the generation (the number of transitions so far) it was
 * granted in; an outcome recorded with a permit of an older generation is
 * "late": it is counted in the totals, never in a window or a probe.
 */
#ifndef TIO_BREAKER_H
#define TIO_BREAKER_H

#include <stdint.h>
#include <stdlib.h>
#include "tio_atomic.h"
#include "tio_platform.h"
#include "tio_status.h"

enum { TIO_BRK_CLOSED = 0, TIO_BRK_OPEN = 1, TIO_BRK_HALF_OPEN = 2 };
enum { TIO_BRK_SUCCESS = 0, TIO_BRK_FAILURE = 1, TIO_BRK_EXCLUDED = 2 };
enum { TIO_BRK_WINDOW_COUNT = 0, TIO_BRK_WINDOW_TIME = 1 };

/* The state word: everything a half-open admission or a transition must see
 * and change at once, so one CAS does it.
 *   bits  0..1   state (TIO_BRK_CLOSED / OPEN / HALF_OPEN)
 *   bit   2      forced (force_open: OPEN until reset, never half-opens)
 *   bits  3..17  probes admitted in this HALF_OPEN period
 *   bits 18..32  probe successes recorded in this HALF_OPEN period
 *   bits 33..63  generation: +1 on every transition (31 bits, wraps) */
#define TIO_BRK_STATE_MASK   3ull
#define TIO_BRK_FORCED       (1ull << 2)
#define TIO_BRK_ADMIT_SHIFT  3
#define TIO_BRK_OK_SHIFT     18
#define TIO_BRK_FIELD_MASK   0x7fffull
#define TIO_BRK_GEN_SHIFT    33
#define TIO_BRK_GEN_MASK     0x7fffffffull
#define TIO_BRK_MAX_PROBES   32767u
#define TIO_BRK_MAX_WINDOW   (1u << 24)       /* outcomes in a count window */
#define TIO_BRK_MAX_BUCKETS  1024u            /* buckets of a time window */
#define TIO_BRK_LOG          1024u            /* transitions remembered for listeners */
#define TIO_BRK_READ_CLOCK   (~0ull)          /* now_ns: "read tio_now_ns() if needed" */

/* A time-window bucket: which (generation, time index) it counts, and its
 * counts packed so a failure and its call are added by one fetch_add.
 * stamp == TIO_BRK_BUCKET_BUSY while one thread recycles the bucket. */
typedef struct {
    tio_atomic_u64 stamp;    /* (generation << 32) | (time index & 0xffffffff) */
    tio_atomic_u64 counts;   /* (calls << 32) | failures */
} tio_brk_bucket;
#define TIO_BRK_BUCKET_BUSY  (~0ull)

typedef struct tio_breaker {
    /* -- read by every acquire: the state word and the open deadline -- */
    _Alignas(TIO_CACHE_LINE) tio_atomic_u64 state;
    tio_atomic_u64 open_until_ns;      /* only ever raised (see tio_brk_raise_deadline) */
    /* -- configuration: written by tio_breaker_init, read-only after -- */
    uint32_t window_kind;
    uint32_t probes;                   /* half-open probe budget, 1..TIO_BRK_MAX_PROBES */
    uint64_t window_size;              /* count window: outcomes kept */
    uint64_t bucket_ns;                /* time window: width of a bucket */
    uint64_t nbuckets;                 /* time window: buckets (window = nbuckets * bucket_ns) */
    uint64_t minimum_calls;
    uint64_t slow_call_ns;             /* 0: no call is slow */
    uint64_t open_ns;
    double threshold;                  /* failure rate that opens, 0 < threshold <= 1 */
    tio_atomic_u64 *slots;             /* count window ring: (generation << 2) | 1 success, 2 failure */
    tio_brk_bucket *buckets;           /* time window ring */
    /* -- the count window's cursor and failure total (written by every record) -- */
    _Alignas(TIO_CACHE_LINE) tio_atomic_u64 cw_seq;   /* (generation << 32) | outcomes recorded (1..2N) */
    tio_atomic_u64 cw_fail;                           /* (generation << 32) | (uint32) failures */
    tio_atomic_u64 tw_last_failure_ns;                /* time window: when a failure was last added (+1) */
    /* -- totals (relaxed counters, for stats) -- */
    _Alignas(TIO_CACHE_LINE) tio_atomic_u64 n_success;
    tio_atomic_u64 n_failure;          /* includes slow successes */
    tio_atomic_u64 n_slow;
    tio_atomic_u64 n_excluded;
    tio_atomic_u64 n_rejected;
    tio_atomic_u64 n_transitions;
    tio_atomic_u64 n_late;             /* outcomes whose generation had passed */
    /* -- transition log: entry for generation g at [g % TIO_BRK_LOG] -- */
    _Alignas(TIO_CACHE_LINE) tio_atomic_u64 log[TIO_BRK_LOG];
} tio_breaker;

/* ---- the state word ---------------------------------------------------- */
static inline uint32_t tio_brk_state_of(uint64_t sw) { return (uint32_t)(sw & TIO_BRK_STATE_MASK); }
static inline uint64_t tio_brk_gen_of(uint64_t sw) { return sw >> TIO_BRK_GEN_SHIFT; }
static inline uint64_t tio_brk_admitted_of(uint64_t sw) { return (sw >> TIO_BRK_ADMIT_SHIFT) & TIO_BRK_FIELD_MASK; }
static inline uint64_t tio_brk_ok_of(uint64_t sw) { return (sw >> TIO_BRK_OK_SHIFT) & TIO_BRK_FIELD_MASK; }
static inline uint64_t tio_brk_word(uint64_t gen, uint32_t state, uint64_t forced, uint64_t admitted, uint64_t ok) {
    return ((gen & TIO_BRK_GEN_MASK) << TIO_BRK_GEN_SHIFT) | (ok << TIO_BRK_OK_SHIFT)
         | (admitted << TIO_BRK_ADMIT_SHIFT) | forced | state;
}
/* A permit is never 0 (0 means "refused" / "no permit"). */
static inline uint64_t tio_brk_permit_of(uint64_t gen) { return (gen << 1) | 1u; }
static inline uint64_t tio_brk_permit_gen(uint64_t permit) { return permit >> 1; }
/* 1 when generation a comes before b (31-bit serial-number order). */
static inline int tio_brk_gen_before(uint64_t a, uint64_t b) {
    uint64_t d = (b - a) & TIO_BRK_GEN_MASK;
    return d != 0 && d < (TIO_BRK_GEN_MASK >> 1);
}

/* ---- set-up ------------------------------------------------------------ */
/* b must be zeroed memory aligned to TIO_CACHE_LINE (tio_aligned_calloc).
 * window_kind COUNT uses window_size; TIME uses window_ns cut into nbuckets.
 * Returns TIO_OK, TIO_INVALID (an argument out of range) or TIO_NOMEM. */
static inline int tio_breaker_init(tio_breaker *b, uint32_t window_kind, uint64_t window_size,
                                   uint64_t window_ns, uint64_t nbuckets, uint64_t minimum_calls,
                                   double threshold, uint64_t slow_call_ns, uint64_t open_ns,
                                   uint32_t probes) {
    if (!(threshold > 0.0 && threshold <= 1.0) || minimum_calls == 0 || open_ns == 0
        || probes == 0 || probes > TIO_BRK_MAX_PROBES)
        return TIO_INVALID;
    if (window_kind == TIO_BRK_WINDOW_COUNT) {
        if (window_size == 0 || window_size > TIO_BRK_MAX_WINDOW || minimum_calls > window_size)
            return TIO_INVALID;
        b->slots = (tio_atomic_u64 *)tio_aligned_calloc(TIO_CACHE_LINE, window_size * sizeof(tio_atomic_u64));
        if (!b->slots) return TIO_NOMEM;
        for (uint64_t i = 0; i < window_size; i++) tio_atomic_init_u64(&b->slots[i], 0);
    } else if (window_kind == TIO_BRK_WINDOW_TIME) {
        if (nbuckets == 0 || nbuckets > TIO_BRK_MAX_BUCKETS || window_ns / nbuckets == 0)
            return TIO_INVALID;
        b->buckets = (tio_brk_bucket *)tio_aligned_calloc(TIO_CACHE_LINE, nbuckets * sizeof(tio_brk_bucket));
        if (!b->buckets) return TIO_NOMEM;
        /* generation 0, time index 0 could look current to a fresh breaker at
         * time index 0: start every bucket as "never written" instead */
        for (uint64_t i = 0; i < nbuckets; i++) {
            tio_atomic_init_u64(&b->buckets[i].stamp, TIO_BRK_BUCKET_BUSY - 1);
            tio_atomic_init_u64(&b->buckets[i].counts, 0);
        }
        b->bucket_ns = window_ns / nbuckets;
        b->nbuckets = nbuckets;
    } else {
        return TIO_INVALID;
    }
    b->window_kind = window_kind;
    b->window_size = window_size;
    b->minimum_calls = minimum_calls;
    b->threshold = threshold;
    b->slow_call_ns = slow_call_ns;
    b->open_ns = open_ns;
    b->probes = probes;
    tio_atomic_init_u64(&b->state, tio_brk_word(0, TIO_BRK_CLOSED, 0, 0, 0));
    tio_atomic_init_u64(&b->open_until_ns, 0);
    tio_atomic_init_u64(&b->cw_seq, 0);
    tio_atomic_init_u64(&b->cw_fail, 0);
    tio_atomic_init_u64(&b->tw_last_failure_ns, 0);
    for (uint32_t i = 0; i < TIO_BRK_LOG; i++) tio_atomic_init_u64(&b->log[i], 0);
    return TIO_OK;
}

static inline void tio_breaker_destroy(tio_breaker *b) {
    tio_aligned_free(b->slots);
    tio_aligned_free(b->buckets);
    b->slots = NULL;
    b->buckets = NULL;
}

/* ---- transitions ------------------------------------------------------- */
/* The log entry of a transition to generation `gen`: nonzero, tagged with gen
 * so a reader can tell it from the entry TIO_BRK_LOG generations older. */
static inline uint64_t tio_brk_log_entry(uint64_t gen, uint32_t from, uint32_t to) {
    return (gen << 8) | 0x80u | ((uint64_t)from << 4) | to;
}

/* CAS the state word from *seen to (gen+1, to, forced, admitted, 0).  The one
 * caller whose CAS succeeds made the transition: it counts and logs it.  On
 * failure *seen holds the current word.  Returns 1 for the winner. */
static inline int tio_brk_transition(tio_breaker *b, uint64_t *seen, uint32_t to,
                                     uint64_t forced, uint64_t admitted) {
    uint32_t from = tio_brk_state_of(*seen);
    uint64_t gen = (tio_brk_gen_of(*seen) + 1) & TIO_BRK_GEN_MASK;
    uint64_t desired = tio_brk_word(gen, to, forced, admitted, 0);
    if (!tio_atomic_cas_u64_acqrel(&b->state, seen, desired)) return 0;
    if (from != to) tio_atomic_fetch_add_u64_relaxed(&b->n_transitions, 1);
    tio_atomic_store_u64_release(&b->log[gen % TIO_BRK_LOG], tio_brk_log_entry(gen, from, to));
    *seen = desired;
    return 1;
}

/* The open deadline only ever rises: a thread that computed its deadline
 * long ago (and then lost the race to open) cannot pull it back, so a reader
 * that saw OPEN (acquire) reads a deadline at least the opener's. */
static inline void tio_brk_raise_deadline(tio_breaker *b, uint64_t deadline) {
    uint64_t cur = tio_atomic_load_u64_relaxed(&b->open_until_ns);
    while (cur < deadline && !tio_atomic_cas_weak_u64_relaxed(&b->open_until_ns, &cur, deadline)) {
    }
}

/* Open from *seen (CLOSED or HALF_OPEN of one generation): raise the deadline,
 * then one CAS; the deadline store is published by the CAS's release. */
static inline uint64_t tio_brk_now(uint64_t now_ns) {
    return now_ns == TIO_BRK_READ_CLOCK ? tio_now_ns() : now_ns;
}

static inline int tio_brk_open(tio_breaker *b, uint64_t *seen, uint64_t now_ns) {
    tio_brk_raise_deadline(b, tio_brk_now(now_ns) + b->open_ns);
    return tio_brk_transition(b, seen, TIO_BRK_OPEN, 0, 0);
}

/* ---- the count window -------------------------------------------------- */
/* Record one outcome of generation `gen` into the last-N ring and return the
 * window's calls and failures after it (*calls = 0: the window has moved on to
 * a newer generation and the outcome was not counted).  A window belongs to
 * one CLOSED generation: the first outcome of a newer generation resets it by
 * installing that generation in cw_seq and cw_fail (slots of older
 * generations then read as empty), so a reset needs no separate pass. */
static inline void tio_brk_count_add(tio_breaker *b, uint64_t gen, int failed,
                                     uint64_t *calls, int64_t *failures) {
    const uint64_t n = b->window_size;
    uint64_t seq = tio_atomic_load_u64_acquire(&b->cw_seq), next, count;
    *calls = 0;
    *failures = 0;
    for (;;) {
        uint64_t seq_gen = seq >> 32;
        if (seq_gen == gen) {
            count = (seq & 0xffffffffull) + 1;
            if (count > 2 * n) count = n + 1;   /* keep count in 1..2N; (count-1) % N stays continuous */
        } else if (tio_brk_gen_before(seq_gen, gen) || seq == 0) {
            count = 1;
        } else {
            return;                              /* a newer generation owns the window: late */
        }
        next = (gen << 32) | count;
        if (tio_atomic_cas_u64_acqrel(&b->cw_seq, &seq, next)) break;
    }
    uint64_t mine = (gen << 2) | (failed ? 2u : 1u);
    uint64_t old = tio_atomic_exchange_u64_acqrel(&b->slots[(count - 1) % n], mine);
    int64_t evicted = (old >> 2) == gen && (old & 3u) == 2u;
    int64_t delta = (int64_t)(failed != 0) - evicted;
    uint64_t f = tio_atomic_load_u64_acquire(&b->cw_fail), nf;
    for (;;) {
        uint64_t f_gen = f >> 32;
        if (f_gen == gen) {
            if (delta == 0) { nf = f; break; }
            nf = (gen << 32) | (uint32_t)((uint32_t)f + (uint32_t)delta);
        } else if (tio_brk_gen_before(f_gen, gen) || f == 0) {
            nf = (gen << 32) | (uint32_t)delta;
        } else {
            return;
        }
        if (tio_atomic_cas_u64_acqrel(&b->cw_fail, &f, nf)) break;
    }
    *calls = count < n ? count : n;
    *failures = (int32_t)(uint32_t)nf;          /* may dip below 0 for an instant: see docs */
}

/* The count window as it stands for generation `gen` (for stats). */
static inline void tio_brk_count_read(tio_breaker *b, uint64_t gen, uint64_t *calls, int64_t *failures) {
    uint64_t seq = tio_atomic_load_u64_acquire(&b->cw_seq);
    uint64_t f = tio_atomic_load_u64_acquire(&b->cw_fail);
    uint64_t count = (seq >> 32) == gen && seq != 0 ? (seq & 0xffffffffull) : 0;
    *calls = count < b->window_size ? count : b->window_size;
    *failures = (f >> 32) == gen && f != 0 ? (int32_t)(uint32_t)f : 0;
}

/* ---- the time window --------------------------------------------------- */
static inline uint64_t tio_brk_stamp(uint64_t gen, uint64_t tidx) { return (gen << 32) | (tidx & 0xffffffffull); }

/* Sum the buckets of generation `gen` whose time index lies in the window
 * ending at now_ns.  A bucket is read stamp, counts, stamp: a recycle in
 * between changes the stamp (recyclers zero counts before publishing the new
 * stamp), so a bucket's old counts are never summed under its new stamp. */
static inline void tio_brk_time_read(tio_breaker *b, uint64_t gen, uint64_t now_ns,
                                     uint64_t *calls, int64_t *failures) {
    uint64_t now_idx = now_ns / b->bucket_ns, c = 0, f = 0;
    uint64_t ring = now_idx % b->nbuckets;      /* walk the ring backwards: no division per bucket */
    for (uint64_t k = 0; k < b->nbuckets && k <= now_idx; k++) {
        uint64_t tidx = now_idx - k;
        tio_brk_bucket *bk = &b->buckets[ring];
        ring = ring ? ring - 1 : b->nbuckets - 1;
        uint64_t want = tio_brk_stamp(gen, tidx);
        if (tio_atomic_load_u64_acquire(&bk->stamp) != want) continue;
        uint64_t counts = tio_atomic_load_u64_seqcst(&bk->counts);   /* see tio_brk_time_add */
        if (tio_atomic_load_u64_acquire(&bk->stamp) != want) continue;
        c += counts >> 32;
        f += counts & 0xffffffffull;
    }
    *calls = c;
    *failures = (int64_t)f;
}

/* Add one outcome of generation `gen` at now_ns.  Returns 0 when it was not
 * counted (a newer generation or time already owns the bucket, or a recycle
 * stayed in progress for the whole bounded wait). */
static inline int tio_brk_time_add(tio_breaker *b, uint64_t gen, uint64_t now_ns, int failed) {
    uint64_t tidx = now_ns / b->bucket_ns;
    tio_brk_bucket *bk = &b->buckets[tidx % b->nbuckets];
    uint64_t want = tio_brk_stamp(gen, tidx);
    uint64_t s = tio_atomic_load_u64_acquire(&bk->stamp);
    uint32_t spins = 0;
    while (s != want) {
        if (s == TIO_BRK_BUCKET_BUSY) {
            if (++spins > 1024) return 0;
            tio_cpu_relax();
            s = tio_atomic_load_u64_acquire(&bk->stamp);
            continue;
        }
        uint64_t s_gen = s >> 32;
        int older = s == TIO_BRK_BUCKET_BUSY - 1 || tio_brk_gen_before(s_gen, gen)
                    || (s_gen == gen && (s & 0xffffffffull) < (want & 0xffffffffull));
        if (!older) return 0;
        /* recycle: claim (BUSY), zero the counts, publish the new stamp */
        if (tio_atomic_cas_u64_acqrel(&bk->stamp, &s, TIO_BRK_BUCKET_BUSY)) {
            tio_atomic_store_u64_release(&bk->counts, 0);
            tio_atomic_store_u64_release(&bk->stamp, want);
            s = want;
        }
    }
    /* seq_cst: with the failure-time store/load in tio_breaker_record_at, either a
     * success sees a racing failure's time, or that failure's read sees the success */
    tio_atomic_fetch_add_u64_seqcst(&bk->counts, (1ull << 32) | (failed ? 1u : 0u));
    return 1;
}

/* ---- acquire ----------------------------------------------------------- */
/* May a call go ahead at now_ns (or TIO_BRK_READ_CLOCK)?  TIO_OK with *permit set, or TIO_FULL
 * (refused, counted; *permit = 0).  CLOSED admits without a write; OPEN past
 * its deadline becomes HALF_OPEN and the thread that moves it takes the first
 * probe in the same CAS; HALF_OPEN admits while probes admitted < budget, each
 * admission a CAS on the state word, so exactly `probes` are admitted per
 * half-open period however many threads race. */
static inline int tio_breaker_acquire_at(tio_breaker *b, uint64_t now_ns, uint64_t *permit) {
    uint64_t sw = tio_atomic_load_u64_acquire(&b->state);
    for (;;) {
        uint32_t st = tio_brk_state_of(sw);
        if (TIO_LIKELY(st == TIO_BRK_CLOSED)) {
            *permit = tio_brk_permit_of(tio_brk_gen_of(sw));
            return TIO_OK;
        }
        if (st == TIO_BRK_OPEN) {
            if (sw & TIO_BRK_FORCED) break;
            now_ns = tio_brk_now(now_ns);
            if (now_ns < tio_atomic_load_u64_acquire(&b->open_until_ns)) break;
            if (tio_brk_transition(b, &sw, TIO_BRK_HALF_OPEN, 0, 1)) {
                *permit = tio_brk_permit_of(tio_brk_gen_of(sw));
                return TIO_OK;
            }
            continue;
        }
        if (tio_brk_admitted_of(sw) >= b->probes) break;
        if (tio_atomic_cas_u64_acqrel(&b->state, &sw, sw + (1ull << TIO_BRK_ADMIT_SHIFT))) {
            *permit = tio_brk_permit_of(tio_brk_gen_of(sw));
            return TIO_OK;
        }
    }
    tio_atomic_fetch_add_u64_relaxed(&b->n_rejected, 1);
    *permit = 0;
    return TIO_FULL;
}

/* The same, reading the monotonic clock only when the breaker is not closed. */
static inline int tio_breaker_acquire(tio_breaker *b, uint64_t *permit) {
    uint64_t sw = tio_atomic_load_u64_acquire(&b->state);
    if (TIO_LIKELY(tio_brk_state_of(sw) == TIO_BRK_CLOSED)) {
        *permit = tio_brk_permit_of(tio_brk_gen_of(sw));
        return TIO_OK;
    }
    return tio_breaker_acquire_at(b, TIO_BRK_READ_CLOCK, permit);
}

/* ---- record ------------------------------------------------------------ */
/* The outcome of an admitted call.  permit: what acquire gave, or 0 for "the
 * current generation" (then a half-open outcome counts only while a probe is
 * outstanding).  outcome: TIO_BRK_SUCCESS / FAILURE / EXCLUDED; a success or
 * failure slower than slow_call_ns counts as a slow failure.  now_ns: the
 * clock (or TIO_BRK_READ_CLOCK), needed by a time window and by an opening.  Returns TIO_OK,
 * or TIO_INVALID for an unknown outcome. */
static inline int tio_breaker_record_at(tio_breaker *b, uint64_t permit, int outcome,
                                        uint64_t duration_ns, uint64_t now_ns) {
    if (TIO_UNLIKELY((unsigned)outcome > TIO_BRK_EXCLUDED)) return TIO_INVALID;
    if (outcome == TIO_BRK_EXCLUDED) {
        tio_atomic_fetch_add_u64_relaxed(&b->n_excluded, 1);
    } else {
        if (b->slow_call_ns != 0 && duration_ns > b->slow_call_ns) {
            tio_atomic_fetch_add_u64_relaxed(&b->n_slow, 1);
            outcome = TIO_BRK_FAILURE;
        }
        tio_atomic_fetch_add_u64_relaxed(outcome == TIO_BRK_SUCCESS ? &b->n_success : &b->n_failure, 1);
    }
    uint64_t sw = tio_atomic_load_u64_acquire(&b->state);
    uint64_t gen = permit ? tio_brk_permit_gen(permit) : tio_brk_gen_of(sw);
    for (;;) {
        if (tio_brk_gen_of(sw) != gen) goto late;
        uint32_t st = tio_brk_state_of(sw);
        if (TIO_LIKELY(st == TIO_BRK_CLOSED)) {
            if (outcome == TIO_BRK_EXCLUDED) return TIO_OK;
            uint64_t calls;
            int64_t failures;
            int failed = outcome == TIO_BRK_FAILURE;
            if (b->window_kind == TIO_BRK_WINDOW_COUNT) {
                tio_brk_count_add(b, gen, failed, &calls, &failures);
            } else {
                now_ns = tio_brk_now(now_ns);
                /* a failure notes its time before it is added (seq_cst, as is the
                 * success's load after its add); a success with no failure added in
                 * the last window cannot make the rate reach a threshold > 0, so it
                 * skips summing the buckets: the closed, healthy breaker's cost */
                if (failed) tio_atomic_store_u64_seqcst(&b->tw_last_failure_ns, now_ns + 1);
                if (!tio_brk_time_add(b, gen, now_ns, failed)) goto late;
                if (!failed) {
                    uint64_t lf = tio_atomic_load_u64_seqcst(&b->tw_last_failure_ns);
                    if (lf == 0 || (lf <= now_ns + 1 && now_ns + 1 - lf > b->bucket_ns * (b->nbuckets + 1)))
                        return TIO_OK;
                }
                tio_brk_time_read(b, gen, now_ns, &calls, &failures);
            }
            if (calls >= b->minimum_calls && failures > 0
                && (double)failures >= b->threshold * (double)calls) {
                /* the CLOSED word only changes by a transition, so one CAS
                 * decides: if it fails, someone else already moved it on */
                tio_brk_open(b, &sw, now_ns);
            }
            return TIO_OK;
        }
        if (st == TIO_BRK_OPEN) goto late;
        /* HALF_OPEN: only an outstanding probe's outcome counts */
        uint64_t admitted = tio_brk_admitted_of(sw), ok = tio_brk_ok_of(sw);
        if (ok >= admitted) goto late;
        if (outcome == TIO_BRK_EXCLUDED) {
            /* counts as neither: give the probe back so the period can finish */
            if (tio_atomic_cas_u64_acqrel(&b->state, &sw, sw - (1ull << TIO_BRK_ADMIT_SHIFT))) return TIO_OK;
        } else if (outcome == TIO_BRK_FAILURE) {
            if (tio_brk_open(b, &sw, now_ns)) return TIO_OK;
        } else if (ok + 1 >= b->probes) {
            if (tio_brk_transition(b, &sw, TIO_BRK_CLOSED, 0, 0)) return TIO_OK;
        } else {
            if (tio_atomic_cas_u64_acqrel(&b->state, &sw, sw + (1ull << TIO_BRK_OK_SHIFT))) return TIO_OK;
        }
        /* lost a CAS: sw holds the current word; a new generation makes us late */
    }
late:
    tio_atomic_fetch_add_u64_relaxed(&b->n_late, 1);
    return TIO_OK;
}

/* The same, reading the monotonic clock only when it is needed (a time
 * window, or an outcome that opens the breaker and sets its deadline). */
static inline int tio_breaker_record(tio_breaker *b, uint64_t permit, int outcome, uint64_t duration_ns) {
    return tio_breaker_record_at(b, permit, outcome, duration_ns, TIO_BRK_READ_CLOCK);
}

/* ---- operator controls ------------------------------------------------- */
/* CLOSED with fresh windows (a new generation), whatever the state was. */
static inline void tio_breaker_reset(tio_breaker *b) {
    uint64_t sw = tio_atomic_load_u64_acquire(&b->state);
    while (!tio_brk_transition(b, &sw, TIO_BRK_CLOSED, 0, 0)) {
    }
}

/* OPEN until tio_breaker_reset (never half-opens by itself). */
static inline void tio_breaker_force_open(tio_breaker *b) {
    uint64_t sw = tio_atomic_load_u64_acquire(&b->state);
    while (!((sw & TIO_BRK_FORCED) && tio_brk_state_of(sw) == TIO_BRK_OPEN)) {
        if (tio_brk_transition(b, &sw, TIO_BRK_OPEN, TIO_BRK_FORCED, 0)) return;
    }
}

static inline uint32_t tio_breaker_state(const tio_breaker *b) {
    return tio_brk_state_of(tio_atomic_load_u64_acquire(&b->state));
}

/* ---- reading (stats, listeners) -------------------------------------- */
static inline uint64_t tio_breaker_word(const tio_breaker *b) {
    return tio_atomic_load_u64_acquire(&b->state);
}

enum { TIO_BRK_N_SUCCESS, TIO_BRK_N_FAILURE, TIO_BRK_N_SLOW, TIO_BRK_N_EXCLUDED,
       TIO_BRK_N_REJECTED, TIO_BRK_N_TRANSITIONS, TIO_BRK_N_LATE, TIO_BRK_N_COUNTERS };

/* The totals, each read relaxed (a snapshot of counters, not of one instant). */
static inline void tio_breaker_counters(const tio_breaker *b, uint64_t out[TIO_BRK_N_COUNTERS]) {
    out[TIO_BRK_N_SUCCESS] = tio_atomic_load_u64_relaxed(&b->n_success);
    out[TIO_BRK_N_FAILURE] = tio_atomic_load_u64_relaxed(&b->n_failure);
    out[TIO_BRK_N_SLOW] = tio_atomic_load_u64_relaxed(&b->n_slow);
    out[TIO_BRK_N_EXCLUDED] = tio_atomic_load_u64_relaxed(&b->n_excluded);
    out[TIO_BRK_N_REJECTED] = tio_atomic_load_u64_relaxed(&b->n_rejected);
    out[TIO_BRK_N_TRANSITIONS] = tio_atomic_load_u64_relaxed(&b->n_transitions);
    out[TIO_BRK_N_LATE] = tio_atomic_load_u64_relaxed(&b->n_late);
}

/* The current CLOSED window's calls and failures (0, 0 when not closed). */
static inline void tio_breaker_window(tio_breaker *b, uint64_t now_ns, uint64_t *calls, int64_t *failures) {
    uint64_t sw = tio_atomic_load_u64_acquire(&b->state);
    *calls = 0;
    *failures = 0;
    if (tio_brk_state_of(sw) != TIO_BRK_CLOSED) return;
    if (b->window_kind == TIO_BRK_WINDOW_COUNT)
        tio_brk_count_read(b, tio_brk_gen_of(sw), calls, failures);
    else
        tio_brk_time_read(b, tio_brk_gen_of(sw), tio_brk_now(now_ns), calls, failures);
    if (*failures < 0) *failures = 0;
}

/* The transition into generation `gen`: 1 with *from and *to set; 0 while its
 * winner has not logged it yet (it is between its CAS and its store: retry);
 * -1 when the log has moved TIO_BRK_LOG generations past it (lost). */
static inline int tio_breaker_log_read(const tio_breaker *b, uint64_t gen, uint32_t *from, uint32_t *to) {
    uint64_t e = tio_atomic_load_u64_acquire(&b->log[gen % TIO_BRK_LOG]);
    if (e == 0) return 0;
    uint64_t egen = e >> 8;
    if (egen != gen) return tio_brk_gen_before(egen, gen) ? 0 : -1;
    *from = (uint32_t)((e >> 4) & 3u);
    *to = (uint32_t)(e & 3u);
    return 1;
}

#endif /* TIO_BREAKER_H */

# Taking work: a worker's own queues (inbox bands by priority, its deque, the
# stash of stolen items) and stealing from other workers (README: "Stealing").
# Touches the owner's queues (pop side), other workers' deques and inboxes
# (steal side only) and the dequeue/steal counters.


# ---- taking work -----------------------------------------------------------------------

cdef inline tio_task *take_band(tio_worker *w, uint32_t band, uint64_t now) noexcept nogil:
    """Pop from own inbox band; on EMPTY clear its hint bit and look once more
    (the fence pairs with the one between a pusher's push and publish_hint)."""
    cdef uint64_t item
    cdef uint32_t bit = 1u << band
    if tio_mpmc_pop(w.inbox[band], &item) == TIO_OK:
        w.band_age_tick[band] = now
        return <tio_task *><uintptr_t>item
    tio_atomic_fetch_and_u32_seqcst(&w.band_hint, ~bit)
    tio_fence_seqcst()
    if tio_mpmc_pop(w.inbox[band], &item) == TIO_OK:
        # more may follow: keep looking at this band
        tio_atomic_fetch_or_u32_seqcst(&w.band_hint, bit)
        w.band_age_tick[band] = now
        return <tio_task *><uintptr_t>item
    w.band_age_tick[band] = now
    return NULL


cdef bint hints_cover_rings(tio_sched *s) noexcept nogil:
    """The band-hint invariant at rest (README: "Queues of a worker"): with no
    pusher between its push and its publish_hint and no owner inside
    take_band, every non-empty inbox band has its hint bit set.  For
    TIO_DEBUG_ASSERT once the workers have exited and the gate is quiet."""
    cdef uint32_t i, hint
    cdef int b
    cdef tio_worker *w
    for i in range(s.nworkers):
        w = s.workers[i]
        if w == NULL:
            continue
        hint = tio_atomic_load_u32_acquire(&w.band_hint)
        for b in range(TIO_BANDS):
            if w.inbox[b] != NULL and tio_mpmc_size(w.inbox[b]) > 0 and not (hint >> b) & 1:
                return False
    return True


cdef inline tio_task *take_deque(tio_worker *w, uint64_t now) noexcept nogil:
    cdef uint64_t item
    if tio_deque_pop(w.local, &item) == TIO_OK:
        w.band_age_tick[TIO_BANDS] = now
        return <tio_task *><uintptr_t>item
    w.band_age_tick[TIO_BANDS] = now
    return NULL


cdef inline tio_task *take_stash(tio_worker *w) noexcept nogil:
    cdef tio_task *t = w.stash[w.stash_head]
    w.stash_head += 1
    w.stash_count -= 1
    if w.stash_count == 0:
        w.stash_head = 0
    return t


cdef tio_task *take_own(tio_worker *w, uint64_t now) noexcept nogil:
    """Next record from this worker's own sources, or NULL.

    Order: the carried item; stolen items (stash) unless a higher band waits;
    inbox bands 7..1; the deque (spawned band-0 work); inbox band 0.  Aging: a
    lower source that has waited longer than aging_ticks goes first."""
    cdef tio_task *t
    cdef uint32_t hint, band
    cdef int top, b
    cdef bint deque_busy
    cdef tio_sched *s = w.sched
    if w.carry != NULL:
        t = w.carry
        w.carry = NULL
        return t
    # relaxed: a hint; the pop that follows synchronizes with the pusher
    hint = tio_atomic_load_u32_relaxed(&w.band_hint)
    top = -1 if hint == 0 else 63 - __builtin_clzll(<unsigned long long>hint)
    if w.stash_count > 0 and <int>w.stash_band >= top:
        return take_stash(w)
    deque_busy = tio_deque_len(w.local) > 0
    # aging: with two or more sources waiting, serve the lowest one that has
    # waited too long (band 0, then the deque, then bands 1..)
    if (hint & (hint - 1)) != 0 or (deque_busy and hint > 1):
        if (hint & 1) and now - w.band_age_tick[0] > s.aging_ticks:
            t = take_band(w, 0, now)
            if t != NULL:
                return t
        if deque_busy and top > 0 and now - w.band_age_tick[TIO_BANDS] > s.aging_ticks:
            t = take_deque(w, now)
            if t != NULL:
                return t
        for b in range(1, TIO_BANDS):
            if b < top and (hint >> b) & 1 and now - w.band_age_tick[b] > s.aging_ticks:
                t = take_band(w, <uint32_t>b, now)
                if t != NULL:
                    return t
    while hint > 1:
        band = 63 - __builtin_clzll(<unsigned long long>hint)
        t = take_band(w, band, now)
        if t != NULL:
            return t
        hint &= ~(1u << band)
    if deque_busy:
        t = take_deque(w, now)
        if t != NULL:
            return t
    if hint & 1:
        t = take_band(w, 0, now)
        if t != NULL:
            return t
    if w.stash_count > 0:
        return take_stash(w)
    return NULL


cdef tio_task *take_own_unhinted(tio_worker *w, uint64_t now) noexcept nogil:
    """Like take_own but looks at every band whatever the hints say: the
    re-check before parking must see any item a pusher published before its
    fence, even if that pusher has not set the hint bit yet."""
    cdef tio_task *t = take_own(w, now)
    cdef uint64_t item
    cdef int band
    if t != NULL:
        return t
    for band in range(TIO_BANDS - 1, -1, -1):
        if tio_mpmc_pop(w.inbox[band], &item) == TIO_OK:
            tio_atomic_fetch_or_u32_seqcst(&w.band_hint, 1u << band)
            return <tio_task *><uintptr_t>item
    return NULL


cdef tio_task *steal_from(tio_worker *w, tio_worker *v) noexcept nogil:
    """Take work from victim v: a batch from its deque into ours, else a batch
    from its highest non-empty inbox band into our stash.  Returns one record
    to run now, or NULL."""
    cdef tio_sched *s = w.sched
    cdef uint64_t item, n, k, got, i, room, moved_us = 0
    cdef tio_task *t
    cdef int band, st
    cdef uint64_t limit = s.steal_batch
    counter_add(&w.stats.steal_attempts, 1)
    # 1. its deque (spawned work), oldest first, one CAS per item
    n = tio_deque_len(v.local)
    # room in our deque (only we push into it, so it cannot shrink meanwhile);
    # the first item stolen is run at once, not pushed
    room = s.capacity - tio_deque_len(w.local) + 1
    if n > 0 and room > 1:
        k = (n + 1) // 2
        if k > limit:
            k = limit
        if k > room:
            k = room
        got = 0
        t = NULL
        while got < k:
            st = tio_deque_steal(v.local, &item)
            if st == TIO_RETRY:
                continue
            if st != TIO_OK:
                break
            got += 1
            moved_us += (<tio_task *><uintptr_t>item).est_us
            if t == NULL:
                t = <tio_task *><uintptr_t>item
            else:
                tio_deque_push(w.local, item)     # cannot fail: k <= room
        if got > 0:
            account_steal(w, v, got, moved_us)
            return t
    # 2. its inbox, highest band first, into our private stash
    if w.stash_count > 0:
        return NULL     # one stolen batch at a time
    for band in range(TIO_BANDS - 1, -1, -1):
        n = tio_mpmc_size(v.inbox[band])
        if n == 0:
            continue
        k = (n + 1) // 2
        if k > limit:
            k = limit
        got = tio_mpmc_pop_many(v.inbox[band], <uint64_t *>w.stash, k)
        if got == 0:
            continue
        for i in range(got):
            moved_us += w.stash[i].est_us
        w.stash_head = 0
        w.stash_count = <uint32_t>got
        w.stash_band = <uint32_t>band
        account_steal(w, v, got, moved_us)
        return take_stash(w)
    return NULL


cdef inline void account_steal(tio_worker *w, tio_worker *v, uint64_t n, uint64_t us) noexcept nogil:
    # relaxed RMWs: load estimates (see push_inbox)
    tio_atomic_fetch_add_u64_relaxed(&w.enq_tasks, n)
    tio_atomic_fetch_add_u64_relaxed(&w.enq_us, us)
    tio_atomic_fetch_add_u64_relaxed(&v.out_tasks, n)
    tio_atomic_fetch_add_u64_relaxed(&v.out_us, us)
    counter_add(&w.stats.stolen, n)


cdef tio_task *steal_work(tio_worker *w) noexcept nogil:
    """Victims in w.victims order: groups by distance (same node first), a
    random starting point inside each group."""
    cdef tio_sched *s = w.sched
    cdef uint32_t g, first, end, count, k, start
    cdef tio_task *t
    if not s.stealing:
        return NULL
    first = 0
    for g in range(w.nvictim_groups):
        end = w.victim_group_end[g]
        count = end - first
        if count > 0:
            start = <uint32_t>(rng_next(&w.rng) % count)
            for k in range(count):
                t = steal_from(w, s.workers[w.victims[first + (start + k) % count]])
                if t != NULL:
                    return t
        first = end
    return NULL


cdef inline tio_task *find_work(tio_worker *w, uint64_t now) noexcept nogil:
    cdef tio_task *t = take_own(w, now)
    if t == NULL:
        t = steal_work(w)
    return t

# Rebalancing (README: "Rebalancing"): every REBALANCE_EVERY tasks the most
# loaded worker hands half the imbalance to the least loaded one.  Touches its
# own inbox (pop side), the receiver's inbox (push side) and the migration
# counters.


# ---- rebalancing ---------------------------------------------------------------

cdef void maybe_rebalance(tio_worker *w) noexcept nogil:
    """Every REBALANCE_EVERY tasks: if this worker is the most loaded and the
    imbalance (max - min) / max passes the threshold, hand half the difference
    (from its lowest non-empty band) to the least loaded worker.  Works with
    stealing off, too: it is the only way work moves then."""
    cdef tio_sched *s = w.sched
    cdef uint64_t mine, least = 0, load, item, moved = 0, moved_us = 0, goal
    cdef uint32_t i, least_i, est_us
    cdef int band
    cdef bint no_room = False
    cdef tio_worker *dst
    cdef tio_task *t
    w.since_rebalance = 0
    # w.carry must be free: it takes the one task that may fit nowhere else below
    if s.nworkers < 2 or w.carry != NULL or tio_atomic_load_u32_relaxed(&s.mode) != TIO_MODE_RUNNING:
        return
    mine = worker_queued_us(w)
    if mine == 0:
        return
    least_i = s.nworkers
    for i in range(s.nworkers):
        if s.workers[i] == w:
            continue
        load = worker_queued_us(s.workers[i])
        if load > mine:
            return                                   # the busiest one rebalances
        if least_i == s.nworkers or load < least:
            least = load
            least_i = i
    if <double>(mine - least) <= s.threshold * <double>mine:
        return
    dst = s.workers[least_i]
    goal = (mine - least) // 2
    for band in range(TIO_BANDS):
        while moved_us < goal:
            if tio_mpmc_pop(w.inbox[band], &item) != TIO_OK:
                break
            t = <tio_task *><uintptr_t>item
            # read before the push: once in dst's inbox, t may run, be freed
            # and be reused for another task at any moment
            est_us = t.est_us
            if push_inbox(dst, t) != TIO_OK:
                # no room there: keep it, back in our own band (still counted in
                # our load, so no push_inbox), which has room for what we just
                # took unless a pusher filled it: then in w.carry (free, above)
                if tio_mpmc_push(w.inbox[band], item) != TIO_OK:
                    w.carry = t
                no_room = True
                break
            moved += 1
            moved_us += est_us
        if no_room or moved_us >= goal:
            break
    if moved:
        tio_atomic_fetch_add_u64_relaxed(&w.out_tasks, moved)
        tio_atomic_fetch_add_u64_relaxed(&w.out_us, moved_us)
        counter_add(&w.stats.migrated, moved)
        tio_fence_seqcst()
        for band in range(TIO_BANDS):
            if tio_mpmc_size(dst.inbox[band]) > 0:
                publish_hint(dst, band)
        if tio_atomic_load_u32_fenced_relaxed(&dst.sleep_state) == TIO_SLEEPING:
            wake_worker(s, dst)

# The sleep protocol (README: "Parking and waking"): a worker that finds no
# work searches (counted in the idle word, sched_idle.pxd), spins for a while,
# then parks on a futex; pushers wake one sleeper unless someone searches.
# Owns the idle word's transitions, sleep_state and the wake-ups; touches the
# queues only to look (sizes) or, in park()'s re-check, through sched_take.pxi.


cdef struct search_state:
    # rayon-core's IdleState: a worker holds one while it looks for work, and
    # `searching` says it is counted in the idle word's searching half
    # ("having one is evidence that the thread is idle")
    bint searching
    uint64_t started          # tick the search began, or the worker woke
    uint64_t spin_window      # ticks to spin before parking (0: park at once)


cdef inline void start_looking(tio_worker *w, search_state *look, uint64_t now) noexcept nogil:
    """Nothing found anywhere: become a searcher (once per search)."""
    cdef tio_sched *s = w.sched
    cdef uint64_t prev
    if look.searching:
        return
    look.searching = True
    look.started = now
    # seq_cst: a submitter reading the idle word after its fence sees us
    # searching and skips the wake-up syscall
    prev = idle_begin_search(&s.idle)
    publish_deq(w)
    # max_spinners others search already: park now and leave the core to the
    # threads that submit (a spinning worker on every core starves them: ms
    # tails for a woken submitter on 2 vCPUs)
    look.spin_window = s.spin_ticks if idle_searching(prev) < s.max_spinners else 0


cdef inline void work_found(tio_worker *w, search_state *look) noexcept nogil:
    """A task in hand: stop searching, if we were (leave_searching may pass a
    wake-up on)."""
    if look.searching:
        look.searching = False
        leave_searching(w)


cdef void no_work_found(tio_worker *w, search_state *look, uint64_t now) noexcept nogil:
    """Still nothing (start_looking came first): spin within the window, then
    park until woken."""
    cdef tio_sched *s = w.sched
    if now - look.started < look.spin_window:
        # spin: PAUSE for the first half of the window, then yield the core
        if now - look.started < look.spin_window // 2:
            for _ in range(32):
                tio_cpu_relax()
        else:
            sched_yield()
        return
    look.searching = park(w)
    look.started = tio_ticks()
    # woken as a searcher (counted in idle): spin only if at most max_spinners
    # searchers, us included.  relaxed: a stale count only changes how long we
    # spin, never whether a wake-up is lost
    look.spin_window = s.spin_ticks if idle_searching(tio_atomic_load_u64_relaxed(&s.idle)) <= s.max_spinners else 0


cdef inline void stop_looking(tio_worker *w, search_state *look) noexcept nogil:
    """The worker exits: leave the searching count (nobody to wake: the
    scheduler is stopping)."""
    if look.searching:
        look.searching = False
        idle_end_search(&w.sched.idle)


cdef bint wake_worker(tio_sched *s, tio_worker *w) noexcept nogil:
    """Move w from SLEEPING to NOTIFIED (as a searcher) and wake its thread.
    False if w was not sleeping."""
    cdef uint32_t expected = TIO_SLEEPING
    # seq_cst CAS: exactly one of (this waker, another waker, w cancelling its
    # own sleep) moves w out of SLEEPING, and so adjusts the idle word once
    if not tio_atomic_cas_u32_seqcst(&w.sleep_state, &expected, TIO_NOTIFIED):
        return False
    # seq_cst: one sleeper fewer, one searcher more, in one step, so a
    # submitter never sees the woken worker as neither
    idle_to_searching(&s.idle)
    tio_atomic_wake_u32(&w.sleep_state, 1)
    # relaxed RMW: a statistic; wake-ups are rare (that is the point)
    tio_atomic_fetch_add_u64_relaxed(&s.wakeups, 1)
    return True


cdef void notify_one(tio_sched *s, tio_worker *prefer) noexcept nogil:
    """Called after a push and a seq_cst fence.  Wake one sleeper unless a
    worker is searching (it will find the item) or nobody sleeps: so a submit
    makes no syscall while any worker spins or all are busy."""
    cdef uint64_t idle
    cdef uint32_t k, i, start
    if not s.stealing:
        # Without stealing only the target can run the item: wake it if it
        # sleeps.  fenced_relaxed: ordered after the push by the caller's fence;
        # pairs with the fence in park() after it announced SLEEPING.
        if prefer != NULL and tio_atomic_load_u32_fenced_relaxed(&prefer.sleep_state) == TIO_SLEEPING:
            wake_worker(s, prefer)
        return
    # fenced_relaxed: after the caller's fence (pairs with park()'s fence)
    idle = tio_atomic_load_u64_fenced_relaxed(&s.idle)
    if not idle_wake_needed(idle):
        return
    if prefer != NULL and wake_worker(s, prefer):
        return
    start = prefer.index if prefer != NULL else 0
    for k in range(s.nworkers):
        i = (start + k) % s.nworkers
        if wake_worker(s, s.workers[i]):
            return


cdef void notify_all(tio_sched *s) noexcept nogil:
    cdef uint32_t i
    for i in range(s.nworkers):
        if s.workers[i] != NULL:
            wake_worker(s, s.workers[i])


cdef inline void leave_searching(tio_worker *w) noexcept nogil:
    """Searching -> running.  The last searcher to find work wakes another
    worker if there is visibly more work, so a burst is not left to one worker.
    "More work" includes the other workers' queues: a submitter that saw this
    worker searching skipped its wake-up, counting on it to find the item, but
    it may have found another one (its own) while the item waits in the inbox
    of a sleeping worker."""
    cdef tio_sched *s = w.sched
    cdef uint64_t prev = idle_end_search(&s.idle)
    if idle_searching(prev) == 1:
        pass_on_wake_up(w)


cdef void pass_on_wake_up(tio_worker *w) noexcept nogil:
    """Called by the last searcher when it stops searching with a task in
    hand (leave_searching, or park's re-check finding its own work): wake a
    sleeper if work is queued anywhere, on behalf of the submitters that saw
    it searching and skipped their wake-up."""
    cdef tio_sched *s = w.sched
    cdef uint64_t idle
    # the fence pairs with a submitter's fence between its push and its
    # idle-word load: either it saw no searcher (and woke a worker itself) or
    # the scan below sees its item
    tio_fence_seqcst()
    # fenced_relaxed: after the fence above
    idle = tio_atomic_load_u64_fenced_relaxed(&s.idle)
    if not idle_wake_needed(idle):
        return          # another searcher will look, or nobody sleeps
    if has_more_work(w) or (s.stealing and work_queued_elsewhere(s, w)):
        notify_one(s, NULL)


cdef bint work_queued_elsewhere(tio_sched *s, tio_worker *me) noexcept nogil:
    """Does another worker's inbox or deque hold work?  Looks at the rings,
    not at band_hint: a submitter sets the hint only after its fence."""
    cdef uint32_t i
    cdef int b
    cdef tio_worker *v
    for i in range(s.nworkers):
        v = s.workers[i]
        if v == me:
            continue
        if tio_deque_len(v.local) > 0:
            return True
        for b in range(TIO_BANDS):
            if tio_mpmc_size(v.inbox[b]) > 0:
                return True
    return False


cdef bint has_more_work(tio_worker *w) noexcept nogil:
    """Does w visibly hold more queued work (beyond the task it just took)?
    Looks at the rings, not at band_hint: a bit stays set after its band's
    last item was taken, until the owner finds the band empty."""
    cdef uint32_t hint = tio_atomic_load_u32_relaxed(&w.band_hint)
    cdef int b
    if w.stash_count > 0 or tio_deque_len(w.local) > 0:
        return True
    for b in range(TIO_BANDS):
        if (hint >> b) & 1 and tio_mpmc_size(w.inbox[b]) > 0:
            return True
    return False


cdef bint park(tio_worker *w) noexcept nogil:
    """Called by a searching worker whose spin window passed.  Sleeps until
    woken, unless work shows up during the re-check (left in w.carry) or the
    scheduler is stopping.  Returns True if the worker is now counted as a
    searcher, False if it is running (w.carry holds its next record)."""
    cdef tio_sched *s = w.sched
    cdef uint32_t expected
    cdef uint64_t prev
    cdef tio_task *t
    publish_deq(w)
    # 1. announce.  seq_cst store before the idle RMW: a waker that sees us in
    #    the sleeping count (its idle load is after ours in the seq_cst order)
    #    finds SLEEPING when it CASes our state.
    tio_atomic_store_u32_seqcst(&w.sleep_state, TIO_SLEEPING)
    prev = idle_to_sleeping(&s.idle)
    # 2. the fence pairs with every pusher's fence between its push and its
    #    load of the idle word (or of our sleep_state): either the pusher sees
    #    us sleeping and wakes someone, or our re-check below sees its item.
    tio_fence_seqcst()
    t = take_own_unhinted(w, tio_ticks())
    if t == NULL:
        t = steal_work(w)
    if t != NULL or tio_atomic_load_u32_acquire(&s.mode) != TIO_MODE_RUNNING:
        # 3a. do not sleep.  Cancel our announcement, unless a waker already
        #     did (it moved us to NOTIFIED and counted us as a searcher).
        expected = TIO_SLEEPING
        if tio_atomic_cas_u32_seqcst(&w.sleep_state, &expected, TIO_AWAKE):
            if t != NULL:
                idle_end_sleep(&s.idle)
                w.carry = t
                if idle_searching(prev) == 1:
                    # we were the last searcher and found our own work: a
                    # submitter counting on us may have queued elsewhere
                    pass_on_wake_up(w)
                return False
            idle_to_searching(&s.idle)
            return True
        tio_atomic_store_u32_release(&w.sleep_state, TIO_AWAKE)
        if t != NULL:
            w.carry = t
            leave_searching(w)
            return False
        return True
    # 3b. sleep until a waker moves us to NOTIFIED (the futex returns at once
    #     if the state changed before we got there; spurious returns loop)
    while tio_atomic_load_u32_acquire(&w.sleep_state) == TIO_SLEEPING:
        tio_atomic_wait_u32(&w.sleep_state, TIO_SLEEPING, 0)
    tio_atomic_store_u32_release(&w.sleep_state, TIO_AWAKE)
    return True

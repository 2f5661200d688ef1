# Stopping and back-pressure: waking submitters blocked on full queues
# (README: "Blocking submit"), timeouts, the stopper taking records out of the
# workers' queues, and the "every task settled" test join() waits on.  Touches
# room_seq / room_waiters, the out_* counters and reads the completion counters.


# ---- back-pressure: waking submitters blocked on full queues (README: "Blocking submit")

cdef inline void notify_room(tio_sched *s) noexcept nogil:
    """Called by a worker after it took records out of queues: if a
    submitter waits for a free slot, wake it.  The fence pairs with the one a
    waiting submitter makes between counting itself in room_waiters and
    retrying its push: either its retry sees the slot we freed, or we see it
    counted and bump room_seq (its futex_wait then returns at once).  With
    nobody waiting this is one fence and one load of a line nobody writes."""
    tio_fence_seqcst()
    # fenced_relaxed: ordered after our pops by the fence above
    if TIO_UNLIKELY(tio_atomic_load_u64_fenced_relaxed(&s.room_waiters) != 0):
        tio_atomic_fetch_add_u32_acqrel(&s.room_seq, 1)
        tio_atomic_wake_u32(&s.room_seq, 0x7FFFFFFF)


cdef double timeout_seconds(object timeout) except -1.0:
    """A timeout in seconds >= 0 (ints, floats, numpy numbers); a clear error otherwise."""
    cdef double value
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real):
        raise TypeError(f"timeout must be None or a number of seconds >= 0, got {timeout!r}")
    try:
        value = float(timeout)
    except (TypeError, ValueError):
        raise TypeError(f"timeout must be None or a number of seconds >= 0, got {timeout!r}") from None
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"timeout must be None or a finite number of seconds >= 0, got {timeout!r}")
    return value


cdef inline object _queue_full_error(str message):
    # the one edge (tallyio._ext.status) builds it: TIO_FULL -> QueueFullError
    return exception_for(TIO_FULL, message)


cdef inline tio_task *taken_by_stopper(tio_worker *w, tio_task *t) noexcept nogil:
    """The stopper took t out of w's queues: off w's load (RMW counters, as a
    thief's: w may still be running)."""
    tio_atomic_fetch_add_u64_relaxed(&w.out_tasks, 1)
    tio_atomic_fetch_add_u64_relaxed(&w.out_us, t.est_us)
    return t


cdef int all_tasks_settled(void *ctx) noexcept nogil:
    """wait_while_busy's attempt for SchedulerCore.wait_idle (ctx: the
    tio_sched): TIO_OK once every submitted or spawned task ran or was
    cancelled, TIO_RETRY before."""
    cdef tio_sched *s = <tio_sched *>ctx
    cdef uint64_t sub = 0, done = 0
    cdef uint32_t i
    cdef tio_worker *w
    for i in range(s.nworkers):
        w = s.workers[i]
        # acquire: pairs with the release stores of the completion counters
        # (counter_add_release), so a settled task's effects are visible
        sub += tio_atomic_load_u64_acquire(&w.submitted) + tio_atomic_load_u64_acquire(&w.spawned)
        done += tio_atomic_load_u64_acquire(&w.stats.processed) + tio_atomic_load_u64_acquire(&w.stats.cancelled)
    # acquire: pairs with the stopper's acq_rel count in _cancel_record
    done += tio_atomic_load_u64_acquire(&s.stopper_cancelled)
    return TIO_OK if done >= sub else TIO_RETRY

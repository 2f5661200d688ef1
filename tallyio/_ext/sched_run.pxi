# Running tasks: native tasks without the GIL, Python tasks in GIL batches,
# retries, failure reporting through on_failure / sys.unraisablehook, and the
# completion counters join() and stats() read.  Touches the task record (until
# it is freed), the worker's histograms and counters, and requeues onto the
# worker's own queues only.


# ---- running tasks ------------------------------------------------------------------

cdef inline void account_done(tio_worker *w, tio_task *t) noexcept nogil:
    """The owner took t out of its queues for good (ran, retried or cancelled)."""
    w.deq_tasks_local += 1
    w.deq_us_local += t.est_us
    w.since_publish += 1
    if w.since_publish >= PUBLISH_EVERY:
        publish_deq(w)


cdef inline void release_record(tio_worker *w, tio_task *t) noexcept nogil:
    """t ran (or was cancelled by its task) and is in no queue: back to the
    pool through w's cache.  A record that was in two queues would be freed
    twice; the pool reports that (TIO_DOUBLE_FREE) and TIO_DEBUG_ASSERT stops
    the sanitizer builds there."""
    cdef int st = tio_pool_cache_free(&w.cache, t)
    TIO_DEBUG_ASSERT(st == TIO_OK)


cdef inline void publish_deq(tio_worker *w) noexcept nogil:
    # relaxed: load estimates; batched so submitters reading our load miss
    # the cache line at most once every PUBLISH_EVERY tasks
    if w.since_publish == 0:
        return
    tio_atomic_store_u64_relaxed(&w.deq_tasks, tio_atomic_load_u64_relaxed(&w.deq_tasks) + w.deq_tasks_local)
    tio_atomic_store_u64_relaxed(&w.deq_us, tio_atomic_load_u64_relaxed(&w.deq_us) + w.deq_us_local)
    w.deq_tasks_local = 0
    w.deq_us_local = 0
    w.since_publish = 0
    # slots were freed since the last publish: every 16 native tasks, and
    # whenever the worker starts searching, parks or leaves
    notify_room(w.sched)


cdef inline uint64_t run_native(tio_worker *w, tio_task *t, uint64_t start) noexcept nogil:
    """Run t; ``start`` is the worker loop's tick from just before it looked
    for t.  Returns the end tick, which the loop reuses as its next ``now``:
    one rdtsc per task instead of three."""
    cdef uint64_t end
    tio_hist_record(&w.wait_hist, start - t.submit_tick if start > t.submit_tick else 0)
    w.task_start_tick = start
    t.fn(t.arg)
    end = tio_ticks()
    tio_hist_record(&w.exec_hist, end - start)
    counter_add(&w.stats.busy_ticks, end - start)
    counter_add(&w.stats.succeeded, 1)
    counter_add_release(&w.stats.processed, 1)
    account_done(w, t)
    release_record(w, t)
    return end


cdef int requeue_self(tio_worker *w, tio_task *t) noexcept nogil:
    """Put a RETRY task back on its own worker.  TIO_OK or TIO_FULL."""
    # read before the push: a thief may take t from our inbox, run and free it
    cdef uint32_t band = t.priority >> TIO_BAND_SHIFT
    if push_inbox(w, t) == TIO_OK:
        tio_fence_seqcst()
        publish_hint(w, band)
        return TIO_OK
    if band == 0:
        tio_atomic_fetch_add_u64_relaxed(&w.enq_tasks, 1)
        tio_atomic_fetch_add_u64_relaxed(&w.enq_us, t.est_us)
        if tio_deque_push(w.local, <uint64_t><uintptr_t>t) == TIO_OK:
            return TIO_OK
        tio_atomic_fetch_sub_u64_relaxed(&w.enq_tasks, 1)
        tio_atomic_fetch_sub_u64_relaxed(&w.enq_us, t.est_us)
    return TIO_FULL


cdef void report_unraisable(BaseException exc, const char *message, object obj) noexcept:
    """Hand an exception nobody can catch to sys.unraisablehook, so it is
    never silently dropped and never escapes into a worker or a sweep.
    message reads after "Exception ignored ", e.g. "in tallyio's failure handler"."""
    cdef object tp = type(exc)
    cdef object tb = exc.__traceback__
    # PyErr_Restore steals one reference of each
    Py_INCREF(tp)
    Py_INCREF(exc)
    if tb is not None:
        Py_INCREF(tb)
        PyErr_Restore(<PyObject *>tp, <PyObject *>exc, <PyObject *>tb)
    else:
        PyErr_Restore(<PyObject *>tp, <PyObject *>exc, NULL)
    tio_write_unraisable(message, <PyObject *>obj)


cdef void run_python(SchedulerCore core, tio_worker *w, tio_task *t):
    """Run one Python task with the GIL held and settle its record.  Never
    raises: a failing execute() is counted and reported through on_failure."""
    cdef object task = <object>t.arg
    cdef object result = None
    cdef object error = None
    cdef uint64_t start = tio_ticks()
    cdef uint64_t end
    cdef tio_sched *s = w.sched
    tio_hist_record(&w.wait_hist, start - t.submit_tick)
    w.task_start_tick = start
    # this record's slot was freed when it was popped: a blocked submitter
    # may use it (it takes the GIL after this batch)
    notify_room(s)
    w.running_task = <PyObject *>task        # borrowed: the record owns a reference until below
    try:
        result = task.execute()
    except BaseException as exc:
        error = exc
    w.running_task = NULL
    end = tio_ticks()
    tio_hist_record(&w.exec_hist, end - start)
    counter_add(&w.stats.busy_ticks, end - start)
    account_done(w, t)                           # out of our queues (a retry re-enters them)
    if error is None:
        if result is None or result is core.success:
            counter_add(&w.stats.succeeded, 1)
        elif result is core.retry:
            if t.attempts < s.max_retries:
                t.attempts += 1
                counter_add(&w.stats.retried, 1)
                if requeue_self(w, t) == TIO_OK:
                    return                       # the record (and its reference) live on
                # no room to retry: it fails, and says why
                error = _queue_full_error(f"no room to re-queue {task!r} for a retry")
            counter_add(&w.stats.failed, 1)
        elif result is core.failed:
            counter_add(&w.stats.failed, 1)
        elif result is core.cancel_marker:
            Py_DECREF(task)                      # the record's reference
            release_record(w, t)
            counter_add_release(&w.stats.cancelled, 1)
            return
        else:
            counter_add(&w.stats.failed, 1)
            error = TypeError(f"{type(task).__name__}.execute() returned {result!r}; "
                              f"expected a TaskResult or None")
    else:
        counter_add(&w.stats.failed, 1)
    Py_DECREF(task)                              # the record's reference
    release_record(w, t)
    if error is not None and core.on_failure is not None:
        try:
            core.on_failure(task, error)
        except BaseException as exc:
            report_unraisable(exc, "in tallyio's failure handler", core.on_failure)
    # counted processed only now: join() returns once every task it waits
    # for has finished, its error reporting included (release: join's
    # acquire load sees everything above)
    counter_add_release(&w.stats.processed, 1)


cdef void run_python_batch(tio_worker *w, tio_task *t) noexcept with gil:
    """Hold the GIL for a batch of Python tasks: until gil_batch tasks ran,
    gil_batch_ticks passed, the next item is native (left in w.carry) or there
    is nothing more in this worker's own queues."""
    cdef SchedulerCore core = <SchedulerCore>w.sched.core
    cdef tio_sched *s = w.sched
    cdef uint64_t start = tio_ticks()
    cdef uint64_t now
    cdef uint32_t count = 0
    while True:
        run_python(core, w, t)
        count += 1
        now = tio_ticks()
        if count >= s.gil_batch or now - start >= s.gil_batch_ticks:
            return
        if tio_atomic_load_u32_relaxed(&s.mode) == TIO_MODE_CANCEL:
            return
        t = take_own(w, now)
        if t == NULL:
            return
        if t.kind != TIO_TASK_PYTHON:
            w.carry = t
            return


cdef inline uint64_t run_task(tio_worker *w, tio_task *t, uint64_t now) noexcept nogil:
    """Run t; returns the end tick of a native task, 0 after Python tasks."""
    if t.kind == TIO_TASK_NATIVE:
        return run_native(w, t, now)
    run_python_batch(w, t)
    return 0

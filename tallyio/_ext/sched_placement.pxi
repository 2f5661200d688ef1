# Placement: which worker's inbox a submitted record goes to (the load
# balancer, README: "Placement"), and pushing it there with overflow to the
# node's other workers.  Touches the inboxes (push side), band_hint and the
# enqueue counters; wakes a worker only through sched_sleep.pxi's notify_one.


# ---- placement (the load balancer) ----------------------------------------------

cdef inline uint64_t node_queued_us(tio_sched *s, uint32_t node) noexcept nogil:
    cdef uint64_t total = 0
    cdef uint32_t i
    for i in range(s.node_first[node], s.node_first[node + 1]):
        total += worker_queued_us(s.workers[i])
    return total


cdef uint32_t choose_worker(tio_sched *s, int node, uint64_t *rng) noexcept nogil:
    """Least-loaded node (per worker), unless `node` names one; then the less
    loaded of two random workers there (power of two choices)."""
    cdef uint32_t n, first, count, i, j
    cdef uint64_t best = 0, load, r
    cdef uint64_t best_w = 1, w_count
    if node < 0 or <uint32_t>node >= s.nnodes:
        node = 0
        if s.nnodes > 1:
            # compare load per worker: best/best_w > load/w_count
            for n in range(s.nnodes):
                w_count = s.node_first[n + 1] - s.node_first[n]
                load = node_queued_us(s, n)
                if n == 0 or load * best_w < best * w_count:
                    best = load
                    best_w = w_count
                    node = n
    first = s.node_first[node]
    count = s.node_first[node + 1] - first
    if count == 1:
        return first
    r = rng_next(rng)
    i = <uint32_t>(r % count)
    j = (i + 1 + <uint32_t>((r >> 32) % (count - 1))) % count
    if worker_queued_us(s.workers[first + j]) < worker_queued_us(s.workers[first + i]):
        return first + j
    return first + i


# ---- pushing a record ---------------------------------------------------------------

cdef inline int push_inbox(tio_worker *w, tio_task *t) noexcept nogil:
    """Put t into w's inbox band for its priority.  TIO_OK or TIO_FULL.  The
    caller fences and sets the band hint (publish_hint) afterwards."""
    # relaxed RMWs: load estimates.  Counted before the push so a concurrent
    # pop can never make the load look negative.
    tio_atomic_fetch_add_u64_relaxed(&w.enq_tasks, 1)
    tio_atomic_fetch_add_u64_relaxed(&w.enq_us, t.est_us)
    if TIO_UNLIKELY(tio_mpmc_push(w.inbox[t.priority >> TIO_BAND_SHIFT], <uint64_t><uintptr_t>t) != TIO_OK):
        tio_atomic_fetch_sub_u64_relaxed(&w.enq_tasks, 1)
        tio_atomic_fetch_sub_u64_relaxed(&w.enq_us, t.est_us)
        return TIO_FULL
    return TIO_OK


cdef inline void publish_hint(tio_worker *w, uint32_t band) noexcept nogil:
    """After the push and a seq_cst fence: make sure the owner will look at band.
    The fence pairs with the one in take_band() after the owner clears a bit:
    either the owner's re-check sees our item or we see the cleared bit."""
    cdef uint32_t bit = 1u << band
    # fenced_relaxed: ordered after our push by the caller's tio_fence_seqcst
    if not (tio_atomic_load_u32_fenced_relaxed(&w.band_hint) & bit):
        tio_atomic_fetch_or_u32_seqcst(&w.band_hint, bit)


cdef tio_worker *push_with_overflow(tio_sched *s, uint32_t target, tio_task *t) noexcept nogil:
    """Push into the target's inbox; if that band is full, into the same band
    of the other workers (same node first).  Returns the worker that took it,
    or NULL when every one is full (t was not queued)."""
    cdef tio_worker *w = s.workers[target]
    cdef uint32_t node, k, i, first, count
    if TIO_LIKELY(push_inbox(w, t) == TIO_OK):
        return w
    node = w.node
    first = s.node_first[node]
    count = s.node_first[node + 1] - first
    for k in range(1, count):
        i = first + (target - first + k) % count
        if push_inbox(s.workers[i], t) == TIO_OK:
            return s.workers[i]
    for i in range(s.nworkers):
        if s.workers[i].node != node and push_inbox(s.workers[i], t) == TIO_OK:
            return s.workers[i]
    return NULL


cdef inline tio_worker *push_placed(tio_sched *s, tio_task *t, int priority, int node,
                                    uint64_t *rng) noexcept nogil:
    """Place and push a submitted record; on success count it, fence,
    publish the band hint and wake a worker if needed.  NULL: every inbox of
    its band is full (t was not queued).  Inline: it is the fast path."""
    cdef tio_worker *w = push_with_overflow(s, choose_worker(s, node, rng), t)
    if TIO_UNLIKELY(w == NULL):
        return NULL
    # relaxed RMW: a counter; stats() and join() read it
    tio_atomic_fetch_add_u64_relaxed(&w.submitted, 1)
    # the fence orders our push before the hint and idle-word loads (README)
    tio_fence_seqcst()
    publish_hint(w, <uint32_t>priority >> TIO_BAND_SHIFT)
    notify_one(s, w)
    return w

# Test and benchmark helpers for the work-stealing deque (included by
# _testing.pyx; not public API).  Every loop runs without the GIL after
# waiting on a StartGate; conservation is checked in Python with numpy.
import os as _deque_os
import threading as _deque_threading

from tallyio._ext.deque cimport (
    WorkStealingDeque, Stealer, tio_deque, tio_deque_new, tio_deque_free,
    tio_deque_push, tio_deque_pop, tio_deque_steal, tio_deque_steal_batch_limit,
    tio_deque_push_many, tio_deque_pop_many, tio_deque_len,
)
from tallyio._ext.common cimport (
    tio_atomic_load_u64_relaxed, tio_atomic_store_u64_relaxed,
    tio_atomic_store_u64_release, tio_next_pow2, tio_aligned_calloc,
    tio_aligned_free,
)

cdef extern from "<sched.h>" nogil:
    int sched_yield()


cdef inline void _deque_wait_step(uint64_t *spins) noexcept nogil:
    """Back-off for a waiting helper: a few PAUSEs, then give the core away
    (2 cores, often 3 threads: a spinner must not starve the thread it waits on)."""
    if spins[0] < 32:      # PAUSE is ~40-60 ns on these AMD VMs: ~2 us of spinning
        tio_cpu_relax()
        spins[0] += 1
    else:
        sched_yield()


cdef class DequeFlag:
    """A shared word for the deque helpers (a 'done' flag or a round counter)."""
    cdef tio_atomic_u64 value

    def __cinit__(self, uint64_t value=0):
        tio_atomic_init_u64(&self.value, value)

    def set(self, uint64_t value):
        tio_atomic_store_u64_release(&self.value, value)

    def get(self):
        return tio_atomic_load_u64_acquire(&self.value)


def deque_set_indices(WorkStealingDeque dq, uint64_t start):
    """Move an EMPTY deque's top and bottom to `start` (tests of index wrap)."""
    if tio_deque_len(dq.handle) != 0:
        raise ValueError("deque_set_indices needs an empty deque")
    tio_atomic_store_u64_relaxed(&dq.handle.top, start)
    tio_atomic_store_u64_relaxed(&dq.handle.bottom, start)


def deque_owner_mixed(WorkStealingDeque dq, StartGate gate, DequeFlag done,
                      uint64_t n, uint64_t[::1] popped, uint64_t seed):
    """Owner: push 0..n-1 in random bursts of 1..8 with 0..3 pops between;
    when full, wait a little for thieves to make room, then pop one itself.
    Then pop until empty and set `done`.  Popped items go to popped[];
    returns how many."""
    cdef tio_deque *d = dq.handle
    cdef uint64_t nxt = 0, count = 0, r, j, burst, pops, x, spins
    cdef uint64_t cap = popped.shape[0]
    with nogil:
        gate.wait()
        while nxt < n:
            r = mix64(seed + nxt)
            burst = 1 + (r & 7)
            pops = (r >> 8) & 3
            j = 0
            spins = 0
            while j < burst and nxt < n:
                if tio_deque_push(d, nxt) == TIO_OK:
                    nxt += 1
                    j += 1
                elif spins < 64:
                    _deque_wait_step(&spins)      # full: thieves, take some
                elif tio_deque_pop(d, &x) == TIO_OK and count < cap:
                    popped[count] = x
                    count += 1
                    spins = 0
            j = 0
            while j < pops and count < cap and tio_deque_pop(d, &x) == TIO_OK:
                popped[count] = x
                count += 1
                j += 1
        while count < cap and tio_deque_pop(d, &x) == TIO_OK:
            popped[count] = x
            count += 1
        # release: everything is out of the deque before a thief sees done
        tio_atomic_store_u64_release(&done.value, 1)
    return count


def deque_owner_bursts(WorkStealingDeque dq, StartGate gate, DequeFlag done,
                       uint64_t n, uint64_t[::1] popped, uint64_t burst):
    """Owner that pops hard: push a burst of items, then pop until empty
    (so pops run into thieves that are part-way through a steal), repeat
    for 0..n-1; then set `done`.  Returns how many it popped."""
    cdef tio_deque *d = dq.handle
    cdef uint64_t nxt = 0, count = 0, j, x
    cdef uint64_t cap = popped.shape[0]
    with nogil:
        gate.wait()
        while nxt < n:
            j = 0
            while j < burst and nxt < n and tio_deque_push(d, nxt) == TIO_OK:
                nxt += 1
                j += 1
            while count < cap and tio_deque_pop(d, &x) == TIO_OK:
                popped[count] = x
                count += 1
        # release: everything is out of the deque before a thief sees done
        tio_atomic_store_u64_release(&done.value, 1)
    return count


def deque_thief(Stealer thief, StartGate gate, DequeFlag done, uint64_t[::1] stolen):
    """Thief: steal until `done` is set and the deque is empty; stolen items
    go to stolen[] in the order taken.  Returns the count (len(stolen)+1 if
    it ran out of room, which means a duplicate)."""
    cdef tio_deque *d = thief.handle
    cdef uint64_t count = 0, x, spins = 0, finished
    cdef uint64_t cap = stolen.shape[0]
    cdef int status
    with nogil:
        gate.wait()
        while True:
            # acquire: pairs with the release store of done by the owner
            finished = tio_atomic_load_u64_acquire(&done.value)
            status = tio_deque_steal(d, &x)
            if status == TIO_OK:
                if count == cap:
                    count = cap + 1
                    break
                stolen[count] = x
                count += 1
                spins = 0
            elif status == TIO_RETRY:
                tio_cpu_relax()
            elif finished:
                break
            else:
                _deque_wait_step(&spins)
    return count


def deque_batch_thief(Stealer source, WorkStealingDeque mine, Stealer neighbour,
                      StartGate gate, DequeFlag done, uint64_t[::1] got,
                      uint64_t limit):
    """Thief with its own deque: steal_batch from `source` into `mine` (which
    this thread owns), then pop `mine` empty; between batches steal one item
    from `neighbour` (another thief's deque) if given.  Returns the count
    (len(got)+1 if it ran out of room, which means a duplicate)."""
    cdef tio_deque *src = source.handle
    cdef tio_deque *own = mine.handle
    cdef tio_deque *other = neighbour.handle if neighbour is not None else NULL
    cdef uint64_t count = 0, x, moved, spins = 0, finished
    cdef uint64_t cap = got.shape[0]
    cdef int status
    cdef bint overflow = False
    with nogil:
        gate.wait()
        while not overflow:
            finished = tio_atomic_load_u64_acquire(&done.value)   # pairs with the owner's release
            status = tio_deque_steal_batch_limit(src, own, limit, &moved)
            while tio_deque_pop(own, &x) == TIO_OK:
                if count == cap:
                    overflow = True
                    break
                got[count] = x
                count += 1
            if other != NULL and tio_deque_steal(other, &x) == TIO_OK:
                if count == cap:
                    overflow = True
                    break
                got[count] = x
                count += 1
            if status == TIO_OK:
                spins = 0
            elif status == TIO_RETRY:
                tio_cpu_relax()
            elif finished:
                break
            else:
                _deque_wait_step(&spins)
        # Items a neighbour did not steal from our deque are ours to drain;
        # after `done` nothing new arrives (source is empty for good).
        while not overflow and tio_deque_pop(own, &x) == TIO_OK:
            if count == cap:
                overflow = True
                break
            got[count] = x
            count += 1
    return cap + 1 if overflow else count


def deque_race_owner(WorkStealingDeque dq, StartGate gate, DequeFlag go,
                     DequeFlag finished, uint64_t thieves, uint64_t rounds,
                     uint64_t[::1] got, uint64_t max_delay=16):
    """Last-item race, owner side.  Round r: push r, open the round (go = r+1),
    wait a random 0..max_delay PAUSEs (about a thief's reaction time, so
    either side can win and often both reach the CAS; one round in 16 also
    yields the CPU first), pop; got[r] = r+1 if
    the pop won.  Then wait until every thief has finished round r.  Returns
    the number of rounds that left the item in the deque (must be 0)."""
    cdef tio_deque *d = dq.handle
    cdef uint64_t r, x, spins, delay, leftovers = 0
    with nogil:
        gate.wait()
        for r in range(rounds):
            tio_deque_push(d, r)
            # release: pairs with the thieves' acquire load of go (they see the push)
            tio_atomic_store_u64_release(&go.value, r + 1)
            delay = mix64(r)
            if (delay >> 32) % 16 == 0:
                # now and then let a thief that shares our CPU get there first
                sched_yield()
            delay = delay % (max_delay + 1)
            while delay:
                tio_cpu_relax()
                delay -= 1
            if tio_deque_pop(d, &x) == TIO_OK:
                got[r] = x + 1
            spins = 0
            # acquire: pairs with each thief's acq_rel increment of finished
            while tio_atomic_load_u64_acquire(&finished.value) < thieves * (r + 1):
                _deque_wait_step(&spins)
            if tio_deque_len(d) != 0:
                leftovers += 1
                while tio_deque_pop(d, &x) == TIO_OK:
                    pass
    return leftovers


def deque_race_thief(Stealer thief, StartGate gate, DequeFlag go, DequeFlag finished,
                     uint64_t rounds, uint64_t[::1] got):
    """Last-item race, thief side: wait for round r to open, steal (again on
    RETRY) until SUCCESS or EMPTY; got[r] = item+1 on a win.  Returns
    (wins, retries): a RETRY means the thief reached the CAS on top and lost
    it, i.e. the race really happened."""
    cdef tio_deque *d = thief.handle
    cdef uint64_t r, x, spins, wins = 0, retries = 0
    cdef int status
    with nogil:
        gate.wait()
        for r in range(rounds):
            spins = 0
            # acquire: pairs with the owner's release store of go
            while tio_atomic_load_u64_acquire(&go.value) < r + 1:
                _deque_wait_step(&spins)
            while True:
                status = tio_deque_steal(d, &x)
                if status == TIO_OK:
                    got[r] = x + 1
                    wins += 1
                    break
                if status == TIO_EMPTY:
                    break
                retries += 1
            # acq_rel: our attempt happens-before the owner's next round
            tio_atomic_fetch_add_u64_acqrel(&finished.value, 1)
    return wins, retries


# ---- benchmarks -------------------------------------------------------------------

def _deque_bench_owner(WorkStealingDeque dq, StartGate gate, DequeFlag done, uint64_t n):
    """Owner under fire: push i (pop instead when full), pop after every other
    push; then drain.  Returns (ns per owner op, ops, checksum of popped)."""
    cdef tio_deque *d = dq.handle
    cdef uint64_t i, x, ops = 0, checksum = 0, t0, t1
    with nogil:
        gate.wait()
        t0 = tio_now_ns()
        for i in range(n):
            while tio_deque_push(d, i) != TIO_OK:
                if tio_deque_pop(d, &x) == TIO_OK:
                    checksum += x
                ops += 1
            ops += 1
            if i & 1:
                if tio_deque_pop(d, &x) == TIO_OK:
                    checksum += x
                ops += 1
        t1 = tio_now_ns()
        while tio_deque_pop(d, &x) == TIO_OK:
            checksum += x
        tio_atomic_store_u64_release(&done.value, 1)   # pairs with the thief's acquire
    return (t1 - t0) / <double>ops, ops, checksum


def _deque_bench_thief(Stealer thief, StartGate gate, DequeFlag done):
    """Steal until done; returns (ns per successful steal, steals, checksum)."""
    cdef tio_deque *d = thief.handle
    cdef uint64_t x, steals = 0, checksum = 0, t0, t1, finished
    cdef int status
    with nogil:
        gate.wait()
        t0 = tio_now_ns()
        while True:
            finished = tio_atomic_load_u64_acquire(&done.value)   # pairs with the owner's release
            status = tio_deque_steal(d, &x)
            if status == TIO_OK:
                checksum += x
                steals += 1
            elif status == TIO_EMPTY and finished:
                break
            else:
                tio_cpu_relax()
        t1 = tio_now_ns()
    return (t1 - t0) / <double>(steals if steals else 1), steals, checksum


def _deque_pinned(cpu, fn, args, results, index):
    if cpu is not None:
        _deque_os.sched_setaffinity(0, {cpu})
    results[index] = fn(*args)


def bench_deque(uint64_t n=1000000):
    """Nanoseconds per operation of the deque, measured in nogil loops.

    Cases: owner push+pop (batches of 32: the fence path, no CAS), owner
    push-then-pop of a single item (the last-item CAS path), uncontended
    steal (one thief, idle owner), steal_batch per item moved, push_many +
    pop_many per item, and the owner's push/pop cost while a thief steals
    on the other CPU (both threads pinned when 2 CPUs are allowed)."""
    cdef tio_deque *d
    cdef tio_deque *dest
    cdef uint64_t i, j, x, checksum, expected, rounds, t0, t1, cap, done_n, moved
    cdef uint64_t elapsed
    cdef uint64_t *buf
    if n < 1024:
        raise ValueError("bench_deque: n must be >= 1024")
    results = {}

    # -- owner push+pop, batches of 32 ------------------------------------------
    d = tio_deque_new(64)
    if d == NULL:
        raise MemoryError()
    rounds = n // 32
    checksum = 0
    with nogil:
        t0 = tio_now_ns()
        for i in range(rounds):
            for j in range(32):
                tio_deque_push(d, i * 32 + j)
            for j in range(32):
                if tio_deque_pop(d, &x) == TIO_OK:
                    checksum += x
        t1 = tio_now_ns()
    expected = (rounds * 32) * (rounds * 32 - 1) // 2
    if checksum != expected:
        tio_deque_free(d)
        raise AssertionError("bench_deque: push+pop checksum mismatch")
    results["push+pop owner"] = (t1 - t0) / (2.0 * rounds * 32)

    # -- owner push then pop of one item: the last-item CAS every time ------------
    checksum = 0
    with nogil:
        t0 = tio_now_ns()
        for i in range(n):
            tio_deque_push(d, i)
            if tio_deque_pop(d, &x) == TIO_OK:
                checksum += x
        t1 = tio_now_ns()
    tio_deque_free(d)
    if checksum != n * (n - 1) // 2:
        raise AssertionError("bench_deque: single push/pop checksum mismatch")
    results["push+pop owner, 1 item (CAS)"] = (t1 - t0) / (2.0 * n)

    # -- uncontended steal ---------------------------------------------------------
    cap = tio_next_pow2(n) if n < (1 << 20) else (1 << 20)
    d = tio_deque_new(cap)
    if d == NULL:
        raise MemoryError()
    checksum = 0
    elapsed = 0
    done_n = 0
    with nogil:
        while done_n < n:
            j = 0
            while j < cap and done_n < n:
                tio_deque_push(d, done_n)
                done_n += 1
                j += 1
            t0 = tio_now_ns()
            while tio_deque_steal(d, &x) == TIO_OK:
                checksum += x
            elapsed += tio_now_ns() - t0
    tio_deque_free(d)
    if checksum != n * (n - 1) // 2:
        raise AssertionError("bench_deque: steal checksum mismatch")
    results["uncontended steal"] = elapsed / <double>n

    # -- steal_batch, per item moved ---------------------------------------------------
    d = tio_deque_new(4096)
    dest = tio_deque_new(4096)
    buf = <uint64_t *>tio_aligned_calloc(64, 4096 * sizeof(uint64_t))
    if d == NULL or dest == NULL or buf == NULL:
        tio_deque_free(d); tio_deque_free(dest); tio_aligned_free(buf)
        raise MemoryError()
    checksum = 0
    elapsed = 0
    done_n = 0
    with nogil:
        while done_n < n:
            j = 0
            while j < 4096 and done_n < n:
                tio_deque_push(d, done_n)
                done_n += 1
                j += 1
            while True:
                t0 = tio_now_ns()
                if tio_deque_steal_batch_limit(d, dest, <uint64_t>-1, &moved) != TIO_OK:
                    break
                elapsed += tio_now_ns() - t0
                for i in range(tio_deque_pop_many(dest, buf, 4096)):
                    checksum += buf[i]
    if checksum != n * (n - 1) // 2:
        tio_deque_free(d); tio_deque_free(dest); tio_aligned_free(buf)
        raise AssertionError("bench_deque: steal_batch checksum mismatch")
    results["steal_batch (per item)"] = elapsed / <double>n

    # -- push_many + pop_many, chunks of 256 ---------------------------------------------
    checksum = 0
    rounds = n // 256
    for i in range(256):
        buf[i] = i
    with nogil:
        t0 = tio_now_ns()
        for i in range(rounds):
            tio_deque_push_many(d, buf, 256)
            tio_deque_pop_many(d, buf, 256)
            checksum += buf[0] + buf[255]   # reversed each round: 255 + 0 or 0 + 255
        t1 = tio_now_ns()
    tio_deque_free(d); tio_deque_free(dest); tio_aligned_free(buf)
    if checksum != rounds * 255:
        raise AssertionError("bench_deque: push_many/pop_many checksum mismatch")
    results["push_many+pop_many (per item)"] = (t1 - t0) / (2.0 * rounds * 256)

    # -- owner push/pop while a thief steals (2 threads, pinned) -------------------------
    cpus = sorted(_deque_os.sched_getaffinity(0))
    pin = cpus[:2] if len(cpus) >= 2 else [None, None]
    dq = WorkStealingDeque(1024, dtype="uint64")
    gate = StartGate(2)
    done = DequeFlag()
    out = [None, None]
    threads = [
        _deque_threading.Thread(target=_deque_pinned,
                                args=(pin[0], _deque_bench_owner, (dq, gate, done, n), out, 0)),
        _deque_threading.Thread(target=_deque_pinned,
                                args=(pin[1], _deque_bench_thief, (dq.stealer(), gate, done), out, 1)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if out[0][2] + out[1][2] != n * (n - 1) // 2:
        raise AssertionError("bench_deque: owner+thief checksum mismatch")
    results["owner push/pop with a thief stealing"] = out[0][0]
    results["thief steal while owner works (per item)"] = out[1][0]
    return results

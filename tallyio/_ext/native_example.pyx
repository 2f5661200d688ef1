"""Native tasks: C functions a NumaScheduler runs on its workers without the GIL.

This module is the worked example of the scheduler's public C API and the
workload of the native-task benchmark.  It takes the scheduler, the status
codes and raise_status from the public C API, as a user's own Cython module
would (tests/test_native.py compiles such a module outside the package):

    from tallyio.capi cimport (tio_sched, tio_native_fn, tio_sched_of,
        tio_submit_native, tio_submit_native_many, tio_spawn_native, raise_status)

plus tallyio._ext.common for its own bookkeeping (atomics, aligned memory,
the clock, the blocking-wait helper).

* ``count_task`` is the native task: ``arg`` points at one slot of a
  ``NativeBatch``; the task does ``work_iters`` rounds of an integer mix,
  stores the result and atomically counts the execution in the slot, so a
  test can check that every task ran exactly once.
* ``NativeBatch.submit`` submits one task per slot from a nogil loop with
  ``tio_submit_native`` (any thread, placement by the load balancer).
* ``spawn_tree`` submits one root task; every task then spawns its children
  with ``tio_spawn_native`` onto its worker's own Chase-Lev deque, where idle
  workers steal them.
* ``measure_native_throughput`` times either workload (tasks per second).

Lifetime rule: a task's ``arg`` must stay valid until the task has run.  Here
``arg`` points into a NativeBatch, so ``submit`` keeps the batch alive (in a
registry keyed weakly by the scheduler) until ``wait()`` sees every task done,
a later submit to that scheduler finds it settled, or the scheduler object
itself is gone (its workers have ended, so nothing can run a task any more).
Your own module needs the same care: whoever owns ``arg`` must not free it
while a task that points at it may still run.

    >>> from tallyio import NumaScheduler, SchedulerConfig
    >>> from tallyio._ext.native_example import NativeBatch, spawn_tree
    >>> with NumaScheduler(SchedulerConfig(workers_per_numa_node=2)) as scheduler:
    ...     batch = NativeBatch(1000, work_iters=10)
    ...     batch.submit(scheduler)
    ...     tree = spawn_tree(scheduler, 1000)
    ...     batch.wait(), tree.wait()
    1000
    (True, True)
    >>> int(batch.counts().max()), batch.done(), tree.done()
    (1, 1000, 1000)
"""
import weakref

import numpy

from libc.stdint cimport uint64_t, uintptr_t
from libc.stdlib cimport malloc, free
from tallyio._ext.common cimport (
    tio_atomic_u64, tio_atomic_fetch_add_u64_acqrel, tio_atomic_load_u64_acquire,
    tio_aligned_calloc, tio_aligned_free, tio_now_ns, wait_while_busy,
)
from tallyio.capi cimport (TIO_OK, TIO_EMPTY, TIO_FULL, TIO_INVALID, TIO_CLOSED, raise_status,
                           tio_sched, tio_native_fn, tio_sched_of, tio_submit_native,
                           tio_submit_native_many, tio_spawn_native)

cdef extern from "<sched.h>" nogil:
    int sched_yield()

__all__ = ["NativeBatch", "spawn_tree", "measure_native_throughput"]


# ---- the task and what it points at ----------------------------------------------

cdef struct batch_state:
    native_slot *slots
    uint64_t n
    uint64_t work_iters        # rounds of the integer mix per task
    uint64_t fanout            # spawn_tree: children per task (0: flat batch)
    uint64_t accepted          # slots 0..accepted-1 were submitted (or belong to the tree)

# One slot per task, 32 bytes: two slots share a 64-byte line.  Padding each
# slot to a line of its own doubles the memory a 1M-task batch touches and was
# no faster in measure_native_throughput here.
cdef struct native_slot:
    batch_state *batch         # settings shared by every task of the batch (read-only while tasks run)
    tio_atomic_u64 runs        # executions of this slot's task
    uint64_t result            # the mix's output, stored so the compiler keeps the work
    uint64_t _pad


cdef inline uint64_t mix_rounds(uint64_t x, uint64_t rounds) noexcept nogil:
    """``rounds`` steps of a 64-bit LCG followed by an xorshift: cheap, and each
    step depends on the last, so the loop cannot be vectorised away."""
    cdef uint64_t _k
    for _k in range(rounds):
        x = x * 6364136223846793005ULL + 1442695040888963407ULL
        x ^= x >> 29
    return x


cdef void count_task(void *arg) noexcept nogil:
    """The native task: mix, store, count.  ``arg`` is a ``native_slot *``."""
    cdef native_slot *slot = <native_slot *>arg
    slot.result = mix_rounds(<uint64_t><uintptr_t>arg, slot.batch.work_iters)
    # acq_rel: the release half publishes `result` to a reader that
    # acquire-loads `runs` (counts(), wait()).  An RMW, not load+store, so a
    # task that ran twice at once would still show up as 2.
    tio_atomic_fetch_add_u64_acqrel(&slot.runs, 1)


cdef void tree_task(void *arg) noexcept nogil:
    """A task of spawn_tree: spawn this slot's children, then count_task.

    The slots form a heap of arity ``fanout``: slot i's children are
    i*fanout+1 .. i*fanout+fanout.  Children go onto this worker's own deque
    (tio_spawn_native), so an idle worker can steal them while this one runs.
    A child that cannot be spawned -- the deque and inbox are full, or this
    is not a worker thread (a stopping scheduler runs leftovers on the
    stopping thread) -- runs here instead, so every slot still runs once."""
    cdef native_slot *slot = <native_slot *>arg
    cdef batch_state *b = slot.batch
    cdef uint64_t index = <uint64_t>(slot - b.slots)
    cdef uint64_t child = index * b.fanout + 1
    cdef uint64_t last = child + b.fanout
    if last > b.n:
        last = b.n
    while child < last:
        if tio_spawn_native(tree_task, &b.slots[child]) != TIO_OK:
            tree_task(&b.slots[child])
        child += 1
    count_task(arg)


# ---- waiting --------------------------------------------------------------------

cdef struct wait_cursor:
    batch_state *batch
    uint64_t next              # slots below `next` are known to have run


cdef int check_settled(void *ctx) noexcept nogil:
    """TIO_OK once every accepted slot ran, else TIO_EMPTY.  Slots only ever
    go from "not run" to "ran", so the cursor never moves back: the whole
    wait costs O(n) loads however often it polls."""
    cdef wait_cursor *c = <wait_cursor *>ctx
    cdef batch_state *b = c.batch
    # acquire: pairs with the acq_rel increment in count_task
    while c.next < b.accepted and tio_atomic_load_u64_acquire(&b.slots[c.next].runs) != 0:
        c.next += 1
    return TIO_OK if c.next >= b.accepted else TIO_EMPTY


# ---- keeping batches alive while their tasks may run ---------------------------------

# scheduler -> batches submitted to it whose tasks may not all have run yet.
# Weak keys: a NumaScheduler object outlives its worker threads (each thread
# references it) and its stop(), so once it is collected no task of these
# batches can run any more.  The batches must not reference the scheduler.
_in_flight = weakref.WeakKeyDictionary()


cdef enum:
    BATCH_NEW = 0
    BATCH_SUBMITTING = 1
    BATCH_SUBMITTED = 2

cdef uint64_t MAX_TASKS = 1ULL << 32


cdef class NativeBatch:
    """``n`` native tasks (``count_task``), each with its own slot: an execution
    counter and a result word.  ``work_iters`` rounds of an integer mix make
    each task take real time (0: a near no-op).

    ``submit(scheduler)`` runs every task once on a started NumaScheduler;
    ``wait()`` blocks without the GIL until they all ran; ``counts()`` shows
    how often each slot ran (exactly once, if the scheduler is correct).  A
    batch is submitted once; make a new one to run again.

    >>> from tallyio import NumaScheduler, SchedulerConfig
    >>> batch = NativeBatch(100)
    >>> batch.done(), batch.accepted
    (0, 0)
    >>> with NumaScheduler(SchedulerConfig(workers_per_numa_node=2)) as scheduler:
    ...     batch.submit(scheduler, priority=200)
    ...     batch.wait(timeout=10.0)
    100
    True
    >>> batch.counts().tolist() == [1] * 100
    True
    """
    cdef batch_state state
    cdef int phase
    cdef object __weakref__

    def __cinit__(self, *args, **kwargs):
        self.state.slots = NULL

    def __init__(self, n, work_iters=0):
        cdef uint64_t i
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"NativeBatch: n must be an int, got {type(n).__name__}")
        if not 1 <= n <= MAX_TASKS:
            raise ValueError(f"NativeBatch: n must be in 1..{MAX_TASKS}, got {n}")
        if isinstance(work_iters, bool) or not isinstance(work_iters, int):
            raise TypeError(f"NativeBatch: work_iters must be an int, got {type(work_iters).__name__}")
        if not 0 <= work_iters < 2**63:
            raise ValueError(f"NativeBatch: work_iters must be >= 0, got {work_iters}")
        if self.state.slots != NULL:
            raise RuntimeError("NativeBatch is already initialised")
        # zeroed, and every page touched now rather than by the first task
        # that lands on it (tio_aligned_calloc memsets)
        self.state.n = n
        self.state.slots = <native_slot *>tio_aligned_calloc(64, self.state.n * sizeof(native_slot))
        if self.state.slots == NULL:
            raise MemoryError(f"NativeBatch: {n} slots of {sizeof(native_slot)} bytes")
        self.state.work_iters = work_iters
        self.state.fanout = 0
        self.state.accepted = 0
        for i in range(self.state.n):
            self.state.slots[i].batch = &self.state
        self.phase = BATCH_NEW

    def __dealloc__(self):
        # The registry keeps a batch alive while its tasks may run, so no
        # worker can hold a pointer into these slots now.
        tio_aligned_free(self.state.slots)

    @property
    def n(self):
        """Number of tasks (slots) in the batch."""
        return self.state.n

    @property
    def work_iters(self):
        """Rounds of the integer mix each task does."""
        return self.state.work_iters

    @property
    def accepted(self):
        """Tasks the scheduler accepted: n after a successful submit, fewer if
        the scheduler stopped part-way through (submit then raised)."""
        return self.state.accepted

    def submit(self, scheduler, int priority=0, int preferred_node=-1, *, bint many=False):
        """Submit all n tasks to ``scheduler`` (a started NumaScheduler); returns n.

        The loop runs without the GIL, so several threads can submit batches
        at once.  When every inbox is full it backs off (sched_yield) and
        tries again.  ``priority``: 0..255; ``preferred_node``: a node index
        (0 .. number of CPU nodes - 1) or -1 for the least loaded node.

        Raises SchedulerNotRunningError before start() or after stop() (if the
        scheduler stops part-way, ``accepted`` tells how many went in),
        ValueError for a priority outside 0..255 or an unknown node, and
        RuntimeError if this batch was already submitted.

        ``many=True`` submits through ``tio_submit_native_many`` (64 tasks per
        placement, ring CAS and fence) instead of one ``tio_submit_native``
        call per task."""
        cdef tio_sched *s = self._claim(scheduler, preferred_node)
        cdef uint64_t i = 0, got = 0
        cdef uint64_t n = self.state.n
        cdef int st = TIO_OK
        cdef void **args = NULL
        if many:
            args = <void **>malloc((n if n > 0 else 1) * sizeof(void *))
            if args == NULL:
                self._settle_submit(scheduler, 0)
                raise MemoryError(f"argument array for {n} tasks")
            for i in range(n):
                args[i] = &self.state.slots[i]
            i = 0
        try:
            with nogil:
                while i < n:
                    if many:
                        st = tio_submit_native_many(s, count_task, &args[i], n - i, priority,
                                                    preferred_node, &got)
                        i += got
                    else:
                        st = tio_submit_native(s, count_task, &self.state.slots[i], priority, preferred_node)
                        if st == TIO_OK:
                            i += 1
                    if st == TIO_FULL:
                        sched_yield()          # let the workers drain the inboxes
                    elif st != TIO_OK:
                        break
        finally:
            free(args)
            self._settle_submit(scheduler, i)
        if st != TIO_OK:
            self._raise_submit(st, priority)
        return n

    cdef tio_sched *_claim(self, scheduler, int preferred_node) except NULL:
        """Check the batch and the scheduler, and mark the batch as submitting
        (with the GIL held, so two threads cannot both claim it)."""
        cdef tio_sched *s
        if self.phase != BATCH_NEW:
            raise RuntimeError("this NativeBatch was already submitted; a batch runs once, create a new one")
        s = tio_sched_of(scheduler)
        if preferred_node < -1 or preferred_node >= <int>s.nnodes:
            raise ValueError(f"preferred_node must be -1 or a node index in 0..{s.nnodes - 1}, "
                             f"got {preferred_node}")
        self.phase = BATCH_SUBMITTING
        return s

    cdef void _settle_submit(self, scheduler, uint64_t accepted):
        self.state.accepted = accepted
        if accepted == 0:
            self.phase = BATCH_NEW         # nothing went in: the batch may be submitted again
            return
        self.phase = BATCH_SUBMITTED
        batches = _in_flight.get(scheduler)
        if batches is None:
            batches = _in_flight[scheduler] = set()
        # forget batches of this scheduler whose tasks have all run
        batches.difference_update([b for b in batches if (<NativeBatch>b)._settled()])
        if not self._settled():
            batches.add(self)

    cdef int _raise_submit(self, int st, int priority) except -1:
        if st == TIO_INVALID:
            raise ValueError(f"NativeBatch.submit: tio_submit_native rejected priority {priority} "
                             "(it must be in 0..255)")
        return raise_status(st, "NumaScheduler")

    cdef bint _settled(self):
        cdef wait_cursor cursor
        cursor.batch = &self.state
        cursor.next = 0
        return check_settled(&cursor) == TIO_OK

    def wait(self, timeout=None):
        """Block without the GIL until every accepted task ran; False if
        ``timeout`` seconds passed first.  Ctrl+C interrupts it.  A batch that
        was never submitted is done at once."""
        cdef wait_cursor cursor
        cdef double limit = -1.0
        if timeout is not None:
            if not timeout >= 0:
                raise ValueError(f"timeout must be None or >= 0, got {timeout!r}")
            limit = timeout
        cursor.batch = &self.state
        cursor.next = 0
        if wait_while_busy(check_settled, &cursor, TIO_EMPTY, limit) != TIO_OK:
            return False
        for batches in _in_flight.values():
            batches.discard(self)
        return True

    def done(self):
        """How many slots have run at least once."""
        cdef uint64_t i, total = 0
        for i in range(self.state.n):
            # acquire: pairs with the acq_rel increment in count_task
            if tio_atomic_load_u64_acquire(&self.state.slots[i].runs) != 0:
                total += 1
        return total

    def counts(self):
        """Executions per slot, as a numpy uint64 array of length n."""
        out = numpy.empty(self.state.n, dtype=numpy.uint64)
        cdef uint64_t[::1] view = out
        cdef uint64_t i
        with nogil:
            for i in range(self.state.n):
                view[i] = tio_atomic_load_u64_acquire(&self.state.slots[i].runs)
        return out

    def results(self):
        """Each slot's mix output (numpy uint64), meaningful once the slot ran."""
        out = numpy.empty(self.state.n, dtype=numpy.uint64)
        cdef uint64_t[::1] view = out
        cdef uint64_t i
        for i in range(self.state.n):
            if tio_atomic_load_u64_acquire(&self.state.slots[i].runs) != 0:
                view[i] = self.state.slots[i].result
            else:
                view[i] = 0
        return out

    def __repr__(self):
        return (f"<NativeBatch n={self.state.n} work_iters={self.state.work_iters} "
                f"accepted={self.state.accepted} done={self.done()}>")

    cdef int _submit_root(self, scheduler, uint64_t fanout, int priority) except -1:
        """spawn_tree's submit: slot 0 as a tree_task; the tree covers every slot."""
        cdef tio_sched *s = self._claim(scheduler, -1)
        cdef int st
        self.state.fanout = fanout
        with nogil:
            while True:
                st = tio_submit_native(s, tree_task, &self.state.slots[0], priority, -1)
                if st != TIO_FULL:
                    break
                sched_yield()
        self._settle_submit(scheduler, self.state.n if st == TIO_OK else 0)
        if st != TIO_OK:
            self._raise_submit(st, priority)
        return 0


def spawn_tree(scheduler, n, fanout=4, work_iters=0, int priority=0):
    """Run ``n`` native tasks as a tree spawned from inside the workers.

    One root task is submitted with tio_submit_native; each task spawns its
    ``fanout`` children with tio_spawn_native onto its own worker's deque
    (no placement, no inbox: the cheapest way to create work), and idle
    workers steal from there.  Returns the NativeBatch; ``wait()`` on it.

    >>> from tallyio import NumaScheduler, SchedulerConfig
    >>> with NumaScheduler(SchedulerConfig(workers_per_numa_node=2)) as scheduler:
    ...     tree = spawn_tree(scheduler, 10_000, fanout=8)
    ...     tree.wait(timeout=10.0)
    True
    >>> tree.done(), int(tree.counts().max())
    (10000, 1)
    """
    cdef NativeBatch batch = NativeBatch(n, work_iters)
    batch._submit_root(scheduler, _check_fanout(fanout), priority)
    return batch


cdef uint64_t _check_fanout(fanout) except 0:
    if isinstance(fanout, bool) or not isinstance(fanout, int):
        raise TypeError(f"fanout must be an int, got {type(fanout).__name__}")
    if not 1 <= fanout <= 65536:
        raise ValueError(f"fanout must be in 1..65536, got {fanout}")
    return fanout


def measure_native_throughput(scheduler, n, mode="submit", fanout=4):
    """Tasks per second for ``n`` near no-op native tasks on a started scheduler.

    The clock runs from before the first submit until the last task has run
    (seen by polling the slots without the GIL), so it covers submission,
    queueing, stealing and execution:

    * ``mode="submit"``: this thread submits every task with tio_submit_native
      (one submitter feeding the workers' inboxes);
    * ``mode="submit_many"``: the same through tio_submit_native_many (64
      tasks per placement, ring CAS and fence);
    * ``mode="spawn"``: one root task, the rest spawned on the workers with
      tio_spawn_native (``fanout`` children per task), balanced by stealing.

    Every slot is checked to have run exactly once afterwards (outside the
    timed part).  Use a quiet machine and the median of several runs:

    >>> from tallyio import NumaScheduler, SchedulerConfig
    >>> with NumaScheduler(SchedulerConfig(workers_per_numa_node=2)) as scheduler:
    ...     rate = measure_native_throughput(scheduler, 100_000, mode="spawn")
    >>> rate > 0
    True
    """
    if mode not in ("submit", "submit_many", "spawn"):
        raise ValueError(f"mode must be 'submit', 'submit_many' or 'spawn', got {mode!r}")
    cdef uint64_t tree_fanout = _check_fanout(fanout)
    cdef NativeBatch batch = NativeBatch(n)
    cdef uint64_t start = tio_now_ns()
    if mode == "submit":
        batch.submit(scheduler)
    elif mode == "submit_many":
        batch.submit(scheduler, many=True)
    else:
        batch._submit_root(scheduler, tree_fanout, 0)
    batch.wait()
    cdef uint64_t elapsed = tio_now_ns() - start
    counts = batch.counts()
    if counts.min() != 1 or counts.max() != 1:
        raise RuntimeError(f"tallyio bug: native tasks ran {int(counts.min())}..{int(counts.max())} "
                           "times instead of exactly once")
    return n / (<double>elapsed / 1e9 if elapsed > 0 else 1e-9)


# ---- test hooks (not public API) -----------------------------------------------

_STATUS_NAMES = {TIO_OK: "OK", TIO_FULL: "FULL", TIO_INVALID: "INVALID", TIO_CLOSED: "CLOSED"}


cdef void _noop_task(void *arg) noexcept nogil:
    pass


def _raw_submit(scheduler, int priority=0, bint null_fn=False):
    """tio_submit_native of a no-op (or of a NULL function): the status name."""
    cdef tio_sched *s = tio_sched_of(scheduler)
    cdef tio_native_fn fn = _noop_task
    cdef int st
    if null_fn:
        fn = NULL
    with nogil:
        st = tio_submit_native(s, fn, NULL, priority, -1)
    return _STATUS_NAMES.get(st, str(st))


def _spawn_outside_worker():
    """tio_spawn_native from this (non-worker) thread: the status name."""
    cdef int st
    with nogil:
        st = tio_spawn_native(_noop_task, NULL)
    return _STATUS_NAMES.get(st, str(st))

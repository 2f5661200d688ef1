# cython: language_level=3
"""The scheduler core: workers, task records, placement, the sleep protocol.

Public C API (cimport it from your own Cython module; see "Native tasks" in
tallyio/_ext/README.md and tallyio/_ext/native_example.pyx)::

    from tallyio._ext.scheduler cimport (tio_sched, tio_native_fn,
        tio_sched_of, tio_submit_native, tio_spawn_native)

    cdef void work(void *arg) noexcept nogil:
        ...                                  # runs on a worker, without the GIL

    cdef tio_sched *s = tio_sched_of(scheduler)   # a started NumaScheduler
    with nogil:
        st = tio_submit_native(s, work, arg, 0, -1)   # TIO_OK / TIO_FULL / TIO_INVALID (not running)

``tio_sched_of`` keeps nothing alive: the caller keeps the NumaScheduler
object alive (and running) while it submits.  Inside a running task,
``tio_spawn_native(work, arg)`` pushes onto the current worker's own deque
(no placement, no wake-up unless a worker sleeps with nothing to steal).

Ownership: a task record (``tio_task``, one 32-byte pool block) is allocated
by the submitter, owned by whichever queue holds it, then by the worker that
took it out; that worker frees it after the task ran (or was cancelled).  For
a Python task ``arg`` is a ``PyObject*`` that owns one reference: INCREF'd by
``submit_task`` under the GIL, DECREF'd by the worker under the GIL after
``execute()`` returned (nogil code never touches it).
"""
from libc.stdint cimport uint8_t, uint16_t, uint32_t, int32_t, uint64_t, int64_t
from cpython.ref cimport PyObject
from tallyio.metrics.tio_hist cimport tio_hist
from tallyio._ext.common cimport tio_atomic_u64, tio_atomic_u32
from tallyio._ext.mpmc cimport tio_mpmc
from tallyio._ext.deque cimport tio_deque
from tallyio._ext.pool cimport tio_pool, tio_pool_cache

cdef extern from *:
    """
    #ifndef TIO_SCHED_CONSTANTS
    #define TIO_SCHED_CONSTANTS
    #define TIO_BANDS 8                 /* priority bands: band = priority >> 5 */
    #define TIO_BAND_SHIFT 5
    #define TIO_STASH_MAX 1024          /* >= SchedulerConfig.steal_batch's maximum */
    #define TIO_GATE_CLOSED    0x8000000000000000ull
    #endif
    """
    enum: TIO_BANDS
    enum: TIO_BAND_SHIFT
    enum: TIO_STASH_MAX
    const uint64_t TIO_GATE_CLOSED

ctypedef void (*tio_native_fn)(void *arg) noexcept nogil

cdef enum:
    TIO_TASK_PYTHON = 0      # arg: PyObject* of a tallyio.Task (one owned reference)
    TIO_TASK_NATIVE = 1      # fn(arg) without the GIL

# worker sleep states (tio_worker.sleep_state)
cdef enum:
    TIO_AWAKE = 0
    TIO_SLEEPING = 1         # parked or about to park; counted in the idle word's sleeping half
    TIO_NOTIFIED = 2         # a waker moved it out of the sleeping count; it wakes as a searcher

# scheduler modes (tio_sched.mode)
cdef enum:
    TIO_MODE_RUNNING = 0
    TIO_MODE_DRAIN = 1       # closed to submitters; workers run what is queued, then exit
    TIO_MODE_CANCEL = 2      # closed; workers finish the task in hand and exit; the stopper cancels the rest

cdef struct tio_task:        # one pool block
    tio_native_fn fn
    void *arg
    uint64_t submit_tick     # tio_ticks() at submission: queue-wait histogram
    uint32_t est_us          # estimated duration, for the load counters
    uint16_t attempts        # RETRY re-queues so far
    uint8_t priority
    uint8_t kind             # TIO_TASK_PYTHON / TIO_TASK_NATIVE

cdef struct tio_worker_stats:    # written by the owner only (relaxed load+store), read by stats()
    tio_atomic_u64 processed     # finished: succeeded + failed
    tio_atomic_u64 succeeded
    tio_atomic_u64 failed
    tio_atomic_u64 retried
    tio_atomic_u64 stolen        # tasks this worker took from others
    tio_atomic_u64 steal_attempts
    tio_atomic_u64 cancelled
    tio_atomic_u64 busy_ticks
    tio_atomic_u64 migrated      # tasks this worker handed to a less loaded worker

cdef struct tio_worker:
    # ---- read-mostly after start -------------------------------------------
    tio_sched *sched
    uint32_t index
    uint32_t node                # node index (0..nnodes-1), not the sysfs id
    int32_t cpu                  # pinned CPU or -1
    uint32_t nvictims
    uint32_t *victims            # steal order: same node first, then by distance
    uint32_t *victim_group_end   # victims[.. group_end[k]) share a distance rank
    uint32_t nvictim_groups
    tio_deque *local             # spawned band-0 work (Chase-Lev: this worker owns it)
    tio_mpmc *inbox[TIO_BANDS]   # any thread pushes; owner and thieves pop
    char _pad0[128]
    # ---- written by submitters (RMW) ---------------------------------------
    tio_atomic_u64 submitted     # accepted here from submit()/spawn (not retries, not moves)
    tio_atomic_u64 enq_tasks     # everything put into this worker's queues
    tio_atomic_u64 enq_us
    tio_atomic_u32 band_hint     # bit b: inbox[b] may be non-empty (set by pushers, cleared by the owner)
    char _pad1[128]
    # ---- written by thieves and migrators (RMW) ----------------------------
    tio_atomic_u64 out_tasks     # taken out of this worker's queues by others
    tio_atomic_u64 out_us
    char _pad2[128]
    # ---- written by the owner (published every few tasks) ------------------
    tio_atomic_u64 deq_tasks     # taken out by the owner
    tio_atomic_u64 deq_us
    tio_atomic_u64 spawned       # queued from inside tasks running here (owner only: load+store, no lock)
    tio_atomic_u64 own_enq_tasks  # spawned onto this worker's deque (owner only: load+store)
    tio_atomic_u64 own_enq_us
    char _pad3[128]
    # ---- sleep state (futex word) -------------------------------------------
    tio_atomic_u32 sleep_state
    char _pad4[128]
    tio_worker_stats stats
    # the Python task in execute() now, or NULL (borrowed; read and written only with the GIL
    # held: stop(timeout=) names it)
    PyObject *running_task
    char _pad5[128]
    # ---- owner-private ------------------------------------------------------
    tio_pool_cache cache
    uint64_t rng
    uint64_t deq_tasks_local     # unpublished part of deq_*
    uint64_t deq_us_local
    uint32_t since_publish
    uint32_t since_rebalance
    uint32_t spawns_to_idle_check  # spawn_record loads the idle word when this reaches 0
    uint64_t task_start_tick     # when the running native task started (its spawns' submit tick)
    # last time each band (and the deque, index TIO_BANDS) was served or seen empty
    uint64_t band_age_tick[TIO_BANDS + 1]
    tio_task *carry              # an item taken while holding the GIL, to run next
    uint32_t stash_head
    uint32_t stash_count
    uint32_t stash_band
    tio_task **stash             # items stolen from another worker's inbox (private)
    # ---- histograms: owner writes, stats() reads (relaxed) -------------------
    tio_hist wait_hist           # submit -> start (ticks), tio_hist.h: owner records, stats() reads
    tio_hist exec_hist           # start -> end (ticks)

cdef struct tio_sched:
    uint32_t nworkers
    uint32_t nnodes
    tio_worker **workers         # ordered by node
    uint32_t *node_first         # workers of node n: [node_first[n], node_first[n+1])
    tio_pool *pool
    uint64_t capacity            # per inbox band and per deque (a power of two)
    # configuration
    bint stealing
    uint32_t steal_batch
    uint32_t max_retries
    uint32_t gil_batch
    uint64_t gil_batch_ticks
    uint64_t spin_ticks
    uint32_t max_spinners        # searchers allowed to spin at once; the rest park at once
    uint64_t aging_ticks
    double threshold
    double ns_per_tick
    PyObject *core               # the SchedulerCore (borrowed: the worker threads keep it alive)
    char _pad0[128]
    tio_atomic_u64 idle          # searching (low 32) | sleeping (high 32) workers: sched_idle.pxd
    char _pad1[128]
    tio_atomic_u64 gate          # TIO_GATE_CLOSED | native submitters inside
    char _pad2[128]
    tio_atomic_u64 wakeups       # futex wakes issued (a parked worker woken)
    tio_atomic_u64 stopper_cancelled  # records the stopper cancelled (RMW: workers may still run)
    char _pad3[128]
    # ---- back-pressure: submitters blocked on full queues (README: "Blocking submit")
    tio_atomic_u64 room_waiters  # submitters inside a blocking wait for a free slot
    tio_atomic_u32 room_seq      # futex word: bumped when a worker frees slots while someone waits
    char _pad4[128]
    tio_atomic_u32 mode          # TIO_MODE_*
    tio_atomic_u32 exited        # worker threads that left their loop
    tio_atomic_u32 go            # 1 once every worker has allocated its queues (victims must exist)

# ---- public C API --------------------------------------------------------
cdef tio_sched *tio_sched_of(object scheduler) except NULL
cdef int tio_submit_native(tio_sched *s, tio_native_fn fn, void *arg,
                           int priority, int preferred_node) noexcept nogil
cdef int tio_spawn_native(tio_native_fn fn, void *arg) noexcept nogil
cdef int tio_submit_native_many(tio_sched *s, tio_native_fn fn, void **args, uint64_t n,
                                int priority, int preferred_node, uint64_t *accepted) noexcept nogil


cdef class SchedulerCore:
    cdef tio_sched *s
    cdef bint started
    cdef bint forked
    cdef object __weakref__
    cdef public object on_failure      # callable(task, exc) with the GIL, from a worker
    cdef public object cancel_marker   # execute() returning this counts as cancelled
    cdef object task_type              # tallyio.task.Task
    cdef object task_result            # tallyio.task.TaskResult
    cdef object success, failed, retry
    cdef object default_execute, default_priority, default_duration, default_node
    cdef dict node_index_of            # sysfs node id -> node index
    cdef object cached_type            # one-entry cache of a Task subclass's overrides
    cdef int cached_priority           # >= 0: priority() not overridden; -1: call it
    cdef int cached_duration           # >= 0: estimated_duration_us() not overridden
    cdef bint cached_node              # preferred_node() overridden
    cdef dict learned_types            # Task subclass -> (priority, duration, node) as cached_*
    cdef tio_pool_cache submit_cache   # used only with the GIL held: the GIL is its owner
    cdef uint64_t submit_rng

    cdef void _release_queued(self)
    cdef tio_task *_take_any(self)
    cdef tio_task *_take_shared(self)
    cdef void _cancel_record(self, tio_task *t, object on_cancel, list interrupted)
    cdef int _submit_waiting(self, object task, tio_task *t, int priority, uint64_t est,
                             int node, object timeout) except -1
    cdef int _check_accepting(self, tio_worker *me) except -1
    cdef void _run_python_here(self, tio_worker *w, tio_task *t)
    cdef int _learn_type(self, object tp) except -1
    cdef int _overrides_of(self, object tp) except -1
    cdef int _call_priority(self, object task) except -1
    cdef uint64_t _call_duration(self, object task) except? 0xFFFFFFFFFFFFFFFF
    cdef int _call_node(self, object task) except -2
    cdef int _raise_not_running(self) except -1

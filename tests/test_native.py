"""Native tasks: C functions submitted through the scheduler's public C API
(tallyio/_ext/scheduler.pxd) and run on the workers without the GIL.

tallyio._ext.native_example is the package's worked example of that API; the
last test compiles a user module outside the package against the installed
.pxd files, as a user would."""
import gc
import sys
import time
import weakref

import numpy as np
import pytest

from conftest import build_user_extension, run_threads, scaled
from schedtools import Gate
from tallyio import NumaScheduler, SchedulerConfig, SchedulerNotRunningError
from tallyio._ext import native_example
from tallyio._ext.native_example import NativeBatch, measure_native_throughput, spawn_tree

# every test here runs real worker threads (nogil loops): all of them run under TSan too
pytestmark = [pytest.mark.timeout(60), pytest.mark.concurrency]


def two_workers(**overrides) -> NumaScheduler:
    return NumaScheduler(SchedulerConfig(workers_per_numa_node=2, **overrides))


def assert_exactly_once(batch: NativeBatch) -> None:
    counts = batch.counts()
    ran_twice = np.flatnonzero(counts > 1)
    never_ran = np.flatnonzero(counts == 0)
    assert ran_twice.size == 0, f"slots run more than once: {ran_twice[:10]} ({ran_twice.size} in all)"
    assert never_ran.size == 0, f"slots never run: {never_ran[:10]} ({never_ran.size} in all)"


# ---- smoke and conservation --------------------------------------------------------

def test_smoke_batch_lifecycle():
    batch = NativeBatch(10, work_iters=5)
    assert (batch.n, batch.work_iters, batch.accepted, batch.done()) == (10, 5, 0, 0)
    assert batch.counts().tolist() == [0] * 10
    assert batch.wait(timeout=0) is True          # nothing submitted: nothing to wait for
    with two_workers() as scheduler:
        assert batch.submit(scheduler) == 10
        assert batch.wait(timeout=30)
    assert batch.accepted == 10 and batch.done() == 10
    assert_exactly_once(batch)
    assert batch.results().all()                  # every task stored its mix
    assert "done=10" in repr(batch)


@pytest.mark.parametrize("many", [False, True], ids=["one-by-one", "submit_many"])
def test_submitted_tasks_run_exactly_once(many):
    n = scaled(100_000)
    with two_workers() as scheduler:
        batch = NativeBatch(n)
        assert batch.submit(scheduler, many=many) == n
        assert batch.wait(timeout=50)
        assert_exactly_once(batch)
        assert scheduler.join(timeout=10)
        metrics = scheduler.stats().metrics
        assert metrics.tasks_submitted == metrics.tasks_processed == metrics.tasks_succeeded == n
        assert metrics.tasks_failed == metrics.tasks_cancelled == 0


@pytest.mark.parametrize("many", [False, True], ids=["one-by-one", "submit_many"])
def test_several_threads_submit_at_once(many):
    # each submit() runs its whole loop without the GIL, so these submitters
    # really push into the inboxes concurrently with each other and the workers
    threads, n = 4, scaled(25_000)
    batches = [NativeBatch(n) for _ in range(threads)]
    with two_workers(queue_capacity=256) as scheduler:   # small inboxes: submitters meet TIO_FULL
        submit = (lambda b: b.submit(scheduler, many=True)) if many else (lambda b: b.submit(scheduler))
        accepted = run_threads(*[(submit, (b,)) for b in batches], timeout=50)
        assert accepted == [n] * threads
        for b in batches:
            assert b.wait(timeout=30)
            assert_exactly_once(b)
        assert scheduler.join(timeout=10)
        metrics = scheduler.stats().metrics
    assert metrics.tasks_submitted == metrics.tasks_processed == threads * n


@pytest.mark.parametrize("fanout", [1, 2, 8, 1000])
def test_spawn_tree_runs_every_task_once(fanout):
    # fanout 1 is a chain (one spawn per task); 1000 with 64-slot queues makes
    # spawns fail with TIO_FULL, and the spawning task runs those children itself
    n = scaled(100_000) if fanout > 1 else scaled(20_000)
    with two_workers(queue_capacity=64) as scheduler:
        tree = spawn_tree(scheduler, n, fanout=fanout)
        assert tree.accepted == n
        assert tree.wait(timeout=50)
        assert_exactly_once(tree)
        assert scheduler.join(timeout=10)
        metrics = scheduler.stats().metrics
    # children run inline when a spawn finds no room, so they are not all tasks
    assert 1 <= metrics.tasks_processed <= n
    assert metrics.tasks_processed == metrics.tasks_submitted
    # stealing is likely but not guaranteed on 2 shared cores: reported, not asserted
    print(f"\nfanout={fanout}: {metrics.tasks_processed} scheduler tasks for {n} slots, "
          f"{metrics.tasks_stolen} stolen in {metrics.steal_attempts} steal attempts")


def test_stop_drains_a_tree_still_spawning():
    # stop() right after the root was submitted: draining workers run the
    # spawned children, and whatever is left after they exit runs on the
    # stopping thread (where tio_spawn_native answers TIO_INVALID: inline)
    n = scaled(50_000)
    scheduler = two_workers().start()
    try:
        tree = spawn_tree(scheduler, n, fanout=4, work_iters=50)
    finally:
        scheduler.stop(wait=True)
    assert_exactly_once(tree)


def test_cancelling_stop_loses_nothing():
    n = 2_000
    scheduler = two_workers().start()
    try:
        batch = NativeBatch(n, work_iters=20_000)
        batch.submit(scheduler)
    finally:
        scheduler.stop(wait=True, cancel_pending=True)
    metrics = scheduler.stats().metrics
    assert batch.counts().max() <= 1
    assert batch.done() + metrics.tasks_cancelled == n     # accepted = ran + cancelled
    assert metrics.tasks_processed == batch.done()
    if metrics.tasks_cancelled:
        assert batch.wait(timeout=0.05) is False           # the cancelled ones never run


# ---- without the GIL ----------------------------------------------------------------

def test_native_tasks_run_while_this_thread_holds_the_gil():
    # With a switch interval of an hour the main thread's eval loop never
    # offers the GIL to another thread while it spins in pure Python (nothing
    # below blocks or releases it).  The tasks still all finish, so they ran
    # without the GIL -- on both workers at once.
    n = 64
    batch = NativeBatch(n, work_iters=300_000)             # ~0.5 ms of mixing per task
    with two_workers() as scheduler:
        interval = sys.getswitchinterval()
        sys.setswitchinterval(3600.0)
        try:
            batch.submit(scheduler)
            deadline = time.monotonic() + 30.0
            while batch.done() < n and time.monotonic() < deadline:
                pass
        finally:
            sys.setswitchinterval(interval)
        assert batch.done() == n, "native tasks stalled while the main thread held the GIL"
        assert scheduler.join(timeout=10)
        per_worker = [w.processed for w in scheduler.stats().workers]
    assert_exactly_once(batch)
    assert len(per_worker) == 2 and all(p > 0 for p in per_worker), per_worker


# ---- bad input and closed schedulers -------------------------------------------------------

@pytest.mark.parametrize("priority", [-1, 256, 1000])
def test_priority_outside_0_255_is_a_value_error(priority):
    batch = NativeBatch(5)
    with two_workers() as scheduler:
        with pytest.raises(ValueError, match=f"priority {priority}"):
            batch.submit(scheduler, priority=priority)
        assert batch.accepted == 0
        assert batch.submit(scheduler, priority=255) == 5   # nothing went in: it may be submitted again
        assert batch.wait(timeout=30)
        with pytest.raises(ValueError, match="priority"):
            spawn_tree(scheduler, 5, priority=priority)
    assert_exactly_once(batch)


def test_preferred_node_must_name_a_node():
    with two_workers() as scheduler:
        for node in (-2, 1, 7):
            with pytest.raises(ValueError, match="preferred_node"):
                NativeBatch(3).submit(scheduler, preferred_node=node)
        batch = NativeBatch(3)
        batch.submit(scheduler, preferred_node=0)
        assert batch.wait(timeout=30)


def test_c_api_rejects_a_null_function_and_bad_priorities():
    with two_workers() as scheduler:
        assert native_example._raw_submit(scheduler) == "OK"
        assert native_example._raw_submit(scheduler, null_fn=True) == "INVALID"
        assert native_example._raw_submit(scheduler, priority=256) == "INVALID"
        assert native_example._raw_submit(scheduler, priority=-1) == "INVALID"
        assert scheduler.join(timeout=10)
        assert scheduler.stats().metrics.tasks_processed == 1
    assert native_example._raw_submit(scheduler) == "CLOSED"


def test_spawn_outside_a_worker_is_invalid():
    assert native_example._spawn_outside_worker() == "INVALID"


def test_submit_before_start_and_after_stop():
    scheduler = two_workers()
    with pytest.raises(SchedulerNotRunningError):
        NativeBatch(3).submit(scheduler)
    with pytest.raises(SchedulerNotRunningError):
        spawn_tree(scheduler, 3)
    scheduler.start()
    scheduler.stop()
    batch = NativeBatch(3)
    with pytest.raises(SchedulerNotRunningError):
        batch.submit(scheduler)
    assert batch.accepted == 0
    with pytest.raises(SchedulerNotRunningError):
        spawn_tree(scheduler, 3)
    with pytest.raises(SchedulerNotRunningError):
        measure_native_throughput(scheduler, 10)


def test_bad_arguments_are_named():
    with pytest.raises(TypeError, match="n must be an int"):
        NativeBatch("10")
    with pytest.raises(TypeError, match="n must be an int"):
        NativeBatch(True)
    with pytest.raises(ValueError, match="n must be in 1"):
        NativeBatch(0)
    with pytest.raises(ValueError, match="work_iters"):
        NativeBatch(1, work_iters=-1)
    with pytest.raises(ValueError, match="timeout"):
        NativeBatch(1).wait(timeout=-1)
    with pytest.raises(TypeError, match="expected a NumaScheduler"):
        NativeBatch(1).submit(object())
    with two_workers() as scheduler:
        with pytest.raises(ValueError, match="fanout must be in"):
            spawn_tree(scheduler, 10, fanout=0)
        with pytest.raises(TypeError, match="fanout must be an int"):
            spawn_tree(scheduler, 10, fanout=2.0)
        with pytest.raises(ValueError, match="mode"):
            measure_native_throughput(scheduler, 10, mode="both")


def test_a_batch_is_submitted_once():
    with two_workers() as scheduler:
        batch = NativeBatch(4)
        batch.submit(scheduler)
        with pytest.raises(RuntimeError, match="already submitted"):
            batch.submit(scheduler)
        assert batch.wait(timeout=30)
    assert_exactly_once(batch)


# ---- lifetime: a batch outlives the tasks that point into it -------------------------------------

def test_submitted_batch_stays_alive_until_its_tasks_ran():
    scheduler = two_workers().start()
    gates = [Gate(), Gate()]
    try:
        # both workers held in a Python task: none of the batch can run yet
        # (without that a slow submit, under TSan, let every task finish first)
        for gate in gates:
            scheduler.submit_task(gate)
        assert all(gate.started.wait(30) for gate in gates)
        batch = NativeBatch(2_000, work_iters=2_000)
        batch.submit(scheduler)
        ref = weakref.ref(batch)
        del batch
        gc.collect()
        assert ref() is not None, "a batch whose tasks may still run was freed"
        for gate in gates:
            gate.release.set()
        assert scheduler.join(timeout=30)
        # settled batches are forgotten at the next submit to the same scheduler
        other = NativeBatch(1)
        other.submit(scheduler)
        assert other.wait(timeout=30)
        gc.collect()
        assert ref() is None
        # wait() forgets its own batch once every task ran
        waited = NativeBatch(100)
        waited.submit(scheduler)
        assert waited.wait(timeout=30)
        ref = weakref.ref(waited)
        del waited
        gc.collect()
        assert ref() is None
    finally:
        for gate in gates:
            gate.release.set()
        scheduler.stop()


def test_batch_with_cancelled_tasks_is_released_with_its_scheduler():
    scheduler = two_workers().start()
    batch = NativeBatch(2_000, work_iters=20_000)
    batch.submit(scheduler)
    scheduler.stop(cancel_pending=True)
    ref = weakref.ref(batch)
    del batch
    del scheduler
    gc.collect()
    assert ref() is None


# ---- the benchmark helper -------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["submit", "submit_many", "spawn"])
def test_measure_native_throughput_runs(mode):
    with two_workers() as scheduler:
        rate = measure_native_throughput(scheduler, scaled(20_000), mode=mode)
        assert scheduler.join(timeout=10)
    assert rate > 0 and np.isfinite(rate)


# ---- a user's own module against the installed .pxd files -------------------------------------------

USER_MODULE = '''
from libc.stdint cimport uint64_t, uintptr_t
from tallyio.errors import SchedulerNotRunningError
from tallyio._ext.common cimport (TIO_OK, TIO_FULL, TIO_CLOSED, tio_atomic_u64, tio_atomic_init_u64,
                                  tio_atomic_fetch_add_u64_relaxed, tio_atomic_load_u64_acquire)
from tallyio._ext.scheduler cimport tio_sched, tio_sched_of, tio_submit_native

cdef tio_atomic_u64 total

cdef void add(void *arg) noexcept nogil:
    tio_atomic_fetch_add_u64_relaxed(&total, <uint64_t><uintptr_t>arg)

def sum_on_workers(scheduler, uint64_t n):
    """Submit add(1) .. add(n) as native tasks, wait, return the sum."""
    cdef tio_sched *s = tio_sched_of(scheduler)
    cdef uint64_t i = 1
    cdef int st = TIO_OK
    tio_atomic_init_u64(&total, 0)
    with nogil:
        while i <= n:
            st = tio_submit_native(s, add, <void *><uintptr_t>i, 0, -1)
            if st == TIO_OK:
                i += 1
            elif st != TIO_FULL:
                break
    if st == TIO_CLOSED:
        raise SchedulerNotRunningError("the scheduler is not running")
    if st != TIO_OK:
        raise RuntimeError(f"tio_submit_native returned status {st}")
    scheduler.join()
    return tio_atomic_load_u64_acquire(&total)
'''


@pytest.mark.timeout(600)
def test_user_module_submits_native_tasks(tmp_path, monkeypatch):
    user_native = build_user_extension(tmp_path, "user_native", USER_MODULE, monkeypatch)
    n = scaled(50_000)
    with two_workers(queue_capacity=256) as scheduler:
        assert user_native.sum_on_workers(scheduler, n) == n * (n + 1) // 2
    with pytest.raises(SchedulerNotRunningError):
        user_native.sum_on_workers(scheduler, 1)

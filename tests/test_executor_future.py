"""The Executor face's C path (tallyio/_ext/sched_future.pyx): the Future
``submit()`` builds and settles without a Python frame still behaves as
ThreadPoolExecutor's does where the contract tests (test_executor.py) do not
look: waiters blocked in result()/wait()/as_completed() on other threads, the
condition's own protocol, callbacks after the state change, and the objects a
submit leaves to the cyclic GC."""
import concurrent.futures as cf
import gc
import threading
import time

import pytest

from tallyio import NumaScheduler, SchedulerConfig
from tallyio._ext.sched_future import FutureCall, FutureCondition, FutureSubmitter
from tallyio.scheduler import Future, _CallTask

pytestmark = [pytest.mark.timeout(60)]


@pytest.fixture
def scheduler():
    s = NumaScheduler(SchedulerConfig(workers_per_numa_node=2, enable_cpu_affinity=False)).start()
    try:
        yield s
    finally:
        s.shutdown(wait=True)


def test_submit_is_the_c_submitter_and_builds_scheduler_futures(scheduler):
    assert isinstance(scheduler.submit, FutureSubmitter)
    future = scheduler.submit(pow, 3, 4)
    assert type(future) is Future and isinstance(future, cf.Future)
    assert isinstance(future._condition, FutureCondition)
    assert future.result(10) == 81
    assert future.done() and not future.running() and not future.cancelled()


def test_a_subclass_with_its_own_submit_keeps_it():
    class Counting(NumaScheduler):
        calls = 0

        def submit(self, fn, /, *args, **kwargs):
            type(self).calls += 1
            return super().submit(fn, *args, **kwargs)

    with Counting(SchedulerConfig(workers_per_numa_node=2, enable_cpu_affinity=False)) as s:
        assert s.submit(abs, -2).result(10) == 2
        assert list(s.map(abs, [-1, -3])) == [1, 3]
    assert Counting.calls == 3


def test_records_and_conditions_stay_out_of_the_cyclic_gc(scheduler):
    # the profile's lesson: every tracked object a submit allocates brings the
    # next collection nearer (the GC was ~27 % of a submit()+wait() run)
    release = threading.Event()
    blockers = [scheduler.submit(release.wait, 10) for _ in range(scheduler.worker_count)]
    queued = scheduler.submit(abs, -1)
    for _ in range(10000):
        calls = [task for _, task in scheduler._core.running_tasks()]
        if len(calls) == scheduler.worker_count:
            break
        time.sleep(0.001)
    assert calls and all(isinstance(call, FutureCall) for call in calls)
    assert not any(gc.is_tracked(call) for call in calls)
    assert not gc.is_tracked(queued._condition)
    release.set()
    assert queued.result(10) == 1 and all(b.result(10) for b in blockers)


def test_result_and_wait_block_on_other_threads_until_the_worker_settles(scheduler):
    gate = threading.Event()
    future = scheduler.submit(gate.wait, 10)
    seen = []
    waiters = [threading.Thread(target=lambda: seen.append(future.result(30))) for _ in range(3)]
    waiters.append(threading.Thread(target=lambda: seen.append(len(cf.wait([future], 30).done))))
    waiters.append(threading.Thread(target=lambda: seen.append(next(cf.as_completed([future], 30)).result())))
    for t in waiters:
        t.start()
    with pytest.raises(cf.TimeoutError):
        future.result(0.01)
    gate.set()
    for t in waiters:
        t.join(30)
    assert sorted(map(str, seen)) == sorted(map(str, [True, True, True, 1, True]))


def test_exception_reaches_waiters_and_callbacks_see_the_final_state(scheduler):
    gate = threading.Event()
    states = []

    def boom():
        gate.wait(10)
        raise KeyError("k")

    future = scheduler.submit(boom)
    future.add_done_callback(lambda f: states.append((f.done(), type(f.exception()))))
    future.add_done_callback(lambda f: 1 / 0)        # logged, the next still runs
    last = threading.Event()
    future.add_done_callback(lambda f: (states.append("second"), last.set()))
    t = threading.Thread(target=lambda: states.append(cf.wait([future], 30, cf.FIRST_EXCEPTION)[0] == {future}))
    t.start()
    gate.set()
    with pytest.raises(KeyError):
        future.result(30)
    t.join(30)
    assert last.wait(30)                 # callbacks run after the state change, on the worker
    assert (True, KeyError) in states and "second" in states and True in states


def test_cancelled_while_queued_notifies_wait_and_never_runs(scheduler):
    release = threading.Event()
    ran = []
    blockers = [scheduler.submit(release.wait, 10) for _ in range(scheduler.worker_count)]
    queued = scheduler.submit(ran.append, 1)
    assert queued.cancel() and queued.cancelled()
    release.set()
    done, not_done = cf.wait([queued, *blockers], 30)
    assert queued in done and not not_done
    assert scheduler.join(30) and ran == []
    assert scheduler.stats().metrics.tasks_cancelled >= 1


def test_the_condition_is_a_working_condition():
    cond = FutureCondition()
    with pytest.raises(RuntimeError):
        cond.notify()                     # not owned
    assert cond.acquire(False) and cond._is_owned()
    cond.release()
    items = []

    def consumer():
        with cond:
            assert cond.wait_for(lambda: items, 30)

    t = threading.Thread(target=consumer)
    t.start()
    while True:                           # the consumer is waiting once it left the lock to us with a waiter
        with cond:
            if cond._waiters:
                items.append(1)
                cond.notify_all()
                break
    t.join(30)
    assert not t.is_alive()
    with cond:
        assert cond.wait(0.001) is False  # a timeout, not a hang
    assert "FutureCondition" in repr(cond)


def test_scheduler_future_built_directly_behaves_as_a_future():
    future = Future()
    assert future.set_running_or_notify_cancel()
    future.set_result(5)
    assert future.result() == 5 and "finished" in repr(future)


def test_submitter_checks_its_types(scheduler):
    with pytest.raises(TypeError, match="FutureCall"):
        FutureSubmitter(object, Future, scheduler.submit_task, None, object(), object)
    with pytest.raises(TypeError, match="concurrent.futures.Future"):
        FutureSubmitter(_CallTask, object, scheduler.submit_task, None, None, None)
    with pytest.raises(TypeError, match="callable"):
        scheduler.submit(42)


@pytest.mark.concurrency
def test_futures_from_several_threads_each_settle_exactly_once(scheduler):
    per_thread, threads = 3000, 3
    counts = [0] * (per_thread * threads)
    lock = threading.Lock()

    def bump(i):
        with lock:
            counts[i] += 1
        return i

    results = [None] * threads

    def submitter(k):
        futures = [scheduler.submit(bump, k * per_thread + i) for i in range(per_thread)]
        done, not_done = cf.wait(futures, 60)
        assert not not_done
        results[k] = sorted(f.result() for f in futures)

    workers = [threading.Thread(target=submitter, args=(k,)) for k in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(60)
    assert counts == [1] * len(counts)
    assert [r for r in results] == [list(range(k * per_thread, (k + 1) * per_thread)) for k in range(threads)]

"""NumaScheduler as a concurrent.futures.Executor, side by side with
ThreadPoolExecutor: the same test runs on both where their contracts agree,
so a difference in behaviour shows up as one failing parameter."""
import asyncio
import concurrent.futures as cf
import logging
import threading

import pytest

from tallyio import NumaScheduler, SchedulerConfig, SchedulerNotRunningError

# every test here runs real worker threads (nogil loops): all of them run under TSan too
pytestmark = [pytest.mark.timeout(60), pytest.mark.concurrency]

WORKERS = 2


def new_scheduler(workers: int = WORKERS) -> NumaScheduler:
    return NumaScheduler(SchedulerConfig(workers_per_numa_node=workers, enable_cpu_affinity=False))


def new_executor(kind: str) -> cf.Executor:
    if kind == "tallyio":
        return new_scheduler().start()
    return cf.ThreadPoolExecutor(max_workers=WORKERS)


@pytest.fixture(params=["tallyio", "threadpool"])
def executor(request):
    ex = new_executor(request.param)
    try:
        yield ex
    finally:
        ex.shutdown(wait=True)


@pytest.fixture
def scheduler():
    s = new_scheduler().start()
    try:
        yield s
    finally:
        s.shutdown(wait=True)


class Blocker:
    """Occupies every worker of an executor until released, so what is
    submitted next stays queued.  Each worker runs one hold(); all of them
    must be inside before block() returns."""

    def __init__(self, executor, workers=WORKERS):
        self.release = threading.Event()
        self.inside = threading.Barrier(workers + 1)
        self.futures = [executor.submit(self.hold) for _ in range(workers)]
        self.inside.wait(10)

    def hold(self):
        self.inside.wait(10)
        assert self.release.wait(10), "blocker never released"
        return "held"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release.set()


def fail(*args):
    raise ValueError(*args)


# ---- submit, result, exception -------------------------------------------------------------

def test_submit_returns_a_future_with_the_result(executor):
    fut = executor.submit(pow, 2, 10)
    assert isinstance(fut, cf.Future)
    assert fut.result(10) == 1024
    assert fut.done() and not fut.cancelled() and fut.exception() is None


def test_submit_passes_keyword_arguments(executor):
    fut = executor.submit(sorted, [3, 1, 2], key=lambda x: -x, reverse=True)
    assert fut.result(10) == [1, 2, 3]
    # positional-only fn: a keyword named "fn" goes to the callable
    assert executor.submit(lambda **kw: kw, fn=1, self=2).result(10) == {"fn": 1, "self": 2}


def test_exception_propagates_with_type_and_args(executor):
    fut = executor.submit(fail, "bad", 42)
    with pytest.raises(ValueError) as info:
        fut.result(10)
    assert info.value.args == ("bad", 42)
    exc = fut.exception(10)
    assert type(exc) is ValueError and exc.args == ("bad", 42)
    assert exc.__traceback__ is not None


@pytest.mark.parametrize("exc", [KeyboardInterrupt("k"), SystemExit(2)], ids=lambda e: type(e).__name__)
def test_base_exceptions_are_set_on_the_future(executor, exc):
    def raise_it():
        raise exc

    fut = executor.submit(raise_it)
    assert fut.exception(10) is exc
    # the worker survived
    assert executor.submit(pow, 3, 2).result(10) == 9


def test_failed_future_is_counted_failed_and_not_logged(scheduler, caplog):
    caplog.set_level(logging.DEBUG, logger="tallyio")
    fut = scheduler.submit(fail, "x")
    assert isinstance(fut.exception(10), ValueError)
    assert scheduler.join(10)
    m = scheduler.stats().metrics
    assert m.tasks_failed == 1 and m.tasks_succeeded == 0
    assert [r for r in caplog.records if r.name == "tallyio"] == []   # the Future reports it


def test_submit_needs_a_callable(scheduler):
    with pytest.raises(TypeError, match="callable"):
        scheduler.submit(42)
    assert scheduler.stats().metrics.tasks_submitted == 0


def test_many_futures_all_resolve(executor):
    futures = [executor.submit(pow, i, 2) for i in range(2000)]
    assert [f.result(30) for f in futures] == [i * i for i in range(2000)]


def test_done_callbacks_run(executor):
    seen = []
    done = threading.Event()

    def callback(fut):
        seen.append(fut.result())
        done.set()

    fut = executor.submit(pow, 2, 5)
    fut.add_done_callback(callback)
    assert done.wait(10)
    assert seen == [32]
    # added after completion: runs at once, in this thread
    fut.add_done_callback(lambda f: seen.append(("late", threading.current_thread().name)))
    assert seen == [32, ("late", threading.current_thread().name)]


# ---- map, as_completed, wait --------------------------------------------------------------------

def test_map_keeps_order(executor):
    assert list(executor.map(pow, range(50), [2] * 50)) == [i * i for i in range(50)]


def test_map_with_multiple_iterables_stops_at_the_shortest(executor):
    assert list(executor.map(pow, [2, 3, 4], [3, 2])) == [8, 9]


def test_map_raises_the_first_exception_when_reached(executor):
    results = executor.map(lambda x: 1 // x, [1, 2, 0, 4])
    assert next(results) == 1
    assert next(results) == 0
    with pytest.raises(ZeroDivisionError):
        next(results)


def test_map_timeout(executor):
    release = threading.Event()
    try:
        results = executor.map(lambda x: release.wait(10) and x, [1, 2], timeout=0.05)
        with pytest.raises(cf.TimeoutError):
            next(results)
    finally:
        release.set()


def test_as_completed_yields_every_future(executor):
    futures = {executor.submit(pow, i, 2): i for i in range(100)}
    got = {futures[f]: f.result() for f in cf.as_completed(futures, timeout=30)}
    assert got == {i: i * i for i in range(100)}


def test_wait_first_completed_and_all_completed(executor):
    with Blocker(executor, workers=1) as blocker:
        quick = executor.submit(pow, 2, 2)
        done, not_done = cf.wait([blocker.futures[0], quick], timeout=10, return_when=cf.FIRST_COMPLETED)
        assert quick in done and blocker.futures[0] in not_done
    done, not_done = cf.wait([blocker.futures[0], quick], timeout=10, return_when=cf.ALL_COMPLETED)
    assert not_done == set() and blocker.futures[0].result() == "held"


def test_wait_first_exception(executor):
    with Blocker(executor, workers=1) as blocker:
        bad = executor.submit(fail, "x")
        done, not_done = cf.wait([blocker.futures[0], bad], timeout=10, return_when=cf.FIRST_EXCEPTION)
        assert bad in done and blocker.futures[0] in not_done


# ---- asyncio --------------------------------------------------------------------------------------

def test_run_in_executor_and_wrap_future(executor):
    async def main():
        loop = asyncio.get_running_loop()
        a = await loop.run_in_executor(executor, pow, 2, 8)
        b = await asyncio.wrap_future(executor.submit(pow, 3, 3))
        many = await asyncio.gather(*(loop.run_in_executor(executor, pow, i, 2) for i in range(20)))
        with pytest.raises(ValueError, match="async"):
            await loop.run_in_executor(executor, fail, "async")
        return a, b, many

    a, b, many = asyncio.run(main())
    assert (a, b) == (256, 27) and many == [i * i for i in range(20)]


# ---- cancel and shutdown ------------------------------------------------------------------------

def test_cancel_before_it_runs(executor):
    ran = []
    with Blocker(executor):
        fut = executor.submit(ran.append, 1)
        assert fut.cancel() and fut.cancelled()
        with pytest.raises(cf.CancelledError):
            fut.result(0)
    executor.shutdown(wait=True)
    assert ran == []
    if isinstance(executor, NumaScheduler):
        m = executor.stats().metrics
        assert m.tasks_cancelled == 1
        assert m.tasks_submitted == m.tasks_processed + m.tasks_cancelled == 3


def test_cancel_of_a_running_or_finished_future_fails(executor):
    with Blocker(executor, workers=1) as blocker:
        assert not blocker.futures[0].cancel()
    assert blocker.futures[0].result(10) == "held"
    assert not blocker.futures[0].cancel()


def test_shutdown_wait_runs_everything(executor):
    ran = []
    futures = [executor.submit(ran.append, i) for i in range(500)]
    executor.shutdown(wait=True)
    assert sorted(ran) == list(range(500))
    assert all(f.done() and not f.cancelled() for f in futures)


def test_shutdown_cancel_futures(executor):
    ran = []
    blocker = Blocker(executor)
    try:
        queued = [executor.submit(ran.append, i) for i in range(20)]
        executor.shutdown(wait=False, cancel_futures=True)
    finally:
        blocker.release.set()
    executor.shutdown(wait=True)
    assert ran == []
    assert [b.result(10) for b in blocker.futures] == ["held"] * WORKERS     # the running ones finish
    for fut in queued:
        assert fut.cancelled()
        with pytest.raises(cf.CancelledError):
            fut.result(0)
    if isinstance(executor, NumaScheduler):
        m = executor.stats().metrics
        assert m.tasks_cancelled == 20
        assert m.tasks_processed == WORKERS
        assert m.tasks_submitted == m.tasks_processed + m.tasks_cancelled


def test_shutdown_cancel_futures_with_wait(scheduler):
    """wait=True and cancel_futures=True at once: the running task is waited for."""
    blocker = Blocker(scheduler)
    queued = [scheduler.submit(pow, i, 2) for i in range(20)]

    def release_once_cancelling():
        while not scheduler._core.cancelling:
            threading.Event().wait(0.001)
        blocker.release.set()

    releaser = threading.Thread(target=release_once_cancelling)
    releaser.start()
    try:
        scheduler.shutdown(wait=True, cancel_futures=True)
    finally:
        blocker.release.set()
        releaser.join()
    assert all(f.cancelled() for f in queued)
    assert [b.result(0) for b in blocker.futures] == ["held"] * WORKERS
    assert scheduler.stats().metrics.tasks_cancelled == 20


def test_submit_after_shutdown_is_a_runtimeerror(executor):
    executor.shutdown(wait=True)
    with pytest.raises(RuntimeError):
        executor.submit(pow, 2, 2)
    if isinstance(executor, NumaScheduler):
        with pytest.raises(SchedulerNotRunningError):
            executor.submit(pow, 2, 2)
        assert executor.stats().metrics.tasks_submitted == 0


def test_shutdown_twice_is_harmless(executor):
    fut = executor.submit(pow, 2, 2)
    executor.shutdown(wait=True)
    executor.shutdown(wait=True)
    executor.shutdown(wait=False, cancel_futures=True)
    assert fut.result(0) == 4


@pytest.mark.parametrize("kind", ["tallyio", "threadpool"])
def test_context_manager_starts_and_stops(kind):
    if kind == "tallyio":
        ex = new_scheduler()
        assert not ex.running
    else:
        ex = cf.ThreadPoolExecutor(WORKERS)
    ran = []
    with ex as entered:
        assert entered is ex
        futures = [ex.submit(ran.append, i) for i in range(100)]
    assert sorted(ran) == list(range(100)) and all(f.done() for f in futures)
    with pytest.raises(RuntimeError):
        ex.submit(pow, 1, 1)
    if kind == "tallyio":
        assert not ex.running
        assert not any(t.name.startswith("tallyio-worker-") and t.is_alive() for t in ex._threads)


def test_an_exception_in_the_with_block_still_stops(scheduler):
    ran = []
    with pytest.raises(KeyError):
        with scheduler:
            for i in range(50):
                scheduler.submit(ran.append, i)
            raise KeyError("user code failed")
    assert not scheduler.running
    assert sorted(ran) == list(range(50))


def test_submit_from_inside_a_submitted_function(executor):
    def outer(n):
        return [executor.submit(pow, i, 2) for i in range(n)]

    inner = executor.submit(outer, 10).result(10)
    assert [f.result(10) for f in inner] == [i * i for i in range(10)]


def test_future_result_waited_on_inside_a_worker_with_a_spare_worker(executor):
    """A task may wait on another future while a second worker is free to run it."""
    def outer():
        return executor.submit(pow, 5, 2).result(10)

    assert executor.submit(outer).result(10) == 25

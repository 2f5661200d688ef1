"""The awaitable path: NumaScheduler.run / run_task / submit_async delivering
results to event loops in batches (tallyio/_ext/sched_async.pyx; protocol in
tallyio/_ext/README.md, "Awaitable path")."""
import asyncio
import collections
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from conftest import run_threads, scaled, subprocess_env
from schedtools import make_config
from tallyio import NumaScheduler, SchedulerNotRunningError, Task, TaskResult

try:
    import uvloop
except ImportError:   # the tests of the uvloop loop skip; everything else runs
    uvloop = None

LOOPS = ["asyncio", pytest.param("uvloop", marks=pytest.mark.skipif(uvloop is None, reason="uvloop is not installed"))]
WAKES = ["call_soon", "eventfd"]


def run_on(kind, coro):
    """asyncio.run on the default loop or on uvloop."""
    if kind == "uvloop":
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coro)
    return asyncio.run(coro)


@pytest.fixture(params=WAKES)
def scheduler(request):
    with NumaScheduler(make_config(workers_per_numa_node=2), async_wake=request.param) as s:
        yield s


def assert_async_conserved(scheduler):
    # the outcome reaches the loop before the worker counts the task processed
    if scheduler.running:
        assert scheduler.join(30)
    m = scheduler.stats().metrics
    assert m.async_submitted == m.async_delivered + m.async_dropped + m.async_cancelled + m.async_orphaned, m
    return m


async def settle(scheduler):
    """Inside the loop: wait until every call finished and this loop drained
    what they pushed (before asyncio.run closes the loop, which would make
    them orphans)."""
    assert await asyncio.to_thread(scheduler.join, 30)
    for _ in range(1000):
        m = scheduler.stats().metrics
        if m.async_submitted == m.async_delivered + m.async_dropped + m.async_cancelled + m.async_orphaned:
            return
        await asyncio.sleep(0.001)
    raise AssertionError("the loop never drained its calls")


def wait_until(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.001)


# ---- results and exceptions ---------------------------------------------------------

@pytest.mark.parametrize("loop_kind", LOOPS)
def test_run_returns_value_raises_exception_and_keeps_kwargs(scheduler, loop_kind):
    def boom(x):
        raise ValueError(f"bad {x}")

    async def main():
        assert await scheduler.run(pow, 3, 4) == 81
        assert await scheduler.run(sorted, [3, 1, 2], reverse=True) == [3, 2, 1]
        with pytest.raises(ValueError, match="bad 7"):
            await scheduler.run(boom, 7)
        # the worker's thread, not the loop's
        assert await scheduler.run(threading.get_ident) != threading.get_ident()

    run_on(loop_kind, main())
    m = assert_async_conserved(scheduler)
    assert m.async_submitted == 4 and m.async_delivered == 4
    assert m.tasks_failed == 1


def test_run_task_returns_task_result_and_raises(scheduler):
    ran = []

    class Plain(Task):
        def execute(self):
            ran.append(threading.get_ident())

    class Failing(Task):
        def execute(self):
            return TaskResult.FAILED

    class Raising(Task):
        def execute(self):
            raise KeyError("inside")

    async def main():
        assert await scheduler.run_task(Plain()) is TaskResult.SUCCESS
        assert await scheduler.run_task(Failing()) is TaskResult.FAILED
        with pytest.raises(KeyError, match="inside"):
            await scheduler.run_task(Raising())

    asyncio.run(main())
    assert len(ran) == 1 and ran[0] != threading.get_ident()


def test_bad_calls_say_what_was_wrong(scheduler):
    with pytest.raises(RuntimeError, match="no running event loop"):
        scheduler.submit_async(pow, 2, 2)

    async def main():
        with pytest.raises(TypeError, match="needs a callable"):
            scheduler.submit_async(42)
        with pytest.raises(TypeError, match="needs a tallyio.Task"):
            scheduler.submit_task_async(object())
        with pytest.raises(TypeError, match="does not override"):
            scheduler.submit_task_async(Task())

    asyncio.run(main())
    with pytest.raises(ValueError, match="async_wake"):
        NumaScheduler(make_config(workers_per_numa_node=1), async_wake="smoke signals")


def test_stopped_scheduler_refuses_at_the_call():
    scheduler = NumaScheduler(make_config(workers_per_numa_node=1))

    async def main():
        with pytest.raises(SchedulerNotRunningError, match="not started"):
            await scheduler.run(pow, 2, 2)

    asyncio.run(main())
    scheduler.start()
    scheduler.stop()

    async def after():
        with pytest.raises(SchedulerNotRunningError, match="stopped"):
            await scheduler.run(pow, 2, 2)

    asyncio.run(after())
    assert scheduler.stats().metrics.async_submitted == 0


# ---- batching: far fewer loop wake-ups than tasks ----------------------------------------

@pytest.mark.parametrize("loop_kind", LOOPS)
def test_many_calls_cost_far_fewer_wakeups_than_calls(scheduler, loop_kind):
    n = scaled(100_000)

    async def main():
        return await asyncio.gather(*(scheduler.submit_async(abs, -i) for i in range(n)))

    results = run_on(loop_kind, main())
    assert results == list(range(n))          # each awaiter got its own result
    m = assert_async_conserved(scheduler)
    assert m.async_delivered == n
    assert 1 <= m.loop_wakeups <= n // 10, m


# ---- several loops on several threads at once ---------------------------------------

@pytest.mark.concurrency
@pytest.mark.parametrize("wake", WAKES)
def test_several_loops_in_several_threads_each_get_their_own_results_exactly_once(wake):
    loops, per_loop = 4, scaled(20_000)
    seen = collections.Counter()
    seen_lock = threading.Lock()

    def record(loop_index, i):
        with seen_lock:
            seen[(loop_index, i)] += 1
        return (loop_index, i)

    with NumaScheduler(make_config(workers_per_numa_node=2), async_wake=wake) as scheduler:
        def one_loop(loop_index):
            async def main():
                # half through the coroutine face, half through futures
                coros = [scheduler.run(record, loop_index, i) for i in range(0, per_loop, 2)]
                futures = [scheduler.submit_async(record, loop_index, i) for i in range(1, per_loop, 2)]
                got = await asyncio.gather(*coros, *futures)
                return sorted(got)
            kind = "uvloop" if (uvloop is not None and loop_index % 2) else "asyncio"
            return run_on(kind, main())

        results = run_threads(*[(one_loop, (k,)) for k in range(loops)])
    for k, got in enumerate(results):
        assert got == [(k, i) for i in range(per_loop)]
    assert len(seen) == loops * per_loop and set(seen.values()) == {1}
    m = assert_async_conserved(scheduler)
    assert m.async_submitted == m.async_delivered == loops * per_loop
    assert m.tasks_submitted == m.tasks_succeeded == loops * per_loop


@pytest.mark.concurrency
def test_awaitable_path_beside_submit_task_and_submit_from_other_threads():
    """Coroutines, Executor futures and plain tasks share the workers: every
    item is counted exactly once."""
    n = scaled(20_000)
    counts = collections.Counter()
    lock = threading.Lock()

    def bump(tag, i):
        with lock:
            counts[(tag, i)] += 1
        return i

    class Bump(Task):
        __slots__ = ("i",)

        def __init__(self, i):
            self.i = i

        def execute(self):
            bump("task", self.i)

    with NumaScheduler(make_config(workers_per_numa_node=2)) as scheduler:
        def coroutine_side():
            async def main():
                return await asyncio.gather(*(scheduler.submit_async(bump, "async", i) for i in range(n)))
            return asyncio.run(main())

        def executor_side():
            return [f.result() for f in [scheduler.submit(bump, "future", i) for i in range(n)]]

        def task_side():
            for i in range(n):
                scheduler.submit_task(Bump(i), block=True)

        got = run_threads((coroutine_side, ()), (executor_side, ()), (task_side, ()))
        assert scheduler.join(60)
    assert got[0] == list(range(n)) and got[1] == list(range(n))
    assert len(counts) == 3 * n and set(counts.values()) == {1}
    assert_async_conserved(scheduler)


# ---- cancellation at every stage ------------------------------------------------------

def _blocker(started, release):
    def block(tag):
        started.set()
        assert release.wait(30)
        return tag
    return block


# ---- map_async: the bulk form, one future per chunk ------------------------------------------------

@pytest.mark.parametrize("loop_kind", LOOPS)
def test_map_async_returns_every_result_in_order_with_few_futures(scheduler, loop_kind):
    n = scaled(50_000, minimum=5000)
    seen = collections.Counter()

    def square(x):
        seen[x] += 1          # one call per key: updates of distinct keys are safe under the GIL
        return x * x

    async def main():
        return await scheduler.map_async(square, range(n))

    assert run_on(loop_kind, main()) == [x * x for x in range(n)]
    assert set(seen.values()) == {1} and len(seen) == n          # every item exactly once
    m = assert_async_conserved(scheduler)
    # four chunks per worker by default: a handful of futures, not n
    assert m.async_submitted == 4 * scheduler.worker_count


def test_map_async_zips_iterables_takes_chunksize_and_stops_at_the_shortest(scheduler):
    async def main():
        return (await scheduler.map_async(pow, [2, 3, 4, 5], iter([1, 2, 3]), chunksize=1),
                await scheduler.map_async(divmod, range(10, 20), [3] * 10, chunksize=3),
                await scheduler.map_async(abs, []))

    powers, divs, empty = asyncio.run(main())
    assert powers == [2, 9, 64]
    assert divs == [divmod(k, 3) for k in range(10, 20)]
    assert empty == []
    assert scheduler.stats().metrics.async_submitted == 3 + 4


def test_map_async_bad_arguments_say_what_was_wrong(scheduler):
    async def main():
        with pytest.raises(TypeError, match="needs a callable"):
            await scheduler.map_async(42, [1])
        with pytest.raises(TypeError, match="at least one iterable"):
            await scheduler.map_async(abs)
        for bad in (0, -2, 1.5, "3"):
            with pytest.raises(ValueError, match="chunksize must be a positive int"):
                await scheduler.map_async(abs, [1], chunksize=bad)
        with pytest.raises(TypeError):
            await scheduler.map_async(abs, 5)            # not iterable: raised before anything runs

    asyncio.run(main())
    assert scheduler.stats().metrics.async_submitted == 0


def test_map_async_raises_the_first_exception_and_the_other_chunks_still_run(scheduler):
    ran = collections.Counter()

    def check(x):
        ran[x] += 1
        if x == 7:
            raise ValueError(f"bad item {x}")
        return x

    async def main():
        with pytest.raises(ValueError, match="bad item 7"):
            await scheduler.map_async(check, range(40), chunksize=5)
        await settle(scheduler)

    asyncio.run(main())
    # the chunk holding 7 stopped at 7; every other chunk ran whole
    assert sorted(ran) == [x for x in range(40) if not 7 < x < 10] and set(ran.values()) == {1}
    assert_async_conserved(scheduler)


def test_map_async_cancelled_while_queued_runs_no_queued_chunk(scheduler):
    release = threading.Event()
    ran = []

    async def main():
        started = [threading.Event() for _ in range(scheduler.worker_count)]
        blockers = [scheduler.submit_async(_blocker(e, release), k) for k, e in enumerate(started)]
        for e in started:
            assert await asyncio.to_thread(e.wait, 30)
        mapping = asyncio.ensure_future(scheduler.map_async(ran.append, range(12), chunksize=4))
        await asyncio.sleep(0)                 # map_async submits its three chunks
        mapping.cancel()
        release.set()
        assert await asyncio.gather(*blockers) == list(range(scheduler.worker_count))
        with pytest.raises(asyncio.CancelledError):
            await mapping
        await settle(scheduler)

    asyncio.run(main())
    assert ran == []
    m = assert_async_conserved(scheduler)
    assert m.async_cancelled == 3


def test_cancelled_while_queued_never_runs_and_counts_cancelled(scheduler):
    release = threading.Event()
    ran = []

    async def main():
        # occupy both workers, then queue one more behind them
        started = [threading.Event() for _ in range(scheduler.worker_count)]
        blockers = [scheduler.submit_async(_blocker(e, release), k) for k, e in enumerate(started)]
        for e in started:
            assert await asyncio.to_thread(e.wait, 30)
        queued = scheduler.submit_async(ran.append, "queued")
        queued.cancel()
        release.set()
        assert await asyncio.gather(*blockers) == list(range(scheduler.worker_count))
        with pytest.raises(asyncio.CancelledError):
            await queued

    asyncio.run(main())
    assert scheduler.join(30)
    assert ran == []
    m = assert_async_conserved(scheduler)
    assert m.async_cancelled == 1 and m.tasks_cancelled == 1


def test_cancelled_while_running_runs_to_the_end_and_drops_the_result(scheduler):
    started, release, finished = threading.Event(), threading.Event(), []

    def slow():
        started.set()
        assert release.wait(30)
        finished.append(True)
        return "late"

    async def main():
        task = asyncio.create_task(scheduler.run(slow))
        assert await asyncio.to_thread(started.wait, 30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        release.set()
        await settle(scheduler)

    asyncio.run(main())
    assert scheduler.join(30)
    assert finished == [True]
    m = assert_async_conserved(scheduler)
    assert m.async_dropped == 1 and m.async_delivered == 0
    assert m.tasks_succeeded == 1


class _Holder:
    """A value that refers back to the future carrying it: a reference cycle."""
    future = None


def test_a_queued_call_is_hidden_from_the_collector_and_its_cycles_are_collected_after(scheduler):
    # LoopPort.submit untracks a queued call (the queue owns it; traversing a
    # burst of queued calls in every collection was pure cost) and tracks it
    # again when it comes back to the loop: a cycle through it must then be
    # collectable, and a cancelled queued call must be tracked again too.
    import gc
    import weakref
    release = threading.Event()

    async def main():
        started = [threading.Event() for _ in range(scheduler.worker_count)]
        blockers = [scheduler.submit_async(_blocker(e, release), k) for k, e in enumerate(started)]
        for e in started:
            assert await asyncio.to_thread(e.wait, 30)
        holder = _Holder()
        queued = scheduler.submit_async(lambda: holder)
        cancelled = scheduler.run(lambda: holder)
        assert not gc.is_tracked(queued) and not gc.is_tracked(cancelled)
        cancelled.cancel()
        holder.future = queued
        release.set()
        assert await queued is holder
        await asyncio.gather(*blockers)
        await settle(scheduler)
        assert gc.is_tracked(queued) and gc.is_tracked(cancelled)
        return weakref.ref(holder)

    holder_ref = asyncio.run(main())
    # holder -> future -> its value holder: only the collector frees the pair
    gc.collect()
    assert holder_ref() is None
    m = assert_async_conserved(scheduler)
    assert m.async_cancelled == 1


def test_cancel_after_done_changes_nothing(scheduler):
    async def main():
        future = scheduler.submit_async(pow, 2, 5)
        assert await future == 32
        assert not future.cancel()
        assert future.result() == 32

    asyncio.run(main())
    m = assert_async_conserved(scheduler)
    assert m.async_delivered == 1 and m.async_cancelled == 0 and m.async_dropped == 0


def test_wait_for_timeout_cancels_the_awaiter(scheduler):
    release = threading.Event()

    def slow():
        assert release.wait(30)
        return 1

    async def main():
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(scheduler.run(slow), 0.05)
        release.set()
        assert await asyncio.wait_for(scheduler.run(pow, 2, 3), 30) == 8
        await settle(scheduler)

    asyncio.run(main())
    assert scheduler.join(30)
    m = assert_async_conserved(scheduler)
    assert m.async_dropped + m.async_cancelled == 1 and m.async_delivered == 1


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.TaskGroup and ExceptionGroup are Python 3.11+")
def test_task_group_cancels_the_siblings_of_a_failing_call(scheduler):
    release = threading.Event()

    def slow():
        assert release.wait(30)

    def fail():
        raise OSError("disk on fire")

    async def main():
        with pytest.raises(ExceptionGroup) as info:  # noqa: F821  (a 3.11 builtin; skipped before)
            async with asyncio.TaskGroup() as group:
                # one sibling holds a worker; the failing call runs on the other
                siblings = [group.create_task(scheduler.run(slow))]
                group.create_task(scheduler.run(fail))
        release.set()
        await settle(scheduler)
        return info.value, siblings

    group_error, siblings = asyncio.run(main())
    assert [type(e) for e in group_error.exceptions] == [OSError]
    assert all(s.cancelled() for s in siblings)
    assert scheduler.join(30)
    m = assert_async_conserved(scheduler)
    assert m.async_delivered == 1 and m.async_dropped + m.async_cancelled == 1


# ---- loops and schedulers going away with calls in flight --------------------------------

@pytest.mark.parametrize("loop_kind", LOOPS)
def test_loop_closed_with_calls_in_flight_loses_nothing_silently(scheduler, loop_kind):
    started, release, finished = threading.Event(), threading.Event(), []
    n = 50

    def work(i):
        started.set()
        assert release.wait(30)
        finished.append(i)
        return i

    loop = uvloop.new_event_loop() if loop_kind == "uvloop" else asyncio.new_event_loop()

    async def submit_and_leave():
        return [scheduler.submit_async(work, i) for i in range(n)]

    futures = loop.run_until_complete(submit_and_leave())
    assert started.wait(30)
    loop.close()                     # nobody will ever drain this loop
    release.set()
    assert scheduler.join(30)
    assert sorted(finished) == list(range(n))     # every call ran to the end
    m = assert_async_conserved(scheduler)
    assert m.async_orphaned + m.async_delivered == n and m.async_orphaned >= n - 2, m
    assert not any(f.done() and not f.cancelled() and f.result() is None for f in futures)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("cancel_pending", [False, True])
def test_stop_with_awaits_pending_gives_each_awaiter_a_result_or_an_error(cancel_pending):
    n = scaled(2000, minimum=200)
    scheduler = NumaScheduler(make_config(workers_per_numa_node=2)).start()
    gate = threading.Event()

    def work(i):
        gate.wait(30)
        return i

    async def main():
        futures = [scheduler.submit_async(work, i) for i in range(n)]
        stopper = threading.Thread(target=scheduler.stop, kwargs={"cancel_pending": cancel_pending})
        stopper.start()
        await asyncio.sleep(0.01)
        gate.set()
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
        await asyncio.to_thread(stopper.join, 60)
        return outcomes

    outcomes = asyncio.run(main())
    results = [o for o in outcomes if not isinstance(o, BaseException)]
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert all(isinstance(e, SchedulerNotRunningError) for e in errors), errors[:3]
    assert all(outcomes[i] == i for i in range(n) if not isinstance(outcomes[i], BaseException))
    if not cancel_pending:
        assert len(results) == n
    else:
        assert len(results) + len(errors) == n
    m = assert_async_conserved(scheduler)
    assert m.async_delivered == n
    assert m.tasks_submitted == m.tasks_processed + m.tasks_cancelled
    assert m.tasks_cancelled == len(errors)


CTRL_C_CHILD = textwrap.dedent("""
    import asyncio, threading
    from tallyio import NumaScheduler, SchedulerConfig

    # every call waits for the interrupt (bounded, so a lost signal fails instead of hanging): the
    # SIGINT always lands with two calls running and the rest queued, however slow the machine
    interrupted = threading.Event()

    def work(i):
        interrupted.wait(30)
        return i

    scheduler = NumaScheduler(SchedulerConfig(workers_per_numa_node=2, enable_cpu_affinity=False)).start()

    async def main():
        futures = [scheduler.submit_async(work, i) for i in range(5000)]
        print("submitted", flush=True)
        await asyncio.gather(*futures)

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    interrupted.set()
    scheduler.stop()
    m = scheduler.stats().metrics
    print("counts", m.async_submitted, m.async_delivered, m.async_dropped, m.async_cancelled,
          m.async_orphaned, m.tasks_submitted, m.tasks_processed, m.tasks_cancelled, flush=True)
""")


@pytest.mark.timeout(120)
def test_ctrl_c_in_asyncio_run_with_calls_in_flight():
    child = subprocess.Popen([sys.executable, "-c", CTRL_C_CHILD], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=subprocess_env())
    try:
        assert child.stdout.readline().strip() == "submitted"
        time.sleep(0.2)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=90)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0, err
    lines = out.splitlines()
    assert "interrupted" in lines, out + err
    counts = [int(x) for x in lines[-1].split()[1:]]
    submitted, delivered, dropped, cancelled, orphaned, t_sub, t_proc, t_cancel = counts
    assert submitted == 5000
    assert submitted == delivered + dropped + cancelled + orphaned
    assert cancelled > 0                      # the queued ones never ran
    assert t_sub == t_proc + t_cancel == 5000
    assert "Traceback" not in err.replace("KeyboardInterrupt", ""), err


def test_eventfd_port_detach_falls_back_to_call_soon():
    with NumaScheduler(make_config(workers_per_numa_node=1), async_wake="eventfd") as scheduler:
        async def main():
            assert await scheduler.run(pow, 2, 2) == 4
            port = scheduler._port_for(asyncio.get_running_loop())
            assert port.wake_mode == "eventfd"
            port.detach()
            assert port.wake_mode == "call_soon"
            assert await scheduler.run(pow, 2, 3) == 8

        asyncio.run(main())
    assert_async_conserved(scheduler)


def test_stats_text_shows_the_awaitable_line(scheduler):
    async def main():
        await scheduler.run(pow, 2, 2)

    asyncio.run(main())
    text = str(scheduler.stats())
    assert "awaitable    submitted 1  delivered 1" in text and "loop wake-ups" in text


def test_run_in_executor_keeps_working(scheduler):
    async def main():
        loop = asyncio.get_running_loop()
        return await asyncio.gather(*(loop.run_in_executor(scheduler, pow, 2, k) for k in range(8)))

    assert asyncio.run(main()) == [2 ** k for k in range(8)]


def test_no_file_descriptor_leaks_across_many_loops():
    before = len(os.listdir("/proc/self/fd"))
    with NumaScheduler(make_config(workers_per_numa_node=1), async_wake="eventfd") as scheduler:
        for _ in range(50):
            assert asyncio.run(scheduler.run(pow, 2, 2)) == 4
    import gc
    gc.collect()
    assert len(os.listdir("/proc/self/fd")) <= before + 2


def test_docs_examples_run():
    import doctest
    import pathlib
    path = pathlib.Path(__file__).resolve().parents[1] / "docs" / "asyncio.md"
    failures, tried = doctest.testfile(str(path), module_relative=False, optionflags=doctest.ELLIPSIS)
    assert tried > 0 and failures == 0


# ---- the light awaitable submit_async returns (no asyncio.Future per call) ----------------

@pytest.mark.parametrize("loop_kind", LOOPS)
def test_the_awaitable_is_future_like_for_asyncio(scheduler, loop_kind):
    async def main():
        loop = asyncio.get_running_loop()
        fut = scheduler.submit_async(pow, 2, 8)
        assert asyncio.isfuture(fut) and not isinstance(fut, asyncio.Future)
        assert fut.get_loop() is loop
        with pytest.raises(asyncio.InvalidStateError):
            fut.result()
        with pytest.raises(asyncio.InvalidStateError):
            fut.exception()
        assert await fut == 256 and fut.done() and fut.exception() is None
        assert "finished" in repr(fut)
        # asyncio.wait, as_completed, ensure_future, wrapping in a Task
        futs = [scheduler.submit_async(abs, -i) for i in range(20)]
        done, pending = await asyncio.wait(futs)
        assert not pending and sorted(f.result() for f in done) == list(range(20))
        got = [await f for f in asyncio.as_completed([scheduler.submit_async(abs, -i) for i in range(5)])]
        assert sorted(got) == list(range(5))
        assert asyncio.ensure_future(fut) is fut
        wrapped = asyncio.create_task(_await(scheduler.submit_async(max, 1, 7)))
        assert await wrapped == 7
        # a done awaitable: a callback added now is scheduled, not lost
        seen = []
        fut.add_done_callback(seen.append)
        await asyncio.sleep(0)
        assert seen == [fut]
        await settle(scheduler)
    run_on(loop_kind, main())
    assert_async_conserved(scheduler)


async def _await(awaitable):
    return await awaitable


def test_done_callbacks_run_in_the_batch_in_their_context_and_a_failing_one_is_reported(scheduler):
    import contextvars
    var = contextvars.ContextVar("var", default="unset")

    async def main():
        loop = asyncio.get_running_loop()
        reported = []
        loop.set_exception_handler(lambda loop, context: reported.append(context))
        gate = threading.Event()
        fut = scheduler.submit_async(gate.wait, 10)
        seen = []
        ctx = contextvars.copy_context()
        ctx.run(var.set, "theirs")
        fut.add_done_callback(lambda f: seen.append(("ctx", var.get())), context=ctx)
        fut.add_done_callback(lambda f: 1 / 0)
        removed = lambda f: seen.append("removed")                           # noqa: E731
        fut.add_done_callback(removed)
        fut.add_done_callback(removed)
        fut.add_done_callback(lambda f: seen.append(("last", f.result())))
        assert fut.remove_done_callback(removed) == 2
        assert fut.remove_done_callback(removed) == 0
        gate.set()
        assert await fut is True
        assert seen == [("ctx", "theirs"), ("last", True)]
        assert len(reported) == 1 and isinstance(reported[0]["exception"], ZeroDivisionError)
        assert reported[0]["future"] is fut
        await settle(scheduler)
    asyncio.run(main())


def test_cancel_schedules_callbacks_and_keeps_the_message(scheduler):
    async def main():
        gate = threading.Event()
        blockers = [scheduler.submit_async(gate.wait, 10) for _ in range(scheduler.worker_count)]
        queued = scheduler.submit_async(abs, -1)
        seen = []
        queued.add_done_callback(seen.append)
        queued.add_done_callback(lambda f: seen.append("second"))
        assert queued.cancel("why") and not queued.cancel()
        assert seen == []                                  # scheduled, as asyncio does
        await asyncio.sleep(0)
        assert seen == [queued, "second"]
        with pytest.raises(asyncio.CancelledError, match="why"):
            queued.result()
        with pytest.raises(asyncio.CancelledError):
            queued.exception()
        with pytest.raises(asyncio.CancelledError):
            await queued
        gate.set()
        await asyncio.gather(*blockers)
        await settle(scheduler)
    asyncio.run(main())
    assert assert_async_conserved(scheduler).async_cancelled >= 1


def test_stop_iteration_from_the_call_arrives_as_runtime_error(scheduler):
    def stops():
        raise StopIteration("x")

    async def main():
        with pytest.raises(RuntimeError, match="StopIteration"):
            await scheduler.run(stops)
        results = await asyncio.gather(scheduler.submit_async(stops), return_exceptions=True)
        assert isinstance(results[0], RuntimeError)
        await settle(scheduler)
    asyncio.run(main())


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_gather_return_exceptions_and_wait_for_on_the_awaitable(scheduler, loop_kind):
    async def main():
        ok = scheduler.submit_async(abs, -3)
        bad = scheduler.submit_async(int, "x")
        assert (await asyncio.gather(ok, bad, return_exceptions=True))[0] == 3
        assert isinstance(bad.exception(), ValueError)
        assert await asyncio.wait_for(scheduler.submit_async(abs, -4), 30) == 4
        gate = threading.Event()
        with pytest.raises((TimeoutError, asyncio.TimeoutError)):
            await asyncio.wait_for(scheduler.submit_async(gate.wait, 10), 0.01)
        gate.set()
        await settle(scheduler)
    run_on(loop_kind, main())
    assert_async_conserved(scheduler)


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_run_is_a_future_for_gather_and_a_coroutine_for_tasks(scheduler, loop_kind):
    async def main():
        calls = [scheduler.run(abs, -i) for i in range(50)]
        assert all(asyncio.isfuture(c) and asyncio.iscoroutine(c) for c in calls)
        assert await asyncio.gather(*calls) == list(range(50))
        # a Task drives it as a coroutine
        task = asyncio.create_task(scheduler.run(pow, 2, 3))
        assert await task == 8
        bad = asyncio.create_task(scheduler.run(int, "x"))
        with pytest.raises(ValueError):
            await bad
        # a Task cancelled before its first step cancels the queued call: it never runs
        gate = threading.Event()
        blockers = [scheduler.submit_async(gate.wait, 10) for _ in range(scheduler.worker_count)]
        ran = []
        doomed = asyncio.create_task(scheduler.run(ran.append, 1))
        doomed.cancel()
        with pytest.raises(asyncio.CancelledError):
            await doomed
        closed = scheduler.run(ran.append, 2)
        closed.close()                       # a coroutine closed unawaited cancels its call
        assert closed.cancelled()
        gate.set()
        await asyncio.gather(*blockers)
        await settle(scheduler)
        assert ran == []
        # awaited twice through send(): the protocol says so
        twice = scheduler.run(abs, 1)
        assert twice.send(None) is twice
        with pytest.raises(RuntimeError, match="await wasn't used"):
            twice.send(None)
        with pytest.raises(KeyError):
            scheduler.run(abs, 1).throw(KeyError("k"))
        await settle(scheduler)
    run_on(loop_kind, main())
    assert assert_async_conserved(scheduler).async_cancelled >= 2


def test_run_outside_a_loop_is_a_coroutine_that_submits_when_it_runs(scheduler):
    coro = scheduler.run(divmod, 7, 2)
    assert asyncio.iscoroutine(coro)
    assert asyncio.run(coro) == (3, 1)
    with pytest.raises(TypeError, match="run\\(\\) needs a callable"):
        scheduler.run(42)
    with pytest.raises(RuntimeError):
        scheduler.submit_async(abs, 1)      # no running loop: submit_async has no later


def test_a_subclass_overriding_the_awaitable_entry_points_keeps_them():
    class Logged(NumaScheduler):
        seen = []

        def submit_async(self, fn, /, *args, **kwargs):
            self.seen.append("submit_async")
            return super().submit_async(fn, *args, **kwargs)

        def run(self, fn, /, *args, **kwargs):
            self.seen.append("run")
            return super().run(fn, *args, **kwargs)

    async def main(scheduler):
        return await scheduler.submit_async(abs, -1), await scheduler.run(abs, -2)

    with Logged(make_config(workers_per_numa_node=2)) as scheduler:
        assert asyncio.run(main(scheduler)) == (1, 2)
    assert Logged.seen == ["submit_async", "run"]


def test_the_entry_points_do_not_keep_a_dropped_scheduler_alive():
    import gc
    import weakref
    scheduler = NumaScheduler(make_config(workers_per_numa_node=1))
    with scheduler:
        assert asyncio.run(scheduler.run(abs, -3)) == 3
    run, ref = scheduler.run, weakref.ref(scheduler)
    del scheduler
    gc.collect()
    assert ref() is None
    with pytest.raises(SchedulerNotRunningError, match="dropped"):
        asyncio.run(run(abs, 1))

"""NumaScheduler shutdown and faults: nothing accepted is lost.

stop() twice, stop(wait=False), stop from inside a task and from a future's
done-callback, cancelling stops (accepted == completed + cancelled, exactly),
Ctrl+C while stop() or join() waits, a scheduler inherited by a forked
child, interpreter exit with a running scheduler, join(timeout).
"""
import _thread
import concurrent.futures as cf
import gc
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

from conftest import subprocess_env

from conftest import scaled
from schedtools import Count, Gate, make_config
from schedtools import assert_identities as assert_stats_identities
from tallyio import (NumaScheduler, NumaTopology, QueueFullError,
                     SchedulerNotRunningError, Task)

# every test here runs real worker threads (nogil loops): all of them run under TSan too
pytestmark = [pytest.mark.timeout(60), pytest.mark.concurrency]


def assert_identities(scheduler: NumaScheduler) -> None:
    assert_stats_identities(scheduler.stats())


def worker_threads_alive(scheduler: NumaScheduler) -> list:
    return [t for t in scheduler._threads if t.is_alive()]


class Call(Task):
    """Runs a function (given the scheduler) inside a task."""

    def __init__(self, fn):
        self.fn, self.error = fn, None

    def execute(self):
        try:
            self.fn()
        except BaseException as exc:   # kept for the test to look at
            self.error = exc
            raise


class WatchfulGate(Gate):
    """A gate that, once released, checks whether stop() returned while it
    still runs: `stop_returned` is set by the test right after stop() comes
    back.  A correct stop() cannot return before this task ends, so the
    short wait here simply times out (it is never asserted on)."""

    def __init__(self):
        super().__init__()
        self.stop_returned = threading.Event()
        self.overlapped = None

    def execute(self):
        self.started.set()
        assert self.release.wait(10), "gate never released"
        self.overlapped = self.stop_returned.wait(0.2)
        self.finished = True


def gated(scheduler, gate):
    scheduler.submit_task(gate)
    assert gate.started.wait(10)


# ---- life cycle ---------------------------------------------------------------------------

def test_stop_twice_and_start_twice_are_harmless():
    scheduler = NumaScheduler(make_config(workers_per_numa_node=2))
    assert scheduler.start() is scheduler
    assert scheduler.start() is scheduler          # already running: nothing happens
    assert len(scheduler._threads) == 2
    scheduler.stop()
    scheduler.stop()
    scheduler.stop(wait=False)
    scheduler.stop(cancel_pending=True)
    assert not scheduler.running and worker_threads_alive(scheduler) == []
    with pytest.raises(SchedulerNotRunningError, match="restart"):
        scheduler.start()


def test_stop_before_start():
    scheduler = NumaScheduler(make_config(workers_per_numa_node=1))
    scheduler.stop()
    assert not scheduler.running
    with pytest.raises(SchedulerNotRunningError):
        scheduler.start()
    with pytest.raises(SchedulerNotRunningError):
        scheduler.submit_task(Gate())
    assert scheduler._threads == []


def test_stop_wait_false_then_wait_true():
    n = 5000
    counts = np.zeros(n, dtype=np.int64)
    scheduler = NumaScheduler(make_config(workers_per_numa_node=2))
    scheduler.start()
    gate = Gate()
    gated(scheduler, gate)
    for i in range(n):
        scheduler.submit_task(Count(i, counts))
    scheduler.stop(wait=False)                       # returns at once: the gate still holds a worker
    assert not scheduler.running
    with pytest.raises(SchedulerNotRunningError):
        scheduler.submit_task(Count(0, counts))
    gate.release.set()
    scheduler.stop(wait=True)
    assert worker_threads_alive(scheduler) == []
    assert scheduler._state == "stopped"
    assert np.count_nonzero(counts != 1) == 0
    assert_identities(scheduler)
    assert scheduler.stats().metrics.tasks_cancelled == 0


def test_stop_wait_false_finishes_on_its_own():
    scheduler = NumaScheduler(make_config(workers_per_numa_node=1)).start()
    counts = np.zeros(100, dtype=np.int64)
    for i in range(100):
        scheduler.submit_task(Count(i, counts))
    scheduler.stop(wait=False)
    finisher = [t for t in threading.enumerate() if t.name == "tallyio-stop"]
    for t in finisher:
        t.join(10)
    for t in scheduler._threads:
        t.join(10)
    assert worker_threads_alive(scheduler) == []
    assert np.count_nonzero(counts != 1) == 0


def test_join_timeout():
    with NumaScheduler(make_config(workers_per_numa_node=1)) as scheduler:
        assert scheduler.join(0) is True           # nothing submitted: idle
        gate = Gate()
        try:
            gated(scheduler, gate)
            assert scheduler.join(0.05) is False
            assert scheduler.join(0) is False
        finally:
            gate.release.set()
        assert scheduler.join(10) is True
        assert scheduler.join() is True
        for bad in (-1, float("nan")):
            with pytest.raises(ValueError, match="timeout"):
                scheduler.join(bad)


# ---- stopping from inside ------------------------------------------------------------------

@pytest.mark.parametrize("wait", [True, False])
def test_stop_from_inside_a_task_runs_the_rest(wait):
    n = 200
    counts = np.zeros(n, dtype=np.int64)
    scheduler = NumaScheduler(make_config(workers_per_numa_node=1)).start()
    try:
        gate = Gate()
        gated(scheduler, gate)
        stopper = Call(lambda: scheduler.stop(wait=wait))
        scheduler.submit_task(stopper)
        for i in range(n):
            scheduler.submit_task(Count(i, counts))
        gate.release.set()
    finally:
        gate.release.set()
        scheduler.stop(wait=True)      # from the main thread: waits for the workers
    assert stopper.error is None
    assert np.count_nonzero(counts != 1) == 0
    assert worker_threads_alive(scheduler) == []
    assert_identities(scheduler)


def test_stop_from_inside_a_task_finishes_without_an_outside_stop():
    """Nobody else calls stop(): the stop begun inside a task still ends
    (workers gone, state 'stopped') and join() sees every task done."""
    n = 100
    counts = np.zeros(n, dtype=np.int64)
    scheduler = NumaScheduler(make_config(workers_per_numa_node=2)).start()
    gate = Gate()
    try:
        gated(scheduler, gate)
        scheduler.submit_task(Call(lambda: scheduler.stop()))
        for i in range(n):
            scheduler.submit_task(Count(i, counts))
    finally:
        gate.release.set()
    assert scheduler.join(10)
    for t in scheduler._threads:
        t.join(10)
    assert worker_threads_alive(scheduler) == []
    assert np.count_nonzero(counts != 1) == 0
    stopper = [t for t in threading.enumerate() if t.name == "tallyio-stop"]
    for t in stopper:
        t.join(10)
    assert scheduler._state == "stopped"
    scheduler.stop()       # tidy up if the above failed


def test_submit_after_a_stop_inside_a_task_is_part_of_the_drain():
    """A draining stop accepts work spawned by the tasks it is draining (it is
    part of the accepted work); it runs before the stop completes."""
    scheduler = NumaScheduler(make_config(workers_per_numa_node=1)).start()
    counts = np.zeros(1, dtype=np.int64)

    def stop_then_submit():
        scheduler.stop()
        scheduler.submit_task(Count(0, counts))

    scheduler.submit_task(Call(stop_then_submit))
    scheduler.stop(wait=True)
    assert counts.tolist() == [1]
    assert_identities(scheduler)


def test_submit_after_a_cancelling_stop_inside_a_task_is_refused_naming_the_state():
    scheduler = NumaScheduler(make_config(workers_per_numa_node=1)).start()
    refused = []

    def stop_then_submit():
        scheduler.stop(cancel_pending=True)
        try:
            scheduler.submit_task(Gate())
        except SchedulerNotRunningError as exc:
            refused.append(str(exc))

    scheduler.submit_task(Call(stop_then_submit))
    scheduler.stop(wait=True)
    assert len(refused) == 1 and "cancelling" in refused[0], refused
    assert_identities(scheduler)


@pytest.mark.parametrize("kind", ["tallyio", "threadpool"])
def test_cancelling_shutdown_from_inside_a_task_cancels_the_queued_futures(kind):
    """As with ThreadPoolExecutor: the queued futures end up cancelled without
    anybody else calling shutdown (a caller waiting on them must not hang)."""
    if kind == "tallyio":
        ex = NumaScheduler(make_config(workers_per_numa_node=1)).start()
    else:
        ex = cf.ThreadPoolExecutor(1)
    go = threading.Event()
    try:
        def stopper():
            assert go.wait(10)
            ex.shutdown(wait=False, cancel_futures=True)
            return "stopped"

        first = ex.submit(stopper)
        queued = [ex.submit(pow, i, 2) for i in range(10)]
        go.set()
        assert first.result(10) == "stopped"
        for fut in queued:
            with pytest.raises(cf.CancelledError):
                fut.result(10)
    finally:
        go.set()
        ex.shutdown(wait=True)
    if kind == "tallyio":
        assert ex.stats().metrics.tasks_cancelled == 10
        assert_identities(ex)


def test_stop_from_a_done_callback():
    scheduler = NumaScheduler(make_config(workers_per_numa_node=2)).start()
    n = 300
    counts = np.zeros(n, dtype=np.int64)
    # both workers held: the future (and its stop) cannot run until every task below is accepted
    gate, second = Gate(), Gate()
    second.release = gate.release
    try:
        gated(scheduler, gate)
        gated(scheduler, second)
        fut = scheduler.submit(pow, 2, 3)
        fut.add_done_callback(lambda f: scheduler.stop())
        for i in range(n):
            scheduler.submit_task(Count(i, counts))
    finally:
        gate.release.set()
    assert fut.result(10) == 8
    scheduler.stop(wait=True)
    assert np.count_nonzero(counts != 1) == 0
    assert worker_threads_alive(scheduler) == []
    # a callback added after completion runs in this thread: stop(wait=True) here is fine too
    other = NumaScheduler(make_config(workers_per_numa_node=1)).start()
    done = other.submit(pow, 2, 2)
    assert done.result(10) == 4
    done.add_done_callback(lambda f: other.stop(wait=True))
    assert not other.running and worker_threads_alive(other) == []


# ---- cancelling stops -----------------------------------------------------------------------

@pytest.mark.parametrize("workers", [1, 2])
def test_cancel_pending_accepted_equals_completed_plus_cancelled(workers):
    n = scaled(50_000)
    counts = np.zeros(n, dtype=np.int64)
    scheduler = NumaScheduler(make_config(workers_per_numa_node=workers), topology=NumaTopology.uniform(1, 2))
    scheduler.start()
    accepted = 0
    try:
        for i in range(n):
            try:
                scheduler.submit_task(Count(i, counts))
                accepted += 1
            except QueueFullError:
                pass
    finally:
        scheduler.stop(cancel_pending=True)
    m = scheduler.stats().metrics
    ran = int(counts.sum())
    assert counts.max(initial=0) <= 1, "a task ran twice"
    assert m.tasks_submitted == accepted
    assert m.tasks_processed == ran
    assert accepted == ran + m.tasks_cancelled
    assert_identities(scheduler)
    assert scheduler.stats().total_queue_size() == 0


def test_cancel_pending_with_a_known_backlog():
    scheduler = NumaScheduler(make_config(workers_per_numa_node=1)).start()
    counts = np.zeros(100, dtype=np.int64)
    gate = Gate()
    futures = []
    try:
        gated(scheduler, gate)
        for i in range(100):
            scheduler.submit_task(Count(i, counts))
        futures = [scheduler.submit(pow, i, 2) for i in range(10)]
        scheduler.stop(wait=False, cancel_pending=True)
    finally:
        gate.release.set()
    scheduler.stop(wait=True)
    assert gate.finished                                # the running task finished
    assert counts.sum() == 0
    assert all(f.cancelled() for f in futures)
    m = scheduler.stats().metrics
    assert (m.tasks_submitted, m.tasks_processed, m.tasks_cancelled) == (111, 1, 110)


def test_cancel_pending_after_a_draining_stop_began():
    """stop(wait=False) began draining; a later stop(cancel_pending=True)
    cancels what is still queued."""
    scheduler = NumaScheduler(make_config(workers_per_numa_node=1)).start()
    counts = np.zeros(50, dtype=np.int64)
    gate = Gate()
    try:
        gated(scheduler, gate)
        for i in range(50):
            scheduler.submit_task(Count(i, counts))
        scheduler.stop(wait=False)
        releaser = threading.Thread(target=lambda: (wait_until(lambda: scheduler._core.cancelling),
                                                    gate.release.set()))
        releaser.start()
        scheduler.stop(wait=True, cancel_pending=True)
        releaser.join(10)
    finally:
        gate.release.set()
    m = scheduler.stats().metrics
    assert counts.sum() == 0 and m.tasks_cancelled == 50 and m.tasks_processed == 1


def wait_until(predicate, timeout=10.0):
    done = threading.Event()
    for _ in range(int(timeout / 0.001)):
        if predicate():
            return True
        done.wait(0.001)
    raise AssertionError("condition never became true")


# ---- Ctrl+C --------------------------------------------------------------------------------
# _thread.interrupt_main() "presses" Ctrl+C: the main thread (where pytest runs
# tests) gets KeyboardInterrupt at its next call, as from a real SIGINT.


@pytest.fixture
def no_collector_finalizers():
    """CPython raises a pending KeyboardInterrupt in whatever Python code the
    main thread runs next; if that is a finalizer the cyclic collector runs
    (objects earlier tests left behind), the exception is printed as
    unraisable and lost, and so is the "Ctrl+C".  That is CPython's
    behaviour, not the scheduler's, and it made these tests fail when the
    whole suite ran: collect first, then keep the collector off."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()

def main_thread_is_in(function_name: str) -> bool:
    """True while the main thread runs (inside) tallyio/scheduler.py's `function_name`."""
    frame = sys._current_frames().get(threading.main_thread().ident)
    while frame is not None:
        code = frame.f_code
        in_scheduler_py = code.co_filename.endswith(os.path.join("tallyio", "scheduler.py"))
        if code.co_name == function_name and in_scheduler_py:
            return True
        frame = frame.f_back
    return False


def test_ctrl_c_during_stop_cancels_the_queue_and_stops_cleanly(no_collector_finalizers):
    scheduler = NumaScheduler(make_config(workers_per_numa_node=1)).start()
    counts = np.zeros(20, dtype=np.int64)
    gate = WatchfulGate()
    gated(scheduler, gate)
    for i in range(20):
        scheduler.submit_task(Count(i, counts))

    def press_ctrl_c():
        # once the main thread waits in stop(), "press" Ctrl+C; let the
        # running task end only after the stop switched to cancelling
        wait_until(lambda: main_thread_is_in("_finish"))
        _thread.interrupt_main()
        wait_until(lambda: scheduler._core.cancelling)
        gate.release.set()

    presser = threading.Thread(target=press_ctrl_c, daemon=True)
    presser.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            scheduler.stop(wait=True)
        gate.stop_returned.set()
        # right as stop() comes back: the running task has ended, the rest is cancelled
        state, finished, m = scheduler._state, gate.finished, scheduler.stats().metrics
    finally:
        gate.release.set()
        gate.stop_returned.set()
        presser.join(10)
        scheduler.stop(wait=True)
    assert state == "stopped"
    assert finished and gate.overlapped is False, "stop() returned while a task was still running"
    assert worker_threads_alive(scheduler) == []
    assert counts.sum() == 0
    assert (m.tasks_submitted, m.tasks_processed, m.tasks_cancelled) == (21, 1, 20)


@pytest.mark.parametrize("nth_call", range(8))
def test_ctrl_c_at_any_call_of_the_wait_in_stop(nth_call, no_collector_finalizers):
    """A signal is handled at whatever call the main thread makes next, not
    only inside the blocking join: deliver Ctrl+C at the nth call (Python or
    C) that stop()'s wait makes, and expect the same clean, cancelling stop."""
    scheduler = NumaScheduler(make_config(workers_per_numa_node=1)).start()
    counts = np.zeros(10, dtype=np.int64)
    gate = WatchfulGate()
    gated(scheduler, gate)
    for i in range(10):
        scheduler.submit_task(Count(i, counts))
    calls = []
    finish_code = NumaScheduler._finish.__code__

    def inside_finish(frame):
        while frame is not None:
            if frame.f_code is finish_code:
                return True
            frame = frame.f_back
        return False

    def profile(frame, event, arg):
        if event in ("call", "c_call") and inside_finish(frame) and len(calls) <= nth_call:
            calls.append(event)
            if len(calls) == nth_call + 1:
                _thread.interrupt_main()

    # the running task ends once the stop switched to cancelling (or the test gave up)
    give_up = threading.Event()

    def release_when_cancelling():
        while not (scheduler._core.cancelling or give_up.is_set()):
            give_up.wait(0.001)
        gate.release.set()

    releaser = threading.Thread(target=release_when_cancelling, daemon=True)
    releaser.start()
    interrupted = False
    try:
        sys.setprofile(profile)
        try:
            scheduler.stop(wait=True)
        finally:
            sys.setprofile(None)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        gate.stop_returned.set()
        state, m = scheduler._state, scheduler.stats().metrics
        give_up.set()
        releaser.join(10)
    scheduler.stop(wait=True)             # tidy up whatever happened
    assert interrupted
    assert state == "stopped", "KeyboardInterrupt escaped before the stop was finished"
    assert gate.overlapped is False, "stop() returned while a task was still running"
    assert counts.sum() == 0
    assert (m.tasks_submitted, m.tasks_processed, m.tasks_cancelled) == (11, 1, 10)


def test_ctrl_c_interrupts_join(no_collector_finalizers):
    with NumaScheduler(make_config(workers_per_numa_node=1)) as scheduler:
        gate = Gate()
        try:
            gated(scheduler, gate)

            def press_ctrl_c():
                wait_until(lambda: main_thread_is_in("join"))
                _thread.interrupt_main()

            presser = threading.Thread(target=press_ctrl_c, daemon=True)
            presser.start()
            with pytest.raises(KeyboardInterrupt):
                scheduler.join()
            presser.join(10)
            assert scheduler.running          # join was interrupted, the scheduler was not
        finally:
            gate.release.set()
    assert scheduler.stats().metrics.tasks_processed == 1


# ---- fork ------------------------------------------------------------------------------------

@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_forked_child_refuses_work():
    scheduler = NumaScheduler(make_config(workers_per_numa_node=2)).start()
    try:
        assert scheduler.submit(pow, 2, 2).result(10) == 4
        pid = os.fork()
        if pid == 0:                                           # the child
            code = 10
            try:
                try:
                    scheduler.submit_task(Gate())
                    code = 11                                  # accepted: wrong
                except SchedulerNotRunningError as exc:
                    code = 12 if "forked" in str(exc) else 13
                if code == 12:
                    try:
                        scheduler.submit(pow, 2, 2)
                        code = 14
                    except SchedulerNotRunningError:
                        pass
                if code == 12:
                    scheduler.stop()                           # must not hang or crash
                    scheduler.stats()
                    code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, os.waitstatus_to_exitcode(status)
        # the parent's scheduler is unaffected
        assert scheduler.submit(pow, 3, 2).result(10) == 9
    finally:
        scheduler.stop()


# ---- interpreter exit ----------------------------------------------------------------------------


EXIT_SCRIPT = textwrap.dedent("""
    import os, sys, threading
    from tallyio import NumaScheduler, SchedulerConfig, Task

    class Say(Task):
        def __init__(self, i):
            self.i = i
        def execute(self):
            threading.Event().wait(0.0002)     # slow enough that most are still queued at exit
            os.write(1, b"ran %d\\n" % self.i)    # one write(2): lines from two threads never mix

    scheduler = NumaScheduler(SchedulerConfig(workers_per_numa_node=2, enable_cpu_affinity=False)).start()
    for i in range({n}):
        scheduler.submit_task(Say(i))
    os.write(1, b"accepted {n}\\n")
    {ending}
""")


@pytest.mark.parametrize("ending, code", [("", 0), ("sys.exit(3)", 3), ("raise SystemExit(0)", 0),
                                          ("raise ValueError('main failed')", 1)],
                         ids=["falls-off-the-end", "sys.exit-3", "SystemExit", "exception"])
def test_interpreter_exit_with_a_running_scheduler(tmp_path, ending, code):
    n = 2000
    script = tmp_path / "exit_running.py"
    script.write_text(EXIT_SCRIPT.format(n=n, ending=ending))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=50,
                          env=subprocess_env())
    assert proc.returncode == code, proc.stderr
    lines = proc.stdout.splitlines()
    assert f"accepted {n}" in lines
    ran = sorted(int(line.split()[1]) for line in lines if line.startswith("ran "))
    assert ran == list(range(n)), f"{len(ran)} of {n} tasks ran"
    assert "Traceback" not in proc.stderr or code == 1


FORK_EXIT_SCRIPT = textwrap.dedent("""
    import os, sys
    from tallyio import NumaScheduler, SchedulerConfig, SchedulerNotRunningError

    scheduler = NumaScheduler(SchedulerConfig(workers_per_numa_node=2, enable_cpu_affinity=False)).start()
    assert scheduler.submit(pow, 2, 2).result(10) == 4
    pid = os.fork()
    if pid == 0:
        try:
            scheduler.submit(pow, 2, 2)
        except SchedulerNotRunningError as exc:
            print("child refused:", "forked" in str(exc), flush=True)
        sys.exit(0)          # a normal exit: the exit hook meets the inherited scheduler
    _, status = os.waitpid(pid, 0)
    print("child exit", os.waitstatus_to_exitcode(status), flush=True)
    print("parent", scheduler.submit(pow, 3, 2).result(10), flush=True)
""")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_exits_normally_with_an_inherited_scheduler(tmp_path):
    """The child's interpreter exit stops the inherited scheduler without
    waiting for workers that do not exist there."""
    script = tmp_path / "fork_exit.py"
    script.write_text(FORK_EXIT_SCRIPT)
    proc = subprocess.run([sys.executable, "-W", "ignore::DeprecationWarning", str(script)],
                          capture_output=True, text=True, timeout=50, env=subprocess_env())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["child refused: True", "child exit 0", "parent 9"], proc.stdout

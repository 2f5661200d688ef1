"""`tallyio bench`: the contenders, the report and the command line.

The figures themselves are exercised by running every benchmark at smoke
sizes (test_package.test_cli_bench_smoke); here each contender must run every
task it is given exactly once, probes must return sane timestamps, peers that
cannot run must be reported with the reason, and the command must refuse bad
output paths before it measures anything.
"""
from __future__ import annotations

import importlib.util
import json
import threading

import pytest

from tallyio.bench import Figure, Target, format_table, to_json
from tallyio.bench import _contenders as contenders_module
from tallyio.bench._contenders import (AsyncioLoop, DaskThreaded, Loky, ProcessPoolApply, ProcessPoolMap,
                                       TallyioFutures, TallyioTasks, ThreadPool, contenders)
from tallyio.bench._progress import Progress
from tallyio.bench._workloads import NOOP, PYTHON_WORK_ITERS, SHA256, Work, python_work, sha256_work
from tallyio.task import Task

MACHINE = {"tallyio": "0", "cpu": "test CPU", "usable_cpus": 2, "numa_nodes": 1, "python": "3"}
LOKY_MISSING = "loky is not installed (pip install loky)"

pytestmark = pytest.mark.timeout(120)


class _Counted:
    """A Work whose every run is counted, by peers (fn) and by tallyio (task)."""

    def __init__(self) -> None:
        self.runs: list[int] = []
        counted = self

        class CountTask(Task):
            def execute(self) -> None:
                counted.runs.append(1)      # list.append is atomic under the GIL

        self.work = Work(lambda _=None: self.runs.append(1), CountTask())


IN_PROCESS = [lambda: TallyioTasks(queue_capacity=4096), TallyioFutures, lambda: ThreadPool(1),
              lambda: ThreadPool(4), AsyncioLoop]


@pytest.mark.parametrize("factory", IN_PROCESS, ids=["tallyio", "tallyio-futures", "tpe1", "tpe4", "asyncio"])
def test_in_process_contenders_run_each_task_exactly_once(factory):
    counted = _Counted()
    with factory() as contender:
        contender.run_all(counted.work, 3000)
        assert len(counted.runs) == 3000
        handles = [contender.submit(counted.work) for _ in range(500)]
        contender.wait(handles)
        assert len(counted.runs) == 3500
        start, complete = contender.probe()
        assert 0 < start <= complete


def test_dask_runs_each_task_exactly_once():
    pytest.importorskip("dask")
    counted = _Counted()
    with DaskThreaded() as contender:
        contender.run_all(counted.work, 2000)
        assert len(counted.runs) == 2000
        start, complete = contender.probe()
        assert 0 < start <= complete


@pytest.mark.parametrize("cls", [ProcessPoolApply, ProcessPoolMap, Loky])
def test_process_contenders_run_the_work(cls):
    if cls is Loky:
        pytest.importorskip("loky")
    with cls() as contender:
        # the work runs in other processes: what comes back proves it ran there
        contender.run_all(SHA256, 50)
        if cls.no_probe is None:
            start, complete = contender.probe()
            assert 0 < start <= complete
        if cls.no_submit is None:
            handles = [contender.submit(NOOP) for _ in range(20)]
            contender.wait(handles)
            assert all(h.ready() if hasattr(h, "ready") else h.done() for h in handles)


def test_workloads_do_their_work():
    assert python_work() == sum(range(PYTHON_WORK_ITERS))
    assert sha256_work() is None


def test_a_missing_peer_is_listed_with_the_reason(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name in ("loky", "dask") else real_find_spec(name, *args))
    runnable, skipped = contenders([("tallyio", TallyioTasks)])
    names = [name for name, _ in runnable]
    assert names[0] == "tallyio"
    assert {"ThreadPoolExecutor(1)", "ThreadPoolExecutor(2)", "ThreadPoolExecutor(4)",
            "asyncio call_soon_threadsafe"} <= set(names)
    assert skipped[Loky.name] == LOKY_MISSING
    assert skipped[DaskThreaded.name] == "dask is not installed (pip install dask)"
    assert Loky.name not in names and DaskThreaded.name not in names


def test_process_pools_that_cannot_start_are_skipped(monkeypatch):
    monkeypatch.setattr(contenders_module, "_process_pools_missing", lambda: "multiprocessing cannot start (test)")
    runnable, skipped = contenders([])
    assert skipped[ProcessPoolApply.name] == skipped[ProcessPoolMap.name] == "multiprocessing cannot start (test)"


def test_peers_without_an_operation_are_skipped_for_that_workload_only():
    all_runnable, _ = contenders([])
    _, no_submit = contenders([], needs="submit")
    _, no_probe = contenders([], needs="probe")
    assert no_submit[ProcessPoolMap.name] == ProcessPoolMap.no_submit
    assert no_probe[ProcessPoolMap.name] == ProcessPoolMap.no_probe
    assert ProcessPoolMap.name in [name for name, _ in all_runnable] or ProcessPoolMap.name in no_submit
    if importlib.util.find_spec("dask") is not None:
        assert no_submit[DaskThreaded.name] == DaskThreaded.no_submit
        assert DaskThreaded.name not in no_probe


def _result(figures):
    return {"machine": MACHINE, "mode": "smoke", "figures": figures}


def test_table_and_json_name_skipped_peers_once_per_group():
    figures = [Figure("G", "p50", [1.0, 2.0, 3.0], unit="us", peers={"P": [2.0, 4.0, 6.0]},
                      skipped_peers={Loky.name: LOKY_MISSING}),
               Figure("G", "p99", [5.0], unit="us", peers={"P": [10.0]}, skipped_peers={Loky.name: LOKY_MISSING}),
               Figure("H", "rate", [], unit="tasks/s", higher_is_better=True, skipped="native_example not built")]
    text = format_table(_result(figures))
    assert text.count(f"not measured: {Loky.name}: {LOKY_MISSING}") == 1
    assert "skipped: native_example not built" in text
    data = json.loads(to_json(_result(figures)))
    first = data["figures"][0]
    assert {"name": Loky.name, "skipped": LOKY_MISSING} in first["peers"]
    assert [p["ratio"] for p in first["peers"] if p["name"] == "P"] == [2.0]     # lower is better: 4 / 2
    assert data["figures"][2]["median"] is None


def test_a_target_against_a_peer_is_the_ratio():
    figure = Figure("G", "rate", [3.4], unit="tasks/s", higher_is_better=True, peers={"serial": [2.0]})
    assert Target(1.7, peer="serial").met(figure) is True
    assert Target(1.8, peer="serial").met(figure) is False
    assert Target(1.0, peer="absent").met(figure) is None


def test_progress_says_section_step_and_elapsed_time():
    lines: list[str] = []
    progress = Progress(lines.append, sections=2)
    progress.section("no-op tasks")
    progress.step("ThreadPoolExecutor(4), repetition 2/3")
    progress.section("memory")
    assert lines[1].startswith("[1/2 no-op tasks] ThreadPoolExecutor(4), repetition 2/3  (0:0")
    assert lines[2].startswith("[2/2 memory] starting")
    Progress(None, sections=1).step("nobody listens")      # no sink: nothing to do, no error


@pytest.mark.parametrize("flag", ["--json", "--plot"])
def test_cli_refuses_an_output_path_in_a_missing_directory_before_measuring(tmp_path, capsys, flag):
    from tallyio.cli import main
    target = tmp_path / "absent" / "out.file"
    assert main(["bench", "--smoke", flag, str(target)]) == 2
    err = capsys.readouterr().err
    assert f"{flag} {target}: no such directory {target.parent}" in err


def test_cli_plot_without_matplotlib_says_how_to_get_it(monkeypatch, tmp_path, capsys):
    import sys

    from tallyio.cli import main
    monkeypatch.setitem(sys.modules, "matplotlib", None)      # import matplotlib -> ImportError
    assert main(["bench", "--smoke", "--plot", str(tmp_path / "out.png")]) == 2
    assert "pip install 'tallyio[plot]'" in capsys.readouterr().err
    assert not (tmp_path / "out.png").exists()


def test_no_worker_threads_outlive_the_contenders():
    before = threading.active_count()
    for factory in IN_PROCESS:
        with factory() as contender:
            contender.run_all(NOOP, 100)
    assert threading.active_count() == before

"""tallyio.backtest: segments that replay alone exactly as inside the whole replay;
one digest sequentially, on a LocalCluster of processes and on a cluster of
separate ``dask scheduler`` / ``dask worker`` processes; a worker SIGKILLed
mid-run; a corrupt segment; the command line as a subprocess."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tallyio.backtest import Backtest, BacktestReport, check_segment, expand_grid, load_segments, split_recording
from tallyio.backtest.segments import Segment
from tallyio.backtest.task import TaskSpec, apply_params, load_strategy_class, run_task, strategy_spec
from tallyio.engine.strategy import CycleStrategy
from tallyio.errors import CorruptSegmentError, TallyioError
from tallyio.mempool.recording import embedded_recording
from tallyio.state.recordlog import RecordReader, RecordType

distributed = pytest.importorskip("distributed", reason="the backtest extra (dask[distributed]) is not installed")

TESTS = Path(__file__).resolve().parent
CYCLE = "tallyio.engine.strategy:CycleStrategy"
SLOW = "backtest_strategies:SlowCycle"
GRID = {"CycleStrategy": (CycleStrategy, {"min_profit": [0, 3000]})}


def _whole(strategy: str = CYCLE, params=()) -> dict:
    [segment] = load_segments(embedded_recording()[0])
    return run_task(TaskSpec(segment, strategy, params, keep_outcomes=True))


@pytest.fixture(scope="module")
def whole() -> dict:
    return _whole()


# ---- segments ------------------------------------------------------------------------------

@pytest.mark.parametrize("cut", [{"blocks_per_segment": 1}, {"blocks_per_segment": 5}, {"segment_seconds": 0.5}])
def test_segments_replayed_alone_equal_the_whole_replay(tmp_path, whole, cut):
    paths = split_recording(embedded_recording()[0], tmp_path, **cut)
    segments = load_segments(tmp_path / "replay.segments.json")
    assert [Path(s.path) for s in segments] == [p.resolve() for p in paths] and len(paths) >= 2
    for p in paths:                          # each starts with the pool table where it begins
        assert next(iter(RecordReader(p))).type == RecordType.POOL_SNAPSHOT
    parts = [run_task(TaskSpec(s, CYCLE, (), keep_outcomes=True)) for s in segments]
    lines = sorted(line for part in parts for line in part["outcome_lines"])
    assert lines == whole["outcome_lines"] and len(lines) > 50
    # every pending tx, head and Sync is in exactly one segment (each segment also has its snapshot)
    assert sum(part["deterministic"]["records_fed"] for part in parts) == whole["deterministic"]["records_fed"]
    assert sum(part["deterministic"]["realized_profit"] for part in parts) == whole["deterministic"]["realized_profit"]
    merged = BacktestReport.merge(parts, settings=[("c", CYCLE, ())]).settings["c[default]"]
    assert sorted(merged.pnl_by_block.items()) == [tuple(x) for x in whole["deterministic"]["pnl_by_block"]]


def test_split_cuts_before_block_headers_only(tmp_path):
    for p in split_recording(embedded_recording()[0], tmp_path, blocks_per_segment=2)[1:]:
        records = list(RecordReader(p))
        assert records[1].type == RecordType.BLOCK_HEADER
        assert sum(r.type == RecordType.BLOCK_HEADER for r in records) <= 2


def test_split_refuses_bad_arguments(tmp_path):
    rec = embedded_recording()[0]
    with pytest.raises(ValueError, match="exactly one"):
        split_recording(rec, tmp_path)
    with pytest.raises(ValueError, match="exactly one"):
        split_recording(rec, tmp_path, blocks_per_segment=1, segment_seconds=1.0)
    with pytest.raises(ValueError, match="blocks_per_segment must be a positive int"):
        split_recording(rec, tmp_path, blocks_per_segment=0)
    with pytest.raises(ValueError, match="segment_seconds"):
        split_recording(rec, tmp_path, segment_seconds=-1)
    with pytest.raises(FileNotFoundError):
        split_recording(tmp_path / "missing.tio", tmp_path, blocks_per_segment=1)


def test_split_needs_a_snapshot_first(tmp_path):
    from tallyio.mempool.recording import Recorder
    from tallyio.eth.types import BlockHeader
    with Recorder(tmp_path / "bare.tio") as rec:
        rec.write(BlockHeader(1, b"\x01" * 32, b"\x02" * 32, 1, 1, 30_000_000, 1, 5))
    with pytest.raises(ValueError, match="no pool-table snapshot"):
        split_recording(tmp_path / "bare.tio", tmp_path / "out", blocks_per_segment=1)


def test_load_segments_of_folders_and_bad_paths(tmp_path):
    split_recording(embedded_recording()[0], tmp_path, blocks_per_segment=4)
    assert len(load_segments(tmp_path)) == 3
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="needs a"):
        load_segments(tmp_path / "empty")
    (tmp_path / "x.segments.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a segment manifest"):
        load_segments(tmp_path / "x.segments.json")
    with pytest.raises(FileNotFoundError):
        load_segments(tmp_path / "nothing.tio")


# ---- corrupt segments ---------------------------------------------------------------------------

def _damage(path: str, at_fraction: float = 0.6) -> None:
    data = bytearray(Path(path).read_bytes())
    data[int(len(data) * at_fraction)] ^= 0xFF
    Path(path).write_bytes(bytes(data))


def test_corrupt_segment_is_named_and_the_others_still_reported(tmp_path, whole):
    split_recording(embedded_recording()[0], tmp_path, blocks_per_segment=3)
    bt = Backtest([tmp_path / "replay.segments.json"], {"c": (CYCLE, None)})
    clean = bt.run(sequential=True)
    victim = bt.segments[1].path
    _damage(victim)
    report = bt.run(sequential=True)
    assert list(report.errors) == [victim]
    assert victim in report.errors[victim] and "corrupt segment" in report.errors[victim]
    setting, before = report.settings["c[default]"], clean.settings["c[default]"]
    assert setting.failed_segments == ["replay#1"]
    assert set(setting.segment_outcomes) == {"replay#0", "replay#2", "replay#3"}
    assert 0 < setting.opportunities < before.opportunities == whole["deterministic"]["opportunities"]
    assert report.digest() != clean.digest()
    assert f"corrupt segment {victim}" in report.summary()


def test_check_segment_names_each_kind_of_damage(tmp_path):
    [first, *_] = split_recording(embedded_recording()[0], tmp_path, blocks_per_segment=6)
    good = load_segments(tmp_path / "replay.segments.json")[0]
    check_segment(good)
    # changed after the manifest was written
    with pytest.raises(CorruptSegmentError, match="sha256") as info:
        check_segment(good._replace(sha256="0" * 64))
    assert info.value.path == good.path and isinstance(info.value, (TallyioError, ValueError))
    # a torn record without a manifest hash: the reader's own checksum finds it
    _damage(good.path, 0.9)
    with pytest.raises(CorruptSegmentError, match="stops early|valid records"):
        check_segment(good._replace(sha256=""))
    # not a record log at all, and missing
    (tmp_path / "foreign.tio").write_bytes(b"hello world" * 20)
    with pytest.raises(CorruptSegmentError, match="foreign.tio"):
        check_segment(Segment(str(tmp_path / "foreign.tio"), -1, ""))
    with pytest.raises(CorruptSegmentError, match="gone.tio"):
        check_segment(Segment(str(tmp_path / "gone.tio"), -1, ""))
    import pickle
    err = pickle.loads(pickle.dumps(CorruptSegmentError("a.tio", "why")))
    assert (err.path, err.reason, str(err)) == ("a.tio", "why", "corrupt segment a.tio: why")


# ---- settings ---------------------------------------------------------------------------------

def test_grid_and_params():
    assert expand_grid({"b": [1, 2], "a": [0]}) == [(("a", 0), ("b", 1)), (("a", 0), ("b", 2))]
    with pytest.raises(ValueError, match="'a'"):
        expand_grid({"a": []})
    with pytest.raises(TypeError):
        expand_grid([1, 2])
    strategy, config = apply_params(CycleStrategy, (("min_profit", 7), ("breaker_failure_rate", 0.9)))
    assert strategy.min_profit == 7 and config == {"breaker_failure_rate": 0.9}
    with pytest.raises(ValueError, match="nonsense"):
        apply_params(CycleStrategy, (("nonsense", 1),))
    with pytest.raises(ValueError, match="execute is fixed"):
        apply_params(CycleStrategy, (("execute", True),))
    sys.path.insert(0, str(TESTS))
    try:
        slow = load_strategy_class(SLOW)
        assert apply_params(slow, (("delay_s", 0.5),))[0].delay_s == 0.5
    finally:
        sys.path.remove(str(TESTS))
    assert strategy_spec(CycleStrategy) == CYCLE
    with pytest.raises(ValueError, match="module:Class"):
        strategy_spec("nocolon")
    with pytest.raises(ValueError, match="not a tallyio Strategy"):
        load_strategy_class("tallyio.engine.strategy:StrategyContext")
    with pytest.raises(ValueError, match="cannot import"):
        load_strategy_class("no_such_module_here:X")

    class Local(CycleStrategy):
        pass
    with pytest.raises(ValueError, match="inside a function"):
        Backtest(strategies={"x": (Local, None)})
    with pytest.raises(TypeError):
        Backtest(strategies={"x": CycleStrategy})
    with pytest.raises(ValueError, match="retries"):
        Backtest(retries=-1)


def test_sequential_sweep_is_deterministic_and_min_profit_matters():
    with Backtest(strategies=GRID, blocks_per_segment=3) as bt:
        a, b = bt.run(sequential=True), bt.run(sequential=True)
    assert a.digest() == b.digest() and a.canonical() == b.canonical()
    low, high = a.settings["CycleStrategy[min_profit=0]"], a.settings["CycleStrategy[min_profit=3000]"]
    assert low.opportunities == high.opportunities > 0
    assert high.actions < low.actions and high.realized_profit < low.realized_profit
    assert high.results["REJECTED"] == low.actions - high.actions
    curve = low.pnl_over_time()
    assert curve[-1][1] == low.realized_profit and [b for b, _ in curve] == sorted(b for b, _ in curve)
    # latency: merged bucket counts, one record per execute_strategy call, not in the digest
    execute = low.latency["engine_execute_latency_seconds"]
    assert execute.count == low.opportunities
    assert "latency" not in a.canonical().decode()


def test_html_report_has_a_panel_per_setting(tmp_path):
    report = Backtest(strategies=GRID).run(sequential=True)
    page = report.write_html(tmp_path / "bt.html").read_text()
    for label in report.settings:
        assert f"<h2>{label}</h2>" in page
    assert "cumulative P&amp;L" in page and report.digest() in page and "<script" not in page


# ---- Dask: LocalCluster, a separate scheduler + workers, SIGKILL --------------------------------

def _worker_env(marker_dir: Path) -> dict:
    path = os.pathsep.join([str(TESTS), os.environ["PYTHONPATH"]])
    return dict(os.environ, PYTHONPATH=path, TALLYIO_TEST_MARKER_DIR=str(marker_dir))


# ---- recordings read where they are: URLs through fsspec -------------------------------------

def test_segments_by_url_give_the_local_digest_and_a_bad_one_names_the_url(tmp_path, monkeypatch):
    import tempfile
    fsspec = pytest.importorskip("fsspec")
    split_recording(embedded_recording()[0], tmp_path / "local", blocks_per_segment=3)
    manifest = tmp_path / "local" / "replay.segments.json"
    local = Backtest([manifest], {"c": (CYCLE, None)}).run(sequential=True)
    # object storage stands in as fsspec's in-memory file system (this process: sequential)
    memory = fsspec.filesystem("memory")
    root = f"/tallyio-test-{os.getpid()}"
    for f in (tmp_path / "local").iterdir():
        memory.pipe(f"{root}/{f.name}", f.read_bytes())
    # fetch_segment's default cache lives in the temp folder: this test's own
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp1"))
    (tmp_path / "tmp1").mkdir()
    try:
        by_memory = Backtest([f"memory://{root}/replay.segments.json"], {"c": (CYCLE, None)})
        assert by_memory.segments[0].path == f"memory://{root}/replay.seg0000.tio"
        assert by_memory.run(sequential=True).digest() == local.digest()
        assert len(list((tmp_path / "tmp1" / "tallyio-backtest-cache").iterdir())) == len(by_memory.segments)
        by_file = Backtest([f"file://{manifest}"], {"c": (CYCLE, None)}).run(sequential=True)
        assert by_file.digest() == local.digest() and not by_file.errors
        # a damaged object fetched afresh: the task names its URL, the other segments still count
        # (a cached copy whose sha256 is the manifest's is what the manifest names, and is used)
        victim = f"memory://{root}/replay.seg0001.tio"
        data = bytearray(memory.cat(victim[len("memory://"):]))
        data[len(data) // 2] ^= 0xFF
        memory.pipe(victim[len("memory://"):], bytes(data))
        monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp2"))
        (tmp_path / "tmp2").mkdir()
        damaged = Backtest([f"memory://{root}/replay.segments.json"], {"c": (CYCLE, None)}).run(sequential=True)
        assert list(damaged.errors) == [victim] and f"corrupt segment {victim}" in damaged.errors[victim]
        assert damaged.settings["c[default]"].failed_segments == ["replay#1"]
        missing = Backtest([f"memory://{root}/replay.segments.json"], {"c": (CYCLE, None)})
        memory.rm(f"{root}/replay.seg0002.tio")
        monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp3"))
        (tmp_path / "tmp3").mkdir()
        report = missing.run(sequential=True)
        assert "could not be fetched" in report.errors[f"memory://{root}/replay.seg0002.tio"]
        with pytest.raises(FileNotFoundError, match="memory:///nowhere.tio"):
            load_segments("memory:///nowhere.tio")
        with pytest.raises(ValueError, match="is not split here"):
            Backtest([f"memory://{root}/replay.seg0000.tio"], {"c": (CYCLE, None)}, blocks_per_segment=2)
    finally:
        memory.rm(root, recursive=True)


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    """``dask scheduler --host 127.0.0.1`` and two ``dask worker tcp://127.0.0.1:PORT``
    processes (one thread each, with their nannies), torn down at the end."""
    folder = tmp_path_factory.mktemp("dask")
    markers = folder / "markers"
    markers.mkdir()
    env = _worker_env(markers)
    dask = [str(Path(sys.executable).parent / "dask")]
    if not os.path.exists(dask[0]):
        pytest.skip("the dask command is not installed beside this python")
    sched_file = folder / "scheduler.json"
    logs = [open(folder / name, "w") for name in ("scheduler.log", "worker0.log", "worker1.log")]
    procs = [subprocess.Popen(dask + ["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                      "--scheduler-file", str(sched_file)],
                              env=env, stdout=subprocess.DEVNULL, stderr=logs[0])]
    try:
        deadline = time.monotonic() + 60
        while not sched_file.exists() or not sched_file.read_text().strip():
            assert procs[0].poll() is None, (folder / "scheduler.log").read_text()
            assert time.monotonic() < deadline, "the dask scheduler did not start in 60 s"
            time.sleep(0.1)
        time.sleep(0.2)
        address = json.loads(sched_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        for i in range(2):
            procs.append(subprocess.Popen(dask + ["worker", address, "--nthreads", "1", "--no-dashboard",
                                                  "--name", f"w{i}"],
                                          env=env, stdout=subprocess.DEVNULL,
                                          stderr=logs[1 + i]))
        client = distributed.Client(address, timeout=60)
        client.wait_for_workers(2, timeout=60)
        yield {"address": address, "client": client, "markers": markers}
        client.close()
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for log in logs:
            log.close()


def test_digest_identical_sequential_localcluster_and_separate_processes(dask_cluster):
    with Backtest(strategies=GRID, blocks_per_segment=3) as bt:
        sequential = bt.run(sequential=True)
        local = bt.run()
        remote = bt.run(dask_cluster["client"])
        by_address = bt.run(dask_cluster["address"])
    assert local.mode == "LocalCluster(2 processes)" and remote.mode.startswith("Client(tcp://127.0.0.1:")
    assert sequential.digest() == local.digest() == remote.digest() == by_address.digest()
    assert sequential.canonical() == remote.canonical()
    assert not remote.errors and remote.tasks == len(bt.segments) * 2 == 8
    # the latency histograms came back from the workers too (merged, not averaged)
    assert remote.settings["CycleStrategy[min_profit=0]"].latency["engine_execute_latency_seconds"].count == 109


def test_worker_sigkilled_mid_run_loses_no_result(dask_cluster):
    sys.path.insert(0, str(TESTS))
    try:
        strategies = {"slow": (SLOW, {"delay_s": [0.04]})}
        with Backtest(strategies=strategies, blocks_per_segment=3, retries=3) as bt:
            reference = bt.run(sequential=True)
            markers = dask_cluster["markers"]
            for old in markers.iterdir():
                old.unlink()
            done: dict = {}
            runner = threading.Thread(target=lambda: done.setdefault("report", bt.run(dask_cluster["client"])))
            runner.start()
            deadline = time.monotonic() + 60
            while not any(markers.iterdir()):
                assert time.monotonic() < deadline and runner.is_alive(), "no task started on a worker"
                time.sleep(0.01)
            victim = int(next(markers.iterdir()).name.split(".")[0])
            os.kill(victim, signal.SIGKILL)       # a worker process in the middle of a task
            runner.join(timeout=120)
            assert not runner.is_alive()
    finally:
        sys.path.remove(str(TESTS))
    report = done["report"]
    assert not report.errors and report.digest() == reference.digest()
    with pytest.raises(ProcessLookupError):
        os.kill(victim, 0)
    # the killed task ran again somewhere: more task starts than tasks
    assert len(list(markers.iterdir())) > len(bt.segments)


def test_corrupt_segment_on_a_cluster(dask_cluster, tmp_path):
    split_recording(embedded_recording()[0], tmp_path, blocks_per_segment=6)
    bt = Backtest([tmp_path], {"c": (CYCLE, None)})
    _damage(bt.segments[0].path)
    report = bt.run(dask_cluster["client"])
    assert list(report.errors) == [bt.segments[0].path]
    assert report.settings["c[default]"].segment_outcomes.keys() == {"replay#1"}
    assert report.digest() == bt.run(sequential=True).digest()


# ---- the command line ---------------------------------------------------------------------------

def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tallyio", "backtest", *args], capture_output=True, text=True,
                          timeout=240, cwd=cwd)


def test_cli_matches_the_api_digest(tmp_path):
    done = _cli("--sequential", "--grid", "min_profit=0,3000", "--json", "bt.json", "--report", "bt.html",
                cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    with Backtest(strategies=GRID, blocks_per_segment=3) as bt:      # the CLI's default: ~4 segments
        expected = bt.run(sequential=True).digest()
    assert f"digest {expected}" in done.stdout
    assert json.loads((tmp_path / "bt.json").read_text())["digest"] == expected
    assert "CycleStrategy[min_profit=3000]" in (tmp_path / "bt.html").read_text()
    assert "4 segments x 2 settings = 8 tasks, sequential" in done.stdout


def test_cli_on_a_scheduler_matches_sequential(tmp_path, dask_cluster):
    remote = _cli("--scheduler", dask_cluster["address"], "--segments", "2", "--quiet", cwd=tmp_path)
    sequential = _cli("--sequential", "--segments", "2", cwd=tmp_path)
    assert remote.returncode == sequential.returncode == 0, remote.stderr + sequential.stderr
    digest = [line for line in sequential.stdout.splitlines() if line.startswith("digest ")]
    assert digest and digest[0] in remote.stdout and "Client(tcp://127.0.0.1:" in remote.stdout
    assert "2 segments x 1 settings = 2 tasks" in remote.stdout


def test_cli_bad_arguments_and_a_corrupt_segment(tmp_path):
    bad = _cli("--sequential", "--grid", "min_profit", cwd=tmp_path)
    assert bad.returncode == 2 and "--grid 'min_profit'" in bad.stderr
    bad = _cli("--sequential", "--strategy", "nowhere:Nothing", cwd=tmp_path)
    assert bad.returncode == 2 and "cannot import nowhere" in bad.stderr
    bad = _cli("--sequential", "--grid", "nonsense=1", cwd=tmp_path)
    assert bad.returncode == 2 and "setting nonsense=1" in bad.stderr
    split_recording(embedded_recording()[0], tmp_path / "segs", blocks_per_segment=6)
    victim = load_segments(tmp_path / "segs")[1].path
    _damage(victim)
    done = _cli("--sequential", str(tmp_path / "segs"), cwd=tmp_path)
    assert done.returncode == 1 and f"corrupt segment {victim}" in done.stdout
    assert "CycleStrategy[default]: opportunities" in done.stdout


def test_a_task_that_raises_is_reported_and_the_others_still_run(dask_cluster):
    sys.path.insert(0, str(TESTS))
    try:
        strategies = {"broken": ("backtest_strategies:BrokenStart", None), "c": (CYCLE, None)}
        with Backtest(strategies=strategies, blocks_per_segment=6, retries=1) as bt:
            sequential = bt.run(sequential=True)
            remote = bt.run(dask_cluster["client"])
    finally:
        sys.path.remove(str(TESTS))
    for report in (sequential, remote):
        assert set(report.errors) == {s.path for s in bt.segments}
        assert all("BrokenStart refuses to start" in m for m in report.errors.values())
        assert report.settings["broken[default]"].failed_segments == ["replay#0", "replay#1"]
        assert report.settings["c[default]"].opportunities == 109
    assert "after 1 retries" in next(iter(remote.errors.values()))
    assert sequential.digest() == remote.digest()


def test_cli_in_process(tmp_path, capsys):
    from tallyio.backtest.cli import parse_grid, parse_value
    from tallyio.cli import main

    assert [parse_value(v) for v in ("3", "0.5", "TRUE", "false", "abc")] == [3, 0.5, True, False, "abc"]
    with pytest.raises(ValueError, match="given twice"):
        parse_grid(["a=1", "a=2"])
    assert main(["backtest", "--sequential", "--segment-seconds", "1.5", "--grid", "min_profit=0,5",
                 "--json", str(tmp_path / "b.json"), "--report", str(tmp_path / "b.html")]) == 0
    out = capsys.readouterr().out
    assert "x 2 settings" in out and "CycleStrategy[min_profit=5]" in out
    data = json.loads((tmp_path / "b.json").read_text())
    assert data["digest"] in out and data["mode"] == "sequential" and not data["errors"]
    assert "engine_execute_latency_seconds" in data["latency"]["CycleStrategy[min_profit=0]"]
    split_recording(embedded_recording()[0], tmp_path / "segs", blocks_per_segment=6)
    assert main(["backtest", "--sequential", str(tmp_path / "segs" / "replay.segments.json"),
                 "--strategy", CYCLE, "--strategy", "tallyio.engine.strategy:CycleStrategy"]) == 0
    out = capsys.readouterr().out
    assert "2 segments x 2 settings" in out
    # the same class twice under two names: two entries, each with the whole result
    assert out.count("opportunities 109, actions 109") == 2
    for argv, text in ((["--segments", "0"], "--segments must be >= 1"),
                       (["--segment-seconds", "-1"], "--segment-seconds must be > 0"),
                       ([str(tmp_path / "none.tio")], "none.tio"),
                       (["--grid", "x"], "expected name=v1,v2")):
        assert main(["backtest", "--sequential", *argv]) == 2
        assert text in capsys.readouterr().err

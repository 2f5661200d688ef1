"""``Backtest``: every (segment, strategy, setting) of a set of recordings as a
task, run in this process or on a Dask distributed cluster, merged into one
``BacktestReport``.

Owns: the task list (segments x strategies x the cartesian product of each
strategy's parameter grid), the choice of where tasks run (``sequential``, a
``LocalCluster`` it starts and stops, a ``Client`` or a scheduler address the
caller gives) with Dask's retries, and the progress line.  Touches: tallyio's
segments and task modules, ``dask.distributed`` (imported only when a cluster
is used: the sequential path needs no Dask).

What goes over the wire: a ``TaskSpec`` per task (a path, a record count, a
hash, ``module:Class``, the setting), and back the compact result; the
recordings are read by the workers where they are (a path every worker sees:
a shared file system).

    >>> from tallyio.engine.strategy import CycleStrategy
    >>> bt = Backtest(strategies={"cycle": (CycleStrategy, {"min_profit": [0, 10**9]})})
    >>> report = bt.run(sequential=True)
    >>> sorted(report.settings)
    ['cycle[min_profit=0]', 'cycle[min_profit=1000000000]']
    >>> [report.settings[k].actions > 0 for k in sorted(report.settings)]
    [True, False]
"""
from __future__ import annotations

import itertools
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, TextIO, Tuple, Union

from tallyio.backtest.report import BacktestReport
from tallyio.backtest.segments import MANIFEST_SUFFIX, Segment, is_url, segments_of, split_recording
from tallyio.backtest.task import (EMBEDDED_ROUTERS, TaskSpec, apply_params, load_strategy_class, run_task,
                                   strategy_spec)

__all__ = ["Backtest", "expand_grid"]

PathLike = Union[str, os.PathLike]


def expand_grid(grid: Optional[Mapping[str, Sequence[Any]]]) -> List[Tuple[Tuple[str, Any], ...]]:
    """Every setting of a parameter grid, names sorted, values in the given order.

    >>> expand_grid({"b": [1, 2], "a": ["x"]})
    [(('a', 'x'), ('b', 1)), (('a', 'x'), ('b', 2))]
    >>> expand_grid(None)
    [()]
    """
    if not grid:
        return [()]
    if not isinstance(grid, Mapping):
        raise TypeError(f"a parameter grid is a mapping of name -> values, got {type(grid).__name__}")
    names = sorted(grid)
    values = []
    for name in names:
        v = grid[name]
        if isinstance(v, (str, bytes)) or not isinstance(v, Sequence) or len(v) == 0:
            raise ValueError(f"grid {name!r}: a non-empty list of values, got {v!r}")
        values.append(list(v))
    return [tuple(zip(names, combo)) for combo in itertools.product(*values)]


class Backtest:
    """Backtest ``recordings`` x ``strategies``.

    * ``recordings``: paths of recordings (``.tio``), segment manifests
      (``*.segments.json``) or folders of segments; default: the embedded one.
      With ``segment_seconds`` or ``blocks_per_segment``, each recording file is
      split first (into ``work_dir``; default a temporary folder) -- give a
      ``work_dir`` every worker can read when the workers are on other machines.
    * ``strategies``: ``{name: (StrategyClass or "module:Class", grid)}``, the grid
      a mapping of parameter -> values (``None``: the default setting).  A
      parameter goes to the strategy's ``__init__``, or to ``CoreConfig`` (engine
      and breaker fields), or onto the instance (``min_profit``).
    * ``routers``: ``[(0x-address, exchange)]`` of the recordings' V2 routers
      (default: the embedded recording's).
    * ``retries``: how often Dask reruns a task whose worker died.
    """

    def __init__(self, recordings: Optional[Sequence[PathLike]] = None,
                 strategies: Optional[Mapping[str, Tuple[Any, Any]]] = None, *,
                 segment_seconds: Optional[float] = None, blocks_per_segment: Optional[int] = None,
                 work_dir: Optional[PathLike] = None, routers: Any = None, retries: int = 3,
                 engine_workers: int = 1, workers: int = 2) -> None:
        from tallyio.mempool.recording import embedded_recording

        if recordings is None:
            recordings = [embedded_recording()[0]]
        if isinstance(recordings, (str, os.PathLike)):
            recordings = [recordings]
        if strategies is None:
            strategies = {"CycleStrategy": ("tallyio.engine.strategy:CycleStrategy", None)}
        if not isinstance(strategies, Mapping) or not strategies:
            raise TypeError("strategies: a non-empty mapping of name -> (StrategyClass, grid)")
        for label, value in (("retries", retries), ("engine_workers", engine_workers), ("workers", workers)):
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if label == "retries" else 1):
                raise ValueError(f"Backtest: {label} must be an int >= {0 if label == 'retries' else 1}, "
                                 f"got {value!r}")
        self.settings: List[Tuple[str, str, Tuple[Tuple[str, Any], ...]]] = []
        for name, entry in strategies.items():
            if not isinstance(entry, tuple) or len(entry) != 2:
                raise TypeError(f"strategies[{name!r}]: expected (StrategyClass, grid), got {entry!r}")
            spec = strategy_spec(entry[0])
            cls = load_strategy_class(spec)          # a bad name or setting fails here, not on every worker
            for params in expand_grid(entry[1]):
                apply_params(cls, params)
                self.settings.append((str(name), spec, params))
        self.routers = EMBEDDED_ROUTERS if routers is None else [
            (a if isinstance(a, str) else "0x" + bytes(a).hex(), int(k)) for a, k in routers]
        self.retries = retries
        self.engine_workers = engine_workers
        self.workers = workers
        self._tmp: Optional[tempfile.TemporaryDirectory] = None
        sources: List[PathLike] = []
        if segment_seconds is not None or blocks_per_segment is not None:
            if work_dir is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="tallyio-backtest-")
                work_dir = self._tmp.name
            try:
                for rec in recordings:
                    if is_url(rec) and not str(rec).endswith(MANIFEST_SUFFIX):
                        raise ValueError(f"{rec}: a recording given by URL is not split here; split it where it "
                                         "is a file (split_recording) and give the segments' manifest URL")
                    p = Path(rec)
                    if p.is_file() and not p.name.endswith(".json"):
                        split_recording(p, work_dir, segment_seconds=segment_seconds,
                                        blocks_per_segment=blocks_per_segment)
                        stem = p.name[:-4] if p.name.endswith(".tio") else p.name
                        sources.append(Path(work_dir) / f"{stem}.segments.json")
                    else:
                        sources.append(p)
                self.segments: List[Segment] = segments_of(sources)
            except BaseException:
                self.close()
                raise
        else:
            self.segments = segments_of(recordings)

    def tasks(self, *, keep_outcomes: bool = False) -> List[TaskSpec]:
        """Every (segment, strategy, setting) as a ``TaskSpec``, in a fixed order."""
        return [TaskSpec(seg, spec, params, self.routers, self.engine_workers, keep_outcomes, name)
                for seg in self.segments for name, spec, params in self.settings]

    def run(self, client: Any = None, *, sequential: bool = False, progress: Optional[TextIO] = None,
            on_result: Optional[Callable[[Dict[str, Any]], None]] = None) -> BacktestReport:
        """Run every task and merge.  ``sequential=True``: in this process, no Dask.
        Otherwise ``client`` is a ``distributed.Client``, a scheduler address
        (``tcp://host:port``), or None for a ``LocalCluster`` of ``workers``
        processes started and stopped here.  ``progress``: a stream for the
        progress line (default: stderr when it is a terminal).  ``on_result`` is
        called with each task's result as it arrives (in arrival order)."""
        if progress is None and sys.stderr.isatty():
            progress = sys.stderr
        specs = self.tasks()
        started = time.perf_counter()
        results: List[Dict[str, Any]] = []
        line = _Progress(progress, len(specs))
        if sequential:
            mode = "sequential"
            for spec in specs:
                try:
                    out = run_task(spec)
                except Exception as exc:        # a task that fails is reported; the others still run
                    out = _failed(spec, f"segment {spec.segment.path}: the task failed: {type(exc).__name__}: {exc}")
                results.append(out)
                line.done(out)
                if on_result is not None:
                    on_result(out)
        else:
            mode, results = self._run_dask(client, specs, line, on_result)
        line.close()
        report = BacktestReport.merge(results, settings=self.settings)
        report.seconds = time.perf_counter() - started
        report.mode = mode
        return report

    def _run_dask(self, client: Any, specs: List[TaskSpec], line: "_Progress",
                  on_result: Optional[Callable[[Dict[str, Any]], None]]) -> Tuple[str, List[Dict[str, Any]]]:
        try:
            from distributed import Client, LocalCluster, as_completed
        except ImportError as exc:
            raise ImportError(f"a backtest on Dask needs dask[distributed] (pip install 'tallyio[backtest]'), "
                              f"or run it with sequential=True: {exc}") from None

        cluster = own_client = None
        if client is None:
            cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                   dashboard_address=":0")   # a free port: never a clash, never a warning
            client = own_client = Client(cluster)
            mode = f"LocalCluster({self.workers} processes)"
        elif isinstance(client, str):
            client = own_client = Client(client)
            mode = f"Client({client.scheduler.address})"
        else:
            mode = f"Client({client.scheduler.address})"
        results: List[Dict[str, Any]] = []
        try:
            futures = client.map(run_task, specs, retries=self.retries, pure=False)
            index = {f.key: spec for f, spec in zip(futures, specs)}
            for future in as_completed(futures):
                if future.status == "error":
                    spec = index[future.key]
                    exc = future.exception()
                    out = _failed(spec, f"segment {spec.segment.path}: the task failed after {self.retries} "
                                        f"retries: {type(exc).__name__}: {exc}")
                else:
                    out = future.result()
                results.append(out)
                line.done(out)
                if on_result is not None:
                    on_result(out)
                future.release()
        finally:
            if own_client is not None:
                own_client.close()
            if cluster is not None:
                cluster.close()
        return mode, results

    def close(self) -> None:
        """Remove the temporary folder of split segments (if this Backtest made one)."""
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> "Backtest":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _failed(spec: TaskSpec, message: str) -> Dict[str, Any]:
    """The result of a task that raised (or whose workers kept dying): only the error."""
    return {"segment": spec.segment.path, "index": spec.segment.index, "recording": spec.segment.recording,
            "name": spec.name, "strategy": spec.strategy, "params": [list(p) for p in spec.params],
            "deterministic": None,
            "latency": {}, "outcome_lines": None, "seconds": 0.0, "error": message}


class _Progress:
    """One terminal line: tasks done of all, errors, P&L so far (only to a stream given)."""

    def __init__(self, out: Optional[TextIO], total: int) -> None:
        self.out, self.total, self.count, self.errors, self.pnl = out, total, 0, 0, 0
        self.started = time.perf_counter()

    def done(self, result: Dict[str, Any]) -> None:
        self.count += 1
        if result["error"] is not None:
            self.errors += 1
        else:
            self.pnl += result["deterministic"]["realized_profit"]
        if self.out is not None:
            self.out.write(f"\rbacktest: {self.count}/{self.total} tasks, {self.errors} errors, "
                           f"P&L so far {self.pnl:,}, {time.perf_counter() - self.started:.1f} s  ")
            self.out.flush()

    def close(self) -> None:
        if self.out is not None and self.count:
            self.out.write("\n")
            self.out.flush()

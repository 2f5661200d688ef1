"""``tallyio backtest``: recordings x strategy settings, sequential or on Dask.

Owns the ``backtest`` subcommand's parser and what it prints (``tallyio/cli.py``
only registers it); uses ``Backtest`` and ``BacktestReport``.

    >>> import argparse, io
    >>> parser = argparse.ArgumentParser(prog="tallyio")
    >>> add_backtest_command(parser.add_subparsers(dest="command"))   # doctest: +ELLIPSIS
    ArgumentParser(prog='tallyio backtest', ...)
    >>> out = io.StringIO()
    >>> backtest_command(parser.parse_args(["backtest", "--sequential", "--grid", "min_profit=0,1"]), out=out)
    0
    >>> "digest" in out.getvalue()
    True
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Dict, List, Optional, TextIO

__all__ = ["add_backtest_command", "backtest_command", "parse_grid"]

_DESCRIPTION = """\
Backtests strategies over recordings: every (segment, strategy, setting) is
one task that replays its segment through a local engine with the dry-run
executor; the results merge exactly into one report per strategy setting, with
a digest that is the same sequentially and on any Dask cluster.

  tallyio backtest                               the embedded recording, CycleStrategy,
                                                 on a LocalCluster of 2 worker processes
  tallyio backtest --sequential                  in this process, no Dask
  tallyio backtest rec.tio --segments 8          split each recording into ~8 segments
  tallyio backtest --strategy mypkg.mod:MyStrategy --grid min_profit=0,1000 --grid gas_price=1,2
  tallyio backtest --scheduler tcp://10.0.0.5:8786   an existing Dask scheduler
  tallyio backtest --report backtest.html        the HTML report, one panel per setting
"""


def parse_value(text: str) -> Any:
    """``"12"`` -> 12, ``"0.5"`` -> 0.5, ``"true"`` -> True, anything else stays a string."""
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_grid(specs: List[str]) -> Dict[str, List[Any]]:
    """``["min_profit=0,10", "x=a"]`` -> ``{"min_profit": [0, 10], "x": ["a"]}`` (ValueError naming a bad one).

    >>> parse_grid(["min_profit=0,10", "breaker_failure_rate=0.5"])
    {'min_profit': [0, 10], 'breaker_failure_rate': [0.5]}
    """
    grid: Dict[str, List[Any]] = {}
    for spec in specs:
        name, sep, values = spec.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier() or not values.strip():
            raise ValueError(f"--grid {spec!r}: expected name=v1,v2,...")
        if name in grid:
            raise ValueError(f"--grid {spec!r}: {name} given twice")
        grid[name] = [parse_value(v.strip()) for v in values.split(",")]
    return grid


def add_backtest_command(subparsers) -> argparse.ArgumentParser:
    """Add ``tallyio backtest`` to a CLI's subparsers; ``args.func(args)`` runs it."""
    p = subparsers.add_parser("backtest", help="backtest strategy settings over recordings (Dask or sequential)",
                              description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("recordings", nargs="*", metavar="RECORDING",
                   help="recordings (.tio), segment manifests (*.segments.json) or folders of segments "
                        "(default: the embedded recording)")
    cut = p.add_mutually_exclusive_group()
    cut.add_argument("--segments", type=int, metavar="N", help="split each recording into about N segments "
                     "(by blocks; default: 4 for the embedded recording, else none)")
    cut.add_argument("--blocks-per-segment", type=int, metavar="B", help="a cut before every Bth block header")
    cut.add_argument("--segment-seconds", type=float, metavar="S", help="a cut at the first header S recorded "
                     "seconds into a segment")
    p.add_argument("--strategy", action="append", default=[], metavar="module:Class",
                   help="a Strategy subclass (repeatable; default: tallyio.engine.strategy:CycleStrategy)")
    p.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2",
                   help="a parameter and its values (repeatable; applies to every --strategy)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS", help="an existing Dask scheduler (tcp://host:port)")
    where.add_argument("--sequential", action="store_true", help="run in this process, without Dask")
    p.add_argument("--workers", type=int, default=2, metavar="N",
                   help="worker processes of the LocalCluster started when no --scheduler is given (default 2)")
    p.add_argument("--retries", type=int, default=3, help="reruns of a task whose worker died (default 3)")
    p.add_argument("--work-dir", metavar="DIR", help="where split segments go (default: a temporary folder; "
                   "with --scheduler on other machines, a folder every worker can read)")
    p.add_argument("--json", metavar="FILE", help="also write the merged report as JSON")
    p.add_argument("--report", metavar="FILE", help="write the HTML report (one panel per strategy setting)")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=backtest_command)
    return p


def _blocks_per_segment(args: argparse.Namespace, recordings: List[str]) -> Optional[int]:
    if args.blocks_per_segment is not None or args.segment_seconds is not None:
        return args.blocks_per_segment
    segments = args.segments if args.segments is not None else (4 if not args.recordings else None)
    if segments is None:
        return None
    if segments < 1:
        raise ValueError(f"--segments must be >= 1, got {segments}")
    from tallyio.state.recordlog import RecordReader, RecordType
    most = 0
    for rec in recordings:
        if not os.path.isfile(rec) or str(rec).endswith(".json"):
            continue                          # already segments
        blocks = sum(1 for r in RecordReader(rec) if r.type == RecordType.BLOCK_HEADER)
        most = max(most, blocks)
    return max(1, -(-most // segments))


def backtest_command(args: argparse.Namespace, out: Optional[TextIO] = None) -> int:
    """Run the backtest ``args`` describe; returns the exit status (2: bad arguments,
    1: some segment failed -- the others are still reported)."""
    from tallyio.backtest.runner import Backtest
    from tallyio.mempool.recording import embedded_recording

    out = sys.stdout if out is None else out
    try:
        recordings = list(args.recordings) or [embedded_recording()[0]]
        grid = parse_grid(args.grid)
        specs = args.strategy or ["tallyio.engine.strategy:CycleStrategy"]
        strategies = {}
        for spec in specs:
            name = spec.rpartition(":")[2] or spec
            strategies[name if name not in strategies else spec] = (spec, grid or None)
        blocks = _blocks_per_segment(args, recordings)
        seconds = args.segment_seconds
        if seconds is not None and seconds <= 0:
            raise ValueError(f"--segment-seconds must be > 0, got {seconds}")
        backtest = Backtest(recordings, strategies, blocks_per_segment=blocks, segment_seconds=seconds,
                            work_dir=args.work_dir, retries=args.retries, workers=args.workers)
    except (ValueError, TypeError, OSError) as exc:
        print(f"tallyio backtest: {exc}", file=sys.stderr)
        return 2
    progress = sys.stderr if not args.quiet and sys.stderr.isatty() else None
    with backtest:
        try:
            report = backtest.run(args.scheduler, sequential=args.sequential, progress=progress)
        except (OSError, ImportError) as exc:  # the scheduler could not be reached; no dask installed
            print(f"tallyio backtest: {exc}", file=sys.stderr)
            return 2
    print(f"tallyio backtest: {len(backtest.segments)} segments x {len(backtest.settings)} settings = "
          f"{report.tasks} tasks, {report.mode}, {report.seconds:.2f} s", file=out)
    print(report.summary(), file=out)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report.to_json(), f)
        print(f"json: {args.json}", file=out)
    if args.report:
        print(f"report: {report.write_html(args.report)}", file=out)
    return 1 if report.errors else 0

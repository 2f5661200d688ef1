"""Backtests of recordings x strategy settings, in one process or on a Dask
distributed cluster, with results identical to a local run (docs/backtest.md).

Beside the data flow, downstream of all of it: it drives Engines in replay mode
with the dry-run executor and imports nothing that imports it.

* ``split_recording(path, out_dir, *, segment_seconds= | blocks_per_segment=)``:
  segment files that each replay on their own (a pool-table snapshot first);
* ``Backtest(recordings, strategies={name: (StrategyClass, grid)}).run(client=None,
  sequential=False)`` -> ``BacktestReport`` (one entry per strategy setting,
  merged exactly; ``digest()``; ``write_html(path)``);
* ``run_task(TaskSpec)``: one task, what a Dask worker runs.

    >>> from tallyio.backtest import Backtest
    >>> report = Backtest().run(sequential=True)
    >>> report.settings["CycleStrategy[default]"].realized_profit > 0
    True
"""
from tallyio.backtest.report import BacktestReport, SettingResult
from tallyio.backtest.runner import Backtest, expand_grid
from tallyio.backtest.segments import Segment, check_segment, load_segments, split_recording
from tallyio.backtest.task import TaskSpec, run_task

__all__ = ["Backtest", "BacktestReport", "SettingResult", "split_recording", "load_segments", "check_segment",
           "Segment", "TaskSpec", "run_task", "expand_grid"]

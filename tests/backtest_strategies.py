"""Strategies the backtest tests send to Dask workers by name (``module:Class``):
they live at module level in a module the workers import (tests/ on their PYTHONPATH)."""
from __future__ import annotations

import os
import time

from tallyio.engine.strategy import CycleStrategy


class SlowCycle(CycleStrategy):
    """CycleStrategy that takes ``delay_s`` per opportunity (so a task lasts long
    enough to be killed in the middle) and, when TALLYIO_TEST_MARKER_DIR is set,
    leaves a file named by its process id when a task starts (so the test knows
    which worker process is busy).  Same actions, same results as CycleStrategy."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s

    def on_start(self, ctx) -> None:
        folder = os.environ.get("TALLYIO_TEST_MARKER_DIR")
        if folder:
            with open(os.path.join(folder, f"{os.getpid()}.{time.monotonic_ns()}"), "w") as f:
                f.write("started")

    def on_opportunity(self, opportunity, ctx):
        if self.delay_s:
            time.sleep(self.delay_s)
        return super().on_opportunity(opportunity, ctx)


class BrokenStart(CycleStrategy):
    """Raises when the engine starts it: every task with it fails (a bug, not a corrupt file)."""

    def on_start(self, ctx) -> None:
        raise RuntimeError("BrokenStart refuses to start")

"""The progress line `tallyio bench` shows while it measures."""
from __future__ import annotations

import time
from typing import Callable


class Progress:
    """Tells a person watching what is running: the section out of how many,
    the contender and repetition, and the time since the start.

    >>> lines = []
    >>> progress = Progress(lines.append, sections=2)
    >>> progress.section("no-op tasks")
    >>> progress.step("ThreadPoolExecutor(2), repetition 1/3")
    >>> lines[-1].startswith("[1/2 no-op tasks] ThreadPoolExecutor(2), repetition 1/3")
    True
    """

    def __init__(self, sink: Callable[[str], None] | None = None, sections: int = 0) -> None:
        self._sink = sink
        self.sections = sections
        self._index = 0
        self._name = ""
        self._start = time.monotonic()

    def section(self, name: str) -> None:
        """A new section (one workload against its contenders) begins."""
        self._index += 1
        self._name = name
        self.step("starting")

    def step(self, what: str) -> None:
        """What runs now inside the current section."""
        if self._sink is None:
            return
        elapsed = int(time.monotonic() - self._start)
        self._sink(f"[{self._index}/{self.sections} {self._name}] {what}  ({elapsed // 60}:{elapsed % 60:02d})")

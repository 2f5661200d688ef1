"""The work every contender runs, as module-level functions that worker
processes import by name (multiprocessing, loky), next to the ``Task``
subclasses tallyio runs for the same work.

Each function takes an ignored argument so ``Pool.map`` can call it too.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from time import perf_counter_ns
from typing import Any, Callable

from tallyio.task import Task

#: above hashlib's 2 KiB threshold, so hashing releases the GIL
SHA_BYTES = 16 * 1024
#: the same bytes in every process: a process peer hashes them without pickling 16 KiB per task
SHA_DATA = bytes(range(256)) * (SHA_BYTES // 256)
#: loop iterations of `python_work`: about 5 us of pure Python on a current x86-64 core
#: (the benchmark prints the serial loop's measured time per call next to the figures)
PYTHON_WORK_ITERS = 200


def noop(_: Any = None) -> None:
    """Nothing: what a task costs the scheduler itself."""


def python_work(_: Any = None) -> int:
    """About 5 us of pure Python that holds the GIL throughout."""
    total = 0
    for i in range(PYTHON_WORK_ITERS):
        total += i
    return total


def sha256_work(_: Any = None) -> None:
    """hashlib.sha256 over 16 KiB: about 10 us, with the GIL released."""
    hashlib.sha256(SHA_DATA).digest()


def started_ns(_: Any = None) -> int:
    """The moment it runs, on the clock every process shares (CLOCK_MONOTONIC)."""
    return perf_counter_ns()


class NoopTask(Task):
    __slots__ = ()

    def execute(self) -> None:
        pass


class PythonWorkTask(Task):
    __slots__ = ()

    def execute(self) -> None:
        python_work()


class Sha256Task(Task):
    __slots__ = ()

    def execute(self) -> None:
        sha256_work()


@dataclass(frozen=True)
class Work:
    """One workload: the function peers call and the Task tallyio runs."""

    fn: Callable[[Any], Any]
    task: Task


NOOP = Work(noop, NoopTask())
PYTHON_WORK = Work(python_work, PythonWorkTask())
SHA256 = Work(sha256_work, Sha256Task())

"""Scheduler configuration: :class:`SchedulerConfig`, validated on construction,
and :meth:`SchedulerConfig.from_env` for the ``TALLYIO_*`` environment variables.

    >>> from tallyio.config import SchedulerConfig
    >>> config = SchedulerConfig(workers_per_numa_node=2, load_balance_threshold=0.5)
    >>> config.workers_per_numa_node, config.queue_capacity, config.enable_work_stealing
    (2, 8192, True)
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import operator
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

from tallyio.errors import ConfigError

__all__ = ["SchedulerConfig"]


class _Rule(NamedTuple):
    kind: type            # int, float or bool
    low: float | None = None
    high: float | None = None
    low_inclusive: bool = True


# the bounds of each field; SchedulerConfig's docstring says what each one means
_RULES: dict[str, _Rule] = {
    "workers_per_numa_node": _Rule(int, 1, 1024),
    "queue_capacity": _Rule(int, 2, 2**24),
    "enable_work_stealing": _Rule(bool),
    "enable_cpu_affinity": _Rule(bool),
    "load_balance_threshold": _Rule(float, 0.0, 1.0),
    "numa_enabled": _Rule(bool),
    # upper bounds: the core keeps these in 16-bit counters / 64-bit tick counts
    "spin_us": _Rule(float, 0.0, 60e6),
    "max_retries": _Rule(int, 0, 65535),
    "gil_batch": _Rule(int, 1, 65536),
    "gil_batch_us": _Rule(float, 0.0, 60e6, low_inclusive=False),
    "aging_us": _Rule(float, 0.0, 60e6, low_inclusive=False),
    "steal_batch": _Rule(int, 1, 1024),
}


def _check_field(name: str, value: object) -> Any:
    """``value`` for field ``name``, normalized (numpy scalars to int/float, ints
    to float for float fields); ConfigError naming the field otherwise."""
    rule = _RULES[name]
    if rule.kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be a bool (True or False), got {value!r} ({type(value).__name__})")
        return value
    if isinstance(value, bool):   # bool is an int subclass, but True is not a worker count
        raise ConfigError(f"{name} must be {'an int' if rule.kind is int else 'a number'}, got a bool ({value!r})")
    if rule.kind is int:
        try:
            number: int | float = operator.index(value)  # type: ignore[arg-type]
        except TypeError:
            raise ConfigError(f"{name} must be an int, got {value!r} ({type(value).__name__})") from None
    else:
        if not isinstance(value, numbers.Real):
            raise ConfigError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
        number = float(value)
        if not math.isfinite(number):
            raise ConfigError(f"{name} must be a finite number, got {value!r}")
    too_low = rule.low is not None and (number < rule.low if rule.low_inclusive else number <= rule.low)
    too_high = rule.high is not None and number > rule.high
    if too_low or too_high:
        raise ConfigError(f"{name} must be {_describe_bounds(rule)}, got {value!r}")
    return number


def _describe_bounds(rule: _Rule) -> str:
    if rule.high is None:
        return f"{'>=' if rule.low_inclusive else '>'} {rule.low}"
    if not rule.low_inclusive:
        return f"> {rule.low} and <= {rule.high}"
    return f"between {rule.low} and {rule.high}"


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _parse_bool(text: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError("expected a boolean: 1/0, true/false, yes/no or on/off")


def _parse_int(text: str) -> int:
    # stricter than int(), which would also take "1_000"
    if not re.fullmatch(r"[+-]?[0-9]+", text.strip()):
        raise ValueError("expected an integer")
    return int(text)


# environment variable -> (the field it sets, how its text is read)
_ENVIRONMENT: dict[str, tuple[str, Callable[[str], Any]]] = {
    "TALLYIO_NUMA_ENABLED": ("numa_enabled", _parse_bool),
    "TALLYIO_CPU_AFFINITY": ("enable_cpu_affinity", _parse_bool),
    "TALLYIO_WORKERS_PER_NODE": ("workers_per_numa_node", _parse_int),
}


@dataclass(frozen=True, kw_only=True)
class SchedulerConfig:
    """How a :class:`~tallyio.NumaScheduler` runs. Immutable; built from keywords
    and checked field by field: a wrong type or an out-of-range value raises
    :class:`~tallyio.errors.ConfigError` naming the field and the value. Bools
    are not accepted as numbers, nor numbers as bools; ints are fine for float
    fields (stored as float).

    Fields (default, allowed range):

    - ``workers_per_numa_node`` (4, 1..1024): worker threads on each node that has CPUs.
    - ``queue_capacity`` (8192, 2..2**24): slots in each of a worker's queues
      (its inbox has one queue per priority band, 8 bands, plus its deque); the
      scheduler rounds it up to a power of two (the value here is kept as given).
    - ``enable_work_stealing`` (True): idle workers take queued tasks from busy ones.
    - ``enable_cpu_affinity`` (True): each worker pins itself to a CPU of its node.
    - ``load_balance_threshold`` (0.25, 0.0..1.0): the load imbalance between
      nodes above which work is rebalanced.
    - ``numa_enabled`` (True): False treats the machine as one node.
    - ``spin_us`` (50.0, 0..6e7): how long an idle worker spins before it parks;
      at most half the workers (at least one) spin at once, the others park at once.
    - ``max_retries`` (3, 0..65535): a task returning ``TaskResult.RETRY`` is re-queued
      at most this many times, then counts as failed.
    - ``gil_batch`` (64, 1..65536): at most this many Python tasks run per GIL acquisition.
    - ``gil_batch_us`` (200.0, > 0 and <= 6e7): a worker holding the GIL gives it back after this long.
    - ``aging_us`` (10000.0, > 0 and <= 6e7): a queued lower-priority band not served for
      this long is served next, so low priorities never starve.
    - ``steal_batch`` (32, 1..1024): at most this many tasks move in one steal.

    >>> SchedulerConfig(workers_per_numa_node=0)
    Traceback (most recent call last):
    ...
    tallyio.errors.ConfigError: workers_per_numa_node must be between 1 and 1024, got 0
    >>> SchedulerConfig(enable_work_stealing=1)
    Traceback (most recent call last):
    ...
    tallyio.errors.ConfigError: enable_work_stealing must be a bool (True or False), got 1 (int)
    """

    workers_per_numa_node: int = 4
    queue_capacity: int = 8192
    enable_work_stealing: bool = True
    enable_cpu_affinity: bool = True
    load_balance_threshold: float = 0.25
    numa_enabled: bool = True
    spin_us: float = 50.0
    max_retries: int = 3
    gil_batch: int = 64
    gil_batch_us: float = 200.0
    aging_us: float = 10000.0
    steal_batch: int = 32

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            # frozen: normalized values go in through object.__setattr__
            object.__setattr__(self, field.name, _check_field(field.name, getattr(self, field.name)))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> SchedulerConfig:
        """A config from the environment (``environ``, default ``os.environ``)
        and keyword ``overrides``, which win over the environment (the variable
        of an overridden field is not read).

        - ``TALLYIO_NUMA_ENABLED`` -> ``numa_enabled``
        - ``TALLYIO_CPU_AFFINITY`` -> ``enable_cpu_affinity``
        - ``TALLYIO_WORKERS_PER_NODE`` -> ``workers_per_numa_node``

        Booleans are 1/0, true/false, yes/no or on/off (any case, surrounding
        whitespace ignored). An unset or empty variable leaves the default; an
        invalid one raises :class:`~tallyio.errors.ConfigError` naming the
        variable and its value.

        >>> env = {"TALLYIO_WORKERS_PER_NODE": "2", "TALLYIO_CPU_AFFINITY": "off"}
        >>> config = SchedulerConfig.from_env(env, spin_us=0)
        >>> config.workers_per_numa_node, config.enable_cpu_affinity, config.spin_us
        (2, False, 0.0)
        >>> SchedulerConfig.from_env({"TALLYIO_NUMA_ENABLED": "maybe"})
        Traceback (most recent call last):
        ...
        tallyio.errors.ConfigError: TALLYIO_NUMA_ENABLED='maybe' is invalid: expected a boolean: 1/0, true/false, yes/no or on/off
        """
        environ = os.environ if environ is None else environ
        from_environment: dict[str, Any] = {}
        for variable, (field, parse) in _ENVIRONMENT.items():
            raw = environ.get(variable, "")
            if field in overrides or not raw.strip():
                continue
            try:
                from_environment[field] = _check_field(field, parse(raw))
            except ValueError as exc:   # ConfigError is a ValueError too
                raise ConfigError(f"{variable}={raw!r} is invalid: {exc}") from None
        return cls(**{**from_environment, **overrides})

    def replace(self, **changes: Any) -> SchedulerConfig:
        """A copy with some fields changed, validated like a new config.

        >>> SchedulerConfig().replace(queue_capacity=1024).queue_capacity
        1024
        """
        return dataclasses.replace(self, **changes)

"""Scheduler configuration: :class:`SchedulerConfig`, validated on construction,
and :meth:`SchedulerConfig.from_env` for the ``TALLYIO_*`` environment variables
(the list of known variables is :mod:`tallyio.environment`'s).

    >>> from tallyio.config import SchedulerConfig
    >>> config = SchedulerConfig(workers_per_numa_node=2, load_balance_threshold=0.5)
    >>> config.workers_per_numa_node, config.queue_capacity, config.enable_work_stealing
    (2, 8192, True)
    >>> SchedulerConfig().workers_per_numa_node is None     # auto: the nodes' usable CPUs, at most 4
    True
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import operator
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

from tallyio.environment import check_environment
from tallyio.errors import ConfigError
from tallyio.resources import check_scheduler_fits

__all__ = ["SchedulerConfig"]


class _Rule(NamedTuple):
    kind: type            # int, float or bool
    low: float | None = None
    high: float | None = None
    low_inclusive: bool = True
    none_means: str | None = None   # None is accepted and means this (e.g. "auto")


#: workers per node when ``workers_per_numa_node`` is None: the node's usable CPUs, at most this
AUTO_WORKERS_CAP = 4


# the bounds of each field; SchedulerConfig's docstring says what each one means
_RULES: dict[str, _Rule] = {
    # upper bounds a real machine can meet (the whole layout is checked against
    # the machine's memory and thread limits when a scheduler is built):
    # 1024 threads per node; 2**22 slots per queue = 2 GiB per worker
    "workers_per_numa_node": _Rule(int, 1, 1024, none_means="auto"),
    "queue_capacity": _Rule(int, 2, 2**22),
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
    if value is None and rule.none_means is not None:
        return None
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
            also = f" or None ({rule.none_means})" if rule.none_means else ""
            raise ConfigError(f"{name} must be an int{also}, got {value!r} ({type(value).__name__})") from None
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


def _parse_int_or_auto(text: str) -> int | None:
    if text.strip().lower() == "auto":
        return None
    try:
        return _parse_int(text)
    except ValueError:
        raise ValueError("expected an integer or auto") from None


# environment variable -> (the field it sets, how its text is read)
_ENVIRONMENT: dict[str, tuple[str, Callable[[str], Any]]] = {
    "TALLYIO_NUMA_ENABLED": ("numa_enabled", _parse_bool),
    "TALLYIO_CPU_AFFINITY": ("enable_cpu_affinity", _parse_bool),
    "TALLYIO_WORKERS_PER_NODE": ("workers_per_numa_node", _parse_int_or_auto),
}


@dataclass(frozen=True, kw_only=True)
class SchedulerConfig:
    """How a :class:`~tallyio.NumaScheduler` runs. Immutable; built from keywords
    and checked field by field: a wrong type or an out-of-range value raises
    :class:`~tallyio.errors.ConfigError` naming the field and the value. Bools
    are not accepted as numbers, nor numbers as bools; ints are fine for float
    fields (stored as float).

    Fields (default, allowed range):

    - ``workers_per_numa_node`` (None, or 1..1024): worker threads on each node that
      has CPUs; None (auto) means the usable CPUs of the smallest such node, at
      most 4 (so no node gets more workers than CPUs; see :meth:`for_nodes`).
    - ``queue_capacity`` (8192, 2..2**22): slots in each of a worker's queues
      (its inbox has one queue per priority band, 8 bands, plus its deque); the
      scheduler rounds it up to a power of two (the value here is kept as given).
      Each slot costs about 470 bytes per worker (2**22 slots: about 2 GiB per
      worker); a scheduler whose whole layout needs more memory (or threads)
      than the machine has raises :class:`~tallyio.errors.ResourceLimitError`
      before allocating anything.
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
    >>> SchedulerConfig(queue_capacity=2**24)
    Traceback (most recent call last):
    ...
    tallyio.errors.ConfigError: queue_capacity must be between 2 and 4194304, got 16777216
    >>> SchedulerConfig(enable_work_stealing=1)
    Traceback (most recent call last):
    ...
    tallyio.errors.ConfigError: enable_work_stealing must be a bool (True or False), got 1 (int)
    """

    workers_per_numa_node: int | None = None
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
        - ``TALLYIO_WORKERS_PER_NODE`` -> ``workers_per_numa_node`` (an int, or ``auto``)

        Booleans are 1/0, true/false, yes/no or on/off (any case, surrounding
        whitespace ignored). An unset or empty variable leaves the default; an
        invalid one raises :class:`~tallyio.errors.ConfigError` naming the
        variable and its value. A ``TALLYIO_*`` variable that no part of
        tallyio reads (a typo, say) gets a :class:`RuntimeWarning` naming it
        and the known ones (:func:`tallyio.environment.check_environment`).

        >>> env = {"TALLYIO_WORKERS_PER_NODE": "2", "TALLYIO_CPU_AFFINITY": "off"}
        >>> config = SchedulerConfig.from_env(env, spin_us=0)
        >>> config.workers_per_numa_node, config.enable_cpu_affinity, config.spin_us
        (2, False, 0.0)
        >>> SchedulerConfig.from_env({"TALLYIO_NUMA_ENABLED": "maybe"})
        Traceback (most recent call last):
        ...
        tallyio.errors.ConfigError: TALLYIO_NUMA_ENABLED='maybe' is invalid: expected a boolean: 1/0, true/false, yes/no or on/off
        """  # noqa: E501 (the doctest's expected output is verbatim)
        environ = os.environ if environ is None else environ
        check_environment(environ, stacklevel=2)
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

    def workers_on(self, usable_cpus: int) -> int:
        """Worker threads for a node with ``usable_cpus`` CPUs this process may
        use: ``workers_per_numa_node``, or when it is None (auto) the usable
        CPUs capped at 4 (at least 1).

        >>> SchedulerConfig().workers_on(2), SchedulerConfig().workers_on(64)
        (2, 4)
        >>> SchedulerConfig(workers_per_numa_node=3).workers_on(2)
        3
        """
        if self.workers_per_numa_node is not None:
            return self.workers_per_numa_node
        return max(1, min(AUTO_WORKERS_CAP, usable_cpus))

    def for_nodes(self, nodes: Sequence[Any]) -> SchedulerConfig:
        """This config made concrete for a scheduler on ``nodes`` (the
        :class:`~tallyio.NumaNode` objects that get workers) and checked
        against the machine: ``workers_per_numa_node`` resolved when auto (the
        smallest node's :meth:`workers_on`, so no node gets more workers than
        usable CPUs), then :class:`~tallyio.errors.ResourceLimitError` if the
        whole layout needs more memory or threads than this machine has.
        O(number of nodes); allocates nothing.

        >>> from tallyio.topology import NumaTopology
        >>> SchedulerConfig().for_nodes(NumaTopology.uniform(2, 3).cpu_nodes()).workers_per_numa_node
        3
        >>> SchedulerConfig(queue_capacity=2**22).for_nodes(NumaTopology.uniform(2**14, 1).cpu_nodes())
        Traceback (most recent call last):
        ...
        tallyio.errors.ResourceLimitError: NumaScheduler: workers_per_numa_node=1 x 16384 node(s) = 16384 workers with queue_capacity=4194304 need about ...
        """  # noqa: E501 (the doctest's expected output is verbatim)
        if not nodes:
            raise ConfigError("a scheduler needs at least one node with CPUs")
        per_node = self.workers_per_numa_node
        if per_node is None:
            per_node = min(self.workers_on(len(node.cpus)) for node in nodes)
        check_scheduler_fits(workers_per_numa_node=per_node, nodes=len(nodes), queue_capacity=self.queue_capacity)
        return self if per_node == self.workers_per_numa_node else self.replace(workers_per_numa_node=per_node)

    def replace(self, **changes: Any) -> SchedulerConfig:
        """A copy with some fields changed, validated like a new config.

        >>> SchedulerConfig().replace(queue_capacity=1024).queue_capacity
        1024
        """
        return dataclasses.replace(self, **changes)

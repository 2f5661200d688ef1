"""One backtest task: a segment replayed through a local Engine (replay mode, the
dry-run executor) with one strategy at one setting, boiled down to a compact,
mergeable result.

Owns: ``TaskSpec`` (what is sent to a worker: paths, names and parameters,
never data), ``run_task`` (the function a Dask worker runs; also the sequential
path), ``load_strategy_class`` and ``apply_params``.  Touches: the Engine's
public face (tallyio.engine), the segment checks (``segments.check_segment``),
tallyio.metrics histograms (as ``Histogram.to_dict`` arrays).

The result is plain data (ints, strings, lists, dicts), so pickling it is
cheap and its canonical encoding is the same on every machine:

* ``deterministic``: opportunities handed out, actions, results by status,
  realized P&L, gas, P&L by block, and ``outcomes``: the sha256 of the sorted
  ``(opportunity key, kind, block, status, realized profit, gas)`` lines --
  identical on every run of the same task, whatever the thread interleaving
  inside the engine (the set, not the order, is what is hashed);
* ``latency``: the engine's latency histograms (wall time: NOT deterministic,
  kept out of the digest), as ``Histogram.to_dict()`` arrays merged exactly
  by summing bucket counts;
* ``error``: a corrupt segment's message (then nothing else is filled in);
* ``seconds``: the task's own wall time, where it ran (for the benchmark).

    >>> from tallyio.backtest.segments import load_segments
    >>> from tallyio.mempool.recording import embedded_recording
    >>> [segment] = load_segments(embedded_recording()[0])
    >>> out = run_task(TaskSpec(segment, "tallyio.engine.strategy:CycleStrategy", ()))
    >>> out["deterministic"]["results"]["SIMULATED"] > 0, out["error"]
    (True, None)
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib
import inspect
import time
from typing import Any, Dict, List, NamedTuple, Sequence, Tuple

from tallyio.backtest.segments import Segment, check_segment, fetch_segment
from tallyio.errors import CorruptSegmentError

__all__ = ["TaskSpec", "run_task", "load_strategy_class", "apply_params", "strategy_spec", "EMBEDDED_ROUTERS"]

#: sentinel for "the embedded recording's routers" (its golden file names them)
EMBEDDED_ROUTERS = "embedded"


class TaskSpec(NamedTuple):
    """One (segment, strategy, setting): small and picklable, no data inside."""

    segment: Segment
    strategy: str
    """``module:Class`` of a ``tallyio.engine.strategy.Strategy`` subclass."""
    params: Tuple[Tuple[str, Any], ...]
    """the setting, sorted by name."""
    routers: Any = EMBEDDED_ROUTERS
    """``[(0x-address, exchange), ...]`` or EMBEDDED_ROUTERS."""
    engine_workers: int = 1
    keep_outcomes: bool = False
    """also return the outcome lines themselves (tests compare them)."""
    name: str = ""
    """the strategy's name in the backtest (a report entry is ``name[setting]``)."""


def strategy_spec(strategy: Any) -> str:
    """``module:Class`` for a Strategy subclass, or a ``module:Class`` string checked for shape."""
    if isinstance(strategy, str):
        module, sep, name = strategy.partition(":")
        if not sep or not module or not name:
            raise ValueError(f"strategy {strategy!r}: expected module:Class")
        return strategy
    if isinstance(strategy, type):
        if "<locals>" in strategy.__qualname__:
            raise ValueError(f"strategy {strategy.__qualname__}: a class defined inside a function cannot be "
                             f"imported by a worker; define it at module level")
        return f"{strategy.__module__}:{strategy.__qualname__}"
    raise TypeError(f"strategy must be a Strategy subclass or 'module:Class', got {type(strategy).__name__}")


def load_strategy_class(spec: str) -> type:
    """The Strategy subclass ``module:Class`` names (ValueError saying what is wrong)."""
    from tallyio.engine.strategy import Strategy

    module_name, _, qualname = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"strategy {spec!r}: cannot import {module_name}: {exc}") from None
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    if not (isinstance(obj, type) and issubclass(obj, Strategy)):
        raise ValueError(f"strategy {spec!r}: {qualname} is not a tallyio Strategy subclass in {module_name}")
    return obj


def _config_fields() -> frozenset:
    from tallyio.engine.config import CoreConfig
    return frozenset(f.name for f in dataclasses.fields(CoreConfig))


#: CoreConfig fields a setting may not change: they would make it something other than a dry replay
_FIXED = frozenset({"node_url", "replay_path", "replay_realtime", "replay_lockstep", "execute", "signer_key_env",
                    "keystore_path", "keystore_password_env", "checkpoint_dir", "metrics_endpoint"})


def apply_params(cls: type, params: Sequence[Tuple[str, Any]]) -> Tuple[Any, Dict[str, Any]]:
    """``(strategy instance, CoreConfig overrides)`` for a setting: a name the
    strategy's ``__init__`` takes is passed to it; a ``CoreConfig`` field
    (``breaker_failure_rate``, ``opportunity_capacity``, ...) overrides the
    engine's config; a class attribute (``min_profit``, ...) is set on the
    instance.  ValueError naming a parameter that is none of these."""
    # object.__init__ says (*args, **kwargs) but takes nothing
    init_params = {} if cls.__init__ is object.__init__ else inspect.signature(cls.__init__).parameters
    takes_any = any(p.kind == p.VAR_KEYWORD for p in init_params.values())
    config_fields = _config_fields()
    kwargs, config, attrs = {}, {}, {}
    for name, value in params:
        if name in init_params or (takes_any and name not in config_fields):
            kwargs[name] = value
        elif name in config_fields:
            if name in _FIXED:
                raise ValueError(f"setting {name}={value!r}: a backtest is a dry replay; {name} is fixed")
            config[name] = value
        elif hasattr(cls, name) and not callable(getattr(cls, name)):
            attrs[name] = value
        else:
            raise ValueError(f"setting {name}={value!r}: {cls.__name__} takes no such argument or attribute, "
                             f"and it is not a CoreConfig field")
    strategy = cls(**kwargs)
    for name, value in attrs.items():
        setattr(strategy, name, value)
    return strategy, config


def _routers(spec: Any) -> List[Tuple[bytes, int]]:
    if spec == EMBEDDED_ROUTERS:
        from tallyio.mempool.recording import embedded_recording
        return [(bytes.fromhex(a[2:]), int(k)) for a, k in embedded_recording()[1]["routers_v2"]]
    return [(bytes.fromhex(str(a)[2:]) if isinstance(a, str) else bytes(a), int(k)) for a, k in spec]


def run_task(spec: TaskSpec) -> Dict[str, Any]:
    """Replay ``spec.segment`` with ``spec.strategy`` at ``spec.params`` and return
    the compact result (see the module doc).  A corrupt segment is not raised: it
    comes back as ``{"error": ...}`` naming the file (a retry would not mend it);
    anything else raises (a worker crash or a bug: Dask retries the task)."""
    from tallyio.engine.config import CoreConfig
    from tallyio.engine.engine import Engine, opportunity_key

    started = time.perf_counter()
    base = {"segment": spec.segment.path, "index": spec.segment.index, "recording": spec.segment.recording,
            "name": spec.name, "strategy": spec.strategy, "params": [list(p) for p in spec.params], "error": None,
            "deterministic": None, "latency": {}, "outcome_lines": None, "seconds": 0.0}
    try:
        segment = fetch_segment(spec.segment)      # a URL's segment: a local copy (errors name the URL)
        check_segment(segment)
    except CorruptSegmentError as exc:
        if exc.path != spec.segment.path:          # the local copy's name means nothing to the user
            exc = CorruptSegmentError(spec.segment.path, exc.reason)
        return {**base, "error": str(exc)}
    cls = load_strategy_class(spec.strategy)
    strategy, overrides = apply_params(cls, spec.params)
    # the slow-call rule of the breaker measures wall time: off, or a loaded machine would open it on
    # one run and not on another (the failure-rate rule, which sees only outcomes, stays as configured)
    overrides = {"workers": spec.engine_workers, "breaker_slow_call_ms": 3.6e6, **overrides}
    config = CoreConfig.replay(segment.path, **overrides)
    lines: List[str] = []
    statuses: Dict[str, int] = {}
    pnl_by_block: Dict[int, int] = {}
    profit = gas = 0
    engine = Engine(config, strategies=[strategy], routers=_routers(spec.routers))
    with engine:
        while (op := engine.next_opportunity_sync()) is not None:
            result = engine.execute_strategy_sync(op)
            status = result.status.name
            statuses[status] = statuses.get(status, 0) + 1
            realized = result.realized_profit or 0
            used = result.gas_used or 0
            if status != "REJECTED":
                profit += realized
                gas += used
                if realized:
                    pnl_by_block[op.block_number] = pnl_by_block.get(op.block_number, 0) + realized
            lines.append(f"{opportunity_key(op).hex()} {op.kind.name} {op.block_number} {status} {realized} {used}")
        stats = engine.stats()
        health = engine.health()
    if health["source_error"]:
        raise RuntimeError(f"segment {spec.segment.path}: the replay failed: {health['source_error']}")
    lines.sort()
    deterministic = {
        "opportunities": stats["opportunities"]["handed_out"],
        "dropped": stats["opportunities"]["dropped"],
        "actions": sum(s["actions"] for s in stats["strategies"].values()),
        "strategy_errors": sum(s["errors"] for s in stats["strategies"].values()),
        "results": dict(sorted(statuses.items())),
        "realized_profit": profit,
        "gas_used": gas,
        "pnl_by_block": sorted(pnl_by_block.items()),
        "records_fed": stats["source"]["records_fed"],
        "outcomes": hashlib.sha256("\n".join(lines).encode()).hexdigest(),
    }
    latency = {}
    from tallyio.metrics import HistogramFamily
    for family in engine.registry.families():
        if isinstance(family, HistogramFamily):
            for _labels, child in family.children():
                latency[family.name] = child.merged().to_dict()
    return {**base, "deterministic": deterministic, "latency": latency,
            "outcome_lines": lines if spec.keep_outcomes else None, "seconds": time.perf_counter() - started}


def run_tasks(specs: Sequence[TaskSpec]) -> List[Dict[str, Any]]:
    """``run_task`` of each, in this process, in order."""
    return [run_task(s) for s in specs]


def describe(params: Sequence[Tuple[str, Any]]) -> str:
    """``k=v,k2=v2`` of a setting (``default`` when empty)."""
    return ",".join(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in params) or "default"


"""The merged backtest report: one entry per (strategy, setting), merged exactly
from the tasks' compact results, a canonical digest, and the HTML page.

Owns: ``BacktestReport``, ``SettingResult``, the merge (sums of counts, P&L and
gas; P&L by block summed per block; histogram bucket counts summed with
``Histogram.merge``, never averaged percentiles) and the canonical encoding the
digest hashes.  Touches: tallyio.metrics (``Histogram``, ``write_report``'s
panels); reads task results only (never runs anything).

The digest is the sha256 of a canonical JSON encoding (sorted keys, no
whitespace, integers only) of everything deterministic: per setting, the
strategy, the setting, the totals, P&L by block and each segment's outcome hash
(by recording name and segment index, not by path, so where a cluster keeps the
files does not matter), and the names of the segments that failed.  Latency
histograms are wall time, different on every run: they are in the report and
the HTML page but NOT in the digest.

    >>> r = BacktestReport.merge([], settings=[("CycleStrategy", "m:C", ())])
    >>> len(r.digest()), r.settings["CycleStrategy[default]"].opportunities
    (64, 0)
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Sequence, Tuple, Union

from tallyio.backtest.task import describe

__all__ = ["BacktestReport", "SettingResult", "setting_label"]

_TOTALS = ("opportunities", "dropped", "actions", "strategy_errors", "realized_profit", "gas_used", "records_fed")


def setting_label(name: str, params: Sequence[Tuple[str, Any]]) -> str:
    """``name[k=v,...]``: how a setting is named in the report."""
    return f"{name}[{describe(params)}]"


@dataclass
class SettingResult:
    """One strategy at one setting, over every segment that ran."""

    name: str
    strategy: str
    params: Tuple[Tuple[str, Any], ...]
    opportunities: int = 0
    dropped: int = 0
    actions: int = 0
    strategy_errors: int = 0
    realized_profit: int = 0
    gas_used: int = 0
    records_fed: int = 0
    results: Dict[str, int] = field(default_factory=dict)
    pnl_by_block: Dict[int, int] = field(default_factory=dict)
    segment_outcomes: Dict[str, str] = field(default_factory=dict)
    """``recording#index`` -> that task's outcome hash."""
    latency: Dict[str, Any] = field(default_factory=dict)
    """histogram name -> merged ``tallyio.metrics.Histogram`` (wall time: not in the digest)."""
    failed_segments: List[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return setting_label(self.name, self.params)

    def pnl_over_time(self) -> List[Tuple[int, int]]:
        """``[(block, cumulative realized P&L)]`` in block order."""
        out, total = [], 0
        for block in sorted(self.pnl_by_block):
            total += self.pnl_by_block[block]
            out.append((block, total))
        return out

    def _add(self, task: Dict[str, Any]) -> None:
        from tallyio.metrics import Histogram

        d = task["deterministic"]
        for key in _TOTALS:
            setattr(self, key, getattr(self, key) + d[key])
        for status, n in d["results"].items():
            self.results[status] = self.results.get(status, 0) + n
        for block, pnl in d["pnl_by_block"]:
            self.pnl_by_block[int(block)] = self.pnl_by_block.get(int(block), 0) + pnl
        self.segment_outcomes[f"{task['recording']}#{task['index']}"] = d["outcomes"]
        for name, state in task["latency"].items():
            h = Histogram.from_dict(state)
            if name in self.latency:
                self.latency[name].merge(h)
            else:
                self.latency[name] = h

    def canonical(self) -> Dict[str, Any]:
        """The deterministic part, as plain JSON-able data."""
        return {"name": self.name, "strategy": self.strategy, "params": [[k, repr(v)] for k, v in self.params],
                **{key: getattr(self, key) for key in _TOTALS},
                "results": dict(sorted(self.results.items())),
                "pnl_by_block": [[b, self.pnl_by_block[b]] for b in sorted(self.pnl_by_block)],
                "segment_outcomes": dict(sorted(self.segment_outcomes.items())),
                "failed_segments": sorted(self.failed_segments)}


@dataclass
class BacktestReport:
    """Every setting's merged result, the errors (segment file -> message), and
    how the run went (``tasks``, ``seconds``, ``mode``: not in the digest)."""

    settings: Dict[str, SettingResult]
    errors: Dict[str, str] = field(default_factory=dict)
    tasks: int = 0
    seconds: float = 0.0
    mode: str = ""

    @classmethod
    def merge(cls, task_results: Iterable[Dict[str, Any]], *,
              settings: Sequence[Tuple[str, str, Tuple[Tuple[str, Any], ...]]]) -> "BacktestReport":
        """Merge task results (any order: the result does not depend on it) into
        one entry per ``(name, strategy spec, params)`` of ``settings``."""
        by_label = {setting_label(n, p): SettingResult(n, s, tuple(p)) for n, s, p in settings}
        errors: Dict[str, str] = {}
        count = 0
        ordered = sorted(task_results, key=lambda t: (t["recording"], t["index"], t.get("name", ""), t["strategy"],
                                                      repr(t["params"])))
        owners = {(s, tuple(p)): setting_label(n, p) for n, s, p in settings}
        for task in ordered:
            count += 1
            params = tuple(tuple(p) for p in task["params"])
            # by the name the task carries; a result without one (made by hand) by its strategy and setting
            label = setting_label(task["name"], params) if task.get("name") else owners[(task["strategy"], params)]
            entry = by_label[label]
            if task["error"] is not None:
                errors[task["segment"]] = task["error"]
                entry.failed_segments.append(f"{task['recording']}#{task['index']}")
                continue
            entry._add(task)
        return cls(by_label, errors, count)

    def canonical(self) -> bytes:
        """The canonical encoding the digest hashes (UTF-8 JSON, sorted keys, no spaces)."""
        body = {"format": 1, "settings": {label: s.canonical() for label, s in sorted(self.settings.items())},
                "failed": sorted({seg for s in self.settings.values() for seg in s.failed_segments})}
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    def digest(self) -> str:
        """Hex sha256 of :meth:`canonical`: byte-identical for the same backtest,
        sequential or on any cluster shape (latency excluded: wall time)."""
        return hashlib.sha256(self.canonical()).hexdigest()

    def summary(self) -> str:
        """A few lines per setting, for a terminal."""
        lines = []
        for label, s in sorted(self.settings.items()):
            results = ", ".join(f"{k.lower()} {v:,}" for k, v in sorted(s.results.items())) or "none"
            lines.append(f"{label}: opportunities {s.opportunities:,}, actions {s.actions:,}, results: {results}; "
                         f"P&L {s.realized_profit:,}, gas {s.gas_used:,}")
            execute = s.latency.get("engine_execute_latency_seconds")
            if execute is not None and execute.count:
                lines.append(f"  execute_strategy p50 {execute.percentile(50) / 1000:.1f} us, "
                             f"p99 {execute.percentile(99) / 1000:.1f} us (wall time, not in the digest)")
        for _path, message in sorted(self.errors.items()):
            lines.append(f"error: {message}")
        lines.append(f"digest {self.digest()}")
        return "\n".join(lines)

    def to_json(self) -> Dict[str, Any]:
        """The report as JSON-able data: the canonical part, the errors, the latency arrays."""
        return {"digest": self.digest(), "canonical": json.loads(self.canonical()), "errors": self.errors,
                "tasks": self.tasks, "seconds": self.seconds, "mode": self.mode,
                "latency": {label: {name: h.to_dict() for name, h in s.latency.items()}
                            for label, s in sorted(self.settings.items())}}

    def write_html(self, path: Union[str, os.PathLike], title: str = "tallyio backtest") -> Path:
        """The HTML report (tallyio.metrics' writer), one panel per strategy setting:
        its latency percentiles, result counts and cumulative P&L by block."""
        from tallyio.metrics.report import write_report

        panels = []
        for label, s in sorted(self.settings.items()):
            curve = s.pnl_over_time()
            counters = {"opportunities": s.opportunities, "actions": s.actions, "realized_profit": s.realized_profit,
                        "gas_used": s.gas_used, "strategy_errors": s.strategy_errors, "dropped": s.dropped,
                        **{f"results_{k.lower()}": v for k, v in s.results.items()},
                        "failed_segments": len(s.failed_segments)}
            panels.append({"title": label, "histograms": {n: h.to_dict() for n, h in s.latency.items()},
                           "counters": counters,
                           "series": [("cumulative P&L", [float(b) for b, _ in curve], [float(v) for _, v in curve])],
                           "x_label": "block", "y_label": "start-token units"})
        counters = {"backtest_tasks": self.tasks, "backtest_failed_segments": len(self.errors)}
        # the page's own latency plot compares the settings' execute_strategy latency side by side
        compared = {f"{label} execute_strategy": s.latency["engine_execute_latency_seconds"].to_dict()
                    for label, s in sorted(self.settings.items()) if "engine_execute_latency_seconds" in s.latency}
        run = {"title": title, "histograms": compared, "counters": counters, "history": {}, "kinds": {},
               "gauges": {}, "panels": panels, "notes": [f"digest {self.digest()}", f"mode {self.mode}",
                                                         *(f"error: {m}" for m in sorted(self.errors.values()))]}
        from tallyio.bench._report import machine_description   # the project's one description of a machine
        run["machine"] = machine_description()
        return write_report(path, run=run, title=title)


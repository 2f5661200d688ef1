"""Figures, targets and the alternating runner every benchmark group uses."""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from tallyio.bench._progress import Progress

@dataclass
class Target:
    """A goal for a figure: its median (or, with ``peer``, its ratio to that
    peer) must reach ``bound``, in the direction the figure's unit points."""

    bound: float
    peer: str | None = None

    def met(self, figure: Figure) -> bool | None:
        if figure.skipped or not figure.samples:
            return None
        if self.peer is not None:
            ratio = figure.ratio(self.peer)
            return None if ratio is None else ratio >= self.bound
        if figure.higher_is_better:
            return figure.median >= self.bound
        return figure.median <= self.bound

    def describe(self, figure: Figure) -> str:
        if self.peer is not None:
            return f">= {self.bound:g}x {self.peer}"
        return f"{'>=' if figure.higher_is_better else '<='} {format_value(self.bound, figure.unit)}"


@dataclass
class Figure:
    """One measured figure: tallyio's ``samples`` (one per repetition, in
    ``unit``) and each peer's samples from the same repetitions.

    >>> f = Figure("g", "no-op tasks", [2e6, 3e6, 2.5e6], unit="tasks/s", higher_is_better=True,
    ...            peers={"ThreadPoolExecutor(2)": [1e5, 1.2e5, 1e5]})
    >>> f.median, round(f.ratio("ThreadPoolExecutor(2)"), 1)
    (2500000.0, 25.0)
    """

    group: str
    case: str
    samples: list[float] = field(default_factory=list)
    unit: str = "ns/op"
    higher_is_better: bool = False
    #: peer name -> samples, measured in the same repetitions as `samples`
    peers: dict[str, list[float]] = field(default_factory=dict)
    #: why the figure could not be measured (then `samples` is empty)
    skipped: str | None = None
    targets: list[Target] = field(default_factory=list)
    #: peer name -> why that peer was not measured (not installed, no such operation)
    skipped_peers: dict[str, str] = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else math.nan

    @property
    def spread(self) -> float:
        return _spread(self.samples)

    def peer_median(self, peer: str) -> float:
        return statistics.median(self.peers[peer])

    def peer_spread(self, peer: str) -> float:
        return _spread(self.peers[peer])

    def ratio(self, peer: str) -> float | None:
        """How many times better tallyio's median is than ``peer``'s (> 1: tallyio better)."""
        if not self.samples or not self.peers.get(peer):
            return None
        mine, theirs = self.median, self.peer_median(peer)
        better, worse = (mine, theirs) if self.higher_is_better else (theirs, mine)
        return better / worse if worse else None


def _spread(samples: Sequence[float]) -> float:
    if not samples:
        return math.nan
    middle = statistics.median(samples)
    return (max(samples) - min(samples)) / middle if middle else 0.0


Measure = Callable[[], Mapping[str, float]]


def alternate(contenders: Sequence[tuple[str, Measure]], reps: int,
              progress: Progress) -> dict[str, dict[str, list[float]]]:
    """Run each contender once per repetition, one after the other, ``reps``
    times, so slow drifts of a shared machine touch every contender alike.  A
    contender returns ``{case: value}``; the result is ``{contender: {case:
    [value per repetition]}}``."""
    samples: dict[str, dict[str, list[float]]] = {name: {} for name, _ in contenders}
    for rep in range(reps):
        for name, measure in contenders:
            progress.step(f"{name}, repetition {rep + 1}/{reps}")
            for case, value in measure().items():
                samples[name].setdefault(case, []).append(value)
    return samples


def figures_for(group: str, samples: dict[str, dict[str, list[float]]], cases: Sequence[tuple[str, str]], *,
                unit: str, higher_is_better: bool, mine: str = "tallyio",
                targets: Mapping[str, list[Target]] | None = None,
                skipped_peers: Mapping[str, str] | None = None) -> list[Figure]:
    """One Figure per ``(key, case label)``: ``mine``'s samples for that key,
    every other contender that measured the key as a peer, and the peers that
    could not run with the reason."""
    figures = []
    for key, label in cases:
        peers = {name: by_case[key] for name, by_case in samples.items() if name != mine and key in by_case}
        figures.append(Figure(group, label, samples[mine][key], unit=unit, higher_is_better=higher_is_better,
                              peers=peers, targets=list((targets or {}).get(key, [])),
                              skipped_peers=dict(skipped_peers or {})))
    return figures


def format_value(value: float, unit: str) -> str:
    """``value`` for a table cell: 5.27M/s, 87.0 ns, 1.64x, 148 MiB."""
    if math.isnan(value):
        return "-"
    if unit == "tasks/s":
        return f"{value / 1e6:.2f}M/s" if value >= 1e6 else f"{value / 1e3:.1f}k/s"
    if unit in ("B", "tasks"):
        return f"{value:,.0f} {unit}"
    if unit == "blocks/task":
        return f"{value:.4f}"
    if unit == "x":
        return f"{value:.2f}x"
    return f"{value:,.1f} {unit.split('/')[0]}"


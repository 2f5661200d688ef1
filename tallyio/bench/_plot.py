"""``tallyio bench --plot FILE.png``: tallyio against its peers, drawn into one PNG.

One panel per figure that has peers; figures without peers are only in the
table.  In a panel each contender is a horizontal bar at its median with a
whisker from the smallest to the largest repetition; tallyio's bar is in
colour, the peers' in grey, and a peer that could not be measured is an
empty row saying why.  Drawn with matplotlib's Agg canvas directly, so the
backend of the program calling it is left alone.

>>> import pathlib, tempfile
>>> from tallyio.bench import Figure, machine_description
>>> figures = [Figure("Python level, per call", "SpscQueue put_nowait+get_nowait", [85.0, 91.0, 88.0],
...                   unit="ns/op", peers={"queue.SimpleQueue put+get": [120.0, 131.0, 118.0]})]
>>> result = {"machine": machine_description(), "mode": "quick", "figures": figures}
>>> with tempfile.TemporaryDirectory() as tmp:
...     path = pathlib.Path(tmp, "bench.png")
...     plot(result, path)
...     path.stat().st_size > 0
True
"""
from __future__ import annotations

import os
import re
import statistics
import textwrap
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from tallyio.bench import Figure

__all__ = ["plot"]

TALLYIO_COLOUR = "#d1495b"
PEER_COLOUR = "#b4b4b4"
#: medians and whiskers spanning more than this factor get a log x-axis
LOG_SCALE_SPAN = 30.0
#: room right of the longest whisker for the value labels, as a share of the data's extent
LABEL_ROOM = 0.75
SHEET_WIDTH_IN = 14.0
ROW_HEIGHT_IN = 0.32
PANEL_FRAME_IN = 1.35  # title, axis label and ticks around the rows of one panel
TIME_UNITS = ("ns", "us", "ms", "s")


class _Row(NamedTuple):
    """One contender in a panel: its samples, or why it has none."""

    name: str
    samples: list[float]
    skipped: str | None = None


def plot(result: dict, path: str | os.PathLike) -> None:
    """Draw every figure of ``result`` (as returned by ``tallyio.bench.run``)
    that has peers into the PNG file ``path``: one panel per figure, two
    columns, the machine and the run's mode in the sheet's title.

    Raises ValueError if no figure has a measured peer, and ImportError if
    matplotlib is not installed (the ``plot`` extra brings it).
    """
    comparable = [f for f in result["figures"] if any(f.peers.values())]
    if not comparable:
        raise ValueError(f"nothing to plot: none of the {len(result['figures'])} figures has a measured peer "
                         "to compare tallyio with (the table shows figures without peers)")
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure as Sheet
    except ImportError as exc:
        raise ImportError("tallyio bench --plot needs matplotlib: pip install 'tallyio[plot]'") from exc

    panels = [(f, _rows(f)) for f in comparable]
    pairs = [panels[i:i + 2] for i in range(0, len(panels), 2)]
    heights = [PANEL_FRAME_IN + ROW_HEIGHT_IN * max(len(rows) for _, rows in pair) for pair in pairs]
    sheet = Sheet(figsize=(SHEET_WIDTH_IN, sum(heights) + 0.9), layout="constrained")
    FigureCanvasAgg(sheet)
    grid = sheet.add_gridspec(len(pairs), 2, height_ratios=heights)
    for row, pair in enumerate(pairs):
        for column, (figure, rows) in enumerate(pair):
            _draw_panel(sheet.add_subplot(grid[row, column]), figure, rows)
    m = result["machine"]
    sheet.suptitle(f"tallyio {m['tallyio']} against its peers, {result.get('mode', 'full')} run: {m['cpu']}, "
                   f"{m['usable_cpus']} usable CPUs, {m['numa_nodes']} NUMA node(s), Python {m['python']}\n"
                   "bar: median of the repetitions; whisker: smallest to largest", fontsize=11)
    sheet.savefig(os.fspath(path), format="png", dpi=100)


def _rows(figure: Figure) -> list[_Row]:
    """tallyio first, then the measured peers, then the peers that were skipped."""
    rows = [_Row("tallyio", figure.samples, figure.skipped)]
    rows += [_Row(name, samples) if samples else _Row(name, [], "not measured")
             for name, samples in figure.peers.items()]
    rows += [_Row(name, [], reason) for name, reason in getattr(figure, "skipped_peers", {}).items()]
    return rows


def _draw_panel(ax: Axes, figure: Figure, rows: list[_Row]) -> None:
    measured = [row.samples for row in rows if row.samples]
    lowest = min(min(samples) for samples in measured)
    highest = max(max(samples) for samples in measured)
    log_scale = lowest > 0 and highest / lowest > LOG_SCALE_SPAN
    if log_scale:
        ax.set_xscale("log")
        left = lowest / 3
        right = highest * (highest / left) ** LABEL_ROOM
    else:
        left = min(0.0, lowest)
        right = highest + (highest - left) * LABEL_ROOM or 1.0  # all zero: any positive extent
    for y, row in enumerate(rows):
        if not row.samples:
            reason = textwrap.shorten(f"skipped: {row.skipped}", 70, placeholder=" ...")
            ax.text(0.01, y, reason, transform=ax.get_yaxis_transform(), va="center", fontsize=8,
                    style="italic", color="dimgray")
            continue
        median = statistics.median(row.samples)
        whisker = [[median - min(row.samples)], [max(row.samples) - median]]
        colour = TALLYIO_COLOUR if y == 0 else PEER_COLOUR
        base = left if log_scale else 0.0  # a log axis has no zero for bars to start from
        ax.barh(y, median - base, left=base, height=0.6, color=colour, xerr=whisker,
                error_kw={"ecolor": "#333333", "capsize": 3, "elinewidth": 1})
        ax.annotate(_label(figure, row, median), (max(row.samples), y), xytext=(4, 0),
                    textcoords="offset points", va="center", fontsize=8)
    ax.set_xlim(left, right)
    ax.set_ylim(len(rows) - 0.5, -0.5)  # tallyio on top
    ax.set_yticks(range(len(rows)), [textwrap.fill(row.name, 26) for row in rows], fontsize=8)
    ax.get_yticklabels()[0].set_fontweight("bold")
    ax.tick_params(axis="x", labelsize=8)
    direction = "higher is better \u2192" if figure.higher_is_better else "\u2190 lower is better"
    ax.set_xlabel(f"{figure.unit}{', log scale' if log_scale else ''}    {direction}", fontsize=8)
    group = _short_group(figure.group)
    # the case in bold, the group it belongs to in grey under it
    ax.annotate(group, (0, 1), xycoords="axes fraction", xytext=(0, 5), textcoords="offset points",
                va="bottom", fontsize=8, color="dimgray")
    ax.set_title(figure.case, loc="left", fontsize=9, fontweight="bold", pad=8 + 10 * (group.count("\n") + 1))
    ax.grid(axis="x", color="#e6e6e6", linewidth=0.6)
    ax.set_axisbelow(True)


def _label(figure: Figure, row: _Row, median: float) -> str:
    """The median, and for a peer how many times better (or worse) tallyio is."""
    text = _format_value(median, figure.unit)
    ratio = figure.ratio(row.name) if row.name in figure.peers else None
    if ratio:
        text += f"  (tallyio {ratio:.3g}x better)" if ratio >= 1 else f"  (tallyio {1 / ratio:.3g}x worse)"
    return text


def _short_group(group: str) -> str:
    """The group without its parenthesised details, at most two lines of a panel's width."""
    removed = 1
    while removed:  # innermost first: the details may hold parentheses themselves, "join()"
        group, removed = re.subn(r"\s*\([^()]*\)", "", group)
    return textwrap.fill(textwrap.shorten(group, 180, placeholder=" ..."), 90)


def _format_value(value: float, unit: str) -> str:
    """``value`` in ``unit`` with three significant digits, times scaled up
    to the next unit (6226 ns -> 6.23 us), other units with k/M/G."""
    base, slash, per = unit.partition("/")
    if base in TIME_UNITS:
        step = TIME_UNITS.index(base)
        while abs(value) >= 1000 and step < len(TIME_UNITS) - 1:
            value, step = value / 1000, step + 1
        return f"{value:.3g} {TIME_UNITS[step]}{slash}{per}"
    if unit == "x":
        return f"{value:.3g}x"
    for factor, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g}{prefix} {unit}"
    return f"{value:.3g} {unit}"

"""The run report: one self-contained HTML page (inline SVG, no script, no
CDN) with latency percentile plots on log axes, throughput and gauges (queue
depth, CPU, memory) over time, error and drop counts, and the machine
(owned by tallyio.metrics; reads a Registry or a saved run only).

    write_report("run.html", registry)              # from a live registry
    save_run(registry, "run.json")                  # or keep the data ...
    write_report("run.html", run=load_run("run.json"))   # ... and draw it later

The command line (``tallyio report``) comes from ``add_report_command``; a
command that runs things gets ``--report FILE`` from ``add_report_option``.

>>> import pathlib, tempfile
>>> from tallyio.metrics import Registry
>>> reg = Registry(process=False)
>>> lat = reg.histogram("decode_latency_seconds", "decode latency").local()
>>> for ns in range(1_000, 50_000, 7):
...     lat.record(ns)
>>> with tempfile.TemporaryDirectory() as tmp:
...     page = write_report(pathlib.Path(tmp, "run.html"), reg).read_text()
>>> "<svg" in page and "decode_latency_seconds" in page and "<script" not in page and "src=" not in page
True
"""
from __future__ import annotations

import argparse
import html
import json
import math
import os
import time
from pathlib import Path

from tallyio.metrics._hist import Histogram
from tallyio.metrics.registry import Counter, Gauge, HistogramFamily, Registry, metric_key

__all__ = ["write_report", "render_report", "collect_run", "save_run", "load_run", "add_report_command",
           "add_report_option", "finish_report", "PALETTE"]

#: series colours, in order (saturated, so a screenshot can tell a drawn plot from the page)
PALETTE = ("#d1495b", "#00798c", "#edae49", "#30638e", "#66a182", "#8d5a97", "#e07a1f", "#1b998b")
#: counters whose name contains one of these are errors or drops: drawn in the bar chart
TROUBLE_WORDS = ("error", "fail", "drop", "reject", "timeout", "overflow", "saturat", "cancel")
#: percentile plot: x from 0 % to 99.999 % (five nines), as log10(1 / (1 - q))
NINES = 5


# ---- the run: plain data, saved and loaded as JSON -----------------------------------

def collect_run(registry: Registry, title: str = "tallyio run") -> dict:
    """Everything the report draws, as JSON-able data: histograms (their
    cells), sampled history, counters, gauges, process figures, the machine."""
    histograms, counters, gauges = {}, {}, {}
    for family in registry.families():
        for labels, child in family.children():
            key = metric_key(family.name, labels)
            if isinstance(family, HistogramFamily):
                histograms[key] = child.merged().to_dict()
            elif isinstance(family, Counter):
                counters[key] = child.value
            elif isinstance(family, Gauge):
                gauges[key] = child.value
    kinds = {family.name: family.kind for family in registry.families()}
    return {"title": title, "written": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": _machine(),
            "histograms": histograms, "counters": counters, "gauges": gauges, "kinds": kinds,
            "history": registry.history(), "process": registry.process_stats()}


def save_run(registry: Registry, path: str | os.PathLike, title: str = "tallyio run") -> Path:
    """Write ``collect_run(registry)`` as JSON to ``path``."""
    path = Path(path)
    path.write_text(json.dumps(collect_run(registry, title)))
    return path


def load_run(path: str | os.PathLike) -> dict:
    """A run saved by ``save_run`` (ValueError naming the file if it is not one)."""
    path = Path(path)
    try:
        run = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a saved tallyio run ({exc})") from None
    if not isinstance(run, dict) or not {"histograms", "counters", "history"} <= set(run):
        raise ValueError(f"{path}: not a saved tallyio run (needs histograms, counters and history)")
    return run


def _machine() -> dict:
    from tallyio.bench._report import machine_description   # the project's one description of a machine
    machine = machine_description()
    try:
        import psutil
        machine["memory"] = f"{psutil.virtual_memory().total / 2**30:.1f} GiB"
    except Exception:   # psutil missing or the platform hides it: the report still renders
        pass
    return machine


# ---- formatting -----------------------------------------------------------------------

def _time_label(ns: float) -> str:
    """1.46 ms, 250 ns: three significant digits and a unit."""
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def _quantity(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    for suffix, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


# ---- SVG charts -------------------------------------------------------------------------

class _Axis:
    """Maps data to pixels, linear or log10."""

    def __init__(self, lo: float, hi: float, start: float, end: float, log: bool):
        self.log = log
        if log:
            lo, hi = math.log10(max(lo, 1e-12)), math.log10(max(hi, 1e-12))
        if hi <= lo:
            hi = lo + 1.0
        self.lo, self.hi, self.start, self.end = lo, hi, start, end

    def __call__(self, v: float) -> float:
        if self.log:
            v = math.log10(max(v, 1e-12))
        return self.start + (v - self.lo) / (self.hi - self.lo) * (self.end - self.start)


def _ticks_linear(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    step = 10 ** math.floor(math.log10((hi - lo) / n))
    for m in (1, 2, 5, 10):
        if (hi - lo) / (step * m) <= n:
            step *= m
            break
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 1)]


def _line_chart(title: str, series: list[tuple[str, list[float], list[float]]], *, x_label: str, y_label: str,
                x_log: bool = False, y_log: bool = False, x_ticks: list[tuple[float, str]] | None = None,
                y_format=_quantity, width: int = 920, height: int = 340,
                colours: dict[str, str] | None = None) -> str:
    left, right, top, bottom = 78, 210, 34, 46
    drawn = [(name, xs, ys) for name, xs, ys in series if len(xs) > 0]
    out = [f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
           f'xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{_esc(title)}">',
           f'<text x="{left}" y="20" class="title">{_esc(title)}</text>']
    if not drawn:
        out.append(f'<text x="{left}" y="{height / 2}" class="empty">no data recorded</text></svg>')
        return "".join(out)
    xs_all = [x for _, xs, _ in drawn for x in xs]
    ys_all = [y for _, _, ys in drawn for y in ys if not (y_log and y <= 0)]
    if not ys_all:
        ys_all = [1.0]
    x = _Axis(min(xs_all), max(xs_all), left, width - right, x_log)
    y_lo, y_hi = min(ys_all), max(ys_all)
    if y_log:
        y_lo, y_hi = 10 ** math.floor(math.log10(y_lo)), 10 ** math.ceil(math.log10(y_hi))
    else:
        y_lo = min(0.0, y_lo)
        y_hi = y_hi * 1.05 if y_hi > 0 else 1.0
    y = _Axis(y_lo, y_hi, height - bottom, top, y_log)
    # frame and grid
    out.append(f'<rect x="{left}" y="{top}" width="{width - left - right}" height="{height - top - bottom}" '
               'class="frame"/>')
    if y_log:
        yt = [10.0 ** e for e in range(int(math.log10(y_lo)), int(math.log10(y_hi)) + 1)]
    else:
        yt = _ticks_linear(y_lo, y_hi)
    for v in yt:
        py = y(v)
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{py:.1f}" y2="{py:.1f}" class="grid"/>'
                   f'<text x="{left - 6}" y="{py + 4:.1f}" class="tick" text-anchor="end">{_esc(y_format(v))}</text>')
    for v, label in (x_ticks or [(t, _quantity(t)) for t in _ticks_linear(x.lo, x.hi)]):
        px = x(v)
        out.append(f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{top}" y2="{height - bottom}" class="grid"/>'
                   f'<text x="{px:.1f}" y="{height - bottom + 16}" class="tick" text-anchor="middle">'
                   f'{_esc(label)}</text>')
    out.append(f'<text x="{(left + width - right) / 2}" y="{height - 8}" class="axis" text-anchor="middle">'
               f'{_esc(x_label)}</text>'
               f'<text x="14" y="{(top + height - bottom) / 2}" class="axis" text-anchor="middle" '
               f'transform="rotate(-90 14 {(top + height - bottom) / 2})">{_esc(y_label)}</text>')
    for i, (name, xs, ys) in enumerate(drawn):
        colour = (colours or {}).get(name) or PALETTE[i % len(PALETTE)]
        points = " ".join(f"{x(a):.1f},{y(b):.1f}" for a, b in zip(xs, ys) if not (y_log and b <= 0))
        out.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="3" '
                   f'stroke-linejoin="round"><title>{_esc(name)}</title></polyline>')
        ly = top + 14 + 20 * i
        out.append(f'<rect x="{width - right + 12}" y="{ly - 9}" width="16" height="10" fill="{colour}"/>'
                   f'<text x="{width - right + 34}" y="{ly}" class="legend">{_esc(_short(name))}</text>')
    out.append("</svg>")
    return "".join(out)


def _short(name: str, limit: int = 26) -> str:
    return name if len(name) <= limit else name[:limit - 1] + "\u2026"


def _bar_chart(title: str, items: list[tuple[str, float]], width: int = 920) -> str:
    row, left, top = 26, 260, 34
    height = top + row * max(1, len(items)) + 20
    out = [f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
           f'xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{_esc(title)}">',
           f'<text x="10" y="20" class="title">{_esc(title)}</text>']
    if not items:
        out.append(f'<text x="10" y="{top + 16}" class="empty">no error or drop counters</text></svg>')
        return "".join(out)
    biggest = max(v for _, v in items) or 1.0
    for i, (name, value) in enumerate(items):
        py = top + i * row
        bar = 0 if value <= 0 else max(2.0, (width - left - 120) * value / biggest)
        out.append(f'<text x="{left - 8}" y="{py + 15}" class="tick" text-anchor="end">{_esc(_short(name, 40))}</text>'
                   f'<rect x="{left}" y="{py + 3}" width="{bar:.1f}" height="{row - 8}" fill="{PALETTE[0]}"/>'
                   f'<text x="{left + bar + 6:.1f}" y="{py + 15}" class="tick">{value:,.0f}</text>')
    out.append("</svg>")
    return "".join(out)


# ---- the page ----------------------------------------------------------------------------

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px 32px; color: #222; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px 0; } h2 { font-size: 17px; margin: 28px 0 8px 0; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 6px 0 12px 0; } td, th { padding: 3px 10px; border-bottom: 1px solid #eee; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; } .muted { color: #777; }
svg.chart { display: block; margin: 8px 0 14px 0; } .title { font-weight: 600; font-size: 14px; }
.tick { font-size: 11px; fill: #555; } .axis { font-size: 12px; fill: #333; } .legend { font-size: 12px; fill: #333; }
.grid { stroke: #e6e6e6; stroke-width: 1; } .frame { fill: none; stroke: #bbb; } .empty { fill: #999; font-style: italic; }
tr.trouble td { color: #b00020; font-weight: 600; }
"""  # noqa: E501 (one CSS rule group a line)


def _percentile_plot(histograms: dict[str, Histogram], colours: dict[str, str] | None = None) -> str:
    series = []
    xs = [i / 20 for i in range(NINES * 20 + 1)]      # log10(1 / (1 - q))
    for name, h in histograms.items():
        if h.count == 0:
            continue
        ys = [float(h.percentile(min(100.0, 100.0 * (1 - 10 ** -x)))) for x in xs]
        series.append((name, [x + 0.0 for x in xs], [max(y, 1.0) for y in ys]))
    ticks = [(0.0, "0%"), (1.0, "90%"), (2.0, "99%"), (3.0, "99.9%"), (4.0, "99.99%"), (5.0, "99.999%")]
    return _line_chart("Latency by percentile (log axes)", series, x_label="percentile",
                       y_label="latency", y_log=True, x_ticks=ticks, y_format=_time_label, colours=colours)


def _rates(times: list[float], values: list[float]) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for i in range(1, len(times)):
        dt = times[i] - times[i - 1]
        if dt > 0:
            xs.append(times[i])
            ys.append(max(0.0, (values[i] - values[i - 1]) / dt))
    return xs, ys


def render_report(run: dict) -> str:
    """The HTML page of a run (as ``collect_run`` or ``load_run`` return it)."""
    histograms = {name: Histogram.from_dict(state) for name, state in run.get("histograms", {}).items()}
    history = run.get("history", {})
    counters = run.get("counters", {})
    kinds = run.get("kinds", {})
    t0 = min((ts[0] for ts, _ in history.values() if ts), default=0.0)

    def family_of(key: str) -> str:
        return key.split("{", 1)[0].split(":", 1)[0]

    # one colour per metric, the same in every chart (a histogram's recorded-count
    # series takes its histogram's colour)
    names = list(histograms) + sorted(k for k in history if not k.startswith("process_") and not k.endswith(":count"))
    colours = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(dict.fromkeys(names))}
    colours.update({f"{name} (recorded)": colour for name, colour in list(colours.items())})
    throughput, gauges = [], []
    for key, (ts, vs) in sorted(history.items()):
        rel = [t - t0 for t in ts]
        if key.endswith(":count") or kinds.get(family_of(key)) == "counter":
            xs, ys = _rates(rel, vs)
            if not any(w in key for w in TROUBLE_WORDS):
                throughput.append((key.replace(":count", " (recorded)"), xs, ys))
        elif key == "process_cpu_seconds_total":
            xs, ys = _rates(rel, vs)
            gauges.append(("process CPU (cores busy)", xs, ys))
        elif key in ("process_resident_memory_bytes",):
            gauges.append(("resident memory (MiB)", rel, [v / 2**20 for v in vs]))
        elif kinds.get(family_of(key)) == "gauge":
            gauges.append((key, rel, vs))

    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
             f"<title>{_esc(run.get('title', 'tallyio run'))}</title><style>{_CSS}</style></head><body>",
             f"<h1>{_esc(run.get('title', 'tallyio run'))}</h1>"
             f"<div class=\"muted\">written {_esc(run.get('written', ''))} by tallyio.metrics.write_report</div>"]

    parts.append("<h2>Latency</h2>")
    parts.append(_percentile_plot(histograms, colours))
    rows = []
    for name, h in histograms.items():
        if h.count == 0:
            rows.append(f"<tr><td>{_esc(name)}</td><td>0</td>" + "<td>-</td>" * 7 + "</tr>")
            continue
        cells = [h.count, h.min, h.percentile(50), h.percentile(90), h.percentile(99), h.percentile(99.9), h.max]
        rows.append(f"<tr><td>{_esc(name)}</td><td>{h.count:,}</td>" +
                    "".join(f"<td>{_time_label(v)}</td>" for v in cells[1:]) + f"<td>{_time_label(h.mean)}</td></tr>")
    parts.append("<table><tr><th>histogram</th><th>count</th><th>min</th><th>p50</th><th>p90</th><th>p99</th>"
                 "<th>p99.9</th><th>max</th><th>mean</th></tr>" + "".join(rows) + "</table>")

    parts.append("<h2>Throughput over time</h2>")
    parts.append(_line_chart("Events per second", throughput, x_label="seconds since the first sample",
                             y_label="per second", colours=colours))
    parts.append("<h2>Queue depth, CPU and memory over time</h2>")
    if not gauges:
        parts.append(_line_chart("Gauges", [], x_label="seconds", y_label="value"))
    for name, xs, ys in gauges:
        parts.append(_line_chart(name, [(name, xs, ys)], x_label="seconds since the first sample",
                                 y_label=_short(name, 30), height=240))

    parts.append("<h2>Errors and drops</h2>")
    trouble = [(k, float(v)) for k, v in sorted(counters.items()) if any(w in k for w in TROUBLE_WORDS)]
    parts.append(_bar_chart("Error and drop counts", trouble))
    parts.append("<table><tr><th>counter</th><th>total</th></tr>" + "".join(
        f"<tr class=\"{'trouble' if any(w in k for w in TROUBLE_WORDS) else ''}\"><td>{_esc(k)}</td><td>{v:,}</td></tr>"
        for k, v in sorted(counters.items())) + "</table>")
    if run.get("gauges"):
        parts.append("<table><tr><th>gauge</th><th>last value</th></tr>" + "".join(
            f"<tr><td>{_esc(k)}</td><td>{_quantity(v)}</td></tr>"
            for k, v in sorted(run["gauges"].items())) + "</table>")

    for panel in run.get("panels", ()):
        parts.append(_panel(panel))
    if run.get("notes"):
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{_esc(n)}</li>" for n in run["notes"]) + "</ul>")

    parts.append("<h2>Machine</h2><table>" + "".join(
        f"<tr><td>{_esc(k)}</td><td>{_esc(v)}</td></tr>" for k, v in run.get("machine", {}).items()) + "</table>")
    if run.get("process"):
        parts.append("<table><tr><th>process (at the end)</th><th></th></tr>" + "".join(
            f"<tr><td>{_esc(k)}</td><td>{_quantity(v)}</td></tr>" for k, v in run["process"].items()) + "</table>")
    parts.append("</body></html>\n")
    return "".join(parts)


def _panel(panel: dict) -> str:
    """One panel of a run with several parts (a backtest: one per strategy setting):
    ``{"title", "histograms": {name: Histogram.to_dict()}, "counters": {name: value},
    "series": [(name, xs, ys)], "x_label", "y_label"}``, each key optional but the title."""
    histograms = {name: Histogram.from_dict(state) for name, state in panel.get("histograms", {}).items()}
    parts = [f"<h2>{_esc(panel['title'])}</h2>"]
    if histograms:
        parts.append(_percentile_plot(histograms))
    if panel.get("series"):
        parts.append(_line_chart(panel["title"], [tuple(s) for s in panel["series"]],
                                 x_label=panel.get("x_label", "x"), y_label=panel.get("y_label", "y"), height=240))
    if panel.get("counters"):
        parts.append("<table><tr><th>counter</th><th>total</th></tr>" + "".join(
            f"<tr><td>{_esc(k)}</td><td>{v:,}</td></tr>" for k, v in panel["counters"].items()) + "</table>")
    return "".join(parts)


def write_report(path: str | os.PathLike, registry: Registry | None = None, *, run: dict | None = None,
                 title: str = "tallyio run") -> Path:
    """Write the HTML report of ``registry`` (or of a saved ``run``) to ``path``; returns the path."""
    if (registry is None) == (run is None):
        raise TypeError("write_report needs exactly one of registry and run")
    if run is None:
        run = collect_run(registry, title)
    path = Path(path)
    path.write_text(render_report(run), encoding="utf-8")
    return path


# ---- the command line (cli.py is another module's: it calls these) --------------------------

def add_report_option(parser: argparse.ArgumentParser) -> None:
    """Give a command that runs things a ``--report FILE`` option; after the
    run, call ``finish_report(args, registry)``."""
    parser.add_argument("--report", metavar="FILE", help="write an HTML run report (latency, throughput, "
                        "errors, machine) to FILE")


def finish_report(args: argparse.Namespace, registry: Registry, title: str = "tallyio run") -> Path | None:
    """Write the report if ``--report`` was given; returns its path or None."""
    target = getattr(args, "report", None)
    if not target:
        return None
    return write_report(target, registry, title=title)


def add_report_command(subparsers) -> argparse.ArgumentParser:
    """Add ``tallyio report`` to a CLI's subparsers: ``report OUT.html --from
    RUN.json`` draws a saved run; ``report OUT.html --demo SECONDS`` measures a
    short open-loop workload (a producer thread paced at a fixed rate, a
    consumer recording latency from each item's scheduled time) and draws it.
    The parser's ``func(args)`` runs it and returns the exit code."""
    parser = subparsers.add_parser("report", help="write an HTML run report",
                                   description="Write a self-contained HTML run report.")
    parser.add_argument("output", metavar="OUT.html")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--from", dest="run", metavar="RUN.json", help="a run saved by tallyio.metrics.save_run")
    source.add_argument("--demo", type=float, metavar="SECONDS", help="measure a short demo workload first")
    parser.set_defaults(func=report_main)
    return parser


def report_main(args: argparse.Namespace) -> int:
    """``tallyio report``: 0 on success, 2 on bad input (the message says why)."""
    import sys
    try:
        if args.run:
            path = write_report(args.output, run=load_run(args.run))
        else:
            if not 0 < args.demo <= 600:
                raise ValueError(f"--demo must be in (0, 600] seconds, got {args.demo}")
            path = write_report(args.output, demo_registry(args.demo), title="tallyio report --demo")
    except (ValueError, OSError) as exc:
        print(f"tallyio report: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


def demo_registry(seconds: float, rate_per_s: float = 20_000.0) -> Registry:
    """An open-loop demo run: a producer schedules items at ``rate_per_s`` into
    an SpscQueue (dropping, and counting, what does not fit); a consumer
    records each item's latency from its scheduled time."""
    import queue
    import threading

    from tallyio import SpscQueue
    from tallyio.errors import QueueFullError

    reg = Registry()
    produced = reg.counter("demo_items_produced", "items scheduled by the producer")
    consumed = reg.counter("demo_items_consumed", "items taken by the consumer")
    dropped = reg.counter("demo_items_dropped", "items dropped: queue full")
    latency = reg.histogram("demo_latency_seconds", "scheduled time to consumption")
    ring = SpscQueue(1024, dtype="uint64")
    reg.gauge("demo_queue_depth", "items waiting").set_function(ring.qsize)
    interval_ns = int(1e9 / rate_per_s)
    stop = threading.Event()

    def produce() -> None:
        start = time.perf_counter_ns()
        end = start + int(seconds * 1e9)
        due = start
        while due < end:
            now = time.perf_counter_ns()
            while due <= now and due < end:            # open loop: catch up on every scheduled item
                try:
                    ring.put_nowait(due)
                    produced.inc()
                except QueueFullError:
                    dropped.inc()
                due += interval_ns
            time.sleep(max(0.0, (due - time.perf_counter_ns()) / 1e9))   # until the next item is due
        stop.set()

    def consume() -> None:
        rec = latency.local()
        while not (stop.is_set() and ring.empty()):
            try:
                due = ring.get(timeout=0.01)
            except queue.Empty:       # nothing for 10 ms: look at `stop` again
                continue
            rec.record(max(0, time.perf_counter_ns() - due))
            consumed.inc()

    reg.start_sampling(min(0.25, seconds / 8))
    threads = [threading.Thread(target=produce), threading.Thread(target=consume)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    reg.stop_sampling()
    return reg

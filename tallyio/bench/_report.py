"""The machine's description and the two ways results leave `tallyio bench`:
a plain-text table and JSON."""
from __future__ import annotations

import json
import math
import os
import platform
import sys

from tallyio.bench._figures import Figure, format_value


def machine_description() -> dict:
    """CPU model, core count, NUMA nodes, Python and tallyio versions."""
    import tallyio

    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        nodes = len([d for d in os.listdir("/sys/devices/system/node") if d.startswith("node")])
    except OSError:
        nodes = 1
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "numa_nodes": nodes,
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "tallyio": tallyio.__version__,
    }


def best_peer(f: Figure) -> str | None:
    """The peer whose median is best (the smallest ratio), or None without peers.

    >>> f = Figure("g", "c", [10.0], peers={"a": [20.0], "b": [12.0]})
    >>> best_peer(f)
    'b'
    """
    ratios = {peer: f.ratio(peer) for peer in f.peers}
    measured = {peer: r for peer, r in ratios.items() if r is not None}
    return min(measured, key=measured.__getitem__) if measured else None


def short_group(group: str, width: int = 50) -> str:
    """A group's name for the summary: up to its first parenthesis and, if
    still longer than ``width``, up to its first comma.

    >>> short_group("Scheduler: latency of one task at a time, back to back, 2 workers spinning (tallyio: ...)")
    'Scheduler: latency of one task at a time'
    >>> short_group("C level, spsc")
    'C level, spsc'
    """
    name = group.split(" (", 1)[0]
    if len(name) > width and ", " in name:
        name = name.split(", ", 1)[0]
    return name


def _in_summary(f: Figure) -> bool:
    """A figure compared with something: a peer or a target (or one that could not run)."""
    return bool(f.peers or f.targets or f.skipped)


def _target_cell(f: Figure) -> str:
    if not f.targets:
        return "-"
    missed = [t.describe(f) for t in f.targets if t.met(f) is False]
    if missed:
        return "MISSED " + "; ".join(missed)
    if any(t.met(f) is None for t in f.targets):
        return "not measured"
    return "met " + "; ".join(t.describe(f) for t in f.targets)


def format_summary(result: dict) -> str:
    """ONE table: a row per figure that is compared with something (a peer or
    a target), with tallyio's median, the best peer and its median, the ratio
    to it (how many times better tallyio is; > 1: tallyio better) and whether
    the figure's targets are met; then one line for the peers that could not
    run.  ``format_table`` has the details (every peer, spreads, and the
    figures measured for tallyio alone).

    >>> from tallyio.bench import Figure, Target
    >>> f = Figure("scheduler", "no-op tasks", [2e6, 3e6], unit="tasks/s", higher_is_better=True,
    ...            peers={"ThreadPoolExecutor(2)": [1e5, 1e5], "asyncio": [4e5, 4e5]},
    ...            targets=[Target(10, peer="ThreadPoolExecutor(2)")])
    >>> machine = {"tallyio": "0.1.0", "cpu": "a CPU", "usable_cpus": 2, "numa_nodes": 1, "python": "3.11"}
    >>> print(format_summary({"machine": machine, "mode": "quick", "figures": [f]}))
    tallyio 0.1.0 on a CPU (2 usable CPUs, 1 NUMA node(s)), Python 3.11; quick run
    medians over repetitions; ratio = how many times better tallyio's figure is than the best peer's (> 1: tallyio better)
    <BLANKLINE>
      figure                  tallyio  best peer       median  ratio  target
      scheduler: no-op tasks  2.50M/s  asyncio       400.0k/s   6.25  met >= 10x ThreadPoolExecutor(2)
    <BLANKLINE>
    targets: 1 met, 0 missed, 0 not measured. --details: every peer, the spreads and 0 figure(s) measured for tallyio alone; --json: all of it with the samples
    """  # noqa: E501 (the doctest's expected output is verbatim)
    m = result["machine"]
    figures = result["figures"]
    lines = [f"tallyio {m['tallyio']} on {m['cpu']} ({m['usable_cpus']} usable CPUs, "
             f"{m['numa_nodes']} NUMA node(s)), Python {m['python']}; {result.get('mode', 'full')} run",
             "medians over repetitions; ratio = how many times better tallyio's figure is than the best "
             "peer's (> 1: tallyio better)", ""]
    rows = [("figure", "tallyio", "best peer", "median", "ratio", "target")]
    for f in (f for f in figures if _in_summary(f)):
        name = f"{short_group(f.group)}: {f.case}"
        if f.skipped:
            rows.append((name, "skipped", f.skipped, "", "", ""))
            continue
        peer = best_peer(f)
        ratio = f.ratio(peer) if peer else None
        rows.append((name, format_value(f.median, f.unit), peer or "-",
                     format_value(f.peer_median(peer), f.unit) if peer else "-",
                     f"{ratio:.3g}" if ratio is not None else "-", _target_cell(f)))   # 0.00164, not 0.00
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        cells = [row[0].ljust(widths[0]), row[1].rjust(widths[1]), row[2].ljust(widths[2]),
                 row[3].rjust(widths[3]), row[4].rjust(widths[4]), row[5]]
        lines.append(("  " + "  ".join(cells)).rstrip())
    outcomes = [t.met(f) for f in figures for t in f.targets]
    skipped = {peer: reason for f in figures for peer, reason in f.skipped_peers.items()}
    lines.append("")
    if skipped:
        lines.append("not measured: " + "; ".join(f"{peer} ({reason})" for peer, reason in skipped.items()))
    alone = sum(1 for f in figures if not _in_summary(f))
    lines.append(f"targets: {outcomes.count(True)} met, {outcomes.count(False)} missed, "
                 f"{outcomes.count(None)} not measured. --details: every peer, the spreads and "
                 f"{alone} figure(s) measured for tallyio alone; --json: all of it with the samples")
    return "\n".join(lines)


def format_table(result: dict) -> str:
    """The figures as a plain-text table, grouped, each peer on its own row
    under tallyio's figure with its ratio, then the targets met or missed."""
    lines = []
    m = result["machine"]
    lines.append(f"tallyio {m['tallyio']} on {m['cpu']} ({m['usable_cpus']} usable CPUs, "
                 f"{m['numa_nodes']} NUMA node(s)), Python {m['python']}; {result.get('mode', 'full')} run")
    lines.append("median over repetitions; spread = (max-min)/median; ratio = how many times better "
                 "tallyio's figure is than the peer's (> 1: tallyio better)")
    groups: dict[str, list] = {}
    for f in result["figures"]:
        groups.setdefault(f.group, []).append(f)
    for group, members in groups.items():
        width = max(len(g.case) for g in members) + 2
        peer_width = max([len(p) for g in members for p in g.peers] + [4]) + 2
        lines.append("")
        lines.append(group)
        header = f"  {'case':<{width}} {'median':>12} {'spread':>7}"
        if any(g.peers for g in members):
            header += f"   {'peer':<{peer_width}} {'median':>12} {'spread':>7} {'ratio':>7}"
        lines.append(header)
        for f in members:
            lines += _rows(f, width, peer_width)
        # peers that could not run are said once per group, after its rows
        skipped = {peer: reason for g in members for peer, reason in g.skipped_peers.items()}
        lines += [f"  not measured: {peer}: {reason}" for peer, reason in skipped.items()]
    return "\n".join(lines)


def _rows(f: Figure, width: int, peer_width: int) -> list[str]:
    """One figure: tallyio's median beside its first peer, one row per further
    peer, then its targets."""
    if f.skipped:
        return [f"  {f.case:<{width}} skipped: {f.skipped}"]
    row = f"  {f.case:<{width}} {format_value(f.median, f.unit):>12} {f.spread:>6.0%}"
    lines = []
    for k, peer in enumerate(f.peers):
        peer_cells = (f"   {peer:<{peer_width}} {format_value(f.peer_median(peer), f.unit):>12} "
                      f"{f.peer_spread(peer):>6.0%} {f.ratio(peer) or math.nan:>7.2f}")
        lines.append((row if k == 0 else " " * len(row)) + peer_cells)
    if not f.peers:
        lines.append(row)
    for target in f.targets:
        lines.append(f"      target {target.describe(f)}: {'met' if target.met(f) else 'MISSED'}")
    return lines


def to_json(result: dict) -> str:
    """Every figure (samples, medians, spreads, ratios, targets) and the machine, as JSON."""
    def clean(value: float | None) -> float | None:
        return None if value is None or math.isnan(value) else value

    figures = []
    for f in result["figures"]:
        figures.append({
            "group": f.group, "case": f.case, "unit": f.unit, "higher_is_better": f.higher_is_better,
            "skipped": f.skipped, "samples": f.samples, "median": clean(f.median), "spread": clean(f.spread),
            "peers": [{"name": p, "samples": f.peers[p], "median": f.peer_median(p),
                       "spread": f.peer_spread(p), "ratio": f.ratio(p)} for p in f.peers]
                     + [{"name": p, "skipped": reason} for p, reason in f.skipped_peers.items()],
            "targets": [{"target": t.describe(f), "met": t.met(f)} for t in f.targets],
        })
    return json.dumps({"machine": result["machine"], "mode": result.get("mode"), "figures": figures}, indent=2)

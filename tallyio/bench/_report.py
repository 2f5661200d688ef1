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
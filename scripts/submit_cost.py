"""Cost of one NumaScheduler.submit_task call (the fast path), builds side by side.

    python scripts/submit_cost.py [--rounds 7] CHECKOUT [CHECKOUT ...]

Each CHECKOUT is a source tree with its extensions built in place (e.g. this
worktree and a scratch worktree of main).  Every round runs each checkout in
a fresh child interpreter, in turn (alternating, so machine noise hits both
alike), and the child prints the median ns per call over batches of no-op
submits with the workers running, as `tallyio bench --group scheduler`'s
"submit cost" section measures it (the wait for each batch to run is outside
the timing).  Printed: per checkout, the median over the rounds and each
round's figure, and the ratio of each checkout to the first.  These are
shared 2-core VMs: quote medians and same-run ratios, never one figure.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

CHILD = r"""
import statistics, sys
from itertools import repeat
from time import perf_counter_ns
from tallyio import NumaScheduler, SchedulerConfig, Task

class Noop(Task):
    __slots__ = ()
    def execute(self):
        pass

mode, batch, batches = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
task = Noop()
with NumaScheduler(SchedulerConfig(workers_per_numa_node=2, enable_cpu_affinity=False)) as scheduler:
    submit = scheduler.submit_task
    per_call = []
    if mode == "throughput":             # submit + run: ns per task, the workers' side included
        for i in range(batches + 2):
            start = perf_counter_ns()
            for _ in repeat(None, batch):
                submit(task)
            scheduler.join()
            if i >= 2:
                per_call.append((perf_counter_ns() - start) / batch)
        print(statistics.median(per_call))
        sys.exit(0)
    for i in range(batches + 2):
        start = perf_counter_ns()
        if mode == "block":
            for _ in repeat(None, batch):
                submit(task, True)
        else:
            for _ in repeat(None, batch):
                submit(task)
        if i >= 2:                       # the first two batches warm the caches up
            per_call.append((perf_counter_ns() - start) / batch)
        scheduler.join()
print(statistics.median(per_call))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkouts", nargs="+")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--throughput", action="store_true",
                        help="also time submit + run (join included) per task, every checkout")
    parser.add_argument("--block", action="store_true",
                        help="also time submit_task(task, True) (the blocking form, never full here) "
                             "on the checkouts after the first")
    args = parser.parse_args()
    runs = [(path, "fast") for path in args.checkouts]
    if args.block:
        runs += [(path, "block") for path in args.checkouts[1:]]
    if args.throughput:
        runs += [(path, "throughput") for path in args.checkouts]
    figures: dict[tuple[str, str], list[float]] = {run: [] for run in runs}
    for _ in range(args.rounds):
        for path, mode in runs:
            out = subprocess.run([sys.executable, "-c", CHILD, mode, str(args.batch), str(args.batches)],
                                 capture_output=True, text=True, check=True, cwd=path,
                                 env={"PYTHONPATH": path, "PATH": "/usr/bin:/bin"})
            figures[(path, mode)].append(float(out.stdout))
    for (path, mode), values in figures.items():
        median = statistics.median(values)
        first = statistics.median(figures[(args.checkouts[0], "fast" if mode == "block" else mode)])
        print(f"{path} [{mode}]: median {median:.1f} ns/{'task' if mode == 'throughput' else 'call'} "
              f"over {len(values)} rounds ({', '.join(f'{v:.0f}' for v in values)}); "
              f"x{median / first:.3f} of the first checkout's {mode if mode != 'block' else 'fast'}")


if __name__ == "__main__":
    main()

"""The ``tallyio`` command: ``tallyio demo``, ``tallyio bench``,
``tallyio topology`` and ``tallyio report`` (``tallyio --help`` and ``tallyio COMMAND --help``
describe them in plain text; ``tallyio --version``).

    tallyio demo                 a short tour of the queues, the deque, the pool and the scheduler
    tallyio bench [--quick|--smoke] [--group GROUP] [--details] [--json FILE] [--plot FILE.png]
                                 the core, the scheduler and the engine's parts against
                                 their peers, side by side: one summary table
    tallyio report OUT.html (--from RUN.json | --demo SECONDS)
                                 a self-contained HTML run report
    tallyio run [--node URL] [--execute] [--strategy module:Class] [--report FILE]
                                 the engine; no arguments: the embedded replay, dry run
    tallyio topology [--json] [--root PATH]
                                 the NUMA nodes, CPUs, memory and distances tallyio sees
"""
from __future__ import annotations

import argparse
import sys
import threading


def demo(out=None) -> int:
    """Move data through each structure and print what happened.

    >>> import io
    >>> demo(io.StringIO())
    0
    """
    import numpy as np

    from tallyio import MemoryPool, MpmcQueue, SpscQueue, Steal, WorkStealingDeque

    out = sys.stdout if out is None else out   # looked up now, so redirection works

    def say(msg: str) -> None:
        print(msg, file=out)

    # SPSC: a producer thread streams a million integers in batches, without the GIL
    n = 1_000_000
    q = SpscQueue(4096, dtype="uint64")
    data = np.arange(n, dtype=np.uint64)
    received = np.empty(n, dtype=np.uint64)

    def produce() -> None:
        sent = 0
        while sent < n:
            sent += q.put_many(data[sent:sent + 1024])

    producer = threading.Thread(target=produce)
    producer.start()
    got = 0
    while got < n:
        got += q.get_many(received[got:got + 1024])
    producer.join()
    say(f"SpscQueue: {n:,} uint64 items crossed threads in batches; in order: "
        f"{bool((received == data).all())}")

    # MPMC with Python objects
    m = MpmcQueue(8)
    m.put({"tx": "0xabc", "gas": 21000})
    say(f"MpmcQueue: object round trip -> {m.get()}")

    # Chase-Lev deque: owner pops LIFO, thieves steal FIFO
    d = WorkStealingDeque(16)
    for task in ("a", "b", "c"):
        d.push(task)
    thief = d.stealer()
    status, item = thief.steal()
    say(f"WorkStealingDeque: owner pop -> {d.pop()!r}; thief steal -> ({status.name}, {item!r})")
    assert status is Steal.SUCCESS

    # Memory pool: zero-copy numpy view of a pooled block
    pool = MemoryPool(256, 1024)
    with pool.block() as block:
        prices = np.frombuffer(block, dtype=np.float64)
        prices[:4] = [101.5, 101.25, 101.75, 102.0]
        say(f"MemoryPool: block {block.index} at {block.address:#x}, first prices "
            f"{prices[:4].tolist()}, stats {pool.stats()}")
        del prices  # a live view pins the block: freeing it now would raise BufferError
    say(f"MemoryPool: after the with-block, in use = {pool.stats().in_use}")

    # The scheduler: Python tasks, the Executor interface and native tasks
    from tallyio import NumaScheduler, SchedulerConfig, Task
    from tallyio._ext.native_example import spawn_tree

    class Fib(Task):
        __slots__ = ("n", "out")

        def __init__(self, n: int, out: list) -> None:
            self.n, self.out = n, out

        def execute(self) -> None:
            a, b = 0, 1
            for _ in range(self.n):
                a, b = b, a + b
            self.out.append(a)

    results: list[int] = []
    with NumaScheduler(SchedulerConfig(workers_per_numa_node=2)) as scheduler:
        for n in range(20):
            scheduler.submit_task(Fib(n, results))
        square = scheduler.submit(pow, 12, 2)
        tree = spawn_tree(scheduler, 100_000)      # native nogil tasks spawning native tasks
        tree.wait()
        scheduler.join()
        stats = scheduler.stats()
    say(f"NumaScheduler: {len(results)} Python tasks (fib(19) = {max(results)}), "
        f"a future -> {square.result()}, {tree.done():,} native tasks; "
        f"{stats.metrics.tasks_processed:,} processed, {stats.metrics.tasks_stolen:,} stolen "
        f"by idle workers, queue wait p50 {stats.queue_wait_us.p50:.1f} us")
    return 0


def _bench(args: argparse.Namespace) -> int:
    import os

    from tallyio import bench

    # refuse before measuring for minutes, not after
    for flag, path in (("--json", args.json), ("--plot", args.plot)):
        folder = os.path.dirname(os.path.abspath(path)) if path else None
        if folder and not os.path.isdir(folder):
            print(f"tallyio bench: {flag} {path}: no such directory {folder}", file=sys.stderr)
            return 2
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("tallyio bench: --plot needs matplotlib: pip install 'tallyio[plot]'", file=sys.stderr)
            return 2

    live = sys.stderr.isatty()

    def progress(msg: str) -> None:
        # on a terminal one line rewritten in place; in a log one line per step
        print(f"\r\033[K{msg}" if live else msg, end="" if live else "\n", file=sys.stderr, flush=True)

    result = bench.run(quick=args.quick, smoke=args.smoke, groups=args.group or bench.GROUPS,
                       progress=progress)
    if live:
        print("\r\033[K", end="", file=sys.stderr)
    print(bench.format_summary(result))
    if args.details:
        print()
        print(bench.format_table(result))
    if args.smoke:
        print("\n(--smoke: tiny sizes, the figures above prove only that every benchmark runs)")
    if args.json:
        with open(args.json, "w") as fh:
            fh.write(bench.to_json(result))
        print(f"\nwrote {args.json}")
    if args.plot:
        bench.plot(result, args.plot)
        print(f"wrote {args.plot}")
    return 0


def _topology(args: argparse.Namespace) -> int:
    import json
    import warnings

    from tallyio.topology import SYSFS_NODE_ROOT, NumaTopology

    # a broken tree is not an error: show the fallback and say why, without a traceback-style warning line
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        topology = NumaTopology.detect(args.root or SYSFS_NODE_ROOT)
    for warning in caught:
        print(f"tallyio: warning: {warning.message}", file=sys.stderr)
    print(json.dumps(topology.to_dict(), indent=2) if args.json else topology.describe())
    return 0


_DESCRIPTION = """\
tallyio: a NUMA-aware work-stealing task scheduler for Python, over lock-free
queues, Chase-Lev deques and a memory pool written in nogil Cython.
'tallyio COMMAND --help' describes each command.
"""

_DEMO_DESCRIPTION = """\
A short tour: a million integers cross an SpscQueue between two threads in
batches, a dict goes through an MpmcQueue, a thief steals from a
WorkStealingDeque, prices land in a MemoryPool block through numpy, and a
NumaScheduler runs Python tasks, a future and 100,000 native nogil tasks.
Takes a second or two.
"""

_BENCH_DESCRIPTION = """\
Measures tallyio and what you would otherwise use side by side, in one run,
alternating the contenders: the queues, the deque and the pool (group core)
against queue.SimpleQueue, collections.deque and bytearray; the scheduler
(group scheduler) against ThreadPoolExecutor, an asyncio loop,
multiprocessing.Pool, loky and dask when installed; and the engine's parts:
the calldata decoder (group decode) against eth-abi and web3.py, the exact
pool math (amm) and the mempool path (mempool) against the same work in
Python, a node's pending transactions (source, against anvil) against
web3.py, state checkpoints (state) against py-lmdb and sqlite3, latency
histograms (metrics) against prometheus_client and hdrhistogram, the circuit
breaker (breaker) against pybreaker, transaction signing (execution) against
eth-account, and the engine (engine) against the same flow in plain Python.

It prints one summary table: for each figure compared with a peer or a
target, tallyio's median, the best peer's, the ratio (how many times better
tallyio is; > 1: tallyio better) and whether the target is met. --details
adds every peer, the spread of each figure and the figures measured for
tallyio alone (C-level ns per operation); --json writes all of it with the
raw samples.
"""

_TOPOLOGY_DESCRIPTION = """\
Prints the NUMA nodes tallyio detects: each node's usable CPUs (those this
process may run on), its memory and its distances to the other nodes, read
from /sys/devices/system/node (or --root). A missing or unreadable tree is
not an error: tallyio then treats the machine as one node, and says why.
"""


def main(argv: list[str] | None = None) -> int:
    """The ``tallyio`` command; returns its exit status.

    >>> main(["topology", "--root", "/nonexistent"]) == 0   # doctest: +ELLIPSIS
    NUMA topology: 1 node, ...
    True
    """
    from tallyio import __version__
    from tallyio.bench import GROUPS

    plain = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog="tallyio", description=_DESCRIPTION, formatter_class=plain)
    parser.add_argument("--version", action="version", version=f"tallyio {__version__}")
    sub = parser.add_subparsers(title="commands", dest="command", required=True, metavar="COMMAND")
    sub.add_parser("demo", help="a short tour of the queues, the deque, the pool and the scheduler",
                   description=_DEMO_DESCRIPTION, formatter_class=plain)
    b = sub.add_parser("bench", help="tallyio beside its peers (stdlib queues, ThreadPoolExecutor, asyncio, "
                                     "multiprocessing, loky, dask), measured in one run: one summary table",
                       description=_BENCH_DESCRIPTION, formatter_class=plain)
    size = b.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true",
                      help="fewer, shorter repetitions (core and scheduler: under 2 minutes on 2 cores)")
    size.add_argument("--smoke", action="store_true", help="tiny sizes; checks that every benchmark runs")
    b.add_argument("--group", action="append", choices=GROUPS,
                   help="run only this group (repeatable; default: all of them)")
    b.add_argument("--details", action="store_true",
                   help="after the summary, every peer of every figure with its spread, group by group")
    b.add_argument("--json", metavar="FILE", help="also write every figure and the machine description as JSON")
    b.add_argument("--plot", metavar="FILE.png",
                   help="also draw tallyio against its peers into a PNG "
                        "(needs matplotlib: pip install 'tallyio[plot]')")
    t = sub.add_parser("topology", help="the NUMA nodes, CPUs, memory and distances tallyio sees",
                       description=_TOPOLOGY_DESCRIPTION, formatter_class=plain)
    t.add_argument("--json", action="store_true", help="print it as JSON")
    t.add_argument("--root", metavar="PATH",
                   help="read this sysfs node tree instead of /sys/devices/system/node")
    from tallyio.metrics.report import add_report_command

    add_report_command(sub)
    from tallyio.engine.run import add_run_command

    add_run_command(sub)
    from tallyio.backtest.cli import add_backtest_command

    add_backtest_command(sub)
    args = parser.parse_args(argv)
    if args.command == "demo":
        return demo()
    if args.command == "topology":
        return _topology(args)
    if args.command in ("report", "run", "backtest"):
        return args.func(args)
    return _bench(args)


if __name__ == "__main__":
    sys.exit(main())

"""The ``backtest`` group: one segment set on Dask with 1 and 2 worker
processes beside the same tasks run sequentially in this process.

The segment set: a seeded synthetic recording (``tallyio.mempool.synthetic``:
a 1,000-pool V2 market; blocks of 250 pending transactions of which 15% are
Router02 swaps -- the share of router calls among the real mainnet
transactions of ``TALLYIO_MAINNET_DATA``'s README, 431 of 2,841 -- each block
followed by 8 Syncs) cut every 4 blocks (1,000 pending transactions per
segment), x ``CycleStrategy`` at 3 ``min_profit`` settings.  Each task is a
replay Engine with the dry-run executor (``tallyio.backtest``).  Each
repetition runs, one after the other: sequential, a ``LocalCluster`` of 1
worker process, one of 2 (each cluster started and its workers warmed up by a
first run outside the timing).  Figures: seconds for the whole set, the
speedup of 2 workers over sequential, Dask's overhead per task with one worker
(``(t_1worker - t_sequential) / tasks``) and the sequential cost per task.
Every run's digest must equal the sequential one (a run that differs is an
error, not a figure).

``scale_out(...)`` turns the measured per-task cost into the paper estimate
docs/backtest.md gives (workers for a month of mainnet in an hour).
"""
from __future__ import annotations

import time
from typing import Callable

from tallyio.bench._figures import Figure, alternate
from tallyio.bench._progress import Progress

Section = tuple[str, Callable[[Progress], list[Figure]]]

SETTINGS = {"min_profit": [0, 1000, 3000]}


#: pending transactions per block and per segment in the synthetic recording
TXS_PER_BLOCK = 250
BLOCKS_PER_SEGMENT = 4
SWAP_SHARE = 431 / 2841        # router calls among the mainnet data's top-level transactions


def write_recording(path: str, blocks: int, seed: int = 16) -> list:
    """A synthetic recording of ``blocks`` blocks; returns its V2 routers ``[(address, exchange)]``."""
    import random

    from tallyio.mempool import PoolTable, Recorder
    from tallyio.mempool.synthetic import (ROUTERS, WETH, block_header, irrelevant_tx, make_market, swap_tx,
                                           sync_event)

    rng = random.Random(seed)
    pools = make_market(rng, n_tokens=120, extra_pools=1000 - 2 * 119)
    k = 0
    with Recorder(path) as rec:
        rec.snapshot(PoolTable(pools, weth=WETH), ts=0)
        for number in range(1, blocks + 1):
            rec.write(block_header(number, received_ns=number * 12_000_000_000))
            for p in rng.sample(pools, 8):
                rec.write(sync_event(p.address, int(p.reserve0 * rng.uniform(0.95, 1.05)),
                                     int(p.reserve1 * rng.uniform(0.95, 1.05)), number))
            for _ in range(TXS_PER_BLOCK):
                rec.write(swap_tx(rng, pools, ROUTERS[k % 2], k) if rng.random() < SWAP_SHARE
                          else irrelevant_tx(rng, k))
                k += 1
    return [(ROUTERS[0], 0), (ROUTERS[1], 1)]


def _backtest(folder: str, segments: int):
    import os

    from tallyio.backtest import Backtest
    path = os.path.join(folder, "synthetic.tio")
    routers = write_recording(path, segments * BLOCKS_PER_SEGMENT)
    return Backtest([path], {"cycle": ("tallyio.engine.strategy:CycleStrategy", SETTINGS)},
                    blocks_per_segment=BLOCKS_PER_SEGMENT, work_dir=folder, routers=routers)


def measure_once(bt, clients: dict) -> dict[str, float]:
    """One repetition: seconds for the whole set sequentially and on each client."""
    out = {}
    inside: dict[str, float] = {}

    def adder(name: str):
        return lambda result: inside.__setitem__(name, inside.get(name, 0.0) + result["seconds"])

    t0 = time.perf_counter()
    reference = bt.run(sequential=True, on_result=adder("sequential")).digest()
    out["sequential"] = time.perf_counter() - t0
    for name, client in clients.items():
        t0 = time.perf_counter()
        digest = bt.run(client, on_result=adder(name)).digest()
        out[name] = time.perf_counter() - t0
        if digest != reference:
            raise RuntimeError(f"backtest bench: the digest on {name} differs from the sequential one")
    tasks = len(bt.tasks())
    out["speedup 2 workers"] = out["sequential"] / out["2 workers"]
    out["overhead per task"] = (out["1 worker"] - out["sequential"]) / tasks * 1e6
    out["per task"] = out["sequential"] / tasks * 1e6
    # the tasks' own time on one worker process over their time in this process: what the worker's
    # threads (its event loop beside the engine's) cost inside the task, apart from Dask's dispatch
    out["in-task ratio 1 worker"] = inside["1 worker"] / inside["sequential"]
    return out


def scale_out(per_task_s: float, pending_per_task: int, *, pending_per_month: float, settings: int,
              efficiency: float, hours: float = 1.0) -> float:
    """Workers needed to backtest ``pending_per_month`` pending transactions at
    ``settings`` strategy settings within ``hours``, from a measured per-task
    cost over ``pending_per_task`` pending transactions and the parallel
    ``efficiency`` measured (speedup / workers).

    >>> round(scale_out(0.05, 8, pending_per_month=8e6, settings=1, efficiency=1.0), 1)
    13.9
    """
    seconds = per_task_s / pending_per_task * pending_per_month * settings
    return seconds / (hours * 3600.0) / efficiency


def sections(mode: str) -> list[Section]:
    """The backtest group's sections for ``mode`` (smoke, quick, full)."""
    reps = {"smoke": 1, "quick": 3, "full": 5}[mode]
    segments = {"smoke": 2, "quick": 6, "full": 12}[mode]

    def scaling(progress: Progress) -> list[Figure]:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            return [Figure("backtest", "segment set on 2 Dask workers", skipped="dask[distributed] is not installed")]
        import tempfile

        folder = tempfile.TemporaryDirectory(prefix="tallyio-bench-backtest-")
        bt = _backtest(folder.name, segments)
        clusters, clients = [], {}
        try:
            for n in (1, 2):
                cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0")
                clusters.append(cluster)
                clients[f"{n} worker{'s' if n > 1 else ''}"] = Client(cluster)
            for client in clients.values():        # warm: imports and the first engine in each worker
                bt.run(client)
            samples = alternate([("tallyio", lambda: measure_once(bt, clients))], reps, progress)["tallyio"]
        finally:
            for client in clients.values():
                client.close()
            for cluster in clusters:
                cluster.close()
            folder.cleanup()
        tasks = len(bt.tasks())
        return [
            Figure("backtest", f"{tasks} tasks, sequential (s)", samples["sequential"], unit="s"),
            Figure("backtest", f"{tasks} tasks, LocalCluster 1 worker (s)", samples["1 worker"], unit="s"),
            Figure("backtest", f"{tasks} tasks, LocalCluster 2 workers (s)", samples["2 workers"], unit="s"),
            Figure("backtest", "speedup, 2 workers vs sequential", samples["speedup 2 workers"], unit="x",
                   higher_is_better=True),
            Figure("backtest", "Dask overhead per task, 1 worker vs sequential", samples["overhead per task"],
                   unit="us"),
            Figure("backtest", "a task's own time on 1 worker / in this process", samples["in-task ratio 1 worker"],
                   unit="x"),
            Figure("backtest", f"per task ({BLOCKS_PER_SEGMENT * TXS_PER_BLOCK:,} pending txs), sequential",
                   samples["per task"], unit="us"),
        ]

    return [("backtest: segment set sequential vs 1 and 2 Dask workers", scaling)]

"""The ``mempool`` group: the pending-transaction data path.

* a V2 Router02 swap against a 1,000-pool table: filter -> decode -> analyze, timed per
  transaction in a nogil loop (what a worker does), p50 and p99, beside a peer written
  the way a Python searcher writes it (eth-abi decode, Python-int math, the same cycles,
  the same bounds), timed per transaction in the same repetitions;
* an irrelevant transaction: the filter's target check in C (ns/tx), and
  ``Pipeline.feed`` of one from Python (ns/call) beside the peer's first check;
* replay at full speed through 2 workers: transactions per second from a recording on
  disk read natively (``Pipeline.replay_file``), read in Python (``ReplaySource``), and
  from records already in memory.

The machine is shared and noisy: each figure is the median of the repetitions.
"""
from __future__ import annotations

import math
import os
import random
import tempfile
import time
from typing import Callable

import numpy as np

from tallyio.bench._figures import Figure, Target, alternate, figures_for
from tallyio.bench._progress import Progress

GROUP = "mempool"
Section = tuple[str, Callable[[Progress], list[Figure]]]
SWAP_SELECTOR = bytes.fromhex("38ed1739")


class PythonSearcher:
    """The peer: what a Python searcher writes today.  Filter with dicts and sets,
    decode with eth-abi, apply the swap with Python ints, screen the same cycles in
    float, size the best 2 with the closed form (math.isqrt) and its +-2 neighbours in
    Python ints."""

    def __init__(self, table, routers: dict, max_sized: int = 2):
        from eth_abi import decode

        self._decode = decode
        self.routers = routers
        self.recent: set = set()
        self.max_sized = max_sized
        pools = table.pools()
        self.reserves = {p.address: [p.reserve0, p.reserve1] for p in pools}
        self.token0 = {p.address: p.token0 for p in pools}
        self.fee = {p.address: p.fee_bps for p in pools}
        self.pair = {}
        for p in pools:
            self.pair.setdefault((p.exchange, frozenset((p.token0, p.token1))), p.address)
        self.cycles = {p.address: [[(h[0], h[1]) for h in c] for c in table.cycles_through(p.address)]
                       for p in pools}

    def _out(self, amount, rin, rout, fee):
        keep = 10000 - fee
        return amount * keep * rout // (rin * 10000 + amount * keep)

    def _hop(self, res, pool, token_in):
        r = res.get(pool) or self.reserves[pool]
        return (r[0], r[1]) if token_in == self.token0[pool] else (r[1], r[0])

    def process(self, tx):
        exchange = self.routers.get(tx.to)
        if exchange is None:
            return None
        if tx.hash in self.recent:
            return None
        self.recent.add(tx.hash)
        if tx.input[:4] != SWAP_SELECTOR:
            return None
        amount_in, _min_out, path, _to, _deadline = self._decode(
            ["uint256", "uint256", "address[]", "address", "uint256"], tx.input[4:])
        path = [bytes.fromhex(a[2:]) for a in path]
        res = {}
        amount = amount_in
        for a, b in zip(path, path[1:]):
            pool = self.pair.get((exchange, frozenset((a, b))))
            if pool is None:
                return None
            rin, rout = self._hop(res, pool, a)
            out = self._out(amount, rin, rout, self.fee[pool])
            r = list(self.reserves[pool]) if pool not in res else res[pool]
            if a == self.token0[pool]:
                r[0], r[1] = rin + amount, rout - out
            else:
                r[1], r[0] = rin + amount, rout - out
            res[pool] = r
            amount = out
        candidates = []
        for pool in res:
            for hops in self.cycles[pool]:
                ei = eo = 0.0
                g0 = 1.0
                for k, (p, tin) in enumerate(hops):
                    rin, rout = self._hop(res, p, tin)
                    g = (10000 - self.fee[p]) / 10000
                    if k == 0:
                        ei, eo, g0 = float(rin), float(rout), g
                    else:
                        d = rin + g * eo
                        ei, eo = ei * rin / d, g * eo * rout / d
                if g0 * eo <= ei:
                    continue
                x = (math.sqrt(g0 * ei * eo) - ei) / g0
                profit = g0 * x * eo / (ei + g0 * x) - x
                if profit > 0:
                    candidates.append((profit, hops))
        candidates.sort(key=lambda c: -c[0])
        found = []
        for _, hops in candidates[:self.max_sized]:
            # closed form on Python ints: the virtual pool, then isqrt
            for k, (p, tin) in enumerate(hops):
                rin, rout = self._hop(res, p, tin)
                keep = 10000 - self.fee[p]
                if k == 0:
                    ei, eo, keep0 = rin * 10000, rout * keep, keep
                else:
                    d = rin * 10000 + eo
                    ei, eo = ei * rin * 10000 // d, eo * rout * keep // d
            x0 = (math.isqrt(ei * eo) - ei) // keep0 if ei * eo > ei * ei else 0
            best = None
            for x in range(max(1, x0 - 2), x0 + 3):
                amount = x
                for p, tin in hops:
                    rin, rout = self._hop(res, p, tin)
                    amount = self._out(amount, rin, rout, self.fee[p])
                if best is None or amount - x > best[1]:
                    best = (x, amount - x)
            if best and best[1] > 0:
                found.append(best)
        return found


def _market(n_pools: int, seed: int = 12):
    from tallyio.mempool._pools import PoolTable
    from tallyio.mempool.synthetic import WETH, make_market

    rng = random.Random(seed)
    pools = make_market(rng, n_tokens=120, extra_pools=n_pools - 2 * 119)
    return rng, pools, PoolTable(pools, weth=WETH)


def _percentile(values, q):
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def sections(mode: str) -> list[Section]:
    """The mempool group's sections for ``mode`` (smoke, quick, full)."""
    reps = {"smoke": 2, "quick": 3, "full": 5}[mode]
    n_tx = {"smoke": 300, "quick": 3000, "full": 10000}[mode]
    n_replay = {"smoke": 2000, "quick": 50000, "full": 200000}[mode]

    def swap_path(progress: Progress) -> list[Figure]:
        from tallyio.mempool._pipeline import bench_tx_path
        from tallyio.mempool.synthetic import ROUTERS, swap_tx

        rng, pools, table = _market(1000)
        txs = [swap_tx(rng, pools, ROUTERS[k % 2], k) for k in range(n_tx)]
        routers = [(ROUTERS[0], 0), (ROUTERS[1], 1)]
        out = np.zeros(n_tx, dtype=np.uint64)

        def mine():
            bench_tx_path(table, txs, routers, out)
            return {"p50": _percentile(out, 50), "p99": _percentile(out, 99)}

        def peer():
            searcher = PythonSearcher(table, dict(routers))
            times = []
            clock = time.perf_counter_ns
            for tx in txs:
                t0 = clock()
                searcher.process(tx)
                times.append(clock() - t0)
            return {"p50": _percentile(times, 50), "p99": _percentile(times, 99)}

        samples = alternate([("tallyio", mine), ("Python searcher (eth-abi, ints)", peer)], reps, progress)
        peer_name = "Python searcher (eth-abi, ints)"
        return figures_for(f"{GROUP}: V2 swap, filter+decode+analyze, 1,000 pools", samples,
                           [("p50", "p50 per transaction"), ("p99", "p99 per transaction")],
                           unit="ns/tx", higher_is_better=False,
                           targets={"p50": [Target(5000), Target(10, peer_name)],
                                    "p99": [Target(20000), Target(10, peer_name)]})

    def irrelevant(progress: Progress) -> list[Figure]:
        from tallyio.mempool._pipeline import Pipeline, bench_filter_reject
        from tallyio.mempool.synthetic import ROUTERS, irrelevant_tx

        rng, pools, table = _market(1000)
        txs = [irrelevant_tx(rng, k) for k in range(4096)]
        routers = [(ROUTERS[0], 0), (ROUTERS[1], 1)]
        with Pipeline(table, routers_v2=routers) as pipe:
            def c_level():
                ns, passed = bench_filter_reject(pipe, txs, 50 if mode != "smoke" else 2)
                assert passed == 0
                return {"c": ns}

            def py_feed():
                feed = pipe.feed
                t0 = time.perf_counter_ns()
                for tx in txs:
                    feed(tx)
                return {"py": (time.perf_counter_ns() - t0) / len(txs)}

            def peer():
                searcher = PythonSearcher(table, dict(routers))
                process = searcher.process
                t0 = time.perf_counter_ns()
                for tx in txs:
                    process(tx)
                return {"py": (time.perf_counter_ns() - t0) / len(txs)}

            samples = alternate([("tallyio", lambda: {**c_level(), **py_feed()}),
                                 ("Python searcher (dict lookup)", peer)], reps, progress)
        return figures_for(f"{GROUP}: irrelevant transaction", samples,
                           [("c", "filter in C, nogil loop"), ("py", "Pipeline.feed from Python")],
                           unit="ns/tx", higher_is_better=False, targets={"c": [Target(300)]})

    def replay(progress: Progress) -> list[Figure]:
        from tallyio.mempool._pipeline import Pipeline
        from tallyio.mempool.config import FilterConfig
        from tallyio.mempool.recording import Recorder, ReplaySource
        from tallyio.mempool.synthetic import ROUTERS, block_header, irrelevant_tx, swap_tx

        rng, pools, table = _market(1000)
        items = []
        for k in range(n_replay):
            if k % 1000 == 0:
                items.append(block_header(1 + k // 1000))
            items.append(swap_tx(rng, pools, ROUTERS[k % 2], k) if rng.random() < 0.5
                         else irrelevant_tx(rng, k))
        routers = [(ROUTERS[0], 0), (ROUTERS[1], 1)]
        folder = tempfile.mkdtemp(prefix="tallyio-bench-")
        path = os.path.join(folder, "replay.tio")
        with Recorder(path) as rec:
            rec.snapshot(table, ts=0)
            for item in items:
                rec.write(item)
        n_txs = sum(1 for i in items if not hasattr(i, "base_fee_per_gas"))

        def run(how):
            import resource

            from tallyio.mempool._pools import PoolTable
            fresh = PoolTable(pools, weth=table.weth)
            with Pipeline(fresh, routers_v2=routers, filter_config=FilterConfig(check_nonces=False),
                          workers=2) as pipe:
                r0 = resource.getrusage(resource.RUSAGE_SELF)
                t0 = time.perf_counter()
                if how == "native":
                    pipe.replay_file(path)
                else:
                    pipe.run(ReplaySource(path) if how == "python" else items)
                elapsed = time.perf_counter() - t0
                r1 = resource.getrusage(resource.RUSAGE_SELF)
            # the process's CPU time (feeder + workers): what the replay costs, whatever share
            # of the cores a loaded machine gave it
            cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
            return n_txs / elapsed, n_txs / max(cpu, 1e-9)

        def once():
            native, native_cpu = run("native")
            return {"native": native, "native_cpu": native_cpu, "python": run("python")[0],
                    "memory": run("memory")[0]}

        try:
            samples = alternate([("tallyio", once)], reps, progress)
        finally:
            for name in os.listdir(folder):
                os.unlink(os.path.join(folder, name))
            os.rmdir(folder)
        return figures_for(f"{GROUP}: replay at full speed, 2 workers ({n_replay:,} tx, half swaps)",
                           samples, [("native", "recording, Pipeline.replay_file (native ReplayFeeder)"),
                                     ("native_cpu", "same, per CPU-second of the process (feeder + workers)"),
                                     ("python", "recording, run(ReplaySource) (Python reader)"),
                                     ("memory", "records in memory, run(list)")],
                           unit="tx/s", higher_is_better=True,
                           targets={"native": [Target(200_000)]})

    return [("V2 swap path", swap_path), ("irrelevant transaction", irrelevant),
            ("replay throughput", replay)]

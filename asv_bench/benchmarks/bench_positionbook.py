"""PositionBook benchmarks (issue 15): from a pending oracle update (a
``setAssetPrice`` PendingTx) to its LIQUIDATION opportunities returned by
``PositionBook.on_pending``, over N tracked accounts x 8 assets; and one
position event (a decoded aToken Mint) applied.

Run as a script for the latency distribution the issue asks for (p50/p99 over
several updates; the machine may be shared: say so with the figures)::

    python asv_bench/benchmarks/bench_positionbook.py [accounts] [updates] [--gc-freeze]
"""
import gc
import random
import sys
import time

from tallyio.amm.aave import RAY
from tallyio.bench._liquidation import N_ASSETS as ASSETS
from tallyio.bench._liquidation import build_book
from tallyio.bench._liquidation import pending_price_update as pending_update
from tallyio.eth.types import AaveTokenEvent


class PendingOracleUpdate:
    params = [10_000]
    param_names = ["accounts"]
    timeout = 600

    def setup(self, accounts):
        self.book, self.prices = build_book(accounts)

    def time_pending_update_to_opportunities(self, accounts):
        self.book.on_pending(pending_update(1, self.prices[1] * 9 // 10, 1), 0, 2, 10**9)

    def time_apply_one_token_event(self, accounts):
        self.book.apply(AaveTokenEvent(bytes([0x40]) * 20, "mint", (7).to_bytes(20, "big"), b"\x02" * 20,
                                       10**18, 0, RAY))


def main(accounts=100_000, updates=9, freeze=False):
    t0 = time.perf_counter()
    book, prices = build_book(accounts)
    print(f"built {accounts:,} accounts x {ASSETS} assets in {time.perf_counter() - t0:.1f} s")
    if freeze:
        # the book's per-account Python lists (400k objects at 100k accounts) make every full
        # collection of the cyclic GC cost hundreds of ms: freezing them after the build takes
        # them out of it (what a long-running engine would do after its resync)
        gc.collect()
        gc.freeze()
        print("gc.freeze() after the build")
    rng = random.Random(1)
    latencies, found = [], []
    for n in range(updates):
        asset = rng.randrange(ASSETS)
        tx = pending_update(asset, prices[asset] * rng.randrange(85, 99) // 100, n)
        ops = book.on_pending(tx._replace(received_ns=time.monotonic_ns()), 0, 2, 10**9)
        latencies.append((time.monotonic_ns() - tx.received_ns) / 1e6)
        found.append(len(ops))
    latencies.sort()
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
    print(f"pending oracle update -> opportunities: p50 {p50:.1f} ms, p99 {p99:.1f} ms over {updates} updates "
          f"({min(found)}..{max(found)} opportunities each)")
    event = AaveTokenEvent(bytes([0x40]) * 20, "mint", (7).to_bytes(20, "big"), b"\x02" * 20, 10**18, 0, RAY)
    reps = 20_000
    t0 = time.perf_counter_ns()
    for _ in range(reps):
        book.apply(event)
    print(f"one token event applied: {(time.perf_counter_ns() - t0) / reps / 1000:.2f} us")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--gc-freeze"]
    main(*(int(a) for a in args[:2]), freeze="--gc-freeze" in sys.argv)

"""From a pending oracle update arriving to its liquidation opportunities returned by
the consumer (issue 15): a ``LendingFeed`` tracking N accounts (two reserves: each
account 1 unit of A as collateral, a D debt spread so that a price drop of A puts
about ``--under`` of them under water), ``on_pending`` of a ``setAssetPrice`` ->
``OpportunityQueue.push`` -> ``OpportunityBridge.get_sync`` on another thread.
Prints p50/p99 (ms) over ``--runs`` updates of the time to the first and to the last
opportunity taken. Ad hoc (not a ``tallyio bench`` group: helper hf15 owns that).

    python scripts/bench_liquidation_handoff.py --accounts 100000 --runs 15
"""
from __future__ import annotations

import argparse
import random
import statistics
import threading
import time

from tallyio.amm.aave import ReserveConfig
from tallyio.engine.engine import OpportunityBridge
from tallyio.eth.aave import SET_ASSET_PRICE_SELECTOR
from tallyio.eth.types import BlockHeader, PendingTx
from tallyio.mempool._opportunity import OpportunityQueue
from tallyio.mempool.lending import LendingReserve
from tallyio.mempool.lending_feed import LendingFeed

A, D = b"\x0a" * 20, b"\x0d" * 20
POOL, ORACLE = b"\x99" * 20, b"\x0c" * 20


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--under", type=float, default=0.01, help="fraction the drop puts under water")
    args = parser.parse_args()
    reserves = [LendingReserve(ReserveConfig(A, 18, 8000, 8500, 10500, 1000), b"\x1a" * 20, b"\x2a" * 20),
                LendingReserve(ReserveConfig(D, 6, 8000, 8500, 10500, 1000), b"\x1d" * 20, b"\x2d" * 20)]
    queue = OpportunityQueue(capacity=1 << 17)
    bridge = OpportunityBridge(queue)
    feed = LendingFeed(POOL, ORACLE, None, queue.push, reserves=reserves, eth_asset=A)
    book = feed.book
    book.set_price(0, 2_000 * 10**8)
    book.set_price(1, 10**8)
    rng = random.Random(15)
    drop = 1_900 * 10**8            # -5 %: HF x 0.95
    for i in range(args.accounts):
        user = i.to_bytes(20, "big")
        # HF at 2000 in (1.0, 1.0 / 0.95 * (1 + margin)): `under` of them below 1 after the drop
        hf = 1.0 / 0.95 * (1 - args.under * 0.05) + rng.random() * 0.05 / 0.95
        debt = int(2_000 * 0.85 / hf * 10**6)
        book.set_position(user, 0, scaled_collateral=10**18, scaled_debt=0, use_as_collateral=True)
        book.set_position(user, 1, scaled_collateral=0, scaled_debt=debt, use_as_collateral=False)
    feed.on_head(BlockHeader(100, b"\x00" * 32, b"\x00" * 32, 10_000, 10**9, 30_000_000, 0, 0))
    data = SET_ASSET_PRICE_SELECTOR + bytes(12) + A + drop.to_bytes(32, "big")
    first_ms, last_ms, counts = [], [], []
    for run in range(args.runs):
        expected = []
        stamps = []

        def consume(stamps: list = stamps, expected: list = expected) -> None:
            while True:
                op = bridge.get_sync(10.0)
                if op is None:
                    return
                stamps.append(time.perf_counter_ns())
                if len(stamps) == expected[0]:
                    return

        tx = PendingTx(run.to_bytes(32, "big"), b"\x44" * 20, ORACLE, run, 0, 80_000, 2 * 10**9, 10**9, data, 2, 0)
        # how many the update makes (measured once outside the clock), then the timed run
        if run == 0:
            probe = LendingFeed(POOL, ORACLE, None, lambda op: True, reserves=reserves, eth_asset=A)
            probe.book, probe.head = book, feed.head
            counts.append(probe.on_pending(tx))
        expected.append(counts[0])
        consumer = threading.Thread(target=consume)
        consumer.start()
        time.sleep(0.05)            # the consumer is asleep on the queue's wake-up
        start = time.perf_counter_ns()
        pushed = feed.on_pending(tx)
        consumer.join()
        assert pushed == counts[0] == len(stamps), (pushed, counts, len(stamps))
        first_ms.append((stamps[0] - start) / 1e6)
        last_ms.append((stamps[-1] - start) / 1e6)

    def pct(values: list, p: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]

    print(f"{args.accounts} accounts, {counts[0]} opportunities per update, {args.runs} runs")
    for name, values in (("first", first_ms), ("last", last_ms)):
        print(f"  update -> {name} opportunity taken: p50 {pct(values, 50):.2f} ms  p99 {pct(values, 99):.2f} ms  "
              f"median {statistics.median(values):.2f} ms")


if __name__ == "__main__":
    main()

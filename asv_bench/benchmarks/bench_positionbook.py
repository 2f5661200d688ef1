"""PositionBook benchmarks (issue 15): from a pending oracle update (a
``setAssetPrice`` PendingTx) to its LIQUIDATION opportunities returned by
``PositionBook.on_pending``, over N tracked accounts x 8 assets; and one
position event (a decoded aToken Mint) applied.

Run as a script for the latency distribution the issue asks for (p50/p99 over
several updates; the machine may be shared: say so with the figures)::

    python asv_bench/benchmarks/bench_positionbook.py [accounts] [updates]
"""
import random
import sys
import time

from tallyio.amm.aave import RAY, ReserveConfig
from tallyio.eth.aave import SET_ASSET_PRICE_SELECTOR
from tallyio.eth.types import AaveTokenEvent, PendingTx
from tallyio.mempool.lending import LendingReserve, PositionBook

ASSETS = 8
POOL, ORACLE = b"\x99" * 20, b"\x0c" * 20


def build_book(accounts, seed=15):
    """``accounts`` accounts with 1-2 collateral and 1-2 debt assets each, health
    factors spread over [0.98, 2.0) at the starting prices."""
    rng = random.Random(seed)
    decimals = [18, 6, 8, 18, 6, 18, 8, 18][:ASSETS]
    prices = [rng.randrange(10**8, 3 * 10**12) for _ in range(ASSETS)]
    reserves = [LendingReserve(ReserveConfig(bytes([i + 1]) * 20, decimals[i], 7000, 8000, 10500, 1000),
                               bytes([0x40 + i]) * 20, bytes([0x80 + i]) * 20) for i in range(ASSETS)]
    book = PositionBook(POOL, reserves, eth_asset=0, oracle=ORACLE)
    for i, p in enumerate(prices):
        book.set_price(i, p)
    for n in range(accounts):
        user = n.to_bytes(20, "big")
        assets = rng.sample(range(ASSETS), 3)
        collateral_value = rng.randrange(1_000, 100_000) * 10**8
        c = assets[0]
        book.set_position(user, c, scaled_collateral=collateral_value * 10**decimals[c] // prices[c], scaled_debt=0,
                          use_as_collateral=True)
        debt_value = collateral_value * 8000 // 10_000 * 10_000 // rng.randrange(9_800, 20_000)
        for k, d in enumerate(assets[1:1 + rng.choice((1, 2))]):
            share = debt_value // 2 if k == 0 else debt_value - debt_value // 2
            book.set_position(user, d, scaled_collateral=0, scaled_debt=share * 10**decimals[d] // prices[d],
                              use_as_collateral=False)
    return book, prices


def pending_update(asset, price, n):
    data = SET_ASSET_PRICE_SELECTOR + bytes(12) + bytes([asset + 1]) * 20 + price.to_bytes(32, "big")
    return PendingTx(n.to_bytes(32, "big"), b"\x01" * 20, ORACLE, n, 0, 60_000, 10**10, 10**9, data, 2,
                     time.monotonic_ns())


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


def main(accounts=100_000, updates=9):
    t0 = time.perf_counter()
    book, prices = build_book(accounts)
    print(f"built {accounts:,} accounts x {ASSETS} assets in {time.perf_counter() - t0:.1f} s")
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
    main(*(int(a) for a in sys.argv[1:3]))

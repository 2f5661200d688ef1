"""The ``liquidation`` group: Aave v3 health factors of many accounts at once
(``tallyio.amm.health.HealthMatrix``) beside the same computation in plain
Python over lists of accounts.

* one price update: ``set_price`` (refreshes every account holding the asset)
  and ``health_factors()`` for 100,000 accounts x 8 reserves; the peer keeps
  each account as lists (scaled balances, flags) and recomputes, in a Python
  loop, the health factor of every account holding the asset: the same rows,
  the same float formula;
* one position event: ``apply_delta`` from Python, and ``health_apply_delta``
  from C without the GIL; the peer updates its lists and recomputes the row;
* ``liquidatable()``: the float screen plus the exact confirmation of every
  candidate (reported, no peer);
* exact liquidation sizing of under-water accounts (exact health factor and
  every collateral x debt pair to the pool's fixed point):
  ``LiquidationSizer.size_accounts`` in C beside the reference on Python ints
  (``aave.py``: Holding records, user_account_data, liquidation_amounts);
* a pending oracle update to its LIQUIDATION opportunities
  (``PositionBook.on_pending``) over 100,000 tracked accounts x 8 assets: p50
  and p99 over the updates of each repetition, beside the per-account path it
  replaced (``best_liquidation`` per screened account: one C call each, the
  best pair picked in Python) on the same updates.

Accounts hold each reserve with probability 1/2 (collateral enabled 80% of the
time, debt 40%), seeded, so about half of them hold any one asset.
"""
from __future__ import annotations

import random
from time import perf_counter_ns
from typing import Callable

from tallyio.bench._figures import Figure, Target, alternate, figures_for
from tallyio.bench._progress import Progress

Section = tuple[str, Callable[[Progress], list[Figure]]]

PYTHON_LOOP = "plain Python loop over lists of accounts"
N_ASSETS = 8


def _reserves():
    from tallyio.amm.aave import ReserveConfig
    decimals = [18, 8, 6, 18, 6, 18, 18, 8]
    return [ReserveConfig(bytes([i + 1]) * 20, d, 7000, 7500 + 100 * i, 10500, 1000) for i, d in enumerate(decimals)]


BASE_PRICES = [2000 * 10**8, 30_000 * 10**8, 10**8, 12 * 10**8, 10**8, 7 * 10**8, 90 * 10**8, 5 * 10**8]


class _PythonBook:
    """The peer: every account as Python lists, health factors recomputed in a
    Python loop with the same float formula as the native rows."""

    def __init__(self, reserves, accounts: list[list[tuple[int, int, bool]]]):
        self.collateral = [[float(c) for c, _, _ in row] for row in accounts]
        self.debt = [[float(d) for _, d, _ in row] for row in accounts]
        self.enabled = [[e for _, _, e in row] for row in accounts]
        self.units = [r.unit for r in reserves]
        self.threshold = [r.liquidation_threshold / 10_000 for r in reserves]
        self.collateral_value = [0.0] * len(reserves)
        self.debt_value = [0.0] * len(reserves)
        self.health = [float("inf")] * len(accounts)

    def set_price(self, asset: int, price: int) -> None:
        self.collateral_value[asset] = price / self.units[asset]   # indexes at 1 ray
        self.debt_value[asset] = price / self.units[asset]
        for slot in range(len(self.health)):
            if self.collateral[slot][asset] or self.debt[slot][asset]:
                self.refresh(slot)

    def refresh(self, slot: int) -> None:
        numerator = denominator = 0.0
        collateral, debt, enabled = self.collateral[slot], self.debt[slot], self.enabled[slot]
        for a in range(len(collateral)):
            c = collateral[a]
            if c and enabled[a] and self.threshold[a]:
                numerator += c * self.collateral_value[a] * self.threshold[a]
            d = debt[a]
            if d:
                denominator += d * self.debt_value[a]
        self.health[slot] = numerator / denominator if denominator else float("inf")

    def apply_delta(self, slot: int, asset: int, d_collateral: int, d_debt: int) -> None:
        self.collateral[slot][asset] += d_collateral
        self.debt[slot][asset] += d_debt
        self.refresh(slot)


def _accounts(n: int, reserves, seed: int = 15) -> list[list[tuple[int, int, bool]]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        row = []
        for r in reserves:
            if rng.random() < 0.5:
                row.append((rng.randrange(1, 10**5 * r.unit), rng.randrange(0, 10**4 * r.unit)
                            if rng.random() < 0.4 else 0, rng.random() < 0.8))
            else:
                row.append((0, 0, False))
        out.append(row)
    return out


def build(n_accounts: int):
    """``(matrix, peer)``: the same ``n_accounts`` seeded accounts in a
    HealthMatrix and in the Python peer, every price set."""
    from tallyio.amm.health import HealthMatrix
    reserves = _reserves()
    accounts = _accounts(n_accounts, reserves)
    matrix = HealthMatrix(reserves, capacity=n_accounts)
    for i, row in enumerate(accounts):
        slot = matrix.add_account(i.to_bytes(20, "big"))
        for a, (c, d, e) in enumerate(row):
            if c or d:
                matrix.set_position(slot, a, c, d, e)
    peer = _PythonBook(reserves, accounts)
    for a, price in enumerate(BASE_PRICES):
        matrix.set_price(a, price)
        peer.set_price(a, price)
    return matrix, peer


def sections(mode: str) -> list[Section]:
    """The liquidation group's sections for ``mode`` (smoke, quick, full), in order."""
    reps = {"smoke": 2, "quick": 5, "full": 9}[mode]
    n_accounts = {"smoke": 2000, "quick": 100_000, "full": 100_000}[mode]
    events = {"smoke": 2000, "quick": 200_000, "full": 1_000_000}[mode]
    state: dict = {}
    label = f"health factors of {n_accounts:,} accounts x {N_ASSETS} assets after one price update"

    def setup() -> tuple:
        if "built" not in state:
            state["built"] = build(n_accounts)
        return state["built"]

    def price_update(progress: Progress) -> list[Figure]:
        matrix, peer = setup()
        step = [0]

        def new_price() -> tuple[int, int]:
            step[0] += 1
            asset = step[0] % N_ASSETS
            return asset, BASE_PRICES[asset] * (90 + step[0] % 20) // 100

        def native() -> dict[str, float]:
            asset, price = new_price()
            start = perf_counter_ns()
            matrix.set_price(asset, price)
            health = matrix.health_factors()
            elapsed = perf_counter_ns() - start
            if len(health) != n_accounts:
                raise RuntimeError(f"health_factors() returned {len(health)} values, expected {n_accounts}")
            return {"price": elapsed / 1e6}

        def python() -> dict[str, float]:
            asset, price = new_price()
            start = perf_counter_ns()
            peer.set_price(asset, price)
            health = list(peer.health)
            elapsed = perf_counter_ns() - start
            if len(health) != n_accounts:
                raise RuntimeError("the Python peer lost accounts")
            return {"price": elapsed / 1e6}

        samples = alternate([("tallyio", native), (PYTHON_LOOP, python)], reps, progress)
        return figures_for("liquidation: health factors", samples, [("price", label)], unit="ms",
                           higher_is_better=False,
                           targets={"price": [Target(5.0), Target(50.0, peer=PYTHON_LOOP)]})

    def position_event(progress: Progress) -> list[Figure]:
        from tallyio.amm._health import _bench_apply_delta_c
        matrix, peer = setup()
        calls = max(2000, events // 10)
        slots = list(range(min(n_accounts, 4096)))

        def python_call() -> dict[str, float]:
            apply = matrix.apply_delta
            start = perf_counter_ns()
            for i in range(calls):
                slot = slots[i % len(slots)]
                apply(slot, 2, 1, 1)
            for i in range(calls):
                slot = slots[i % len(slots)]
                apply(slot, 2, -1, -1)
            return {"event": (perf_counter_ns() - start) / (2 * calls)}

        def peer_call() -> dict[str, float]:
            apply = peer.apply_delta
            start = perf_counter_ns()
            for i in range(calls):
                apply(slots[i % len(slots)], 2, 1, 1)
            for i in range(calls):
                apply(slots[i % len(slots)], 2, -1, -1)
            return {"event": (perf_counter_ns() - start) / (2 * calls)}

        def c_level() -> dict[str, float]:
            ns, applied = _bench_apply_delta_c(matrix, 2 * n_accounts * max(1, events // (2 * n_accounts)), 2)
            if applied == 0:
                raise RuntimeError("health_apply_delta applied no event")
            return {"c": ns}

        samples = alternate([("tallyio", python_call), (PYTHON_LOOP, peer_call)], reps, progress)
        figures = figures_for("liquidation: one position event", samples,
                              [("event", "apply_delta from Python (one Supply/Borrow/... event)")],
                              unit="ns/op", higher_is_better=False, targets={"event": [Target(2000.0)]})
        c_samples = alternate([("tallyio", c_level)], reps, progress)
        figures += figures_for("liquidation: one position event", c_samples,
                               [("c", "health_apply_delta from C, no GIL")], unit="ns/op", higher_is_better=False,
                               targets={"c": [Target(2000.0)]})
        return figures

    def liquidatable(progress: Progress) -> list[Figure]:
        matrix, _ = setup()

        def measure() -> dict[str, float]:
            start = perf_counter_ns()
            found = matrix.liquidatable()
            elapsed = perf_counter_ns() - start
            state["liquidatable"] = len(found)
            return {"exact": elapsed / 1e6}

        samples = alternate([("tallyio", measure)], reps, progress)
        return figures_for("liquidation: exact set", samples,
                           [("exact", f"liquidatable() over {n_accounts:,} accounts (screen + exact confirmation)")],
                           unit="ms", higher_is_better=False)

    def sizing(progress: Progress) -> list[Figure]:
        from tallyio.amm._aave import LiquidationSizer
        from tallyio.amm.aave import RAY
        reserves = _reserves()
        count = {"smoke": 200, "quick": 2000, "full": 5000}[mode]
        accounts = _underwater_accounts(count, reserves)
        prices = list(BASE_PRICES)
        sizer = LiquidationSizer(reserves)
        ones = [RAY] * N_ASSETS

        def native() -> dict[str, float]:
            start = perf_counter_ns()
            sized = sizer.size_accounts(prices, ones, ones, accounts)
            elapsed = perf_counter_ns() - start
            state["sized pairs"] = sum(len(r[1]) for r in sized if r is not None)
            return {"sizing": elapsed / count}

        def python() -> dict[str, float]:
            start = perf_counter_ns()
            pairs = sum(len(_size_in_python(reserves, prices, account)[1]) for account in accounts)
            elapsed = perf_counter_ns() - start
            if pairs != state.get("sized pairs", pairs):
                raise RuntimeError(f"the reference sized {pairs} pairs, the C {state['sized pairs']}")
            return {"sizing": elapsed / count}

        samples = alternate([("tallyio", native), (REFERENCE, python)], reps, progress)
        return figures_for("liquidation: exact sizing", samples,
                           [("sizing", f"exact HF + every pair sized, per under-water account ({count:,} accounts)")],
                           unit="ns/op", higher_is_better=False)

    def pending(progress: Progress) -> list[Figure]:
        import numpy as np
        book_accounts = {"smoke": 2000, "quick": 100_000, "full": 100_000}[mode]
        updates = {"smoke": 3, "quick": 9, "full": 15}[mode]
        if "book" not in state:
            state["book"] = build_book(book_accounts)
        book, prices = state["book"]

        def measure(per_account: bool = False) -> dict[str, float]:
            draw = random.Random(7)     # both contenders, every repetition: the same updates
            latencies, found = [], []
            for n in range(updates):
                asset = draw.randrange(N_ASSETS)
                tx = pending_price_update(asset, prices[asset] * draw.randrange(85, 99) // 100, n)
                start = perf_counter_ns()
                if per_account:
                    ops = _on_pending_per_account(book, tx, 0, 2, 10**9)
                else:
                    ops = book.on_pending(tx, 0, 2, 10**9)
                latencies.append((perf_counter_ns() - start) / 1e6)
                found.append(len(ops))
            state["opportunities"] = (min(found), max(found))
            return {"p50": float(np.percentile(latencies, 50)), "p99": float(np.percentile(latencies, 99))}

        samples = alternate([("tallyio", measure), (PER_ACCOUNT, lambda: measure(True))], reps, progress)
        label = f"pending oracle update -> opportunities, {book_accounts:,} accounts x {N_ASSETS} assets"
        return figures_for("liquidation: oracle update", samples, [("p50", f"{label}: p50"), ("p99", f"{label}: p99")],
                           unit="ms", higher_is_better=False)

    return [("health factors after a price update", price_update),
            ("one position event", position_event),
            ("liquidatable accounts, exact", liquidatable),
            ("exact liquidation sizing", sizing),
            ("pending oracle update to opportunities", pending)]


REFERENCE = "the reference on Python ints (aave.py)"
PER_ACCOUNT = "the per-account path (best_liquidation per user, before the batch)"


def _on_pending_per_account(book, tx, now_ts: int, block_number: int, base_fee: int) -> list:
    """``PositionBook.on_pending`` as it was before the batch: the screen, then
    ``best_liquidation`` (``LiquidationSizer.size_account``) for each account in turn."""
    from tallyio.eth.aave import decode_oracle_call
    prices = book.pending_prices(tx)
    if prices is None:
        return []
    asset = book.asset_index(decode_oracle_call(tx, book.oracle).asset)
    ops = []
    for user in book.liquidatable(now_ts, prices, among=book.holders(asset)):
        op = book.best_liquidation(user, now_ts, block_number, base_fee, prices=prices, trigger_tx=tx.hash,
                                   received_ns=tx.received_ns)
        if op is not None:
            ops.append(op)
    ops.sort(key=lambda o: -(o.profit_net_of_gas if o.profit_net_of_gas is not None else o.profit))
    return ops


def _underwater_accounts(count: int, reserves, seed: int = 15) -> list[tuple[list[int], list[int], list[bool]]]:
    """``count`` accounts (scaled balances at index 1 ray) with a health factor
    between 0.7 and 1 at BASE_PRICES: 1-2 collateral and 1-2 debt reserves each."""
    rng = random.Random(seed)
    out = []
    while len(out) < count:
        coll, debt, flags = [0] * N_ASSETS, [0] * N_ASSETS, [False] * N_ASSETS
        assets = rng.sample(range(N_ASSETS), 4)
        value = rng.randrange(1_000, 100_000) * 10**8
        held = assets[:rng.choice((1, 2))]
        for a in held:
            coll[a] = value // len(held) * reserves[a].unit // BASE_PRICES[a]
            flags[a] = True
        # debt worth the collateral's threshold-weighted value / HF, HF in [0.7, 1)
        weighted = sum(value // len(held) * reserves[a].liquidation_threshold // 10_000 for a in held)
        target = weighted * 100 // rng.randrange(70, 100)
        owed = assets[2:2 + rng.choice((1, 2))]
        for a in owed:
            debt[a] = target // len(owed) * reserves[a].unit // BASE_PRICES[a]
        out.append((coll, debt, flags))
    return out


def _size_in_python(reserves, prices, account) -> tuple:
    """The reference: Holding records, user_account_data and liquidation_amounts to
    the fixed point (what PositionBook did per account before the C sizer)."""
    from tallyio.amm.aave import WAD, Holding, liquidation_amounts, user_account_data
    coll, debt, flags = account
    holdings = [Holding(reserves[a], prices[a], coll[a], flags[a], debt[a])
                for a in range(len(reserves)) if coll[a] or debt[a]]
    hf = user_account_data(holdings).health_factor
    if hf >= WAD:
        return hf, []
    pairs = []
    for c in holdings:
        if not (c.use_as_collateral and c.collateral and c.reserve.liquidation_threshold):
            continue
        for d in holdings:
            if d.debt:
                amounts = liquidation_amounts(c, d, hf, 2**256 - 1)
                for _ in range(8):
                    if amounts.debt_to_cover == 0:
                        break
                    again = liquidation_amounts(c, d, hf, amounts.debt_to_cover)
                    if again == amounts:
                        break
                    amounts = again
                pairs.append(amounts)
    return hf, pairs


POOL, ORACLE = b"\x99" * 20, b"\x0c" * 20


def build_book(accounts: int, seed: int = 15):
    """``(book, prices)``: a PositionBook of ``accounts`` accounts x 8 reserves with
    1 collateral and 1-2 debt assets each, health factors spread over [0.98, 2.0)
    at the starting prices (asv_bench/benchmarks/bench_positionbook.py uses it)."""
    from tallyio.amm.aave import ReserveConfig
    from tallyio.mempool.lending import LendingReserve, PositionBook
    rng = random.Random(seed)
    decimals = [18, 6, 8, 18, 6, 18, 8, 18][:N_ASSETS]
    prices = [rng.randrange(10**8, 3 * 10**12) for _ in range(N_ASSETS)]
    reserves = [LendingReserve(ReserveConfig(bytes([i + 1]) * 20, decimals[i], 7000, 8000, 10500, 1000),
                               bytes([0x40 + i]) * 20, bytes([0x80 + i]) * 20) for i in range(N_ASSETS)]
    book = PositionBook(POOL, reserves, eth_asset=0, oracle=ORACLE)
    for i, p in enumerate(prices):
        book.set_price(i, p)
    for n in range(accounts):
        user = n.to_bytes(20, "big")
        assets = rng.sample(range(N_ASSETS), 3)
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


def pending_price_update(asset: int, price: int, n: int):
    """A pending ``setAssetPrice(asset, price)`` to ORACLE (the n-th one)."""
    import time

    from tallyio.eth.aave import SET_ASSET_PRICE_SELECTOR
    from tallyio.eth.types import PendingTx
    data = SET_ASSET_PRICE_SELECTOR + bytes(12) + bytes([asset + 1]) * 20 + price.to_bytes(32, "big")
    return PendingTx(n.to_bytes(32, "big"), b"\x01" * 20, ORACLE, n, 0, 60_000, 10**10, 10**9, data, 2,
                     time.monotonic_ns())

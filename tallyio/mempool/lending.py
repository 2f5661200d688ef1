"""``PositionBook``: every account's Aave v3 position, kept from the market's
logs (and a resync from chain calls), its health factors for all accounts at
once, and the LIQUIDATION opportunities they make -- including those a pending
oracle update will make one block early.

Owns: the exact scaled balances (aToken and variable debt, per account and
reserve) and collateral flags, each reserve's indexes/rates as of its last
update and its oracle price, and a ``tallyio.amm.health.HealthMatrix`` mirroring
them (the vectorized screen). Reads: the decoded records of
``tallyio.eth.aave``; for :meth:`PositionBook.resync`, a JSON-RPC node. Sizes with
``tallyio.amm.aave`` (exact integers: the float screen never decides).

Why scaled balances: Aave stores ``amount.rayDiv(index)`` per holder and derives
the balance as ``scaled.rayMul(normalized index at now)``; the Mint / Burn /
BalanceTransfer events carry the index, so replaying them gives the chain's
scaled balances to the unit, and the health factor at any timestamp follows.

    >>> from tallyio.amm.aave import ReserveConfig, RAY
    >>> A, D, POOL = b"\\x0a" * 20, b"\\x0d" * 20, b"\\x99" * 20
    >>> book = PositionBook(POOL, [LendingReserve(ReserveConfig(A, 18, 8000, 8500, 10500, 1000),
    ...                                           a_token=b"\\x1a" * 20, debt_token=b"\\x2a" * 20),
    ...                            LendingReserve(ReserveConfig(D, 6, 8000, 8500, 10500, 1000),
    ...                                           a_token=b"\\x1d" * 20, debt_token=b"\\x2d" * 20)])
    >>> book.set_price(0, 2000 * 10**8); book.set_price(1, 10**8)
    >>> U = b"\\x55" * 20
    >>> book.set_position(U, 0, scaled_collateral=10**18, scaled_debt=0, use_as_collateral=True)
    >>> book.set_position(U, 1, scaled_collateral=0, scaled_debt=1_800 * 10**6, use_as_collateral=False)
    >>> book.account_data(U, now_ts=0).health_factor / 1e18
    0.9444444444444444
    >>> [op] = book.opportunities(now_ts=0, block_number=5)
    >>> op.user == U, op.token_path == (D, A), op.amount_in, op.amount_out
    (True, True, 1800000000, 940500000000000000)
"""
from __future__ import annotations

import struct
import time
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Sequence

from tallyio.amm.aave import (WAD, AccountData, Holding, ReserveConfig, liquidation_amounts, normalized_debt,
                              normalized_income, ray_div, ray_mul, user_account_data)
from tallyio.amm._aave import LiquidationSizer
from tallyio.amm.health import HealthMatrix
from tallyio.eth.aave import decode_aave_log, decode_oracle_call
from tallyio.eth.types import (AaveCollateralToggle, AaveLiquidation, AavePriceUpdate, AaveReserveUpdate,
                               AaveTokenEvent, AaveUserAction, PendingTx)
from tallyio.mempool.records import Opportunity, OpportunityKind

__all__ = ["LendingReserve", "LendingSnapshot", "PositionBook", "scaled_deltas", "LIQUIDATION_GAS"]

RAY = 10**27
UINT256_MAX = 2**256 - 1
#: gas a liquidationCall with a token-out collateral takes on 1.19.3 (316k measured on anvil) plus margin
LIQUIDATION_GAS = 400_000


class LendingReserve(NamedTuple):
    """One reserve the book tracks: its risk parameters and its two tokens."""

    config: ReserveConfig
    a_token: bytes
    debt_token: bytes
    """the variable-debt token (stable-rate debt is not tracked: the deployments here keep it off)."""


class LendingSnapshot(NamedTuple):
    """A whole :class:`PositionBook` as bytes (:meth:`PositionBook.snapshot`): the
    reserves (risk parameters, tokens), their indexes, rates and prices, and every
    account's exact scaled balances and flags, as of ``block``. A recording holds
    one after each resync of the live market (``RecordType.LENDING_SNAPSHOT``): a
    replay starts its book from it (``PositionBook.from_snapshot``)."""

    payload: bytes
    received_ns: int = 0

    @property
    def block(self) -> int:
        """The block the snapshot's state is as of."""
        return _SNAP_HEAD.unpack_from(self.payload)[6]

    @property
    def pool(self) -> bytes:
        return _SNAP_HEAD.unpack_from(self.payload)[1]


# snapshot payload, little-endian (256-bit values as 32-byte big-endian words):
#   head: magic 8, pool 20, oracle 20, has_oracle u8, eth_asset i16 (-1: none), gas_estimate u64,
#         block u64, min_profit_base 32, n_reserves u16, n_accounts u32
#   per reserve: asset 20, decimals u8, ltv u16, threshold u16, bonus u16, protocol fee u16, a_token 20,
#                debt_token 20, liquidity_index 32, liquidity_rate 32, variable_index 32, variable_rate 32,
#                last_update u64, price 32
#   per account: user 20, then per reserve: scaled collateral 32, scaled debt 32, flags u8
#                (bit 0: used as collateral, bit 1: a holder of the reserve -- what a price of it can move)
_SNAP_MAGIC = b"TIOLEND1"
_SNAP_HEAD = struct.Struct("<8s20s20sBhQQ32sHI")
_SNAP_RESERVE = struct.Struct("<20sBHHHH20s20s32s32s32s32sQ32s")


class _ReserveState:
    __slots__ = ("liquidity_index", "liquidity_rate", "variable_index", "variable_rate", "last_update", "price")

    def __init__(self) -> None:
        self.liquidity_index = RAY
        self.liquidity_rate = 0
        self.variable_index = RAY
        self.variable_rate = 0
        self.last_update = 0
        self.price = 0


def scaled_deltas(event: AaveTokenEvent) -> tuple:
    """``(holder, scaled change)`` pairs an aToken/debt-token event made, exactly as
    ScaledBalanceTokenBase moved the scaled balances.

    A ``Mint`` whose value is at least its balance increase minted ``value -
    balance_increase`` (rayDiv by the index; a transfer's interest-only Mint has
    them equal: no change); one below it is the burn of ``balance_increase -
    value`` that accrued interest outweighed (``_burnScaled`` logs a Mint then);
    a ``Burn`` burned ``value + balance_increase``; a ``BalanceTransfer`` moves
    its (already scaled) value.

        >>> ev = AaveTokenEvent(b"t" * 20, "mint", b"u" * 20, b"u" * 20, 150, 50, 2 * RAY)
        >>> scaled_deltas(ev)
        ((b'uuuuuuuuuuuuuuuuuuuu', 50),)
        >>> scaled_deltas(ev._replace(value=10))[0][1]
        -20
    """
    if event.index <= 0:
        raise ValueError(f"a {event.kind} event carries index {event.index}; an index is > 0")
    if event.kind == "transfer":
        return () if event.user == event.other else ((event.user, -event.value), (event.other, event.value))
    if event.kind == "mint":
        if event.value >= event.balance_increase:
            return ((event.user, ray_div(event.value - event.balance_increase, event.index)),)
        return ((event.user, -ray_div(event.balance_increase - event.value, event.index)),)
    if event.kind == "burn":
        return ((event.user, -ray_div(event.value + event.balance_increase, event.index)),)
    raise ValueError(f"unknown token event kind {event.kind!r}")


class PositionBook:
    """Aave v3 positions of every account seen on the market at ``pool``.

    ``reserves`` fixes the asset order (the health matrix's columns).
    ``eth_asset`` (an index into ``reserves``, or None) names the reserve whose
    oracle price is ETH's, so gas can be valued in the debt token and profits in
    wei; ``gas_estimate`` is the gas one liquidation is assumed to take;
    ``min_profit_base`` the least net profit (base currency, the oracle's unit)
    an opportunity must show. ``oracle`` (20 bytes) restricts which pending
    ``setAssetPrice`` calls count.

    Feed it with :meth:`apply` (decoded records) or :meth:`apply_log` (raw
    JSON-RPC logs), :meth:`set_price` / :meth:`set_reserve_state` /
    :meth:`set_position` (a snapshot), or :meth:`resync` (from a node).
    """

    def __init__(self, pool: bytes, reserves: Sequence[LendingReserve], *, eth_asset: Optional[int] = None,
                 gas_estimate: int = LIQUIDATION_GAS, min_profit_base: int = 1, oracle: Optional[bytes] = None):
        if not (isinstance(pool, bytes) and len(pool) == 20):
            raise ValueError(f"pool must be a 20-byte address, got {pool!r}")
        if not reserves:
            raise ValueError("a PositionBook needs at least one reserve")
        for r in reserves:
            if not isinstance(r, LendingReserve):
                raise TypeError(f"reserves must be LendingReserve records, got {type(r).__name__}")
        if eth_asset is not None and not (isinstance(eth_asset, int) and 0 <= eth_asset < len(reserves)):
            raise ValueError(f"eth_asset must be an index into reserves (0..{len(reserves) - 1}) or None")
        if isinstance(gas_estimate, bool) or not isinstance(gas_estimate, int) or gas_estimate < 21_000:
            raise ValueError(f"gas_estimate must be an int >= 21000, got {gas_estimate!r}")
        self.pool = pool
        self.oracle = oracle
        self.reserves = tuple(reserves)
        self.eth_asset = eth_asset
        self.gas_estimate = gas_estimate
        self.min_profit_base = min_profit_base
        self._state = [_ReserveState() for _ in self.reserves]
        self._asset_index = {r.config.asset: i for i, r in enumerate(self.reserves)}
        # token -> (asset index, True for the aToken / False for the debt token)
        self._tokens: Dict[bytes, tuple] = {}
        for i, r in enumerate(self.reserves):
            self._tokens[r.a_token] = (i, True)
            self._tokens[r.debt_token] = (i, False)
        n = len(self.reserves)
        # user -> [scaled collateral per asset], [scaled debt per asset], [collateral flag per asset]
        self._accounts: Dict[bytes, tuple] = {}
        #: per asset, the accounts that ever held it (collateral or debt): a superset, checked exactly later;
        #: what a price change of that asset can move
        self._holders: List[set] = [set() for _ in range(n)]
        self._n = n
        self._norm_at: Optional[int] = None
        self._norm: List[Optional[tuple]] = [None] * n
        #: the screen: the same scaled balances, flags and prices, its indexes projected to _matrix_ts
        self.matrix = HealthMatrix([r.config for r in self.reserves])
        self._matrix_ts: Optional[int] = None
        self.counts: Dict[str, int] = dict(records=0, token_events=0, reserve_updates=0, prices=0, toggles=0,
                                           ignored=0, pending_prices=0)

    # ---- the state ----
    def __len__(self) -> int:
        return len(self._accounts)

    def users(self) -> List[bytes]:
        """Every account the book holds, in the order first seen."""
        return list(self._accounts)

    def _account(self, user: bytes) -> tuple:
        acc = self._accounts.get(user)
        if acc is None:
            acc = self._accounts[user] = ([0] * self._n, [0] * self._n, [False] * self._n)
            self.matrix.add_account(user)
        return acc

    def asset_index(self, asset: bytes) -> int:
        """The column of ``asset`` (its position in ``reserves``)."""
        try:
            return self._asset_index[bytes(asset)]
        except KeyError:
            raise KeyError(f"0x{bytes(asset).hex()} is not a reserve of this book") from None

    def set_price(self, asset_index: int, price: int) -> None:
        """The oracle price of reserve ``asset_index`` (base-currency units)."""
        if isinstance(price, bool) or not isinstance(price, int) or price < 0:
            raise ValueError(f"price must be an int >= 0, got {price!r}")
        self._state[asset_index].price = price
        self.matrix.set_price(asset_index, price)

    def price(self, asset_index: int) -> int:
        return self._state[asset_index].price

    def set_reserve_state(self, asset_index: int, liquidity_index: int, liquidity_rate: int,
                          variable_borrow_index: int, variable_borrow_rate: int, last_update_timestamp: int) -> None:
        """A reserve's indexes and rates (ray) as of ``last_update_timestamp``."""
        s = self._state[asset_index]
        if liquidity_index <= 0 or variable_borrow_index <= 0:
            raise ValueError("indexes are > 0 (ray)")
        s.liquidity_index, s.liquidity_rate = liquidity_index, liquidity_rate
        s.variable_index, s.variable_rate = variable_borrow_index, variable_borrow_rate
        s.last_update = last_update_timestamp
        self._norm_at = self._matrix_ts = None

    def set_position(self, user: bytes, asset_index: int, *, scaled_collateral: int, scaled_debt: int,
                     use_as_collateral: bool) -> None:
        """One account's exact scaled balances and collateral flag in one reserve."""
        if scaled_collateral < 0 or scaled_debt < 0:
            raise ValueError(f"scaled balances are >= 0, got {scaled_collateral} and {scaled_debt}")
        coll, debt, flags = self._account(bytes(user))
        coll[asset_index], debt[asset_index] = scaled_collateral, scaled_debt
        if scaled_collateral or scaled_debt:
            self._holders[asset_index].add(bytes(user))
        self.matrix.set_position(self.matrix.slot_of(bytes(user)), asset_index, scaled_collateral, scaled_debt,
                                 bool(use_as_collateral))
        flags[asset_index] = bool(use_as_collateral)

    def scaled(self, user: bytes, asset_index: int) -> tuple:
        """``(scaled collateral, scaled debt, use_as_collateral)`` of ``user`` in one reserve."""
        acc = self._accounts.get(bytes(user))
        if acc is None:
            return (0, 0, False)
        return acc[0][asset_index], acc[1][asset_index], acc[2][asset_index]

    # ---- records ----
    def apply(self, record: Any) -> bool:
        """Apply one decoded record; False when it is not for this market (or
        only informational: user actions and liquidations move balances through
        their token events). A removed (reorged) log raises: resync instead."""
        self.counts["records"] += 1
        if getattr(record, "removed", False):
            raise ValueError("a removed (reorged) log cannot be undone incrementally: resync the book")
        if isinstance(record, AaveTokenEvent):
            where = self._tokens.get(record.token)
            if where is None:
                return self._ignore()
            asset, is_collateral = where
            for user, delta in scaled_deltas(record):
                acc = self._account(user)
                column = acc[0] if is_collateral else acc[1]
                if column[asset] + delta < 0:
                    raise ValueError(f"{record.kind} of 0x{record.token.hex()} takes 0x{user.hex()}'s scaled balance "
                                     f"below 0 ({column[asset]} + {delta}): the book missed an earlier event")
                column[asset] += delta
                self._holders[asset].add(user)
                slot = self.matrix.slot_of(user)
                self.matrix.apply_delta(slot, asset, delta if is_collateral else 0, 0 if is_collateral else delta)
            self.counts["token_events"] += 1
            return True
        if isinstance(record, AaveReserveUpdate):
            asset = self._asset_index.get(record.reserve)
            if asset is None:
                return self._ignore()
            if not record.block_timestamp:
                raise ValueError("a ReserveDataUpdated record needs its block's timestamp (the indexes are as of it)")
            self.set_reserve_state(asset, record.liquidity_index, record.liquidity_rate, record.variable_borrow_index,
                                   record.variable_borrow_rate, record.block_timestamp)
            self.counts["reserve_updates"] += 1
            return True
        if isinstance(record, AaveCollateralToggle):
            asset = self._asset_index.get(record.reserve)
            if asset is None:
                return self._ignore()
            self._account(record.user)[2][asset] = record.enabled
            self.matrix.set_collateral_enabled(self.matrix.slot_of(record.user), asset, record.enabled)
            self.counts["toggles"] += 1
            return True
        if isinstance(record, AavePriceUpdate):
            asset = self._asset_index.get(record.asset)
            if asset is None or record.pending or (self.oracle is not None and record.oracle != self.oracle):
                return self._ignore()
            self.set_price(asset, record.price)
            self.counts["prices"] += 1
            return True
        if isinstance(record, (AaveUserAction, AaveLiquidation)):
            return False
        return self._ignore()

    def _ignore(self) -> bool:
        self.counts["ignored"] += 1
        return False

    def apply_log(self, log: dict, *, block_timestamp: int = 0) -> Optional[Any]:
        """Decode and apply one JSON-RPC log; returns the record (None for a log
        that is not an Aave event). ``block_timestamp`` fills in a log that does
        not carry its block's time."""
        record = decode_aave_log(log)
        if record is None:
            return None
        if block_timestamp and not record.block_timestamp:
            record = record._replace(block_timestamp=block_timestamp)
        self.apply(record)
        return record

    def apply_logs(self, logs: Iterable[dict], timestamps: Optional[Dict[int, int]] = None) -> int:
        """Apply logs in chain order (sorted by block and log index); ``timestamps``
        maps block number -> its time for logs that lack it. Returns how many
        were Aave records."""
        timestamps = timestamps or {}
        ordered = sorted(logs, key=lambda g: (int(g["blockNumber"], 16), int(g["logIndex"], 16)))
        applied = 0
        for log in ordered:
            applied += self.apply_log(log, block_timestamp=timestamps.get(int(log["blockNumber"], 16), 0)) is not None
        return applied

    def catch_up(self, rpc: Any, addresses: Sequence[str], from_block: int, to_block: Any = "latest",
                 *, chunk: int = 2_000) -> int:
        """Apply the logs of ``addresses`` (the pool, the oracle, the aTokens and
        debt tokens: ``AaveDeployment.log_addresses()``) from ``from_block`` to
        ``to_block`` with ``eth_getLogs``, ``chunk`` blocks per call; returns the
        next block to ask for. ``rpc``: anything with ``call(method, *params)``."""
        last = int(rpc.call("eth_blockNumber"), 16) if to_block == "latest" else int(to_block)
        start = int(from_block)
        while start <= last:
            end = min(last, start + chunk - 1)
            logs = rpc.call("eth_getLogs", {"fromBlock": hex(start), "toBlock": hex(end), "address": list(addresses)})
            missing = {int(g["blockNumber"], 16) for g in logs if not g.get("blockTimestamp")}
            times = {n: int(rpc.call("eth_getBlockByNumber", hex(n), False)["timestamp"], 16) for n in missing}
            self.apply_logs(logs, times)
            start = end + 1
        return start

    # ---- exact account data ----
    def normalized(self, asset_index: int, now_ts: int) -> tuple:
        """``(normalized income, normalized variable debt)`` of a reserve at ``now_ts`` (ray)."""
        if self._norm_at != now_ts:  # one projection per reserve and timestamp (set_reserve_state clears it)
            self._norm_at, self._norm = now_ts, [None] * self._n
        cached = self._norm[asset_index]
        if cached is not None:
            return cached
        s = self._state[asset_index]
        if now_ts <= s.last_update:  # an index is never projected backwards: same block or older
            cached = (s.liquidity_index, s.variable_index)
        else:
            cached = (normalized_income(s.liquidity_index, s.liquidity_rate, s.last_update, now_ts),
                      normalized_debt(s.variable_index, s.variable_rate, s.last_update, now_ts))
        self._norm[asset_index] = cached
        return cached

    def holdings(self, user: bytes, now_ts: int, prices: Optional[Sequence[int]] = None) -> List[Holding]:
        """``user``'s holdings (underlying units at ``now_ts``) for ``tallyio.amm.aave``."""
        coll, debt, flags = self._accounts.get(bytes(user)) or ([0] * self._n, [0] * self._n, [False] * self._n)
        out = []
        for i, r in enumerate(self.reserves):
            if not coll[i] and not debt[i]:
                continue
            income, debt_index = self.normalized(i, now_ts)
            price = self._state[i].price if prices is None else prices[i]
            out.append(Holding(r.config, price, ray_mul(coll[i], income), flags[i], ray_mul(debt[i], debt_index)))
        return out

    def account_data(self, user: bytes, now_ts: int, prices: Optional[Sequence[int]] = None) -> AccountData:
        """Exactly ``Pool.getUserAccountData(user)`` at a block with time ``now_ts``."""
        return user_account_data(self.holdings(user, now_ts, prices))

    def health_factors(self, now_ts: int) -> Dict[bytes, int]:
        """Every account's exact health factor (wad; 2**256-1 without debt) at ``now_ts``."""
        return {user: self.account_data(user, now_ts).health_factor for user in self._accounts}

    def holders(self, asset_index: int) -> frozenset:
        """The accounts that hold (or held) reserve ``asset_index`` as collateral or debt."""
        return frozenset(self._holders[asset_index])

    def liquidatable(self, now_ts: int, prices: Optional[Sequence[int]] = None, *,
                     among: Optional[Iterable[bytes]] = None) -> List[bytes]:
        """The accounts (of ``among``, default all) whose health factor is below 1 at ``now_ts``, in the
        order first seen: the health matrix screens every account in float64 and decides each candidate
        on the exact integer path (``tallyio.amm.health``). ``prices`` (one per reserve) are applied to
        the matrix for the screen and put back after it."""
        if self._matrix_ts != now_ts:
            for i in range(self._n):
                self.matrix.set_indexes(i, *self.normalized(i, now_ts))
            self._matrix_ts = now_ts
        moved = [] if prices is None else [i for i in range(self._n) if prices[i] != self._state[i].price]
        try:
            for i in moved:
                self.matrix.set_price(i, prices[i])
            slots = self.matrix.liquidatable().tolist()
        finally:
            for i in moved:
                self.matrix.set_price(i, self._state[i].price)
        users = [self.matrix.address_of(slot) for slot in slots]
        if among is not None:
            wanted = among if isinstance(among, (set, frozenset)) else set(among)
            users = [u for u in users if u in wanted]
        return users

    # ---- opportunities ----
    def opportunities(self, now_ts: int, block_number: int, base_fee_per_gas: int = 0, *,
                      prices: Optional[Sequence[int]] = None, trigger_tx: Optional[bytes] = None,
                      received_ns: int = 0, among: Optional[Iterable[bytes]] = None) -> List[Opportunity]:
        """One LIQUIDATION opportunity per liquidatable account at ``now_ts`` (the
        block it is for: ``block_number``), sized on its best collateral/debt
        pair, best net profit first; accounts whose best pair does not reach
        ``min_profit_base`` are left out.

        Every account the screen found is sized in ONE C call
        (``LiquidationSizer.best_liquidations``: exact health factor, every pair to
        the pool's fixed point, the best pair picked, without the GIL); an account
        it hands back goes to the reference, as in :meth:`best_liquidation` (the
        per-account path, which gives the same opportunities)."""
        users = self.liquidatable(now_ts, prices, among=among)
        if not users:
            return []
        sizer, units, _ = _sizer_of(self)
        price_list = self._install_market(now_ts, prices)
        accounts = self._accounts
        sized = sizer.best_liquidations([accounts[user] for user in users])
        gas_cost_wei = self.gas_estimate * base_fee_per_gas
        eth_price = price_list[self.eth_asset] if self.eth_asset is not None else None
        gas_base = gas_cost_wei * eth_price // WAD if eth_price else 0
        ops = []
        for user, best in zip(users, sized):
            if best is None:
                op = self.best_liquidation(user, now_ts, block_number, base_fee_per_gas, prices=prices,
                                           trigger_tx=trigger_tx, received_ns=received_ns)
            else:
                hf, c, d, debt_to_cover, collateral, got_base, paid_base = best
                if hf >= WAD or c < 0:
                    continue
                op = self._opportunity(user, c, d, debt_to_cover, collateral, got_base, paid_base, price_list,
                                       units, gas_cost_wei, gas_base, eth_price, block_number, base_fee_per_gas,
                                       trigger_tx, received_ns)
            if op is not None:
                ops.append(op)
        ops.sort(key=lambda o: -(o.profit_net_of_gas if o.profit_net_of_gas is not None else o.profit))
        return ops

    def _install_market(self, now_ts: int, prices: Optional[Sequence[int]]) -> List[int]:
        """The sizer's prices and normalized indexes set to ``now_ts`` (once per market state);
        returns the prices."""
        sizer, _, market = _sizer_of(self)
        price_list = [s.price for s in self._state] if prices is None else list(prices)
        norms = [self.normalized(i, now_ts) for i in range(self._n)]
        if market[0] != price_list or market[1] != norms:
            # one conversion per market state, not per account (opportunities() sizes many in a row)
            sizer.set_market(price_list, [income for income, _ in norms], [debt for _, debt in norms])
            market[:] = [price_list, norms]
        return price_list

    def _opportunity(self, user: bytes, c: int, d: int, debt_to_cover: int, collateral: int, got_base: int,
                     paid_base: int, price_list: List[int], units: List[int], gas_cost_wei: int, gas_base: int,
                     eth_price: Optional[int], block_number: int, base_fee_per_gas: int,
                     trigger_tx: Optional[bytes], received_ns: int) -> Optional[Opportunity]:
        """The LIQUIDATION opportunity of ``user``'s best pair (None under ``min_profit_base``)."""
        if got_base - paid_base - gas_base < self.min_profit_base:
            return None
        c_price, d_price, c_unit, d_unit = price_list[c], price_list[d], units[c], units[d]
        # the gross profit in the debt token: the collateral received, valued in the debt token, minus what was paid
        profit_debt = collateral * c_price * d_unit // (c_unit * d_price) - debt_to_cover
        net_debt = net_eth = None
        if eth_price:
            net_debt = profit_debt - gas_base * d_unit // d_price
            net_eth = (got_base - paid_base) * WAD // eth_price - gas_cost_wei
        return Opportunity(OpportunityKind.LIQUIDATION, trigger_tx, (self.pool,),
                           (self.reserves[d].config.asset, self.reserves[c].config.asset),
                           amount_in=debt_to_cover, profit=profit_debt, gas_estimate=self.gas_estimate,
                           base_fee_per_gas=base_fee_per_gas, profit_net_of_gas=net_debt, block_number=block_number,
                           received_ns=received_ns, detected_ns=time.monotonic_ns(), user=bytes(user),
                           amount_out=collateral, profit_net_of_gas_eth=net_eth)

    def best_liquidation(self, user: bytes, now_ts: int, block_number: int, base_fee_per_gas: int = 0, *,
                         prices: Optional[Sequence[int]] = None, trigger_tx: Optional[bytes] = None,
                         received_ns: int = 0) -> Optional[Opportunity]:
        """The most profitable single ``liquidationCall`` on ``user`` at ``now_ts``
        (every enabled collateral x every debt, sized exactly), or None.

        The exact health factor and every pair's sizing run in C
        (``tallyio.amm._aave.LiquidationSizer``, proven equal to ``aave.py``); an
        account where an intermediate passes 2**256 - 1 goes to the reference
        (``aave.py``), which raises where the contract reverts."""
        sizer, units, _ = _sizer_of(self)
        acc = self._accounts.get(bytes(user))
        if acc is None:
            return None   # nothing held: no debt, health factor 2**256 - 1
        price_list = self._install_market(now_ts, prices)
        sized = sizer.size_account(*acc)
        if sized is None:
            sized = self._sized_in_python(user, now_ts, prices)
        hf, pairs = sized
        if hf >= WAD:
            return None
        gas_cost_wei = self.gas_estimate * base_fee_per_gas
        eth_price = None
        if self.eth_asset is not None:
            eth_price = price_list[self.eth_asset]
        gas_base = gas_cost_wei * eth_price // WAD if eth_price else 0
        best = None
        for c, d, amounts in pairs:
            if amounts.debt_to_cover == 0 or amounts.collateral_to_liquidator == 0:
                continue
            # values in the base currency (the oracle's unit), truncated like Aave's own conversions
            got_base = amounts.collateral_to_liquidator * price_list[c] // units[c]
            paid_base = amounts.debt_to_cover * price_list[d] // units[d]
            net_base = got_base - paid_base - gas_base
            if best is None or net_base > best[0]:
                best = (net_base, c, d, amounts, got_base, paid_base)
        if best is None:
            return None
        _, c, d, amounts, got_base, paid_base = best
        return self._opportunity(user, c, d, amounts.debt_to_cover, amounts.collateral_to_liquidator, got_base,
                                 paid_base, price_list, units, gas_cost_wei, gas_base, eth_price, block_number,
                                 base_fee_per_gas, trigger_tx, received_ns)

    def _sized_in_python(self, user: bytes, now_ts: int, prices: Optional[Sequence[int]]) -> tuple:
        """``(health_factor, [(collateral index, debt index, amounts)])`` on the
        reference (``aave.py``): the path for an account the C sizer hands back
        (an intermediate past 2**256 - 1, where the reference raises)."""
        holdings = self.holdings(user, now_ts, prices)
        hf = user_account_data(holdings).health_factor
        if hf >= WAD:
            return hf, []
        column = {h.reserve.asset: self._asset_index[h.reserve.asset] for h in holdings}
        pairs = []
        for c in holdings:
            if not (c.use_as_collateral and c.collateral and c.reserve.liquidation_threshold):
                continue
            for d in holdings:
                if d.debt:
                    pairs.append((column[c.reserve.asset], column[d.reserve.asset], _sized(c, d, hf)))
        return hf, pairs

    def simulate_liquidation(self, user: bytes, collateral_asset: bytes, debt_asset: bytes, debt_to_cover: int,
                             now_ts: int, prices: Optional[Sequence[int]] = None) -> tuple:
        """What ``liquidationCall(collateral_asset, debt_asset, user, debt_to_cover)`` does
        on the book's state at ``now_ts`` (``prices``: one per reserve; None: the book's):
        ``(LiquidationAmounts, profit)``, the exact amounts of ``tallyio.amm.aave`` and the
        profit in the debt token (the collateral received valued at the oracle prices, minus
        the debt paid; gas not counted). Raises ``AaveRevertError`` where the pool reverts
        (health factor not below 1, collateral not enabled, no debt) and KeyError for an
        asset that is not a reserve."""
        c, d = self.asset_index(collateral_asset), self.asset_index(debt_asset)
        holdings = self.holdings(user, now_ts, prices)
        hf = user_account_data(holdings).health_factor
        by_asset = {h.reserve.asset: h for h in holdings}
        price_list = [s.price for s in self._state] if prices is None else list(prices)
        empty = [Holding(self.reserves[i].config, price_list[i], 0, False, 0) for i in (c, d)]
        amounts = liquidation_amounts(by_asset.get(bytes(collateral_asset), empty[0]),
                                      by_asset.get(bytes(debt_asset), empty[1]), hf, debt_to_cover)
        c_unit, d_unit = self.reserves[c].config.unit, self.reserves[d].config.unit
        profit = amounts.collateral_to_liquidator * price_list[c] * d_unit // (c_unit * price_list[d]) \
            - amounts.debt_to_cover
        return amounts, profit

    def pending_prices(self, tx: PendingTx) -> Optional[List[int]]:
        """The book's prices with the pending oracle update ``tx`` applied (None when
        ``tx`` is not a ``setAssetPrice`` of one of its reserves to :attr:`oracle`)."""
        update = decode_oracle_call(tx, self.oracle)
        asset = None if update is None else self._asset_index.get(update.asset)
        if asset is None:
            return None
        prices = [s.price for s in self._state]
        prices[asset] = update.price
        return prices

    def on_pending(self, tx: PendingTx, now_ts: int, block_number: int,
                   base_fee_per_gas: int = 0) -> List[Opportunity]:
        """The opportunities a pending oracle update (``setAssetPrice`` to
        :attr:`oracle`) will make at the next block (time ``now_ts``, number
        ``block_number``): every account holding the updated asset that the new
        price leaves under water, sized at that price (accounts that do not hold
        it are not changed by it: their opportunities, if any, are the current
        block's). The price is applied to a copy, never to the book."""
        update = decode_oracle_call(tx, self.oracle)
        if update is None:
            return []
        asset = self._asset_index.get(update.asset)
        if asset is None:
            return []
        self.counts["pending_prices"] += 1
        prices = [s.price for s in self._state]
        prices[asset] = update.price
        return self.opportunities(now_ts, block_number, base_fee_per_gas, prices=prices, trigger_tx=tx.hash,
                                  received_ns=tx.received_ns, among=self._holders[asset])

    # ---- snapshots (a recording's starting point) ----
    def snapshot(self, block: int = 0, received_ns: int = 0) -> LendingSnapshot:
        """The whole book as a :class:`LendingSnapshot` (as of ``block``)."""
        w = _w
        parts = [_SNAP_HEAD.pack(_SNAP_MAGIC, self.pool, self.oracle or bytes(20), self.oracle is not None,
                                 -1 if self.eth_asset is None else self.eth_asset, self.gas_estimate, block,
                                 w(self.min_profit_base), self._n, len(self._accounts))]
        for r, st in zip(self.reserves, self._state):
            c = r.config
            parts.append(_SNAP_RESERVE.pack(c.asset, c.decimals, c.ltv, c.liquidation_threshold, c.liquidation_bonus,
                                            c.liquidation_protocol_fee, r.a_token, r.debt_token,
                                            w(st.liquidity_index), w(st.liquidity_rate), w(st.variable_index),
                                            w(st.variable_rate), st.last_update, w(st.price)))
        holders = self._holders
        for user, (coll, debt, flags) in self._accounts.items():
            parts.append(user)
            for i in range(self._n):
                parts.append(w(coll[i]) + w(debt[i]) + bytes((flags[i] | (user in holders[i]) << 1,)))
        return LendingSnapshot(b"".join(parts), received_ns)

    @classmethod
    def from_snapshot(cls, snapshot: LendingSnapshot) -> "PositionBook":
        """The book a :meth:`snapshot` was taken of (same reserves, state, accounts in the same order);
        ValueError naming what is wrong in a malformed payload."""
        raw = bytes(snapshot.payload)
        if len(raw) < _SNAP_HEAD.size or raw[:8] != _SNAP_MAGIC:
            raise ValueError(f"a lending snapshot starts with {_SNAP_MAGIC!r}, got {raw[:8]!r}")
        (_, pool, oracle, has_oracle, eth_asset, gas, _block, min_profit, n, n_accounts) = _SNAP_HEAD.unpack_from(raw)
        size = _SNAP_HEAD.size + n * _SNAP_RESERVE.size + n_accounts * (20 + 65 * n)
        if len(raw) != size:
            raise ValueError(f"lending snapshot: {len(raw)} bytes, its head ({n} reserves, {n_accounts} accounts) "
                             f"says {size}")
        off = _SNAP_HEAD.size
        reserves, states = [], []
        for _ in range(n):
            (asset, dec, ltv, lt, bonus, fee, a_tok, d_tok, li, lr, vi, vr, last,
             price) = _SNAP_RESERVE.unpack_from(raw, off)
            off += _SNAP_RESERVE.size
            reserves.append(LendingReserve(ReserveConfig(asset, dec, ltv, lt, bonus, fee), a_tok, d_tok))
            states.append((_i(li), _i(lr), _i(vi), _i(vr), last, _i(price)))
        book = cls(pool, reserves, eth_asset=None if eth_asset < 0 else eth_asset, gas_estimate=gas,
                   min_profit_base=_i(min_profit), oracle=oracle if has_oracle else None)
        for i, (li, lr, vi, vr, last, price) in enumerate(states):
            book.set_reserve_state(i, li, lr, vi, vr, last)
            book.set_price(i, price)
        for _ in range(n_accounts):
            user = raw[off:off + 20]
            off += 20
            for i in range(n):
                coll, debt, flags = _i(raw[off:off + 32]), _i(raw[off + 32:off + 64]), raw[off + 64]
                off += 65
                book.set_position(user, i, scaled_collateral=coll, scaled_debt=debt, use_as_collateral=flags & 1)
                if flags & 2:
                    book._holders[i].add(user)
                elif not (coll or debt):
                    book._holders[i].discard(user)
        return book

    # ---- resync from a node ----
    def resync(self, rpc: Any, users: Iterable[bytes], block: Any = "latest", *,
               oracle: Optional[bytes] = None) -> None:
        """Replace the reserves' indexes and prices and ``users``' positions with
        what the chain holds at ``block`` (``rpc``: anything with
        ``call(method, *params)``, e.g. ``tallyio.devnet.RpcClient``)."""
        tag = hex(block) if isinstance(block, int) else block
        oracle = oracle or self.oracle

        def call(to: bytes, data: bytes) -> bytes:
            out = rpc.call("eth_call", {"to": "0x" + to.hex(), "data": "0x" + data.hex()}, tag)
            return bytes.fromhex(out[2:])

        reserve_ids = []
        for i, r in enumerate(self.reserves):
            raw = call(self.pool, _GET_RESERVE_DATA + _word_address(r.config.asset))
            w = [int.from_bytes(raw[32 * k: 32 * k + 32], "big") for k in range(8)]
            self.set_reserve_state(i, w[1], w[2], w[3], w[4], w[6])
            reserve_ids.append(w[7])
            if oracle is not None:
                self.set_price(i, int.from_bytes(call(oracle, _GET_ASSET_PRICE + _word_address(r.config.asset)), "big"))
        for user in users:
            user = bytes(user)
            config = int.from_bytes(call(self.pool, _GET_USER_CONFIGURATION + _word_address(user)), "big")
            for i, r in enumerate(self.reserves):
                coll = int.from_bytes(call(r.a_token, _SCALED_BALANCE_OF + _word_address(user)), "big")
                debt = int.from_bytes(call(r.debt_token, _SCALED_BALANCE_OF + _word_address(user)), "big")
                flag = bool((config >> (2 * reserve_ids[i] + 1)) & 1)  # UserConfiguration: bit 2*id+1 = collateral
                if coll or debt or user in self._accounts:
                    self.set_position(user, i, scaled_collateral=coll, scaled_debt=debt, use_as_collateral=flag)


def _sizer_of(book: PositionBook) -> tuple:
    """The book's ``LiquidationSizer``, its reserves' units and the market (prices,
    normalized indexes) last installed in it, made on first use."""
    cached = book.__dict__.get("_liquidation_sizer")
    if cached is None:
        cached = book.__dict__["_liquidation_sizer"] = (
            LiquidationSizer([r.config for r in book.reserves]), [r.config.unit for r in book.reserves], [None, None])
    return cached


def _sized(collateral: Holding, debt: Holding, health_factor: int):
    """The liquidation the pool performs when called with the returned
    ``debt_to_cover``: sizing with "all allowed" can hit the collateral cap,
    whose debt-needed then, passed back as ``debtToCover``, is sized again by the
    pool (without the cap, rounding differently by a unit). Iterate to the fixed
    point (two rounds at most in practice) so the prediction is what the call
    really does."""
    amounts = liquidation_amounts(collateral, debt, health_factor, UINT256_MAX)
    for _ in range(8):
        if amounts.debt_to_cover == 0:
            return amounts
        again = liquidation_amounts(collateral, debt, health_factor, amounts.debt_to_cover)
        if again == amounts:
            return amounts
        amounts = again
    raise ArithmeticError("liquidation sizing did not reach a fixed point")  # pragma: no cover (never seen)


def _w(value: int) -> bytes:
    return value.to_bytes(32, "big")


def _i(word: bytes) -> int:
    return int.from_bytes(word, "big")


def _word_address(address: bytes) -> bytes:
    return bytes(12) + bytes(address)


_GET_RESERVE_DATA = bytes.fromhex("35ea6a75")         # getReserveData(address)
_GET_USER_CONFIGURATION = bytes.fromhex("4417a583")   # getUserConfiguration(address)
_SCALED_BALANCE_OF = bytes.fromhex("1da24f3e")        # scaledBalanceOf(address)
_GET_ASSET_PRICE = bytes.fromhex("b3596f07")          # getAssetPrice(address)

"""``LendingFeed``: an Aave v3 market followed live -- the link between a node's
logs / heads / pending transactions and a :class:`~tallyio.mempool.lending.PositionBook`,
and between the book and the engine's opportunity queue.

Owns: loading the market's reserves from its ``AaveProtocolDataProvider`` (the
Pool's ``getReservesList``, each reserve's configuration, tokens and
liquidation protocol fee), the book it builds from them, the catch-up and
resync on each (re)connection, which accounts a scan reports (see
:meth:`LendingFeed.scan`), and its counters. Writes LIQUIDATION opportunities
through ``push`` (``OpportunityQueue.push``: the queue the analyzer's
opportunities go through, so ``next_opportunity()`` and the queue's counts see
both). Runs on ONE thread: the node source's watcher (every method but
:meth:`stats`). Imports nothing downstream of the mempool.

    >>> from tallyio.amm.aave import ReserveConfig
    >>> from tallyio.mempool.lending import LendingReserve
    >>> from tallyio.eth.types import BlockHeader
    >>> A, D = b"\\x0a" * 20, b"\\x0d" * 20
    >>> reserves = [LendingReserve(ReserveConfig(A, 18, 8000, 8500, 10500, 1000), b"\\x1a" * 20, b"\\x2a" * 20),
    ...             LendingReserve(ReserveConfig(D, 6, 8000, 8500, 10500, 1000), b"\\x1d" * 20, b"\\x2d" * 20)]
    >>> pushed = []
    >>> feed = LendingFeed(b"\\x99" * 20, b"\\x0c" * 20, None, pushed.append, reserves=reserves)
    >>> feed.book.set_price(0, 2000 * 10**8); feed.book.set_price(1, 10**8)
    >>> U = b"\\x55" * 20
    >>> feed.book.set_position(U, 0, scaled_collateral=10**18, scaled_debt=0, use_as_collateral=True)
    >>> feed.book.set_position(U, 1, scaled_collateral=0, scaled_debt=1_800 * 10**6, use_as_collateral=False)
    >>> feed.on_head(BlockHeader(7, b"\\x00" * 32, b"\\x00" * 32, 1_000, 0, 30_000_000, 0, 0))
    >>> feed.scan(), [(op.user == U, op.block_number) for op in pushed]
    (1, [(True, 8)])
    >>> feed.scan()            # nothing changed since: nothing reported again
    0
"""
from __future__ import annotations

import gc
import threading
from typing import Any, Callable, Dict, List, Optional, Sequence

from tallyio.amm.aave import ReserveConfig
from tallyio.eth._keccak import keccak256
from tallyio.eth.aave import AAVE_TOPICS
from tallyio.eth.types import (AaveCollateralToggle, AaveLiquidation, AavePriceUpdate, AaveReserveUpdate,
                               AaveTokenEvent, BlockHeader, PendingTx, RawLog)
from tallyio.mempool.lending import LIQUIDATION_GAS, LendingReserve, LendingSnapshot, PositionBook, scaled_deltas
from tallyio.mempool.records import Opportunity

__all__ = ["LendingFeed", "read_reserves", "raw_log_of"]

Call = Callable[[str, list], Any]

_GET_RESERVES_LIST = keccak256(b"getReservesList()")[:4]
_GET_RESERVE_CONFIGURATION = keccak256(b"getReserveConfigurationData(address)")[:4]
_GET_RESERVE_TOKENS = keccak256(b"getReserveTokensAddresses(address)")[:4]
_GET_LIQUIDATION_PROTOCOL_FEE = keccak256(b"getLiquidationProtocolFee(address)")[:4]


def _eth_call(call: Call, to: bytes, data: bytes, block: Any) -> bytes:
    out = call("eth_call", [{"to": "0x" + to.hex(), "data": "0x" + data.hex()}, block])
    if not (isinstance(out, str) and out[:2] == "0x"):
        raise ValueError(f"eth_call to 0x{to.hex()} returned {str(out)[:80]!r}, not 0x-hex")
    return bytes.fromhex(out[2:])


def _words(raw: bytes, count: int, what: str) -> List[int]:
    if len(raw) < 32 * count:
        raise ValueError(f"{what} returned {len(raw)} bytes, expected at least {32 * count}")
    return [int.from_bytes(raw[32 * i: 32 * i + 32], "big") for i in range(count)]


def read_reserves(call: Call, pool: bytes, data_provider: bytes, block: Any = "latest") -> List[LendingReserve]:
    """Every reserve of the market at ``pool`` in the Pool's own order
    (``getReservesList``), with the risk parameters, tokens and liquidation
    protocol fee its ``AaveProtocolDataProvider`` reports. ``call(method, params)``
    is a JSON-RPC call. A reserve without a variable-debt token is left out (it
    cannot be borrowed, so it is never a debt; as collateral it would be missed:
    said here because it would be a wrong book, not a crash)."""
    raw = _eth_call(call, pool, _GET_RESERVES_LIST, block)
    offset, = _words(raw, 1, "getReservesList")
    count, = _words(raw[offset:], 1, "getReservesList")
    assets = [w.to_bytes(32, "big")[12:] for w in _words(raw[offset + 32:], count, "getReservesList")]
    reserves = []
    for asset in assets:
        arg = bytes(12) + asset
        conf = _words(_eth_call(call, data_provider, _GET_RESERVE_CONFIGURATION + arg, block), 10,
                      "getReserveConfigurationData")
        tokens = _words(_eth_call(call, data_provider, _GET_RESERVE_TOKENS + arg, block), 3,
                        "getReserveTokensAddresses")
        fee, = _words(_eth_call(call, data_provider, _GET_LIQUIDATION_PROTOCOL_FEE + arg, block), 1,
                      "getLiquidationProtocolFee")
        a_token, variable_debt = tokens[0].to_bytes(32, "big")[12:], tokens[2].to_bytes(32, "big")[12:]
        if variable_debt == bytes(20):
            continue
        decimals, ltv, threshold, bonus = conf[0], conf[1], conf[2], conf[3]
        reserves.append(LendingReserve(ReserveConfig(asset, decimals, ltv, threshold, bonus, fee), a_token,
                                       variable_debt))
    if not reserves:
        raise ValueError(f"the Aave market at 0x{pool.hex()} lists no reserve")
    return reserves


def _topic(name: str) -> bytes:
    return bytes.fromhex(AAVE_TOPICS[name][2:])


def _word(value: Any) -> bytes:
    if isinstance(value, bytes):
        return bytes(12) + value if len(value) == 20 else value
    return int(value).to_bytes(32, "big")


def raw_log_of(record: Any, pool: bytes) -> Optional[RawLog]:
    """The log a decoded Aave record came from, as the node sent it (``RawLog``: emitter,
    topics, data, where), so a recording keeps the lending path's logs raw and a replay
    decodes them with ``tallyio.eth.aave.decode_aave_log`` as the live path did. ``pool``
    is the market's Pool (the emitter of the reserve, toggle and liquidation events).

    Every field of these events is in its record (the mock oracle's ``AssetPriceUpdated``
    timestamp is its block's), so the log is re-encoded exactly: the anvil test compares it
    with ``eth_getLogs``. A ``Supply``/``Withdraw``/``Borrow``/``Repay`` record keeps only
    what the book needs (not the caller, referral or rate), so it cannot be: None (they
    move no balance; their token events do).

        >>> from tallyio.eth.aave import decode_aave_log
        >>> rec = AaveCollateralToggle(b"\\x0a" * 20, b"\\x55" * 20, True, 7, 1, b"\\x01" * 32, 99)
        >>> decode_aave_log(raw_log_of(rec, b"\\x99" * 20).to_rpc()) == rec
        True
    """
    kind = type(record)
    if kind is AaveTokenEvent:
        if record.kind == "mint":      # Mint(caller indexed, onBehalfOf indexed, value, balanceIncrease, index)
            emitter, topics = record.token, (_topic("Mint"), _word(record.other), _word(record.user))
            data = (record.value, record.balance_increase, record.index)
        elif record.kind == "burn":    # Burn(from indexed, target indexed, value, balanceIncrease, index)
            emitter, topics = record.token, (_topic("Burn"), _word(record.user), _word(record.other))
            data = (record.value, record.balance_increase, record.index)
        else:                          # BalanceTransfer(from indexed, to indexed, value, index)
            emitter, topics = record.token, (_topic("BalanceTransfer"), _word(record.user), _word(record.other))
            data = (record.value, record.index)
    elif kind is AaveReserveUpdate:
        emitter, topics = pool, (_topic("ReserveDataUpdated"), _word(record.reserve))
        data = (record.liquidity_rate, record.stable_borrow_rate, record.variable_borrow_rate,
                record.liquidity_index, record.variable_borrow_index)
    elif kind is AaveCollateralToggle:
        name = "ReserveUsedAsCollateralEnabled" if record.enabled else "ReserveUsedAsCollateralDisabled"
        emitter, topics, data = pool, (_topic(name), _word(record.reserve), _word(record.user)), ()
    elif kind is AavePriceUpdate:
        if record.pending:
            return None
        emitter, topics = record.oracle, (_topic("AssetPriceUpdated"),)
        data = (record.asset, record.price, record.block_timestamp)
    elif kind is AaveLiquidation:
        emitter = pool
        topics = (_topic("LiquidationCall"), _word(record.collateral_asset), _word(record.debt_asset),
                  _word(record.user))
        data = (record.debt_to_cover, record.liquidated_collateral_amount, record.liquidator,
                int(record.receive_a_token))
    else:
        return None
    return RawLog(emitter, topics, b"".join(_word(v) for v in data), record.block_number, record.log_index,
                  record.transaction_hash or bytes(32), record.removed, record.received_ns, record.block_timestamp)


class _RpcAdapter:
    """``call(method, *params)`` (what PositionBook.catch_up/resync use) over ``call(method, params)``."""

    def __init__(self, call: Call) -> None:
        self._call = call

    def call(self, method: str, *params: Any) -> Any:
        return self._call(method, list(params))


class LendingFeed:
    """The Aave market at ``pool`` (its ``oracle``, and its ``data_provider`` to read
    the reserves from; or ``reserves=`` given), followed into a PositionBook, its
    LIQUIDATION opportunities given to ``push``.

    ``eth_asset`` (the 20-byte underlying whose oracle price is ETH's, or None)
    lets the book value gas; ``from_block`` is where the first catch-up starts
    reading the market's logs; ``block_seconds`` is the time from one block to
    the next: an opportunity found at head ``n`` is sized for block ``n + 1`` at
    the head's time plus ``block_seconds`` (the block its liquidationCall can
    land in).

    What a :meth:`scan` reports: every account liquidatable now that was not at
    the previous scan, and every liquidatable account whose position or a price
    of an asset it holds changed since then (a position event, a collateral
    toggle, a mined price update, a resync). An account under water whose
    position does not move is not reported again every block: its opportunity
    stands until something changes it (a liquidation of it changes it).
    A pending oracle update (:meth:`on_pending`) reports at once the accounts
    holding the asset that the new price puts under water, sized at that price.

    ``freeze_gc_at``: after a resync (or a replay's snapshot) leaving at least this many
    accounts, the cyclic GC is collected then frozen (see :meth:`_freeze_gc`); None: never.
    """

    def __init__(self, pool: bytes, oracle: bytes, data_provider: Optional[bytes],
                 push: Callable[[Opportunity], Any], *, reserves: Optional[Sequence[LendingReserve]] = None,
                 eth_asset: Optional[bytes] = None, from_block: int = 0, block_seconds: int = 12,
                 gas_estimate: int = LIQUIDATION_GAS, min_profit_base: int = 1,
                 freeze_gc_at: Optional[int] = 10_000) -> None:
        for name, value in (("pool", pool), ("oracle", oracle)):
            if not (isinstance(value, bytes) and len(value) == 20):
                raise ValueError(f"LendingFeed: {name} must be a 20-byte address, got {value!r}")
        if reserves is None and not (isinstance(data_provider, bytes) and len(data_provider) == 20):
            raise ValueError("LendingFeed: give data_provider (20 bytes) or reserves=")
        if not callable(push):
            raise TypeError(f"LendingFeed: push must be callable, got {type(push).__name__}")
        for name, value, low in (("from_block", from_block, 0), ("block_seconds", block_seconds, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"LendingFeed: {name} must be an int >= {low}, got {value!r}")
        if freeze_gc_at is not None and (isinstance(freeze_gc_at, bool) or not isinstance(freeze_gc_at, int)
                                         or freeze_gc_at < 0):
            raise ValueError(f"LendingFeed: freeze_gc_at must be None or an int >= 0, got {freeze_gc_at!r}")
        self.freeze_gc_at = freeze_gc_at
        self.pool, self.oracle, self.data_provider = pool, oracle, data_provider
        self._push = push
        self._eth_asset = eth_asset
        self._gas_estimate, self._min_profit_base = gas_estimate, min_profit_base
        self.block_seconds = block_seconds
        self.next_block = from_block
        """the first block whose logs the next catch-up reads (one past the last applied)."""
        self.book: Optional[PositionBook] = None
        self.head: Optional[BlockHeader] = None
        self._liquidatable: set = set()
        self._touched: set = set()
        self._dirty = False
        self.needs_resync = False
        """set when a record could not be applied: the node source then calls :meth:`resync`."""
        self.on_resync: Optional[Callable[[LendingSnapshot], Any]] = None
        """called with the book's snapshot after each :meth:`resync` (a Recorder's ``write``:
        a recording then holds the state a replay starts from)."""
        self._lock = threading.Lock()          # stats() from another thread
        self.counts: Dict[str, int] = dict(records=0, heads=0, scans=0, pushed=0, refused=0, pending_updates=0,
                                           pending_pushed=0, resyncs=0, errors=0, gc_freezes=0)
        if reserves is not None:
            self._make_book(list(reserves))

    def _make_book(self, reserves: List[LendingReserve]) -> None:
        eth_index = None
        if self._eth_asset is not None:
            matches = [i for i, r in enumerate(reserves) if r.config.asset == self._eth_asset]
            if not matches:
                raise ValueError(f"LendingFeed: eth_asset 0x{self._eth_asset.hex()} is not a reserve of the market")
            eth_index = matches[0]
        self.book = PositionBook(self.pool, reserves, eth_asset=eth_index, gas_estimate=self._gas_estimate,
                                 min_profit_base=self._min_profit_base, oracle=self.oracle)

    # ---- the node source's hooks (its watcher thread) ----
    def log_addresses(self, call: Call) -> List[bytes]:
        """The Pool, the oracle, every aToken and variable-debt token (the reserves
        are read from the data provider the first time)."""
        if self.book is None:
            self._make_book(read_reserves(call, self.pool, self.data_provider))   # type: ignore[arg-type]
        book = self.book
        assert book is not None
        return [self.pool, self.oracle] + [t for r in book.reserves for t in (r.a_token, r.debt_token)]

    def resync(self, call: Call, block: int) -> None:
        """Catch up on the logs from :attr:`next_block` to ``block`` (new accounts,
        exact scaled balances), then read every known account's positions, the
        indexes and the prices at ``block`` (what a missed or partly seen block
        left wrong). Every account counts as changed for the next scan."""
        if self.book is None:
            self.log_addresses(call)
        book = self.book
        assert book is not None
        rpc = _RpcAdapter(call)
        addresses = ["0x" + a.hex() for a in self.log_addresses(call)]
        if self.next_block <= block:
            try:
                book.catch_up(rpc, addresses, self.next_block, block)
            except ValueError:
                # the logs do not add up on what the book held (a block seen in part before the
                # connection broke): the chain reads below set every known account right
                self.counts["errors"] += 1
        book.resync(rpc, book.users(), block)
        self.next_block = block + 1
        self.needs_resync = False
        self._touched.update(book.users())
        self._dirty = True
        self.counts["resyncs"] += 1
        self._freeze_gc()
        if self.on_resync is not None:
            self.on_resync(book.snapshot(block))

    def _freeze_gc(self) -> None:
        """After a resync of a big book (``freeze_gc_at`` accounts or more): ``gc.collect()``
        then ``gc.freeze()``, so the cyclic collector's full passes stop walking the book's
        per-account lists. Measured with 100,000 accounts x 8 reserves: a full collection took
        ~420 ms (median of 5) with the book tracked, ~0 ms once frozen -- a pause that otherwise
        lands inside an oracle update's sizing now and then. Process-wide (what else is alive
        is frozen too: the collect first leaves only live objects); the book's objects are
        still freed by reference counting."""
        book = self.book
        if self.freeze_gc_at is not None and book is not None and len(book) >= self.freeze_gc_at:
            gc.collect()
            gc.freeze()
            self.counts["gc_freezes"] += 1

    def load_snapshot(self, snapshot: LendingSnapshot) -> None:
        """A replay's :meth:`resync`: the book becomes the recorded one (its reserves, state
        and accounts as of ``snapshot.block``), every account counts as changed for the
        next scan -- as after the live resync the snapshot was taken at."""
        book = PositionBook.from_snapshot(snapshot)
        if book.pool != self.pool:
            raise ValueError(f"LendingFeed: the snapshot is of the market at 0x{book.pool.hex()}, "
                             f"this feed follows 0x{self.pool.hex()}")
        self.book = book
        self.next_block = snapshot.block + 1
        self.needs_resync = False
        self._touched.update(book.users())
        self._dirty = True
        self.counts["resyncs"] += 1
        self._freeze_gc()

    def raw_log(self, record: Any) -> Optional[RawLog]:
        """``raw_log_of(record, self.pool)``: what a recording keeps of a lending record."""
        return raw_log_of(record, self.pool)

    def simulate(self, user: bytes, collateral_asset: bytes, debt_asset: bytes, debt_to_cover: int,
                 trigger: Optional[PendingTx] = None) -> tuple:
        """The dry run of one ``liquidationCall`` in the block after the current head (the block
        the scan sized it for), on the book's state -- with the pending oracle update
        ``trigger``'s price when it is one: ``PositionBook.simulate_liquidation``'s
        ``(LiquidationAmounts, profit in the debt token)``."""
        book = self.book
        if book is None or self.head is None:
            raise ValueError("LendingFeed.simulate: no market state yet (no book or no head)")
        ts, _, _ = self._next_block()
        prices = None if trigger is None else book.pending_prices(trigger)
        return book.simulate_liquidation(user, collateral_asset, debt_asset, debt_to_cover, ts, prices)

    # ---- records ----
    def apply(self, record: Any) -> bool:
        """One decoded Aave record (the node source delivers them in chain order)."""
        book = self.book
        if book is None:
            return False
        self.counts["records"] += 1
        try:
            applied = book.apply(record)
        except ValueError:
            # an event the book cannot apply (it missed one before, or a reorg): the node
            # source sees needs_resync and reads the market from the chain again
            self.counts["errors"] += 1
            self.needs_resync = True
            return False
        if not applied:
            return False
        self._dirty = True
        if record.block_number >= self.next_block:
            self.next_block = record.block_number + 1
        if type(record) is AaveTokenEvent:
            for user, _ in scaled_deltas(record):
                self._touched.add(user)
        elif type(record) is AaveCollateralToggle:
            self._touched.add(record.user)
        elif type(record) is AavePriceUpdate:
            self._touched.update(book.holders(book.asset_index(record.asset)))
        elif type(record) is AaveReserveUpdate:
            pass                                # interest only: a new liquidatable account is found by the scan
        return True

    def on_head(self, header: BlockHeader) -> None:
        """A new head: the next scan sizes for the block after it."""
        self.head = header
        self.counts["heads"] += 1
        self._dirty = True

    def _next_block(self) -> tuple:
        head = self.head
        assert head is not None
        return head.timestamp + self.block_seconds, head.number + 1, head.base_fee_per_gas

    def scan(self) -> int:
        """Report (push) the accounts described in the class doc; returns how many
        were pushed. Does nothing before the first head or when nothing changed."""
        book = self.book
        if book is None or self.head is None or not self._dirty:
            return 0
        self._dirty = False
        self.counts["scans"] += 1
        ts, number, base_fee = self._next_block()
        now = set(book.liquidatable(ts))
        report = (now - self._liquidatable) | (now & self._touched)
        self._liquidatable = now
        self._touched = set()
        if not report:
            return 0
        return self._give(book.opportunities(ts, number, base_fee, among=report), "pushed")

    def on_pending(self, tx: PendingTx) -> int:
        """A pending transaction: a ``setAssetPrice`` to the oracle reports (pushes),
        one block early, the accounts the new price puts under water; returns how many."""
        book = self.book
        if book is None or self.head is None or tx.to != self.oracle:
            return 0
        ts, number, base_fee = self._next_block()
        try:
            ops = book.on_pending(tx, ts, number, base_fee)
        except ValueError:                      # a malformed setAssetPrice: not ours to act on
            self.counts["errors"] += 1
            return 0
        self.counts["pending_updates"] += 1
        return self._give(ops, "pending_pushed")

    def _give(self, ops: List[Opportunity], counter: str) -> int:
        pushed = 0
        for op in ops:
            if self._push(op) is False:
                self.counts["refused"] += 1
            else:
                pushed += 1
        with self._lock:
            self.counts[counter] += pushed
            if counter != "pushed":
                self.counts["pushed"] += pushed
        return pushed

    def stats(self) -> dict:
        """Counters (records, heads, scans, pushed, refused, pending_updates,
        pending_pushed, resyncs, errors), tracked accounts and how many were
        liquidatable at the last scan."""
        with self._lock:
            out: dict = dict(self.counts)
        out["accounts"] = 0 if self.book is None else len(self.book)
        out["liquidatable"] = len(self._liquidatable)
        out["next_block"] = self.next_block
        return out

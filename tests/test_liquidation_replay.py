"""Liquidations from a replay without a node (issue 15): the pieces the anvil test
(test_liquidation_replay_anvil.py) runs end to end, each on its own --

* ``PositionBook.snapshot`` / ``from_snapshot``: the whole book and back, bit for bit;
  a malformed payload named;
* ``raw_log_of``: every recorded lending record encodes to the log it was decoded from;
* the recording's LENDING_SNAPSHOT kind; the feeder's lending hook (pending transactions
  to the oracle, records handed back to Python) and its cost-free default;
* ``Engine(CoreConfig.replay(path, aave_*))`` over a recording written here (a snapshot,
  heads, a mined price log, a pending oracle update): the opportunities equal the book's
  own, the dry run's results equal the sized profits;
* ``DryRunExecutor``'s liquidation path: FAILED without a book, REVERTED where Aave reverts;
* ``CoreConfig.from_env``'s TALLYIO_AAVE_* variables.
"""
import asyncio

import pytest

from tallyio.amm.aave import RAY, ReserveConfig
from tallyio.eth.aave import SET_ASSET_PRICE_SELECTOR, decode_aave_log
from tallyio.eth.types import (AaveCollateralToggle, AaveLiquidation, AavePriceUpdate, AaveReserveUpdate,
                               AaveTokenEvent, AaveUserAction, BlockHeader, PendingTx)
from tallyio.mempool.lending import LendingReserve, LendingSnapshot, PositionBook
from tallyio.mempool.lending_feed import LendingFeed, raw_log_of

POOL, ORACLE, PROVIDER = b"\x99" * 20, b"\x0c" * 20, b"\x0d" * 20
WETH, USDC = b"\x0a" * 20, b"\x0b" * 20
RESERVES = [LendingReserve(ReserveConfig(WETH, 18, 8000, 8250, 10500, 1000), b"\x1a" * 20, b"\x2a" * 20),
            LendingReserve(ReserveConfig(USDC, 6, 7700, 8000, 10450, 1000), b"\x1b" * 20, b"\x2b" * 20)]
T0 = 1_700_000_000


def user(n):
    return bytes([0x50, n]) + bytes(18)


def make_book(accounts=40):
    book = PositionBook(POOL, RESERVES, eth_asset=0, oracle=ORACLE)
    book.set_price(0, 2000 * 10**8)
    book.set_price(1, 10**8)
    book.set_reserve_state(0, RAY + RAY // 50, RAY // 100, RAY + RAY // 20, RAY // 30, T0)
    book.set_reserve_state(1, RAY + RAY // 40, RAY // 90, RAY + RAY // 25, RAY // 20, T0)
    for n in range(accounts):
        book.set_position(user(n), 0, scaled_collateral=10**18 + n * 10**15, scaled_debt=0, use_as_collateral=True)
        book.set_position(user(n), 1, scaled_collateral=0, scaled_debt=(1_300 + 10 * n) * 10**6,
                          use_as_collateral=False)
    return book


def oracle_tx(asset, price, n=1):
    data = SET_ASSET_PRICE_SELECTOR + bytes(12) + asset + price.to_bytes(32, "big")
    return PendingTx(bytes([0xee, n]) + bytes(30), b"\x01" * 20, ORACLE, n, 0, 60_000, 10**10, 10**9, data, 2,
                     1_000 + n)


def header(number, ts):
    return BlockHeader(number, number.to_bytes(32, "big"), (number - 1).to_bytes(32, "big"), ts, 10**9,
                       30_000_000, 1, 100 + number)


def comparable(op):
    return op._replace(detected_ns=0)


# ---- the snapshot ---------------------------------------------------------------------------

def test_a_snapshot_restores_the_book_bit_for_bit():
    book = make_book()
    book._holders[0].add(user(99))           # once held WETH, holds nothing now: kept as a holder
    book._account(user(99))
    snap = book.snapshot(block=77, received_ns=5)
    assert snap.block == 77 and snap.pool == POOL and snap.received_ns == 5
    again = PositionBook.from_snapshot(snap)
    assert again.users() == book.users() and again.reserves == book.reserves
    assert again.oracle == ORACLE and again.eth_asset == 0 and again.gas_estimate == book.gas_estimate
    for i in range(2):
        assert again.price(i) == book.price(i) and again.normalized(i, T0 + 99) == book.normalized(i, T0 + 99)
        assert again.holders(i) == book.holders(i)
        for u in book.users():
            assert again.scaled(u, i) == book.scaled(u, i)
    assert again.snapshot(77, 5) == snap
    ops = [comparable(op) for op in book.opportunities(T0 + 12, 78, 10**9, prices=[1_700 * 10**8, 10**8])]
    assert ops and ops == [comparable(op) for op in again.opportunities(T0 + 12, 78, 10**9,
                                                                        prices=[1_700 * 10**8, 10**8])]


def test_a_malformed_snapshot_is_named():
    payload = make_book(3).snapshot(1).payload
    with pytest.raises(ValueError, match="starts with b'TIOLEND1'"):
        PositionBook.from_snapshot(LendingSnapshot(b"XXXXXXXX" + payload[8:]))
    with pytest.raises(ValueError, match="its head .2 reserves, 3 accounts. says"):
        PositionBook.from_snapshot(LendingSnapshot(payload[:-1]))


def test_the_feed_loads_a_snapshot_of_its_market_only():
    feed = LendingFeed(POOL, ORACLE, PROVIDER, lambda op: None)
    feed.load_snapshot(make_book(5).snapshot(block=41))
    assert len(feed.book) == 5 and feed.next_block == 42 and feed.stats()["resyncs"] == 1
    other = PositionBook(b"\x98" * 20, RESERVES)
    with pytest.raises(ValueError, match="snapshot is of the market at 0x9898"):
        feed.load_snapshot(other.snapshot())
    with pytest.raises(ValueError, match="no market state yet"):
        LendingFeed(POOL, ORACLE, PROVIDER, lambda op: None).simulate(user(1), WETH, USDC, 1)


# ---- raw logs -------------------------------------------------------------------------------

def test_every_recorded_lending_record_encodes_to_its_log():
    where = dict(block_number=9, log_index=3, transaction_hash=b"\x07" * 32, block_timestamp=T0, received_ns=11)
    records = [
        AaveTokenEvent(b"\x1a" * 20, "mint", user(1), user(2), 150, 50, 2 * RAY, **where),
        AaveTokenEvent(b"\x2b" * 20, "burn", user(1), user(3), 10, 4, RAY + 1, **where),
        AaveTokenEvent(b"\x1a" * 20, "transfer", user(1), user(4), 10**18, 0, RAY, **where),
        AaveReserveUpdate(WETH, 1, 2, 3, RAY + 4, RAY + 5, **where),
        AaveCollateralToggle(USDC, user(1), False, **where),
        AaveCollateralToggle(WETH, user(1), True, **where),
        AavePriceUpdate(ORACLE, WETH, 1_900 * 10**8, False, **where),
        AaveLiquidation(WETH, USDC, user(1), 10**6, 5 * 10**14, user(7), True, **where),
    ]
    for record in records:
        raw = raw_log_of(record, POOL)
        assert decode_aave_log(raw.to_rpc(), received_ns=record.received_ns) == record, record
        assert raw.address == (POOL if type(record) in (AaveReserveUpdate, AaveCollateralToggle, AaveLiquidation)
                               else getattr(record, "token", getattr(record, "oracle", None)))
    assert raw_log_of(AaveUserAction("supply", WETH, user(1), 5, **where), POOL) is None
    assert raw_log_of(AavePriceUpdate(ORACLE, WETH, 1, True), POOL) is None
    assert raw_log_of(object(), POOL) is None


def test_the_recording_holds_a_lending_snapshot(tmp_path):
    from tallyio.mempool.recording import Recorder, ReplaySource, decode, encode
    from tallyio.state import RecordType

    snap = make_book(4).snapshot(block=3)
    rtype, payload, _ = encode(snap)
    assert rtype == RecordType.LENDING_SNAPSHOT and decode(rtype, payload).payload == snap.payload
    with pytest.raises(ValueError, match="LENDING_SNAPSHOT record: starts with"):
        decode(RecordType.LENDING_SNAPSHOT, b"nope" * 4)
    with Recorder(tmp_path / "s.tio") as rec:
        rec.write(snap)
        rec.write(raw_log_of(AavePriceUpdate(ORACLE, WETH, 7, False, 4, 0, b"\x01" * 32, T0), POOL))
    items = list(ReplaySource(tmp_path / "s.tio"))
    assert [type(i).__name__ for i in items] == ["LendingSnapshot", "RawLog"] and items[0].block == 3


# ---- the feeder's hook ------------------------------------------------------------------------

def _recording(tmp_path, n_plain=300):
    """A pool table, headers, plain transactions, two oracle updates, a snapshot and a raw log."""
    import random

    from tallyio.mempool.recording import Recorder
    from tallyio.mempool.synthetic import irrelevant_tx
    from tallyio.mempool import PoolTable, V2Pool

    rng = random.Random(15)
    path = tmp_path / "hook.tio"
    table = PoolTable([V2Pool(b"\x01" * 20, b"\x02" * 20, b"\x03" * 20, 10**18, 10**18)])
    with Recorder(path) as rec:
        rec.snapshot(table, ts=0)
        rec.write(make_book().snapshot(block=1))
        rec.write(header(2, T0 + 24))
        for k in range(n_plain):
            rec.write(irrelevant_tx(rng, k, received_ns=10 + k))
            if k == 100:
                rec.write(oracle_tx(WETH, 1_750 * 10**8, 1))
        rec.write(raw_log_of(AavePriceUpdate(ORACLE, WETH, 1_750 * 10**8, False, 3, 0, b"\x05" * 32, T0 + 36),
                             POOL))
        rec.write(header(3, T0 + 36))
        rec.write(oracle_tx(USDC, 103 * 10**6, 2))
        rec.write(header(4, T0 + 48))
    return path, table


def test_the_feeder_hands_the_lending_path_its_records(tmp_path):
    from tallyio.mempool import Pipeline
    from tallyio.mempool._feeder import ReplayFeeder

    path, table = _recording(tmp_path)
    seen, others = [], []
    with Pipeline(table, workers=1) as pipe:
        with ReplayFeeder(pipe, path) as feeder:
            with pytest.raises(ValueError, match="lending_to is a 20-byte address"):
                feeder.run(lending_to=b"\x01", on_lending_tx=seen.append)
            info = feeder.run(lending_to=ORACLE, on_lending_tx=seen.append,
                              on_other=lambda item: others.append(type(item).__name__) or True)
        unknown = pipe.stats()["pipeline"].get("unknown_records", 0)
    assert [tx.hash for tx in seen] == [oracle_tx(WETH, 1).hash, oracle_tx(USDC, 1, 2).hash]
    assert seen[0] == oracle_tx(WETH, 1_750 * 10**8, 1)
    assert others == ["LendingSnapshot", "RawLog"] and unknown == 0
    assert info["pending"] == 302 and info["items"] == 307


def test_without_the_hook_the_replay_is_as_before(tmp_path):
    from tallyio.mempool import Pipeline
    from tallyio.mempool._feeder import ReplayFeeder

    path, table = _recording(tmp_path)
    with Pipeline(table, workers=1) as pipe:
        with ReplayFeeder(pipe, path) as feeder:
            info = feeder.run()
        unknown = pipe.stats()["pipeline"].get("unknown_records", 0)
    assert info["pending"] == 302 and info["fallback"] == 2 and unknown == 2


# ---- the engine over a recording ----------------------------------------------------------------

def replay_config(path, **kw):
    from tallyio.engine.config import CoreConfig

    return CoreConfig.replay(str(path), aave_pool="0x" + POOL.hex(), aave_data_provider="0x" + PROVIDER.hex(),
                             aave_oracle="0x" + ORACLE.hex(), aave_eth_asset="0x" + WETH.hex(),
                             aave_block_seconds=12, **kw)


def expected_opportunities():
    """What the live feed would have pushed for _recording's records: a scan whenever the node fell
    idle after a block's head and logs, each pending oracle update at once."""
    pushed = []
    feed = LendingFeed(POOL, ORACLE, PROVIDER, pushed.append, eth_asset=WETH)
    feed.load_snapshot(make_book().snapshot(block=1))
    feed.on_head(header(2, T0 + 24))
    feed.scan()
    feed.on_pending(oracle_tx(WETH, 1_750 * 10**8, 1))
    feed.scan()
    # block 3: its price log, then its head; the node falls idle after both
    feed.apply(decode_aave_log(raw_log_of(AavePriceUpdate(ORACLE, WETH, 1_750 * 10**8, False, 3, 0, b"\x05" * 32,
                                                          T0 + 36), POOL).to_rpc()))
    feed.on_head(header(3, T0 + 36))
    feed.on_pending(oracle_tx(USDC, 103 * 10**6, 2))
    feed.scan()
    feed.on_head(header(4, T0 + 48))
    feed.scan()
    return [comparable(op) for op in pushed]


def test_an_engine_replays_the_markets_liquidations_and_dry_runs_them(tmp_path):
    from tallyio.engine.engine import Engine
    from tallyio.engine.liquidation import LiquidationStrategy
    from tallyio.engine.records import ExecutionStatus

    path, _ = _recording(tmp_path)
    expected = expected_opportunities()
    assert any(op.trigger_tx for op in expected) and any(op.trigger_tx is None for op in expected)
    got = []
    with Engine(replay_config(path), strategies=[LiquidationStrategy(pools={POOL})],
                routers=[(b"\x04" * 20, 0)]) as engine:
        while (op := engine.next_opportunity_sync(timeout=30)) is not None:
            result = engine.execute_strategy_sync(op)
            assert result.status is ExecutionStatus.SIMULATED, result
            assert result.realized_profit == op.profit and engine.executor.last_outputs == (op.amount_out,)
            got.append(comparable(op))
        lending = engine.stats()["lending"]
    # the same opportunities; the order within a block may differ: the live engine scans when the node
    # falls idle after a head, the replay before the first record of the next block (a block's logs may
    # come after its head), so a pending update's opportunities can come first
    order = lambda op: (op.block_number, op.trigger_tx or b"", op.user)  # noqa: E731
    assert sorted(got, key=order) == sorted(expected, key=order) and len(got) == len(expected) > 20
    assert lending["resyncs"] == 1 and lending["pending_updates"] == 2 and lending["errors"] == 0


def test_a_replay_without_the_market_in_the_recording_yields_no_liquidation():
    """The embedded recording has no LENDING_SNAPSHOT: the feed has no book, nothing is made up."""
    from tallyio.engine.config import CoreConfig
    from tallyio.engine.engine import Engine
    from tallyio.mempool.records import OpportunityKind

    addr = "0x" + "ab" * 20
    with Engine(CoreConfig.replay(aave_pool=addr, aave_data_provider=addr, aave_oracle=addr)) as engine:
        kinds = set()
        while (op := engine.next_opportunity_sync(timeout=30)) is not None:
            kinds.add(op.kind)
            engine.execute_strategy_sync(op)
    assert OpportunityKind.LIQUIDATION not in kinds and engine.lending.book is None


# ---- the dry run of a liquidation -----------------------------------------------------------------

def test_the_dry_run_of_a_liquidation():
    from tallyio.engine.executors import DryRunExecutor
    from tallyio.engine.liquidation import FundingSwapAction
    from tallyio.engine.records import ExecutionStatus, LiquidationAction, SwapAction
    from tallyio.engine.strategy import StrategyContext
    from tallyio.mempool import PoolTable, V2Pool

    feed = LendingFeed(POOL, ORACLE, PROVIDER, lambda op: None, eth_asset=WETH)
    feed.load_snapshot(make_book().snapshot(block=1))
    feed.on_head(header(2, T0 + 24))
    book = feed.book
    healthy = [u for u in book.users() if book.account_data(u, T0 + 36).health_factor >= 10**18]
    [op, *_] = book.opportunities(T0 + 36, 3, 10**9, prices=[1_600 * 10**8, 10**8], among=healthy)
    table = PoolTable([V2Pool(b"\x01" * 20, b"\x02" * 20, b"\x03" * 20, 10**18, 10**18)])
    action = LiquidationAction(POOL, op.token_path[1], op.token_path[0], op.user, op.amount_in, opportunity=op)
    ctx = StrategyContext()
    run = lambda dry, actions: asyncio.run(dry.execute(actions, ctx))  # noqa: E731
    assert run(DryRunExecutor(table), [action]).status is ExecutionStatus.FAILED
    dry = DryRunExecutor(table, liquidations=lambda a: feed.simulate(a.user, a.collateral_asset, a.debt_asset,
                                                                     a.debt_to_cover))
    # at the book's own prices the account is healthy: the pool reverts (Aave's error 45)
    result = run(dry, [action])
    assert result.status is ExecutionStatus.REVERTED and "HEALTH_FACTOR_NOT_BELOW_THRESHOLD" in result.error
    feed.book.set_price(0, 1_600 * 10**8)
    funding = FundingSwapAction(b"\x05" * 20, (WETH, USDC), op.amount_in)
    result = run(dry, [funding, action._replace(gas_limit=350_000)])
    assert result.status is ExecutionStatus.SIMULATED and result.gas_used == 350_000
    assert result.realized_profit == op.profit and dry.last_outputs == (op.amount_out,) and dry.funding_skipped == 1
    swap = SwapAction(router=b"\x02" * 20, path=(WETH, USDC), amount_in=1, min_amount_out=0)
    assert run(dry, [swap, action]).status is ExecutionStatus.FAILED


# ---- the environment ---------------------------------------------------------------------------

def test_the_aave_fields_come_from_the_environment():
    from tallyio.engine.config import CoreConfig
    from tallyio.errors import ConfigError

    env = {"TALLYIO_REPLAY_PATH": "/tmp/rec.tio", "TALLYIO_AAVE_POOL": "0x" + "11" * 20,
           "TALLYIO_AAVE_DATA_PROVIDER": "0x" + "22" * 20, "TALLYIO_AAVE_ORACLE": "0x" + "33" * 20,
           "TALLYIO_AAVE_ETH_ASSET": "0x" + "44" * 20, "TALLYIO_AAVE_FROM_BLOCK": "1500",
           "TALLYIO_AAVE_BLOCK_SECONDS": "2"}
    config = CoreConfig.from_env(env)
    assert (config.aave_pool, config.aave_oracle, config.aave_eth_asset, config.aave_from_block,
            config.aave_block_seconds) == ("0x" + "11" * 20, "0x" + "33" * 20, "0x" + "44" * 20, 1500, 2)
    assert CoreConfig.from_env({**env, "TALLYIO_AAVE_ETH_ASSET": "off"}).aave_eth_asset is None
    for variable, value, words in (("TALLYIO_AAVE_POOL", "0x12", "must be None or an address"),
                                   ("TALLYIO_AAVE_ORACLE", "none", "aave_oracle must be set too"),
                                   ("TALLYIO_AAVE_BLOCK_SECONDS", "0", "aave_block_seconds must be an int"),
                                   ("TALLYIO_AAVE_FROM_BLOCK", "-5", "aave_from_block must be an int"),
                                   ("TALLYIO_AAVE_FROM_BLOCK", "soon", "expected an integer")):
        with pytest.raises(ConfigError, match=f"^{variable}=.*{words}"):
            CoreConfig.from_env({**env, variable: value})
    with pytest.raises(ConfigError, match="^TALLYIO_NODE_URL=.*an Aave market is followed live from a ws://"):
        CoreConfig.from_env({**env, "TALLYIO_REPLAY_PATH": "", "TALLYIO_NODE_URL": "http://127.0.0.1:1"})


def test_a_big_book_freezes_the_cyclic_gc_after_its_resync():
    import gc

    feed = LendingFeed(POOL, ORACLE, PROVIDER, lambda op: None, freeze_gc_at=30)
    small = LendingFeed(POOL, ORACLE, PROVIDER, lambda op: None, freeze_gc_at=None)
    before = gc.get_freeze_count()
    try:
        small.load_snapshot(make_book(40).snapshot(1))
        assert small.stats()["gc_freezes"] == 0 and gc.get_freeze_count() == before
        feed.load_snapshot(make_book(20).snapshot(1))
        assert feed.stats()["gc_freezes"] == 0
        feed.load_snapshot(make_book(40).snapshot(2))
        assert feed.stats()["gc_freezes"] == 1 and gc.get_freeze_count() > before
        assert gc.is_tracked(feed.book._accounts[user(1)][0])
    finally:
        gc.unfreeze()
    with pytest.raises(ValueError, match="freeze_gc_at must be None or an int >= 0"):
        LendingFeed(POOL, ORACLE, PROVIDER, lambda op: None, freeze_gc_at=-1)

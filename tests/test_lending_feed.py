"""The live wiring of liquidations without a chain: ``OpportunityQueue.push``
(LIQUIDATION records through the native queue the analyzer uses),
``LendingFeed`` (what a scan reports, pending oracle updates, errors -> resync),
``read_reserves`` over a scripted node, the Aave fields of ``CoreConfig``, and
the Aave part of ``NodeSource`` against a small fake websocket node (logs that
come before their head wait for it; a removed log triggers a resync; logs
during a resync are held). The real market: tests/test_liquidation_engine_anvil.py."""
import json
import select
import threading
import time

import pytest

from tallyio.amm.aave import ReserveConfig
from tallyio.eth.aave import AAVE_TOPICS, SET_ASSET_PRICE_SELECTOR
from tallyio.eth.types import AavePriceUpdate, AaveTokenEvent, BlockHeader, PendingTx
from tallyio.mempool._opportunity import OpportunityQueue
from tallyio.mempool.lending import LendingReserve
from tallyio.mempool.lending_feed import LendingFeed, read_reserves
from tallyio.mempool.records import Opportunity, OpportunityKind

RAY = 10**27
A, D = b"\x0a" * 20, b"\x0d" * 20          # collateral-ish asset (18 dec), debt-ish asset (6 dec)
A_TOKEN, A_DEBT, D_TOKEN, D_DEBT = b"\x1a" * 20, b"\x2a" * 20, b"\x1d" * 20, b"\x2d" * 20
POOL, ORACLE = b"\x99" * 20, b"\x0c" * 20
RESERVES = [LendingReserve(ReserveConfig(A, 18, 8000, 8500, 10500, 1000), A_TOKEN, A_DEBT),
            LendingReserve(ReserveConfig(D, 6, 8000, 8500, 10500, 1000), D_TOKEN, D_DEBT)]


def user(i):
    return bytes([0x50 + i]) * 20


def header(number, ts=1_000, base_fee=10**9):
    return BlockHeader(number, number.to_bytes(32, "big"), (number - 1).to_bytes(32, "big"), ts, base_fee,
                       30_000_000, 0, 0)


def liquidation(**changes):
    fields = dict(kind=OpportunityKind.LIQUIDATION, trigger_tx=None, pools=(POOL,), token_path=(D, A),
                  amount_in=1_800 * 10**6, profit=80 * 10**6, gas_estimate=400_000, base_fee_per_gas=10**9,
                  profit_net_of_gas=79 * 10**6, block_number=5, received_ns=11, detected_ns=12, user=user(1),
                  amount_out=94 * 10**16, profit_net_of_gas_eth=None)
    fields.update(changes)
    return Opportunity(**fields)


# ---- OpportunityQueue.push ----------------------------------------------------------------

def test_push_round_trips_every_field_of_a_liquidation():
    q = OpportunityQueue(capacity=8)
    ops = [liquidation(),
           liquidation(trigger_tx=b"\x77" * 32, profit=-5, profit_net_of_gas=-2**200, profit_net_of_gas_eth=3 * 10**18,
                       amount_in=2**255, amount_out=2**256 - 1, user=user(2), block_number=2**40)]
    for op in ops:
        assert q.push(op) is True
    assert [q.get(), q.get()] == ops and q.get() is None
    back = ops[1]
    assert back.kind is OpportunityKind.LIQUIDATION and back.pool_kinds == ()
    stats = q.stats()
    assert stats["received"] == 2 and stats["processed"] == 2 and stats["dropped"] == 0 and stats["in_flight"] == 0


def test_push_refuses_what_is_not_a_well_formed_liquidation_and_queues_nothing():
    q = OpportunityQueue(capacity=4)
    cases = [("not an opportunity", TypeError, "push takes an Opportunity"),
             (liquidation(kind=OpportunityKind.BACKRUN), ValueError, "LIQUIDATION"),
             (liquidation(pools=(POOL, POOL)), ValueError, "one pool"),
             (liquidation(user=None), ValueError, "user"),
             (liquidation(user=b"short"), ValueError, "Opportunity.user must be 20 bytes"),
             (liquidation(trigger_tx=b"\x01" * 31), ValueError, "Opportunity.trigger_tx must be 32 bytes"),
             (liquidation(amount_in=-1), ValueError, "Opportunity.amount_in"),
             (liquidation(profit=2**255), ValueError, "Opportunity.profit"),
             (liquidation(profit_net_of_gas=1.5), TypeError, "Opportunity.profit_net_of_gas")]
    for op, error, message in cases:
        with pytest.raises(error, match=message):
            q.push(op)
    assert q.stats()["received"] == 0 and len(q) == 0


def test_push_is_drop_oldest_counted_and_wakes_an_armed_consumer():
    q = OpportunityQueue(capacity=2)
    assert q.arm() is True                        # the consumer is about to sleep
    for n in range(5):
        q.push(liquidation(block_number=n))
    assert select.select([q.wake_fd], [], [], 5.0)[0], "the push woke the consumer"
    assert q.clear_wake() and q.stats()["wakes"] == 1     # one wake-up for the sleep, not one per record
    q.disarm()
    got = q.get_many(10)
    stats = q.stats()
    assert [op.block_number for op in got] == [3, 4]
    assert stats["received"] == 5 and stats["dropped"] == 3
    assert stats["received"] == stats["processed"] + stats["dropped"] + stats["in_flight"]


@pytest.mark.concurrency
def test_liquidations_pushed_beside_nogil_producers_are_each_taken_exactly_once():
    """Two Python threads push liquidations while two threads push synthetic records from
    nogil loops (as the analyzer's workers do) and one consumer takes: every record once."""
    from conftest import run_threads, scaled

    per_thread = scaled(4000, 500) // 100 * 100     # whole bursts of 100
    q = OpportunityQueue(capacity=1 << 16)
    taken = []
    done = threading.Event()

    def pusher(base):
        for n in range(per_thread):
            assert q.push(liquidation(block_number=base + n))

    def synthetic(tag):
        for k in range(0, per_thread, 100):            # many short nogil bursts, interleaved
            q._push_synthetic(100, tag=tag + k)

    def consumer():
        while not done.is_set() or len(q):
            op = q.get()
            if op is not None:
                taken.append(op)

    def producers():
        run_threads((pusher, (0,)), (pusher, (10**6,)), (synthetic, (2 * 10**6,)), (synthetic, (3 * 10**6,)))
        done.set()

    run_threads((producers, ()), (consumer, ()))
    liquidations = [op.block_number for op in taken if op.kind is OpportunityKind.LIQUIDATION]
    synthetics = [op.received_ns for op in taken if op.kind is OpportunityKind.BACKRUN]
    assert sorted(liquidations) == list(range(per_thread)) + list(range(10**6, 10**6 + per_thread))
    assert sorted(synthetics) == list(range(2 * 10**6, 2 * 10**6 + per_thread)) + \
        list(range(3 * 10**6, 3 * 10**6 + per_thread))
    stats = q.stats()
    assert stats["received"] == 4 * per_thread == stats["processed"] and stats["dropped"] == 0


def test_analyzer_records_still_convert_beside_liquidations():
    q = OpportunityQueue(capacity=8)
    q._push_synthetic(1, tag=7)
    q.push(liquidation())
    first, second = q.get(), q.get()
    assert first.kind is OpportunityKind.BACKRUN and first.user is None and first.amount_out == 0
    assert second == liquidation()


# ---- LendingFeed ------------------------------------------------------------------------

def market(pushed=None, **kw):
    pushed = [] if pushed is None else pushed
    feed = LendingFeed(POOL, ORACLE, None, pushed.append, reserves=RESERVES, **kw)
    feed.book.set_price(0, 2_000 * 10**8)
    feed.book.set_price(1, 10**8)
    return feed, pushed


def borrower(feed, u, debt):
    """1 unit of A as collateral, ``debt`` (6 decimals) of D borrowed."""
    feed.book.set_position(u, 0, scaled_collateral=10**18, scaled_debt=0, use_as_collateral=True)
    feed.book.set_position(u, 1, scaled_collateral=0, scaled_debt=debt, use_as_collateral=False)


def price_update(asset, price, block=9):
    return AavePriceUpdate(ORACLE, asset, price, False, block_number=block, block_timestamp=1_000)


def test_a_scan_reports_new_and_changed_liquidatable_accounts_once():
    feed, pushed = market()
    borrower(feed, user(1), 1_800 * 10**6)       # HF 0.944: under water
    borrower(feed, user(2), 1_000 * 10**6)       # HF 1.7
    assert feed.scan() == 0, "no head yet: no block to size for"
    feed.on_head(header(7, ts=5_000))
    assert feed.scan() == 1 and [op.user for op in pushed] == [user(1)]
    assert pushed[0].block_number == 8 and pushed[0].trigger_tx is None and pushed[0].base_fee_per_gas == 10**9
    feed.on_head(header(8, ts=5_012))
    assert feed.scan() == 0, "nothing changed for it: not reported every block"
    # a mined price drop touches every holder of A: both are under water now and both reported
    assert feed.apply(price_update(A, 1_100 * 10**8)) is True
    assert feed.scan() == 2 and {op.user for op in pushed[1:]} == {user(1), user(2)}
    # a token event of user 2 (more debt) re-reports it alone
    event = AaveTokenEvent(D_DEBT, "mint", user(2), user(2), 10 * 10**6, 0, RAY, block_number=10)
    assert feed.apply(event) is True
    before = {op.user: op for op in pushed[1:3]}[user(2)]
    assert feed.scan() == 1 and pushed[-1].user == user(2) and pushed[-1].amount_in > before.amount_in
    assert feed.next_block == 11
    stats = feed.stats()
    assert stats["pushed"] == 4 and stats["accounts"] == 2 and stats["liquidatable"] == 2 and stats["scans"] == 4


def test_a_pending_oracle_update_reports_its_holders_at_the_new_price():
    feed, pushed = market(eth_asset=A)
    borrower(feed, user(1), 1_500 * 10**6)       # HF 1.13 at 2000, under at 1700
    borrower(feed, user(2), 1_000 * 10**6)       # HF 1.7 at 2000, 1.445 at 1700
    feed.on_head(header(20, ts=9_000))
    assert feed.scan() == 0
    data = SET_ASSET_PRICE_SELECTOR + bytes(12) + A + (1_700 * 10**8).to_bytes(32, "big")
    tx = PendingTx(b"\x33" * 32, b"\x44" * 20, ORACLE, 1, 0, 80_000, 2 * 10**9, 10**9, data, 2, 42)
    assert feed.on_pending(tx) == 1
    [op] = pushed
    assert op.user == user(1) and op.trigger_tx == tx.hash and op.block_number == 21 and op.received_ns == 42
    assert op.profit_net_of_gas is not None and op.profit_net_of_gas_eth is not None
    assert feed.book.price(0) == 2_000 * 10**8, "a pending price never changes the book"
    assert feed.on_pending(tx._replace(to=b"\x01" * 20)) == 0, "not the oracle"
    assert feed.on_pending(tx._replace(input=data[:-1])) == 0 and feed.counts["errors"] == 1, "malformed"
    assert feed.stats()["pending_pushed"] == 1 and feed.stats()["pending_updates"] == 1


def test_an_event_the_book_cannot_apply_asks_for_a_resync_and_a_refused_push_is_counted():
    pushed = []
    feed, _ = market(pushed)
    burn = AaveTokenEvent(A_TOKEN, "burn", user(3), user(3), 10**18, 0, RAY, block_number=4)
    assert feed.apply(burn) is False and feed.needs_resync and feed.counts["errors"] == 1
    refusing = LendingFeed(POOL, ORACLE, None, lambda op: False, reserves=RESERVES)
    refusing.book.set_price(0, 2_000 * 10**8)
    refusing.book.set_price(1, 10**8)
    borrower(refusing, user(1), 1_800 * 10**6)
    refusing.on_head(header(3))
    assert refusing.scan() == 0 and refusing.stats()["refused"] == 1


def test_feed_arguments_are_checked():
    with pytest.raises(ValueError, match="pool must be a 20-byte address"):
        LendingFeed(b"x", ORACLE, None, print, reserves=RESERVES)
    with pytest.raises(ValueError, match="data_provider"):
        LendingFeed(POOL, ORACLE, None, print)
    with pytest.raises(TypeError, match="push must be callable"):
        LendingFeed(POOL, ORACLE, b"\x01" * 20, None)
    with pytest.raises(ValueError, match="block_seconds"):
        LendingFeed(POOL, ORACLE, b"\x01" * 20, print, block_seconds=0)
    with pytest.raises(ValueError, match="eth_asset"):
        LendingFeed(POOL, ORACLE, None, print, reserves=RESERVES, eth_asset=b"\x05" * 20)
    feed, _ = market()
    assert feed.apply(price_update(b"\x05" * 20, 1)) is False, "not a reserve of this market"


def _word(value):
    return value.to_bytes(32, "big")


def _addr(a):
    return bytes(12) + a


def scripted_node(reserves, no_debt_token=()):
    """A ``call(method, params)`` answering the Pool's getReservesList and the data provider's getters."""
    from tallyio.mempool import lending_feed as lf

    def call(method, params):
        assert method == "eth_call"
        data = bytes.fromhex(params[0]["data"][2:])
        sel, arg = data[:4], data[16:36]
        if sel == lf._GET_RESERVES_LIST:
            out = _word(32) + _word(len(reserves)) + b"".join(_addr(r.config.asset) for r in reserves)
        else:
            r = next(r for r in reserves if r.config.asset == arg)
            c = r.config
            if sel == lf._GET_RESERVE_CONFIGURATION:
                out = b"".join(_word(v) for v in (c.decimals, c.ltv, c.liquidation_threshold, c.liquidation_bonus,
                                                  1000, 1, 1, 0, 1, 0))
            elif sel == lf._GET_RESERVE_TOKENS:
                debt = bytes(20) if c.asset in no_debt_token else r.debt_token
                out = _addr(r.a_token) + _addr(b"\x00" * 20) + _addr(debt)
            else:
                assert sel == lf._GET_LIQUIDATION_PROTOCOL_FEE
                out = _word(c.liquidation_protocol_fee)
        return "0x" + out.hex()
    return call


def test_read_reserves_builds_the_book_from_the_data_provider():
    assert read_reserves(scripted_node(RESERVES), POOL, b"\x01" * 20) == RESERVES
    assert read_reserves(scripted_node(RESERVES, no_debt_token={A}), POOL, b"\x01" * 20) == RESERVES[1:]
    feed = LendingFeed(POOL, ORACLE, b"\x01" * 20, print)
    addresses = feed.log_addresses(scripted_node(RESERVES))
    assert addresses == [POOL, ORACLE, A_TOKEN, A_DEBT, D_TOKEN, D_DEBT]
    assert feed.book.reserves == tuple(RESERVES)
    with pytest.raises(ValueError, match="lists no reserve"):
        read_reserves(scripted_node([]), POOL, b"\x01" * 20)
    with pytest.raises(ValueError, match="not 0x-hex"):
        read_reserves(lambda method, params: None, POOL, b"\x01" * 20)


# ---- CoreConfig -------------------------------------------------------------------------

def test_config_aave_fields_are_validated_naming_the_field():
    from tallyio.engine.config import CoreConfig
    from tallyio.errors import ConfigError

    addr = "0x" + "ab" * 20
    ok = CoreConfig(node_url="ws://127.0.0.1:1", aave_pool=addr, aave_data_provider=addr, aave_oracle=addr)
    assert ok.aave and not CoreConfig().aave and ok.aave_block_seconds == 12
    cases = [(dict(aave_pool="0x12"), "CoreConfig.aave_pool must be None or an address"),
             (dict(aave_pool=addr), "CoreConfig.aave_data_provider must be set too"),
             (dict(aave_pool=addr, aave_data_provider=addr), "CoreConfig.aave_oracle must be set too"),
             (dict(aave_eth_asset=addr), "CoreConfig.aave_eth_asset needs an Aave market"),
             (dict(aave_block_seconds=0), "CoreConfig.aave_block_seconds"),
             (dict(aave_from_block=-1), "CoreConfig.aave_from_block")]
    for kw, message in cases:
        with pytest.raises(ConfigError, match=message):
            CoreConfig(node_url="ws://127.0.0.1:1", **kw)
    with pytest.raises(ConfigError, match="ws:// or wss:// node_url"):
        CoreConfig(node_url="http://127.0.0.1:1", aave_pool=addr, aave_data_provider=addr, aave_oracle=addr)
    # a replay of a recording made with a market (docs/liquidations.md: recording a market)
    assert CoreConfig.replay("/tmp/x.tio", aave_pool=addr, aave_data_provider=addr, aave_oracle=addr).aave


# ---- NodeSource: the Aave subscription ------------------------------------------------

class _Lending:
    """The node source's lending hooks, recording what it was asked."""

    def __init__(self, hold_during_resync=None):
        self.resyncs = []
        self.hold_during_resync = hold_during_resync

    def log_addresses(self, call):
        return [POOL, ORACLE, A_TOKEN]

    def resync(self, call, block):
        self.resyncs.append(block)
        if self.hold_during_resync is not None:
            self.hold_during_resync.set()
            call("eth_chainId", [])       # notifications the fake sends meanwhile arrive while we wait


class AaveFakeNode:
    """A websocket server: each eth_subscribe gets its own id (0x1 pending, 0x2 heads, 0x3... logs);
    eth_blockNumber answers 0x10; after the lending resync's eth_chainId (first connection) it
    plays ``script`` (a list of (subscription, result) notifications)."""

    def __init__(self, script):
        from websockets.sync.server import serve

        self.script = script
        self.connections = 0
        self.log_filters = []
        self.played = False
        self._server = serve(self._handle, "127.0.0.1", 0, max_size=None, compression=None)
        self.port = self._server.socket.getsockname()[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def _handle(self, ws):
        self.connections += 1
        subs = 0
        try:
            for message in ws:
                request = json.loads(message)
                method = request["method"]
                if method == "eth_subscribe":
                    subs += 1
                    if request["params"][0] == "logs":
                        self.log_filters.append(request["params"][1])
                    ws.send(json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": hex(subs)}))
                    continue
                if method == "txpool_content":
                    ws.send(json.dumps({"jsonrpc": "2.0", "id": request["id"],
                                        "error": {"code": -32601, "message": "Method not found"}}))
                    continue
                if method == "eth_chainId" and not self.played:
                    self.played = True
                    for sub, result in self.script:      # before the answer: they arrive during the resync
                        ws.send(json.dumps({"jsonrpc": "2.0", "method": "eth_subscription",
                                            "params": {"subscription": sub, "result": result}}))
                ws.send(json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": "0x10"}))
        except Exception:
            pass

    def close(self):
        self._server.shutdown()


def _log(block, index, *, removed=False, emitter=ORACLE, price=1_700 * 10**8):
    return {"address": "0x" + emitter.hex(), "topics": [AAVE_TOPICS["AssetPriceUpdated"]],
            "data": "0x" + (_addr(A) + _word(price) + _word(0)).hex(), "blockNumber": hex(block),
            "logIndex": hex(index), "transactionHash": "0x" + "11" * 32, "removed": removed}


def _head(number, ts):
    return {"number": hex(number), "hash": "0x" + number.to_bytes(32, "big").hex(),
            "parentHash": "0x" + (number - 1).to_bytes(32, "big").hex(), "timestamp": hex(ts),
            "baseFeePerGas": "0x7", "gasLimit": "0x1c9c380", "gasUsed": "0x0"}


def test_node_source_times_aave_logs_from_their_heads_and_resyncs_on_a_removed_log():
    from tallyio.mempool import NodeSource

    held = threading.Event()
    lending = _Lending(held)
    # subscriptions: 0x1 heads (pending=False), 0x2 the Aave logs
    script = [("0x2", _log(0x10, 0)),               # during the resync, of block 16 (<= the resync's): dropped
              ("0x2", _log(0x11, 1)),               # during the resync, of block 17: delivered after it
              ("0x2", _log(0x12, 0)),               # block 18: waits for head 18
              ("0x1", _head(0x11, 1_700)),          # head 17: times the held log of block 17
              ("0x1", _head(0x12, 1_712)),          # head 18: releases block 18's log (before the head)
              ("0x2", _log(0x12, 1, emitter=b"\x05" * 20)),  # not an address we follow
              ("0x2", {"topics": []}),              # not an Aave event
              ("0x2", _log(0x12, 2, removed=True)),  # a reorg: resync
              ("0x2", "not an object"),
              ("0x2", dict(_log(0x12, 3), data="0x00")),        # an Aave topic with too little data
              ("0x2", dict(_log(0x12, 3), address="0x12")),     # not an address
              ("0x2", _log(0x12, 4)),               # its head is known: timed at once
              ("0x2", _log(0x14, 0)),               # block 20: waits for a head ...
              ("0x1", _head(0x16, 1_800))]          # ... that never comes (22 follows 18): resync
    fake = AaveFakeNode(script)
    records = []
    try:
        with NodeSource(f"ws://127.0.0.1:{fake.port}", records.append, pending=False, lending=lending) as source:
            deadline = time.monotonic() + 30
            while len(lending.resyncs) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            stats = source.stats()
    finally:
        fake.close()
    assert held.is_set() and lending.resyncs == [16, 16], "connected, then the removed log"
    kinds = [(type(r).__name__, r.block_number if not isinstance(r, BlockHeader) else r.number) for r in records]
    # the heads go out as they come; the logs timed by them were held until the resync ended
    assert kinds == [("BlockHeader", 17), ("BlockHeader", 18), ("BlockHeader", 22), ("AavePriceUpdate", 17),
                     ("AavePriceUpdate", 18), ("AavePriceUpdate", 18)]
    timed = [r for r in records if isinstance(r, AavePriceUpdate)]
    assert [(r.block_timestamp, r.log_index) for r in timed] == [(1_700, 1), (1_712, 0), (1_712, 4)]
    assert stats["lending_events"] == 3 and stats["lending_removed"] == 1 and stats["lending_resyncs"] == 2
    reasons = stats["skipped_by_reason"]
    assert reasons["unknown_address"] == 1 and reasons["unknown_topic"] == 1 and reasons["bad_type"] == 1
    assert reasons["bad_aave_log"] == 1 and reasons["bad_field"] == 1 and stats["gap_blocks"] == 3
    [aave_filter] = fake.log_filters
    assert aave_filter["address"] == sorted("0x" + a.hex() for a in (POOL, ORACLE, A_TOKEN))
    assert set(aave_filter["topics"][0]) == set(AAVE_TOPICS.values())


def test_strategy_funding_arguments_are_checked():
    from tallyio.engine.liquidation import FundingSwapAction, LiquidationStrategy
    from tallyio.engine.strategy import StrategyContext

    with pytest.raises(ValueError, match="go together"):
        LiquidationStrategy(funding_router=b"\x01" * 20)
    with pytest.raises(ValueError, match="weth must be a 20-byte address"):
        LiquidationStrategy(funding_router=b"\x01" * 20, weth=b"x")
    # the debt token IS the router's WETH: nothing to swap into; declined as before
    s = LiquidationStrategy(balances={}, funding_router=b"\x01" * 20, weth=D)
    assert s.on_opportunity(liquidation(), StrategyContext()) == [] and s.declined["no_debt_token"] == 1
    s = LiquidationStrategy(balances={D: 10**6}, funding_router=b"\x01" * 20, weth=b"\x0e" * 20)
    swap, action = s.on_opportunity(liquidation(), StrategyContext())
    assert isinstance(swap, FundingSwapAction) and swap.path == (b"\x0e" * 20, D)
    assert swap.amount_out == 1_799 * 10**6 and action.debt_to_cover == 1_800 * 10**6, "only the shortfall is bought"
    assert swap.to == swap.router and swap.reduces_exposure


def test_node_source_lending_arguments_are_checked():
    from tallyio.mempool import NodeSource

    with pytest.raises(ValueError, match="ws:// or wss:// only"):
        NodeSource("http://127.0.0.1:1", print, lending=_Lending())
    with pytest.raises(ValueError, match="heads=True"):
        NodeSource("ws://127.0.0.1:1", print, heads=False, lending=_Lending())
    with pytest.raises(TypeError, match="log_addresses"):
        NodeSource("ws://127.0.0.1:1", print, lending=object())

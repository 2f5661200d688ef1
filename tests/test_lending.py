"""Issue 15 without a chain: Aave log/call decoding (tallyio.eth.aave), scaled
balances replayed from token events against a model of ScaledBalanceTokenBase
(hypothesis), the PositionBook's bookkeeping and refusals, LiquidationStrategy's
declines, the liquidationCall encoding, and the deployer's input checks. The
real market is in tests/test_aave_anvil.py."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tallyio.amm.aave import RAY, ReserveConfig, ray_div, ray_mul
from tallyio.eth.aave import AAVE_TOPICS, SET_ASSET_PRICE_SELECTOR, decode_aave_log, decode_oracle_call
from tallyio.eth.types import (AaveCollateralToggle, AaveLiquidation, AavePriceUpdate, AaveReserveUpdate,
                               AaveTokenEvent, AaveUserAction, PendingTx)
from tallyio.mempool.lending import LendingReserve, PositionBook, scaled_deltas
from tallyio.mempool.records import Opportunity, OpportunityKind

eth_abi = pytest.importorskip("eth_abi")

POOL, ORACLE = b"\x99" * 20, b"\x0c" * 20
A, D = b"\x0a" * 20, b"\x0d" * 20
AT, VT, ADT, VDT = b"\x1a" * 20, b"\x2a" * 20, b"\x1d" * 20, b"\x2d" * 20
U, V = b"\x55" * 20, b"\x66" * 20


def topic(address):
    return "0x" + (bytes(12) + address).hex()


def log(name, indexed, types, values, emitter=POOL, **extra):
    entry = {"address": "0x" + emitter.hex(), "topics": [AAVE_TOPICS[name]] + [topic(a) for a in indexed],
             "data": "0x" + eth_abi.encode(types, values).hex(), "blockNumber": "0x7", "logIndex": "0x3",
             "transactionHash": "0x" + "ee" * 32, "blockTimestamp": "0x64"}
    entry.update(extra)
    return entry


def book(**kw):
    return PositionBook(POOL, [LendingReserve(ReserveConfig(A, 18, 8000, 8500, 10500, 1000), AT, VT),
                               LendingReserve(ReserveConfig(D, 6, 8000, 8500, 10500, 1000), ADT, VDT)],
                        oracle=ORACLE, **kw)


# ---- decoding ----

def test_every_aave_event_decodes_to_its_record_with_its_place_in_the_chain():
    ru = decode_aave_log(log("ReserveDataUpdated", [A], ["uint256"] * 5, [1, 2, 3, 4 * RAY, 5 * RAY]))
    assert ru == AaveReserveUpdate(A, 1, 2, 3, 4 * RAY, 5 * RAY, 7, 3, b"\xee" * 32, 100, False, 0)
    sup = decode_aave_log(log("Supply", [A, U, b"\x00" * 20], ["address", "uint256"], ["0x" + V.hex(), 10]))
    assert (sup.kind, sup.reserve, sup.user, sup.amount) == ("supply", A, U, 10)
    bor = decode_aave_log(log("Borrow", [A, U, b"\x00" * 20], ["address", "uint256", "uint8", "uint256"],
                              ["0x" + V.hex(), 11, 2, 5]))
    assert (bor.kind, bor.user, bor.amount) == ("borrow", U, 11)
    wd = decode_aave_log(log("Withdraw", [A, U, V], ["uint256"], [12]))
    rp = decode_aave_log(log("Repay", [A, U, V], ["uint256", "bool"], [13, False]))
    assert (wd.kind, wd.amount, rp.kind, rp.amount) == ("withdraw", 12, "repay", 13)
    liq = decode_aave_log(log("LiquidationCall", [A, D, U], ["uint256", "uint256", "address", "bool"],
                              [14, 15, "0x" + V.hex(), True]))
    assert liq == AaveLiquidation(A, D, U, 14, 15, V, True, 7, 3, b"\xee" * 32, 100, False, 0)
    on = decode_aave_log(log("ReserveUsedAsCollateralEnabled", [A, U], [], []))
    off = decode_aave_log(log("ReserveUsedAsCollateralDisabled", [A, U], [], []))
    assert on == AaveCollateralToggle(A, U, True, 7, 3, b"\xee" * 32, 100) and off.enabled is False
    mint = decode_aave_log(log("Mint", [V, U], ["uint256"] * 3, [20, 5, RAY], emitter=AT))
    burn = decode_aave_log(log("Burn", [U, V], ["uint256"] * 3, [21, 6, RAY], emitter=AT))
    move = decode_aave_log(log("BalanceTransfer", [U, V], ["uint256"] * 2, [22, RAY], emitter=AT))
    assert mint == AaveTokenEvent(AT, "mint", U, V, 20, 5, RAY, 7, 3, b"\xee" * 32, 100)
    assert (burn.kind, burn.user, burn.other, burn.value) == ("burn", U, V, 21)
    assert (move.kind, move.user, move.other, move.value, move.balance_increase) == ("transfer", U, V, 22, 0)
    price = decode_aave_log(log("AssetPriceUpdated", [], ["address", "uint256", "uint256"],
                                ["0x" + A.hex(), 123, 9], emitter=ORACLE), received_ns=5)
    assert price == AavePriceUpdate(ORACLE, A, 123, False, 7, 3, b"\xee" * 32, 100, False, 5)
    assert isinstance(sup, AaveUserAction)


def test_foreign_and_malformed_logs():
    assert decode_aave_log({"topics": []}) is None
    assert decode_aave_log({"topics": ["0x" + "ab" * 32], "data": "0x"}) is None
    with pytest.raises(ValueError, match="Withdraw log has 2 topics, expected 4"):
        decode_aave_log(log("Withdraw", [A], ["uint256"], [1]))
    with pytest.raises(ValueError, match="ReserveDataUpdated log data has 64 bytes, expected at least 160"):
        decode_aave_log(log("ReserveDataUpdated", [A], ["uint256"] * 2, [1, 2]))
    with pytest.raises(ValueError, match="0x-prefixed hex"):
        decode_aave_log({**log("Withdraw", [A, U, V], ["uint256"], [1]), "data": "zz"})
    bad_topic = log("Withdraw", [A, U, V], ["uint256"], [1])
    bad_topic["topics"][1] = "0x1234"
    with pytest.raises(ValueError, match="a topic has 32 bytes"):
        decode_aave_log(bad_topic)


def pending(data, to=ORACLE):
    return PendingTx(b"\x77" * 32, U, to, 0, 0, 50_000, 10**9, 10**9, data, 2, 42)


def test_pending_set_asset_price_decodes_and_other_calls_do_not():
    data = SET_ASSET_PRICE_SELECTOR + eth_abi.encode(["address", "uint256"], ["0x" + A.hex(), 1700 * 10**8])
    update = decode_oracle_call(pending(data), ORACLE)
    assert update == AavePriceUpdate(ORACLE, A, 1700 * 10**8, True, transaction_hash=b"\x77" * 32, received_ns=42)
    assert decode_oracle_call(pending(data), POOL) is None                   # another oracle
    assert decode_oracle_call(pending(data)._replace(to=None)) is None       # a creation
    assert decode_oracle_call(pending(b"\x12\x34\x56\x78" + data[4:])) is None
    with pytest.raises(ValueError, match="64"):
        decode_oracle_call(pending(data + b"\x00"))
    with pytest.raises(ValueError, match="clean address word"):
        decode_oracle_call(pending(data[:4] + b"\x01" + data[5:]))


# ---- scaled balances: replaying the events of a model of ScaledBalanceTokenBase ----

class ScaledToken:
    """ScaledBalanceTokenBase's _mintScaled/_burnScaled/_transfer, as in 1.19.3, logging its events."""

    def __init__(self):
        self.scaled, self.last_index, self.events = {}, {}, []

    def _accrue(self, user, index):
        bal = self.scaled.get(user, 0)
        increase = ray_mul(bal, index) - ray_mul(bal, self.last_index.get(user, 0))
        self.last_index[user] = index
        return increase

    def mint(self, user, amount, index):
        if ray_div(amount, index) == 0:
            return
        increase = self._accrue(user, index)
        self.scaled[user] = self.scaled.get(user, 0) + ray_div(amount, index)
        self.events.append(AaveTokenEvent(AT, "mint", user, user, amount + increase, increase, index))

    def burn(self, user, amount, index):
        amount_scaled = ray_div(amount, index)
        if amount_scaled == 0 or amount_scaled > self.scaled.get(user, 0):
            return
        increase = self._accrue(user, index)
        self.scaled[user] -= amount_scaled
        if increase > amount:
            self.events.append(AaveTokenEvent(AT, "mint", user, user, increase - amount, increase, index))
        else:
            self.events.append(AaveTokenEvent(AT, "burn", user, V, amount - increase, increase, index))

    def transfer(self, sender, recipient, amount, index):
        amount_scaled = ray_div(amount, index)
        if amount_scaled > self.scaled.get(sender, 0):
            return
        for who in {sender, recipient}:
            inc = self._accrue(who, index)
            if inc:
                self.events.append(AaveTokenEvent(AT, "mint", who, POOL, inc, inc, index))
        self.scaled[sender] -= amount_scaled
        self.scaled[recipient] = self.scaled.get(recipient, 0) + amount_scaled
        self.events.append(AaveTokenEvent(AT, "transfer", sender, recipient, amount_scaled, 0, index))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["mint", "burn", "transfer"]), st.sampled_from([U, V]),
                          st.integers(1, 10**24), st.integers(0, 10**25)), min_size=1, max_size=30))
def test_replaying_token_events_gives_the_tokens_scaled_balances_exactly(steps):
    token, index = ScaledToken(), RAY
    for kind, user, amount, growth in steps:
        index += growth  # indexes only grow
        if kind == "mint":
            token.mint(user, amount, index)
        elif kind == "burn":
            token.burn(user, amount, index)
        else:
            token.transfer(user, V if user == U else U, amount, index)
    replayed = {}
    for event in token.events:
        for who, delta in scaled_deltas(event):
            replayed[who] = replayed.get(who, 0) + delta
    assert {k: v for k, v in replayed.items() if v} == {k: v for k, v in token.scaled.items() if v}


def test_scaled_deltas_refuses_nonsense():
    with pytest.raises(ValueError, match="index 0"):
        scaled_deltas(AaveTokenEvent(AT, "mint", U, U, 1, 0, 0))
    with pytest.raises(ValueError, match="unknown token event kind"):
        scaled_deltas(AaveTokenEvent(AT, "swap", U, U, 1, 0, RAY))
    assert scaled_deltas(AaveTokenEvent(AT, "transfer", U, U, 5, 0, RAY)) == ()


# ---- the book ----

def test_book_applies_records_and_refuses_what_it_cannot_follow():
    b = book()
    assert b.apply(AaveTokenEvent(AT, "mint", U, U, 10**18, 0, RAY)) is True
    assert b.apply(AaveTokenEvent(VDT, "mint", U, U, 10**9, 0, RAY)) is True
    assert b.scaled(U, 0) == (10**18, 0, False) and b.scaled(U, 1) == (0, 10**9, False)
    assert b.apply(AaveCollateralToggle(A, U, True)) is True
    assert b.scaled(U, 0)[2] is True
    assert b.apply(AaveTokenEvent(b"\x01" * 20, "mint", U, U, 1, 0, RAY)) is False     # not our token
    assert b.apply(AavePriceUpdate(ORACLE, A, 2000 * 10**8)) is True
    assert b.apply(AavePriceUpdate(POOL, D, 10**8)) is False                           # another oracle
    assert b.apply(AavePriceUpdate(ORACLE, D, 10**8, pending=True)) is False            # not mined yet
    assert b.apply(AaveUserAction("supply", A, U, 1)) is False
    assert b.apply(AaveCollateralToggle(b"\x02" * 20, U, True)) is False
    assert b.apply(AaveReserveUpdate(b"\x02" * 20, 0, 0, 0, RAY, RAY, block_timestamp=5)) is False
    assert b.apply("something else") is False
    with pytest.raises(ValueError, match="needs its block's timestamp"):
        b.apply(AaveReserveUpdate(A, 0, 0, 0, RAY, RAY))
    with pytest.raises(ValueError, match="reorged"):
        b.apply(AaveTokenEvent(AT, "mint", U, U, 1, 0, RAY, removed=True))
    with pytest.raises(ValueError, match="missed an earlier event"):
        b.apply(AaveTokenEvent(AT, "burn", V, V, 5, 0, RAY))
    assert b.scaled(V, 0) == (0, 0, False) and b.scaled(b"\x03" * 20, 0) == (0, 0, False)
    assert b.counts["token_events"] == 2 and b.counts["ignored"] >= 5
    assert len(b) == 2 and b.users() == [U, V]
    with pytest.raises(KeyError, match="not a reserve"):
        b.asset_index(b"\x02" * 20)


def test_book_constructor_checks():
    reserve = LendingReserve(ReserveConfig(A, 18, 8000, 8500, 10500, 1000), AT, VT)
    with pytest.raises(ValueError, match="20-byte"):
        PositionBook(b"\x01", [reserve])
    with pytest.raises(ValueError, match="at least one reserve"):
        PositionBook(POOL, [])
    with pytest.raises(TypeError, match="LendingReserve"):
        PositionBook(POOL, [reserve.config])
    with pytest.raises(ValueError, match="eth_asset"):
        PositionBook(POOL, [reserve], eth_asset=3)
    with pytest.raises(ValueError, match="gas_estimate"):
        PositionBook(POOL, [reserve], gas_estimate=5)
    b = book()
    with pytest.raises(ValueError, match="price"):
        b.set_price(0, -1)
    with pytest.raises(ValueError, match="indexes are > 0"):
        b.set_reserve_state(0, 0, 0, RAY, 0, 0)
    with pytest.raises(ValueError, match="scaled balances are >= 0"):
        b.set_position(U, 0, scaled_collateral=-1, scaled_debt=0, use_as_collateral=True)


def underwater_book(**kw):
    b = book(**kw)
    b.set_price(0, 2000 * 10**8)
    b.set_price(1, 10**8)
    # U: 1 A (collateral) against 1,800 D; V: 1 A against 1,000 D (healthy); W: 10 A against 17,500 D
    for user, debt in ((U, 1_800 * 10**6), (V, 1_000 * 10**6), (b"\x77" * 20, 17_500 * 10**6)):
        coll = 10 * 10**18 if user == b"\x77" * 20 else 10**18
        b.set_position(user, 0, scaled_collateral=coll, scaled_debt=0, use_as_collateral=True)
        b.set_position(user, 1, scaled_collateral=0, scaled_debt=debt, use_as_collateral=False)
    return b


def test_opportunities_are_the_liquidatable_accounts_best_first_with_profits_net_of_gas():
    b = underwater_book(eth_asset=0)
    assert set(b.liquidatable(0)) == {U, b"\x77" * 20}
    assert b.health_factors(0)[V] > 10**18
    ops = b.opportunities(0, 9, base_fee_per_gas=20 * 10**9)
    assert [op.user for op in ops] == [b"\x77" * 20, U]          # the larger profit first
    for op in ops:
        assert op.kind is OpportunityKind.LIQUIDATION and op.pools == (POOL,) and op.token_path == (D, A)
        assert op.block_number == 9 and op.trigger_tx is None
        # gas: 400k x 20 gwei = 0.008 ETH = 16 USD (A is ETH at 2,000) = 16 D (6 decimals)
        assert op.profit - op.profit_net_of_gas == 16 * 10**6
        # in wei: the collateral's value minus the debt paid, at 2,000 USD per ETH, minus the 0.008 ETH of gas
        value_usd8 = op.amount_out * 2000 * 10**8 // 10**18 - op.amount_in * 10**8 // 10**6
        assert op.profit_net_of_gas_eth == value_usd8 * 10**18 // (2000 * 10**8) - 8 * 10**15 > 0
    # without an ETH price the net figures are unknown, the gross stays
    plain = underwater_book().opportunities(0, 9, base_fee_per_gas=20 * 10**9)
    assert [o.profit for o in plain] == [o.profit for o in ops] and plain[0].profit_net_of_gas is None
    # a profit floor above what is on offer leaves nothing
    assert underwater_book(min_profit_base=10**15).opportunities(0, 9) == []
    assert b.best_liquidation(V, 0, 9) is None


def test_a_pending_price_is_valued_on_a_copy():
    b = underwater_book()
    data = SET_ASSET_PRICE_SELECTOR + eth_abi.encode(["address", "uint256"], ["0x" + A.hex(), 1100 * 10**8])
    ops = b.on_pending(pending(data), now_ts=0, block_number=10)
    assert {op.user for op in ops} == {U, V, b"\x77" * 20}
    assert all(op.trigger_tx == b"\x77" * 32 and op.received_ns == 42 for op in ops)
    assert b.price(0) == 2000 * 10**8 and set(b.liquidatable(0)) == {U, b"\x77" * 20}
    assert b.on_pending(pending(b"\x00" * 4), 0, 10) == []
    other = SET_ASSET_PRICE_SELECTOR + eth_abi.encode(["address", "uint256"], ["0x" + "02" * 20, 1])
    assert b.on_pending(pending(other), 0, 10) == []
    assert b.holders(0) == {U, V, b"\x77" * 20}
    # an update of D's price only concerns D's holders: a fourth account holding only A is not looked at
    b.set_position(b"\x44" * 20, 0, scaled_collateral=1, scaled_debt=10**18, use_as_collateral=False)
    d_up = SET_ASSET_PRICE_SELECTOR + eth_abi.encode(["address", "uint256"], ["0x" + D.hex(), 10**8 + 1])
    assert b"\x44" * 20 not in {op.user for op in b.on_pending(pending(d_up), 0, 10)}
    assert b"\x44" * 20 in b.liquidatable(0)


def test_indexes_project_forward_and_never_backward():
    b = underwater_book()
    b.set_reserve_state(1, RAY, 0, RAY, RAY // 10, 1_000)   # 10 % a year on D's debt
    assert b.normalized(1, 500) == (RAY, RAY)
    later = b.normalized(1, 1_000 + 365 * 24 * 3600)[1]
    assert RAY * 1105 // 1000 < later < RAY * 1106 // 1000  # compounded: e^0.1 = 1.10517
    assert b.account_data(V, 1_000 + 365 * 24 * 3600).total_debt_base > b.account_data(V, 1_000).total_debt_base


# ---- the strategy, the action, the deployer's checks ----

def liq_op(**kw):
    fields = dict(kind=OpportunityKind.LIQUIDATION, trigger_tx=None, pools=(POOL,), token_path=(D, A), amount_in=10,
                  profit=5, gas_estimate=400_000, base_fee_per_gas=0, profit_net_of_gas=None, block_number=1,
                  received_ns=0, detected_ns=0, user=U, amount_out=7)
    fields.update(kw)
    return Opportunity(**fields)


def test_liquidation_strategy_declines_and_says_why():
    from tallyio.engine.liquidation import LiquidationStrategy
    from tallyio.engine.strategy import StrategyContext

    ctx = StrategyContext()
    s = LiquidationStrategy(pools=[POOL], min_profit=3)
    assert s.on_opportunity(liq_op(kind=OpportunityKind.BACKRUN), ctx) == []
    assert s.on_opportunity(liq_op(user=None), ctx) == []
    assert s.on_opportunity(liq_op(pools=(b"\x01" * 20,)), ctx) == []
    assert s.on_opportunity(liq_op(profit=2), ctx) == []
    assert s.on_opportunity(liq_op(profit=9, profit_net_of_gas=2), ctx) == []
    assert s.declined == dict(kind=1, malformed=1, unknown_pool=1, thin=2, no_debt_token=0)
    [a] = LiquidationStrategy(receive_a_token=True, gas_limit=500_000).on_opportunity(liq_op(), ctx)
    assert (a.pool, a.collateral_asset, a.debt_asset, a.user, a.debt_to_cover, a.receive_a_token, a.gas_limit) == \
        (POOL, A, D, U, 10, True, 500_000)
    with pytest.raises(ValueError, match="min_profit"):
        LiquidationStrategy(min_profit=1.5)
    with pytest.raises(ValueError, match="gas_limit"):
        LiquidationStrategy(gas_limit=1)
    with pytest.raises(ValueError, match="20 bytes"):
        LiquidationStrategy(pools=[b"\x01"])


def test_liquidation_call_calldata_matches_the_abi():
    from tallyio.engine.node_executor import encode_liquidation_call

    data = encode_liquidation_call(A, D, U, 12345, True)
    assert data == bytes.fromhex("00a718a9") + eth_abi.encode(
        ["address", "address", "address", "uint256", "bool"], ["0x" + A.hex(), "0x" + D.hex(), "0x" + U.hex(), 12345,
                                                               True])
    for bad in (0, -1, 2**256, True, 1.0):
        with pytest.raises(ValueError, match="debt_to_cover"):
            encode_liquidation_call(A, D, U, bad)
    with pytest.raises(ValueError, match="20 bytes"):
        encode_liquidation_call(A[:5], D, U, 1)


def test_node_executor_refuses_an_action_it_does_not_know():
    import asyncio

    from tallyio.engine.keys import Signer
    from tallyio.engine.node_executor import NodeExecutor
    from tallyio.engine.strategy import StrategyContext

    with Signer.from_hex("11" * 32) as signer:
        ex = NodeExecutor("http://127.0.0.1:9", signer)   # never contacted: the action is refused first
        try:
            result = asyncio.run(ex.execute([object()], StrategyContext()))
        finally:
            ex.close()
    assert result.status.name == "REJECTED" and "cannot carry out object" in result.error


def test_deployer_input_checks():
    from tallyio.devnet._aave import AaveAssetSpec, link
    from tallyio.errors import DevnetError

    with pytest.raises(ValueError, match="decimals"):
        AaveAssetSpec("X", decimals=0)
    with pytest.raises(ValueError, match="price"):
        AaveAssetSpec("X", price=0)
    with pytest.raises(ValueError, match="ltv < liquidation_threshold"):
        AaveAssetSpec("X", ltv=9000, liquidation_threshold=8000)
    with pytest.raises(ValueError, match="liquidation_bonus"):
        AaveAssetSpec("X", liquidation_bonus=10_000)
    with pytest.raises(ValueError, match="protocol_fee"):
        AaveAssetSpec("X", liquidation_protocol_fee=10_001)
    artifact = {"bytecode": "0x60" + "__$" + "ab" * 17 + "$__" + "00",
                "linkReferences": {"L.sol": {"Lib": [{"start": 1, "length": 20}]}}}
    with pytest.raises(DevnetError, match="links Lib, which is not deployed"):
        link(artifact, "C", {})
    assert link(artifact, "C", {"Lib": "0x" + "12" * 20}) == bytes.fromhex("60" + "12" * 20 + "00")
    with pytest.raises(DevnetError, match="no creation bytecode"):
        link({"bytecode": "0x"}, "C", {})


class FakeRpc:
    """A node answering eth_blockNumber / eth_getLogs / eth_getBlockByNumber from a list: only to
    exercise catch_up's chunking and its timestamp look-up for logs without blockTimestamp, which
    anvil (the real node of test_aave_anvil) always fills in."""

    def __init__(self, logs):
        self.logs, self.calls = logs, []

    def call(self, method, *params):
        self.calls.append(method)
        if method == "eth_blockNumber":
            return hex(30)
        if method == "eth_getBlockByNumber":
            return {"timestamp": hex(1000 + int(params[0], 16))}
        lo, hi = int(params[0]["fromBlock"], 16), int(params[0]["toBlock"], 16)
        return [g for g in self.logs if lo <= int(g["blockNumber"], 16) <= hi]


def test_catch_up_reads_logs_in_chunks_and_fills_in_missing_block_times():
    b = book()
    first = log("ReserveDataUpdated", [A], ["uint256"] * 5, [0, 0, 0, 2 * RAY, 3 * RAY], blockNumber="0x5")
    del first["blockTimestamp"]
    second = log("Mint", [V, U], ["uint256"] * 3, [4 * 10**18, 0, 2 * RAY], emitter=AT, blockNumber="0x1c")
    rpc = FakeRpc([second, first])
    assert b.catch_up(rpc, ["0x" + POOL.hex()], 0, chunk=10) == 31
    assert rpc.calls.count("eth_getLogs") == 4 and rpc.calls.count("eth_getBlockByNumber") == 1
    assert b.normalized(0, 1005) == (2 * RAY, 3 * RAY) and b._state[0].last_update == 1005
    assert b.scaled(U, 0) == (2 * 10**18, 0, False)


def test_the_matrix_screen_reports_exactly_the_brute_force_liquidatable_set(seed):
    """PositionBook.liquidatable goes through the health matrix (float screen, exact decision):
    it must equal the exact per-account path over random books, price moves, pending prices,
    token events and index projections."""
    import random

    from tallyio.amm.aave import WAD

    rng = random.Random(seed)
    reserves = [LendingReserve(ReserveConfig(bytes([i + 1]) * 20, dec, 7000, 8000, 10500, 1000),
                               bytes([0x40 + i]) * 20, bytes([0x80 + i]) * 20) for i, dec in enumerate((18, 6, 8, 18))]
    b = PositionBook(POOL, reserves)
    prices = [2000 * 10**8, 10**8, 30_000 * 10**8, 7 * 10**8]
    for i, p in enumerate(prices):
        b.set_price(i, p)
        b.set_reserve_state(i, RAY + rng.randrange(10**25), 3 * 10**25, RAY + rng.randrange(10**25), 5 * 10**25, 0)
    users = [n.to_bytes(20, "big") for n in range(1, 301)]
    for u in users:
        c, d = rng.sample(range(4), 2)
        value = rng.randrange(10**11, 10**13)
        b.set_position(u, c, scaled_collateral=value * 10**reserves[c].config.decimals // prices[c], scaled_debt=0,
                       use_as_collateral=True)
        debt_value = value * 8000 // 10_000 * 10_000 // rng.randrange(9_000, 15_000)
        b.set_position(u, d, scaled_collateral=0, scaled_debt=debt_value * 10**reserves[d].config.decimals // prices[d],
                       use_as_collateral=False)

    def brute(now_ts, moved=None):
        return [u for u in users if b.account_data(u, now_ts, moved).health_factor < WAD]

    for step in range(25):
        now_ts = step * 3600 * 24 * 7
        asset = rng.randrange(4)
        if step % 3 == 0:
            b.set_price(asset, b.price(asset) * rng.randrange(90, 111) // 100)
        elif step % 3 == 1:
            u = rng.choice(users)
            b.apply(AaveTokenEvent(reserves[asset].debt_token, "mint", u, u, rng.randrange(1, 10**20), 0, RAY))
        moved = [b.price(i) for i in range(4)]
        moved[asset] = moved[asset] * rng.randrange(80, 100) // 100
        assert b.liquidatable(now_ts) == brute(now_ts)
        assert b.liquidatable(now_ts, moved) == brute(now_ts, moved)
        assert b.liquidatable(now_ts) == brute(now_ts), "the pending prices were put back"
    assert 0 < len(brute(now_ts)) < len(users)

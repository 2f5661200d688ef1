"""Issue 15 on a real Aave v3 market: ``@aave/core-v3`` 1.19.3 deployed on anvil
1.7.1 from its npm artifacts (three reserves: 18, 6 and 8 decimals), 28
borrowers with varied positions (one or two collateral assets, one or two debt
assets, partial withdrawals and repayments, a reserve switched off as
collateral, a month of interest), and a ``PositionBook`` kept ONLY from the
market's logs (decoded by ``tallyio.eth.aave``). Each test checks against the
chain at one block, using that block's timestamp for the normalized
income/debt:

* every account's tracked scaled balances equal ``scaledBalanceOf`` and its
  exact account data (all six values) equals ``getUserAccountData``;
* after price drops, the accounts the book reports liquidatable (and turns into
  opportunities) are exactly those whose on-chain health factor is below 1;
* a pending ``setAssetPrice`` seen before it is mined yields, one block early,
  exactly the opportunities the chain confirms once it is mined;
* ``LiquidationStrategy`` + ``NodeExecutor`` liquidate them: the collateral the
  liquidator really received (balance diff over the block) and the debt it
  covered equal the prediction TO THE WEI, and the book still equals the chain.

The tests share one chain (module fixtures) and run in file order; each sets
the prices it needs itself.
"""
import asyncio
import random

import pytest

pytestmark = pytest.mark.timeout(600)

LIQUIDATOR = 2
BORROWERS = range(3, 31)            # 28 accounts
LP = 1
WETH, USDC, WBTC = 0, 1, 2
START_PRICES = (2_000 * 10**8, 10**8, 30_000 * 10**8)
DROPPED_WETH = 1_700 * 10**8        # a 15 % drop: some accounts go under, most do not
DROPPED_WBTC = 24_000 * 10**8       # a 20 % drop, announced by a pending transaction


def raw(address):
    return bytes.fromhex(address[2:])


class Market:
    """The deployment, its accounts, and a PositionBook fed only from logs."""

    def __init__(self, node, sender, dep):
        from tallyio.devnet import dev_accounts
        from tallyio.mempool.lending import PositionBook

        self.node, self.rpc, self.sender, self.dep = node, node.rpc, sender, dep
        self.accounts = dev_accounts(31)
        self.book = PositionBook(raw(dep.pool), dep.lending_reserves(), eth_asset=WETH, oracle=raw(dep.oracle))
        self.next_block = 0
        self.users = [self.accounts[i] for i in BORROWERS]

    def sync(self):
        """Apply every log since the last sync; returns the latest block (number, timestamp)."""
        self.next_block = self.book.catch_up(self.rpc, self.dep.log_addresses(), self.next_block, chunk=50)
        return self.next_block - 1, self.timestamp(self.next_block - 1)

    def timestamp(self, block):
        return int(self.rpc.call("eth_getBlockByNumber", hex(block), False)["timestamp"], 16)

    def set_price(self, asset, price):
        from tallyio.devnet import set_price

        set_price(self.sender, self.accounts[0], self.dep, self.dep.reserves[asset].asset, price)

    def chain_account(self, user, block):
        from tallyio.devnet import user_account_data

        return user_account_data(self.rpc, self.dep.pool, user, block)

    def assert_book_equals_chain(self, block, ts):
        from tallyio.devnet import scaled_balances

        checked = 0
        for account in self.users + [self.accounts[LP], self.accounts[LIQUIDATOR]]:
            user = raw(account.address)
            for i, reserve in enumerate(self.dep.reserves):
                coll, debt, _flag = self.book.scaled(user, i)
                assert (coll, debt) == scaled_balances(self.rpc, reserve, account.address, block), \
                    f"{account.address} {reserve.spec.symbol} at block {block}"
            ours = self.book.account_data(user, ts)
            chain = self.chain_account(account.address, block)
            assert (ours.total_collateral_base, ours.total_debt_base, ours.available_borrows_base,
                    ours.current_liquidation_threshold, ours.ltv, ours.health_factor) == chain, \
                f"{account.address} at block {block} (time {ts})"
            checked += 1
        return checked


@pytest.fixture(scope="module")
def market(aave_node, aave_sender, aave_market):
    """28 borrowers with varied positions on the three reserves, then a month of interest."""
    from tallyio.devnet import borrow, repay, set_collateral, supply, withdraw

    m = Market(aave_node, aave_sender, aave_market)
    dep, s = aave_market, aave_sender
    assets = [r.asset for r in dep.reserves]
    units = [10**r.decimals for r in dep.reserves]
    lp = m.accounts[LP]
    for asset, amount in zip(assets, (2_000 * 10**18, 10_000_000 * 10**6, 200 * 10**8)):
        supply(s, lp, dep, asset, amount)
    rng = random.Random(15)
    for k, account in enumerate(m.users):
        collaterals = rng.sample([WETH, USDC, WBTC], rng.choice((1, 1, 2)))
        for c in collaterals:
            value_usd = rng.randrange(2_000, 60_000)
            amount = value_usd * units[c] * 10**8 // START_PRICES[c]
            supply(s, account, dep, assets[c], amount)
            if k % 5 == 1:  # part of it back out
                withdraw(s, account, dep, assets[c], amount // 10)
        if k % 7 == 3:  # holds a reserve it does not use as collateral
            extra = rng.choice([a for a in (WETH, USDC, WBTC) if a not in collaterals])
            supply(s, account, dep, assets[extra], units[extra] // 2)
            set_collateral(s, account, dep, assets[extra], False)
        others = [a for a in (WETH, USDC, WBTC) if a not in collaterals]
        debts = rng.sample(others, 1 if len(others) == 1 or k % 3 else 2)
        if k % 9 == 4:  # a debt in the collateral's own asset too (price-neutral part)
            debts.insert(0, collaterals[0])
        for n, d in enumerate(debts):
            available = m.chain_account(account.address, "latest")[2]
            share = rng.uniform(0.85, 0.99) if n == len(debts) - 1 else rng.uniform(0.2, 0.5)
            amount = int(available * share) * units[d] // START_PRICES[d]
            borrow(s, account, dep, assets[d], amount)
            if k % 4 == 2:
                repay(s, account, dep, assets[d], amount // 20)
    m.rpc.call("evm_increaseTime", 30 * 24 * 3600)
    m.rpc.call("evm_mine")
    return m


def test_tracked_positions_and_health_factors_equal_the_chain_for_every_account(market):
    block, ts = market.sync()
    assert len(market.book) >= len(BORROWERS) + 1
    assert market.assert_book_equals_chain(block, ts) == len(BORROWERS) + 2
    # interest really accrued since the last index update (the time projection is exercised)
    assert any(market.book.normalized(i, ts)[1] > market.book._state[i].variable_index for i in range(3))
    # a book resynced from chain calls agrees with the one kept from logs
    from tallyio.mempool.lending import PositionBook

    fresh = PositionBook(market.book.pool, market.book.reserves, oracle=market.book.oracle)
    users = [raw(a.address) for a in market.users]
    fresh.resync(market.rpc, users, block)
    for u in users:
        assert fresh.account_data(u, ts) == market.book.account_data(u, ts)
        assert all(fresh.scaled(u, i) == market.book.scaled(u, i) for i in range(3))


def test_price_drop_reports_exactly_the_accounts_the_chain_says_are_liquidatable(market):
    market.set_price(WETH, START_PRICES[WETH])
    block, ts = market.sync()
    assert market.book.liquidatable(ts) == [], "nobody is under water at the start prices"
    market.set_price(WETH, DROPPED_WETH)
    block, ts = market.sync()
    assert market.book.price(WETH) == DROPPED_WETH
    market.assert_book_equals_chain(block, ts)
    chain_under = {raw(a.address) for a in market.users if market.chain_account(a.address, block)[5] < 10**18}
    assert 0 < len(chain_under) < len(market.users), "the drop must split the accounts"
    assert set(market.book.liquidatable(ts)) == chain_under
    ops = market.book.opportunities(ts, block + 1, base_fee_per_gas=10**9)
    assert {op.user for op in ops} == chain_under
    for op in ops:
        assert op.amount_in > 0 and op.amount_out > 0 and op.profit > 0
        assert op.profit_net_of_gas is not None and op.profit_net_of_gas < op.profit
        assert op.profit_net_of_gas_eth is not None


def test_a_pending_oracle_update_is_an_opportunity_one_block_early(market):
    from tallyio.devnet import scaled_balances, set_automine, set_price
    from tallyio.eth.types import PendingTx

    market.set_price(WETH, DROPPED_WETH)
    market.set_price(WBTC, START_PRICES[WBTC])
    block, ts = market.sync()
    before = set(market.book.liquidatable(ts))
    set_automine(market.rpc, False)
    try:
        tx_hash = set_price(market.sender, market.accounts[0], market.dep, market.dep.reserves[WBTC].asset,
                            DROPPED_WBTC, wait=False)
        seen = market.rpc.call("eth_getTransactionByHash", "0x" + tx_hash.hex())
        assert seen["blockNumber"] is None, "still pending"
        pending = PendingTx(hash=tx_hash, sender=raw(seen["from"]), to=raw(seen["to"]), nonce=int(seen["nonce"], 16),
                            value=0, gas=int(seen["gas"], 16), max_fee_per_gas=int(seen["maxFeePerGas"], 16),
                            max_priority_fee_per_gas=int(seen["maxPriorityFeePerGas"], 16),
                            input=raw(seen["input"]), tx_type=2, received_ns=1)
        next_ts = ts + 12
        market.rpc.call("evm_setNextBlockTimestamp", next_ts)
        early = market.book.on_pending(pending, next_ts, block + 1, base_fee_per_gas=10**9)
        assert market.book.price(WBTC) == START_PRICES[WBTC], "a pending price never changes the book"
        market.rpc.call("evm_mine")
    finally:
        set_automine(market.rpc, True)
    mined, mined_ts = market.sync()
    assert (mined, mined_ts) == (block + 1, next_ts)
    chain_under = {raw(a.address) for a in market.users if market.chain_account(a.address, mined)[5] < 10**18}
    wbtc_holders = {raw(a.address) for a in market.users
                    if any(scaled_balances(market.rpc, market.dep.reserves[WBTC], a.address, mined))}
    # the update's opportunities: every account holding WBTC that it leaves under water; the others
    # under water do not hold WBTC and were already liquidatable (the previous block's opportunities)
    assert {op.user for op in early} == chain_under & wbtc_holders
    assert chain_under - wbtc_holders <= before
    assert chain_under - before, "the WBTC drop must put new accounts under water"
    assert all(op.trigger_tx == tx_hash and op.block_number == block + 1 for op in early)
    # and the book, now that the update is mined, predicts the same liquidations
    now = market.book.opportunities(mined_ts, mined + 1, among=wbtc_holders)
    assert [(o.user, o.amount_in, o.amount_out) for o in now] == [(o.user, o.amount_in, o.amount_out) for o in early]
    market.assert_book_equals_chain(mined, mined_ts)


def _dev_key(index):
    from eth_account import Account

    Account.enable_unaudited_hdwallet_features()
    # anvil's public test mnemonic: the keys hold nothing on any real chain
    return bytes(Account.from_mnemonic("test test test test test test test test test test test junk",
                                       account_path=f"m/44'/60'/0'/0/{index}").key).hex()


def test_liquidations_land_and_the_collateral_received_equals_the_prediction_to_the_wei(market):
    from tallyio.devnet import mint_tokens
    from tallyio.eth.aave import decode_aave_log
    from tallyio.eth.types import AaveLiquidation
    from tallyio.engine.keys import Signer
    from tallyio.engine.liquidation import LiquidationStrategy
    from tallyio.engine.node_executor import NodeExecutor
    from tallyio.engine.records import ExecutionStatus
    from tallyio.engine.strategy import StrategyContext

    market.set_price(WETH, DROPPED_WETH)
    market.set_price(WBTC, DROPPED_WBTC)
    liquidator = market.accounts[LIQUIDATOR]
    block, ts = market.sync()
    under = set(market.book.liquidatable(ts))
    assert len(under) >= 3

    def holdings_of_debt_tokens():
        return {raw(r.asset): market.sender.call(r.asset, "balanceOf(address)", liquidator.address,
                                                 returns=["uint256"])[0] for r in market.dep.reserves}

    # without the debt token the strategy declines and says what is missing
    strategy = LiquidationStrategy(pools={raw(market.dep.pool)}, balances=holdings_of_debt_tokens())
    ctx = StrategyContext(account=raw(liquidator.address), dry_run=False)
    first = market.book.opportunities(ts + 1, block + 1, 10**9)[0]
    assert strategy.on_opportunity(first, ctx) == [] and strategy.declined["no_debt_token"] == 1
    assert strategy.shortfalls[first.token_path[0]] == first.amount_in

    for r in market.dep.reserves:
        mint_tokens(market.sender, liquidator, r.asset, 10**12 * 10**r.decimals, approve=market.dep.pool)
    signer = Signer.from_hex(_dev_key(LIQUIDATOR))
    executor = NodeExecutor(market.node.url, signer, gas_limit=700_000)
    liquidated = 0
    try:
        for _ in range(12):
            block, ts = market.sync()
            next_ts = ts + 7
            ops = market.book.opportunities(next_ts, block + 1, 10**9)
            if not ops:
                break
            op = ops[0]
            strategy.balances = holdings_of_debt_tokens()
            [action] = strategy.on_opportunity(op, ctx)
            assert action.debt_to_cover == op.amount_in and action.expected_collateral == op.amount_out
            collateral = "0x" + op.token_path[1].hex()
            market.rpc.call("evm_setNextBlockTimestamp", next_ts)  # the block the prediction was made for
            sent = asyncio.run(executor.execute([action], ctx))
            assert sent.status is ExecutionStatus.SENT, sent
            done = asyncio.run(executor.follow(sent, 10.0))
            assert done.status is ExecutionStatus.LANDED, done
            receipt = market.rpc.call("eth_getTransactionReceipt", "0x" + sent.tx_hashes[0].hex())
            mined = int(receipt["blockNumber"], 16)
            assert mined == block + 1 and market.timestamp(mined) == next_ts
            got = (market.sender.call(collateral, "balanceOf(address)", liquidator.address, returns=["uint256"],
                                      block=hex(mined))[0]
                   - market.sender.call(collateral, "balanceOf(address)", liquidator.address, returns=["uint256"],
                                        block=hex(mined - 1))[0])
            assert got == op.amount_out == done.realized_profit, "collateral received vs prediction, to the wei"
            [event] = [e for e in map(decode_aave_log, receipt["logs"]) if isinstance(e, AaveLiquidation)]
            assert (event.user, event.debt_to_cover, event.liquidated_collateral_amount) == \
                (op.user, op.amount_in, op.amount_out)
            liquidated += 1
        block, ts = market.sync()
        market.assert_book_equals_chain(block, ts)
        chain_under = {raw(a.address) for a in market.users if market.chain_account(a.address, block)[5] < 10**18}
        assert set(market.book.liquidatable(ts)) == chain_under
    finally:
        executor.close()
        signer.close()
    assert liquidated >= 3, f"only {liquidated} liquidations landed"


def test_a_liquidation_through_the_engine_lands_with_the_predicted_collateral(market, monkeypatch):
    """The same, with the Engine deciding (trading gate, breaker, strategy dispatch by kind) and
    its executor sending: the PositionBook's opportunity goes to ``engine.execute_strategy``."""
    from tallyio.devnet import mint_tokens
    from tallyio.engine.config import CoreConfig
    from tallyio.engine.engine import Engine
    from tallyio.engine.keys import Signer
    from tallyio.engine.liquidation import LiquidationStrategy
    from tallyio.engine.node_executor import NodeExecutor
    from tallyio.engine.records import ExecutionStatus
    from tallyio.mempool import PoolTable, V2Pool

    market.set_price(WETH, DROPPED_WETH)
    market.set_price(WBTC, DROPPED_WBTC * 9 // 10)     # a further drop: new accounts under water
    liquidator = market.accounts[LIQUIDATOR]
    market.sender.forget_nonces()   # the executor of the previous test sent from this account too
    for r in market.dep.reserves:
        mint_tokens(market.sender, liquidator, r.asset, 10**9 * 10**r.decimals, approve=market.dep.pool)
    block, ts = market.sync()
    next_ts = ts + 5
    ops = market.book.opportunities(next_ts, block + 1, 10**9)
    assert ops, "the further drop must leave someone to liquidate"
    op = ops[0]
    monkeypatch.setenv("AAVE_TEST_KEY", "0x" + _dev_key(LIQUIDATOR))
    config = CoreConfig(node_url=market.node.ws_url, execute=True, signer_key_env="AAVE_TEST_KEY")
    signer = Signer.from_env("AAVE_TEST_KEY")
    executor = NodeExecutor(market.node.url, signer, gas_limit=700_000)
    # the engine's node source watches V2 pools; this market has none: a table with one unrelated pair
    table = PoolTable([V2Pool(b"\x01" * 20, b"\x02" * 20, b"\x03" * 20, 10**18, 10**18)])
    strategy = LiquidationStrategy(pools={raw(market.dep.pool)})
    collateral = "0x" + op.token_path[1].hex()

    async def main():
        async with Engine(config, strategies=[strategy], executor=executor, table=table,
                          routers=[(b"\x04" * 20, 0)]) as engine:
            await asyncio.to_thread(market.rpc.call, "evm_setNextBlockTimestamp", next_ts)
            sent = await engine.execute_strategy(op)
            assert sent.status is ExecutionStatus.SENT, sent
            return await executor.follow(sent, 10.0), sent

    try:
        done, sent = asyncio.run(main())
    finally:
        signer.close()
    assert done.status is ExecutionStatus.LANDED, done
    mined = int(market.rpc.call("eth_getTransactionReceipt", "0x" + sent.tx_hashes[0].hex())["blockNumber"], 16)
    assert mined == block + 1
    got = (market.sender.call(collateral, "balanceOf(address)", liquidator.address, returns=["uint256"],
                              block=hex(mined))[0]
           - market.sender.call(collateral, "balanceOf(address)", liquidator.address, returns=["uint256"],
                                block=hex(mined - 1))[0])
    assert got == op.amount_out == done.realized_profit
    block, ts = market.sync()
    market.assert_book_equals_chain(block, ts)

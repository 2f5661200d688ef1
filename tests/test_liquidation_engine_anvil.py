"""Issue 15, the engine end to end on a real Aave v3 market: ``@aave/core-v3``
1.19.3 deployed on anvil 1.7.1 (``deploy_aave``), 24 borrowers with varied
positions, and an ``Engine`` whose config names the market (Pool, data
provider, oracle) with a websocket ``NodeSource``, a ``LiquidationStrategy``
and a ``NodeExecutor``. Nothing is fed to the book by the test: the engine
reads the reserves from the data provider, catches up on the market's logs,
subscribes to them, and turns its health factors into opportunities that come
out of ``next_opportunity()``.

* after connecting, every tracked position and health factor equals the chain;
* a mined price drop: the accounts coming out of ``next_opportunity()`` are
  exactly those the chain says are liquidatable (each was, at the block it was
  sized on), each once;
* a pending ``setAssetPrice`` (automine off): one block early, exactly the
  holders of the asset that the mined price puts under water, with the pending
  transaction as their trigger;
* executing them through ``execute_strategy``: each lands, and the collateral
  the liquidator received (balance diff over the block) equals the prediction
  to the wei;
* a dropped connection: the engine reconnects, resyncs the market and still
  equals the chain; the opportunity counts add up (received == processed +
  dropped + in_flight).
"""
import asyncio
import random
import socket

import pytest

pytestmark = pytest.mark.timeout(600)

LIQUIDATOR = 2
BORROWERS = range(3, 27)            # 24 accounts
LP = 1
WETH, USDC, WBTC = 0, 1, 2
START_PRICES = (2_000 * 10**8, 10**8, 30_000 * 10**8)
DROPPED_WETH = 1_700 * 10**8
DROPPED_WBTC = 24_000 * 10**8
BLOCK_SECONDS = 12
QUIET = 3.0                         # seconds without a new opportunity: the engine has reported all
REPORTED = {}                       # user -> the latest opportunity the engine reported for it (tests in order)


def raw(address):
    return bytes.fromhex(address[2:])


def _dev_key(index):
    from eth_account import Account

    Account.enable_unaudited_hdwallet_features()
    # anvil's public test mnemonic: the keys hold nothing on any real chain
    return bytes(Account.from_mnemonic("test test test test test test test test test test test junk",
                                       account_path=f"m/44'/60'/0'/0/{index}").key).hex()


class Chain:
    def __init__(self, node, sender, dep):
        from tallyio.devnet import dev_accounts

        self.node, self.rpc, self.sender, self.dep = node, node.rpc, sender, dep
        self.accounts = dev_accounts(31)
        self.users = [self.accounts[i] for i in BORROWERS]

    def block(self):
        return int(self.rpc.call("eth_blockNumber"), 16)

    def timestamp(self, block):
        return int(self.rpc.call("eth_getBlockByNumber", hex(block), False)["timestamp"], 16)

    def set_price(self, asset, price, **kw):
        from tallyio.devnet import set_price

        return set_price(self.sender, self.accounts[0], self.dep, self.dep.reserves[asset].asset, price, **kw)

    def health_factor(self, user, block):
        from tallyio.devnet import user_account_data

        return user_account_data(self.rpc, self.dep.pool, user, block)[5]

    def under_water(self, block):
        return {raw(a.address) for a in self.users if self.health_factor(a.address, block) < 10**18}

    def holders(self, asset, block):
        from tallyio.devnet import scaled_balances

        return {raw(a.address) for a in self.users if any(scaled_balances(self.rpc, self.dep.reserves[asset],
                                                                              a.address, block))}

    def debt_of(self, asset, user, block):
        from tallyio.devnet import scaled_balances

        return scaled_balances(self.rpc, self.dep.reserves[asset], "0x" + user.hex(), block)[1]

    def balance(self, token, who, block):
        return self.sender.call(token, "balanceOf(address)", who, returns=["uint256"], block=hex(block))[0]


@pytest.fixture(scope="module")
def chain(aave_node, aave_sender, aave_market):
    """24 borrowers on the three reserves (one or two collaterals, one or two debts), then a month of interest."""
    from tallyio.devnet import borrow, repay, set_collateral, supply, user_account_data, withdraw

    c = Chain(aave_node, aave_sender, aave_market)
    dep, s = aave_market, aave_sender
    assets = [r.asset for r in dep.reserves]
    units = [10**r.decimals for r in dep.reserves]
    for asset, amount in zip(assets, (2_000 * 10**18, 10_000_000 * 10**6, 200 * 10**8)):
        supply(s, c.accounts[LP], dep, asset, amount)
    rng = random.Random(1515)
    for k, account in enumerate(c.users):
        collaterals = rng.sample([WETH, USDC, WBTC], rng.choice((1, 1, 2)))
        for col in collaterals:
            amount = rng.randrange(2_000, 60_000) * units[col] * 10**8 // START_PRICES[col]
            supply(s, account, dep, assets[col], amount)
            if k % 5 == 1:
                withdraw(s, account, dep, assets[col], amount // 10)
        if k % 7 == 3:
            extra = rng.choice([a for a in (WETH, USDC, WBTC) if a not in collaterals])
            supply(s, account, dep, assets[extra], units[extra] // 2)
            set_collateral(s, account, dep, assets[extra], False)
        others = [a for a in (WETH, USDC, WBTC) if a not in collaterals]
        debts = rng.sample(others, 1 if len(others) == 1 or k % 3 else 2)
        for n, d in enumerate(debts):
            available = user_account_data(c.rpc, dep.pool, account.address, "latest")[2]
            share = rng.uniform(0.85, 0.99) if n == len(debts) - 1 else rng.uniform(0.2, 0.5)
            amount = int(available * share) * units[d] // START_PRICES[d]
            borrow(s, account, dep, assets[d], amount)
            if k % 4 == 2:
                repay(s, account, dep, assets[d], amount // 20)
    c.rpc.call("evm_increaseTime", 30 * 24 * 3600)
    c.rpc.call("evm_mine")
    return c


@pytest.fixture(scope="module")
def engine(chain, tmp_path_factory):
    """The engine on the market: ws NodeSource (+ the Aave subscription), LiquidationStrategy, NodeExecutor."""
    import os

    from tallyio.engine.config import CoreConfig
    from tallyio.engine.engine import Engine
    from tallyio.engine.keys import Signer
    from tallyio.engine.liquidation import LiquidationStrategy
    from tallyio.engine.node_executor import NodeExecutor
    from tallyio.mempool import PoolTable, V2Pool

    dep = chain.dep
    os.environ["LIQ15_ENGINE_TEST_KEY"] = "0x" + _dev_key(LIQUIDATOR)
    signer = Signer.from_env("LIQ15_ENGINE_TEST_KEY")
    executor = NodeExecutor(chain.node.url, signer, gas_limit=700_000)
    config = CoreConfig(node_url=chain.node.ws_url, execute=True, signer_key_env="LIQ15_ENGINE_TEST_KEY",
                        aave_pool=dep.pool, aave_data_provider=dep.data_provider, aave_oracle=dep.oracle,
                        aave_eth_asset=dep.reserves[WETH].asset, aave_block_seconds=BLOCK_SECONDS)
    # the node source also watches V2 pools; this chain has none: a table with one unrelated pair
    table = PoolTable([V2Pool(b"\x01" * 20, b"\x02" * 20, b"\x03" * 20, 10**18, 10**18)])
    strategy = LiquidationStrategy(pools={raw(dep.pool)})
    eng = Engine(config, strategies=[strategy], executor=executor, table=table, routers=[(b"\x04" * 20, 0)])
    eng.start_sync()
    try:
        assert eng.wait_connected(60), eng.stats()["source"]
        yield eng
    finally:
        eng.stop_sync()
        signer.close()
        os.environ.pop("LIQ15_ENGINE_TEST_KEY", None)


def drain(engine, quiet=QUIET):
    """Every opportunity the engine hands out until it has been quiet for ``quiet`` seconds."""
    out = []
    while True:
        op = engine.next_opportunity_sync(timeout=quiet)
        if op is None:
            return out
        out.append(op)


def wait_until_applied(engine, block, timeout=30.0):
    """Until the engine's market has seen ``block``'s head and its logs."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        head = engine.lending.head
        if head is not None and head.number >= block:
            return
        time.sleep(0.05)
    raise AssertionError(f"the engine never saw block {block}: {engine.stats()['lending']}")


def assert_book_equals_chain(chain, book, block):
    from tallyio.devnet import scaled_balances, user_account_data

    ts = chain.timestamp(block)
    for account in chain.users + [chain.accounts[LP], chain.accounts[LIQUIDATOR]]:
        user = raw(account.address)
        for i, reserve in enumerate(chain.dep.reserves):
            assert book.scaled(user, i)[:2] == scaled_balances(chain.rpc, reserve, account.address, block), \
                f"{account.address} {reserve.spec.symbol} at block {block}"
        ours = book.account_data(user, ts)
        assert (ours.total_collateral_base, ours.total_debt_base, ours.available_borrows_base,
                ours.current_liquidation_threshold, ours.ltv, ours.health_factor) == \
            user_account_data(chain.rpc, chain.dep.pool, account.address, block), f"{account.address} at {block}"


def test_the_engine_reads_the_market_from_the_chain(chain, engine):
    book = engine.lending.book
    assert [r.config.asset for r in book.reserves] == [raw(r.asset) for r in chain.dep.reserves]
    assert [r.config.liquidation_threshold for r in book.reserves] == \
        [r.spec.liquidation_threshold for r in chain.dep.reserves]
    block = chain.block()
    assert len(book) >= len(BORROWERS) + 1
    assert_book_equals_chain(chain, book, block)
    assert drain(engine, 1.5) == [], "nobody is under water at the start prices"
    source = engine.stats()["source"]["node"]
    assert source["lending_resyncs"] == 1 and source["connected"]


def test_a_mined_price_drop_reports_exactly_the_liquidatable_accounts(chain, engine):
    chain.set_price(WETH, DROPPED_WETH)
    block = chain.block()
    wait_until_applied(engine, block)
    ops = drain(engine)
    users = [op.user for op in ops]
    assert len(users) == len(set(users)), "each account once"
    under = chain.under_water(block)
    assert 0 < len(under) < len(chain.users), "the drop must split the accounts"
    assert set(users) == under
    for op in ops:
        assert op.trigger_tx is None and op.block_number == block + 1 and op.pools == (raw(chain.dep.pool),)
        assert op.amount_in > 0 and op.amount_out > 0 and op.profit_net_of_gas is not None
    assert engine.lending.book.price(WETH) == DROPPED_WETH
    assert_book_equals_chain(chain, engine.lending.book, block)
    REPORTED.clear()
    REPORTED.update({op.user: op for op in ops})


def test_a_pending_oracle_update_is_reported_one_block_early(chain, engine):
    from tallyio.devnet import set_automine

    block = chain.block()
    ts = chain.timestamp(block)
    set_automine(chain.rpc, False)
    try:
        tx_hash = chain.set_price(WBTC, DROPPED_WBTC, wait=False)
        early = drain(engine)
        assert chain.rpc.call("eth_getTransactionByHash", "0x" + tx_hash.hex())["blockNumber"] is None
        chain.rpc.call("evm_setNextBlockTimestamp", ts + BLOCK_SECONDS)
        chain.rpc.call("evm_mine")
    finally:
        set_automine(chain.rpc, True)
    mined = block + 1
    assert chain.timestamp(mined) == ts + BLOCK_SECONDS
    under = chain.under_water(mined)
    wbtc = chain.holders(WBTC, mined)
    assert early, "the pending drop must put accounts under water"
    assert all(op.trigger_tx == tx_hash and op.block_number == mined for op in early)
    assert {op.user for op in early} == under & wbtc
    assert (under & wbtc) - set(REPORTED), "the WBTC drop must put new accounts under water"
    # mined: the WBTC holders under water are reported again (trigger None), sized for the next block
    wait_until_applied(engine, mined)
    after = drain(engine)
    assert {op.user for op in after} == under & wbtc
    assert all(op.trigger_tx is None and op.block_number == mined + 1 for op in after)
    REPORTED.update({op.user: op for op in after})
    # every account the chain says is liquidatable was reported; the ones reported at the WETH drop
    # that are no longer under water owe WBTC (its drop made them healthier): they leave the feed's set
    recovered = set(REPORTED) - under
    assert under <= set(REPORTED)
    assert all(chain.debt_of(WBTC, u, mined) > 0 for u in recovered)
    assert engine.lending.stats()["liquidatable"] == len(under)
    for u in recovered:
        del REPORTED[u]


def test_liquidations_through_the_engine_receive_the_predicted_collateral_to_the_wei(chain, engine):
    from tallyio.devnet import mint_tokens
    from tallyio.engine.records import ExecutionStatus

    liquidator = chain.accounts[LIQUIDATOR]
    for r in chain.dep.reserves:
        mint_tokens(chain.sender, liquidator, r.asset, 10**9 * 10**r.decimals, approve=chain.dep.pool)
    wait_until_applied(engine, chain.block())
    drain(engine, 1.0)                   # the liquidator's own supply-side events change nobody's health
    executor = engine.executor
    ops = sorted(REPORTED.values(), key=lambda o: -o.profit_net_of_gas)[:4]
    assert len(ops) >= 3
    for op in ops:
        latest = chain.block()
        sized_for = chain.timestamp(op.block_number - 1) + BLOCK_SECONDS
        chain.rpc.call("evm_setNextBlockTimestamp", max(sized_for, chain.timestamp(latest) + 1))
        sent = engine.execute_strategy_sync(op)
        assert sent.status is ExecutionStatus.SENT, sent
        done = asyncio.run(executor.follow(sent, 10.0))
        assert done.status is ExecutionStatus.LANDED, done
        receipt = chain.rpc.call("eth_getTransactionReceipt", "0x" + sent.tx_hashes[0].hex())
        mined = int(receipt["blockNumber"], 16)
        collateral = "0x" + op.token_path[1].hex()
        got = chain.balance(collateral, liquidator.address, mined) - \
            chain.balance(collateral, liquidator.address, mined - 1)
        assert got == op.amount_out == done.realized_profit, "collateral received vs prediction, to the wei"
    block = chain.block()
    wait_until_applied(engine, block)
    drain(engine, 1.0)
    assert_book_equals_chain(chain, engine.lending.book, block)
    stats = engine.stats()
    assert stats["results"]["SENT"] == len(ops)
    assert stats["strategies"]["LiquidationStrategy"]["actions"] == len(ops)


def test_a_funded_liquidation_buys_exactly_the_debt_and_its_accounting_is_exact_to_the_wei(chain, engine):
    """A liquidator holding no debt token: the strategy funds it through a Uniswap V2
    ``swapETHForExactTokens`` sent first (nonce n, the liquidation n + 1). The ETH it spent is
    exactly the swap's input plus both transactions' gas, it keeps none of the debt token, and
    the collateral received is the prediction."""
    import realparts
    from tallyio.devnet import deploy_uniswap, encode_call
    from tallyio.devnet._uniswap import DEADLINE
    from tallyio.engine.keys import Signer
    from tallyio.engine.liquidation import LiquidationStrategy
    from tallyio.engine.node_executor import NodeExecutor
    from tallyio.engine.records import ExecutionStatus
    from tallyio.engine.strategy import StrategyContext

    book = engine.lending.book
    wait_until_applied(engine, chain.block())
    head = engine.lending.head
    ops = book.opportunities(head.timestamp + BLOCK_SECONDS, head.number + 1, head.base_fee_per_gas)
    assert ops, "someone is still under water"
    op = ops[0]
    debt = "0x" + op.token_path[0].hex()
    debt_index = book.asset_index(op.token_path[0])
    # a V2 pair debt token / WETH9 at the oracle's price, 100 ETH deep
    uni = deploy_uniswap(chain.rpc, sender=chain.sender, liquidity=10 * 10**18, chain=realparts.chain_dir())
    router, weth = uni.v2[0].router, uni.weth
    lp = chain.accounts[0]
    debt_amount = 100 * book.price(WETH) * 10**chain.dep.reserves[debt_index].decimals // book.price(debt_index)

    def send(who, to, signature, *args, value=0):
        return chain.sender.send(who, to, encode_call(signature, *args), value=value, wait=True)

    send(lp, debt, "mint(uint256)", debt_amount)
    send(lp, weth, "deposit()", value=100 * 10**18)
    for token in (debt, weth):
        send(lp, token, "approve(address,uint256)", router, 2**256 - 1)
    send(lp, router, "addLiquidity(address,address,uint256,uint256,uint256,uint256,address,uint256)",
         debt, weth, debt_amount, 100 * 10**18, 0, 0, lp.address, DEADLINE)
    funder = chain.accounts[29]
    send(funder, debt, "approve(address,uint256)", chain.dep.pool, 2**256 - 1)
    assert chain.balance(debt, funder.address, chain.block()) == 0

    strategy = LiquidationStrategy(pools={raw(chain.dep.pool)}, balances={op.token_path[0]: 0},
                                   funding_router=raw(router), weth=raw(weth))
    ctx = StrategyContext(account=raw(funder.address), dry_run=False)
    actions = strategy.on_opportunity(op, ctx)
    assert [type(a).__name__ for a in actions] == ["FundingSwapAction", "LiquidationAction"]
    assert actions[0].amount_out == op.amount_in and strategy.funded == 1
    signer = Signer.from_hex(_dev_key(29))
    executor = NodeExecutor(chain.node.url, signer, gas_limit=700_000)
    try:
        before = chain.block()
        chain.rpc.call("evm_setNextBlockTimestamp", max(head.timestamp + BLOCK_SECONDS,
                                                        chain.timestamp(before) + 1))
        sent = asyncio.run(executor.execute(actions, ctx))
        assert sent.status is ExecutionStatus.SENT and len(sent.tx_hashes) == 2, sent
        done = asyncio.run(executor.follow(sent, 10.0))
    finally:
        executor.close()
        signer.close()
    receipts = [chain.rpc.call("eth_getTransactionReceipt", "0x" + h.hex()) for h in sent.tx_hashes]
    assert done.status is ExecutionStatus.LANDED, (done, [(r["status"], r["gasUsed"]) for r in receipts])
    txs = [chain.rpc.call("eth_getTransactionByHash", "0x" + h.hex()) for h in sent.tx_hashes]
    nonces = [int(t["nonce"], 16) for t in txs]
    assert nonces[1] == nonces[0] + 1, "the swap first, the liquidation right after"
    first, last = (int(r["blockNumber"], 16) for r in receipts)
    assert before < first <= last
    eth = lambda block: int(chain.rpc.call("eth_getBalance", funder.address, hex(block)), 16)  # noqa: E731
    gas = sum(int(r["gasUsed"], 16) * int(r["effectiveGasPrice"], 16) for r in receipts)
    assert done.gas_cost_wei == gas
    assert done.funding_cost_wei > 0
    assert eth(first - 1) - eth(last) == done.funding_cost_wei + done.gas_cost_wei, "ETH spent, to the wei"
    assert chain.balance(debt, funder.address, last) == 0, "bought exactly the debt it covered"
    collateral = "0x" + op.token_path[1].hex()
    got = chain.balance(collateral, funder.address, last) - chain.balance(collateral, funder.address, first - 1)
    assert got == op.amount_out == done.realized_profit


def test_a_dropped_connection_resyncs_the_market_and_the_counts_add_up(chain, engine):
    import time

    from tallyio.devnet import supply

    source = engine._source
    before = source.stats()["lending_resyncs"]
    source._ws.sock.shutdown(socket.SHUT_RDWR)   # the node's side of a broken connection
    deadline = time.monotonic() + 30
    while source.stats()["lending_resyncs"] == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert source.stats()["lending_resyncs"] == before + 1 and source.stats()["reconnects"] >= 1
    # a new account after the reconnect is followed from the live logs
    newcomer = chain.accounts[28]
    supply(chain.sender, newcomer, chain.dep, chain.dep.reserves[USDC].asset, 5_000 * 10**6)
    block = chain.block()
    wait_until_applied(engine, block)
    time.sleep(0.5)
    assert raw(newcomer.address) in engine.lending.book.users()
    assert_book_equals_chain(chain, engine.lending.book, block)
    drain(engine, 1.0)
    opp = engine.stats()["opportunities"]
    assert opp["received"] == opp["processed"] + opp["dropped"] + opp["in_flight"]
    assert opp["received"] >= engine.lending.stats()["pushed"] > 0

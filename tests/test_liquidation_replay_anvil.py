"""Issue 15, liquidations from a replay: an ``Engine`` watching a real Aave v3 market
(``@aave/core-v3`` 1.19.3 on anvil 1.7.1, test_liquidation_engine_anvil's 24 borrowers)
records what it saw (``Engine(recorder=Recorder(path))``: the pending transactions and
heads, the market's book after its resync as a LENDING_SNAPSHOT, and every position,
reserve and price log of the lending path as a RAW_LOG); then
``Engine(CoreConfig.replay(path, aave_*...))`` replays it, and:

* the raw logs in the recording are the chain's own (``eth_getLogs``), byte for byte;
* ``next_opportunity()`` of the replay yields the SAME liquidation opportunities as the
  live run (accounts, debt to cover, collateral, profit, block, trigger) -- those of a
  mined price drop and those a pending ``setAssetPrice`` made one block early;
* the dry-run executor reports what each liquidation would have made, the same live and
  replayed, and equal to the book's prediction (collateral and profit).
"""
import pytest

from test_liquidation_engine_anvil import (BLOCK_SECONDS, DROPPED_WBTC, DROPPED_WETH, USDC, WBTC, WETH, chain,
                                           drain, raw, wait_until_applied)

pytestmark = pytest.mark.timeout(600)
SHARED_FIXTURES = (chain,)          # test_liquidation_engine_anvil's market and borrowers, registered here
RESULTS = {}                        # "live"/"replay" -> [(comparable opportunity, dry-run result)]


def comparable(op):
    """An opportunity minus the time it was found (the one field a replay cannot reproduce)."""
    return op._replace(detected_ns=0)


def config_of(dep, **source):
    from tallyio.engine.config import CoreConfig

    return CoreConfig(aave_pool=dep.pool, aave_data_provider=dep.data_provider, aave_oracle=dep.oracle,
                      aave_eth_asset=dep.reserves[WETH].asset, aave_block_seconds=BLOCK_SECONDS, **source)


def engine_parts(dep):
    from tallyio.engine.liquidation import LiquidationStrategy

    return dict(strategies=[LiquidationStrategy(pools={raw(dep.pool)})], routers=[(b"\x04" * 20, 0)])


def execute_all(engine, ops):
    from tallyio.engine.records import ExecutionStatus

    out = []
    for op in ops:
        result = engine.execute_strategy_sync(op)
        assert result.status is ExecutionStatus.SIMULATED, result
        assert engine.executor.last_outputs == (op.amount_out,), "the dry run receives the sized collateral"
        assert result.realized_profit == op.profit, "the dry run makes the sized profit"
        out.append((comparable(op), result.realized_profit, result.gas_used))
    return out


@pytest.fixture(scope="module")
def recording(chain, tmp_path_factory):
    """The live session, recorded: connect, a new borrower, a mined WETH drop, a pending WBTC drop."""
    from tallyio.devnet import borrow, set_automine, supply
    from tallyio.engine.engine import Engine
    from tallyio.mempool import PoolTable, V2Pool
    from tallyio.mempool.recording import Recorder

    dep = chain.dep
    path = tmp_path_factory.mktemp("liqreplay") / "aave.tio"
    table = PoolTable([V2Pool(b"\x01" * 20, b"\x02" * 20, b"\x03" * 20, 10**18, 10**18)])
    live = []
    first_block = chain.block()
    with Recorder(path) as recorder:
        engine = Engine(config_of(dep, node_url=chain.node.ws_url), table=table, recorder=recorder,
                        **engine_parts(dep))
        engine.start_sync()
        try:
            assert engine.wait_connected(60), engine.stats()["source"]
            assert drain(engine, 1.5) == []
            # a borrower who arrives while the engine watches (Supply/Mint, Borrow/Mint logs, live)
            newcomer = chain.accounts[27]
            supply(chain.sender, newcomer, dep, dep.reserves[WETH].asset, 3 * 10**18)
            borrow(chain.sender, newcomer, dep, dep.reserves[USDC].asset, 4_500 * 10**6)
            chain.set_price(WETH, DROPPED_WETH)
            block = chain.block()
            wait_until_applied(engine, block)
            mined_ops = drain(engine)
            assert mined_ops and raw(newcomer.address) in {op.user for op in mined_ops}
            live += execute_all(engine, mined_ops)
            # a pending oracle update: reported one block early, then mined
            ts = chain.timestamp(block)
            set_automine(chain.rpc, False)
            try:
                tx_hash = chain.set_price(WBTC, DROPPED_WBTC, wait=False)
                early = drain(engine)
                assert early and all(op.trigger_tx == tx_hash for op in early)
                live += execute_all(engine, early)
                chain.rpc.call("evm_setNextBlockTimestamp", ts + BLOCK_SECONDS)
                chain.rpc.call("evm_mine")
            finally:
                set_automine(chain.rpc, True)
            wait_until_applied(engine, block + 1)
            after = drain(engine)
            assert after
            live += execute_all(engine, after)
        finally:
            engine.stop_sync()
    RESULTS["live"] = live
    return path, first_block, chain.block()


def test_the_recorded_lending_logs_are_the_chains_logs(chain, recording):
    from tallyio.eth.aave import AAVE_TOPICS
    from tallyio.eth.types import RawLog
    from tallyio.mempool.lending import LendingSnapshot
    from tallyio.mempool.recording import ReplaySource

    path, first, last = recording
    items = list(ReplaySource(path))
    snapshots = [item for item in items if type(item) is LendingSnapshot]
    assert len(snapshots) == 1 and first <= snapshots[0].block <= last
    assert snapshots[0].pool == raw(chain.dep.pool)
    recorded = [item for item in items if type(item) is RawLog]
    addresses = [chain.dep.pool, chain.dep.oracle] + [t for r in chain.dep.reserves
                                                       for t in (r.a_token, r.variable_debt_token)]
    logs = chain.rpc.call("eth_getLogs", {"fromBlock": hex(snapshots[0].block + 1), "toBlock": hex(last),
                                          "address": addresses})
    informational = {AAVE_TOPICS[name] for name in ("Supply", "Withdraw", "Borrow", "Repay")}
    wanted = [RawLog.from_rpc(g) for g in logs if g["topics"][0] in {t for t in AAVE_TOPICS.values()} - informational]
    key = lambda g: (g.block_number, g.log_index)  # noqa: E731
    assert len(recorded) == len(wanted) > 5
    for ours, theirs in zip(sorted(recorded, key=key), sorted(wanted, key=key)):
        assert (ours.address, ours.topics, ours.data, ours.block_number, ours.log_index, ours.transaction_hash) == \
            (theirs.address, theirs.topics, theirs.data, theirs.block_number, theirs.log_index,
             theirs.transaction_hash)
        assert ours.block_timestamp == chain.timestamp(ours.block_number)


def test_the_replay_yields_the_live_runs_liquidations_and_dry_run_results(chain, recording):
    from tallyio.engine.engine import Engine

    path, _, _ = recording
    dep = chain.dep
    replayed = []
    with Engine(config_of(dep, replay_path=str(path)), **engine_parts(dep)) as engine:
        while True:
            op = engine.next_opportunity_sync(timeout=60)
            if op is None:
                break
            replayed += execute_all(engine, [op])
        stats = engine.stats()
    assert stats["lending"]["resyncs"] == 1 and stats["lending"]["errors"] == 0
    live = RESULTS["live"]
    order = lambda row: (row[0].block_number, row[0].trigger_tx or b"", row[0].user)  # noqa: E731
    assert sorted(replayed, key=order) == sorted(live, key=order)
    assert any(row[0].trigger_tx is not None for row in replayed), "the pending update's early opportunities"
    assert len({row[0].block_number for row in replayed}) >= 2


def test_a_replay_twice_is_the_same(chain, recording):
    """Deterministic: a second replay of the same recording gives the same opportunities."""
    from tallyio.engine.engine import Engine

    path, _, _ = recording
    runs = []
    for _ in range(2):
        with Engine(config_of(chain.dep, replay_path=str(path)), **engine_parts(chain.dep)) as engine:
            ops = []
            while (op := engine.next_opportunity_sync(timeout=60)) is not None:
                ops.append(comparable(op))
                engine.execute_strategy_sync(op)
        runs.append(ops)
    assert runs[0] == runs[1] and runs[0]

"""The proof of issue 14's execution half on a real node: anvil 1.7.1 with the
published Uniswap V2 contracts (two exchanges), automine off.  Other accounts
send swaps; our pipeline (NodeSource -> Pipeline) finds the backrun;
BackrunStrategy turns it into one router swap; NodeExecutor signs it with a
Signer loaded from the environment and sends it; the test mines and reads the
chain:

* each backrun is in the victim's block at the victim's index + 1, and the
  account's start-token balance grew by exactly the predicted profit (to the wei);
* two victims on the two exchanges in one block, each followed by its backrun;
* a stale opportunity (a competing swap with a higher fee lands first) reverts:
  the token balance is unchanged and the ETH spent is exactly the gas;
* "nonce too low" (another sender used the nonce) resyncs and resends nothing;
* an anvil restart from an older state drops a sent transaction: follow()
  reports it, the nonce is resynced, and the next send reuses the nonce (no gap,
  no duplicate); a new executor (our own restart) continues from the node's count;
* the key appears in no log line (DEBUG, through whole executions), no repr, no
  stats, no result and not in anvil's log file.
"""
import asyncio
import logging
import time

import pytest

import test_mempool_anvil as mp
from tallyio.mempool import AnalyzerConfig, FilterConfig, NodeSource, Pipeline

pytestmark = pytest.mark.timeout(300)

OUR_INDEX = 7          # anvil dev account 7 is ours (the fixtures' traders are 1..4)
MIN_PROFIT = 1


def b(address):
    return bytes.fromhex(address[2:])


def dev_key(index):
    from eth_account import Account

    Account.enable_unaudited_hdwallet_features()
    # anvil's public test mnemonic: the keys hold nothing on any real chain
    acct = Account.from_mnemonic("test test test test test test test test test test test junk",
                                 account_path=f"m/44'/60'/0'/0/{index}")
    return bytes(acct.key).hex()


def balance(sender, token, address, block):
    (value,) = sender.call(token, "balanceOf(address)", address, returns=["uint256"], block=hex(block))
    return value


def eth_balance(rpc, address, block):
    return int(rpc.call("eth_getBalance", address, hex(block)), 16)


def receipt(rpc, tx_hash):
    r = rpc.call("eth_getTransactionReceipt", "0x" + tx_hash.hex())
    assert r is not None, f"0x{tx_hash.hex()} was not mined"
    return r


class Rig:
    """Pipeline + NodeSource on the anvil node, and what the test needs to drive a backrun."""

    def __init__(self, node, sender, uniswap, signer):
        from tallyio.engine.backrun import BackrunStrategy
        from tallyio.engine.node_executor import NodeExecutor
        from tallyio.engine.strategy import StrategyContext

        self.node, self.rpc, self.sender, self.uniswap = node, node.rpc, sender, uniswap
        self.table = mp.table_from_chain(self.rpc, uniswap)
        routers = [(b(ex.router), k) for k, ex in enumerate(uniswap.v2)]
        self.pipe = Pipeline(self.table, routers_v2=routers, filter_config=FilterConfig(check_nonces=False),
                             analyzer_config=AnalyzerConfig(max_sized=64), opportunity_capacity=4096)
        self.source = NodeSource(node.ws_url, self.pipe.feed, pools=uniswap.all_v2_pairs())
        self.source.start()
        assert self.source.wait_connected(30)
        self.signer = signer
        self.executor = NodeExecutor(node.url, signer, gas_limit=400_000)
        self.strategy = BackrunStrategy(self.table, min_profit=MIN_PROFIT)
        self.ctx = StrategyContext(account=signer.address, routers={k: b(ex.router) for k, ex in enumerate(uniswap.v2)},
                                   dry_run=False)
        self.found = {}

    def close(self):
        self.source.close()
        self.pipe.close()
        self.executor.close()

    def opportunities_for(self, victim, timeout=30.0):
        """Every opportunity the pipeline produced for ``victim`` (waits for at least one)."""
        deadline = time.monotonic() + timeout
        while True:
            for op in self.pipe.opportunities.get_many(256):
                self.found.setdefault(op.trigger_tx, []).append(op)
            if self.found.get(victim):
                time.sleep(0.05)  # the rest of this victim's batch
                for op in self.pipe.opportunities.get_many(256):
                    self.found.setdefault(op.trigger_tx, []).append(op)
                return self.found[victim]
            if time.monotonic() > deadline:
                pytest.fail(f"no opportunity for 0x{victim.hex()} within {timeout} s: {self.pipe.stats()}")
            time.sleep(0.005)

    def actions_for(self, victim):
        actions = []
        for op in self.opportunities_for(victim):
            actions += self.strategy.on_opportunity(op, self.ctx)
        assert len(actions) == 1, f"one single-exchange cycle per victim, got {actions} ({self.strategy.declined})"
        return actions

    def execute(self, actions):
        return asyncio.run(self.executor.execute(actions, self.ctx))

    def follow(self, result, timeout=10.0):
        return asyncio.run(self.executor.follow(result, timeout))

    def settle(self):
        """Mine one block and wait for the pool table to follow the chain; the block's number."""
        from tallyio.devnet import mine

        mine(self.rpc)
        number = int(self.rpc.call("eth_blockNumber"), 16)
        reserves = mp.chain_reserves(self.rpc, self.uniswap)
        mp.wait_for(lambda: all(self.table.reserves_of(b(p)) == r for p, r in reserves.items()),
                    "the Sync logs to reach the pool table")
        return number


@pytest.fixture(scope="module")
def our_key():
    return dev_key(OUR_INDEX)


@pytest.fixture(scope="module")
def rig(anvil_node, chain_sender, uniswap, traders, our_key):
    from tallyio.devnet import dev_accounts, fund_trader
    from tallyio.engine.keys import Signer

    ours = dev_accounts(OUR_INDEX + 1)[OUR_INDEX]
    fund_trader(anvil_node.rpc, uniswap, ours, sender=chain_sender)
    mp_env = pytest.MonkeyPatch()
    mp_env.setenv("TALLYIO_PRIVATE_KEY", "0x" + our_key)
    try:
        signer = Signer.from_env()
    finally:
        mp_env.undo()
    assert "0x" + signer.address.hex() == ours.address
    r = Rig(anvil_node, chain_sender, uniswap, signer)
    try:
        yield r
    finally:
        r.close()
        signer.close()


def fee_sender(rpc, priority_gwei):
    from tallyio.devnet import Sender

    return Sender(rpc, max_fee_per_gas=100 * 10**9, max_priority_fee_per_gas=priority_gwei * 10**9)


def assert_no_key(text, key_hex):
    lowered = text.lower()
    assert key_hex not in lowered
    assert key_hex[:16] not in lowered and key_hex[-16:] not in lowered


def test_backrun_lands_right_behind_its_victim_with_the_predicted_profit(rig, anvil_node, chain_sender, uniswap,
                                                                          traders, our_key, caplog):
    from tallyio.devnet import swap_v2
    from tallyio.engine.records import ExecutionStatus

    caplog.set_level(logging.DEBUG)
    victim = swap_v2(chain_sender, traders[0], uniswap.v2[0].router, 25 * 10**18, [uniswap.tokens[0], uniswap.weth])
    [action] = rig.actions_for(victim)
    op = action.opportunity
    assert op.trigger_tx == victim and action.min_amount_out == op.amount_in + MIN_PROFIT
    assert action.router == b(uniswap.v2[0].router)
    sent = rig.execute([action])
    assert sent.status is ExecutionStatus.SENT and len(sent.tx_hashes) == 1, sent
    block = rig.settle()
    done = rig.follow(sent)
    assert done.status is ExecutionStatus.LANDED, done
    v, ours = receipt(anvil_node.rpc, victim), receipt(anvil_node.rpc, sent.tx_hashes[0])
    assert int(v["blockNumber"], 16) == int(ours["blockNumber"], 16) == block
    assert int(ours["transactionIndex"], 16) == int(v["transactionIndex"], 16) + 1
    start = "0x" + op.token_path[0].hex()
    me = "0x" + rig.signer.address.hex()
    gained = balance(chain_sender, start, me, block) - balance(chain_sender, start, me, block - 1)
    assert gained == op.profit == done.realized_profit == done.expected_profit > 0
    record = rig.executor.sent(sent.tx_hashes[0])
    assert done.gas_used == record.gas_used == int(ours["gasUsed"], 16)
    spent = eth_balance(anvil_node.rpc, me, block - 1) - eth_balance(anvil_node.rpc, me, block)
    assert spent == record.gas_cost_wei > 0, "gas is paid in ETH and reported apart from the profit"
    # the victim and the backrun pay the same effective priority fee
    vtx = anvil_node.rpc.call("eth_getTransactionByHash", "0x" + victim.hex())
    otx = anvil_node.rpc.call("eth_getTransactionByHash", "0x" + sent.tx_hashes[0].hex())
    assert (vtx["maxFeePerGas"], vtx["maxPriorityFeePerGas"]) == (otx["maxFeePerGas"], otx["maxPriorityFeePerGas"])
    # the same opportunity again: its victim is mined, so it is stale and nothing is sent
    nonce, sent_count = rig.executor.next_nonce, rig.executor.stats()["sent"]
    again = rig.execute([action])
    assert again.status is ExecutionStatus.REJECTED and "already mined" in again.error and not again.tx_hashes
    assert rig.executor.next_nonce == nonce and rig.executor.stats()["sent"] == sent_count
    # the key went nowhere: logs at DEBUG through the whole execution, reprs, stats, anvil's log file
    assert any("sent 0x" in r.getMessage() for r in caplog.records), "the executor does log at DEBUG"
    for text in (caplog.text, repr(rig.signer), repr(rig.executor), repr(sent), repr(done),
                 repr(rig.executor.stats()), repr(record), anvil_node.log_path.read_text(errors="replace")):
        assert_no_key(text, our_key)


def test_two_victims_in_one_block_each_followed_by_its_backrun(rig, anvil_node, chain_sender, uniswap, traders):
    from tallyio.devnet import swap_v2
    from tallyio.engine.records import ExecutionStatus

    fast = fee_sender(anvil_node.rpc, 3)   # the first victim pays more, so it (and its backrun) goes first
    victim_a = swap_v2(fast, traders[1], uniswap.v2[0].router, 30 * 10**18, [uniswap.weth, uniswap.tokens[0]])
    actions_a = rig.actions_for(victim_a)
    sent_a = rig.execute(actions_a)
    victim_b = swap_v2(chain_sender, traders[0], uniswap.v2[1].router, 20 * 10**18,
                       [uniswap.tokens[1], uniswap.weth])
    actions_b = rig.actions_for(victim_b)
    assert actions_b[0].router == b(uniswap.v2[1].router)
    sent_b = rig.execute(actions_b)
    assert sent_a.status is sent_b.status is ExecutionStatus.SENT
    block = rig.settle()
    me = "0x" + rig.signer.address.hex()
    per_token = {}
    for victim, sent, actions in ((victim_a, sent_a, actions_a), (victim_b, sent_b, actions_b)):
        done = rig.follow(sent)
        v, ours = receipt(anvil_node.rpc, victim), receipt(anvil_node.rpc, sent.tx_hashes[0])
        assert int(v["blockNumber"], 16) == int(ours["blockNumber"], 16) == block
        assert int(ours["transactionIndex"], 16) == int(v["transactionIndex"], 16) + 1
        op = actions[0].opportunity
        assert done.status is ExecutionStatus.LANDED and done.realized_profit == op.profit > 0, done
        start = "0x" + op.token_path[0].hex()
        per_token[start] = per_token.get(start, 0) + op.profit
    for token, predicted in per_token.items():
        assert balance(chain_sender, token, me, block) - balance(chain_sender, token, me, block - 1) == predicted


def test_a_raced_opportunity_reverts_and_costs_only_gas(rig, anvil_node, chain_sender, uniswap, traders):
    from tallyio.devnet import swap_v2
    from tallyio.engine.records import ExecutionStatus

    victim = swap_v2(chain_sender, traders[0], uniswap.v2[0].router, 25 * 10**18, [uniswap.tokens[0], uniswap.weth])
    [action] = rig.actions_for(victim)
    # a competitor, paying more, trades the backrun's first hop hard before anyone: the cycle is gone
    first_hop = ["0x" + action.path[0].hex(), "0x" + action.path[1].hex()]
    competitor = swap_v2(fee_sender(anvil_node.rpc, 5), traders[2], uniswap.v2[0].router, 200 * 10**18, first_hop)
    sent = rig.execute([action])
    assert sent.status is ExecutionStatus.SENT
    block = rig.settle()
    done = rig.follow(sent)
    assert done.status is ExecutionStatus.REVERTED, done
    ours = receipt(anvil_node.rpc, sent.tx_hashes[0])
    assert int(receipt(anvil_node.rpc, competitor)["transactionIndex"], 16) < int(ours["transactionIndex"], 16)
    me = "0x" + rig.signer.address.hex()
    start = "0x" + action.path[0].hex()
    assert balance(chain_sender, start, me, block) == balance(chain_sender, start, me, block - 1)
    assert done.realized_profit == 0
    record = rig.executor.sent(sent.tx_hashes[0])
    spent = eth_balance(anvil_node.rpc, me, block - 1) - eth_balance(anvil_node.rpc, me, block)
    assert spent == record.gas_cost_wei > 0 and done.gas_used == record.gas_used


def plain_swap(rig, amount=10**15):
    """A small swap that lands whatever the state (min out 0), priced by the executor."""
    from tallyio.engine.records import SwapAction

    return SwapAction(router=b(rig.uniswap.v2[0].router), path=(b(rig.uniswap.weth), b(rig.uniswap.tokens[0])),
                      amount_in=amount, min_amount_out=0)


def our_nonce(rpc, address, block="latest"):
    return int(rpc.call("eth_getTransactionCount", address, block), 16)


def test_nonce_too_low_resyncs_and_sends_no_duplicate(rig, anvil_node):
    from tallyio.engine.node_executor import NodeExecutor
    from tallyio.engine.records import ExecutionStatus

    me = "0x" + rig.signer.address.hex()
    first = rig.execute([plain_swap(rig)])
    assert first.status is ExecutionStatus.SENT
    rig.settle()
    assert rig.follow(first).status is ExecutionStatus.LANDED
    start = our_nonce(anvil_node.rpc, me)
    # another executor with the same key (a second process) uses the next nonce
    with NodeExecutor(anvil_node.url, rig.signer) as other:
        taken = asyncio.run(other.execute([plain_swap(rig)], rig.ctx))
        assert taken.status is ExecutionStatus.SENT
    rig.settle()
    resyncs = rig.executor.stats()["nonce_resyncs"]
    refused = rig.execute([plain_swap(rig)])
    assert refused.status is ExecutionStatus.FAILED and "resynced" in refused.error and not refused.tx_hashes
    assert rig.executor.stats()["nonce_resyncs"] == resyncs + 1
    assert rig.executor.next_nonce == start + 1
    again = rig.execute([plain_swap(rig)])
    block = rig.settle()
    assert rig.follow(again).status is ExecutionStatus.LANDED
    assert our_nonce(anvil_node.rpc, me) == start + 2, "exactly the two transactions, no duplicate"
    mined = anvil_node.rpc.call("eth_getBlockByNumber", hex(block), True)["transactions"]
    assert [int(t["nonce"], 16) for t in mined if t["from"].lower() == me] == [start + 1]


def test_restart_drops_a_sent_transaction_the_nonce_is_resynced_and_reused(rig, anvil_node):
    from tallyio.engine.node_executor import NodeExecutor
    from tallyio.engine.records import ExecutionStatus

    me = "0x" + rig.signer.address.hex()
    state = anvil_node.dump_state()
    start = our_nonce(anvil_node.rpc, me)
    lost = rig.execute([plain_swap(rig)])
    assert lost.status is ExecutionStatus.SENT and rig.executor.next_nonce == start + 1
    anvil_node.restart(state=state)          # the node comes back without the pending transaction
    assert our_nonce(anvil_node.rpc, me, "pending") == start
    dropped = rig.follow(lost, timeout=0.5)
    assert dropped.status is ExecutionStatus.FAILED and "dropped" in dropped.error, dropped
    assert rig.executor.next_nonce == start and rig.executor.stats()["dropped"] == 1
    resent = rig.execute([plain_swap(rig, 2 * 10**15)])
    from tallyio.devnet import mine

    mine(anvil_node.rpc)
    assert rig.follow(resent).status is ExecutionStatus.LANDED
    assert rig.executor.sent(resent.tx_hashes[0]).nonce == start
    assert our_nonce(anvil_node.rpc, me) == start + 1
    assert anvil_node.rpc.call("eth_getTransactionReceipt", "0x" + lost.tx_hashes[0].hex()) is None
    # our own restart: a fresh executor reads the node's count and continues without a gap
    with NodeExecutor(anvil_node.url, rig.signer) as fresh:
        after = asyncio.run(fresh.execute([plain_swap(rig)], rig.ctx))
        mine(anvil_node.rpc)
        assert asyncio.run(fresh.follow(after, 10.0)).status is ExecutionStatus.LANDED
        assert fresh.sent(after.tx_hashes[0]).nonce == start + 1
    assert our_nonce(anvil_node.rpc, me) == start + 2

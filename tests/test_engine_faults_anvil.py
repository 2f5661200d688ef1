"""The rest of issue 14's proof, on a real node: anvil 1.7.1 (automine off) with
the published Uniswap V2 contracts, the ``Engine`` driven through its public
faces with ``NodeExecutor`` + ``BackrunStrategy`` and a websocket ``NodeSource``:

* a node restart mid-run (``anvil_dumpState`` / restart on the same port /
  ``anvil_loadState``) is survived: the source reconnects and resyncs by itself,
  the executor's nonce follows the node (the transaction the restart dropped
  leaves no gap), and backruns of victims sent after the restart land right
  behind them with the predicted profit to the wei;
* a breaker opened by real executor failures (the account's ETH set to 0 with
  ``anvil_setBalance``, so the node refuses every send for insufficient funds)
  stops sending -- the account's nonce and the node's txpool prove nothing
  went out -- and, once the balance is back and ``open_seconds`` passed, admits
  exactly its probe budget, closes, and backruns land again;
* ``kill -9`` of an engine process right after a send, then a restart on the
  same checkpoint directory while the victim is still pending: the journal
  keeps the opportunity from being executed twice, nonces stay consecutive and
  the backruns after the restart realize their predicted profit;
* ``ExecutionResult.gas_cost_wei`` and ``realized_profit_net_of_gas`` match the
  receipt and the account's ETH and WETH balance changes.
"""
import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import test_mempool_anvil as mp
from conftest import subprocess_env
from test_backrun_anvil import b, balance, dev_key, eth_balance, receipt

pytestmark = pytest.mark.timeout(300)

OUR_INDEX = 8          # anvil dev account 8 is this module's engine (the fixtures' traders are 1..4)
KEY_ENV = "ENGINE_FAULTS_KEY"


@pytest.fixture(scope="module")
def ours(anvil_node, chain_sender, uniswap):
    from tallyio.devnet import dev_accounts, fund_trader

    account = dev_accounts(OUR_INDEX + 1)[OUR_INDEX]
    fund_trader(anvil_node.rpc, uniswap, account, sender=chain_sender)
    return account


@pytest.fixture
def engine_key(monkeypatch):
    key = dev_key(OUR_INDEX)
    monkeypatch.setenv(KEY_ENV, "0x" + key)
    return key


def nonce_of(rpc, address, block="latest"):
    return int(rpc.call("eth_getTransactionCount", address, block), 16)


def our_mined_txs(rpc, address):
    """Every transaction ``address`` sent that is on chain: [(block, index, nonce, hash)]."""
    found = []
    for number in range(int(rpc.call("eth_blockNumber"), 16) + 1):
        block = rpc.call("eth_getBlockByNumber", hex(number), True)
        for tx in block["transactions"]:
            if tx["from"].lower() == address:
                found.append((number, int(tx["transactionIndex"], 16), int(tx["nonce"], 16), tx["hash"]))
    return found


def pending_from(rpc, address):
    """The node's txpool entries (pending and queued) sent by ``address``."""
    content = rpc.call("txpool_content")
    out = {}
    for section in ("pending", "queued"):
        for sender, txs in content.get(section, {}).items():
            if sender.lower() == address:
                out.update(txs)
    return out


def engine_parts(node, uniswap, **config_fields):
    """(config, signer, table, routers, executor, strategy) for an Engine on ``node``."""
    from tallyio.engine.backrun import BackrunStrategy
    from tallyio.engine.config import CoreConfig
    from tallyio.engine.keys import Signer
    from tallyio.engine.node_executor import NodeExecutor
    from tallyio.mempool import AnalyzerConfig, FilterConfig

    config = CoreConfig(node_url=node.ws_url, execute=True, signer_key_env=KEY_ENV,
                        filter=FilterConfig(check_nonces=False), analyzer=AnalyzerConfig(max_sized=64),
                        **config_fields)
    signer = Signer.from_env(KEY_ENV)
    table = mp.table_from_chain(node.rpc, uniswap)
    routers = [(b(ex.router), k) for k, ex in enumerate(uniswap.v2)]
    executor = NodeExecutor(node.url, signer, gas_limit=400_000)
    return config, signer, table, routers, executor, BackrunStrategy(table, min_profit=1)


async def actionable(engine, strategy, victim, timeout=30.0):
    """The first BACKRUN opportunity of ``victim`` that ``strategy`` turns into an
    action (others -- standing arbitrage, cross-exchange cycles, older victims'
    leftovers -- are passed over without executing)."""
    from tallyio.mempool import OpportunityKind

    deadline = time.monotonic() + timeout
    seen = []
    while True:
        try:
            op = await asyncio.wait_for(engine.next_opportunity(), max(0.1, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            pytest.fail(f"no actionable backrun of 0x{victim.hex()} in {timeout} s; passed over: {seen}; "
                        f"declined: {strategy.declined}")
        assert op is not None, "the source ended"
        if op.kind == OpportunityKind.BACKRUN and op.trigger_tx == victim and strategy.on_opportunity(
                op, engine.context):
            return op
        seen.append((op.kind.name, op.trigger_tx == victim, op.profit))


async def settle(engine, node, uniswap):
    """Mine one block and wait until the engine's pool table shows the chain's reserves."""
    from tallyio.devnet import mine

    await asyncio.to_thread(mine, node.rpc)
    reserves = await asyncio.to_thread(mp.chain_reserves, node.rpc, uniswap)
    deadline = time.monotonic() + 30
    while not all(engine.table.reserves_of(b(p)) == r for p, r in reserves.items()):
        assert time.monotonic() < deadline, "the engine's pool table never caught up with the chain"
        await asyncio.sleep(0.01)
    return int(node.rpc.call("eth_blockNumber"), 16)


def check_landed_behind(node, sender, weth, address, victim, done):
    """``done`` (followed) landed right behind ``victim``, the start token grew by exactly its
    prediction, and its gas cost is the receipt's and the ETH spent; True for a WETH cycle."""
    from tallyio.engine import ExecutionStatus

    assert done.status == ExecutionStatus.LANDED, done
    v, r = receipt(node.rpc, victim), receipt(node.rpc, done.tx_hashes[0])
    block = int(v["blockNumber"], 16)
    assert int(r["blockNumber"], 16) == block
    assert int(r["transactionIndex"], 16) == int(v["transactionIndex"], 16) + 1
    start = "0x" + done.opportunity.token_path[0].hex()
    gained = balance(sender, start, address, block) - balance(sender, start, address, block - 1)
    assert gained == done.opportunity.profit == done.realized_profit > 0
    # the gas it cost: the receipt's gasUsed x effectiveGasPrice, and exactly the ETH the account spent
    assert done.gas_cost_wei == int(r["gasUsed"], 16) * int(r["effectiveGasPrice"], 16) > 0
    spent = eth_balance(node.rpc, address, block - 1) - eth_balance(node.rpc, address, block)
    assert spent == done.gas_cost_wei
    if start == weth:                                # a WETH cycle: profit and gas in one unit
        assert done.realized_profit_net_of_gas == gained - spent
    else:
        assert done.realized_profit_net_of_gas is None
    return start == weth


def test_a_node_restart_mid_run_is_survived_and_later_backruns_land_exactly(anvil_node, chain_sender, uniswap,
                                                                            traders, ours, engine_key):
    from tallyio.devnet import swap_v2
    from tallyio.engine import ExecutionStatus
    from tallyio.engine.engine import Engine

    config, signer, table, routers, executor, strategy = engine_parts(anvil_node, uniswap)
    me = ours.address
    first_nonce = nonce_of(anvil_node.rpc, me)
    T0, T1, W = uniswap.tokens[0], uniswap.tokens[1], uniswap.weth

    in_weth = []

    async def main():
        async with Engine(config, strategies=[strategy], executor=executor, table=table,
                          routers=routers) as engine:
            assert await asyncio.to_thread(engine.wait_connected, 30)
            # before the restart: a backrun lands
            victim_a = await asyncio.to_thread(swap_v2, chain_sender, traders[0], uniswap.v2[0].router,
                                               25 * 10**18, [T0, W])
            sent_a = await engine.execute_strategy(await actionable(engine, strategy, victim_a))
            assert sent_a.status == ExecutionStatus.SENT, sent_a
            await settle(engine, anvil_node, uniswap)
            done_a = await engine.executor.follow(sent_a, 10.0)
            in_weth.append(check_landed_behind(anvil_node, chain_sender, uniswap.weth, me, victim_a, done_a))
            state = await asyncio.to_thread(anvil_node.dump_state)
            # a victim and its backrun are pending when the node goes down: the restart drops both
            victim_b = await asyncio.to_thread(swap_v2, chain_sender, traders[1], uniswap.v2[1].router,
                                               20 * 10**18, [T1, W])
            sent_b = await engine.execute_strategy(await actionable(engine, strategy, victim_b))
            assert sent_b.status == ExecutionStatus.SENT, sent_b
            dropped_nonce = executor.sent(sent_b.tx_hashes[0]).nonce
            reconnects = engine.stats()["source"]["node"]["reconnects"]
            await asyncio.to_thread(anvil_node.restart, state=state)
            chain_sender.forget_nonces()
            assert nonce_of(anvil_node.rpc, me, "pending") == dropped_nonce, "the restart dropped the backrun"
            # the source reconnects and resyncs by itself; the table shows the restored chain
            deadline = time.monotonic() + 45
            while True:
                node = engine.stats()["source"]["node"]
                if node["reconnects"] > reconnects and node["connected"]:
                    break
                assert time.monotonic() < deadline, node
                await asyncio.sleep(0.05)
            # after the restart: victims sent now are backrun, with the nonce the restart freed
            results = []
            for trader, ex, path in ((traders[2], 0, [W, T0]), (traders[3], 1, [W, T1])):
                victim = await asyncio.to_thread(swap_v2, chain_sender, trader, uniswap.v2[ex].router,
                                                 15 * 10**18, path)
                sent = await engine.execute_strategy(await actionable(engine, strategy, victim))
                assert sent.status == ExecutionStatus.SENT, sent
                await settle(engine, anvil_node, uniswap)
                results.append((victim, sent, await engine.executor.follow(sent, 10.0)))
            lost = await engine.executor.follow(sent_b, 0.5)
            stats = engine.stats()
            return sent_a, sent_b, dropped_nonce, lost, results, stats, stats["source"]["node"]

    sent_a, sent_b, dropped_nonce, lost, results, stats, source = asyncio.run(main())
    signer.close()
    for victim, _sent, done in results:
        in_weth.append(check_landed_behind(anvil_node, chain_sender, uniswap.weth, me, victim, done))
    assert any(in_weth), "no WETH cycle: realized_profit_net_of_gas was not exercised"
    assert executor.sent(results[0][1].tx_hashes[0]).nonce == dropped_nonce, "the dropped nonce is reused"
    assert lost.status == ExecutionStatus.FAILED and "dropped" in lost.error, lost
    assert anvil_node.rpc.call("eth_getTransactionReceipt", "0x" + sent_b.tx_hashes[0].hex()) is None
    assert source["reconnects"] >= 1 and source["resynced_pools"] > 0
    # nothing sent twice: the engine's transactions on chain are a, then the two after the restart,
    # with consecutive distinct nonces (the one the restart dropped was taken again, no gap)
    mined = [t for t in our_mined_txs(anvil_node.rpc, me) if t[2] >= first_nonce]
    assert [t[2] for t in mined] == list(range(first_nonce, first_nonce + 3))
    assert [t[3] for t in mined] == ["0x" + h.hex() for h in (sent_a.tx_hashes[0], results[0][1].tx_hashes[0],
                                                              results[1][1].tx_hashes[0])]
    assert stats["results"]["SENT"] == 4 and stats["source"]["kind"] == "node"


def test_the_breaker_opens_on_refused_sends_sends_nothing_then_probes_and_closes(anvil_node, chain_sender, uniswap,
                                                                               traders, ours, engine_key):
    from tallyio.devnet import Sender, swap_v2
    from tallyio.engine import ExecutionStatus
    from tallyio.engine.engine import Engine

    open_seconds, probes = 3.0, 2
    config, signer, table, routers, executor, strategy = engine_parts(
        anvil_node, uniswap, breaker_window=3, breaker_minimum_calls=3, breaker_failure_rate=0.5,
        breaker_open_seconds=open_seconds, breaker_half_open_probes=probes, breaker_slow_call_ms=20_000.0)
    me = ours.address
    rpc = anvil_node.rpc
    chain_sender.forget_nonces()
    T0, T1, W = uniswap.tokens[0], uniswap.tokens[1], uniswap.weth
    wealth = rpc.call("eth_getBalance", me, "latest")
    fast = Sender(rpc, max_fee_per_gas=100 * 10**9, max_priority_fee_per_gas=3 * 10**9)

    async def victim(trader, ex, path, amount=40 * 10**18, sender=chain_sender):
        return await asyncio.to_thread(swap_v2, sender, trader, uniswap.v2[ex].router, amount, path)

    async def main():
        async with Engine(config, strategies=[strategy], executor=executor, table=table,
                          routers=routers) as engine:
            heard = []
            opened_at = []
            engine.breaker.add_listener(lambda br, old, new: heard.append((old.name, new.name)))
            engine.breaker.add_listener(lambda br, old, new: new.name == "OPEN" and opened_at.append(time.monotonic()))
            assert await asyncio.to_thread(engine.wait_connected, 30)
            start = nonce_of(rpc, me, "pending")
            rpc.call("anvil_setBalance", me, "0x0")       # the fault: every send is refused (insufficient funds)
            failed = []
            # each victim pushes its exchange's triangle further the same way (no backrun restores it),
            # so every one of them opens a single-exchange cycle
            for k, (ex, path) in enumerate(((0, [T0, W]), (1, [T1, W]), (0, [T0, W]))):
                v = await victim(traders[k], ex, path)
                failed.append(await engine.execute_strategy(await actionable(engine, strategy, v)))
                await settle(engine, anvil_node, uniswap)
            assert heard == [("CLOSED", "OPEN")], heard
            # open: opportunities still reach execute_strategy, nothing is sent
            calls = engine.stats()["strategies"]["BackrunStrategy"]["calls"]
            v = await victim(traders[3], 1, [T1, W])
            refused = await engine.execute_strategy(await actionable(engine, strategy, v))
            strategy_calls = engine.stats()["strategies"]["BackrunStrategy"]["calls"]
            pool_while_open = pending_from(rpc, me)
            nonce_while_open = nonce_of(rpc, me, "pending")
            health_open = engine.health()
            await settle(engine, anvil_node, uniswap)
            rpc.call("anvil_setBalance", me, wealth)      # healed
            # three victims at once after open_seconds: the first two executions are the probes
            # (both sent), the third finds the half-open budget spent
            await asyncio.sleep(max(0.0, opened_at[0] + open_seconds + 0.05 - time.monotonic()))
            vs = [await victim(traders[0], 0, [T0, W], sender=fast), await victim(traders[1], 1, [T1, W], sender=fast),
                  await victim(traders[2], 0, [T0, W])]
            ops = [await actionable(engine, strategy, v) for v in vs]
            half_open = await asyncio.gather(*(engine.execute_strategy(op) for op in ops))
            state_after_probes = engine.breaker.state.name
            # the third victim was only there to be refused: out of the block, so the probes' profits
            # are the victims' alone (anvil_dropTransaction: the node forgets it)
            rpc.call("anvil_dropTransaction", "0x" + vs[2].hex())
            chain_sender.forget_nonces()
            await settle(engine, anvil_node, uniswap)
            probed = [await engine.executor.follow(r, 10.0) for r in half_open[:probes]]
            # closed again: a backrun lands right behind its victim
            v = await victim(traders[3], 0, [T0, W])
            sent = await engine.execute_strategy(await actionable(engine, strategy, v))
            await settle(engine, anvil_node, uniswap)
            again = await engine.executor.follow(sent, 10.0)
            return (start, failed, calls, strategy_calls, refused, pool_while_open, nonce_while_open, health_open,
                    half_open, state_after_probes, probed, v, again, heard, engine.health(), engine.stats())

    (start, failed, calls, strategy_calls, refused, pool_while_open, nonce_while_open, health_open, half_open,
     state_after_probes, probed, last_victim, again, heard, health, stats) = asyncio.run(main())
    signer.close()
    for r in failed:
        assert r.status == ExecutionStatus.FAILED and "insufficient funds" in r.error.lower() and not r.tx_hashes, r
    assert refused.status == ExecutionStatus.REJECTED and refused.error == "circuit breaker executor is OPEN"
    assert strategy_calls == calls, "an open breaker spares the strategies"
    assert pool_while_open == {} and nonce_while_open == start, "nothing was sent while failing or open"
    assert health_open["breakers"]["executor"]["state"] == "OPEN" and health_open["breakers"]["executor"]["rejected"]
    assert [r.status for r in half_open[:probes]] == [ExecutionStatus.SENT] * probes, half_open
    assert half_open[2].status == ExecutionStatus.REJECTED and "HALF_OPEN" in half_open[2].error, half_open[2]
    assert state_after_probes == "CLOSED"
    for done in probed:
        assert done.status == ExecutionStatus.LANDED and done.realized_profit == done.opportunity.profit > 0, done
    check_landed_behind(anvil_node, chain_sender, uniswap.weth, ours.address, last_victim, again)
    assert heard == [("CLOSED", "OPEN"), ("OPEN", "HALF_OPEN"), ("HALF_OPEN", "CLOSED")]
    assert health["breakers"]["executor"]["state"] == stats["breakers"]["executor"]["state"] == "CLOSED"
    assert stats["results"]["FAILED"] == 3 and stats["results"]["SENT"] == probes + 1
    # on chain: exactly the two probes and the last backrun, consecutive nonces from where the fault began
    mined = [t[2] for t in our_mined_txs(anvil_node.rpc, ours.address) if t[2] >= start]
    assert mined == [start, start + 1, start + 2]


ENGINE_PROCESS = textwrap.dedent("""
    import asyncio, json, sys
    from tallyio.devnet import get_reserves
    from tallyio.engine.backrun import BackrunStrategy
    from tallyio.engine.config import CoreConfig
    from tallyio.engine.engine import Engine, opportunity_key
    from tallyio.engine.keys import Signer
    from tallyio.engine.node_executor import NodeExecutor
    from tallyio.engine.records import ExecutionStatus
    from tallyio.mempool import AnalyzerConfig, FilterConfig, OpportunityKind, PoolTable, V2Pool
    from tallyio.mempool._wsrpc import RpcClient

    spec = json.loads(sys.argv[1])
    h = lambda a: bytes.fromhex(a[2:])
    with RpcClient(spec["url"]) as rpc:
        table = PoolTable([V2Pool(h(p), h(t0), h(t1), *get_reserves(rpc, p), 30, k) for p, t0, t1, k in spec["pools"]],
                          weth=h(spec["weth"]))
    config = CoreConfig(node_url=spec["ws"], execute=True, signer_key_env=spec["key_env"],
                        checkpoint_dir=spec["dir"], filter=FilterConfig(check_nonces=False),
                        analyzer=AnalyzerConfig(max_sized=64))
    signer = Signer.from_env(spec["key_env"])
    executor = NodeExecutor(spec["url"], signer)
    strategy = BackrunStrategy(table, min_profit=1)

    def say(*parts):
        print(*parts, flush=True)

    async def commands(engine):
        while True:
            line = (await asyncio.to_thread(sys.stdin.readline)).strip()
            if line == "reserves":
                say("reserves", json.dumps({p: list(engine.table.reserves_of(h(p))) for p, *_ in spec["pools"]}))
            else:                                        # "stop" or end of input
                await engine.stop()
                return

    async def watch_skips(engine):
        skipped = 0
        while True:
            now = engine.stats()["opportunities"]["skipped_already_executed"]
            if now != skipped:
                skipped = now
                say("skipped", now)
            await asyncio.sleep(0.02)

    async def main():
        async with Engine(config, strategies=[strategy], executor=executor, table=table,
                          routers=[(h(r), k) for r, k in spec["routers"]]) as engine:
            assert await asyncio.to_thread(engine.wait_connected, 30)
            say("ready", json.dumps(engine.recovery._asdict()))
            tasks = [asyncio.ensure_future(commands(engine)), asyncio.ensure_future(watch_skips(engine))]
            while (op := await engine.next_opportunity()) is not None:
                if op.kind != OpportunityKind.BACKRUN:
                    continue
                result = await engine.execute_strategy(op)      # journaled before it returns
                if result.status == ExecutionStatus.SENT:
                    say("sent", json.dumps({"victim": op.trigger_tx.hex(), "tx": result.tx_hashes[0].hex(),
                                            "nonce": executor.sent(result.tx_hashes[0]).nonce,
                                            "key": opportunity_key(op).hex(), "profit": op.profit}))
                elif result.status != ExecutionStatus.REJECTED:
                    say("result", result.status.name, result.error)
            for task in tasks:
                task.cancel()
        signer.close()
        say("stopped")

    asyncio.run(main())
""")


class EngineProcess:
    """An engine in a child interpreter; its stdout lines arrive on a queue."""

    def __init__(self, spec):
        import queue
        import threading

        self.proc = subprocess.Popen([sys.executable, "-c", ENGINE_PROCESS, json.dumps(spec)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env())
        self.lines = queue.Queue()
        self.seen = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def expect(self, word, timeout=60.0, where=lambda rest: True):
        """The rest of the first line ``word ...`` (after those seen) for which ``where`` holds."""
        import queue

        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                line = "" if time.monotonic() < deadline else None
                if line is None:
                    pytest.fail(f"no {word!r} line from the engine process in {timeout} s; saw {self.seen}")
                continue
            if line is None:
                pytest.fail(f"the engine process ended (rc {self.proc.wait()}) before {word!r}; saw {self.seen}; "
                            f"stderr: {self.proc.stderr.read()[-3000:]}")
            self.seen.append(line)
            head, _, rest = line.partition(" ")
            if head == word and where(rest):
                return rest

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                pipe.close()
            except OSError:             # the child is gone: a broken pipe is what closing finds
                pass

    def send(self, command):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def wait_table(self, node, uniswap):
        """Until the child's pool table shows the chain's reserves."""
        want = {p: list(r) for p, r in mp.chain_reserves(node.rpc, uniswap).items()}
        deadline = time.monotonic() + 30
        while True:
            self.send("reserves")
            if json.loads(self.expect("reserves")) == want:
                return
            assert time.monotonic() < deadline, "the engine process's table never caught up with the chain"
            time.sleep(0.05)


def test_kill_9_after_a_send_then_a_restart_resumes_with_the_right_nonces_and_no_duplicate(
        anvil_node, chain_sender, uniswap, traders, ours, engine_key, tmp_path):
    from tallyio.devnet import mine, swap_v2
    from tallyio.state import RecordReader, RecordType

    rpc, me = anvil_node.rpc, ours.address
    chain_sender.forget_nonces()
    T0, T1, W = uniswap.tokens[0], uniswap.tokens[1], uniswap.weth
    pools, seen = [], set()
    for k, ex in enumerate(uniswap.v2):
        for (x, y), pair in ex.pairs.items():
            if pair not in seen:
                seen.add(pair)
                pools.append((pair, *sorted((x, y)), k))
    spec = {"url": anvil_node.url, "ws": anvil_node.ws_url, "dir": str(tmp_path / "state"), "weth": W,
            "key_env": KEY_ENV, "pools": pools, "routers": [(ex.router, k) for k, ex in enumerate(uniswap.v2)]}
    start = nonce_of(rpc, me, "pending")

    def swap(trader, ex, path, amount):
        return swap_v2(chain_sender, trader, uniswap.v2[ex].router, amount, path)

    def sent_for(victim):
        return lambda rest: json.loads(rest)["victim"] == victim.hex()

    first = EngineProcess(spec)
    try:
        first.expect("ready")
        victim_a = swap(traders[0], 0, [T0, W], 25 * 10**18)
        sent_a = json.loads(first.expect("sent", where=sent_for(victim_a)))
        mine(rpc)
        first.wait_table(anvil_node, uniswap)
        victim_b = swap(traders[1], 1, [T1, W], 20 * 10**18)
        sent_b = json.loads(first.expect("sent", where=sent_for(victim_b)))
        os.kill(first.proc.pid, signal.SIGKILL)         # right after the send was journaled
        assert first.proc.wait(30) == -signal.SIGKILL
    finally:
        first.close()
    # the victim and the backrun are still pending: the restarted engine's resync offers the victim
    # again, and only the journal can keep it from being backrun twice
    assert set(pending_from(rpc, me)) == {str(sent_b["nonce"])}
    second = EngineProcess(spec)
    try:
        recovery = json.loads(second.expect("ready"))
        assert recovery["last_journal_seq"] >= 2            # both sends were journaled by the killed run
        second.expect("skipped", where=lambda rest: int(rest) >= 1)
        mine(rpc)
        second.wait_table(anvil_node, uniswap)
        victim_c = swap(traders[2], 0, [W, T0], 30 * 10**18)
        sent_c = json.loads(second.expect("sent", where=sent_for(victim_c)))
        mine(rpc)
        second.send("stop")
        second.expect("stopped")
        assert second.proc.wait(30) == 0, second.proc.stderr.read()
    finally:
        second.close()
    assert not [line for line in second.seen if line.startswith("sent") and sent_for(victim_b)(line[5:])], \
        "the restarted engine backran a victim the killed one had already backrun"
    assert not [line for line in first.seen + second.seen if line.startswith("result")]
    # from the chain: the three backruns, consecutive nonces, each right behind its victim, exact profit
    mined = [t for t in our_mined_txs(rpc, me) if t[2] >= start]
    assert [(t[2], t[3]) for t in mined] == [(start + i, "0x" + s["tx"]) for i, s in enumerate((sent_a, sent_b,
                                                                                                  sent_c))]
    for victim, sent in ((victim_a, sent_a), (victim_b, sent_b), (victim_c, sent_c)):
        v, r = receipt(rpc, victim), receipt(rpc, bytes.fromhex(sent["tx"]))
        block = int(r["blockNumber"], 16)
        assert int(r["status"], 16) == 1 and int(v["blockNumber"], 16) == block
        assert int(r["transactionIndex"], 16) == int(v["transactionIndex"], 16) + 1
        assert balance(chain_sender, W, me, block) - balance(chain_sender, W, me, block - 1) == sent["profit"] > 0
    # the journal remembers each execution once
    keys = [rec.payload[9:25].hex() for rec in RecordReader(tmp_path / "state" / "journal.tlog")
            if rec.type == RecordType.EXECUTION_RESULT]
    assert keys == [sent_a["key"], sent_b["key"], sent_c["key"]]


def test_net_of_gas_only_for_weth_profit(anvil_node, chain_sender, uniswap, ours, engine_key):
    """A swap starting on a token other than WETH has no profit net of gas (two units); a
    "router" without WETH() (here a token contract: the call reverts) neither."""
    from tallyio.devnet import mine
    from tallyio.engine import ExecutionStatus
    from tallyio.engine.keys import Signer
    from tallyio.engine.node_executor import NodeExecutor
    from tallyio.engine.records import SwapAction
    from tallyio.engine.strategy import StrategyContext

    T0, W = b(uniswap.tokens[0]), b(uniswap.weth)
    swaps = [SwapAction(router=b(uniswap.v2[0].router), path=(T0, W), amount_in=10**15, min_amount_out=0,
                        max_fee_per_gas=100 * 10**9, max_priority_fee_per_gas=10**9),
             SwapAction(router=T0, path=(W, T0), amount_in=10**15, min_amount_out=0, gas_limit=100_000,
                        max_fee_per_gas=100 * 10**9, max_priority_fee_per_gas=10**9)]
    with Signer.from_env(KEY_ENV) as signer, NodeExecutor(anvil_node.url, signer) as executor:
        ctx = StrategyContext(account=signer.address, dry_run=False)
        done = []
        for action in swaps:
            sent = asyncio.run(executor.execute([action], ctx))
            assert sent.status == ExecutionStatus.SENT, sent
            mine(anvil_node.rpc)
            done.append(asyncio.run(executor.follow(sent, 10.0)))
    landed, reverted = done
    assert landed.status == ExecutionStatus.LANDED and landed.realized_profit == -10**15
    assert reverted.status == ExecutionStatus.REVERTED and reverted.realized_profit == 0
    for result in done:
        r = receipt(anvil_node.rpc, result.tx_hashes[0])
        assert result.gas_cost_wei == int(r["gasUsed"], 16) * int(r["effectiveGasPrice"], 16) > 0
        assert result.realized_profit_net_of_gas is None

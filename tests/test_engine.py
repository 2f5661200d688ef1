"""The Engine's faces on the embedded recording: opportunities until the
replay ends, the dry run realizing every golden profit exactly, strategies'
interest, a raising strategy or executor, stop() waking a waiting consumer,
conservation of opportunities, the sync face, the metrics endpoint, the kill -9
resume, and ``tallyio run`` as a subprocess."""
import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request

import pytest

from conftest import subprocess_env
from tallyio.engine import ExecutionStatus, Strategy, SwapAction
from tallyio.engine.config import CoreConfig
from tallyio.engine.engine import Engine, EngineError
from tallyio.engine.executors import DryRunExecutor, Executor
from tallyio.engine.strategy import CycleStrategy
from tallyio.eth.types import BlockHeader, PendingTx
from tallyio.mempool import AnalyzerConfig, OpportunityKind, Recorder, ReplaySource
from tallyio.mempool.recording import embedded_recording
from tallyio.state import ENGINE_LAYOUT, RecordReader, RecordType

# the golden file is exhaustive over every cycle: size every candidate (as test_mempool_replay does)
EXHAUSTIVE = AnalyzerConfig(max_sized=64, max_cycles=100_000, max_evaluations=1 << 20)
PATH, GOLDEN = embedded_recording()


def golden_profits():
    # ARBITRAGE entries have no trigger (standing cycles after a block's Sync logs)
    return {(bytes.fromhex(o["trigger_tx"] or ""), tuple(bytes.fromhex(p) for p in o["pools"]),
             o["amount_in"]): o["profit"] for o in GOLDEN["opportunities"]}


def key(op):
    return (op.trigger_tx or b"", tuple(op.pools), op.amount_in)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 240))


class Counting(CycleStrategy):
    """CycleStrategy that counts its calls and results."""

    def __init__(self):
        self.calls = 0
        self.results = []
        self.started = self.stopped = 0

    def on_start(self, ctx):
        self.started += 1

    def on_stop(self):
        self.stopped += 1

    def on_opportunity(self, op, ctx):
        self.calls += 1
        return super().on_opportunity(op, ctx)

    def on_result(self, result):
        self.results.append(result)

    def on_block(self, block):
        self.blocks = getattr(self, "blocks", [])
        self.blocks.append(block.number)


def test_replay_to_the_end_then_none_and_every_golden_profit_realized_exactly():
    golden = golden_profits()
    strategy = Counting()

    async def main():
        async with Engine(CoreConfig.replay(analyzer=EXHAUSTIVE), strategies=[strategy]) as engine:
            realized = {}
            while (op := await engine.next_opportunity()) is not None:
                result = await engine.execute_strategy(op)
                assert result.status == ExecutionStatus.SIMULATED, result
                assert result.opportunity is op and result.expected_profit == op.profit
                realized[key(op)] = result.realized_profit
            assert await engine.next_opportunity() is None          # stays ended
            return realized, engine.stats()

    realized, stats = run(main())
    assert realized == golden                                    # every golden opportunity, its exact profit
    assert strategy.calls == len(golden) == len(strategy.results) and strategy.started == strategy.stopped == 1
    # every block header reached on_block, in order, on the consumer's side
    assert len(strategy.blocks) == GOLDEN["rounds"] and strategy.blocks == sorted(strategy.blocks)
    assert stats["realized_profit"] == sum(golden.values())
    assert stats["results"]["SIMULATED"] == len(golden)
    opps = stats["opportunities"]
    assert opps["received"] == opps["processed"] + opps["dropped"] + opps["in_flight"]
    assert opps["dropped"] == 0 and opps["in_flight"] == 0
    assert stats["state"] == "running" and stats["latency_ns"]["execute"]["count"] == len(golden)
    # the hand-off woke the loop at most once per batch (+ the end of the source's wake-up),
    # not once per opportunity, and the producers wrote the eventfd at most once per sleep
    bridge = stats["bridge"]
    assert bridge["wakes"] <= bridge["batches"] + 1 and bridge["producer_wakes"] <= bridge["sleeps"] + 1
    assert bridge["taken"] == opps["processed"] and bridge["queued"] == 0


def test_replays_are_deterministic_and_lockstep_off_still_finds_everything():
    async def collect(config):
        async with Engine(config, strategies=[CycleStrategy()]) as engine:
            out = []
            while (op := await engine.next_opportunity()) is not None:
                out.append(key(op))
            return out

    a = run(collect(CoreConfig.replay(analyzer=EXHAUSTIVE)))
    b = run(collect(CoreConfig.replay(analyzer=EXHAUSTIVE, replay_lockstep=False)))
    assert sorted(a) == sorted(b) == sorted(golden_profits())


def test_interest_filtering_only_wanted_opportunities_reach_python():
    golden = golden_profits()
    weth = bytes.fromhex(GOLDEN["weth"][2:])
    some_pool = next(iter(golden))[1][0]
    threshold = sorted(golden.values())[len(golden) // 2]

    class WantsArbitrage(Counting):
        kinds = (OpportunityKind.ARBITRAGE,)

    class WantsPool(Counting):
        pools = frozenset({some_pool})

    class WantsOtherToken(Counting):
        tokens = frozenset({b"\xee" * 20})

    class WantsWeth(Counting):
        tokens = frozenset({weth})

    class WantsRich(Counting):
        min_profit = threshold

    strategies = [WantsArbitrage(), WantsPool(), WantsOtherToken(), WantsWeth(), WantsRich()]

    async def main():
        async with Engine(CoreConfig.replay(analyzer=EXHAUSTIVE), strategies=strategies) as engine:
            seen = []
            while (op := await engine.next_opportunity()) is not None:
                seen.append(op)
                await engine.execute_strategy(op)
            return seen, engine.stats()

    seen, stats = run(main())
    assert len(seen) == len(golden)
    arb, pool, other, weth_s, rich = strategies
    arbitrage = sum(1 for op in seen if op.kind == OpportunityKind.ARBITRAGE)
    assert arb.calls == arbitrage > 0 and other.calls == 0        # only the standing cycles; no such token
    assert pool.calls == sum(1 for op in seen if some_pool in op.pools) > 0
    assert weth_s.calls == sum(1 for op in seen if weth in op.token_path) > 0
    assert rich.calls == sum(1 for op in seen if op.profit >= threshold) > 0
    assert stats["strategies"]["WantsArbitrage"]["skipped"] == len(golden) - arbitrage > 0


def test_a_raising_strategy_is_counted_and_reported_and_the_engine_lives_on():
    class Broken(Strategy):
        def on_opportunity(self, op, ctx):
            raise ZeroDivisionError("strategy bug")

    good = Counting()

    async def main():
        async with Engine(CoreConfig.replay(), strategies=[Broken(), good]) as engine:
            results = []
            while (op := await engine.next_opportunity()) is not None:
                results.append(await engine.execute_strategy(op))
            return results, engine.stats(), engine.health()

    results, stats, health = run(main())
    assert results and all(r.status == ExecutionStatus.SIMULATED for r in results)
    assert good.calls == len(results)
    broken = stats["strategies"]["Broken"]
    assert broken["errors"] == len(results) and "ZeroDivisionError: strategy bug" in broken["last_error"]
    assert health["strategy_errors"] == len(results) and stats["error_rate"] > 0

    async def only_broken():
        async with Engine(CoreConfig.replay(), strategies=[Broken()]) as engine:
            op = await engine.next_opportunity()
            return await engine.execute_strategy(op)

    result = run(only_broken())
    assert result.status == ExecutionStatus.REJECTED and "strategy bug" in result.error


def test_an_executor_that_raises_gives_failed_results_and_halt_rejects_without_calling_strategies():
    class Exploding:
        closed = False

        async def execute(self, actions, ctx):
            raise ConnectionError("node went away")

        async def follow(self, result, timeout):
            return result

        def close(self):
            self.closed = True

    strategy = Counting()
    executor = Exploding()
    assert isinstance(executor, Executor)

    async def main():
        async with Engine(CoreConfig.replay(), strategies=[strategy], executor=executor) as engine:
            first = await engine.execute_strategy(await engine.next_opportunity())
            engine.halt("risk limit")
            halted = await engine.execute_strategy(await engine.next_opportunity())
            calls = strategy.calls
            assert engine.health()["trading_state"] == "HALTED" and not engine.health()["ok"]
            engine.resume()
            again = await engine.execute_strategy(await engine.next_opportunity())
            return first, halted, calls, again

    first, halted, calls, again = run(main())
    assert first.status == ExecutionStatus.FAILED and "node went away" in first.error
    assert halted.status == ExecutionStatus.REJECTED and "risk limit" in halted.error and calls == 1
    assert again.status == ExecutionStatus.FAILED and strategy.calls == 2
    assert executor.closed


def slow_recording(tmp_path, gap_s=60.0):
    """The embedded pool snapshot, one pending swap, then a block a minute later."""
    src = ReplaySource(PATH)
    items = list(src)
    tx = next(item for item in items if isinstance(item, PendingTx))
    path = tmp_path / "slow.tio"
    with Recorder(path) as rec:
        rec.snapshot(src.pool_table(), ts=0)
        rec.write(tx._replace(received_ns=1_000))
        rec.write(BlockHeader(1, b"\x01" * 32, b"\x02" * 32, 1, 7, 30_000_000, 1, int(gap_s * 1e9)))
    return str(path)


def test_stop_wakes_a_waiting_next_opportunity_with_none(tmp_path):
    config = CoreConfig.replay(slow_recording(tmp_path), replay_realtime=True)
    routers = [(bytes.fromhex(a[2:]), k) for a, k in GOLDEN["routers_v2"]]

    async def main():
        engine = Engine(config, strategies=[CycleStrategy()], routers=routers)
        await engine.start()
        first = await engine.next_opportunity()          # the pending swap's opportunity
        waiting = asyncio.ensure_future(engine.next_opportunity())
        await asyncio.sleep(0.3)
        assert not waiting.done()                         # the replay waits a minute for its block
        started = time.monotonic()
        await engine.stop()
        got = await asyncio.wait_for(waiting, 10)
        return first, got, time.monotonic() - started, engine

    first, got, took, engine = run(main())
    assert first is not None and got is None
    assert took < 30                                      # stop() did not sit out the minute
    assert engine.state == "stopped"
    with pytest.raises(EngineError, match="stopped"):
        run(engine.next_opportunity())


def test_conservation_with_a_tiny_queue_and_a_slow_consumer():
    config = CoreConfig.replay(analyzer=EXHAUSTIVE, replay_lockstep=False, opportunity_capacity=2)

    async def main():
        async with Engine(config) as engine:
            checks = []
            await asyncio.sleep(0.5)                  # let the replay outrun the consumer
            while await engine.next_opportunity() is not None:
                o = engine.stats()["opportunities"]
                checks.append(o["received"] == o["processed"] + o["dropped"] + o["in_flight"])
                await asyncio.sleep(0.0005)
            return checks, engine.stats()["opportunities"]

    checks, final = run(main())
    assert checks and all(checks)
    assert final["received"] == final["processed"] + final["dropped"] + final["in_flight"]
    assert final["received"] == len(GOLDEN["opportunities"]) and final["dropped"] > 0
    assert final["in_flight"] == 0


def test_sync_face_for_scripts_and_life_cycle_errors():
    strategy = Counting()
    with Engine(CoreConfig.replay(analyzer=EXHAUSTIVE), strategies=[strategy]) as engine:
        with pytest.raises(EngineError, match="starts once"):
            engine.start_sync()
        results = []
        while (op := engine.next_opportunity_sync(timeout=60)) is not None:
            results.append(engine.execute_strategy_sync(op))
        with pytest.raises(TypeError, match="Opportunity"):
            engine.execute_strategy_sync("not an opportunity")
    assert sorted(key(r.opportunity) for r in results) == sorted(golden_profits())
    assert sum(r.realized_profit for r in results) == sum(golden_profits().values())
    # an executor that really awaits (as a node executor does) goes through a private loop
    class Awaiting:
        async def execute(self, actions, ctx):
            await asyncio.sleep(0.001)
            return DryRunExecutor(engine.table, {}).execute_now(actions)

        async def follow(self, result, timeout):
            return result

        def close(self):
            pass

    with Engine(CoreConfig.replay(), strategies=[CycleStrategy()], executor=Awaiting()) as engine:
        op = engine.next_opportunity_sync(timeout=60)
        result = engine.execute_strategy_sync(op)
    # (this stand-in does not replay the trigger, so the cycle may revert: either way it ran, not FAILED)
    assert result.status in (ExecutionStatus.SIMULATED, ExecutionStatus.REVERTED) and result.opportunity is op
    fresh = Engine(CoreConfig.replay())
    with pytest.raises(EngineError, match="start"):
        fresh.next_opportunity_sync(timeout=0)
    with pytest.raises(TypeError, match="Strategy"):
        Engine(CoreConfig.replay(), strategies=[object()])
    with pytest.raises(TypeError, match="Executor"):
        Engine(CoreConfig.replay(), executor=object())
    with pytest.raises(TypeError, match="CoreConfig"):
        Engine({"workers": 2})
    with pytest.raises(EngineError, match="table="):
        Engine(CoreConfig(node_url="ws://127.0.0.1:1")).start_sync()


def test_latency_settings_reach_their_parts_and_change_no_result():
    """consumer_spin_us / inline_analysis / gc_freeze: the replay's results are the golden
    ones either way; the bridge spins as configured; gc_freeze freezes the heap alive at
    start for the run and stop() gives it back to the collector."""
    import gc

    config = CoreConfig.replay(analyzer=EXHAUSTIVE, consumer_spin_us=0, inline_analysis=False, gc_freeze=True)
    with Engine(config, strategies=[CycleStrategy()]) as engine:
        assert engine.bridge.spin_ns == 0
        frozen = gc.get_freeze_count()
        assert frozen > 0 and engine.stats()["process"]["gc_frozen_objects"] == frozen
        results = []
        while (op := engine.next_opportunity_sync(timeout=60)) is not None:
            results.append(engine.execute_strategy_sync(op))
        inline = engine.pipeline.stats()["pipeline"]["inline_feeds"]
    assert gc.get_freeze_count() == 0
    assert inline == 0                      # a replay feeds through the native feeder, not feed()
    assert sorted(key(r.opportunity) for r in results) == sorted(golden_profits())
    assert sum(r.realized_profit for r in results) == sum(golden_profits().values())
    with Engine(CoreConfig.replay(consumer_spin_us=12.5)) as engine:
        assert engine.bridge.spin_ns == 12_500 and gc.get_freeze_count() == 0


def test_dry_run_reverts_under_min_amount_out_and_fails_on_unknown_router():
    from tallyio.mempool import PoolTable, V2Pool

    A, B, PAIR, ROUTER = b"\x0a" * 20, b"\x0b" * 20, b"\x01" * 20, b"\x02" * 20
    table = PoolTable([V2Pool(PAIR, A, B, 10**6, 2 * 10**6)])
    dry = DryRunExecutor(table, routers={ROUTER: 0})
    ok = dry.execute_now([SwapAction(ROUTER, (A, B), 1000, 1992)])
    too_much = dry.execute_now([SwapAction(ROUTER, (A, B), 1000, 1993)])
    assert ok.status == ExecutionStatus.SIMULATED and ok.realized_profit == 992
    assert too_much.status == ExecutionStatus.REVERTED and "min_amount_out" in too_much.error
    # two actions on one copy of the reserves: the second sees the first's trade
    both = dry.execute_now([SwapAction(ROUTER, (A, B), 1000, 0), SwapAction(ROUTER, (A, B), 1000, 0)])
    assert dry.last_outputs[1] < dry.last_outputs[0] == 1992 and both.gas_used == 2 * 150_000
    unknown = dry.execute_now([SwapAction(b"\x03" * 20, (A, B), 1000, 0)])
    assert unknown.status == ExecutionStatus.FAILED and "router" in unknown.error
    assert dry.execute_now([]).status == ExecutionStatus.REJECTED
    assert table.reserves_of(PAIR) == (10**6, 2 * 10**6)          # the table itself is never changed
    with pytest.raises(TypeError, match="PoolTable"):
        DryRunExecutor({}, {})
    with pytest.raises(ValueError, match="20 bytes"):
        DryRunExecutor(table, {b"\x01": 0})


def test_metrics_endpoint_serves_the_engines_counters():
    config = CoreConfig.replay(metrics_endpoint="127.0.0.1:0")

    async def main():
        async with Engine(config, strategies=[CycleStrategy()]) as engine:
            n = 0
            while (op := await engine.next_opportunity()) is not None:
                await engine.execute_strategy(op)
                n += 1
            url = engine.stats()["metrics_url"]
            body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=10).read())
            return n, body.decode()

    n, text = run(main())
    assert f"engine_opportunities_total {n}" in text
    assert 'engine_results_total{status="simulated"} ' + str(n) in text
    assert "engine_execute_latency_seconds_count" in text


def child_script(directory, stop_after=None):
    return textwrap.dedent(f"""
        import asyncio, json, sys
        from tallyio.engine.config import CoreConfig
        from tallyio.engine.engine import Engine
        from tallyio.engine.strategy import CycleStrategy
        from tallyio.mempool import AnalyzerConfig
        config = CoreConfig.replay(analyzer=AnalyzerConfig(max_sized=64, max_cycles=100_000,
                                   max_evaluations=1 << 20), checkpoint_dir={str(directory)!r},
                                   checkpoint_every_events=7)
        async def main():
            async with Engine(config, strategies=[CycleStrategy()]) as engine:
                print("recovery", json.dumps(engine.recovery._asdict()), flush=True)
                n = 0
                while (op := await engine.next_opportunity()) is not None:
                    await engine.execute_strategy(op)
                    n += 1
                    print("executed", n, flush=True)
                print("done", json.dumps(engine.stats()["opportunities"]), flush=True)
        asyncio.run(main())
    """)


def test_kill_9_mid_replay_then_restart_resumes_without_duplicates(tmp_path, seed):
    import random

    rng = random.Random(seed)
    directory = tmp_path / "state"
    golden = golden_profits()
    kill_at = rng.randrange(40, len(golden) - 40)
    with subprocess.Popen([sys.executable, "-c", child_script(directory)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=subprocess_env()) as child:
        executed = 0
        for line in child.stdout:
            if line.startswith("executed"):
                executed = int(line.split()[1])
                if executed >= kill_at:
                    os.kill(child.pid, signal.SIGKILL)
                    break
        child.wait(60)
        assert child.returncode == -signal.SIGKILL, child.stderr.read()
    again = subprocess.run([sys.executable, "-c", child_script(directory)], capture_output=True, text=True,
                           env=subprocess_env(), timeout=240)
    assert again.returncode == 0, again.stderr
    lines = again.stdout.splitlines()
    recovery = json.loads(lines[0].split(" ", 1)[1])
    assert recovery["last_journal_seq"] > 0                 # it resumed from the first run's state
    resumed_executions = sum(1 for line in lines if line.startswith("executed"))
    done = json.loads(lines[-1].split(" ", 1)[1])
    assert done["skipped_already_executed"] >= 0
    # the journal: every golden opportunity executed exactly once across the two runs
    keys = [rec.payload[9:25] for rec in RecordReader(directory / "journal.tlog")
            if rec.type == RecordType.EXECUTION_RESULT]
    assert len(keys) == len(set(keys)) == len(golden)
    # the second run did not start over: what the first journaled (at least what it printed) was not redone
    assert len(golden) - resumed_executions >= executed >= kill_at
    from tallyio.state import StateStore
    from tallyio.engine.engine import C_EXECUTED, C_PROFIT, _apply_engine_record
    store = StateStore(directory, ENGINE_LAYOUT, _apply_engine_record)
    try:
        assert store.state.get("counters", C_EXECUTED, "value") == len(golden)
        assert store.state.get("counters", C_PROFIT, "value") == sum(golden.values())
    finally:
        store.close()


def test_tallyio_run_as_a_subprocess(tmp_path):
    report = tmp_path / "run.html"
    done = subprocess.run([sys.executable, "-m", "tallyio", "run", "--report", str(report)],
                          capture_output=True, text=True, env=subprocess_env(), timeout=240)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "embedded replay (dry run)" in out and "realized P&L" in out
    executed = int(out.split("executed")[1].split()[0].replace(",", ""))
    assert executed > 0 and "\r" not in out                    # no status line when not a terminal
    assert report.exists() and "<svg" in report.read_text()
    bad = subprocess.run([sys.executable, "-m", "tallyio", "run", "--strategy", "nope"],
                         capture_output=True, text=True, env=subprocess_env(), timeout=120)
    assert bad.returncode == 2 and "module:Class" in bad.stderr
    strategy_file = tmp_path / "my_strategy.py"
    strategy_file.write_text("from tallyio.engine.strategy import CycleStrategy\n"
                             "class Mine(CycleStrategy):\n    min_profit = 10**30\n")
    mine = subprocess.run([sys.executable, "-m", "tallyio", "run", "--strategy", "my_strategy:Mine"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=240,
                          env=subprocess_env(PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ["PYTHONPATH"]])))
    assert mine.returncode == 0, mine.stderr
    assert "executed         0" in mine.stdout and "rejected" in mine.stdout


def test_tallyio_run_prints_a_status_line_on_a_terminal():
    import pty

    pid, fd = pty.fork()
    if pid == 0:                                                # the child: tallyio run on a pty
        os.execvpe(sys.executable, [sys.executable, "-m", "tallyio", "run"], subprocess_env())
    chunks = []
    while True:
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    _, status = os.waitpid(pid, 0)
    text = b"".join(chunks).decode(errors="replace")
    assert os.WEXITSTATUS(status) == 0, text
    assert "\r" in text and "tx/s" in text and "opportunities" in text and "p99" in text


def test_bench_engine_group_smoke_runs_each_seed_benchmark():
    from tallyio.bench._engine import sections
    from tallyio.bench._progress import Progress

    names = []
    by_case = {}
    for _title, section in sections("smoke"):
        figures = section(Progress(sink=lambda line: None))
        assert figures and all(f.samples for f in figures)
        names.extend(f.case.split(":")[0] for f in figures)
        by_case.update((f.case, f) for f in figures)
    assert {"engine_execution", "mempool_analysis", "state_sync", "end-to-end open loop at 10k tx/s"} <= set(names)
    # the open loop's peers in the same run, and where its time goes
    p99 = by_case["end-to-end open loop at 10k tx/s: arrival -> next_opportunity p99"]
    assert {"python searcher (asyncio, eth-abi, ints)",
            "machine floor (a thread waking on the schedule)"} <= set(p99.peers)
    assert {"open loop, where the time goes: arrival -> detected p99",
            "open loop, where the time goes: detected -> returned p99"} <= set(by_case)
    # the busy-poll row beside the default one and the floors, and the host's steal time
    busy = by_case["end-to-end open loop at 10k tx/s: arrival -> next_opportunity p99, busy-poll"]
    assert {"tallyio", "machine floor, busy-poll (a thread spinning to each arrival)"} <= set(busy.peers)
    assert by_case["open loop: the host's steal time during the run (the VM's CPUs not running)"].samples


def test_native_strategy_driven_by_the_engine_matches_the_python_one():
    from tallyio.engine._native import NativeStrategy
    from tallyio.engine._native_example import ExampleCycleHooks

    golden = golden_profits()
    hooks = ExampleCycleHooks(min_profit=1)

    class WantsCycles(NativeStrategy):
        kinds = (OpportunityKind.BACKRUN, OpportunityKind.ARBITRAGE)

    async def main():
        async with Engine(CoreConfig.replay(analyzer=EXHAUSTIVE), strategies=[WantsCycles(hooks)]) as engine:
            realized = {}
            while (op := await engine.next_opportunity()) is not None:
                result = await engine.execute_strategy(op)
                assert result.status == ExecutionStatus.SIMULATED, result
                realized[key(op)] = result.realized_profit
            return realized, engine.stats()

    realized, stats = run(main())
    assert realized == golden and hooks.calls == len(golden)
    assert stats["strategies"]["ExampleCycleHooks"]["errors"] == 0
    # the threshold is applied by the C hook: above every profit, it takes nothing
    none = ExampleCycleHooks(min_profit=10**30)

    async def main_none():
        async with Engine(CoreConfig.replay(), strategies=[NativeStrategy(none)]) as engine:
            statuses = []
            while (op := await engine.next_opportunity()) is not None:
                statuses.append((await engine.execute_strategy(op)).status)
            return statuses

    statuses = run(main_none())
    assert statuses and set(statuses) == {ExecutionStatus.REJECTED} and none.calls == len(statuses)
    with pytest.raises(TypeError, match="NativeHooks"):
        NativeStrategy(object())


@pytest.mark.concurrency
def test_native_hooks_run_without_the_gil_on_several_threads_at_once():
    from conftest import run_threads, scaled
    from tallyio.engine._native import fill_opportunity_calls
    from tallyio.engine._native_example import ExampleCycleHooks

    with Engine(CoreConfig.replay()) as engine:
        op = engine.next_opportunity_sync(timeout=60)
    n = scaled(200_000, minimum=1000)
    hooks = [ExampleCycleHooks(min_profit=1) for _ in range(3)]      # one state per thread
    results = run_threads(*[(fill_opportunity_calls, (h, op, n)) for h in hooks])
    assert results == [n, n, n] and [h.calls for h in hooks] == [n, n, n]


def test_docs_engine_md_python_examples_run(capsys):
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "engine.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, "docs/engine.md", "exec"), {})
    out = capsys.readouterr().out
    assert "SIMULATED" in out


def test_exec14s_backrun_strategy_through_the_dry_run_realizes_the_golden_profit():
    from tallyio.engine.backrun import BackrunStrategy

    golden = golden_profits()
    table = ReplaySource(PATH).pool_table()
    strategy = BackrunStrategy(table)

    async def main():
        async with Engine(CoreConfig.replay(analyzer=EXHAUSTIVE, workers=1), strategies=[strategy]) as engine:
            out = []
            while (op := await engine.next_opportunity()) is not None:
                out.append(await engine.execute_strategy(op))
            return out

    results = run(main())
    acted = [r for r in results if r.status != ExecutionStatus.REJECTED]
    assert acted and all(r.status == ExecutionStatus.SIMULATED for r in acted)
    assert all(r.realized_profit == golden[key(r.opportunity)] for r in acted)
    assert len(results) - len(acted) == strategy.declined["cross_exchange"] > 0


def test_the_breaker_opens_on_executor_failures_and_then_no_strategy_runs_and_nothing_is_sent():
    class Failing:
        calls = 0

        async def execute(self, actions, ctx):
            Failing.calls += 1
            raise ConnectionError("node refused")

        async def follow(self, result, timeout):
            return result

        def close(self):
            pass

    strategy = Counting()
    config = CoreConfig.replay(breaker_window=4, breaker_minimum_calls=4, breaker_open_seconds=3600.0)

    async def main():
        async with Engine(config, strategies=[strategy], executor=Failing()) as engine:
            results = []
            while (op := await engine.next_opportunity()) is not None:
                results.append(await engine.execute_strategy(op))
            return results, engine.stats(), engine.health()

    results, stats, health = run(main())
    assert [r.status for r in results[:4]] == [ExecutionStatus.FAILED] * 4
    rest = results[4:]
    assert rest and all(r.status == ExecutionStatus.REJECTED and "circuit breaker" in r.error for r in rest)
    assert Failing.calls == 4 and strategy.calls == 4            # an open breaker spares the strategies too
    breaker = stats["breakers"]["executor"]
    assert breaker["state"] == "OPEN" and breaker["failures"] == 4 and breaker["rejected"] == len(rest)
    assert health["breakers"]["executor"]["state"] == "OPEN"


def test_an_open_breaker_half_opens_and_its_first_probe_reaches_the_executor_then_it_closes():
    """The call that finds the open period over half-opens the breaker and IS its first
    probe: it must reach the executor (it was once taken and thrown away, so the breaker
    never closed). A probe the strategies had nothing for is given back."""

    class FailsThenHeals:
        # a mock only for the fault: a node that refuses, then recovers (tests/test_engine_faults_anvil.py
        # does it on anvil); healed, it reports success without sending anything
        healed = False
        calls = 0

        async def execute(self, actions, ctx):
            FailsThenHeals.calls += 1
            if not FailsThenHeals.healed:
                raise ConnectionError("node refused")
            return ExecutionResult(ExecutionStatus.SIMULATED, opportunity=actions[0].opportunity)

        async def follow(self, result, timeout):
            return result

        def close(self):
            pass

    class SometimesIdle(Counting):
        idle_next = False

        def on_opportunity(self, op, ctx):
            if self.idle_next:
                self.idle_next = False
                return []
            return super().on_opportunity(op, ctx)

    from tallyio.engine.records import ExecutionResult

    open_seconds = 0.2
    config = CoreConfig.replay(breaker_window=3, breaker_minimum_calls=3, breaker_open_seconds=open_seconds,
                               breaker_half_open_probes=2, breaker_slow_call_ms=60_000.0)
    strategy = SometimesIdle()

    async def main():
        async with Engine(config, strategies=[strategy], executor=FailsThenHeals()) as engine:
            heard = []
            engine.breaker.add_listener(lambda b, old, new: heard.append((old.name, new.name)))
            results = []
            while len(results) < 12 and (op := await engine.next_opportunity()) is not None:
                if engine.breaker.state.name == "OPEN" and results and results[-1].status == ExecutionStatus.REJECTED:
                    FailsThenHeals.healed = True
                    await asyncio.sleep(open_seconds * 1.5)       # the open period ends
                    strategy.idle_next = True                      # the first probe finds nothing to do
                results.append(await engine.execute_strategy(op))
            return results, heard, engine.stats()["breakers"]["executor"]

    results, heard, breaker = run(main())
    statuses = [r.status.name for r in results]
    assert statuses[:3] == ["FAILED"] * 3 and statuses[3] == "REJECTED" and "is OPEN" in results[3].error, statuses
    assert results[4].status == ExecutionStatus.REJECTED and results[4].error.startswith("no actions")
    assert statuses[5:] == ["SIMULATED"] * (len(results) - 5), statuses   # two probes, then closed
    assert heard == [("CLOSED", "OPEN"), ("OPEN", "HALF_OPEN"), ("HALF_OPEN", "CLOSED")]
    assert breaker["state"] == "CLOSED" and FailsThenHeals.calls == 3 + len(results) - 5


def test_a_dry_run_result_has_no_gas_cost():
    async def main():
        async with Engine(CoreConfig.replay(), strategies=[CycleStrategy()]) as engine:
            op = await engine.next_opportunity()
            return await engine.execute_strategy(op)

    result = run(main())
    assert result.status == ExecutionStatus.SIMULATED and result.gas_used > 0
    assert result.gas_cost_wei is None and result.realized_profit_net_of_gas is None


def test_a_cancelled_execution_gives_its_half_open_probe_back():
    class FailHangHeal:
        # a mock only for the faults: a refusal, then a send that never answers (cancelled)
        calls = 0

        async def execute(self, actions, ctx):
            FailHangHeal.calls += 1
            if FailHangHeal.calls == 1:
                raise ConnectionError("node refused")
            if FailHangHeal.calls == 2:
                await asyncio.Event().wait()
            return ExecutionResult(ExecutionStatus.SIMULATED, opportunity=actions[0].opportunity)

        async def follow(self, result, timeout):
            return result

        def close(self):
            pass

    from tallyio.engine.records import ExecutionResult

    config = CoreConfig.replay(breaker_window=1, breaker_minimum_calls=1, breaker_open_seconds=0.1,
                               breaker_half_open_probes=1, breaker_slow_call_ms=60_000.0)

    async def main():
        async with Engine(config, strategies=[CycleStrategy()], executor=FailHangHeal()) as engine:
            first = await engine.execute_strategy(await engine.next_opportunity())
            await asyncio.sleep(0.15)                               # the open period ends
            probe = asyncio.ensure_future(engine.execute_strategy(await engine.next_opportunity()))
            while FailHangHeal.calls < 2:
                await asyncio.sleep(0.01)
            probe.cancel()
            with pytest.raises(asyncio.CancelledError):
                await probe
            half_open = engine.breaker.state.name
            last = await engine.execute_strategy(await engine.next_opportunity())
            return first, half_open, last, engine.breaker.state.name

    first, half_open, last, state = run(main())
    assert first.status == ExecutionStatus.FAILED and half_open == "HALF_OPEN"
    assert last.status == ExecutionStatus.SIMULATED, last     # the probe's place was given back
    assert state == "CLOSED" and FailHangHeal.calls == 3


def intent_child(directory, die_at):
    return textwrap.dedent(f"""
        import asyncio, os, signal
        from tallyio.engine.config import CoreConfig
        from tallyio.engine.engine import Engine, opportunity_key
        from tallyio.engine.records import ExecutionResult, ExecutionStatus
        from tallyio.engine.strategy import CycleStrategy

        class Sends:
            # a mock only for the fault: the process dies inside the send (after the engine
            # journaled its intent, before any result), as a kill -9 mid-send does
            calls = 0
            async def execute(self, actions, ctx):
                Sends.calls += 1
                key = opportunity_key(actions[0].opportunity).hex()
                if Sends.calls == {die_at}:
                    print("dying", key, flush=True)
                    os.kill(os.getpid(), signal.SIGKILL)
                print("sent", key, flush=True)
                return ExecutionResult(ExecutionStatus.SENT, (bytes(32),), opportunity=actions[0].opportunity)
            async def follow(self, result, timeout):
                return result
            def close(self):
                pass

        async def main():
            config = CoreConfig.replay(checkpoint_dir={str(directory)!r})
            async with Engine(config, strategies=[CycleStrategy()], executor=Sends()) as engine:
                while (op := await engine.next_opportunity()) is not None:
                    await engine.execute_strategy(op)
                print("done", engine.stats()["opportunities"]["skipped_already_executed"], flush=True)
        asyncio.run(main())
    """)


def test_kill_9_inside_a_send_never_sends_that_opportunity_again(tmp_path):
    directory = tmp_path / "state"
    first = subprocess.run([sys.executable, "-c", intent_child(directory, die_at=5)], capture_output=True,
                           text=True, env=subprocess_env(), timeout=240)
    assert first.returncode == -signal.SIGKILL, first.stderr
    sent_before = [line.split()[1] for line in first.stdout.splitlines() if line.startswith("sent")]
    [in_flight] = [line.split()[1] for line in first.stdout.splitlines() if line.startswith("dying")]
    assert len(sent_before) == 4
    again = subprocess.run([sys.executable, "-c", intent_child(directory, die_at=0)], capture_output=True,
                           text=True, env=subprocess_env(), timeout=240)
    assert again.returncode == 0, again.stderr
    sent_after = [line.split()[1] for line in again.stdout.splitlines() if line.startswith("sent")]
    assert sent_after and in_flight not in sent_after and not set(sent_before) & set(sent_after)
    assert int(again.stdout.splitlines()[-1].split()[1]) >= 5     # the four results and the intent
    # the journal: every send's intent once, before its result; the one killed mid-send has no result
    intents = [rec.payload[1:17].hex() for rec in RecordReader(directory / "journal.tlog")
               if rec.type == RecordType.ENGINE_EVENT and rec.payload[0] == 2]
    results = [rec.payload[9:25].hex() for rec in RecordReader(directory / "journal.tlog")
               if rec.type == RecordType.EXECUTION_RESULT]
    assert intents == sent_before + [in_flight] + sent_after
    assert results == sent_before + sent_after

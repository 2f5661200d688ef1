"""The dry run, compiled (tallyio.engine._dryrun.DryRunCore behind DryRunExecutor) and its
Python reference (DryRunExecutor(native=False)): every dry-run test runs on both
implementations (parametrized, as aio-libs/multidict tests its C and Python classes),
and both give the same ExecutionResult -- on every opportunity of the embedded replay
(as the engine hands them out, trigger applied) and on hypothesis-made pool tables,
actions and triggering transactions."""
from __future__ import annotations

import asyncio

import pytest
from eth_abi import encode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tallyio.engine import ExecutionStatus, StrategyContext, SwapAction
from tallyio.engine.config import CoreConfig
from tallyio.engine.engine import Engine
from tallyio.engine.executors import DryRunExecutor
from tallyio.engine.strategy import CycleStrategy
from tallyio.eth.types import PendingTx, SyncEvent
from tallyio.mempool import AnalyzerConfig, Opportunity, OpportunityKind, PoolTable, V2Pool

EXHAUSTIVE = AnalyzerConfig(max_sized=64, max_cycles=100_000, max_evaluations=1 << 20)
IMPLEMENTATIONS = ["python", "native"]
A, B, C, PAIR, ROUTER = b"\x0a" * 20, b"\x0b" * 20, b"\x0c" * 20, b"\x01" * 20, b"\x02" * 20


@pytest.fixture(params=IMPLEMENTATIONS)
def impl(request):
    return request.param


def make(table, routers=(), *, pending=None, impl="native"):
    return DryRunExecutor(table, dict(routers), pending=pending, native=impl == "native")


def comparable(result):
    """Everything of a result but its latency (a clock reading)."""
    return result._replace(latency_ns=0)


# ---- the dry-run tests, on both implementations --------------------------------------------

def test_implementation_is_named_and_native_is_the_default(impl):
    table = PoolTable([V2Pool(PAIR, A, B, 10**6, 2 * 10**6)])
    assert make(table, impl=impl).implementation == impl
    assert DryRunExecutor(table).implementation == "native"


def test_reverts_under_min_amount_out_and_fails_on_unknown_router(impl):
    table = PoolTable([V2Pool(PAIR, A, B, 10**6, 2 * 10**6)])
    dry = make(table, {ROUTER: 0}, impl=impl)
    ok = dry.execute_now([SwapAction(ROUTER, (A, B), 1000, 1992)])
    too_much = dry.execute_now([SwapAction(ROUTER, (A, B), 1000, 1993)])
    assert ok.status == ExecutionStatus.SIMULATED and ok.realized_profit == 992 and ok.gas_used == 150_000
    assert too_much.status == ExecutionStatus.REVERTED
    assert too_much.error == "action 0: output under min_amount_out 1993"
    # two actions on one copy of the reserves: the second sees the first's trade
    both = dry.execute_now([SwapAction(ROUTER, (A, B), 1000, 0), SwapAction(ROUTER, (A, B), 1000, 0)])
    assert dry.last_outputs[1] < dry.last_outputs[0] == 1992 and both.gas_used == 2 * 150_000
    assert dry.last_outputs == (1992, 1988)
    unknown = dry.execute_now([SwapAction(b"\x03" * 20, (A, B), 1000, 0)])
    assert unknown.status == ExecutionStatus.FAILED and "router" in unknown.error
    assert dry.execute_now([]).status == ExecutionStatus.REJECTED
    assert table.reserves_of(PAIR) == (10**6, 2 * 10**6)          # the table itself is never changed
    assert (dry.executed, dry.reverted, dry.failed) == (2, 1, 1)
    dry.close()
    assert dry.execute_now([SwapAction(ROUTER, (A, B), 1000, 0)]).status == ExecutionStatus.FAILED


def test_a_reverted_action_changes_nothing_and_gas_limit_is_taken(impl):
    table = PoolTable([V2Pool(PAIR, A, B, 10**6, 2 * 10**6)])
    dry = make(table, {ROUTER: 0}, impl=impl)
    result = dry.execute_now([SwapAction(ROUTER, (A, B), 1000, 10**9, gas_limit=7),
                              SwapAction(ROUTER, (A, B), 1000, 0)])
    assert result.status == ExecutionStatus.REVERTED and result.error.startswith("action 0:")
    assert dry.last_outputs == (None, 1992) and result.gas_used == 7 + 150_000 and result.realized_profit == 992


def test_bad_input_fails_with_the_reason_never_crashes(impl):
    table = PoolTable([V2Pool(PAIR, A, B, 10**6, 2 * 10**6)])
    dry = make(table, {ROUTER: 0}, impl=impl)
    for actions, needle in (([SwapAction(ROUTER, (A, B), 0, 0)], "INSUFFICIENT_INPUT_AMOUNT"),
                            ([SwapAction(ROUTER, (A, B), -1, 0)], "amount_in"),
                            ([SwapAction(ROUTER, (A, B), 2**256, 0)], "amount_in"),
                            ([SwapAction(ROUTER, (A, C), 10, 0)], "no pool"),
                            ([SwapAction(ROUTER, (A,), 10, 0)], "INVALID_PATH"),
                            (["not an action"], "SwapAction")):
        result = dry.execute_now(actions)
        assert result.status == ExecutionStatus.FAILED and needle in result.error, (actions, result.error)


def test_the_trigger_is_applied_first_and_cached_per_table_version(impl):
    # the victim sells 10**5 A for B through the router: the backrun's A -> B trade then gets less
    table = PoolTable([V2Pool(PAIR, A, B, 10**6, 2 * 10**6)])
    victim = PendingTx(hash=b"\x77" * 32, sender=b"\x55" * 20, to=ROUTER, nonce=0, value=0, gas=300_000,
                       max_fee_per_gas=1, max_priority_fee_per_gas=1,
                       input=swap_call("exact_in", 10**5, 0, [A, B]), tx_type=2, received_ns=0)
    lookups = []

    def pending(tx_hash):
        lookups.append(tx_hash)
        return victim if tx_hash == victim.hash else None

    dry = make(table, {ROUTER: 0}, pending=pending, impl=impl)
    op = Opportunity(OpportunityKind.BACKRUN, victim.hash, (PAIR,), (A, B), 1000, 0, 0, 0, 0, 1, 0, 0)
    first = dry.execute_now([SwapAction(ROUTER, (A, B), 1000, 0, opportunity=op)])
    again = dry.execute_now([SwapAction(ROUTER, (A, B), 1000, 0, opportunity=op)])
    plain = make(table, {ROUTER: 0}, impl=impl).execute_now([SwapAction(ROUTER, (A, B), 1000, 0)])
    assert comparable(first) == comparable(again) and lookups == [victim.hash]      # decoded once
    assert first.realized_profit < plain.realized_profit
    table.apply_sync(SyncEvent(PAIR, 2 * 10**6, 4 * 10**6, 1, 0, b"\x00" * 32))   # a Sync: the cached overlay is stale
    dry.execute_now([SwapAction(ROUTER, (A, B), 1000, 0, opportunity=op)])
    assert lookups == [victim.hash] * 2
    if impl == "native":
        assert dry.native_deferred == 0


# ---- the embedded replay: both implementations, every opportunity ------------------------------

def test_native_equals_the_reference_on_every_opportunity_of_the_embedded_replay():
    compared = []
    strategy = CycleStrategy()

    async def main():
        async with Engine(CoreConfig.replay(analyzer=EXHAUSTIVE), strategies=[strategy]) as engine:
            native = engine.executor
            assert isinstance(native, DryRunExecutor) and native.implementation == "native"
            reference = DryRunExecutor(engine.table, {a: x for a, x in engine.routers}, pending=native.pending,
                                       native=False)
            while (op := await engine.next_opportunity()) is not None:
                [action] = strategy.on_opportunity(op, engine.context)
                variants = [[action],
                            [action._replace(min_amount_out=action.amount_in * 10)],      # reverts
                            [action, action],                                              # the 2nd sees the 1st
                            [action._replace(amount_in=action.amount_in // 3 + 1)],
                            [action._replace(opportunity=None)]]      # no trigger, router's own pools
                for actions in variants:
                    mine, theirs = native.execute_now(actions), reference.execute_now(actions)
                    assert comparable(mine) == comparable(theirs), (op, actions)
                    assert native.last_outputs == reference.last_outputs
                    compared.append(mine.status)
                # what the engine itself returns is the same result
                result = await engine.execute_strategy(op)
                assert comparable(result)._replace(latency_ns=0) == comparable(reference.execute_now([action]))
            return native.native_deferred

    deferred = asyncio.run(main())
    assert len(compared) >= 5 * 3 and ExecutionStatus.SIMULATED in compared and ExecutionStatus.REVERTED in compared
    # only the variant without a trigger on a router with no such pair is left to the reference
    assert deferred <= len(compared) // 5


# ---- hypothesis: random tables, triggers and actions -------------------------------------------

TOKENS = [bytes([0x10 + i]) * 20 for i in range(4)]
ROUTERS = {b"\x21" * 20: 0, b"\x22" * 20: 1}
OTHER = b"\x23" * 20
SELECTORS = {("exact_in", False): "38ed1739", ("exact_out", False): "8803dbee",
             ("exact_in", True): "7ff36ab5", ("exact_out", True): "fb3bdb41"}


def swap_call(kind, amount, limit, path, eth_in=False):
    """Router02 calldata of a V2 swap (eth_in: the value pays; the call carries one amount fewer)."""
    selector = bytes.fromhex(SELECTORS[(kind, eth_in)])
    addresses = ["0x" + t.hex() for t in path]
    recipient, deadline = "0x" + "99" * 20, 2**32
    if eth_in:
        first = limit if kind == "exact_in" else amount
        return selector + encode(["uint256", "address[]", "address", "uint256"],
                                 [first, addresses, recipient, deadline])
    return selector + encode(["uint256", "uint256", "address[]", "address", "uint256"],
                             [amount, limit, addresses, recipient, deadline])


UNKNOWN_TOKEN = b"\x7f" * 20


def mostly(normal, edge, edge_percent=4):
    """``normal``, and ``edge`` in about ``edge_percent`` % of the draws."""
    return st.integers(0, 99).flatmap(lambda k: edge if k >= 100 - edge_percent else normal)   # draws lean to 0


reserves = mostly(st.integers(10**18, 10**27), st.sampled_from([0, 1, 3, 10**3, 2**112 - 1]))
amounts = mostly(st.integers(1, 10**22), st.sampled_from([0, 1, 2**256 - 1, 2**256, -1]))


@st.composite
def token_paths(draw, max_size=4):
    """Token paths without a token twice in a row (a real router path); sometimes an unknown token."""
    path = [draw(st.sampled_from(TOKENS))]
    for _ in range(draw(st.integers(1, max_size - 1))):
        path.append(TOKENS[(TOKENS.index(path[-1]) + draw(st.integers(1, len(TOKENS) - 1))) % len(TOKENS)])
    if draw(st.integers(0, 49)) == 49:
        path[draw(st.integers(0, len(path) - 1))] = UNKNOWN_TOKEN
    return path


@st.composite
def scenarios(draw):
    """A table of most pairs of TOKENS on two exchanges, an optional triggering Router02 call
    and 1-3 actions: mostly well-formed (so the native core decides them), with the edge
    cases (unknown token or pool, zero or out-of-range amounts and reserves, a malformed or
    foreign trigger) mixed in."""
    pools = []
    for exchange in (0, 1):
        for i in range(len(TOKENS)):
            for j in range(i + 1, len(TOKENS)):
                if draw(st.integers(0, 49)) < 49:
                    fee = draw(mostly(st.sampled_from([30, 25]), st.sampled_from([0, 9999])))
                    pools.append(V2Pool(bytes([0x40 + len(pools)]) * 20, TOKENS[i], TOKENS[j], draw(reserves),
                                        draw(reserves), fee, exchange))
    by_pair = {(p.exchange, frozenset((p.token0, p.token1))): p.address for p in pools}
    trigger = None
    if draw(st.integers(0, 3)):
        kind = draw(st.sampled_from(["exact_in", "exact_out"]))
        eth_in = draw(st.booleans())
        data = swap_call(kind, draw(mostly(st.integers(1, 10**22), st.just(0))), draw(st.integers(0, 10**22)),
                         draw(token_paths()), eth_in)
        if draw(st.integers(0, 49)) == 49:
            data = data[:40]                                  # malformed: the decoder refuses it
        trigger = PendingTx(hash=b"\x88" * 32, sender=b"\x55" * 20,
                            to=draw(st.sampled_from(list(ROUTERS) * 4 + [OTHER, None])), nonce=0,
                            value=draw(st.integers(0, 10**22)), gas=1, max_fee_per_gas=1,
                            max_priority_fee_per_gas=1, input=data, tx_type=2, received_ns=0)
    actions = []
    for _ in range(draw(st.integers(1, 3))):
        path = tuple(draw(token_paths()))
        if draw(st.integers(0, 49)) == 49:
            path = path[:1]
        router = draw(st.sampled_from(list(ROUTERS) * 10 + [OTHER]))
        op = None
        if draw(st.booleans()) and len(path) >= 2:
            exchange = ROUTERS.get(router, 0)
            hop_pools = tuple(by_pair.get((exchange, frozenset(pair)), b"\x6f" * 20)
                              for pair in zip(path, path[1:]))
            op = Opportunity(OpportunityKind.BACKRUN, b"\x88" * 32, hop_pools, path, 1, 0, 0, 0, 0, 1, 0, 0)
        amount_in = draw(amounts)
        min_out = draw(mostly(st.integers(0, 10**22), amounts, 10))
        actions.append(SwapAction(router, path, amount_in, min_out,
                                  gas_limit=draw(st.one_of(st.none(), st.integers(0, 10**6))), opportunity=op))
    return pools, trigger, actions


def test_native_equals_the_reference_on_hypothesis_inputs():
    decided = {"runs": 0, "native": 0, "statuses": set()}

    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(scenarios())
    def check(scenario):
        pools, trigger, actions = scenario
        table = PoolTable(pools)
        results = {}
        for impl in IMPLEMENTATIONS:
            dry = make(table, ROUTERS, pending=lambda h: trigger, impl=impl)
            try:
                results[impl] = (comparable(dry.execute_now(actions)), dry.last_outputs, None)
            except Exception as exc:   # the reference's own escapes (e.g. an unknown op pool): both the same
                results[impl] = (None, None, (type(exc), str(exc)))
            if impl == "native":
                decided["runs"] += 1
                decided["native"] += dry.native_deferred == 0
        assert results["native"] == results["python"]
        if results["native"][0] is not None:
            decided["statuses"].add(results["native"][0].status)

    check()
    # the equality above is not vacuous: many examples were decided by the native core itself
    # (about half; Hypothesis's mix of edge cases varies from run to run: 192 of 400 was seen, so
    # the bound is a quarter, not a half), and they include successes and reverts (failures are
    # the reference's by construction); test_the_native_core_decides_the_common_cases_itself
    # pins the common cases down deterministically
    assert decided["native"] >= decided["runs"] // 4, decided
    assert {ExecutionStatus.SIMULATED, ExecutionStatus.REVERTED, ExecutionStatus.FAILED} <= decided["statuses"]


def test_the_native_core_decides_the_common_cases_itself():
    """Guards the equality tests against a core that defers everything: plain swaps, a
    trigger of each Router02 V2 kind (token and ETH in), reverts -- none go to the reference."""
    pools = [V2Pool(bytes([0x40 + k]) * 20, TOKENS[k], TOKENS[k + 1], 10**21, 3 * 10**21, 30, 0) for k in range(3)]
    table = PoolTable(pools)
    for kind in ("exact_in", "exact_out"):
        for eth_in in (False, True):
            trigger = PendingTx(hash=b"\x88" * 32, sender=b"\x55" * 20, to=b"\x21" * 20, nonce=0, value=10**19,
                                gas=1, max_fee_per_gas=1, max_priority_fee_per_gas=1,
                                input=swap_call(kind, 10**18, 10**18 if kind == "exact_in" else 10**19,
                                                TOKENS[:3], eth_in), tx_type=2, received_ns=0)
            op = Opportunity(OpportunityKind.BACKRUN, trigger.hash, tuple(p.address for p in pools),
                             tuple(TOKENS), 10**18, 0, 0, 0, 0, 1, 0, 0)
            native = make(table, ROUTERS, pending=lambda h: trigger)
            reference = make(table, ROUTERS, pending=lambda h: trigger, impl="python")
            for actions in ([SwapAction(b"\x21" * 20, tuple(TOKENS), 10**18, 0, opportunity=op)],
                            [SwapAction(b"\x21" * 20, tuple(TOKENS), 10**18, 10**30, opportunity=op)],
                            [SwapAction(b"\x21" * 20, (TOKENS[0], TOKENS[1]), 10**18, 0)]):
                assert comparable(native.execute_now(actions)) == comparable(reference.execute_now(actions))
            assert native.native_deferred == 0, (kind, eth_in)
    ctx_result = asyncio.run(make(table, ROUTERS).execute([SwapAction(b"\x21" * 20, TOKENS[:2], 10**18, 0)],
                                                          StrategyContext()))
    assert ctx_result.status == ExecutionStatus.SIMULATED


def test_a_failing_pending_lookup_and_odd_triggers_give_the_references_result(impl):
    table = PoolTable([V2Pool(PAIR, A, B, 10**6, 2 * 10**6)])
    op = Opportunity(OpportunityKind.BACKRUN, b"\x77" * 32, (PAIR,), (A, B), 1000, 0, 0, 0, 0, 1, 0, 0)
    action = SwapAction(ROUTER, (A, B), 1000, 0, opportunity=op)

    def broken(tx_hash):
        raise KeyError("the lookup failed")

    failed = make(table, {ROUTER: 0}, pending=broken, impl=impl).execute_now([action])
    assert failed.status == ExecutionStatus.FAILED and "the lookup failed" in failed.error
    # a trigger that is not a PendingTx, or whose input is not bytes: the reference decides
    odd = PendingTx(hash=b"\x77" * 32, sender=b"\x55" * 20, to=ROUTER, nonce=0, value=0, gas=1, max_fee_per_gas=1,
                    max_priority_fee_per_gas=1, input=bytearray(swap_call("exact_in", 10**5, 0, [A, B])),
                    tx_type=2, received_ns=0)
    results = [make(table, {ROUTER: 0}, pending=lambda h: odd, impl=i).execute_now([action]) for i in IMPLEMENTATIONS]
    assert comparable(results[0]) == comparable(results[1]) and results[0].status == ExecutionStatus.SIMULATED


def test_an_uninitialized_core_refuses_instead_of_crashing():
    from tallyio.engine._dryrun import DryRunCore
    from tallyio.engine._sign import SecpFunctions, sign_type2

    with pytest.raises(TypeError, match="__init__"):
        DryRunCore.__new__(DryRunCore).run([])
    with pytest.raises(TypeError, match="__init__"):
        sign_type2(SecpFunctions.__new__(SecpFunctions), bytearray(32), b"\xc0")


def test_the_engine_bench_times_the_reference_dry_run_beside_the_compiled_one():
    from tallyio.bench._engine import REFERENCE, _measure_execution

    runs = _measure_execution(1, native=False)
    assert set(runs) == {REFERENCE, REFERENCE + ", first call per opportunity"}
    assert len(runs[REFERENCE]) == len(runs[REFERENCE + ", first call per opportunity"]) > 0
    assert min(runs[REFERENCE]) > 0

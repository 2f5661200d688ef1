"""Executors: what carries a strategy's actions out.  ``Executor`` is the
protocol every executor follows (the dry run here, the node executor in
``node_executor.py``); ``DryRunExecutor`` executes ``SwapAction``s against the
pool table's known state, exactly, and sends nothing.

Owns the protocol and the dry run.  Reads the mempool's ``PoolTable`` (and the
pending transaction that triggered an opportunity, through a lookup the engine
gives it) and ``tallyio.amm``'s exact V2 math; writes nothing outside itself.

The dry run answers "what would this action have made": it applies the
triggering transaction's V2 swaps (decoded with ``tallyio.eth``) to a copy of the
reserves, exactly as the analyzer did when it found the opportunity, then runs
each action's path through ``tallyio.amm.get_amounts_out`` on that copy.  It runs
compiled (``tallyio.engine._dryrun.DryRunCore``: the same steps on a C overlay of
the exact reserves); the Python code here is the reference, which also decides
every case the compiled core leaves to it (an unknown router or pool, a failing
AMM ``require()``, odd input: whatever yields FAILED or an error), so both give
the same ``ExecutionResult``.  ``DryRunExecutor(..., native=False)`` runs the
reference alone.

    >>> import asyncio
    >>> from tallyio.mempool import PoolTable, V2Pool
    >>> from tallyio.engine import SwapAction, StrategyContext
    >>> A, B, PAIR, ROUTER = b"\\x0a" * 20, b"\\x0b" * 20, b"\\x01" * 20, b"\\x02" * 20
    >>> table = PoolTable([V2Pool(PAIR, A, B, 10**6, 2 * 10**6)])
    >>> dry = DryRunExecutor(table, routers={ROUTER: 0})
    >>> swap = SwapAction(router=ROUTER, path=(A, B), amount_in=1000, min_amount_out=1990)
    >>> result = asyncio.run(dry.execute([swap], StrategyContext()))
    >>> result.status.name, result.gas_used
    ('SIMULATED', 150000)
    >>> dry.last_outputs
    (1992,)
"""
from __future__ import annotations

import time
from typing import Callable, Dict, List, Mapping, Optional, Protocol, Sequence, Tuple, runtime_checkable

from tallyio.amm import get_amount_in, get_amount_out, get_amounts_out
from tallyio.engine._dryrun import DryRunCore
from tallyio.engine.records import Action, ExecutionResult, ExecutionStatus, LiquidationAction, SwapAction
from tallyio.engine.strategy import StrategyContext
from tallyio.eth import decode_call
from tallyio.eth.calls import SWAP_AMOUNT_UNKNOWN, SWAP_FEE_ON_TRANSFER
from tallyio.eth.types import PendingTx
from tallyio.mempool import PoolTable

__all__ = ["Executor", "DryRunExecutor"]

_GAS_BASE = 60_000
_GAS_PER_HOP = 90_000
_GAS_LIQUIDATION = 400_000      # tallyio.mempool.lending.LIQUIDATION_GAS: a liquidationCall's estimate
_SIMULATED = ExecutionStatus.SIMULATED
_REVERTED = ExecutionStatus.REVERTED
_monotonic_ns = time.monotonic_ns
_new_result = tuple.__new__     # a NamedTuple built without its Python-level __new__ (every field given):
# the fields after ``opportunity`` keep their defaults (robust to fields added at the end)
_RESULT_TAIL = tuple(ExecutionResult._field_defaults[name]
                     for name in ExecutionResult._fields[ExecutionResult._fields.index("opportunity") + 1:])


@runtime_checkable
class Executor(Protocol):
    """What the engine calls to carry out actions.

    ``execute`` returns as soon as the outcome is known or the transactions are
    sent (``SENT``); ``follow`` waits up to ``timeout`` seconds for the receipts
    of a ``SENT`` result and returns the final one (``LANDED``/``REVERTED`` with
    gas and realized profit); a dry run returns its result unchanged.  ``close``
    releases connections; it is idempotent.  Executors raise only for their own
    bugs: a refused or failed send is a ``FAILED`` result."""

    async def execute(self, actions: Sequence[Action], ctx: StrategyContext) -> ExecutionResult: ...

    async def follow(self, result: ExecutionResult, timeout: float) -> ExecutionResult: ...

    def close(self) -> None: ...


class DryRunExecutor:
    """Executes ``SwapAction``s against ``table``'s reserves exactly; sends nothing.

    ``routers`` maps a 20-byte router address to its exchange id (``V2Pool.exchange``):
    a hop of an action goes through that exchange's pair for its two tokens -- except
    when the action's path is its opportunity's token path, then the opportunity's
    own pools are used (a cycle across two exchanges, as the analyzer found it).
    ``pending(hash)`` returns the ``PendingTx`` that triggered an opportunity (or
    None): its swaps are applied first, as they will have been when a backrun lands
    right behind it.  Several actions run in order on one copy of the reserves.

    Result: ``SIMULATED`` when every action's output reaches its
    ``min_amount_out``, else ``REVERTED`` (that action changes nothing: a reverted
    transaction moves no tokens); ``realized_profit`` is the sum over the
    successful actions of output - amount_in (for a cycle: the profit in its start
    token); ``gas_used`` the executor's estimate (60,000 + 90,000 per hop, or the
    action's ``gas_limit``).  Not safe for two threads at once (one engine calls it).

    ``native`` (default True) runs the compiled core, falling back to the Python
    reference for whatever it leaves undecided (``native_deferred`` counts those);
    ``native=False`` runs the reference only.  Both give the same results.

    ``liquidations`` (the engine gives ``LendingFeed.simulate`` when it follows an Aave
    market) dry-runs ``LiquidationAction``s: ``liquidations(action)`` returns the exact
    ``(LiquidationAmounts, profit in the debt token)`` of ``tallyio.amm.aave`` on the
    book's state, or raises ``AaveRevertError`` where the pool would revert (REVERTED).
    ``realized_profit`` is that profit (gross of gas, the unit of the opportunity's
    ``profit``), ``last_outputs`` the collateral each would have received, ``gas_used``
    the action's ``gas_limit`` or 400,000.  A ``FundingSwapAction`` before it is not
    simulated (its ETH cost is not in the profit): counted in ``funding_skipped``."""

    def __init__(self, table: PoolTable, routers: Mapping[bytes, int] = (), *,
                 pending: Optional[Callable[[bytes], Optional[PendingTx]]] = None, native: bool = True,
                 liquidations: Optional[Callable[[LiquidationAction], tuple]] = None) -> None:
        if not isinstance(table, PoolTable):
            raise TypeError(f"DryRunExecutor: table must be a PoolTable, got {type(table).__name__}")
        self.table = table
        self.routers: Dict[bytes, int] = {}
        for router, exchange in dict(routers).items():
            if not isinstance(router, bytes) or len(router) != 20:
                raise ValueError(f"DryRunExecutor: a router must be 20 bytes, got {router!r}")
            if isinstance(exchange, bool) or not isinstance(exchange, int) or exchange < 0:
                raise ValueError(f"DryRunExecutor: exchange of router 0x{router.hex()} must be an int >= 0, "
                                 f"got {exchange!r}")
            self.routers[router] = exchange
        self.pending = pending
        self.liquidations = liquidations
        self.funding_skipped = 0
        self.executed = 0
        self.reverted = 0
        self.failed = 0
        self.last_outputs: Tuple[int, ...] = ()
        self._static: Dict[bytes, Tuple[bytes, int]] = {}     # pool -> (token0, fee_bps): never change
        self._trigger_cache: Optional[tuple] = None
        self._closed = False
        self._core: Optional[DryRunCore] = DryRunCore(table, dict(self.routers)) if native else None

    @property
    def implementation(self) -> str:
        """``"native"`` (the compiled core, the reference for what it defers) or ``"python"``."""
        return "python" if self._core is None else "native"

    @property
    def native_deferred(self) -> int:
        """Executions the compiled core left to the Python reference (0 with ``native=False``)."""
        return 0 if self._core is None else self._core.deferred

    # ---- the protocol -----------------------------------------------------------------
    async def execute(self, actions: Sequence[Action], ctx: StrategyContext) -> ExecutionResult:
        """Simulate ``actions`` in order (see the class docstring)."""
        return self.execute_now(actions)

    async def follow(self, result: ExecutionResult, timeout: float) -> ExecutionResult:
        """A dry run has nothing to wait for: ``result`` unchanged."""
        return result

    def close(self) -> None:
        self._closed = True

    # ---- the work (also callable without a loop) ------------------------------------
    def execute_now(self, actions: Sequence[Action]) -> ExecutionResult:
        """``execute`` without the coroutine (for the sync face and benchmarks)."""
        started = _monotonic_ns()
        if self._closed:
            return ExecutionResult(ExecutionStatus.FAILED, error="DryRunExecutor is closed")
        if not actions:
            return ExecutionResult.rejected("no actions")
        opportunity = getattr(actions[0], "opportunity", None)
        if type(actions[-1]) is LiquidationAction:
            return self._execute_liquidations(actions, opportunity, started)
        core = self._core
        if core is not None:
            done = core.run(actions, None if opportunity is None else opportunity.trigger_tx, self.pending)
            if done is not None:
                outputs, profit, gas, reverted_at = done
                self.last_outputs = outputs
                expected = None if opportunity is None else opportunity.profit
                if reverted_at < 0:
                    self.executed += 1
                    return _new_result(ExecutionResult, (_SIMULATED, (), gas, expected, profit,
                                                         _monotonic_ns() - started, None, opportunity) + _RESULT_TAIL)
                self.reverted += 1
                error = f"action {reverted_at}: output under min_amount_out {actions[reverted_at].min_amount_out}"
                return _new_result(ExecutionResult, (_REVERTED, (), gas, expected, profit,
                                                     _monotonic_ns() - started, error, opportunity) + _RESULT_TAIL)
        return self._execute_reference(actions, opportunity, started)

    def _execute_reference(self, actions: Sequence[Action], opportunity, started: int) -> ExecutionResult:
        """The Python reference of ``execute_now`` (after its first checks)."""
        try:
            overlay: Dict[bytes, List[int]] = {}
            if opportunity is not None and opportunity.trigger_tx is not None and self.pending is not None:
                overlay = self._after_trigger(opportunity.trigger_tx)
            profit = 0
            gas = 0
            reverted = None
            outputs = []
            for action in actions:
                if not isinstance(action, SwapAction):
                    raise TypeError(f"the dry run executes SwapAction, got {type(action).__name__}")
                out, hops = self._swap(action, overlay)
                outputs.append(out)
                gas += action.gas_limit if action.gas_limit is not None else _GAS_BASE + _GAS_PER_HOP * hops
                if out is None:
                    reverted = reverted or (f"action {len(outputs) - 1}: output under "
                                            f"min_amount_out {action.min_amount_out}")
                else:
                    profit += out - action.amount_in
        except (ValueError, TypeError, KeyError, OverflowError, ArithmeticError) as exc:
            self.failed += 1
            return ExecutionResult(ExecutionStatus.FAILED, error=f"dry run: {exc}", opportunity=opportunity,
                                   expected_profit=None if opportunity is None else opportunity.profit,
                                   latency_ns=time.monotonic_ns() - started)
        self.last_outputs = tuple(outputs)
        status = ExecutionStatus.REVERTED if reverted else ExecutionStatus.SIMULATED
        if reverted:
            self.reverted += 1
        else:
            self.executed += 1
        return ExecutionResult(status, gas_used=gas,
                               expected_profit=None if opportunity is None else opportunity.profit,
                               realized_profit=profit, latency_ns=time.monotonic_ns() - started,
                               error=reverted, opportunity=opportunity)

    def _execute_liquidations(self, actions: Sequence[Action], opportunity, started: int) -> ExecutionResult:
        """LiquidationActions (and the funding swaps before them) on the lending book."""
        from tallyio.errors import AaveRevertError

        expected = None if opportunity is None else opportunity.profit
        if self.liquidations is None:
            self.failed += 1
            return ExecutionResult(ExecutionStatus.FAILED, opportunity=opportunity, expected_profit=expected,
                                   error="dry run: a LiquidationAction needs liquidations= (an Aave market's book)",
                                   latency_ns=time.monotonic_ns() - started)
        profit = gas = 0
        outputs = []
        try:
            for action in actions:
                if type(action) is not LiquidationAction:
                    if type(action).__name__ != "FundingSwapAction":
                        raise TypeError(f"the dry run executes LiquidationAction here, got {type(action).__name__}")
                    self.funding_skipped += 1
                    continue
                amounts, gained = self.liquidations(action)
                outputs.append(amounts.collateral_to_liquidator)
                profit += gained
                gas += action.gas_limit if action.gas_limit is not None else _GAS_LIQUIDATION
        except AaveRevertError as exc:
            self.reverted += 1
            return ExecutionResult(ExecutionStatus.REVERTED, gas_used=gas, expected_profit=expected,
                                   realized_profit=profit, latency_ns=time.monotonic_ns() - started,
                                   error=f"action {len(outputs)}: {exc}", opportunity=opportunity)
        except (ValueError, TypeError, KeyError, ArithmeticError) as exc:
            self.failed += 1
            return ExecutionResult(ExecutionStatus.FAILED, error=f"dry run: {exc}", opportunity=opportunity,
                                   expected_profit=expected, latency_ns=time.monotonic_ns() - started)
        self.last_outputs = tuple(outputs)
        self.executed += 1
        return ExecutionResult(ExecutionStatus.SIMULATED, gas_used=gas, expected_profit=expected,
                               realized_profit=profit, latency_ns=time.monotonic_ns() - started,
                               opportunity=opportunity)

    def _after_trigger(self, trigger: bytes) -> Dict[bytes, List[int]]:
        """A fresh overlay holding the reserves the trigger's swaps leave.  A trigger
        usually yields several opportunities: the decoded overlay is cached for the
        last trigger and table version (``syncs_applied`` moves with every Sync)."""
        version = self.table.syncs_applied
        cached = self._trigger_cache
        if cached is None or cached[0] != trigger or cached[1] != version:
            overlay: Dict[bytes, List[int]] = {}
            tx = self.pending(trigger)
            if tx is not None:
                self._apply_trigger(tx, overlay)
            cached = self._trigger_cache = (trigger, version, overlay)
        return {pool: list(entry) for pool, entry in cached[2].items()}

    def _load_static(self, pool: bytes) -> Tuple[bytes, int]:
        info = self.table.pool(self.table.index_of(pool))     # KeyError for an unknown pool
        static = self._static[pool] = (info.token0, info.fee_bps)
        return static

    def _reserves(self, pool: bytes, overlay: Dict[bytes, List[int]]) -> Tuple[List[int], bytes]:
        """(mutable [reserve0, reserve1, fee_bps] in the overlay, token0) of ``pool``."""
        static = self._static.get(pool) or self._load_static(pool)
        entry = overlay.get(pool)
        if entry is None:
            r0, r1 = self.table.reserves_of(pool)
            entry = overlay[pool] = [r0, r1, static[1]]
        return entry, static[0]

    def _hop_pools(self, action: SwapAction) -> Sequence[bytes]:
        op = action.opportunity
        if op is not None and tuple(action.path) == tuple(op.token_path):
            return op.pools
        exchange = self.routers.get(action.router)
        if exchange is None:
            raise KeyError(f"router 0x{bytes(action.router).hex()} is not one the executor knows")
        pools = []
        for a, b in zip(action.path, action.path[1:]):
            pool = self.table.pair(exchange, a, b)
            if pool is None:
                raise KeyError(f"no pool on exchange {exchange} for 0x{a.hex()} -> 0x{b.hex()}")
            pools.append(pool)
        return pools

    def _swap(self, action: SwapAction, overlay: Dict[bytes, List[int]]) -> Tuple[Optional[int], int]:
        """Output of ``action`` on the overlay (None: it reverts and changes nothing)."""
        pools = self._hop_pools(action)
        path = action.path
        static, reserves_of = self._static, self.table.reserves_of
        steps = []
        reserves_path = []
        fees = []
        for k, pool in enumerate(pools):
            token0, fee = static.get(pool) or self._load_static(pool)
            entry = overlay.get(pool)
            if entry is None:
                r0, r1 = reserves_of(pool)
                entry = overlay[pool] = [r0, r1, fee]
            if path[k] == token0:
                reserves_path.append((entry[0], entry[1]))
                steps.append((entry, 0, 1))
            else:
                reserves_path.append((entry[1], entry[0]))
                steps.append((entry, 1, 0))
            fees.append(fee)
        amounts = get_amounts_out(action.amount_in, reserves_path, fees)
        out = amounts[-1]
        if out < action.min_amount_out:
            return None, len(pools)
        for k, (entry, i, o) in enumerate(steps):
            entry[i] += amounts[k]
            entry[o] -= amounts[k + 1]
        return out, len(pools)

    def _apply_trigger(self, tx: PendingTx, overlay: Dict[bytes, List[int]]) -> None:
        """Apply the V2 swaps of the triggering transaction, as its router runs them;
        a transaction one of whose swaps would fail its own limit reverts whole."""
        exchange = self.routers.get(tx.to) if tx.to is not None else None
        if exchange is None:
            return
        call = decode_call(bytes(tx.input))
        if call is None:
            return
        trial = {pool: list(entry) for pool, entry in overlay.items()}
        for swap in call.swaps:
            if swap.protocol != "v2" or swap.flags & (SWAP_FEE_ON_TRANSFER | SWAP_AMOUNT_UNKNOWN):
                return
            path = [bytes.fromhex(t[2:]) for t in swap.path]
            pools = []
            for a, b in zip(path, path[1:]):
                pool = self.table.pair(exchange, a, b)
                if pool is None:
                    return
                pools.append(pool)
            steps = []
            for k, pool in enumerate(pools):
                entry, token0 = self._reserves(pool, trial)
                forward = path[k] == token0
                steps.append((entry, forward))
            if swap.kind == "exact_in":
                amount = tx.value if swap.amount is None else swap.amount
                amounts = [amount]
                for entry, forward in steps:
                    r_in, r_out = (entry[0], entry[1]) if forward else (entry[1], entry[0])
                    amounts.append(get_amount_out(amounts[-1], r_in, r_out, entry[2]))
                if swap.amount_limit is not None and amounts[-1] < swap.amount_limit:
                    return
            else:
                amounts = [swap.amount]
                for entry, forward in reversed(steps):
                    r_in, r_out = (entry[0], entry[1]) if forward else (entry[1], entry[0])
                    amounts.insert(0, get_amount_in(amounts[0], r_in, r_out, entry[2]))
                limit = tx.value if swap.amount_limit is None else swap.amount_limit
                if amounts[0] > limit:
                    return
            for k, (entry, forward) in enumerate(steps):
                i, o = (0, 1) if forward else (1, 0)
                entry[i] += amounts[k]
                entry[o] -= amounts[k + 1]
        overlay.clear()
        overlay.update(trial)

"""``Strategy``: the class users subclass to turn opportunities into actions,
and ``StrategyContext``, what the engine hands its hooks.  The engine calls the
hooks; a strategy never reaches into the engine, the executor or the node.

A strategy says what it wants (``kinds``, ``pools``, ``tokens``,
``min_profit``) so that only those opportunities reach its Python code.

    >>> from tallyio.engine.strategy import Strategy
    >>> from tallyio.mempool.records import OpportunityKind
    >>> class Quiet(Strategy):
    ...     kinds = (OpportunityKind.BACKRUN,)
    ...     min_profit = 10**15
    >>> Quiet().name
    'Quiet'
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, FrozenSet, List, Optional, Tuple

from tallyio.engine.records import Action, ExecutionResult, SwapAction
from tallyio.mempool.records import Opportunity, OpportunityKind

__all__ = ["Strategy", "StrategyContext", "CycleStrategy"]


@dataclass
class StrategyContext:
    """What a strategy may read while it decides (kept current by the engine)."""

    block_number: int = 0
    """the latest block the engine has seen."""
    base_fee_per_gas: int = 0
    account: Optional[bytes] = None
    """the 20-byte address actions are sent from (None: dry run without a signer)."""
    routers: Dict[int, bytes] = field(default_factory=dict)
    """exchange id (``V2Pool.exchange``) -> 20-byte router address."""
    dry_run: bool = True


class Strategy:
    """Base class of user strategies: override the hooks you need.

    Class attributes declare interest; the engine checks them before any
    Python code of the strategy runs:

    * ``kinds``: opportunity kinds wanted (empty: all);
    * ``pools`` / ``tokens``: 20-byte addresses, at least one of which must be
      in the opportunity's pools / token path (empty: any);
    * ``min_profit``: the least gross profit, in the start token's units.
    """

    kinds: Tuple[OpportunityKind, ...] = ()
    pools: FrozenSet[bytes] = frozenset()
    tokens: FrozenSet[bytes] = frozenset()
    min_profit: int = 0

    @property
    def name(self) -> str:
        """The strategy's name in stats, logs and reports (its class name)."""
        return type(self).__name__

    def on_start(self, ctx: StrategyContext) -> None:
        """Called once when the engine starts, before any opportunity."""

    def on_block(self, block: Any) -> None:
        """Called for each new block header (``tallyio.eth.types.BlockHeader``)."""

    def on_opportunity(self, opportunity: Opportunity, ctx: StrategyContext) -> List[Action]:
        """Return the actions to take for ``opportunity`` (empty: none)."""
        return []

    def on_result(self, result: ExecutionResult) -> None:
        """Called with the result of the actions this strategy returned."""

    def on_stop(self) -> None:
        """Called once when the engine stops."""

    def on_save(self) -> Dict[str, bytes]:
        """The strategy's private state, stored with each checkpoint."""
        return {}

    def on_load(self, state: Dict[str, bytes]) -> None:
        """Restore what ``on_save`` returned, after a restart."""


class CycleStrategy(Strategy):
    """Takes every BACKRUN/ARBITRAGE cycle as the analyzer sized it: one
    ``SwapAction`` along the cycle's token path with ``min_amount_out =
    amount_in + min_profit`` (at least 1), so it reverts rather than lose.

    It is the dry-run strategy of ``tallyio run`` on a replay (the dry run follows
    the opportunity's own pools, across exchanges); on a node use the reference
    ``BackrunStrategy``, which builds transactions a router can execute.

    >>> from tallyio.mempool.records import Opportunity, OpportunityKind
    >>> A, B, P = b"\\x0a" * 20, b"\\x0b" * 20, b"\\x01" * 20
    >>> op = Opportunity(OpportunityKind.BACKRUN, b"\\x00" * 32, (P, P), (A, B, A), 100, 7, 240000,
    ...                  0, 7, 1, 0, 0)
    >>> [action] = CycleStrategy().on_opportunity(op, StrategyContext(routers={0: b"\\x02" * 20}))
    >>> action.amount_in, action.min_amount_out, action.hops
    (100, 101, 2)
    """

    kinds = (OpportunityKind.BACKRUN, OpportunityKind.ARBITRAGE)

    def on_opportunity(self, opportunity: Opportunity, ctx: StrategyContext) -> List[Action]:
        router = ctx.routers.get(0) if ctx.routers else None
        if router is None and ctx.routers:
            router = next(iter(ctx.routers.values()))
        return [SwapAction(router=router or b"\x00" * 20, path=tuple(opportunity.token_path),
                           amount_in=opportunity.amount_in,
                           min_amount_out=opportunity.amount_in + max(1, self.min_profit),
                           opportunity=opportunity)]

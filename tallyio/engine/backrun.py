"""``BackrunStrategy``: the reference strategy.  Turns a BACKRUN or ARBITRAGE
opportunity into one atomic Router02 swap along its cycle, with
``min_amount_out = amount_in + min_profit``: the router reverts the whole
swap when the cycle would return less, so a stale or raced opportunity costs
gas and never tokens.

Owns: the choice of router (a router only swaps through its own factory's
pairs, so every pool of the cycle must belong to one exchange, whose router
``ctx.routers`` names) and the counts of what it declined.  Reads the pool ->
exchange mapping it is given (a ``PoolTable`` or a dict).  Gas fields are left
open: the executor prices a backrun right behind its victim (the same fee caps,
so the same effective priority fee; see ``tallyio.engine.node_executor``).

    >>> from tallyio.engine.backrun import BackrunStrategy
    >>> from tallyio.engine.strategy import StrategyContext
    >>> from tallyio.mempool.records import Opportunity, OpportunityKind
    >>> W, T, U = b"\\x0a" * 20, b"\\x0b" * 20, b"\\x0c" * 20
    >>> P1, P2, P3 = b"\\x01" * 20, b"\\x02" * 20, b"\\x03" * 20
    >>> op = Opportunity(OpportunityKind.BACKRUN, b"\\x99" * 32, (P1, P2, P3), (W, T, U, W),
    ...                  amount_in=10**18, profit=5 * 10**15, gas_estimate=330_000, base_fee_per_gas=10**9,
    ...                  profit_net_of_gas=5 * 10**15 - 330_000 * 10**9, block_number=7, received_ns=0,
    ...                  detected_ns=0)
    >>> strategy = BackrunStrategy({P1: 0, P2: 0, P3: 0}, min_profit=10**15)
    >>> [action] = strategy.on_opportunity(op, StrategyContext(routers={0: b"\\x77" * 20}))
    >>> action.min_amount_out - action.amount_in, action.path == (W, T, U, W)
    (1000000000000000, True)
    >>> strategy.on_opportunity(op._replace(pools=(P1, P2, b"\\x04" * 20)), StrategyContext(routers={0: b"\\x77" * 20}))
    []
    >>> strategy.declined["unknown_pool"]
    1
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

from tallyio.engine.records import Action, SwapAction
from tallyio.engine.strategy import Strategy, StrategyContext
from tallyio.mempool.records import Opportunity, OpportunityKind

__all__ = ["BackrunStrategy"]


class BackrunStrategy(Strategy):
    """One router swap along each single-exchange cycle whose profit is at least
    ``min_profit`` (start-token units; the swap's ``min_amount_out`` is
    ``amount_in + min_profit``).

    ``pool_exchange`` says which exchange each pool belongs to: a
    ``tallyio.mempool.PoolTable`` (its ``V2Pool.exchange``) or a mapping of
    20-byte pool address -> exchange id. ``gas_limit`` (None: the executor's)
    goes on every action. Cycles across exchanges (which need a contract, not
    a router), unknown pools, exchanges without a router in ``ctx.routers`` and
    thin profits are declined and counted in ``declined``.
    """

    kinds = (OpportunityKind.BACKRUN, OpportunityKind.ARBITRAGE)

    def __init__(self, pool_exchange: Any, *, min_profit: int = 1, gas_limit: Optional[int] = None):
        if isinstance(min_profit, bool) or not isinstance(min_profit, int) or min_profit < 0:
            raise ValueError(f"min_profit must be an int >= 0 (start-token units), got {min_profit!r}")
        if gas_limit is not None and (isinstance(gas_limit, bool) or not isinstance(gas_limit, int)
                                      or gas_limit < 21_000):
            raise ValueError(f"gas_limit must be an int >= 21000 or None, got {gas_limit!r}")
        if hasattr(pool_exchange, "index_of") and hasattr(pool_exchange, "pool"):
            self._exchange_of = self._from_table(pool_exchange)
        elif isinstance(pool_exchange, Mapping):
            table: Dict[bytes, int] = {bytes(k): int(v) for k, v in pool_exchange.items()}
            self._exchange_of = table.get
        else:
            raise TypeError("pool_exchange must be a PoolTable or a mapping of pool address -> exchange id, "
                            f"got {type(pool_exchange).__name__}")
        self.min_profit = min_profit
        self.gas_limit = gas_limit
        self.declined: Dict[str, int] = dict(kind=0, thin=0, not_a_cycle=0, unknown_pool=0, cross_exchange=0,
                                             no_router=0, v3_hop=0)

    @staticmethod
    def _from_table(table: Any):
        def exchange_of(pool: bytes) -> Optional[int]:
            try:
                index = table.index_of(pool)
            except (TypeError, ValueError):
                return None
            return None if index < 0 else int(table.pool(index).exchange)
        return exchange_of

    def on_opportunity(self, opportunity: Opportunity, ctx: StrategyContext) -> List[Action]:
        """``[SwapAction]`` through the cycle's exchange's router, or ``[]`` (counted in ``declined``)."""
        op = opportunity
        if op.kind not in self.kinds:
            return self._decline("kind")
        if op.profit < self.min_profit or op.profit <= 0:
            return self._decline("thin")
        path = tuple(op.token_path)
        if len(path) < 3 or path[0] != path[-1] or len(op.pools) != len(path) - 1:
            return self._decline("not_a_cycle")
        if any(op.pool_kinds):  # a V3 hop: one V2 router swap cannot execute it (needs a contract)
            return self._decline("v3_hop")
        exchanges = set()
        for pool in op.pools:
            exchange = self._exchange_of(pool)
            if exchange is None:
                return self._decline("unknown_pool")
            exchanges.add(exchange)
        if len(exchanges) != 1:
            return self._decline("cross_exchange")
        router = ctx.routers.get(exchanges.pop())
        if router is None:
            return self._decline("no_router")
        return [SwapAction(router=router, path=path, amount_in=op.amount_in,
                           min_amount_out=op.amount_in + self.min_profit, gas_limit=self.gas_limit,
                           opportunity=op)]

    def _decline(self, reason: str) -> List[Action]:
        self.declined[reason] += 1
        return []

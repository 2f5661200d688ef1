"""``LiquidationStrategy``: the reference strategy for LIQUIDATION opportunities.
Turns one (from ``tallyio.mempool.lending.PositionBook``) into one Aave v3
``liquidationCall`` (a :class:`~tallyio.engine.records.LiquidationAction`)
covering exactly the debt the book sized, so the liquidator never pays more
than predicted (the pool only ever covers less: a raced position reverts or
shrinks).

Owns: the decision (profit floor, which pool it trusts) and the counts of what
it declined. Reads ``balances`` (debt token -> what the liquidator holds, kept
current by its owner): when the liquidator holds less of the debt token than
the liquidation needs it declines and says so (``declined["no_debt_token"]``
and :attr:`LiquidationStrategy.shortfalls`) -- unless it was given a Uniswap V2
``funding_router`` and its ``weth``: then it returns a :class:`FundingSwapAction`
(``swapETHForExactTokens``: exactly the missing debt token, for ETH) BEFORE the
liquidation, which the executor sends first (nonces n, n+1), and counts it in
``funded``. Gas fields are left open: the executor prices a liquidation triggered by
a pending oracle update right behind it (the same fee caps), and others at the
node's suggestion.

    >>> from tallyio.engine.strategy import StrategyContext
    >>> from tallyio.mempool.records import Opportunity, OpportunityKind
    >>> POOL, D, C, U = b"\\x99" * 20, b"\\x0d" * 20, b"\\x0a" * 20, b"\\x55" * 20
    >>> op = Opportunity(OpportunityKind.LIQUIDATION, None, (POOL,), (D, C), amount_in=1800 * 10**6,
    ...                  profit=80 * 10**6, gas_estimate=400_000, base_fee_per_gas=10**9,
    ...                  profit_net_of_gas=79 * 10**6, block_number=5, received_ns=0, detected_ns=0, user=U,
    ...                  amount_out=94 * 10**16)
    >>> s = LiquidationStrategy(pools={POOL}, balances={D: 10**12})
    >>> [a] = s.on_opportunity(op, StrategyContext())
    >>> a.debt_to_cover, a.user == U, a.collateral_asset == C, a.expected_collateral
    (1800000000, True, True, 940000000000000000)
    >>> LiquidationStrategy(pools={POOL}, balances={D: 10}).on_opportunity(op, StrategyContext())
    []
    >>> funded = LiquidationStrategy(pools={POOL}, balances={D: 10}, funding_router=b"\\x01" * 20, weth=b"\\x0e" * 20)
    >>> swap, liquidation = funded.on_opportunity(op, StrategyContext())
    >>> type(swap).__name__, swap.amount_out, liquidation.debt_to_cover, funded.funded
    ('FundingSwapAction', 1799999990, 1800000000, 1)
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Mapping, NamedTuple, Optional, Tuple

from tallyio.engine.records import Action, LiquidationAction
from tallyio.engine.strategy import Strategy, StrategyContext
from tallyio.mempool.records import Opportunity, OpportunityKind

__all__ = ["LiquidationStrategy", "FundingSwapAction"]


class FundingSwapAction(NamedTuple):
    """Buy exactly ``amount_out`` of ``path[-1]`` for ETH through a Uniswap V2
    Router02 (``swapETHForExactTokens(amount_out, path, to, deadline)``, ``path[0]``
    the router's WETH), sent right before the liquidation it funds. ``max_amount_in``
    is the ETH sent (the router refunds what the swap did not use); None: the
    executor asks the router's ``getAmountsIn`` on the state it sends on, so the
    swap uses all of it unless the pair moves first (then the router refunds, or
    the swap reverts when more would be needed -- and the liquidation after it
    reverts too: it cannot pay).

        >>> a = FundingSwapAction(router=b"\\x01" * 20, path=(b"\\x0e" * 20, b"\\x0d" * 20), amount_out=10**6)
        >>> a.to == a.router, a.reduces_exposure
        (True, True)
    """

    router: bytes
    path: Tuple[bytes, ...]
    amount_out: int
    max_amount_in: Optional[int] = None
    deadline: Optional[int] = None
    gas_limit: Optional[int] = None
    max_fee_per_gas: Optional[int] = None
    max_priority_fee_per_gas: Optional[int] = None
    opportunity: Optional[Opportunity] = None

    @property
    def to(self) -> bytes:
        """The address the transaction goes to (the router)."""
        return self.router

    @property
    def reduces_exposure(self) -> bool:
        """It only pays for a liquidation (which reduces the market's bad debt): the
        trading gate's REDUCING state lets it through with the liquidation."""
        return True


class LiquidationStrategy(Strategy):
    """One ``liquidationCall`` per LIQUIDATION opportunity on a known pool whose
    net profit (``profit_net_of_gas`` when the book could value gas, else the
    gross ``profit``; debt-token units) is at least ``min_profit``.

    ``pools``: the lending pools it may call (20-byte addresses; empty: any).
    ``balances``: debt token -> amount the liquidator holds (None: do not check;
    the caller funds the account). ``receive_a_token`` asks for aTokens instead
    of the underlying collateral.
    """

    kinds = (OpportunityKind.LIQUIDATION,)

    def __init__(self, *, pools: Iterable[bytes] = (), min_profit: int = 1,
                 balances: Optional[Mapping[bytes, int]] = None, receive_a_token: bool = False,
                 gas_limit: Optional[int] = None, funding_router: Optional[bytes] = None,
                 weth: Optional[bytes] = None):
        if isinstance(min_profit, bool) or not isinstance(min_profit, int):
            raise ValueError(f"min_profit must be an int (debt-token units), got {min_profit!r}")
        if gas_limit is not None and (isinstance(gas_limit, bool) or not isinstance(gas_limit, int)
                                      or gas_limit < 21_000):
            raise ValueError(f"gas_limit must be an int >= 21000 or None, got {gas_limit!r}")
        if (funding_router is None) != (weth is None):
            raise ValueError("funding_router and weth go together (the router's WETH is the swap's first token)")
        for name, value in (("funding_router", funding_router), ("weth", weth)):
            if value is not None and not (isinstance(value, bytes) and len(value) == 20):
                raise ValueError(f"{name} must be a 20-byte address, got {value!r}")
        self.funding_router, self.weth = funding_router, weth
        self.allowed_pools = frozenset(bytes(p) for p in pools)
        for p in self.allowed_pools:
            if len(p) != 20:
                raise ValueError(f"a pool address is 20 bytes, got {p!r}")
        self.min_profit = min_profit
        self.balances = balances
        self.receive_a_token = bool(receive_a_token)
        self.gas_limit = gas_limit
        self.declined: Dict[str, int] = dict(kind=0, unknown_pool=0, malformed=0, thin=0, no_debt_token=0)
        #: liquidations returned with a FundingSwapAction before them
        self.funded = 0
        #: debt token -> the largest amount a declined liquidation lacked (what funding would have to bring)
        self.shortfalls: Dict[bytes, int] = {}

    def on_opportunity(self, opportunity: Opportunity, ctx: StrategyContext) -> List[Action]:
        """``[LiquidationAction]`` or ``[]`` (counted in ``declined``)."""
        op = opportunity
        if op.kind is not OpportunityKind.LIQUIDATION:
            return self._decline("kind")
        if len(op.pools) != 1 or len(op.token_path) != 2 or op.user is None or op.amount_in <= 0:
            return self._decline("malformed")
        pool = bytes(op.pools[0])
        if self.allowed_pools and pool not in self.allowed_pools:
            return self._decline("unknown_pool")
        net = op.profit_net_of_gas if op.profit_net_of_gas is not None else op.profit
        if net < self.min_profit:
            return self._decline("thin")
        debt_asset, collateral_asset = bytes(op.token_path[0]), bytes(op.token_path[1])
        funding: List[Action] = []
        if self.balances is not None:
            held = int(self.balances.get(debt_asset, 0))
            if held < op.amount_in:
                self.shortfalls[debt_asset] = max(self.shortfalls.get(debt_asset, 0), op.amount_in - held)
                if self.funding_router is None or self.weth is None or debt_asset == self.weth:
                    return self._decline("no_debt_token")
                funding.append(FundingSwapAction(router=self.funding_router, path=(self.weth, debt_asset),
                                                 amount_out=op.amount_in - held, opportunity=op))
                self.funded += 1
        return funding + [LiquidationAction(pool=pool, collateral_asset=collateral_asset, debt_asset=debt_asset,
                                  user=bytes(op.user), debt_to_cover=op.amount_in,
                                  receive_a_token=self.receive_a_token, expected_collateral=op.amount_out,
                                  gas_limit=self.gas_limit, opportunity=op)]

    def _decline(self, reason: str) -> List[Action]:
        self.declined[reason] += 1
        return []

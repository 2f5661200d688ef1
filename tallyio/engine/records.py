"""The engine's vocabulary: what a strategy asks for (``SwapAction``) and what
an executor reports back (``ExecutionResult``, ``ExecutionStatus``).  Plain
data, shared by the strategy, the executors, the breaker gate and the engine;
imports nothing but the mempool's ``Opportunity`` (upstream of it).

    >>> from tallyio.engine.records import SwapAction, ExecutionResult, ExecutionStatus
    >>> a = SwapAction(router=b"\\x01" * 20, path=(b"\\x0a" * 20, b"\\x0b" * 20, b"\\x0a" * 20),
    ...                amount_in=10**18, min_amount_out=10**18 + 1)
    >>> a.hops
    2
    >>> r = ExecutionResult(ExecutionStatus.SIMULATED, expected_profit=5, realized_profit=5)
    >>> r.success, r.status.name
    (True, 'SIMULATED')
    >>> ExecutionResult.rejected("breaker open").success
    False
"""
from __future__ import annotations

import enum
from typing import NamedTuple, Optional, Tuple, Union

from tallyio.mempool.records import Opportunity

__all__ = ["SwapAction", "Action", "ExecutionStatus", "ExecutionResult"]


class SwapAction(NamedTuple):
    """One atomic router swap along ``path`` (a V2 router's
    ``swapExactTokensForTokens``): it either returns at least ``min_amount_out``
    of ``path[-1]`` or reverts, so a backrun along a cycle with
    ``min_amount_out = amount_in + minimum profit`` cannot lose more than gas.

    Gas fields left ``None`` are priced by the executor (right behind the
    triggering transaction for a backrun)."""

    router: bytes
    """20-byte router address (the exchange whose pools ``path`` trades through)."""
    path: Tuple[bytes, ...]
    """20-byte token addresses, first to last (a cycle starts and ends on one token)."""
    amount_in: int
    min_amount_out: int
    gas_limit: Optional[int] = None
    max_fee_per_gas: Optional[int] = None
    max_priority_fee_per_gas: Optional[int] = None
    deadline: Optional[int] = None
    """unix seconds; None: the executor uses the next block's time plus a margin."""
    opportunity: Optional[Opportunity] = None
    """what the action came from (for the journal, the result and realized profit)."""

    @property
    def hops(self) -> int:
        """Number of pools the swap goes through."""
        return len(self.path) - 1


Action = Union[SwapAction]
"""Everything a strategy may return (redefined with ``LiquidationAction`` at the end)."""


class ExecutionStatus(enum.IntEnum):
    """Where an execution ended."""

    SIMULATED = 1
    """the dry-run executor ran it against the known pool state: it would succeed."""
    SENT = 2
    """signed and accepted by the node (``eth_sendRawTransaction``); receipt pending."""
    LANDED = 3
    """mined and succeeded (receipt status 1)."""
    REVERTED = 4
    """mined and reverted (receipt status 0): only gas was spent."""
    REJECTED = 5
    """never sent: trading halted, breaker open, queue full, or nothing to do."""
    FAILED = 6
    """the executor raised or the node refused the transaction (see ``error``)."""


_SUCCESSFUL = frozenset((ExecutionStatus.SIMULATED, ExecutionStatus.SENT, ExecutionStatus.LANDED))


class ExecutionResult(NamedTuple):
    """What executing one opportunity's actions came to."""

    status: ExecutionStatus
    tx_hashes: Tuple[bytes, ...] = ()
    """32-byte hashes of the transactions sent, in order (empty for a dry run)."""
    gas_used: Optional[int] = None
    """from the receipts (or the dry run's estimate); None while unknown."""
    expected_profit: Optional[int] = None
    """what the opportunity predicted, in its start token's smallest unit."""
    realized_profit: Optional[int] = None
    """balance change of the start token measured after the fact; None while unknown."""
    latency_ns: int = 0
    """from the triggering transaction's receipt time to the send (or the decision)."""
    error: Optional[str] = None
    """why it was rejected or failed; never carries a secret."""
    opportunity: Optional[Opportunity] = None
    gas_cost_wei: Optional[int] = None
    """what the transactions cost in ETH: the sum of each receipt's ``gasUsed x
    effectiveGasPrice`` (NodeExecutor.follow); None while unknown and for a dry run
    (which spends no gas: its ``gas_used`` is the estimate)."""
    realized_profit_net_of_gas: Optional[int] = None
    """``realized_profit - gas_cost_wei`` when both are in wei, i.e. every swap's
    start token is the router's WETH (a WETH cycle); None otherwise or while unknown."""
    funding_cost_wei: Optional[int] = None
    """a funded liquidation (issue 15): the ETH its funding swap really paid for the
    debt token (the pair's ``Swap`` input, from the receipt); None when nothing was funded."""

    @property
    def success(self) -> bool:
        """True for SIMULATED, SENT and LANDED."""
        return self.status in _SUCCESSFUL

    @classmethod
    def rejected(cls, reason: str, opportunity: Optional[Opportunity] = None) -> "ExecutionResult":
        """A result for actions that were never sent, saying why."""
        return cls(ExecutionStatus.REJECTED, error=reason, opportunity=opportunity)


# ---- liquidations (issue 15) ----

class LiquidationAction(NamedTuple):
    """One Aave v3 ``Pool.liquidationCall(collateral_asset, debt_asset, user,
    debt_to_cover, receive_a_token)`` from the executor's account, which must
    hold ``debt_to_cover`` of the debt asset and have approved the pool for it.
    The pool itself caps the debt (close factor, collateral), so a raced
    liquidation covers less or reverts; it never pays more than
    ``debt_to_cover``.

        >>> a = LiquidationAction(pool=b"\\x01" * 20, collateral_asset=b"\\x0a" * 20, debt_asset=b"\\x0d" * 20,
        ...                       user=b"\\x55" * 20, debt_to_cover=10**6, expected_collateral=5 * 10**14)
        >>> a.receive_a_token, a.to == a.pool
        (False, True)
    """

    pool: bytes
    collateral_asset: bytes
    debt_asset: bytes
    user: bytes
    """the 20-byte borrower being liquidated."""
    debt_to_cover: int
    receive_a_token: bool = False
    expected_collateral: int = 0
    """the collateral the liquidator should receive (underlying, or aTokens with ``receive_a_token``)."""
    gas_limit: Optional[int] = None
    max_fee_per_gas: Optional[int] = None
    max_priority_fee_per_gas: Optional[int] = None
    opportunity: Optional[Opportunity] = None

    @property
    def to(self) -> bytes:
        """The address the transaction goes to (the pool)."""
        return self.pool


Action = Union[SwapAction, LiquidationAction]  # noqa: F811  (liquidations join the swaps)
__all__ += ["LiquidationAction"]

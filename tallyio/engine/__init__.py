"""The engine: strategies turn opportunities into actions, executors carry
them out (dry run or a real node) behind circuit breakers and a trading-state
gate.  Data flow: ``Opportunity`` (tallyio.mempool) -> ``Strategy`` ->
``Action`` -> executor -> ``ExecutionResult``; state and metrics beside it.

    >>> from tallyio.engine import Strategy, SwapAction, ExecutionResult, ExecutionStatus
    >>> ExecutionStatus.LANDED.name
    'LANDED'
"""
from tallyio.engine.records import Action, ExecutionResult, ExecutionStatus, SwapAction
from tallyio.engine.strategy import Strategy, StrategyContext

__all__ = ["Strategy", "StrategyContext", "SwapAction", "Action", "ExecutionResult",
           "ExecutionStatus"]

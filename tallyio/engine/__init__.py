"""The engine: strategies turn opportunities into actions, executors carry
them out (dry run or a real node) behind circuit breakers and a trading-state
gate.  Data flow: ``Opportunity`` (tallyio.mempool) -> ``Strategy`` ->
``Action`` -> executor -> ``ExecutionResult``; state and metrics beside it.

    >>> from tallyio.engine import Engine, CoreConfig, ExecutionStatus
    >>> CoreConfig.replay().node_url is None        # no node: the embedded recording
    True
    >>> ExecutionStatus.LANDED.name
    'LANDED'

Read docs/engine.md (the faces, CoreConfig, ``tallyio run``), docs/breaker.md
and docs/execution.md (keys, the node executor, BackrunStrategy).
"""
from tallyio.engine.backrun import BackrunStrategy
from tallyio.engine.breaker import (BreakerState, BreakerStats, CircuitBreaker, TradingGate, TradingState,
                                    call_async)
from tallyio.engine.config import CoreConfig
from tallyio.engine.engine import Engine
from tallyio.engine.executors import DryRunExecutor, Executor
from tallyio.engine.keys import Signer
from tallyio.engine.liquidation import LiquidationStrategy
from tallyio.engine.node_executor import NodeExecutor, SentTransaction
from tallyio.engine.records import Action, ExecutionResult, ExecutionStatus, LiquidationAction, SwapAction
from tallyio.engine.strategy import CycleStrategy, Strategy, StrategyContext
from tallyio.engine._native import NativeStrategy
from tallyio.errors import BreakerOpenError

__all__ = ["Engine", "CoreConfig", "Strategy", "StrategyContext", "CycleStrategy", "BackrunStrategy",
           "NativeStrategy", "SwapAction", "Action", "ExecutionResult", "ExecutionStatus", "Executor",
           "DryRunExecutor", "NodeExecutor", "SentTransaction", "Signer", "CircuitBreaker", "BreakerState",
           "BreakerStats", "BreakerOpenError", "TradingState", "TradingGate", "call_async", "LiquidationStrategy",
           "LiquidationAction"]

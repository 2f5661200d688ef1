"""Pending transactions in, sized opportunities out: sources (a node over
websocket/HTTP, or a replay recording), the watcher, the filter, the pool
table and the analyzer.

Data flow: source -> decode (``tallyio.eth``) -> filter -> analyze (``tallyio.amm``)
-> ``Opportunity`` queue. Nothing here reaches into the engine.

    >>> from tallyio.mempool import Pipeline, PoolTable, V2Pool, OpportunityKind
    >>> OpportunityKind.BACKRUN.value
    2
"""
from tallyio.mempool._analyzer import Analyzer
from tallyio.mempool._filter import TxFilter
from tallyio.mempool._opportunity import OpportunityQueue
from tallyio.mempool._pipeline import Pipeline
from tallyio.mempool._pools import PoolTable
from tallyio.mempool._ring import PendingRing
from tallyio.mempool.config import AnalyzerConfig, FilterConfig
from tallyio.mempool.lending import LendingReserve, PositionBook
from tallyio.mempool.node import NodeSource
from tallyio.mempool.recording import Recorder, ReplaySource
from tallyio.mempool.records import Opportunity, OpportunityKind, V2Pool, V3Pool, V3PoolEvent

__all__ = ["NodeSource", "Pipeline", "PoolTable", "V2Pool", "TxFilter", "FilterConfig",
           "Analyzer", "AnalyzerConfig", "PendingRing", "OpportunityQueue", "Opportunity",
           "OpportunityKind", "Recorder", "ReplaySource", "V3Pool", "V3PoolEvent", "PositionBook",
           "LendingReserve"]

"""Pending transactions in, sized opportunities out: sources (a node over
websocket/HTTP, or a replay recording), the watcher, the filter, the pool
table and the analyzer.

Data flow: source -> decode (``tallyio.eth``) -> filter -> analyze (``tallyio.amm``)
-> ``Opportunity`` queue. Nothing here reaches into the engine.
"""
from tallyio.mempool.node import NodeSource

__all__ = ["NodeSource"]

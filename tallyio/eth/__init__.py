"""Ethereum vocabulary, no I/O: addresses, hashes, raw transactions, and the
nogil decoding of the router calls a mempool carries (``decode_call``).

Sits at the start of the data flow (source -> **decode** -> filter -> analyze);
it imports nothing from the other engine sub-packages.
"""
from tallyio.eth.types import BlockHeader, PendingTx, SyncEvent

__all__ = ["PendingTx", "BlockHeader", "SyncEvent"]

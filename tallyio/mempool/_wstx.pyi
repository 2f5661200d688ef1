"""Stub of the compiled tallyio.mempool._wstx: a node's JSON objects -> tallyio.eth.types records."""
from typing import Any

from tallyio.eth.types import BlockHeader, PendingTx, SyncEvent
from tallyio.mempool._wsenc import keccak256 as keccak256, rlp_encode as rlp_encode

__all__ = ["BadRecord", "keccak256", "rlp_encode", "parse_pending_tx",
           "parse_header", "parse_sync_log", "SYNC_TOPIC"]

SYNC_TOPIC: bytes

class BadRecord(ValueError):
    reason: str
    def __init__(self, reason: str, detail: str) -> None: ...

def parse_pending_tx(obj: Any, received_ns: int, *, verify_hash: bool = True) -> PendingTx: ...
def parse_header(obj: Any, received_ns: int) -> BlockHeader: ...
def parse_sync_log(obj: Any, received_ns: int) -> SyncEvent: ...

"""State that survives ``kill -9``: global state (one writer, seqlock readers),
thread-local state merged by the writer, A/B memory-mapped checkpoints, and the
journal (an append-only record log, the same format as mempool recordings).

Beside the data flow: any stage may use it; it imports no engine stage.
Protocols and file formats: docs/state.md.

    >>> from tallyio.state import RecordType, StateLayout, GlobalState
    >>> st = GlobalState(StateLayout(1, {"nonces": ([("nonce", "u8")], 2)}))
    >>> st.write("nonces", 0, nonce=3); st.get("nonces", 0, "nonce"), int(RecordType.PENDING_TX)
    (3, 1)
"""
from tallyio.state._native import (CheckpointFile, CheckpointInfo, FieldReader, GlobalState,
                                   LocalState, crc32c)
from tallyio.state.layout import ENGINE_LAYOUT, StateLayout, TableSpec
from tallyio.state.recordlog import (Record, RecordReader, RecordType, RecordWriter,
                                     read_records)
from tallyio.state.store import CheckpointHooks, Recovery, StateStore

__all__ = ["Record", "RecordReader", "RecordType", "RecordWriter", "read_records",
           "StateLayout", "TableSpec", "ENGINE_LAYOUT", "GlobalState", "LocalState",
           "FieldReader", "CheckpointFile", "CheckpointInfo", "crc32c", "StateStore",
           "Recovery", "CheckpointHooks"]

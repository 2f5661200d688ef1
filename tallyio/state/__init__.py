"""State that survives ``kill -9``: global state (one writer, seqlock readers),
thread-local state merged by the writer, A/B memory-mapped checkpoints, and the
journal (an append-only record log, the same format as mempool recordings).

Beside the data flow: any stage may use it; it imports no engine stage.

    >>> from tallyio.state import RecordType
    >>> int(RecordType.PENDING_TX)
    1
"""
from tallyio.state.recordlog import (Record, RecordReader, RecordType, RecordWriter,
                                     read_records)

__all__ = ["Record", "RecordReader", "RecordType", "RecordWriter", "read_records"]

"""StateStore: global state + A/B checkpoints + journal in one directory, so a
crash (``kill -9``) loses nothing that was committed.

Owns the directory it is given: ``state.ckpt`` (+ ``.lock``) and
``journal.tlog`` (+ sealed segments and ``.lock``). Uses GlobalState and
CheckpointFile (tallyio.state._native) and the record log; imports no engine
stage (strategies are duck-typed: anything with ``on_save``/``on_load``).

The model: every event is appended to the journal and then applied to the
state by a deterministic ``apply(state, record)``; every N events or M ms the
state is checkpointed together with the journal sequence number it includes.
Opening the store restores the newest valid checkpoint and replays the
journal after that sequence number through the same ``apply``.

    >>> import tempfile
    >>> from tallyio.state.layout import StateLayout
    >>> layout = StateLayout(1, {"totals": ([("sum", "u8")], 1)})
    >>> def apply(state, rec):
    ...     state.add("totals", 0, "sum", int.from_bytes(rec.payload, "little"))
    >>> d = tempfile.mkdtemp()
    >>> store = StateStore(d, layout, apply, every_events=2, every_ms=60_000)
    >>> for v in (5, 6, 7):
    ...     _ = store.record(RecordType.ENGINE_EVENT, v.to_bytes(8, "little"))
    >>> store.checkpoint_seq, store.state.get("totals", 0, "sum")
    (1, 18)
    >>> store.abandon()            # as if the process died here: no final checkpoint
    >>> again = StateStore(d, layout, apply)
    >>> again.recovery.checkpoint_journal_seq, again.recovery.replayed, again.state.get("totals", 0, "sum")
    (2, 1, 18)
    >>> again.close()
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, Dict, Iterable, NamedTuple, Optional, Protocol, Union

from tallyio.errors import JournalApplyError
from tallyio.state._native import CheckpointFile, GlobalState
from tallyio.state.layout import StateLayout
from tallyio.state.recordlog import Record, RecordReader, RecordType, RecordWriter

__all__ = ["StateStore", "Recovery", "CheckpointHooks", "RecordType"]


class CheckpointHooks(Protocol):
    """What a strategy implements for its private state to ride along with
    each checkpoint (keys are namespaced by ``name`` in the file)."""

    name: str

    def on_save(self) -> Dict[str, bytes]: ...

    def on_load(self, state: Dict[str, bytes]) -> None: ...


class Recovery(NamedTuple):
    """What opening the store found and did."""

    checkpoint_seq: int            #: 0 when no checkpoint existed
    checkpoint_journal_seq: int    #: journal records up to this one were in the checkpoint
    replayed: int                  #: journal records applied after it
    last_journal_seq: int          #: the last journal record now in the state
    seconds: float                 #: wall time of restore + validation + replay


class StateStore:
    """Global state, its A/B checkpoint file and its journal, in ``directory``.

    ``apply(state, record)`` must be deterministic: it runs once when an
    event is recorded and again when the journal is replayed after a crash.
    ``policy`` (``"none"``, ``"async"``, ``"sync"``) is the durability of
    both files; under ``async``/``sync`` the journal is fdatasync'ed before
    each checkpoint so a checkpoint never covers journal records a power
    loss could take away.
    """

    def __init__(self, directory: Union[str, os.PathLike], layout: StateLayout,
                 apply: Callable[[GlobalState, Record], None], *, policy: str = "none",
                 every_events: int = 1000, every_ms: float = 50.0,
                 strategies: Iterable[CheckpointHooks] = (), hooks_capacity: int = 1 << 16,
                 journal_max_file_size: Optional[int] = 64 << 20,
                 journal_chunk_size: int = 1 << 20) -> None:
        if not callable(apply):
            raise TypeError(f"apply must be callable, got {type(apply).__name__}")
        if not isinstance(every_events, int) or every_events < 1:
            raise ValueError(f"every_events must be an int >= 1, got {every_events!r}")
        if not isinstance(every_ms, (int, float)) or every_ms <= 0:
            raise ValueError(f"every_ms must be > 0, got {every_ms!r}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.apply = apply
        self.policy = policy
        self.every_events = every_events
        self.every_ns = int(every_ms * 1e6)
        self.strategies = list(strategies)
        self.state = GlobalState(layout)
        started = time.perf_counter()
        self._ckpt = CheckpointFile(self.directory / "state.ckpt", self.state, policy=policy,
                                    hooks_capacity=hooks_capacity)
        try:
            info = self._ckpt.restore()
            self.journal = RecordWriter(self.directory / "journal.tlog", flush_policy=policy,
                                        max_file_size=journal_max_file_size,
                                        chunk_size=journal_chunk_size)
        except BaseException:
            self._ckpt.close()
            raise
        ckpt_seq = info.seq if info else 0
        ckpt_jseq = info.journal_seq if info else 0
        if info is not None:
            for strategy in self.strategies:
                prefix = strategy.name + "/"
                strategy.on_load({k[len(prefix):]: v for k, v in info.hooks.items()
                                  if k.startswith(prefix)})
        if self.journal.next_seq <= ckpt_jseq:
            # a power loss took journal records the checkpoint already holds
            # (policy "async" syncs the two files independently): continue the
            # journal after the checkpoint; those records live in the state only
            self.journal.skip_to(ckpt_jseq + 1)
        replayed = 0
        last = ckpt_jseq
        if self.journal.next_seq - 1 > ckpt_jseq:
            for rec in RecordReader(self.directory / "journal.tlog", from_seq=ckpt_jseq + 1):
                apply(self.state, rec)
                replayed += 1
                last = rec.seq
        self.recovery = Recovery(ckpt_seq, ckpt_jseq, replayed, last,
                                 time.perf_counter() - started)
        self._events = 0
        self._last_ns = time.monotonic_ns()
        self._closed = False
        self._broken: Optional[JournalApplyError] = None

    def claim_writer(self) -> None:
        """Make the calling thread the one that records and checkpoints (e.g.
        the engine thread, after the store was opened on another one). The
        hand-over must be ordered (a thread start, a queue)."""
        self.state.claim_writer()

    @property
    def checkpoint_seq(self) -> int:
        """Sequence number of the last published checkpoint."""
        return self._ckpt.seq

    def record(self, rtype: int, payload: bytes, ts: Optional[int] = None) -> int:
        """Journal one event, apply it to the state, checkpoint when due;
        returns the event's journal sequence number. Once this returns the
        event survives a crash of the process (policy ``none``) or a power
        loss (after the next ``sync``)."""
        if self._broken is not None:
            raise self._broken
        self.state.check_writer()        # before journaling: a refused event is not in the journal
        if ts is None:
            ts = time.time_ns()
        seq = self.journal.append(rtype, payload, ts)
        try:
            self.apply(self.state, Record(rtype, 0, seq, ts, bytes(payload)))
        except BaseException as exc:
            self._broken = JournalApplyError(
                f"journal record {seq} (type {rtype}) is journaled but apply() raised "
                f"{type(exc).__name__}: {exc}; the state no longer matches the journal, so this "
                f"store takes no more records or checkpoints: reopen it to replay the journal")
            raise self._broken from exc
        self._events += 1
        if self._events >= self.every_events or time.monotonic_ns() - self._last_ns >= self.every_ns:
            self.checkpoint()
        return seq

    def tick(self) -> int:
        """Checkpoint if ``every_ms`` has passed since the last one (call it
        from the writer's loop when no events arrive, so the workers' merged
        updates are checkpointed too); returns the checkpoint's sequence
        number or 0."""
        if time.monotonic_ns() - self._last_ns >= self.every_ns:
            return self.checkpoint()
        return 0

    def checkpoint(self) -> int:
        """Merge the workers' LocalStates, then checkpoint the state (with the
        strategies' hooks); returns the checkpoint's sequence number, 0 when
        the async policy deferred it."""
        if self._broken is not None:
            raise self._broken
        self.state.merge()
        hooks: Dict[str, bytes] = {}
        for strategy in self.strategies:
            for key, value in strategy.on_save().items():
                hooks[f"{strategy.name}/{key}"] = value
        if self.policy != "none":
            # sync: the journal is on disk before the checkpoint that covers it;
            # async: both are msynced off this thread (see skip_to on open)
            self.journal.flush(self.policy)
        seq = self._ckpt.checkpoint(self.journal.next_seq - 1, hooks or None)
        if seq:
            self._events = 0
            self._last_ns = time.monotonic_ns()
        return seq

    def close(self) -> None:
        """A final checkpoint, then close both files. Idempotent."""
        if self._closed:
            return
        try:
            if self._broken is None:
                self.checkpoint()
        finally:
            self.abandon()

    def abandon(self) -> None:
        """Close both files WITHOUT a final checkpoint (what a crash leaves:
        the next open replays the journal tail)."""
        if self._closed:
            return
        self._closed = True
        try:
            self.journal.close()
        finally:
            self._ckpt.close()

    def __enter__(self) -> "StateStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"<StateStore {str(self.directory)!r} checkpoint={self.checkpoint_seq} "
                f"journal_next={self.journal.next_seq} policy={self.policy}>")

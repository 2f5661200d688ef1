"""kill -9: a writer process journals events and checkpoints in a loop and is
killed with SIGKILL at random moments, again and again on the same directory.
After every kill the store must open, its checkpoint must be valid and be the
last one the child saw committed (or the one it was publishing), and the
journal must replay to exactly the committed events (or those plus the one
being appended).

Runs: scaled(1000, minimum=100) -- 1000 at the default TALLYIO_TEST_SCALE=1
(what CI runs), 100 under the sanitizer script's scale of 0.1.
"""
import mmap
import os
import random
import signal
import struct
import time
import warnings

import numpy as np
import pytest

from conftest import scaled
from tallyio.state import RecordType, StateLayout, StateStore

LAYOUT = StateLayout(1, {
    "pools": ([("r0", "u8"), ("block", "u8"), ("delta", "i8")], 64),
    "counters": ([("value", "u8")], 4),
})
PROGRESS = struct.Struct("<QQQQ")         # events committed, checkpoint committed, pid, ready pid


def _value(seq: int) -> int:
    return (seq * 2654435761) % (1 << 32)


def apply(state, rec):
    """Deterministic: the same event always makes the same change."""
    seq = int.from_bytes(rec.payload[:8], "little")
    assert seq == rec.seq, f"payload says event {seq}, journal says {rec.seq}"
    i = seq % 64
    state.add("pools", i, "r0", _value(seq))
    state.write("pools", i, block=seq)
    state.add("pools", i, "delta", -1 if seq % 3 else 2)
    state.add("counters", 0, "value", 1)


class Model:
    """The expected state after events 1..n, extended incrementally."""

    def __init__(self):
        self.n = 0
        self.r0 = [0] * 64
        self.block = [0] * 64
        self.delta = [0] * 64

    def advance(self, n):
        assert n >= self.n, f"committed events went backwards: {self.n} -> {n}"
        for seq in range(self.n + 1, n + 1):
            i = seq % 64
            self.r0[i] = (self.r0[i] + _value(seq)) % (1 << 64)
            self.block[i] = seq
            self.delta[i] += -1 if seq % 3 else 2
        self.n = n

    def check(self, state):
        view = state.view("pools")
        assert [int(v) for v in view["r0"]] == self.r0
        assert [int(v) for v in view["block"]] == self.block
        assert [int(v) for v in view["delta"]] == self.delta
        assert state.get("counters", 0, "value") == self.n


def _open(directory, every):
    return StateStore(directory, LAYOUT, apply, every_events=every, every_ms=3600_000,
                      journal_max_file_size=32 * 1024, journal_chunk_size=8192)


def _ready(progress_path) -> int:
    with open(progress_path, "rb") as f:
        return PROGRESS.unpack(f.read())[3]


def _child(directory, progress_path, every):
    """Runs in the forked child until SIGKILL: record events, publish progress
    (after each record() returns) in a shared mapping, and when its open is done."""
    code = 1
    try:
        fd = os.open(progress_path, os.O_RDWR)
        mm = mmap.mmap(fd, PROGRESS.size)
        # one aligned 8-byte store per field (numpy), never struct.pack_into: it
        # zeroes the whole buffer before packing, so a kill in between left zeros
        progress = np.frombuffer(mm, dtype=np.uint64)
        store = _open(directory, every)
        pid = os.getpid()
        progress[3] = pid                      # open (restore + replay) done: the loop starts
        while True:
            seq = store.journal.next_seq
            store.record(RecordType.ENGINE_EVENT, seq.to_bytes(8, "little") + b"p" * (seq % 50), ts=seq)
            # checkpoint, then events, then (once) the pid that says "this run wrote these"
            progress[1] = store.checkpoint_seq
            progress[0] = seq
            progress[2] = pid
    except BaseException:
        import traceback
        traceback.print_exc()
        code = 3
    finally:
        os._exit(code)


@pytest.mark.timeout(900)   # 1000 fork/kill/reopen rounds: ~60 s alone, ~160 s in a loaded full-suite run
def test_kill_minus_nine_loses_nothing_committed(tmp_path, seed):
    rnd = random.Random(seed)
    runs = scaled(1000, minimum=100)
    directory = tmp_path / "store"
    progress_path = tmp_path / "progress"
    progress_path.write_bytes(bytes(PROGRESS.size))
    model = Model()
    committed_events = committed_ckpt = 0
    stats = {"killed_before_progress": 0, "torn_tail_events": 0, "ckpt_in_flight": 0, "rotated": 0}
    for run in range(runs):
        every = rnd.choice([1, 3, 7, 25])
        with warnings.catch_warnings():
            # Python >= 3.12 warns when forking a process with threads (pytest's, a
            # scheduler test's): the child only runs _child and is SIGKILLed anyway
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:
            _child(directory, progress_path, every)
        if run % 10 == 9:
            # a kill at any moment from the fork on: often during the child's own open
            time.sleep(rnd.uniform(0, 0.02))
        else:
            # a kill inside the record/checkpoint loop: wait for the child to be ready
            # (a loaded machine can take longer than any fixed delay to fork and open)
            deadline = time.monotonic() + 60
            while _ready(progress_path) != pid and time.monotonic() < deadline:
                time.sleep(0.0002)
            time.sleep(rnd.uniform(0, 0.005))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, \
            f"run {run}: the child exited on its own (status {status}): see its traceback above"
        with open(progress_path, "rb") as f:
            events, ckpt, child, _ready_pid = PROGRESS.unpack(f.read())
        if child != pid:                      # killed before its first commit this run
            stats["killed_before_progress"] += 1
            events, ckpt = committed_events, committed_ckpt
        # what the child saw committed can only grow
        assert events >= committed_events and ckpt >= committed_ckpt
        store = _open(directory, every)
        try:
            rec = store.recovery
            # the checkpoint opened (checksums valid) and is the last committed or the
            # one being published when the kill came
            assert rec.checkpoint_seq in (ckpt, ckpt + 1), (run, rec, ckpt)
            stats["ckpt_in_flight"] += rec.checkpoint_seq == ckpt + 1
            # the journal holds exactly the committed events (+ the one being appended)
            assert rec.last_journal_seq in (events, events + 1), (run, rec, events)
            stats["torn_tail_events"] += rec.last_journal_seq == events + 1
            assert rec.checkpoint_journal_seq <= rec.last_journal_seq
            model.advance(rec.last_journal_seq)
            model.check(store.state)
            committed_events, committed_ckpt = rec.last_journal_seq, rec.checkpoint_seq
        finally:
            # alternate: leave as crashed (the next open replays more) or close cleanly
            if run % 2:
                store.abandon()
            else:
                store.close()
                committed_ckpt += 1
        with open(progress_path, "r+b") as f:
            f.write(PROGRESS.pack(committed_events, committed_ckpt, 0, 0))
    stats["rotated"] = len([p for p in directory.iterdir() if p.name.startswith("journal.tlog.0")])
    print(f"{runs} kills: {committed_events} events, {committed_ckpt} checkpoints, {stats}")
    assert committed_events > runs            # the children really made progress
    assert stats["killed_before_progress"] < runs // 2
    assert stats["rotated"] > 0

"""The ``state`` group: merge + A/B checkpoint of a 64 KiB state against
py-lmdb and sqlite3 (WAL) writing the same 64 KiB at the same durability, a
checkpoint after a few reserve updates, seqlock reads from C and Python, the
record log's append, and the recovery of a 64 MiB state. Owns only the
temporary directories it creates (and removes).

Durability pairs: checkpoint policy ``none`` (survives a crash of the
process, not of the machine) against LMDB ``sync=False`` and sqlite
``synchronous=OFF``; policy ``sync`` (msync before returning) against LMDB
``sync=True`` and sqlite ``synchronous=FULL``. C-level figures time the merge
and the checkpoint inside a nogil loop (``tallyio.state._testing``);
Python-level figures time one call from Python, like the peers.
"""
from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import time
from time import perf_counter_ns
from typing import Callable

import numpy as np

from tallyio.bench._figures import Figure, Target, alternate, figures_for
from tallyio.bench._progress import Progress

STATE_BYTES = 64 * 1024
_LMDB_MAP = 1 << 28


def _layout(nbytes: int):
    from tallyio.state import StateLayout
    # 64-byte records: seq + 7 fields (reserves as lo/hi words, block, log index, spare)
    fields = [("reserve0_lo", "u8"), ("reserve0_hi", "u8"), ("reserve1_lo", "u8"),
              ("reserve1_hi", "u8"), ("block", "u8"), ("log_index", "u8"), ("spare", "u8")]
    return StateLayout(1, {"pools": (fields, nbytes // 64)})


class _Tallyio:
    """A 64 KiB GlobalState, one worker's LocalState and a checkpoint file."""

    def __init__(self, policy: str, nbytes: int = STATE_BYTES) -> None:
        from tallyio.state import CheckpointFile, GlobalState
        self.dir = tempfile.mkdtemp(prefix="tallyio-bench-state-")
        self.state = GlobalState(_layout(nbytes))
        self.local = self.state.local(counters=0, capacity=1024)
        self.ckpt = CheckpointFile(os.path.join(self.dir, "s.ckpt"), self.state, policy=policy)
        assert self.state.nbytes == nbytes

    def c_level(self, updates: int, iterations: int, full_copy: bool) -> np.ndarray:
        from tallyio.state._testing import bench_merge_checkpoint
        out = np.zeros((iterations, 2), dtype=np.uint64)
        bench_merge_checkpoint(self.state, self.local, self.ckpt, "pools", "reserve0_lo", updates,
                               iterations, out, full_copy)
        return out

    def python_level(self, updates: int, iterations: int, full_copy: bool) -> np.ndarray:
        out = np.zeros(iterations, dtype=np.int64)
        loc, st, ck = self.local, self.state, self.ckpt
        cap = st.layout.table("pools").capacity
        for i in range(iterations):
            for k in range(updates):
                loc.set("pools", (i * updates + k) % cap, "reserve0_lo", i)
            if full_copy:
                st.mark_all_dirty()
            t0 = perf_counter_ns()
            st.merge()
            ck.checkpoint(i)
            out[i] = perf_counter_ns() - t0
        return out

    def close(self) -> None:
        self.ckpt.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def _lmdb_times(sync: bool, iterations: int, value_bytes: int = STATE_BYTES, puts: int = 1) -> np.ndarray | None:
    try:
        import lmdb
    except ImportError:
        return None
    d = tempfile.mkdtemp(prefix="tallyio-bench-lmdb-")
    env = lmdb.open(d, map_size=_LMDB_MAP, sync=sync, metasync=sync)
    value = os.urandom(value_bytes)
    keys = [b"k%d" % k for k in range(max(puts, 1024))]
    out = np.zeros(iterations, dtype=np.int64)
    try:
        for i in range(iterations):
            t0 = perf_counter_ns()
            with env.begin(write=True) as txn:
                for k in range(puts):
                    txn.put(keys[(i * puts + k) % len(keys)], value)
            out[i] = perf_counter_ns() - t0
    finally:
        env.close()
        shutil.rmtree(d, ignore_errors=True)
    return out


def _sqlite_times(synchronous: str, iterations: int) -> np.ndarray:
    d = tempfile.mkdtemp(prefix="tallyio-bench-sqlite-")
    conn = sqlite3.connect(os.path.join(d, "s.db"), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("CREATE TABLE state (k INTEGER PRIMARY KEY, v BLOB)")
    value = os.urandom(STATE_BYTES)
    out = np.zeros(iterations, dtype=np.int64)
    try:
        for i in range(iterations):
            t0 = perf_counter_ns()
            conn.execute("BEGIN")
            conn.execute("INSERT OR REPLACE INTO state VALUES (1, ?)", (value,))
            conn.execute("COMMIT")
            out[i] = perf_counter_ns() - t0
    finally:
        conn.close()
        shutil.rmtree(d, ignore_errors=True)
    return out


def _p(samples: np.ndarray, q: float) -> float:
    return float(np.percentile(samples, q))


def _checkpoint_sections(mode: str, reps: int, n: int, n_sync: int) -> list:
    sections = []

    def no_sync(progress: Progress) -> list[Figure]:
        def mine_c() -> dict[str, float]:
            t = _Tallyio("none")
            try:
                t.c_level(16, 50, True)                         # warm both slots
                full = t.c_level(16, n, True)
                few = t.c_level(3, n, False)
            finally:
                t.close()
            total = full[:, 0] + full[:, 1]
            return {"full p50": _p(total, 50), "full p99": _p(total, 99),
                    "few p50": _p(few[:, 0] + few[:, 1], 50), "few ckpt p50": _p(few[:, 1], 50),
                    "few p99": _p(few[:, 0] + few[:, 1], 99)}

        samples = alternate([("tallyio", mine_c)], reps, progress)
        figs = figures_for("C level: merge + A/B checkpoint, 64 KiB, policy none", samples, [
            ("full p50", "merge 16 updates + checkpoint, every block dirty (full copy), p50"),
            ("full p99", "merge 16 updates + checkpoint, every block dirty (full copy), p99"),
            ("few p50", "merge 3 reserve updates + checkpoint (dirty blocks only), p50"),
            ("few p99", "merge 3 reserve updates + checkpoint (dirty blocks only), p99"),
            ("few ckpt p50", "checkpoint alone after 3 reserve updates, p50"),
        ], unit="ns/op", higher_is_better=False, targets={
            "full p50": [Target(10_000)], "full p99": [Target(25_000)],
            "few p50": [Target(1_000)], "few ckpt p50": [Target(1_000)]})
        return figs

    def vs_peers(progress: Progress) -> list[Figure]:
        def mine_py() -> dict[str, float]:
            t = _Tallyio("none")
            try:
                t.python_level(16, 20, True)
                full = t.python_level(16, n, True)
                few = t.python_level(3, n, False)
            finally:
                t.close()
            return {"full p50": _p(full, 50), "full p99": _p(full, 99), "few p50": _p(few, 50)}

        def lmdb_peer() -> dict[str, float]:
            full = _lmdb_times(False, n)
            few = _lmdb_times(False, n, value_bytes=64, puts=3)
            if full is None or few is None:
                return {}
            return {"full p50": _p(full, 50), "full p99": _p(full, 99), "few p50": _p(few, 50)}

        def sqlite_peer() -> dict[str, float]:
            full = _sqlite_times("OFF", n)
            return {"full p50": _p(full, 50), "full p99": _p(full, 99)}

        samples = alternate([("tallyio", mine_py), ("py-lmdb sync=False", lmdb_peer),
                             ("sqlite3 WAL synchronous=OFF", sqlite_peer)], reps, progress)
        return figures_for("Python level: 64 KiB state write, no fsync (survives kill -9)", samples, [
            ("full p50", "tallyio merge+checkpoint (full copy) vs lmdb put 64 KiB+commit / sqlite, p50"),
            ("full p99", "tallyio merge+checkpoint (full copy) vs lmdb put 64 KiB+commit / sqlite, p99"),
            ("few p50", "tallyio after 3 reserve updates vs lmdb 3 puts (64 B)+commit, p50"),
        ], unit="ns/op", higher_is_better=False,
            targets={"full p50": [Target(1.0, "py-lmdb sync=False")]})

    def durable(progress: Progress) -> list[Figure]:
        def mine() -> dict[str, float]:
            t = _Tallyio("sync")
            try:
                full = t.python_level(16, n_sync, True)
            finally:
                t.close()
            return {"p50": _p(full, 50)}

        def lmdb_peer() -> dict[str, float]:
            full = _lmdb_times(True, n_sync)
            return {} if full is None else {"p50": _p(full, 50)}

        def sqlite_peer() -> dict[str, float]:
            return {"p50": _p(_sqlite_times("FULL", n_sync), 50)}

        samples = alternate([("tallyio", mine), ("py-lmdb sync=True", lmdb_peer),
                             ("sqlite3 WAL synchronous=FULL", sqlite_peer)], reps, progress)
        return figures_for("Python level: 64 KiB state write, durable (msync/fsync)", samples, [
            ("p50", "tallyio merge+checkpoint policy=sync vs lmdb sync=True / sqlite FULL, p50"),
        ], unit="ns/op", higher_is_better=False)

    sections.append(("state: C-level merge + checkpoint", no_sync))
    sections.append(("state: checkpoint vs py-lmdb and sqlite3 (no fsync)", vs_peers))
    sections.append(("state: checkpoint vs py-lmdb and sqlite3 (durable)", durable))
    return sections


def _read_sections(reps: int, reads: int) -> list:
    def reads_section(progress: Progress) -> list[Figure]:
        from tallyio.state import GlobalState
        from tallyio.state._testing import bench_seqlock_read_ns
        st = GlobalState(_layout(STATE_BYTES))
        st.write("pools", 5, reserve0_lo=7, block=1)
        reader = st.field_reader("pools", "reserve0_lo")
        arr = np.arange(1024, dtype=np.uint64)

        def c_read() -> dict[str, float]:
            return {"c": bench_seqlock_read_ns(st, "pools", 5, reads * 10)[0]}

        def py_loop(fn: Callable[[int], object]) -> float:
            t0 = perf_counter_ns()
            for _ in range(reads):
                fn(5)
            return (perf_counter_ns() - t0) / reads

        def mine_py() -> dict[str, float]:
            get = st.get
            return {"py": py_loop(reader), "get": py_loop(lambda i: get("pools", i, "reserve0_lo"))}

        def numpy_peer() -> dict[str, float]:
            return {"py": py_loop(arr.__getitem__)}

        samples = alternate([("tallyio", c_read)], reps, progress)
        figs = figures_for("C level: seqlock read of one 64-byte record", samples,
                           [("c", "tio_seqlock_read, one record (nogil loop)")], unit="ns/op",
                           higher_is_better=False, targets={"c": [Target(50)]})
        samples = alternate([("tallyio", mine_py), ("numpy scalar arr[i]", numpy_peer)], reps, progress)
        figs += figures_for("Python level: read one field", samples, [
            ("py", "FieldReader(i) (seqlock) vs numpy uint64 arr[i]"),
            ("get", "GlobalState.get(table, i, field) (seqlock, name lookups)"),
        ], unit="ns/op", higher_is_better=False, targets={"py": [Target(1.0, "numpy scalar arr[i]")]})
        return figs

    return [("state: seqlock reads", reads_section)]


def _journal_sections(reps: int, n: int) -> list:
    def append_section(progress: Progress) -> list[Figure]:
        from tallyio.state import RecordType, RecordWriter
        payload = os.urandom(200)

        def mine() -> dict[str, float]:
            d = tempfile.mkdtemp(prefix="tallyio-bench-log-")
            try:
                with RecordWriter(os.path.join(d, "j.tlog"), chunk_size=16 << 20) as w:
                    append = w.append
                    t0 = perf_counter_ns()
                    for i in range(n):
                        append(RecordType.PENDING_TX, payload, i)
                    return {"append": (perf_counter_ns() - t0) / n}
            finally:
                shutil.rmtree(d, ignore_errors=True)

        def sqlite_peer() -> dict[str, float]:
            d = tempfile.mkdtemp(prefix="tallyio-bench-sqlite-")
            conn = sqlite3.connect(os.path.join(d, "j.db"), isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=OFF")
                conn.execute("CREATE TABLE j (seq INTEGER PRIMARY KEY, type INT, ts INT, payload BLOB)")
                t0 = perf_counter_ns()
                for i in range(n):
                    conn.execute("INSERT INTO j VALUES (?, ?, ?, ?)", (i, 1, i, payload))
                return {"append": (perf_counter_ns() - t0) / n}
            finally:
                conn.close()
                shutil.rmtree(d, ignore_errors=True)

        samples = alternate([("tallyio", mine), ("sqlite3 WAL synchronous=OFF autocommit insert", sqlite_peer)],
                            reps, progress)
        return figures_for("Python level: journal append, 200-byte record", samples,
                           [("append", "RecordWriter.append (policy none) vs sqlite insert")],
                           unit="ns/op", higher_is_better=False)

    return [("state: record log append", append_section)]


def _recovery_sections(reps: int, nbytes: int, tail: int) -> list:
    def recovery(progress: Progress) -> list[Figure]:
        from tallyio.state import RecordType, StateStore
        from tallyio.state._testing import Flag, seqlock_hammer

        layout = _layout(nbytes)
        records = layout.table("pools").capacity

        def apply(state, rec) -> None:
            state.add("pools", rec.seq % records, "reserve0_lo", 1)

        def mine() -> dict[str, float]:
            d = tempfile.mkdtemp(prefix="tallyio-bench-recovery-")
            try:
                store = StateStore(d, layout, apply, every_events=10**9, every_ms=1e9)
                seqlock_hammer(store.state, "pools", records, Flag(), records)   # every record written
                store.checkpoint()
                for i in range(tail):
                    store.record(RecordType.PENDING_TX, b"x" * 100, ts=i)
                store.abandon()
                t0 = time.perf_counter()
                again = StateStore(d, layout, apply)
                seconds = time.perf_counter() - t0
                assert again.recovery.replayed == tail
                again.abandon()
                return {"recovery": seconds * 1e9}
            finally:
                shutil.rmtree(d, ignore_errors=True)

        samples = alternate([("tallyio", mine)], reps, progress)
        return figures_for(f"Recovery: open + validate + replay, {nbytes >> 20} MiB state", samples,
                           [("recovery", f"StateStore open: {nbytes >> 20} MiB checkpoint validated "
                                         f"(CRC-32C per block) + {tail} journal records replayed")],
                           unit="ns/op", higher_is_better=False)

    return [("state: recovery", recovery)]


def sections(mode: str) -> list:
    """The state group's sections for ``mode`` (smoke, quick, full), in order."""
    reps = {"smoke": 2, "quick": 3, "full": 7}[mode]
    n = {"smoke": 50, "quick": 2000, "full": 10000}[mode]
    n_sync = {"smoke": 5, "quick": 50, "full": 200}[mode]
    reads = {"smoke": 1000, "quick": 200_000, "full": 1_000_000}[mode]
    appends = {"smoke": 200, "quick": 50_000, "full": 200_000}[mode]
    big = {"smoke": 1 << 20, "quick": 64 << 20, "full": 64 << 20}[mode]
    tail = {"smoke": 100, "quick": 10_000, "full": 10_000}[mode]
    return (_checkpoint_sections(mode, reps, n, n_sync) + _read_sections(reps, reads)
            + _journal_sections(reps, appends) + _recovery_sections(reps, big, tail))

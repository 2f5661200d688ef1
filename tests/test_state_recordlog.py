"""The record log (tallyio.state.recordlog): round trip, rotation, torn tails,
bad files, two writers, full disk, read-only directory."""
import os
import struct
import subprocess
import sys
import textwrap

import pytest

from tallyio.errors import (CorruptFileError, ForeignFileError, FutureVersionError,
                            ReadOnlyStateError, StateLockedError, StorageFullError, TallyioError)
from tallyio.state.recordlog import (HEADER_SIZE, MAX_PAYLOAD, RecordReader, RecordType,
                                     RecordWriter, read_records)


def _payload(i: int) -> bytes:
    return (b"%08d" % i) * (i % 37)


def test_round_trip_types_flags_timestamps(tmp_path):
    path = tmp_path / "a.tlog"
    with RecordWriter(path) as w:
        for i in range(500):
            assert w.append(RecordType(1 + i % 7), _payload(i), ts=10 * i, flags=i % 3) == i + 1
        assert w.append(0x8001, b"app-defined", ts=1) == 501
    records = read_records(path)
    assert [r.seq for r in records] == list(range(1, 502))
    for i, r in enumerate(records[:500]):
        assert (r.type, r.flags, r.ts, r.payload) == (RecordType(1 + i % 7), i % 3, 10 * i, _payload(i))
    assert records[-1].type == 0x8001 and records[-1].payload == b"app-defined"


def test_reopen_continues_sequence(tmp_path):
    path = tmp_path / "a.tlog"
    with RecordWriter(path) as w:
        w.append(RecordType.ACTION, b"one")
    with RecordWriter(path) as w:
        assert w.next_seq == 2
        w.append(RecordType.ACTION, b"two")
    assert [r.payload for r in read_records(path)] == [b"one", b"two"]


def test_growth_beyond_chunk_and_rotation(tmp_path, seed):
    import random
    rnd = random.Random(seed)
    path = tmp_path / "g.tlog"
    sizes = [rnd.randrange(0, 3000) for _ in range(2000)]
    with RecordWriter(path, chunk_size=4096, max_file_size=64 * 1024) as w:
        for i, n in enumerate(sizes):
            w.append(RecordType.PENDING_TX, bytes([i % 256]) * n)
    sealed = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("g.tlog."))
    sealed = [n for n in sealed if n[-1].isdigit()]
    assert len(sealed) > 10
    # every sealed file is trimmed to its records and within the size limit (+ one record)
    for name in sealed:
        assert (tmp_path / name).stat().st_size <= 64 * 1024 + 3100
    records = read_records(path)
    assert [len(r.payload) for r in records] == sizes
    for start in (1, 2, 999, 1500, 2000):
        assert [r.seq for r in RecordReader(path, from_seq=start)] == list(range(start, 2001))
    with RecordWriter(path, chunk_size=4096, max_file_size=64 * 1024) as w:
        assert w.remove_before(1000) > 0
    got = [r.seq for r in read_records(path)]
    assert got[0] <= 1000 and got[-1] == 2000 and got == list(range(got[0], 2001))


@pytest.mark.parametrize("damage", ["truncate", "flip_payload", "flip_crc", "flip_seq"])
def test_reader_stops_at_first_invalid_record_and_writer_resumes_there(tmp_path, damage):
    path = tmp_path / "t.tlog"
    offsets = []
    with RecordWriter(path) as w:
        for i in range(10):
            offsets.append(w._off)
            w.append(RecordType.SYNC_EVENT, b"x" * 40, ts=i)
    raw = bytearray(path.read_bytes())
    at = offsets[6]
    if damage == "truncate":
        raw = raw[:at + 30]
    elif damage == "flip_payload":
        raw[at + 30] ^= 0x01
    elif damage == "flip_crc":
        raw[at + 24 + 40] ^= 0x80
    else:
        raw[at + 8] ^= 0x02
    path.write_bytes(bytes(raw))
    reader = RecordReader(path)
    assert [r.seq for r in reader] == [1, 2, 3, 4, 5, 6]
    assert "torn or invalid" in reader.end_reason
    with RecordWriter(path) as w:       # the writer continues after record 6, over the torn one
        assert w.next_seq == 7
        w.append(RecordType.SYNC_EVENT, b"new", ts=99)
    records = read_records(path)
    assert [r.seq for r in records] == [1, 2, 3, 4, 5, 6, 7]
    assert records[-1].payload == b"new"


def test_foreign_truncated_and_future_files(tmp_path):
    foreign = tmp_path / "foreign.tlog"
    foreign.write_bytes(b"SQLite format 3\0" + bytes(100))
    with pytest.raises(ForeignFileError, match="not a tallyio record log"):
        read_records(foreign)
    with pytest.raises(ForeignFileError):
        RecordWriter(foreign)
    assert foreign.read_bytes().startswith(b"SQLite")      # untouched

    path = tmp_path / "ok.tlog"
    with RecordWriter(path) as w:
        w.append(RecordType.ACTION, b"a")
    good = path.read_bytes()

    path.write_bytes(good[:20])
    with pytest.raises(CorruptFileError, match="truncated header"):
        read_records(path)

    future = bytearray(good)
    struct.pack_into("<I", future, 8, 99)
    path.write_bytes(bytes(future))
    with pytest.raises(FutureVersionError, match="version 99"):
        read_records(path)
    with pytest.raises(FutureVersionError):
        RecordWriter(path)
    assert path.read_bytes() == bytes(future)               # untouched

    damaged = bytearray(good)
    damaged[30] ^= 0xFF
    path.write_bytes(bytes(damaged))
    with pytest.raises(CorruptFileError, match="checksum"):
        read_records(path)
    assert issubclass(CorruptFileError, (TallyioError, ValueError))


def test_bad_arguments_are_named(tmp_path):
    with RecordWriter(tmp_path / "b.tlog") as w:
        with pytest.raises(ValueError, match="record type"):
            w.append(0, b"")
        with pytest.raises(ValueError, match="record type"):
            w.append(70000, b"")
        with pytest.raises(TypeError, match="payload must be bytes-like"):
            w.append(1, "text")
        with pytest.raises(ValueError, match="ts must be"):
            w.append(1, b"", ts=-1)
        with pytest.raises(ValueError, match="exceeds"):
            w.append(1, memoryview(bytearray(MAX_PAYLOAD + 1)))
        with pytest.raises(ValueError, match="policy"):
            w.flush("always")
        assert w.append(1, b"ok") == 1          # nothing was consumed by the failures
    with pytest.raises(ValueError, match="flush_policy"):
        RecordWriter(tmp_path / "c.tlog", flush_policy="fast")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        RecordWriter(tmp_path / "missing" / "c.tlog")
    with pytest.raises(FileNotFoundError):
        read_records(tmp_path / "nothing.tlog")


def test_two_writers_in_one_process_and_across_processes(tmp_path):
    path = tmp_path / "l.tlog"
    with RecordWriter(path) as w:
        with pytest.raises(StateLockedError, match="another writer holds the lock"):
            RecordWriter(path)
        code = textwrap.dedent(f"""
            from tallyio.state.recordlog import RecordWriter
            from tallyio.errors import StateLockedError
            try:
                RecordWriter({str(path)!r})
            except StateLockedError as e:
                print("locked:", e)
        """)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert "locked:" in out.stdout, out.stderr
        w.append(1, b"still mine")
    with RecordWriter(path) as w2:        # released on close
        assert w2.next_seq == 2


@pytest.mark.parametrize("policy", ["none", "async", "sync"])
def test_flush_policies(tmp_path, policy):
    path = tmp_path / f"{policy}.tlog"
    with RecordWriter(path, flush_policy=policy, chunk_size=4096) as w:
        for i in range(300):
            w.append(RecordType.ACTION, b"z" * 50)
            if i % 50 == 0:
                w.flush()
        w.flush("sync")
    assert len(read_records(path)) == 300


def _run_child(code: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=120, **kw)


def test_full_disk_via_file_size_limit(tmp_path):
    """RLIMIT_FSIZE in a child stands in for a full disk: growth fails with
    EFBIG, the append is refused with StorageFullError and every record
    accepted before it reads back."""
    path = tmp_path / "full.tlog"
    out = _run_child(f"""
        import resource, signal
        from tallyio.state.recordlog import RecordWriter
        from tallyio.errors import StorageFullError
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # get EFBIG instead of a signal
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
        w = RecordWriter({str(path)!r}, chunk_size=16384)
        accepted = 0
        try:
            for i in range(100000):
                w.append(1, bytes([i % 256]) * 1000)
                accepted += 1
        except StorageFullError as e:
            print("full after", accepted, "|", e)
        try:
            w.append(1, b"x" * 1000)
        except StorageFullError:
            print("still full")
        w.append(1, b"small fits in the allocated tail") if w._off + 64 <= w._capacity else None
        w.close()
        print("ok")
    """)
    assert "ok" in out.stdout, out.stderr
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("full after")][0]
    accepted = int(line.split()[2])
    assert "still full" in out.stdout
    assert 40 <= accepted <= 64
    records = read_records(path)
    assert len(records) >= accepted
    assert [r.payload for r in records[:accepted]] == [bytes([i % 256]) * 1000 for i in range(accepted)]
    assert path.stat().st_size <= 64 * 1024


def test_read_only_directory():
    """A writer in a directory it may not write to gets ReadOnlyStateError.
    We run as root here (root ignores permissions), so the child drops to
    the unprivileged 'nobody' uid first."""
    import shutil
    import tempfile
    from pathlib import Path
    base = Path(tempfile.mkdtemp(prefix="tallyio-ro-"))   # pytest's tmp_path is 0700: nobody cannot enter it
    os.chmod(base, 0o755)
    ro = base / "ro"
    ro.mkdir()
    with RecordWriter(ro / "x.tlog") as w:
        w.append(1, b"kept")
    os.chmod(ro / "x.tlog", 0o644)
    os.chmod(ro, 0o555)
    code = f"""
        import os
        from tallyio.state.recordlog import RecordWriter, read_records
        from tallyio.errors import ReadOnlyStateError
        if os.geteuid() == 0:   # after the imports: root's Python install is not readable by nobody
            os.setgid(65534); os.setuid(65534)
        try:
            RecordWriter({str(ro / 'y.tlog')!r})
        except ReadOnlyStateError as e:
            print("read-only:", e)
        print([r.payload for r in read_records({str(ro / 'x.tlog')!r})])
    """
    out = _run_child(code, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    os.chmod(ro, 0o755)
    shutil.rmtree(base)
    assert "read-only:" in out.stdout, out.stdout + out.stderr
    assert "[b'kept']" in out.stdout
    assert issubclass(ReadOnlyStateError, PermissionError)
    assert issubclass(StorageFullError, OSError)
    assert HEADER_SIZE == 64


def test_rotation_happens_at_max_file_size_even_with_a_large_chunk(tmp_path):
    path = tmp_path / "r.tlog"
    with RecordWriter(path, chunk_size=1 << 20, max_file_size=16 * 1024) as w:
        for _ in range(1000):
            w.append(RecordType.ENGINE_EVENT, b"e" * 100)
    sealed = [p for p in tmp_path.iterdir() if p.name.startswith("r.tlog.0")]
    assert len(sealed) >= 5
    assert all(p.stat().st_size <= 16 * 1024 for p in sealed)
    assert path.stat().st_size <= 16 * 1024
    assert [r.seq for r in read_records(path)] == list(range(1, 1001))


def test_skip_to_starts_a_segment_at_a_later_sequence(tmp_path):
    path = tmp_path / "s.tlog"
    with RecordWriter(path) as w:
        w.skip_to(5)                          # empty active file: its header is rewritten
        assert w.append(1, b"a") == 5
        w.skip_to(9)                          # seals the active file, starts at 9
        assert w.append(1, b"b") == 9
        with pytest.raises(ValueError, match="must be >= next_seq"):
            w.skip_to(3)
    assert [r.seq for r in RecordReader(path, from_seq=9)] == [9]
    reader = RecordReader(path)
    assert [r.seq for r in reader] == [5] and reader.end_reason.startswith("gap")

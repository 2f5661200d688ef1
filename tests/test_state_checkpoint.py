"""The A/B checkpoint file: dirty-block copies, newest valid slot wins, bad
files, two writers, full disk, read-only directory, hooks, msync policies."""
import os
import struct
import subprocess
import sys
import textwrap
import time

import pytest

from tallyio.errors import (CorruptFileError, ForeignFileError, FutureVersionError,
                            LayoutMismatchError, ReadOnlyStateError, StateLockedError)
from tallyio.state import CheckpointFile, GlobalState, StateLayout, crc32c

LAYOUT = StateLayout(1, {
    "pools": ([("r0", "u8"), ("r1", "u8"), ("block", "u8")], 2000),   # 64 KB
    "pnl": ([("eth", "f8")], 4),
})


def _fill(st, k):
    for i in range(0, 2000, 7):
        st.write("pools", i, r0=i + k, r1=2 * i + k, block=k)


def test_crc32c_known_values():
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"") == 0
    assert crc32c(b"6789", crc32c(b"12345")) == 0xE3069283
    assert crc32c(bytes(32)) == 0x8A9136AA


def test_checkpoint_restore_round_trip_and_slot_alternation(tmp_path):
    st = GlobalState(LAYOUT)
    path = tmp_path / "s.ckpt"
    with CheckpointFile(path, st) as ck:
        assert ck.restore() is None and ck.active_slot == -1
        _fill(st, 1)
        assert ck.checkpoint(journal_seq=10) == 1 and ck.active_slot == 0
        _fill(st, 2)
        assert ck.checkpoint(journal_seq=20, hooks={"s/a": b"\x00" * 100}) == 2 and ck.active_slot == 1
        assert ck.slots() == [(1, None), (2, None)]
        expected = st.snapshot()
    st2 = GlobalState(LAYOUT)
    with CheckpointFile(path, st2) as ck2:
        info = ck2.restore()
        assert (info.seq, info.journal_seq, info.slot, info.hooks) == (2, 20, 1, {"s/a": b"\x00" * 100})
        assert st2.snapshot() == expected
        # checkpoints go on from the restored sequence, into the other slot
        st2.write("pnl", 0, eth=1.5)
        assert ck2.checkpoint(journal_seq=21) == 3 and ck2.active_slot == 0
    st3 = GlobalState(LAYOUT)
    with CheckpointFile(path, st3) as ck3:
        assert ck3.restore().seq == 3 and st3.get("pnl", 0, "eth") == 1.5


def test_dirty_blocks_only_changed_ones_are_copied(tmp_path):
    st = GlobalState(LAYOUT)
    with CheckpointFile(tmp_path / "d.ckpt", st) as ck:
        nblocks = st.dirty_blocks(0)
        assert nblocks == st.dirty_blocks(1) == -(-LAYOUT.nbytes // st.block_size)
        ck.checkpoint()                      # slot 0: full copy
        assert st.dirty_blocks(0) == 0 and st.dirty_blocks(1) == nblocks
        ck.checkpoint()                      # slot 1: full copy
        assert st.dirty_blocks(0) == st.dirty_blocks(1) == 0
        st.write("pools", 0, r0=1)           # one record: one block in both bitmaps
        st.write("pools", 1000, r0=1)
        assert st.dirty_blocks(0) == st.dirty_blocks(1) == 2
        ck.checkpoint()                      # -> slot 0
        assert st.dirty_blocks(0) == 0 and st.dirty_blocks(1) == 2
        ck.checkpoint()                      # slot 1 still needed those two blocks
        assert st.dirty_blocks(1) == 0
        # every slot is a faithful copy although only changed blocks were copied
        snap = st.snapshot()
        with open(ck.path, "rb") as f:
            raw = f.read()
        off = ck.offsets()
        for slot in ("slot0", "slot1"):
            start = off[slot] + off["data"]
            assert raw[start:start + len(snap)] == snap


def _flip(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x40]))


@pytest.mark.parametrize("where", ["data", "table", "header", "hooks"])
def test_newest_slot_damaged_falls_back_to_the_other(tmp_path, where):
    st = GlobalState(LAYOUT)
    path = tmp_path / "f.ckpt"
    with CheckpointFile(path, st) as ck:
        _fill(st, 1)
        ck.checkpoint(journal_seq=1, hooks={"k": b"v1"})
        first = st.snapshot()
        _fill(st, 2)
        ck.checkpoint(journal_seq=2, hooks={"k": b"v2"})
        off = ck.offsets()
    slot1 = off["slot1"]
    _flip(path, slot1 + {"data": off["data"] + 5000, "table": off["table"] + 8,
                         "header": 9, "hooks": off["hooks"] + 2}[where])
    st2 = GlobalState(LAYOUT)
    with CheckpointFile(path, st2) as ck2:
        reasons = ck2.slots()
        assert reasons[0] == (1, None) and reasons[1][0] is None
        info = ck2.restore()
        assert (info.seq, info.journal_seq, info.hooks) == (1, 1, {"k": b"v1"})
        assert st2.snapshot() == first


def test_both_slots_damaged_is_a_named_error_and_the_file_is_untouched(tmp_path):
    st = GlobalState(LAYOUT)
    path = tmp_path / "b.ckpt"
    with CheckpointFile(path, st) as ck:
        ck.checkpoint()
        ck.checkpoint()
        off = ck.offsets()
    _flip(path, off["slot0"] + off["data"] + 100)
    _flip(path, off["slot1"] + off["data"] + 200)
    before = path.read_bytes()
    with CheckpointFile(path, GlobalState(LAYOUT)) as ck2:
        with pytest.raises(CorruptFileError, match="slot 0: block 0 checksum mismatch; slot 1: block 0"):
            ck2.restore()
    assert path.read_bytes() == before


def test_foreign_truncated_future_and_mismatched_files(tmp_path):
    st = GlobalState(LAYOUT)
    foreign = tmp_path / "foreign.ckpt"
    foreign.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(5000))
    with pytest.raises(ForeignFileError, match="not a tallyio checkpoint"):
        CheckpointFile(foreign, st)
    assert foreign.read_bytes().startswith(b"\x89PNG")

    path = tmp_path / "good.ckpt"
    with CheckpointFile(path, st) as ck:
        ck.checkpoint()
    good = path.read_bytes()

    path.write_bytes(good[:40])
    with pytest.raises(CorruptFileError, match="truncated checkpoint header"):
        CheckpointFile(path, st)
    path.write_bytes(good[:len(good) // 2])
    with pytest.raises(CorruptFileError, match="truncated"):
        CheckpointFile(path, st)

    def patched(offset, fmt, value):
        raw = bytearray(good)
        struct.pack_into(fmt, raw, offset, value)
        struct.pack_into("<I", raw, 64, __import__("zlib").crc32(bytes(raw[:64])))
        return bytes(raw)

    path.write_bytes(patched(8, "<I", 2))                 # format version 2
    with pytest.raises(FutureVersionError, match="format version 2"):
        CheckpointFile(path, st)
    path.write_bytes(patched(12, "<I", 7))                # layout version 7
    with pytest.raises(FutureVersionError, match="layout version 7"):
        CheckpointFile(path, st)
    assert path.read_bytes() == patched(12, "<I", 7)      # untouched

    path.write_bytes(good)
    other = GlobalState(StateLayout(1, {"pools": ([("r0", "u8")], 10)}))
    with pytest.raises(LayoutMismatchError, match="migrate it"):
        CheckpointFile(path, other)
    with pytest.raises(LayoutMismatchError):
        CheckpointFile(path, st, hooks_capacity=4096)

    damaged = bytearray(good)
    damaged[20] ^= 1
    path.write_bytes(bytes(damaged))
    with pytest.raises(CorruptFileError, match="header checksum"):
        CheckpointFile(path, st)


def test_two_writers_get_state_locked(tmp_path):
    st = GlobalState(LAYOUT)
    path = tmp_path / "l.ckpt"
    with CheckpointFile(path, st) as ck:
        ck.checkpoint()
        with pytest.raises(StateLockedError, match="another writer holds the lock"):
            CheckpointFile(path, GlobalState(LAYOUT))
        code = textwrap.dedent(f"""
            from tallyio.state import CheckpointFile, GlobalState, StateLayout
            from tallyio.errors import StateLockedError
            layout = StateLayout(1, {{"pools": ([("r0", "u8"), ("r1", "u8"), ("block", "u8")], 2000),
                                     "pnl": ([("eth", "f8")], 4)}})
            try:
                CheckpointFile({str(path)!r}, GlobalState(layout))
            except StateLockedError as e:
                print("locked:", e)
        """)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert "locked:" in out.stdout, out.stderr
    with CheckpointFile(path, GlobalState(LAYOUT)) as again:
        assert again.restore() is not None


def test_hooks_too_large_writes_nothing(tmp_path):
    st = GlobalState(LAYOUT)
    with CheckpointFile(tmp_path / "h.ckpt", st, hooks_capacity=4096) as ck:
        ck.checkpoint(journal_seq=1, hooks={"a": b"small"})
        with pytest.raises(ValueError, match="hooks_capacity"):
            ck.checkpoint(journal_seq=2, hooks={"a": b"x" * 5000})
        with pytest.raises(TypeError, match="must be bytes"):
            ck.checkpoint(journal_seq=2, hooks={"a": "text"})
        assert ck.seq == 1 and ck.slots()[0] == (1, None)
    with CheckpointFile(tmp_path / "h.ckpt", GlobalState(LAYOUT), hooks_capacity=4096) as ck:
        assert ck.restore().hooks == {"a": b"small"}


@pytest.mark.parametrize("policy", ["async", "sync"])
def test_msync_policies(tmp_path, policy):
    st = GlobalState(LAYOUT)
    with CheckpointFile(tmp_path / "p.ckpt", st, policy=policy) as ck:
        published = []
        deadline = time.monotonic() + 60
        while len(published) < 20 and time.monotonic() < deadline:
            _fill(st, len(published))
            seq = ck.checkpoint(journal_seq=len(published))
            if seq:
                published.append(seq)
            elif policy == "async":
                time.sleep(0.001)          # deferred: the previous one is not on disk yet
        assert published == list(range(1, 21))
        if policy == "async":
            while ck.synced_seq < 20 and time.monotonic() < deadline:
                time.sleep(0.001)
        assert ck.synced_seq == 20 or policy == "sync"
        snap = st.snapshot()
    st2 = GlobalState(LAYOUT)
    with CheckpointFile(tmp_path / "p.ckpt", st2) as ck2:
        assert ck2.restore().seq == 20 and st2.snapshot() == snap
    with pytest.raises(ValueError, match="policy"):
        CheckpointFile(tmp_path / "q.ckpt", st, policy="fast")


def _run_child(code, **kw):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=120, **kw)


def test_full_disk_creation_fails_cleanly_and_checkpoints_never_need_space(tmp_path):
    """RLIMIT_FSIZE in a child stands in for a full disk. Creating a file
    larger than the limit raises StorageFullError and leaves nothing behind;
    an existing (preallocated) checkpoint file keeps working when no byte
    more can be written."""
    small = tmp_path / "small.ckpt"
    with CheckpointFile(small, GlobalState(StateLayout(1, {"t": ([("a", "u8")], 4)})),
                        hooks_capacity=0) as ck:
        ck.checkpoint(journal_seq=1)
    out = _run_child(f"""
        import os, resource, signal
        from tallyio.state import CheckpointFile, GlobalState, StateLayout
        from tallyio.errors import StorageFullError
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100 * 1024, 100 * 1024))
        big = StateLayout(1, {{"t": ([("a", "u8")], 100000)}})
        try:
            CheckpointFile({str(tmp_path / 'big.ckpt')!r}, GlobalState(big))
        except StorageFullError as e:
            print("full:", e)
        print("left:", sorted(os.listdir({str(tmp_path)!r})))
        st = GlobalState(StateLayout(1, {{"t": ([("a", "u8")], 4)}}))
        ck = CheckpointFile({str(small)!r}, st, hooks_capacity=0)
        print("restored", ck.restore().seq)
        for i in range(50):
            st.write("t", i % 4, a=i)
            ck.checkpoint(journal_seq=i)
        ck.close()
        print("ok", st.get("t", 1, "a"))
    """)
    assert "full:" in out.stdout, out.stdout + out.stderr
    left = [ln for ln in out.stdout.splitlines() if ln.startswith("left:")][0]
    assert "big.ckpt'" not in left and "big.ckpt.tmp" not in left   # only its lock file stays
    assert "restored 1" in out.stdout and "ok 49" in out.stdout
    st = GlobalState(StateLayout(1, {"t": ([("a", "u8")], 4)}))
    with CheckpointFile(small, st, hooks_capacity=0) as ck:
        assert ck.restore().seq == 51 and st.get("t", 1, "a") == 49


def test_read_only_directory():
    import shutil
    import tempfile
    from pathlib import Path
    base = Path(tempfile.mkdtemp(prefix="tallyio-ro-"))   # pytest's tmp_path is 0700: nobody cannot enter it
    os.chmod(base, 0o755)
    ro = base / "ro"
    ro.mkdir()
    os.chmod(ro, 0o555)
    try:
        out = _run_child(f"""
            import os
            from tallyio.state import CheckpointFile, GlobalState, StateLayout
            from tallyio.errors import ReadOnlyStateError
            st = GlobalState(StateLayout(1, {{"t": ([("a", "u8")], 4)}}))
            if os.geteuid() == 0:   # root ignores permissions: drop to nobody (after the imports)
                os.setgid(65534); os.setuid(65534)
            try:
                CheckpointFile({str(ro / 's.ckpt')!r}, st)
            except ReadOnlyStateError as e:
                print("read-only:", e)
        """)
        assert "read-only:" in out.stdout, out.stdout + out.stderr
        assert os.listdir(ro) == []
    finally:
        os.chmod(ro, 0o755)
        shutil.rmtree(base)
    assert issubclass(ReadOnlyStateError, PermissionError)

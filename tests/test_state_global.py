"""Global state (seqlock records, one writer), thread-local state and the merge."""
import threading

import pytest

from conftest import run_threads, scaled
from tallyio.errors import QueueFullError, RoleError
from tallyio.state import ENGINE_LAYOUT, GlobalState, StateLayout
from tallyio.state._testing import (Flag, merge_until, push_adds, seqlock_check_reads,
                                    seqlock_hammer)

LAYOUT = StateLayout(1, {
    "pools": ([("r0", "u8"), ("r1", "u8"), ("delta", "i8"), ("price", "f8")], 100),
    "counters": ([("value", "u8")], 8),
})


def test_layout_offsets_dtypes_and_validation():
    assert [t.name for t in ENGINE_LAYOUT.tables] == ["pools", "nonces", "positions", "breakers",
                                                      "pnl", "counters"]
    for t in ENGINE_LAYOUT.tables:
        assert t.offset % 128 == 0
        assert ENGINE_LAYOUT.dtype(t.name).itemsize == t.record_bytes
    assert LAYOUT.field_word("pools", "delta") == 3
    other = StateLayout(1, {"pools": ([("r0", "u8")], 100)})
    assert other.fingerprint != LAYOUT.fingerprint
    with pytest.raises(ValueError, match="kind must be one of"):
        StateLayout(1, {"t": ([("a", "u4")], 1)})
    with pytest.raises(ValueError, match="invalid or repeated"):
        StateLayout(1, {"t": ([("seq", "u8")], 1)})
    with pytest.raises(ValueError, match="capacity"):
        StateLayout(1, {"t": ([("a", "u8")], 0)})
    with pytest.raises(ValueError, match="layout version"):
        StateLayout(0, {"t": ([("a", "u8")], 1)})
    with pytest.raises(KeyError, match="no table 'nope'"):
        LAYOUT.table("nope")
    with pytest.raises(KeyError, match="has no field 'x'"):
        LAYOUT.field_word("pools", "x")


def test_write_read_get_view_round_trip():
    st = GlobalState(LAYOUT)
    st.write("pools", 7, r0=2**64 - 1, r1=5, delta=-3, price=1.25)
    rec = st.read("pools", 7)
    assert (int(rec["r0"]), int(rec["r1"]), int(rec["delta"]), float(rec["price"])) == (2**64 - 1, 5, -3, 1.25)
    assert int(rec["seq"]) == 2                  # one write: odd then even
    st.write("pools", 7, r1=6)                   # the other fields keep their values
    assert st.get("pools", 7, "r0") == 2**64 - 1 and st.get("pools", 7, "r1") == 6
    st.add("pools", 7, "delta", -10)
    st.add("pools", 7, "price", 0.5)
    st.add("pools", 7, "r1", 4)
    assert (st.get("pools", 7, "delta"), st.get("pools", 7, "price"), st.get("pools", 7, "r1")) == (-13, 1.75, 10)
    view = st.view("pools")
    assert view.flags.writeable is False
    assert int(view["r1"][7]) == 10 and int(view["seq"][7]) == 10   # five writes
    with pytest.raises(ValueError):
        view["r1"][7] = 0
    reader = st.field_reader("pools", "r1")
    assert reader(7) == 10 and reader(0) == 0
    assert st.field_reader("pools", "delta")(7) == -13
    snap = st.snapshot()
    assert len(snap) == st.nbytes == LAYOUT.nbytes


def test_bad_input_is_named_and_changes_nothing():
    st = GlobalState(LAYOUT)
    st.write("pools", 1, r0=1)
    before = st.snapshot()
    with pytest.raises(KeyError, match="no table 'pool'"):
        st.write("pool", 1, r0=2)
    with pytest.raises(KeyError, match="has no field 'r2'"):
        st.write("pools", 1, r0=2, r2=3)
    with pytest.raises(IndexError, match="out of range 0..99"):
        st.write("pools", 100, r0=2)
    with pytest.raises(TypeError, match="index must be an int"):
        st.get("pools", "1", "r0")
    with pytest.raises(ValueError, match=r"pools.r0 must be in 0..2\*\*64-1"):
        st.write("pools", 1, r0=-1)
    with pytest.raises(ValueError, match="pools.delta must be in"):
        st.write("pools", 1, delta=2**63)
    with pytest.raises(TypeError, match="integer field"):
        st.write("pools", 1, r0=1.5)
    with pytest.raises(TypeError, match="float64 field"):
        st.write("pools", 1, price="1")
    with pytest.raises(IndexError):
        st.field_reader("pools", "r0")(100)
    mv = memoryview(st)
    assert mv.readonly
    with pytest.raises(TypeError):
        mv[0:1] = b"x"
    mv.release()
    assert st.snapshot() == before
    with pytest.raises(TypeError, match="StateLayout"):
        GlobalState({"pools": 1})


def test_single_writer_role():
    st = GlobalState(LAYOUT)
    st.write("pools", 0, r0=1)
    seen = []
    done = threading.Event()

    def other():
        try:
            st.write("pools", 0, r0=2)
        except RoleError as exc:
            seen.append(str(exc))
        # readers are fine from any thread
        seen.append(st.get("pools", 0, "r0"))
        done.set()

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert "GlobalState writer" in seen[0] and seen[1] == 1


def test_local_state_merge_set_add_counters():
    st = GlobalState(LAYOUT)
    loc = st.local(counters=8, capacity=16, scratch_bytes=256)
    assert loc.scratch.nbytes == 256
    loc.set("pools", 3, "r0", 10)
    loc.add("pools", 3, "r0", 5)
    loc.add("pools", 3, "delta", -2)
    loc.add("pools", 3, "price", 0.25)
    loc.count(1, 7)
    loc.count(1)
    assert loc.pending == 4 and loc.counter(1) == 8
    assert st.get("pools", 3, "r0") == 0
    assert st.merge() == 5
    assert (st.get("pools", 3, "r0"), st.get("pools", 3, "delta"), st.get("pools", 3, "price")) == (15, -2, 0.25)
    assert st.get("counters", 1, "value") == 8
    loc.count(1, 2)
    assert st.merge() == 1 and st.get("counters", 1, "value") == 10      # only the delta is folded
    for _ in range(16):
        loc.add("pools", 0, "r1", 1)
    with pytest.raises(QueueFullError, match="the update was not queued"):
        loc.add("pools", 0, "r1", 1)
    st.merge()
    assert st.get("pools", 0, "r1") == 16                                # exactly the accepted ones
    with pytest.raises(IndexError):
        loc.count(8)
    with pytest.raises(KeyError):
        loc.set("pools", 0, "nope", 1)
    with pytest.raises(ValueError):
        st.local(capacity=1)


@pytest.mark.concurrency
def test_seqlock_no_torn_reads_nogil(seed):
    """A nogil writer hammers 16 records (every word of a write derived from
    one counter) while a nogil reader on another thread seqlock-reads random
    records and checks each is whole, its sequence matches the number of
    writes its data says happened, and versions never go back."""
    layout = StateLayout(1, {"t": ([(f"w{i}", "u8") for i in range(7)], 16)})
    st = GlobalState(layout)
    flag = Flag()
    reads = scaled(3_000_000, minimum=200_000)
    writes, (torn, done_reads, retries, changes) = run_threads(
        (seqlock_hammer, (st, "t", 16, flag, 2**62)),
        (seqlock_check_reads, (st, "t", 16, reads, flag, seed)))
    print(f"writes={writes} reads={done_reads} retries={retries} changes_seen={changes}")
    assert torn == 0
    assert done_reads == reads
    assert writes > 0
    # the two really overlapped: the reader saw writes in progress or new versions
    assert retries > 0 or changes > 16


@pytest.mark.concurrency
def test_local_state_concurrent_merge_conserves_every_update():
    """Two nogil workers queue +1 updates into their LocalStates while the
    writer merges in a nogil loop: every update lands exactly once."""
    st = GlobalState(LAYOUT)
    locs = [st.local(counters=1, capacity=256) for _ in range(2)]
    n = scaled(300_000, minimum=20_000)
    flag = Flag()

    def worker(loc):
        try:
            return push_adds(loc, "pools", "r0", 100, n)
        finally:
            flag.raise_()

    pushed_a, pushed_b, applied = run_threads((worker, (locs[0],)), (worker, (locs[1],)),
                                              (merge_until, (st, flag, 2)))
    assert pushed_a == pushed_b == n
    total = sum(st.get("pools", i, "r0") for i in range(100))
    assert total == 2 * n
    per_record = [st.get("pools", i, "r0") for i in range(100)]
    assert per_record == [2 * (n // 100 + (1 if i < n % 100 else 0)) for i in range(100)]
    assert st.get("counters", 0, "value") == 2 * n
    assert applied >= 2 * n

"""StateStore: journal + apply + checkpoints + strategy hooks; recovery replays
exactly the journal after the checkpoint."""
import time

import pytest

from tallyio.errors import StateLockedError
from tallyio.state import RecordType, StateLayout, StateStore, read_records

LAYOUT = StateLayout(1, {"acc": ([("sum", "u8"), ("last", "u8")], 8),
                         "counters": ([("value", "u8")], 2)})


def apply(state, rec):
    v = int.from_bytes(rec.payload, "little")
    state.add("acc", v % 8, "sum", v)
    state.write("acc", v % 8, last=rec.seq)


class Strategy:
    def __init__(self, name):
        self.name = name
        self.memory = {}
        self.loaded = None

    def on_save(self):
        return dict(self.memory)

    def on_load(self, state):
        self.loaded = state


def _expected(values):
    sums, last = [0] * 8, [0] * 8
    for seq, v in enumerate(values, start=1):
        sums[v % 8] += v
        last[v % 8] = seq
    return sums, last


def _state_of(store):
    return ([store.state.get("acc", i, "sum") for i in range(8)],
            [store.state.get("acc", i, "last") for i in range(8)])


@pytest.mark.parametrize("policy", ["none", "sync"])
def test_crash_without_final_checkpoint_replays_the_tail(tmp_path, policy):
    values = [(i * 37) % 101 for i in range(1, 300)]
    store = StateStore(tmp_path, LAYOUT, apply, every_events=50, every_ms=3600_000, policy=policy)
    assert store.recovery.checkpoint_seq == 0 and store.recovery.replayed == 0
    for v in values:
        store.record(RecordType.ENGINE_EVENT, v.to_bytes(2, "little"))
    assert store.checkpoint_seq == len(values) // 50
    store.abandon()
    again = StateStore(tmp_path, LAYOUT, apply, every_events=50, every_ms=3600_000, policy=policy)
    rec = again.recovery
    assert rec.checkpoint_journal_seq == 250 and rec.replayed == len(values) - 250
    assert rec.last_journal_seq == len(values)
    assert _state_of(again) == _expected(values)
    # and it goes on: sequence numbers continue, a clean close checkpoints everything
    again.record(RecordType.ENGINE_EVENT, (5).to_bytes(2, "little"))
    again.close()
    third = StateStore(tmp_path, LAYOUT, apply)
    assert third.recovery.replayed == 0 and third.recovery.checkpoint_journal_seq == len(values) + 1
    assert _state_of(third) == _expected(values + [5])
    third.close()
    assert [r.seq for r in read_records(tmp_path / "journal.tlog")] == list(range(1, len(values) + 2))


def test_strategy_hooks_ride_along(tmp_path):
    a, b = Strategy("arb"), Strategy("liq")
    store = StateStore(tmp_path, LAYOUT, apply, strategies=[a, b], every_events=1)
    a.memory = {"cursor": b"\x01\x02", "seen": b"x" * 100}
    b.memory = {"cursor": b"\x09"}
    store.record(RecordType.ACTION, b"\x03")
    store.abandon()
    a2, b2, c2 = Strategy("arb"), Strategy("liq"), Strategy("new")
    again = StateStore(tmp_path, LAYOUT, apply, strategies=[a2, b2, c2])
    assert a2.loaded == {"cursor": b"\x01\x02", "seen": b"x" * 100}
    assert b2.loaded == {"cursor": b"\x09"} and c2.loaded == {}
    again.close()


def test_checkpoint_every_ms_and_local_state_merged(tmp_path):
    store = StateStore(tmp_path, LAYOUT, apply, every_events=10**9, every_ms=1)
    loc = store.state.local(counters=2)
    loc.count(1, 3)
    store.record(RecordType.ENGINE_EVENT, b"\x01")
    time.sleep(0.01)
    store.record(RecordType.ENGINE_EVENT, b"\x02")      # due by time: checkpoint (merges first)
    assert store.checkpoint_seq >= 1
    assert store.state.get("counters", 1, "value") == 3
    store.abandon()
    again = StateStore(tmp_path, LAYOUT, apply)
    assert again.state.get("counters", 1, "value") == 3
    again.close()


def test_bad_arguments_and_second_store(tmp_path):
    with pytest.raises(TypeError, match="apply must be callable"):
        StateStore(tmp_path, LAYOUT, None)
    with pytest.raises(ValueError, match="every_events"):
        StateStore(tmp_path, LAYOUT, apply, every_events=0)
    with pytest.raises(ValueError, match="every_ms"):
        StateStore(tmp_path, LAYOUT, apply, every_ms=0)
    with StateStore(tmp_path, LAYOUT, apply) as store:
        with pytest.raises(StateLockedError):
            StateStore(tmp_path, LAYOUT, apply)
        store.record(RecordType.ENGINE_EVENT, b"\x07")
    with StateStore(tmp_path, LAYOUT, apply) as again:
        assert again.state.get("acc", 7, "sum") == 7


def test_hand_the_writer_role_to_the_engine_thread(tmp_path):
    import threading

    from tallyio.errors import RoleError
    store = StateStore(tmp_path, LAYOUT, apply)          # opened (and restored) on this thread
    out = []

    def engine():
        try:
            store.record(RecordType.ENGINE_EVENT, b"\x01")
        except RoleError:
            out.append("refused")
        store.claim_writer()
        store.record(RecordType.ENGINE_EVENT, b"\x02")
        store.checkpoint()
        out.append(store.state.get("acc", 2, "sum"))

    t = threading.Thread(target=engine)
    t.start()
    t.join()
    assert out == ["refused", 2]
    # the refused event was not journaled
    store.claim_writer()
    store.abandon()
    again = StateStore(tmp_path, LAYOUT, apply)
    assert again.state.get("acc", 1, "sum") == 0 and again.state.get("acc", 2, "sum") == 2
    assert again.recovery.last_journal_seq == 1
    again.close()


def test_apply_that_raises_poisons_the_store_until_reopened(tmp_path):
    from tallyio.errors import JournalApplyError
    calls = []

    def picky(state, rec):
        calls.append(rec.seq)
        if rec.payload == b"bad" and len(calls) < 3:
            raise ValueError("cannot decode")
        apply(state, rec)

    store = StateStore(tmp_path, LAYOUT, picky, every_events=1)
    store.record(RecordType.ENGINE_EVENT, b"\x01")
    with pytest.raises(JournalApplyError, match="journal record 2 .* ValueError: cannot decode"):
        store.record(RecordType.ENGINE_EVENT, b"bad")
    with pytest.raises(JournalApplyError):
        store.record(RecordType.ENGINE_EVENT, b"\x02")
    with pytest.raises(JournalApplyError):
        store.checkpoint()
    store.close()                               # no checkpoint of the inconsistent state
    again = StateStore(tmp_path, LAYOUT, picky)  # replays record 2 (picky accepts it now)
    assert again.recovery.checkpoint_journal_seq == 1 and again.recovery.replayed == 1
    again.close()


def test_journal_shorter_than_checkpoint_continues_after_it(tmp_path):
    """What a power loss can leave under policy async: the checkpoint on disk,
    the journal's unsynced tail not. Simulated by cutting the journal."""
    store = StateStore(tmp_path, LAYOUT, apply, every_events=10**9, every_ms=3600_000)
    offsets = []
    for v in range(1, 11):
        offsets.append(store.journal._off)
        store.record(RecordType.ENGINE_EVENT, bytes([v]))
    store.checkpoint()
    store.abandon()
    journal = tmp_path / "journal.tlog"
    with open(journal, "r+b") as f:
        f.truncate(offsets[5])                       # records 6..10 lost
    again = StateStore(tmp_path, LAYOUT, apply)
    assert again.recovery.checkpoint_journal_seq == 10 and again.recovery.replayed == 0
    assert again.journal.next_seq == 11
    assert again.record(RecordType.ENGINE_EVENT, bytes([11])) == 11
    again.abandon()
    third = StateStore(tmp_path, LAYOUT, apply)
    assert third.recovery.replayed == 1 and third.recovery.last_journal_seq == 11
    assert _state_of(third) == _expected(list(range(1, 12)))
    third.close()


def test_tick_checkpoints_merged_worker_updates_without_events(tmp_path):
    store = StateStore(tmp_path, LAYOUT, apply, every_ms=1)
    loc = store.state.local(counters=1)
    loc.count(0, 9)
    time.sleep(0.01)
    assert store.tick() == 1
    store.abandon()
    again = StateStore(tmp_path, LAYOUT, apply)
    assert again.state.get("counters", 0, "value") == 9
    again.close()

"""The pending-transaction ring: drop-oldest, counted, conservation under real
concurrency (nogil producers and consumers), bad input refused and counted."""
import numpy as np
import pytest

from conftest import run_threads, scaled
from tallyio.eth.types import PendingTx
from tallyio.mempool._ring import (MAX_INLINE_INPUT, PendingRing, close, stress_consume,
                                   stress_produce)


def make_tx(n, data=b"\x38\xed\x17\x39", to=b"\x02" * 20, **over):
    fields = dict(hash=n.to_bytes(32, "big"), sender=b"\x01" * 20, to=to, nonce=n,
                  value=10**18 + n, gas=200_000, max_fee_per_gas=2**200 + n,
                  max_priority_fee_per_gas=10**9, input=data, tx_type=2, received_ns=1000 + n)
    fields.update(over)
    return PendingTx(**fields)


def conserved(s):
    return s["received"] == s["processed"] + s["dropped"] + s["in_flight"]


def test_smoke_round_trip_keeps_every_field():
    ring = PendingRing(8)
    tx = make_tx(5, data=bytes(range(256)) * 3)
    assert ring.push(tx)
    assert ring.pop() == tx
    assert ring.pop() is None
    assert ring.push(make_tx(6, to=None))
    assert ring.pop().to is None


def test_full_ring_drops_the_oldest_and_counts_it():
    ring = PendingRing(4)
    for n in range(10):
        assert ring.push(make_tx(n))
    assert [ring.pop().nonce for _ in range(4)] == [6, 7, 8, 9]
    s = ring.stats()
    assert (s["received"], s["processed"], s["dropped_evicted"], s["in_flight"]) == (10, 4, 6, 0)
    assert conserved(s)


def test_oversized_calldata_is_refused_and_counted():
    ring = PendingRing(4)
    assert ring.push(make_tx(1, data=b"\x00" * MAX_INLINE_INPUT))
    assert not ring.push(make_tx(2, data=b"\x00" * (MAX_INLINE_INPUT + 1)))
    s = ring.stats()
    assert s["dropped_oversize"] == 1 and s["received"] == 2 and conserved(s)
    assert len(ring.pop().input) == MAX_INLINE_INPUT


@pytest.mark.parametrize("field,value,error", [
    ("hash", b"\x00" * 31, ValueError), ("sender", "0xab", TypeError),
    ("value", -1, ValueError), ("max_fee_per_gas", 2**256, ValueError),
    ("nonce", 2**64, ValueError), ("value", 1.5, TypeError),
])
def test_bad_field_names_the_field_and_queues_nothing(field, value, error):
    ring = PendingRing(4)
    with pytest.raises(error) as info:
        ring.push(make_tx(1, **{field: value}))
    assert field in str(info.value) or "range" in str(info.value)
    s = ring.stats()
    assert s["dropped_invalid"] == 1 and s["in_flight"] == 0 and conserved(s)


def test_capacity_is_checked():
    with pytest.raises(ValueError, match="capacity"):
        PendingRing(1)
    with pytest.raises(TypeError, match="capacity"):
        PendingRing("8")
    assert PendingRing(5).capacity == 8


@pytest.mark.concurrency
@pytest.mark.parametrize("producers,consumers,capacity", [(1, 2, 64), (2, 2, 16), (1, 1, 1024)])
def test_stress_every_record_seen_or_dropped_exactly_once(producers, consumers, capacity):
    ring = PendingRing(capacity)
    per = scaled(200_000)
    total = per * producers
    seen = [np.zeros(total, dtype=np.uint64) for _ in range(consumers)]
    dropped = [np.zeros(total, dtype=np.uint64) for _ in range(producers)]

    def produce_all(p):
        stress_produce(ring, p * per, per, dropped[p])

    def consume(c):
        return stress_consume(ring, seen[c])

    def producers_then_close():
        run_threads(*[(produce_all, (p,)) for p in range(producers)])
        close(ring)

    results = run_threads((producers_then_close, ()), *[(consume, (c,)) for c in range(consumers)])
    consumed = sum(r[0] for r in results[1:])
    assert sum(r[1] for r in results[1:]) == 0, "a consumer read a torn record"
    once = sum(seen) + sum(dropped)
    assert once.min() == 1 and once.max() == 1, "a record was lost or seen twice"
    s = ring.stats()
    assert s["received"] == total and s["processed"] == consumed
    assert s["dropped"] == s["dropped_evicted"] == int(sum(d.sum() for d in dropped))
    assert s["in_flight"] == 0 and conserved(s)

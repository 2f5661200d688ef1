"""The engine's OpportunityBridge: the push path from the pipeline's workers to the
consumer (tallyio.engine.engine.OpportunityBridge over OpportunityQueue's wake-up).

What is proved: a batch of pushes wakes a sleeping consumer once; no wake-up is lost
when many producers push (nogil) against a consumer that sleeps between every item
(ping-pong: a lost wake-up hangs a round, caught by a timeout); every item is seen
exactly once and ``received == taken + dropped + in_flight``; drops (drop-oldest) are
counted; end() and stop() wake a sleeping consumer (async and sync faces); a
cancelled or timed-out wait leaves nothing armed.
"""
from __future__ import annotations

import asyncio
import threading
import time

import pytest

from tallyio.engine.engine import OpportunityBridge
from tallyio.mempool import OpportunityQueue

from conftest import run_threads, scaled


def _conserved(queue: OpportunityQueue, bridge: OpportunityBridge) -> dict:
    q = queue.stats()
    assert q["received"] == q["processed"] + q["dropped"] + q["in_flight"], q
    assert q["processed"] == bridge.taken
    return q


def test_a_batch_of_pushes_wakes_the_sleeping_consumer_once():
    queue = OpportunityQueue(1024)
    bridge = OpportunityBridge(queue)

    async def main():
        loop = asyncio.get_running_loop()
        first = asyncio.ensure_future(bridge.get())
        await asyncio.sleep(0)                          # it found the queue empty and sleeps
        assert bridge.sleeps == 1 and not first.done()
        # 200 pushes from another thread, nogil, each followed by the wake-up signal
        await loop.run_in_executor(None, queue._push_synthetic, 200, 1000)
        got = [await first]
        while len(got) < 200:
            got.append(await bridge.get())
        return [op.received_ns for op in got]

    seen = asyncio.run(main())
    assert seen == list(range(1000, 1200))              # in order, each once
    assert queue.stats()["wakes"] == 1                  # one eventfd write for the whole batch
    assert bridge.wakes == 1 and bridge.sleeps == 1 and bridge.batches == 1
    _conserved(queue, bridge)


def test_pushes_while_the_consumer_is_busy_cost_no_wake_up():
    queue = OpportunityQueue(64)
    bridge = OpportunityBridge(queue)
    queue._push_synthetic(10, 0)                        # nobody waits: no write
    assert queue.stats()["wakes"] == 0
    taken = [bridge.get_sync(timeout=0) for _ in range(10)]
    assert [op.received_ns for op in taken] == list(range(10))
    assert bridge.get_sync(timeout=0) is None           # empty, timeout 0: no sleep either
    assert queue.stats()["wakes"] == 0 and bridge.sleeps == 0
    _conserved(queue, bridge)


@pytest.mark.concurrency
def test_no_lost_wake_up_many_producers_ping_pong_with_a_sleeping_consumer():
    """Each producer pushes ONE item (nogil) and waits until the consumer took it before
    the next: the consumer sleeps between almost every item, so every item depends on
    its own wake-up.  A lost one stalls a round; the consumer's wait_for catches it."""
    producers = 4
    rounds = scaled(2000, minimum=300)
    queue = OpportunityQueue(1024)
    bridge = OpportunityBridge(queue)
    seen_by = [0] * producers                 # items of producer p the consumer took (GIL-ordered)
    stalls = []

    def producer(p):
        for i in range(rounds):
            queue._push_synthetic(1, p * 10_000_000 + i)
            deadline = time.monotonic() + 20
            while seen_by[p] <= i:
                if time.monotonic() > deadline:
                    stalls.append((p, i))
                    return
                time.sleep(0)                 # let the consumer (and the others) run
        return rounds

    async def consume():
        seen = set()
        loop = asyncio.get_running_loop()
        workers = loop.run_in_executor(None, lambda: run_threads(*[(producer, (p,)) for p in range(producers)]))
        ender = asyncio.ensure_future(_end_after(workers, bridge))
        while True:
            op = await asyncio.wait_for(bridge.get(), timeout=30)   # a lost wake-up fails here
            if op is None:
                break
            assert op.received_ns not in seen, "an item was delivered twice"
            seen.add(op.received_ns)
            seen_by[op.received_ns // 10_000_000] += 1
        await ender
        return seen

    seen = asyncio.run(consume())
    assert not stalls, f"producers stalled waiting for a wake-up: {stalls[:4]}"
    assert seen == {p * 10_000_000 + i for p in range(producers) for i in range(rounds)}
    q = _conserved(queue, bridge)
    assert q["dropped"] == 0 and q["in_flight"] == 0
    # the consumer slept between items, and was woken at most once per published "waiting"
    # (a sleep, or an arm taken back: its stale write is read later), plus end()'s write, which
    # is read as a wake of its own when it lands while the consumer is awake
    assert bridge.sleeps > 0 and bridge.wakes <= bridge.sleeps + bridge.retracted + 1
    # a producer writes only for a published "waiting": a sleep, or an arm taken back because
    # records were queued (its write is a stale wake-up a later sleep reads); plus end()
    assert q["wakes"] <= bridge.sleeps + bridge.retracted + 1


async def _end_after(workers, bridge):
    results = await workers
    bridge.end()
    return results


@pytest.mark.concurrency
def test_many_producers_flooding_a_small_queue_every_item_once_or_counted_dropped():
    producers = 4
    per = scaled(20_000, minimum=2000)
    queue = OpportunityQueue(256)
    bridge = OpportunityBridge(queue)
    seen = set()

    async def consume():
        loop = asyncio.get_running_loop()
        workers = loop.run_in_executor(None, lambda: run_threads(
            *[(queue._push_synthetic, (per, p * 10_000_000)) for p in range(producers)]))
        ender = asyncio.ensure_future(_end_after(workers, bridge))
        while (op := await asyncio.wait_for(bridge.get(), timeout=30)) is not None:
            assert op.received_ns not in seen
            seen.add(op.received_ns)
        await ender

    asyncio.run(consume())
    q = _conserved(queue, bridge)
    assert q["received"] == producers * per
    assert len(seen) == q["processed"] and q["in_flight"] == 0
    assert len(seen) + q["dropped"] == producers * per          # each item taken once or counted dropped
    assert all(0 <= v % 10_000_000 < per and v // 10_000_000 < producers for v in seen)
    # a write only per published "waiting" (a sleep, or an arm taken back), never per item
    assert q["wakes"] <= bridge.sleeps + bridge.retracted + 1
    assert q["wakes"] < producers * per // 2


def test_drops_are_counted_and_the_newest_survive():
    queue = OpportunityQueue(8)
    bridge = OpportunityBridge(queue)
    queue._push_synthetic(100, 0)
    bridge.end()
    got = []
    while (op := bridge.get_sync(timeout=1)) is not None:
        got.append(op.received_ns)
    q = _conserved(queue, bridge)
    assert q["received"] == 100 and q["dropped"] == 100 - len(got) and len(got) <= 16
    assert got == sorted(got) and got[-1] == 99                 # drop-OLDEST: the newest are kept


def test_stop_wakes_a_waiting_get_from_another_thread_and_stays_stopped():
    queue = OpportunityQueue(64)
    bridge = OpportunityBridge(queue)

    async def main():
        waiting = asyncio.ensure_future(bridge.get())
        await asyncio.sleep(0)
        assert not waiting.done()
        threading.Timer(0.05, bridge.stop).start()
        assert await asyncio.wait_for(waiting, timeout=10) is None
        queue._push_synthetic(3, 0)
        return await bridge.get()                       # stopped: None even with items queued

    assert asyncio.run(main()) is None
    q = _conserved(queue, bridge)
    assert q["in_flight"] == 3                          # left counted, not lost


def test_stop_on_the_loop_thread_wakes_the_waiting_task():
    queue = OpportunityQueue(64)
    bridge = OpportunityBridge(queue)

    async def main():
        waiting = asyncio.ensure_future(bridge.get())
        await asyncio.sleep(0)
        bridge.stop()
        return await asyncio.wait_for(waiting, timeout=10)

    assert asyncio.run(main()) is None


def test_sync_face_sleeps_until_a_push_times_out_and_ends():
    queue = OpportunityQueue(64)
    bridge = OpportunityBridge(queue)
    t0 = time.monotonic()
    assert bridge.get_sync(timeout=0.02) is None and time.monotonic() - t0 >= 0.02
    threading.Timer(0.05, queue._push_synthetic, args=(5, 7)).start()
    first = bridge.get_sync(timeout=30)
    assert first is not None and first.received_ns == 7 and bridge.wakes == 1
    rest = [bridge.get_sync(timeout=30) for _ in range(4)]
    assert [op.received_ns for op in rest] == [8, 9, 10, 11]
    threading.Timer(0.05, bridge.end).start()
    assert bridge.get_sync(timeout=30) is None
    _conserved(queue, bridge)


def test_a_cancelled_wait_leaves_nothing_armed():
    queue = OpportunityQueue(64)
    bridge = OpportunityBridge(queue)

    async def main():
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(bridge.get(), timeout=0.01)
        queue._push_synthetic(4, 0)                     # nobody waits now: no eventfd write
        assert queue.stats()["wakes"] == 0
        return [(await bridge.get()).received_ns for _ in range(4)]

    assert asyncio.run(main()) == [0, 1, 2, 3]
    assert len(bridge) == 0
    _conserved(queue, bridge)


def test_a_second_event_loop_takes_over_the_wake_up():
    queue = OpportunityQueue(64)
    bridge = OpportunityBridge(queue)

    async def one(tag):
        loop = asyncio.get_running_loop()
        waiting = asyncio.ensure_future(bridge.get())
        await asyncio.sleep(0)
        await loop.run_in_executor(None, queue._push_synthetic, 1, tag)
        return (await asyncio.wait_for(waiting, timeout=10)).received_ns

    assert asyncio.run(one(5)) == 5
    assert asyncio.run(one(6)) == 6                     # a new loop: the reader moved to it
    assert bridge.stats()["taken"] == 2 and bridge.stats()["producer_wakes"] == 2

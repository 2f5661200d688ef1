"""The open loop's latency cuts (issue 14's end-to-end figure) keep every guarantee.

What is proved:
* a realtime replay whose feeder analyzes on its own thread (``pipe_drain_inline``) while
  bursts still go to the workers finds exactly the opportunities of a full-speed replay and
  of the analyzer transaction by transaction, each once; the ring's counters are conserved
  (received == processed + dropped + in_flight); both paths really ran (inline drains and
  worker kicks counted); with ``inline_analysis=False`` the same;
* a live source's ``feed`` with ``inline_analysis=True`` (the engine's default) finds the
  analyzer's opportunities, each once, analyzing on the feeding thread;
* the feeder's timer slack is restored after a realtime run on the caller's thread, and a
  feeder waiting for a far-off record does not spin through the wait (its CPU time stays a
  small part of the wait: the spin is bounded by ``spin_ns``);
* ``OpportunityQueue.poll`` and the bridge's spin: an item pushed during the spin is taken
  without a sleep or a wake-up, an idle consumer sleeps after its spin (and does not burn
  CPU meanwhile), ``spin_ns=0`` sleeps at once; bad settings are named.
"""
from __future__ import annotations

import asyncio
import ctypes
import random
import sys
import threading
import time

import pytest

from conftest import scaled
from test_mempool_feeder import digest, record
from test_mempool_pipeline import ROUTER_TARGETS, key, reference, scenario
from tallyio.engine.engine import OpportunityBridge
from tallyio.eth.types import PendingTx
from tallyio.mempool import OpportunityQueue
from tallyio.mempool._feeder import ReplayFeeder
from tallyio.mempool._pipeline import Pipeline
from tallyio.mempool._pools import PoolTable
from tallyio.mempool.config import FilterConfig
from tallyio.mempool.synthetic import WETH, make_market, swap_tx, ROUTERS

NO_NONCES = FilterConfig(check_nonces=False)
PR_GET_TIMERSLACK = 30


def paced(items, step_ns, burst_every=50, burst=40):
    """The scenario's items re-stamped ``step_ns`` apart, with a burst of ``burst`` items
    sharing one time after every ``burst_every`` (more than a batch: they go to workers)."""
    out, t = [], 10**9
    for i, item in enumerate(items):
        if i % burst_every >= burst_every - burst:
            pass                                    # inside a burst: the same time
        else:
            t += step_ns
        out.append(item._replace(received_ns=t))
    return out


def realtime_replay(path, pools, **feeder_kw):
    with Pipeline(PoolTable(pools, weth=WETH), routers_v2=ROUTER_TARGETS, filter_config=NO_NONCES,
                  opportunity_capacity=1 << 16) as pipe:
        with ReplayFeeder(pipe, path, realtime=True, **feeder_kw) as feeder:
            info = feeder.run()
        ops = pipe.opportunities.get_many(1 << 20)
        ring = pipe.stats()["ring"]
    return info, ops, ring


@pytest.mark.concurrency
@pytest.mark.parametrize("inline", [True, False])
def test_realtime_inline_analysis_finds_the_full_speed_replay_s_opportunities_each_once(tmp_path, seed, inline):
    pools, items = scenario(seed, n_tx=scaled(300))
    # 2 ms between the paced records: far more than an analysis takes even in the sanitizers'
    # builds, so the feeder waits between them (and analyzes inline) instead of always running
    # behind (at 150 us a ThreadSanitizer build never waited: no inline drain to count)
    items = paced(items, step_ns=2_000_000)
    path = tmp_path / "paced.tio"
    record(path, pools, items)
    with Pipeline(PoolTable(pools, weth=WETH), routers_v2=ROUTER_TARGETS, filter_config=NO_NONCES,
                  opportunity_capacity=1 << 16) as pipe:
        with ReplayFeeder(pipe, path) as feeder:            # full speed: workers only
            assert feeder.run()["inline_drains"] == 0
        full = pipe.opportunities.get_many(1 << 20)
    info, ops, ring = realtime_replay(path, pools, inline_analysis=inline)
    assert len(ops) == len(full) > 0
    assert digest(ops) == digest(full)
    assert sorted(map(key, ops)) == reference(pools, items)
    pending = sum(isinstance(i, PendingTx) for i in items)
    assert info["pending"] == pending and info["end"] == "end of log"
    assert ring["received"] == ring["processed"] + ring["dropped"] + ring["in_flight"]
    assert ring["dropped"] == 0 and ring["in_flight"] == 0 and ring["processed"] == info["accepted"]
    if inline:
        # both paths ran: the feeder analyzed alone between records, workers took the bursts
        assert info["inline_drains"] > 0 and info["kicks"] > 0
    else:
        assert info["inline_drains"] == 0 and info["kicks"] > 0


@pytest.mark.concurrency
def test_live_feed_with_inline_analysis_finds_the_reference_s_opportunities_each_once(seed):
    """``Pipeline(inline_analysis=True).feed`` (a live source's thread, the engine's default):
    each transaction analyzed on the feeding thread when slot 0 is idle, the block barriers
    and Syncs as before; the opportunities are the analyzer's, transaction by transaction,
    each once; the ring's counters are conserved.  A full-speed ``run`` on the same kind of
    pipeline never analyzes inline (it wakes a worker per batch)."""
    pools, items = scenario(seed, n_tx=scaled(300))
    with Pipeline(PoolTable(pools, weth=WETH), routers_v2=ROUTER_TARGETS, filter_config=NO_NONCES,
                  opportunity_capacity=1 << 16, inline_analysis=True) as pipe:
        for item in items:
            pipe.feed(item)
        pipe.scan_arbitrage()
        pipe.drain()
        ops = pipe.opportunities.get_many(1 << 20)
        stats = pipe.stats()
    ring = stats["ring"]
    assert sorted(map(key, ops)) == reference(pools, items)
    assert ring["received"] == ring["processed"] + ring["dropped"] + ring["in_flight"]
    assert ring["dropped"] == 0 and ring["in_flight"] == 0
    # every accepted transaction found slot 0 idle (one feeding thread, nothing else queued)
    assert stats["pipeline"]["inline_feeds"] == ring["received"] > 0
    with Pipeline(PoolTable(pools, weth=WETH), routers_v2=ROUTER_TARGETS, filter_config=NO_NONCES,
                  opportunity_capacity=1 << 16, inline_analysis=True) as pipe:
        pipe.run(items)
        again = pipe.opportunities.get_many(1 << 20)
        assert pipe.stats()["pipeline"]["inline_feeds"] == 0
    assert sorted(map(key, again)) == reference(pools, items)
    with pytest.raises(TypeError, match="inline_analysis"):
        Pipeline(PoolTable(pools, weth=WETH), inline_analysis=1)


def test_every_trigger_of_a_paced_replay_is_analyzed_once(tmp_path, seed):
    """Each transaction's opportunities appear once (an inline drain and a worker never both
    take a record): the triggers' multiset equals the full-speed replay's."""
    pools = make_market(random.Random(seed), n_tokens=8)
    rng = random.Random(seed)
    txs = [swap_tx(rng, pools, ROUTERS[k % 2], k, size=0.05) for k in range(scaled(200))]
    txs = paced(txs, step_ns=100_000, burst_every=20, burst=8)
    path = tmp_path / "triggers.tio"
    record(path, pools, txs)
    info, ops, ring = realtime_replay(path, pools)
    _, again, _ = realtime_replay(path, pools, spin_ns=0)
    triggers = sorted(op.trigger_tx for op in ops)
    assert triggers == sorted(op.trigger_tx for op in again)
    assert sorted(map(key, ops)) == reference(pools, txs)
    assert ring["processed"] == info["accepted"] == len(txs) - info["skipped"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_TIMERSLACK is Linux's")
def test_a_realtime_run_restores_the_caller_s_timer_slack(tmp_path, seed):
    libc = ctypes.CDLL(None, use_errno=True)
    pools = make_market(random.Random(seed), n_tokens=6)
    rng = random.Random(seed)
    txs = [swap_tx(rng, pools, ROUTERS[0], k)._replace(received_ns=10**9 + k * 1_000_000) for k in range(5)]
    path = tmp_path / "slack.tio"
    record(path, pools, txs)
    before = libc.prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0)
    assert before > 1
    info, ops, _ = realtime_replay(path, pools, spin_ns=2_000_000)     # each 1 ms wait ends spinning
    assert libc.prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0) == before
    assert info["accepted"] == 5 and info["spins"] >= 1


def test_a_feeder_waiting_for_a_far_record_does_not_spin_through_the_wait(tmp_path, seed):
    pools = make_market(random.Random(seed), n_tokens=6)
    rng = random.Random(seed)
    txs = [swap_tx(rng, pools, ROUTERS[0], 0)._replace(received_ns=1),
           swap_tx(rng, pools, ROUTERS[0], 1)._replace(received_ns=3600 * 10**9)]     # an hour later
    path = tmp_path / "far.tio"
    record(path, pools, txs)
    with Pipeline(PoolTable(pools, weth=WETH), routers_v2=ROUTER_TARGETS, filter_config=NO_NONCES) as pipe:
        feeder = ReplayFeeder(pipe, path, realtime=True, spin_ns=2_000_000)    # the longest spin allowed
        cpu = []

        def run():
            t0 = time.thread_time()
            feeder.run()
            cpu.append(time.thread_time() - t0)

        thread = threading.Thread(target=run, daemon=True)
        t0 = time.monotonic()
        thread.start()
        time.sleep(0.5)
        feeder.stop()
        thread.join(60)
        waited = time.monotonic() - t0
        feeder.close()
    assert not thread.is_alive()
    # a spin through the whole wait would be ~`waited` of CPU; sleeping is a few ms of it
    assert cpu[0] < 0.25 * waited, (cpu, waited)


def test_bad_spin_settings_are_named(tmp_path):
    pools = make_market(random.Random(3), n_tokens=4)
    path = tmp_path / "ok.tio"
    record(path, pools, [])
    with Pipeline(PoolTable(pools, weth=WETH), routers_v2=ROUTER_TARGETS) as pipe:
        with pytest.raises(ValueError, match="spin_ns"):
            ReplayFeeder(pipe, path, spin_ns=-1)
        with pytest.raises(ValueError, match="spin_ns"):
            ReplayFeeder(pipe, path, spin_ns=10**9)
        with pytest.raises(ValueError, match="spin_ns"):
            ReplayFeeder(pipe, path, spin_ns=True)
        with pytest.raises(TypeError, match="inline_analysis"):
            ReplayFeeder(pipe, path, inline_analysis=1)
    queue = OpportunityQueue(4)
    for bad in (-1, 10**8, 1.5, True):
        with pytest.raises(ValueError, match="spin_ns"):
            OpportunityBridge(queue, spin_ns=bad)


# ---- the consumer's spin ----------------------------------------------------------------------

def test_poll_sees_a_push_from_another_thread_and_times_out_when_nothing_comes():
    queue = OpportunityQueue(8)
    assert queue.poll(0) is False and queue.poll(20_000) is False
    pushed = threading.Event()

    def later():
        pushed.wait()
        queue._push_synthetic(1, 7)

    thread = threading.Thread(target=later)
    thread.start()
    pushed.set()
    assert queue.poll(30 * 10**9) is True           # returns as soon as it is queued
    thread.join()
    assert queue.get().received_ns == 7 and queue.poll(0) is False


def test_a_push_within_the_spin_is_taken_without_sleep_or_wake_up():
    """The pusher waits for ``bridge.idle`` (set just before the spin) and pushes at once;
    on a loaded machine its thread may come after the 10 ms spin: then the consumer slept
    and was woken (also right), and the round is tried again."""
    for _ in range(5):
        queue = OpportunityQueue(64)
        bridge = OpportunityBridge(queue, spin_ns=10_000_000)      # the longest spin allowed

        def push():
            bridge.idle.wait()
            queue._push_synthetic(1, 5)

        async def main():
            return await bridge.get()

        thread = threading.Thread(target=push)
        thread.start()
        assert asyncio.run(main()).received_ns == 5
        thread.join()
        if bridge.polled == 1:
            break
        assert bridge.sleeps == 1 and bridge.wakes == 1         # came after the spin: slept, woken
    assert bridge.polled == 1 and bridge.sleeps == 0 and queue.stats()["wakes"] == 0
    assert bridge.stats()["polled"] == 1


def test_an_idle_consumer_sleeps_after_its_spin_and_does_not_burn_cpu():
    queue = OpportunityQueue(64)
    bridge = OpportunityBridge(queue, spin_ns=1_000_000)
    t0 = time.thread_time()
    assert bridge.get_sync(timeout=0.5) is None
    cpu = time.thread_time() - t0
    assert bridge.sleeps == 1 and bridge.polled == 0
    assert cpu < 0.2, cpu                               # spinning the whole wait would be ~0.5 s

    nospin = OpportunityBridge(queue, spin_ns=0)

    async def main():
        first = asyncio.ensure_future(nospin.get())
        await asyncio.sleep(0)
        assert nospin.sleeps == 1 and nospin.polled == 0    # slept at once
        queue._push_synthetic(1, 9)
        return await first

    assert asyncio.run(main()).received_ns == 9
    assert nospin.wakes == 1


def test_the_sync_face_takes_a_push_within_its_spin():
    for _ in range(5):
        queue = OpportunityQueue(64)
        bridge = OpportunityBridge(queue, spin_ns=10_000_000)

        def push():
            bridge.idle.wait()
            queue._push_synthetic(1, 3)

        thread = threading.Thread(target=push)
        thread.start()
        assert bridge.get_sync(timeout=30).received_ns == 3
        thread.join()
        if bridge.polled == 1:
            break
        assert bridge.sleeps == 1 and bridge.wakes == 1         # came after the spin: slept, woken
    assert bridge.polled == 1 and bridge.sleeps == 0 and queue.stats()["wakes"] == 0

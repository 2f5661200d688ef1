"""The ``engine`` group: the seed's three benchmark names.

* ``engine_execution``: one ``await engine.execute_strategy(op)`` -- the
  trading-state gate (and the breaker, once wired), a Python strategy
  (``CycleStrategy``), the dry-run executor (exact V2 math on the pool table,
  the trigger's swaps applied first), the result, metrics -- timed per call on
  the embedded recording's real opportunities, p50 and p99.  Beside it, in
  the same repetitions, what a Python searcher writes: ``pybreaker`` around a
  function doing the same cycle in Python integers with a plain try/except,
  and the same engine with the dry run's Python reference in place of its
  compiled core (``DryRunExecutor(native=False)``): what the compiled core saves.
* ``mempool_analysis``: one pending swap from ``Pipeline.feed`` to its
  opportunities in the queue (filter, ring, decode, analyze on a worker, drain).
* ``state_sync``: one Sync event journaled and applied to the engine's state
  (``StateStore.record``: journal append + seqlock write of the reserves +
  checkpoint every 100 events).
* end-to-end, open loop: pending swaps offered at 10,000 tx/s on a schedule,
  latency from each one's scheduled arrival to its opportunity returned by
  ``await next_opportunity()``; beside it the same schedule into a Python
  searcher (asyncio, eth-abi, Python ints).  Where the time goes is split in
  two figures: scheduled arrival -> detected by the analyzer (the source
  thread's lateness, the feed, the analysis: on the feeder's own thread when
  slot 0 is idle, else a worker's) and detected -> returned (the hand-off: the
  consumer's spin in ``OpportunityQueue.poll``, or when the spin ran out, the
  bridge's eventfd wake-up; then the consumer's GIL), each at p50 and p99.  Both
  sides run with the GIL switch interval at ``SWITCH_INTERVAL`` (100 us
  instead of CPython's 5 ms: a latency-minded deployment sets it, and with the
  default a thread waiting for the GIL waits up to 5 ms behind a busy one).
  A second tallyio row runs the same schedule with ``BUSY_POLL`` (both waits spin
  through the gaps, ``gc_freeze``: what a latency-first deployment on dedicated cores
  sets).  The machine's floors: one thread of ours sleeping until each arrival of the
  same schedule, how late it woke (the OS and the timer alone), the same tuned as the
  feeder waits, and one spinning to each arrival (only preemption makes it late); and
  the host's steal time during each engine run (/proc/stat), so a run's tail can be
  read against what the hypervisor took.

Owns only the temporary directories it creates (and removes).
"""
from __future__ import annotations

import asyncio
import os
import shutil
import struct
import tempfile
from time import perf_counter_ns
from typing import Callable

import numpy as np

from tallyio.bench._figures import Figure, Target, alternate, figures_for
from tallyio.bench._progress import Progress

Section = tuple[str, Callable[[Progress], list[Figure]]]

PYBREAKER = "python searcher (pybreaker + Python ints)"
SWITCH_INTERVAL = 1e-4
EXHAUSTIVE = dict(max_sized=64, max_cycles=100_000, max_evaluations=1 << 20)


def _percentiles(ns: list[int]) -> dict[str, float]:
    """p50 / p99 / p99.9 of ``ns`` in microseconds (NaN when empty)."""
    if not ns:
        return {"p50": float("nan"), "p99": float("nan"), "p99.9": float("nan")}
    arr = np.asarray(ns, dtype=np.float64) / 1000.0
    return {"p50": float(np.percentile(arr, 50)), "p99": float(np.percentile(arr, 99)),
            "p99.9": float(np.percentile(arr, 99.9))}


def _python_cycle(amount_in: int, hops: list) -> int:
    """A Python searcher's dry run: getAmountsOut in Python ints."""
    amount = amount_in
    for r_in, r_out, fee in hops:
        with_fee = amount * (10_000 - fee)
        amount = with_fee * r_out // (r_in * 10_000 + with_fee)
    return amount


REFERENCE = "tallyio, Python reference dry run"


def _measure_execution(repeat: int, native: bool = True) -> dict[str, list[int]]:
    """execute_strategy per call (ns) on every opportunity of the embedded replay,
    each executed ``repeat`` times while the replay holds its block (lockstep), the
    first of those calls alone (the dry run decodes the trigger's swaps then; the
    repeats find them cached), and the pybreaker peer on the same opportunities and
    reserves.  ``native=False``: the engine's dry run is the Python reference
    (``DryRunExecutor(native=False)``, what the engine ran before the compiled core),
    and the pybreaker peer is not measured."""
    import pybreaker

    from tallyio.engine.config import CoreConfig
    from tallyio.engine.engine import Engine
    from tallyio.engine.executors import DryRunExecutor
    from tallyio.engine.strategy import CycleStrategy
    from tallyio.mempool import AnalyzerConfig

    mine: list[int] = []
    first: list[int] = []           # each opportunity's first execution: the trigger decoded, not cached
    peer: list[int] = []
    breaker = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30)

    async def main() -> None:
        async with Engine(CoreConfig.replay(analyzer=AnalyzerConfig(**EXHAUSTIVE)),
                          strategies=[CycleStrategy()]) as engine:
            table = engine.table
            if not native:     # same table, same trigger lookup: only the implementation differs
                engine.executor = DryRunExecutor(table, dict(engine.routers), pending=engine.executor.pending,
                                                 native=False)
            while (op := await engine.next_opportunity()) is not None:
                for k in range(repeat):
                    t0 = perf_counter_ns()
                    await engine.execute_strategy(op)
                    spent = perf_counter_ns() - t0
                    mine.append(spent)
                    if k == 0:
                        first.append(spent)
                # the peer: the same cycle on the same reserves, the way a Python bot does it
                for _ in range(repeat if native else 0):
                    t0 = perf_counter_ns()
                    hops = []
                    for k, pool in enumerate(op.pools):
                        info = table.pool(table.index_of(pool))
                        forward = op.token_path[k] == info.token0
                        hops.append((info.reserve0, info.reserve1, info.fee_bps) if forward
                                    else (info.reserve1, info.reserve0, info.fee_bps))
                    try:
                        out = breaker.call(_python_cycle, op.amount_in, hops)
                        _ = out - op.amount_in if out >= op.amount_in + 1 else None
                    except pybreaker.CircuitBreakerError:
                        pass
                    peer.append(perf_counter_ns() - t0)

    asyncio.run(main())
    if not native:
        return {REFERENCE: mine, REFERENCE + ", first call per opportunity": first}
    return {"tallyio": mine, PYBREAKER: peer, "tallyio, first call per opportunity": first}


def _measure_analysis(rounds: int, inline: bool = True) -> list[int]:
    """Pipeline.feed of one pending swap -> drained -> its opportunities taken (ns).
    ``inline``: as the engine feeds a live source (``CoreConfig.inline_analysis``: the
    feeding thread analyzes when a worker slot is idle); False: a worker is woken."""
    from tallyio.eth.types import PendingTx
    from tallyio.mempool import AnalyzerConfig, FilterConfig, Pipeline, ReplaySource
    from tallyio.mempool.recording import embedded_recording

    path, golden = embedded_recording()
    src = ReplaySource(path)
    txs = [item for item in src if isinstance(item, PendingTx)]
    routers = [(bytes.fromhex(a[2:]), k) for a, k in golden["routers_v2"]]
    out: list[int] = []
    with Pipeline(src.pool_table(), routers_v2=routers, analyzer_config=AnalyzerConfig(),
                  filter_config=FilterConfig(recent_hashes=1, check_nonces=False), inline_analysis=inline) as pipe:
        feed, drain, take = pipe.feed, pipe.drain, pipe.opportunities.get_many
        for _ in range(rounds):
            for tx in txs:
                t0 = perf_counter_ns()
                feed(tx)
                drain()
                take(64)
                out.append(perf_counter_ns() - t0)
    return out


def _measure_state_sync(events: int) -> list[int]:
    """StateStore.record of a SYNC_EVENT applied to ENGINE_LAYOUT's pools table (ns)."""
    from tallyio.state import ENGINE_LAYOUT, RecordType, StateStore

    sync = struct.Struct("<IQQ")
    mask = (1 << 64) - 1

    def apply(state, record):
        pool, r0, r1 = sync.unpack(record.payload)
        state.write("pools", pool, reserve0_lo=r0 & mask, reserve0_hi=0, reserve1_lo=r1 & mask,
                    reserve1_hi=0, block=record.seq, log_index=0)

    directory = tempfile.mkdtemp(prefix="tallyio-bench-engine-")
    out: list[int] = []
    try:
        store = StateStore(directory, ENGINE_LAYOUT, apply, every_events=100, every_ms=60_000)
        try:
            record = store.record
            for i in range(events):
                payload = sync.pack(i % 64, 10**18 + i, 2 * 10**18 - i)
                t0 = perf_counter_ns()
                record(RecordType.SYNC_EVENT, payload)
                out.append(perf_counter_ns() - t0)
        finally:
            store.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return out


def sections(mode: str) -> list[Section]:
    """The engine group's sections for ``mode`` (smoke, quick, full), in order."""
    reps = {"smoke": 1, "quick": 3, "full": 5}[mode]
    repeat = {"smoke": 1, "quick": 5, "full": 20}[mode]
    result: list[Section] = []

    def execution(progress: Progress) -> list[Figure]:
        def measure_both() -> dict[str, dict[str, float]]:
            runs = _measure_execution(repeat)
            runs.update(_measure_execution(repeat, native=False))     # the same replay, the reference dry run
            return {name: _percentiles(ns) for name, ns in runs.items()}

        samples: dict[str, dict[str, list[float]]] = {"tallyio": {}, PYBREAKER: {},
                                                      "tallyio, first call per opportunity": {}, REFERENCE: {},
                                                      REFERENCE + ", first call per opportunity": {}}
        for rep in range(reps):
            progress.step(f"engine_execution, repetition {rep + 1}/{reps}")
            for name, figures in measure_both().items():
                for case, value in figures.items():
                    samples[name].setdefault(case, []).append(value)
        cases = [("p50", "engine_execution: execute_strategy p50"),
                 ("p99", "engine_execution: execute_strategy p99")]
        return figures_for("engine", samples, cases, unit="us", higher_is_better=False,
                           targets={"p50": [Target(25.0)], "p99": [Target(100.0)]})
    result.append(("engine_execution: gate, strategy, dry run", execution))

    def analysis(progress: Progress) -> list[Figure]:
        rounds = {"smoke": 1, "quick": 10, "full": 40}[mode]
        samples = alternate([("tallyio", lambda: _percentiles(_measure_analysis(rounds))),
                             ("tallyio, a worker woken per transaction (inline_analysis=False)",
                              lambda: _percentiles(_measure_analysis(rounds, inline=False)))], reps, progress)
        cases = [("p50", "mempool_analysis: feed -> opportunities p50"),
                 ("p99", "mempool_analysis: feed -> opportunities p99")]
        return figures_for("engine", samples, cases, unit="us", higher_is_better=False)
    result.append(("mempool_analysis: one pending swap through the pipeline", analysis))

    def state_sync(progress: Progress) -> list[Figure]:
        events = {"smoke": 200, "quick": 5_000, "full": 20_000}[mode]
        samples = alternate([("tallyio", lambda: _percentiles(_measure_state_sync(events)))], reps, progress)
        cases = [("p50", "state_sync: journal + apply + checkpoint/100, p50"),
                 ("p99", "state_sync: journal + apply + checkpoint/100, p99")]
        return figures_for("engine", samples, cases, unit="us", higher_is_better=False)
    result.append(("state_sync: a Sync event into the engine's state", state_sync))
    result.extend(open_loop_sections(mode))
    return result


def _open_loop_recording(directory: str, rate: int, seconds: float) -> tuple[str, list]:
    """A recording of the embedded pool snapshot and ``rate x seconds`` pending swaps
    (the embedded recording's, cycled, each with its own hash) recorded ``1/rate`` s
    apart; returns its path and the transactions."""
    import os

    from tallyio.eth.types import PendingTx
    from tallyio.mempool import Recorder, ReplaySource
    from tallyio.mempool.recording import embedded_recording

    path, _ = embedded_recording()
    src = ReplaySource(path)
    base = [item for item in src if isinstance(item, PendingTx)]
    n = max(1, int(rate * seconds))
    step = 1_000_000_000 // rate
    txs = [base[i % len(base)]._replace(hash=(i + 1).to_bytes(32, "big"), received_ns=1_000_000 + i * step)
           for i in range(n)]
    out = os.path.join(directory, "open_loop.tio")
    with Recorder(out) as rec:
        rec.snapshot(src.pool_table(), ts=0)
        for tx in txs:
            rec.write(tx)
    return out, txs


BUSY_POLL = dict(replay_spin_us=2000.0, consumer_spin_us=2000.0, gc_freeze=True)
"""The open loop's second tallyio row: both waits spin through the 100 us gaps (the
feeder and next_opportunity's thread never sleep while transactions come, so neither
waits for a wake-up) and the heap alive at start is frozen out of GC passes."""
BUSY_POLL_ROW = "tallyio, busy-poll (both waits spin 2 ms, gc_freeze)"


def _steal_us() -> float:
    """The machine's cumulative steal time in us (Linux /proc/stat, 10 ms resolution): the
    time the hypervisor ran something else while this VM's CPUs wanted to run.  NaN where
    it is not available."""
    try:
        with open("/proc/stat") as stat:
            fields = stat.readline().split()
        return float(fields[8]) * 1e6 / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def _wake_floor(rate: int, seconds: float, tuned: bool = False, spin: int = 30_000) -> list[int]:
    """The machine's own floor for the open loop: one thread sleeping until each
    arrival of the same schedule and recording how late it woke (ns).  Nothing else
    of ours runs meanwhile: this is the OS scheduler and the timer alone (on a shared
    VM, other processes' run-queue time).  ``tuned``: as the replay feeder waits (its
    timer slack at 1 ns, restored after, and the last ``spin`` ns spun), so the p50 is
    not the kernel's default 50 us slack; a ``spin`` longer than the gap never sleeps
    (the busy-poll row's floor: only preemption makes it late)."""
    import ctypes
    import sys
    import time

    prctl = None
    old_slack = -1
    if tuned and sys.platform.startswith("linux"):
        prctl = ctypes.CDLL(None).prctl
        old_slack = prctl(30, 0, 0, 0, 0)                   # PR_GET_TIMERSLACK
        prctl(29, 1, 0, 0, 0)                               # PR_SET_TIMERSLACK: 1 ns
    spin = spin if tuned else 0
    late: list[int] = []
    step = 1_000_000_000 // rate
    try:
        start = time.monotonic_ns()
        for i in range(int(rate * seconds)):
            due = start + i * step
            wait = due - spin - time.monotonic_ns()
            if wait > 0:
                time.sleep(wait / 1e9)
            while spin and time.monotonic_ns() < due:
                pass
            late.append(time.monotonic_ns() - due)
    finally:
        if prctl is not None and old_slack > 0:
            prctl(29, old_slack, 0, 0, 0)
    return late


def _measure_open_loop(rate: int, seconds: float) -> dict[str, dict[str, float]]:
    """Open loop: transactions arrive on a schedule (``rate`` per second, paced by a
    feeder thread); latency runs from each one's SCHEDULED arrival to its opportunity
    returned by ``await next_opportunity()`` (so a stall is charged to every
    transaction it delays: no coordinated omission).  The peer receives the same
    schedule from a thread (``call_soon_threadsafe``, as a websocket thread would hand
    over) and processes each in the loop the way a Python searcher does (eth-abi,
    Python ints, plain try/except)."""
    import sys
    import time

    from tallyio.bench._mempool import PythonSearcher
    from tallyio.engine.config import CoreConfig
    from tallyio.engine.engine import Engine
    from tallyio.mempool import FilterConfig, ReplaySource
    from tallyio.mempool.recording import embedded_recording

    _, golden = embedded_recording()
    routers = [(bytes.fromhex(a[2:]), k) for a, k in golden["routers_v2"]]
    directory = tempfile.mkdtemp(prefix="tallyio-bench-openloop-")
    switch = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL)      # both sides, restored below
    try:
        path, txs = _open_loop_recording(directory, rate, seconds)
        config = CoreConfig.replay(path, replay_realtime=True, filter=FilterConfig(check_nonces=False),
                                   ring_capacity=1 << 16, opportunity_capacity=1 << 16)

        async def run_engine(config: CoreConfig) -> dict[str, float]:
            latency: list[int] = []
            detected: list[int] = []        # scheduled arrival -> detected by the analyzer
            handoff: list[int] = []         # detected -> returned by next_opportunity
            steal = _steal_us()
            async with Engine(config, routers=routers) as engine:
                while (op := await engine.next_opportunity()) is not None:
                    now = time.monotonic_ns()
                    first, wall = engine.replay_clock
                    due = wall + op.received_ns - first
                    latency.append(now - due)
                    detected.append(op.detected_ns - due)
                    handoff.append(now - op.detected_ns)
                dropped = engine.stats()["opportunities"]["dropped"]
            steal = _steal_us() - steal
            stages = {"arrival->detected": _percentiles(detected), "detected->returned": _percentiles(handoff)}
            return {**_percentiles(latency), "opportunities": float(len(latency)), "dropped": float(dropped),
                    "host steal": steal,
                    **{f"{stage} {c}": figures[c] for stage, figures in stages.items() for c in ("p50", "p99")}}

        mine = asyncio.run(run_engine(config))
        busy = asyncio.run(run_engine(config.replace(**BUSY_POLL)))

        table = ReplaySource(path).pool_table()
        searcher = PythonSearcher(table, {address: exchange for address, exchange in routers})
        peer: list[int] = []
        errors = [0]

        async def run_peer() -> None:
            import threading

            loop = asyncio.get_running_loop()
            done = loop.create_future()

            def handle(due: int, tx) -> None:
                try:
                    found = searcher.process(tx)
                except Exception:
                    errors[0] += 1
                    found = None
                if found:
                    now = time.monotonic_ns()
                    peer.extend(now - due for _ in found)

            def arrivals() -> None:
                start = time.monotonic_ns()
                first = txs[0].received_ns
                for tx in txs:
                    due = start + tx.received_ns - first
                    wait = due - time.monotonic_ns()
                    if wait > 0:
                        time.sleep(wait / 1e9)
                    loop.call_soon_threadsafe(handle, due, tx)
                loop.call_soon_threadsafe(done.set_result, None)

            thread = threading.Thread(target=arrivals, daemon=True)
            thread.start()
            await done
            thread.join()

        asyncio.run(run_peer())
        floor = _wake_floor(rate, seconds)
        tuned = _wake_floor(rate, seconds, tuned=True)
        spinning = _wake_floor(rate, seconds, tuned=True, spin=2_000_000)
    finally:
        sys.setswitchinterval(switch)
        shutil.rmtree(directory, ignore_errors=True)

    return {"tallyio": mine,
            BUSY_POLL_ROW: busy,
            "python searcher (asyncio, eth-abi, ints)": {**_percentiles(peer), "opportunities": float(len(peer))},
            "machine floor (a thread waking on the schedule)": _percentiles(floor),
            "machine floor, tuned (1 ns timer slack, last 30 us spun)": _percentiles(tuned),
            "machine floor, busy-poll (a thread spinning to each arrival)": _percentiles(spinning)}




def open_loop_sections(mode: str) -> list[Section]:
    """The open-loop end-to-end figure (the issue's "Speed"): tallyio and the Python
    searcher on the same 10,000 tx/s schedule, in the same repetition."""
    reps = {"smoke": 1, "quick": 3, "full": 5}[mode]
    seconds = {"smoke": 0.2, "quick": 1.0, "full": 3.0}[mode]

    def open_loop(progress: Progress) -> list[Figure]:
        samples = alternate([("both", lambda: {f"{who}|{case}": v
                                               for who, figures in _measure_open_loop(10_000, seconds).items()
                                               for case, v in figures.items()})], reps, progress)["both"]
        by: dict[str, dict[str, list[float]]] = {}
        for composite, values in samples.items():
            who, case = composite.split("|")
            by.setdefault(who, {})[case] = values
        cases = [(c, f"end-to-end open loop at 10k tx/s: arrival -> next_opportunity {c}")
                 for c in ("p50", "p99", "p99.9")]
        cases += [(f"{stage} {c}", f"open loop, where the time goes: {stage.replace('->', ' -> ')} {c}")
                  for stage in ("arrival->detected", "detected->returned") for c in ("p50", "p99")]
        cases += [("host steal", "open loop: the host's steal time during the run (the VM's CPUs not running)")]
        targets = {"p99": [Target(100.0)], "p99.9": [Target(250.0)]}
        busy = by.pop(BUSY_POLL_ROW)
        # the default settings' row and the busy-poll row, each beside the peers and the floors
        return (figures_for("engine", by, cases, unit="us", higher_is_better=False, targets=targets)
                + figures_for("engine", {**by, BUSY_POLL_ROW: busy},
                              [(key, label + ", busy-poll") for key, label in cases],
                              unit="us", higher_is_better=False, targets=targets, mine=BUSY_POLL_ROW))
    return [("end-to-end, open loop, 10,000 tx/s", open_loop)]

"""``Engine``: the face users start from.  It runs a source (a node or a
replay) into the mempool ``Pipeline`` on a ``NumaScheduler``, hands the
opportunities to asyncio (``await next_opportunity()``), and runs
``execute_strategy(opportunity)``: trading gate -> breaker -> the strategies
whose interest matches -> actions -> executor -> ``ExecutionResult``, with
metrics, the journal and checkpoints beside it.

Owns: the feeder thread (source -> pipeline), the ``OpportunityBridge`` (the
scheduler -> event-loop hand-off), the strategy dispatch, the engine's journal
records and its use of ``ENGINE_LAYOUT``.  Touches: tallyio.mempool (upstream),
tallyio.state (StateStore), tallyio.metrics (Registry, MetricsServer), the
executors.  Imports nothing downstream of the engine.

    >>> import asyncio
    >>> from tallyio.engine.engine import Engine
    >>> from tallyio.engine.config import CoreConfig
    >>> async def main():
    ...     async with Engine(CoreConfig.replay()) as engine:
    ...         seen = 0
    ...         while (op := await engine.next_opportunity()) is not None:
    ...             seen += 1
    ...         return seen, engine.stats()["opportunities"]["handed_out"] == seen
    >>> seen, same = asyncio.run(main())
    >>> seen > 0, same
    (True, True)
"""
from __future__ import annotations

import asyncio
import collections
import gc
import hashlib
import os
import struct
import threading
import time
from typing import Any, Deque, Dict, Iterable, List, Optional, Sequence

from tallyio.engine.breaker import BreakerState, CircuitBreaker, TradingGate, TradingState
from tallyio.engine.config import CoreConfig, parse_endpoint
from tallyio.engine.executors import DryRunExecutor, Executor
from tallyio.engine.records import Action, ExecutionResult, ExecutionStatus
from tallyio.engine.strategy import Strategy, StrategyContext
from tallyio.eth.types import (RawLog, AaveCollateralToggle, AaveLiquidation, AavePriceUpdate, AaveReserveUpdate,
                               AaveTokenEvent, AaveUserAction, BlockHeader, PendingTx)
from tallyio.mempool import OpportunityQueue, Pipeline, PoolTable
from tallyio.mempool.records import Opportunity
from tallyio.state.recordlog import RecordType

__all__ = ["Engine", "OpportunityBridge", "EngineError"]

# ENGINE_LAYOUT "counters" records the engine owns (0..7)
C_POSITION = 0          #: replay records fully settled (a restart skips the pending txs before it)
C_POSITION_SEQ = 1      #: journal sequence of the position marker
C_EXECUTED = 2          #: execution results journaled
C_PROFIT = 3            #: sum of realized profit, two's complement mod 2**64
C_FAILED = 4            #: results that were FAILED or REVERTED
_ENGINE_EVENT_POSITION = 1
_ENGINE_EVENT_INTENT = 2   #: an opportunity about to be sent to a node (at most once across a crash)
_INTENT = struct.Struct("<B16s")           # kind, opportunity key
_RESULT = struct.Struct("<Bq16s")          # status, realized profit (clamped), opportunity key
_POSITION = struct.Struct("<BQ")           # kind, position
_MASK64 = (1 << 64) - 1
_REJECTED = ExecutionStatus.REJECTED
_FAILED = ExecutionStatus.FAILED
# execute_strategy's hot path compares these by identity (enum members are singletons)
_ACTIVE, _HALTED = TradingState.ACTIVE, TradingState.HALTED
_OPEN = BreakerState.OPEN
_AAVE_RECORDS = frozenset((AaveCollateralToggle, AaveLiquidation, AavePriceUpdate, AaveReserveUpdate, AaveTokenEvent,
                           AaveUserAction))
_perf_ns = time.perf_counter_ns
_get_ident = threading.get_ident


class EngineError(RuntimeError):
    """Misuse of the engine's life cycle (start twice, execute before start)."""


class _ProbeNotUsed(Exception):
    """A half-open probe permit the engine took but did not spend on a call (the
    strategies had nothing to send, or the trading gate refused): recorded as an
    excluded outcome, which gives the probe's place back to the next execution."""


def _probe_not_used(exc: BaseException) -> bool:
    return type(exc) is _ProbeNotUsed


def opportunity_key(op: Opportunity) -> bytes:
    """16 bytes naming an opportunity (trigger, pools, size) across restarts; a
    standing arbitrage (no trigger) is named by its block too, since the same
    cycle may pay again in a later block."""
    h = hashlib.blake2b(digest_size=16)
    h.update(op.trigger_tx or op.block_number.to_bytes(32, "big"))
    for pool in op.pools:
        h.update(pool)
    h.update(op.amount_in.to_bytes(32, "big"))
    if op.user is not None:             # a liquidation: two accounts of one pool may owe the same amount
        h.update(op.user)
    return h.digest()


class OpportunityBridge:
    """The pipeline -> consumer hand-off: a push path, no thread, no polling.

    The pipeline's workers push opportunities into its ``OpportunityQueue``
    (bounded, drop-oldest, drops counted) and, right after a push, signal the
    queue's wake-up (``tio_opp_wake_signal``): a fence and a load while the
    consumer is busy; while it sleeps, ONE eventfd write by the one producer
    that takes its "waiting" flag -- one wake-up per sleep, however many
    opportunities the batch brings.  ``get()`` takes straight from the native
    queue while it is non-empty (no thread switch, no wake-up); when it is empty
    it arms the flag (``OpportunityQueue.arm`` looks at the queue again after a
    full fence, so a push racing with the sleep is never lost: the argument is
    in ``tallyio/mempool/_opportunity.pyx``) and awaits a future resolved by the
    eventfd's reader on the loop (``loop.add_reader``).  ``get_sync`` sleeps in
    ``select`` on the same fd.  ``end()`` (the source finished and the pipeline
    drained) and ``stop()`` wake a sleeping consumer unconditionally.

    Before it arms and sleeps, the consumer polls the queue for up to ``spin_ns``
    (``OpportunityQueue.poll``: a spin without the GIL): at a steady flow the next
    opportunity comes within it and is taken with no wake-up at all (the eventfd ->
    epoll -> callback -> future path is tens of microseconds on a VM, most of the
    hand-off).  The price: the loop thread is busy (not running other tasks) for at
    most ``spin_ns`` per empty wait, and an idle consumer spends ``spin_ns`` of CPU
    once before it sleeps; ``spin_ns=0`` sleeps at once.

    Counters: ``taken`` (opportunities popped, each handed out or skipped),
    ``sleeps`` (the consumer found the queue empty and slept), ``wakes`` (it
    was woken: a producer's write, end or stop), ``polled`` (waits the spin
    ended with an opportunity, no sleep), ``batches`` (runs of at least
    one opportunity taken between two sleeps); the producers' writes are the
    queue's ``stats()["wakes"]``.  Nothing is ever discarded here: what
    ``stop()`` leaves stays counted in the queue's ``in_flight``.
    """

    discarded = 0
    """always 0 (kept for the engine's accounting): the bridge holds no opportunity."""

    SPIN_NS = 150_000
    """the default ``spin_ns``: longer than the gap between transactions at 10,000/s."""

    def __init__(self, queue: OpportunityQueue, spin_ns: int = SPIN_NS) -> None:
        if isinstance(spin_ns, bool) or not isinstance(spin_ns, int) or not 0 <= spin_ns <= 10_000_000:
            raise ValueError(f"OpportunityBridge: spin_ns must be an int in 0 .. 10_000_000 (10 ms), got {spin_ns!r}")
        self.queue = queue
        self.spin_ns = spin_ns
        self._take = queue.get
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._waiter: Optional[asyncio.Future] = None
        self._stopping = False
        self._fresh = True            # the next take starts a batch
        self.ended = False
        self.taken = 0
        self.batches = 0
        self.sleeps = 0
        self.wakes = 0
        self.polled = 0
        self.retracted = 0
        """arms taken back (``arm()`` found records queued): each may still draw one producer
        write, a stale wake-up a later sleep reads at once (the queue's protocol)"""
        self.idle = threading.Event()
        """set each time the consumer found the queue empty and is about to sleep (it is
        done with all it took): the lockstep replay's feeder waits on it, not polling."""

    def start(self, loop: Optional[asyncio.AbstractEventLoop]) -> None:
        """Nothing to start (no thread): ``get()`` listens on its loop the first time it
        has to sleep, ``get_sync()`` sleeps in ``select``."""

    def _attach(self, loop: asyncio.AbstractEventLoop) -> None:
        old = self._loop
        if old is not None and not old.is_closed():
            try:
                old.call_soon_threadsafe(old.remove_reader, self.queue.wake_fd)
            except RuntimeError:                # closed meanwhile: its selector went with it
                pass
        loop.add_reader(self.queue.wake_fd, self._on_readable)
        self._loop = loop

    def _detach(self) -> None:
        """On the loop's thread: stop listening (end of the source or stop())."""
        loop, self._loop = self._loop, None
        if loop is not None and not loop.is_closed():
            loop.remove_reader(self.queue.wake_fd)

    def _on_readable(self) -> None:
        """The eventfd's reader (the loop thread): one call per wake-up, not per opportunity."""
        if self.queue.clear_wake():
            self.wakes += 1
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _got(self, op: Opportunity) -> Opportunity:
        self.taken += 1
        if self._fresh:
            self._fresh = False
            self.batches += 1
        return op

    async def get(self) -> Optional[Opportunity]:
        """The next opportunity, or None once the source ended (or stop())."""
        op = None if self._stopping else self._take()
        if op is not None:
            self.taken += 1
            if self._fresh:
                self._fresh = False
                self.batches += 1
            return op
        return await self._wait()

    async def _wait(self) -> Optional[Opportunity]:
        queue = self.queue
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._attach(loop)
        races = 0
        spin = self.spin_ns
        while True:
            op = None if self._stopping else self._take()
            if op is not None:
                return self._got(op)
            if self._stopping or self.ended:    # ended is set after the last push: nothing more comes
                self._detach()
                return None
            self.idle.set()
            if spin:
                found, spin = queue.poll(spin), 0       # one spin per wait, then sleep
                if found:
                    self.polled += 1            # came within the spin: taken without a wake-up
                    continue
            if not queue.arm():
                # records queued but none taken: a producer has claimed a slot and not yet
                # published it (a few ns), or drop-oldest evicted under us; let it finish
                self.retracted += 1
                races += 1
                if races > 64:
                    races = 0
                    await asyncio.sleep(0)
                continue
            fut = loop.create_future()
            self._waiter = fut
            self.sleeps += 1
            try:
                await fut
            finally:
                self._waiter = None
                queue.disarm()              # woken, stopped or cancelled: not waiting any more
            self._fresh = True

    def get_sync(self, timeout: Optional[float]) -> Optional[Opportunity]:
        """``get`` for a thread without a loop; None also when ``timeout`` passed."""
        import select

        deadline = None if timeout is None else time.monotonic() + timeout
        queue = self.queue
        spin = self.spin_ns if timeout is None else min(self.spin_ns, int(timeout * 1e9))
        while True:
            op = None if self._stopping else self._take()
            if op is not None:
                return self._got(op)
            if self._stopping or self.ended:
                return None
            self.idle.set()
            if spin > 0:
                found, spin = queue.poll(spin), 0
                if found:
                    self.polled += 1
                    continue
            if not queue.arm():
                self.retracted += 1
                continue
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                queue.disarm()
                return None
            self.sleeps += 1
            try:
                readable, _, _ = select.select([queue.wake_fd], [], [], remaining)
            finally:
                queue.disarm()
            if readable and queue.clear_wake():
                self.wakes += 1
            self._fresh = True

    def end(self) -> None:
        """The source finished and the pipeline drained: once the queue is empty,
        ``get`` returns None (a sleeping consumer is woken)."""
        self.ended = True
        self.queue.wake_now()

    def stop(self) -> None:
        """Wake every waiter with None (from any thread); what is still queued stays
        counted in the queue (in_flight)."""
        self._stopping = True
        self.ended = True
        self.queue.wake_now()
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                here = asyncio.get_running_loop() is loop
            except RuntimeError:                # another thread: the woken get() detaches
                here = False
            if here:                            # the reader would not run once detached: wake it here
                self._on_readable()
                self._detach()

    def __len__(self) -> int:
        return len(self.queue)

    def stats(self) -> dict:
        return {"queued": len(self.queue), "taken": self.taken, "batches": self.batches, "sleeps": self.sleeps,
                "wakes": self.wakes, "polled": self.polled, "retracted": self.retracted,
                "producer_wakes": self.queue.stats()["wakes"]}


class _StrategySlot:
    """A strategy with its interest declarations resolved once, and its counters."""

    __slots__ = ("strategy", "name", "kinds", "pools", "tokens", "min_profit", "calls", "errors",
                 "actions", "last_error", "skipped")

    def __init__(self, strategy: Strategy) -> None:
        if not isinstance(strategy, Strategy):
            raise TypeError(f"strategies must be Strategy instances, got {type(strategy).__name__}")
        self.strategy = strategy
        self.name = strategy.name
        self.kinds = frozenset(strategy.kinds)
        self.pools = frozenset(strategy.pools)
        self.tokens = frozenset(strategy.tokens)
        self.min_profit = strategy.min_profit
        if isinstance(self.min_profit, bool) or not isinstance(self.min_profit, int):
            raise TypeError(f"{self.name}.min_profit must be an int, got {self.min_profit!r}")
        self.calls = self.errors = self.actions = self.skipped = 0
        self.last_error: Optional[str] = None

    def wants(self, op: Opportunity) -> bool:
        if self.kinds and op.kind not in self.kinds:
            return False
        if op.profit < self.min_profit:
            return False
        if self.pools and self.pools.isdisjoint(op.pools):
            return False
        if self.tokens and self.tokens.isdisjoint(op.token_path):
            return False
        return True


class Engine:
    """Source -> pipeline -> strategies -> executor, with state and metrics.

    ``Engine(config, strategies=(...), executor=None)``: the executor defaults to
    the dry run (``DryRunExecutor`` over the pipeline's pool table); a real node
    executor is passed in.  For a node source give the pool ``table`` and the
    V2 ``routers`` (``[(router address, exchange)]``); a replay takes both from
    the recording (its snapshot; the embedded one's routers from its golden file).
    ``recorder`` (a ``tallyio.mempool.Recorder``; node source only) records what the
    source delivered, the Aave market's book and logs included, so that
    ``Engine(CoreConfig.replay(path, <the same aave_* fields>))`` gives the same
    opportunities (docs/liquidations.md, "Recording a market and replaying it").

    Asynchronous face: ``async with Engine(...)``, ``await start()``/``stop()``,
    ``await next_opportunity()``, ``await execute_strategy(op)``.  Synchronous
    face for scripts: ``with Engine(...)`` / ``start_sync()``/``stop_sync()``,
    ``next_opportunity_sync(timeout=None)``, ``execute_strategy_sync(op)``.
    One consumer: call ``next_opportunity`` from one task or thread.
    """

    def __init__(self, config: Optional[CoreConfig] = None, strategies: Iterable[Strategy] = (),
                 executor: Optional[Executor] = None, *, table: Optional[PoolTable] = None,
                 routers: Optional[Sequence[tuple]] = None, registry: Any = None,
                 scheduler: Any = None, recorder: Any = None) -> None:
        self.config = CoreConfig.replay() if config is None else config
        if not isinstance(self.config, CoreConfig):
            raise TypeError(f"Engine: config must be a CoreConfig, got {type(self.config).__name__}")
        self._slots = [_StrategySlot(s) for s in strategies]
        self.strategies = tuple(slot.strategy for slot in self._slots)
        if executor is not None and not isinstance(executor, Executor):
            raise TypeError(f"Engine: executor must follow the Executor protocol (execute, follow, close), "
                            f"got {type(executor).__name__}")
        self._executor_given = executor
        self.executor: Optional[Executor] = executor
        self._table_given = table
        self._routers_given = routers
        self._scheduler_given = scheduler
        self._registry_given = registry
        self.state = "created"
        config = self.config
        self.gate = TradingGate()
        """the trading state (ACTIVE / REDUCING / HALTED) in front of every execution."""
        self.breaker = CircuitBreaker("executor", window="count", window_size=config.breaker_window,
                                      minimum_calls=config.breaker_minimum_calls,
                                      failure_rate_threshold=config.breaker_failure_rate,
                                      slow_call_ns=int(config.breaker_slow_call_ms * 1e6),
                                      open_seconds=config.breaker_open_seconds,
                                      half_open_probes=config.breaker_half_open_probes,
                                      exclude=_probe_not_used)
        """the executor's circuit breaker (tallyio.engine.breaker)."""
        self.context = StrategyContext(dry_run=not self.config.execute)
        self._lock = threading.Lock()
        self._store = None
        self._store_lock = threading.Lock()
        self._store_owner = None
        self._pending: Dict[bytes, PendingTx] = {}
        self._pending_order: Deque[bytes] = collections.deque()
        self._pending_limit = 65536
        self._blocks: Deque[BlockHeader] = collections.deque(maxlen=1024)   # source -> consumer thread
        self._resume_position = 0
        self._executed_keys: set = set()
        self._handed_out = 0
        self._settled = 0
        self._last_handed: Optional[Opportunity] = None
        self._resumed_skipped = 0
        self._results: Dict[ExecutionStatus, int] = {status: 0 for status in ExecutionStatus}
        self._strategy_errors = 0
        self._profit = 0
        self._feeder_done = False
        self._gc_frozen = False
        self._feeder_error: Optional[BaseException] = None
        self._feeder: Optional[threading.Thread] = None
        self._replay_feeder = None
        self._source = None
        self._records_fed = 0
        self._own_txs_skipped = 0
        self._journal_intents = False
        self._started_at = 0.0
        self._stopped_at = 0.0
        self._server = None
        self._own_scheduler = None
        self._stop_event = threading.Event()
        self.lending = None
        """the Aave market followed (``tallyio.mempool.lending_feed.LendingFeed``) when configured."""
        self._recorder = recorder
        """a node source's records are written to it (``tallyio.mempool.Recorder``): a replay of it
        with the same config gives the same opportunities (_record_live)."""
        self.replay_clock: Optional[tuple] = None
        """realtime replay: (first recorded ns, monotonic ns it was paced from); an
        item recorded at ``t`` is due at ``clock[1] + t - clock[0]`` (open-loop latency)."""

    # ---- life cycle ---------------------------------------------------------------------
    async def __aenter__(self) -> "Engine":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def __enter__(self) -> "Engine":
        self.start_sync()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_sync()

    async def start(self) -> None:
        """Restore state from the last checkpoint, start the pipeline on the
        scheduler, the source, the hand-off, the metrics endpoint."""
        self._start(asyncio.get_running_loop())

    def start_sync(self) -> None:
        """``start`` for scripts without an event loop."""
        self._start(None)

    def _start(self, loop: Optional[asyncio.AbstractEventLoop]) -> None:
        with self._lock:
            if self.state != "created":
                raise EngineError(f"Engine.start: the engine is {self.state}; an Engine starts once")
            self.state = "starting"
        try:
            self._open(loop)
        except BaseException:
            self.state = "failed"
            self._close_parts()
            raise
        self.state = "running"

    def _open(self, loop: Optional[asyncio.AbstractEventLoop]) -> None:
        from tallyio.metrics import Registry

        config = self.config
        table, routers = self._table_and_routers()
        self.table = table
        self.routers = routers
        self.context.routers = {exchange: address for address, exchange in routers}
        self.registry = self._registry_given if self._registry_given is not None else Registry()
        self._declare_metrics()
        if config.checkpoint_dir is not None:
            self._open_store(config.checkpoint_dir)
        scheduler = self._scheduler_given
        if scheduler is None:
            from tallyio import NumaScheduler, SchedulerConfig
            scheduler = self._own_scheduler = NumaScheduler(SchedulerConfig(workers_per_numa_node=config.workers))
            scheduler.start()
        self.pipeline = Pipeline(table, scheduler=scheduler, filter_config=config.filter,
                                 analyzer_config=config.analyzer, routers_v2=routers,
                                 ring_capacity=config.ring_capacity,
                                 opportunity_capacity=config.opportunity_capacity,
                                 inline_analysis=config.inline_analysis)
        if config.aave:
            self.lending = self._lending_feed()
        if self.executor is None:
            self.executor = DryRunExecutor(table, {address: exchange for address, exchange in routers},
                                           pending=self._pending_tx,
                                           liquidations=None if self.lending is None else self._dry_liquidation)
        # a real executor's sends are journaled as intents BEFORE they go out: a crash between the
        # node accepting a transaction and its result's record cannot lead to a second send
        self._journal_intents = self._store is not None and type(self.executor) is not DryRunExecutor
        account = getattr(self.executor, "address", None)     # the account a node executor sends from
        if isinstance(account, bytes) and len(account) == 20:
            self.context.account = account
        self.bridge = OpportunityBridge(self.pipeline.opportunities, spin_ns=round(config.consumer_spin_us * 1000))
        for slot in self._slots:
            slot.strategy.on_start(self.context)
        if config.metrics_endpoint is not None:
            from tallyio.metrics import MetricsServer
            host, port = parse_endpoint(config.metrics_endpoint)
            self._server = MetricsServer(self.registry, host=host, port=port).start()
        if config.gc_freeze:
            # the heap alive now (table, strategies, imports) out of every later pass; the
            # collect first, so no garbage is frozen with it; stop() unfreezes
            gc.collect()
            gc.freeze()
            self._gc_frozen = True
        self._started_at = time.monotonic()
        self.bridge.start(loop)
        if config.node_url is None:
            self._feeder = threading.Thread(target=self._feed_replay, name="tallyio-feeder", daemon=True)
            self._feeder.start()
        else:
            from tallyio.mempool import NodeSource
            on_idle = self.pipeline.scan_arbitrage            # a block's standing cycles
            if config.aave:
                on_idle = self._on_idle_lending
            sink = self._feed_live if self._recorder is None else self._record_live(table)
            self._source = NodeSource(config.node_url, sink, pools=table.pool_addresses,
                                      on_idle=on_idle, lending=self.lending).start()

    # ---- the Aave market (liquidations) --------------------------------------------------
    def _lending_feed(self) -> Any:
        """The configured Aave market's feed: its opportunities go into the pipeline's queue."""
        from tallyio.mempool.lending_feed import LendingFeed

        config = self.config
        raw = lambda value: None if value is None else bytes.fromhex(value[2:])  # noqa: E731
        return LendingFeed(raw(config.aave_pool), raw(config.aave_oracle), raw(config.aave_data_provider),
                           self.pipeline.opportunities.push, eth_asset=raw(config.aave_eth_asset),
                           from_block=config.aave_from_block, block_seconds=config.aave_block_seconds)

    def _on_idle_lending(self) -> None:
        """The node has nothing more right now: a block's Syncs and Aave logs are in."""
        self.pipeline.scan_arbitrage()
        self.lending.scan()

    def _feed_lending(self, record: Any) -> bool:
        """The Aave part of the source sink: True when ``record`` was the market's."""
        lending = self.lending
        kind = type(record)
        if kind is PendingTx:
            if record.to == lending.oracle:
                lending.on_pending(record)
            return False                    # the pipeline sees it too (it is a transaction like others)
        if kind is BlockHeader:
            lending.on_head(record)
            return False
        if kind in _AAVE_RECORDS:
            lending.apply(record)
            return True
        return False

    def _record_live(self, table: PoolTable) -> Any:
        """The node source's sink when recording: every record goes to the recorder first (the
        lending path's decoded records as the raw logs they came from, and the market's book
        after each resync: tallyio.mempool.lending_feed), then to ``_feed_live``."""
        recorder, lending, feed = self._recorder, self.lending, self._feed_live
        recorder.snapshot(table)
        if lending is not None:
            lending.on_resync = recorder.write

        def sink(record: Any) -> None:
            if type(record) is PendingTx and record.sender == self.context.account:
                feed(record)            # the engine's own: not analyzed live, so not replayed either
                return
            if type(record) in _AAVE_RECORDS:
                raw = lending.raw_log(record) if lending is not None else None
                if raw is not None:
                    recorder.write(raw)
            else:
                recorder.write(record)
            feed(record)
        return sink

    def _replay_lending_hooks(self) -> dict:
        """The replay feeder's lending hooks (an Aave market configured): the recorded book
        (LENDING_SNAPSHOT) and raw logs go to the LendingFeed, each pending transaction to the
        oracle to its ``on_pending``, and the scan the live engine ran when the node fell idle
        after a block (its head and its logs in, in either order) runs before the first record
        of a later block (then, in lockstep, the consumer settles what it found before the book
        moves on)."""
        lending = self.lending
        if lending is None:
            return {"on_block": self._blocks.append}
        from tallyio.eth.aave import decode_aave_log
        from tallyio.mempool.lending import LendingSnapshot

        lockstep = self.config.replay_lockstep
        newest = [0]                    # the latest block whose head or logs came

        def scan() -> None:
            if lending.scan() and lockstep:
                self._wait_settled()

        def reach(block: int) -> None:
            if block > newest[0]:
                scan()                  # everything of the blocks before it is in
                newest[0] = block

        def on_block(header: BlockHeader) -> None:
            reach(header.number)
            lending.on_head(header)
            self._blocks.append(header)

        def on_other(item: Any) -> bool:
            kind = type(item)
            if kind is RawLog:
                if item.address in lending_addresses():
                    record = decode_aave_log(item.to_rpc(), received_ns=item.received_ns)
                    if record is not None:
                        reach(record.block_number)
                        lending.apply(record)
                        return True
                return False
            if kind is LendingSnapshot:
                lending.load_snapshot(item)
                newest[0] = max(newest[0], item.block)
                return True
            return False

        def lending_addresses() -> frozenset:
            book = lending.book
            if book is None:
                return frozenset()
            if self._lending_addresses is None or self._lending_addresses[0] is not book:
                self._lending_addresses = (book, frozenset(lending.log_addresses(None)))
            return self._lending_addresses[1]

        def on_pending(tx: PendingTx) -> None:
            self._remember(tx)          # the dry run prices a liquidation it triggered at its price
            if lending.on_pending(tx) and lockstep:
                self._wait_settled()

        self._lending_addresses = None
        self._lending_scan = scan
        return {"on_block": on_block, "on_other": on_other, "lending_to": lending.oracle, "on_lending_tx": on_pending}

    def _dry_liquidation(self, action: Any) -> tuple:
        """The dry run of a LiquidationAction: ``LendingFeed.simulate`` on the book (with the
        pending oracle update that triggered it, when one did)."""
        op = action.opportunity
        trigger = None
        if op is not None and op.trigger_tx is not None:
            trigger = self._pending_tx(op.trigger_tx)
        return self.lending.simulate(action.user, action.collateral_asset, action.debt_asset, action.debt_to_cover,
                                     trigger)

    def _table_and_routers(self) -> tuple:
        config = self.config
        routers = self._routers_given
        table = self._table_given
        if config.node_url is not None:
            if table is None or routers is None:
                raise EngineError("Engine: a node source needs table= (the PoolTable of the pools to watch) "
                                  "and routers= ([(router address, exchange), ...])")
        else:
            from tallyio.mempool import ReplaySource
            from tallyio.mempool.recording import embedded_recording
            path = config.replay_path
            if path is None:
                path, golden = embedded_recording()
                if routers is None:
                    routers = [(bytes.fromhex(a[2:]), k) for a, k in golden["routers_v2"]]
            self._replay_path = path
            if table is None:
                table = ReplaySource(path).pool_table()
                if table is None:
                    raise EngineError(f"Engine: the recording {path} has no pool-table snapshot; pass table=")
            if routers is None:
                raise EngineError("Engine: pass routers= ([(router address, exchange), ...]) for this recording")
        routers = [(bytes(address), int(exchange)) for address, exchange in routers]
        return table, routers

    def _declare_metrics(self) -> None:
        reg = self.registry
        self._m_handed = reg.counter("engine_opportunities", "opportunities handed to the consumer")
        self._m_results = reg.counter("engine_results", "execution results by status", labels=("status",))
        self._m_result_children = {s: self._m_results.labels(status=s.name.lower()) for s in ExecutionStatus}
        self._m_errors = reg.counter("engine_strategy_errors", "strategy hooks that raised")
        self._m_rejects = reg.counter("engine_rejected", "executions rejected by the gate")
        self._h_execute = reg.histogram("engine_execute_latency_seconds", "execute_strategy, whole call")
        self._h_strategy = reg.histogram("engine_strategy_latency_seconds", "the strategies' on_opportunity")
        self._h_executor = reg.histogram("engine_executor_latency_seconds", "the executor's execute")
        self._h_handoff = reg.histogram("engine_handoff_latency_seconds",
                                        "detected by the analyzer -> returned by next_opportunity")
        self._g_pnl = reg.gauge("engine_realized_profit", "sum of realized profit (start-token units)")
        self._rec_owner = None

    def _recorders(self) -> tuple:
        """This thread's (handoff, strategy, executor, execute) histogram recorders,
        looked up once per consumer thread rather than once per record."""
        me = threading.get_ident()
        if me != self._rec_owner:
            self._rec = (self._h_handoff.local(), self._h_strategy.local(), self._h_executor.local(),
                         self._h_execute.local())
            self._rec_owner = me
        return self._rec

    # ---- state ------------------------------------------------------------------------
    def _open_store(self, directory: str) -> None:
        from tallyio.state import ENGINE_LAYOUT, RecordReader, RecordType, StateStore

        self._store = StateStore(directory, ENGINE_LAYOUT, _apply_engine_record, policy="none",
                                 every_events=self.config.checkpoint_every_events,
                                 every_ms=self.config.checkpoint_interval_ms, strategies=self.strategies)
        self._store_owner = threading.get_ident()
        state = self._store.state
        self._resume_position = state.get("counters", C_POSITION, "value")
        # results journaled after the last position marker: executed already, not again; and,
        # before it, the standing-arbitrage ones (no trigger to skip: the replayed Sync logs
        # find those cycles again), so every result the journal holds is remembered
        if self._store.journal.next_seq - 1 > 0:
            for rec in RecordReader(os.path.join(directory, "journal.tlog"), from_seq=1):
                if rec.type == RecordType.EXECUTION_RESULT:
                    self._executed_keys.add(_RESULT.unpack(rec.payload)[2])
                elif rec.type == RecordType.ENGINE_EVENT and rec.payload[0] == _ENGINE_EVENT_INTENT:
                    self._executed_keys.add(_INTENT.unpack(rec.payload)[1])     # maybe sent: never again
        self._profit = _signed(state.get("counters", C_PROFIT, "value"))

    def _journal(self, rtype: int, payload: bytes) -> None:
        store = self._store
        if store is None:
            return
        with self._store_lock:
            me = threading.get_ident()
            if me != self._store_owner:
                store.claim_writer()          # ordered by the lock
                self._store_owner = me
            store.record(rtype, payload)

    @property
    def recovery(self):
        """What opening the state found (``tallyio.state.Recovery``), or None without checkpoint_dir."""
        return None if self._store is None else self._store.recovery

    # ---- the source ---------------------------------------------------------------------
    def _remember(self, tx: PendingTx) -> None:
        pending = self._pending
        if tx.hash not in pending:
            pending[tx.hash] = tx
            self._pending_order.append(tx.hash)
            if len(self._pending_order) > self._pending_limit:
                pending.pop(self._pending_order.popleft(), None)

    def _feed_live(self, record: Any) -> None:
        """The NodeSource sink (its thread): remember pending txs for the dry run, feed.
        The engine's own pending transactions are not fed: a backrun is not a victim
        (analyzed alone on the mined state, without the swap it follows, it looks like
        a large opportunity, and the engine would chase its own transactions)."""
        if type(record) is PendingTx:
            if record.sender == self.context.account:
                self._own_txs_skipped += 1
                return
            self._remember(record)
        if self.lending is not None and self._feed_lending(record):
            return
        self.pipeline.feed(record)
        if type(record) is BlockHeader:
            self._blocks.append(record)

    def _deliver_blocks(self) -> None:
        """On the consumer's thread: the headers the source saw since the last call go
        to the context and to each strategy's on_block (a raising hook is counted)."""
        blocks = self._blocks
        while blocks:
            try:
                header = blocks.popleft()
            except IndexError:
                return
            self.context.block_number = header.number
            self.context.base_fee_per_gas = header.base_fee_per_gas
            for slot in self._slots:
                try:
                    slot.strategy.on_block(header)
                except Exception as exc:
                    self._strategy_failed(slot, exc)

    def _strategy_failed(self, slot: "_StrategySlot", exc: Exception) -> None:
        """A strategy hook raised: counted and reported (stats()["strategies"]), the engine lives on."""
        slot.errors += 1
        slot.last_error = f"{type(exc).__name__}: {exc}"
        self._strategy_errors += 1
        self._m_errors.inc()

    def _feed_replay(self) -> None:
        """The replay's feeder thread: tallyio.mempool's native ReplayFeeder walks the
        recording without the GIL (batches into the ring, one worker wake-up per batch,
        realtime pacing by a nogil sleep); this thread comes back to Python only for the
        lockstep barrier before a block, each block header (on_block), and stop checks."""
        from tallyio.mempool._feeder import ReplayFeeder
        from tallyio.state import RecordType

        resume = self._resume_position

        def barrier(position: int) -> bool:
            if not self._wait_settled():
                return False
            if position > resume:
                self._journal(RecordType.ENGINE_EVENT, _POSITION.pack(_ENGINE_EVENT_POSITION, position))
            return True

        try:
            feeder = self._replay_feeder = ReplayFeeder(self.pipeline, self._replay_path,
                                                        realtime=self.config.replay_realtime,
                                                        skip_pending=resume,
                                                        spin_ns=round(self.config.replay_spin_us * 1000),
                                                        inline_analysis=self.config.inline_analysis)
            if feeder.realtime:
                self.replay_clock = feeder.start_clock()
            info = feeder.run(on_barrier=barrier if self.config.replay_lockstep else None,
                              should_stop=self._stopping, **self._replay_lending_hooks())
            self._records_fed = info["items"] - info["skipped"]
            self.pipeline.drain()
            if self.lending is not None and not self._stopping():
                self._lending_scan()            # the last block's scan (the live engine's last idle)
        except BaseException as exc:            # reported by stats()/health() and stop()
            self._feeder_error = exc
        finally:
            self._feeder_done = True
            self.bridge.end()                   # wakes a consumer waiting for what no longer comes

    def _pending_tx(self, tx_hash: bytes) -> Optional[PendingTx]:
        """The dry run's view of a trigger: a live source's remembered transaction, or
        the replay feeder's (read back from the recording)."""
        tx = self._pending.get(tx_hash)
        if tx is None and self._replay_feeder is not None:
            tx = self._replay_feeder.pending_tx(tx_hash)
        return tx

    def _stopping(self) -> bool:
        return self.state in ("stopping", "stopped")

    def _wait_settled(self) -> bool:
        """Lockstep: until every opportunity found so far was executed or passed over."""
        self.pipeline.drain()
        queue, bridge = self.pipeline.opportunities, self.bridge
        sleep = 20e-6
        while True:
            # every opportunity the queue accepted was taken by the consumer (counted when
            # popped, so none can hide between the queue, the collector and the deque), and
            # the consumer is done with all it took
            q = queue.stats()
            taken = bridge.taken
            if q["received"] - q["dropped"] == taken + bridge.discarded and self._settled >= taken:
                return True
            if self._stopping():
                return False
            # the consumer sets bridge.idle when it goes to sleep: wait for that, not a poll
            # (the timeout only backs up a settle that came from _finish, not from a sleep)
            bridge.idle.wait(sleep)
            bridge.idle.clear()
            sleep = min(sleep * 2, 20e-3)

    # ---- opportunities ----------------------------------------------------------------
    def _check_running(self, what: str) -> None:
        if self.state != "running" and self.state != "stopping":
            raise EngineError(f"Engine.{what}: the engine is {self.state} (call start() first)")

    def _hand_out(self, op: Optional[Opportunity]) -> Optional[Opportunity]:
        if self._blocks:
            self._deliver_blocks()
        if op is None:
            return None
        self._handed_out += 1
        self._last_handed = op
        self._m_handed.inc()
        self._recorders()[0].record(max(0, time.monotonic_ns() - op.detected_ns))
        return op

    def _skip_resumed(self, op: Opportunity) -> bool:
        if self._executed_keys and opportunity_key(op) in self._executed_keys:
            self._resumed_skipped += 1
            return True
        return False

    async def next_opportunity(self) -> Optional[Opportunity]:
        """The next opportunity; None once the source ended (a replay's end) or
        ``stop()`` was called (also for a call already waiting)."""
        self._check_running("next_opportunity")
        self._settled = self.bridge.taken      # the consumer is done with what it had
        while True:
            op = await self.bridge.get()
            if op is None or not self._skip_resumed(op):
                return self._hand_out(op)
            self._settled = self.bridge.taken

    def next_opportunity_sync(self, timeout: Optional[float] = None) -> Optional[Opportunity]:
        """``next_opportunity`` for scripts: waits up to ``timeout`` seconds (None:
        until the source ends or stop()); None when nothing came."""
        self._check_running("next_opportunity_sync")
        self._settled = self.bridge.taken
        while True:
            op = self.bridge.get_sync(timeout)
            if op is None or not self._skip_resumed(op):
                return self._hand_out(op)
            self._settled = self.bridge.taken

    # ---- execution ------------------------------------------------------------------------
    def _admit(self, actions: Sequence[Action], permit: int = 0) -> tuple:
        """The trading gate and the breaker, in one place: ``(None, permit)`` to go on,
        else ``(why not, 0)``.  The gate looks at each action (REDUCING lets through
        only those that do not open exposure); the breaker's permit is taken last
        (unless ``_decide`` already holds the half-open probe that ended an open
        period), so a refused gate never spends a half-open probe."""
        gate = self.gate
        if gate._state is not _ACTIVE:
            for action in actions:
                reason = gate.refusal(action)
                if reason is not None:
                    gate.refused += 1
                    self._give_back(permit)
                    return reason, 0
        gate.admitted += 1
        if not permit:
            permit = self.breaker.permit()
        if not permit:
            return f"circuit breaker {self.breaker.name} is {self.breaker.state.name}", 0
        return None, permit

    def _record_outcome(self, result: ExecutionResult, duration_ns: int, permit: int,
                        exc: Optional[BaseException] = None) -> None:
        """What the breaker learns from an execution: the executor's exception, a
        FAILED result (a refused or failed send), or a success -- slow ones count as
        failures inside the breaker.  A REVERTED action is an expected outcome of
        the market (raced, or sized on a state that moved), not a fault of the
        executor: it does not open the breaker (the P&L and error rate show it)."""
        if exc is not None:
            self.breaker.record_exception(exc, duration_ns, permit)
        elif result.status == ExecutionStatus.FAILED:
            self.breaker.record_failure(duration_ns, permit)
        else:
            self.breaker.record_success(duration_ns, permit)

    @property
    def trading_state(self) -> str:
        """``"ACTIVE"``, ``"REDUCING"`` or ``"HALTED"`` (the gate's state)."""
        return self.gate.state.name

    def halt(self, reason: str = "halted by the operator") -> None:
        """Stop admitting executions (trading state HALTED) until :meth:`resume`."""
        self.gate.halt(str(reason))

    def reduce(self, reason: str = "reducing exposure") -> None:
        """Admit only actions that do not open exposure (trading state REDUCING)."""
        self.gate.reduce(str(reason))

    def resume(self) -> None:
        """Admit executions again (trading state ACTIVE)."""
        self.gate.resume("resumed")

    def _give_back(self, permit: int) -> None:
        """A probe permit taken by ``_decide`` and not spent on a call: an excluded
        outcome, so the half-open budget is not short of it (a permit that is not
        a probe's is a no-op there)."""
        if permit:
            self.breaker.record_exception(_ProbeNotUsed(), 0, permit)

    def _decide(self, op: Opportunity) -> tuple:
        """(actions, contributing strategy slots, rejection reason or None, permit).
        ``permit`` is non-zero when the breaker was OPEN and this call took the
        first half-open probe: ``_admit`` spends it (or gives it back)."""
        gate = self.gate
        if gate._state is _HALTED:                       # nothing can pass: spare the strategies
            gate.refused += 1
            return [], [], gate.refusal(), 0
        probe = 0
        breaker = self.breaker
        if breaker.state is _OPEN:                       # refused without running Python strategy code
            # counted as a refusal by the breaker -- until open_seconds passed: then this acquire
            # half-opens it and IS the first probe, which must be carried to the executor (thrown
            # away, the probe would never report and the breaker would never close)
            probe = breaker.permit()
            if not probe:
                return [], [], f"circuit breaker {breaker.name} is OPEN", 0
        actions: List[Action] = []
        contributors = []
        ctx = self.context
        started = _perf_ns()
        for slot in self._slots:
            if not slot.wants(op):
                slot.skipped += 1
                continue
            slot.calls += 1
            try:
                produced = slot.strategy.on_opportunity(op, ctx)
            except Exception as exc:            # a strategy bug: counted, reported, engine lives on
                self._strategy_failed(slot, exc)
                continue
            if produced:
                if type(produced) is not list:
                    try:
                        produced = list(produced)
                    except Exception as exc:    # not iterable: the strategy's bug, like a raise
                        self._strategy_failed(slot, exc)
                        continue
                slot.actions += len(produced)
                actions += produced
                contributors.append(slot)
        self._rec[1].record(_perf_ns() - started)
        if not actions:
            self._give_back(probe)
            errors = [f"{slot.name}: {slot.last_error}" for slot in self._slots if slot.last_error]
            return [], [], "no actions" + (f" (strategy errors: {'; '.join(errors)})" if errors else ""), 0
        return actions, contributors, None, probe

    def _finish(self, op: Opportunity, result: ExecutionResult, contributors: list, started: int) -> ExecutionResult:
        now = _perf_ns()
        if result.opportunity is None or result.expected_profit is None:
            result = result._replace(opportunity=op if result.opportunity is None else result.opportunity,
                                     expected_profit=op.profit if result.expected_profit is None
                                     else result.expected_profit)
        status = result.status
        self._results[status] += 1
        self._m_result_children[status].inc()
        if status is not _REJECTED:
            profit = result.realized_profit
            if profit:
                self._profit += profit
                self._g_pnl.set(float(self._profit))
            if self._store is not None:
                self._journal(RecordType.EXECUTION_RESULT,
                              _RESULT.pack(int(status), max(-(1 << 63), min(profit or 0, (1 << 63) - 1)),
                                           opportunity_key(op)))
        for slot in contributors:
            try:
                slot.strategy.on_result(result)
            except Exception as exc:
                self._strategy_failed(slot, exc)
        self._rec[3].record(now - started)
        if op is self._last_handed:
            self._settled = self.bridge.taken
        return result

    async def execute_strategy(self, opportunity: Opportunity) -> ExecutionResult:
        """Run the strategies that want ``opportunity`` and execute their actions:
        trading gate -> breaker -> strategies (by interest) -> actions -> executor.
        Never raises for a strategy's or the executor's failure: the result says
        (``REJECTED`` with the reason, ``FAILED`` with the error)."""
        state = self.state
        if state != "running" and state != "stopping":
            self._check_running("execute_strategy")
        if type(opportunity) is not Opportunity and not isinstance(opportunity, Opportunity):
            raise TypeError(f"execute_strategy takes an Opportunity, got {type(opportunity).__name__}")
        started = _perf_ns()
        if self._rec_owner != _get_ident():      # this thread's histogram recorders, once
            self._recorders()
        actions, contributors, reason, permit = self._decide(opportunity)
        if reason is None:
            reason, permit = self._admit(actions, permit)
        if reason is not None:
            self._m_rejects.inc()
            return self._finish(opportunity, ExecutionResult.rejected(reason, opportunity), contributors, started)
        if self._journal_intents:
            self._journal(RecordType.ENGINE_EVENT, _INTENT.pack(_ENGINE_EVENT_INTENT, opportunity_key(opportunity)))
        executor = self.executor
        t0 = _perf_ns()
        error = None
        try:
            if type(executor) is DryRunExecutor:     # never suspends: no coroutine to build and await
                result = executor.execute_now(actions)
            else:
                result = await executor.execute(actions, self.context)
        except asyncio.CancelledError:
            self._give_back(permit)     # no outcome: a half-open probe's place must not be lost with it
            raise
        except Exception as exc:
            error = exc
            result = ExecutionResult(ExecutionStatus.FAILED, error=f"executor raised {type(exc).__name__}: {exc}",
                                     opportunity=opportunity)
        spent = _perf_ns() - t0
        self._rec[2].record(spent)
        if error is None and result.status is not _FAILED:
            self.breaker.record_success(spent, permit)     # _record_outcome's common case, inline
        else:
            self._record_outcome(result, spent, permit, error)
        return self._finish(opportunity, result, contributors, started)

    def execute_strategy_sync(self, opportunity: Opportunity) -> ExecutionResult:
        """``execute_strategy`` for scripts (runs the executor's coroutine to completion
        on a private loop; do not call it from inside a running event loop)."""
        if type(self.executor) is DryRunExecutor:
            # the dry run never suspends and never asks for a loop: drive the coroutine by hand
            coro = self.execute_strategy(opportunity)
            try:
                coro.send(None)
            except StopIteration as done:
                return done.value
            coro.close()
            raise EngineError("execute_strategy_sync: the dry run suspended (it never should)")
        return asyncio.run(self.execute_strategy(opportunity))

    # ---- stop ---------------------------------------------------------------------------------
    async def stop(self) -> None:
        """Stop the source, drain the pipeline, final checkpoint, close everything.
        A ``next_opportunity`` waiting now returns None.  Idempotent."""
        self._stop()

    def stop_sync(self) -> None:
        """``stop`` for scripts."""
        self._stop()

    def _stop(self) -> None:
        with self._lock:
            if self.state in ("stopping", "stopped", "created"):
                if self.state == "created":
                    self.state = "stopped"
                return
            self.state = "stopping"
        self._stop_event.set()
        try:
            if self._source is not None:
                self._source.close()
            if self._feeder is not None:
                self._feeder.join()
            self._feeder_done = True
            self.pipeline.drain()
            self.bridge.stop()
            for slot in self._slots:
                try:
                    slot.strategy.on_stop()
                except Exception as exc:
                    slot.errors += 1
                    slot.last_error = f"{type(exc).__name__}: {exc}"
        finally:
            self._stopped_at = time.monotonic()
            self._close_parts()
            self.state = "stopped"

    def _close_parts(self) -> None:
        for closer in (lambda: self._server and self._server.stop(),
                       lambda: self.executor is not None and self.executor.close(),
                       lambda: hasattr(self, "pipeline") and self.pipeline.close(),
                       lambda: self._own_scheduler is not None and self._own_scheduler.stop(),
                       lambda: self._store is not None and self._store.close(),
                       self._unfreeze_gc):
            try:
                closer()
            except Exception:                    # every part gets closed; the first error is not lost:
                if self._feeder_error is None:   # it is reported by health()
                    import sys
                    self._feeder_error = sys.exc_info()[1]

    def _unfreeze_gc(self) -> None:
        if self._gc_frozen:
            self._gc_frozen = False
            gc.unfreeze()

    def abandon(self) -> None:
        """Close the state WITHOUT a final checkpoint (what a crash leaves); for tests."""
        if self._store is not None:
            self._store.abandon()

    def wait_connected(self, timeout: float = 30.0) -> bool:
        """A node source: wait until it is connected and subscribed (True), or
        ``timeout`` seconds passed (False).  A replay is always "connected"."""
        if self._source is None:
            return True
        return self._source.wait_connected(timeout)

    # ---- what it is doing -----------------------------------------------------------------
    def health(self) -> dict:
        """Is it working: running state, trading state, breakers, source, errors."""
        error = None if self._feeder_error is None else f"{type(self._feeder_error).__name__}: {self._feeder_error}"
        return {"state": self.state, "trading_state": self.trading_state,
                "breakers": self._breaker_states(),
                "source": self.config.source, "source_ended": bool(self._feeder_done),
                "source_error": error, "strategy_errors": self._strategy_errors,
                "ok": self.state == "running" and error is None and self.trading_state != "HALTED"}

    def _breaker_states(self) -> dict:
        stats = self.breaker.stats()
        return {self.breaker.name: {"state": stats.state.name, "calls": stats.calls, "failures": stats.failures,
                                    "slow": stats.slow, "rejected": stats.rejected,
                                    "failure_rate": stats.failure_rate}}

    def stats(self) -> dict:
        """Everything counted: running/trading state, breaker states, queue depths
        and drops (every stage), throughput, per-stage latency percentiles (ns),
        error rate, CPU and memory.  The opportunities section keeps
        ``received == processed + dropped + in_flight``."""
        import psutil

        pipe = self.pipeline.stats() if hasattr(self, "pipeline") else {}
        queue = pipe.get("opportunities", {})
        bridge = self.bridge.stats() if hasattr(self, "bridge") else {}
        received = queue.get("received", 0)
        dropped = queue.get("dropped", 0) + bridge.get("discarded", 0)
        in_flight = queue.get("in_flight", 0) + bridge.get("buffered", 0)
        processed = self._handed_out + self._resumed_skipped
        end = self._stopped_at or time.monotonic()
        elapsed = max(1e-9, end - self._started_at) if self._started_at else 0.0
        executions = sum(n for status, n in self._results.items() if status != _REJECTED)
        failures = self._results[ExecutionStatus.FAILED] + self._results[ExecutionStatus.REVERTED]
        latency = {}
        for stage, family in (("handoff", "_h_handoff"), ("strategy", "_h_strategy"),
                              ("executor", "_h_executor"), ("execute", "_h_execute")):
            fam = getattr(self, family, None)
            if fam is None:
                continue
            h = fam.merged()
            latency[stage] = {"count": h.count, **({f"p{p:g}": h.percentile(p) for p in (50, 90, 99, 99.9)}
                                                   if h.count else {})}
        proc = psutil.Process()
        return {
            "state": self.state, "trading_state": self.trading_state, "breakers": self._breaker_states(),
            "source": {"kind": self.config.source, "records_fed": self._records_fed,
                       "ended": bool(self._feeder_done), "resume_position": self._resume_position,
                       "own_txs_skipped": self._own_txs_skipped,
                       "node": None if self._source is None else self._source.stats()},
            "opportunities": {"received": received, "processed": processed, "handed_out": self._handed_out,
                              "skipped_already_executed": self._resumed_skipped, "dropped": dropped,
                              "in_flight": in_flight},
            "bridge": bridge,
            "pipeline": pipe,
            "lending": None if self.lending is None else self.lending.stats(),
            "results": {status.name: n for status, n in self._results.items()},
            "realized_profit": self._profit,
            "strategies": {slot.name: {"calls": slot.calls, "skipped": slot.skipped, "actions": slot.actions,
                                       "errors": slot.errors, "last_error": slot.last_error}
                           for slot in self._slots},
            "throughput": {"seconds": elapsed,
                           "tx_per_s": pipe.get("ring", {}).get("received", 0) / elapsed if elapsed else 0.0,
                           "opportunities_per_s": self._handed_out / elapsed if elapsed else 0.0,
                           "executions_per_s": executions / elapsed if elapsed else 0.0},
            "latency_ns": latency,
            "error_rate": (failures + self._strategy_errors) / max(1, executions + self._strategy_errors),
            "process": {"cpu_percent": proc.cpu_percent(None), "cpu_seconds": sum(proc.cpu_times()[:2]),
                        "rss_bytes": proc.memory_info().rss, "gc_frozen_objects": gc.get_freeze_count(),
                        "gc_collections": [generation["collections"] for generation in gc.get_stats()]},
            "metrics_url": None if self._server is None else self._server.url,
        }

    def __repr__(self) -> str:
        return f"<Engine {self.state} source={self.config.source} strategies={[s.name for s in self._slots]}>"


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _apply_engine_record(state: Any, record: Any) -> None:
    """The StateStore's apply for the engine's records (deterministic: runs live and on replay)."""
    if record.type == RecordType.EXECUTION_RESULT:
        status, profit, _ = _RESULT.unpack(record.payload)
        state.add("counters", C_EXECUTED, "value", 1)
        total = (state.get("counters", C_PROFIT, "value") + profit) & _MASK64
        state.write("counters", C_PROFIT, value=total)
        if status in (ExecutionStatus.FAILED, ExecutionStatus.REVERTED):
            state.add("counters", C_FAILED, "value", 1)
        state.add("pnl", 0, "trades", 1)
        state.write("pnl", 0, realized_eth=_signed(total) / 1e18)
    elif record.type == RecordType.ENGINE_EVENT and record.payload[0] == _ENGINE_EVENT_POSITION:
        kind, position = _POSITION.unpack(record.payload)
        if kind == _ENGINE_EVENT_POSITION:
            state.write("counters", C_POSITION, value=position)
            state.write("counters", C_POSITION_SEQ, value=record.seq)

"""The engine's asv benchmarks under the seed's three names:
``engine_execution`` (execute_strategy: gate, a Python strategy, the dry run,
the result), ``mempool_analysis`` (one pending swap fed to the pipeline until
its opportunities are queued) and ``state_sync`` (a Sync event journaled and
applied to the engine's state).  ``tallyio bench --group engine`` measures the
same three with percentiles and a Python searcher as the peer.
"""
import shutil
import struct
import tempfile

from tallyio.engine.config import CoreConfig
from tallyio.engine.engine import Engine
from tallyio.engine.strategy import CycleStrategy
from tallyio.eth.types import PendingTx
from tallyio.mempool import FilterConfig, Pipeline, ReplaySource
from tallyio.mempool.recording import embedded_recording
from tallyio.state import ENGINE_LAYOUT, RecordType, StateStore


class EngineExecution:
    """One execute_strategy on the embedded replay's first opportunity (sync face)."""

    def setup(self):
        self.engine = Engine(CoreConfig.replay(), strategies=[CycleStrategy()])
        self.engine.start_sync()
        self.op = self.engine.next_opportunity_sync(timeout=60)
        if self.op is None:
            raise RuntimeError("the embedded replay produced no opportunity")

    def teardown(self):
        self.engine.stop_sync()

    def time_engine_execution(self):
        self.engine.execute_strategy_sync(self.op)


class MempoolAnalysis:
    """Pipeline.feed of one pending swap, drained, its opportunities taken."""

    def setup(self):
        path, golden = embedded_recording()
        src = ReplaySource(path)
        self.txs = [item for item in src if isinstance(item, PendingTx)]
        routers = [(bytes.fromhex(a[2:]), k) for a, k in golden["routers_v2"]]
        self.pipe = Pipeline(src.pool_table(), routers_v2=routers,
                             filter_config=FilterConfig(recent_hashes=1, check_nonces=False))
        self.i = 0

    def teardown(self):
        self.pipe.close()

    def time_mempool_analysis(self):
        self.i += 1
        self.pipe.feed(self.txs[self.i % len(self.txs)])
        self.pipe.drain()
        self.pipe.opportunities.get_many(64)


_SYNC = struct.Struct("<IQQ")


def _apply(state, record):
    pool, r0, r1 = _SYNC.unpack(record.payload)
    state.write("pools", pool, reserve0_lo=r0, reserve0_hi=0, reserve1_lo=r1, reserve1_hi=0,
                block=record.seq, log_index=0)


class StateSync:
    """StateStore.record of a Sync event (journal + apply; a checkpoint every 100)."""

    def setup(self):
        self.dir = tempfile.mkdtemp()
        self.store = StateStore(self.dir, ENGINE_LAYOUT, _apply, every_events=100, every_ms=60_000)
        self.i = 0

    def teardown(self):
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def time_state_sync(self):
        self.i += 1
        self.store.record(RecordType.SYNC_EVENT, _SYNC.pack(self.i % 64, 10**18 + self.i, 2 * 10**18))

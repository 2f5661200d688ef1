"""tallyio.mempool benchmarks: ``mempool_analysis`` (the seed's name: filter +
decode + analyze of a V2 router swap against a 1,000-pool table, on this thread
without the GIL, as a worker runs it), beside the Python searcher peer (eth-abi
decoding, Python integer math, the same cycles), and the embedded recording
replayed through 2 workers."""

import numpy as np

from tallyio.bench._mempool import PythonSearcher, _market
from tallyio.mempool import Pipeline, ReplaySource
from tallyio.mempool._pipeline import bench_tx_path
from tallyio.mempool.recording import embedded_recording
from tallyio.mempool.synthetic import ROUTERS, swap_tx

N_TX = 200
ROUTER_LIST = [(ROUTERS[0], 0), (ROUTERS[1], 1)]


class MempoolAnalysis:
    """200 V2 swaps through filter + decode + analyze (time per call: the 200)."""

    def setup(self):
        rng, self.pools, self.table = _market(1000)
        self.txs = [swap_tx(rng, self.pools, ROUTERS[k % 2], k) for k in range(N_TX)]
        self.out = np.zeros(N_TX, dtype=np.uint64)
        self.searcher = PythonSearcher(self.table, dict(ROUTER_LIST))

    def time_mempool_analysis(self):
        bench_tx_path(self.table, self.txs, ROUTER_LIST, self.out)

    def time_python_searcher(self):
        for tx in self.txs:
            self.searcher.process(tx)


class ReplayEmbedded:
    """The embedded recording read natively and analyzed on the scheduler's workers."""

    def setup(self):
        self.path, golden = embedded_recording()
        self.routers = [(bytes.fromhex(a[2:]), k) for a, k in golden["routers_v2"]]
        self.table = ReplaySource(self.path).pool_table()

    def time_replay_file(self):
        with Pipeline(self.table, routers_v2=self.routers) as pipe:
            pipe.replay_file(self.path)

    def track_opportunities(self):
        with Pipeline(self.table, routers_v2=self.routers) as pipe:
            pipe.replay_file(self.path)
            return len(pipe.opportunities.get_many(1 << 16))

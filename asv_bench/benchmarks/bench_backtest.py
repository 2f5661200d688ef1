"""tallyio.backtest benchmarks: the embedded recording cut into segments of 3
blocks, x two CycleStrategy settings, run in this process (``sequential``: the
per-task cost without Dask) and on a LocalCluster of 2 worker processes started
in setup (outside the timing), so the history shows both the task cost and
Dask's overhead. ``track_`` records the number of tasks each run has."""
import shutil
import tempfile

from tallyio.backtest import Backtest
from tallyio.engine.strategy import CycleStrategy

GRID = {"cycle": (CycleStrategy, {"min_profit": [0, 3000]})}


class Sequential:
    timeout = 600

    def setup(self):
        self.bt = Backtest(strategies=GRID, blocks_per_segment=3)

    def teardown(self):
        self.bt.close()

    def time_sequential(self):
        self.bt.run(sequential=True)

    def track_tasks(self):
        return len(self.bt.tasks())


class LocalCluster:
    timeout = 900

    def setup(self):
        try:
            from distributed import Client, LocalCluster as Cluster
        except ImportError:
            raise NotImplementedError("the backtest extra (dask[distributed]) is not installed") from None
        self.folder = tempfile.mkdtemp(prefix="tallyio-asv-dask-")
        self.cluster = Cluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                               local_directory=self.folder)
        self.client = Client(self.cluster)
        self.bt = Backtest(strategies=GRID, blocks_per_segment=3)
        self.bt.run(self.client)            # warm: every worker has imported tallyio

    def teardown(self):
        self.bt.close()
        self.client.close()
        self.cluster.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def time_two_workers(self):
        self.bt.run(self.client)

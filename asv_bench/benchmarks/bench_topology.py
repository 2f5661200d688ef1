"""asv benchmarks for the topology and the placement decision.

* NumaTopology.detect on a fake sysfs tree (online, nodeN/cpulist,
  nodeN/distance, nodeN/meminfo) built in setup, for 1, 2 and 4 nodes of 2 CPUs;
* LoadBalancer.select_worker (the placement a submit makes: least loaded
  node, then the better of two random workers) on a scheduler laid out over an
  injected NumaTopology.uniform(4, 2), 2 workers per node; CPU affinity is off
  because those CPUs do not exist here.
"""
import shutil
import tempfile
from pathlib import Path

from tallyio import NumaScheduler, NumaTopology, SchedulerConfig

CPUS_PER_NODE = 2


def _write_tree(root, nodes):
    """A fake /sys/devices/system/node with `nodes` nodes of CPUS_PER_NODE CPUs."""
    (root / "online").write_text(f"0-{nodes - 1}\n" if nodes > 1 else "0\n")
    for node in range(nodes):
        node_dir = root / f"node{node}"
        node_dir.mkdir()
        first = node * CPUS_PER_NODE
        (node_dir / "cpulist").write_text(f"{first}-{first + CPUS_PER_NODE - 1}\n")
        (node_dir / "distance").write_text(" ".join("10" if other == node else "21" for other in range(nodes)) + "\n")
        (node_dir / "meminfo").write_text(f"Node {node} MemTotal:       16384000 kB\n"
                                          f"Node {node} MemFree:        8192000 kB\n")


class Detect:
    """NumaTopology.detect() reading a fake sysfs tree."""

    params = [1, 2, 4]
    param_names = ["nodes"]

    def setup(self, nodes):
        self.root = Path(tempfile.mkdtemp(prefix="tallyio-asv-sysfs-"))
        _write_tree(self.root, nodes)
        self.allowed = range(nodes * CPUS_PER_NODE)

    def teardown(self, nodes):
        shutil.rmtree(self.root)

    def time_detect(self, nodes):
        NumaTopology.detect(self.root, allowed_cpus=self.allowed)


class SelectWorker:
    """1000 placement decisions on 4 injected nodes x 2 workers."""

    params = [None, 2]
    param_names = ["preferred_node"]

    def setup(self, preferred_node):
        config = SchedulerConfig(workers_per_numa_node=2, enable_cpu_affinity=False)
        self.scheduler = NumaScheduler(config, topology=NumaTopology.uniform(4, CPUS_PER_NODE)).start()

    def teardown(self, preferred_node):
        self.scheduler.stop()

    def time_select_worker(self, preferred_node):
        select = self.scheduler.balancer.select_worker
        for _ in range(1000):
            select(preferred_node)

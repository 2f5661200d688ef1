"""Issue 9, item 7 and the default worker count: settings a machine cannot meet
end in a clear ResourceLimitError before anything is allocated (never in the
OOM killer), the estimate behind it matches what the core really allocates,
topologies grow linearly with their node count, and the default puts no more
workers on a node than it has usable CPUs (at most 4)."""
import json
import os
import subprocess
import sys
import textwrap
import tracemalloc

import pytest
from conftest import subprocess_env

from tallyio import ConfigError, NumaNode, NumaScheduler, NumaTopology, SchedulerConfig
from tallyio.errors import ResourceLimitError
from tallyio.resources import VICTIM_BYTES, machine_memory_bytes, scheduler_footprint, scheduler_memory_bytes
from tallyio.topology import NodeDistances



def _run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    # the child imports the tallyio under test (CI installs it; the source tree has no build)
    environ = subprocess_env(**env)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=environ, cwd=environ["PYTHONPATH"].split(os.pathsep)[0], timeout=240)


# ---- the estimate is what the core allocates -------------------------------------------------------

@pytest.mark.parametrize("capacity, workers", [(2**19, 2), (2**16, 4)])
def test_footprint_matches_what_the_scheduler_really_maps(capacity, workers):
    # The process's virtual size grows by what calloc/aligned_alloc hand out once
    # glibc maps every block above 64 KiB on its own (fixed mmap threshold, one
    # arena) and thread stacks are small: then the growth over start() is the
    # scheduler's allocations, which the estimate must match within 5 %.
    out = _run_python(f"""
        import json, threading
        threading.stack_size(256 * 1024)
        from tallyio import NumaScheduler, NumaTopology, SchedulerConfig
        def vm():
            with open("/proc/self/status") as fh:
                return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:"))
        topology = NumaTopology.uniform(1, {workers})
        config = SchedulerConfig(workers_per_numa_node={workers}, queue_capacity={capacity},
                                 enable_cpu_affinity=False)
        before = vm()
        scheduler = NumaScheduler(config, topology=topology).start()
        grown = vm() - before
        scheduler.stop()
        print(json.dumps(grown))
    """, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_ARENA_MAX="1")
    assert out.returncode == 0, out.stderr
    measured = json.loads(out.stdout)
    estimate = scheduler_memory_bytes(workers, capacity)
    assert abs(measured - estimate) <= 0.05 * estimate, (measured, estimate)


def test_footprint_parts_scale_as_the_core_allocates():
    one = scheduler_footprint(workers=1, queue_capacity=1024)
    four = scheduler_footprint(workers=4, queue_capacity=1024)
    assert four.queues == 4 * one.queues and four.per_worker == 4 * one.per_worker
    assert one.victims == 0 and four.victims == 4 * 3 * VICTIM_BYTES     # every worker lists the others
    # capacity is rounded up to a power of two, as SchedulerCore does
    assert scheduler_footprint(2, 1000) == scheduler_footprint(2, 1024)
    # the issue's reproducer: queue_capacity=2**24 with 4 workers is about 30 GiB
    assert 28 * 2**30 < scheduler_memory_bytes(4, 2**24) < 32 * 2**30


# ---- what cannot fit is refused, clearly, before allocating --------------------------------------

def test_issue_reproducer_queue_capacity_2_24_is_out_of_range():
    with pytest.raises(ConfigError, match=r"^queue_capacity must be between 2 and 4194304, got 16777216$"):
        SchedulerConfig(queue_capacity=2**24)


def test_layout_larger_than_the_machine_raises_resource_limit_error():
    # 64 nodes x 1,024 workers (the issue's other reproducer), at the largest queues
    config = SchedulerConfig(workers_per_numa_node=1024, queue_capacity=2**22, enable_cpu_affinity=False)
    with pytest.raises(ResourceLimitError) as caught:
        NumaScheduler(config, topology=NumaTopology.uniform(64, 1))
    error = caught.value
    assert isinstance(error, MemoryError) and isinstance(error, ConfigError)
    message = str(error)
    for needed in ("workers_per_numa_node=1024", "64 node(s)", "65536 workers", "queue_capacity=4194304",
                   "GiB", "lower queue_capacity or workers_per_numa_node"):
        assert needed in message
    limit = machine_memory_bytes()
    assert limit is not None and limit[1] in message     # "this machine's N GiB of RAM" (or the cgroup's)


def test_a_million_nodes_build_and_the_scheduler_refuses_them():
    # NumaTopology.uniform(2**20, 1) was quadratic (8,000 nodes: 39 s, 4.2 GB; 2**20 died at 24 GB)
    topology = NumaTopology.uniform(2**20, 1)
    assert topology.node_count() == 2**20 and len(topology.all_cpus()) == 2**20
    assert topology.distance(0, 2**20 - 1) == 21 and topology.distance(7, 7) == 10
    with pytest.raises(ResourceLimitError, match=r"1048576 workers"):
        NumaScheduler(topology=topology)


def test_too_many_threads_for_the_process_limit(tmp_path):
    # a real RLIMIT_NPROC, lowered in a child process (not a mock): 300 workers > 200 threads
    out = _run_python("""
        import resource
        _, hard = resource.getrlimit(resource.RLIMIT_NPROC)
        resource.setrlimit(resource.RLIMIT_NPROC, (200, hard))
        from tallyio import NumaScheduler, NumaTopology, SchedulerConfig
        from tallyio.errors import ResourceLimitError
        config = SchedulerConfig(workers_per_numa_node=300, queue_capacity=2, enable_cpu_affinity=False)
        try:
            NumaScheduler(config, topology=NumaTopology.uniform(1, 1))
        except ResourceLimitError as exc:
            print(exc)
    """)
    assert out.returncode == 0, out.stderr
    assert "300 workers" in out.stdout and "RLIMIT_NPROC=200" in out.stdout


# ---- topologies are linear in their node count -----------------------------------------------------

def _traced_bytes_per_node(nodes: int) -> float:
    tracemalloc.start()
    try:
        topology = NumaTopology.uniform(nodes, 1)
        current, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert topology.node_count() == nodes
    return current / nodes


def test_uniform_topology_memory_is_linear_in_nodes():
    small, large = _traced_bytes_per_node(2**10), _traced_bytes_per_node(2**14)
    # quadratic storage would make a node 16x dearer at 16x the nodes; here it costs the same
    assert large < 1.3 * small and large < 1024, (small, large)


def test_uniform_nodes_share_one_id_range():
    topology = NumaTopology.uniform(1000, 2)
    ranges = {id(node.distances._ids) for node in topology.nodes}
    assert len(ranges) == 1 and all(node.distances.is_uniform for node in topology.nodes)
    assert sum(len(node.distances) for node in topology.nodes) == 1000 * 1000    # logically complete


def test_uniform_topology_equals_the_explicit_one():
    explicit = NumaTopology([NumaNode(n, (2 * n, 2 * n + 1), None,
                                      {o: 10 if o == n else 30 for o in range(3)}) for n in range(3)])
    uniform = NumaTopology.uniform(3, 2, remote_distance=30)
    assert uniform == explicit and hash(uniform) == hash(explicit)
    assert uniform.to_dict() == explicit.to_dict() and uniform.describe() == explicit.describe()
    assert dict(uniform.node(1).distances) == {0: 30, 1: 10, 2: 30}
    with pytest.raises(KeyError):
        uniform.node(0).distances[3]


@pytest.mark.parametrize("nodes", [1, 2, 5])
@pytest.mark.parametrize("cpus, remote", [(1, 20), (3, 31)])
def test_uniform_agrees_with_explicit_nodes(nodes, cpus, remote):
    explicit = NumaTopology([NumaNode(n, range(n * cpus, (n + 1) * cpus), None,
                                      {o: 10 if o == n else remote for o in range(nodes)}) for n in range(nodes)])
    uniform = NumaTopology.uniform(nodes, cpus, remote_distance=remote)
    assert uniform == explicit and explicit == uniform and hash(uniform) == hash(explicit)
    assert all(dict(a.distances) == dict(b.distances) and list(a.distances) == list(b.distances)
               for a, b in zip(uniform.nodes, explicit.nodes))
    assert [uniform.distance(a, b) for a in range(nodes) for b in range(nodes)] == \
        [explicit.distance(a, b) for a in range(nodes) for b in range(nodes)]


def test_uniform_distances_are_checked():
    with pytest.raises(ConfigError, match="remote distance"):
        NodeDistances.uniform(0, range(2), -1)
    with pytest.raises(ConfigError, match="holding node 5"):
        NodeDistances.uniform(5, range(2), 20)
    with pytest.raises(ConfigError, match=r"unknown node\(s\) \[2\]"):
        NumaTopology([NumaNode(n, (n,), None, NodeDistances.uniform(n, range(3), 20)) for n in range(2)])


# ---- the default worker count ---------------------------------------------------------------------

@pytest.mark.parametrize("cpus, expected", [(1, 1), (2, 2), (3, 3), (4, 4), (8, 4), (64, 4)])
def test_default_workers_are_the_nodes_usable_cpus_capped_at_4(cpus, expected):
    scheduler = NumaScheduler(SchedulerConfig(enable_cpu_affinity=False), topology=NumaTopology.uniform(2, cpus))
    assert scheduler.worker_count == 2 * expected
    assert scheduler.config.workers_per_numa_node == expected


def test_default_workers_on_this_machine():
    usable = len(os.sched_getaffinity(0))
    with NumaScheduler(SchedulerConfig(numa_enabled=False)) as scheduler:
        assert scheduler.worker_count == min(4, usable)


def test_default_workers_never_exceed_the_smallest_nodes_cpus():
    topology = NumaTopology([NumaNode(0, (0, 1, 2), None, {}), NumaNode(1, (3,), None, {})])
    assert NumaScheduler(topology=topology).worker_count == 2


def test_explicit_workers_are_kept():
    scheduler = NumaScheduler(SchedulerConfig(workers_per_numa_node=3), topology=NumaTopology.uniform(1, 2))
    assert scheduler.worker_count == 3

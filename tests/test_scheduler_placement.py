"""NumaScheduler: priorities and aging, placement on injected multi-node
topologies, steal order, stealing, pinning.

The machine has 2 CPUs and one NUMA node; the scheduler takes an injected
NumaTopology, so two- and four-node layouts are tested here.  Orders and
counts are asserted, never times: a "gate" task blocks a worker so that the
queue contents are known when it is released.
"""
import contextlib
import os
import random
import threading

import pytest

from schedtools import Gate, make_config
from tallyio import NumaNode, NumaScheduler, NumaTopology, SchedulerConfig, Task

# every test here runs real worker threads (nogil loops): all of them run under TSan too
pytestmark = [pytest.mark.timeout(60), pytest.mark.concurrency]

#: aging_us's maximum: no band ages during a test, so priority order is strict
NO_AGING = 60e6


class Record(Task):
    """Appends (label, worker thread name) to a shared list when it runs."""

    __slots__ = ("label", "prio", "node", "log")

    def __init__(self, label, log, prio=0, node=None):
        self.label, self.log, self.prio, self.node = label, log, prio, node

    def execute(self):
        self.log.append((self.label, threading.current_thread().name))

    def priority(self):
        return self.prio

    def preferred_node(self):
        return self.node


def worker_index(thread_name: str) -> int:
    prefix = "tallyio-worker-"
    assert thread_name.startswith(prefix), thread_name
    return int(thread_name[len(prefix):])


def no_moves(**overrides):
    """Work stays where placement put it: no stealing, no rebalancing
    (a threshold of 1.0 is never exceeded)."""
    return make_config(enable_work_stealing=False, load_balance_threshold=1.0, **overrides)


# ---- priorities ----------------------------------------------------------------------------

def run_gated(tasks, **config):
    """One worker, no stealing: hold it in a gate, queue `tasks`, release."""
    scheduler = NumaScheduler(make_config(workers_per_numa_node=1, enable_work_stealing=False, **config))
    gate = Gate()
    with scheduler:
        try:
            scheduler.submit_task(gate)
            assert gate.started.wait(10)
            for task in tasks:
                scheduler.submit_task(task)
        finally:
            gate.release.set()
    return scheduler


def test_priority_bands_run_highest_first(seed):
    rng = random.Random(seed)
    log = []
    priorities = [0, 40, 100, 200, 255] * 20
    rng.shuffle(priorities)
    tasks = [Record(i, log, prio=p) for i, p in enumerate(priorities)]
    run_gated(tasks, aging_us=NO_AGING)
    ran = [priorities[label] for label, _ in log]
    assert len(ran) == len(tasks)
    assert ran == sorted(priorities, reverse=True)


def test_fifo_inside_a_band(seed):
    """band = priority >> 5: 192..223 is one band, served in submission order."""
    rng = random.Random(seed)
    log = []
    priorities = [rng.randrange(192, 224) for _ in range(200)]
    tasks = [Record(i, log, prio=p) for i, p in enumerate(priorities)]
    run_gated(tasks, aging_us=NO_AGING)
    assert [label for label, _ in log] == list(range(200))


def test_bands_then_fifo(seed):
    rng = random.Random(seed)
    log = []
    priorities = [rng.randrange(256) for _ in range(300)]
    tasks = [Record(i, log, prio=p) for i, p in enumerate(priorities)]
    run_gated(tasks, aging_us=NO_AGING)
    expected = sorted(range(300), key=lambda i: (-(priorities[i] >> 5), i))
    assert [label for label, _ in log] == expected


def test_high_priority_jumps_a_flood_of_priority_zero():
    log = []
    flood = [Record(("low", i), log) for i in range(5000)]
    urgent = Record("urgent", log, prio=255)
    # default aging: a band-0 item may go first once because the gate held band 0 past aging_us
    run_gated(flood + [urgent])
    labels = [label for label, _ in log]
    assert labels.index("urgent") <= 1
    assert [label for label in labels if label != "urgent"] == [("low", i) for i in range(5000)]


class Flood(Task):
    """Priority-0 work submitted as fast as one thread can, behind which a
    priority-255 task is submitted while the backlog is large."""

    __slots__ = ("state",)

    def __init__(self, state):
        self.state = state

    def execute(self):
        self.state["ran"] += 1


class Urgent(Task):
    def __init__(self, state):
        self.state = state

    def execute(self):
        self.state["low_ran_before_urgent"] = self.state["ran"]

    def priority(self):
        return 255


def test_priority_isolation_under_a_live_flood():
    """While priority-0 tasks keep arriving, a priority-255 task submitted
    behind a backlog runs before (nearly all of) that backlog."""
    state = {"ran": 0, "low_ran_before_urgent": None}
    flood = Flood(state)
    scheduler = NumaScheduler(make_config(workers_per_numa_node=1, queue_capacity=1 << 15))
    with scheduler:
        submitted = 0
        backlog = 0
        while backlog < 2000:                 # build a backlog the worker cannot keep up with
            for _ in range(1000):
                scheduler.submit_task(flood)
            submitted += 1000
            backlog = submitted - state["ran"]
            if submitted >= 30_000:
                break
        ran_at_submit = state["ran"]
        backlog = submitted - ran_at_submit
        scheduler.submit_task(Urgent(state))
        for _ in range(1000):                 # the flood goes on behind it
            scheduler.submit_task(flood)
        assert scheduler.join(30)
    overtaken = state["low_ran_before_urgent"] - ran_at_submit
    # the worker may finish its current GIL batch (<= gil_batch = 64 tasks)
    # and serve one aged band-0 item; everything else queued waits
    assert overtaken <= 64 + 1 < backlog, (overtaken, backlog)


class Flooder(Task):
    """A priority-255 task that re-submits itself from inside execute() until told to stop."""

    __slots__ = ("scheduler", "state")

    def __init__(self, scheduler, state):
        self.scheduler, self.state = scheduler, state

    def execute(self):
        self.state["flood"] += 1
        if self.state["low_ran_at"] is None and self.state["flood"] < self.state["limit"]:
            self.scheduler.submit_task(self)

    def priority(self):
        return 255


class Low(Task):
    def __init__(self, state):
        self.state = state

    def execute(self):
        self.state["low_ran_at"] = self.state["flood"]


def test_aging_priority_zero_does_not_starve():
    """A continuous flood of priority-255 work (it re-queues itself) cannot
    keep a priority-0 task waiting: after aging_us it is served."""
    limit = 2_000_000
    state = flood_with_one_low_task(aging_us=1000, limit=limit)
    assert state["low_ran_at"] is not None, "the priority-0 task never ran"
    assert state["low_ran_at"] < limit, "the priority-0 task ran only after the flood ended"


def flood_with_one_low_task(aging_us, limit):
    """One worker: 32 self-resubmitting priority-255 flooders (until `limit`
    tasks ran) and one priority-0 task queued behind them.  Returns the state
    dict: low_ran_at = the flood count when the priority-0 task ran."""
    state = {"flood": 0, "low_ran_at": None, "limit": limit}
    scheduler = NumaScheduler(make_config(workers_per_numa_node=1, enable_work_stealing=False,
                                          aging_us=aging_us))
    gate = Gate()
    with scheduler:
        try:
            scheduler.submit_task(gate)
            assert gate.started.wait(10)
            for _ in range(32):
                scheduler.submit_task(Flooder(scheduler, state))
            scheduler.submit_task(Low(state))
        finally:
            gate.release.set()
        assert scheduler.join(60)
    return state


def test_without_aging_pressure_low_priority_waits_for_the_flood():
    """The control for the aging test: with aging off, the same flood keeps
    the priority-0 task waiting until it ends (so the test above measures aging)."""
    limit = 5000
    state = flood_with_one_low_task(aging_us=NO_AGING, limit=limit)
    assert state["low_ran_at"] >= limit


# ---- topology injection and pinning ----------------------------------------------------------

def far_cpus_topology():
    """Node 0 holds the CPUs this process may use; node 1 only CPU ids no
    machine here has, so its workers can never be pinned."""
    allowed = sorted(os.sched_getaffinity(0))
    return NumaTopology([NumaNode(0, allowed, None, {0: 10, 1: 20}),
                         NumaNode(1, (4096, 4097), None, {0: 20, 1: 10})])


@pytest.mark.parametrize("topology", [NumaTopology.uniform(2, 2), NumaTopology.uniform(4, 1),
                                      far_cpus_topology()], ids=["2x2", "4x1", "far-cpus"])
def test_unusable_cpus_warn_and_their_workers_run_unpinned(topology):
    allowed = os.sched_getaffinity(0)
    if set(topology.all_cpus()) <= allowed:
        pytest.skip("this machine may use every CPU of the made-up topology")
    nodes = topology.node_count()
    scheduler = NumaScheduler(SchedulerConfig(workers_per_numa_node=2, enable_cpu_affinity=True),
                              topology=topology)
    log = []
    with pytest.warns(RuntimeWarning, match="not available to this process"):
        scheduler.start()
    try:
        node_ids = [node.id for node in topology.nodes]
        for i in range(200):
            scheduler.submit_task(Record(i, log, node=node_ids[i % nodes]))
    finally:
        scheduler.stop()
    assert sorted(label for label, _ in log) == list(range(200))
    workers = scheduler.stats().workers
    assert len(workers) == 2 * nodes
    for w in workers:
        cpus = topology.node(w.node).cpus
        planned = cpus[(w.index % 2) % len(cpus)]
        assert w.cpu == (planned if planned in allowed else -1), w
    assert any(w.cpu == -1 for w in workers)


def test_affinity_pins_workers_to_allowed_cpus():
    allowed = sorted(os.sched_getaffinity(0))
    topology = NumaTopology([NumaNode(0, allowed, None, {0: 10})])
    seen = {}

    class WhereAmI(Task):
        def execute(self):
            seen[threading.current_thread().name] = os.sched_getaffinity(0)

    scheduler = NumaScheduler(SchedulerConfig(workers_per_numa_node=len(allowed), enable_cpu_affinity=True,
                                              enable_work_stealing=False), topology=topology)
    with scheduler:
        for _ in range(64):
            scheduler.submit_task(WhereAmI())
    workers = scheduler.stats().workers
    assert [w.cpu for w in workers] == [allowed[i % len(allowed)] for i in range(len(allowed))]
    for name, cpus in seen.items():
        assert cpus == {workers[worker_index(name)].cpu}


def test_numa_disabled_is_one_node():
    scheduler = NumaScheduler(make_config(workers_per_numa_node=2, numa_enabled=False),
                              topology=NumaTopology.uniform(2, 1))
    assert scheduler.worker_count == 2
    with scheduler:
        assert [w.node for w in scheduler.stats().workers] == [0, 0]


# ---- placement ---------------------------------------------------------------------------------

def test_select_worker_with_a_preferred_node():
    scheduler = NumaScheduler(make_config(workers_per_numa_node=2), topology=NumaTopology.uniform(2, 1))
    with scheduler:
        nodes = [w.node for w in scheduler.stats().workers]
        assert nodes == [0, 0, 1, 1]
        for _ in range(50):
            assert nodes[scheduler.balancer.select_worker(preferred_node=1)] == 1
            assert nodes[scheduler.balancer.select_worker(preferred_node=0)] == 0
            assert 0 <= scheduler.balancer.select_worker() < 4
        for bad in (2, -1, True, "1"):
            with pytest.raises(ValueError):
                scheduler.balancer.select_worker(preferred_node=bad)


def test_select_worker_with_sparse_node_ids():
    topology = NumaTopology([NumaNode(0, (0,), None, {0: 10, 3: 20}),
                             NumaNode(3, (1,), None, {0: 20, 3: 10})])
    with NumaScheduler(no_moves(workers_per_numa_node=1), topology=topology) as scheduler:
        assert [w.node for w in scheduler.stats().workers] == [0, 3]
        assert scheduler.balancer.select_worker(preferred_node=3) == 1
        with pytest.raises(ValueError):
            scheduler.balancer.select_worker(preferred_node=1)
        log = []
        scheduler.submit_task(Record("x", log, node=3))
        assert scheduler.join(10)
    assert log == [("x", "tallyio-worker-1")]


def test_balancer_rejects_bad_worker_and_node_arguments():
    scheduler = NumaScheduler(make_config(workers_per_numa_node=1), topology=NumaTopology.uniform(2, 1))
    with scheduler:
        balancer = scheduler.balancer
        assert balancer.load(1) == (0, 0) and balancer.node_load(1) == (0, 0)
        assert balancer.imbalance() == 0.0
        for bad, error in ((True, TypeError), ("0", TypeError), (2, IndexError), (-1, IndexError)):
            with pytest.raises(error):
                balancer.load(bad)
        with pytest.raises(ValueError):
            balancer.node_load(5)


def test_preferred_node_runs_on_that_node_without_stealing():
    scheduler = NumaScheduler(no_moves(workers_per_numa_node=2), topology=NumaTopology.uniform(2, 1))
    log = []
    with scheduler:
        for i in range(500):
            scheduler.submit_task(Record(i, log, node=1 if i % 3 else 0))
    assert len(log) == 500
    for label, thread in log:
        node_of_worker = 1 if worker_index(thread) >= 2 else 0
        assert node_of_worker == (1 if label % 3 else 0), (label, thread)


@contextlib.contextmanager
def two_gated_nodes():
    """A running scheduler with one worker on each of two nodes, both held in
    a gate task (so queued loads only grow) until the block ends; it stops on exit."""
    scheduler = NumaScheduler(no_moves(workers_per_numa_node=1), topology=NumaTopology.uniform(2, 1))
    gates = [Gate(node=0), Gate(node=1)]
    with scheduler:
        try:
            for gate in gates:
                scheduler.submit_task(gate)
            for gate in gates:
                assert gate.started.wait(10)
            yield scheduler
        finally:
            for gate in gates:
                gate.release.set()


def test_without_a_preferred_node_work_spreads_over_the_least_loaded_nodes():
    """Both workers held in gates, so the queued loads only grow: each submit
    goes to the node with less queued work, which alternates."""
    log = []
    with two_gated_nodes() as scheduler:
        for i in range(100):
            scheduler.submit_task(Record(i, log))
        loads = [scheduler.balancer.node_load(n).tasks for n in (0, 1)]
        # each node also counts its gate, which is running
        assert abs(loads[0] - loads[1]) <= 1 and sum(loads) in (100, 101, 102)
        assert [w.queue_size for w in scheduler.stats().workers] == [50, 50]
    per_worker = [sum(1 for _, t in log if worker_index(t) == w) for w in (0, 1)]
    assert per_worker == [50, 50]


def test_placement_weighs_estimated_durations():
    """Load is queued estimated microseconds, not a task count: one 1000 us
    task on node 0 balances ten 100 us tasks on node 1."""
    class Heavy(Record):
        def estimated_duration_us(self):
            return 1000

    log = []
    with two_gated_nodes() as scheduler:
        scheduler.submit_task(Heavy("heavy", log, node=0))
        for i in range(10):
            scheduler.submit_task(Record(i, log))       # 100 us each (the default)
        assert [w.queue_size for w in scheduler.stats().workers] == [1, 10]
        balancer = scheduler.balancer
        assert balancer.node_load(0).estimated_us == balancer.node_load(1).estimated_us
        assert 0.0 <= scheduler.balancer.imbalance() <= 1.0
    assert len(log) == 11


# ---- steal order ---------------------------------------------------------------------------------

def four_node_topology():
    """Distances as on a ring of four sockets: neighbours 20, the opposite node 30."""
    d = {0: {0: 10, 1: 20, 2: 30, 3: 20},
         1: {0: 20, 1: 10, 2: 20, 3: 30},
         2: {0: 30, 1: 20, 2: 10, 3: 20},
         3: {0: 20, 1: 30, 2: 20, 3: 10}}
    return NumaTopology([NumaNode(n, (n,), None, d[n]) for n in range(4)])


def test_steal_order_same_node_first_then_by_distance():
    scheduler = NumaScheduler(make_config(workers_per_numa_node=2), topology=four_node_topology())
    layout = scheduler._layout
    assert [node for node, _, _ in layout] == [0, 0, 1, 1, 2, 2, 3, 3]
    # workers of node n: 2n, 2n + 1
    assert layout[0][2] == [[1], [2, 3, 6, 7], [4, 5]]
    assert layout[1][2] == [[0], [2, 3, 6, 7], [4, 5]]
    assert layout[2][2] == [[3], [0, 1, 4, 5], [6, 7]]
    assert layout[5][2] == [[4], [2, 3, 6, 7], [0, 1]]
    assert layout[7][2] == [[6], [0, 1, 4, 5], [2, 3]]
    for i, (_, _, groups) in enumerate(layout):
        victims = [v for group in groups for v in group]
        assert sorted(victims) == [v for v in range(8) if v != i]


def test_steal_order_with_three_distances():
    d = {0: {0: 10, 1: 12, 2: 20, 3: 32},
         1: {0: 12, 1: 10, 2: 32, 3: 20},
         2: {0: 20, 1: 32, 2: 10, 3: 12},
         3: {0: 32, 1: 20, 2: 12, 3: 10}}
    topology = NumaTopology([NumaNode(n, (n,), None, d[n]) for n in range(4)])
    scheduler = NumaScheduler(make_config(workers_per_numa_node=1), topology=topology)
    assert [groups for _, _, groups in scheduler._layout] == [
        [[1], [2], [3]],          # node 0: nearest 1 (12), then 2 (20), then 3 (32)
        [[0], [3], [2]],
        [[3], [0], [1]],
        [[2], [1], [0]],
    ]


def test_one_worker_per_node_has_no_same_node_group():
    scheduler = NumaScheduler(make_config(workers_per_numa_node=1), topology=NumaTopology.uniform(2, 1))
    assert [groups for _, _, groups in scheduler._layout] == [[[1]], [[0]]]


class Slow(Task):
    """Takes a little time (sleeping releases the GIL, so an idle worker can steal)."""

    __slots__ = ("i", "log")

    def __init__(self, i, log):
        self.i, self.log = i, log

    def execute(self):
        threading.Event().wait(0.0005)
        self.log.append((self.i, threading.current_thread().name))

    def preferred_node(self):
        return 0


def test_idle_workers_of_the_other_node_steal():
    scheduler = NumaScheduler(make_config(workers_per_numa_node=1, load_balance_threshold=1.0),
                              topology=NumaTopology.uniform(2, 1))
    log = []
    with scheduler:
        for i in range(400):
            scheduler.submit_task(Slow(i, log))
    stats = scheduler.stats()
    assert sorted(i for i, _ in log) == list(range(400))
    assert stats.metrics.tasks_stolen > 0 and stats.metrics.steal_attempts > 0
    assert stats.workers[1].node == 1
    assert stats.workers[1].processed > 0 and stats.workers[1].stolen > 0
    assert any(worker_index(t) == 1 for _, t in log)
    assert stats.metrics.tasks_migrated == 0


def test_without_stealing_or_rebalancing_the_other_node_stays_idle():
    scheduler = NumaScheduler(no_moves(workers_per_numa_node=1), topology=NumaTopology.uniform(2, 1))
    log = []
    with scheduler:
        for i in range(100):
            scheduler.submit_task(Slow(i, log))
    stats = scheduler.stats()
    assert stats.workers[1].processed == 0 and stats.metrics.tasks_stolen == 0
    assert {t for _, t in log} == {"tallyio-worker-0"}


def test_rebalancing_moves_work_when_stealing_is_off():
    """With stealing off, the rebalancer (load_balance_threshold) is the only
    way work leaves an overloaded worker.  It runs while the scheduler is
    running (not while stop() drains), hence the join()."""
    scheduler = NumaScheduler(make_config(workers_per_numa_node=1, enable_work_stealing=False,
                                          load_balance_threshold=0.25),
                              topology=NumaTopology.uniform(2, 1))
    log = []
    with scheduler:
        for i in range(600):
            scheduler.submit_task(Slow(i, log))
        assert scheduler.join(30)
    stats = scheduler.stats()
    assert sorted(i for i, _ in log) == list(range(600))
    assert stats.metrics.tasks_stolen == 0
    assert stats.metrics.tasks_migrated > 0 and stats.workers[1].processed > 0

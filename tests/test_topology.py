"""NumaTopology: fake sysfs trees (good and broken), injected topologies, the
range-list parser, and the `tallyio topology` command."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import tallyio
from tallyio.errors import ConfigError
from tallyio.topology import (
    MAX_ID,
    NodeDistances,
    NumaNode,
    NumaTopology,
    format_range_list,
    parse_range_list,
)

def make_tree(root: Path, nodes: dict, online: str | None = None) -> Path:
    """A fake /sys/devices/system/node. ``nodes`` maps a node id to a dict of
    its files (cpulist, distance, meminfo); a value of None leaves that file out.
    ``online`` defaults to the node ids as a range list."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "online").write_text((format_range_list(nodes) if online is None else online) + "\n")
    for node_id, files in nodes.items():
        node_dir = root / f"node{node_id}"
        node_dir.mkdir()
        for name, text in files.items():
            if text is not None:
                (node_dir / name).write_text(text)
    return root


def meminfo(node_id: int, kib: int) -> str:
    return (f"Node {node_id} MemTotal:       {kib} kB\n"
            f"Node {node_id} MemFree:        {kib // 2} kB\n"
            f"Node {node_id} MemUsed:        {kib - kib // 2} kB\n")


def node_files(node_id, cpulist, distances, kib=None):
    return {"cpulist": cpulist + "\n", "distance": " ".join(map(str, distances)) + "\n",
            "meminfo": None if kib is None else meminfo(node_id, kib)}


def tree_cpus(root: Path) -> set[int]:
    """Every CPU a fake tree lists: the allowed set under which it is read as it is."""
    return {cpu for path in root.glob("node*/cpulist") for cpu in parse_range_list(path.read_text())}


def detect_as_is(root: Path) -> NumaTopology:
    return NumaTopology.detect(root, allowed_cpus=tree_cpus(root))


def detect_fallback(root, allowed, match):
    """detect() on a broken tree: one warning naming the problem, one node with every allowed CPU."""
    with pytest.warns(RuntimeWarning, match=match) as record:
        topo = NumaTopology.detect(root, allowed_cpus=allowed)
    assert len(record) == 1 and str(root) in str(record[0].message)
    assert topo == NumaTopology([NumaNode(0, sorted(allowed), None, {0: 10})])
    return topo


# --- reading good trees ----------------------------------------------------------------------

def test_one_node(tmp_path):
    root = make_tree(tmp_path / "node", {0: node_files(0, "0-3", [10], kib=16337512)})
    topo = detect_as_is(root)
    assert topo.node_count() == 1
    assert topo.cpus_per_node() == {0: 4}
    (node,) = topo.nodes
    assert node == NumaNode(0, (0, 1, 2, 3), 16337512 * 1024, {0: 10})
    assert topo.all_cpus() == (0, 1, 2, 3)
    assert topo.distance(0, 0) == 10


def test_two_nodes(tmp_path):
    root = make_tree(tmp_path / "node", {0: node_files(0, "0-1", [10, 21], kib=1024),
                                         1: node_files(1, "2-3", [21, 10], kib=2048)})
    topo = detect_as_is(root)
    assert topo == NumaTopology([NumaNode(0, (0, 1), 1024 * 1024, {0: 10, 1: 21}),
                                 NumaNode(1, (2, 3), 2048 * 1024, {0: 21, 1: 10})])
    assert topo.cpus_per_node() == {0: 2, 1: 2}
    assert [topo.node_of_cpu(cpu) for cpu in range(5)] == [0, 0, 1, 1, None]


def test_four_nodes_distance_matrix(tmp_path):
    matrix = [[10, 16, 22, 22], [16, 10, 22, 22], [22, 22, 10, 16], [22, 22, 16, 10]]
    root = make_tree(tmp_path / "node", {n: node_files(n, f"{2 * n},{2 * n + 8}", matrix[n]) for n in range(4)})
    topo = detect_as_is(root)
    assert topo.node_count() == 4
    assert [[topo.distance(a, b) for b in range(4)] for a in range(4)] == matrix
    assert topo.node(2).cpus == (4, 12)
    assert [node.memory_bytes for node in topo.nodes] == [None] * 4   # no meminfo files
    assert topo.all_cpus() == (0, 2, 4, 6, 8, 10, 12, 14)


def test_sparse_node_ids(tmp_path):
    root = make_tree(tmp_path / "node", {0: node_files(0, "0-1", [10, 30]), 2: node_files(2, "2-3", [30, 10])})
    assert (root / "online").read_text() == "0,2\n"
    topo = detect_as_is(root)
    assert [node.id for node in topo.nodes] == [0, 2]
    assert topo.distance(0, 2) == 30 and topo.distance(2, 2) == 10
    assert topo.cpus_per_node() == {0: 2, 2: 2}
    with pytest.raises(KeyError, match="no NUMA node 1; nodes are \\[0, 2\\]"):
        topo.distance(0, 1)


def test_offline_node_directories_are_ignored(tmp_path):
    root = make_tree(tmp_path / "node", {0: node_files(0, "0-1", [10]), 1: node_files(1, "2-3", [10, 21])},
                     online="0")
    assert NumaTopology.detect(root, allowed_cpus={0, 1}).cpus_per_node() == {0: 2}


def test_memory_only_node_is_kept(tmp_path):
    root = make_tree(tmp_path / "node", {0: node_files(0, "0-3", [10, 20], kib=4096),
                                         1: node_files(1, "", [20, 10], kib=8192)})
    topo = detect_as_is(root)
    assert topo.node_count() == 2
    assert topo.node(1) == NumaNode(1, (), 8192 * 1024, {0: 20, 1: 10})
    assert topo.cpus_per_node() == {0: 4, 1: 0}
    assert [node.id for node in topo.cpu_nodes()] == [0]


def test_allowed_cpus_filter_leaves_a_node_empty(tmp_path):
    root = make_tree(tmp_path / "node", {0: node_files(0, "0-1", [10, 21]), 1: node_files(1, "2-3", [21, 10])})
    topo = NumaTopology.detect(root, allowed_cpus={2, 3})
    assert topo.cpus_per_node() == {0: 0, 1: 2}
    assert topo.node(0).cpus == ()
    assert [node.id for node in topo.cpu_nodes()] == [1]
    assert topo.node_of_cpu(0) is None
    partial = NumaTopology.detect(root, allowed_cpus=[3, 0])
    assert partial.cpus_per_node() == {0: 1, 1: 1}


def test_allowed_cpu_in_no_node_is_left_out_with_a_warning(tmp_path):
    root = make_tree(tmp_path / "node", {0: node_files(0, "0-1", [10])})
    with pytest.warns(RuntimeWarning, match="allowed CPU\\(s\\) 5,7 in no node"):
        topo = NumaTopology.detect(root, allowed_cpus={0, 1, 5, 7})
    assert topo.all_cpus() == (0, 1)


def test_missing_distance_and_meminfo_use_defaults(tmp_path):
    files = {n: {"cpulist": f"{n}\n"} for n in range(3)}
    topo = detect_as_is(make_tree(tmp_path / "node", files))
    assert [[topo.distance(a, b) for b in range(3)] for a in range(3)] == [[10, 20, 20], [20, 10, 20], [20, 20, 10]]
    assert all(node.memory_bytes is None for node in topo.nodes)


@pytest.mark.parametrize("text, expected", [
    (meminfo(0, 16337512), 16337512 * 1024),
    ("Node 0 MemTotal: 0 kB\n", 0),
    ("Node 3 MemFree: 1 kB\nNode 3 MemTotal:\t 42 kB\n", 42 * 1024),   # not the first line, a tab
])
def test_meminfo_parsing(tmp_path, text, expected):
    root = make_tree(tmp_path / "node", {0: {"cpulist": "0", "meminfo": text}})
    assert detect_as_is(root).node(0).memory_bytes == expected


@pytest.mark.parametrize("text", ["", "Node 0 MemFree: 5 kB\n", "Node 0 MemTotal: lots kB\n",
                                  "Node 0 MemTotal: 5 MB\n"])
def test_meminfo_without_memtotal_warns_and_keeps_the_tree(tmp_path, text):
    root = make_tree(tmp_path / "node", {0: {"cpulist": "0-1", "meminfo": text},
                                         1: {"cpulist": "2-3", "meminfo": meminfo(1, 8)}})
    with pytest.warns(RuntimeWarning, match="node0/meminfo has no 'Node N MemTotal"):
        topo = detect_as_is(root)
    assert [node.memory_bytes for node in topo.nodes] == [None, 8 * 1024]
    assert topo.cpus_per_node() == {0: 2, 1: 2}


def test_root_may_be_a_string_or_path(tmp_path):
    root = make_tree(tmp_path / "node", {0: {"cpulist": "0-1"}})
    assert NumaTopology.detect(str(root), allowed_cpus=tree_cpus(root)) == detect_as_is(root)


# --- broken trees: one node, a warning, never an exception ------------------------------------

def test_missing_tree(tmp_path):
    detect_fallback(tmp_path / "absent", {0, 1, 2}, "No such file")


def test_online_lists_a_missing_node_dir(tmp_path):
    root = make_tree(tmp_path / "node", {0: {"cpulist": "0-1"}}, online="0-1")
    detect_fallback(root, {0, 1}, "lists node 1 but .*node1 is missing")


def test_missing_cpulist(tmp_path):
    root = make_tree(tmp_path / "node", {0: {"cpulist": "0"}, 1: {"distance": "20 10"}})
    detect_fallback(root, {0, 1}, "node1/cpulist")


@pytest.mark.parametrize("online", ["", "zero", "0-", "1-0", "0,,1", "-1", "0-99999999", "0\x00"])
def test_garbage_online(tmp_path, online):
    root = make_tree(tmp_path / "node", {0: {"cpulist": "0"}, 1: {"cpulist": "1"}}, online=online)
    detect_fallback(root, {0, 1}, "online")


@pytest.mark.parametrize("cpulist", ["zero", "0-1-2", "0 1", "3-2", "0x1", "٣"])
def test_garbage_cpulist(tmp_path, cpulist):
    root = make_tree(tmp_path / "node", {0: {"cpulist": cpulist}})
    detect_fallback(root, {0, 1}, "node0/cpulist: ")


def test_non_ascii_bytes_in_a_file(tmp_path):
    root = make_tree(tmp_path / "node", {0: {"cpulist": "0"}})
    (root / "node0" / "cpulist").write_bytes(b"0-\xff\n")
    detect_fallback(root, {0}, "codec")


@pytest.mark.parametrize("distance", ["10", "10 20 30", "10 far", "10 -20", "", "10,20"])
def test_garbage_distance(tmp_path, distance):
    root = make_tree(tmp_path / "node", {0: {"cpulist": "0", "distance": "10 20"},
                                         1: {"cpulist": "1", "distance": distance}})
    detect_fallback(root, {0, 1}, "node1/distance should hold 2 distance")


def test_same_cpu_in_two_nodes(tmp_path):
    root = make_tree(tmp_path / "node", {0: {"cpulist": "0-1"}, 1: {"cpulist": "1-2"}})
    detect_fallback(root, {0, 1, 2}, "CPU 1 is in both node 0 and node 1")


def test_no_node_has_an_allowed_cpu(tmp_path):
    root = make_tree(tmp_path / "node", {0: {"cpulist": "0-1"}, 1: {"cpulist": ""}})
    detect_fallback(root, {4, 5}, "no node has any of the allowed CPUs 4-5")


def test_online_is_a_directory(tmp_path):
    # unreadable in a way root cannot bypass
    root = tmp_path / "node"
    (root / "online").mkdir(parents=True)
    detect_fallback(root, {0}, "directory")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
@pytest.mark.parametrize("unreadable", ["online", "node1/cpulist", "node1/distance", "node1/meminfo"])
def test_unreadable_file(tmp_path, unreadable):
    root = make_tree(tmp_path / "node", {0: node_files(0, "0", [10, 20], kib=1),
                                         1: node_files(1, "1", [20, 10], kib=1)})
    (root / unreadable).chmod(0)
    try:
        detect_fallback(root, {0, 1}, "Permission denied")
    finally:
        (root / unreadable).chmod(0o644)


@pytest.mark.parametrize("unreadable", ["online", "node1/cpulist", "node1/distance", "node1/meminfo"])
def test_permission_error_on_any_file(tmp_path, monkeypatch, unreadable):
    # the chmod test above cannot run as root, so the permission error is raised by hand here
    import tallyio.topology as topology

    root = make_tree(tmp_path / "node", {0: node_files(0, "0", [10, 20], kib=1),
                                         1: node_files(1, "1", [20, 10], kib=1)})
    real_read_text = topology._read_text

    def read_text(path):
        if path == str(root / unreadable):
            raise PermissionError(13, "Permission denied", path)
        return real_read_text(path)

    monkeypatch.setattr(topology, "_read_text", read_text)
    detect_fallback(root, {0, 1}, f"Permission denied.*{unreadable}")


# --- the real machine -------------------------------------------------------------------------

def test_detect_on_this_machine():
    topo = NumaTopology.detect()
    assert set(topo.all_cpus()) == os.sched_getaffinity(0)
    assert topo.node_count() >= 1 and topo.cpu_nodes()
    assert sum(topo.cpus_per_node().values()) == len(os.sched_getaffinity(0))
    for node in topo.nodes:
        assert topo.distance(node.id, node.id) == 10


def test_detect_with_a_subset_of_allowed_cpus():
    one = min(os.sched_getaffinity(0))
    assert NumaTopology.detect(allowed_cpus=[one]).all_cpus() == (one,)


@pytest.mark.parametrize("allowed, match", [
    ([], "allowed_cpus is empty"),
    ([-1], "allowed_cpus: CPU id must be >= 0"),
    (["0"], "allowed_cpus: CPU id must be an int"),
    ([True], "allowed_cpus: CPU id must be an int"),
    ("0-1", "allowed_cpus must be an iterable of CPU ids"),
    (3, "allowed_cpus must be an iterable of CPU ids"),
])
def test_detect_rejects_bad_allowed_cpus(allowed, match):
    with pytest.raises(ConfigError, match=match):
        NumaTopology.detect(allowed_cpus=allowed)


# --- injected topologies -------------------------------------------------------------------------

def test_injected_topology():
    topo = NumaTopology([NumaNode(1, (2, 3), None, {0: 21, 1: 10}), NumaNode(0, (0, 1), None, {0: 10, 1: 21})])
    assert [node.id for node in topo.nodes] == [0, 1]      # kept in id order
    assert topo.cpus_per_node() == {0: 2, 1: 2}
    assert topo.distance(1, 0) == 21
    assert topo == NumaTopology.uniform(2, 2)
    assert hash(topo) == hash(NumaTopology.uniform(2, 2))
    assert topo != NumaTopology.uniform(2, 2, remote_distance=30)
    assert topo != "not a topology"


def test_distance_defaults_when_a_node_gives_none():
    topo = NumaTopology([NumaNode(0, (0,), None, {}), NumaNode(1, (1,), None, {})])
    assert (topo.distance(0, 0), topo.distance(0, 1)) == (10, 20)


def test_unknown_ids_raise_key_error():
    topo = NumaTopology.uniform(2, 1)
    for call in (lambda: topo.distance(0, 5), lambda: topo.distance(5, 0), lambda: topo.node(-1),
                 lambda: topo.node("0")):
        with pytest.raises(KeyError, match="nodes are \\[0, 1\\]"):
            call()


@pytest.mark.parametrize("nodes, match", [
    ([], "at least one node"),
    (NumaNode(0, (0,), None, {}), "nodes must be a sequence of NumaNode"),
    (None, "nodes must be a sequence of NumaNode"),
    ([(0, (0,), None, {})], "nodes must be NumaNode objects"),
    ([NumaNode(0, (0,), None, {}), NumaNode(0, (1,), None, {})], "node id 0 is used by two nodes"),
    ([NumaNode(0, (0, 1), None, {}), NumaNode(1, (1, 2), None, {})], "CPU 1 is in both node 0 and node 1"),
    ([NumaNode(0, (), 10, {}), NumaNode(1, (), 10, {})], "no node has a CPU"),
    ([NumaNode(0, (0,), None, {0: 10, 3: 20})], "node 0 has distances to unknown node\\(s\\) \\[3\\]"),
])
def test_injected_topology_is_validated(nodes, match):
    with pytest.raises(ConfigError, match=match):
        NumaTopology(nodes)


@pytest.mark.parametrize("args, match", [
    ((-1, (0,), None, {}), "node id must be >= 0, got -1"),
    ((True, (0,), None, {}), "node id must be an int, got True"),
    ((0.0, (0,), None, {}), "node id must be an int"),
    ((0, "01", None, {}), "node 0: cpus must be an iterable of CPU ids"),
    ((0, 5, None, {}), "node 0: cpus must be an iterable of CPU ids"),
    ((0, (0, -2), None, {}), "node 0: CPU id must be >= 0, got -2"),
    ((0, (0, 1.0), None, {}), "node 0: CPU id must be an int, got 1.0"),
    ((0, (3, 1, 3), None, {}), "node 0: CPU 3 is listed twice"),
    ((0, (0,), -5, {}), "node 0: memory_bytes must be >= 0"),
    ((0, (0,), 1.5, {}), "node 0: memory_bytes must be an int"),
    ((0, (0,), None, {0: -10}), "node 0: distance to node 0 must be >= 0"),
    ((0, (0,), None, {"1": 10}), "node 0: distances key \\(a node id\\) must be an int"),
    ((0, (0,), None, 10), "node 0: distances must be a mapping"),
    ((0, (0,), None, [1, 2]), "node 0: distances must be a mapping"),
])
def test_node_is_validated(args, match):
    with pytest.raises(ConfigError, match=match):
        NumaNode(*args)


def test_node_normalizes_and_is_hashable():
    np = pytest.importorskip("numpy")
    node = NumaNode(np.int64(1), np.array([5, 4]), np.int64(64), [(1, 10), (0, 21)])
    assert node == NumaNode(1, (4, 5), 64, {0: 21, 1: 10})
    assert type(node.id) is int and node.cpus == (4, 5) and all(type(c) is int for c in node.cpus)
    assert isinstance(node.distances, NodeDistances) and dict(node.distances) == {0: 21, 1: 10}
    assert list(node.distances) == [0, 1]
    assert hash(node) == hash(NumaNode(1, [4, 5], 64, {1: 10, 0: 21}))
    assert len({node, NumaNode(1, [4, 5], 64, {1: 10, 0: 21})}) == 1
    with pytest.raises(TypeError):
        node.distances[0] = 5   # read-only
    with pytest.raises(AttributeError):
        node.cpus = ()           # frozen


@pytest.mark.parametrize("kwargs, match", [
    ({"nodes": 0, "cpus_per_node": 1}, "nodes must be >= 1"),
    ({"nodes": 1, "cpus_per_node": 0}, "cpus_per_node must be >= 1"),
    ({"nodes": 2, "cpus_per_node": True}, "cpus_per_node must be an int"),
    ({"nodes": 2, "cpus_per_node": 1, "remote_distance": -1}, "remote_distance must be >= 0"),
])
def test_uniform_is_validated(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        NumaTopology.uniform(**kwargs)


def test_uniform():
    topo = NumaTopology.uniform(4, 3, remote_distance=32)
    assert topo.node_count() == 4
    assert topo.node(3).cpus == (9, 10, 11)
    assert topo.all_cpus() == tuple(range(12))
    assert topo.distance(1, 2) == 32 and topo.distance(2, 2) == 10


def test_to_dict_is_json_and_describe_is_readable():
    topo = NumaTopology([NumaNode(0, (0, 1, 2, 5), 3 * 2**30, {0: 10, 2: 21}), NumaNode(2, (), None, {0: 21, 2: 10})])
    data = json.loads(json.dumps(topo.to_dict()))
    assert data == {
        "node_count": 2, "cpu_count": 4,
        "nodes": [{"id": 0, "cpus": [0, 1, 2, 5], "cpulist": "0-2,5", "memory_bytes": 3 * 2**30,
                   "distances": {"0": 10, "2": 21}},
                  {"id": 2, "cpus": [], "cpulist": "", "memory_bytes": None, "distances": {"0": 21, "2": 10}}],
    }
    lines = topo.describe().splitlines()
    assert lines[0] == "NUMA topology: 2 nodes, 4 usable CPUs"
    assert lines[1].split() == ["node", "cpus", "memory", "distance", "to", "0", "2"]
    assert lines[2].split() == ["0", "0-2,5", "3.0", "GiB", "10", "21"]
    assert lines[3].split() == ["2", "none", "-", "21", "10"]
    assert repr(topo) == "<NumaTopology 2 node(s); node 0: cpus 0-2,5; node 2: cpus none>"


# --- the range-list parser ----------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("", ()),
    ("\n", ()),
    ("  \t\n", ()),
    ("0", (0,)),
    ("7\n", (7,)),
    ("0-3,8,10-11", (0, 1, 2, 3, 8, 10, 11)),
    ("4-4", (4,)),
    ("8,0-1", (0, 1, 8)),
    ("0-2,1-3", (0, 1, 2, 3)),          # overlaps merge
    (" 0-1 , 3 \n", (0, 1, 3)),
    (f"{MAX_ID}", (MAX_ID,)),
])
def test_parse_range_list(text, expected):
    assert parse_range_list(text) == expected


@pytest.mark.parametrize("text", [",", "0,", ",0", "0,,1", "-", "-1", "1-", "a", "0-a", "1-0", "0-1-2",
                                  "1.5", "0 1", "0x10", "²", f"{MAX_ID + 1}", "0-99999999999"])
def test_parse_range_list_rejects(text):
    with pytest.raises(ValueError, match="bad range list"):
        parse_range_list(text)


@given(st.sets(st.integers(min_value=0, max_value=MAX_ID), max_size=200))
def test_range_list_round_trip(ids):
    text = format_range_list(ids)
    assert parse_range_list(text) == tuple(sorted(ids))
    assert parse_range_list(text + "\n") == tuple(sorted(ids))


@given(st.lists(st.tuples(st.integers(0, 300), st.integers(0, 20)), max_size=20))
def test_range_list_of_runs(runs):
    ids = {start + i for start, length in runs for i in range(length)}
    # dense runs, which uniformly drawn sets rarely contain, exercise the "a-b" items
    assert parse_range_list(format_range_list(ids)) == tuple(sorted(ids))


# --- the command line ---------------------------------------------------------------------------

def run_cli(*args):
    """``python -m tallyio ...`` in a subprocess that imports the tallyio these tests import."""
    home = str(Path(tallyio.__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=home)
    # cwd: `python -m` puts the working directory first on sys.path, and in a
    # source checkout with an installed (not in-place) build that would import
    # the uncompiled source tree instead
    return subprocess.run([sys.executable, "-m", "tallyio", *args], capture_output=True, text=True,
                          env=env, cwd=home, timeout=120)


def test_cli_topology_on_this_machine():
    proc = run_cli("topology")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("NUMA topology: ")
    assert f"{len(os.sched_getaffinity(0))} usable CPUs" in proc.stdout
    # free memory moves between the two reads (other processes allocate): compare the rest
    def without_free_memory(text):
        return re.sub(r"\d+(\.\d+)? [KMGT]iB", "<memory>", text.strip())

    assert without_free_memory(proc.stdout) == without_free_memory(NumaTopology.detect().describe())


def test_cli_topology_json():
    proc = run_cli("topology", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == NumaTopology.detect().to_dict()


def test_cli_topology_root_on_a_fake_tree(tmp_path, capsys):
    from tallyio.cli import main

    # CPUs 0-63 cover whatever this process may use, so nothing is left out (no warning)
    root = make_tree(tmp_path / "node", {0: node_files(0, "0-31", [10, 21], kib=2**20),
                                         2: node_files(2, "32-63", [21, 10])})
    assert main(["topology", "--root", str(root), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["node_count"] == 2 and [node["id"] for node in data["nodes"]] == [0, 2]
    assert data["nodes"][0]["memory_bytes"] == 2**30
    assert main(["topology", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("NUMA topology: 2 nodes") and "1.0 GiB" in out


def test_cli_topology_broken_root_warns_and_succeeds(tmp_path):
    proc = run_cli("topology", "--root", str(tmp_path / "absent"))
    assert proc.returncode == 0
    assert proc.stderr.startswith("tallyio: warning: NUMA topology from") and "absent" in proc.stderr
    assert proc.stdout.startswith("NUMA topology: 1 node,")

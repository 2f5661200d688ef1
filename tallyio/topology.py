"""NUMA topology: which CPUs and how much memory each node has, and how far
apart the nodes are.

:class:`NumaTopology` is a pure function of a sysfs tree
(``/sys/devices/system/node`` by default) and the set of CPUs the process may
use, so tests and benchmarks can describe any machine -- from a fake sysfs
tree, or by building the nodes directly::

    >>> from tallyio.topology import NumaNode, NumaTopology
    >>> topo = NumaTopology([NumaNode(0, (0, 1), None, {0: 10, 1: 21}),
    ...                      NumaNode(1, (2, 3), None, {0: 21, 1: 10})])
    >>> topo.node_count(), topo.cpus_per_node(), topo.distance(0, 1)
    (2, {0: 2, 1: 2}, 21)

This module imports nothing from the scheduler: it only describes a machine.
"""
from __future__ import annotations

import operator
import os
import re
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from tallyio.errors import ConfigError

__all__ = ["NumaNode", "NumaTopology", "NodeDistances", "parse_range_list", "format_range_list"]

SYSFS_NODE_ROOT = "/sys/devices/system/node"
LOCAL_DISTANCE = 10    # ACPI SLIT's value for a node's distance to itself
REMOTE_DISTANCE = 20   # Linux's default for a remote node when firmware gives no table
# Linux supports at most 8192 CPUs and 1024 nodes; a larger id in a sysfs file is
# garbage, and rejecting it keeps a corrupt "0-4294967295" from allocating gigabytes.
MAX_ID = 65535

_MEMTOTAL = re.compile(r"^Node\s+\d+\s+MemTotal:\s+(\d+)\s+kB\s*$", re.MULTILINE)


def parse_range_list(text: str) -> tuple[int, ...]:
    """Parse a Linux range list (``"0-3,8,10-11"``, as in sysfs ``online`` and
    ``cpulist`` files) into sorted, distinct ids.

    Surrounding whitespace and the trailing newline are ignored; an empty (or
    blank) string is the empty list. Anything else raises :class:`ValueError`
    naming the bad item.

    >>> parse_range_list("0-3,8,10-11\\n")
    (0, 1, 2, 3, 8, 10, 11)
    >>> parse_range_list("")
    ()
    >>> parse_range_list("3-1")
    Traceback (most recent call last):
    ...
    ValueError: bad range list '3-1': range '3-1' runs backwards
    """
    ids: set[int] = set()
    stripped = text.strip()
    if not stripped:
        return ()
    for item in stripped.split(","):
        first, sep, last = item.strip().partition("-")
        if not (first.isdigit() and first.isascii()) or (sep and not (last.isdigit() and last.isascii())):
            raise ValueError(f"bad range list {text!r}: {item!r} is not an id or an id range")
        low, high = int(first), int(last) if sep else int(first)
        if high > MAX_ID:
            raise ValueError(f"bad range list {text!r}: {high} is above the largest id {MAX_ID}")
        if low > high:
            raise ValueError(f"bad range list {text!r}: range {item!r} runs backwards")
        ids.update(range(low, high + 1))
    return tuple(sorted(ids))


def format_range_list(ids: Iterable[int]) -> str:
    """Format ids as a Linux range list, the inverse of :func:`parse_range_list`.

    >>> format_range_list([11, 0, 1, 2, 3, 8, 10])
    '0-3,8,10-11'
    >>> format_range_list([])
    ''
    """
    runs: list[str] = []
    ordered = sorted(set(ids))
    start = 0
    for i, value in enumerate(ordered):
        if i + 1 == len(ordered) or ordered[i + 1] != value + 1:
            first = ordered[start]
            runs.append(str(first) if first == value else f"{first}-{value}")
            start = i + 1
    return ",".join(runs)


def _check_id(what: str, value: object) -> int:
    """``value`` as an int >= 0 (numpy integers welcome; bools are not ids)."""
    try:
        if isinstance(value, bool):
            raise TypeError
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise ConfigError(f"{what} must be an int, got {value!r} ({type(value).__name__})") from None
    if number < 0:
        raise ConfigError(f"{what} must be >= 0, got {number!r}")
    return number


class NodeDistances(Mapping[int, int]):
    """A node's distances to the other nodes, keyed by their ids: a read-only,
    hashable mapping, so a frozen :class:`NumaNode` stays hashable.

    :meth:`uniform` builds the common case (10 to itself, one figure to every
    other node) in constant memory, sharing one ``range`` of node ids between
    all the nodes of a topology: a machine of n nodes then costs O(n), not
    O(n**2), to describe.

    >>> d = NodeDistances({1: 21, 0: 10})
    >>> d[1], list(d), d == {0: 10, 1: 21}
    (21, [0, 1], True)
    >>> u = NodeDistances.uniform(0, range(2), 21)
    >>> u == d, hash(u) == hash(d), u
    (True, True, {0: 10, 1: 21})
    """

    __slots__ = ("_by_node", "_self_id", "_ids", "_remote", "_hash")

    def __init__(self, distances: Mapping[int, int] | Iterable[tuple[int, int]] = ()) -> None:
        self._by_node: dict[int, int] | None = dict(sorted(dict(distances).items()))
        self._ids: range | None = None
        self._self_id = self._remote = 0
        self._hash: int | None = None

    @classmethod
    def uniform(cls, node_id: int, node_ids: range, remote_distance: int) -> NodeDistances:
        """LOCAL_DISTANCE (10) to ``node_id``, ``remote_distance`` to every
        other id of ``node_ids`` (a ``range``, shared, never copied)."""
        if not isinstance(node_ids, range) or node_ids.step <= 0 or node_id not in node_ids:
            raise ConfigError(f"uniform distances need an increasing range of node ids holding "
                              f"node {node_id!r}, got {node_ids!r}")
        return cls._unchecked_uniform(node_id, node_ids,
                                      _check_id(f"node {node_id}: remote distance", remote_distance))

    @classmethod
    def _unchecked_uniform(cls, node_id: int, node_ids: range, remote_distance: int) -> NodeDistances:
        # for NumaTopology.uniform, which checked the arguments once for all its nodes
        self = cls.__new__(cls)
        self._by_node = None
        self._self_id, self._ids, self._remote = node_id, node_ids, remote_distance
        self._hash = None
        return self

    @property
    def is_uniform(self) -> bool:
        """True when built by :meth:`uniform` (constant memory)."""
        return self._ids is not None

    def covers_only(self, node_ids: Mapping[int, Any]) -> list[int]:
        """The keys of this mapping that are not keys of ``node_ids``, sorted
        (checked once per shared range, see ``NumaTopology``)."""
        if self._ids is not None:
            return [i for i in self._ids if i not in node_ids]
        return sorted(k for k in self._by_node if k not in node_ids)   # type: ignore[union-attr]

    def __getitem__(self, node_id: int) -> int:
        if self._ids is None:
            return self._by_node[node_id]      # type: ignore[index]
        if isinstance(node_id, int) and not isinstance(node_id, bool) and node_id in self._ids:
            return LOCAL_DISTANCE if node_id == self._self_id else self._remote
        raise KeyError(node_id)

    def __iter__(self) -> Iterator[int]:
        return iter(self._by_node if self._ids is None else self._ids)   # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self._by_node if self._ids is None else self._ids)    # type: ignore[arg-type]

    def __eq__(self, other: object) -> bool:
        if (isinstance(other, NodeDistances) and self._ids is not None and other._ids is not None):
            # uniform against uniform: compare the parameters, not n entries
            return ((self._self_id, self._ids, self._remote) == (other._self_id, other._ids, other._remote)
                    or (len(self._ids) == len(other._ids) == 1 and list(self._ids) == list(other._ids)))
        return super().__eq__(other)

    def __hash__(self) -> int:
        # equal mappings must hash alike whichever way they were built: hash the
        # items (computed once; only hashing a topology needs it)
        if self._hash is None:
            self._hash = hash(tuple(self.items()))
        return self._hash

    def __repr__(self) -> str:
        return repr(dict(self.items()))


@dataclass(frozen=True, slots=True)
class NumaNode:
    """One NUMA node: its id, the CPUs of it the process may use, its memory
    (``None`` when unknown) and its distances to other nodes by node id.

    ``cpus`` may be any iterable of ids and is stored sorted; ``distances`` may
    be a dict or ``(node_id, distance)`` pairs and is stored as a read-only,
    hashable :class:`NodeDistances`. A node without CPUs (``cpus == ()``) is a
    memory-only node, or one whose CPUs the process may not use.

    >>> node = NumaNode(1, [3, 2], 16 * 2**30, {0: 21, 1: 10})
    >>> node.cpus, node.distances[0], node.memory_bytes // 2**30
    ((2, 3), 21, 16)
    >>> NumaNode(0, (1, 1), None, {})
    Traceback (most recent call last):
    ...
    tallyio.errors.ConfigError: node 0: CPU 1 is listed twice
    """

    id: int
    cpus: tuple[int, ...]
    memory_bytes: int | None
    distances: Mapping[int, int]

    def __post_init__(self) -> None:
        node_id = _check_id("node id", self.id)
        if isinstance(self.cpus, (str, bytes)) or not isinstance(self.cpus, Iterable):
            raise ConfigError(f"node {node_id}: cpus must be an iterable of CPU ids, got {self.cpus!r}")
        cpus = [_check_id(f"node {node_id}: CPU id", cpu) for cpu in self.cpus]
        if len(set(cpus)) != len(cpus):
            twice = min(cpu for cpu in cpus if cpus.count(cpu) > 1)
            raise ConfigError(f"node {node_id}: CPU {twice} is listed twice")
        memory = self.memory_bytes
        if memory is not None:
            memory = _check_id(f"node {node_id}: memory_bytes", memory)
        if isinstance(self.distances, NodeDistances) and self.distances.is_uniform:
            # checked when built, and O(1) to keep: re-reading its n entries
            # per node is what made n-node topologies quadratic
            object.__setattr__(self, "id", node_id)
            object.__setattr__(self, "cpus", tuple(sorted(cpus)))
            object.__setattr__(self, "memory_bytes", memory)
            return
        try:
            pairs = dict(self.distances).items()
        except (TypeError, ValueError):
            raise ConfigError(f"node {node_id}: distances must be a mapping of node id to distance, "
                              f"got {self.distances!r}") from None
        distances = NodeDistances(
            (_check_id(f"node {node_id}: distances key (a node id)", other),
             _check_id(f"node {node_id}: distance to node {other!r}", distance))
            for other, distance in pairs)
        object.__setattr__(self, "id", node_id)
        object.__setattr__(self, "cpus", tuple(sorted(cpus)))
        object.__setattr__(self, "memory_bytes", memory)
        object.__setattr__(self, "distances", distances)

    @classmethod
    def _unchecked(cls, node_id: int, cpus: tuple[int, ...], distances: NodeDistances) -> NumaNode:
        # for NumaTopology.uniform: its arguments were checked once, so the
        # n per-node checks of __post_init__ would only repeat them
        node = object.__new__(cls)
        for name, value in (("id", node_id), ("cpus", cpus), ("memory_bytes", None), ("distances", distances)):
            object.__setattr__(node, name, value)
        return node


class NumaTopology:
    """The NUMA nodes of a machine, as the process sees them.

    Build one with :meth:`detect` (from sysfs), :meth:`uniform` (a made-up
    machine for tests and benchmarks) or directly from :class:`NumaNode`
    objects. The constructor checks that node ids are distinct, that a CPU
    belongs to at most one node, that distances name known nodes, and that at
    least one node has CPUs; anything else is a :class:`~tallyio.errors.ConfigError`.

    Unknown node ids given to :meth:`distance` or :meth:`node` raise
    :class:`KeyError` (a lookup miss, as in a mapping), naming the known ids.

    >>> topo = NumaTopology.uniform(nodes=2, cpus_per_node=2)
    >>> [node.cpus for node in topo.nodes], topo.node_of_cpu(3)
    ([(0, 1), (2, 3)], 1)
    >>> NumaTopology([NumaNode(0, (0, 1), None, {}), NumaNode(1, (1,), None, {})])
    Traceback (most recent call last):
    ...
    tallyio.errors.ConfigError: CPU 1 is in both node 0 and node 1
    """

    __slots__ = ("_nodes", "_by_id", "_node_of_cpu")

    def __init__(self, nodes: Iterable[NumaNode]) -> None:
        if isinstance(nodes, NumaNode) or not isinstance(nodes, Iterable):
            raise ConfigError(f"nodes must be a sequence of NumaNode, got {nodes!r}")
        ordered = list(nodes)
        for node in ordered:
            if not isinstance(node, NumaNode):
                raise ConfigError(f"nodes must be NumaNode objects, got {node!r} ({type(node).__name__})")
        if not ordered:
            raise ConfigError("a topology needs at least one node, got none")
        ordered.sort(key=lambda node: node.id)
        by_id: dict[int, NumaNode] = {}
        node_of_cpu: dict[int, int] = {}
        for node in ordered:
            if node.id in by_id:
                raise ConfigError(f"node id {node.id} is used by two nodes")
            by_id[node.id] = node
            for cpu in node.cpus:
                if cpu in node_of_cpu:
                    raise ConfigError(f"CPU {cpu} is in both node {node_of_cpu[cpu]} and node {node.id}")
                node_of_cpu[cpu] = node.id
        # node.distances of uniform nodes share one range: check each range once (linear in nodes)
        checked_ranges: set[range] = set()
        for node in ordered:
            distances = node.distances
            if isinstance(distances, NodeDistances) and distances.is_uniform:
                if distances._ids in checked_ranges:
                    continue
                checked_ranges.add(distances._ids)   # type: ignore[arg-type]
            unknown = (distances.covers_only(by_id) if isinstance(distances, NodeDistances)
                       else sorted(k for k in distances if k not in by_id))
            if unknown:
                raise ConfigError(f"node {node.id} has distances to unknown node(s) {unknown}; "
                                  f"nodes are {sorted(by_id)}")
        if not node_of_cpu:
            raise ConfigError(f"no node has a CPU (nodes {sorted(by_id)}): nothing could run")
        self._nodes = tuple(ordered)
        self._by_id = by_id
        self._node_of_cpu = node_of_cpu

    @classmethod
    def uniform(cls, nodes: int, cpus_per_node: int, remote_distance: int = 21) -> NumaTopology:
        """A made-up machine: ``nodes`` nodes numbered from 0, each with
        ``cpus_per_node`` consecutive CPU ids, distance 10 to itself and
        ``remote_distance`` to every other node; memory unknown.

        >>> NumaTopology.uniform(2, 3).cpus_per_node()
        {0: 3, 1: 3}
        """
        for name, value, low in (("nodes", nodes, 1), ("cpus_per_node", cpus_per_node, 1),
                                 ("remote_distance", remote_distance, 0)):
            if _check_id(name, value) < low:
                raise ConfigError(f"{name} must be >= {low}, got {value!r}")
        nodes, cpus_per_node = operator.index(nodes), operator.index(cpus_per_node)
        remote_distance = operator.index(remote_distance)
        node_ids = range(nodes)      # one range shared by every node's distances: O(nodes) in all
        return cls(
            NumaNode._unchecked(node, tuple(range(node * cpus_per_node, (node + 1) * cpus_per_node)),
                                NodeDistances._unchecked_uniform(node, node_ids, remote_distance))
            for node in node_ids)

    @classmethod
    def detect(cls, root: str | os.PathLike[str] = SYSFS_NODE_ROOT,
               allowed_cpus: Iterable[int] | None = None) -> NumaTopology:
        """Read the topology from a sysfs node tree, keeping only ``allowed_cpus``
        (default: ``os.sched_getaffinity(0)``, the CPUs this process may use).

        Reads ``online``, then ``nodeN/cpulist``, ``nodeN/distance`` (distances
        in the order of the online node ids) and ``nodeN/meminfo`` (``MemTotal``)
        for each online node. Sparse node ids are fine. Nodes left without
        CPUs (memory-only nodes, or nodes whose CPUs the process may not use)
        are kept with ``cpus == ()``. A missing ``distance`` file means 10 to
        itself and 20 to the others; a missing or unparsable ``meminfo`` means
        ``memory_bytes is None`` (an unparsable one also warns).

        A missing, unreadable or malformed tree -- or one in which no node has
        an allowed CPU -- never raises: it gives one node (id 0) holding all
        allowed CPUs and a :class:`RuntimeWarning` naming the path and the
        problem. Allowed CPUs that the tree places in no node are left out, with
        a warning. Only a bad ``allowed_cpus`` argument raises (ConfigError).

        >>> topo = NumaTopology.detect()        # this machine
        >>> set(topo.all_cpus()) == os.sched_getaffinity(0)
        True
        """
        allowed = cls._allowed_cpu_set(allowed_cpus)
        path = os.fspath(root)
        try:
            nodes = _read_nodes(path, allowed)
            topology = cls(nodes)
        except (OSError, ValueError) as exc:   # ValueError includes the ConfigError of a corrupt tree
            warnings.warn(f"NUMA topology from {path} is unusable ({exc}); "
                          f"treating the machine as one node with CPUs {format_range_list(allowed)}",
                          RuntimeWarning, stacklevel=2)
            return cls([NumaNode(0, sorted(allowed), None, {0: LOCAL_DISTANCE})])
        unplaced = allowed - set(topology._node_of_cpu)
        if unplaced:
            warnings.warn(f"NUMA topology from {path} puts allowed CPU(s) {format_range_list(unplaced)} "
                          f"in no node; they are left out", RuntimeWarning, stacklevel=2)
        return topology

    @staticmethod
    def _allowed_cpu_set(allowed_cpus: Iterable[int] | None) -> set[int]:
        if allowed_cpus is None:
            return set(os.sched_getaffinity(0))
        if isinstance(allowed_cpus, (str, bytes)) or not isinstance(allowed_cpus, Iterable):
            raise ConfigError(f"allowed_cpus must be an iterable of CPU ids, got {allowed_cpus!r}")
        allowed = {_check_id("allowed_cpus: CPU id", cpu) for cpu in allowed_cpus}
        if not allowed:
            raise ConfigError("allowed_cpus is empty: the process could run nowhere")
        return allowed

    @property
    def nodes(self) -> tuple[NumaNode, ...]:
        """Every node, memory-only ones included, in id order."""
        return self._nodes

    def node(self, node_id: int) -> NumaNode:
        """The node with this id (KeyError naming the known ids if there is none).

        >>> NumaTopology.uniform(2, 1).node(1).cpus
        (1,)
        """
        try:
            return self._by_id[node_id]
        except (KeyError, TypeError):
            raise KeyError(f"no NUMA node {node_id!r}; nodes are {sorted(self._by_id)}") from None

    def node_count(self) -> int:
        """The number of nodes, memory-only ones included."""
        return len(self._nodes)

    def cpus_per_node(self) -> dict[int, int]:
        """Node id -> number of allowed CPUs, for every node (0 for nodes without CPUs)."""
        return {node.id: len(node.cpus) for node in self._nodes}

    def cpu_nodes(self) -> tuple[NumaNode, ...]:
        """The nodes that have allowed CPUs, in id order: the scheduler places
        workers only on these."""
        return tuple(node for node in self._nodes if node.cpus)

    def node_of_cpu(self, cpu: int) -> int | None:
        """The id of the node holding ``cpu``, or ``None`` if no node does
        (the CPU is not allowed, or not in the topology).

        >>> topo = NumaTopology.uniform(2, 2)
        >>> topo.node_of_cpu(2), topo.node_of_cpu(7)
        (1, None)
        """
        return self._node_of_cpu.get(cpu)

    def all_cpus(self) -> tuple[int, ...]:
        """Every allowed CPU of every node, sorted."""
        return tuple(sorted(self._node_of_cpu))

    def distance(self, a: int, b: int) -> int:
        """The distance from node ``a`` to node ``b`` (10 means local, the
        ACPI SLIT scale). When the topology has no figure for the pair, 10 for
        ``a == b`` and 20 otherwise. Unknown ids raise KeyError.

        >>> topo = NumaTopology.uniform(2, 1, remote_distance=32)
        >>> topo.distance(0, 1), topo.distance(1, 1)
        (32, 10)
        """
        source = self.node(a)
        self.node(b)
        default = LOCAL_DISTANCE if a == b else REMOTE_DISTANCE
        return source.distances.get(b, default)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description (distances keyed by node id as strings, as JSON needs).

        >>> import json
        >>> json.dumps(NumaTopology.uniform(1, 2).to_dict())
        '{"node_count": 1, "cpu_count": 2, "nodes": [{"id": 0, "cpus": [0, 1], "cpulist": "0-1", "memory_bytes": null, "distances": {"0": 10}}]}'
        """  # noqa: E501 (the doctest's expected output is verbatim)
        return {
            "node_count": self.node_count(),
            "cpu_count": len(self._node_of_cpu),
            "nodes": [{"id": node.id, "cpus": list(node.cpus), "cpulist": format_range_list(node.cpus),
                       "memory_bytes": node.memory_bytes,
                       "distances": {str(other): self.distance(node.id, other) for other in self._by_id}}
                      for node in self._nodes],
        }

    def describe(self) -> str:
        """A table for people: each node's CPUs (as a range list), memory and
        distances to every node (columns in node id order).

        >>> print(NumaTopology.uniform(2, 2).describe())
        NUMA topology: 2 nodes, 4 usable CPUs
        node  cpus  memory  distance to  0  1
           0  0-1        -              10 21
           1  2-3        -              21 10
        """
        ids = [node.id for node in self._nodes]
        cpu_lists = [format_range_list(node.cpus) or "none" for node in self._nodes]
        memory = ["-" if node.memory_bytes is None else f"{node.memory_bytes / 2**30:.1f} GiB"
                  for node in self._nodes]
        # one width for every distance column, so each figure sits under its node id
        width = max(len(str(value)) for value in [*ids, *(self.distance(a, b) for a in ids for b in ids)])
        dist_header = "distance to " + " ".join(f"{b:>{width}}" for b in ids)
        cpu_width = max(len("cpus"), *map(len, cpu_lists))
        mem_width = max(len("memory"), *map(len, memory))
        plural = "" if len(ids) == 1 else "s"
        lines = [f"NUMA topology: {len(ids)} node{plural}, {len(self._node_of_cpu)} usable CPUs",
                 f"node  {'cpus':<{cpu_width}}  {'memory':>{mem_width}}  {dist_header}"]
        for node_id, cpus, mem in zip(ids, cpu_lists, memory):
            row = " ".join(f"{self.distance(node_id, b):>{width}}" for b in ids)
            lines.append(f"{node_id:>4}  {cpus:<{cpu_width}}  {mem:>{mem_width}}  {row:>{len(dist_header)}}")
        return "\n".join(lines)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NumaTopology):
            return NotImplemented
        return self._nodes == other._nodes

    def __hash__(self) -> int:
        return hash(self._nodes)

    def __repr__(self) -> str:
        parts = [f"node {node.id}: cpus {format_range_list(node.cpus) or 'none'}" for node in self._nodes]
        return f"<NumaTopology {len(self._nodes)} node(s); {'; '.join(parts)}>"


def _read_text(path: str) -> str:
    with open(path, encoding="ascii") as fh:
        return fh.read()


def _read_nodes(root: str, allowed: set[int]) -> list[NumaNode]:
    """The nodes of the sysfs tree at ``root``; OSError or ValueError if it is
    missing, unreadable or malformed, or if no node has an allowed CPU."""
    online_path = os.path.join(root, "online")
    try:
        online = parse_range_list(_read_text(online_path))
    except ValueError as exc:
        raise ValueError(f"{online_path}: {exc}") from None
    if not online:
        raise ValueError(f"{online_path} lists no node")
    nodes = []
    for node_id in online:
        node_dir = os.path.join(root, f"node{node_id}")
        if not os.path.isdir(node_dir):
            raise ValueError(f"{online_path} lists node {node_id} but {node_dir} is missing")
        cpulist_path = os.path.join(node_dir, "cpulist")
        try:
            cpus = parse_range_list(_read_text(cpulist_path))
        except ValueError as exc:
            raise ValueError(f"{cpulist_path}: {exc}") from None
        nodes.append(NumaNode(node_id, [cpu for cpu in cpus if cpu in allowed],
                              _read_memory(node_dir), _read_distances(node_dir, node_id, online)))
    if not any(node.cpus for node in nodes):
        raise ValueError(f"no node has any of the allowed CPUs {format_range_list(allowed)}")
    return nodes


def _read_distances(node_dir: str, node_id: int, online: tuple[int, ...]) -> dict[int, int]:
    path = os.path.join(node_dir, "distance")
    try:
        text = _read_text(path)
    except FileNotFoundError:
        return {other: LOCAL_DISTANCE if other == node_id else REMOTE_DISTANCE for other in online}
    fields = text.split()
    if len(fields) != len(online) or not all(f.isdigit() and f.isascii() for f in fields):
        raise ValueError(f"{path} should hold {len(online)} distance(s), one per online node, got {text!r}")
    return dict(zip(online, map(int, fields)))


def _read_memory(node_dir: str) -> int | None:
    """MemTotal in bytes; None if meminfo is missing or has no MemTotal line
    (memory is only described, never used for placement, so this does not
    discard the rest of the tree)."""
    path = os.path.join(node_dir, "meminfo")
    try:
        text = _read_text(path)
    except FileNotFoundError:
        return None
    match = _MEMTOTAL.search(text)
    if match is None:
        warnings.warn(f"{path} has no 'Node N MemTotal: <n> kB' line; memory of the node is unknown",
                      RuntimeWarning, stacklevel=4)
        return None
    return int(match.group(1)) * 1024

"""The README's Cython example cimports the installed core, compiles, and runs.

This is what a user writing nogil Cython against tallyio does: the .pxd files
and headers must ship with the package and work from site-packages."""
import re
from pathlib import Path

import pytest

from conftest import build_user_extension

README = Path(__file__).resolve().parent.parent / "README.md"


def _readme_cython_block() -> str:
    blocks = re.findall(r"```cython\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) == 1, "README.md should have exactly one ```cython example"
    return blocks[0]


@pytest.mark.timeout(600)
def test_readme_cython_example_builds_and_runs(tmp_path, monkeypatch):
    example = build_user_extension(tmp_path, "readme_example", _readme_cython_block(), monkeypatch)
    from tallyio import SpscQueue

    q = SpscQueue(64, dtype="uint64")
    assert example.pump(q, 100_000) == sum(range(100_000))
    assert q.empty()
    # issue 9: an object-dtype queue (or None) is refused at the boundary instead of
    # taking raw numbers it would later DECREF as objects (a segfault)
    objects = SpscQueue(64)
    with pytest.raises(TypeError, match=r"holds Python objects \(dtype=object\).*dtype='uint64'"):
        example.pump(objects, 10)
    assert objects.empty()
    objects.put_nowait("still usable")
    assert objects.get_nowait() == "still usable"
    with pytest.raises(TypeError, match="got None"):
        example.pump(None, 10)


_BOUNDARY_CHECKS = """
from tallyio._ext.mpmc cimport MpmcQueue, tio_mpmc, tio_mpmc_uint64_ring, tio_mpmc_push, tio_mpmc_pop
from tallyio._ext.deque cimport WorkStealingDeque, tio_deque, tio_deque_uint64_ring, tio_deque_push, tio_deque_pop
from libc.stdint cimport uint64_t

def mpmc_roundtrip(MpmcQueue q, uint64_t value):
    cdef uint64_t out = 0
    cdef tio_mpmc *ring = tio_mpmc_uint64_ring(q)
    tio_mpmc_push(ring, value)
    tio_mpmc_pop(ring, &out)
    return out

def deque_roundtrip(WorkStealingDeque d, uint64_t value):
    cdef uint64_t out = 0
    cdef tio_deque *ring = tio_deque_uint64_ring(d)
    tio_deque_push(ring, value)
    tio_deque_pop(ring, &out)
    return out
"""


@pytest.mark.timeout(600)
def test_mpmc_and_deque_boundary_checks(tmp_path, monkeypatch):
    example = build_user_extension(tmp_path, "boundary_checks", _BOUNDARY_CHECKS, monkeypatch)
    from tallyio import MpmcQueue, WorkStealingDeque

    assert example.mpmc_roundtrip(MpmcQueue(8, dtype="uint64"), 2**64 - 1) == 2**64 - 1
    assert example.deque_roundtrip(WorkStealingDeque(8, dtype="uint64"), 7) == 7
    with pytest.raises(TypeError, match=r"MpmcQueue\(capacity=8\) holds Python objects"):
        example.mpmc_roundtrip(MpmcQueue(8), 1)
    with pytest.raises(TypeError, match=r"WorkStealingDeque\(.*\) holds Python objects"):
        example.deque_roundtrip(WorkStealingDeque(8), 1)
    for call in (example.mpmc_roundtrip, example.deque_roundtrip):
        with pytest.raises(TypeError, match="got None"):
            call(None, 1)

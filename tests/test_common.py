"""Behaviour shared by every structure through status.pyx: uint64 items,
capacity validation, and the error each status code becomes."""
import queue

import numpy as np
import pytest

from tallyio import MpmcQueue, QueueFullError, SpscQueue, TallyioError, WorkStealingDeque


def _put(s, item):
    return s.push(item) if isinstance(s, WorkStealingDeque) else s.put_nowait(item)


def _get(s):
    return s.pop() if isinstance(s, WorkStealingDeque) else s.get_nowait()


STRUCTURES = [SpscQueue, MpmcQueue, WorkStealingDeque]


@pytest.mark.parametrize("cls", STRUCTURES)
@pytest.mark.parametrize("item, expected", [
    (0, 0), (2**64 - 1, 2**64 - 1), (np.uint64(2**63 + 5), 2**63 + 5), (np.int32(7), 7)])
def test_uint64_items_accept_ints_and_numpy_integers(cls, item, expected):
    s = cls(4, dtype="uint64")
    _put(s, item)
    got = _get(s)
    assert got == expected and type(got) is int


@pytest.mark.parametrize("cls", STRUCTURES)
@pytest.mark.parametrize("item, exc", [
    (True, TypeError), (np.bool_(True), TypeError), (1.0, TypeError), (np.float64(2), TypeError),
    ("3", TypeError), (None, TypeError), (-1, OverflowError), (2**64, OverflowError),
    (np.int64(-3), OverflowError)])
def test_uint64_items_reject_non_ints_with_a_clear_error(cls, item, exc):
    s = cls(4, dtype="uint64")
    with pytest.raises(exc, match=cls.__name__):
        _put(s, item)
    assert len(s) == 0   # nothing half-queued


@pytest.mark.parametrize("cls", STRUCTURES)
@pytest.mark.parametrize("capacity, exc", [
    (0, ValueError), (-1, ValueError), (2**40, ValueError), (1.5, TypeError), ("8", TypeError),
    (True, TypeError), (None, TypeError)])
def test_bad_capacity_names_the_problem(cls, capacity, exc):
    with pytest.raises(exc, match="capacity"):
        cls(capacity)


@pytest.mark.parametrize("cls", STRUCTURES)
def test_full_and_empty_map_to_the_stdlib_exceptions(cls):
    s = cls(2)
    with pytest.raises(queue.Empty):
        _get(s)
    for i in range(s.capacity):
        _put(s, i)
    with pytest.raises(QueueFullError) as info:
        _put(s, "one too many")
    assert isinstance(info.value, queue.Full) and isinstance(info.value, TallyioError)
    assert cls.__name__ in str(info.value)

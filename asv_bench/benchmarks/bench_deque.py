"""WorkStealingDeque benchmarks: per-call Python costs of the owner and thief
operations (next to collections.deque, the obvious single-thread peer), the
batch methods, and thieves in parallel vs one thread doing all the work (in
the style of pandas' asv_bench/benchmarks/gil.py).

The nogil thief loops come from tallyio._ext._testing (compiled with the
package), so the parallel case measures the deque, not the GIL.
"""
import collections
import threading

import numpy as np

from tallyio import WorkStealingDeque
from tallyio._ext import _testing

CALLS = 1000


class DequePushPop:
    """push + pop of one item (owner, LIFO), CALLS times per call."""

    params = ["object", "uint64"]
    param_names = ["dtype"]

    def setup(self, dtype):
        self.dq = WorkStealingDeque(1024, dtype=dtype)
        self.item = object() if dtype == "object" else 12345
        for i in range(16):       # keep some depth: pops take the no-CAS path
            self.dq.push(i)

    def time_push_pop(self, dtype):
        push, pop, item = self.dq.push, self.dq.pop, self.item
        for _ in range(CALLS):
            push(item)
            pop()


class CollectionsDequeAppendPop:
    """The single-thread peer: collections.deque append + pop."""

    def setup(self):
        self.dq = collections.deque(range(16))
        self.item = object()

    def time_append_pop(self):
        append, pop, item = self.dq.append, self.dq.pop, self.item
        for _ in range(CALLS):
            append(item)
            pop()


class DequeSteal:
    """Stealer.steal() from Python, CALLS items per call (deque refilled in setup)."""

    number = 1          # setup refills the deque before every timed call
    repeat = (10, 50, 10.0)
    params = ["object", "uint64"]
    param_names = ["dtype"]

    def setup(self, dtype):
        self.dq = WorkStealingDeque(CALLS, dtype=dtype)
        item = object() if dtype == "object" else 7
        for _ in range(CALLS):
            self.dq.push(item)
        self.thief = self.dq.stealer()

    def time_steal(self, dtype):
        steal = self.thief.steal
        for _ in range(CALLS):
            steal()

    def time_steal_empty(self, dtype):
        empty = WorkStealingDeque(8, dtype=dtype).stealer().steal
        for _ in range(CALLS):
            empty()


class DequeBatch:
    """push_many + pop_many of one batch, and steal_batch of half a deque."""

    params = [64, 4096]
    param_names = ["batch"]

    def setup(self, batch):
        self.dq = WorkStealingDeque(8192, dtype="uint64")
        self.mine = WorkStealingDeque(8192, dtype="uint64")
        self.src = np.arange(batch, dtype=np.uint64)
        self.out = np.empty(batch, dtype=np.uint64)
        self.thief = self.dq.stealer()

    def time_push_many_pop_many(self, batch):
        self.dq.push_many(self.src)
        self.dq.pop_many(self.out)

    def time_steal_batch(self, batch):
        self.dq.push_many(self.src)
        self.dq.push_many(self.src)
        self.thief.steal_batch(self.mine)      # moves `batch` items
        self.mine.pop_many(self.out)
        self.dq.pop_many(self.out)


class DequeThieves:
    """Drain a deque pre-filled with `items` uint64 items.

    parallel: `thieves` threads run nogil steal loops at once; serial: one
    thread runs the same loop alone."""

    params = ([1 << 18], [2, 4])
    param_names = ["items", "thieves"]

    def setup(self, items, thieves):
        self.items = items
        self.src = np.arange(items, dtype=np.uint64)
        self.outs = [np.empty(items, dtype=np.uint64) for _ in range(thieves)]

    def _drain(self, thieves):
        dq = WorkStealingDeque(self.items, dtype="uint64")
        dq.push_many(self.src)
        gate = _testing.StartGate(thieves)
        done = _testing.DequeFlag(1)     # no owner: stop at the first EMPTY
        counts = [0] * thieves

        def run(i):
            counts[i] = _testing.deque_thief(dq.stealer(), gate, done, self.outs[i])

        threads = [threading.Thread(target=run, args=(i,)) for i in range(thieves)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if sum(counts) != self.items:
            raise AssertionError(f"stole {sum(counts)} of {self.items}")

    def time_parallel(self, items, thieves):
        self._drain(thieves)

    def time_serial(self, items, thieves):
        self._drain(1)

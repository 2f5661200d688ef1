"""asv benchmarks for tallyio.MpmcQueue.

* per-call Python costs: put_nowait + get_nowait round trips, next to the
  same round trips on queue.SimpleQueue (the stdlib's fastest queue) so the
  two can be compared within one run;
* batch costs: put_many + get_many over numpy uint64 arrays;
* parallel vs serial (as in pandas' asv_bench/benchmarks/gil.py): the same
  number of items moved by producer/consumer loops that run without the GIL
  on several threads, or by one thread alone.
"""
import queue
import threading

import numpy as np

from tallyio import MpmcQueue
from tallyio._ext import _testing


ROUND_TRIPS = 1000


class RoundTrip:
    """put + get of one item, ROUND_TRIPS times per call (per-call Python
    cost).  The loop is in the benchmark because asv (asv_runner 0.3) times
    every call on its own, after a fresh setup(), when a class has setup():
    one ~100 ns round trip per sample would measure the timer."""

    params = ["object", "uint64"]
    param_names = ["dtype"]

    def setup(self, dtype):
        self.q = MpmcQueue(1024, dtype=dtype)
        self.simple = queue.SimpleQueue()
        self.item = 12345

    def time_mpmc_put_get_nowait(self, dtype):
        put, get, item = self.q.put_nowait, self.q.get_nowait, self.item
        for _ in range(ROUND_TRIPS):
            put(item)
            get()

    def time_mpmc_put_get_blocking(self, dtype):
        put, get, item = self.q.put, self.q.get, self.item
        for _ in range(ROUND_TRIPS):
            put(item)
            get()

    def time_simplequeue_put_get_nowait(self, dtype):
        put, get, item = self.simple.put_nowait, self.simple.get_nowait, self.item
        for _ in range(ROUND_TRIPS):
            put(item)
            get()


class Batch:
    """put_many + get_many of one batch (divide by the size for ns/item)."""

    params = [64, 4096]
    param_names = ["size"]

    def setup(self, size):
        self.q = MpmcQueue(size, dtype="uint64")
        self.src = np.arange(size, dtype=np.uint64)
        self.out = np.empty(size, dtype=np.uint64)

    def time_put_many_get_many(self, size):
        self.q.put_many(self.src)
        self.q.get_many(self.out)

    def time_put_nowait_loop(self, size):
        # the per-item alternative, for comparison
        put, get = self.q.put_nowait, self.q.get_nowait
        for x in range(size):
            put(x)
        for _ in range(size):
            get()


class ParallelVsSerial:
    """Move N items through one queue: 2 producers + 2 consumers in nogil
    threads, versus one thread pushing and popping the same N items."""

    params = [1, 64]
    param_names = ["batch"]
    N = 200_000

    def setup(self, batch):
        self.q = MpmcQueue(1024, dtype="uint64")

    def _jobs(self, batch):
        gate = _testing.StartGate(4)
        half = self.N // 2
        if batch == 1:
            return [(_testing.mpmc_produce, (self.q, gate, 0, half)),
                    (_testing.mpmc_produce, (self.q, gate, half, half)),
                    (_testing.mpmc_consume, (self.q, gate, half)),
                    (_testing.mpmc_consume, (self.q, gate, half))]
        return [(_testing.mpmc_produce_many, (self.q, gate, 0, half, batch)),
                (_testing.mpmc_produce_many, (self.q, gate, half, half, batch)),
                (_testing.mpmc_consume_many, (self.q, gate, half, batch)),
                (_testing.mpmc_consume_many, (self.q, gate, half, batch))]

    def time_parallel_2p2c(self, batch):
        threads = [threading.Thread(target=fn, args=args) for fn, args in self._jobs(batch)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def time_serial(self, batch):
        # Same items through the same ring from one thread: produce/consume
        # one chunk of the queue's capacity at a time.
        gate = _testing.StartGate(1)
        chunk = 1024
        for first in range(0, self.N, chunk):
            if batch == 1:
                _testing.mpmc_produce(self.q, gate, first, chunk)
                _testing.mpmc_consume(self.q, gate, chunk)
            else:
                _testing.mpmc_produce_many(self.q, gate, first, chunk, batch)
                _testing.mpmc_consume_many(self.q, gate, chunk, batch)

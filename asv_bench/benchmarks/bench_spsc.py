"""SpscQueue benchmarks: per-call Python costs next to queue.SimpleQueue,
batch costs, and a two-thread pair (parallel vs serial), in the style of
pandas' asv_bench/benchmarks/gil.py.

Single-thread benchmarks are the producer and consumer at once (allowed: the
same thread may hold both roles).  The two-thread benchmark starts a fresh
producer thread per run; the previous one has exited, so the role passes on.
"""
import queue
import threading

import numpy as np

from tallyio import SpscQueue

ROUND_TRIPS = 1000


class SpscRoundTrip:
    """put_nowait + get_nowait of one object, ROUND_TRIPS times per call."""

    params = ["object", "uint64"]
    param_names = ["dtype"]

    def setup(self, dtype):
        self.q = SpscQueue(1024, dtype=dtype)
        self.item = object() if dtype == "object" else 12345

    def time_put_nowait_get_nowait(self, dtype):
        put, get, item = self.q.put_nowait, self.q.get_nowait, self.item
        for _ in range(ROUND_TRIPS):
            put(item)
            get()

    def time_put_get_blocking_api(self, dtype):
        put, get, item = self.q.put, self.q.get, self.item
        for _ in range(ROUND_TRIPS):
            put(item)
            get()


class SimpleQueueRoundTrip:
    """The stdlib peer of SpscRoundTrip: queue.SimpleQueue put + get."""

    def setup(self):
        self.q = queue.SimpleQueue()
        self.item = object()

    def time_put_get(self):
        put, get, item = self.q.put, self.q.get, self.item
        for _ in range(ROUND_TRIPS):
            put(item)
            get()


class SpscBatch:
    """put_many + get_many of one batch (uint64 queue)."""

    params = [64, 4096]
    param_names = ["batch"]

    def setup(self, batch):
        self.q = SpscQueue(4096, dtype="uint64")
        self.src = np.arange(batch, dtype=np.uint64)
        self.out = np.empty(batch, dtype=np.uint64)

    def time_put_many_get_many(self, batch):
        self.q.put_many(self.src)
        self.q.get_many(self.out)


class SpscTwoThreads:
    """Move `items` uint64 items through a 4096-slot queue, consumer = this
    thread calling get_many with 4096-item chunks.

    * native_producer: a producer thread runs a nogil C loop of push_many
      (tallyio._ext._testing.spsc_produce_batches, chunks of 1..4096) for the
      whole run, so the two sides really run in parallel;
    * python_producer: a producer thread calls put_many in a Python loop;
      both loops need the GIL between their nogil copies, so this shows
      CPython's GIL hand-off cost (up to sys.getswitchinterval() per hand-off);
    * serial: one thread alternates put_many and get_many.
    """

    params = [1 << 18]
    param_names = ["items"]
    chunk = 4096

    def setup(self, items):
        self.src = np.arange(items, dtype=np.uint64)
        self.dst = np.empty(items, dtype=np.uint64)

    def _consume(self, q, items):
        got, chunk, dst = 0, self.chunk, self.dst
        while got < items:
            got += q.get_many(dst[got:got + chunk])

    def _python_produce(self, q, items):
        sent, chunk, src = 0, self.chunk, self.src
        while sent < items:
            sent += q.put_many(src[sent:sent + chunk])

    def time_native_producer(self, items):
        from tallyio._ext import _testing
        q = SpscQueue(4096, dtype="uint64")
        producer = threading.Thread(target=_testing.spsc_produce_batches,
                                    args=(q, 0, items, self.chunk, 1, _testing.StartGate(1)))
        producer.start()
        self._consume(q, items)
        producer.join()

    def time_python_producer(self, items):
        q = SpscQueue(4096, dtype="uint64")
        producer = threading.Thread(target=self._python_produce, args=(q, items))
        producer.start()
        self._consume(q, items)
        producer.join()

    def time_serial(self, items):
        q = SpscQueue(4096, dtype="uint64")
        sent = got = 0
        chunk, src, dst = self.chunk, self.src, self.dst
        while got < items:
            sent += q.put_many(src[sent:sent + chunk])
            got += q.get_many(dst[got:got + chunk])

    def teardown(self, items):
        assert np.array_equal(self.dst, self.src), "items lost or misordered"

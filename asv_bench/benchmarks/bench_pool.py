"""asv benchmarks for MemoryPool.

Python-level costs are paired with what a user would otherwise write
(bytearray(256)) in the same class, so one asv run gives the ratio; the
parallel/serial pair (as in pandas' asv_bench/benchmarks/gil.py) shows how
nogil alloc/free loops on two threads compare with the same work on one.
"""
import threading

from tallyio import MemoryPool

try:  # the nogil loops live in the test helper module compiled with the package
    from tallyio._ext import _testing
except ImportError:  # pragma: no cover - a build without the helpers
    _testing = None

import numpy as np


class TimeAllocFree:
    """One alloc()+free() pair from Python, next to its peer bytearray(256)."""

    def setup(self):
        self.pool = MemoryPool(256, 1024)
        self.held = [self.pool.alloc() for _ in range(100)]

    def teardown(self):
        for b in self.held:
            self.pool.free(b)

    def time_alloc_free(self):
        pool = self.pool
        for _ in range(1000):
            b = pool.alloc()
            pool.free(b)

    def time_bytearray_256(self):
        for _ in range(1000):
            b = bytearray(256)
            del b

    def time_with_block(self):
        pool = self.pool
        for _ in range(1000):
            with pool.block():
                pass

    def time_alloc_dropped(self):
        """A Block dropped without free(): its deallocation returns the block."""
        pool = self.pool
        for _ in range(1000):
            pool.alloc()

    def time_alloc_100_then_free_100(self):
        pool = self.pool
        blocks = [pool.alloc() for _ in range(100)]
        for b in blocks:
            pool.free(b)

    def time_bytearray_100_then_drop(self):
        blocks = [bytearray(256) for _ in range(100)]
        del blocks

    def time_numpy_view(self):
        """Zero-copy numpy view of a block, written and dropped."""
        pool = self.pool
        for _ in range(100):
            b = pool.alloc()
            a = np.frombuffer(b, dtype=np.uint64)
            a[0] = 1
            del a
            pool.free(b)

    def time_numpy_empty_peer(self):
        for _ in range(100):
            a = np.empty(32, dtype=np.uint64)
            a[0] = 1
            del a


class PeakMemPool:
    """10 000 blocks of 1 KiB: one pool vs a list of bytearrays."""

    def peakmem_pool_10000x1KiB(self):
        pool = MemoryPool(1024, 10_000)
        blocks = [pool.alloc() for _ in range(10_000)]
        return len(blocks)

    def peakmem_bytearrays_10000x1KiB(self):
        blocks = [bytearray(1024) for _ in range(10_000)]
        return len(blocks)


class ParallelChurn:
    """nogil alloc/free churn (each thread holds up to 4 blocks and checks
    its ownership tags): `threads` threads at once vs the same total work
    on one thread."""

    params = [1, 2, 4]
    param_names = ["threads"]
    ITERATIONS = 200_000

    def setup(self, threads):
        if _testing is None:
            raise NotImplementedError("tallyio._ext._testing not built")
        self.pool = MemoryPool(64, 256, alignment=64)

    def _run(self, threads, iterations):
        gate = _testing.StartGate(threads)
        outs = np.zeros((threads, 5), dtype=np.uint64)
        workers = [threading.Thread(target=_testing.pool_churn,
                                    args=(self.pool, gate, t + 1, iterations, 4, t, False, outs[t]))
                   for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        if outs[:, 0].any() or outs[:, 1].any():
            raise RuntimeError("pool churn saw a block held twice")

    def time_parallel(self, threads):
        self._run(threads, self.ITERATIONS // threads)

    def time_serial(self, threads):
        self._run(1, self.ITERATIONS)

    def time_parallel_thread_cache(self, threads):
        gate = _testing.StartGate(threads)
        outs = np.zeros((threads, 5), dtype=np.uint64)
        workers = [threading.Thread(target=_testing.pool_churn,
                                    args=(self.pool, gate, t + 1, self.ITERATIONS // threads, 4, t,
                                          True, outs[t]))
                   for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()


class TimeCHarness:
    """The C-level harness: nanoseconds per alloc+free pair from nogil loops,
    reported as tracked values (asv track_*)."""

    N = 500_000

    def setup(self):
        if _testing is None:
            raise NotImplementedError("tallyio._ext._testing not built")
        self.results = _testing.bench_pool(self.N)

    def track_alloc_free_same_thread_ns(self):
        return self.results["alloc+free same thread"]

    def track_alloc_free_two_threads_ns(self):
        return self.results["alloc+free, 2 threads contending"]

    def track_thread_cache_same_thread_ns(self):
        return self.results["per-thread cache alloc+free same thread"]

    track_alloc_free_same_thread_ns.unit = "ns"
    track_alloc_free_two_threads_ns.unit = "ns"
    track_thread_cache_same_thread_ns.unit = "ns"

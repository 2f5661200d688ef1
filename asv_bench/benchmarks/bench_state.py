"""tallyio.state benchmarks: ``state_sync`` (the seed's name: a worker's
updates merged into the 64 KiB global state and an A/B checkpoint published),
with py-lmdb writing the same 64 KiB as the peer, and a seqlock field read.
"""
import os
import shutil
import tempfile

from tallyio.state import CheckpointFile, GlobalState, StateLayout

LAYOUT = StateLayout(1, {"pools": ([("reserve0_lo", "u8"), ("reserve0_hi", "u8"), ("reserve1_lo", "u8"),
                                    ("reserve1_hi", "u8"), ("block", "u8"), ("log_index", "u8"),
                                    ("spare", "u8")], 1024)})      # 64 KiB


class StateSync:
    """merge() of a few thread-local reserve updates + checkpoint() (policy none)."""

    params = [3, "full"]
    param_names = ["updates"]

    def setup(self, updates):
        self.dir = tempfile.mkdtemp()
        self.state = GlobalState(LAYOUT)
        self.local = self.state.local(counters=0)
        self.ckpt = CheckpointFile(os.path.join(self.dir, "s.ckpt"), self.state)
        self.ckpt.checkpoint()
        self.ckpt.checkpoint()
        self.i = 0

    def teardown(self, updates):
        self.ckpt.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def time_state_sync(self, updates):
        self.i += 1
        if updates == "full":
            self.local.set("pools", self.i % 1024, "reserve0_lo", self.i)
            self.state.mark_all_dirty()
        else:
            for k in range(updates):
                self.local.set("pools", (self.i * 3 + k) % 1024, "reserve0_lo", self.i)
        self.state.merge()
        self.ckpt.checkpoint(self.i)


class LmdbPut64K:
    """The peer: py-lmdb put of the same 64 KiB + commit, sync=False."""

    def setup(self):
        import lmdb
        self.dir = tempfile.mkdtemp()
        self.env = lmdb.open(self.dir, map_size=1 << 26, sync=False, metasync=False)
        self.value = os.urandom(64 * 1024)

    def teardown(self):
        self.env.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def time_put_commit(self):
        with self.env.begin(write=True) as txn:
            txn.put(b"state", self.value)


class SeqlockRead:
    """One field of one record through the seqlock, from Python."""

    def setup(self):
        self.state = GlobalState(LAYOUT)
        self.state.write("pools", 5, reserve0_lo=7)
        self.reader = self.state.field_reader("pools", "reserve0_lo")

    def time_field_reader(self):
        self.reader(5)

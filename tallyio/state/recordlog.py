"""The record log: an append-only, memory-mapped file of typed, sequenced,
checksummed records. It is both the engine's journal and the mempool recording
format (one format, one reader).

Owns: the on-disk format below, and the files ``PATH`` (active segment),
``PATH.<first_seq:020d>`` (sealed segments), ``PATH.tmp`` (a segment being
created) and ``PATH.lock`` (the writer's flock). Touches nothing else.

File layout (little-endian; see docs/state.md for the crash-safety argument)::

    file header, 64 bytes
      0  magic          8s   b"TIORLOG\\0"
      8  format_version u32  1 (a reader refuses anything newer)
     12  header_size    u32  64
     16  first_seq      u64  sequence number of the first record in this file
     24  created_ns     u64  time.time_ns() when the segment was created
     32  creator_pid    u32
     36  flags          u32  0 (reserved)
     40  creator        20s  b"tallyio <version>", NUL-padded
     60  header_crc     u32  zlib.crc32 of bytes 0..59
    records, each starting at a multiple of 8
      0  type           u16  RecordType (0 is never a record: zero-filled space)
      2  flags          u16  meaning belongs to the record type
      4  length         u32  payload bytes
      8  sequence       u64  previous record's + 1 (across segments too)
     16  timestamp_ns   u64  given by the writer (time.time_ns() by default)
     24  payload        length bytes
         crc            u32  zlib.crc32 of the 24 header bytes + payload
         zero padding to a multiple of 8

A reader stops at the first record that is not valid (type 0, length past the
end of the file, a sequence that is not the previous + 1, a checksum
mismatch): after a crash that is where the log ends.

The checksum is CRC-32 as ``zlib.crc32`` computes it (the zlib/IEEE
polynomial), measured at ~0.1 us for a 200-byte record here, well below the
Python call overhead of an append, so no native code is needed for it.

    >>> import tempfile, os
    >>> from tallyio.state.recordlog import RecordWriter, RecordReader, RecordType
    >>> d = tempfile.mkdtemp()
    >>> with RecordWriter(os.path.join(d, "journal.tlog")) as log:
    ...     log.append(RecordType.ENGINE_EVENT, b"started", ts=1)
    ...     log.append(RecordType.ACTION, b"buy", ts=2)
    1
    2
    >>> [(r.seq, r.type.name, r.payload) for r in RecordReader(os.path.join(d, "journal.tlog"))]
    [(1, 'ENGINE_EVENT', b'started'), (2, 'ACTION', b'buy')]
"""
from __future__ import annotations

import enum
import errno
import fcntl
import mmap
import os
import re
import struct
import threading
import time
import zlib
from pathlib import Path
from typing import Iterator, List, NamedTuple, Optional, Tuple, Union

from tallyio._version import __version__
from tallyio.errors import (CorruptFileError, ForeignFileError, FutureVersionError,
                            ReadOnlyStateError, StateLockedError, StorageFullError)

__all__ = ["RecordType", "Record", "RecordWriter", "RecordReader", "read_records",
           "FLUSH_POLICIES", "MAGIC", "FORMAT_VERSION", "MAX_PAYLOAD"]

MAGIC = b"TIORLOG\0"
FORMAT_VERSION = 1
MAX_PAYLOAD = 1 << 28          # 256 MiB: a record is one event, not a bulk file
FLUSH_POLICIES = ("none", "async", "sync")

_FILE_HEADER = struct.Struct("<8sIIQQII20sI")     # 64 bytes
_REC_HEADER = struct.Struct("<HHIQQ")             # 24 bytes
_CRC = struct.Struct("<I")
HEADER_SIZE = _FILE_HEADER.size
_SEALED = re.compile(r"\.(\d{20})$")
assert HEADER_SIZE == 64 and _REC_HEADER.size == 24


class RecordType(enum.IntEnum):
    """What a record's payload is. 0 is never a record (zero-filled space);
    1..0x7FFF are tallyio's (add new ones at the end, never renumber);
    0x8000..0xFFFF are free for applications (a reader yields them as plain
    ints).

    >>> RecordType.PENDING_TX, RecordType(3).name
    (<RecordType.PENDING_TX: 1>, 'SYNC_EVENT')
    """

    PENDING_TX = 1        #: a tallyio.eth.types.PendingTx as the mempool source saw it
    BLOCK_HEADER = 2      #: a tallyio.eth.types.BlockHeader
    SYNC_EVENT = 3        #: a tallyio.eth.types.SyncEvent (pool reserves after a swap/mint/burn)
    POOL_SNAPSHOT = 4     #: the pool table (or part of it) at a point in time
    ENGINE_EVENT = 5      #: engine lifecycle and state changes (start, stop, breaker trips, ...)
    ACTION = 6            #: an action a strategy decided (what the executor was asked to do)
    EXECUTION_RESULT = 7  #: what became of an action (sent, mined, reverted, dropped)
    V3_POOL_EVENT = 8     #: a tallyio.mempool.records.V3PoolEvent (a V3 pool's Swap/Mint/Burn, or its resynced state)
    RAW_LOG = 9           #: a tallyio.eth.types.RawLog (any contract's log, as the node sent it)
    LENDING_SNAPSHOT = 10  #: a tallyio.mempool.lending.LendingSnapshot (an Aave book a replay starts from)


_TYPES = {int(t): t for t in RecordType}   # a dict lookup: RecordType(n) costs ~1 us


class Record(NamedTuple):
    """One record as read back."""

    type: Union[RecordType, int]
    flags: int
    seq: int
    ts: int
    payload: bytes


def _record_size(length: int) -> int:
    return (_REC_HEADER.size + length + _CRC.size + 7) & ~7


def _creator() -> bytes:
    return f"tallyio {__version__}".encode()[:20]


def _check_header(raw: bytes, where: str) -> int:
    """Validate a file header, return its first_seq."""
    if len(raw) < HEADER_SIZE:
        if len(raw) >= len(MAGIC) and raw[:len(MAGIC)] != MAGIC:
            raise ForeignFileError(f"{where}: not a tallyio record log (magic {raw[:8]!r})")
        raise CorruptFileError(f"{where}: truncated header ({len(raw)} of {HEADER_SIZE} bytes)")
    magic, version, header_size, first_seq, _created, _pid, _flags, _creator_b, crc = \
        _FILE_HEADER.unpack_from(raw)
    if magic != MAGIC:
        raise ForeignFileError(f"{where}: not a tallyio record log (magic {magic!r})")
    if version > FORMAT_VERSION:
        raise FutureVersionError(
            f"{where}: record log format version {version} is newer than this tallyio "
            f"understands ({FORMAT_VERSION}); upgrade tallyio to read it")
    if zlib.crc32(raw[:HEADER_SIZE - 4]) != crc or header_size != HEADER_SIZE or version < 1:
        raise CorruptFileError(f"{where}: header checksum mismatch (damaged file)")
    return first_seq


def _scan(buf, size: int, first_seq: int) -> Iterator[Tuple[int, int, int, int, int, int, int]]:
    """Yield (offset, type, flags, length, seq, ts, record_size) of each valid
    record of one segment, stopping at the first invalid one."""
    off = HEADER_SIZE
    expect = first_seq
    unpack = _REC_HEADER.unpack_from
    crc_at = _CRC.unpack_from
    crc32 = zlib.crc32
    view = memoryview(buf)          # checksum in place: no copy of each record
    try:
        while off + 28 <= size:
            rtype, flags, length, seq, ts = unpack(buf, off)
            if rtype == 0 or seq != expect:
                return
            rsize = (24 + length + 4 + 7) & ~7
            if length > MAX_PAYLOAD or off + rsize > size:
                return
            end = off + 24 + length
            if crc32(view[off:end]) != crc_at(buf, end)[0]:
                return
            yield off, rtype, flags, length, seq, ts, rsize
            off += rsize
            expect += 1
    finally:
        view.release()


def _segments(path: Path) -> List[Tuple[int, Path]]:
    """Sealed segments of the log at `path`, by first sequence number."""
    out = []
    if path.parent.is_dir():
        prefix = path.name + "."
        for p in path.parent.iterdir():
            if p.name.startswith(prefix):
                m = _SEALED.search(p.name)
                if m and p.name == prefix + m.group(1):
                    out.append((int(m.group(1)), p))
    out.sort()
    return out


def _os_error(exc: OSError, what: str) -> Exception:
    """Map an OSError met while writing to the named error a caller catches."""
    if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        return StorageFullError(exc.errno, f"{what}: {os.strerror(exc.errno)} (nothing was written)")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return ReadOnlyStateError(exc.errno, f"{what}: {os.strerror(exc.errno)}")
    return exc


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Flusher(threading.Thread):
    """The background thread behind flush policy "async": msync off the
    appending thread. The map lock orders it against a remap."""

    def __init__(self, writer: "RecordWriter") -> None:
        super().__init__(name="tallyio-recordlog-flush", daemon=True)
        self._writer = writer
        self._wake = threading.Event()
        self._stopping = False

    def request(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        self.join()

    def run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            try:
                self._writer._sync_now()
            except (OSError, ValueError):  # noqa: PERF203 - the next sync() reports a real failure
                pass


class RecordWriter:
    """The one writer of a record log (an exclusive ``flock`` on ``PATH.lock``;
    a second writer, in this process or another, gets
    :class:`~tallyio.errors.StateLockedError`).

    Opening an existing log continues it after its last valid record (a torn
    tail from a crash is zeroed first). ``flush_policy`` says what
    :meth:`flush` does: ``"none"`` (records survive a process crash as soon as
    :meth:`append` returns, being in the page cache; not a power loss),
    ``"async"`` (msync on a background thread), ``"sync"`` (msync + fdatasync
    before returning: survives power loss). The file grows by ``chunk_size``
    (allocated with ``posix_fallocate``, so a full disk is an error at growth
    time, never a SIGBUS on a mapped page); past ``max_file_size`` the active
    file is sealed (renamed ``PATH.<first_seq:020d>``) and a new one started.

    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "rec.tlog")
    >>> w = RecordWriter(path, flush_policy="sync")
    >>> w.append(RecordType.BLOCK_HEADER, b"h" * 10, ts=5), w.next_seq
    (1, 2)
    >>> RecordWriter(path)
    Traceback (most recent call last):
    ...
    tallyio.errors.StateLockedError: ...another writer holds the lock...
    >>> w.close()
    """

    def __init__(self, path: Union[str, os.PathLike], *, flush_policy: str = "none",
                 chunk_size: int = 1 << 20, max_file_size: Optional[int] = None,
                 first_seq: int = 1) -> None:
        if flush_policy not in FLUSH_POLICIES:
            raise ValueError(f"flush_policy must be one of {FLUSH_POLICIES}, got {flush_policy!r}")
        if not isinstance(chunk_size, int) or chunk_size < 4096:
            raise ValueError(f"chunk_size must be an int >= 4096, got {chunk_size!r}")
        if max_file_size is not None and (not isinstance(max_file_size, int)
                                          or max_file_size < HEADER_SIZE + 4096):
            raise ValueError(f"max_file_size must be None or an int >= {HEADER_SIZE + 4096}, "
                             f"got {max_file_size!r}")
        if not isinstance(first_seq, int) or first_seq < 1:
            raise ValueError(f"first_seq must be an int >= 1, got {first_seq!r}")
        self.path = Path(path)
        self.flush_policy = flush_policy
        self.chunk_size = (chunk_size + 4095) & ~4095
        self.max_file_size = max_file_size
        self._fd = -1
        self._mm: Optional[mmap.mmap] = None
        self._lock_fd = -1
        self._map_lock = threading.Lock()
        self._flusher: Optional[_Flusher] = None
        self._closed = False
        self._lock_fd = self._take_lock()
        try:
            self._open_active(first_seq)
        except BaseException:
            self._release()
            raise
        if flush_policy == "async":
            self._flusher = _Flusher(self)
            self._flusher.start()

    # ---- opening ------------------------------------------------------------
    def _take_lock(self) -> int:
        lock_path = str(self.path) + ".lock"
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except FileNotFoundError:
            raise FileNotFoundError(errno.ENOENT, f"record log directory {self.path.parent} does not exist") from None
        except OSError as exc:
            raise _os_error(exc, f"cannot create the lock file {lock_path}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StateLockedError(errno.EWOULDBLOCK,
                                   f"{self.path}: another writer holds the lock ({lock_path})") from None
        return fd

    def _open_active(self, first_seq: int) -> None:
        tmp = Path(str(self.path) + ".tmp")
        if tmp.exists():          # a segment whose creation a crash interrupted: never published
            tmp.unlink()
        if not self.path.exists():
            sealed = _segments(self.path)
            if sealed:            # crashed between sealing the active file and starting the next
                first_seq = _end_seq(sealed[-1][1])
            self._create_segment(first_seq)
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            raise _os_error(exc, f"cannot open {self.path} for writing") from None
        size = os.fstat(self._fd).st_size
        head = os.pread(self._fd, HEADER_SIZE, 0)
        self._first_seq = _check_header(head, str(self.path))
        if size < HEADER_SIZE + 8:
            self._grow_to(HEADER_SIZE + self._first_chunk(), size)
            size = os.fstat(self._fd).st_size
        self._set_capacity(size)
        self._mm = mmap.mmap(self._fd, size)
        end, next_seq = HEADER_SIZE, self._first_seq
        for off, _t, _f, _l, seq, _ts, rsize in _scan(self._mm, size, self._first_seq):
            end, next_seq = off + rsize, seq + 1
        if self._mm[end:size].count(0) != size - end:
            # a torn tail (crash mid-append): zero it so stale bytes can never
            # line up behind the records appended from here on
            self._mm[end:size] = bytes(size - end)
            self._mm.flush()
        self._off = end
        self._synced_off = HEADER_SIZE
        self._next_seq = next_seq

    def _create_segment(self, first_seq: int) -> None:
        """Create PATH holding only a header: written to PATH.tmp, then renamed
        into place, so PATH is never a half-written header."""
        tmp = str(self.path) + ".tmp"
        head = bytearray(_FILE_HEADER.pack(MAGIC, FORMAT_VERSION, HEADER_SIZE, first_seq,
                                           time.time_ns(), os.getpid() & 0xFFFFFFFF, 0,
                                           _creator(), 0))
        struct.pack_into("<I", head, HEADER_SIZE - 4, zlib.crc32(bytes(head[:HEADER_SIZE - 4])))
        try:
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise _os_error(exc, f"cannot create {tmp}") from None
        try:
            try:
                os.write(fd, bytes(head))
                os.posix_fallocate(fd, HEADER_SIZE, self._first_chunk())
                if self.flush_policy != "none":
                    os.fsync(fd)
            except OSError as exc:
                os.close(fd)
                fd = -1
                os.unlink(tmp)
                raise _os_error(exc, f"cannot create a record log segment {self.path}") from None
        finally:
            if fd >= 0:
                os.close(fd)
        os.rename(tmp, self.path)
        if self.flush_policy != "none":
            _fsync_dir(self.path.parent)

    def _first_chunk(self) -> int:
        if self.max_file_size is None:
            return self.chunk_size
        return min(self.chunk_size, self.max_file_size - HEADER_SIZE)

    def _grow_to(self, new_size: int, old_size: int) -> None:
        try:
            os.posix_fallocate(self._fd, old_size, new_size - old_size)
        except OSError as exc:
            try:   # posix_fallocate may have extended the file part way: undo it
                os.ftruncate(self._fd, old_size)
            except OSError:
                pass
            raise _os_error(exc, f"cannot grow {self.path} to {new_size} bytes") from None

    # ---- writing ------------------------------------------------------------
    @property
    def next_seq(self) -> int:
        """The sequence number the next :meth:`append` will get."""
        return self._next_seq

    def append(self, rtype: int, payload: Union[bytes, bytearray, memoryview],
               ts: Optional[int] = None, flags: int = 0) -> int:
        """Append one record and return its sequence number. Once this
        returns, the record survives a crash of this process; :meth:`flush`
        makes it survive a power loss. On a full disk nothing is appended and
        :class:`~tallyio.errors.StorageFullError` is raised."""
        if self._closed:
            raise ValueError(f"{self.path}: the record log is closed")
        if not isinstance(rtype, int) or not 1 <= rtype <= 0xFFFF:
            raise ValueError(f"record type must be an int in 1..65535, got {rtype!r}")
        if not isinstance(flags, int) or not 0 <= flags <= 0xFFFF:
            raise ValueError(f"record flags must be an int in 0..65535, got {flags!r}")
        if not isinstance(payload, (bytes, bytearray, memoryview)):
            raise TypeError(f"payload must be bytes-like, got {type(payload).__name__}")
        length = len(payload) if not isinstance(payload, memoryview) else payload.nbytes
        if length > MAX_PAYLOAD:
            raise ValueError(f"payload of {length} bytes exceeds the {MAX_PAYLOAD}-byte record limit")
        if ts is None:
            ts = time.time_ns()
        elif not isinstance(ts, int) or not 0 <= ts < 1 << 64:
            raise ValueError(f"ts must be an int in 0..2**64-1 nanoseconds, got {ts!r}")
        rsize = _record_size(length)
        off = self._off
        if off + rsize > self._limit:
            # slow path: seal the file when it would pass max_file_size (unless
            # the record alone is that big), grow it when the record does not fit
            if (self.max_file_size is not None and off > HEADER_SIZE
                    and off + rsize > self.max_file_size):
                self._rotate()
                off = self._off
            if off + rsize > self._capacity:
                self._grow(off + rsize)
        mm = self._mm
        head = _REC_HEADER.pack(rtype, flags, length, self._next_seq, ts)
        end = off + 24 + length
        mm[off:off + 24] = head
        mm[off + 24:end] = payload
        _CRC.pack_into(mm, end, zlib.crc32(payload, zlib.crc32(head)))
        self._off = off + rsize
        seq = self._next_seq
        self._next_seq = seq + 1
        return seq

    def _set_capacity(self, capacity: int) -> None:
        self._capacity = capacity
        self._limit = capacity if self.max_file_size is None else min(capacity, self.max_file_size)

    def _grow(self, need: int) -> None:
        chunks = (need + self.chunk_size - 1) // self.chunk_size
        new_size = max(self._capacity + self.chunk_size, chunks * self.chunk_size)
        if self.max_file_size is not None:
            new_size = min(new_size, max(self.max_file_size, need))
        with self._map_lock:
            self._grow_to(new_size, self._capacity)
            self._mm.close()
            self._mm = mmap.mmap(self._fd, new_size)
            self._set_capacity(new_size)

    def _rotate(self, next_first: Optional[int] = None) -> None:
        """Seal the active file (trimmed to its records, synced by policy,
        renamed PATH.<first_seq>) and start a new one (at next_first, default
        the next sequence number)."""
        if next_first is None:
            next_first = self._next_seq
        with self._map_lock:
            if self.flush_policy != "none":
                self._mm.flush()
            self._mm.close()
            self._mm = None
            os.ftruncate(self._fd, self._off)
            if self.flush_policy != "none":
                os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1
            os.rename(self.path, f"{self.path}.{self._first_seq:020d}")
            self._create_segment(next_first)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
            self._set_capacity(os.fstat(self._fd).st_size)
            self._mm = mmap.mmap(self._fd, self._capacity)
            self._first_seq = next_first
            self._off = HEADER_SIZE
            self._synced_off = HEADER_SIZE

    def _sync_now(self) -> None:
        with self._map_lock:
            if self._mm is None:
                return
            end = self._off
            start = self._synced_off & ~(mmap.PAGESIZE - 1)
            if end > start:
                self._mm.flush(start, end - start)
                os.fdatasync(self._fd)
            self._synced_off = end

    def flush(self, policy: Optional[str] = None) -> None:
        """Make the records appended so far durable by ``policy`` (default:
        the writer's): ``"none"`` does nothing, ``"async"`` asks the
        background thread to msync, ``"sync"`` msyncs and fdatasyncs now."""
        policy = self.flush_policy if policy is None else policy
        if policy not in FLUSH_POLICIES:
            raise ValueError(f"policy must be one of {FLUSH_POLICIES}, got {policy!r}")
        if self._closed:
            raise ValueError(f"{self.path}: the record log is closed")
        if policy == "sync":
            self._sync_now()
        elif policy == "async":
            if self._flusher is None:
                self._flusher = _Flusher(self)
                self._flusher.start()
            self._flusher.request()

    def skip_to(self, seq: int) -> None:
        """Continue the log at sequence ``seq`` (> next_seq - 1) in a new
        segment. For a store whose checkpoint is ahead of a journal that lost
        its unsynced tail in a power loss (flush policy "async"): the records
        in between are in the checkpoint, not in the log, and a reader from
        ``seq`` on never meets the gap."""
        if self._closed:
            raise ValueError(f"{self.path}: the record log is closed")
        if not isinstance(seq, int) or seq < self._next_seq:
            raise ValueError(f"skip_to({seq!r}): must be >= next_seq ({self._next_seq})")
        if seq == self._next_seq:
            return
        if self._off > HEADER_SIZE:
            self._rotate(seq)
        else:
            # the active file has no record: rewrite its header in place (PATH.tmp + rename)
            with self._map_lock:
                self._mm.close()
                self._mm = None
                os.close(self._fd)
                self._fd = -1
                self._create_segment(seq)
                self._fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
                self._set_capacity(os.fstat(self._fd).st_size)
                self._mm = mmap.mmap(self._fd, self._capacity)
                self._first_seq = seq
                self._off = HEADER_SIZE
                self._synced_off = HEADER_SIZE
        self._next_seq = seq

    def remove_before(self, seq: int) -> int:
        """Delete sealed segments holding only records older than ``seq``
        (e.g. the sequence number of the oldest checkpoint you keep); return
        how many files were removed."""
        sealed = _segments(self.path)
        firsts = [s for s, _ in sealed] + [self._first_seq]
        removed = 0
        for (_first, p), next_first in zip(sealed, firsts[1:]):
            if next_first <= seq:
                p.unlink()
                removed += 1
        return removed

    # ---- closing ------------------------------------------------------------
    def _release(self) -> None:
        if self._mm is not None:
            self._mm.close()
            self._mm = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._lock_fd >= 0:
            os.close(self._lock_fd)    # closing drops the flock
            self._lock_fd = -1

    def close(self) -> None:
        """Flush by policy, stop the background flusher, unlock. Idempotent."""
        if self._closed:
            return
        if self._flusher is not None:
            self._flusher.stop()
        if self.flush_policy != "none" and self._mm is not None:
            self._sync_now()
        self._closed = True
        self._release()

    def __enter__(self) -> "RecordWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"next_seq={self._next_seq}"
        return f"<RecordWriter {str(self.path)!r} {state} policy={self.flush_policy}>"


def _end_seq(segment: Path) -> int:
    """The sequence number after the last valid record of one segment file."""
    with open(segment, "rb") as f:
        data = f.read()
    seq = _check_header(data, str(segment))
    for *_rest, s, _ts, _rsize in _scan(data, len(data), seq):
        seq = s + 1
    return seq


class RecordReader:
    """Iterate the valid records of a log (sealed segments, then the active
    file) in sequence order, from ``from_seq`` on. Iteration stops at the
    first invalid record (the end after a crash) or at a gap between
    segments; :attr:`end_reason` then says which. Safe while a writer appends
    (a record being written is not valid yet, so it is the end).

    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "r.tlog")
    >>> with RecordWriter(path) as w:
    ...     for i in range(5):
    ...         _ = w.append(RecordType.SYNC_EVENT, bytes([i]), ts=i)
    >>> r = RecordReader(path, from_seq=4)
    >>> [rec.seq for rec in r], r.end_reason
    ([4, 5], 'end of log')
    """

    def __init__(self, path: Union[str, os.PathLike], from_seq: int = 0) -> None:
        self.path = Path(path)
        self.from_seq = from_seq
        self.end_reason = "not read yet"
        self.last_seq = 0
        if not self.path.exists() and not _segments(self.path):
            raise FileNotFoundError(errno.ENOENT, f"no record log at {self.path}")

    def _files(self) -> List[Path]:
        files = [p for _, p in _segments(self.path)]
        if self.path.exists():
            files.append(self.path)
        return files

    def __iter__(self) -> Iterator[Record]:
        files = self._files()
        firsts = []
        heads = []
        for p in files:
            with open(p, "rb") as f:
                heads.append(f.read(HEADER_SIZE))
            firsts.append(_check_header(heads[-1], str(p)))
        expect = None
        for i, p in enumerate(files):
            if i + 1 < len(firsts) and firsts[i + 1] <= self.from_seq:
                continue            # every record of this segment is before from_seq
            if expect is not None and firsts[i] != expect:
                self.end_reason = f"gap: {p} starts at {firsts[i]}, expected {expect}"
                return
            with open(p, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size <= HEADER_SIZE:
                    expect = firsts[i]
                    continue
                with mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ) as mm:
                    last_end = HEADER_SIZE
                    expect = firsts[i]
                    for off, rtype, flags, length, seq, ts, rsize in _scan(mm, size, firsts[i]):
                        last_end = off + rsize
                        expect = seq + 1
                        self.last_seq = seq
                        if seq < self.from_seq:
                            continue
                        yield Record(_TYPES.get(rtype, rtype), flags, seq, ts, mm[off + 24:off + 24 + length])
                    tail_clean = last_end >= size or mm[last_end:size].count(0) == size - last_end
            if not tail_clean:
                self.end_reason = f"torn or invalid record at {p} offset {last_end}"
                return
        self.end_reason = "end of log"


def read_records(path: Union[str, os.PathLike], from_seq: int = 0) -> List[Record]:
    """All valid records of the log at ``path`` from ``from_seq`` on, as a list.

    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "x.tlog")
    >>> with RecordWriter(path) as w:
    ...     w.append(RecordType.ACTION, b"a", ts=0)
    1
    >>> read_records(path)[0].payload
    b'a'
    """
    return list(RecordReader(path, from_seq))

# cython: language_level=3
"""Global state (one writer, seqlock readers), thread-local state merged by the
writer, and the A/B memory-mapped checkpoint file, in C.

Owns: the state buffer of a GlobalState, the op rings and counters of its
LocalStates, and the mapping of one checkpoint file (created, locked and
validated by CheckpointFile). Touches no other file. The protocols and their
invariants are in docs/state.md; the C API is in _native.pxd.

    >>> from tallyio.state.layout import StateLayout
    >>> st = GlobalState(StateLayout(1, {"pools": ([("r0", "u8"), ("r1", "u8")], 8)}))
    >>> st.write("pools", 3, r0=10, r1=20)
    >>> st.get("pools", 3, "r1"), int(st.read("pools", 3)["r0"])
    (20, 10)
"""
from cpython.buffer cimport PyBUF_WRITABLE, PyBUF_FORMAT
from libc.stdint cimport uint32_t, uint64_t, int64_t
from libc.string cimport memcpy, memset
from libc.stdlib cimport calloc, free
from libc.errno cimport errno
from posix.unistd cimport close
from posix.mman cimport mmap, munmap, msync, PROT_READ, PROT_WRITE, MAP_SHARED, MAP_FAILED, MS_SYNC

from tallyio._ext.common cimport (tio_atomic_u64, tio_atomic_init_u64,
                                  tio_atomic_init_u32, tio_atomic_load_u64_relaxed,
                                  tio_atomic_load_u64_acquire,
                                  tio_atomic_store_u64_release, tio_atomic_load_u32_acquire,
                                  tio_atomic_store_u32_release,
                                  tio_atomic_fetch_add_u32_acqrel, tio_atomic_wait_u32,
                                  tio_atomic_wake_u32, tio_aligned_calloc, tio_aligned_free,
                                  PyThread_get_thread_ident, TIO_OK, TIO_RETRY, TIO_INVALID, TIO_CACHE_LINE)
from tallyio._ext.spsc cimport tio_spsc_new, tio_spsc_free, tio_spsc_pop_many
from tallyio._ext.checks cimport role_claim

import errno as _errno
import fcntl
import os
import struct
import threading
import time
import zlib

import numpy as np

from tallyio.errors import (CorruptFileError, ForeignFileError, FutureVersionError,
                            LayoutMismatchError, QueueFullError, ReadOnlyStateError,
                            StateLockedError, StorageFullError)

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    /* CRC-32C (Castagnoli): the SSE4.2 crc32 instruction when the CPU has it
     * (chosen once at import), slicing-by-8 tables otherwise. */
    static uint32_t tio_crc32c_tab[8][256];
    static int tio_crc32c_have_hw = 0;

    static void tio_crc32c_init(void) {
        for (uint32_t n = 0; n < 256; n++) {
            uint32_t c = n;
            for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
            tio_crc32c_tab[0][n] = c;
        }
        for (uint32_t n = 0; n < 256; n++) {
            uint32_t c = tio_crc32c_tab[0][n];
            for (int t = 1; t < 8; t++) {
                c = tio_crc32c_tab[0][c & 0xff] ^ (c >> 8);
                tio_crc32c_tab[t][n] = c;
            }
        }
    #if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
        __builtin_cpu_init();
        tio_crc32c_have_hw = __builtin_cpu_supports("sse4.2");
    #endif
    }

    static uint32_t tio_crc32c_sw(uint32_t crc, const unsigned char *p, size_t n) {
        crc = ~crc;
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        while (n >= 8) {
            uint64_t w;
            memcpy(&w, p, 8);
            w ^= crc;
            crc = tio_crc32c_tab[7][w & 0xff] ^ tio_crc32c_tab[6][(w >> 8) & 0xff] ^
                  tio_crc32c_tab[5][(w >> 16) & 0xff] ^ tio_crc32c_tab[4][(w >> 24) & 0xff] ^
                  tio_crc32c_tab[3][(w >> 32) & 0xff] ^ tio_crc32c_tab[2][(w >> 40) & 0xff] ^
                  tio_crc32c_tab[1][(w >> 48) & 0xff] ^ tio_crc32c_tab[0][w >> 56];
            p += 8;
            n -= 8;
        }
    #endif
        while (n--) crc = tio_crc32c_tab[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
        return ~crc;
    }

    #if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __attribute__((target("sse4.2")))
    static uint32_t tio_crc32c_hw(uint32_t crc, const unsigned char *p, size_t n) {
        uint64_t c = (uint32_t)~crc;
        while (n >= 8) {
            uint64_t w;
            memcpy(&w, p, 8);
            c = __builtin_ia32_crc32di(c, w);
            p += 8;
            n -= 8;
        }
        while (n--) c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
        return ~(uint32_t)c;
    }
    /* Three independent buffers of n bytes (n % 8 == 0) at once: the crc32
     * instruction has a latency of 3 cycles and a throughput of 1, so three
     * chains run at about three times the speed of one. */
    __attribute__((target("sse4.2")))
    static void tio_crc32c_hw_x3(const unsigned char *a, const unsigned char *b,
                                 const unsigned char *c, size_t n, uint32_t *out) {
        uint64_t ca = 0xffffffffu, cb = 0xffffffffu, cc = 0xffffffffu;
        for (size_t i = 0; i < n; i += 8) {
            uint64_t wa, wb, wc;
            memcpy(&wa, a + i, 8); memcpy(&wb, b + i, 8); memcpy(&wc, c + i, 8);
            ca = __builtin_ia32_crc32di(ca, wa);
            cb = __builtin_ia32_crc32di(cb, wb);
            cc = __builtin_ia32_crc32di(cc, wc);
        }
        out[0] = ~(uint32_t)ca; out[1] = ~(uint32_t)cb; out[2] = ~(uint32_t)cc;
    }
    #define TIO_CRC32C_HW_AVAILABLE 1
    #else
    static uint32_t tio_crc32c_hw(uint32_t crc, const unsigned char *p, size_t n) {
        return tio_crc32c_sw(crc, p, n);
    }
    static void tio_crc32c_hw_x3(const unsigned char *a, const unsigned char *b,
                                 const unsigned char *c, size_t n, uint32_t *out) {
        out[0] = tio_crc32c_sw(0, a, n); out[1] = tio_crc32c_sw(0, b, n); out[2] = tio_crc32c_sw(0, c, n);
    }
    #define TIO_CRC32C_HW_AVAILABLE 0
    #endif

    static inline uint32_t tio_crc32c_any(uint32_t crc, const void *buf, size_t n) {
        return tio_crc32c_have_hw ? tio_crc32c_hw(crc, (const unsigned char *)buf, n)
                                  : tio_crc32c_sw(crc, (const unsigned char *)buf, n);
    }
    static inline int tio_ctz64(uint64_t x) { return __builtin_ctzll(x); }
    """
    void tio_crc32c_init() nogil
    int tio_crc32c_have_hw
    uint32_t tio_crc32c_any(uint32_t crc, const void *buf, size_t n) nogil
    uint32_t tio_crc32c_sw(uint32_t crc, const unsigned char *p, size_t n) nogil
    void tio_crc32c_hw_x3(const unsigned char *a, const unsigned char *b, const unsigned char *c,
                          size_t n, uint32_t *out) nogil
    int tio_ctz64(uint64_t x) nogil

tio_crc32c_init()

__all__ = ["GlobalState", "LocalState", "CheckpointFile", "CheckpointInfo", "crc32c",
           "POLICIES"]

POLICIES = ("none", "async", "sync")


cdef uint32_t tio_crc32c(uint32_t crc, const void *buf, size_t len) noexcept nogil:
    return tio_crc32c_any(crc, buf, len)


def crc32c(data, uint32_t crc=0):
    """CRC-32C (Castagnoli) of a bytes-like object, continuing from ``crc``.

    >>> hex(crc32c(b"123456789"))
    '0xe3069283'
    """
    cdef const unsigned char[::1] view = memoryview(data).cast("B")
    cdef size_t n = view.shape[0]
    if n == 0:
        return crc
    with nogil:
        crc = tio_crc32c_any(crc, &view[0], n)
    return crc


def crc32c_uses_hardware():
    """True when CRC-32C runs on the SSE4.2 instruction (False: software tables)."""
    return bool(tio_crc32c_have_hw)


# ---- writer ops and merge ------------------------------------------------------

cdef int tio_state_apply_op(tio_state *st, uint64_t op, uint64_t value) noexcept nogil:
    """Writer only: apply one thread-local op (TIO_OK, or TIO_INVALID: ignored)."""
    cdef uint32_t kind = <uint32_t>(op >> 56)
    cdef uint32_t table = <uint32_t>((op >> 48) & 0xFF)
    cdef uint32_t word = <uint32_t>((op >> 32) & 0xFFFF)
    cdef uint64_t index = op & <uint64_t>0xFFFFFFFF
    cdef uint64_t *rec
    cdef uint64_t odd, old
    cdef double a, b
    if tio_state_check(st, table, index) != TIO_OK or word == 0 or word >= st.tables[table].record_words:
        return TIO_INVALID
    if kind != TIO_OP_SET and kind != TIO_OP_ADD and kind != TIO_OP_ADD_F64:
        return TIO_INVALID
    rec = tio_state_record(st, table, index)
    odd = tio_seqlock_write_begin(rec)
    if kind == TIO_OP_SET:
        tio_seqlock_store(rec, word, value)
    elif kind == TIO_OP_ADD:
        tio_seqlock_store(rec, word, tio_seqlock_peek(rec, word) + value)
    else:
        old = tio_seqlock_peek(rec, word)
        memcpy(&a, &old, 8)
        memcpy(&b, &value, 8)
        a += b
        memcpy(&old, &a, 8)
        tio_seqlock_store(rec, word, old)
    tio_seqlock_write_end(rec, odd)
    tio_state_mark_dirty(st, rec, word + 1)
    return TIO_OK


cdef uint64_t tio_state_merge(tio_state *st, tio_local **locals, uint64_t nlocals,
                              uint32_t counters_table) noexcept nogil:
    """Writer only: drain every local's op ring and fold its counters (into
    record k of counters_table, word 1; pass 256 for none). Returns the number
    of ops and counter deltas applied."""
    cdef uint64_t buf[512]
    cdef uint64_t applied = 0
    cdef uint64_t i, j, k, got, v, delta, ncount
    cdef tio_local *loc
    cdef uint64_t *rec
    cdef uint64_t odd
    for i in range(nlocals):
        loc = locals[i]
        while True:
            # an even request: the owner publishes whole (op, value) pairs, so
            # the ring always holds an even number of words and we get pairs
            got = tio_spsc_pop_many(loc.ops, buf, 512)
            j = 0
            while j + 1 < got:
                if tio_state_apply_op(st, buf[j], buf[j + 1]) == TIO_OK:
                    applied += 1
                j += 2
            if got < 512:
                break
        if counters_table < st.ntables and st.tables[counters_table].record_words >= 2:
            ncount = loc.ncounters
            if ncount > st.tables[counters_table].capacity:
                ncount = st.tables[counters_table].capacity
            for k in range(ncount):
                # relaxed: pairs with the owner's relaxed store; a counter is a
                # number, it publishes no other data
                v = tio_atomic_load_u64_relaxed(&loc.counters[k])
                delta = v - loc.folded[k]
                if delta:
                    loc.folded[k] = v
                    rec = tio_state_record(st, counters_table, k)
                    odd = tio_seqlock_write_begin(rec)
                    tio_seqlock_store(rec, 1, tio_seqlock_peek(rec, 1) + delta)
                    tio_seqlock_write_end(rec, odd)
                    tio_state_mark_dirty(st, rec, 2)
                    applied += 1
    return applied


# ---- value encoding at the Python edge -------------------------------------------

cdef enum:
    KIND_U8 = 0
    KIND_I8 = 1
    KIND_F8 = 2

_KIND_CODES = {"u8": KIND_U8, "i8": KIND_I8, "f8": KIND_F8}


cdef inline uint64_t _encode(int kind, object value, str what) except? 0xFFFFFFFFFFFFFFFF:
    cdef double d
    cdef int64_t s
    cdef uint64_t u
    if kind == KIND_F8:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise TypeError(f"{what} is a float64 field, got {type(value).__name__}")
        d = value
        memcpy(&u, &d, 8)
        return u
    if not isinstance(value, int) or isinstance(value, bool):
        if hasattr(value, "__index__") and not isinstance(value, bool):
            value = value.__index__()
        else:
            raise TypeError(f"{what} is an integer field, got {type(value).__name__}")
    if kind == KIND_U8:
        if not 0 <= value < 2**64:
            raise ValueError(f"{what} must be in 0..2**64-1, got {value}")
        return <uint64_t>value
    if not -2**63 <= value < 2**63:
        raise ValueError(f"{what} must be in -2**63..2**63-1, got {value}")
    s = value
    return <uint64_t>s


cdef inline object _decode(int kind, uint64_t u):
    cdef double d
    if kind == KIND_U8:
        return u
    if kind == KIND_I8:
        return <int64_t>u
    memcpy(&d, &u, 8)
    return d


cdef class _Table:
    """Python-edge metadata of one table (ids, words, dtype, field kinds)."""
    pass


# ---- GlobalState ------------------------------------------------------------------

cdef class GlobalState:
    """The engine's global state: fixed tables of 8-byte fields in one buffer,
    one writer thread, any number of lock-free readers.

    The first thread that writes (``write``, ``add``, ``merge``, a checkpoint
    restore) becomes the writer; another live thread gets RoleError. Readers
    (``read``, ``get``, ``field_reader``, and C code through
    ``tio_seqlock_read``) never block the writer and never see a torn record.
    ``view(table)`` is a read-only numpy view for the writer's own use (a
    reader on another thread may see a record mid-write there).

    >>> from tallyio.state.layout import StateLayout
    >>> st = GlobalState(StateLayout(1, {"pnl": ([("eth", "f8"), ("trades", "u8")], 2)}))
    >>> st.add("pnl", 0, "eth", 0.5); st.add("pnl", 0, "trades", 1)
    >>> st.get("pnl", 0, "eth"), int(st.view("pnl")["trades"][0])
    (0.5, 1)
    """

    def __cinit__(self, layout):
        cdef uint32_t i
        self._local_ptrs = NULL
        self.st.words = NULL
        self.st.dirty[0] = NULL
        self.st.dirty[1] = NULL
        from tallyio.state.layout import StateLayout
        if not isinstance(layout, StateLayout):
            raise TypeError(f"layout must be a StateLayout, got {type(layout).__name__}")
        self.layout = layout
        self.st.nbytes = layout.nbytes
        self.st.words = <uint64_t *>tio_aligned_calloc(4096, self.st.nbytes)
        if self.st.words == NULL:
            raise MemoryError(f"cannot allocate a {self.st.nbytes}-byte state")
        # dirty granule: 256 bytes, or larger so a big state has at most ~4096
        # blocks (the checkpoint checksums the block table every time)
        shift = 8
        while (self.st.nbytes >> shift) > 4096:
            shift += 1
        self.st.block_shift = shift
        self.st.nblocks = (self.st.nbytes + (1 << shift) - 1) >> shift
        self.st.bitmap_words = (self.st.nblocks + 63) // 64
        for i in range(2):
            self.st.dirty[i] = <uint64_t *>calloc(self.st.bitmap_words, 8)
            if self.st.dirty[i] == NULL:
                raise MemoryError("cannot allocate the dirty bitmaps")
        self.mark_all_dirty()
        self.st.ntables = len(layout.tables)
        self._tables = {}
        self._table_list = []
        self._counters_table = 256
        for spec in layout.tables:
            t = _Table()
            t.table_id = spec.table_id
            t.record_words = spec.record_words
            t.capacity = spec.capacity
            t.name = spec.name
            t.dtype = layout.dtype(spec.name)
            t.fields = {f: (w + 1, _KIND_CODES[k]) for w, (f, k) in enumerate(spec.fields)}
            self._tables[spec.name] = t
            self._table_list.append(t)
            self.st.tables[spec.table_id].offset_words = spec.offset // 8
            self.st.tables[spec.table_id].capacity = spec.capacity
            self.st.tables[spec.table_id].record_words = spec.record_words
            if spec.name == "counters" and spec.record_words >= 2:
                self._counters_table = spec.table_id
        self._locals = []
        self._nlocals = 0
        self._writer.ident = 0

    def __dealloc__(self):
        cdef uint64_t i
        if self._local_ptrs != NULL:
            free(self._local_ptrs)
        if self.st.words != NULL:
            tio_aligned_free(self.st.words)
        for i in range(2):
            if self.st.dirty[i] != NULL:
                free(self.st.dirty[i])

    # ---- buffer protocol: read-only bytes of the whole state ----------------------
    def __getbuffer__(self, Py_buffer *buffer, int flags):
        if flags & PyBUF_WRITABLE:
            raise BufferError("the global state is read-only through the buffer protocol; "
                              "write with write()/add() or a LocalState")
        self._buf_shape[0] = <Py_ssize_t>self.st.nbytes
        self._buf_strides[0] = 1
        buffer.buf = <void *>self.st.words
        buffer.len = <Py_ssize_t>self.st.nbytes
        buffer.readonly = 1
        buffer.itemsize = 1
        if flags & PyBUF_FORMAT:
            buffer.format = "B"
        else:
            buffer.format = NULL
        buffer.ndim = 1
        buffer.shape = self._buf_shape
        buffer.strides = self._buf_strides
        buffer.suboffsets = NULL
        buffer.internal = NULL
        buffer.obj = self

    def __releasebuffer__(self, Py_buffer *buffer):
        pass

    # ---- lookups ---------------------------------------------------------------------
    cdef _Table _table(self, object name):
        try:
            return <_Table>self._tables[name]
        except (KeyError, TypeError):
            raise KeyError(f"no table {name!r} in this layout (tables: {', '.join(self._tables)})") from None

    cdef uint64_t *_record(self, _Table t, object index) except NULL:
        if not isinstance(index, int) or isinstance(index, bool):
            raise TypeError(f"{t.name} index must be an int, got {type(index).__name__}")
        if not 0 <= index < t.capacity:
            raise IndexError(f"{t.name} index {index} out of range 0..{t.capacity - 1}")
        return tio_state_record(&self.st, t.table_id, <uint64_t>index)

    cdef tuple _field(self, _Table t, object field):
        try:
            return t.fields[field]
        except (KeyError, TypeError):
            raise KeyError(f"table {t.name!r} has no field {field!r} "
                           f"(fields: {', '.join(t.fields)})") from None

    # ---- writer ------------------------------------------------------------------------
    def claim_writer(self):
        """Make the calling thread the writer, taking the role over from the
        thread that held it. The caller guarantees the previous writer has
        stopped writing and that the hand-over is ordered (a thread start, a
        join, a queue): two writers at once break the seqlock."""
        self._writer.ident = PyThread_get_thread_ident()

    def check_writer(self):
        """Claim the writer role for the calling thread if nobody holds it;
        RoleError if another live thread does. Changes nothing else."""
        role_claim(&self._writer, "GlobalState writer")

    def write(self, table, index, **fields):
        """Writer: set some fields of one record (the others keep their values);
        readers see the whole change or none of it."""
        role_claim(&self._writer, "GlobalState writer")
        cdef _Table t = self._table(table)
        cdef uint64_t *rec = self._record(t, index)
        cdef uint32_t w
        for w in range(1, t.record_words):
            self._scratch[w] = tio_seqlock_peek(rec, w)
        for name, value in fields.items():
            word, kind = self._field(t, name)
            self._scratch[<uint32_t>word] = _encode(kind, value, f"{t.name}.{name}")
        tio_state_write(&self.st, rec, self._scratch, t.record_words)

    def add(self, table, index, field, delta):
        """Writer: ``record.field += delta`` (integers wrap modulo 2**64)."""
        role_claim(&self._writer, "GlobalState writer")
        cdef _Table t = self._table(table)
        self._record(t, index)                 # checks the index before anything is applied
        word, kind = self._field(t, field)
        cdef uint64_t op
        if kind == KIND_F8:
            op = tio_op_word(TIO_OP_ADD_F64, t.table_id, word, <uint64_t>index)
            tio_state_apply_op(&self.st, op, _encode(KIND_F8, delta, f"{t.name}.{field} delta"))
        else:
            op = tio_op_word(TIO_OP_ADD, t.table_id, word, <uint64_t>index)
            tio_state_apply_op(&self.st, op, _encode(KIND_I8 if delta < 0 else KIND_U8, delta,
                                                    f"{t.name}.{field} delta"))

    def local(self, *, int counters=64, int capacity=4096, int scratch_bytes=0):
        """A LocalState for one worker thread: an op ring of ``capacity``
        updates, ``counters`` counters (folded into the ``counters`` table,
        if the layout has one) and ``scratch_bytes`` of private scratch."""
        cdef LocalState loc = LocalState(self, counters, capacity, scratch_bytes)
        cdef tio_local **grown = <tio_local **>calloc(self._nlocals + 1, sizeof(tio_local *))
        if grown == NULL:
            raise MemoryError("cannot register a LocalState")
        if self._nlocals:
            memcpy(grown, self._local_ptrs, self._nlocals * sizeof(tio_local *))
            free(self._local_ptrs)
        grown[self._nlocals] = &loc.l
        self._local_ptrs = grown
        self._nlocals += 1
        self._locals.append(loc)
        return loc

    def merge(self):
        """Writer: apply every LocalState's queued updates and fold their
        counters; returns how many changes were applied."""
        role_claim(&self._writer, "GlobalState writer")
        # with the GIL held: local() may grow the array of LocalStates, and it
        # runs under the GIL, so the array cannot change under this merge
        return tio_state_merge(&self.st, self._local_ptrs, self._nlocals, self._counters_table)

    def mark_all_dirty(self):
        """Make the next checkpoint into each slot a full copy."""
        cdef uint64_t b
        cdef int i
        for i in range(2):
            memset(self.st.dirty[i], 0, self.st.bitmap_words * 8)
            for b in range(self.st.nblocks):
                self.st.dirty[i][b >> 6] |= (<uint64_t>1) << (b & 63)

    # ---- readers (any thread) -----------------------------------------------------------
    def read(self, table, index):
        """A consistent copy of one record, as a numpy structured scalar."""
        cdef _Table t = self._table(table)
        cdef uint64_t *rec = self._record(t, index)
        out = np.empty(1, dtype=t.dtype)
        cdef uint64_t[::1] words = out.view(np.uint64)
        with nogil:
            tio_seqlock_read(rec, &words[0], t.record_words)
        return out[0]

    def get(self, table, index, field):
        """One field of one record, read consistently (a Python int or float)."""
        cdef _Table t = self._table(table)
        cdef uint64_t *rec = self._record(t, index)
        word, kind = self._field(t, field)
        return _decode(kind, _read_word(rec, word))

    def field_reader(self, table, field):
        """A callable ``reader(index)`` returning one field: the fast path for
        a hot Python read (no name lookups per call)."""
        cdef _Table t = self._table(table)
        word, kind = self._field(t, field)
        cdef FieldReader r = FieldReader()
        r.state = self
        r.base = tio_state_record(&self.st, t.table_id, 0)
        r.record_words = t.record_words
        r.capacity = t.capacity
        r.word = word
        r.kind = kind
        return r

    def view(self, table):
        """A read-only numpy view of a whole table (no seqlock: for the writer,
        for inspection, or for copying when no writer runs)."""
        cdef _Table t = self._table(table)
        spec = self.layout.table(table)
        return np.frombuffer(self, dtype=t.dtype, count=t.capacity, offset=spec.offset)

    def snapshot(self):
        """A bytes copy of the whole state buffer (for tests and tools)."""
        return bytes(memoryview(self))

    @property
    def nbytes(self):
        return self.st.nbytes

    @property
    def block_size(self):
        """Bytes per dirty-tracking block."""
        return 1 << self.st.block_shift

    def dirty_blocks(self, int slot):
        """How many blocks the next checkpoint into ``slot`` (0 or 1) would copy."""
        if slot not in (0, 1):
            raise ValueError(f"slot must be 0 or 1, got {slot}")
        cdef uint64_t n = 0, w
        for w in range(self.st.bitmap_words):
            n += bin(self.st.dirty[slot][w]).count("1")
        return n

    def __repr__(self):
        return f"<GlobalState {self.layout!r} locals={self._nlocals}>"


cdef inline uint64_t _read_word(const uint64_t *rec, uint32_t word) noexcept nogil:
    """Seqlock read of one data word (and the sequence around it)."""
    cdef uint64_t s1, v
    while True:
        # acquire: pairs with tio_seqlock_write_end's release
        s1 = tio_atomic_load_u64_acquire(<const tio_atomic_u64 *>rec)
        if not (s1 & 1):
            v = tio_atomic_load_u64_acqfenced_relaxed(<const tio_atomic_u64 *>(rec + word))
            # pairs with the release fence in tio_seqlock_write_begin
            tio_fence_acquire()
            if tio_atomic_load_u64_relaxed(<const tio_atomic_u64 *>rec) == s1:
                return v
        tio_cpu_relax()


cdef class FieldReader:
    """``reader(index)``: one field of one record, read through the seqlock.

    >>> from tallyio.state.layout import StateLayout
    >>> st = GlobalState(StateLayout(1, {"nonces": ([("nonce", "u8")], 4)}))
    >>> st.write("nonces", 1, nonce=42)
    >>> nonce = st.field_reader("nonces", "nonce")
    >>> nonce(1), nonce(0)
    (42, 0)
    """

    def __call__(self, Py_ssize_t index):
        if <uint64_t>index >= self.capacity:
            raise IndexError(f"index {index} out of range 0..{self.capacity - 1}")
        cdef uint64_t v = _read_word(self.base + <uint64_t>index * self.record_words, self.word)
        if self.kind == KIND_U8:
            return v
        return _decode(self.kind, v)


# ---- LocalState ----------------------------------------------------------------------

cdef class LocalState:
    """One worker's thread-local state: updates queued for the writer's next
    ``merge()`` (no lock: an SPSC ring the worker fills and the writer
    drains), counters only this worker increments, and private scratch.
    Make it with ``GlobalState.local()``; the first thread to use it owns it.

    >>> from tallyio.state.layout import StateLayout
    >>> st = GlobalState(StateLayout(1, {"counters": ([("value", "u8")], 4),
    ...                                  "pools": ([("r0", "u8")], 2)}))
    >>> loc = st.local(counters=4)
    >>> loc.set("pools", 1, "r0", 99); loc.count(2, 5)
    >>> st.get("pools", 1, "r0")        # not merged yet
    0
    >>> st.merge(), st.get("pools", 1, "r0"), st.get("counters", 2, "value")
    (2, 99, 5)
    """

    def __cinit__(self, GlobalState owner not None, int counters, int capacity, int scratch_bytes):
        self.l.ops = NULL
        self.l.counters = NULL
        self.l.folded = NULL
        if counters < 0 or counters > 1 << 20:
            raise ValueError(f"counters must be in 0..2**20, got {counters}")
        if capacity < 2 or capacity > 1 << 24:
            raise ValueError(f"capacity must be in 2..2**24 updates, got {capacity}")
        if scratch_bytes < 0:
            raise ValueError(f"scratch_bytes must be >= 0, got {scratch_bytes}")
        self.owner = owner
        cdef uint64_t slots = 4
        while slots < <uint64_t>capacity * 2:
            slots <<= 1
        self.l.ops = tio_spsc_new(slots, 0)
        self.l.ncounters = counters
        self.l.counters = <tio_atomic_u64 *>tio_aligned_calloc(TIO_CACHE_LINE, (counters or 1) * 8)
        self.l.folded = <uint64_t *>calloc(counters or 1, 8)
        if self.l.ops == NULL or self.l.counters == NULL or self.l.folded == NULL:
            raise MemoryError("cannot allocate a LocalState")
        self.scratch = np.zeros(scratch_bytes, dtype=np.uint8)
        self._role.ident = 0

    def __dealloc__(self):
        if self.l.ops != NULL:
            tio_spsc_free(self.l.ops)
        if self.l.counters != NULL:
            tio_aligned_free(self.l.counters)
        if self.l.folded != NULL:
            free(self.l.folded)

    cdef int _push(self, uint32_t kind, object table, object index, object field, uint64_t value) except -1:
        cdef _Table t = self.owner._table(table)
        self.owner._record(t, index)
        word, _kind = self.owner._field(t, field)
        if tio_local_push_op(&self.l, tio_op_word(kind, t.table_id, word, <uint64_t>index), value) != TIO_OK:
            raise QueueFullError(f"LocalState op ring is full ({tio_spsc_capacity(self.l.ops) // 2} "
                                 f"updates): the writer has not merged; the update was not queued")
        return 0

    def set(self, table, index, field, value):
        """Queue ``record.field = value`` for the next merge."""
        role_claim(&self._role, "LocalState")
        cdef _Table t = self.owner._table(table)
        _, kind = self.owner._field(t, field)
        self._push(TIO_OP_SET, table, index, field, _encode(kind, value, f"{t.name}.{field}"))

    def add(self, table, index, field, delta):
        """Queue ``record.field += delta`` for the next merge."""
        role_claim(&self._role, "LocalState")
        cdef _Table t = self.owner._table(table)
        _, kind = self.owner._field(t, field)
        if kind == KIND_F8:
            self._push(TIO_OP_ADD_F64, table, index, field, _encode(KIND_F8, delta, f"{t.name}.{field} delta"))
        else:
            self._push(TIO_OP_ADD, table, index, field,
                       _encode(KIND_I8 if delta < 0 else KIND_U8, delta, f"{t.name}.{field} delta"))

    def count(self, uint64_t counter, uint64_t n=1):
        """``counters[counter] += n`` (this worker's own cell)."""
        role_claim(&self._role, "LocalState")
        if counter >= self.l.ncounters:
            raise IndexError(f"counter {counter} out of range 0..{self.l.ncounters - 1}")
        tio_local_count(&self.l, counter, n)

    def counter(self, uint64_t counter):
        """This worker's running total of one counter."""
        if counter >= self.l.ncounters:
            raise IndexError(f"counter {counter} out of range 0..{self.l.ncounters - 1}")
        return tio_atomic_load_u64_relaxed(&self.l.counters[counter])

    @property
    def pending(self):
        """Updates queued and not merged yet (a snapshot)."""
        return tio_spsc_size(self.l.ops) // 2


# ---- A/B checkpoint file ----------------------------------------------------------------

CKPT_MAGIC = b"TIOCKPT\0"
CKPT_FORMAT_VERSION = 1
_CKPT_HEADER = struct.Struct("<8sIIIIQQQQQ")       # + u32 crc at 64
cdef enum:
    _SLOT_MAGIC = 0x544F4C53                        # "SLOT"
    _PAGE = 4096
_SLOT_HEADER = struct.Struct("<IIQQQQIIII")          # 56 bytes, + pad, u32 crc at 60
_POLICY_CODES = {"none": 0, "async": 1, "sync": 2}


cdef inline uint64_t _page_up(uint64_t n) noexcept nogil:
    return (n + _PAGE - 1) & ~(<uint64_t>_PAGE - 1)


cdef int tio_ckpt_write(tio_ckpt *c, tio_state *st, uint64_t journal_seq,
                        const char *hooks, uint64_t hooks_len, uint64_t ts_ns) noexcept nogil:
    """Writer only: write the state into the inactive slot and publish it.
    TIO_OK; TIO_RETRY under the async policy when the previous checkpoint is
    not on disk yet (nothing written: the older slot is still needed);
    TIO_INVALID for hooks larger than the slot's hook area; a negative errno
    when msync fails under the sync policy (the checkpoint is published in
    memory but its durability is unknown)."""
    cdef int s = 0 if c.active < 0 else 1 - c.active
    cdef char *slot = c.map + c.slot_off[s]
    cdef uint32_t *table = <uint32_t *>(slot + c.table_off)
    cdef char *data = slot + c.data_off
    cdef const char *live = <const char *>st.words
    cdef uint64_t *bitmap = st.dirty[s]
    cdef uint64_t bs = (<uint64_t>1) << st.block_shift
    cdef uint64_t w, bits, b, off, n
    cdef uint64_t pend[3]
    cdef uint32_t crcs[3]
    cdef int npend = 0, i
    cdef tio_slot_header hdr
    if hooks_len > c.hooks_cap:
        return TIO_INVALID
    if c.policy == 1 and c.active >= 0:
        # acquire: pairs with the background thread's release store of synced,
        # after its msync returned
        if tio_atomic_load_u64_acquire(&c.synced) < c.seq:
            return TIO_RETRY
    # 1. invalidate the slot we are about to overwrite: from here until step 4
    #    it holds no checkpoint (the other slot holds the newest one)
    memset(slot, 0, sizeof(tio_slot_header))
    tio_fence_release()         # (a compiler barrier is what matters: keep the order of the stores)
    # 2. copy the blocks changed since this slot was last written, checksum each
    for w in range(st.bitmap_words):
        bits = bitmap[w]
        if bits == 0:
            continue
        bitmap[w] = 0
        while bits:
            b = w * 64 + <uint64_t>tio_ctz64(bits)
            bits &= bits - 1
            off = b << st.block_shift
            n = st.nbytes - off if off + bs > st.nbytes else bs
            memcpy(data + off, live + off, n)
            if n == bs and tio_crc32c_have_hw:
                pend[npend] = b
                npend += 1
                if npend == 3:
                    tio_crc32c_hw_x3(<const unsigned char *>(data + (pend[0] << st.block_shift)),
                                     <const unsigned char *>(data + (pend[1] << st.block_shift)),
                                     <const unsigned char *>(data + (pend[2] << st.block_shift)),
                                     bs, crcs)
                    table[pend[0]] = crcs[0]
                    table[pend[1]] = crcs[1]
                    table[pend[2]] = crcs[2]
                    npend = 0
            else:
                table[b] = tio_crc32c_any(0, data + off, n)
    for i in range(npend):
        table[pend[i]] = tio_crc32c_any(0, data + (pend[i] << st.block_shift), bs)
    # 3. the strategies' blob and the checksum of the block table
    memset(&hdr, 0, sizeof(hdr))
    if hooks_len:
        memcpy(slot + c.hooks_off, hooks, hooks_len)
        hdr.hooks_crc = tio_crc32c_any(0, slot + c.hooks_off, hooks_len)
    hdr.magic = _SLOT_MAGIC
    hdr.layout_version = c.layout_version
    hdr.seq = c.seq + 1
    hdr.journal_seq = journal_seq
    hdr.ts_ns = ts_ns
    hdr.state_nbytes = st.nbytes
    hdr.hooks_len = <uint32_t>hooks_len
    hdr.table_crc = tio_crc32c_any(0, table, st.nblocks * 4)
    hdr.nblocks = <uint32_t>st.nblocks
    hdr.header_crc = tio_crc32c_any(0, &hdr, sizeof(hdr) - 4)
    # 4. publish: the header goes last (a crash before this line leaves the
    #    slot invalid, so open() picks the other slot: the previous checkpoint)
    tio_fence_release()
    memcpy(slot, &hdr, sizeof(hdr))
    c.seq += 1
    c.active = s
    if c.policy == 2:
        if msync(c.map + c.slot_off[s], c.slot_len, MS_SYNC) != 0:
            return -errno
    elif c.policy == 1:
        # release: the background msync thread reads it with acquire
        tio_atomic_store_u64_release(&c.sync_requested, c.seq)
        tio_atomic_fetch_add_u32_acqrel(&c.wake, 1)
        tio_atomic_wake_u32(&c.wake, 1)
    return TIO_OK


class CheckpointInfo(tuple):
    """What ``CheckpointFile.restore()`` found: ``(seq, journal_seq, ts_ns,
    hooks, slot)``."""
    __slots__ = ()

    def __new__(cls, seq, journal_seq, ts_ns, hooks, slot):
        return tuple.__new__(cls, (seq, journal_seq, ts_ns, hooks, slot))

    seq = property(lambda self: self[0], doc="checkpoint sequence number (1, 2, ...)")
    journal_seq = property(lambda self: self[1], doc="journal records up to this one are in the state")
    ts_ns = property(lambda self: self[2], doc="time.time_ns() when it was taken")
    hooks = property(lambda self: self[3], doc="dict[str, bytes] saved by the strategies' on_save")
    slot = property(lambda self: self[4], doc="which slot (0 or 1) it came from")

    def __repr__(self):
        return (f"CheckpointInfo(seq={self[0]}, journal_seq={self[1]}, ts_ns={self[2]}, "
                f"hooks={sorted(self[3])}, slot={self[4]})")


def encode_hooks(dict hooks):
    """dict[str, bytes] -> bytes: count u32, then per entry key length u32,
    key UTF-8, value length u32, value."""
    parts = [struct.pack("<I", len(hooks))]
    for key, value in hooks.items():
        if not isinstance(key, str):
            raise TypeError(f"hook keys must be str, got {type(key).__name__}")
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(f"on_save() value for {key!r} must be bytes, got {type(value).__name__}")
        k = key.encode()
        v = bytes(value)
        parts += [struct.pack("<I", len(k)), k, struct.pack("<I", len(v)), v]
    return b"".join(parts)


def decode_hooks(bytes blob):
    if not blob:
        return {}
    out = {}
    (count,) = struct.unpack_from("<I", blob, 0)
    off = 4
    for _ in range(count):
        (kl,) = struct.unpack_from("<I", blob, off)
        key = blob[off + 4:off + 4 + kl].decode()
        off += 4 + kl
        (vl,) = struct.unpack_from("<I", blob, off)
        out[key] = blob[off + 4:off + 4 + vl]
        off += 4 + vl
    return out


def _os_error(exc, what):
    if exc.errno in (_errno.ENOSPC, _errno.EFBIG, _errno.EDQUOT):
        return StorageFullError(exc.errno, f"{what}: {os.strerror(exc.errno)} (nothing was written)")
    if exc.errno in (_errno.EACCES, _errno.EPERM, _errno.EROFS):
        return ReadOnlyStateError(exc.errno, f"{what}: {os.strerror(exc.errno)}")
    return exc


cdef class CheckpointFile:
    """The A/B checkpoint file of one GlobalState.

    Two slots, each a header, a checksum per state block, the state bytes and
    the strategies' hook blob. ``checkpoint()`` writes only the blocks changed
    since the inactive slot was last written, then publishes that slot's
    header last; ``restore()`` loads the newest slot whose every checksum is
    valid. The file is created full size (posix_fallocate) so a checkpoint
    never needs new disk space; an exclusive flock on ``PATH.lock`` keeps a
    second writer out (StateLockedError).

    ``policy``: ``"none"`` (survives a process crash: the page cache has it),
    ``"async"`` (a background thread msyncs each checkpoint; the next one
    waits, returning 0, until the previous is on disk, so one durable slot
    always exists), ``"sync"`` (checkpoint() msyncs before returning).

    >>> import tempfile, os
    >>> from tallyio.state.layout import StateLayout
    >>> layout = StateLayout(1, {"nonces": ([("nonce", "u8")], 4)})
    >>> st = GlobalState(layout)
    >>> path = os.path.join(tempfile.mkdtemp(), "state.ckpt")
    >>> ck = CheckpointFile(path, st)
    >>> ck.restore() is None                      # a new file holds no checkpoint
    True
    >>> st.write("nonces", 2, nonce=7)
    >>> ck.checkpoint(journal_seq=5, hooks={"arb": b"x"})
    1
    >>> ck.close()
    >>> st2 = GlobalState(layout)
    >>> ck2 = CheckpointFile(path, st2)
    >>> info = ck2.restore()
    >>> (info.seq, info.journal_seq, info.hooks, st2.get("nonces", 2, "nonce"))
    (1, 5, {'arb': b'x'}, 7)
    >>> ck2.close()
    """

    def __cinit__(self, path, GlobalState state not None, *, str policy="none", hooks_capacity=65536):
        self.c.map = NULL
        self._fd = -1
        self._lock_fd = -1
        self._closed = False
        self._sync_thread = None
        if policy not in _POLICY_CODES:
            raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
        if not isinstance(hooks_capacity, int) or not 0 <= hooks_capacity <= 1 << 30:
            raise ValueError(f"hooks_capacity must be an int in 0..2**30, got {hooks_capacity!r}")
        self.path = os.fspath(path)
        self.policy = policy
        self.state = state
        self.c.policy = _POLICY_CODES[policy]
        self.c.layout_version = state.layout.version
        self.c.seq = 0
        self.c.active = -1
        tio_atomic_init_u64(&self.c.sync_requested, 0)
        tio_atomic_init_u64(&self.c.synced, 0)
        tio_atomic_init_u32(&self.c.wake, 0)
        tio_atomic_init_u32(&self.c.stop, 0)
        self._nblocks = state.st.nblocks
        self._block_size = (<uint64_t>1) << state.st.block_shift
        self.c.table_off = _PAGE
        self.c.data_off = self.c.table_off + _page_up(self._nblocks * 4)
        self.c.hooks_off = self.c.data_off + _page_up(state.st.nbytes)
        self.c.hooks_cap = hooks_capacity
        self.c.slot_len = self.c.hooks_off + _page_up(hooks_capacity)
        self.c.slot_off[0] = _PAGE
        self.c.slot_off[1] = _PAGE + self.c.slot_len
        self.c.map_len = _PAGE + 2 * self.c.slot_len
        try:
            self._open()
        except BaseException:
            self._release()
            raise
        if policy == "async":
            self._sync_thread = threading.Thread(target=self._sync_loop, daemon=True,
                                                 name="tallyio-checkpoint-msync")
            self._sync_thread.start()

    # ---- opening --------------------------------------------------------------------
    def _header_bytes(self):
        layout = self.state.layout
        head = bytearray(_PAGE)
        _CKPT_HEADER.pack_into(head, 0, CKPT_MAGIC, CKPT_FORMAT_VERSION, layout.version,
                               layout.fingerprint, self._block_size, self.state.st.nbytes,
                               self._nblocks, self.c.hooks_cap, self.c.slot_len, time.time_ns())
        struct.pack_into("<I", head, 64, zlib.crc32(bytes(head[:64])))
        return bytes(head)

    def _open(self):
        lock_path = self.path + ".lock"
        try:
            self._lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except FileNotFoundError:
            raise FileNotFoundError(_errno.ENOENT, f"checkpoint directory of {self.path} does not exist") from None
        except OSError as exc:
            raise _os_error(exc, f"cannot create the lock file {lock_path}") from None
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StateLockedError(_errno.EWOULDBLOCK,
                                   f"{self.path}: another writer holds the lock ({lock_path})") from None
        if not os.path.exists(self.path):
            self._create()
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            raise _os_error(exc, f"cannot open {self.path} for writing") from None
        size = os.fstat(self._fd).st_size
        head = os.pread(self._fd, _PAGE, 0)
        self._check_header(head, size)
        cdef void *m = mmap(NULL, self.c.map_len, PROT_READ | PROT_WRITE, MAP_SHARED, self._fd, 0)
        if m == MAP_FAILED:
            raise OSError(errno, f"cannot map {self.path}: {os.strerror(errno)}")
        self.c.map = <char *>m

    def _create(self):
        tmp = self.path + ".tmp"
        try:
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise _os_error(exc, f"cannot create {tmp}") from None
        try:
            os.write(fd, self._header_bytes())
            os.posix_fallocate(fd, 0, self.c.map_len)
            os.fsync(fd)
        except OSError as exc:
            os.close(fd)
            os.unlink(tmp)
            raise _os_error(exc, f"cannot create the checkpoint file {self.path} "
                                 f"({self.c.map_len} bytes)") from None
        os.close(fd)
        os.rename(tmp, self.path)
        dfd = os.open(os.path.dirname(os.path.abspath(self.path)), os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def _check_header(self, bytes head, size):
        where = self.path
        if len(head) < 68:
            if len(head) >= 8 and head[:8] != CKPT_MAGIC:
                raise ForeignFileError(f"{where}: not a tallyio checkpoint (magic {head[:8]!r})")
            raise CorruptFileError(f"{where}: truncated checkpoint header ({len(head)} bytes)")
        (magic, version, layout_version, fingerprint, block_size, nbytes, _nblocks, hooks_cap,
         _slot_len, _created) = _CKPT_HEADER.unpack_from(head, 0)
        if magic != CKPT_MAGIC:
            raise ForeignFileError(f"{where}: not a tallyio checkpoint (magic {magic!r})")
        if version > CKPT_FORMAT_VERSION:
            raise FutureVersionError(f"{where}: checkpoint format version {version} is newer than "
                                     f"this tallyio understands ({CKPT_FORMAT_VERSION})")
        if zlib.crc32(head[:64]) != struct.unpack_from("<I", head, 64)[0]:
            raise CorruptFileError(f"{where}: checkpoint header checksum mismatch (damaged file)")
        layout = self.state.layout
        if layout_version > layout.version:
            raise FutureVersionError(f"{where}: state layout version {layout_version} is newer than "
                                     f"the layout given ({layout.version}); upgrade before opening it")
        if (layout_version != layout.version or fingerprint != layout.fingerprint
                or nbytes != self.state.st.nbytes or block_size != self._block_size
                or hooks_cap != self.c.hooks_cap):
            raise LayoutMismatchError(
                f"{where}: holds layout version {layout_version} (fingerprint {fingerprint:#x}, "
                f"{nbytes} bytes, hooks {hooks_cap}), the state has version {layout.version} "
                f"(fingerprint {layout.fingerprint:#x}, {self.state.st.nbytes} bytes, hooks "
                f"{self.c.hooks_cap}); migrate it or open it with the layout it was written with")
        if size < self.c.map_len:
            raise CorruptFileError(f"{where}: truncated ({size} of {self.c.map_len} bytes)")

    # ---- slots --------------------------------------------------------------------------
    cdef str _validate(self, int s, tio_slot_header *hdr):
        """Why slot s is not a usable checkpoint, or None."""
        cdef char *slot = self.c.map + self.c.slot_off[s]
        cdef uint32_t *table = <uint32_t *>(slot + self.c.table_off)
        cdef char *data = slot + self.c.data_off
        cdef uint64_t b, off, n, bs = self._block_size, nbytes = self.state.st.nbytes
        cdef uint64_t bad = <uint64_t>-1
        memcpy(hdr, slot, sizeof(tio_slot_header))
        if hdr.magic == 0 and hdr.seq == 0:
            return "empty"
        if hdr.magic != _SLOT_MAGIC:
            return "bad slot magic"
        if tio_crc32c_any(0, hdr, sizeof(tio_slot_header) - 4) != hdr.header_crc:
            return "slot header checksum mismatch"
        if hdr.layout_version != self.c.layout_version or hdr.state_nbytes != nbytes \
                or hdr.nblocks != self._nblocks or hdr.hooks_len > self.c.hooks_cap:
            return "slot header does not match the file header"
        if tio_crc32c_any(0, table, self._nblocks * 4) != hdr.table_crc:
            return "block checksum table mismatch"
        with nogil:
            for b in range(self._nblocks):
                off = b * bs
                n = nbytes - off if off + bs > nbytes else bs
                if tio_crc32c_any(0, data + off, n) != table[b]:
                    bad = b
                    break
        if bad != <uint64_t>-1:
            return f"block {bad} checksum mismatch"
        if hdr.hooks_len and tio_crc32c_any(0, slot + self.c.hooks_off, hdr.hooks_len) != hdr.hooks_crc:
            return "hooks checksum mismatch"
        return None

    def restore(self):
        """Load the newest valid slot into the state (before any reader
        starts) and return its CheckpointInfo; None if the file holds no
        checkpoint yet. CorruptFileError if slots hold checkpoints but none is
        valid. Either way the file is not modified."""
        self._check_open()
        role_claim(&self.state._writer, "GlobalState writer")
        cdef tio_slot_header hdrs[2]
        cdef int best = -1, s, first
        # validate the slot whose header claims the higher sequence first; the
        # other one (a full pass over its data) only if that one fails
        memcpy(&hdrs[0], self.c.map + self.c.slot_off[0], sizeof(tio_slot_header))
        memcpy(&hdrs[1], self.c.map + self.c.slot_off[1], sizeof(tio_slot_header))
        first = 1 if hdrs[1].seq > hdrs[0].seq else 0
        reasons = [None, None]
        for s in (first, 1 - first):
            reasons[s] = self._validate(s, &hdrs[s])
            if reasons[s] is None:
                best = s
                break
        if best < 0:
            if reasons == ["empty", "empty"]:
                return None
            raise CorruptFileError(f"{self.path}: no valid checkpoint: slot 0: {reasons[0]}; "
                                   f"slot 1: {reasons[1]}")
        cdef char *slot = self.c.map + self.c.slot_off[best]
        memcpy(self.state.st.words, slot + self.c.data_off, self.state.st.nbytes)
        hooks = decode_hooks(<bytes>(slot + self.c.hooks_off)[:hdrs[best].hooks_len])
        self.c.seq = hdrs[best].seq
        self.c.active = best
        tio_atomic_store_u64_release(&self.c.synced, self.c.seq)
        # the restored slot equals the live state; the other one is stale everywhere
        self.state.mark_all_dirty()
        memset(self.state.st.dirty[best], 0, self.state.st.bitmap_words * 8)
        return CheckpointInfo(hdrs[best].seq, hdrs[best].journal_seq, hdrs[best].ts_ns, hooks, best)

    def slots(self):
        """``[(seq or None, reason or None), ...]`` for both slots (a diagnostic)."""
        self._check_open()
        cdef tio_slot_header hdr
        out = []
        for s in range(2):
            why = self._validate(s, &hdr)
            out.append((hdr.seq if why is None else None, why))
        return out

    def checkpoint(self, uint64_t journal_seq=0, hooks=None):
        """Writer: publish a checkpoint of the state; returns its sequence
        number, or 0 when the async policy deferred it (the previous one is
        not on disk yet: call again later)."""
        self._check_open()
        role_claim(&self.state._writer, "GlobalState writer")
        cdef bytes blob = b""
        if hooks:
            blob = encode_hooks(hooks)
            if <uint64_t>len(blob) > self.c.hooks_cap:
                raise ValueError(f"strategy hooks need {len(blob)} bytes, the checkpoint holds "
                                 f"{self.c.hooks_cap} (hooks_capacity); nothing was written")
        cdef const char *p = blob
        cdef uint64_t n = len(blob)
        cdef uint64_t ts = time.time_ns()
        cdef int rc
        with nogil:
            rc = tio_ckpt_write(&self.c, &self.state.st, journal_seq, p, n, ts)
        if rc == TIO_OK:
            return self.c.seq
        if rc == TIO_RETRY:
            return 0
        if rc < 0:
            raise _os_error(OSError(-rc, os.strerror(-rc)), f"msync of checkpoint {self.c.seq}")
        raise ValueError(f"checkpoint failed with status {rc}")

    @property
    def seq(self):
        """The last published checkpoint's sequence number (0: none)."""
        return self.c.seq

    @property
    def synced_seq(self):
        """async policy: the newest checkpoint known to be on disk."""
        return tio_atomic_load_u64_acquire(&self.c.synced)

    @property
    def size(self):
        """File size in bytes (fixed at creation)."""
        return self.c.map_len

    def offsets(self):
        """Where things are in the file (for tools and tests): each slot's
        start, and inside a slot the block table, the data and the hooks."""
        return {"slot0": self.c.slot_off[0], "slot1": self.c.slot_off[1],
                "slot_len": self.c.slot_len, "table": self.c.table_off,
                "data": self.c.data_off, "hooks": self.c.hooks_off,
                "block_size": self._block_size}

    @property
    def active_slot(self):
        """The slot holding the newest checkpoint (-1: none yet)."""
        return self.c.active

    def _sync_loop(self):
        cdef tio_ckpt *c = &self.c
        cdef uint64_t req
        cdef uint32_t w
        with nogil:
            while tio_atomic_load_u32_acquire(&c.stop) == 0:
                # read the wake word before the request: a request stored after
                # this read also bumps it, so the wait below returns at once
                w = tio_atomic_load_u32_acquire(&c.wake)
                # acquire: pairs with the release store in tio_ckpt_write
                req = tio_atomic_load_u64_acquire(&c.sync_requested)
                if req > tio_atomic_load_u64_relaxed(&c.synced):
                    msync(c.map + c.slot_off[0], 2 * c.slot_len, MS_SYNC)
                    # release: the writer's acquire load of synced then knows
                    # the slot is on disk before it overwrites the other one
                    tio_atomic_store_u64_release(&c.synced, req)
                else:
                    tio_atomic_wait_u32(&c.wake, w, 100000000)

    def sync(self):
        """msync both slots now (any policy)."""
        self._check_open()
        cdef int rc
        with nogil:
            rc = msync(self.c.map, self.c.map_len, MS_SYNC)
        if rc != 0:
            raise OSError(errno, f"msync {self.path}: {os.strerror(errno)}")
        tio_atomic_store_u64_release(&self.c.synced, self.c.seq)

    def _check_open(self):
        if self._closed or self.c.map == NULL:
            raise ValueError(f"{self.path}: the checkpoint file is closed")

    cdef _release(self):
        if self._sync_thread is not None:
            tio_atomic_store_u32_release(&self.c.stop, 1)
            tio_atomic_fetch_add_u32_acqrel(&self.c.wake, 1)
            tio_atomic_wake_u32(&self.c.wake, 1)
            self._sync_thread.join()
            self._sync_thread = None
        if self.c.map != NULL:
            munmap(self.c.map, self.c.map_len)
            self.c.map = NULL
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def close(self):
        """msync by policy, unmap, unlock. Idempotent."""
        if self._closed:
            return
        if self.c.map != NULL and self.policy != "none":
            msync(self.c.map, self.c.map_len, MS_SYNC)
        self._closed = True
        self._release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __dealloc__(self):
        if self.c.map != NULL:
            munmap(self.c.map, self.c.map_len)
        if self._fd >= 0:
            close(self._fd)
        if self._lock_fd >= 0:
            close(self._lock_fd)      # drops the flock

    def __repr__(self):
        return f"<CheckpointFile {self.path!r} seq={self.c.seq} policy={self.policy}>"

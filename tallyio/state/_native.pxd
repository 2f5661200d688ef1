# cython: language_level=3
"""Global state, thread-local state and A/B checkpoints: the C API.

Cython users ``from tallyio.state._native cimport ...``; everything below the
setup functions is ``noexcept nogil`` and returns a status code or a value.
The protocols are written up in docs/state.md.

Roles (the C API trusts its caller, the Python classes check):

* ONE writer thread calls tio_seqlock_write_begin/store/end, tio_state_write,
  tio_state_apply_op, tio_state_merge and tio_ckpt_write.
* ANY thread reads a record with tio_seqlock_read (never blocks the writer,
  never returns a torn record).
* Each tio_local has ONE owner thread (tio_local_push_op, tio_local_count);
  the writer is the consumer of its op ring.

Record memory: a record is ``record_words`` uint64 words; word 0 is the
seqlock sequence (even = stable, odd = write in progress). Every data word is
accessed with the *fenced_relaxed accessors of tio_atomic.h, ordered by one
release fence in the writer and one acquire fence in the reader.
"""
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from tallyio._ext.common cimport (tio_atomic_u64, tio_atomic_u32,
                                  tio_atomic_load_u64_relaxed, tio_atomic_load_u64_acquire,
                                  tio_atomic_store_u64_relaxed, tio_atomic_store_u64_release,
                                  tio_cpu_relax, TIO_OK, TIO_RETRY, TIO_INVALID, TIO_FULL,
                                  TIO_LIKELY, TIO_UNLIKELY, tio_role)
from tallyio._ext.spsc cimport (tio_spsc, tio_spsc_push_many, tio_spsc_size, tio_spsc_capacity,
                                tio_spsc_pop_many)

cdef extern from "tio_atomic.h" nogil:
    void tio_atomic_store_u64_relfenced_relaxed(tio_atomic_u64 *a, uint64_t v)
    uint64_t tio_atomic_load_u64_acqfenced_relaxed(const tio_atomic_u64 *a)
    void tio_fence_release()
    void tio_fence_acquire()

cdef enum:
    TIO_STATE_MAX_TABLES = 255
    # op kinds of a thread-local update (top byte of an op word)
    TIO_OP_SET = 1        # word = value
    TIO_OP_ADD = 2        # word += value (uint64 wrap-around: adds an int64 too)
    TIO_OP_ADD_F64 = 3    # word (a float64) += value (a float64's bits)


cdef struct tio_table:
    uint64_t offset_words     # first word of record 0 in tio_state.words
    uint64_t capacity         # records
    uint32_t record_words     # 1 (seq) + fields


cdef struct tio_state:
    uint64_t *words           # the state buffer, 4096-aligned, nbytes long
    uint64_t nbytes
    uint64_t block_shift      # dirty tracking granule: 1 << block_shift bytes
    uint64_t nblocks
    uint64_t bitmap_words     # uint64 words per dirty bitmap
    uint64_t *dirty[2]        # per checkpoint slot: blocks changed since that slot was written
    uint32_t ntables
    tio_table tables[255]


# ---- addressing ------------------------------------------------------------
cdef inline int tio_state_check(const tio_state *st, uint32_t table, uint64_t index) noexcept nogil:
    """TIO_OK if (table, index) names a record, TIO_INVALID otherwise."""
    if table >= st.ntables or index >= st.tables[table].capacity:
        return TIO_INVALID
    return TIO_OK


cdef inline uint64_t *tio_state_record(tio_state *st, uint32_t table, uint64_t index) noexcept nogil:
    """Word 0 of a record; the caller checked (table, index)."""
    return st.words + st.tables[table].offset_words + index * st.tables[table].record_words


cdef inline void tio_state_mark_dirty(tio_state *st, const uint64_t *rec, uint32_t nwords) noexcept nogil:
    """Writer only: note the blocks [rec, rec + nwords) touch in both slots' bitmaps."""
    cdef uint64_t start = <uint64_t>(<const char *>rec - <const char *>st.words)
    cdef uint64_t b = start >> st.block_shift
    cdef uint64_t last = (start + nwords * 8 - 1) >> st.block_shift
    cdef uint64_t bit
    while b <= last:
        bit = (<uint64_t>1) << (b & 63)
        st.dirty[0][b >> 6] |= bit
        st.dirty[1][b >> 6] |= bit
        b += 1


# ---- seqlock: writer ---------------------------------------------------------
cdef inline uint64_t tio_seqlock_write_begin(uint64_t *rec) noexcept nogil:
    """Make the record's sequence odd; returns it (pass it to write_end)."""
    # relaxed: only the writer ever stores a record's sequence
    cdef uint64_t s = tio_atomic_load_u64_relaxed(<tio_atomic_u64 *>rec) + 1
    tio_atomic_store_u64_relaxed(<tio_atomic_u64 *>rec, s)
    # release fence: the odd sequence is ordered before every data store below;
    # pairs with the reader's tio_fence_acquire (data loads, then sequence re-read)
    tio_fence_release()
    return s


cdef inline void tio_seqlock_store(uint64_t *rec, uint32_t word, uint64_t value) noexcept nogil:
    """Store one data word (1 <= word < record_words) between begin and end."""
    tio_atomic_store_u64_relfenced_relaxed(<tio_atomic_u64 *>(rec + word), value)


cdef inline uint64_t tio_seqlock_peek(const uint64_t *rec, uint32_t word) noexcept nogil:
    """The writer reading its own record (no other thread stores it)."""
    return tio_atomic_load_u64_relaxed(<const tio_atomic_u64 *>(rec + word))


cdef inline void tio_seqlock_write_end(uint64_t *rec, uint64_t odd) noexcept nogil:
    """Publish: the sequence becomes even again."""
    # release: every data store above is visible to a reader whose acquire load
    # of the sequence sees odd + 1 (pairs with the first load in tio_seqlock_try_read)
    tio_atomic_store_u64_release(<tio_atomic_u64 *>rec, odd + 1)


# ---- seqlock: readers (any thread) --------------------------------------------
cdef inline int tio_seqlock_try_read(const uint64_t *rec, uint64_t *out, uint32_t nwords) noexcept nogil:
    """Copy a record into out[0:nwords] (out[0] = its even sequence) if no
    write overlapped the copy: TIO_OK, else TIO_RETRY (out is garbage)."""
    # acquire: pairs with the release in tio_seqlock_write_end, so the data of
    # every write that ended at or before s1 is visible below
    cdef uint64_t s1 = tio_atomic_load_u64_acquire(<const tio_atomic_u64 *>rec)
    cdef uint32_t i
    if s1 & 1:
        return TIO_RETRY
    for i in range(1, nwords):
        out[i] = tio_atomic_load_u64_acqfenced_relaxed(<const tio_atomic_u64 *>(rec + i))
    # acquire fence: if any load above saw a store of a write that began after
    # s1, that write's odd sequence (before its release fence) is visible to the
    # re-read below (pairs with the release fence in tio_seqlock_write_begin)
    tio_fence_acquire()
    if tio_atomic_load_u64_relaxed(<const tio_atomic_u64 *>rec) != s1:
        return TIO_RETRY
    out[0] = s1
    return TIO_OK


cdef inline uint64_t tio_seqlock_read(const uint64_t *rec, uint64_t *out, uint32_t nwords) noexcept nogil:
    """Copy a consistent record into out[0:nwords]; returns how many attempts
    a concurrent write spoiled (0 almost always). Never blocks the writer."""
    cdef uint64_t retries = 0
    while tio_seqlock_try_read(rec, out, nwords) != TIO_OK:
        retries += 1
        tio_cpu_relax()
    return retries


# ---- writer: whole records and ops -------------------------------------------
cdef inline void tio_state_write(tio_state *st, uint64_t *rec, const uint64_t *src, uint32_t nwords) noexcept nogil:
    """Writer only: replace data words 1..nwords-1 of a record with src[1:nwords]."""
    cdef uint64_t odd = tio_seqlock_write_begin(rec)
    cdef uint32_t i
    for i in range(1, nwords):
        tio_seqlock_store(rec, i, src[i])
    tio_seqlock_write_end(rec, odd)
    tio_state_mark_dirty(st, rec, nwords)


cdef inline uint64_t tio_op_word(uint32_t kind, uint32_t table, uint32_t word, uint64_t index) noexcept nogil:
    """Encode an update: kind (8 bits) | table (8) | word (16) | index (32)."""
    return ((<uint64_t>kind) << 56) | ((<uint64_t>(table & 0xFF)) << 48) | \
           ((<uint64_t>(word & 0xFFFF)) << 32) | (index & <uint64_t>0xFFFFFFFF)


cdef int tio_state_apply_op(tio_state *st, uint64_t op, uint64_t value) noexcept nogil


# ---- thread-local state ------------------------------------------------------
cdef struct tio_local:
    tio_spsc *ops             # pairs (op word, value): owner produces, the writer consumes
    tio_atomic_u64 *counters  # ncounters cells, stored only by the owner (relaxed)
    uint64_t *folded          # writer-private: each counter's value already merged
    uint64_t ncounters


cdef inline int tio_local_push_op(tio_local *l, uint64_t op, uint64_t value) noexcept nogil:
    """Owner only: queue an update for the writer's next merge. TIO_OK, or
    TIO_FULL (nothing queued: merge has not kept up)."""
    cdef uint64_t pair[2]
    # the producer's size never under-counts, so 2 free slots here stay free
    if tio_spsc_capacity(l.ops) - tio_spsc_size(l.ops) < 2:
        return TIO_FULL
    pair[0] = op
    pair[1] = value
    # one release store of tail publishes both words: the writer never sees half an op
    tio_spsc_push_many(l.ops, pair, 2)
    return TIO_OK


cdef inline void tio_local_count(tio_local *l, uint64_t counter, uint64_t n) noexcept nogil:
    """Owner only: counters[counter] += n (caller checked counter < ncounters)."""
    # relaxed load+store, not an RMW: only the owner stores this cell; the
    # merger reads it relaxed (a counter orders nothing else)
    cdef tio_atomic_u64 *c = &l.counters[counter]
    tio_atomic_store_u64_relaxed(c, tio_atomic_load_u64_relaxed(c) + n)


cdef uint64_t tio_state_merge(tio_state *st, tio_local **locals, uint64_t nlocals,
                              uint32_t counters_table) noexcept nogil


# ---- A/B checkpoint file --------------------------------------------------------
cdef struct tio_ckpt:
    char *map                 # the whole file, MAP_SHARED
    uint64_t map_len
    uint64_t slot_off[2]      # byte offset of each slot
    uint64_t slot_len
    uint64_t table_off        # inside a slot: block checksum table
    uint64_t data_off         # inside a slot: state bytes
    uint64_t hooks_off        # inside a slot: strategy hooks blob
    uint64_t hooks_cap
    uint64_t seq              # last published checkpoint sequence (0 = none)
    int active                # slot holding seq (-1 = none)
    uint32_t layout_version
    int policy                # 0 none, 1 async, 2 sync
    tio_atomic_u64 sync_requested   # async: highest seq handed to the background msync
    tio_atomic_u64 synced           # async: highest seq the background msync finished
    tio_atomic_u32 wake             # futex word for the background thread
    tio_atomic_u32 stop


cdef int tio_ckpt_write(tio_ckpt *c, tio_state *st, uint64_t journal_seq,
                        const char *hooks, uint64_t hooks_len, uint64_t ts_ns) noexcept nogil

cdef uint32_t tio_crc32c(uint32_t crc, const void *buf, size_t len) noexcept nogil


cdef packed struct tio_slot_header:
    # one checkpoint slot's header (64 bytes), written last when publishing
    uint32_t magic            # 0x544F4C53 "SLOT"; 0 while the slot is being rewritten
    uint32_t layout_version
    uint64_t seq              # checkpoint sequence number (increasing across slots)
    uint64_t journal_seq      # journal records up to this one are in the state
    uint64_t ts_ns
    uint64_t state_nbytes
    uint32_t hooks_len
    uint32_t hooks_crc        # CRC-32C of the hooks blob
    uint32_t table_crc        # CRC-32C of the block checksum table
    uint32_t nblocks
    uint32_t reserved
    uint32_t header_crc       # CRC-32C of the 60 bytes above


# ---- the Python classes (attributes visible to Cython users) ------------------------
cdef class _Table:
    cdef public uint32_t table_id
    cdef public uint32_t record_words
    cdef public uint64_t capacity
    cdef public str name
    cdef public object dtype
    cdef public dict fields          # name -> (word, kind code)


cdef class GlobalState:
    cdef tio_state st                # the C state: pass &state.st to the nogil API
    cdef readonly object layout
    cdef dict _tables
    cdef list _table_list
    cdef list _locals
    cdef tio_local **_local_ptrs
    cdef uint64_t _nlocals
    cdef uint32_t _counters_table
    cdef tio_role _writer
    cdef uint64_t _scratch[256]
    cdef Py_ssize_t _buf_shape[1]
    cdef Py_ssize_t _buf_strides[1]
    cdef _Table _table(self, object name)
    cdef uint64_t *_record(self, _Table t, object index) except NULL
    cdef tuple _field(self, _Table t, object field)


cdef class FieldReader:
    cdef object state                # keeps the buffer alive
    cdef uint64_t *base
    cdef uint64_t capacity
    cdef uint32_t record_words
    cdef uint32_t word
    cdef int kind


cdef class LocalState:
    cdef tio_local l                 # pass &local.l to tio_local_push_op / tio_local_count
    cdef GlobalState owner
    cdef readonly object scratch
    cdef tio_role _role
    cdef int _push(self, uint32_t kind, object table, object index, object field, uint64_t value) except -1


cdef class CheckpointFile:
    cdef tio_ckpt c
    cdef GlobalState state
    cdef readonly object path
    cdef readonly str policy
    cdef int _fd
    cdef int _lock_fd
    cdef object _sync_thread
    cdef bint _closed
    cdef uint64_t _nblocks
    cdef uint64_t _block_size
    cdef str _validate(self, int s, tio_slot_header *hdr)
    cdef _release(self)

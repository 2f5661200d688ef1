# cython: language_level=3
# Owns: the native reader of the record log (tallyio/state/recordlog.py's format, which that
# module documents and writes): CRC-32 (zlib's) and a cursor over one segment's records.
# Touches: nothing but the bytes it is given (a memory map the caller keeps alive).
"""The record log's native cursor: the same checks as ``recordlog._scan`` (type != 0,
sequence = previous + 1, length <= MAX_PAYLOAD and inside the file, CRC-32 over the
24 header bytes and the payload), without the GIL::

    cdef tio_rlog_cursor cur
    tio_rlog_open(&cur, buf, size, header_size, first_seq)   # header checked by recordlog.py
    while tio_rlog_peek(&cur, &rec) == TIO_RLOG_OK:
        ... rec.type, rec.ts, rec.payload[0:rec.length] ...
        tio_rlog_advance(&cur, &rec)
    # cur.offset: where the valid records end (the end of the file, or a torn record)

``peek`` validates the record at the cursor (its CRC is computed once: a peeked record
is remembered until advanced past), so a caller may look at a record, decide to hand
it to someone else, and advance later.

Also here, for every native reader of a recording's payloads (this module, the pipeline's
raw records, the replay feeder): ``tio_le32`` / ``tio_le64``, the little-endian readers of
the format, and ``rlog_check_header`` / ``rlog_segment_files``, the file-level checks of
``tallyio.state.recordlog`` under a public C name."""
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy

cdef enum:
    TIO_RLOG_OK = 0
    TIO_RLOG_END = 1          # no complete record at the cursor (end of the file)
    TIO_RLOG_INVALID = 2      # the bytes at the cursor are not a valid record (torn, damaged)
    TIO_RLOG_RECORD_HEADER = 24
    TIO_RLOG_MAX_PAYLOAD = 1 << 28     # recordlog.MAX_PAYLOAD


cdef struct tio_rlog_record:
    uint16_t type
    uint16_t flags
    uint32_t length
    uint64_t seq
    uint64_t ts
    uint64_t offset            # of the record's header in the file
    uint64_t size              # header + payload + crc, padded to 8
    const uint8_t *payload


cdef struct tio_rlog_cursor:
    const uint8_t *buf
    uint64_t size
    uint64_t offset            # the next record's header
    uint64_t expect_seq
    uint64_t records           # records advanced past
    uint64_t checked_offset    # the offset whose record passed peek's checks (+1; 0: none)


cdef uint32_t tio_crc32(uint32_t crc, const uint8_t *p, uint64_t n) noexcept nogil
cdef void tio_rlog_open(tio_rlog_cursor *c, const uint8_t *buf, uint64_t size, uint64_t offset,
                        uint64_t first_seq) noexcept nogil
cdef int tio_rlog_peek(tio_rlog_cursor *c, tio_rlog_record *out) noexcept nogil
cdef void tio_rlog_advance(tio_rlog_cursor *c, const tio_rlog_record *rec) noexcept nogil


# The format's little-endian fields, read in place at any alignment (memcpy: one load once
# compiled).  The host is little-endian: tio_atomic.h and the wire formats assume it too.
cdef inline uint32_t tio_le32(const uint8_t *p) noexcept nogil:
    cdef uint32_t v
    memcpy(&v, p, 4)
    return v


cdef inline uint64_t tio_le64(const uint8_t *p) noexcept nogil:
    cdef uint64_t v
    memcpy(&v, p, 8)
    return v


# recordlog.py's file-level checks, for the native readers (with the GIL):
# rlog_check_header(the first HEADER_SIZE bytes, a name for errors) -> the segment's first
# sequence number, or ForeignFileError / FutureVersionError / CorruptFileError naming `where`;
# rlog_segment_files(path) -> the files of the log at `path` in order (its sealed segments,
# then `path` itself when it exists), FileNotFoundError when there is none.
cdef uint64_t rlog_check_header(bytes raw, str where) except? 0
cdef list rlog_segment_files(object path)

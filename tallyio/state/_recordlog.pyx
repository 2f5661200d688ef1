# cython: language_level=3
# Owns: the native reader of the record log (see _recordlog.pxd); the format itself is
# recordlog.py's (that module writes it and documents it; this one only reads it).
# Touches: the bytes it is given, and recordlog.py's header check and segment list (rlog_*
# wrap them for the native readers: one implementation).
"""The record log read from C: zlib's CRC-32 and a nogil cursor over a segment's records
(the C API is in ``_recordlog.pxd``; the mempool's native replay feeder walks recordings
with it).  From Python, for tests and tools:

    >>> import zlib
    >>> crc32(b"123456789") == zlib.crc32(b"123456789")
    True
"""
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t

__all__ = ["crc32", "walk"]


cdef uint64_t rlog_check_header(bytes raw, str where) except? 0:
    """recordlog._check_header (the one implementation of the header's checks)."""
    from tallyio.state.recordlog import _check_header
    return _check_header(raw, where)


cdef list rlog_segment_files(object path):
    """The files of the log at `path`, oldest first: recordlog's sealed segments, then the
    live file when it exists."""
    import os
    from pathlib import Path

    from tallyio.state.recordlog import _segments
    files = [p for _, p in _segments(Path(path))]
    if os.path.exists(path):
        files.append(path)
    if not files:
        raise FileNotFoundError(f"no record log at {path}")
    return files


cdef uint32_t CRC_TABLE[8][256]     # slice-by-8: CRC_TABLE[k][b] is b's CRC advanced k more zero bytes


cdef void crc_init() noexcept nogil:
    cdef uint32_t c, n, k, _bit
    for n in range(256):
        c = n
        for _bit in range(8):
            c = (0xEDB88320u ^ (c >> 1)) if (c & 1) else (c >> 1)
        CRC_TABLE[0][n] = c
    for n in range(256):
        for k in range(1, 8):
            CRC_TABLE[k][n] = (CRC_TABLE[k - 1][n] >> 8) ^ CRC_TABLE[0][CRC_TABLE[k - 1][n] & 0xFF]


crc_init()      # at import: the table is read-only afterwards


cdef uint32_t tio_crc32(uint32_t crc, const uint8_t *p, uint64_t n) noexcept nogil:
    """zlib's crc32(data, crc) (IEEE, reflected), eight bytes per step (slice-by-8: one
    table lookup per byte was most of a replay's reading time on 200-500-byte records)."""
    cdef uint32_t lo, hi
    crc = crc ^ 0xFFFFFFFFu
    while n >= 8:
        lo = tio_le32(p) ^ crc
        hi = tio_le32(p + 4)
        crc = (CRC_TABLE[7][lo & 0xFF] ^ CRC_TABLE[6][(lo >> 8) & 0xFF]
               ^ CRC_TABLE[5][(lo >> 16) & 0xFF] ^ CRC_TABLE[4][lo >> 24]
               ^ CRC_TABLE[3][hi & 0xFF] ^ CRC_TABLE[2][(hi >> 8) & 0xFF]
               ^ CRC_TABLE[1][(hi >> 16) & 0xFF] ^ CRC_TABLE[0][hi >> 24])
        p += 8
        n -= 8
    while n:
        crc = CRC_TABLE[0][(crc ^ p[0]) & 0xFF] ^ (crc >> 8)
        p += 1
        n -= 1
    return crc ^ 0xFFFFFFFFu


cdef void tio_rlog_open(tio_rlog_cursor *c, const uint8_t *buf, uint64_t size, uint64_t offset,
                        uint64_t first_seq) noexcept nogil:
    c.buf = buf
    c.size = size
    c.offset = offset
    c.expect_seq = first_seq
    c.records = 0
    c.checked_offset = 0


cdef int tio_rlog_peek(tio_rlog_cursor *c, tio_rlog_record *out) noexcept nogil:
    """The record at the cursor, checked as recordlog._scan checks it: TIO_RLOG_OK,
    TIO_RLOG_END (fewer bytes left than the smallest record) or TIO_RLOG_INVALID."""
    cdef const uint8_t *rec
    cdef uint64_t off = c.offset
    if off + TIO_RLOG_RECORD_HEADER + 4 > c.size:
        return TIO_RLOG_END
    rec = c.buf + off
    out.type = <uint16_t>(rec[0] | (rec[1] << 8))
    out.flags = <uint16_t>(rec[2] | (rec[3] << 8))
    out.length = tio_le32(rec + 4)
    out.seq = tio_le64(rec + 8)
    out.ts = tio_le64(rec + 16)
    out.offset = off
    out.payload = rec + TIO_RLOG_RECORD_HEADER
    if out.type == 0 or out.seq != c.expect_seq or out.length > TIO_RLOG_MAX_PAYLOAD:
        return TIO_RLOG_INVALID
    out.size = (TIO_RLOG_RECORD_HEADER + <uint64_t>out.length + 4 + 7) & ~(<uint64_t>7)
    if off + out.size > c.size:
        return TIO_RLOG_INVALID
    if c.checked_offset != off + 1:
        if tio_crc32(0, rec, TIO_RLOG_RECORD_HEADER + <uint64_t>out.length) != \
                tio_le32(rec + TIO_RLOG_RECORD_HEADER + out.length):
            return TIO_RLOG_INVALID
        c.checked_offset = off + 1
    return TIO_RLOG_OK


cdef void tio_rlog_advance(tio_rlog_cursor *c, const tio_rlog_record *rec) noexcept nogil:
    """Past `rec` (the record the last successful peek returned)."""
    c.offset = rec.offset + rec.size
    c.expect_seq = rec.seq + 1
    c.records += 1


def crc32(data, uint32_t crc=0):
    """zlib.crc32 of a bytes-like object, continuing from ``crc`` (computed in C, for tests).

    >>> crc32(b"") , crc32(b"a", crc32(b"b")) == __import__("zlib").crc32(b"a", __import__("zlib").crc32(b"b"))
    (0, True)
    """
    cdef const uint8_t[::1] view = memoryview(data).cast("B")
    cdef uint64_t n = view.shape[0]
    if n == 0:
        return crc
    with nogil:
        crc = tio_crc32(crc, &view[0], n)
    return crc


def walk(data, uint64_t first_seq, uint64_t offset=64):
    """``(records, end_offset, reason)`` of one segment's bytes, read by the native cursor:
    ``records`` is a list of ``(offset, type, flags, length, seq, ts)`` (what
    ``recordlog._scan`` yields, for comparing the two readers), ``reason`` "end" or
    "invalid" (a torn or damaged record at ``end_offset``).

    >>> walk(b"\\x00" * 64, 1)
    ([], 64, 'end')
    """
    cdef const uint8_t[::1] view = memoryview(data).cast("B")
    cdef tio_rlog_cursor cur
    cdef tio_rlog_record rec
    cdef int status
    out = []
    if <uint64_t>view.shape[0] < offset:
        raise ValueError(f"walk: offset {offset} is past the {view.shape[0]} bytes given")
    tio_rlog_open(&cur, &view[0], view.shape[0], offset, first_seq)
    while True:
        status = tio_rlog_peek(&cur, &rec)
        if status != TIO_RLOG_OK:
            break
        out.append((rec.offset, rec.type, rec.flags, rec.length, rec.seq, rec.ts))
        tio_rlog_advance(&cur, &rec)
    return out, cur.offset, "end" if status == TIO_RLOG_END else "invalid"

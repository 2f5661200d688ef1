"""Segments: a recording cut into pieces that each replay on their own.

Owns: ``split_recording`` (the cut rule, the segment files ``<stem>.seg<NNNN>.tio``
and their manifest ``<stem>.segments.json``), ``Segment`` (what a task is told
about one file: its path, record count and sha256) and ``check_segment`` (a
worker's look at a file before it replays it).  Touches: the recording format
(``tallyio.mempool.recording``, ``tallyio.state.recordlog``) and ``PoolTable``
snapshots; nothing downstream of the mempool.

Why a segment replays alone exactly as the same span inside the whole replay:

* it starts with a ``POOL_SNAPSHOT`` of the pool table as the original's replay
  left it just before the cut (the first snapshot with every Sync up to the cut
  applied, in order), so every reserve the analyzer and the dry run read is the
  same;
* a cut is placed only right before a ``BLOCK_HEADER``, so the segment's first
  item sets the block number and base fee the analyzer stamps on opportunities,
  and the Syncs a header closes (a node sends a block's logs before or after its
  head) are scanned for standing arbitrage either by that header (whole replay)
  or by the engine's end-of-replay scan of the segment before (same table, same
  block number): the same opportunities, in the same block;
* pending transactions are analyzed on a copy of the reserves, so an
  opportunity depends only on the table and its own transaction.

One state is NOT carried across a cut: the filter's duplicate-hash window and
per-sender nonces.  A transaction repeated across a cut (a re-broadcast), or one
whose nonce gap the earlier segment would have shown, passes in the segment
where the whole replay filtered it.  The embedded recording has neither; a real
capture may (docs/backtest.md says how to see it: compare the segment sum with
one whole-recording task).

    >>> import tempfile
    >>> from tallyio.mempool.recording import embedded_recording
    >>> out = tempfile.mkdtemp()
    >>> segments = split_recording(embedded_recording()[0], out, blocks_per_segment=6)
    >>> len(segments), segments[0].name
    (2, 'replay.seg0000.tio')
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import List, NamedTuple, Optional, Sequence, Union

from tallyio.errors import CorruptSegmentError
from tallyio.mempool._pools import PoolTable
from tallyio.mempool.recording import decode
from tallyio.state.recordlog import RecordReader, RecordType, RecordWriter

__all__ = ["split_recording", "Segment", "load_segments", "check_segment", "fetch_segment", "file_sha256",
           "MANIFEST_SUFFIX"]

MANIFEST_SUFFIX = ".segments.json"
_MANIFEST_FORMAT = 1


class Segment(NamedTuple):
    """One replayable file and what it must hold (checked by the task that reads it)."""

    path: str
    records: int
    """records in the file, its leading snapshot included (-1: not known)."""
    sha256: str
    """hex sha256 of the file's bytes ("" : not checked)."""
    index: int = 0
    """position in its recording (P&L over time and the digest keep this order)."""
    recording: str = ""
    """the name of the recording it came from (its file stem)."""


def file_sha256(path: Union[str, os.PathLike]) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB pieces."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for piece in iter(lambda: f.read(1 << 20), b""):
            h.update(piece)
    return h.hexdigest()


def _positive(name: str, value: object, kind: type) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int) or value <= 0:
        raise ValueError(f"split_recording: {name} must be a positive {kind.__name__}, got {value!r}")


def split_recording(path: Union[str, os.PathLike], out_dir: Union[str, os.PathLike], *,
                    segment_seconds: Optional[float] = None,
                    blocks_per_segment: Optional[int] = None) -> List[Path]:
    """Cut the recording at ``path`` into segment files in ``out_dir`` and return
    their paths, in order.  Exactly one of ``segment_seconds`` (a cut at the first
    block header at least that many recorded seconds after the segment's first
    record) and ``blocks_per_segment`` (a cut before every Nth header) says where.
    Beside the segments, ``<stem>.segments.json`` lists each file with its record
    count and sha256 (``load_segments`` reads it).  ValueError for a recording
    without a pool-table snapshot before its first Sync, or bad arguments."""
    if (segment_seconds is None) == (blocks_per_segment is None):
        raise ValueError("split_recording: give exactly one of segment_seconds and blocks_per_segment")
    if segment_seconds is not None:
        _positive("segment_seconds", segment_seconds, float)
    else:
        _positive("blocks_per_segment", blocks_per_segment, int)
    src = Path(path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = src.name[:-4] if src.name.endswith(".tio") else src.name
    reader = RecordReader(src)
    table: Optional[PoolTable] = None
    paths: List[Path] = []
    entries: List[dict] = []
    writer: Optional[RecordWriter] = None
    seg_first_ts = 0
    seg_blocks = 0
    seg_records = 0

    def close_segment() -> None:
        nonlocal writer
        if writer is not None:
            writer.close()
            writer = None
            entries.append({"file": paths[-1].name, "records": seg_records, "sha256": file_sha256(paths[-1])})

    for record in reader:
        rtype = int(record.type)
        if rtype == RecordType.POOL_SNAPSHOT:
            if table is None:                # the replay starts from the first one; later ones it ignores
                table = PoolTable.from_bytes(bytes(record.payload))
            continue
        if rtype not in (RecordType.PENDING_TX, RecordType.BLOCK_HEADER, RecordType.SYNC_EVENT):
            continue                         # another application's record: the replay skips it too
        if table is None:
            raise ValueError(f"split_recording: {src} has no pool-table snapshot before its first item "
                             f"(record {record.seq}); a segment could not start from the pool state")
        cut = False
        if writer is not None and rtype == RecordType.BLOCK_HEADER:
            if blocks_per_segment is not None:
                cut = seg_blocks >= blocks_per_segment
            else:
                cut = record.ts - seg_first_ts >= segment_seconds * 1e9
        if writer is None or cut:
            close_segment()
            target = out / f"{stem}.seg{len(paths):04d}.tio"
            for stale in (target, *target.parent.glob(target.name + ".*")):
                if stale.exists():
                    stale.unlink()           # a fresh log, not an append to an old one
            paths.append(target)
            writer = RecordWriter(target, chunk_size=1 << 16)
            writer.append(RecordType.POOL_SNAPSHOT, table.to_bytes(), ts=record.ts)
            seg_first_ts, seg_blocks, seg_records = record.ts, 0, 1
        writer.append(rtype, bytes(record.payload), ts=record.ts, flags=record.flags)
        seg_records += 1
        if rtype == RecordType.BLOCK_HEADER:
            seg_blocks += 1
        elif rtype == RecordType.SYNC_EVENT:
            table.apply_sync(decode(rtype, record.payload))   # the state the next cut's snapshot holds
    close_segment()
    manifest = {"format": _MANIFEST_FORMAT, "source": str(src), "end_reason": reader.end_reason,
                "segment_seconds": segment_seconds, "blocks_per_segment": blocks_per_segment,
                "segments": entries}
    (out / f"{stem}{MANIFEST_SUFFIX}").write_text(json.dumps(manifest, indent=1))
    return paths


def load_segments(source: Union[str, os.PathLike], *, index_from: int = 0) -> List[Segment]:
    """The segments a path stands for: a manifest (``*.segments.json``), a folder
    holding manifests (every one, by name), or a recording file (one segment, not
    checked).  ValueError naming the path when it is none of these."""
    if is_url(source):
        return _load_url(str(source))
    p = Path(source)
    if p.is_dir():
        manifests = sorted(p.glob(f"*{MANIFEST_SUFFIX}"))
        if not manifests:
            raise ValueError(f"{p}: a folder of segments needs a *{MANIFEST_SUFFIX} (made by split_recording)")
        out: List[Segment] = []
        for m in manifests:
            out += load_segments(m)
        return out
    if p.name.endswith(MANIFEST_SUFFIX):
        try:
            manifest = json.loads(p.read_text())
            entries = manifest["segments"]
            recording = p.name[:-len(MANIFEST_SUFFIX)]
            return [Segment(str((p.parent / e["file"]).resolve()), int(e["records"]), str(e["sha256"]), i, recording)
                    for i, e in enumerate(entries)]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{p}: not a segment manifest ({type(exc).__name__}: {exc})") from None
    if not p.exists():
        raise FileNotFoundError(f"no recording, segment manifest or folder at {p}")
    stem = p.name[:-4] if p.name.endswith(".tio") else p.name
    return [Segment(str(p.resolve()), -1, "", 0, stem)]


def is_url(source: object) -> bool:
    """Whether ``source`` names a file through fsspec (``s3://``, ``gs://``,
    ``file://``, ``memory://``...) rather than a local path."""
    return isinstance(source, str) and "://" in source


def _fsspec():
    try:
        import fsspec
    except ImportError:
        raise ImportError("recordings given by URL are read through fsspec, which Dask brings: "
                          "pip install \"tallyio[backtest]\"") from None
    return fsspec


def _load_url(url: str) -> List[Segment]:
    """``load_segments`` of a URL: a manifest (its segment files beside it) or one
    recording file.  A folder URL is not listed: name its manifest."""
    fsspec = _fsspec()
    name = url.rstrip("/").rsplit("/", 1)[-1]
    try:
        if name.endswith(MANIFEST_SUFFIX):
            with fsspec.open(url, "rb") as f:
                manifest = json.loads(f.read())
            base = url.rsplit("/", 1)[0]
            recording = name[:-len(MANIFEST_SUFFIX)]
            return [Segment(f"{base}/{e['file']}", int(e["records"]), str(e["sha256"]), i, recording)
                    for i, e in enumerate(manifest["segments"])]
        fs, path = fsspec.core.url_to_fs(url)
        exists = fs.exists(path)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{url}: not a segment manifest or a readable recording "
                         f"({type(exc).__name__}: {exc})") from None
    if not exists:
        raise FileNotFoundError(f"no recording or segment manifest at {url}")
    return [Segment(url, -1, "", 0, name[:-4] if name.endswith(".tio") else name)]


def fetch_segment(segment: Segment, cache_dir: Union[str, os.PathLike, None] = None) -> Segment:
    """The segment with a local path a replay can map: itself when it is local; for
    a URL, a copy in ``cache_dir`` (default: the temp folder's
    ``tallyio-backtest-cache``), reused when its sha256 is the manifest's.  A fetch
    that fails raises ``CorruptSegmentError`` naming the URL."""
    if not is_url(segment.path):
        return segment
    fsspec = _fsspec()
    cache = Path(cache_dir or Path(tempfile.gettempdir()) / "tallyio-backtest-cache")
    cache.mkdir(parents=True, exist_ok=True)
    key = segment.sha256 or hashlib.sha256(segment.path.encode()).hexdigest()
    local = cache / f"{key}.tio"
    # without a manifest's sha256 the copy could be stale: fetched every time
    if segment.sha256 and local.exists() and file_sha256(local) == segment.sha256:
        return segment._replace(path=str(local))
    part = local.with_name(f"{local.name}.{os.getpid()}.{threading.get_ident()}.part")
    try:
        with fsspec.open(segment.path, "rb") as src, open(part, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        os.replace(part, local)    # whole or not at all: another task may read the same copy
    except (OSError, ValueError) as exc:
        part.unlink(missing_ok=True)
        raise CorruptSegmentError(segment.path, f"could not be fetched ({type(exc).__name__}: {exc})") from None
    return segment._replace(path=str(local))


def check_segment(segment: Segment) -> None:
    """Raise ``CorruptSegmentError`` naming the file when it is not what its
    manifest says (sha256, or the record count the reader finds before a torn or
    invalid record), or when it cannot be read as a record log at all."""
    path = segment.path
    try:
        if segment.sha256 and file_sha256(path) != segment.sha256:
            raise CorruptSegmentError(path, "its sha256 differs from the manifest's (the file was changed "
                                            "or damaged after split_recording wrote it)")
        reader = RecordReader(path)
        count = sum(1 for _ in reader)
    except CorruptSegmentError:
        raise
    except (OSError, ValueError) as exc:       # missing, foreign, damaged header (CorruptFileError is a ValueError)
        raise CorruptSegmentError(path, f"{type(exc).__name__}: {exc}") from None
    if reader.end_reason != "end of log":
        raise CorruptSegmentError(path, f"the record log stops early: {reader.end_reason}")
    if segment.records >= 0 and count != segment.records:
        raise CorruptSegmentError(path, f"{count} valid records, the manifest says {segment.records}")


def segments_of(sources: Sequence[Union[str, os.PathLike]]) -> List[Segment]:
    """``load_segments`` of each source, in order."""
    out: List[Segment] = []
    for s in sources:
        out += load_segments(s)
    return out

"""The versioned, fixed layout of the global state: which tables exist, their
fields and capacities, and where each lives in the one contiguous state
buffer. Pure description: owns no memory and touches no file.

Every record is a run of 8-byte words: word 0 is the record's seqlock
sequence (``seq``, even when the record is stable, odd while the writer is
inside it), then one word per field, each ``"u8"`` (uint64), ``"i8"`` (int64)
or ``"f8"`` (float64). 8-byte words are what the seqlock copies atomically,
and what a numpy structured dtype maps without padding. Values wider than 64
bits (Uniswap V2 reserves are uint112) take two words, ``*_lo`` and ``*_hi``.

Tables start on 128-byte boundaries. The layout's ``fingerprint`` (CRC-32 of
its canonical description) is stored in every checkpoint, so a checkpoint is
never loaded into a different layout.

    >>> layout = StateLayout(1, {"nonces": ([("nonce", "u8")], 4)})
    >>> layout.table("nonces").record_words, layout.nbytes
    (2, 128)
    >>> layout.dtype("nonces").names
    ('seq', 'nonce')
"""
from __future__ import annotations

import zlib
from typing import Dict, List, NamedTuple, Sequence, Tuple

import numpy as np

__all__ = ["StateLayout", "TableSpec", "ENGINE_LAYOUT", "FIELD_KINDS"]

FIELD_KINDS = ("u8", "i8", "f8")
_ALIGN = 128


class TableSpec(NamedTuple):
    """Where one table lives in the state buffer."""

    name: str
    table_id: int
    fields: Tuple[Tuple[str, str], ...]
    capacity: int
    offset: int            #: bytes from the start of the state buffer
    record_words: int      #: 1 (seq) + one per field

    @property
    def record_bytes(self) -> int:
        return self.record_words * 8

    @property
    def nbytes(self) -> int:
        return self.capacity * self.record_bytes


class StateLayout:
    """A versioned set of fixed-capacity tables of 8-byte fields.

    ``tables`` maps a table name to ``(fields, capacity)`` with ``fields`` a
    sequence of ``(name, kind)``, kind one of ``"u8"``, ``"i8"``, ``"f8"``.
    Table ids follow the insertion order of ``tables``.
    """

    def __init__(self, version: int, tables: Dict[str, Tuple[Sequence[Tuple[str, str]], int]]) -> None:
        if not isinstance(version, int) or not 1 <= version < 2**32:
            raise ValueError(f"layout version must be an int in 1..2**32-1, got {version!r}")
        if not tables or len(tables) > 255:
            raise ValueError(f"a layout needs 1..255 tables, got {len(tables) if tables else 0}")
        self.version = version
        self._tables: List[TableSpec] = []
        self._by_name: Dict[str, TableSpec] = {}
        offset = 0
        for table_id, (name, spec) in enumerate(tables.items()):
            if not isinstance(name, str) or not name.isidentifier():
                raise ValueError(f"table name must be an identifier, got {name!r}")
            try:
                fields, capacity = spec
            except (TypeError, ValueError):
                raise ValueError(f"table {name!r}: expected (fields, capacity), got {spec!r}") from None
            if not isinstance(capacity, int) or not 1 <= capacity < 2**32:
                raise ValueError(f"table {name!r}: capacity must be an int in 1..2**32-1, got {capacity!r}")
            fields = tuple((str(f), str(k)) for f, k in fields)
            if not 1 <= len(fields) <= 255:
                raise ValueError(f"table {name!r}: needs 1..255 fields, got {len(fields)}")
            seen = {"seq"}
            for fname, kind in fields:
                if kind not in FIELD_KINDS:
                    raise ValueError(f"table {name!r} field {fname!r}: kind must be one of {FIELD_KINDS}, got {kind!r}")
                if not fname.isidentifier() or fname in seen:
                    raise ValueError(f"table {name!r}: field name {fname!r} is invalid or repeated ('seq' is reserved)")
                seen.add(fname)
            t = TableSpec(name, table_id, fields, capacity, offset, 1 + len(fields))
            self._tables.append(t)
            self._by_name[name] = t
            offset += (t.nbytes + _ALIGN - 1) // _ALIGN * _ALIGN
        self.nbytes = offset
        self.fingerprint = zlib.crc32(repr((self.version, [(t.name, t.fields, t.capacity)
                                                          for t in self._tables])).encode())

    @property
    def tables(self) -> Tuple[TableSpec, ...]:
        return tuple(self._tables)

    def table(self, name: str) -> TableSpec:
        """The table called ``name`` (KeyError naming the known ones otherwise)."""
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no table {name!r} in this layout (tables: {', '.join(self._by_name)})") from None

    def field_word(self, table: str, field: str) -> int:
        """Word index of ``field`` inside a record of ``table`` (``seq`` is 0)."""
        t = self.table(table)
        for i, (fname, _kind) in enumerate(t.fields):
            if fname == field:
                return i + 1
        raise KeyError(f"table {table!r} has no field {field!r} (fields: {', '.join(f for f, _ in t.fields)})")

    def dtype(self, table: str) -> np.dtype:
        """The numpy structured dtype of one record of ``table``."""
        t = self.table(table)
        return np.dtype([("seq", "<u8")] + [(f, "<" + k) for f, k in t.fields])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StateLayout) and other.fingerprint == self.fingerprint

    def __hash__(self) -> int:
        return self.fingerprint

    def __repr__(self) -> str:
        tables = ", ".join(f"{t.name}[{t.capacity}]" for t in self._tables)
        return f"StateLayout(version={self.version}, tables=[{tables}], nbytes={self.nbytes})"


def _engine_layout(pools: int = 4096, accounts: int = 64, positions: int = 256,
                   breakers: int = 32, counters: int = 64) -> StateLayout:
    return StateLayout(1, {
        # Uniswap V2-style reserves (uint112 -> two words each) and where they came from
        "pools": ([("reserve0_lo", "u8"), ("reserve0_hi", "u8"), ("reserve1_lo", "u8"),
                   ("reserve1_hi", "u8"), ("block", "u8"), ("log_index", "u8")], pools),
        # next nonce per sending account of ours
        "nonces": ([("nonce", "u8"), ("pending", "u8")], accounts),
        # token positions: raw amount (int64 of the token's smallest unit) and cost basis
        "positions": ([("amount", "i8"), ("cost_eth", "f8")], positions),
        # circuit breakers: state 0 closed / 1 open / 2 half-open
        "breakers": ([("state", "u8"), ("failures", "u8"), ("successes", "u8"),
                      ("opened_ns", "u8")], breakers),
        # profit and loss, one record per strategy
        "pnl": ([("realized_eth", "f8"), ("fees_eth", "f8"), ("trades", "u8")], 16),
        # counters folded in from the workers' thread-local counters
        "counters": ([("value", "u8")], counters),
    })


#: The engine's layout, version 1: pools, nonces, positions, breakers, pnl, counters.
ENGINE_LAYOUT = _engine_layout()

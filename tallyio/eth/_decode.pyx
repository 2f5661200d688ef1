"""The calldata decoder: Uniswap V2/V3 router calls, SwapRouter02 multicalls and the
Universal Router's ``execute``, from raw bytes to normalized swaps.

Owns: ``tio_decode_call`` (the nogil entry other Cython modules cimport through
``_decode.pxd``; the C core is ``_decode_core.h`` beside this file) and its Python
face, :class:`Decoder` / :func:`decode_call`. Touches only the buffers it is given.

    >>> data = bytes.fromhex("7ff36ab5"
    ...     "0000000000000000000000000000000000000000000000000000000000000064"
    ...     "0000000000000000000000000000000000000000000000000000000000000080"
    ...     "000000000000000000000000cccccccccccccccccccccccccccccccccccccccc"
    ...     "000000000000000000000000000000000000000000000000000000006553f100"
    ...     "0000000000000000000000000000000000000000000000000000000000000002"
    ...     "000000000000000000000000aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    ...     "000000000000000000000000bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb")
    >>> call = decode_call(data)
    >>> call.function, call.args["amountOutMin"], call.args["path"][1][:6]
    ('swapExactETHForTokens', 100, '0xbbbb')
    >>> swap = call.swaps[0]
    >>> swap.kind, swap.amount, swap.amount_limit, swap.eth_in, swap.deadline
    ('exact_in', None, 100, True, 1700000000)
    >>> decode_call(b"\\xa9\\x05\\x9c\\xbb") is None    # an ERC-20 transfer: not ours
    True
"""
from time import perf_counter_ns

from libc.stdint cimport uint8_t, int8_t, int16_t, uint32_t, uint64_t
from libc.string cimport memset

from tallyio._ext.swap cimport (tio_swap, tio_decoded_call, tio_decode_stats, TIO_DECODE_OK,
                                TIO_DECODE_UNKNOWN, TIO_DECODE_N_STATUS, TIO_PROTOCOL_V2,
                                TIO_SWAP_EXACT_IN)
from tallyio._ext.u256 cimport tio_u256

from tallyio.errors import DecodeError
from tallyio.eth.calls import DecodedCall, Swap

_tuple_new = tuple.__new__

__all__ = ["Decoder", "decode_call", "decode_stats", "known_calls", "DECODE_STATUSES"]

cdef extern from "_decode_core.h" nogil:
    enum: TIO_ABI_MAX_ARGS
    enum: TIO_N_CALL_SPECS
    enum: TIO_T_UINT256
    enum: TIO_T_UINT24
    enum: TIO_T_UINT160
    enum: TIO_T_ADDRESS
    enum: TIO_T_BOOL
    enum: TIO_T_BYTES32
    enum: TIO_T_BYTES
    enum: TIO_T_ADDRESS_ARRAY
    enum: TIO_T_BYTES_ARRAY
    enum: TIO_NO_COMMAND
    enum: TIO_ROLE_V2_SWAP
    enum: TIO_ROLE_V3_SINGLE
    enum: TIO_ROLE_V3_PATH
    ctypedef struct tio_call_spec:
        uint32_t selector
        uint8_t command
        uint8_t role
        uint8_t nargs
        int8_t a_amount
        int8_t a_limit
        uint8_t types[8]
        const char *names[8]
        const char *name
        const char *signature
    # a static array in the header; declared as a pointer: Cython only emits its name
    const tio_call_spec *tio_call_specs
    ctypedef struct tio_abi_arg:
        size_t off
        size_t len
    ctypedef struct tio_call_record:
        int16_t spec
        int16_t parent
        uint8_t swap_first
        uint8_t swap_end
        uint32_t skipped
        tio_abi_arg args[8]
    ctypedef struct tio_decode_trace:
        uint32_t n_calls
        tio_call_record calls[32]
    int tio_decode_run(const uint8_t *data, size_t n, tio_decoded_call *out, tio_decode_stats *stats,
                       tio_decode_trace *trace)
    int tio_decode_selfcheck()
    const uint8_t *tio_bench_opaque(const uint8_t *p)


if tio_decode_selfcheck() != 0:  # the packed selector list drifted from the spec table: a build defect
    raise ImportError(f"tallyio.eth._decode: selector table entry {tio_decode_selfcheck() - 1} is inconsistent")


cdef int tio_decode_call(const uint8_t *data, size_t n, tio_decoded_call *out,
                         tio_decode_stats *stats) noexcept nogil:
    return tio_decode_run(data, n, out, stats, NULL)


#: status code -> name, as in ``Decoder.stats()`` and ``DecodeError.reason``
DECODE_STATUSES = ("ok", "unknown", "truncated", "bad_offset", "bad_length", "bad_value", "bad_path",
                   "path_too_long", "too_deep", "too_many_swaps", "too_many_calls", "commands_mismatch")
assert len(DECODE_STATUSES) == TIO_DECODE_N_STATUS

_EXPLAIN = {
    "truncated": "the input ends inside the argument head or before a length word",
    "bad_offset": "a dynamic argument's offset points into the head or past the end",
    "bad_length": "a bytes or array length runs past the end of the input",
    "bad_value": "an address, uintN, bool or bytes padding has stray non-zero bits",
    "bad_path": "the swap path is not a path (V2: under 2 tokens; V3: not 20 + 23k bytes)",
    "path_too_long": "the swap path has more than 8 tokens",
    "too_deep": "multicalls are nested more than 4 deep",
    "too_many_swaps": "the input holds more than 8 swaps",
    "too_many_calls": "the input holds more than 32 decodable calls",
    "commands_mismatch": "the Universal Router's commands and inputs differ in length",
}


cdef list _spec_table():
    table = []
    cdef const tio_call_spec *s
    for i in range(TIO_N_CALL_SPECS):
        s = &tio_call_specs[i]
        table.append((
            s.name.decode(), s.signature.decode(),
            None if s.command != TIO_NO_COMMAND else f"0x{s.selector:08x}",
            tuple(s.names[k].decode() for k in range(s.nargs)),
        ))
    return table


cdef list _SPECS = _spec_table()


def known_calls():
    """``[(selector, signature, function), ...]`` of every call the decoder knows, from
    its C table (Universal Router commands, which have no selector, are left out).

    >>> ("0x38ed1739", "swapExactTokensForTokens(uint256,uint256,address[],address,uint256)",
    ...  "swapExactTokensForTokens") in known_calls()
    True
    """
    return [(sel, sig, name) for name, sig, sel, _ in _SPECS if sel is not None]


cdef bytes _as_bytes(object data):
    if isinstance(data, bytes):
        return <bytes>data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, str):
        text = <str>data
        if not (text.startswith("0x") or text.startswith("0X")):
            raise ValueError(f"calldata as a str must be 0x-prefixed hex, got {text[:12]!r}...")
        try:
            return bytes.fromhex(text[2:])
        except ValueError as exc:
            raise ValueError(f"calldata is not valid hex: {exc}") from None
    raise TypeError(f"calldata must be bytes, bytearray, memoryview or a 0x hex str, "
                    f"not {type(data).__name__}")


cdef object _u256(const tio_u256 *v):
    return (<object>v.w[0]) | (<object>v.w[1] << 64) | (<object>v.w[2] << 128) | (<object>v.w[3] << 192)


cdef str _address(const uint8_t *p):
    return "0x" + (<const char *>p)[:20].hex()


cdef object _swap(const tio_swap *w, const tio_call_spec *spec):
    cdef int i
    # tuple.__new__ straight away: a NamedTuple's own __new__ is a Python-level function
    return _tuple_new(Swap, (
        "v2" if w.protocol == TIO_PROTOCOL_V2 else "v3",
        "exact_in" if w.kind == TIO_SWAP_EXACT_IN else "exact_out",
        _u256(&w.amount) if spec.a_amount >= 0 else None,
        _u256(&w.amount_limit) if spec.a_limit >= 0 else None,
        [_address(w.path[i]) for i in range(w.path_len)],
        [w.fees[i] for i in range(w.path_len - 1)],
        _address(w.recipient),
        w.deadline if w.deadline else None,
        w.flags,
        _u256(&w.sqrt_price_limit),
    ))


cdef object _arg(bytes raw, uint8_t kind, size_t off, size_t n):
    # every position here was validated by the C walk: slicing cannot go out of range
    if kind == TIO_T_UINT256 or kind == TIO_T_UINT24 or kind == TIO_T_UINT160:
        return int.from_bytes(raw[off:off + 32], "big")
    if kind == TIO_T_ADDRESS:
        return "0x" + raw[off + 12:off + 32].hex()
    if kind == TIO_T_BOOL:
        return raw[off + 31] == 1
    if kind == TIO_T_BYTES32:
        return raw[off:off + 32]
    if kind == TIO_T_BYTES:
        return raw[off:off + n]
    if kind == TIO_T_ADDRESS_ARRAY:
        return ["0x" + raw[off + 32 * k + 12:off + 32 * k + 32].hex() for k in range(n)]
    if kind == TIO_T_BYTES_ARRAY:
        items = []
        for k in range(n):
            at = off + int.from_bytes(raw[off + 32 * k:off + 32 * k + 32], "big")
            length = int.from_bytes(raw[at:at + 32], "big")
            items.append(raw[at + 32:at + 32 + length])
        return items
    raise AssertionError(f"unknown ABI type code {kind}")  # the C table names no other


cdef class Decoder:
    """A decoder with its own rejection counters (one per thread that decodes).

    ``decode(data)`` returns a :class:`~tallyio.eth.DecodedCall`, ``None`` for a call it
    does not decode, or raises :class:`~tallyio.errors.DecodeError` for a malformed call
    of a function it knows. ``stats()`` counts every outcome by reason.

    >>> d = Decoder()
    >>> d.decode(bytes.fromhex("38ed1739") + b"\\x00" * 40)
    Traceback (most recent call last):
    ...
    tallyio.errors.DecodeError: malformed swapExactTokensForTokens call: truncated (the input ends inside
    the argument head or before a length word)
    >>> d.decode(b"") is None, d.stats()["truncated"], d.stats()["unknown"]
    (True, 1, 1)
    """

    cdef tio_decode_stats _stats
    cdef tio_decoded_call _out
    cdef tio_decode_trace _trace

    def __cinit__(self):
        memset(&self._stats, 0, sizeof(self._stats))
        memset(&self._out, 0, sizeof(self._out))
        self._trace.n_calls = 0

    def decode(self, data):
        """Decode one transaction input (bytes, bytearray, memoryview, or ``0x`` hex str)."""
        cdef bytes raw = _as_bytes(data)
        cdef const uint8_t *p = <const uint8_t *><const char *>raw
        cdef int status = tio_decode_run(p, len(raw), &self._out, &self._stats, &self._trace)
        if status == TIO_DECODE_UNKNOWN:
            return None
        if status != TIO_DECODE_OK:
            reason = DECODE_STATUSES[status]
            function = next((name for name, _, sel, _ in _SPECS if sel == "0x" + raw[:4].hex()), "?")
            raise DecodeError(f"malformed {function} call: {reason} ({_EXPLAIN[reason]})", reason, function)
        return self._build(raw)

    cdef object _build(self, bytes raw):
        cdef uint32_t n = self._trace.n_calls
        cdef const tio_call_record *rec
        cdef const tio_call_spec *spec
        cdef int r, i
        cdef uint32_t leaf
        swaps = [None] * self._out.n_swaps
        for leaf in range(n):
            r = <int>leaf
            rec = &self._trace.calls[r]
            spec = &tio_call_specs[rec.spec]
            if spec.role == TIO_ROLE_V2_SWAP or spec.role == TIO_ROLE_V3_SINGLE or spec.role == TIO_ROLE_V3_PATH:
                # a leaf swap call: exactly one swap, described by its own spec
                swaps[rec.swap_first] = _swap(&self._out.swaps[rec.swap_first], spec)
        children = [[] for _ in range(n)]
        top = None
        for r in range(<int>n - 1, -1, -1):
            rec = &self._trace.calls[r]
            spec = &tio_call_specs[rec.spec]
            name, signature, selector, names = _SPECS[rec.spec]
            args = {names[i]: _arg(raw, spec.types[i], rec.args[i].off, rec.args[i].len)
                    for i in range(spec.nargs)}
            children[r].reverse()
            call = _tuple_new(DecodedCall, (name, signature, selector, args, tuple(children[r]),
                                            tuple(swaps[rec.swap_first:rec.swap_end]), rec.skipped))
            if rec.parent >= 0:
                children[rec.parent].append(call)
            else:
                top = call
        return top

    def stats(self):
        """Outcomes so far: ``{status name: count}`` for every name in ``DECODE_STATUSES``,
        plus ``inner_unknown`` (multicall elements not decoded) and ``commands_skipped``
        (Universal Router commands other than V2/V3 swaps)."""
        counts = {DECODE_STATUSES[i]: self._stats.by_status[i] for i in range(TIO_DECODE_N_STATUS)}
        counts["inner_unknown"] = self._stats.inner_unknown
        counts["commands_skipped"] = self._stats.commands_skipped
        return counts

    def reset_stats(self):
        """Zero every counter."""
        memset(&self._stats, 0, sizeof(self._stats))


cdef Decoder _default = Decoder()


def decode_call(data):
    """Decode a transaction input with the module's shared :class:`Decoder` (see there):
    a :class:`~tallyio.eth.DecodedCall`, ``None`` for calls it does not decode, or
    :class:`~tallyio.errors.DecodeError` for malformed calls of known functions."""
    return _default.decode(data)


def decode_stats():
    """The counters of the decoder behind :func:`decode_call` (see ``Decoder.stats``)."""
    return _default.stats()


def _bench_c_decode(data, Py_ssize_t iterations):
    """``(ns per call, status, checksum)`` of ``tio_decode_call`` on ``data``, timed around a
    nogil loop of ``iterations`` calls; the checksum folds every result in so the loop
    cannot be optimized away."""
    cdef bytes raw = _as_bytes(data)
    cdef const uint8_t *p = <const uint8_t *><const char *>raw
    cdef size_t n = len(raw)
    cdef tio_decoded_call out
    cdef tio_decode_stats stats
    cdef uint64_t checksum = 0
    cdef int status = 0
    cdef Py_ssize_t _i
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    memset(&out, 0, sizeof(out))
    memset(&stats, 0, sizeof(stats))
    start = perf_counter_ns()
    with nogil:
        for _i in range(iterations):
            status = tio_decode_call(tio_bench_opaque(p), n, &out, &stats)
            checksum += <uint64_t>status + out.n_swaps + out.swaps[0].amount.w[0] + out.swaps[0].path[0][19]
    elapsed = perf_counter_ns() - start
    return elapsed / iterations, status, checksum

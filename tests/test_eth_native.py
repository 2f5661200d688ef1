"""The decoder as other Cython modules use it: ``tio_decode_call`` cimported from
``tallyio.eth._decode`` in a user's extension, called in nogil loops, on several
threads at once (it keeps no shared state: each caller owns its output and counters)."""
import json

import pytest

from conftest import build_user_extension, run_threads
from realparts import mainnet_dir
from tallyio.eth import Decoder, decode_call, keccak256
from tallyio.eth._decode import _bench_c_decode

USER_MODULE = r'''
from libc.stdint cimport uint8_t
from libc.string cimport memset
from tallyio.eth._decode cimport tio_decode_call
from tallyio._ext.swap cimport tio_decoded_call, tio_decode_stats, TIO_DECODE_OK, TIO_DECODE_N_STATUS
from tallyio.eth._keccak cimport tio_keccak256

def keccak(bytes data):
    cdef uint8_t digest[32]
    cdef const uint8_t *p = <const uint8_t *><const char *>data
    cdef size_t n = len(data)
    with nogil:
        tio_keccak256(p, n, digest)
    return (<char *>digest)[:32]

def decode_all(list inputs):
    """status of each input, swaps of each, and the counters, decoded in one nogil loop"""
    cdef tio_decoded_call out
    cdef tio_decode_stats stats
    memset(&stats, 0, sizeof(stats))
    statuses, swaps = [], []
    for data in inputs:
        p = <bytes>data
        status = tio_decode_call(<const uint8_t *><const char *>p, len(p), &out, &stats)
        statuses.append(status)
        swaps.append([(out.swaps[k].path_len, out.swaps[k].amount.w[0], out.swaps[k].deadline)
                      for k in range(out.n_swaps)])
    return statuses, swaps, [stats.by_status[k] for k in range(TIO_DECODE_N_STATUS)]
'''


@pytest.mark.timeout(600)
def test_user_extension_cimports_tio_decode_call(tmp_path, monkeypatch):
    module = build_user_extension(tmp_path, "eth_decode_user", USER_MODULE, monkeypatch)
    rows = json.loads((mainnet_dir() / "router_calls.json").read_text())
    inputs = [bytes.fromhex(r["input"][2:]) for r in rows]
    assert module.keccak(b"abc") == keccak256(b"abc")
    statuses, swaps, counts = module.decode_all(inputs)
    assert counts[0] == statuses.count(0) and counts[1] == statuses.count(1) and sum(counts) == len(inputs)
    for data, status, found in zip(inputs, statuses, swaps):
        call = decode_call(data)
        assert status == (1 if call is None else 0)
        if call is not None:
            assert found == [(len(s.path), (s.amount or 0) & (2**64 - 1), s.deadline or 0) for s in call.swaps]


def _real_v2_swap() -> bytes:
    rows = json.loads((mainnet_dir() / "router_calls.json").read_text())
    row = next(r for r in rows if r["function"] == "swapExactTokensForTokens" and "decoded_input" in r)
    return bytes.fromhex(row["input"][2:])


@pytest.mark.concurrency
def test_decoding_on_several_threads_at_once_gives_each_the_same_result():
    data = _real_v2_swap()
    swap = decode_call(data).swaps[0]
    per_call = 0 + 1 + (swap.amount & (2**64 - 1)) + bytes.fromhex(swap.path[0][2:])[19]
    iterations = 200_000
    results = run_threads(*[(_bench_c_decode, (data, iterations)) for _ in range(4)])
    for _, status, checksum in results:
        assert status == 0
        assert checksum == (per_call * iterations) % 2**64


@pytest.mark.concurrency
def test_decoders_on_threads_keep_their_own_counters():
    inputs = [_real_v2_swap(), b"\xa9\x05\x9c\xbb" + bytes(64), bytes.fromhex("38ed1739") + bytes(10)]

    def work(decoder, rounds):
        for _ in range(rounds):
            for data in inputs:
                try:
                    decoder.decode(data)
                except ValueError:
                    pass
        return decoder.stats()

    decoders = [Decoder() for _ in range(3)]
    results = run_threads(*[(work, (d, 2000)) for d in decoders])
    for stats in results:
        assert (stats["ok"], stats["unknown"], stats["truncated"]) == (2000, 2000, 2000)


def test_bench_helper_refuses_zero_iterations():
    with pytest.raises(ValueError, match="iterations"):
        _bench_c_decode(b"", 0)

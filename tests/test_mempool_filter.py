"""The filter: known targets, duplicates, floors, nonce gaps, each drop counted; real
mainnet blocks (router calls pass, the rest drop); hypothesis against Python models."""
import collections
import json

import pytest
from hypothesis import given, settings, strategies as st

from realparts import mainnet_dir
from tallyio.errors import ConfigError
from tallyio.eth.types import PendingTx
from tallyio.mempool._filter import TxFilter
from tallyio.mempool.config import FilterConfig

ROUTER = b"\x7a" * 20
POOL = b"\x55" * 20


def make_tx(n, to=ROUTER, sender=b"\x01" * 20, nonce=0, value=0, fee=10**9):
    return PendingTx(hash=n.to_bytes(32, "big"), sender=sender, to=to, nonce=nonce, value=value,
                     gas=100_000, max_fee_per_gas=fee, max_priority_fee_per_gas=1, input=b"",
                     tx_type=2, received_ns=0)


def hexbytes(s):
    return bytes.fromhex(s[2:] if s.startswith("0x") else s)


def test_mainnet_router_calls_pass_and_the_rest_drop():
    rows = json.loads((mainnet_dir() / "block_txs.json").read_text())
    routers = {r["to"] for r in rows if r.get("router")}
    v3 = {r["to"] for r in rows if r.get("router") and "V3" in r["router"]}
    f = TxFilter(FilterConfig(check_nonces=False),  # the data carries no nonces
                 routers_v2=[hexbytes(a) for a in routers - v3], routers_v3=[hexbytes(a) for a in v3])
    verdicts = collections.Counter()
    for r in rows:
        value = int(r["value"], 16) if isinstance(r["value"], str) else int(r["value"])
        tx = PendingTx(hash=hexbytes(r["transaction_hash"]), sender=hexbytes(r["from"]),
                       to=hexbytes(r["to"]) if r["to"] else None, nonce=0, value=value, gas=0,
                       max_fee_per_gas=int(r["effective_gas_price"]), max_priority_fee_per_gas=0,
                       input=hexbytes(r["input"]), tx_type=2, received_ns=0)
        verdict = f.check(tx)
        assert verdict == ("pass" if r.get("router") else "not_target"), r["transaction_hash"]
        verdicts[verdict] += 1
    assert verdicts["pass"] == sum(1 for r in rows if r.get("router")) > 200
    s = f.stats()
    assert s["passed"] == verdicts["pass"] and s["not_target"] == verdicts["not_target"]
    assert s["seen"] == len(rows)


def test_each_reason_is_counted():
    f = TxFilter(FilterConfig(min_value_wei=5, min_gas_price_wei=100), routers_v2=[ROUTER],
                 pools_v2=[(POOL, 7)])
    assert f.target(POOL) == ("pool_v2", 7) and f.target(b"\x00" * 20) is None
    assert f.check(make_tx(1, to=None)) == "not_target"
    assert f.check(make_tx(2, to=b"\x00" * 20)) == "not_target"
    assert f.check(make_tx(3, value=4, fee=100)) == "value_floor"
    assert f.check(make_tx(3, value=5, fee=100)) == "duplicate"
    assert f.check(make_tx(4, value=5, fee=99)) == "gas_price_floor"
    assert f.check(make_tx(5, to=POOL, value=5, fee=100, nonce=3)) == "pass"
    assert f.check(make_tx(6, value=5, fee=100, nonce=5)) == "nonce_gap"
    assert f.check(make_tx(7, value=5, fee=100, nonce=4)) == "pass"
    assert f.check(make_tx(8, value=5, fee=100, nonce=2)) == "pass"   # a replacement
    assert f.stats() == {"passed": 3, "not_target": 2, "duplicate": 1, "value_floor": 1,
                         "gas_price_floor": 1, "nonce_gap": 1, "seen": 9}


def test_bad_input_is_named():
    with pytest.raises(ConfigError, match="min_gas_price_wei"):
        FilterConfig(min_gas_price_wei=-1)
    with pytest.raises(TypeError, match="config"):
        TxFilter({"min_value_wei": 1})
    with pytest.raises(ValueError, match="TxFilter target address"):
        TxFilter(routers_v2=[b"\x01" * 19])
    f = TxFilter(routers_v2=[ROUTER])
    with pytest.raises(ValueError, match="PendingTx.hash"):
        f.check(make_tx(1)._replace(hash=b"\x01"))


@settings(max_examples=60, deadline=None)
@given(window=st.integers(1, 64), hashes=st.lists(st.integers(0, 40), max_size=300))
def test_duplicates_match_a_bounded_fifo_model(window, hashes):
    f = TxFilter(FilterConfig(recent_hashes=window, check_nonces=False), routers_v2=[ROUTER])
    recent = collections.deque(maxlen=window)
    for h in hashes:
        expected = "duplicate" if h in recent else "pass"
        if h not in recent:
            recent.append(h)
        assert f.check(make_tx(h)) == expected


@settings(max_examples=60, deadline=None)
@given(nonces=st.lists(st.integers(0, 12), min_size=1, max_size=60))
def test_nonce_gaps_match_a_model(nonces):
    f = TxFilter(routers_v2=[ROUTER])
    next_nonce = None
    for i, n in enumerate(nonces):
        gap = next_nonce is not None and n > next_nonce
        assert f.check(make_tx(i, nonce=n)) == ("nonce_gap" if gap else "pass")
        if not gap:
            next_nonce = n + 1 if next_nonce is None else max(next_nonce, n + 1)


@pytest.mark.parametrize("numbering", ["big-endian", "little-endian", "keccak-like"])
def test_the_recent_hash_index_spreads_structured_hashes(numbering):
    # hashes numbered big-endian (as tests and the open-loop bench make them) differ only in
    # their last bytes; a multiply-shift put 30,000 of them in ONE slot, so every lookup
    # probed the whole set.  With the index at load <= 1/2, a good spread leaves at least
    # ~3/4 of n keys in distinct start slots; require 0.6.
    import hashlib

    n = 20_000
    f = TxFilter(FilterConfig(recent_hashes=n, check_nonces=False), routers_v2=[ROUTER])
    make = {"big-endian": lambda i: i.to_bytes(32, "big"),
            "little-endian": lambda i: i.to_bytes(32, "little"),
            "keccak-like": lambda i: hashlib.sha3_256(i.to_bytes(8, "big")).digest()}[numbering]
    slots = {f._recent_slot(make(i + 1)) for i in range(n)}
    assert len(slots) >= 0.6 * n
    # and the set still answers exactly over that many keys
    assert all(f.check(make_tx(0)._replace(hash=make(i + 1))) == "pass" for i in range(n))
    assert f.check(make_tx(0)._replace(hash=make(n))) == "duplicate"
    with pytest.raises(ValueError, match="32 bytes"):
        f._recent_slot(b"\x01")

"""Signing's compiled path (tallyio.engine._sign.sign_type2: keccak, libsecp256k1 called
from C through coincurve's own function addresses, the signature appended to the RLP)
and its cffi fallback: both byte-identical to eth-account over many random
transactions; bad input is refused with a message that never carries the key."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tallyio.engine import keys
from tallyio.engine._sign import SecpFunctions, sign_type2
from tallyio.engine.keys import Signer
from tallyio.errors import SignerError
from tallyio.mempool._wsenc import keccak256, rlp_encode

eth_account = pytest.importorskip("eth_account")
Account = eth_account.Account
KEY = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"   # a throwaway test key
PATHS = ["native", "cffi"]


@pytest.fixture(params=PATHS)
def path(request, monkeypatch):
    if request.param == "cffi":
        # the cffi path runs only with a coincurve build whose functions cannot be taken as C
        # addresses, which cannot be produced here: the resolved handle is replaced by "unavailable"
        monkeypatch.setattr(keys, "_SIGN", False)
    else:
        assert keys._native_signing()
    return request.param


def expected(fields):
    fields = dict(fields)
    if isinstance(fields.get("to"), bytes):
        from eth_utils import to_checksum_address
        fields["to"] = to_checksum_address("0x" + fields["to"].hex())
    signed = Account.sign_transaction(fields, KEY)
    return bytes(signed.raw_transaction), bytes(signed.hash)


addresses = st.binary(min_size=20, max_size=20)
transactions = st.fixed_dictionaries({
    "chainId": st.integers(1, 2**64 - 1), "nonce": st.integers(0, 2**64 - 2),
    "maxFeePerGas": st.integers(0, 2**256 - 1), "gas": st.integers(0, 2**63), "value": st.integers(0, 2**256 - 1),
    "data": st.one_of(st.binary(max_size=64), st.binary(min_size=1900, max_size=2300)),   # both sides of 2 KiB
}, optional={"to": addresses, "accessList": st.lists(st.fixed_dictionaries({
    "address": addresses.map(lambda a: "0x" + a.hex()),
    "storageKeys": st.lists(st.binary(min_size=32, max_size=32).map(lambda k: "0x" + k.hex()), max_size=3)}),
    max_size=2)})


@settings(max_examples=200, deadline=None)
@given(fields=transactions, share=st.integers(0, 1000))
def test_both_paths_sign_byte_identically_to_eth_account(fields, share):
    fields = dict(fields, type=2, maxPriorityFeePerGas=fields["maxFeePerGas"] * share // 1000)
    want = expected(fields)
    with Signer.from_hex(KEY) as s:
        assert s.sign_transaction(fields) == want
        keys_state = keys._SIGN
        keys._SIGN = False          # the cffi fallback on the same transaction (see the `path` fixture)
        try:
            assert s.sign_transaction(fields) == want
        finally:
            keys._SIGN = keys_state


def test_each_path_signs_and_a_closed_signer_refuses(path):
    fields = {"type": 2, "chainId": 1, "nonce": 0, "maxFeePerGas": 2 * 10**9, "maxPriorityFeePerGas": 10**9,
              "gas": 21_000, "to": b"\x22" * 20, "value": 1}
    s = Signer.from_hex(KEY)
    assert s.sign_transaction(fields) == expected(fields)
    s.close()
    with pytest.raises(SignerError, match="closed") as info:
        s.sign_transaction(fields)
    assert KEY not in str(info.value)


def test_sign_type2_refuses_what_is_not_one_rlp_list_and_a_bad_key():
    secp = keys._native_signing()
    unsigned = rlp_encode([1, 0, 1, 2, 21_000, b"\x22" * 20, 0, b"", []])
    key = bytearray.fromhex(KEY)
    raw, tx_hash = sign_type2(secp, key, unsigned)
    assert raw[0] == 2 and tx_hash == keccak256(raw)
    for bad in (b"", b"\x05", unsigned + b"\x00", unsigned[:-1], b"\xf9\xff\xff", b"\xf9", b"\xff" * 9):
        with pytest.raises(ValueError, match="RLP list"):
            sign_type2(secp, key, bad)
    with pytest.raises(ValueError, match="32 bytes") as info:
        sign_type2(secp, key + b"\x00", unsigned)
    assert KEY not in str(info.value)
    with pytest.raises(RuntimeError, match="could not sign"):
        sign_type2(secp, bytearray(32), unsigned)      # a zeroed key: libsecp256k1 refuses it
    with pytest.raises(TypeError):
        sign_type2(secp, bytes(key), unsigned)         # only the signer's own bytearray is read
    with pytest.raises(TypeError, match="cffi"):
        SecpFunctions(object(), object(), object())


def test_the_dict_fast_path_encodes_as_the_python_path_and_leaves_the_rest_to_it():
    from tallyio.engine._sign import sign_type2_dict
    from tallyio.engine.keys import _unsigned_fields

    secp = keys._native_signing()
    key = bytearray.fromhex(KEY)
    base = {"type": 2, "chainId": 1, "nonce": 7, "maxFeePerGas": 3 * 10**9, "maxPriorityFeePerGas": 10**9,
            "gas": 90_000, "to": "0x" + "ab" * 20, "value": 10**18, "data": b"\x01" * 100}
    taken = [base, dict(base, to=b"\xab" * 20), dict(base, to=None), {k: v for k, v in base.items() if k != "type"},
             dict(base, type="0x2", accessList=[]), dict(base, value=2**256 - 1, maxFeePerGas=2**256 - 1),
             dict(base, data=b"", nonce=0, chainId=2**64 - 1), dict(base, data=b"\x05")]
    for tx in taken:
        assert sign_type2_dict(secp, key, tx) == sign_type2(secp, key, rlp_encode(_unsigned_fields(tx))), tx
    assert sign_type2_dict(secp, key, base) == expected(dict(base, to=b"\xab" * 20))
    left = [dict(base, nonce=2**64), dict(base, nonce=True), dict(base, nonce="0x7"), dict(base, value=-1),
            dict(base, type=None), dict(base, type=1), dict(base, extra=1), dict(base, to="0x12"),
            dict(base, to="0x" + "zz" * 20), dict(base, data="0x01"), dict(base, maxPriorityFeePerGas=4 * 10**9),
            dict(base, accessList=[{"address": "0x" + "11" * 20, "storageKeys": []}]),
            dict(base, data=bytes(3000)), {k: v for k, v in base.items() if k != "gas"}, list(base.items())]
    for tx in left:
        assert sign_type2_dict(secp, key, tx) is None, tx


def test_the_signing_keccak_equals_the_projects_on_every_length_around_the_block_edges():
    import random

    from tallyio.engine._sign import keccak256 as signing_keccak
    from tallyio.eth._keccak import keccak256 as project_keccak

    rng = random.Random(14)
    for n in list(range(0, 420)) + [543, 1000, 2047, 2048, 2049, 5000]:
        data = bytes(rng.getrandbits(8) for _ in range(n))
        assert signing_keccak(data) == project_keccak(data), n

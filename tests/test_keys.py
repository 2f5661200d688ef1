"""Signer (tallyio.engine.keys): signatures byte-for-byte equal to eth-account's,
the key never shown (repr, str, format, vars, pickle, copy, exceptions, logs),
zeroed on close and collection, loaded from the environment or a keystore with
clear errors that quote neither key nor password.  Also the parts of the node
executor and BackrunStrategy that need no node (their anvil proof is in
test_backrun_anvil.py)."""
import asyncio
import copy
import gc
import json
import logging
import pickle
import socket
import traceback

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tallyio.engine.keys import Signer
from tallyio.errors import ConfigError, KeystoreError, SignerError

eth_account = pytest.importorskip("eth_account")
Account = eth_account.Account

KEY = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"   # a throwaway test key
PASSWORD = "correct horse battery staple"


def tx(**overrides):
    base = {"type": 2, "chainId": 31337, "nonce": 3, "maxFeePerGas": 30 * 10**9, "maxPriorityFeePerGas": 2 * 10**9,
            "gas": 250_000, "to": "0xABaBaBaBABabABabAbAbABAbABabababaBaBABaB", "value": 0,
            "data": b"\x38\xed\x17\x39" + bytes(160)}
    base.update(overrides)
    return base


def key_forms():
    return [KEY, KEY.upper(), KEY[:20], KEY[-20:], bytes.fromhex(KEY).decode("latin-1")]


def assert_clean(text):
    for form in key_forms():
        assert form not in text, "the key leaked"


def library_frames_text(exc):
    """repr of the locals of every tallyio frame in ``exc``'s traceback and its
    cause/context chain: what an error reporter capturing locals would store."""
    out = []
    while exc is not None:
        tb = exc.__traceback__
        while tb is not None:
            if "/tallyio/" in tb.tb_frame.f_code.co_filename:
                out.append(repr(tb.tb_frame.f_locals))
            tb = tb.tb_next
        exc = exc.__cause__ or exc.__context__
    return "\n".join(out)


@pytest.fixture
def signer():
    s = Signer.from_hex(KEY)
    yield s
    s.close()


def test_address_and_signature_equal_eth_account(signer):
    assert signer.address == bytes.fromhex(Account.from_key(KEY).address[2:])
    raw, tx_hash = signer.sign_transaction(tx())
    expected = Account.sign_transaction(tx(), KEY)
    assert raw == bytes(expected.raw_transaction) and tx_hash == bytes(expected.hash)
    assert Account.recover_transaction(raw).lower() == "0x" + signer.address.hex()


addresses = st.binary(min_size=20, max_size=20)


@settings(max_examples=150, deadline=None)
@given(chain_id=st.integers(1, 2**64 - 1), nonce=st.integers(0, 2**64 - 2), max_fee=st.integers(0, 2**256 - 1),
       priority_share=st.integers(0, 1000), gas=st.integers(0, 2**63), to=st.none() | addresses,
       value=st.integers(0, 2**256 - 1), data=st.binary(max_size=300),
       access=st.lists(st.tuples(addresses, st.lists(st.binary(min_size=32, max_size=32), max_size=3)), max_size=2))
def test_every_transaction_signs_exactly_as_eth_account(chain_id, nonce, max_fee, priority_share, gas, to, value,
                                                        data, access):
    fields = {"type": 2, "chainId": chain_id, "nonce": nonce, "maxFeePerGas": max_fee,
              "maxPriorityFeePerGas": max_fee * priority_share // 1000, "gas": gas, "value": value, "data": data,
              "accessList": [{"address": "0x" + a.hex(), "storageKeys": ["0x" + k.hex() for k in keys]}
                             for a, keys in access]}
    if to is not None:
        fields["to"] = "0x" + to.hex()
    with Signer.from_hex(KEY) as s:
        raw, tx_hash = s.sign_transaction(fields)
    if to is not None:   # eth-account wants a checksummed address
        from eth_utils import to_checksum_address
        fields["to"] = to_checksum_address(fields["to"])
    expected = Account.sign_transaction(fields, KEY)
    assert raw == bytes(expected.raw_transaction) and tx_hash == bytes(expected.hash)


def test_repr_str_format_vars_show_only_the_address(signer):
    address = "0x" + signer.address.hex()
    for text in (repr(signer), str(signer), f"{signer}", f"{signer!r}", f"{signer:>60}", "%s" % signer,
                 repr([signer]), repr({"s": signer})):
        assert address in text
        assert_clean(text)
    with pytest.raises(TypeError):
        vars(signer)          # no __dict__ to dump
    assert_clean(repr([getattr(signer, name, None) for name in dir(signer) if not name.startswith("_")]))


def test_pickling_and_copying_are_refused(signer):
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        with pytest.raises(TypeError, match="cannot be pickled"):
            pickle.dumps(signer, protocol)
    with pytest.raises(TypeError):
        copy.copy(signer)
    with pytest.raises(TypeError):
        copy.deepcopy(signer)


@pytest.mark.parametrize("fields, names", [
    (tx(nonce=None), "nonce"),
    (tx(gas="lots"), "gas"),
    (tx(value=-1), "value"),
    (tx(chainId=2**64), "chainId"),
    (tx(maxPriorityFeePerGas=31 * 10**9), "maxPriorityFeePerGas"),
    (tx(to="0x1234"), "to"),
    (tx(to=12), "to"),
    (tx(data="0xzz"), "data"),
    (tx(type=1), "type"),
    (tx(gasPrice=1), "gasPrice"),
    (tx(accessList=[{"address": "0x00"}]), "accessList"),
    ("not a dict", "dict"),
])
def test_bad_transactions_raise_a_clear_error_without_the_key(signer, fields, names):
    with pytest.raises(SignerError, match=names) as info:
        signer.sign_transaction(fields)
    assert isinstance(info.value, ValueError)
    assert_clean("".join(traceback.format_exception(info.value)))
    assert_clean(library_frames_text(info.value))


def test_close_zeroes_the_key_and_signing_stops(signer):
    held = signer._key       # the bytearray itself (reachable, as any attribute is: see keys.py)
    assert any(held)
    signer.close()
    assert held == bytearray(32) and signer.closed
    with pytest.raises(SignerError, match="closed") as info:
        signer.sign_transaction(tx())
    assert_clean(str(info.value))
    signer.close()           # idempotent


def test_collection_zeroes_the_key():
    s = Signer.from_hex("0x" + KEY)
    held = s._key
    del s
    gc.collect()
    assert held == bytearray(32)


def test_context_manager_closes():
    with Signer.from_hex(bytes.fromhex(KEY)) as s:
        s.sign_transaction(tx())
    assert s.closed


def test_the_constructor_takes_only_a_bytearray_it_owns():
    with pytest.raises(TypeError):
        Signer(bytes.fromhex(KEY))
    for bad in (bytearray(32), bytearray(b"\xff" * 32), bytearray(31)):
        with pytest.raises(SignerError, match="32 bytes"):
            Signer(bad)


def test_from_env(monkeypatch):
    monkeypatch.delenv("TALLYIO_PRIVATE_KEY", raising=False)
    with pytest.raises(ConfigError, match="TALLYIO_PRIVATE_KEY is not set"):
        Signer.from_env()
    for value in ("0x" + KEY, KEY, " " + KEY.upper() + "\n"):
        monkeypatch.setenv("TALLYIO_PRIVATE_KEY", value)
        with Signer.from_env() as s:
            assert s.address == bytes.fromhex(Account.from_key(KEY).address[2:])
    for bad in (KEY[:-2], KEY[:-1] + "g", "00" * 32, "ff" * 32, KEY + "00"):
        monkeypatch.setenv("MY_KEY", bad)
        with pytest.raises(ConfigError, match="MY_KEY") as info:
            Signer.from_env("MY_KEY")
        assert bad not in str(info.value) and bad[:20] not in str(info.value)
        assert info.value.__context__ is None and info.value.__cause__ is None
        assert bad[:20] not in library_frames_text(info.value)
        assert_clean("".join(traceback.format_exception(info.value)))
    with pytest.raises(SignerError) as info:
        Signer.from_hex(KEY[:-1] + "g")
    assert KEY[:20] not in library_frames_text(info.value)


@pytest.fixture
def keystore(tmp_path):
    path = tmp_path / "key.json"
    # pbkdf2 with few iterations keeps the test quick; geth's scrypt files decrypt the same way
    path.write_text(json.dumps(Account.encrypt(KEY, PASSWORD, kdf="pbkdf2", iterations=1000)))
    return path


def test_from_keystore(keystore):
    with Signer.from_keystore(keystore, PASSWORD) as s:
        assert s.address == bytes.fromhex(Account.from_key(KEY).address[2:])
    with Signer.from_keystore(str(keystore), PASSWORD.encode()) as s:
        assert s.sign_transaction(tx())[0] == bytes(Account.sign_transaction(tx(), KEY).raw_transaction)


def test_a_wrong_password_is_a_clear_error_quoting_neither_key_nor_password(keystore):
    wrong = PASSWORD + "r"
    with pytest.raises(KeystoreError, match="wrong password") as info:
        Signer.from_keystore(keystore, wrong)
    assert info.value.__context__ is None and info.value.__cause__ is None
    frames = library_frames_text(info.value)
    assert wrong not in frames and PASSWORD not in frames
    assert_clean(frames)
    text = "".join(traceback.format_exception(info.value))
    assert str(keystore) in text and wrong not in text and PASSWORD not in text
    assert_clean(text)


def test_keystore_file_errors_name_the_file(tmp_path):
    with pytest.raises(KeystoreError, match="cannot be read"):
        Signer.from_keystore(tmp_path / "missing.json", PASSWORD)
    junk = tmp_path / "junk.json"
    junk.write_text("{not json")
    with pytest.raises(KeystoreError, match="not JSON"):
        Signer.from_keystore(junk, PASSWORD)
    old = tmp_path / "v1.json"
    old.write_text(json.dumps({"version": 1, "crypto": {}}))
    with pytest.raises(KeystoreError, match="not a version 3"):
        Signer.from_keystore(old, PASSWORD)


def test_signing_logs_nothing(signer, caplog):
    caplog.set_level(logging.DEBUG)
    signer.sign_transaction(tx())
    Signer.from_hex(KEY).close()
    assert_clean(caplog.text)


# ---- the executor and the strategy without a node ----------------------------------

def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def swap(router=b"\x77" * 20):
    from tallyio.engine.records import SwapAction

    return SwapAction(router=router, path=(b"\x0a" * 20, b"\x0b" * 20), amount_in=10, min_amount_out=0)


def test_executor_arguments_are_checked(signer):
    from tallyio.engine.node_executor import NodeExecutor

    with pytest.raises(ValueError, match="http"):
        NodeExecutor("ws://127.0.0.1:1", signer)
    with pytest.raises(TypeError, match="Signer"):
        NodeExecutor("http://127.0.0.1:1", KEY)
    for name, value in (("gas_limit", 20_999), ("priority_fee_bump", -1), ("chain_id", 0)):
        with pytest.raises(ValueError, match=name):
            NodeExecutor("http://127.0.0.1:1", signer, **{name: value})


def test_executor_rejects_nothing_and_fails_cleanly_without_a_node(signer, caplog):
    from tallyio.engine.node_executor import NodeExecutor
    from tallyio.engine.records import ExecutionResult, ExecutionStatus
    from tallyio.engine.strategy import StrategyContext

    caplog.set_level(logging.DEBUG)
    with NodeExecutor(f"http://127.0.0.1:{closed_port()}", signer, rpc_timeout=2.0) as ex:
        assert_clean(repr(ex))
        empty = asyncio.run(ex.execute([], StrategyContext()))
        assert empty.status is ExecutionStatus.REJECTED and "no actions" in empty.error
        down = asyncio.run(ex.execute([swap()], StrategyContext()))
        assert down.status is ExecutionStatus.FAILED and "unreachable" in down.error and not down.tx_hashes
        assert_clean(down.error)
        pending = ExecutionResult(ExecutionStatus.FAILED, error="x")
        assert asyncio.run(ex.follow(pending, 1.0)) is pending
        assert ex.stats()["failed"] == 1 and ex.stats()["rejected"] == 1 and ex.stats()["sent"] == 0
    assert_clean(caplog.text)
    with pytest.raises(RuntimeError, match="closed"):
        asyncio.run(ex.execute([swap()], StrategyContext()))


def test_swap_calldata_equals_eth_abi():
    from eth_abi import encode

    from tallyio.engine.node_executor import encode_swap_exact_tokens

    path = [b"\x0a" * 20, b"\x0b" * 20, b"\x0c" * 20, b"\x0a" * 20]
    data = encode_swap_exact_tokens(10**18, 10**18 + 1, path, b"\x01" * 20, 2**40)
    expected = encode(["uint256", "uint256", "address[]", "address", "uint256"],
                      [10**18, 10**18 + 1, ["0x" + p.hex() for p in path], "0x" + "01" * 20, 2**40])
    assert data == bytes.fromhex("38ed1739") + expected
    with pytest.raises(ValueError, match="min_amount_out"):
        encode_swap_exact_tokens(1, -1, path, b"\x01" * 20, 1)
    with pytest.raises(ValueError, match="2 tokens"):
        encode_swap_exact_tokens(1, 1, path[:1], b"\x01" * 20, 1)


def opportunity(kind=None, pools=(b"\x01" * 20, b"\x02" * 20, b"\x03" * 20), profit=10**15):
    from tallyio.mempool.records import Opportunity, OpportunityKind

    W, T, U = b"\x0a" * 20, b"\x0b" * 20, b"\x0c" * 20
    return Opportunity(kind or OpportunityKind.BACKRUN, b"\x99" * 32, tuple(pools), (W, T, U, W), 10**18, profit,
                       330_000, 10**9, None, 5, 0, 0)


def test_backrun_strategy_declines_what_one_router_cannot_do():
    from tallyio.engine.backrun import BackrunStrategy
    from tallyio.engine.strategy import StrategyContext
    from tallyio.mempool import PoolTable, V2Pool
    from tallyio.mempool.records import OpportunityKind

    W, T, U = b"\x0a" * 20, b"\x0b" * 20, b"\x0c" * 20
    table = PoolTable([V2Pool(b"\x01" * 20, W, T, 10**21, 10**21, 30, 0),
                       V2Pool(b"\x02" * 20, T, U, 10**21, 10**21, 30, 0),
                       V2Pool(b"\x03" * 20, W, U, 10**21, 10**21, 30, 0),
                       V2Pool(b"\x04" * 20, W, U, 10**21, 10**21, 30, 1)], weth=W)
    ctx = StrategyContext(routers={0: b"\x70" * 20})
    strategy = BackrunStrategy(table, min_profit=10**14)
    [action] = strategy.on_opportunity(opportunity(), ctx)
    assert action.router == b"\x70" * 20 and action.min_amount_out == 10**18 + 10**14
    assert action.max_fee_per_gas is None and action.opportunity == opportunity()
    arb = strategy.on_opportunity(opportunity(kind=OpportunityKind.ARBITRAGE), ctx)
    assert len(arb) == 1
    assert strategy.on_opportunity(opportunity(kind=OpportunityKind.LIQUIDATION), ctx) == []
    assert strategy.on_opportunity(opportunity(profit=10**14 - 1), ctx) == []
    mixed = (b"\x01" * 20, b"\x02" * 20, b"\x04" * 20)
    assert strategy.on_opportunity(opportunity(pools=mixed), ctx) == []
    assert strategy.on_opportunity(opportunity(pools=(b"\x01" * 20, b"\x02" * 20, b"\x05" * 20)), ctx) == []
    assert strategy.on_opportunity(opportunity(pools=(b"\x01" * 20, b"\x02" * 20)), ctx) == []
    assert strategy.on_opportunity(opportunity(), StrategyContext(routers={1: b"\x71" * 20})) == []
    assert strategy.declined == dict(kind=1, thin=1, not_a_cycle=1, unknown_pool=1, cross_exchange=1, no_router=1,
                                     v3_hop=0)
    assert BackrunStrategy.kinds == (OpportunityKind.BACKRUN, OpportunityKind.ARBITRAGE)
    with pytest.raises(ValueError, match="min_profit"):
        BackrunStrategy(table, min_profit=-1)
    with pytest.raises(TypeError, match="pool_exchange"):
        BackrunStrategy([1, 2])


@pytest.mark.concurrency
def test_concurrent_signing_and_a_racing_close_never_give_a_wrong_signature():
    """Four threads sign (libsecp256k1 runs without the GIL through cffi) while a
    fifth closes the signer: every transaction is signed at most once, each
    signature is exactly eth-account's, and after the close only SignerError."""
    from conftest import run_threads, scaled

    n = scaled(400, minimum=100)
    txs = [tx(nonce=i) for i in range(n)]
    expected = [bytes(Account.sign_transaction(t, KEY).raw_transaction) for t in txs]
    signer = Signer.from_hex(KEY)

    def sign_share(offset):
        out = {}
        for i in range(offset, n, 4):
            try:
                out[i] = signer.sign_transaction(txs[i])[0]
            except SignerError as exc:
                assert "closed" in str(exc)
                out[i] = None
        return out

    def close_midway():
        import time
        time.sleep(0.001 * n / 40)
        signer.close()

    results = run_threads(*[(sign_share, (k,)) for k in range(4)], (close_midway, ()))
    merged = {}
    for part in results[:4]:
        assert not merged.keys() & part.keys()
        merged.update(part)
    assert sorted(merged) == list(range(n)), "every transaction handled exactly once"
    signed = [i for i, raw in merged.items() if raw is not None]
    assert all(merged[i] == expected[i] for i in signed)
    assert signer.closed and signer._key == bytearray(32)

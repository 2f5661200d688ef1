"""tallyio.eth's decoder against eth-abi, the oracle: every call it decodes, we decode to
the same values; random and mutated calldata never crash, never hang, and every outcome
is counted by reason. Seeds: hypothesis prints the falsifying example on failure."""
import pickle

import pytest

# the oracles: eth-abi (decoding), pycryptodome (keccak), eth-utils (EIP-55); all in the test extra
eth_abi = pytest.importorskip("eth_abi")
pycryptodome_keccak = pytest.importorskip("Crypto.Hash.keccak")
eth_utils_checksum = pytest.importorskip("eth_utils").to_checksum_address

from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from conftest import scaled  # noqa: E402
from eth_strategies import (EXECUTE_SELECTORS, MULTICALL_SELECTORS, SPECS, U64_MAX,  # noqa: E402
                            UNWRAP_WETH, UR_OTHER_COMMANDS, UR_SWAPS, WRAP_ETH, CONTRACT_BALANCE_UR,
                            address, expected_swap, leaf_call, normalize, oracle_args,
                            semantic_reason, swap_view, uint256, v3_path)
from tallyio.errors import DecodeError, TallyioError  # noqa: E402
from tallyio.eth import (DECODE_STATUSES, Decoder, decode_call, keccak256, known_calls, selector,  # noqa: E402
                         to_checksum_address)

# example counts follow TALLYIO_TEST_SCALE (the sanitizer runs use a fraction)
SETTINGS = settings(max_examples=scaled(300, 50), deadline=None, suppress_health_check=[HealthCheck.too_slow])
SEMANTIC = {"bad_path", "path_too_long"}


def _keccak(data: bytes) -> bytes:
    return pycryptodome_keccak.new(digest_bits=256, data=data).digest()


def _outcome(decoder, data):
    try:
        return decoder.decode(data)
    except DecodeError as exc:
        return exc


# ---- selectors and hashing ---------------------------------------------------------------

def test_every_selector_is_the_keccak_of_its_signature():
    calls = known_calls()
    assert len(calls) == 29
    for sel, signature, name in calls:
        assert sel == "0x" + _keccak(signature.encode())[:4].hex(), signature
        assert selector(signature) == sel
        assert signature.startswith(name + "(")
    # the swaps the brief names are all there
    names = {name for _, _, name in calls}
    for name in ("swapExactTokensForTokens", "swapTokensForExactTokens", "swapExactETHForTokens",
                 "swapTokensForExactETH", "swapExactTokensForETH", "swapETHForExactTokens",
                 "swapExactTokensForTokensSupportingFeeOnTransferTokens",
                 "swapExactETHForTokensSupportingFeeOnTransferTokens",
                 "swapExactTokensForETHSupportingFeeOnTransferTokens", "exactInputSingle", "exactInput",
                 "exactOutputSingle", "exactOutput", "multicall", "execute"):
        assert name in names, name
    assert {s for s, _, n in calls if n == "multicall"} == {"0xac9650d8", "0x5ae401dc", "0x1f0464d1"}
    assert {s for s, _, n in calls if n == "execute"} == {"0x3593564c", "0x24856bc3"}


@given(st.binary(max_size=700))
@settings(max_examples=scaled(300, 50), deadline=None)
def test_keccak256_matches_pycryptodome(data):
    assert keccak256(data) == _keccak(data)
    assert keccak256(bytearray(data)) == keccak256(memoryview(data)) == _keccak(data)


@pytest.mark.parametrize("n", [0, 1, 135, 136, 137, 271, 272, 273, 1000])
def test_keccak256_at_the_rate_boundaries(n):
    data = bytes(range(256)) * 4
    assert keccak256(data[:n]) == _keccak(data[:n])


def test_keccak_and_selector_refuse_wrong_input():
    with pytest.raises(TypeError, match="not str"):
        keccak256("abc")
    with pytest.raises(TypeError, match="int"):
        keccak256(5)
    with pytest.raises(ValueError, match="canonical"):
        selector("transfer(address, uint256)")
    with pytest.raises(TypeError, match="bytes"):
        selector(b"transfer()")


@given(st.binary(min_size=20, max_size=20))
def test_checksum_address_matches_eth_utils(raw):
    assert to_checksum_address(raw) == eth_utils_checksum(raw)
    assert to_checksum_address("0x" + raw.hex().upper()) == eth_utils_checksum(raw)


def test_checksum_address_refuses_wrong_input():
    for bad, exc in [("0x12", ValueError), ("12" * 20, ValueError), ("0x" + "zz" * 20, ValueError), (5, TypeError)]:
        with pytest.raises(exc):
            to_checksum_address(bad)


# ---- leaf calls: eth-abi is the oracle ------------------------------------------------------

@given(leaf_call())
@SETTINGS
def test_every_leaf_call_decodes_like_eth_abi(data):
    selector_ = int.from_bytes(data[:4], "big")
    name, types, _, signature = SPECS[selector_]
    expected = oracle_args(data)
    decoder = Decoder()
    got = _outcome(decoder, data)
    reason = semantic_reason(selector_, expected)
    if reason is not None:
        assert isinstance(got, DecodeError) and got.reason == reason, (name, got)
        assert decoder.stats()[reason] == 1
        return
    assert not isinstance(got, Exception), got
    assert got.function == name and got.signature == signature and got.selector == f"0x{selector_:08x}"
    assert list(got.args.values()) == expected
    assert got.inner == () and got.skipped == 0
    assert decoder.stats()["ok"] == 1
    if "swap" in name or name.startswith("exact"):
        assert len(got.swaps) == 1
        assert swap_view(got.swaps[0]) == expected_swap(name, got.args)
    else:
        assert got.swaps == ()


def test_all_input_types_are_accepted_and_others_named():
    data = bytes.fromhex("12210e8a")  # refundETH()
    for form in (data, bytearray(data), memoryview(data), "0x" + data.hex(), "0X" + data.hex().upper()):
        assert decode_call(form).function == "refundETH"
    with pytest.raises(TypeError, match="list"):
        decode_call([1, 2])
    with pytest.raises(TypeError, match="NoneType"):
        decode_call(None)
    with pytest.raises(ValueError, match="hex"):
        decode_call("0x12zz")
    with pytest.raises(ValueError, match="0x"):
        decode_call("12210e8a")


def test_decode_error_names_function_and_reason_and_is_a_value_error():
    one_token_path = bytes.fromhex("38ed1739") + eth_abi.encode(
        ["uint256", "uint256", "address[]", "address", "uint256"], [1, 2, ["0x" + "11" * 20], "0x" + "22" * 20, 3])
    with pytest.raises(DecodeError) as info:
        decode_call(one_token_path)
    assert info.value.reason == "bad_path" and info.value.function == "swapExactTokensForTokens"
    assert "swapExactTokensForTokens" in str(info.value) and "bad_path" in str(info.value)
    assert isinstance(info.value, ValueError) and isinstance(info.value, TallyioError)
    copy = pickle.loads(pickle.dumps(info.value))
    assert (str(copy), copy.reason, copy.function) == (str(info.value), "bad_path", "swapExactTokensForTokens")


# ---- mutated and random calldata ------------------------------------------------------------

@st.composite
def mutated(draw):
    data = bytearray(draw(leaf_call()))
    for _ in range(draw(st.integers(1, 3))):
        how = draw(st.sampled_from(["truncate", "flip", "word", "append", "offset"]))
        if how == "truncate" and len(data) > 4:
            del data[draw(st.integers(4, len(data) - 1)):]
        elif how == "flip" and len(data) > 4:
            i = draw(st.integers(4, len(data) - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif how in ("word", "offset") and len(data) >= 36:
            w = 4 + 32 * draw(st.integers(0, (len(data) - 4) // 32 - 1))
            value = draw(st.sampled_from([2**256 - 1, 2**64, 2**63, 2**32, len(data), len(data) - 4, 0, 32, 31])) \
                if how == "offset" else draw(uint256)
            data[w:w + 32] = value.to_bytes(32, "big")
        elif how == "append":
            data += draw(st.binary(max_size=64))
    return bytes(data)


@given(mutated())
@settings(max_examples=scaled(1500, 100), deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_calls_agree_with_eth_abi_on_accept_and_reject(data):
    selector_ = int.from_bytes(data[:4], "big")
    decoder = Decoder()
    got = _outcome(decoder, data)
    try:
        expected = oracle_args(data)
    except Exception:            # eth-abi rejects it (any of its decoding errors)
        assert isinstance(got, DecodeError), (got, data.hex())
        assert got.reason not in ("ok", "unknown")
    else:
        reason = semantic_reason(selector_, expected)
        if reason is not None:
            assert isinstance(got, DecodeError) and got.reason == reason
        else:
            assert not isinstance(got, Exception), (got, data.hex())
            assert list(got.args.values()) == expected
    stats = decoder.stats()
    assert sum(stats[s] for s in DECODE_STATUSES) == 1
    if isinstance(got, DecodeError):
        assert stats[got.reason] == 1


@given(st.one_of(st.binary(max_size=400),
                 st.tuples(st.sampled_from(sorted(SPECS)), st.binary(max_size=600)).map(
                     lambda t: t[0].to_bytes(4, "big") + t[1])))
@settings(max_examples=scaled(2000, 100), deadline=None)
def test_random_calldata_never_crashes_and_every_outcome_is_counted(data):
    decoder = Decoder()
    got = _outcome(decoder, data)
    assert got is None or isinstance(got, DecodeError) or got.function
    stats = decoder.stats()
    assert sum(stats[s] for s in DECODE_STATUSES) == 1
    if got is None:
        assert stats["unknown"] == 1
    elif isinstance(got, DecodeError):
        assert stats[got.reason] == 1


# ---- multicall -------------------------------------------------------------------------------

junk = st.binary(max_size=80).filter(lambda b: len(b) < 4 or int.from_bytes(b[:4], "big") not in SPECS)
valid_swap_or_helper = leaf_call().filter(
    lambda d: semantic_reason(int.from_bytes(d[:4], "big"), oracle_args(d)) is None)


@given(st.sampled_from(MULTICALL_SELECTORS), st.lists(st.one_of(valid_swap_or_helper, junk), max_size=7),
       uint256, st.binary(min_size=32, max_size=32))
@SETTINGS
def test_multicall_unwraps_every_inner_call(sel, elements, deadline, blockhash):
    name, types, _, _ = SPECS[sel]
    first = {"uint256": deadline, "bytes32": blockhash}.get(types[0])
    data = sel.to_bytes(4, "big") + eth_abi.encode(types, ([first] if first is not None else []) + [elements])
    known = [e for e in elements if len(e) >= 4 and int.from_bytes(e[:4], "big") in SPECS]
    n_swaps = sum(1 for e in known if SPECS[int.from_bytes(e[:4], "big")][0] not in
                  ("unwrapWETH9", "refundETH", "sweepToken"))
    decoder = Decoder()
    got = _outcome(decoder, data)
    if n_swaps > 8:
        assert isinstance(got, DecodeError) and got.reason == "too_many_swaps"
        return
    assert not isinstance(got, Exception), got
    assert got.function == "multicall" and got.args["data"] == elements
    assert got.skipped == len(elements) - len(known) == decoder.stats()["inner_unknown"]
    assert [c.args for c in got.inner] == [decode_call(e).args for e in known]
    eth_out = any(SPECS[int.from_bytes(e[:4], "big")][0] == "unwrapWETH9" for e in known)
    expected = []
    for inner in got.inner:
        if inner.swaps:
            swap = expected_swap(inner.function, inner.args)
            if swap["deadline"] is None and types[0] == "uint256" and deadline:
                swap["deadline"] = min(deadline, U64_MAX)
            swap["eth_out"] |= eth_out
            expected.append(swap)
    assert [swap_view(s) for s in got.swaps] == expected


def test_multicall_limits_nesting_swaps_and_calls():
    refund = bytes.fromhex("12210e8a")
    def multicall(elements):
        return bytes.fromhex("ac9650d8") + eth_abi.encode(["bytes[]"], [elements])

    nested = refund
    for depth in range(1, 6):
        nested = multicall([nested])
        got = _outcome(Decoder(), nested)
        if depth <= 4:
            assert got.function == "multicall", depth
        else:
            assert isinstance(got, DecodeError) and got.reason == "too_deep"
    assert decode_call(multicall([refund] * 31)).inner[30].function == "refundETH"
    with pytest.raises(DecodeError, match="too_many_calls"):
        decode_call(multicall([refund] * 32))
    v3 = bytes.fromhex("04e45aaf") + eth_abi.encode(["(address,address,uint24,address,uint256,uint256,uint160)"],
                                                     [("0x" + "11" * 20, "0x" + "22" * 20, 500, "0x" + "33" * 20,
                                                       0, 5, 0)])
    got = decode_call(multicall([v3] * 8))
    assert len(got.swaps) == 8 and all(s.amount_unknown for s in got.swaps)   # amountIn 0: router balance
    with pytest.raises(DecodeError, match="too_many_swaps"):
        decode_call(multicall([v3] * 9))
    with pytest.raises(DecodeError, match="truncated"):  # a malformed known inner call rejects the whole
        decode_call(multicall([v3[:-1]]))


# ---- Universal Router --------------------------------------------------------------------------

@st.composite
def ur_command(draw):
    if draw(st.booleans()):
        cmd = draw(st.sampled_from(sorted(UR_SWAPS)))
        _, types, _ = UR_SWAPS[cmd]
        values = [draw(address), draw(uint256), draw(uint256),
                  draw(v3_path()) if types[3] == "bytes" else draw(st.lists(address, min_size=2, max_size=8)),
                  draw(st.booleans())]
        return cmd | draw(st.sampled_from([0, 0x80])), eth_abi.encode(types, values)
    return draw(st.sampled_from(UR_OTHER_COMMANDS)), draw(st.binary(max_size=100))


@given(st.sampled_from(EXECUTE_SELECTORS), st.lists(ur_command(), max_size=8), uint256)
@SETTINGS
def test_universal_router_execute_decodes_swap_commands(sel, commands, deadline):
    _, types, _, _ = SPECS[sel]
    cmd_bytes = bytes(c for c, _ in commands)
    inputs = [i for _, i in commands]
    data = sel.to_bytes(4, "big") + eth_abi.encode(types, [cmd_bytes, inputs] + ([deadline] if len(types) == 3 else []))
    decoder = Decoder()
    got = decoder.decode(data)
    assert got.function == "execute" and got.args["commands"] == cmd_bytes and got.args["inputs"] == inputs
    swaps = [(c & 0x3f, i) for c, i in commands if c & 0x3f in UR_SWAPS]
    assert got.skipped == len(commands) - len(swaps) == decoder.stats()["commands_skipped"]
    assert [c.function for c in got.inner] == [UR_SWAPS[c][0] for c, _ in swaps]
    types_of = {c: t for c, (_, t, _) in UR_SWAPS.items()}
    for inner, (c, raw) in zip(got.inner, swaps):
        assert inner.selector is None
        assert list(inner.args.values()) == [normalize(v) for v in eth_abi.decode(types_of[c], raw)]
    types_run = {c & 0x3f for c, _ in commands}
    expected = []
    for inner in got.inner:
        swap = expected_swap(inner.function, inner.args)
        if len(types) == 3 and deadline:
            swap["deadline"] = min(deadline, U64_MAX)
        swap["eth_in"] = WRAP_ETH in types_run
        swap["eth_out"] = UNWRAP_WETH in types_run
        expected.append(swap)
    assert [swap_view(s) for s in got.swaps] == expected


def test_universal_router_rejects_mismatched_commands_and_marks_contract_balance():
    v2_in = eth_abi.encode(["address", "uint256", "uint256", "address[]", "bool"],
                           ["0x" + "01" * 20, CONTRACT_BALANCE_UR, 7, ["0x" + "11" * 20, "0x" + "22" * 20], False])
    sel = bytes.fromhex("24856bc3")
    got = decode_call(sel + eth_abi.encode(["bytes", "bytes[]"], [b"\x08", [v2_in]]))
    assert got.swaps[0].amount_unknown and got.swaps[0].amount == CONTRACT_BALANCE_UR
    with pytest.raises(DecodeError, match="commands_mismatch"):
        decode_call(sel + eth_abi.encode(["bytes", "bytes[]"], [b"\x08\x0b", [v2_in]]))
    with pytest.raises(DecodeError, match="bad_value"):   # payerIsUser = 2 is no bool
        decode_call(sel + eth_abi.encode(["bytes", "bytes[]"], [b"\x08", [v2_in[:159] + b"\x02" + v2_in[160:]]]))


def test_eth_abi_agrees_the_mutations_we_reject_are_malformed():
    """Spot checks of the padding rules the C walk copies from eth-abi 6."""
    good = bytes.fromhex("49404b7c") + eth_abi.encode(["uint256", "address"], [5, "0x" + "ab" * 20])
    dirty = good[:4 + 32 + 11] + b"\x01" + good[4 + 32 + 12:]
    with pytest.raises(eth_abi.exceptions.DecodingError):
        eth_abi.decode(["uint256", "address"], dirty[4:])
    with pytest.raises(DecodeError, match="bad_value"):
        decode_call(dirty)


def test_a_huge_multicall_of_unknown_calls_is_walked_and_counted_exactly():
    """70,000 elements that all point at one shared empty element (offsets may alias in the
    ABI): linear work, nothing decoded, every element counted as skipped."""
    n = 70_000
    word = lambda v: v.to_bytes(32, "big")  # noqa: E731
    body = word(32) + word(n) + b"".join(word(32 * n) for _ in range(n)) + word(0)
    data = bytes.fromhex("ac9650d8") + body
    assert len(eth_abi.decode(["bytes[]"], body)[0]) == n      # eth-abi agrees it is valid
    decoder = Decoder()
    call = decoder.decode(data)
    assert call.skipped == n and call.inner == () and call.swaps == ()
    assert decoder.stats()["inner_unknown"] == n


def test_aliased_nested_multicalls_stop_at_the_call_limit():
    """Offsets may alias, so 4 levels of multicalls whose 100 elements all point at the same
    inner multicall would describe 100**4 calls in ~13 KB. The walk stops at 32 decoded calls
    (too_many_calls), so its work stays within 32 passes over the input."""
    word = lambda v: v.to_bytes(32, "big")  # noqa: E731

    def aliased_multicall(inner: bytes, copies: int) -> bytes:
        tail = word(len(inner)) + inner + bytes(-len(inner) % 32)
        return bytes.fromhex("ac9650d8") + word(32) + word(copies) + \
            b"".join(word(32 * copies) for _ in range(copies)) + tail

    call = bytes.fromhex("12210e8a")   # refundETH()
    for _ in range(4):
        call = aliased_multicall(call, 100)
    assert len(call) < 20_000
    decoder = Decoder()
    with pytest.raises(DecodeError, match="too_many_calls"):
        decoder.decode(call)
    assert decoder.stats()["too_many_calls"] == 1

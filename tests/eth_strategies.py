"""Hypothesis strategies for router calldata, encoded by eth-abi (the oracle), and the
independent Python model of what tallyio.eth must decode them to.

Used by tests/test_eth_*.py. Every call the decoder knows is generated from its
signature (tallyio.eth.known_calls(), whose selectors the tests check against
keccak), so a function added to the C table is covered here without edits.
"""
from __future__ import annotations

import eth_abi
from hypothesis import strategies as st

from tallyio.eth import known_calls

U64_MAX = 2**64 - 1
CONTRACT_BALANCE_UR = 2**255

# Universal Router: command type -> (name, input types, input names)
UR_SWAPS = {
    0x00: ("V3_SWAP_EXACT_IN", ["address", "uint256", "uint256", "bytes", "bool"],
           ["recipient", "amountIn", "amountOutMin", "path", "payerIsUser"]),
    0x01: ("V3_SWAP_EXACT_OUT", ["address", "uint256", "uint256", "bytes", "bool"],
           ["recipient", "amountOut", "amountInMax", "path", "payerIsUser"]),
    0x08: ("V2_SWAP_EXACT_IN", ["address", "uint256", "uint256", "address[]", "bool"],
           ["recipient", "amountIn", "amountOutMin", "path", "payerIsUser"]),
    0x09: ("V2_SWAP_EXACT_OUT", ["address", "uint256", "uint256", "address[]", "bool"],
           ["recipient", "amountOut", "amountInMax", "path", "payerIsUser"]),
}
UR_OTHER_COMMANDS = [0x02, 0x03, 0x04, 0x05, 0x06, 0x0a, 0x0b, 0x0c, 0x0d, 0x10, 0x11, 0x13, 0x21]
WRAP_ETH, UNWRAP_WETH = 0x0b, 0x0c


def parse_signature(signature: str) -> tuple[str, list[str], bool]:
    """``name(types)`` -> (name, flat field types, whether they sit in one struct)."""
    name, rest = signature.split("(", 1)
    inner = rest[:-1]
    if inner.startswith("("):
        return name, inner[1:-1].split(","), True
    return name, inner.split(",") if inner else [], False


# selector -> (name, types, struct?, signature), for every call the decoder knows
SPECS = {int(sel, 16): (name, *parse_signature(sig)[1:], sig) for sel, sig, name in known_calls()}
LEAF_SELECTORS = sorted(s for s, spec in SPECS.items() if spec[0] not in ("multicall", "execute"))
MULTICALL_SELECTORS = sorted(s for s, spec in SPECS.items() if spec[0] == "multicall")
EXECUTE_SELECTORS = sorted(s for s, spec in SPECS.items() if spec[0] == "execute")

# ---- values ----------------------------------------------------------------------------

uint256 = st.one_of(st.integers(0, 2**256 - 1), st.integers(0, 2**64),
                    st.sampled_from([0, 1, U64_MAX, 2**64, CONTRACT_BALANCE_UR, 2**256 - 1]))
address = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
fee = st.one_of(st.sampled_from([100, 500, 3000, 10000]), st.integers(0, 2**24 - 1))


@st.composite
def v3_path(draw, hops=st.integers(1, 7)) -> bytes:
    n = draw(hops)
    out = bytes.fromhex(draw(address)[2:])
    for _ in range(n):
        out += draw(fee).to_bytes(3, "big") + bytes.fromhex(draw(address)[2:])
    return out


# mostly valid paths; sometimes too long or not a path at all (the decoder must say which)
any_v3_path = st.one_of(v3_path(), v3_path(), v3_path(), v3_path(st.integers(8, 9)), st.binary(max_size=90))
any_v2_path = st.one_of(st.lists(address, min_size=2, max_size=8), st.lists(address, max_size=11))

VALUE = {"uint256": uint256, "uint24": st.integers(0, 2**24 - 1), "uint160": st.integers(0, 2**160 - 1),
         "address": address, "bool": st.booleans(), "bytes32": st.binary(min_size=32, max_size=32),
         "bytes": any_v3_path, "address[]": any_v2_path}


def encode_call(selector: int, values: list) -> bytes:
    _, types, struct, _ = SPECS[selector]
    body = eth_abi.encode([f"({','.join(types)})"], [tuple(values)]) if struct else eth_abi.encode(types, values)
    return selector.to_bytes(4, "big") + body


@st.composite
def leaf_call(draw, selectors=st.sampled_from(LEAF_SELECTORS)) -> bytes:
    """A swap or helper call of any router the decoder knows, with random arguments."""
    selector = draw(selectors)
    _, types, _, _ = SPECS[selector]
    return encode_call(selector, [draw(VALUE[t]) for t in types])


# ---- the oracle's view ------------------------------------------------------------------

def normalize(value):
    """eth-abi's values in tallyio's spelling: addresses lowercase, arrays as lists."""
    if isinstance(value, (list, tuple)):
        return [normalize(v) for v in value]
    if isinstance(value, str) and value.startswith("0x"):
        return value.lower()
    return value


def oracle_args(data: bytes) -> dict:
    """What eth-abi decodes a leaf call to, keyed by tallyio's argument names
    (raises whatever eth-abi raises)."""
    selector = int.from_bytes(data[:4], "big")
    name, types, struct, _ = SPECS[selector]
    if struct:
        (values,) = eth_abi.decode([f"({','.join(types)})"], data[4:])
    else:
        values = eth_abi.decode(types, data[4:])
    return [normalize(v) for v in values]


def semantic_reason(selector: int, args: list) -> str | None:
    """The rejection a valid ABI encoding still gets because it is no swap path:
    None when the decoder must accept it."""
    _, types, _, _ = SPECS[selector]
    for t, v in zip(types, args):
        if t == "address[]":
            if len(v) < 2:
                return "bad_path"
            if len(v) > 8:
                return "path_too_long"
        if t == "bytes":
            if len(v) < 43 or (len(v) - 20) % 23:
                return "bad_path"
            if (len(v) - 20) // 23 + 1 > 8:
                return "path_too_long"
    return None


def parse_v3_path(path: bytes, exact_out: bool) -> tuple[list, list]:
    tokens = ["0x" + path[i:i + 20].hex() for i in range(0, len(path), 23)]
    fees = [int.from_bytes(path[i + 20:i + 23], "big") for i in range(0, len(path) - 20, 23)]
    if exact_out:
        tokens.reverse()
        fees.reverse()
    return tokens, fees


def expected_swap(name: str, args: dict) -> dict:
    """The normalized swap of one leaf swap call, computed from its arguments: the
    model the C normalization is checked against (flags as booleans)."""
    exact_out = "ExactOut" in name or "ForExact" in name or name.startswith("exactOutput") or "EXACT_OUT" in name
    amount_key = "amountOut" if exact_out else "amountIn"
    limit_key = next(k for k in ("amountOutMin", "amountOutMinimum", "amountInMax", "amountInMaximum") if k in args) \
        if any(k in args for k in ("amountOutMin", "amountOutMinimum", "amountInMax", "amountInMaximum")) else None
    if "path" in args and isinstance(args["path"], bytes):
        path, fees = parse_v3_path(args["path"], exact_out)
        protocol = "v3"
    elif "path" in args:
        path, fees, protocol = args["path"], [0] * (len(args["path"]) - 1), "v2"
    else:
        path, fees, protocol = [args["tokenIn"], args["tokenOut"]], [args["fee"]], "v3"
    deadline = args.get("deadline")
    amount = args.get(amount_key)
    # SwapRouter02's swaps are the ones without a deadline (UR commands have none either)
    no_deadline_router02 = "deadline" not in args and not name.startswith("V")
    unknown = False
    if not exact_out and amount is not None:
        if (no_deadline_router02 or name == "V2_SWAP_EXACT_IN") and amount == 0:
            unknown = True
        if name in ("V2_SWAP_EXACT_IN", "V3_SWAP_EXACT_IN") and amount == CONTRACT_BALANCE_UR:
            unknown = True
    return {
        "protocol": protocol, "kind": "exact_out" if exact_out else "exact_in",
        "amount": amount, "amount_limit": args.get(limit_key) if limit_key else None,
        "path": path, "fees": fees, "recipient": args.get("to", args.get("recipient")),
        "deadline": None if not deadline else min(deadline, U64_MAX),
        "eth_in": "ETHFor" in name, "eth_out": "ForETH" in name or "ForExactETH" in name,
        "fee_on_transfer": "SupportingFeeOnTransfer" in name, "amount_unknown": unknown,
    }


def swap_view(swap) -> dict:
    return {"protocol": swap.protocol, "kind": swap.kind, "amount": swap.amount,
            "amount_limit": swap.amount_limit, "path": swap.path, "fees": swap.fees,
            "recipient": swap.recipient, "deadline": swap.deadline, "eth_in": swap.eth_in,
            "eth_out": swap.eth_out, "fee_on_transfer": swap.fee_on_transfer,
            "amount_unknown": swap.amount_unknown}

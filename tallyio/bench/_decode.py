"""Calldata decoding figures for the ``mempool`` group: tallyio.eth's decoder beside
what a Python searcher uses (eth-abi ``decode``, web3.py ``decode_function_input``).

C-level figures are nanoseconds per ``tio_decode_call`` inside a nogil loop
(``tallyio.eth._decode._bench_c_decode``); Python-level figures are the cost of one
call from Python, each contender decoding the same real mainnet calldata, alternated
within each repetition. The inputs are real transactions (their hashes are below), so
the figures need no test data at run time.
"""
from __future__ import annotations

from time import perf_counter_ns, thread_time_ns
from typing import Callable

from tallyio.bench._figures import Figure, Target, alternate, figures_for
from tallyio.bench._progress import Progress
from tallyio.eth import decode_call
from tallyio.eth._decode import _bench_c_decode

# Uniswap V2 Router02 swapExactTokensForTokens, mainnet tx 0x003a04f0...69feef (block 10921991)
V2_SWAP = bytes.fromhex(
    "38ed17390000000000000000000000000000000000000000000000011989c339e0063000000000000000000000000000"
    "000000000000000000000000045e4d2872d5404000000000000000000000000000000000000000000000000000000000"
    "000000a000000000000000000000000000e43c0bfa2303310222e077ffa948bddf256848000000000000000000000000"
    "000000000000000000000000000000005f6be59400000000000000000000000000000000000000000000000000000000"
    "00000002000000000000000000000000c02aaa39b223fe8d0a0e5c4f27ead9083c756cc2000000000000000000000000"
    "0bc529c00c6401aef6d220be8c6ea1667f6ad93e")
V2_TYPES = ["uint256", "uint256", "address[]", "address", "uint256"]
V2_ABI = [{"name": "swapExactTokensForTokens", "type": "function", "stateMutability": "nonpayable",
           "inputs": [{"name": n, "type": t} for n, t in zip(["amountIn", "amountOutMin", "path", "to", "deadline"],
                                                              V2_TYPES)],
           "outputs": [{"name": "amounts", "type": "uint256[]"}]}]

# SwapRouter multicall(exactInputSingle, unwrapWETH9), mainnet tx 0x7bef2d08...54f866
V3_MULTICALL = bytes.fromhex(
    "ac9650d80000000000000000000000000000000000000000000000000000000000000020000000000000000000000000"
    "000000000000000000000000000000000000000200000000000000000000000000000000000000000000000000000000"
    "000000400000000000000000000000000000000000000000000000000000000000000180000000000000000000000000"
    "0000000000000000000000000000000000000104414bf3890000000000000000000000003301ee63fb29f863f2333bd4"
    "466acb46cd8323e6000000000000000000000000c02aaa39b223fe8d0a0e5c4f27ead9083c756cc20000000000000000"
    "000000000000000000000000000000000000000000002710000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000000000000609a67050000000000000000"
    "0000000000000000000000000018d0bf423c03d8de000000000000000000000000000000000000000000000000000000"
    "021a8a36576df5dd00000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "0000004449404b7c000000000000000000000000000000000000000000000000021a8a36576df5dd0000000000000000"
    "0000000034da01dc3af140f189523a5ab68df7da12a61730000000000000000000000000000000000000000000000000"
    "00000000")

# an ERC-20 transfer: the irrelevant traffic that must cost next to nothing (tx 0x580141f7...b37846)
ERC20_TRANSFER = bytes.fromhex(
    "a9059cbb000000000000000000000000fc11e9ed29a33c69f057fa082e409c4b33951b11"
    "000000000000000000000000000000000000000000000000000000000000238c")

C_CASES = [
    ("V2 router swap (swapExactTokensForTokens)", V2_SWAP, [Target(1000.0)]),
    ("V3 multicall (exactInputSingle + unwrapWETH9)", V3_MULTICALL, [Target(1000.0)]),
    ("irrelevant tx (ERC-20 transfer)", ERC20_TRANSFER, [Target(300.0)]),
]

ETH_ABI = "eth-abi decode"
WEB3 = "web3.py decode_function_input"


def _per_call_ns(fn: Callable[[], object], calls: int) -> float:
    start = perf_counter_ns()
    for _ in range(calls):
        fn()
    return (perf_counter_ns() - start) / calls


def _peers() -> tuple[list[tuple[str, Callable[[], object]]], dict[str, str]]:
    """The Python peers that are installed, as zero-argument decoders of V2_SWAP."""
    peers, skipped = [], {}
    try:
        from eth_abi import decode as abi_decode
    except ImportError:
        skipped[ETH_ABI] = "eth-abi is not installed (pip install eth-abi)"
    else:
        body = V2_SWAP[4:]
        peers.append((ETH_ABI, lambda: abi_decode(V2_TYPES, body)))
    try:
        from web3 import Web3
    except ImportError:
        skipped[WEB3] = "web3 is not installed (pip install web3)"
    else:
        contract = Web3().eth.contract(abi=V2_ABI)
        hex_input = "0x" + V2_SWAP.hex()
        peers.append((WEB3, lambda: contract.decode_function_input(hex_input)))
    return peers, skipped


def sections(mode: str) -> list[tuple[str, Callable[[Progress], list[Figure]]]]:
    """The decoding sections for ``mode`` (smoke, quick, full), in order."""
    reps = {"smoke": 2, "quick": 3, "full": 9}[mode]
    shrink = {"smoke": 1000, "quick": 4, "full": 1}[mode]
    result = []

    c_calls = max(1000, 2_000_000 // shrink)

    def c_level(progress: Progress) -> list[Figure]:
        # wall time per call, and this thread's CPU time per call beside it: on a shared,
        # oversubscribed machine the wall figure includes the time the thread waited for a core
        def run() -> dict[str, float]:
            figures = {}
            for case, data, _ in C_CASES:
                cpu_start = thread_time_ns()
                ns, _, _ = _bench_c_decode(data, c_calls)
                figures[case] = ns
                figures[case + ", thread CPU"] = (thread_time_ns() - cpu_start) / c_calls
            return figures
        samples = alternate([("tallyio", run)], reps, progress)
        cases = [(key, key) for c, _, _ in C_CASES for key in (c, c + ", thread CPU")]
        return figures_for("C level, tio_decode_call", samples, cases, unit="ns/op",
                           higher_is_better=False, targets={c: t for c, _, t in C_CASES})
    result.append(("C level: decode", c_level))

    def python_level(progress: Progress) -> list[Figure]:
        case = "decode a real V2 router swap"
        peers, skipped = _peers()
        calls = max(50, 50_000 // shrink)
        contenders = [("tallyio", lambda: {case: _per_call_ns(lambda: decode_call(V2_SWAP), calls)})]
        for name, fn in peers:
            n = calls if name != WEB3 else max(20, calls // 20)   # web3 is ~20x slower: fewer calls, same time
            contenders.append((name, lambda fn=fn, n=n: {case: _per_call_ns(fn, n)}))
        samples = alternate(contenders, reps, progress)
        return figures_for("Python level, decode", samples, [(case, case)], unit="ns/op", higher_is_better=False,
                           targets={case: [Target(10.0, peer=ETH_ABI)]} if ETH_ABI not in skipped else None,
                           skipped_peers=skipped)
    result.append(("Python level: decode_call vs eth-abi, web3.py", python_level))
    return result

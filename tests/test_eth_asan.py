"""The decoder's C core under AddressSanitizer + UndefinedBehaviorSanitizer: a standalone
driver (tests/eth_decode_asan.c) decodes real and synthetic router calls and hundreds of
thousands of mutations of them, each in a heap block of exactly its size, so any read past
the end, any overflow or undefined shift aborts the run. Needs gcc with the sanitizers
(the machines that build tallyio have it)."""
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

eth_abi = pytest.importorskip("eth_abi")   # builds the synthetic seeds (test extra)

from eth_strategies import LEAF_SELECTORS, SPECS, encode_call  # noqa: E402
from realparts import mainnet_dir  # noqa: E402

HERE = Path(__file__).resolve().parent
INCLUDE = HERE.parent / "tallyio" / "_ext" / "include"

SAMPLE = {"uint256": 10**18, "uint24": 3000, "uint160": 0, "address": "0x" + "ab" * 20, "bool": True,
          "bytes32": b"\x11" * 32, "address[]": ["0x" + "11" * 20, "0x" + "22" * 20, "0x" + "33" * 20],
          "bytes": bytes.fromhex("11" * 20 + "000bb8" + "22" * 20 + "0001f4" + "33" * 20)}


def _synthetic_calls() -> list[bytes]:
    """One well-formed call of every function, every multicall form wrapping them, a
    4-deep nested multicall and Universal Router executes with every swap command."""
    leaves = [encode_call(sel, [SAMPLE[t] for t in SPECS[sel][1]]) for sel in LEAF_SELECTORS]
    calls = list(leaves)
    for sel in sorted(s for s, spec in SPECS.items() if spec[0] == "multicall"):
        first = {"uint256": [2**64], "bytes32": [b"\x22" * 32]}.get(SPECS[sel][1][0], [])
        calls.append(sel.to_bytes(4, "big") + eth_abi.encode(SPECS[sel][1], first + [leaves[:6]]))
    # the limits: 9 swaps, 33 calls, a 9-token path, 5-deep nesting
    multicall = bytes.fromhex("ac9650d8")
    calls.append(multicall + eth_abi.encode(["bytes[]"], [[leaves[0]] * 9]))
    calls.append(multicall + eth_abi.encode(["bytes[]"], [[bytes.fromhex("12210e8a")] * 33]))
    calls.append(encode_call(0x38ed1739, [1, 2, ["0x" + "11" * 20] * 9, "0x" + "22" * 20, 3]))
    deep = leaves[0]
    for _ in range(5):
        deep = multicall + eth_abi.encode(["bytes[]"], [[deep]])
    calls.append(deep)
    nested = leaves[0]
    for _ in range(4):
        nested = bytes.fromhex("ac9650d8") + eth_abi.encode(["bytes[]"], [[nested, leaves[12]]])
    calls.append(nested)
    v3 = eth_abi.encode(["address", "uint256", "uint256", "bytes", "bool"],
                        ["0x" + "01" * 20, 2**255, 1, SAMPLE["bytes"], True])
    v2 = eth_abi.encode(["address", "uint256", "uint256", "address[]", "bool"],
                        ["0x" + "02" * 20, 0, 1, SAMPLE["address[]"], False])
    for sel, tail in ((bytes.fromhex("3593564c"), [2**40]), (bytes.fromhex("24856bc3"), [])):
        types = ["bytes", "bytes[]"] + (["uint256"] if tail else [])
        calls.append(sel + eth_abi.encode(types, [b"\x0b\x00\x01\x08\x09\x0c",
                                                  [b"\x00" * 64, v3, v3, v2, v2, b"\x00" * 64]] + tail))
    return calls


@pytest.mark.timeout(600)
def test_c_core_under_address_and_undefined_behaviour_sanitizers(tmp_path):
    if not (HERE / "eth_decode_asan.c").is_file():   # a checkout has it; an sdist leaves out *.c
        pytest.skip("tests/eth_decode_asan.c is not in this tree (the sdist excludes *.c files)")
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed")
    exe = tmp_path / "eth_decode_asan"
    # the driver carries its own sanitizer runtime: never the one a sanitized test run preloads
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "ASAN_OPTIONS", "TSAN_OPTIONS")}
    build = subprocess.run([gcc, "-std=c11", "-O1", "-g", "-fsanitize=address,undefined",
                            "-fno-sanitize-recover=all", "-Wall", "-Wextra", "-Werror", f"-I{INCLUDE}",
                            str(HERE / "eth_decode_asan.c"), "-o", str(exe)], capture_output=True, text=True, env=env)
    if build.returncode != 0 and "sanitize" in build.stderr and "cannot find" in build.stderr:
        pytest.skip(f"gcc has no sanitizer runtime here: {build.stderr[-300:]}")
    assert build.returncode == 0, build.stderr
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    rows = json.loads((mainnet_dir() / "router_calls.json").read_text())
    inputs = [bytes.fromhex(r["input"][2:]) for r in rows] + _synthetic_calls()
    for i, data in enumerate(inputs):
        (seeds / f"{i:04d}").write_bytes(data)
    env.update(ASAN_OPTIONS="detect_leaks=1:abort_on_error=1", UBSAN_OPTIONS="print_stacktrace=1")
    run = subprocess.run([str(exe), "300000", *sorted(str(p) for p in seeds.iterdir())],
                         capture_output=True, text=True, env=env, timeout=540)
    assert run.returncode == 0, run.stdout + run.stderr[-4000:]
    counts = dict(item.split(":") for item in run.stdout.split()[2:])
    print("\nASan/UBSan run, inputs by status:", run.stdout.strip())
    # the mutations reach the decoder's checks: ok, unknown and most rejection reasons occur
    assert all(int(counts[str(s)]) > 0 for s in range(12)), run.stdout

"""The decoding benchmark sections run and measure what they say (no timing is asserted:
figures live in `tallyio bench`)."""
from tallyio.bench import _decode
from tallyio.bench._progress import Progress
from tallyio.eth import decode_call


def test_embedded_inputs_are_the_real_calls_they_name():
    assert decode_call(_decode.V2_SWAP).function == "swapExactTokensForTokens"
    call = decode_call(_decode.V3_MULTICALL)
    assert [c.function for c in call.inner] == ["exactInputSingle", "unwrapWETH9"] and call.swaps[0].eth_out
    assert decode_call(_decode.ERC20_TRANSFER) is None


def test_decode_sections_measure_every_case_and_peer():
    lines = []
    sections = _decode.sections("smoke")
    figures = [f for _, measure in sections for f in measure(Progress(lines.append, sections=len(sections)))]
    cases = {f.case for f in figures}
    for case, _, _ in _decode.C_CASES:
        assert case in cases and case + ", thread CPU" in cases
    python = next(f for f in figures if f.case == "decode a real V2 router swap")
    assert len(python.samples) == 2 and all(s > 0 for s in python.samples)
    assert set(python.peers) | set(python.skipped_peers) == {_decode.ETH_ABI, _decode.WEB3}
    assert all(f.samples and all(s > 0 for s in f.samples) for f in figures)

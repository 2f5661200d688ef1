"""atheris harness for the calldata decoder (run by tests/test_eth_fuzz.py in a subprocess,
because libFuzzer ends the process when it is done; or by hand:
``python tests/fuzz_eth_decode.py CORPUS_DIR -runs=1000000``).

Each input is decoded; the only allowed outcomes are a DecodedCall, None and DecodeError,
and the decoder's counters must account for every input. A crash of the interpreter, any
other exception, or a miscount is a finding."""
import sys

import atheris

with atheris.instrument_imports():
    from tallyio.errors import DecodeError
    from tallyio.eth import DECODE_STATUSES, Decoder

DECODER = Decoder()
SEEN = [0]


def one_input(data: bytes) -> None:
    SEEN[0] += 1
    try:
        call = DECODER.decode(data)
    except DecodeError:
        pass
    else:
        if call is not None:
            assert len(call.swaps) <= 8 and len(call.inner) <= 32
            for swap in call.swaps:
                assert 2 <= len(swap.path) <= 8 and len(swap.fees) == len(swap.path) - 1
    stats = DECODER.stats()
    assert sum(stats[s] for s in DECODE_STATUSES) == SEEN[0], (stats, SEEN[0])


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()

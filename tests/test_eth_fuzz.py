"""A short, bounded atheris (libFuzzer) run over the decoder, seeded with the real router
calls. Skipped where atheris is not installed (it is an optional test tool, not a
dependency); hypothesis covers the same ground in tests/test_eth_decode.py everywhere."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from realparts import mainnet_dir

HARNESS = Path(__file__).with_name("fuzz_eth_decode.py")


@pytest.mark.timeout(600)
def test_atheris_finds_no_crash_in_a_bounded_run(tmp_path):
    pytest.importorskip("atheris")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    rows = json.loads((mainnet_dir() / "router_calls.json").read_text())
    for i, row in enumerate(rows):
        (corpus / f"seed{i}").write_bytes(bytes.fromhex(row["input"][2:]))
    # the subprocess must import the same tallyio (installed, or an in-place build) as the tests
    import tallyio
    env = dict(os.environ)
    root = str(Path(tallyio.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, str(HARNESS), str(corpus), "-runs=30000", "-max_len=4096",
                           "-seed=12345", "-timeout=10"],
                          capture_output=True, text=True, timeout=540, env=env)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert "Done 30000 runs" in output, output[-2000:]

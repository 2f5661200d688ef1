"""The README's Cython example cimports the installed core, compiles, and runs.

This is what a user writing nogil Cython against tallyio does: the .pxd files
and headers must ship with the package and work from site-packages."""
import re
from pathlib import Path

import pytest

from conftest import build_user_extension

README = Path(__file__).resolve().parent.parent / "README.md"


def _readme_cython_block() -> str:
    blocks = re.findall(r"```cython\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) == 1, "README.md should have exactly one ```cython example"
    return blocks[0]


@pytest.mark.timeout(600)
def test_readme_cython_example_builds_and_runs(tmp_path, monkeypatch):
    example = build_user_extension(tmp_path, "readme_example", _readme_cython_block(), monkeypatch)
    from tallyio import SpscQueue

    q = SpscQueue(64, dtype="uint64")
    assert example.pump(q, 100_000) == sum(range(100_000))
    assert q.empty()

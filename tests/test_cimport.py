"""The README's Cython example cimports the installed core, compiles, and runs.

This is what a user writing nogil Cython against tallyio does: the .pxd files
and headers must ship with the package and work from site-packages."""
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def _readme_cython_block() -> str:
    blocks = re.findall(r"```cython\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) == 1, "README.md should have exactly one ```cython example"
    return blocks[0]


@pytest.mark.timeout(600)
def test_readme_cython_example_builds_and_runs(tmp_path, monkeypatch):
    pytest.importorskip("Cython")
    (tmp_path / "readme_example.pyx").write_text(_readme_cython_block())
    (tmp_path / "setup.py").write_text(
        "import tallyio\n"
        "from setuptools import Extension, setup\n"
        "from Cython.Build import cythonize\n"
        "setup(ext_modules=cythonize([Extension('readme_example', ['readme_example.pyx'],\n"
        "      include_dirs=[tallyio.get_include()], extra_compile_args=['-std=c11', '-O2'])],\n"
        "      compiler_directives={'language_level': 3}))\n")
    import tallyio

    # the build must find the same tallyio (installed, or an in-place dev build) as this test
    env = dict(os.environ)
    root = str(Path(tallyio.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
                          cwd=tmp_path, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    warnings = [line for line in (proc.stdout + proc.stderr).splitlines()
                if "warning:" in line and "readme_example" in line]
    assert not warnings, "\n".join(warnings)
    monkeypatch.syspath_prepend(str(tmp_path))
    example = importlib.import_module("readme_example")
    from tallyio import SpscQueue

    q = SpscQueue(64, dtype="uint64")
    assert example.pump(q, 100_000) == sum(range(100_000))
    assert q.empty()

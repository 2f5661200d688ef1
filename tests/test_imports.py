"""Every module of the package imports on its own, first, in a fresh
interpreter run with ``-I -W error`` (multidict's test_circular_imports.py is
the model): no import cycle hidden by the order the test suite happens to
import things in, no warning at import time, nothing read from the user's
environment (PYTHONPATH, user site, the current directory)."""
import importlib.machinery
import subprocess
import sys
from pathlib import Path

import pytest

import tallyio

PACKAGE_DIR = Path(tallyio.__file__).resolve().parent
ROOT = PACKAGE_DIR.parent
# tallyio.__main__ runs the command line when imported: `python -m tallyio --help` covers it
NOT_IMPORTED = {"tallyio.__main__"}


def _module_names():
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES) + (".py",)
    names = set()
    for path in PACKAGE_DIR.rglob("*"):
        if "__pycache__" in path.parts or not path.name.endswith(suffixes):
            continue
        rel = path.relative_to(ROOT)
        stem = next(path.name[:-len(s)] for s in suffixes if path.name.endswith(s))
        parts = list(rel.parts[:-1]) + ([] if stem == "__init__" else [stem])
        # only inside real packages (a directory without __init__.py is data, e.g. _ext/testing)
        if all((ROOT.joinpath(*parts[:i]) / "__init__.py").exists() for i in range(1, len(rel.parts))):
            names.add(".".join(parts))
    return sorted(names - NOT_IMPORTED)


MODULES = _module_names()


def test_the_module_list_covers_the_package():
    assert {"tallyio", "tallyio.errors", "tallyio._ext.spsc", "tallyio._ext.checks",
            "tallyio._ext.status", "tallyio.scheduler"} <= set(MODULES)
    assert len(MODULES) >= 60


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_alone_in_a_fresh_interpreter(module):
    # -I drops PYTHONPATH and the current directory, so put the tested tree first by hand
    code = f"import sys; sys.path.insert(0, {str(ROOT)!r}); import {module}"
    proc = subprocess.run([sys.executable, "-I", "-W", "error", "-c", code],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"import {module} failed:\n{proc.stderr}"


def test_python_m_tallyio_help_runs():
    code = f"import sys, runpy; sys.path.insert(0, {str(ROOT)!r}); sys.argv = ['tallyio', '--help']; " \
           f"runpy.run_module('tallyio', run_name='__main__')"
    proc = subprocess.run([sys.executable, "-I", "-W", "error", "-c", code],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "usage" in proc.stdout.lower()

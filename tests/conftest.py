"""Shared test configuration.

TALLYIO_TEST_SCALE (default 1.0) scales the item counts of the concurrency
tests; the sanitizer script runs them at a smaller scale because
ThreadSanitizer slows code 5-15x.  Random tests print their seed.
"""
import os
import random
import threading
import time

import pytest
from hypothesis import settings

# Hypothesis' per-example deadline is a wall-clock assertion: on a shared, loaded machine (or
# under a sanitizer) one slow example fails a correct test.  Tests assert behaviour, never time.
settings.register_profile("tallyio", deadline=None)
settings.load_profile("tallyio")

# the real-chain fixtures (anvil, the Uniswap deployment, funded traders): tests/chainfixtures.py
pytest_plugins = ["chainfixtures"]


def _scale() -> float:
    raw = os.environ.get("TALLYIO_TEST_SCALE", "1.0")
    try:
        value = float(raw)
    except ValueError:
        raise pytest.UsageError(f"TALLYIO_TEST_SCALE must be a number, got {raw!r}") from None
    if not 0 < value <= 100:
        raise pytest.UsageError(f"TALLYIO_TEST_SCALE must be in (0, 100], got {raw!r}")
    return value


SCALE = _scale()


def scaled(n: int, minimum: int = 1000) -> int:
    """`n` items scaled by TALLYIO_TEST_SCALE, but never fewer than `minimum`."""
    return max(minimum, int(n * SCALE))


@pytest.fixture
def seed(request) -> int:
    """A random seed, printed so a failure can be replayed (TALLYIO_SEED=...)."""
    value = int(os.environ.get("TALLYIO_SEED", random.randrange(2**32)))
    print(f"\n{request.node.nodeid}: seed={value} (replay with TALLYIO_SEED={value})")
    return value




def _children_import_the_tallyio_under_test() -> None:
    """Every child interpreter a test starts imports the same tallyio as the tests
    (installed, as CI does, or an in-place build), never the uncompiled source tree
    that is the working directory in CI: PYTHONPATH leads with the folder holding
    the imported tallyio, and PYTHONSAFEPATH=1 (3.11+) keeps ``python -c`` from
    putting the working directory first."""
    import tallyio

    here = os.path.dirname(os.path.dirname(os.path.abspath(tallyio.__file__)))
    rest = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != here]
    os.environ["PYTHONPATH"] = os.pathsep.join([here] + rest)
    os.environ["PYTHONSAFEPATH"] = "1"


_children_import_the_tallyio_under_test()


def subprocess_env(**extra: str) -> dict:
    """The environment for a child interpreter (see above), with ``extra`` set."""
    return dict(os.environ, **extra)


def run_threads(*targets, timeout: float = 240.0):
    """Run each ``(fn, args)`` on its own thread at once and return their
    results in order; re-raise the first exception a thread hit.

    The threads are daemons joined against one shared deadline, so a helper
    stuck in a nogil loop fails the test instead of hanging the run."""
    results = [None] * len(targets)
    errors = []

    def body(i, fn, args):
        try:
            results[i] = fn(*args)
        except BaseException as exc:  # re-raised below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i, fn, args), daemon=True)
               for i, (fn, args) in enumerate(targets)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), f"a helper thread hung for {timeout} s"
    if errors:
        raise errors[0]
    return results


def build_user_extension(tmp_path, name: str, source: str, monkeypatch):
    """Compile ``source`` as extension module ``name`` in tmp_path, as a user's
    own Cython code would be (include_dirs=[tallyio.get_include()], cimports
    from the installed .pxd files), with no compiler warning about it, and
    import it."""
    import importlib
    import subprocess
    import sys
    from pathlib import Path

    import tallyio

    pytest.importorskip("Cython")
    if any(lib in os.environ.get("LD_PRELOAD", "") for lib in ("libasan", "libtsan")):
        pytest.skip("the system compiler does not run under a preloaded sanitizer runtime")
    (tmp_path / f"{name}.pyx").write_text(source)
    (tmp_path / "setup.py").write_text(
        "import tallyio\n"
        "from setuptools import Extension, setup\n"
        "from Cython.Build import cythonize\n"
        f"setup(ext_modules=cythonize([Extension('{name}', ['{name}.pyx'],\n"
        "      include_dirs=[tallyio.get_include()], extra_compile_args=['-std=c11', '-O2'])],\n"
        "      compiler_directives={'language_level': 3}))\n")
    # the build must find the same tallyio (installed, or an in-place dev build) as the tests
    env = dict(os.environ)
    root = str(Path(tallyio.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
                          cwd=tmp_path, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    warnings = [line for line in (proc.stdout + proc.stderr).splitlines()
                if "warning:" in line and name in line]
    assert not warnings, "\n".join(warnings)
    monkeypatch.syspath_prepend(str(tmp_path))
    return importlib.import_module(name)

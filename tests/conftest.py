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


def _scale() -> float:
    raw = os.environ.get("TALLYIO_TEST_SCALE", "1.0")
    try:
        value = float(raw)
    except ValueError:
        raise pytest.UsageError(f"TALLYIO_TEST_SCALE must be a number, got {raw!r}")
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

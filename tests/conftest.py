"""Shared test configuration.

TALLYIO_TEST_SCALE (default 1.0) scales the item counts of the concurrency
tests; the sanitizer script runs them at a smaller scale because
ThreadSanitizer slows code 5-15x.  Random tests print their seed.
"""
import os
import random

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



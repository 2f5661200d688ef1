"""The scheduler's idle word (tallyio/_ext/sched_idle.pxd): its named
operations keep the searching and sleeping counts apart, and with TIO_DEBUG
(the sanitizer builds) TIO_DEBUG_ASSERT stops a count from underflowing.

Compiled as a user module against the in-place .pxd files, with TIO_DEBUG
defined ahead of every header, so the assertions are on in it."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import build_user_extension

SOURCE = '''
cdef extern from *:
    """
    #define TIO_DEBUG 1
    """
from libc.stdint cimport uint64_t
from tallyio._ext.common cimport tio_atomic_u64, tio_atomic_init_u64, tio_atomic_load_u64_relaxed
from tallyio._ext.sched_idle cimport (idle_searching, idle_sleeping, idle_wake_needed,
                                      idle_begin_search, idle_end_search, idle_to_sleeping,
                                      idle_to_searching, idle_end_sleep)

cdef tuple counts(tio_atomic_u64 *word):
    cdef uint64_t v = tio_atomic_load_u64_relaxed(word)
    return (idle_searching(v), idle_sleeping(v), idle_wake_needed(v))

def walk():
    """Two workers: both search, both park, one is woken, it runs, the other
    cancels its sleep and runs too."""
    cdef tio_atomic_u64 word
    tio_atomic_init_u64(&word, 0)
    steps = [counts(&word)]
    idle_begin_search(&word); steps.append(counts(&word))
    idle_begin_search(&word); steps.append(counts(&word))
    idle_to_sleeping(&word); steps.append(counts(&word))
    idle_to_sleeping(&word); steps.append(counts(&word))
    idle_to_searching(&word); steps.append(counts(&word))
    idle_end_search(&word); steps.append(counts(&word))
    idle_end_sleep(&word); steps.append(counts(&word))
    return steps

def previous_words():
    """Each transition returns the word before it."""
    cdef tio_atomic_u64 word
    tio_atomic_init_u64(&word, 0)
    return [idle_begin_search(&word), idle_to_sleeping(&word), idle_to_searching(&word),
            idle_end_search(&word)]

def underflow(str which):
    cdef tio_atomic_u64 word
    tio_atomic_init_u64(&word, 0)
    if which == "end_search":
        idle_end_search(&word)
    elif which == "to_sleeping":
        idle_to_sleeping(&word)
    elif which == "to_searching":
        idle_to_searching(&word)
    else:
        idle_end_sleep(&word)
'''


@pytest.fixture(scope="module")
def idle_module(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    try:
        yield build_user_extension(tmp_path_factory.mktemp("idle"), "idle_word_ops", SOURCE, mp)
    finally:
        mp.undo()


@pytest.mark.timeout(600)
def test_transitions_move_workers_between_the_two_halves(idle_module):
    assert idle_module.walk() == [
        (0, 0, False),     # everyone running
        (1, 0, False),     # one searches
        (2, 0, False),
        (1, 1, False),     # one parks: a searcher is left, a push needs no wake-up
        (0, 2, True),      # both park: a push must wake one
        (1, 1, False),     # woken as a searcher, in one step
        (0, 1, True),      # it found work
        (0, 0, False),     # the other cancelled its sleep: it runs
    ]
    assert idle_module.previous_words() == [0, 1, 1 << 32, 1]


@pytest.mark.timeout(600)
@pytest.mark.parametrize("which", ["end_search", "to_sleeping", "to_searching", "end_sleep"])
def test_debug_assert_stops_an_underflowing_count(idle_module, which):
    code = f"import idle_word_ops; idle_word_ops.underflow({which!r})"
    env = {**os.environ, "PYTHONPATH": str(Path(idle_module.__file__).parent)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == -6, (proc.returncode, proc.stderr)      # SIGABRT
    assert "tallyio: invariant broken" in proc.stderr and "idle_" in proc.stderr, proc.stderr

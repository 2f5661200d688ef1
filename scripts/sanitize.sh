#!/usr/bin/env bash
# Rebuild tallyio with ThreadSanitizer and with AddressSanitizer and run the
# tests under each, failing on any report: under TSan the concurrency tests
# (pytest -m concurrency), under ASan the whole suite (every bad-input path
# too) except the few listed in asan_skip below, each with its reason.
#
#   scripts/sanitize.sh [thread|address|all]      (default: all)
#   scripts/sanitize.sh venv                      only create the virtual environment the runs use
#                                                 (CI does that beside its other steps; it is network
#                                                 and disk, not compiling)
#
# Each sanitizer gets its own copy of the source tree under $TALLYIO_SANITIZE_DIR
# (default: a temp dir) built in place; the runtime is LD_PRELOADed into Python
# because the interpreter itself is not instrumented.  Item counts are scaled by
# TALLYIO_TEST_SCALE (default 0.02 here: TSan slows code 5-15x).
set -euo pipefail

which="${1:-all}"
case "$which" in thread|address|all|venv) ;; *) echo "usage: $0 [thread|address|all|venv]" >&2; exit 2;; esac

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${PYTHON:-python3}"
work="${TALLYIO_SANITIZE_DIR:-$(mktemp -d -t tallyio-sanitize.XXXXXX)}"
scale="${TALLYIO_TEST_SCALE:-0.02}"

venv="$work/venv"
if [ ! -x "$venv/bin/python" ]; then
    "$py" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --upgrade pip
    # the same dependencies the README's test command installs (pyproject's runtime list and its
    # `test` extra), read from pyproject.toml so the two lists cannot drift apart
    mapfile -t deps < <("$venv/bin/python" - "$repo/pyproject.toml" <<'PY'
import sys
try:
    import tomllib
except ImportError:  # Python 3.10: pip vendors a TOML reader
    from pip._vendor import tomli as tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
print("\n".join(project["dependencies"] + project["optional-dependencies"]["test"]))
PY
)
    "$venv/bin/python" -m pip install -q "setuptools>=77" "${deps[@]}"
fi
[ "$which" = venv ] && exit 0

# ASan runs the whole suite except these, each with its reason:
asan_skip=(
    # compiles an extension with the system compiler and loads it beside the instrumented ones
    --ignore=tests/test_cimport.py
    # a real node and real contracts: Python talking JSON-RPC; the compiled parts they reach (the
    # websocket decoders, the pipeline) run under ASan in test_node_source.py and the replay tests
    --ignore-glob='tests/test_*_anvil.py' --ignore=tests/test_devnet.py
    # 1000 fork/SIGKILL/reopen rounds of the record path the other state tests run under ASan once
    # each (minutes here); the crash-safety proof itself runs in the main test step
    --deselect=tests/test_state_crash.py::test_kill_minus_nine_loses_nothing_committed
    # builds its own ASan+UBSan copy of the decoder's C core: under the preloaded runtime that
    # proves nothing more
    --ignore=tests/test_eth_asan.py
    # headless Chromium renders the HTML report: a browser, not our code, under the preloaded runtime
    --deselect=tests/test_metrics_report.py::test_report_renders_in_chromium_and_its_plots_drew
)

build_one() {
    local kind="$1" src="$work/$1"
    rm -rf "$src"
    mkdir -p "$src"
    # copy the tree without build products, except the C that Cython generated: it does not depend
    # on the sanitizer (the flags reach only the C compiler), tar keeps its mtime, and cythonize
    # regenerates any file older than its .pyx/.pxd/.pxi; so a tree that was built once (CI's
    # install) is not cythonized twice more here
    (cd "$repo" && tar --exclude=.git --exclude=build --exclude='*.so' --exclude='*.o' \
        --exclude='.venv*' --exclude=chain/node_modules -cf - .) | (cd "$src" && tar -xf -)
    echo "== building with -fsanitize=$kind in $src"
    (cd "$src" && TALLYIO_SANITIZE="$kind" "$venv/bin/python" setup.py -q build_ext --inplace >"$work/$kind-build.log" 2>&1) \
        || { cat "$work/$kind-build.log"; return 1; }
}

test_one() {
    local kind="$1" src="$work/$1" reports="$work/reports-$1" runtime status
    rm -rf "$reports"
    mkdir -p "$reports"
    local -a env_vars
    if [ "$kind" = thread ]; then
        runtime="$(gcc -print-file-name=libtsan.so)"
        env_vars=("TSAN_OPTIONS=halt_on_error=1 exitcode=66 report_signal_unsafe=0 second_deadlock_stack=1 log_path=$reports/report")
    else
        # libstdc++ too: ASan intercepts __cxa_throw only if it is loaded when ASan starts,
        # and C++ extensions (matplotlib's ft2font) throw inside their own code
        runtime="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libstdc++.so)"
        # CPython frees its arenas at exit only partly: leak checking would drown real reports.
        # PYTHONMALLOC=malloc lets ASan see every object allocation.
        env_vars=("ASAN_OPTIONS=detect_leaks=0 halt_on_error=1 exitcode=66 abort_on_error=0 log_path=$reports/report"
                  "PYTHONMALLOC=malloc")
    fi
    local selection=(-m concurrency)
    # ASan's run is the whole suite in one mostly single-threaded interpreter: pytest-xdist spreads
    # its files over TALLYIO_ASAN_PROCESSES processes (default 2), so it does not run alone on one
    # core once TSan's shorter run is done; a test that aborts the interpreter (a broken
    # TIO_DEBUG_ASSERT invariant, a fatal error) is reported by name as a crashed worker
    [ "$kind" = address ] && selection=("${asan_skip[@]}" -n "${TALLYIO_ASAN_PROCESSES:-2}" --dist loadfile)
    echo "== pytest ${selection[*]} under $kind sanitizer (scale $scale)"
    status=0
    # setarch -R: TSan's shadow memory layout rejects the high-entropy ASLR of newer kernels.
    # --capture=sys: pytest captures Python's sys.stdout/stderr only, so what C code writes to fd 2
    # before it aborts (a broken TIO_DEBUG_ASSERT invariant, glibc's heap checks) reaches this log
    # instead of dying with the test's capture file
    (cd "$src" && env "${env_vars[@]}" TALLYIO_TEST_SCALE="$scale" LD_PRELOAD="$runtime" setarch "$(uname -m)" -R \
        "$venv/bin/python" -m pytest tests "${selection[@]}" -q --capture=sys -p no:cacheprovider -x -rfE) || status=$?
    if [ -n "$(ls -A "$reports")" ]; then
        echo "!! $kind sanitizer reports:"; cat "$reports"/*; return 1
    fi
    if [ "$status" -ne 0 ]; then
        echo "!! tests failed under the $kind sanitizer (exit $status)"; return 1
    fi
    echo "== $kind sanitizer: clean"
}

kinds=()
if [ "$which" = all ] || [ "$which" = thread ]; then kinds+=(thread); fi
if [ "$which" = all ] || [ "$which" = address ]; then kinds+=(address); fi
# the builds one after the other (each compiles in parallel already), then the test runs side by
# side (TSan's threads and ASan's processes share the cores; TSan's run is the shorter one, and
# ASan's processes then take the whole machine); each run's output is kept in its log and shown whole
for kind in "${kinds[@]}"; do build_one "$kind"; done
declare -A pids
for kind in "${kinds[@]}"; do
    test_one "$kind" >"$work/$kind-test.log" 2>&1 &
    pids[$kind]=$!
done
rc=0
declare -A statuses
for kind in "${kinds[@]}"; do
    statuses[$kind]=0
    wait "${pids[$kind]}" || statuses[$kind]=$?
    cat "$work/$kind-test.log"
done
# what went wrong, last, so that a log cut in the middle (CI shows its head and tail) still shows it
for kind in "${kinds[@]}"; do
    [ "${statuses[$kind]}" -eq 0 ] && continue
    rc=1
    echo "!! $kind sanitizer run failed (exit ${statuses[$kind]}); the lines that say why:"
    grep -aE "invariant broken|Fatal Python error|Segmentation fault|Aborted|crashed|FAILED|ERROR |passed|failed|sanitizer reports" \
        "$work/$kind-test.log" | tail -n 25 || true
done
exit $rc

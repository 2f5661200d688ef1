#!/usr/bin/env bash
# Rebuild tallyio with ThreadSanitizer and with AddressSanitizer and run the
# tests under each, failing on any report: under TSan the concurrency tests
# (pytest -m concurrency), under ASan the whole suite (every bad-input path
# too), except the test that compiles an extension with the system compiler.
#
#   scripts/sanitize.sh [thread|address|all]      (default: all)
#
# Each sanitizer gets its own copy of the source tree under $TALLYIO_SANITIZE_DIR
# (default: a temp dir) built in place; the runtime is LD_PRELOADed into Python
# because the interpreter itself is not instrumented.  Item counts are scaled by
# TALLYIO_TEST_SCALE (default 0.02 here: TSan slows code 5-15x).
set -euo pipefail

which="${1:-all}"
case "$which" in thread|address|all) ;; *) echo "usage: $0 [thread|address|all]" >&2; exit 2;; esac

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

run_one() {
    local kind="$1" runtime src status reports
    src="$work/$kind"
    reports="$work/reports-$kind"
    rm -rf "$src" "$reports"
    mkdir -p "$src" "$reports"
    # copy the tree without build products
    (cd "$repo" && tar --exclude=.git --exclude=build --exclude='*.so' --exclude='tallyio/*.c' \
        --exclude='.venv*' --exclude=chain/node_modules -cf - .) | (cd "$src" && tar -xf -)
    echo "== building with -fsanitize=$kind in $src"
    (cd "$src" && TALLYIO_SANITIZE="$kind" "$venv/bin/python" setup.py -q build_ext --inplace >"$work/$kind-build.log" 2>&1) \
        || { cat "$work/$kind-build.log"; return 1; }
    if [ "$kind" = thread ]; then
        runtime="$(gcc -print-file-name=libtsan.so)"
        export TSAN_OPTIONS="halt_on_error=1 exitcode=66 report_signal_unsafe=0 second_deadlock_stack=1 log_path=$reports/report"
    else
        # libstdc++ too: ASan intercepts __cxa_throw only if it is loaded when ASan starts,
        # and C++ extensions (matplotlib's ft2font) throw inside their own code
        runtime="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libstdc++.so)"
        # CPython frees its arenas at exit only partly: leak checking would drown real reports.
        export ASAN_OPTIONS="detect_leaks=0 halt_on_error=1 exitcode=66 abort_on_error=0 log_path=$reports/report"
        export PYTHONMALLOC=malloc   # let ASan see every object allocation
    fi
    local selection=(-m concurrency)
    [ "$kind" = address ] && selection=(--ignore=tests/test_cimport.py)
    echo "== pytest ${selection[*]} under $kind sanitizer (scale $scale)"
    status=0
    # setarch -R: TSan's shadow memory layout rejects the high-entropy ASLR of newer kernels.
    (cd "$src" && TALLYIO_TEST_SCALE="$scale" LD_PRELOAD="$runtime" setarch "$(uname -m)" -R \
        "$venv/bin/python" -m pytest tests "${selection[@]}" -q -p no:cacheprovider -x) || status=$?
    unset TSAN_OPTIONS ASAN_OPTIONS PYTHONMALLOC
    if [ -n "$(ls -A "$reports")" ]; then
        echo "!! $kind sanitizer reports:"; cat "$reports"/*; return 1
    fi
    if [ "$status" -ne 0 ]; then
        echo "!! tests failed under the $kind sanitizer (exit $status)"; return 1
    fi
    echo "== $kind sanitizer: clean"
}

rc=0
if [ "$which" = all ] || [ "$which" = thread ]; then run_one thread || rc=1; fi
if [ "$which" = all ] || [ "$which" = address ]; then run_one address || rc=1; fi
exit $rc

#!/usr/bin/env bash
# The linters CI runs (.ci/run), with the pinned versions of pyproject.toml's `lint` extra;
# their configuration is in pyproject.toml ([tool.ruff], [tool.cython-lint], [tool.mypy]).
#
#   scripts/lint.sh install   pip-install the `lint` extra's pins into $PYTHON (read from pyproject.toml)
#   scripts/lint.sh static    ruff over the Python files, cython-lint over every .pyx/.pxd/.pxi
#                             (no build needed: CI runs it first)
#   scripts/lint.sh stubs     every compiled module has a .pyi, and `python -m mypy.stubtest` finds each
#                             stub true to the built module: the tallyio that $PYTHON imports from the
#                             current directory (an in-place build from the repo root; the installed
#                             package from anywhere else, as CI does)
#   scripts/lint.sh           static, then stubs
#
# PYTHON (default: python3) runs every tool.  Exit status 1 on any finding.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${PYTHON:-python3}"
what="${1:-all}"
case "$what" in install|static|stubs|all) ;; *) echo "usage: $0 [install|static|stubs|all]" >&2; exit 2;; esac

if [ "$what" = install ]; then
    mapfile -t pins < <("$py" - "$repo/pyproject.toml" <<'PY'
import sys
try:
    import tomllib
except ImportError:  # Python 3.10: pip vendors a TOML reader
    from pip._vendor import tomli as tomllib
print("\n".join(tomllib.load(open(sys.argv[1], "rb"))["project"]["optional-dependencies"]["lint"]))
PY
)
    "$py" -m pip install -q "${pins[@]}"
    exit 0
fi

rc=0
if [ "$what" = static ] || [ "$what" = all ]; then
    echo "== ruff $("$py" -m ruff --version | cut -d' ' -f2)"
    (cd "$repo" && "$py" -m ruff check --no-cache tallyio tests scripts asv_bench benchmarks setup.py) || rc=1
    # cython-lint runs `pycodestyle` by name: the one installed beside $PYTHON's packages, first
    PATH="$("$py" -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
    # cython-lint has no `python -m` entry point: call its main() in $PYTHON
    cython_lint=("$py" -c 'import sys; from cython_lint.cython_lint import main; sys.exit(main())')
    echo "== cython-lint $("${cython_lint[@]}" --version)"
    # every Cython file git knows (a fresh clone has no build products to skip)
    (cd "$repo" && git ls-files -z '*.pyx' '*.pxd' '*.pxi' | xargs -0 "${cython_lint[@]}") && echo "cython-lint: clean" \
        || rc=1
fi

if [ "$what" = stubs ] || [ "$what" = all ]; then
    echo "== mypy.stubtest (mypy $("$py" -m mypy --version | cut -d' ' -f2))"
    # the compiled modules of the tallyio this interpreter imports, and which of them lack a stub
    modules="$("$py" - <<'PY'
import importlib.machinery, pathlib, sys
import tallyio
root = pathlib.Path(tallyio.__file__).parent
compiled = sorted({p for s in importlib.machinery.EXTENSION_SUFFIXES for p in root.rglob("*" + s)})
if not compiled:
    sys.exit(f"no compiled modules under {root}: build first (python setup.py build_ext --inplace)")
names = []
for p in compiled:
    stem = p.name.split(".")[0]
    name = ".".join(("tallyio",) + p.relative_to(root).parent.parts + (stem,))
    if not p.with_name(stem + ".pyi").exists():
        print(f"{name}: compiled module without a .pyi stub beside it", file=sys.stderr)
        sys.exit(1)
    names.append(name)
print(f"{len(names)} compiled modules under {root}", file=sys.stderr)
print(" ".join(names))
PY
)" || exit 1
    allow=(--allowlist "$repo/scripts/stubtest-allowlist.txt")
    # PEP 688's __buffer__ exists at runtime from Python 3.12 on
    if "$py" -c 'import sys; sys.exit(sys.version_info >= (3, 12))'; then
        allow+=(--allowlist "$repo/scripts/stubtest-allowlist-py311.txt")
    fi
    # shellcheck disable=SC2086  # one word per module
    "$py" -m mypy.stubtest --mypy-config-file "$repo/pyproject.toml" "${allow[@]}" $modules && echo "stubtest: clean" \
        || rc=1
fi
exit $rc

"""Build the compiled core: every tallyio/**/*.pyx becomes an extension named by its
path (tallyio/_ext/spsc.pyx -> tallyio._ext.spsc, tallyio/eth/_decode.pyx ->
tallyio.eth._decode); every one sees the shared headers in tallyio/_ext/include.

Environment switches:
  TALLYIO_SANITIZE=thread|address   build with ThreadSanitizer / AddressSanitizer
                                    (-O1 -g; defines TIO_DEBUG, which turns TIO_DEBUG_ASSERT
                                    on (tio_platform.h); thread also defines TIO_TSAN, see
                                    tio_atomic.h)
  TALLYIO_NATIVE=1                  add -march=native (never for wheels you ship)
  TALLYIO_BUILD_JOBS=N              Cython and C compiler processes (default: the CPUs this
                                    process may use; `pip install .` then builds in parallel too)
"""
import os
import sys
from pathlib import Path

from setuptools import Extension, setup
from Cython.Build import cythonize

HERE = Path(__file__).parent
PACKAGE = HERE / "tallyio"
INCLUDE = str(PACKAGE / "_ext" / "include")

sanitize = os.environ.get("TALLYIO_SANITIZE", "").strip().lower()
if sanitize not in ("", "thread", "address"):
    sys.exit(f"TALLYIO_SANITIZE must be 'thread' or 'address', got {sanitize!r}")

compile_args = ["-std=c11", "-O3"]
link_args = []
macros = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
if sanitize:
    compile_args = ["-std=c11", "-O1", "-g", "-fno-omit-frame-pointer", f"-fsanitize={sanitize}"]
    link_args = [f"-fsanitize={sanitize}"]
    macros.append(("TIO_DEBUG", "1"))     # TIO_DEBUG_ASSERT checks the core's invariants
    if sanitize == "thread":
        macros.append(("TIO_TSAN", "1"))
if os.environ.get("TALLYIO_NATIVE") == "1":
    compile_args.append("-march=native")


def build_jobs() -> int:
    value = os.environ.get("TALLYIO_BUILD_JOBS", "").strip()
    if not value:
        return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    if not value.isdigit() or int(value) < 1:
        sys.exit(f"TALLYIO_BUILD_JOBS must be a positive integer, got {value!r}")
    return int(value)


jobs = build_jobs()

extensions = [
    Extension(
        ".".join(pyx.relative_to(HERE).with_suffix("").parts),
        [str(pyx.relative_to(HERE))],
        include_dirs=[INCLUDE],
        define_macros=macros,
        extra_compile_args=compile_args,
        extra_link_args=link_args,
    )
    for pyx in sorted(PACKAGE.rglob("*.pyx"))
]

setup(
    ext_modules=cythonize(
        extensions,
        include_path=[str(HERE)],
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "initializedcheck": False,
            "cdivision": True,
            "embedsignature": True,
        },
        # keep the annotated HTML out of the tree; rebuild when .pxd/.pxi change
        annotate=False,
        nthreads=jobs if jobs > 1 else 0,
    ),
    # the C compiles in parallel too (build_ext -j), also under `pip install .` and `python -m build`
    options={"build_ext": {"parallel": jobs}},
)

"""Check that the sdist carries every source file and the wheel every Python
module, .pxd, .pyi and header (so users can `cimport` the core), and no
generated C."""
import sys
import tarfile
import zipfile
from pathlib import Path

dist = Path(sys.argv[1])
repo = Path(__file__).resolve().parent.parent
package = repo / "tallyio"
# every Cython source, declaration, stub, header and include of every sub-package (generated C excluded)
sources = sorted(p.relative_to(repo).as_posix() for pattern in ("*.pyx", "*.pxd", "*.pyi", "*.h", "*.pxi")
                 for p in package.rglob(pattern))
errors = []

(sdist,) = dist.glob("*.tar.gz")
with tarfile.open(sdist) as tf:
    names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
errors += [f"sdist lacks {s}" for s in sources if s not in names]
errors += [f"sdist lacks {s}" for s in ("setup.py", "pyproject.toml", "README.md", "tallyio/py.typed")
           if s not in names]

(wheel,) = dist.glob("*.whl")
with zipfile.ZipFile(wheel) as zf:
    wnames = set(zf.namelist())
# every Python module of the package, sub-packages included (a package left out of
# pyproject's list builds fine and fails only at import on the user's machine)
python_modules = sorted(p.relative_to(repo).as_posix() for p in (repo / "tallyio").rglob("*.py"))
need = [s for s in sources if not s.endswith(".pyx")] + ["tallyio/py.typed"] + python_modules
errors += [f"wheel lacks {s}" for s in need if s not in wnames]
errors += [f"wheel carries generated C {n}" for n in wnames if n.endswith(".c")]
modules = sorted(p.relative_to(repo).with_suffix("").as_posix() for p in package.rglob("*.pyx"))
for m in modules:
    if not any(n.startswith(f"{m}.") and n.endswith(".so") for n in wnames):
        errors.append(f"wheel lacks the compiled module {m.replace('/', '.')}")
if errors:
    sys.exit("\n".join(errors))
print(f"dist OK: {sdist.name} ({len(names)} files), "
      f"{wheel.name} ({len(wnames)} files, {len(modules)} compiled modules)")

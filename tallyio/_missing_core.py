"""The message for an import of tallyio whose compiled core is missing
(imported only then, by ``tallyio/__init__.py``).

Owns: the diagnosis (an unbuilt source checkout shadowing the installed
package, extensions built for another Python, or an incomplete installation)
and what to do about each.  Reads the file system; touches nothing.
"""
from __future__ import annotations

import os
import sys
import sysconfig


def explain(error: ModuleNotFoundError) -> str:
    """What went wrong and what to do, for ``error`` (a missing ``tallyio._ext.*``)."""
    package = os.path.dirname(os.path.abspath(__file__))
    tree = os.path.dirname(package)
    module = (error.name or "tallyio._ext").rsplit(".", 1)[-1]
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    others = sorted(name for name in _listdir(os.path.join(package, "_ext"))
                    if name.startswith(module + ".") and name.endswith((".so", ".pyd")) and name != module + suffix)
    python = f"Python {sys.version.split()[0]} ({sys.executable})"
    lines = [f"tallyio's compiled core is missing: {error}.", ""]
    if others:
        lines += [f"{package}/_ext holds {', '.join(others)}, built for another Python; this is {python},",
                  f"which needs {module}{suffix}."]
    if os.path.isfile(os.path.join(tree, "setup.py")):
        lines += [f"You are importing tallyio from its source tree ({tree}), whose extensions",
                  f"are not built for {python}. The source tree shadows any installed tallyio. Either:",
                  f"  * build it in place:  cd {tree} && python setup.py build_ext --inplace",
                  "  * or start Python from another directory to use the installed tallyio",
                  "    (python -m pip install . installs it)."]
    else:
        lines += [f"The tallyio installed at {package} is incomplete or was built for another Python;",
                  "reinstall it:  python -m pip install --force-reinstall tallyio"]
    return "\n".join(lines)


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []

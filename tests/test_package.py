"""The package as a user meets it: names, errors, stubs, shipped .pxd files,
docstring examples, and the command line."""
import doctest
import importlib
import pkgutil
import queue
from pathlib import Path

import pytest

import tallyio
from tallyio import errors

EXT = Path(tallyio.__file__).parent / "_ext"
COMPILED = sorted({p.name.split(".")[0] for p in EXT.glob("*.so")})


def test_version_and_all():
    assert isinstance(tallyio.__version__, str) and tallyio.__version__.count(".") == 2
    for name in tallyio.__all__:
        assert hasattr(tallyio, name), name


@pytest.mark.parametrize("cls, std", [
    (errors.QueueFullError, queue.Full),
    (errors.PoolExhaustedError, MemoryError),
    (errors.BlockError, ValueError),
    (errors.RoleError, RuntimeError),
    (errors.ConfigError, ValueError),
    (errors.SchedulerNotRunningError, RuntimeError),
    (errors.ResourceLimitError, MemoryError),
    (errors.ResourceLimitError, errors.ConfigError),
])
def test_error_hierarchy(cls, std):
    assert issubclass(cls, errors.TallyioError)
    assert issubclass(cls, std)


@pytest.mark.parametrize("name", errors.__all__)
def test_every_error_is_a_tallyio_error_and_a_standard_one(name):
    """errors.py's promise, for every class it exports (the engine's too): catchable
    as TallyioError and as the standard exception a user would already catch."""
    cls = getattr(errors, name)
    assert issubclass(cls, errors.TallyioError)
    if cls is not errors.TallyioError:
        assert any(issubclass(cls, std) and std is not Exception
                   for std in (ValueError, RuntimeError, OSError, MemoryError, TimeoutError, LookupError,
                               queue.Full, queue.Empty, ConnectionError, OverflowError, TypeError)), name


def test_every_compiled_module_of_the_package_has_a_stub():
    root = Path(tallyio.__file__).parent
    for so in root.rglob("*.so"):
        stub = so.with_name(so.name.split(".")[0] + ".pyi")
        assert stub.is_file(), f"no stub for {so.relative_to(root)}"


def test_every_compiled_module_has_a_stub_and_a_pxd():
    assert {"spsc", "mpmc", "deque", "pool", "status", "_testing"} <= set(COMPILED)
    for name in COMPILED:
        assert (EXT / f"{name}.pyi").is_file(), f"no stub for tallyio._ext.{name}"
    for name in ("spsc", "mpmc", "deque", "pool", "common", "status"):
        assert (EXT / f"{name}.pxd").is_file(), f"{name}.pxd is not installed: users cannot cimport it"
    for header in ("tio_atomic.h", "tio_platform.h", "tio_status.h"):
        assert (EXT / "include" / header).is_file()
    assert (Path(tallyio.__file__).parent / "py.typed").is_file()


def _modules():
    yield tallyio
    for info in pkgutil.walk_packages(tallyio.__path__, "tallyio."):
        if info.name.endswith("__main__"):
            continue
        yield importlib.import_module(info.name)


def test_docstring_examples_run():
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    examples_per_module = {}
    for module in _modules():
        for test in finder.find(module, module.__name__):
            runner.run(test)
            examples_per_module[module.__name__] = examples_per_module.get(module.__name__, 0) + len(test.examples)
    failed, attempted = runner.summarize(verbose=False)
    assert failed == 0
    # the compiled classes carry runnable examples too, not only the Python layer
    for name in ("tallyio._ext.spsc", "tallyio._ext.mpmc", "tallyio._ext.deque", "tallyio._ext.pool"):
        assert examples_per_module.get(name, 0) > 0, f"no docstring examples found in {name}"


def test_cli_demo(capsys):
    from tallyio.cli import main
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "in order: True" in out
    assert "thief steal -> (SUCCESS, 'a')" in out
    assert "in use = 0" in out
    assert "NumaScheduler: 20 Python tasks (fib(19) = 4181), a future -> 144, 100,000 native tasks" in out


def test_cli_bench_smoke(capsys):
    # two groups through the CLI (its options, the summary, --details): each group's own test file
    # smoke-runs its sections, and CI's step 3 runs `tallyio bench --smoke` over all of them
    from tallyio.cli import main
    assert main(["bench", "--smoke", "--details", "--group", "core", "--group", "scheduler"]) == 0
    out = capsys.readouterr().out
    for case in ("SpscQueue put_nowait+get_nowait", "MemoryPool alloc+free", "C level, deque",
                 "tasks per second"):
        assert case in out


def test_cli_rejects_unknown_command(capsys):
    from tallyio.cli import main
    with pytest.raises(SystemExit) as exc:
        main(["frobnicate"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_readme_python_examples_run(capsys):
    import re

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert blocks, "README.md has no python example"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "{'tx': '0xabc'}" in out and "PoolStats(capacity=1024, in_use=0" in out


# ---- issue 9: importing from an unbuilt source checkout says what to do -----------------------------

def _unbuilt_copy(tmp_path, with_setup_py: bool, foreign_extension: str | None = None) -> Path:
    """The package's Python files without any compiled module, as in a fresh
    checkout (with setup.py beside it) or a broken installation (without)."""
    import shutil

    package = Path(tallyio.__file__).parent
    shutil.copytree(package, tmp_path / "tallyio",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "*.c", "__pycache__"))
    if with_setup_py:
        (tmp_path / "setup.py").write_text("# the checkout's setup.py\n")
    if foreign_extension:
        (tmp_path / "tallyio" / "_ext" / foreign_extension).write_bytes(b"")
    return tmp_path


def _import_tallyio_in(folder: Path):
    import os
    import subprocess
    import sys

    # as a user starting Python inside that folder: the working directory first on sys.path
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSAFEPATH")}
    return subprocess.run([sys.executable, "-c", "import tallyio"], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=120)


def test_import_from_unbuilt_source_tree_explains(tmp_path):
    proc = _import_tallyio_in(_unbuilt_copy(tmp_path, with_setup_py=True))
    assert proc.returncode == 1
    err = proc.stderr
    assert "ImportError: tallyio's compiled core is missing: No module named 'tallyio._ext.spsc'" in err
    assert f"from its source tree ({tmp_path})" in err
    assert f"cd {tmp_path} && python setup.py build_ext --inplace" in err
    assert "start Python from another directory" in err
    assert "ModuleNotFoundError" not in err      # one clear error, not a chain


def test_import_of_incomplete_installation_explains(tmp_path):
    proc = _import_tallyio_in(_unbuilt_copy(tmp_path, with_setup_py=False,
                                            foreign_extension="spsc.cpython-39-x86_64-linux-gnu.so"))
    assert proc.returncode == 1
    assert "spsc.cpython-39-x86_64-linux-gnu.so, built for another Python" in proc.stderr
    assert "python -m pip install --force-reinstall tallyio" in proc.stderr


# ---- issue 9: the command line ------------------------------------------------------------------

def test_cli_version(capsys):
    from tallyio.cli import main
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"tallyio {tallyio.__version__}"


def test_cli_version_as_a_command():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "tallyio", "--version"], capture_output=True, text=True,
                          cwd=Path(tallyio.__file__).resolve().parent.parent, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == f"tallyio {tallyio.__version__}"


@pytest.mark.parametrize("argv, expected", [
    ([], ["commands:", "demo", "bench", "topology", "--version", "tallyio COMMAND --help"]),
    (["demo"], ["A short tour", "SpscQueue", "NumaScheduler"]),
    (["topology"], ["NUMA", "/sys/devices/system/node", "--json", "--root"]),
    (["bench"], ["--quick", "--details", "--json"]),
])
def test_cli_help_is_plain_text_with_a_description(capsys, argv, expected):
    import re

    from tallyio.cli import main
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert not re.search(r"``|:class:|:func:|:meth:|\.\. ", out), out     # no reST markup
    for text in expected:
        assert text in out, (text, out)
    # a description paragraph, not only the usage line and the options
    paragraphs = [p for p in out.split("\n\n") if p.strip()]
    assert len(paragraphs) >= 3, out

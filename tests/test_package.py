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
])
def test_error_hierarchy(cls, std):
    assert issubclass(cls, errors.TallyioError)
    assert issubclass(cls, std)


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
    from tallyio.cli import main
    assert main(["bench", "--smoke"]) == 0
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

"""Run every asv benchmark once, outside asv, to prove they still run.

    python asv_bench/smoke.py [name-filter]

Nothing is timed or compared: a benchmark that raises fails the smoke run.
Each parameter combination is run once (setup, the benchmark, teardown),
following asv's conventions (params/param_names, setup_cache, time_/track_/
peakmem_/mem_ prefixes).
"""
import importlib
import inspect
import itertools
import pkgutil
import sys
import time
from pathlib import Path

PREFIXES = ("time_", "track_", "peakmem_", "mem_", "timeraw_")


def _combos(params):
    if not params:
        return [()]
    if not isinstance(params[0], (list, tuple)):
        params = [params]
    return list(itertools.product(*params))


def _run_class(cls, failures):
    methods = [m for m in dir(cls) if m.startswith(PREFIXES)]
    if not methods:
        return 0
    count = 0
    cache = None
    if hasattr(cls, "setup_cache"):
        cache = cls().setup_cache()
    for combo in _combos(getattr(cls, "params", [])):
        for name in methods:
            obj = cls()
            args = ((cache,) if cache is not None else ()) + tuple(combo)
            label = f"{cls.__module__}.{cls.__name__}.{name}{combo if combo else ''}"
            try:
                if hasattr(obj, "setup"):
                    obj.setup(*args)
                getattr(obj, name)(*args)
                if hasattr(obj, "teardown"):
                    obj.teardown(*args)
                count += 1
            except NotImplementedError:
                pass  # asv's convention for "skip this combination"
            except Exception as exc:  # report every failure, not just the first
                failures.append(f"{label}: {type(exc).__name__}: {exc}")
    return count


def main(argv):
    pattern = argv[1] if len(argv) > 1 else ""
    root = Path(__file__).resolve().parent
    sys.path.insert(0, str(root))
    failures, total, start = [], 0, time.perf_counter()
    for info in pkgutil.iter_modules([str(root / "benchmarks")]):
        module = importlib.import_module(f"benchmarks.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and pattern in f"{info.name}.{cls.__name__}":
                total += _run_class(cls, failures)
    for failure in failures:
        print("FAILED", failure)
    print(f"asv smoke: {total} benchmark runs, {len(failures)} failed, {time.perf_counter() - start:.1f}s")
    return 1 if failures or total == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

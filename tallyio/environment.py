"""The one registry of ``TALLYIO_*`` environment variables: which exist, who
reads them, what they do; and the check that names an unknown one (a typo
otherwise goes unnoticed).

Owns: the registry and :func:`check_environment`.  Reads the environment, never
writes it; imports nothing from tallyio but the standard library.

A component that reads a new variable adds one :class:`Variable` line to
``_BUILTIN`` below (so it is known before that component is imported, and the
README's list is checked against it by the tests); code outside the package
(a plugin, a deployment) calls :func:`register`.

    >>> from tallyio.environment import check_environment, known_variables
    >>> "TALLYIO_WORKERS_PER_NODE" in {v.name for v in known_variables()}
    True
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     check_environment({"TALLYIO_WORKERS_PER_NOD": "2", "TALLYIO_SEED": "7"})
    ['TALLYIO_WORKERS_PER_NOD']
    >>> print(str(caught[0].message).split(";")[0])
    TALLYIO_WORKERS_PER_NOD is not a tallyio environment variable (did you mean TALLYIO_WORKERS_PER_NODE?)
"""
from __future__ import annotations

import difflib
import os
import re
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Variable", "register", "known_variables", "check_environment", "PREFIX"]

PREFIX = "TALLYIO_"
_NAME = re.compile(r"TALLYIO_[A-Z0-9_]+")


@dataclass(frozen=True)
class Variable:
    """One environment variable: its name, the component that reads it, and
    what it does (one line, as the README lists it)."""

    name: str
    reader: str
    meaning: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ValueError(f"an environment variable name must match {_NAME.pattern}, got {self.name!r}")


_BUILTIN = (
    # read by SchedulerConfig.from_env (tallyio.config)
    Variable("TALLYIO_NUMA_ENABLED", "tallyio.config",
             "0/1, false/true, no/yes, off/on: SchedulerConfig.numa_enabled"),
    Variable("TALLYIO_CPU_AFFINITY", "tallyio.config",
             "0/1, false/true, no/yes, off/on: SchedulerConfig.enable_cpu_affinity"),
    Variable("TALLYIO_WORKERS_PER_NODE", "tallyio.config",
             "an int 1..1024, or auto: SchedulerConfig.workers_per_numa_node"),
    # read by CoreConfig.from_env / production (tallyio.engine.config)
    Variable("TALLYIO_NODE_URL", "tallyio.engine",
             "ws://, wss://, http:// or https:// URL of the node: CoreConfig.node_url (production() requires it)"),
    Variable("TALLYIO_REPLAY_PATH", "tallyio.engine",
             "a recording to replay instead of a node: CoreConfig.replay_path"),
    Variable("TALLYIO_SIGNER_KEY_ENV", "tallyio.engine",
             "the NAME of the variable holding the private key: CoreConfig.signer_key_env"),
    Variable("TALLYIO_KEYSTORE", "tallyio.engine", "an encrypted keystore file: CoreConfig.keystore_path"),
    Variable("TALLYIO_KEYSTORE_PASSWORD_ENV", "tallyio.engine",
             "the NAME of the variable holding the keystore's password"),
    Variable("TALLYIO_PRIVATE_KEY", "tallyio.engine",
             "the default variable Signer.from_env() reads the hex private key from (never logged)"),
    Variable("TALLYIO_ENGINE_WORKERS", "tallyio.engine", "an int 1..256: CoreConfig.workers"),
    Variable("TALLYIO_CHECKPOINT_DIR", "tallyio.engine",
             "where the engine's journal and checkpoints live: CoreConfig.checkpoint_dir"),
    Variable("TALLYIO_CHECKPOINT_INTERVAL_MS", "tallyio.engine",
             "milliseconds between checkpoints: CoreConfig.checkpoint_interval_ms"),
    Variable("TALLYIO_METRICS_ENDPOINT", "tallyio.engine",
             "host:port of the Prometheus endpoint, or off: CoreConfig.metrics_endpoint"),
    Variable("TALLYIO_EXECUTE", "tallyio.engine",
             "0/1, false/true, no/yes, off/on: send real transactions (CoreConfig.execute)"),
    # an Aave v3 market (CoreConfig.aave_*, docs/liquidations.md)
    Variable("TALLYIO_AAVE_POOL", "tallyio.engine",
             "an Aave v3 market's Pool (0x address): CoreConfig.aave_pool"),
    Variable("TALLYIO_AAVE_DATA_PROVIDER", "tallyio.engine",
             "the market's AaveProtocolDataProvider: CoreConfig.aave_data_provider"),
    Variable("TALLYIO_AAVE_ORACLE", "tallyio.engine",
             "the market's price oracle: CoreConfig.aave_oracle"),
    Variable("TALLYIO_AAVE_ETH_ASSET", "tallyio.engine",
             "the reserve whose oracle price is ETH's, or off: CoreConfig.aave_eth_asset"),
    Variable("TALLYIO_AAVE_FROM_BLOCK", "tallyio.engine",
             "first block of the market's logs to catch up on: CoreConfig.aave_from_block"),
    Variable("TALLYIO_AAVE_BLOCK_SECONDS", "tallyio.engine",
             "seconds from a head to a liquidation's block: CoreConfig.aave_block_seconds"),
    Variable("TALLYIO_CONSUMER_SPIN_US", "tallyio.engine",
             "microseconds next_opportunity() polls before it sleeps: CoreConfig.consumer_spin_us"),
    Variable("TALLYIO_REPLAY_SPIN_US", "tallyio.engine",
             "microseconds a realtime replay spins before each record: CoreConfig.replay_spin_us"),
    Variable("TALLYIO_INLINE_ANALYSIS", "tallyio.engine",
             "1/0: the source's thread analyzes when a worker is idle: CoreConfig.inline_analysis"),
    Variable("TALLYIO_GC_FREEZE", "tallyio.engine",
             "1/0: start() freezes the heap alive at start out of GC passes: CoreConfig.gc_freeze"),
    # build (setup.py) and development tools
    Variable("TALLYIO_SANITIZE", "setup.py", "thread or address: build with that sanitizer"),
    Variable("TALLYIO_NATIVE", "setup.py", "1: build with -march=native (never for wheels you ship)"),
    Variable("TALLYIO_BUILD_JOBS", "setup.py",
             "Cython and compiler processes of a build (default: the CPUs this process may use)"),
    Variable("TALLYIO_SANITIZE_DIR", "scripts/sanitize.sh", "where the sanitizer builds go"),
    # a local chain for tests and examples (tallyio.devnet)
    Variable("TALLYIO_ANVIL", "tallyio.devnet",
             "the anvil executable to start (default: the npm package in TALLYIO_CHAIN_DIR)"),
    # the test suite (tests/conftest.py, tests/realparts.py)
    Variable("TALLYIO_TEST_SCALE", "tests", "scales the item counts of the stress tests (default 1.0)"),
    Variable("TALLYIO_SEED", "tests", "replays a random test with this seed"),
    Variable("TALLYIO_CHAIN_DIR", "tallyio.devnet, tests", "the npm folder holding anvil and the contract artifacts"),
    Variable("TALLYIO_REQUIRE_CHAIN", "tests", "1: a missing real part fails its test instead of skipping"),
    Variable("TALLYIO_MAINNET_DATA", "tests", "the folder of recorded mainnet transactions"),
)

_lock = threading.Lock()
_registry: dict[str, Variable] = {v.name: v for v in _BUILTIN}


def register(name: str, reader: str, meaning: str) -> Variable:
    """Make ``name`` a known variable (read by ``reader``); registering the
    same name again with the same reader is harmless, with another reader a
    ValueError (two components must not share a variable).

    >>> register("TALLYIO_EXAMPLE_URL", "docs example", "where the example connects").name
    'TALLYIO_EXAMPLE_URL'
    """
    variable = Variable(name, reader, meaning)
    with _lock:
        known = _registry.get(name)
        if known is not None and known.reader != reader:
            raise ValueError(f"{name} is already read by {known.reader}; {reader} cannot register it too")
        _registry[name] = variable
    return variable


def known_variables() -> tuple[Variable, ...]:
    """Every known variable, sorted by name."""
    with _lock:
        return tuple(sorted(_registry.values(), key=lambda v: v.name))


def check_environment(environ: Mapping[str, str] | None = None, *, stacklevel: int = 2) -> list[str]:
    """Warn (RuntimeWarning) once per ``TALLYIO_*`` variable of ``environ``
    (default ``os.environ``) that no component reads, naming it, the nearest
    known name and every known name; return the unknown names, sorted."""
    environ = os.environ if environ is None else environ
    with _lock:
        known = sorted(_registry)
    unknown = sorted(name for name in environ if name.startswith(PREFIX) and name not in known)
    for name in unknown:
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
        hint = f" (did you mean {close[0]}?)" if close else ""
        warnings.warn(f"{name} is not a tallyio environment variable{hint}; it is ignored. "
                      f"Known: {', '.join(known)}", RuntimeWarning, stacklevel=stacklevel + 1)
    return unknown

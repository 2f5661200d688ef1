"""``CoreConfig``: everything an :class:`~tallyio.engine.engine.Engine` is
started with, validated field by field (a :class:`~tallyio.errors.ConfigError`
names the field or the environment variable), with the presets
``production()``, ``development()``, ``replay(path)`` and ``from_env()``.

Owns validation and the ``TALLYIO_*`` variables of the engine (registered in
:mod:`tallyio.environment`).  Imports the mempool's stage configs (upstream);
nothing downstream.  It never holds a private key: only the NAME of the
environment variable that holds one, or a keystore path and the name of the
variable holding its password.

    >>> from tallyio.engine.config import CoreConfig
    >>> config = CoreConfig.replay()            # the embedded recording, dry run
    >>> config.node_url is None, config.execute, config.source
    (True, False, 'embedded replay')
    >>> CoreConfig(workers=0)
    Traceback (most recent call last):
    ...
    tallyio.errors.ConfigError: CoreConfig.workers must be an int in 1 .. 256, got 0
    >>> CoreConfig.production(environ={})
    Traceback (most recent call last):
    ...
    tallyio.errors.ConfigError: CoreConfig.production() needs a node: set TALLYIO_NODE_URL (ws://, wss://, http:// or https://) or pass node_url=...; for the embedded recording use CoreConfig.replay()
"""  # noqa: E501  (a doctest's exact output)
from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from tallyio.environment import check_environment
from tallyio.errors import ConfigError
from tallyio.mempool.config import AnalyzerConfig, FilterConfig

__all__ = ["CoreConfig", "DROP_POLICIES"]

DROP_POLICIES = ("drop_oldest",)
"""What a full ring or opportunity queue does: only drop-oldest (counted) is built,
because for MEV the newest transaction is the one still worth acting on."""

_URL_SCHEMES = ("ws://", "wss://", "http://", "https://")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HEX_KEY = re.compile(r"(0x)?[0-9a-fA-F]{64}")
_ADDRESS = re.compile(r"0[xX][0-9a-fA-F]{40}")


def _int(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"CoreConfig.{name} must be an int in {low} .. {high}, got {value!r}")


def _number(name: str, value: Any, low: float, high: float, *, low_open: bool = False) -> None:
    ok = (not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
          and (value > low if low_open else value >= low) and value <= high)
    if not ok:
        bound = f"> {low}" if low_open else f">= {low}"
        raise ConfigError(f"CoreConfig.{name} must be a finite number {bound} and <= {high}, got {value!r}")


def _bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"CoreConfig.{name} must be a bool, got {value!r}")


def _optional_str(name: str, value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ConfigError(f"CoreConfig.{name} must be None or a non-empty string, got {value!r}")


def _optional_path(name: str, value: Any) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"CoreConfig.{name} must be None or a path, got {value!r}")
    return value


def parse_endpoint(value: str) -> tuple[str, int]:
    """``"host:port"`` -> ``(host, port)``; port 0 picks a free one.

    >>> parse_endpoint("127.0.0.1:9464")
    ('127.0.0.1', 9464)
    """
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"CoreConfig.metrics_endpoint must be 'host:port' (port 0..65535), got {value!r}")
    return host.strip("[]"), int(port)


@dataclass(frozen=True)
class CoreConfig:
    """The engine's settings; every field is checked when the config is made.

    The source is a node (``node_url``), else the recording at ``replay_path``,
    else the recording embedded in the package.  ``execute=False`` (the
    default) runs the dry-run executor; ``execute=True`` needs a node and a
    signer (``signer_key_env`` or ``keystore_path``)."""

    node_url: Optional[str] = None
    """ws://, wss://, http:// or https:// URL of the node; None: a replay."""
    replay_path: Optional[str] = None
    """a recording (``tallyio.mempool.Recorder``); None with no node: the embedded one."""
    replay_realtime: bool = False
    """pace the replay by its recorded times (False: as fast as it is read)."""
    replay_lockstep: bool = True
    """a replay applies the next block's state only after every opportunity of the
    current one was executed (or the next was asked for): the dry run then sees the
    pool state the opportunity was found on, so a replay's results are exact and the
    same on every run.  A node source never waits."""
    signer_key_env: Optional[str] = None
    """NAME of the environment variable holding the private key (never the key)."""
    keystore_path: Optional[str] = None
    """an encrypted keystore (JSON) file; its password comes from ``keystore_password_env``."""
    keystore_password_env: Optional[str] = None
    workers: int = 2
    """worker threads of the scheduler the pipeline runs on."""
    ring_capacity: int = 4096
    """pending transactions waiting for analysis (a power of two is not required)."""
    opportunity_capacity: int = 1024
    drop_policy: str = "drop_oldest"
    """what the full ring / opportunity queue does (see ``DROP_POLICIES``)."""
    filter: FilterConfig = field(default_factory=FilterConfig)
    analyzer: AnalyzerConfig = field(default_factory=AnalyzerConfig)
    breaker_window: int = 100
    """calls in the breaker's count-based sliding window."""
    breaker_minimum_calls: int = 10
    breaker_failure_rate: float = 0.5
    """failure fraction (0 < x <= 1) at which the breaker opens."""
    breaker_slow_call_ms: float = 50.0
    """a call slower than this counts as a failure (for MEV a late action is a failed one)."""
    breaker_open_seconds: float = 30.0
    breaker_half_open_probes: int = 3
    checkpoint_dir: Optional[str] = None
    """where the state (journal + A/B checkpoint) lives; None: nothing persisted."""
    checkpoint_interval_ms: float = 1000.0
    checkpoint_every_events: int = 1000
    metrics_endpoint: Optional[str] = None
    """``host:port`` of the Prometheus endpoint (port 0: a free one); None: none served."""
    execute: bool = False
    """True: send real transactions (needs ``node_url`` and a signer)."""
    consumer_spin_us: float = 150.0
    """``next_opportunity()`` polls the opportunity queue this long, without the GIL, before
    it sleeps on the queue's eventfd (a wake-up costs tens of microseconds); 0: sleep at
    once.  Longer than the gap between transactions keeps the loop's thread busy while
    they come (docs/engine.md, "Latency settings")."""
    replay_spin_us: float = 30.0
    """a realtime replay's feeder spins, instead of sleeping, this long before each record
    is due (a sleep wakes late); up to 2000.  At or above the gap between records it never
    sleeps while they come: busy polling."""
    inline_analysis: bool = True
    """the source's thread analyzes a transaction itself when the first worker is idle and
    at most a batch waits (no worker wake-up); a burst still goes to the workers."""
    gc_freeze: bool = False
    """``start()`` ends with ``gc.collect()`` + ``gc.freeze()``: the cyclic collector's
    passes then skip everything alive at start (the pool table, the strategies, the
    imports), so a pass run from ``next_opportunity``'s thread costs the young objects
    only.  ``stop()`` unfreezes.  Process-wide: objects the rest of the program made before
    start are never collected as cycles while the engine runs."""
    aave_pool: Optional[str] = None
    """an Aave v3 market to follow (``0x`` + 40 hex digits: its Pool proxy); with
    ``aave_data_provider`` and ``aave_oracle``, and a ``ws://``/``wss://`` node or a replay of
    a recording made with one: its LIQUIDATION opportunities come out of ``next_opportunity()``
    (docs/liquidations.md)."""
    aave_data_provider: Optional[str] = None
    """the market's ``AaveProtocolDataProvider`` (the reserves are read from it)."""
    aave_oracle: Optional[str] = None
    """the market's price oracle (its ``AssetPriceUpdated`` logs and pending ``setAssetPrice`` calls)."""
    aave_eth_asset: Optional[str] = None
    """the reserve whose oracle price is ETH's (gas is then valued in the debt token); None: gross profit."""
    aave_from_block: int = 0
    """the first block whose market logs the first catch-up reads."""
    aave_block_seconds: int = 12
    """seconds from a head to the block a liquidation lands in (the time it is sized for)."""

    def __post_init__(self) -> None:
        _optional_str("node_url", self.node_url)
        if self.node_url is not None and not self.node_url.startswith(_URL_SCHEMES):
            raise ConfigError(f"CoreConfig.node_url must start with one of {', '.join(_URL_SCHEMES)}, "
                              f"got {self.node_url!r}")
        object.__setattr__(self, "replay_path", _optional_path("replay_path", self.replay_path))
        if self.replay_path is not None and self.node_url is not None:
            raise ConfigError("CoreConfig.replay_path and CoreConfig.node_url are exclusive: "
                              "the engine reads one source")
        _bool("replay_realtime", self.replay_realtime)
        _bool("replay_lockstep", self.replay_lockstep)
        for name in ("signer_key_env", "keystore_password_env"):
            value = getattr(self, name)
            _optional_str(name, value)
            # the message never echoes the value: it may be the secret itself, pasted here by mistake
            if value is not None and (not _ENV_NAME.fullmatch(value) or _HEX_KEY.fullmatch(value)):
                raise ConfigError(f"CoreConfig.{name} is the NAME of an environment variable "
                                  f"(a letter or _, then letters, digits, _), not its value")
        object.__setattr__(self, "keystore_path", _optional_path("keystore_path", self.keystore_path))
        if self.keystore_path is not None and self.keystore_password_env is None:
            raise ConfigError("CoreConfig.keystore_password_env must name the variable holding the "
                              "keystore's password when keystore_path is set")
        _int("workers", self.workers, 1, 256)
        _int("ring_capacity", self.ring_capacity, 2, 1 << 22)
        _int("opportunity_capacity", self.opportunity_capacity, 2, 1 << 22)
        if self.drop_policy not in DROP_POLICIES:
            raise ConfigError(f"CoreConfig.drop_policy must be one of {DROP_POLICIES}, got {self.drop_policy!r}")
        if not isinstance(self.filter, FilterConfig):
            raise ConfigError(f"CoreConfig.filter must be a FilterConfig, got {type(self.filter).__name__}")
        if not isinstance(self.analyzer, AnalyzerConfig):
            raise ConfigError(f"CoreConfig.analyzer must be an AnalyzerConfig, got {type(self.analyzer).__name__}")
        _int("breaker_window", self.breaker_window, 1, 1 << 16)
        _int("breaker_minimum_calls", self.breaker_minimum_calls, 1, 1 << 16)
        if self.breaker_minimum_calls > self.breaker_window:
            raise ConfigError(f"CoreConfig.breaker_minimum_calls ({self.breaker_minimum_calls}) must be "
                              f"<= breaker_window ({self.breaker_window})")
        _number("breaker_failure_rate", self.breaker_failure_rate, 0.0, 1.0, low_open=True)
        _number("breaker_slow_call_ms", self.breaker_slow_call_ms, 0.0, 3.6e6, low_open=True)
        _number("breaker_open_seconds", self.breaker_open_seconds, 0.0, 86400.0, low_open=True)
        _int("breaker_half_open_probes", self.breaker_half_open_probes, 1, 1 << 16)
        object.__setattr__(self, "checkpoint_dir", _optional_path("checkpoint_dir", self.checkpoint_dir))
        _number("checkpoint_interval_ms", self.checkpoint_interval_ms, 0.0, 3.6e6, low_open=True)
        _int("checkpoint_every_events", self.checkpoint_every_events, 1, 1 << 30)
        _optional_str("metrics_endpoint", self.metrics_endpoint)
        if self.metrics_endpoint is not None:
            parse_endpoint(self.metrics_endpoint)
        _number("consumer_spin_us", self.consumer_spin_us, 0.0, 10_000.0)
        _number("replay_spin_us", self.replay_spin_us, 0.0, 2_000.0)
        _bool("inline_analysis", self.inline_analysis)
        _bool("gc_freeze", self.gc_freeze)
        _bool("execute", self.execute)
        if self.execute and self.node_url is None:
            raise ConfigError("CoreConfig.execute=True needs node_url (a replay is always a dry run)")
        if self.execute and self.signer_key_env is None and self.keystore_path is None:
            raise ConfigError("CoreConfig.execute=True needs a signer: signer_key_env (TALLYIO_SIGNER_KEY_ENV) "
                              "or keystore_path (TALLYIO_KEYSTORE)")
        self._check_aave()

    def _check_aave(self) -> None:
        """The Aave market fields: all three addresses or none, each an address, a websocket node."""
        names = ("aave_pool", "aave_data_provider", "aave_oracle", "aave_eth_asset")
        for name in names:
            value = getattr(self, name)
            if value is not None and not (isinstance(value, str) and _ADDRESS.fullmatch(value)):
                raise ConfigError(f"CoreConfig.{name} must be None or an address (0x + 40 hex digits), got {value!r}")
        _int("aave_from_block", self.aave_from_block, 0, 1 << 62)
        _int("aave_block_seconds", self.aave_block_seconds, 1, 3600)
        given = [name for name in names[:3] if getattr(self, name) is not None]
        if not given:
            if self.aave_eth_asset is not None:
                raise ConfigError("CoreConfig.aave_eth_asset needs an Aave market: set aave_pool, "
                                  "aave_data_provider and aave_oracle")
            return
        missing = [name for name in names[:3] if getattr(self, name) is None]
        if missing:
            raise ConfigError(f"CoreConfig.{missing[0]} must be set too: an Aave market needs aave_pool, "
                              f"aave_data_provider and aave_oracle (got {', '.join(given)})")
        if self.node_url is not None and not self.node_url.startswith(("ws://", "wss://")):
            raise ConfigError("CoreConfig.aave_pool: an Aave market is followed live from a ws:// or wss:// "
                              f"node_url (its logs are subscribed to) or replayed from a recording, "
                              f"got node_url={self.node_url!r}")

    @property
    def aave(self) -> bool:
        """Whether an Aave market is configured."""
        return self.aave_pool is not None

    @property
    def source(self) -> str:
        """``"node"``, ``"replay"`` or ``"embedded replay"``."""
        if self.node_url is not None:
            return "node"
        return "replay" if self.replay_path is not None else "embedded replay"

    def replace(self, **changes: Any) -> "CoreConfig":
        """A copy with ``changes`` (validated again)."""
        return dataclasses.replace(self, **changes)

    # ---- presets ------------------------------------------------------------------------
    @classmethod
    def development(cls, **overrides: Any) -> "CoreConfig":
        """The embedded replay (unless ``node_url``/``replay_path`` is given), dry run,
        small queues, nothing persisted, no endpoint: for trying things out.

        >>> CoreConfig.development().opportunity_capacity
        256
        """
        return cls(**{"ring_capacity": 1024, "opportunity_capacity": 256, **overrides})

    @classmethod
    def replay(cls, path: Optional[str | os.PathLike] = None, **overrides: Any) -> "CoreConfig":
        """A dry run over the recording at ``path`` (None: the embedded recording),
        in lockstep with the executor so every result is exact.

        >>> CoreConfig.replay("/tmp/run.tio").source
        'replay'
        """
        return cls(**{"replay_path": path, **overrides})

    @classmethod
    def production(cls, *, environ: Optional[Mapping[str, str]] = None, **overrides: Any) -> "CoreConfig":
        """:meth:`from_env` with production defaults: a node is REQUIRED
        (``TALLYIO_NODE_URL`` or ``node_url=``; without one: ``ConfigError`` -- a
        production engine that silently watched a recording instead of the
        mempool would look healthy while doing nothing), checkpoints in
        ``./tallyio-state`` every 250 ms, the Prometheus endpoint on
        127.0.0.1:9464, larger queues.  Still a dry run unless ``TALLYIO_EXECUTE=1``
        (or ``execute=True``) and a signer are given.

        >>> CoreConfig.production(environ={"TALLYIO_NODE_URL": "ws://127.0.0.1:8546"}).checkpoint_dir
        'tallyio-state'
        """
        defaults = {"ring_capacity": 16384, "opportunity_capacity": 4096, "checkpoint_dir": "tallyio-state",
                    "checkpoint_interval_ms": 250.0, "metrics_endpoint": "127.0.0.1:9464"}
        merged = cls._environment_values(environ)
        merged = {**defaults, **merged, **overrides}
        if merged.get("node_url") is None:
            raise ConfigError("CoreConfig.production() needs a node: set TALLYIO_NODE_URL (ws://, wss://, "
                              "http:// or https://) or pass node_url=...; for the embedded recording use "
                              "CoreConfig.replay()")
        return cls(**merged)

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None, **overrides: Any) -> "CoreConfig":
        """A config from the ``TALLYIO_*`` variables (table in docs/engine.md) and
        keyword ``overrides`` (which win).  An unset or empty variable keeps the
        default; an invalid one raises ``ConfigError`` naming it.

        >>> CoreConfig.from_env({"TALLYIO_ENGINE_WORKERS": "3", "TALLYIO_EXECUTE": "no"}).workers
        3
        >>> try:
        ...     CoreConfig.from_env({"TALLYIO_AAVE_POOL": "0x" + "11" * 20})
        ... except ConfigError as exc:
        ...     print(str(exc)[:30], "...", str(exc).split(": ")[1][:45])
        TALLYIO_AAVE_POOL='0x111111111 ... CoreConfig.aave_data_provider must be set too
        >>> CoreConfig.from_env({"TALLYIO_ENGINE_WORKERS": "many"})
        Traceback (most recent call last):
        ...
        tallyio.errors.ConfigError: TALLYIO_ENGINE_WORKERS='many' is invalid: expected an integer
        """
        return cls(**{**cls._environment_values(environ), **overrides})

    @classmethod
    def _environment_values(cls, environ: Optional[Mapping[str, str]]) -> dict:
        environ = os.environ if environ is None else environ
        check_environment(environ, stacklevel=3)
        values: dict = {}
        for variable, (name, parse) in _ENVIRONMENT.items():
            raw = environ.get(variable, "")
            if not raw.strip():
                continue
            try:
                values[name] = parse(raw.strip())
            except ValueError as exc:
                raise ConfigError(f"{variable}={raw!r} is invalid: {exc}") from None
        try:
            cls(**values)
        except ConfigError as exc:
            # name the variable, not only the field: the field the message is about, else one it names
            # (a missing Aave address names the ones that were given)
            for exact in (True, False):
                for variable, (name, _) in _ENVIRONMENT.items():
                    if name in values and (f"CoreConfig.{name} " in str(exc) if exact else name in str(exc)):
                        raise ConfigError(f"{variable}={environ.get(variable)!r} is invalid: {exc}") from None
            raise
        return values


def _parse_int(raw: str) -> int:
    try:
        return int(raw, 10)
    except ValueError:
        raise ValueError("expected an integer") from None


def _parse_float(raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ValueError("expected a number") from None


def _parse_bool(raw: str) -> bool:
    value = raw.lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected a boolean: 1/0, true/false, yes/no or on/off")


def _parse_optional(raw: str) -> Optional[str]:
    return None if raw.lower() in ("none", "off") else raw


# variable -> (field, parser); the registry rows are in tallyio/environment.py
_ENVIRONMENT = {
    "TALLYIO_NODE_URL": ("node_url", str),
    "TALLYIO_REPLAY_PATH": ("replay_path", str),
    "TALLYIO_SIGNER_KEY_ENV": ("signer_key_env", str),
    "TALLYIO_KEYSTORE": ("keystore_path", str),
    "TALLYIO_KEYSTORE_PASSWORD_ENV": ("keystore_password_env", str),
    "TALLYIO_ENGINE_WORKERS": ("workers", _parse_int),
    "TALLYIO_CHECKPOINT_DIR": ("checkpoint_dir", str),
    "TALLYIO_CHECKPOINT_INTERVAL_MS": ("checkpoint_interval_ms", _parse_float),
    "TALLYIO_METRICS_ENDPOINT": ("metrics_endpoint", _parse_optional),
    "TALLYIO_EXECUTE": ("execute", _parse_bool),
    "TALLYIO_CONSUMER_SPIN_US": ("consumer_spin_us", _parse_float),
    "TALLYIO_REPLAY_SPIN_US": ("replay_spin_us", _parse_float),
    "TALLYIO_INLINE_ANALYSIS": ("inline_analysis", _parse_bool),
    "TALLYIO_GC_FREEZE": ("gc_freeze", _parse_bool),
    # an Aave market (docs/liquidations.md): addresses checked by CoreConfig._check_aave
    "TALLYIO_AAVE_POOL": ("aave_pool", _parse_optional),
    "TALLYIO_AAVE_DATA_PROVIDER": ("aave_data_provider", _parse_optional),
    "TALLYIO_AAVE_ORACLE": ("aave_oracle", _parse_optional),
    "TALLYIO_AAVE_ETH_ASSET": ("aave_eth_asset", _parse_optional),
    "TALLYIO_AAVE_FROM_BLOCK": ("aave_from_block", _parse_int),
    "TALLYIO_AAVE_BLOCK_SECONDS": ("aave_block_seconds", _parse_int),
}

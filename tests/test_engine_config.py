"""CoreConfig: presets, from_env, and a ConfigError naming the field (or the
variable) for every invalid value."""
import warnings

import pytest

from tallyio.engine.config import CoreConfig
from tallyio.environment import known_variables
from tallyio.errors import ConfigError
from tallyio.mempool.config import AnalyzerConfig, FilterConfig

BAD_FIELDS = [
    ("node_url", "ftp://x", "node_url"),
    ("node_url", "", "node_url"),
    ("node_url", 5, "node_url"),
    ("replay_path", 3, "replay_path"),
    ("replay_path", "  ", "replay_path"),
    ("replay_realtime", 1, "replay_realtime"),
    ("replay_lockstep", "yes", "replay_lockstep"),
    ("signer_key_env", "0xabc def", "signer_key_env"),
    ("signer_key_env", "", "signer_key_env"),
    ("keystore_password_env", "pass word!", "keystore_password_env"),
    ("keystore_path", 7, "keystore_path"),
    ("workers", 0, "workers"),
    ("workers", 257, "workers"),
    ("workers", 2.0, "workers"),
    ("workers", True, "workers"),
    ("ring_capacity", 1, "ring_capacity"),
    ("ring_capacity", 1 << 23, "ring_capacity"),
    ("opportunity_capacity", -1, "opportunity_capacity"),
    ("drop_policy", "drop_newest", "drop_policy"),
    ("filter", {"min_value_wei": 0}, "filter"),
    ("analyzer", None, "analyzer"),
    ("breaker_window", 0, "breaker_window"),
    ("breaker_minimum_calls", 0, "breaker_minimum_calls"),
    ("breaker_minimum_calls", 101, "breaker_minimum_calls"),
    ("breaker_failure_rate", 0.0, "breaker_failure_rate"),
    ("breaker_failure_rate", 1.5, "breaker_failure_rate"),
    ("breaker_failure_rate", float("nan"), "breaker_failure_rate"),
    ("breaker_slow_call_ms", 0, "breaker_slow_call_ms"),
    ("breaker_slow_call_ms", float("inf"), "breaker_slow_call_ms"),
    ("breaker_open_seconds", -1, "breaker_open_seconds"),
    ("breaker_half_open_probes", 0, "breaker_half_open_probes"),
    ("checkpoint_dir", b"/tmp", "checkpoint_dir"),
    ("checkpoint_interval_ms", 0, "checkpoint_interval_ms"),
    ("checkpoint_every_events", 0, "checkpoint_every_events"),
    ("metrics_endpoint", "localhost", "metrics_endpoint"),
    ("metrics_endpoint", "localhost:99999", "metrics_endpoint"),
    ("metrics_endpoint", ":80", "metrics_endpoint"),
    ("execute", "true", "execute"),
    ("consumer_spin_us", -1, "consumer_spin_us"),
    ("consumer_spin_us", 10_001, "consumer_spin_us"),
    ("consumer_spin_us", float("nan"), "consumer_spin_us"),
    ("replay_spin_us", 2_001, "replay_spin_us"),
    ("replay_spin_us", "30", "replay_spin_us"),
    ("inline_analysis", 1, "inline_analysis"),
    ("gc_freeze", "yes", "gc_freeze"),
]


@pytest.mark.parametrize("field,value,named", BAD_FIELDS, ids=[f"{f}={v!r}" for f, v, _ in BAD_FIELDS])
def test_every_invalid_field_raises_config_error_naming_it(field, value, named):
    with pytest.raises(ConfigError, match=f"CoreConfig.{named}"):
        CoreConfig(**{field: value})


def test_config_error_is_a_value_error_and_the_config_is_frozen():
    assert issubclass(ConfigError, ValueError)
    config = CoreConfig()
    with pytest.raises(AttributeError):
        config.workers = 3


def test_cross_field_rules():
    with pytest.raises(ConfigError, match="exclusive"):
        CoreConfig(node_url="ws://x:1", replay_path="/tmp/r.tio")
    with pytest.raises(ConfigError, match="CoreConfig.execute=True needs node_url"):
        CoreConfig(execute=True, signer_key_env="MY_KEY")
    with pytest.raises(ConfigError, match="needs a signer"):
        CoreConfig(execute=True, node_url="ws://127.0.0.1:8546")
    with pytest.raises(ConfigError, match="keystore_password_env"):
        CoreConfig(keystore_path="/tmp/key.json")
    ok = CoreConfig(execute=True, node_url="ws://127.0.0.1:8546", signer_key_env="MY_KEY")
    assert ok.execute and ok.source == "node"


def test_presets():
    replay = CoreConfig.replay()
    assert replay.source == "embedded replay" and not replay.execute and replay.replay_lockstep
    assert CoreConfig.replay("/tmp/x.tio").replay_path == "/tmp/x.tio"
    dev = CoreConfig.development()
    assert dev.source == "embedded replay" and dev.checkpoint_dir is None and dev.metrics_endpoint is None
    prod = CoreConfig.production(environ={"TALLYIO_NODE_URL": "wss://node.example:8546"})
    assert prod.node_url == "wss://node.example:8546" and prod.checkpoint_dir and prod.metrics_endpoint
    assert not prod.execute
    assert CoreConfig.production(environ={}, node_url="ws://127.0.0.1:1").node_url == "ws://127.0.0.1:1"
    with pytest.raises(ConfigError, match="TALLYIO_NODE_URL"):
        CoreConfig.production(environ={})
    assert CoreConfig.development(workers=3).workers == 3
    analyzer = AnalyzerConfig(max_sized=4)
    assert CoreConfig.replay(analyzer=analyzer, filter=FilterConfig(min_value_wei=1)).analyzer is analyzer
    assert CoreConfig().replace(workers=4).workers == 4
    with pytest.raises(ConfigError, match="CoreConfig.workers"):
        CoreConfig().replace(workers=-4)


def test_from_env_reads_every_variable_and_names_the_bad_one(tmp_path):
    env = {"TALLYIO_NODE_URL": "ws://127.0.0.1:8546", "TALLYIO_SIGNER_KEY_ENV": "BOT_KEY",
           "TALLYIO_ENGINE_WORKERS": "3", "TALLYIO_CHECKPOINT_DIR": str(tmp_path),
           "TALLYIO_CHECKPOINT_INTERVAL_MS": "125.5", "TALLYIO_METRICS_ENDPOINT": "127.0.0.1:0",
           "TALLYIO_EXECUTE": "on"}
    config = CoreConfig.from_env(env)
    assert (config.node_url, config.signer_key_env, config.workers, config.checkpoint_dir,
            config.checkpoint_interval_ms, config.metrics_endpoint, config.execute) == (
        "ws://127.0.0.1:8546", "BOT_KEY", 3, str(tmp_path), 125.5, "127.0.0.1:0", True)
    latency = CoreConfig.from_env({"TALLYIO_CONSUMER_SPIN_US": "2000", "TALLYIO_REPLAY_SPIN_US": "0",
                                   "TALLYIO_INLINE_ANALYSIS": "off", "TALLYIO_GC_FREEZE": "1"})
    assert (latency.consumer_spin_us, latency.replay_spin_us, latency.inline_analysis, latency.gc_freeze) == (
        2000.0, 0.0, False, True)
    assert CoreConfig.from_env({"TALLYIO_REPLAY_PATH": "/tmp/a.tio"}).replay_path == "/tmp/a.tio"
    ks = CoreConfig.from_env({"TALLYIO_KEYSTORE": "/k.json", "TALLYIO_KEYSTORE_PASSWORD_ENV": "KS_PASS"})
    assert ks.keystore_path == "/k.json" and ks.keystore_password_env == "KS_PASS"
    assert CoreConfig.from_env({"TALLYIO_METRICS_ENDPOINT": "off"}).metrics_endpoint is None
    assert CoreConfig.from_env({"TALLYIO_ENGINE_WORKERS": "  "}).workers == CoreConfig().workers
    assert CoreConfig.from_env({}, workers=5).workers == 5
    for variable, value in [("TALLYIO_ENGINE_WORKERS", "two"), ("TALLYIO_ENGINE_WORKERS", "0"),
                            ("TALLYIO_EXECUTE", "maybe"), ("TALLYIO_CHECKPOINT_INTERVAL_MS", "soon"),
                            ("TALLYIO_NODE_URL", "localhost:8545"), ("TALLYIO_METRICS_ENDPOINT", "nohost"),
                            ("TALLYIO_REPLAY_SPIN_US", "5000"), ("TALLYIO_GC_FREEZE", "maybe")]:
        with pytest.raises(ConfigError, match=variable):
            CoreConfig.from_env({variable: value})


def test_from_env_warns_about_an_unknown_variable_and_every_engine_variable_is_registered():
    with pytest.warns(RuntimeWarning, match="TALLYIO_NODE_UR"):
        CoreConfig.from_env({"TALLYIO_NODE_UR": "ws://x"})
    known = {v.name: v.reader for v in known_variables()}
    from tallyio.engine.config import _ENVIRONMENT
    for variable in _ENVIRONMENT:
        assert known.get(variable) == "tallyio.engine", variable
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CoreConfig.from_env({variable: "" for variable in _ENVIRONMENT})


def test_the_config_never_holds_a_key():
    secret = "0x" + "ab" * 32
    with pytest.raises(ConfigError) as info:
        CoreConfig(signer_key_env=secret)
    assert secret not in str(info.value)
    assert "NAME" in str(info.value)
    bare = "ab" * 32                 # a valid-looking variable name that is really a key
    with pytest.raises(ConfigError) as info:
        CoreConfig(keystore_password_env=bare, keystore_path="/k.json")
    assert bare not in str(info.value)

"""SchedulerConfig: defaults, every field's bounds and types, from_env, replace."""
import dataclasses
import math

import pytest

from tallyio.config import SchedulerConfig
from tallyio.errors import ConfigError

DEFAULTS = {
    "workers_per_numa_node": None,     # auto: the nodes' usable CPUs, at most 4
    "queue_capacity": 8192,
    "enable_work_stealing": True,
    "enable_cpu_affinity": True,
    "load_balance_threshold": 0.25,
    "numa_enabled": True,
    "spin_us": 50.0,
    "max_retries": 3,
    "gil_batch": 64,
    "gil_batch_us": 200.0,
    "aging_us": 10000.0,
    "steal_batch": 32,
}
INT_FIELDS = ["workers_per_numa_node", "queue_capacity", "max_retries", "gil_batch", "steal_batch"]
FLOAT_FIELDS = ["load_balance_threshold", "spin_us", "gil_batch_us", "aging_us"]
BOOL_FIELDS = ["enable_work_stealing", "enable_cpu_affinity", "numa_enabled"]


def test_defaults():
    config = SchedulerConfig()
    assert dataclasses.asdict(config) == DEFAULTS
    assert {f.name for f in dataclasses.fields(SchedulerConfig)} == set(INT_FIELDS + FLOAT_FIELDS + BOOL_FIELDS)


def test_keyword_only_and_frozen():
    with pytest.raises(TypeError):
        SchedulerConfig(4)
    config = SchedulerConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.workers_per_numa_node = 8
    assert hash(config) == hash(SchedulerConfig()) and config == SchedulerConfig()


def test_unknown_field_is_a_type_error():
    with pytest.raises(TypeError, match="workers"):
        SchedulerConfig(workers=4)


@pytest.mark.parametrize("field, value", [
    ("workers_per_numa_node", 1), ("workers_per_numa_node", 1024),
    ("queue_capacity", 2), ("queue_capacity", 2**22), ("queue_capacity", 1000),   # not rounded here
    ("load_balance_threshold", 0.0), ("load_balance_threshold", 1.0),
    ("spin_us", 0.0), ("spin_us", 1e6),
    ("max_retries", 0), ("max_retries", 65535), ("spin_us", 60e6), ("gil_batch_us", 60e6),
    ("gil_batch", 1), ("gil_batch", 65536),
    ("gil_batch_us", 1e-3), ("aging_us", 1e-3), ("aging_us", 60e6),
    ("steal_batch", 1), ("steal_batch", 1024),
    ("enable_work_stealing", False), ("enable_cpu_affinity", False), ("numa_enabled", False),
])
def test_values_at_the_bounds_are_accepted(field, value):
    assert getattr(SchedulerConfig(**{field: value}), field) == value


@pytest.mark.parametrize("field, value, bounds", [
    ("workers_per_numa_node", 0, "between 1 and 1024"),
    ("workers_per_numa_node", 1025, "between 1 and 1024"),
    ("workers_per_numa_node", -4, "between 1 and 1024"),
    ("queue_capacity", 1, "between 2 and 4194304"),
    ("queue_capacity", 2**22 + 1, "between 2 and 4194304"),
    ("queue_capacity", 2**24, "between 2 and 4194304"),     # issue 9 item 7: needed ~30 GiB with 4 workers
    ("load_balance_threshold", -0.01, "between 0.0 and 1.0"),
    ("load_balance_threshold", 1.01, "between 0.0 and 1.0"),
    ("spin_us", -1.0, "between 0.0 and 60000000.0"),
    ("spin_us", 60e6 + 1, "between 0.0 and 60000000.0"),
    ("max_retries", -1, "between 0 and 65535"),
    ("max_retries", 65536, "between 0 and 65535"),
    ("gil_batch", 0, "between 1 and 65536"),
    ("gil_batch", 65537, "between 1 and 65536"),
    ("gil_batch_us", 0.0, "> 0.0 and <= 60000000.0"),
    ("gil_batch_us", -5, "> 0.0 and <= 60000000.0"),
    ("aging_us", 0, "> 0.0 and <= 60000000.0"),
    ("aging_us", 1e9, "> 0.0 and <= 60000000.0"),
    ("steal_batch", 0, "between 1 and 1024"),
    ("steal_batch", 1025, "between 1 and 1024"),
])
def test_out_of_range_names_the_field_and_value(field, value, bounds):
    with pytest.raises(ConfigError) as exc:
        SchedulerConfig(**{field: value})
    assert str(exc.value) == f"{field} must be {bounds}, got {value!r}"


@pytest.mark.parametrize("field", FLOAT_FIELDS)
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_float_fields_must_be_finite(field, value):
    with pytest.raises(ConfigError, match=f"^{field} must be a finite number, got {value!r}$"):
        SchedulerConfig(**{field: value})


@pytest.mark.parametrize("field", INT_FIELDS)
@pytest.mark.parametrize("value", [True, False])
def test_int_fields_reject_bools(field, value):
    with pytest.raises(ConfigError, match=f"^{field} must be an int, got a bool \\({value}\\)$"):
        SchedulerConfig(**{field: value})


@pytest.mark.parametrize("field", INT_FIELDS)
@pytest.mark.parametrize("value", [4.0, "4", None, 2.5])
def test_int_fields_reject_non_ints(field, value):
    if field == "workers_per_numa_node" and value is None:
        return      # None means auto there: test_workers_none_means_auto
    also = " or None \\(auto\\)" if field == "workers_per_numa_node" else ""
    with pytest.raises(ConfigError, match=f"^{field} must be an int{also}, got {value!r}"):
        SchedulerConfig(**{field: value})


def test_workers_none_means_auto():
    assert SchedulerConfig(workers_per_numa_node=None).workers_per_numa_node is None
    assert SchedulerConfig(workers_per_numa_node=None) == SchedulerConfig()


@pytest.mark.parametrize("field", FLOAT_FIELDS)
@pytest.mark.parametrize("value", [True, False])
def test_float_fields_reject_bools(field, value):
    with pytest.raises(ConfigError, match=f"^{field} must be a number, got a bool"):
        SchedulerConfig(**{field: value})


@pytest.mark.parametrize("field", FLOAT_FIELDS)
@pytest.mark.parametrize("value", ["0.5", None, 1j])
def test_float_fields_reject_non_numbers(field, value):
    with pytest.raises(ConfigError, match=f"^{field} must be a number, got"):
        SchedulerConfig(**{field: value})


@pytest.mark.parametrize("field", BOOL_FIELDS)
@pytest.mark.parametrize("value", [1, 0, "true", None, 1.0])
def test_bool_fields_reject_non_bools(field, value):
    with pytest.raises(ConfigError, match=f"^{field} must be a bool \\(True or False\\), got {value!r}"):
        SchedulerConfig(**{field: value})


def test_ints_for_float_fields_are_stored_as_float():
    config = SchedulerConfig(load_balance_threshold=1, spin_us=0, gil_batch_us=100, aging_us=5000)
    for field in FLOAT_FIELDS:
        assert type(getattr(config, field)) is float


def test_numpy_scalars_are_normalized():
    np = pytest.importorskip("numpy")
    config = SchedulerConfig(workers_per_numa_node=np.int64(2), spin_us=np.float32(10.5),
                             load_balance_threshold=np.int32(1))
    assert type(config.workers_per_numa_node) is int and config.workers_per_numa_node == 2
    assert type(config.spin_us) is float and config.spin_us == 10.5
    assert type(config.load_balance_threshold) is float
    with pytest.raises(ConfigError, match="numa_enabled must be a bool"):
        SchedulerConfig(numa_enabled=np.bool_(True))


def test_replace_revalidates():
    config = SchedulerConfig(workers_per_numa_node=2)
    changed = config.replace(queue_capacity=64, numa_enabled=False)
    assert (changed.workers_per_numa_node, changed.queue_capacity, changed.numa_enabled) == (2, 64, False)
    assert config.queue_capacity == 8192   # the original is untouched
    with pytest.raises(ConfigError, match="queue_capacity must be between 2 and 4194304, got 0"):
        config.replace(queue_capacity=0)
    with pytest.raises(ConfigError, match="numa_enabled must be a bool"):
        config.replace(numa_enabled="no")


# --- from_env ---------------------------------------------------------------------------------

def test_from_env_empty_environment_gives_defaults():
    assert SchedulerConfig.from_env({}) == SchedulerConfig()


def test_from_env_defaults_to_os_environ(monkeypatch):
    monkeypatch.setenv("TALLYIO_WORKERS_PER_NODE", "3")
    monkeypatch.setenv("TALLYIO_NUMA_ENABLED", "no")
    monkeypatch.delenv("TALLYIO_CPU_AFFINITY", raising=False)
    config = SchedulerConfig.from_env()
    assert (config.workers_per_numa_node, config.numa_enabled, config.enable_cpu_affinity) == (3, False, True)


BOOL_SPELLINGS = [("1", True), ("0", False), ("true", True), ("false", False), ("yes", True), ("no", False),
                  ("on", True), ("off", False), ("TRUE", True), ("False", False), ("YeS", True), ("OFF", False),
                  (" on\n", True), ("\t0 ", False)]


@pytest.mark.parametrize("variable, field", [("TALLYIO_NUMA_ENABLED", "numa_enabled"),
                                             ("TALLYIO_CPU_AFFINITY", "enable_cpu_affinity")])
@pytest.mark.parametrize("text, expected", BOOL_SPELLINGS)
def test_from_env_booleans(variable, field, text, expected):
    assert getattr(SchedulerConfig.from_env({variable: text}), field) is expected


@pytest.mark.parametrize("variable", ["TALLYIO_NUMA_ENABLED", "TALLYIO_CPU_AFFINITY"])
@pytest.mark.parametrize("text", ["2", "maybe", "tru", "y", "n", "1.0", "-1", "o n", "true false"])
def test_from_env_invalid_boolean_names_the_variable(variable, text):
    with pytest.raises(ConfigError) as exc:
        SchedulerConfig.from_env({variable: text})
    assert str(exc.value).startswith(f"{variable}={text!r} is invalid: expected a boolean")


@pytest.mark.parametrize("text, expected", [("1", 1), ("8", 8), (" 16\n", 16), ("+2", 2), ("1024", 1024),
                                            ("007", 7)])
def test_from_env_workers(text, expected):
    assert SchedulerConfig.from_env({"TALLYIO_WORKERS_PER_NODE": text}).workers_per_numa_node == expected


@pytest.mark.parametrize("text", ["auto", "AUTO", " Auto\n"])
def test_from_env_workers_auto(text):
    assert SchedulerConfig.from_env({"TALLYIO_WORKERS_PER_NODE": text}, workers_per_numa_node=None) \
        == SchedulerConfig()
    assert SchedulerConfig.from_env({"TALLYIO_WORKERS_PER_NODE": text}).workers_per_numa_node is None


@pytest.mark.parametrize("text, reason", [
    ("four", "expected an integer or auto"),
    ("4.0", "expected an integer or auto"),
    ("1_000", "expected an integer or auto"),
    ("0x4", "expected an integer or auto"),
    ("true", "expected an integer or auto"),
    ("4 4", "expected an integer or auto"),
    ("0", "workers_per_numa_node must be between 1 and 1024, got 0"),
    ("-2", "workers_per_numa_node must be between 1 and 1024, got -2"),
    ("1025", "workers_per_numa_node must be between 1 and 1024, got 1025"),
])
def test_from_env_invalid_workers_names_the_variable(text, reason):
    with pytest.raises(ConfigError) as exc:
        SchedulerConfig.from_env({"TALLYIO_WORKERS_PER_NODE": text})
    assert str(exc.value) == f"TALLYIO_WORKERS_PER_NODE={text!r} is invalid: {reason}"


@pytest.mark.parametrize("variable", ["TALLYIO_NUMA_ENABLED", "TALLYIO_CPU_AFFINITY", "TALLYIO_WORKERS_PER_NODE"])
@pytest.mark.parametrize("text", ["", " ", "\n"])
def test_from_env_empty_means_default(variable, text):
    assert SchedulerConfig.from_env({variable: text}) == SchedulerConfig()


def test_from_env_all_three_and_unrelated_variables():
    env = {"TALLYIO_NUMA_ENABLED": "off", "TALLYIO_CPU_AFFINITY": "0", "TALLYIO_WORKERS_PER_NODE": "2",
           "TALLYIO_SOMETHING_ELSE": "ignored", "PATH": "/bin"}
    with pytest.warns(RuntimeWarning, match="TALLYIO_SOMETHING_ELSE is not a tallyio environment variable"):
        config = SchedulerConfig.from_env(env)
    assert config == SchedulerConfig(numa_enabled=False, enable_cpu_affinity=False, workers_per_numa_node=2)


def test_from_env_overrides_win_and_skip_their_variable():
    env = {"TALLYIO_WORKERS_PER_NODE": "not a number", "TALLYIO_NUMA_ENABLED": "no"}
    config = SchedulerConfig.from_env(env, workers_per_numa_node=6, spin_us=0)
    assert (config.workers_per_numa_node, config.numa_enabled, config.spin_us) == (6, False, 0.0)


def test_from_env_invalid_override_names_the_field():
    with pytest.raises(ConfigError, match="^steal_batch must be between 1 and 1024, got 0$"):
        SchedulerConfig.from_env({}, steal_batch=0)
    with pytest.raises(TypeError):
        SchedulerConfig.from_env({}, no_such_field=1)

"""Issue 9: from_env warns about a TALLYIO_* variable nothing reads (a typo went
unnoticed), naming it and the known ones; the known names are one registry
that other components extend; the README lists them."""
import re
import warnings
from pathlib import Path

import pytest

from tallyio import SchedulerConfig, environment
from tallyio.environment import Variable, check_environment, known_variables, register

README = Path(__file__).resolve().parent.parent / "README.md"
TEST_AND_BUILD = ["TALLYIO_CHAIN_DIR", "TALLYIO_REQUIRE_CHAIN", "TALLYIO_MAINNET_DATA", "TALLYIO_TEST_SCALE",
                  "TALLYIO_SEED", "TALLYIO_SANITIZE", "TALLYIO_NATIVE", "TALLYIO_SANITIZE_DIR",
                  "TALLYIO_BUILD_JOBS"]


@pytest.fixture
def private_registry(monkeypatch):
    """Registrations made by a test stay in that test."""
    monkeypatch.setattr(environment, "_registry", dict(environment._registry))


def test_from_env_warns_about_a_typo_naming_it_and_the_known_ones():
    with pytest.warns(RuntimeWarning) as caught:
        config = SchedulerConfig.from_env({"TALLYIO_WORKERS_PER_NOD": "2"})
    assert config == SchedulerConfig()          # the typo changed nothing, and said so
    message = str(caught[0].message)
    assert message.startswith("TALLYIO_WORKERS_PER_NOD is not a tallyio environment variable "
                              "(did you mean TALLYIO_WORKERS_PER_NODE?); it is ignored. Known: ")
    for name in ("TALLYIO_NUMA_ENABLED", "TALLYIO_CPU_AFFINITY", "TALLYIO_WORKERS_PER_NODE"):
        assert name in message
    assert caught[0].filename == __file__       # points at the caller of from_env


def test_from_env_reads_os_environ_and_warns_there(monkeypatch):
    monkeypatch.setenv("TALLYIO_CPU_AFINITY", "0")
    with pytest.warns(RuntimeWarning, match="TALLYIO_CPU_AFINITY .*did you mean TALLYIO_CPU_AFFINITY"):
        assert SchedulerConfig.from_env().enable_cpu_affinity is True


def test_unknown_names_without_a_near_match_still_warn():
    with pytest.warns(RuntimeWarning, match=r"^TALLYIO_XYZ is not a tallyio environment variable; it is ignored"):
        assert check_environment({"TALLYIO_XYZ": "1", "PATH": "/bin", "tallyio_lower": "x"}) == ["TALLYIO_XYZ"]


def test_test_and_build_variables_do_not_warn():
    env = {name: "1" for name in TEST_AND_BUILD}
    env.update(TALLYIO_WORKERS_PER_NODE="2", TALLYIO_NUMA_ENABLED="1", TALLYIO_CPU_AFFINITY="1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_environment(env) == []
        assert SchedulerConfig.from_env(env).workers_per_numa_node == 2


def test_other_components_extend_the_one_registry(private_registry):
    with pytest.warns(RuntimeWarning, match="TALLYIO_EXAMPLE_NODE"):
        check_environment({"TALLYIO_EXAMPLE_NODE": "ws://127.0.0.1:8545"})
    register("TALLYIO_EXAMPLE_NODE", "tallyio.engine", "the node's websocket URL")
    register("TALLYIO_EXAMPLE_NODE", "tallyio.engine", "the node's websocket URL")     # idempotent
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_environment({"TALLYIO_EXAMPLE_NODE": "ws://127.0.0.1:8545"}) == []
    assert Variable("TALLYIO_EXAMPLE_NODE", "tallyio.engine", "the node's websocket URL") in known_variables()
    with pytest.raises(ValueError, match="already read by tallyio.engine"):
        register("TALLYIO_EXAMPLE_NODE", "tallyio.other", "a second reader")
    with pytest.raises(ValueError, match="must match"):
        register("NODE_URL", "tallyio.engine", "no prefix")


def test_readme_lists_every_known_variable():
    readme = README.read_text()
    section = readme[readme.index("## Environment variables"):]
    listed = set(re.findall(r"`(TALLYIO_[A-Z0-9_]+)`", section.split("\n## ", 1)[0]))
    assert listed == {variable.name for variable in environment._BUILTIN}

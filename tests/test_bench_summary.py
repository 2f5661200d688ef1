"""Issue 9: `tallyio bench` prints ONE summary table (tallyio's figure, the
best peer, the ratio, the target met or not); the details stay behind
--details and in the JSON."""
from __future__ import annotations

import json
import re

import pytest

from tallyio.bench import Figure, Target, best_peer, format_summary, format_table, to_json

HEADER = re.compile(r"^  figure +tallyio +best peer +median +ratio +target$", re.M)

MACHINE = {"tallyio": "0", "cpu": "test CPU", "usable_cpus": 2, "numa_nodes": 1, "python": "3"}


def _figures():
    return [
        Figure("Scheduler: no-op tasks (long description, 2 workers)", "tasks per second", [2e6, 3e6],
               unit="tasks/s", higher_is_better=True,
               peers={"ThreadPoolExecutor(2)": [1e5, 1e5], "asyncio": [5e5, 5e5]},
               targets=[Target(10, peer="ThreadPoolExecutor(2)"), Target(1e6)]),
        Figure("Scheduler: latency", "p99", [40.0], unit="us", peers={"ThreadPoolExecutor(2)": [20.0]},
               targets=[Target(30.0)], skipped_peers={"loky": "loky is not installed"}),
        Figure("C level, spsc", "push+pop", [3.0, 4.0, 5.0], unit="ns/op"),          # tallyio alone
        Figure("Scheduler: native", "spawned", [], unit="tasks/s", higher_is_better=True,
               skipped="native_example not built"),
    ]


def _summary() -> str:
    return format_summary({"machine": MACHINE, "mode": "quick", "figures": _figures()})


def test_best_peer_is_the_one_tallyio_beats_least():
    fast, slow = _figures()[:2]
    assert best_peer(fast) == "asyncio"                       # higher is better: 5e5 beats 1e5
    assert best_peer(slow) == "ThreadPoolExecutor(2)"
    assert best_peer(_figures()[2]) is None


def test_summary_is_one_table_with_the_best_peer_ratio_and_target():
    text = _summary()
    rows = [line for line in text.splitlines() if line.startswith("  ")]
    header, body = rows[0], rows[1:]
    assert header.split() == ["figure", "tallyio", "best", "peer", "median", "ratio", "target"]
    assert len(body) == 3         # the two compared figures and the skipped one, not the tallyio-only row
    first, second, skipped = body
    assert "Scheduler: no-op tasks: tasks per second" in first        # the group up to its parenthesis
    assert re.search(r"2\.50M/s\s+asyncio\s+500\.0k/s\s+5\s+met >= 10x ThreadPoolExecutor\(2\); >= 1\.00M/s",
                     first)
    assert re.search(r"40\.0 us\s+ThreadPoolExecutor\(2\)\s+20\.0 us\s+0\.5\s+MISSED <= 30\.0 us", second)
    assert "skipped" in skipped and "native_example not built" in skipped
    assert "C level" not in text
    assert text.count("not measured: loky (loky is not installed)") == 1
    assert "targets: 2 met, 1 missed, 0 not measured" in text
    assert "1 figure(s) measured for tallyio alone" in text
    # one table: a header, its rows, no second header
    assert len(HEADER.findall(text)) == 1 and "spread " not in text


def test_small_ratios_keep_their_digits():
    slow = Figure("Scheduler: latency", "p99", [12000.0], unit="us", peers={"asyncio": [19.7]})
    text = format_summary({"machine": MACHINE, "mode": "quick", "figures": [slow]})
    assert re.search(r"19\.7 us\s+0\.00164\s+-$", text, re.M), text


def test_details_and_json_keep_everything():
    result = {"machine": MACHINE, "mode": "quick", "figures": _figures()}
    table = format_table(result)
    assert "C level, spsc" in table and "spread" in table and "ThreadPoolExecutor(2)" in table
    data = json.loads(to_json(result))
    assert [f["case"] for f in data["figures"]] == ["tasks per second", "p99", "push+pop", "spawned"]


@pytest.mark.timeout(300)
def test_cli_prints_one_table_and_details_on_request(capsys):
    from tallyio.cli import main

    assert main(["bench", "--smoke", "--group", "core"]) == 0
    plain = capsys.readouterr().out
    assert len(HEADER.findall(plain)) == 1 and "C level" not in plain
    assert "Python level, per call: SpscQueue put_nowait+get_nowait" in plain
    assert main(["bench", "--smoke", "--group", "core", "--details"]) == 0
    detailed = capsys.readouterr().out
    assert len(HEADER.findall(detailed)) == 1 and "C level, spsc" in detailed and "spread " in detailed

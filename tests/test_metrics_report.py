"""The HTML run report: self-contained, rendered by headless Chromium (Debian's
``chromium``, found and driven as scripts/asv_dashboard.py does), and its plots
really drew: the screenshot holds the series colours in line-sized amounts,
which a page without data does not.  Also the ``tallyio report`` command."""
import argparse
import importlib.util
import json
import math
import os
import re
import signal
import subprocess
import tempfile

import numpy as np
import pytest

import realparts
from tallyio.metrics import Registry, add_report_command, add_report_option, write_report
from tallyio.metrics.report import PALETTE, finish_report, load_run, render_report, report_main, save_run

DASHBOARD = realparts.REPO / "scripts" / "asv_dashboard.py"


def dashboard():
    spec = importlib.util.spec_from_file_location("asv_dashboard", DASHBOARD)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def chromium(dash):
    try:
        return dash._chromium(None)
    except dash.MissingTool as exc:
        realparts._missing(str(exc))     # skipped on a developer's machine, a failure in CI


def busy_registry():
    reg = Registry()
    fast = reg.histogram("decode_latency_seconds", "decode")
    slow = reg.histogram("analyze_latency_seconds", "analyze")
    done = reg.counter("tx_processed", "processed")
    dropped = reg.counter("tx_dropped", "dropped")
    errors = reg.counter("decode_errors", "errors")
    depth = reg.gauge("queue_depth", "depth")
    rng = np.random.default_rng(3)
    fast.local().record_many(np.exp(rng.normal(np.log(800), 0.5, 50_000)).astype(np.uint64))
    slow.local().record_many(np.exp(rng.normal(np.log(40_000), 1.0, 50_000)).astype(np.uint64))
    for t in range(60):
        done.inc(1000 + 40 * t)
        dropped.inc(t % 7)
        errors.inc(t % 3)
        depth.set(50 + 40 * math.sin(t / 6))
        reg.sample(now=float(t))
    return reg


def coloured_pixels(image, colour, tolerance=12):
    rgb = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(image.astype(np.int32) - rgb).max(axis=2) <= tolerance).sum())


def screenshot(tmp_path, page, name):
    dash = dashboard()
    browser = chromium(dash)
    png = tmp_path / f"{name}.png"
    # asv_dashboard's own _screenshot has a 1400x1000 window; the report needs a
    # taller one to fit in one screenshot, so the same command with another size
    # a sanitizer run preloads its runtime into Python: Chromium must not inherit it
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "ASAN_OPTIONS", "TSAN_OPTIONS",
                                                            "PYTHONMALLOC")}
    log = b""
    with tempfile.TemporaryDirectory(prefix="tallyio-chromium-") as profile:
        proc = subprocess.Popen([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                                 "--hide-scrollbars", f"--user-data-dir={profile}", "--window-size=1100,3400",
                                 f"--screenshot={png}", page.as_uri()],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True, env=env)
        try:
            log, _ = proc.communicate(timeout=dash.CHROMIUM_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log = b"(timed out)"
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)     # Chromium's helpers share the group we started
            except ProcessLookupError:
                pass
            proc.communicate()                          # reap it and close its pipe
    assert png.is_file(), log.decode(errors="replace")[-2000:]
    return dash, dash._read_png(png), png


@pytest.mark.timeout(300)
def test_report_renders_in_chromium_and_its_plots_drew(tmp_path):
    page = write_report(tmp_path / "run.html", busy_registry(), title="busy run")
    dash, image, png = screenshot(tmp_path, page, "busy")
    assert dash.check_screenshot(png) is None
    # two latency curves, two throughput series, the gauges and the error bars:
    # far more of the first two colours than the legend swatches (16x10 px each) hold
    first, second = coloured_pixels(image, PALETTE[0]), coloured_pixels(image, PALETTE[1])
    print(f"pixels of {PALETTE[0]}: {first}, of {PALETTE[1]}: {second}")
    assert first > 3000, first
    assert second > 1000, second

    # the control: the same page with no data draws none of the series colours
    empty = write_report(tmp_path / "empty.html", Registry(process=False), title="empty run")
    _, blank, _ = screenshot(tmp_path, empty, "empty")
    assert coloured_pixels(blank, PALETTE[0]) < 50 and coloured_pixels(blank, PALETTE[1]) < 50


def test_report_is_self_contained():
    page = render_report(__import__("tallyio.metrics.report", fromlist=["collect_run"]).collect_run(busy_registry()))
    body = page.split("<body>", 1)[1]
    assert "<script" not in page and "<link" not in page and "src=" not in page and "@import" not in page
    assert not re.findall(r"https?://(?!www\.w3\.org/2000/svg)", body)
    for text in ("decode_latency_seconds", "analyze_latency_seconds", "tx_dropped", "decode_errors",
                 "queue_depth", "Machine", "99.9%", "usable_cpus"):
        assert text in page, text
    assert page.count("<polyline") >= 2 + 2 + 1     # percentile curves, throughput, gauge


def test_saved_run_round_trip_and_report_command(tmp_path, capsys):
    reg = busy_registry()
    run_file = save_run(reg, tmp_path / "run.json")
    run = load_run(run_file)
    assert run["counters"]["tx_processed"] == sum(1000 + 40 * t for t in range(60))

    parser = argparse.ArgumentParser(prog="tallyio")
    add_report_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["report", str(tmp_path / "out.html"), "--from", str(run_file)])
    assert args.func(args) == 0
    assert "decode_latency_seconds" in (tmp_path / "out.html").read_text()

    (tmp_path / "junk.json").write_text(json.dumps({"not": "a run"}))
    args = parser.parse_args(["report", str(tmp_path / "bad.html"), "--from", str(tmp_path / "junk.json")])
    assert report_main(args) == 2
    assert "not a saved tallyio run" in capsys.readouterr().err
    assert not (tmp_path / "bad.html").exists()

    with pytest.raises(SystemExit):
        parser.parse_args(["report", "x.html"])          # --from or --demo is required


def test_report_demo_measures_an_open_loop_run(tmp_path):
    parser = argparse.ArgumentParser(prog="tallyio")
    add_report_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["report", str(tmp_path / "demo.html"), "--demo", "0.5"])
    assert args.func(args) == 0
    page = (tmp_path / "demo.html").read_text()
    assert "demo_latency_seconds" in page and "demo_items_dropped" in page
    args = parser.parse_args(["report", str(tmp_path / "d.html"), "--demo", "-1"])
    assert report_main(args) == 2


def test_report_option_for_commands_that_run_things(tmp_path):
    parser = argparse.ArgumentParser()
    add_report_option(parser)
    reg = Registry(process=False)
    reg.counter("c").inc()
    assert finish_report(parser.parse_args([]), reg) is None
    path = finish_report(parser.parse_args(["--report", str(tmp_path / "r.html")]), reg)
    assert path.read_text().startswith("<!DOCTYPE html>")


def test_write_report_needs_one_source(tmp_path):
    with pytest.raises(TypeError, match="exactly one"):
        write_report(tmp_path / "x.html")
    with pytest.raises(ValueError, match="not a saved tallyio run"):
        load_run(tmp_path / "missing.json")

"""`tallyio bench --plot`: the comparison drawn into a PNG, from results built by hand."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

import tallyio
from tallyio.bench import Figure, Target
from tallyio.bench._plot import _format_value, plot

MACHINE = {"cpu": "Test CPU 3000", "cores": 4, "usable_cpus": 2, "numa_nodes": 1, "python": "3.11.7",
           "implementation": "CPython", "platform": "Linux", "tallyio": "0.1.0"}


def _comparable() -> list[Figure]:
    """Figures with peers: linear and log scales, both directions, a peer
    with nothing measured and peers the run skipped."""
    per_call = Figure("Python level, per call", "SpscQueue put_nowait+get_nowait", [85.0, 91.0, 88.0],
                      unit="ns/op", peers={"queue.SimpleQueue put+get": [120.0, 131.0, 118.0]})
    throughput = Figure("Scheduler: 1,000 no-op Python tasks submitted from one thread and completed, 2 workers "
                        "(tallyio: submit_task of one reused Task, then join())", "tasks per second",
                        [3.1e6, 2.9e6, 3.0e6], unit="tasks/s", higher_is_better=True,
                        peers={"ThreadPoolExecutor(2)": [6.2e4, 7.0e4, 6.5e4],
                               "asyncio call_soon_threadsafe": [1.2e5, 1.19e5, 1.21e5],
                               "multiprocessing.Pool apply_async": []},
                        targets=[Target(10.0, peer="ThreadPoolExecutor(2)")])
    # the field the bench is gaining; set as an attribute so the test runs before and after it lands
    throughput.skipped_peers = {"loky": "loky is not installed (pip install loky)",
                                "dask threaded scheduler": "dask is not installed (pip install dask) " * 5}
    latency = Figure("Scheduler: submit-to-start latency, one task at a time, 2 workers spinning", "p99",
                     [3.3, 2.9, 3.6], unit="us", peers={"ThreadPoolExecutor(2)": [44.4, 59.5, 51.0]})
    zero_growth = Figure("Scheduler: memory", "RSS growth", [0.0, 0.0], unit="MiB", peers={"peer": [0.0, 0.0]})
    return [per_call, throughput, latency, zero_growth]


def _not_comparable() -> list[Figure]:
    """Figures the table shows but the plot leaves out: no peer to compare with."""
    return [Figure("C level, spsc", "push+pop same thread", [3.3, 3.4], unit="ns/op"),
            Figure("Scheduler: NUMA", "remote steals", unit="tasks", skipped="needs 2 NUMA nodes, found 1")]


def _result(figures: list[Figure]) -> dict:
    return {"machine": MACHINE, "mode": "quick", "figures": figures}


def _draw(result: dict, path: Path):
    image = pytest.importorskip("matplotlib.image")
    plot(result, path)
    assert path.is_file()
    return image.imread(path)


def test_plot_draws_a_readable_png(tmp_path):
    pixels = _draw(_result(_comparable() + _not_comparable()), tmp_path / "bench.png")
    height, width, channels = pixels.shape
    assert channels in (3, 4)
    assert 800 <= width <= 3000 and 400 <= height <= 6000
    rgb = pixels[..., :3].reshape(-1, 3)
    assert rgb.std(axis=0).max() > 0.05, "the image is one colour"
    # tallyio's highlight colour is drawn, not only grey peers and black text
    assert ((rgb[:, 0] - rgb[:, 2]) > 0.3).any()


def test_figures_without_peers_are_left_out_and_the_sheet_grows_with_panels(tmp_path):
    one_panel = _draw(_result(_comparable()[:1]), tmp_path / "one.png")
    one_panel_and_tabled = _draw(_result(_comparable()[:1] + _not_comparable()), tmp_path / "same.png")
    four_panels = _draw(_result(_comparable()), tmp_path / "four.png")
    assert one_panel.shape == one_panel_and_tabled.shape
    assert four_panels.shape[1] == one_panel.shape[1]
    assert four_panels.shape[0] > one_panel.shape[0]


def test_plot_accepts_a_path_string_and_overwrites(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "bench.png"
    path.write_bytes(b"old")
    plot(_result(_comparable()), str(path))
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_nothing_comparable_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="nothing to plot: none of the 2 figures has a measured peer"):
        plot(_result(_not_comparable()), tmp_path / "bench.png")
    assert not (tmp_path / "bench.png").exists()


def test_missing_matplotlib_names_the_extra(monkeypatch, tmp_path):
    # as if not installed: submodules imported by earlier tests would otherwise still resolve
    for name in [n for n in sys.modules if n.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"pip install 'tallyio\[plot\]'") as excinfo:
        plot(_result(_comparable()), tmp_path / "bench.png")
    assert isinstance(excinfo.value.__cause__, ImportError)


def test_plot_leaves_the_callers_backend_alone(tmp_path):
    pytest.importorskip("matplotlib")
    script = (
        "import sys\n"
        "from tallyio.bench import Figure\n"
        "from tallyio.bench._plot import plot\n"
        f"machine = {MACHINE!r}\n"
        "figure = Figure('g', 'case', [1.0, 2.0], peers={'peer': [3.0, 4.0]})\n"
        f"plot({{'machine': machine, 'mode': 'smoke', 'figures': [figure]}}, {str(tmp_path / 'b.png')!r})\n"
        "print('matplotlib.pyplot' in sys.modules)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(Path(tallyio.__file__).resolve().parent.parent))
    # cwd: not the source tree, whose uncompiled tallyio/ would shadow the installed one
    done = subprocess.run([sys.executable, "-W", "error", "-c", script], env=env, capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False"]  # pyplot, which picks and switches backends, never imported


@pytest.mark.parametrize("value, unit, text", [
    (6226.09, "ns", "6.23 us"),
    (141.01, "ns/op", "141 ns/op"),
    (17_400.0, "us", "17.4 ms"),
    (3.01e6, "tasks/s", "3.01M tasks/s"),
    (65_900.0, "tasks/s", "65.9k tasks/s"),
    (1.04, "x", "1.04x"),
    (0.0, "MiB", "0 MiB"),
])
def test_values_are_written_in_a_readable_unit(value, unit, text):
    assert _format_value(value, unit) == text

"""The amm benchmark group runs (smoke mode) and yields every figure with its peer."""
from tallyio.amm import _bench
from tallyio.bench._amm import CYCLES, python_amount_out, sections
from tallyio.bench._progress import Progress
from tallyio.amm import get_amount_out


def test_smoke_sections_yield_every_figure_with_its_peer():
    progress = Progress(None, sections=4)
    figures = [f for _, measure in sections("smoke") for f in measure(progress)]
    cases = {f.case: f for f in figures}
    assert set(cases) == {"v2_amount_out", "v2_best_cycle_input, 2-pool cycle", "v2_best_cycle_input, 3-pool cycle",
                          "get_amount_out", "best_cycle_input, 2-pool cycle", "best_cycle_input, 3-pool cycle"}
    assert all(f.median > 0 for f in figures)
    assert set(cases["get_amount_out"].peers) == {"Python ints"}
    assert set(cases["best_cycle_input, 3-pool cycle"].peers) == {"Python ints, same method"}


def test_the_peers_compute_the_same_thing():
    assert python_amount_out(10**18, 3000 * 10**18, 9 * 10**12) == get_amount_out(10**18, 3000 * 10**18, 9 * 10**12)
    # the C loops really run: their checksums depend on every call
    assert _bench.c_amount_out_ns(100)[1] != _bench.c_amount_out_ns(101)[1]
    assert _bench.c_best_cycle_ns(CYCLES["2-pool cycle"], 10)[1] > 0

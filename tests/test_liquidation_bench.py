"""The liquidation benchmark group runs (smoke sizes) and yields figures with
the peer and targets the brief asks for; no timing is asserted."""
from tallyio.bench import GROUPS, _liquidation
from tallyio.bench._progress import Progress


def test_liquidation_bench_smoke():
    assert "liquidation" in GROUPS
    sections = _liquidation.sections("smoke")
    tracker = Progress(None, sections=len(sections))
    figures = []
    for name, measure in sections:
        tracker.section(name)
        figures += measure(tracker)
    by_group = {}
    for f in figures:
        by_group.setdefault(f.group, []).append(f)
    (price,) = by_group["liquidation: health factors"]
    assert set(price.peers) == {_liquidation.PYTHON_LOOP} and len(price.samples) == 2
    assert [t.peer for t in price.targets] == [None, _liquidation.PYTHON_LOOP]
    events = by_group["liquidation: one position event"]
    assert len(events) == 2 and all(f.samples and f.targets for f in events)
    assert _liquidation.PYTHON_LOOP in events[0].peers
    (exact,) = by_group["liquidation: exact set"]
    assert exact.samples


def test_the_peer_computes_what_the_matrix_computes():
    # the Python peer is the same float formula: equal health factors, account by account
    matrix, peer = _liquidation.build(500)
    hf = matrix.health_factors()
    assert len(hf) == 500
    for slot in range(500):
        # (the matrix keeps float32 cells: 1e-6 relative)
        assert hf[slot] == peer.health[slot] or abs(hf[slot] - peer.health[slot]) <= 1e-6 * abs(hf[slot])

"""The execution benchmark group runs (smoke sizes) and yields the signing
figure with its two peers and targets; no timing is asserted."""
import pytest

from tallyio.bench import _execution
from tallyio.bench._progress import Progress

pytest.importorskip("coincurve")
pytest.importorskip("eth_account")


def test_execution_bench_smoke():
    sections = _execution.sections("smoke")
    tracker = Progress(None, sections=len(sections))
    figures = []
    for name, measure in sections:
        tracker.section(name)
        figures += measure(tracker)
    [sign] = figures
    assert sign.case == "Signer.sign_transaction (type 2)" and len(sign.samples) == 2 and sign.median > 0
    assert set(sign.peers) == {_execution.COINCURVE, _execution.ETH_ACCOUNT}
    assert all(len(s) == 2 and min(s) > 0 for s in sign.peers.values())
    assert [t.peer for t in sign.targets] == [_execution.ETH_ACCOUNT, _execution.COINCURVE]
    assert all(t.met(sign) is not None for t in sign.targets)


def test_the_benchmark_transactions_are_what_eth_account_signs():
    from eth_account import Account

    from tallyio.engine.keys import Signer

    with Signer.from_hex(_execution._BENCH_KEY) as signer:
        for tx in _execution._transactions(4):
            assert signer.sign_transaction(tx)[0] == bytes(
                Account.sign_transaction(tx, _execution._BENCH_KEY).raw_transaction)


def test_coincurve_signs_the_very_digests_the_signer_signs():
    """The peer row signs each benchmark transaction's own signing digest: its signature is
    the one inside the Signer's raw transaction."""
    import coincurve

    from tallyio.engine.keys import Signer, _unsigned_fields
    from tallyio.mempool._wsenc import keccak256, rlp_encode

    secret = coincurve.PrivateKey(_execution._BENCH_KEY)
    with Signer.from_hex(_execution._BENCH_KEY) as signer:
        for tx in _execution._transactions(4):
            digest = keccak256(b"\x02" + rlp_encode(_unsigned_fields(tx)))
            sig = secret.sign_recoverable(digest, hasher=None)       # r (32) | s (32) | recovery id
            raw = signer.sign_transaction(tx)[0]
            assert raw.endswith(sig[32:64].lstrip(b"\x00")) and sig[:32].lstrip(b"\x00") in raw

"""The ``execution`` group: what signing a backrun costs.

``Signer.sign_transaction`` (type-2 RLP, keccak, libsecp256k1 through
coincurve's cffi on the key's ``bytearray``) per call, beside, in the same
repetitions:

* coincurve's own signing: ``PrivateKey.sign_recoverable`` of the same
  transactions' signing digests (keccak of the type-2 payload, computed before
  the timing: no hashing, no encoding) -- the issue's bound: within 1.2x of it;
* eth-account's ``LocalAccount.sign_transaction`` of the same transaction
  (eth-keys on its coincurve backend when coincurve is installed): what a
  Python searcher calls.

Every contender signs the same 64 Router02 swap transactions (nonces 0..63,
so no cache helps), cycled.  The machine is shared and noisy: each figure is
the median of the repetitions.
"""
from __future__ import annotations

from time import perf_counter_ns
from typing import Callable

from tallyio.bench._figures import Figure, Target, alternate, figures_for
from tallyio.bench._progress import Progress

Section = tuple[str, Callable[[Progress], list[Figure]]]

COINCURVE = "coincurve PrivateKey.sign_recoverable (digest only)"
ETH_ACCOUNT = "eth-account LocalAccount.sign_transaction"
#: a throwaway key: the benchmark signs nothing that is ever sent
_BENCH_KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")


def _transactions(n: int = 64) -> list[dict]:
    from tallyio.engine.node_executor import encode_swap_exact_tokens

    tokens = [bytes([k]) * 20 for k in (0x0A, 0x0B, 0x0C, 0x0A)]
    router = "0x7a250d5630B4cF539739dF2C5dAcb4c659F2488D"  # Router02's mainnet address (checksummed)
    return [{"type": 2, "chainId": 1, "nonce": i, "maxFeePerGas": 40 * 10**9 + i,
             "maxPriorityFeePerGas": 2 * 10**9, "gas": 300_000, "to": router, "value": 0,
             "data": encode_swap_exact_tokens(10**18 + i, 10**18 + i + 1, tokens, b"\x01" * 20, 2**32)}
            for i in range(n)]


def _per_call_ns(call: Callable[[object], object], items: list, calls: int) -> float:
    rounds = max(1, calls // len(items))
    start = perf_counter_ns()
    for _ in range(rounds):
        for item in items:
            call(item)
    return (perf_counter_ns() - start) / (rounds * len(items))


def _peers_available() -> dict[str, str]:
    missing = {}
    try:
        import coincurve  # noqa: F401
    except ImportError:
        missing[COINCURVE] = "coincurve is not installed (pip install coincurve)"
    try:
        import eth_account  # noqa: F401
    except ImportError:
        missing[ETH_ACCOUNT] = "eth-account is not installed (pip install eth-account)"
    return missing


def sections(mode: str) -> list[Section]:
    """The execution group's sections for ``mode`` (smoke, quick, full), in order."""
    reps = {"smoke": 2, "quick": 5, "full": 9}[mode]
    calls = {"smoke": 64, "quick": 2048, "full": 8192}[mode]

    def signing(progress: Progress) -> list[Figure]:
        skipped = _peers_available()
        if COINCURVE in skipped:  # the Signer itself needs coincurve
            return [Figure("Signing", "Signer.sign_transaction (type 2)", skipped=skipped[COINCURVE])]
        from tallyio.engine.keys import Signer, _unsigned_fields
        from tallyio.mempool._wsenc import keccak256, rlp_encode

        txs = _transactions()
        signer = Signer.from_hex(_BENCH_KEY)
        contenders = [("tallyio", lambda: {"sign": _per_call_ns(signer.sign_transaction, txs, calls)})]
        import coincurve
        secret = coincurve.PrivateKey(_BENCH_KEY)
        digests = [keccak256(b"\x02" + rlp_encode(_unsigned_fields(tx))) for tx in txs]   # what Signer signs
        contenders.append((COINCURVE, lambda: {
            "sign": _per_call_ns(lambda d: secret.sign_recoverable(d, hasher=None), digests, calls)}))
        if ETH_ACCOUNT not in skipped:
            from eth_account import Account
            account = Account.from_key(_BENCH_KEY)
            peer_calls = max(len(txs), calls // 8)  # ~10x slower: fewer calls, same repetitions
            contenders.append((ETH_ACCOUNT, lambda: {"sign": _per_call_ns(account.sign_transaction, txs, peer_calls)}))
        try:
            samples = alternate(contenders, reps, progress)
        finally:
            signer.close()
        # a ratio is the peer's time / ours. "Within 1.2x of coincurve's own signing time"
        # (the issue measured eth-account on coincurve at 0.35 ms) is a ratio >= 1/1.2 to
        # eth-account on coincurve; against coincurve's bare digest signing (no encoding,
        # no hashing) the same bound is the stricter reading, reported beside it.
        targets = [Target(1 / 1.2, peer=p) for p in (ETH_ACCOUNT, COINCURVE) if p not in skipped]
        return figures_for("Signing", samples, [("sign", "Signer.sign_transaction (type 2)")], unit="ns/op",
                           higher_is_better=False, targets={"sign": targets}, skipped_peers=skipped)

    return [("Signing a backrun transaction", signing)]

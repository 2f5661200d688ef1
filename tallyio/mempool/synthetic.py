"""A seeded synthetic market for tests, benchmarks and demos: V2 pools around WETH on
two exchanges, and pending transactions carrying real Uniswap V2 Router02 calldata.

Owns: nothing but generation; imports records and types only.  The calldata is the
ABI encoding of ``swapExactTokensForTokens(uint256,uint256,address[],address,uint256)``
(selector 0x38ed1739), the most common V2 router call on mainnet.

    >>> import random
    >>> pools = make_market(random.Random(1), n_tokens=4)
    >>> len(pools), pools[0].exchange, pools[1].exchange
    (6, 0, 1)
    >>> tx = swap_tx(random.Random(2), pools, ROUTERS[0], 7)
    >>> tx.input[:4].hex(), tx.nonce
    ('38ed1739', 7)
"""
from __future__ import annotations

import random
from typing import List, Optional

from tallyio.eth.types import BlockHeader, PendingTx, SyncEvent
from tallyio.mempool.records import V2Pool

__all__ = ["WETH", "ROUTERS", "make_market", "swap_calldata", "swap_tx", "irrelevant_tx",
           "block_header", "sync_event"]

WETH = bytes.fromhex("c02aaa39b223fe8d0a0e5c4f27ead9083c756cc2")
"""mainnet WETH9's address (any 20 bytes would do)."""
ROUTERS = (bytes.fromhex("7a250d5630b4cf539739df2c5dacb4c659f2488d"),
           bytes.fromhex("d9e1ce17f2641f24ae83637ab66a2cca9c378b9f"))
"""Uniswap V2 Router02 (exchange 0) and SushiSwap's router (exchange 1)."""

SWAP_EXACT_TOKENS_FOR_TOKENS = bytes.fromhex("38ed1739")


def _address(rng: random.Random) -> bytes:
    return rng.getrandbits(160).to_bytes(20, "big")


def make_market(rng: random.Random, n_tokens: int = 40, extra_pools: int = 0,
                reserve: int = 10**21) -> List[V2Pool]:
    """A WETH/token pool on each of two exchanges for every token (prices differing
    by up to 1%), plus `extra_pools` token/token pools; reserves around `reserve`."""
    tokens = [_address(rng) for _ in range(n_tokens - 1)]
    pools = []
    for token in tokens:
        price = rng.uniform(0.01, 100.0)
        for exchange in (0, 1):
            skew = 1 + rng.uniform(-0.005, 0.005)
            r_weth = int(reserve * rng.uniform(0.5, 2))
            pools.append(V2Pool(_address(rng), WETH, token, r_weth, int(r_weth * price * skew),
                                30, exchange))
    seen = set()
    while len(pools) < 2 * len(tokens) + extra_pools:
        a, b = rng.sample(tokens, 2)
        exchange = rng.randrange(2)
        if (exchange, frozenset((a, b))) in seen:
            continue
        seen.add((exchange, frozenset((a, b))))
        r_a = int(reserve * rng.uniform(0.5, 2))
        pools.append(V2Pool(_address(rng), a, b, r_a, int(r_a * rng.uniform(0.2, 5)), 30, exchange))
    return pools


def swap_calldata(amount_in: int, amount_out_min: int, path: List[bytes], to: bytes,
                  deadline: int) -> bytes:
    """ABI-encoded swapExactTokensForTokens(amountIn, amountOutMin, path, to, deadline)."""
    words = [amount_in, amount_out_min, 0xA0, int.from_bytes(to, "big"), deadline, len(path)]
    words += [int.from_bytes(token, "big") for token in path]
    return SWAP_EXACT_TOKENS_FOR_TOKENS + b"".join(w.to_bytes(32, "big") for w in words)


def swap_tx(rng: random.Random, pools: List[V2Pool], router: bytes, nonce: int,
            exchange: Optional[int] = None, received_ns: int = 0, size: float = 0.02) -> PendingTx:
    """A pending Router02 swap through one random pool of the router's exchange, selling
    about `size` of that pool's input reserve (amountOutMin 0: it never reverts on it)."""
    if exchange is None:
        exchange = ROUTERS.index(router) if router in ROUTERS else 0
    choices = [p for p in pools if p.exchange == exchange]
    pool = rng.choice(choices)
    forward = rng.random() < 0.5
    path = [pool.token0, pool.token1] if forward else [pool.token1, pool.token0]
    reserve_in = pool.reserve0 if forward else pool.reserve1
    amount = max(1, int(reserve_in * size * rng.uniform(0.2, 1.0)))
    sender = _address(rng)
    data = swap_calldata(amount, 0, path, sender, 2_000_000_000)
    return PendingTx(hash=rng.getrandbits(256).to_bytes(32, "big"), sender=sender, to=router,
                     nonce=nonce, value=0, gas=250_000, max_fee_per_gas=30 * 10**9,
                     max_priority_fee_per_gas=10**9, input=data, tx_type=2,
                     received_ns=received_ns)


def irrelevant_tx(rng: random.Random, nonce: int = 0, received_ns: int = 0) -> PendingTx:
    """An ERC-20 transfer to a token no filter knows."""
    data = bytes.fromhex("a9059cbb") + (b"\x00" * 12 + _address(rng)) + (10**18).to_bytes(32, "big")
    return PendingTx(hash=rng.getrandbits(256).to_bytes(32, "big"), sender=_address(rng),
                     to=_address(rng), nonce=nonce, value=0, gas=60_000,
                     max_fee_per_gas=30 * 10**9, max_priority_fee_per_gas=10**9, input=data,
                     tx_type=2, received_ns=received_ns)


def block_header(number: int, base_fee: int = 10 * 10**9, received_ns: int = 0) -> BlockHeader:
    return BlockHeader(number=number, hash=number.to_bytes(32, "big"),
                       parent_hash=(number - 1).to_bytes(32, "big"), timestamp=1_700_000_000 + 12 * number,
                       base_fee_per_gas=base_fee, gas_limit=30_000_000, gas_used=15_000_000,
                       received_ns=received_ns)


def sync_event(pool: bytes, reserve0: int, reserve1: int, block: int, received_ns: int = 0) -> SyncEvent:
    return SyncEvent(pool=pool, reserve0=reserve0, reserve1=reserve1, block_number=block,
                     log_index=0, transaction_hash=b"\x00" * 32, received_ns=received_ns)

#!/usr/bin/env python
"""Produce the embedded replay recording and its golden opportunities.

Runs a seeded scenario against anvil with the published Uniswap V2 contracts
(tallyio.devnet: two exchanges, pairs token0/WETH, token1/WETH, token0/token1, a 3%
price gap between the exchanges on token0/WETH), small reserves so that an exhaustive
search is possible: rounds of pending Router02 swaps from funded traders, then a
mined block.  A NodeSource tees everything it sees (pending transactions, heads, Sync
logs, the resync at connect) into a Recorder, after a pool-table snapshot read from
the chain.

The golden file is found by brute force, independently of the analyzer: the recording
is replayed in Python (Python-int Router02 math for each pending swap on the reserves of
its block), and every 2- and 3-cycle through a touched pool is searched over EVERY input
1 .. 2 x its largest reserve (numpy, int64: the products stay below 2**63 at these
sizes): BACKRUN.  Standing arbitrage the same way: after a run of Sync logs (at the next
pending transaction or head, and at the end), every cycle through a pool those logs
changed, on the state alone, each cycle once per block: ARBITRAGE (no trigger).  A cycle
enters the golden file when its best integer profit is >= 1.

    python scripts/make_recording.py [--out tallyio/data] [--seed 12] [--rounds 12]

Needs anvil (TALLYIO_CHAIN_DIR or TALLYIO_ANVIL) and the node extra.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

from tallyio.eth import decode_call
from tallyio.eth.types import BlockHeader, SyncEvent
from tallyio.mempool import NodeSource, PoolTable, Recorder, ReplaySource, V2Pool

LIQUIDITY = 200_000


def _b(address: str) -> bytes:
    return bytes.fromhex(address[2:])


def record(out: Path, seed: int, rounds: int, per_round: int) -> dict:
    from tallyio.devnet import (Anvil, Sender, deploy_uniswap, dev_accounts, fund_trader, get_reserves,
                                mine, swap_v2)

    rng = random.Random(seed)
    with Anvil(automine=False) as node:
        sender = Sender(node.rpc)
        uni = deploy_uniswap(node.rpc, sender=sender, liquidity=LIQUIDITY, price_gap_bps=300)
        traders = dev_accounts(6)[1:]
        for trader in traders:
            fund_trader(node.rpc, uni, trader, sender=sender, amount=4 * LIQUIDITY)
        pools, seen = [], set()
        for k, ex in enumerate(uni.v2):
            for (x, y), pair in ex.pairs.items():
                if pair not in seen:
                    seen.add(pair)
                    t0, t1 = sorted((x, y))
                    pools.append(V2Pool(_b(pair), _b(t0), _b(t1), *get_reserves(node.rpc, pair), 30, k))
        table = PoolTable(pools, weth=_b(uni.weth))
        path = out / "replay.tio"
        for old in out.glob("replay.tio*"):
            old.unlink()
        routers = {"routers_v2": [[ex.router, k] for k, ex in enumerate(uni.v2)], "weth": uni.weth}
        with Recorder(path, chunk_size=4096) as rec:     # a small file to ship
            rec.snapshot(table, ts=0)
            with NodeSource(node.ws_url, rec.write, pools=uni.all_v2_pairs()) as source:
                if not source.wait_connected(30):
                    raise RuntimeError("NodeSource did not connect to anvil")
                tokens = [uni.tokens[0], uni.tokens[1], uni.weth]
                for r in range(rounds):
                    sent = 0
                    for _ in range(per_round):
                        exchange = rng.randrange(2)
                        x, y = rng.sample(tokens, 2)
                        swap_v2(sender, rng.choice(traders), uni.v2[exchange].router,
                                rng.randrange(1_000, 25_000), [x, y])
                        sent += 1
                    deadline = time.monotonic() + 30
                    while source.stats()["txs"] < (r + 1) * per_round:
                        if time.monotonic() > deadline:
                            raise RuntimeError("the swaps did not reach the NodeSource")
                        time.sleep(0.01)
                    heads = source.stats().get("heads", 0)
                    mine(node.rpc)
                    deadline = time.monotonic() + 30
                    while source.stats().get("heads", 0) <= heads:
                        if time.monotonic() > deadline:
                            raise RuntimeError("the mined block did not reach the NodeSource")
                        time.sleep(0.01)
                    time.sleep(0.2)        # its Sync logs follow the head
    lock = out / "replay.tio.lock"
    if lock.exists():
        lock.unlink()
    return routers


def _out(a, rin, rout):
    return a * 997 * rout // (rin * 1000 + a * 997)


def _brute_force(hops, reserves: dict, token0: dict) -> tuple[int, int]:
    """(input, profit) of the best input of a cycle over EVERY input 1 .. 2 x its largest
    reserve (the first, i.e. smallest, input on ties)."""
    top = 2 * max(max(reserves[h[0]]) for h in hops)
    x = np.arange(1, top + 1, dtype=np.int64)
    a = x.copy()
    for p, tin, _ in hops:
        r0, r1 = reserves[p]
        rin, rout = (r0, r1) if tin == token0[p] else (r1, r0)
        a = a * 997 * rout // (rin * 1000 + a * 997)
    profit = a - x
    best = int(np.argmax(profit))
    return int(x[best]), int(profit[best])


def golden(path: Path, routers: dict) -> list[dict]:
    """Brute force over the recording (see the module doc)."""
    replay = ReplaySource(path)
    table = replay.pool_table()
    reserves = {p.address: (p.reserve0, p.reserve1) for p in table.pools()}
    token0 = {p.address: p.token0 for p in table.pools()}
    exchange_of = {_b(r): k for r, k in routers["routers_v2"]}
    pair = {}
    for p in table.pools():
        pair[(p.exchange, frozenset((p.token0, p.token1)))] = p.address
    cycles = {p.address: table.cycles_through(p.address) for p in table.pools()}
    block = base_fee = 0
    found = []
    synced: list[bytes] = []             # pools Syncs changed since the last scan, in order
    synced_block = 0                     # the block that state is valid for: max(Sync block + 1)
    scanned: dict[tuple, int] = {}       # cycle -> the block it was last scanned for

    def standing_arbitrage():
        # after a run of Syncs (at the next pending transaction or head, and at the end):
        # every cycle through a touched pool, once per (cycle, block), on the state alone;
        # valid for the block after the Syncs' (their head may come before or after them)
        nonlocal synced_block
        valid_for = max(block, synced_block)
        for pool in synced:
            for hops in cycles[pool]:
                key = tuple((h[0], h[1]) for h in hops)
                if scanned.get(key) == valid_for:
                    continue
                scanned[key] = valid_for
                amount_in, profit = _brute_force(hops, reserves, token0)
                if profit >= 1:
                    found.append({"kind": "ARBITRAGE", "trigger_tx": None,
                                  "pools": [h[0].hex() for h in hops],
                                  "token_path": [h[1].hex() for h in hops] + [hops[0][1].hex()],
                                  "amount_in": amount_in, "profit": profit,
                                  "block_number": valid_for, "base_fee_per_gas": base_fee})
        synced.clear()
        synced_block = 0

    for item in replay:
        if isinstance(item, BlockHeader):
            standing_arbitrage()
            block, base_fee = item.number + 1, item.base_fee_per_gas
            continue
        if isinstance(item, SyncEvent):
            if item.pool in reserves:
                reserves[item.pool] = (item.reserve0, item.reserve1)
                synced_block = max(synced_block, item.block_number + 1)
                if item.pool not in synced:
                    synced.append(item.pool)
            continue
        standing_arbitrage()
        exchange = exchange_of.get(item.to)
        call = decode_call(item.input) if exchange is not None else None
        if call is None or call.function != "swapExactTokensForTokens":
            continue
        path_tokens = [_b(t) for t in call.args["path"]]
        after = dict(reserves)
        amount, ok, touched = call.args["amountIn"], True, []
        for x, y in zip(path_tokens, path_tokens[1:]):
            pool = pair.get((exchange, frozenset((x, y))))
            if pool is None:
                ok = False
                break
            r0, r1 = after[pool]
            rin, rout = (r0, r1) if x == token0[pool] else (r1, r0)
            out = _out(amount, rin, rout)
            after[pool] = (r0 + amount, r1 - out) if x == token0[pool] else (r0 - out, r1 + amount)
            touched.append(pool)
            amount = out
        if not ok or amount < call.args["amountOutMin"]:
            continue
        done = set()
        for pool in touched:
            for hops in cycles[pool]:
                key = tuple(h[0] for h in hops)
                if key in done:
                    continue
                done.add(key)
                amount_in, profit = _brute_force(hops, after, token0)
                if profit >= 1:
                    found.append({"kind": "BACKRUN", "trigger_tx": item.hash.hex(),
                                  "pools": [p.hex() for p in key],
                                  "token_path": [h[1].hex() for h in hops] + [hops[0][1].hex()],
                                  "amount_in": amount_in, "profit": profit,
                                  "block_number": block, "base_fee_per_gas": base_fee})
    standing_arbitrage()
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "tallyio" / "data")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--per-round", type=int, default=8)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    routers = record(args.out, args.seed, args.rounds, args.per_round)
    found = golden(args.out / "replay.tio", routers)
    meta = {"seed": args.seed, "rounds": args.rounds, "per_round": args.per_round,
            "liquidity": LIQUIDITY, **routers,
            "how": "brute force over every input of every 2-/3-cycle through the pools each pending "
                   "swap touches, on Python-int Router02 math (BACKRUN), and of every cycle through "
                   "the pools a run of Sync logs touched, once per cycle and block, on the state "
                   "alone (ARBITRAGE) (scripts/make_recording.py)",
            "opportunities": found}
    (args.out / "replay_golden.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"{args.out / 'replay.tio'}: {sum(1 for _ in ReplaySource(args.out / 'replay.tio'))} records, "
          f"{len(found)} golden opportunities")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Memory over a long replay: is the pipeline's resident memory flat?

Writes a recording of ``--chunk`` records (the synthetic 1,000-pool market of the
mempool bench: half Router02 swaps, half irrelevant transfers, a head every 1,000
records followed by Sync logs of 8 pools, so backruns, standing arbitrage, barriers and
Sync application all run), then replays it natively (``Pipeline.replay_file``, 2
workers) through ONE Pipeline again and again until ``--records`` records went through.
The filter's duplicate window is 1 hash, so every swap is decoded and analyzed again in
every round; the opportunities are consumed (``get_many``) after each round, as an
engine would.  RSS (``/proc/self/statm``) is sampled after every round and a progress
line printed; at the end: RSS at the start (after the first round: the pipeline, its
rings and the table are then allocated), at the end and the maximum, and whether the
growth stayed under ``--tolerance-mib``.

    PYTHONPATH=. python scripts/replay_soak.py --records 10000000

Exit status 0 when memory stayed flat, 1 otherwise.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        resident_pages = int(f.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def write_recording(path: str, n_records: int, seed: int):
    from tallyio.mempool import PoolTable, Recorder
    from tallyio.mempool.synthetic import (ROUTERS, WETH, block_header, irrelevant_tx, make_market,
                                           swap_tx, sync_event)

    rng = random.Random(seed)
    pools = make_market(rng, n_tokens=120, extra_pools=1000 - 2 * 119)
    with Recorder(path) as rec:
        rec.snapshot(PoolTable(pools, weth=WETH), ts=0)
        for k in range(n_records):
            if k % 1000 == 0:
                number = 1 + k // 1000
                rec.write(block_header(number))
                for p in rng.sample(pools, 8):
                    rec.write(sync_event(p.address, int(p.reserve0 * rng.uniform(0.95, 1.05)),
                                         int(p.reserve1 * rng.uniform(0.95, 1.05)), number))
            rec.write(swap_tx(rng, pools, ROUTERS[k % 2], k) if rng.random() < 0.5
                      else irrelevant_tx(rng, k))
    return pools


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=10_000_000, help="pending transactions in all")
    parser.add_argument("--chunk", type=int, default=100_000, help="pending transactions per round")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--tolerance-mib", type=float, default=8.0)
    args = parser.parse_args(argv)
    if args.records < 1 or args.chunk < 1:
        parser.error("--records and --chunk must be >= 1")

    from tallyio.mempool import FilterConfig, Pipeline
    from tallyio.mempool.recording import ReplaySource
    from tallyio.mempool.synthetic import ROUTERS

    folder = tempfile.mkdtemp(prefix="tallyio-soak-")
    path = os.path.join(folder, "soak.tio")
    t0 = time.monotonic()
    write_recording(path, args.chunk, args.seed)
    print(f"recording: {args.chunk:,} pending transactions, {os.path.getsize(path) / 2**20:.1f} MiB, "
          f"written in {time.monotonic() - t0:.1f} s", flush=True)
    rounds = -(-args.records // args.chunk)
    samples = []
    done = opportunities = 0
    t0 = time.monotonic()
    try:
        with Pipeline(ReplaySource(path).pool_table(), routers_v2=[(ROUTERS[0], 0), (ROUTERS[1], 1)],
                      filter_config=FilterConfig(check_nonces=False, recent_hashes=1),
                      workers=2) as pipe:
            for r in range(rounds):
                info = pipe.replay_file(path)
                if info["end"] != "end of log":
                    print(f"round {r}: stopped early: {info['end']}", file=sys.stderr)
                    return 1
                opportunities += len(pipe.opportunities.get_many(1 << 20))
                done += info["pending"]
                samples.append(rss_mib())
                elapsed = time.monotonic() - t0
                print(f"round {r + 1}/{rounds}: {done:,} tx, {done / elapsed:,.0f} tx/s, "
                      f"RSS {samples[-1]:.1f} MiB, {opportunities:,} opportunities taken", flush=True)
            s = pipe.stats()
    finally:
        for name in os.listdir(folder):
            os.unlink(os.path.join(folder, name))
        os.rmdir(folder)
    start, end, peak = samples[0], samples[-1], max(samples)
    ring = s["ring"]
    print(f"\n{done:,} pending transactions in {time.monotonic() - t0:.0f} s; "
          f"analyzed swaps {s['analyzer']['swaps']:,}; arbitrage scans {s['arbitrage']['scans']:,}; "
          f"ring received {ring['received']:,} = processed {ring['processed']:,} + dropped "
          f"{ring['dropped']:,} + in flight {ring['in_flight']:,}")
    print(f"RSS after round 1 {start:.1f} MiB, at the end {end:.1f} MiB, max {peak:.1f} MiB "
          f"(growth {end - start:+.1f} MiB, tolerance {args.tolerance_mib} MiB)")
    flat = peak - start <= args.tolerance_mib
    print("memory flat" if flat else "memory GREW")
    return 0 if flat else 1


if __name__ == "__main__":
    sys.exit(main())

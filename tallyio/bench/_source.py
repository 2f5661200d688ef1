"""The ``source`` group: how soon a pending transaction is in hand after it was
sent, from a real anvil running the real Uniswap contracts.

One run sends ``n`` pre-signed Uniswap V2/V3 swaps at 200/s (open loop: each
send is scheduled at ``start + i / rate``, never waiting for the watcher) and
takes, for each, the time from ``eth_sendRawTransaction`` returning to the
full transaction being in the consumer's hands: tallyio's ``NodeSource`` sink
call (after JSON parsing and the hash check) vs web3.py's
``newPendingTransactions`` subscription with full transactions (the message
reaching the ``process_subscriptions`` loop), and tallyio's own share (frame
read to sink: JSON, field checks, RLP, Keccak). anvil answers the send and
pushes the notification at about the same moment, so a notification can arrive
before the send returns: that counts as 0. Figures: p50, p99 (per run, median
over runs) and transactions lost. Needs anvil (``TALLYIO_CHAIN_DIR`` or
``TALLYIO_ANVIL``) and the node extra; web3.py is an optional peer.

A second section runs the whole live engine on the same chain: victim swaps big
enough to open a backrun (25 tokens into WETH on exchange A or B) sent at 200/s,
and for each, the time from its send returning to its BACKRUN opportunity
returned by ``await next_opportunity()``; split at the frame read (our share:
parse, filter, analysis, hand-off) and at the analysis (``detected_ns`` -> returned:
the hand-off alone).  The engine's default (``inline_analysis``: the NodeSource
thread analyzes when a worker slot is idle) alternates with a worker woken per
transaction.
"""
from __future__ import annotations

import asyncio
import importlib.util
import os
import subprocess
import sys
import tempfile
import threading
import time
from typing import Callable

import tallyio
from tallyio.bench._figures import Figure, Target, alternate, figures_for
from tallyio.bench._progress import Progress

GROUP = "source: pending tx in hand after send"
RATE = 200.0
Section = tuple[str, Callable[[Progress], list[Figure]]]


class _Chain:
    """anvil + the Uniswap deployment + funded traders, shared by the runs."""

    def __init__(self) -> None:
        from tallyio.devnet import Anvil, Sender, deploy_uniswap, dev_accounts, fund_trader

        self.node = Anvil(automine=False)
        try:
            self.sender = Sender(self.node.rpc)
            self.uniswap = deploy_uniswap(self.node.rpc, sender=self.sender)
            self.traders = dev_accounts(9)[1:]
            for trader in self.traders:
                fund_trader(self.node.rpc, self.uniswap, trader, sender=self.sender)
        except BaseException:
            self.node.stop()
            raise
        self.salt = 0

    def presign(self, n: int, victims: bool = False) -> list[tuple[bytes, bytes]]:
        """``n`` fresh swaps after dropping whatever the last run left pending: on V2
        router A, V2 router B and the V3 router in turn; with ``victims``, swaps big
        enough to open a backrun (25 tokens into WETH on the V2 exchanges A and B in
        turn; pending, never mined, so each meets the same state)."""
        from tallyio.devnet import swap_v2, swap_v3

        self.node.rpc.call("anvil_dropAllTransactions")
        self.sender.forget_nonces()
        self.salt += 1
        u, out = self.uniswap, []
        base, kinds = (25 * 10**18, 2) if victims else (10**15, 3)
        for i in range(n):
            trader = self.traders[i % len(self.traders)]
            amount = base + self.salt * 100_000 + i
            if i % kinds < 2:
                out.append(swap_v2(self.sender, trader, u.v2[i % kinds].router, amount, [u.tokens[0], u.weth],
                                   sign_only=True))
            else:
                out.append(swap_v3(self.sender, trader, u.v3_router, u.tokens[0], u.weth, amount, sign_only=True))
        return out  # type: ignore[return-value]

    def table(self) -> tuple[object, list[tuple[bytes, int]]]:
        """The V2 pools' PoolTable at the chain's current reserves, and the routers."""
        from tallyio.devnet import get_reserves
        from tallyio.mempool import PoolTable
        from tallyio.mempool.records import V2Pool

        raw = lambda address: bytes.fromhex(address[2:])  # noqa: E731
        pools, seen = [], set()
        for k, exchange in enumerate(self.uniswap.v2):
            for (x, y), pair in exchange.pairs.items():
                if pair in seen:
                    continue
                seen.add(pair)
                t0, t1 = sorted((x, y))             # a V2 pair's token0 is the lower address
                pools.append(V2Pool(raw(pair), raw(t0), raw(t1), *get_reserves(self.node.rpc, pair), 30, k))
        routers = [(raw(exchange.router), k) for k, exchange in enumerate(self.uniswap.v2)]
        return PoolTable(pools, weth=raw(self.uniswap.weth)), routers

    def close(self) -> None:
        self.node.stop()


def _send_paced(chain: _Chain, signed: list[tuple[bytes, bytes]]) -> dict[bytes, int]:
    """Send ``signed`` at RATE from a separate process (as a real sender is:
    in this process its thread would compete for the GIL with the watcher being
    measured); returns hash -> ``monotonic_ns()`` when each send returned
    (CLOCK_MONOTONIC is shared by the processes of one machine). The sender
    reads its transactions and connects first and only then starts its clock,
    so a slow process start cannot turn into a catch-up burst."""
    with tempfile.NamedTemporaryFile("w", suffix=".txs") as batch:
        batch.write("\n".join(raw.hex() for raw, _ in signed))
        batch.flush()
        # the child imports this very tallyio: started in the folder that holds it (a source
        # checkout as the working directory would otherwise shadow an installed package)
        home = os.path.dirname(os.path.dirname(os.path.abspath(tallyio.__file__)))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [home, os.environ.get("PYTHONPATH")])))
        proc = subprocess.run([sys.executable, "-m", "tallyio.bench._source", chain.node.url, batch.name, str(RATE)],
                              capture_output=True, timeout=120 + len(signed) / RATE, cwd=home, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"the sender process failed: {proc.stderr.decode()[-2000:]}")
    returned = {}
    for line in proc.stdout.decode().split():
        tx_hash, _, ns = line.partition(",")
        returned[bytes.fromhex(tx_hash)] = int(ns)
    if set(returned) != {h for _, h in signed}:
        raise RuntimeError("the sender process did not send every transaction")
    return returned


def _sender_main(url: str, batch: str, rate: float) -> None:
    """The sender process: raw transactions (hex lines) from ``batch``, each sent
    at ``start + i / rate``; prints ``hash,returned_ns`` lines."""
    from tallyio.mempool._wsrpc import RpcClient

    with open(batch) as f:
        raws = [bytes.fromhex(line) for line in f.read().split()]
    rpc = RpcClient(url)
    rpc.call("eth_chainId")  # open the keep-alive connection before the clock starts
    start_ns = time.monotonic_ns() + 20_000_000
    out = []
    for i, raw in enumerate(raws):
        due = start_ns + int(i * 1e9 / rate)
        while True:
            left = due - time.monotonic_ns()
            if left <= 0:
                break
            time.sleep(left / 1e9 if left > 2_000_000 else 0)
        tx_hash = rpc.call("eth_sendRawTransaction", "0x" + raw.hex())
        out.append(f"{tx_hash[2:]},{time.monotonic_ns()}")
    sys.stdout.write("\n".join(out))


def _summary(returned: dict[bytes, int], arrivals: dict[bytes, int]) -> dict[str, float]:
    lat = sorted(max(0, arrivals[h] - t) / 1e3 for h, t in returned.items() if h in arrivals)
    if not lat:
        return {"p50": float("nan"), "p99": float("nan"), "lost": float(len(returned))}
    return {"p50": lat[len(lat) // 2], "p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))],
            "lost": float(len(returned) - len(lat))}


def _wait_all(returned: dict[bytes, int], arrivals: dict[bytes, int], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not all(h in arrivals for h in returned):
        time.sleep(0.01)


def _tallyio_run(chain: _Chain, n: int) -> dict[str, float]:
    from tallyio.mempool import NodeSource

    signed = chain.presign(n)
    arrivals: dict[bytes, int] = {}
    frames: dict[bytes, int] = {}

    def sink(record: object) -> None:
        arrivals[record.hash] = time.monotonic_ns()  # type: ignore[attr-defined]
        frames[record.hash] = record.received_ns  # type: ignore[attr-defined]

    with NodeSource(chain.node.ws_url, sink, heads=False, full_transactions=True, resync=False) as source:
        if not source.wait_connected(30):
            raise RuntimeError(f"NodeSource did not connect: {source.stats()['last_error']}")
        returned = _send_paced(chain, signed)
        _wait_all(returned, arrivals)
    summary = _summary(returned, arrivals)
    # our own share: the frame's last byte read -> the record in the sink (JSON, checks, RLP, keccak)
    work = sorted((arrivals[h] - frames[h]) / 1e3 for h in arrivals)
    summary["work_p50"] = work[len(work) // 2]
    summary["work_p99"] = work[min(len(work) - 1, int(len(work) * 0.99))]
    # the floor below our work: the frame's last byte read, after the send returned (anvil + OS)
    floor = sorted(max(0, frames[h] - t) / 1e3 for h, t in returned.items() if h in frames)
    summary["frame_p50"] = floor[len(floor) // 2]
    summary["frame_p99"] = floor[min(len(floor) - 1, int(len(floor) * 0.99))]
    return summary


def _engine_run(chain: _Chain, n: int, inline: bool) -> dict[str, float]:
    """The live engine on anvil: ``n`` victim swaps sent at RATE (a separate process);
    for each backrun, the time from its victim's send returning to the opportunity
    returned by ``await next_opportunity()``, split at the frame read (anvil + OS before
    our work) and at the analysis (``detected_ns``)."""
    from tallyio.engine.config import CoreConfig
    from tallyio.engine.engine import Engine
    from tallyio.mempool import FilterConfig, OpportunityKind

    table, routers = chain.table()
    signed = chain.presign(n, victims=True)
    victims = {tx_hash for _, tx_hash in signed}
    got: dict[bytes, tuple[int, int, int]] = {}     # victim -> (frame read, detected, returned)
    config = CoreConfig(node_url=chain.node.ws_url, filter=FilterConfig(check_nonces=False), inline_analysis=inline)

    async def main() -> tuple[dict[bytes, int], dict]:
        async with Engine(config, table=table, routers=routers) as engine:
            if not await asyncio.to_thread(engine.wait_connected, 30):
                raise RuntimeError("the engine's NodeSource did not connect")
            sending = asyncio.ensure_future(asyncio.to_thread(_send_paced, chain, signed))
            deadline = time.monotonic() + 30 + n / RATE
            while len(got) < n and time.monotonic() < deadline:
                try:
                    op = await asyncio.wait_for(engine.next_opportunity(), max(0.05, deadline - time.monotonic()))
                except asyncio.TimeoutError:
                    break
                now = time.monotonic_ns()
                if op is None:
                    break
                if op.kind is OpportunityKind.BACKRUN and op.trigger_tx in victims and op.trigger_tx not in got:
                    got[op.trigger_tx] = (op.received_ns, op.detected_ns, now)
                if sending.done() and len(got) == n:
                    break
            returned = await sending
            return returned, engine.pipeline.stats()["pipeline"]

    returned, pipeline = asyncio.run(main())
    found = [(returned[h], *got[h]) for h in returned if h in got]

    def pct(values: list[float], q: float) -> float:
        values = sorted(values)
        return values[min(len(values) - 1, int(len(values) * q))] if values else float("nan")

    total = [max(0, ret - sent) / 1e3 for sent, _, _, ret in found]
    ours = [(ret - frame) / 1e3 for _, frame, _, ret in found]
    handoff = [(ret - det) / 1e3 for _, _, det, ret in found]
    return {"p50": pct(total, 0.5), "p99": pct(total, 0.99), "missed": float(n - len(found)),
            "ours_p50": pct(ours, 0.5), "ours_p99": pct(ours, 0.99),
            "handoff_p50": pct(handoff, 0.5), "handoff_p99": pct(handoff, 0.99),
            "inline_feeds": float(pipeline["inline_feeds"])}


def _web3_run(chain: _Chain, n: int) -> dict[str, float]:
    from web3 import AsyncWeb3, WebSocketProvider

    signed = chain.presign(n)
    arrivals: dict[bytes, int] = {}
    ready, stop = threading.Event(), threading.Event()
    failure: list[BaseException] = []

    async def watch() -> None:
        async with AsyncWeb3(WebSocketProvider(chain.node.ws_url)) as w3:
            await w3.eth.subscribe("newPendingTransactions", True)
            ready.set()
            async for message in w3.socket.process_subscriptions():
                arrivals[bytes(message["result"]["hash"])] = time.monotonic_ns()
                if stop.is_set():
                    break

    def thread_main() -> None:
        try:
            loop = asyncio.new_event_loop()
            task = loop.create_task(watch())

            async def stopper() -> None:
                while not stop.is_set():
                    await asyncio.sleep(0.05)
                task.cancel()

            loop.run_until_complete(asyncio.gather(task, stopper(), return_exceptions=True))
            loop.close()
        except BaseException as exc:  # reported below, in the caller's thread
            failure.append(exc)
            ready.set()

    watcher = threading.Thread(target=thread_main, name="web3-watcher", daemon=True)
    watcher.start()
    ready.wait(30)
    if failure:
        raise failure[0]
    returned = _send_paced(chain, signed)
    _wait_all(returned, arrivals)
    stop.set()
    watcher.join(10)
    return _summary(returned, arrivals)


def sections(mode: str) -> list[Section]:
    """The source group's sections for ``mode`` (smoke, quick, full)."""
    reps = {"smoke": 1, "quick": 3, "full": 3}[mode]
    n = {"smoke": 30, "quick": 600, "full": 2000}[mode]

    def latency(progress: Progress) -> list[Figure]:
        cases = [("p50", f"full tx in hand after send, p50 ({n} swaps at {RATE:.0f}/s)"),
                 ("p99", f"full tx in hand after send, p99 ({n} swaps at {RATE:.0f}/s)"),
                 ("lost", f"transactions never delivered (of {n})")]
        try:
            for needed in ("eth_abi", "eth_account"):
                if importlib.util.find_spec(needed) is None:
                    raise ImportError(f"{needed} is not installed (pip install 'tallyio[node]' eth-abi)")
            chain = _Chain()
        except Exception as exc:  # no anvil, no artifacts, no node extra: say why
            return [Figure(GROUP, label, unit="us", skipped=f"{type(exc).__name__}: {exc}") for _, label in cases]
        try:
            contenders: list = [("tallyio", lambda: _tallyio_run(chain, n))]
            skipped: dict[str, str] = {}
            try:
                import web3  # noqa: F401

                contenders.append((f"web3.py {web3.__version__}", lambda: _web3_run(chain, n)))
            except ImportError:
                skipped["web3.py"] = "not installed (pip install web3)"
            samples = alternate(contenders, reps, progress)
        finally:
            chain.close()
        targets = {"p99": [Target(1000.0)] + [Target(10.0, peer=name) for name, _ in contenders[1:]]}
        figures = figures_for(GROUP, {k: {c: v for c, v in by.items() if c in ("p50", "p99")}
                                      for k, by in samples.items()},
                              cases[:2], unit="us", higher_is_better=False, targets=targets, skipped_peers=skipped)
        figures += figures_for(GROUP, {k: {"lost": by["lost"]} for k, by in samples.items()}, [cases[2]],
                               unit="tasks", higher_is_better=False, skipped_peers=skipped)
        own = ("work_p50", "work_p99", "frame_p50", "frame_p99")
        figures += figures_for(GROUP, {"tallyio": {k: samples["tallyio"][k] for k in own}},
                               [("work_p50", "tallyio's own work, frame read -> sink, p50"),
                                ("work_p99", "tallyio's own work, frame read -> sink, p99"),
                                ("frame_p50", "frame read after send (anvil + OS, before our work), p50"),
                                ("frame_p99", "frame read after send (anvil + OS, before our work), p99")],
                               unit="us", higher_is_better=False)
        return figures

    def live_engine(progress: Progress) -> list[Figure]:
        victims = {"smoke": 20, "quick": 300, "full": 1000}[mode]
        label = f"({victims} victim swaps at {RATE:.0f}/s)"
        cases = [("p50", f"live engine: victim sent -> its backrun from next_opportunity(), p50 {label}"),
                 ("p99", f"live engine: victim sent -> its backrun from next_opportunity(), p99 {label}"),
                 ("ours_p50", "live engine: frame read -> next_opportunity() returned (our share), p50"),
                 ("ours_p99", "live engine: frame read -> next_opportunity() returned (our share), p99"),
                 ("handoff_p50", "live engine: detected -> next_opportunity() returned, p50"),
                 ("handoff_p99", "live engine: detected -> next_opportunity() returned, p99")]
        worker = "tallyio, a worker woken per transaction (inline_analysis=False)"
        try:
            chain = _Chain()
        except Exception as exc:  # no anvil, no artifacts, no node extra: say why
            return [Figure(GROUP, text, unit="us", skipped=f"{type(exc).__name__}: {exc}") for _, text in cases]
        try:
            samples = alternate([("tallyio", lambda: _engine_run(chain, victims, True)),
                                 (worker, lambda: _engine_run(chain, victims, False))], reps, progress)
        finally:
            chain.close()
        figures = figures_for(GROUP, samples, cases, unit="us", higher_is_better=False)
        missed = ("missed", f"live engine: victims with no backrun returned (of {victims})")
        figures += figures_for(GROUP, samples, [missed], unit="tasks", higher_is_better=False)
        return figures

    return [(f"source: {n} swaps at {RATE:.0f}/s, NodeSource vs web3.py", latency),
            (f"source: the live engine on anvil, victim swaps at {RATE:.0f}/s, inline analysis vs a woken worker",
             live_engine)]


if __name__ == "__main__":
    _sender_main(sys.argv[1], sys.argv[2], float(sys.argv[3]))

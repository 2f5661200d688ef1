"""``tallyio run``: the engine from the command line.  With no arguments it
replays the embedded recording (dry run) in seconds, with a live status line
on a terminal and a summary at the end; ``--node URL`` watches a real node;
``--execute`` sends transactions (needs a signer); ``--report FILE`` writes the
HTML run report; ``--strategy module:Class`` runs a user's strategy.

Owns the ``run`` subcommand's parser and its loop (``cli.py`` only registers
it); uses the Engine's public face.

    >>> import argparse, io
    >>> parser = argparse.ArgumentParser(prog="tallyio")
    >>> add_run_command(parser.add_subparsers(dest="command"))   # doctest: +ELLIPSIS
    ArgumentParser(prog='tallyio run', ...)
    >>> out = io.StringIO()
    >>> run_command(parser.parse_args(["run", "--quiet"]), out=out)
    0
    >>> "opportunities" in out.getvalue()
    True
"""
from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
import time
from typing import List, Optional, TextIO

__all__ = ["add_run_command", "run_command", "load_strategy"]

_DESCRIPTION = """\
Runs the engine: source -> filter -> analyze -> strategies -> executor.

With no arguments it replays the recording that ships in the package (made
against anvil with the published Uniswap V2 contracts) through the dry-run
executor, which executes every action against the replayed pool state
exactly, and prints what each would have made. On a terminal a status line
shows transactions/s, opportunities, executed, P&L and p99 latency; a
summary follows at the end.

  tallyio run                                   the embedded replay, dry run
  tallyio run --replay rec.tio                  another recording
  tallyio run --node ws://127.0.0.1:8546 --pools rec.tio --router 0xROUTER:0
                                                a node, dry run (pools and routers
                                                from a recording's snapshot and the flags)
  tallyio run --node URL ... --execute          send transactions (needs a signer:
                                                TALLYIO_SIGNER_KEY_ENV or TALLYIO_KEYSTORE)
  tallyio run --strategy mypkg.mod:MyStrategy   a strategy of yours (repeatable)
  tallyio run --report run.html                 the HTML run report afterwards
"""


def add_run_command(subparsers) -> argparse.ArgumentParser:
    """Add ``tallyio run`` to a CLI's subparsers; ``args.func(args)`` runs it."""
    from tallyio.metrics.report import add_report_option

    p = subparsers.add_parser("run", help="run the engine (no arguments: the embedded replay, dry run)",
                              description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--node", metavar="URL", help="ws://, wss://, http:// or https:// node to watch")
    p.add_argument("--replay", metavar="FILE", help="a recording to replay (default: the embedded one)")
    p.add_argument("--pools", metavar="RECORDING",
                   help="with --node: take the pool table from this recording's snapshot")
    p.add_argument("--router", action="append", default=[], metavar="0xADDRESS:EXCHANGE",
                   help="with --node: a V2 router and its exchange id (repeatable)")
    p.add_argument("--execute", action="store_true", help="send real transactions (needs --node and a signer)")
    p.add_argument("--strategy", action="append", default=[], metavar="module:Class",
                   help="a Strategy subclass to run (repeatable; default: CycleStrategy on a replay, "
                        "BackrunStrategy on a node)")
    p.add_argument("--checkpoint-dir", metavar="DIR", help="keep the journal and checkpoints here (resumes a run)")
    p.add_argument("--realtime", action="store_true", help="pace a replay by its recorded times")
    p.add_argument("--quiet", action="store_true", help="no status line")
    add_report_option(p)
    p.set_defaults(func=run_command)
    return p


def load_strategy(spec: str):
    """``module:Class`` -> an instance of that Strategy subclass (ValueError saying what is wrong)."""
    from tallyio.engine.strategy import Strategy

    module_name, sep, class_name = spec.partition(":")
    if not sep or not module_name or not class_name:
        raise ValueError(f"--strategy {spec!r}: expected module:Class")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"--strategy {spec!r}: cannot import {module_name}: {exc}") from None
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise ValueError(f"--strategy {spec!r}: {class_name} is not a tallyio Strategy subclass in {module_name}")
    return cls()


def _config_and_parts(args: argparse.Namespace):
    from tallyio.engine.config import CoreConfig
    from tallyio.mempool import ReplaySource

    table = routers = None
    if args.node:
        if not args.pools or not args.router:
            raise ValueError("--node needs --pools RECORDING (the pool table) and --router 0xADDRESS:EXCHANGE")
        table = ReplaySource(args.pools).pool_table()
        routers = []
        for spec in args.router:
            address, sep, exchange = spec.partition(":")
            if not sep or not exchange.isdigit() or len(address) != 42 or not address.startswith("0x"):
                raise ValueError(f"--router {spec!r}: expected 0x<40 hex digits>:<exchange id>")
            routers.append((bytes.fromhex(address[2:]), int(exchange)))
        config = CoreConfig.from_env(node_url=args.node, execute=args.execute,
                                     checkpoint_dir=args.checkpoint_dir)
    else:
        config = CoreConfig.from_env(replay_path=args.replay, replay_realtime=args.realtime,
                                     execute=args.execute, checkpoint_dir=args.checkpoint_dir)
    return config, table, routers


def _executor_for(config, table, routers):
    if not config.execute:
        return None
    import os

    try:
        from tallyio.engine.keys import Signer
        from tallyio.engine.node_executor import NodeExecutor
    except ImportError:
        raise ValueError("--execute: the node executor (tallyio.engine.node_executor) is not in this "
                         "build") from None
    if config.keystore_path is not None:
        password = os.environ.get(config.keystore_password_env or "")
        if password is None:
            raise ValueError(f"--execute: {config.keystore_password_env} (the keystore's password) is not set")
        signer = Signer.from_keystore(config.keystore_path, password)
    else:
        signer = Signer.from_env(config.signer_key_env)
    # JSON-RPC calls go over HTTP; a node serving ws:// serves http:// on the same port (anvil, geth, reth)
    rpc_url = config.node_url.replace("wss://", "https://", 1).replace("ws://", "http://", 1)
    return NodeExecutor(rpc_url, signer)


def _status_line(engine, started: float) -> str:
    stats = engine.stats()
    elapsed = max(1e-9, time.monotonic() - started)
    tx = stats["pipeline"].get("ring", {}).get("received", 0) + stats["pipeline"].get("filter", {}).get("not_target", 0)
    results = stats["results"]
    executed = results["SIMULATED"] + results["SENT"] + results["LANDED"]
    p99 = stats["latency_ns"].get("execute", {}).get("p99")
    p99_text = "-" if p99 is None else f"{p99 / 1000:.1f} us"
    return (f"{tx / elapsed:,.0f} tx/s | opportunities {stats['opportunities']['handed_out']:,} | "
            f"executed {executed:,} | P&L {stats['realized_profit']:,} | p99 {p99_text}")


async def _run(args: argparse.Namespace, out: TextIO, strategies: List, config, table, routers,
               executor) -> dict:
    from tallyio.engine.engine import Engine

    live = not args.quiet and out.isatty()
    started = time.monotonic()
    engine = Engine(config, strategies=strategies, executor=executor, table=table, routers=routers)
    async with engine:
        last = 0.0
        while (op := await engine.next_opportunity()) is not None:
            await engine.execute_strategy(op)
            if live and time.monotonic() - last >= 0.25:
                last = time.monotonic()
                out.write("\r" + _status_line(engine, started) + "  ")
                out.flush()
        if live:
            out.write("\r" + _status_line(engine, started) + "  \n")
    return {"engine": engine, "stats": engine.stats(), "seconds": time.monotonic() - started}


def run_command(args: argparse.Namespace, out: Optional[TextIO] = None) -> int:
    """Run the engine as ``args`` say; returns the exit status (2: bad arguments)."""
    from tallyio.engine.strategy import CycleStrategy
    from tallyio.errors import ConfigError

    out = sys.stdout if out is None else out
    try:
        strategies = [load_strategy(spec) for spec in args.strategy]
        config, table, routers = _config_and_parts(args)
        if not strategies:
            # a node gets transactions a router can execute; a replay's dry run follows each
            # opportunity's own pools, cross-exchange cycles included
            if args.node:
                from tallyio.engine.backrun import BackrunStrategy
                strategies = [BackrunStrategy(table)]
            else:
                strategies = [CycleStrategy()]
        executor = _executor_for(config, table, routers)
    except (ValueError, ConfigError, OSError) as exc:
        print(f"tallyio run: {exc}", file=sys.stderr)
        return 2
    try:
        done = asyncio.run(_run(args, out, strategies, config, table, routers, executor))
    except KeyboardInterrupt:
        print("\ntallyio run: interrupted; the engine stopped (state checkpointed)", file=sys.stderr)
        return 130
    stats = done["stats"]
    results = stats["results"]
    executed = results["SIMULATED"] + results["SENT"] + results["LANDED"]
    lat = stats["latency_ns"].get("execute", {})
    pipe = stats["pipeline"]
    say = lambda text: print(text, file=out)  # noqa: E731
    say(f"tallyio run: {config.source}{'' if config.execute else ' (dry run)'}, {done['seconds']:.2f} s")
    say(f"  records fed      {stats['source']['records_fed']:,} "
        f"(pending txs passed the filter: {pipe.get('filter', {}).get('passed', 0):,})")
    say(f"  opportunities    {stats['opportunities']['handed_out']:,} "
        f"(dropped {stats['opportunities']['dropped']:,})")
    say(f"  executed         {executed:,} (reverted {results['REVERTED']:,}, failed {results['FAILED']:,}, "
        f"rejected {results['REJECTED']:,})")
    say(f"  realized P&L     {stats['realized_profit']:,} (start-token units)")
    if lat.get("count"):
        say(f"  execute_strategy p50 {lat['p50'] / 1000:.1f} us, p99 {lat['p99'] / 1000:.1f} us")
    for name, s in stats["strategies"].items():
        if s["errors"]:
            say(f"  strategy {name}: {s['errors']} errors, last: {s['last_error']}")
    if stats["source"].get("ended") is False:
        pass
    health = done["engine"].health()
    if health["source_error"]:
        say(f"  source error: {health['source_error']}")
    if getattr(args, "report", None):
        from tallyio.metrics.report import finish_report
        path = finish_report(args, done["engine"].registry, title="tallyio run")
        say(f"  report: {path}")
    return 1 if health["source_error"] else 0

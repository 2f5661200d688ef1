"""Side-by-side benchmarks of tallyio against what a Python user would
otherwise pick, measured in one process run, alternating the contenders.

    tallyio bench --quick              # about a minute and a half on 2 cores
    tallyio bench                      # full run, every group (under 10 minutes)
    tallyio bench --smoke              # tiny sizes: proves every benchmark runs (CI)
    tallyio bench --group scheduler    # one group only (repeatable)
    tallyio bench --json out.json --plot out.png

Groups:

* ``core``: the queues, the deque and the pool, at C level (ns per operation
  in nogil loops) and per call from Python next to ``queue.SimpleQueue``,
  ``collections.deque`` and ``bytearray``.
* ``scheduler``: ``NumaScheduler`` with 2 workers next to
  ``concurrent.futures.ThreadPoolExecutor`` (1, 2 and 4 workers), an asyncio
  loop in another thread fed by ``call_soon_threadsafe``,
  ``multiprocessing.Pool(2)`` (``apply_async`` and ``map``), and, when
  installed, loky and dask's threaded scheduler (missing ones are listed as
  skipped with the reason): no-op tasks, ~5 us pure-Python tasks, tasks that
  release the GIL, native nogil tasks, the cost of one submit,
  submit-to-start and submit-to-complete latency, priority isolation and
  memory.

* ``decode``: the nogil calldata decoder (``tallyio.eth``) on real mainnet
  router calls, from C and from Python, beside eth-abi and web3.py.
* ``amm``: exact Uniswap V2 math and optimal cycle sizing on 256-bit integers
  in C, beside the same math on Python integers.
* ``mempool``: decode + filter + analyze of a V2 swap against a 1,000-pool
  table, an irrelevant transaction, and replay throughput through 2 workers
  (``tallyio.mempool``), beside a peer written the way a Python searcher
  writes it (eth-abi decoding, Python integer math, the same cycles).
* ``source``: a node's pending transactions in hand after the send
  (``tallyio.mempool.NodeSource`` against anvil with the real Uniswap
  contracts, 200 swaps/s), beside web3.py's subscription; skipped, with the
  reason, when anvil or the node extra is missing.
* ``state``: a thread-local merge plus an A/B checkpoint, seqlock reads and
  recovery (``tallyio.state``), beside py-lmdb and sqlite3.
* ``metrics``: a histogram record from C and from Python (``tallyio.metrics``),
  beside prometheus_client and hdrhistogram.
* ``breaker``: the circuit breaker's closed-path overhead from C (count and
  time windows, two threads) and from Python, beside pybreaker's ``call()``.
* ``execution``: signing a transaction (``tallyio.engine.Signer``) beside
  coincurve alone and eth-account.
* ``engine``: ``engine_execution`` (gate, breaker, a Python strategy, the dry
  run), ``mempool_analysis``, ``state_sync`` and the open-loop end-to-end
  latency at 10,000 tx/s, beside the same flow written as a Python searcher
  writes it.
* ``liquidation``: Aave v3 health factors of 100,000 accounts x 8 reserves
  after one price update, and one position event, from Python and from C
  (``tallyio.amm.health.HealthMatrix``), beside the same computation in a
  plain Python loop over lists of accounts.

* ``backtest``: one segment set (the embedded recording x 3 strategy settings,
  ``tallyio.backtest``) sequentially and on Dask LocalClusters of 1 and 2 worker
  processes: the speedup and Dask's overhead per task.

The ``scheduler`` group also measures the awaitable path (``await
scheduler.run``, ``submit_async`` gathered) beside ``run_in_executor`` and
``call_soon_threadsafe``.

Every figure is the median of several repetitions; the spread is
(max-min)/median; within a repetition the contenders run one after the
other, each set up (threads or processes started) outside its timing.  The
ratio of a peer says how many times better tallyio's figure is (> 1: tallyio
better), whichever way the unit points.
"""
from __future__ import annotations

from typing import Callable, Sequence

from tallyio.bench import (_amm, _backtest, _breaker, _core, _decode, _engine, _execution, _liquidation, _mempool,
                           _metrics, _scheduler, _source, _state)
from tallyio.bench._figures import Figure, Target
from tallyio.bench._plot import plot
from tallyio.bench._progress import Progress
from tallyio.bench._report import best_peer, format_summary, format_table, machine_description, to_json

__all__ = ["Figure", "Target", "GROUPS", "run", "machine_description", "format_summary", "format_table",
           "best_peer", "to_json", "plot"]

#: the benchmark groups `run` knows, in the order they run
GROUPS = ("core", "scheduler", "decode", "amm", "mempool", "source", "state", "metrics", "breaker", "execution",
          "engine", "liquidation", "backtest")
_SECTIONS = {"core": _core.sections, "scheduler": _scheduler.sections, "decode": _decode.sections,
             "amm": _amm.sections, "mempool": _mempool.sections, "source": _source.sections, "state": _state.sections,
             "metrics": _metrics.sections, "breaker": _breaker.sections, "execution": _execution.sections,
             "engine": _engine.sections, "liquidation": _liquidation.sections, "backtest": _backtest.sections}


def run(*, quick: bool = False, smoke: bool = False, groups: Sequence[str] = GROUPS,
        progress: Callable[[str], None] | None = None) -> dict:
    """Run the benchmark ``groups`` and return ``{"machine", "mode", "figures"}``;
    ``progress`` receives a line saying what runs, as it starts.

    The process peers (multiprocessing.Pool, loky) start their workers with
    the forkserver method, which imports the caller's main module in each of
    them: call ``run()`` from a script under ``if __name__ == "__main__":``
    (the ``tallyio bench`` command does).

    >>> result = run(smoke=True, groups=["core"])
    >>> sorted(result) == ["figures", "machine", "mode"] and len(result["figures"]) > 0
    True
    """
    if quick and smoke:
        raise ValueError("choose one of quick and smoke")
    unknown = [g for g in groups if g not in GROUPS]
    if unknown or not groups:
        raise ValueError(f"groups must be a non-empty selection of {GROUPS}, got {list(groups)!r}")
    mode = "smoke" if smoke else "quick" if quick else "full"
    sections = [section for group in GROUPS if group in groups for section in _SECTIONS[group](mode)]
    tracker = Progress(progress, sections=len(sections))
    figures: list[Figure] = []
    for name, measure in sections:
        tracker.section(name)
        figures += measure(tracker)
    return {"machine": machine_description(), "mode": mode, "figures": figures}

"""The node source: pending transactions, new heads and pool ``Sync`` logs from
an Ethereum node, handed one record at a time to a sink, on one watcher thread.

Owns: the watcher thread, its connections (a websocket, a second one for
fetching when the node only sends hashes, or an HTTP JSON-RPC client for
polling), subscriptions/filters, reconnecting with backoff and jitter, the
resync after a reconnect, the heartbeat, the recent-hash set that keeps each
transaction delivered once, and the counters of :meth:`NodeSource.stats`.
Touches nothing downstream: it only calls the ``sink`` it was given.

Hand-off: ``sink(record)`` is called on the watcher thread with a
:class:`~tallyio.eth.types.PendingTx`, :class:`~tallyio.eth.types.BlockHeader`
or :class:`~tallyio.eth.types.SyncEvent` (and, for the ``v3_pools`` given, a
:class:`~tallyio.mempool.records.V3PoolEvent` per Swap/Mint/Burn log and per pool
after each resync: ``tallyio.mempool.v3sync``; with a ``lending`` market, the decoded
Aave records of ``tallyio.eth.aave``; for each filter in ``logs``, a
:class:`~tallyio.eth.types.RawLog` per matching log, undecoded), in arrival order. It must be quick
(push into a bounded ring, a queue, ``loop.call_soon_threadsafe``); while it
runs, the node's next frames wait in the kernel. An exception from it is
counted (``sink_errors``) and logged, and the watcher goes on.

    >>> seen = []
    >>> source = NodeSource("ws://127.0.0.1:8545", seen.append, pools=[b"\\x11" * 20])
    >>> source.stats()["connected"], source.pools == frozenset({b"\\x11" * 20})
    (False, True)
    >>> source.close()
"""
from __future__ import annotations

import collections
import logging
import random
import select
import ssl
import threading
import time
import urllib.parse
from typing import Any, Callable, Iterable, Union

from tallyio.errors import NodeConnectionError, RpcError
from tallyio.eth.aave import AAVE_TOPICS, decode_aave_log
from tallyio.eth.types import BlockHeader, PendingTx, RawLog, SyncEvent
from tallyio.mempool._wsclient import OVERSIZED, WebSocket, WsClosed, WsProtocolError
from tallyio.mempool._wsrpc import RpcClient, dumps, loads
from tallyio.mempool._wstx import SYNC_TOPIC, BadRecord, parse_header, parse_pending_tx, parse_sync_log
from tallyio.mempool.records import V3PoolEvent
from tallyio.mempool.v3sync import V3_TOPICS, parse_v3_log, read_v3_state

__all__ = ["NodeSource", "Record", "RESYNC_LOG_INDEX"]

Record = Union[PendingTx, BlockHeader, SyncEvent, V3PoolEvent, RawLog]
log = logging.getLogger("tallyio.mempool.node")

#: ``SyncEvent.log_index`` of reserves read by ``getReserves`` during a resync
#: (not from a log): ``transaction_hash`` is then 32 zero bytes
RESYNC_LOG_INDEX = -1
_GET_RESERVES = "0x0902f1ac"
_ZERO_HASH = bytes(32)


class _Stalled(ConnectionError):
    """The heartbeat found the connection or a subscription silent."""


def _address(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray)) and len(value) == 20:
        return bytes(value)
    if isinstance(value, str) and value[:2] in ("0x", "0X") and len(value) == 42:
        return bytes.fromhex(value[2:])
    raise ValueError(f"a pool address is 20 bytes or 0x + 40 hex digits, got {value!r}")


def _redacted(url: str) -> str:
    """scheme://host:port only: node URLs often carry an API key in the path or query."""
    parsed = urllib.parse.urlsplit(url)
    return f"{parsed.scheme}://{parsed.hostname}" + (f":{parsed.port}" if parsed.port else "")


class NodeSource:
    """Pending transactions, heads and ``Sync`` logs from a node at ``url``.

    ``ws://`` / ``wss://``: ``eth_subscribe`` to ``newPendingTransactions`` with
    full transactions (``full_transactions=None`` tries that and falls back to
    hashes fetched over a second connection; ``True``/``False`` force one),
    ``newHeads``, and ``logs`` of the ``Sync`` topic of :attr:`pools`.
    ``http://`` / ``https://``: ``eth_newPendingTransactionFilter``,
    ``eth_newBlockFilter`` and a ``Sync`` log filter, polled every
    ``poll_interval`` seconds.

    Each (re)connection resyncs: the node's pending set (``txpool_content``, when
    it has it) and every pool's reserves (``getReserves``, delivered as
    ``SyncEvent`` with ``log_index == RESYNC_LOG_INDEX``). A transaction is
    delivered once (a bounded set of recent hashes). Every record is checked:
    malformed JSON, wrong field types, oversized messages, a hash that does not
    match the fields are counted by reason in :meth:`stats` and skipped.
    Every ``heartbeat_interval`` seconds (traffic or not) the source asks the
    node for its block number; no answer within ``heartbeat_timeout``, or a node
    two blocks ahead of the last ``newHeads``, means a stalled connection or
    subscription: it reconnects. (A pending-transaction subscription that stops
    while the connection still answers cannot be told from a quiet mempool.) Reconnects back off exponentially from
    ``backoff_initial`` to ``backoff_max`` seconds, each delay scaled by a
    random factor in [0.5, 1] (jitter). ``ssl_context`` verifies ``wss://`` /
    ``https://`` (default: the system's trust store). ``on_idle`` (optional) is
    called on the watcher thread when the node has nothing more to send after a
    burst of records (``Pipeline.scan_arbitrage``: a block's Syncs are then applied).
    ``logs`` (websocket only): ``eth_subscribe("logs", filter)`` filters (dicts of
    ``address`` and/or ``topics``) whose logs are delivered undecoded as
    :class:`~tallyio.eth.types.RawLog` (a Recorder keeps them; their subscriber decodes
    them); no resync: after a reconnect their subscriber catches up (``eth_getLogs``).

    ``lending`` (optional, ``ws://``/``wss://`` only) follows an Aave v3 market: an
    object with ``log_addresses(call)`` (the 20-byte addresses whose Aave events
    to subscribe to: the Pool, the oracle, the aTokens and debt tokens) and
    ``resync(call, block)`` (bring its positions to ``block`` from the node),
    where ``call(method, params)`` is a JSON-RPC call on the watcher's
    connection (``tallyio.mempool.lending_feed.LendingFeed`` is one). Each
    (re)connection subscribes to those logs FIRST, then calls ``resync``; the
    logs that arrive during the resync are held and delivered after it (those
    of blocks up to the resync's are already in it). Each log is delivered as
    its decoded record with ``block_timestamp`` filled in from the ``newHeads``
    of its block (a log that comes before its head waits for it). A removed
    (reorged) log is not delivered: it triggers a resync.

    ``start()`` starts the watcher thread (the context manager does it);
    ``close()`` stops it and closes every connection.
    """

    def __init__(self, url: str, sink: Callable[[Record], object], *, pools: Iterable[Any] = (),
                 pending: bool = True, heads: bool = True, full_transactions: bool | None = None,
                 verify_hashes: bool = True, resync: bool = True, max_message_bytes: int = 16 << 20,
                 heartbeat_interval: float = 5.0, heartbeat_timeout: float = 5.0, backoff_initial: float = 0.1,
                 backoff_max: float = 10.0, poll_interval: float = 0.05, connect_timeout: float = 10.0,
                 recent_hashes: int = 65536, quickack: bool = True, ssl_context: ssl.SSLContext | None = None,
                 on_idle: Callable[[], object] | None = None, v3_pools: Iterable[Any] = (), lending: Any = None,
                 logs: Iterable[dict] = ()):
        parsed = urllib.parse.urlsplit(url) if isinstance(url, str) else None
        if parsed is None or parsed.scheme not in ("ws", "wss", "http", "https") or not parsed.hostname:
            raise ValueError(f"url must be ws://, wss://, http:// or https:// with a host, got {url!r}")
        if not callable(sink):
            raise TypeError(f"sink must be callable (it receives each record), got {type(sink).__name__}")
        if on_idle is not None and not callable(on_idle):
            raise TypeError(f"on_idle must be callable or None, got {type(on_idle).__name__}")
        for name, value in (("heartbeat_interval", heartbeat_interval), ("heartbeat_timeout", heartbeat_timeout),
                            ("backoff_initial", backoff_initial), ("backoff_max", backoff_max),
                            ("poll_interval", poll_interval), ("connect_timeout", connect_timeout)):
            if not (isinstance(value, (int, float)) and value > 0):
                raise ValueError(f"{name} must be a number of seconds > 0, got {value!r}")
        if backoff_max < backoff_initial:
            raise ValueError(f"backoff_max ({backoff_max}) must be >= backoff_initial ({backoff_initial})")
        if not (isinstance(max_message_bytes, int) and max_message_bytes >= 1024):
            raise ValueError(f"max_message_bytes must be an int >= 1024, got {max_message_bytes!r}")
        if not (isinstance(recent_hashes, int) and recent_hashes >= 1):
            raise ValueError(f"recent_hashes must be an int >= 1, got {recent_hashes!r}")
        self.url = url
        self.transport = "ws" if parsed.scheme in ("ws", "wss") else "http"
        self._sink = sink
        self._on_idle = on_idle
        self._delivered_since_idle = False
        self._want_pending, self._want_heads = pending, heads
        self._full = full_transactions
        self._verify = verify_hashes
        self._resync_enabled = resync
        self._max_bytes = max_message_bytes
        self._hb_interval, self._hb_timeout = float(heartbeat_interval), float(heartbeat_timeout)
        self._backoff = (float(backoff_initial), float(backoff_max))
        self._poll = float(poll_interval)
        self._connect_timeout = float(connect_timeout)
        self._recent: dict[bytes, None] = {}
        self._recent_cap = recent_hashes
        self._quickack = quickack
        self._ssl_context = ssl_context
        self._pools: frozenset[bytes] = frozenset(_address(p) for p in pools)
        self._v3_pools: frozenset[bytes] = frozenset(_address(p) for p in v3_pools)
        if self._v3_pools and self.transport != "ws":
            raise ValueError("v3_pools: V3 pool logs are followed over ws:// or wss:// only")
        if lending is not None:
            if self.transport != "ws":
                raise ValueError("lending: Aave logs are followed over ws:// or wss:// only")
            if not heads:
                raise ValueError("lending: Aave logs need heads=True (a log's block timestamp comes from its head)")
            if not (callable(getattr(lending, "log_addresses", None)) and callable(getattr(lending, "resync", None))):
                raise TypeError("lending must have log_addresses(call) and resync(call, block) methods, got "
                                f"{type(lending).__name__}")
        self._lending = lending
        self._lending_addresses: frozenset[bytes] = frozenset()
        self._lending_hold: list | None = None       # records held while the lending market resyncs
        self._lending_waiting: collections.deque = collections.deque()   # logs waiting for their head's time
        self._lending_resync_needed = False
        self._lending_resync_block = 0
        self._head_times: collections.OrderedDict = collections.OrderedDict()   # block number -> timestamp
        self._log_filters = _log_filters(logs)
        if self._log_filters and self.transport != "ws":
            raise ValueError("logs: raw log filters are followed over ws:// or wss:// only")
        self._pools_changed = False
        self._stop = threading.Event()
        self.connected = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._skipped: collections.Counter = collections.Counter()
        self._counts: collections.Counter = collections.Counter()
        self._pending_mode = "off" if not pending else ("filter" if self.transport == "http" else "unknown")
        self._last_head: int | None = None
        self._sessions = 0
        self._last_error = ""
        # per-session websocket state
        self._ws: WebSocket | None = None
        self._fetch_ws: WebSocket | None = None
        self._subs: dict[str, str] = {}
        self._replies: dict[int, Any] = {}
        # ids we sent and await: only their answers are kept (a node cannot grow _replies)
        self._awaited: set[int] = set()
        self._next_id = 1

    def __repr__(self) -> str:
        return f"NodeSource({_redacted(self.url)!r}, {'connected' if self.connected.is_set() else 'not connected'})"

    # ---- public control ----
    @property
    def pools(self) -> frozenset[bytes]:
        """The pool addresses whose ``Sync`` logs are followed (20-byte ``bytes``)."""
        return self._pools

    def set_pools(self, pools: Iterable[Any]) -> None:
        """Replace the followed pools; the watcher resubscribes and reads the new
        pools' reserves (``getReserves``) at once."""
        new = frozenset(_address(p) for p in pools)
        with self._lock:
            self._pools = new
            self._pools_changed = True

    def start(self) -> "NodeSource":
        """Start the watcher thread (idempotent)."""
        if self._stop.is_set():
            raise RuntimeError("this NodeSource was closed; make a new one")
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"tallyio-node-{_redacted(self.url)}",
                                            daemon=True)
            self._thread.start()
        return self

    def wait_connected(self, timeout: float = 30.0) -> bool:
        """Block until subscribed (and resynced) or ``timeout``; True when connected."""
        return self.connected.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the watcher and close every connection (idempotent)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self._close_connections()

    def __enter__(self) -> "NodeSource":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stats(self) -> dict:
        """Counters: records delivered (``txs``, ``heads``, ``syncs``), ``duplicates``,
        ``skipped`` (total) and ``skipped_by_reason``, ``messages``, ``bytes``,
        ``reconnects``, ``gaps`` (disconnected windows), ``gap_blocks`` (heads
        never seen), ``resynced_txs``, ``resynced_pools``, ``heartbeats``,
        ``stalls``, ``sink_errors``, ``idle_calls``, ``connected``, ``transport``,
        ``pending_mode`` (full, hashes, filter, off), ``last_error``, and ``raw_logs``
        (RawLog records delivered for the ``logs`` filters)."""
        counts = dict(self._counts)
        skipped = dict(self._skipped)
        out = {key: counts.get(key, 0) for key in (
            "txs", "heads", "syncs", "duplicates", "messages", "bytes", "reconnects", "gaps", "gap_blocks",
            "resynced_txs", "resynced_pools", "heartbeats", "stalls", "sink_errors", "fetched", "fetch_missing",
            "idle_calls", "v3_events", "resynced_v3_pools", "lending_events", "lending_resyncs",
            "lending_removed", "raw_logs")}
        out.update(skipped=sum(skipped.values()), skipped_by_reason=skipped, connected=self.connected.is_set(),
                   transport=self.transport, pending_mode=self._pending_mode, last_error=self._last_error)
        return out

    # ---- delivery ----
    def _emit(self, record: Record) -> None:
        self._delivered_since_idle = True
        try:
            self._sink(record)
        except Exception as exc:  # the consumer's bug must not stop the watcher
            self._counts["sink_errors"] += 1
            log.warning("the NodeSource sink raised %r; record skipped", exc)

    def _idle(self) -> None:
        """The node has nothing more to send right now: tell on_idle (on this thread, the
        sink's), once per burst of records (a Pipeline scans a block's Syncs for arbitrage)."""
        if self._on_idle is None or not self._delivered_since_idle:
            return
        self._delivered_since_idle = False
        self._counts["idle_calls"] += 1
        try:
            self._on_idle()
        except Exception as exc:  # the consumer's bug must not stop the watcher
            self._counts["sink_errors"] += 1
            log.warning("the NodeSource on_idle raised %r", exc)

    def _deliver_tx(self, tx: PendingTx, counter: str = "txs") -> None:
        recent = self._recent
        if tx.hash in recent:
            self._counts["duplicates"] += 1
            return
        recent[tx.hash] = None
        if len(recent) > self._recent_cap:
            del recent[next(iter(recent))]
        self._counts[counter] += 1
        if counter != "txs":
            self._counts["txs"] += 1
        self._emit(tx)

    def _deliver_head(self, header: BlockHeader) -> None:
        last = self._last_head
        if last is not None and header.number > last + 1:
            self._counts["gap_blocks"] += header.number - last - 1
        self._last_head = header.number
        if self._lending is not None:
            times = self._head_times
            times[header.number] = header.timestamp
            while len(times) > 256:
                times.popitem(last=False)
            self._release_waiting_logs()       # a block's logs before its header
        self._counts["heads"] += 1
        self._emit(header)

    def _skip(self, reason: str, detail: str = "") -> None:
        self._skipped[reason] += 1
        if detail:
            log.debug("skipped (%s): %s", reason, detail)

    # ---- the watcher ----
    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            try:
                if self.transport == "ws":
                    self._session_ws()
                else:
                    self._session_http()
            except (OSError, WsClosed, WsProtocolError, _Stalled, RpcError, NodeConnectionError) as exc:
                self._last_error = f"{type(exc).__name__}: {exc}"
                log.info("node %s: connection lost (%s)", _redacted(self.url), self._last_error)
            except Exception as exc:  # a bug of ours: log it, keep the watcher alive
                self._counts["internal_errors"] += 1
                self._last_error = f"{type(exc).__name__}: {exc}"
                log.exception("node source: unexpected error; reconnecting")
            was_connected = self.connected.is_set()
            self.connected.clear()
            self._close_connections()
            if self._stop.is_set():
                break
            if was_connected:
                attempt = 0
                self._counts["gaps"] += 1
            initial, ceiling = self._backoff
            delay = min(ceiling, initial * (2 ** min(attempt, 30))) * random.uniform(0.5, 1.0)
            attempt += 1
            self._stop.wait(delay)

    def _close_connections(self) -> None:
        for ws in (self._ws, self._fetch_ws):
            if ws is not None:
                ws.close()
        self._ws = self._fetch_ws = None

    def _on_connected(self) -> None:
        if self._sessions:
            self._counts["reconnects"] += 1
        self._sessions += 1
        self.connected.set()

    # ---- websocket session ----
    def _open_ws(self) -> WebSocket:
        return WebSocket(self.url, timeout=self._connect_timeout, max_message_bytes=self._max_bytes,
                         quickack=self._quickack, ssl_context=self._ssl_context)

    def _session_ws(self) -> None:
        ws = self._ws = self._open_ws()
        self._subs, self._replies, self._awaited = {}, {}, set()
        # a frame that stops midway for this long is a stalled connection
        ws.settimeout(self._hb_interval + self._hb_timeout)
        if self._want_pending:
            self._subscribe_pending()
        if self._want_heads:
            self._subs[self._ws_call("eth_subscribe", ["newHeads"])] = "heads"
        with self._lock:
            pools, self._pools_changed = self._pools, False
        self._subscribe_logs(pools)
        self._subscribe_v3()
        self._subscribe_lending()
        self._subscribe_raw_logs()
        if self._resync_enabled:
            self._resync(self._ws_call, pools)
            self._resync_v3(self._ws_call)
        self._resync_lending(self._ws_call)
        self._on_connected()
        # the probe goes out every heartbeat_interval even while traffic flows: a
        # busy pending stream must not hide a newHeads subscription that stopped
        last_probe = time.monotonic()
        probe_id: int | None = None
        probe_sent = 0.0
        sock = ws.sock
        while not self._stop.is_set():
            if self._pools_changed:
                self._update_pools_ws()
            if self._lending_resync_needed or (self._lending is not None
                                               and getattr(self._lending, "needs_resync", False)):
                self._resync_lending(self._ws_call)
            now = time.monotonic()
            if probe_id is None:
                if now - last_probe > self._hb_interval:
                    probe_id = self._ws_send("eth_blockNumber", [])
                    probe_sent = now
                    self._counts["heartbeats"] += 1
            elif now - probe_sent > self._hb_timeout:
                self._counts["stalls"] += 1
                raise _Stalled(f"no answer to a heartbeat in {self._hb_timeout} s")
            if not ws.pending() and not getattr(sock, "pending", lambda: 0)():
                self._idle()
                ready, _, _ = select.select([sock], [], [], 0.25)
                if not ready:
                    continue
            self._ws_receive_one(ws)
            if probe_id is not None and probe_id in self._replies:
                reply = self._replies.pop(probe_id)
                probe_id = None
                last_probe = time.monotonic()
                self._check_heads_alive(reply)

    def _check_heads_alive(self, reply: Any) -> None:
        if not self._want_heads or self._last_head is None or not isinstance(reply, dict):
            return
        try:
            number = int(reply.get("result"), 16)
        except (TypeError, ValueError):
            return
        if number > self._last_head + 1:
            self._counts["stalls"] += 1
            raise _Stalled(f"the node is at block {number} but newHeads stopped at {self._last_head}")

    def _subscribe_pending(self) -> None:
        if self._full is not False:
            try:
                self._subs[self._ws_call("eth_subscribe", ["newPendingTransactions", True])] = "pending"
                self._pending_mode = "full" if self._full is None or self._full else "hashes"
                return
            except RpcError:
                if self._full:
                    raise
        self._subs[self._ws_call("eth_subscribe", ["newPendingTransactions"])] = "pending"
        self._pending_mode = "hashes"

    def _subscribe_logs(self, pools: frozenset[bytes]) -> None:
        if pools:
            params = {"address": ["0x" + p.hex() for p in sorted(pools)], "topics": ["0x" + SYNC_TOPIC.hex()]}
            self._subs[self._ws_call("eth_subscribe", ["logs", params])] = "logs"

    def _subscribe_v3(self) -> None:
        if self._v3_pools:
            params = {"address": ["0x" + p.hex() for p in sorted(self._v3_pools)],
                      "topics": [["0x" + t.hex() for t in V3_TOPICS]]}
            self._subs[self._ws_call("eth_subscribe", ["logs", params])] = "v3logs"

    # ---- the lending market (Aave v3) ----
    def _subscribe_lending(self) -> None:
        if self._lending is None:
            return
        self._lending_addresses = frozenset(_address(a) for a in self._lending.log_addresses(self._ws_call))
        if self._lending_addresses:
            params = {"address": ["0x" + a.hex() for a in sorted(self._lending_addresses)],
                      "topics": [list(AAVE_TOPICS.values())]}
            self._subs[self._ws_call("eth_subscribe", ["logs", params])] = "lendinglogs"

    def _resync_lending(self, call: Callable[[str, list], Any]) -> None:
        """The market's positions brought to the node's current block by ``lending.resync``;
        logs arriving meanwhile are held, then those of later blocks delivered."""
        if self._lending is None:
            return
        self._lending_resync_needed = False
        block = self._lending_resync_block = int(call("eth_blockNumber", []), 16)
        self._lending_waiting.clear()          # the resync reads their blocks' state itself
        self._lending_hold = []
        try:
            self._lending.resync(call, block)
        finally:
            held, self._lending_hold = self._lending_hold, None
        self._counts["lending_resyncs"] += 1
        for record in held:
            if record.block_number > block:
                self._deliver_lending(record)

    def _lending_log(self, result: Any, received_ns: int) -> None:
        if type(result) is not dict:
            raise BadRecord("bad_type", "a log notification is not an object")
        try:
            record = decode_aave_log(result, received_ns=received_ns)
        except ValueError as exc:
            raise BadRecord("bad_aave_log", str(exc)) from None
        if record is None:
            self._skip("unknown_topic")
            return
        try:
            emitter = _address(result.get("address"))
        except ValueError:
            raise BadRecord("bad_field", "a log's address is not an address") from None
        if emitter not in self._lending_addresses:
            self._skip("unknown_address")
            return
        if record.removed:            # a reorg: the book cannot undo a log; read the chain again
            self._counts["lending_removed"] += 1
            self._lending_resync_needed = True
            return
        if self._lending_hold is not None and record.block_number <= self._lending_resync_block:
            return                    # a resync in progress reads this block's state itself
        self._deliver_lending(record)

    def _deliver_lending(self, record: Any) -> None:
        if not record.block_timestamp:
            ts = self._head_times.get(record.block_number)
            if ts is None or self._lending_waiting:     # its head has not come yet (or earlier logs wait)
                self._lending_waiting.append(record)
                return
            record = record._replace(block_timestamp=ts)
        self._hand_lending(record)

    def _hand_lending(self, record: Any) -> None:
        if self._lending_hold is not None:
            self._lending_hold.append(record)
            return
        self._counts["lending_events"] += 1
        self._emit(record)

    def _release_waiting_logs(self) -> None:
        """A head came: the logs that waited for their block's time go out, in order. One
        whose head never came (a gap: the node skipped it) cannot be timed: the market resyncs."""
        waiting, times, head = self._lending_waiting, self._head_times, self._last_head
        while waiting:
            number = waiting[0].block_number
            if number in times:
                self._hand_lending(waiting.popleft()._replace(block_timestamp=times[number]))
            elif head is not None and number < head:
                waiting.clear()
                self._lending_resync_needed = True
            else:
                return
    def _subscribe_raw_logs(self) -> None:
        for params in self._log_filters:
            self._subs[self._ws_call("eth_subscribe", ["logs", params])] = "rawlogs"

    def _deliver_raw_log(self, result: Any, received_ns: int) -> None:
        try:
            raw = RawLog.from_rpc(result, received_ns)
        except ValueError as exc:
            self._skip("bad_field", str(exc))
            return
        self._counts["raw_logs"] += 1
        self._emit(raw)

    def _resync_v3(self, call: Callable[[str, list], Any]) -> None:
        """Every V3 pool's state (slot0, liquidity, the initialized tick range) as a ``state``
        V3PoolEvent: what a Swap/Mint/Burn log missed while disconnected."""
        if not self._v3_pools:
            return
        block = call("eth_blockNumber", [])
        for pool in sorted(self._v3_pools):
            try:
                event = read_v3_state(call, pool, block)
            except BadRecord as exc:
                self._skip(exc.reason, str(exc))
                continue
            self._counts["resynced_v3_pools"] += 1
            self._emit(event._replace(received_ns=time.monotonic_ns()))

    def _update_pools_ws(self) -> None:
        with self._lock:
            pools, self._pools_changed = self._pools, False
        for sub, kind in list(self._subs.items()):
            if kind == "logs":
                del self._subs[sub]
                try:
                    self._ws_call("eth_unsubscribe", [sub])
                except RpcError:
                    pass
        self._subscribe_logs(pools)
        self._resync_reserves(self._ws_call, pools)

    def _ws_send(self, method: str, params: list, ws: WebSocket | None = None) -> int:
        request_id = self._next_id
        self._next_id += 1
        if ws is None:
            self._awaited.add(request_id)
        (ws or self._ws).send(dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}))
        return request_id

    def _ws_call(self, method: str, params: list) -> Any:
        """A request on the main connection; notifications that arrive meanwhile are handled."""
        ws = self._ws
        request_id = self._ws_send(method, params)
        deadline = time.monotonic() + self._hb_timeout + self._connect_timeout
        while request_id not in self._replies:
            if time.monotonic() > deadline:
                raise _Stalled(f"no answer to {method} in time")
            self._ws_receive_one(ws)
        return _result(method, self._replies.pop(request_id))

    def _fetch_call(self, method: str, params: list) -> tuple[Any, int]:
        """A request on the second connection (hash mode): nothing else arrives there."""
        if self._fetch_ws is None:
            self._fetch_ws = self._open_ws()
            self._fetch_ws.settimeout(self._hb_timeout + self._connect_timeout)
        request_id = self._ws_send(method, params, self._fetch_ws)
        while True:
            payload, received_ns = self._fetch_ws.recv()
            if payload is OVERSIZED:
                self._skip("oversized")
                continue
            try:
                msg = loads(payload)
            except ValueError:
                self._skip("malformed_json")
                continue
            if isinstance(msg, dict) and msg.get("id") == request_id:
                return _result(method, msg), received_ns

    def _ws_receive_one(self, ws: WebSocket) -> None:
        payload, received_ns = ws.recv()
        self._counts["messages"] += 1
        if payload is OVERSIZED:
            self._skip("oversized")
            return
        self._counts["bytes"] += len(payload)  # type: ignore[arg-type]
        try:
            msg = loads(payload)  # type: ignore[arg-type]
        except ValueError:
            self._skip("malformed_json", bytes(payload[:80]).decode("utf-8", "replace"))  # type: ignore[index]
            return
        if type(msg) is not dict:
            if type(msg) is list:  # a batch answer
                replies = [item for item in msg if type(item) is dict and type(item.get("id")) is int]
                for item in replies:
                    self._keep_reply(item["id"], item)
                if len(replies) == len(msg):
                    return
            self._skip("bad_type", f"a message is {type(msg).__name__}")
            return
        if msg.get("method") == "eth_subscription":
            params = msg.get("params")
            if type(params) is not dict:
                self._skip("bad_field", "'params' of a notification is not an object")
                return
            kind = self._subs.get(params.get("subscription"))  # type: ignore[arg-type]
            if kind is None:
                self._skip("unknown_subscription")
                return
            self._notification(kind, params.get("result"), received_ns)
            return
        request_id = msg.get("id")
        if type(request_id) is int:
            self._keep_reply(request_id, msg)
        else:
            self._skip("bad_message", "neither a notification nor an answer")

    def _keep_reply(self, request_id: int, msg: Any) -> None:
        if request_id in self._awaited:
            self._awaited.discard(request_id)
            self._replies[request_id] = msg
        else:
            self._skip("unexpected_reply", f"an answer to id {request_id}, which we did not ask")

    def _notification(self, kind: str, result: Any, received_ns: int) -> None:
        try:
            if kind == "pending":
                if type(result) is str:  # a hash: this node (or mode) does not send full transactions
                    self._pending_mode = "hashes"
                    self._fetch_and_deliver(result)
                else:
                    self._deliver_tx(parse_pending_tx(result, received_ns, verify_hash=self._verify))
            elif kind == "heads":
                self._deliver_head(parse_header(result, received_ns))
            elif kind == "lendinglogs":
                self._lending_log(result, received_ns)
            elif kind == "rawlogs":
                self._deliver_raw_log(result, received_ns)
            elif kind == "v3logs":
                v3_event = parse_v3_log(result, received_ns)
                if v3_event.pool not in self._v3_pools:
                    self._skip("unknown_pool")
                    return
                self._counts["v3_events"] += 1
                self._emit(v3_event)
            else:
                event = parse_sync_log(result, received_ns)
                if event.pool not in self._pools:
                    self._skip("unknown_pool")
                    return
                self._counts["syncs"] += 1
                self._emit(event)
        except BadRecord as exc:
            self._skip(exc.reason, str(exc))

    def _fetch_and_deliver(self, hash_hex: str) -> None:
        if len(hash_hex) != 66 or hash_hex[:2] != "0x":
            self._skip("bad_field", f"a pending hash is not 0x + 64 hex digits: {hash_hex[:80]!r}")
            return
        try:
            if bytes.fromhex(hash_hex[2:]) in self._recent:
                self._counts["duplicates"] += 1
                return
        except ValueError:
            self._skip("bad_field", f"a pending hash is not hex: {hash_hex[:80]!r}")
            return
        obj, received_ns = self._fetch_call("eth_getTransactionByHash", [hash_hex])
        if obj is None:
            self._counts["fetch_missing"] += 1  # mined or dropped before we asked
            return
        self._counts["fetched"] += 1
        self._deliver_tx(parse_pending_tx(obj, received_ns, verify_hash=self._verify))

    # ---- resync (both transports) ----
    def _resync(self, call: Callable[[str, list], Any], pools: frozenset[bytes]) -> None:
        if self._want_pending:
            try:
                content = call("txpool_content", [])
            except RpcError as exc:
                self._skip("txpool_unavailable", str(exc))
                content = None
            received_ns = time.monotonic_ns()
            if type(content) is dict:
                for section in ("pending", "queued"):
                    by_sender = content.get(section)
                    if type(by_sender) is not dict:
                        continue
                    for by_nonce in by_sender.values():
                        if type(by_nonce) is not dict:
                            self._skip("bad_field", "a txpool_content sender entry is not an object")
                            continue
                        for obj in by_nonce.values():
                            try:
                                self._deliver_tx(parse_pending_tx(obj, received_ns, verify_hash=self._verify),
                                                 "resynced_txs")
                            except BadRecord as exc:
                                self._skip(exc.reason, str(exc))
        self._resync_reserves(call, pools)

    def _resync_reserves(self, call: Callable[[str, list], Any], pools: frozenset[bytes]) -> None:
        if not pools:
            return
        block = call("eth_blockNumber", [])
        for pool in sorted(pools):
            out = call("eth_call", [{"to": "0x" + pool.hex(), "data": _GET_RESERVES}, block])
            received_ns = time.monotonic_ns()
            try:
                raw = bytes.fromhex(out[2:]) if type(out) is str and out[:2] == "0x" else b""
            except ValueError:
                raw = b""
            if len(raw) != 96:
                self._skip("bad_reserves", f"getReserves of 0x{pool.hex()} returned {str(out)[:80]!r}")
                continue
            self._counts["resynced_pools"] += 1
            self._emit(SyncEvent(pool, int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:64], "big"),
                                 int(block, 16), RESYNC_LOG_INDEX, _ZERO_HASH, False, received_ns))

    # ---- HTTP polling session ----
    def _session_http(self) -> None:
        rpc = RpcClient(self.url, timeout=self._connect_timeout, ssl_context=self._ssl_context)
        try:
            self._poll_http(rpc)
        finally:
            rpc.close()

    def _poll_http(self, rpc: RpcClient) -> None:
        call = lambda method, params: rpc.call(method, *params)  # noqa: E731
        pending_filter = rpc.call("eth_newPendingTransactionFilter") if self._want_pending else None
        block_filter = rpc.call("eth_newBlockFilter") if self._want_heads else None
        with self._lock:
            pools, self._pools_changed = self._pools, False
        log_filter = self._http_log_filter(rpc, pools)
        if self._resync_enabled:
            self._resync(call, pools)
        self._on_connected()
        while not self._stop.wait(self._poll):
            if self._pools_changed:
                with self._lock:
                    pools, self._pools_changed = self._pools, False
                if log_filter is not None:
                    rpc.call("eth_uninstallFilter", log_filter)
                log_filter = self._http_log_filter(rpc, pools)
                self._resync_reserves(call, pools)
            if pending_filter is not None:
                hashes = rpc.call("eth_getFilterChanges", pending_filter)
                fresh = [h for h in (hashes if type(hashes) is list else [])
                         if type(h) is str and len(h) == 66 and _unseen(h, self._recent)]
                if fresh:
                    objs = rpc.batch([("eth_getTransactionByHash", [h]) for h in fresh])
                    received_ns = time.monotonic_ns()
                    for obj in objs:
                        if obj is None:
                            self._counts["fetch_missing"] += 1
                            continue
                        self._counts["fetched"] += 1
                        try:
                            self._deliver_tx(parse_pending_tx(obj, received_ns, verify_hash=self._verify))
                        except BadRecord as exc:
                            self._skip(exc.reason, str(exc))
            if block_filter is not None:
                hashes = rpc.call("eth_getFilterChanges", block_filter)
                if type(hashes) is list and hashes:
                    blocks = rpc.batch([("eth_getBlockByHash", [h, False]) for h in hashes if type(h) is str])
                    received_ns = time.monotonic_ns()
                    for block in blocks:
                        try:
                            self._deliver_head(parse_header(block, received_ns))
                        except BadRecord as exc:
                            self._skip(exc.reason, str(exc))
            if log_filter is not None:
                logs = rpc.call("eth_getFilterChanges", log_filter)
                received_ns = time.monotonic_ns()
                for item in (logs if type(logs) is list else []):
                    try:
                        event = parse_sync_log(item, received_ns)
                    except BadRecord as exc:
                        self._skip(exc.reason, str(exc))
                        continue
                    self._counts["syncs"] += 1
                    self._emit(event)
            self._idle()

    def _http_log_filter(self, rpc: RpcClient, pools: frozenset[bytes]) -> Any:
        if not pools:
            return None
        return rpc.call("eth_newFilter", {"address": ["0x" + p.hex() for p in sorted(pools)],
                                          "topics": ["0x" + SYNC_TOPIC.hex()]})


def _log_filters(filters: Iterable[dict]) -> tuple:
    """The ``logs`` filters, checked: each a dict of ``address`` and/or ``topics`` (eth_subscribe's)."""
    out = []
    for k, f in enumerate(filters):
        if type(f) is not dict or not f or set(f) - {"address", "topics"}:
            raise ValueError(f"logs[{k}] must be a dict with 'address' and/or 'topics' (an eth_subscribe "
                             f"logs filter), got {f!r}")
        out.append(dict(f))
    return tuple(out)


def _unseen(hash_hex: str, recent: dict) -> bool:
    try:
        return bytes.fromhex(hash_hex[2:]) not in recent
    except ValueError:
        return False


def _result(method: str, reply: Any) -> Any:
    if type(reply) is not dict:
        raise RpcError(method, f"the node's answer is not a JSON-RPC object: {str(reply)[:200]}")
    error = reply.get("error")
    if error is not None:
        if type(error) is dict:
            raise RpcError(method, str(error.get("message", error)), error.get("code"), error.get("data"))
        raise RpcError(method, str(error))
    return reply.get("result")

"""JSON-RPC plumbing shared by the node source and ``tallyio.devnet``: the JSON
codec (orjson, else msgspec, else the stdlib) and a small blocking JSON-RPC
client over one HTTP/1.1 keep-alive connection (``http.client``).

Owns: the codec choice and :class:`RpcClient`. Touches nothing else; raises
only :class:`~tallyio.errors.RpcError` and :class:`~tallyio.errors.NodeConnectionError`.

    >>> dumps({"a": 1}) == b'{"a":1}'
    True
    >>> loads(b'{"jsonrpc":"2.0","id":1,"result":"0x1"}')["result"]
    '0x1'
"""
from __future__ import annotations

import http.client
import itertools
import ssl
import threading
import urllib.parse
from typing import Any, Callable, Iterable, Sequence

from tallyio.errors import NodeConnectionError, RpcError

__all__ = ["dumps", "loads", "JSON_BACKEND", "RpcClient"]

dumps: Callable[[Any], bytes]
loads: Callable[[bytes | bytearray | memoryview | str], Any]

# orjson decodes a node's transaction objects fastest of the three; msgspec is
# close; the stdlib keeps the base install working without either.
try:
    import orjson as _orjson

    dumps = _orjson.dumps
    loads = _orjson.loads
    JSON_BACKEND = "orjson"
except ImportError:  # pragma: no cover - depends on the install
    try:
        import msgspec as _msgspec

        _encoder = _msgspec.json.Encoder()
        dumps = _encoder.encode
        loads = _msgspec.json.decode
        JSON_BACKEND = "msgspec"
    except ImportError:
        import json as _json

        def dumps(obj: Any) -> bytes:
            return _json.dumps(obj, separators=(",", ":")).encode()

        def loads(data: bytes | bytearray | memoryview | str) -> Any:
            return _json.loads(bytes(data) if isinstance(data, memoryview) else data)

        JSON_BACKEND = "json"

#: exceptions that mean the keep-alive connection is gone (the node restarted,
#: or closed an idle connection): the call is retried once on a fresh one
_STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError,
          http.client.CannotSendRequest, http.client.BadStatusLine)


class RpcClient:
    """A blocking JSON-RPC 2.0 client over one keep-alive HTTP connection.

    ``call(method, *params)`` returns the ``result`` or raises
    :class:`~tallyio.errors.RpcError` carrying the node's code and message;
    ``batch([(method, params), ...])`` sends one HTTP request and returns the
    results in order (raising for the first call the node failed). Safe to
    share between threads (calls are serialized by a lock).

        >>> client = RpcClient("http://127.0.0.1:8545")
        >>> client.url
        'http://127.0.0.1:8545'
        >>> client.close()
    """

    def __init__(self, url: str, *, timeout: float = 30.0, ssl_context: "ssl.SSLContext | None" = None):
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"RpcClient needs an http:// or https:// URL, got {url!r}")
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        self.url = url
        self._host = parsed.hostname
        self._port = parsed.port
        self._https = parsed.scheme == "https"
        self._path = parsed.path or "/"
        self._timeout = timeout
        self._ssl_context = ssl_context
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._conn: http.client.HTTPConnection | None = None
        self.connections_broken = 0
        """calls whose keep-alive connection broke under them (the node went away or
        restarted); a caller that keeps per-node state (a nonce) re-reads it when this moves."""

    def __repr__(self) -> str:
        return f"RpcClient({self.url!r})"

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self._https:
                self._conn = http.client.HTTPSConnection(self._host, self._port, timeout=self._timeout,
                                                         context=self._ssl_context)
            else:
                self._conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        return self._conn

    def _post(self, body: bytes, what: str) -> Any:
        with self._lock:
            for attempt in (0, 1):
                conn = self._connection()
                try:
                    conn.request("POST", self._path, body, {"Content-Type": "application/json"})
                    response = conn.getresponse()
                    payload = response.read()
                    break
                except _STALE as exc:
                    self.connections_broken += 1
                    self.close_connection()
                    if attempt:
                        raise NodeConnectionError(
                            f"{what}: the node at {self.url} closed the connection ({exc!r})") from None
                except OSError as exc:
                    self.connections_broken += 1
                    self.close_connection()
                    raise NodeConnectionError(f"{what}: cannot reach the node at {self.url} ({exc!r})") from None
        if response.status != 200:
            raise RpcError(what, f"HTTP {response.status} {response.reason}: {payload[:200]!r}")
        try:
            return loads(payload)
        except ValueError:
            raise RpcError(what, f"the node's answer is not JSON: {payload[:200]!r}") from None

    def call(self, method: str, *params: Any) -> Any:
        """Call ``method`` with positional ``params``; return its result."""
        reply = self._post(dumps({"jsonrpc": "2.0", "id": next(self._ids), "method": method,
                                  "params": list(params)}), method)
        return _result(method, reply)

    def batch(self, calls: Iterable[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Send ``(method, params)`` calls in one request; return their results in order."""
        calls = list(calls)
        if not calls:
            return []
        first = next(self._ids)
        for _ in calls[1:]:
            next(self._ids)
        body = dumps([{"jsonrpc": "2.0", "id": first + i, "method": m, "params": list(p)}
                      for i, (m, p) in enumerate(calls)])
        replies = self._post(body, f"batch of {len(calls)} ({calls[0][0]}, ...)")
        if not isinstance(replies, list):
            # a node that refuses batches answers with one error object
            return [_result(calls[0][0], replies)]
        by_id = {r.get("id"): r for r in replies if isinstance(r, dict)}
        results = []
        for i, (method, _) in enumerate(calls):
            reply = by_id.get(first + i)
            if reply is None:
                raise RpcError(method, f"no answer for this call in the batch reply (call {i})")
            results.append(_result(method, reply))
        return results

    def close_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def close(self) -> None:
        """Close the keep-alive connection (the next call opens a new one)."""
        with self._lock:
            self.close_connection()

    def __enter__(self) -> "RpcClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _result(method: str, reply: Any) -> Any:
    if not isinstance(reply, dict):
        raise RpcError(method, f"the node's answer is not a JSON-RPC object: {str(reply)[:200]}")
    error = reply.get("error")
    if error is not None:
        if isinstance(error, dict):
            raise RpcError(method, str(error.get("message", error)), error.get("code"), error.get("data"))
        raise RpcError(method, str(error))
    if "result" not in reply:
        raise RpcError(method, f"the node's answer has neither result nor error: {str(reply)[:200]}")
    return reply["result"]

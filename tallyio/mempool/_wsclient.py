"""A small blocking RFC 6455 websocket client for one thread (the watcher).

Why our own and not ``websockets``: latency. anvil (like many nodes) never
sets ``TCP_NODELAY`` and writes small frames; unless the client acknowledges
every segment at once, the node's next write waits for the client's delayed
ACK (~40 ms on Linux). This client sets ``TCP_QUICKACK`` after every ``recv``
(Linux clears it again on its own), reads into one reusable buffer, and stamps
each message with ``time.monotonic_ns()`` when its last byte arrived.

Owns: one socket (plain or TLS), the handshake, frame parsing (text, binary,
continuation, ping -> pong, close), masking of what it sends, and the message
size cap: a message over the cap is read past and discarded without being
buffered (``recv`` returns :data:`OVERSIZED` for it), so the stream stays in
step. Raises :class:`WsClosed` when the connection ends, ``socket.timeout``
when nothing arrives in time.
"""
from __future__ import annotations

import base64
import hashlib
import os
import socket
import ssl
import struct
import time
import urllib.parse

__all__ = ["WebSocket", "WsClosed", "WsProtocolError", "OVERSIZED"]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)
#: returned by WebSocket.recv for a message that exceeded the size cap (it was discarded)
OVERSIZED = object()


class WsClosed(ConnectionError):
    """The websocket connection ended (close frame, EOF or reset)."""


class WsProtocolError(ConnectionError):
    """The peer broke the websocket protocol (bad handshake or frame)."""


class WebSocket:
    """One client connection. Not thread-safe: one thread receives; ``send``
    may be called from the same thread only."""

    def __init__(self, url: str, *, timeout: float = 10.0, max_message_bytes: int = 16 << 20,
                 quickack: bool = True, ssl_context: ssl.SSLContext | None = None):
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("ws", "wss") or not parsed.hostname:
            raise ValueError(f"a websocket URL starts with ws:// or wss://, got {url!r}")
        self.url = url
        self.max_message_bytes = max_message_bytes
        self._quickack = bool(quickack and _QUICKACK is not None)
        port = parsed.port or (443 if parsed.scheme == "wss" else 80)
        raw = socket.create_connection((parsed.hostname, port), timeout=timeout)
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if parsed.scheme == "wss":
                ctx = ssl_context or ssl.create_default_context()
                self.sock: socket.socket = ctx.wrap_socket(raw, server_hostname=parsed.hostname)
            else:
                self.sock = raw
            self._raw = self.sock  # an SSLSocket takes over the fd and passes setsockopt through
            self._buf = bytearray()
            self._handshake(parsed, port)
        except BaseException:
            raw.close()
            raise
        self.sock.settimeout(None)

    # ---- handshake ----
    def _handshake(self, parsed: urllib.parse.SplitResult, port: int) -> None:
        key = base64.b64encode(os.urandom(16))
        path = (parsed.path or "/") + (f"?{parsed.query}" if parsed.query else "")
        host = parsed.hostname if port in (80, 443) else f"{parsed.hostname}:{port}"
        request = (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {key.decode()}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
        self.sock.sendall(request)
        while b"\r\n\r\n" not in self._buf:
            self._fill()
            if len(self._buf) > 65536:
                raise WsProtocolError("the handshake answer is over 64 KiB")
        end = self._buf.index(b"\r\n\r\n") + 4
        head = bytes(self._buf[:end]).decode("latin-1")
        del self._buf[:end]
        lines = head.split("\r\n")
        if not lines[0].startswith("HTTP/1.1 101"):
            raise WsProtocolError(f"the server refused the websocket upgrade: {lines[0]!r}")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        expected = base64.b64encode(hashlib.sha1(key + _GUID).digest()).decode()
        if headers.get("sec-websocket-accept") != expected:
            raise WsProtocolError("the server's Sec-WebSocket-Accept does not match our key")

    # ---- receiving ----
    def _fill(self) -> None:
        chunk = self.sock.recv(262144)
        if not chunk:
            raise WsClosed("the node closed the connection")
        if self._quickack:
            # ack now, so the node's next small write does not wait ~40 ms for our delayed ACK
            self._raw.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        self._buf += chunk

    def _need(self, n: int) -> None:
        while len(self._buf) < n:
            self._fill()

    def settimeout(self, seconds: float | None) -> None:
        self.sock.settimeout(seconds)

    def pending(self) -> bool:
        """True when a whole frame header is already buffered (no syscall needed)."""
        return len(self._buf) >= 2

    def recv(self) -> tuple[object, int]:
        """The next data message as ``(payload bytes, received_ns)``, or
        ``(OVERSIZED, received_ns)`` for one over the cap. Answers pings itself."""
        parts: list[bytes] = []
        total = 0
        oversized = False
        while True:
            self._need(2)
            b0, b1 = self._buf[0], self._buf[1]
            fin, opcode, length = b0 & 0x80, b0 & 0x0F, b1 & 0x7F
            if b1 & 0x80:
                raise WsProtocolError("the server masked a frame (RFC 6455 forbids it)")
            header = 2
            if length == 126:
                self._need(4)
                length = struct.unpack_from(">H", self._buf, 2)[0]
                header = 4
            elif length == 127:
                self._need(10)
                length = struct.unpack_from(">Q", self._buf, 2)[0]
                header = 10
            if opcode >= 0x8:  # control frames: at most 125 bytes, never fragmented
                if length > 125 or not fin:
                    raise WsProtocolError(f"control frame of {length} bytes / fragmented")
                self._need(header + length)
                payload = bytes(self._buf[header:header + length])
                del self._buf[:header + length]
                if opcode == 0x8:
                    self._send_frame(0x8, payload[:2])
                    raise WsClosed(f"the node closed the websocket ({payload[:2].hex() or 'no code'})")
                if opcode == 0x9:
                    self._send_frame(0xA, payload)
                continue
            if opcode not in (0x0, 0x1, 0x2):
                raise WsProtocolError(f"unknown websocket opcode {opcode}")
            total += length
            if total > self.max_message_bytes or oversized:
                oversized = True
                self._skip(header + length)
            else:
                self._need(header + length)
                parts.append(bytes(self._buf[header:header + length]))
                del self._buf[:header + length]
            if fin:
                received_ns = time.monotonic_ns()
                if oversized:
                    return OVERSIZED, received_ns
                return (parts[0] if len(parts) == 1 else b"".join(parts)), received_ns

    def _skip(self, n: int) -> None:
        """Discard the next ``n`` bytes without holding more than one chunk."""
        while n:
            if not self._buf:
                self._fill()
            take = min(n, len(self._buf))
            del self._buf[:take]
            n -= take

    # ---- sending ----
    def _send_frame(self, opcode: int, payload: bytes) -> None:
        n = len(payload)
        if n < 126:
            head = struct.pack(">BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            head = struct.pack(">BBH", 0x80 | opcode, 0xFE, n)
        else:
            head = struct.pack(">BBQ", 0x80 | opcode, 0xFF, n)
        mask = os.urandom(4)
        if n:
            # XOR with the repeated mask as one big integer: no per-byte Python loop
            reps = (mask * ((n + 3) // 4))[:n]
            masked = (int.from_bytes(payload, "big") ^ int.from_bytes(reps, "big")).to_bytes(n, "big")
        else:
            masked = b""
        try:
            self.sock.sendall(head + mask + masked)
        except OSError as exc:
            raise WsClosed(f"send failed: {exc!r}") from None

    def send(self, text: bytes) -> None:
        """Send one text message (UTF-8 JSON)."""
        self._send_frame(0x1, text)

    def ping(self, payload: bytes = b"") -> None:
        self._send_frame(0x9, payload)

    def close(self) -> None:
        try:
            self._send_frame(0x8, struct.pack(">H", 1000))
        except (WsClosed, OSError):
            pass
        try:
            self.sock.close()
        except OSError:
            pass

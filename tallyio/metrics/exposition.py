"""Prometheus exposition of a Registry: the text format 0.0.4 and a
``/metrics`` HTTP endpoint on a daemon thread (owned by tallyio.metrics;
reads the registry only).

Histograms are recorded in nanoseconds and exported in seconds, with ``le``
bounds at microsecond scale (the family's ``buckets_ns``); a bucket counts the
values certainly at or below its bound (exact to the histogram's precision).

>>> from tallyio.metrics import Registry
>>> reg = Registry(process=False)
>>> reg.counter("tx_received", "pending transactions").inc(2)
>>> print(generate_text(reg), end="")
# HELP tx_received_total pending transactions
# TYPE tx_received_total counter
tx_received_total 2
"""
from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy

from tallyio.metrics.registry import PROCESS_HELP, Counter, Gauge, HistogramFamily, Registry, metric_key

__all__ = ["generate_text", "MetricsServer", "CONTENT_TYPE"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _seconds(ns: int) -> str:
    return repr(ns / 1e9)


def generate_text(registry: Registry) -> str:
    """Every metric of ``registry`` in the Prometheus text format 0.0.4."""
    lines: list[str] = []
    for family in registry.families():
        if isinstance(family, Counter):
            name = family.name if family.name.endswith("_total") else family.name + "_total"
            lines += [f"# HELP {name} {_help(family.help)}", f"# TYPE {name} counter"]
            for labels, child in family.children():
                lines.append(f"{metric_key(name, labels)} {child.value}")
        elif isinstance(family, Gauge):
            lines += [f"# HELP {family.name} {_help(family.help)}", f"# TYPE {family.name} gauge"]
            for labels, child in family.children():
                lines.append(f"{metric_key(family.name, labels)} {_number(child.value)}")
        elif isinstance(family, HistogramFamily):
            lines += [f"# HELP {family.name} {_help(family.help)}", f"# TYPE {family.name} histogram"]
            bounds = numpy.array(family.buckets_ns, dtype=numpy.uint64)
            for labels, child in family.children():
                h = child.merged()
                cells = h.buckets()                     # one snapshot: counts agree with each other
                total = int(cells.counts.sum())
                cumulative = numpy.zeros(len(bounds), dtype=numpy.uint64)
                if total:
                    # a cell counts under a bound when its highest value is <= the bound
                    ends = numpy.searchsorted(cells.highest, bounds, side="right")
                    running = numpy.concatenate(([0], numpy.cumsum(cells.counts, dtype=numpy.uint64)))
                    cumulative = running[ends]
                for bound, count in zip(family.buckets_ns, cumulative):
                    key = metric_key(f"{family.name}_bucket", {**labels, "le": _seconds(bound)})
                    lines.append(f"{key} {int(count)}")
                lines.append(f"{metric_key(family.name + '_bucket', {**labels, 'le': '+Inf'})} {total}")
                lines.append(f"{metric_key(family.name + '_sum', labels)} {_seconds(h.sum)}")
                lines.append(f"{metric_key(family.name + '_count', labels)} {total}")
    for name, value in registry.process_stats().items():
        kind, text = PROCESS_HELP[name]
        lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}", f"{name} {_number(value)}"]
    return "\n".join(lines) + "\n" if lines else ""


class _Handler(BaseHTTPRequestHandler):
    registry: Registry   # set on the subclass each server makes

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path = self.path.split("?", 1)[0]
        if path not in ("/metrics", "/snapshot"):
            self.send_error(404, "not found: try /metrics or /snapshot")
            return
        try:
            if path == "/metrics":
                body, kind = generate_text(self.registry).encode(), CONTENT_TYPE
            else:
                body, kind = json.dumps(self.registry.snapshot(), default=str).encode(), "application/json"
        except Exception as exc:   # a gauge function that raised: fail this scrape, say why, keep serving
            self.send_error(500, f"collecting metrics failed: {type(exc).__name__}: {exc}")
            return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass    # a scrape every few seconds must not fill stderr


class MetricsServer:
    """Serve ``registry`` at ``http://host:port/metrics`` (Prometheus text) and
    ``/snapshot`` (JSON) from a daemon thread.  Loopback by default; port 0
    picks a free port (read ``port`` / ``url`` after ``start()``).

    >>> import urllib.request
    >>> from tallyio.metrics import Registry
    >>> reg = Registry(process=False); reg.gauge("queue_depth").set(3)
    >>> with MetricsServer(reg) as server:
    ...     text = urllib.request.urlopen(server.url, timeout=5).read().decode()
    >>> "queue_depth 3.0" in text
    True
    """

    def __init__(self, registry: Registry, host: str = "127.0.0.1", port: int = 0):
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an int in 0..65535, got {port!r}")
        self.registry = registry
        self.host = host
        self._requested_port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> MetricsServer:
        """Bind and serve (OSError if the address is taken).  Returns self."""
        if self._server is not None:
            raise RuntimeError("MetricsServer already started")
        handler = type("MetricsHandler", (_Handler,), {"registry": self.registry})
        server = ThreadingHTTPServer((self.host, self._requested_port), handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="tallyio-metrics-http", daemon=True)
        self._thread.start()
        return self

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("MetricsServer not started")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        host = self.host if ":" not in self.host else f"[{self.host}]"
        return f"http://{host}:{self.port}/metrics"

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent)."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = None
        self._thread = None

    def __enter__(self) -> MetricsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""The anvil process: find the binary, start it on a loopback port, wait until
it answers, stop/kill/restart it, and never leave it behind.

Owns: one anvil child process per :class:`Anvil`, its log file and the reader
thread that copies anvil's output into that log (with the printed dev private
keys and mnemonic redacted: keys never reach a file). Touches nothing else.
"""
from __future__ import annotations

import atexit
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
import weakref
from pathlib import Path

from tallyio.errors import DevnetError, NodeConnectionError, RpcError
from tallyio.mempool._wsrpc import RpcClient

__all__ = ["Anvil", "find_anvil", "chain_dir"]

_LISTENING = re.compile(rb"Listening on ([0-9.]+):(\d+)")
# anvil prints "(3) 0x<64 hex>" under "Private Keys" and "Mnemonic: ..." at start
_SECRET_LINE = re.compile(rb"^\s*\(\d+\)\s+0x[0-9a-fA-F]{64}\s*$|^\s*Mnemonic:")
_LIVE: "weakref.WeakSet[Anvil]" = weakref.WeakSet()


def chain_dir(path: str | os.PathLike | None = None) -> Path:
    """The folder where ``npm ci --prefix chain`` installed anvil and the
    artifacts: ``path`` if given, else ``TALLYIO_CHAIN_DIR``."""
    raw = path if path is not None else os.environ.get("TALLYIO_CHAIN_DIR")
    if not raw:
        raise DevnetError("no chain folder: pass chain_dir=... or set TALLYIO_CHAIN_DIR to the folder where "
                          "`npm ci --prefix chain` installed anvil and the Uniswap artifacts")
    root = Path(raw)
    if not (root / "node_modules").is_dir():
        raise DevnetError(f"{root} has no node_modules (run: npm ci --prefix {root} --ignore-scripts)")
    return root


def find_anvil(binary: str | os.PathLike | None = None) -> Path:
    """anvil's executable: ``binary`` if given, else ``TALLYIO_ANVIL``, else the
    npm package's platform binary under ``TALLYIO_CHAIN_DIR``."""
    raw = binary if binary is not None else os.environ.get("TALLYIO_ANVIL")
    if raw:
        path = Path(raw)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise DevnetError(f"anvil binary {path} does not exist or is not executable")
        return path
    modules = chain_dir() / "node_modules" / "@foundry-rs"
    for candidate in sorted(modules.glob("anvil-*/bin/anvil")):
        if os.access(candidate, os.X_OK):
            return candidate
    raise DevnetError(f"no anvil binary under {modules} (the platform package @foundry-rs/anvil-<os>-<arch> "
                      f"is missing), and neither an argument nor TALLYIO_ANVIL named one")


class Anvil:
    """A local anvil node on a free loopback port, for tests and examples.

    ``Anvil()`` starts it and returns once it answers JSON-RPC; ``url`` and
    ``ws_url`` point at it; ``rpc`` is a :class:`~tallyio.devnet.RpcClient`.
    ``stop()`` ends it (SIGTERM, then SIGKILL), ``kill()`` sends SIGKILL at
    once (a node that vanishes), ``restart()`` starts it again on the same port,
    optionally with the chain state it had. Use it as a context manager; a
    process left running is killed at interpreter exit and when the object is
    collected. anvil's output goes to ``log_path`` with the printed dev keys
    redacted; errors quote its tail.

        >>> import os
        >>> if os.environ.get("TALLYIO_CHAIN_DIR"):       # doctest: +SKIP
        ...     with Anvil(automine=False) as node:
        ...         node.rpc.call("eth_chainId")
        '0x7a69'
    """

    def __init__(self, port: int | None = None, *, automine: bool = True, block_time: float | None = None,
                 chain_id: int = 31337, accounts: int = 10, balance_eth: int = 1_000_000,
                 binary: str | os.PathLike | None = None, extra_args: tuple[str, ...] = (),
                 log_path: str | os.PathLike | None = None, start_timeout: float = 30.0):
        if port is not None and not (isinstance(port, int) and 0 < port < 65536):
            raise ValueError(f"port must be an int in 1..65535 or None (a free one), got {port!r}")
        if block_time is not None and not block_time > 0:
            raise ValueError(f"block_time must be > 0 seconds or None, got {block_time!r}")
        if not (isinstance(accounts, int) and 1 <= accounts <= 1000):
            raise ValueError(f"accounts must be an int in 1..1000, got {accounts!r}")
        if not (isinstance(chain_id, int) and chain_id > 0):
            raise ValueError(f"chain_id must be a positive int, got {chain_id!r}")
        self.binary = find_anvil(binary)
        self.chain_id = chain_id
        self.automine = automine
        self._args = ["--host", "127.0.0.1", "--chain-id", str(chain_id), "--accounts", str(accounts),
                      "--balance", str(balance_eth)]
        if block_time is not None:
            self._args += ["--block-time", str(block_time)]
        elif not automine:
            self._args += ["--no-mining"]
        self._args += list(extra_args)
        self._start_timeout = start_timeout
        if log_path is None:
            fd, name = tempfile.mkstemp(prefix="tallyio-anvil-", suffix=".log")
            os.close(fd)
            log_path = name
        self.log_path = Path(log_path)
        self.port: int = port or 0
        self._proc: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None
        self._listening = threading.Event()
        self.rpc: RpcClient | None = None
        _LIVE.add(self)
        # what the finalizer needs, without a reference to self: [process, RPC client]
        self._owned: list = [None, None]
        self._finalizer = weakref.finalize(self, _kill_quietly, self._owned)
        self._start()

    # ---- addresses ----
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __repr__(self) -> str:
        state = "running" if self.running() else "stopped"
        return f"Anvil(port={self.port}, chain_id={self.chain_id}, {state})"

    # ---- lifecycle ----
    def _start(self) -> None:
        args = [str(self.binary), "--port", str(self.port)] + self._args
        self._listening.clear()
        # not O_APPEND: splice() refuses append-mode targets; we seek to the end instead
        log = os.fdopen(os.open(self.log_path, os.O_WRONLY | os.O_CREAT, 0o600), "wb")
        log.seek(0, os.SEEK_END)
        log.write(f"\n==== tallyio: starting {' '.join(args)}\n".encode())
        log.flush()
        try:
            proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            log.close()
            raise DevnetError(f"cannot start {self.binary}: {exc}") from None
        self._proc = proc
        self._owned[0] = proc
        port_box = [0]
        self._reader = threading.Thread(target=_pump, args=(proc, log, self._listening, port_box),
                                        name=f"anvil-log-{proc.pid}", daemon=True)
        self._reader.start()
        deadline = time.monotonic() + self._start_timeout
        while not self._listening.wait(0.05):
            if proc.poll() is not None:
                self._end(signal.SIGKILL, 1.0)  # reap it, join the log reader, close the pipe
                raise DevnetError(f"anvil exited with status {proc.returncode} before listening; "
                                  f"log tail:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise DevnetError(f"anvil did not listen within {self._start_timeout} s; log tail:\n{self.log_tail()}")
        self.port = port_box[0]
        if self.rpc is None:
            self.rpc = self._owned[1] = RpcClient(self.url, timeout=60.0)
        else:
            self.rpc.close()
        while True:
            try:
                answered = int(self.rpc.call("eth_chainId"), 16)
                break
            except (NodeConnectionError, RpcError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    self.kill()
                    raise DevnetError(f"anvil does not answer eth_chainId; log tail:\n{self.log_tail()}") from None
                time.sleep(0.02)
        if answered != self.chain_id:
            raise DevnetError(f"anvil answers chain id {answered}, asked for {self.chain_id}")

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of anvil's (redacted) log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError as exc:
            return f"(log unreadable: {exc})"

    def _end(self, sig: int, grace: float) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            try:
                proc.send_signal(sig)
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            except ProcessLookupError:
                pass
        if self._reader is not None:
            self._reader.join(5.0)  # it closes the pipe when anvil's output ends
        if self.rpc is not None:
            self.rpc.close()

    def stop(self, grace: float = 5.0) -> None:
        """End anvil (SIGTERM, SIGKILL after ``grace`` seconds). Idempotent."""
        self._end(signal.SIGTERM, grace)

    def kill(self) -> None:
        """SIGKILL anvil at once: the node vanishes mid-stream, as in a crash."""
        self._end(signal.SIGKILL, 5.0)

    def dump_state(self) -> bytes:
        """anvil's chain state (``anvil_dumpState``), to pass to ``restart(state=...)``."""
        assert self.rpc is not None
        raw = self.rpc.call("anvil_dumpState")
        return bytes.fromhex(raw[2:]) if isinstance(raw, str) else bytes(str(raw), "utf-8")

    def restart(self, *, kill: bool = True, state: bytes | None = None) -> None:
        """Stop (SIGKILL when ``kill``, else SIGTERM) and start again on the same
        port. ``state`` (from :meth:`dump_state`) restores the chain; without it
        the new node starts from genesis."""
        self.kill() if kill else self.stop()
        deadline = time.monotonic() + self._start_timeout
        while True:  # the port can linger a moment after the old process died
            try:
                self._start()
                break
            except DevnetError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        if state is not None:
            assert self.rpc is not None
            self.rpc.call("anvil_loadState", "0x" + state.hex())

    def close(self) -> None:
        self.stop()

    def __enter__(self) -> "Anvil":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _pump(proc: subprocess.Popen, log, listening: threading.Event, port: list) -> None:
    """Copy anvil's output to the log. Until anvil listens (its banner, where
    it prints the dev keys and the mnemonic) line by line with those lines
    redacted; after that inside the kernel (``os.splice``), so the per-
    transaction log lines cost this process no Python work and no GIL: a
    watcher thread being measured here does not compete with the copy. A function,
    not a method: the thread must not keep the Anvil object alive (its finalizer
    is what kills a forgotten node)."""
    src = proc.stdout.fileno()  # type: ignore[union-attr]
    with log, proc.stdout:  # type: ignore[union-attr]  # the reader owns the pipe: it closes it at EOF
        pending = b""
        while not listening.is_set():
            chunk = os.read(src, 65536)
            if not chunk:
                log.write(pending)
                return
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if not listening.is_set():
                    match = _LISTENING.search(line)
                    if match:
                        port[0] = int(match.group(2))
                        listening.set()
                if _SECRET_LINE.search(line):
                    line = b"    <redacted by tallyio.devnet>"
                log.write(line + b"\n")
            log.flush()
        log.write(pending)
        log.flush()
        dst = log.fileno()
        splice = getattr(os, "splice", None)
        while True:
            moved = 0
            if splice is not None:
                try:
                    moved = splice(src, dst, 1 << 20)
                except OSError:  # a file system that refuses splice: copy through user space
                    splice = None
                    continue
            else:
                data = os.read(src, 65536)
                moved = os.write(dst, data) if data else 0
            if not moved:
                return


def _kill_quietly(owned: list) -> None:
    """Finalizer of a forgotten Anvil: kill its process, close its RPC connection."""
    proc, rpc = owned
    if proc is not None and proc.poll() is None:
        try:
            proc.kill()
            proc.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            pass
    if rpc is not None:
        rpc.close()


@atexit.register
def _kill_all() -> None:
    for node in list(_LIVE):
        node.kill()

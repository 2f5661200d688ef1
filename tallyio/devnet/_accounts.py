"""anvil's dev accounts, signing, nonce tracking and the few ABI helpers the
deployer and the tests need.

Owns: the dev keys (derived from anvil's public test mnemonic, held only inside
:class:`DevAccount`, never in a repr, log, exception or file), and
:class:`Sender` (type-2 transactions with a local nonce per account). eth-account
(with coincurve present it signs in ~0.3 ms) and eth-abi are imported lazily:
the base package imports without them.
"""
from __future__ import annotations

import functools
import threading
import time
from typing import Any, Sequence

from tallyio.errors import RpcError
from tallyio.mempool._wsrpc import RpcClient
from tallyio.mempool._wstx import keccak256

__all__ = ["DevAccount", "dev_accounts", "Sender", "selector", "encode_call", "decode_result", "to_address"]

#: anvil's (and hardhat's) public test mnemonic: these keys are known to everyone and
#: hold value on no real chain
_TEST_MNEMONIC = "test test test test test test test test test test test junk"


def to_address(value: str | bytes) -> str:
    """A 20-byte address as lowercase ``0x`` hex, from hex text or bytes.

        >>> to_address(bytes(19) + b"\\x01")
        '0x0000000000000000000000000000000000000001'
    """
    if isinstance(value, (bytes, bytearray)):
        if len(value) != 20:
            raise ValueError(f"an address has 20 bytes, got {len(value)}")
        return "0x" + bytes(value).hex()
    if not (isinstance(value, str) and value[:2] in ("0x", "0X") and len(value) == 42):
        raise ValueError(f"an address is 0x followed by 40 hex digits, got {value!r}")
    int(value, 16)
    return value.lower()


def selector(signature: str) -> bytes:
    """The 4-byte function selector of ``signature``.

        >>> selector("transfer(address,uint256)").hex()
        'a9059cbb'
    """
    return keccak256(signature.encode())[:4]


def _types_of(signature: str) -> list[str]:
    inner = signature[signature.index("(") + 1: signature.rindex(")")]
    types, depth, start = [], 0, 0
    for i, ch in enumerate(inner):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            types.append(inner[start:i])
            start = i + 1
    if inner:
        types.append(inner[start:])
    return types


def encode_call(signature: str, *args: Any) -> bytes:
    """Calldata for ``signature`` (e.g. ``"approve(address,uint256)"``) with ``args`` (eth-abi)."""
    from eth_abi import encode

    return selector(signature) + encode(_types_of(signature), list(args))


def decode_result(types: Sequence[str], data: bytes) -> tuple:
    """Decode an ``eth_call`` result (eth-abi)."""
    from eth_abi import decode

    return decode(list(types), data)


class DevAccount:
    """One dev account: ``address`` (lowercase hex) and a key that stays inside.

    ``sign(tx_dict)`` returns ``(raw, hash)``. The key is not an attribute a
    repr, a log or pickle can reach by accident (pickling is refused).
    """

    __slots__ = ("address", "index", "_signer")

    def __init__(self, index: int, signer: Any):
        self.index = index
        self.address = signer.address.lower()
        self._signer = signer

    def sign(self, tx: dict) -> tuple[bytes, bytes]:
        signed = self._signer.sign_transaction(tx)
        return bytes(signed.raw_transaction), bytes(signed.hash)

    def __repr__(self) -> str:
        return f"DevAccount({self.index}, {self.address})"

    def __reduce__(self):
        raise TypeError("a DevAccount holds a private key and is not picklable")


@functools.lru_cache(maxsize=None)
def _derive(index: int) -> DevAccount:
    from eth_account import Account

    Account.enable_unaudited_hdwallet_features()
    return DevAccount(index, Account.from_mnemonic(_TEST_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}"))


def dev_accounts(count: int = 10) -> list[DevAccount]:
    """anvil's first ``count`` default accounts (funded by ``Anvil()``).

        >>> dev_accounts(1)[0].address
        '0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266'
    """
    if not (isinstance(count, int) and 1 <= count <= 1000):
        raise ValueError(f"count must be an int in 1..1000, got {count!r}")
    return [_derive(i) for i in range(count)]


class Sender:
    """Builds, signs and sends EIP-1559 (type 2) transactions, tracking each
    account's next nonce locally (read once from the node's pending count, and
    re-read after the node rejects a transaction).

    ``sign(account, to, data)`` only signs (and takes a nonce): the benchmark
    pre-signs so that sending is one RPC call. ``send(...)`` signs and sends,
    returning the 32-byte hash; ``wait=True`` also waits for the receipt (with
    automine on) and raises when it failed.
    """

    def __init__(self, rpc: RpcClient, chain_id: int | None = None, *, max_fee_per_gas: int = 100 * 10**9,
                 max_priority_fee_per_gas: int = 10**9):
        self.rpc = rpc
        self.chain_id = chain_id if chain_id is not None else int(rpc.call("eth_chainId"), 16)
        self.max_fee_per_gas = max_fee_per_gas
        self.max_priority_fee_per_gas = max_priority_fee_per_gas
        self._nonces: dict[str, int] = {}
        self._lock = threading.Lock()

    def _next_nonce(self, address: str) -> int:
        with self._lock:
            if address not in self._nonces:
                self._nonces[address] = int(self.rpc.call("eth_getTransactionCount", address, "pending"), 16)
            nonce = self._nonces[address]
            self._nonces[address] = nonce + 1
            return nonce

    def forget_nonces(self) -> None:
        """Re-read every nonce from the node next time (after a restart)."""
        with self._lock:
            self._nonces.clear()

    def sign(self, account: DevAccount, to: str | None, data: bytes = b"", *, value: int = 0,
             gas: int | None = None, nonce: int | None = None) -> tuple[bytes, bytes]:
        """Sign a type-2 transaction; returns ``(raw, hash)``."""
        tx: dict = {"type": 2, "chainId": self.chain_id, "value": value, "data": data,
                    "maxFeePerGas": self.max_fee_per_gas, "maxPriorityFeePerGas": self.max_priority_fee_per_gas}
        if to is not None:
            tx["to"] = _checksum(to)
        if gas is None:
            estimate = {"from": account.address, "data": "0x" + data.hex(), "value": hex(value)}
            if to is not None:
                estimate["to"] = to_address(to)
            gas = int(self.rpc.call("eth_estimateGas", estimate), 16) * 12 // 10 + 20_000
        tx["gas"] = gas
        tx["nonce"] = self._next_nonce(account.address) if nonce is None else nonce
        return account.sign(tx)

    def send_raw(self, raw: bytes) -> bytes:
        return bytes.fromhex(self.rpc.call("eth_sendRawTransaction", "0x" + raw.hex())[2:])

    def send(self, account: DevAccount, to: str | None, data: bytes = b"", *, value: int = 0,
             gas: int | None = None, wait: bool = False) -> bytes:
        """Sign and send; returns the transaction hash (bytes)."""
        raw, tx_hash = self.sign(account, to, data, value=value, gas=gas)
        try:
            self.send_raw(raw)
        except RpcError:
            with self._lock:  # the nonce we took was not used: re-read it next time
                self._nonces.pop(account.address, None)
            raise
        if wait:
            self.receipt(tx_hash)
        return tx_hash

    #: the name the rest of the project's documents use for :meth:`send`
    send_transaction = send

    def receipt(self, tx_hash: bytes, timeout: float = 10.0) -> dict:
        """The receipt of ``tx_hash``, polled until mined (anvil mines an automined
        transaction just after answering); raises when it reverted or stays unmined."""
        deadline = time.monotonic() + timeout
        while True:
            receipt = self.rpc.call("eth_getTransactionReceipt", "0x" + tx_hash.hex())
            if receipt is not None:
                break
            if time.monotonic() > deadline:
                raise RpcError("eth_getTransactionReceipt",
                               f"0x{tx_hash.hex()} is not mined after {timeout} s (is automine off?)")
            time.sleep(0.002)
        if receipt.get("status") != "0x1":
            raise RpcError("eth_getTransactionReceipt", f"0x{tx_hash.hex()} reverted")
        return receipt

    def call(self, to: str, signature: str, *args: Any, returns: Sequence[str] = (), block: str = "latest") -> tuple:
        """``eth_call`` of ``signature`` on ``to``, decoded as ``returns``."""
        out = self.rpc.call("eth_call", {"to": to_address(to), "data": "0x" + encode_call(signature, *args).hex()},
                            block)
        return decode_result(returns, bytes.fromhex(out[2:])) if returns else (bytes.fromhex(out[2:]),)


def _checksum(address: str) -> str:
    from eth_utils import to_checksum_address

    return to_checksum_address(address)

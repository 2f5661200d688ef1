"""Keys: ``Signer`` holds one private key and signs EIP-1559 (type 2)
transactions with it, without ever showing it.

Owns: the key's only long-lived copy (a ``bytearray`` zeroed by ``close()``
and on collection), the checks of a type-2 transaction's fields and the
signature.  Touches nothing else: no file is written, nothing is logged.

Signing is one C call (``tallyio.engine._sign``): a plain transaction dict is
checked and RLP-encoded there, anything else is checked (errors name the
field) and encoded here with the project's ``rlp_encode``; then keccak, and
libsecp256k1 -- coincurve's, called from C through the function addresses of
coincurve's cffi module -- reading the secret straight from the ``bytearray``
(no immutable ``bytes`` copy of the key is made per signature, and no public
key is re-derived per signature).  Without those addresses (an unusual
coincurve build) the same steps run through cffi.  The result is
byte-for-byte what eth-account produces for the same transaction (RFC 6979
nonces, low-s), which the tests check.  eth-account decrypts keystores.

What Python cannot guarantee (said, not hidden): the text a key was read from
(an environment variable's ``str``, the ``bytes`` eth-account's keystore
decryption returns, a password ``str``) is immutable and is freed, not
zeroed; the interpreter may have copied the key's bytes while it parsed them;
``signer._key`` is reachable by code that goes looking for it, as every
attribute of a Python object is.  What the class does guarantee: the key is in
no ``repr``, ``str``, ``format``, exception message, log line, ``vars()``
result or pickle, and its ``bytearray`` is zero after ``close()``.

    >>> from tallyio.engine.keys import Signer
    >>> s = Signer.from_hex("0x" + "11" * 32)   # a throwaway key
    >>> s
    Signer(0x19e7e376e7c213b7e7e7e46cc70a5dd086daff2a)
    >>> raw, tx_hash = s.sign_transaction({"chainId": 1, "nonce": 0, "maxFeePerGas": 2 * 10**9,
    ...     "maxPriorityFeePerGas": 10**9, "gas": 21_000, "to": b"\\x22" * 20, "value": 1})
    >>> raw[0], len(tx_hash)
    (2, 32)
    >>> s.close(); s.closed
    True
"""
from __future__ import annotations

import json
import os
import threading
from typing import Any, Mapping

from tallyio.engine._sign import sign_type2 as _sign_type2
from tallyio.engine._sign import sign_type2_dict as _sign_type2_dict
from tallyio.errors import ConfigError, KeystoreError, SignerError
from tallyio.mempool._wsenc import keccak256, rlp_encode

__all__ = ["Signer"]

_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_UINT256 = 2**256 - 1
_UINT64 = 2**64 - 1
_FIELDS = frozenset(("type", "chainId", "nonce", "maxFeePerGas", "maxPriorityFeePerGas", "gas", "to", "value", "data",
                     "accessList"))
_SECP: tuple | None = None
_SIGN: Any = None       # tallyio.engine._sign.SecpFunctions once resolved; False: sign through cffi
_ZERO_KEY = bytes(32)


def _secp():
    """coincurve's cffi handle on libsecp256k1 and its shared context (imported
    when a key is first used: the base package imports without coincurve)."""
    global _SECP
    if _SECP is not None:
        return _SECP
    try:
        from coincurve._libsecp256k1 import ffi, lib
        from coincurve.context import GLOBAL_CONTEXT
    except ImportError:  # pragma: no cover - depends on the install
        raise SignerError("signing needs coincurve (pip install 'tallyio[node]')") from None
    _SECP = (ffi, lib, GLOBAL_CONTEXT.ctx)
    return _SECP


def _native_signing():
    """coincurve's libsecp256k1 functions as C addresses for ``_sign.sign_type2`` (one
    call from the RLP to the raw transaction, no cffi per signature), or False when
    they cannot be taken (an unusual coincurve build): then cffi is used."""
    global _SIGN
    if _SIGN is None:
        from tallyio.engine._sign import SecpFunctions
        try:
            _SIGN = SecpFunctions(*_secp())
        except TypeError:  # pragma: no cover - depends on the coincurve build
            _SIGN = False
    return _SIGN


def _rlp_decode_list(payload: bytes) -> list:
    """The items of the flat RLP list ``payload`` as the encoder took them (ints for
    scalar fields, bytes for ``to``/``data``, the access list re-decoded): the inverse of
    ``rlp_encode`` on ``_unsigned_fields``'s output, for the cffi path."""
    def item(buf: bytes, at: int) -> tuple[Any, int]:
        b0 = buf[at]
        if b0 < 0x80:
            return buf[at:at + 1], at + 1
        if b0 < 0xB8:
            n = b0 - 0x80
            return buf[at + 1:at + 1 + n], at + 1 + n
        if b0 < 0xC0:
            k = b0 - 0xB7
            n = int.from_bytes(buf[at + 1:at + 1 + k], "big")
            return buf[at + 1 + k:at + 1 + k + n], at + 1 + k + n
        if b0 < 0xF8:
            start, end = at + 1, at + 1 + b0 - 0xC0
        else:
            k = b0 - 0xF7
            start = at + 1 + k
            end = start + int.from_bytes(buf[at + 1:start], "big")
        items = []
        while start < end:
            value, start = item(buf, start)
            items.append(value)
        return items, end

    decoded, _ = item(payload, 0)
    return decoded


# ---- field checks: errors name the field, never a key -------------------------

def _int_field(tx: Mapping[str, Any], name: str, limit: int, default: int | None = None) -> int:
    value = tx.get(name, default)
    if type(value) is int and 0 <= value <= limit:  # the common case, checked first
        return value
    if value is None:
        raise SignerError(f"transaction field {name!r} is missing")
    if isinstance(value, str):
        try:
            value = int(value, 0)
        except ValueError:
            raise SignerError(f"transaction field {name!r} is not an integer: {value[:80]!r}") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise SignerError(f"transaction field {name!r} must be an int, got {type(value).__name__}")
    if not 0 <= value <= limit:
        raise SignerError(f"transaction field {name!r} is out of range 0..{limit}: {value}")
    return value


def _bytes_field(value: Any, name: str, size: int | None = None) -> bytes:
    if type(value) is bytes and (size is None or len(value) == size):  # the common case
        return value
    if isinstance(value, str):
        text = value[2:] if value[:2] in ("0x", "0X") else value
        try:
            value = bytes.fromhex(text)
        except ValueError:
            raise SignerError(f"transaction field {name!r} is not hex: {value[:80]!r}") from None
    elif isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value)
    else:
        raise SignerError(f"transaction field {name!r} must be bytes or hex text, got {type(value).__name__}")
    if size is not None and len(value) != size:
        raise SignerError(f"transaction field {name!r} must be {size} bytes, got {len(value)}")
    return value


def _access_list(value: Any) -> list:
    if not value:
        return []
    if not isinstance(value, (list, tuple)):
        raise SignerError("transaction field 'accessList' must be a list of {address, storageKeys}")
    entries = []
    for entry in value:
        try:
            address, keys = entry["address"], entry["storageKeys"]
        except (TypeError, KeyError):
            raise SignerError("transaction field 'accessList' entries need 'address' and 'storageKeys'") from None
        entries.append([_bytes_field(address, "accessList.address", 20),
                        [_bytes_field(k, "accessList.storageKeys", 32) for k in keys]])
    return entries


def _unsigned_fields(tx: Mapping[str, Any]) -> list:
    """The RLP items of a type-2 transaction before its signature (EIP-1559)."""
    if not isinstance(tx, Mapping):
        raise SignerError(f"a transaction is a dict of fields, got {type(tx).__name__}")
    kind = tx.get("type", 2)
    if kind not in (2, "0x2", "0x02"):
        raise SignerError(f"only EIP-1559 (type 2) transactions are signed, got type {kind!r}")
    unknown = tx.keys() - _FIELDS
    if unknown:
        raise SignerError(f"unknown transaction fields: {', '.join(sorted(map(str, unknown)))}")
    max_fee = _int_field(tx, "maxFeePerGas", _UINT256)
    priority = _int_field(tx, "maxPriorityFeePerGas", _UINT256)
    if priority > max_fee:
        raise SignerError(f"maxPriorityFeePerGas ({priority}) exceeds maxFeePerGas ({max_fee})")
    to = tx.get("to")
    to_bytes = b"" if to in (None, b"", "") else _bytes_field(to, "to", 20)
    return [_int_field(tx, "chainId", _UINT64), _int_field(tx, "nonce", _UINT64), priority, max_fee,
            _int_field(tx, "gas", _UINT64), to_bytes, _int_field(tx, "value", _UINT256, 0),
            _bytes_field(tx.get("data", b""), "data"), _access_list(tx.get("accessList"))]


def _parse_key(text: Any) -> tuple[bytearray | None, str]:
    """``(key, "")`` or ``(None, what is wrong)``; the message never quotes the text."""
    if isinstance(text, (bytes, bytearray)) and len(text) == 32:
        return bytearray(text), ""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("ascii", "replace")
    if not isinstance(text, str):
        return None, f"a private key is hex text or 32 bytes, got {type(text).__name__}"
    body = text.strip()
    body = body[2:] if body[:2] in ("0x", "0X") else body
    if len(body) != 64:
        return None, f"a private key is 64 hex digits, the text given has {len(body)}"
    try:
        return bytearray.fromhex(body), ""
    except ValueError:
        return None, "a private key is 64 hex digits, the text given has a non-hex character"


class Signer:
    """One private key and the address it controls; signs type-2 transactions.

    Load it with :meth:`from_env`, :meth:`from_keystore` (or :meth:`from_hex`
    for a key already in hand). ``repr``/``str`` show only the address;
    pickling and copying are refused; :meth:`close` zeroes the key (also done
    when the object is collected), after which signing raises ``SignerError``.
    Safe to share between threads (signing and closing take a lock).
    """

    __slots__ = ("_key", "_lock", "address", "__weakref__")

    def __init__(self, key: bytearray):
        # takes ownership of ``key`` (zeroes it on close); use the from_* constructors
        if not isinstance(key, bytearray):
            raise TypeError("Signer(key) takes a bytearray it will own; use Signer.from_env/from_keystore/from_hex")
        self._lock = threading.Lock()
        self._key = key
        self.address: bytes = b""
        if len(key) != 32 or not 0 < int.from_bytes(key, "big") < _SECP256K1_N:
            self._zero()
            raise SignerError("a private key is 32 bytes, a number in 1..n-1 of secp256k1 (the value given is not)")
        self.address = self._derive_address()

    # ---- constructors ----
    @classmethod
    def from_hex(cls, text: str | bytes | bytearray) -> "Signer":
        """From 64 hex digits (``0x`` optional) or 32 raw bytes."""
        key, problem = _parse_key(text)
        text = None  # type: ignore[assignment]  # no frame of a traceback keeps the key text
        if key is None:
            raise SignerError(problem)
        return cls(key)

    @classmethod
    def from_env(cls, variable: str = "TALLYIO_PRIVATE_KEY") -> "Signer":
        """From the environment variable ``variable`` (64 hex digits, ``0x`` optional).

        Raises :class:`~tallyio.errors.ConfigError` naming the variable when it is
        unset or malformed (never quoting its value)."""
        text = os.environ.get(variable)
        if not text:
            raise ConfigError(f"{variable} is not set (it should hold the private key as 64 hex digits)")
        key, problem = _parse_key(text)
        text = None  # the error below is raised with no frame or context holding the value
        if key is not None:
            try:
                return cls(key)  # zeroes ``key`` when it refuses it
            except SignerError as exc:
                problem = str(exc)
        raise ConfigError(f"{variable} does not hold a usable private key: {problem}")

    @classmethod
    def from_keystore(cls, path: str | os.PathLike, password: str | bytes | bytearray) -> "Signer":
        """From an encrypted keystore file (Web3 Secret Storage v3, as geth and
        eth-account write it) and its password.

        Raises :class:`~tallyio.errors.KeystoreError` naming the file when it is
        missing, is not a v3 keystore, or the password is wrong."""
        try:
            from eth_account import Account
        except ImportError:  # pragma: no cover - depends on the install
            raise KeystoreError("reading a keystore needs eth-account (pip install 'tallyio[node]')") from None
        try:
            with open(path, "rb") as f:
                document = json.loads(f.read())
        except OSError as exc:
            raise KeystoreError(f"keystore {os.fspath(path)!s} cannot be read: {exc.strerror}") from None
        except ValueError:
            raise KeystoreError(f"keystore {os.fspath(path)!s} is not JSON") from None
        if not isinstance(document, dict) or document.get("version") != 3 or "crypto" not in document and \
                "Crypto" not in document:
            raise KeystoreError(f"keystore {os.fspath(path)!s} is not a version 3 keystore")
        if isinstance(password, bytearray):
            password = bytes(password)
        if not isinstance(password, (str, bytes)):
            raise KeystoreError(f"a keystore password is str or bytes, got {type(password).__name__}")
        problem = None
        try:
            secret = Account.decrypt(document, password)
        except ValueError as exc:
            problem = "wrong password (MAC mismatch)" if "MAC" in str(exc) else "cannot be decrypted"
        except (KeyError, TypeError, NotImplementedError):
            problem = "is malformed or uses an unsupported cipher/kdf"
        # raised outside the except blocks, with the password dropped: no exception
        # context and no traceback frame keeps the password or the decrypted key
        password = document = None  # type: ignore[assignment]
        if problem is not None:
            raise KeystoreError(f"keystore {os.fspath(path)!s}: {problem}")
        key = bytearray(secret)
        del secret  # the immutable copy eth-account returned: freed, not zeroed (see the module docstring)
        return cls(key)

    # ---- signing ----
    def _derive_address(self) -> bytes:
        ffi, lib, ctx = _secp()
        pub = ffi.new("secp256k1_pubkey *")
        if not lib.secp256k1_ec_pubkey_create(ctx, pub, ffi.from_buffer(self._key)):
            raise SignerError("the private key was refused by libsecp256k1")
        out = ffi.new("unsigned char[65]")
        size = ffi.new("size_t *", 65)
        lib.secp256k1_ec_pubkey_serialize(ctx, out, size, pub, lib.SECP256K1_EC_UNCOMPRESSED)
        return keccak256(bytes(ffi.buffer(out, 65))[1:])[12:]

    def sign_transaction(self, tx: Mapping[str, Any]) -> tuple[bytes, bytes]:
        """Sign an EIP-1559 transaction; returns ``(raw signed transaction, tx hash)``.

        ``tx`` has eth-account's field names: ``chainId``, ``nonce``,
        ``maxFeePerGas``, ``maxPriorityFeePerGas``, ``gas``, ``to`` (20 bytes or
        hex; absent for a contract creation), ``value`` (default 0), ``data``
        (bytes or hex), ``accessList`` (default empty), ``type`` (2 if given).
        A missing or out-of-range field raises ``SignerError`` naming it."""
        native = _SIGN if _SIGN is not None else _native_signing()
        if native:
            with self._lock:
                if self._key == _ZERO_KEY:
                    raise SignerError(f"signer of {self._address_hex()} is closed")
                try:
                    # the common dict is checked and encoded in C; anything else is checked (and
                    # refused with the field's name) and encoded here, then signed in C
                    signed = _sign_type2_dict(native, self._key, tx)
                    if signed is None:
                        signed = _sign_type2(native, self._key, rlp_encode(_unsigned_fields(tx)))
                    return signed
                except RuntimeError:
                    raise SignerError("libsecp256k1 could not sign (nonce generation failed)") from None
        return self._sign_through_cffi(rlp_encode(_unsigned_fields(tx)))

    def _sign_through_cffi(self, unsigned: bytes) -> tuple[bytes, bytes]:
        """``sign_transaction``'s path when coincurve's functions cannot be called from
        C (see ``_native_signing``): the same bytes, through cffi."""
        digest = keccak256(b"\x02" + unsigned)
        ffi, lib, ctx = _secp()
        signature = ffi.new("secp256k1_ecdsa_recoverable_signature *")
        with self._lock:
            if self.closed:
                raise SignerError(f"signer of {self._address_hex()} is closed")
            ok = lib.secp256k1_ecdsa_sign_recoverable(ctx, signature, digest, ffi.from_buffer(self._key),
                                                      ffi.NULL, ffi.NULL)
        if not ok:
            raise SignerError("libsecp256k1 could not sign (nonce generation failed)")
        compact = ffi.new("unsigned char[64]")
        recid = ffi.new("int *")
        lib.secp256k1_ecdsa_recoverable_signature_serialize_compact(ctx, compact, recid, signature)
        sig = bytes(ffi.buffer(compact, 64))
        fields = list(_rlp_decode_list(unsigned))
        fields += [recid[0], int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")]
        raw = b"\x02" + rlp_encode(fields)
        return raw, keccak256(raw)

    # ---- lifetime ----
    @property
    def closed(self) -> bool:
        """True once the key has been zeroed."""
        return self._key == _ZERO_KEY

    def _zero(self) -> None:
        key = self._key
        for i in range(len(key)):
            key[i] = 0

    def close(self) -> None:
        """Zero the key (idempotent); the signer cannot sign afterwards."""
        with self._lock:
            self._zero()

    def __del__(self) -> None:
        try:
            self._zero()
        except AttributeError:  # __init__ failed before _key was set
            pass

    def __enter__(self) -> "Signer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- never shown ----
    def _address_hex(self) -> str:
        return "0x" + self.address.hex() if self.address else "(no address)"

    def __repr__(self) -> str:
        return f"Signer({self._address_hex()})"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return format(repr(self), spec)

    def __reduce_ex__(self, protocol: object) -> Any:
        raise TypeError("a Signer holds a private key and cannot be pickled or copied")

    def __copy__(self) -> Any:
        raise TypeError("a Signer holds a private key and cannot be pickled or copied")

    def __deepcopy__(self, memo: object) -> Any:
        raise TypeError("a Signer holds a private key and cannot be pickled or copied")

    def __getstate__(self) -> Any:
        raise TypeError("a Signer holds a private key and cannot be pickled or copied")

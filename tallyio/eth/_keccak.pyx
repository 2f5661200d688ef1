"""Keccak-256 as Ethereum uses it, and the 4-byte function selector.

Owns the Python face of ``tio_keccak.h`` (tallyio/_ext/include), which C code
(the decoder's tests, the node source's transaction-hash check) includes directly.
No dependency beyond the compiled core: works in the base install.

    >>> keccak256(b"").hex()[:16]
    'c5d2460186f7233c'
    >>> selector("transfer(address,uint256)")
    '0xa9059cbb'
"""
from libc.stdint cimport uint8_t

# tio_keccak256 comes from _keccak.pxd (tio_keccak.h)

__all__ = ["keccak256", "selector"]


def keccak256(data) -> bytes:
    """The 32-byte Keccak-256 digest of ``data`` (bytes, bytearray or memoryview)."""
    cdef const uint8_t[::1] view
    cdef uint8_t digest[32]
    if isinstance(data, str):
        raise TypeError("keccak256 takes bytes, not str: encode it first (e.g. text.encode())")
    try:
        view = memoryview(data).cast("B")
    except TypeError:
        raise TypeError(f"keccak256 takes bytes, bytearray or memoryview, not {type(data).__name__}") from None
    cdef size_t n = view.shape[0]
    with nogil:
        tio_keccak256(&view[0] if n else NULL, n, digest)
    return (<char *>digest)[:32]


def selector(signature: str) -> str:
    """The function selector of a canonical signature, as ``0x`` + 8 hex digits
    (the first 4 bytes of its Keccak-256)."""
    if not isinstance(signature, str):
        raise TypeError(f"signature must be a str, not {type(signature).__name__}")
    if "(" not in signature or not signature.endswith(")") or " " in signature:
        raise ValueError(f"not a canonical signature (name(type,...) without spaces): {signature!r}")
    return "0x" + keccak256(signature.encode()).hex()[:8]

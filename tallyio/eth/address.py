"""Address helpers: EIP-55 checksummed spelling (for display and for comparing with
what wallets and eth-abi print). Owns nothing but these pure functions.

    >>> to_checksum_address("0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2")
    '0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2'
"""
from __future__ import annotations

from tallyio.eth._keccak import keccak256

__all__ = ["to_checksum_address"]


def to_checksum_address(address: str | bytes) -> str:
    """The EIP-55 spelling of a 20-byte address given as bytes or ``0x`` hex (any case)."""
    if isinstance(address, (bytes, bytearray)):
        raw = bytes(address)
    elif isinstance(address, str):
        if address[:2] not in ("0x", "0X"):
            raise ValueError(f"an address str must start with 0x, got {address!r}")
        try:
            raw = bytes.fromhex(address[2:])
        except ValueError:
            raise ValueError(f"an address must be hex, got {address!r}") from None
    else:
        raise TypeError(f"an address must be bytes or a 0x hex str, not {type(address).__name__}")
    if len(raw) != 20:
        raise ValueError(f"an address is 20 bytes, got {len(raw)}")
    lower = raw.hex()
    digest = keccak256(lower.encode()).hex()
    return "0x" + "".join(c.upper() if int(h, 16) >= 8 else c for c, h in zip(lower, digest))

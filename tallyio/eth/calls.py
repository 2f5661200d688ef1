"""The Python records the decoder returns: :class:`DecodedCall` and :class:`Swap`.

Owns the shape of a decoded call as Python sees it; filled by
``tallyio.eth._decode`` (which owns the decoding itself). No I/O, no imports
from other engine sub-packages.

Values follow eth-abi's, so a decoded call compares equal to eth-abi's output
field by field: integers are ``int``, ``bytes``/``bytes32`` are ``bytes``,
``bool`` is ``bool``; unlike eth-abi, addresses are lowercase ``0x`` hex
strings and arrays are lists. A V3 ``path`` stays the packed ``bytes`` eth-abi
gives; its parsed form (tokens and fees, in the direction the tokens flow) is in
the call's :attr:`DecodedCall.swaps`.

    >>> s = Swap("v2", "exact_in", 10, 9, ["0x" + "aa" * 20, "0x" + "bb" * 20], [0],
    ...          "0x" + "cc" * 20, None, 0)
    >>> s.token_in[:6], s.token_out[:6], s.eth_in
    ('0xaaaa', '0xbbbb', False)
"""
from __future__ import annotations

from typing import NamedTuple, Optional

__all__ = ["DecodedCall", "Swap", "SWAP_ETH_IN", "SWAP_ETH_OUT", "SWAP_FEE_ON_TRANSFER",
           "SWAP_AMOUNT_UNKNOWN"]

# the flag bits of tio_swap.flags (tallyio/_ext/include/tio_swap.h)
SWAP_ETH_IN = 0x01
SWAP_ETH_OUT = 0x02
SWAP_FEE_ON_TRANSFER = 0x04
SWAP_AMOUNT_UNKNOWN = 0x08


class Swap(NamedTuple):
    """One swap a router call asks for, normalized across V2, V3 and the
    Universal Router (the Python view of the C ``tio_swap``)."""

    protocol: str
    """``"v2"`` (constant-product pairs) or ``"v3"`` (concentrated liquidity pools)."""
    kind: str
    """``"exact_in"``: ``amount`` is the exact input, ``amount_limit`` the minimum
    output. ``"exact_out"``: ``amount`` is the exact output, ``amount_limit`` the
    maximum input."""
    amount: Optional[int]
    """``None`` when the call does not carry it: the ETH-in V2 swaps take it from the
    transaction's value."""
    amount_limit: Optional[int]
    """``None`` for ``swapETHForExactTokens`` (the maximum input is the value sent)."""
    path: list
    """token addresses (lowercase ``0x`` hex) in the order the tokens flow."""
    fees: list
    """V3: fee in pips (hundredths of a basis point) of each hop; V2: zeros."""
    recipient: str
    deadline: Optional[int]
    """unix seconds; ``None`` when the call carries none. Deadlines of 2**64 and over
    (``type(uint256).max`` is common) read as 2**64 - 1."""
    flags: int
    """``SWAP_*`` bits; also readable as the properties below."""
    sqrt_price_limit: int = 0
    """V3 ``exactInputSingle`` / ``exactOutputSingle``: the call's ``sqrtPriceLimitX96``, where
    the pool stops swapping (a binding limit fills less than asked); 0: none (every other swap)."""

    @property
    def token_in(self) -> str:
        return self.path[0]

    @property
    def token_out(self) -> str:
        return self.path[-1]

    @property
    def eth_in(self) -> bool:
        """The input is the call's ETH value (the router wraps it)."""
        return bool(self.flags & SWAP_ETH_IN)

    @property
    def eth_out(self) -> bool:
        """The output is unwrapped to ETH."""
        return bool(self.flags & SWAP_ETH_OUT)

    @property
    def fee_on_transfer(self) -> bool:
        """A ``...SupportingFeeOnTransferTokens`` swap: the amounts are not exact."""
        return bool(self.flags & SWAP_FEE_ON_TRANSFER)

    @property
    def amount_unknown(self) -> bool:
        """The input is decided at run time (the router's balance, or tokens already
        paid to the pair): ``amount`` holds the marker value, not an amount."""
        return bool(self.flags & SWAP_AMOUNT_UNKNOWN)


class DecodedCall(NamedTuple):
    """A decoded router call (or Universal Router command)."""

    function: str
    """the ABI function name (``swapExactTokensForTokens``, ``exactInput``,
    ``multicall``, ``execute``), or the Universal Router command's name
    (``V2_SWAP_EXACT_IN``, ...) for an entry of ``execute``'s :attr:`inner`."""
    signature: str
    """the canonical signature whose keccak256 gives the selector; for a Universal
    Router command, the argument tuple of its input."""
    selector: Optional[str]
    """``0x`` + 8 hex digits; ``None`` for a Universal Router command."""
    args: dict
    """argument name -> value (V3 struct fields flattened)."""
    inner: tuple
    """the decoded calls inside a multicall or the swap commands of an ``execute``
    (those the decoder does not know are left out and counted in :attr:`skipped`)."""
    swaps: tuple
    """every :class:`Swap` this call asks for, inner calls included."""
    skipped: int = 0
    """inner calls or commands that were not decoded (not swaps we know)."""

    def __repr__(self) -> str:
        return (f"DecodedCall({self.function}, args={sorted(self.args)}, inner={len(self.inner)}, "
                f"swaps={len(self.swaps)})")


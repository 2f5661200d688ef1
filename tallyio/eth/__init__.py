"""Ethereum vocabulary, no I/O: addresses, hashes, raw transactions, and the
nogil decoding of the router calls a mempool carries (``decode_call``).

Sits at the start of the data flow (source -> **decode** -> filter -> analyze);
it imports nothing from the other engine sub-packages.

    >>> from tallyio.eth import decode_call, selector
    >>> selector("swapExactTokensForTokens(uint256,uint256,address[],address,uint256)")
    '0x38ed1739'
    >>> decode_call("0x") is None
    True
"""
from tallyio.eth._decode import DECODE_STATUSES, Decoder, decode_call, decode_stats, known_calls
from tallyio.eth._keccak import keccak256, selector
from tallyio.eth.calls import DecodedCall, Swap
from tallyio.eth.types import (AaveCollateralToggle, AaveLiquidation, AavePriceUpdate, AaveReserveUpdate,
                               AaveTokenEvent, AaveUserAction, BlockHeader, PendingTx, SyncEvent)
from tallyio.eth.aave import decode_aave_log, decode_oracle_call
from tallyio.eth.address import to_checksum_address

__all__ = ["PendingTx", "BlockHeader", "SyncEvent",
           "decode_call", "decode_stats", "Decoder", "DecodedCall", "Swap", "DECODE_STATUSES",
           "known_calls", "keccak256", "selector", "to_checksum_address",
           "AaveReserveUpdate", "AaveTokenEvent", "AaveCollateralToggle", "AaveUserAction", "AaveLiquidation",
           "AavePriceUpdate", "decode_aave_log", "decode_oracle_call"]

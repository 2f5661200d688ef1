"""Stub of the compiled tallyio.mempool._wsenc: Keccak-256 and RLP."""
from typing import Union

_Rlp = Union[bytes, bytearray, memoryview, int, list["_Rlp"], tuple["_Rlp", ...]]

def keccak256(data: Union[bytes, bytearray, memoryview]) -> bytes: ...
def rlp_encode(item: _Rlp) -> bytes: ...

"""Type stub for tallyio.engine._sign (compiled): type-2 signing from the RLP in one call."""
from typing_extensions import disjoint_base
from typing import Any

__all__ = ["SecpFunctions", "sign_type2", "sign_type2_dict"]

@disjoint_base
class SecpFunctions:
    def __init__(self, ffi: Any, lib: Any, ctx: Any) -> None: ...

def sign_type2(secp: SecpFunctions, key: bytearray, unsigned_rlp: bytes) -> tuple[bytes, bytes]: ...
def sign_type2_dict(secp: SecpFunctions, key: bytearray, tx: Any) -> tuple[bytes, bytes] | None: ...

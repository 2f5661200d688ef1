"""Type stub for the compiled module tallyio.state._recordlog."""

__all__ = ["crc32", "walk"]

def crc32(data: bytes | bytearray | memoryview, crc: int = 0) -> int: ...
def walk(
    data: bytes | bytearray | memoryview, first_seq: int, offset: int = 64
) -> tuple[list[tuple[int, int, int, int, int, int]], int, str]: ...

class Block: pass
class MemoryPool: pass

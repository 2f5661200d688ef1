class SpscQueue: pass

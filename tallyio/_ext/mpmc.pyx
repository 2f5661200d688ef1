class MpmcQueue: pass

class Steal: pass
class Stealer: pass
class WorkStealingDeque: pass

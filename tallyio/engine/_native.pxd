# NativeHooks: the extension type a Cython strategy subclasses to publish its
# nogil hooks (tallyio/engine/strategy.pxd).  tallyio/engine/_native.pyx.
from tallyio.engine.strategy cimport tio_strategy_hooks, tio_opportunity, tio_action_buf

cdef class NativeHooks:
    cdef tio_strategy_hooks hooks     # set by the subclass's __cinit__
    cdef public object name

"""tallyio's public C API: everything a user's Cython module may cimport.

    from tallyio.capi cimport tio_sched, tio_sched_of, tio_submit_native, TIO_OK

This file is the whole supported surface (numpy's ``numpy/random/__init__.pxd``
is the model); it names the types and functions and re-exports them from the
private modules under ``tallyio._ext``, whose struct layouts may change between
releases without notice: use the functions below, never the fields.  Every
function here is ``noexcept nogil`` and returns a status code (TIO_*), except
the ``*_of`` accessors, which run with the GIL, check the Python object and
raise TypeError.  The write-up of each protocol is tallyio/_ext/README.md.

The old paths (``from tallyio._ext.scheduler cimport ...`` and the other
``tallyio._ext.*`` modules) keep working for one release; they will become
private after it.
"""

# ---- status codes (tallyio/_ext/include/tio_status.h) and their exceptions -----------
from tallyio._ext.common cimport (tio_status, TIO_OK, TIO_EMPTY, TIO_FULL, TIO_RETRY,
                                  TIO_EXHAUSTED, TIO_DOUBLE_FREE, TIO_FOREIGN, TIO_NOMEM,
                                  TIO_INVALID, TIO_INTERRUPTED, TIO_CLOSED)
# raise_status(status, what): raise the tallyio exception for a status (GIL held);
# exception_for(status, message): the same exception, not raised, with your own message
from tallyio._ext.status cimport raise_status, exception_for

# ---- the scheduler: native tasks ----------------------------------------------------
# tio_native_fn: void (*)(void *arg) noexcept nogil, run on a worker without the GIL.
# tio_sched_of(scheduler) -> tio_sched * (a started NumaScheduler; keeps nothing alive)
# tio_submit_native(s, fn, arg, priority, preferred_node) -> TIO_OK / TIO_FULL / TIO_CLOSED / TIO_INVALID
# tio_submit_native_many(s, fn, args, n, priority, preferred_node, &accepted)
# tio_spawn_native(fn, arg): from inside a running task, onto this worker's own deque
from tallyio._ext.scheduler cimport (tio_sched, tio_native_fn, tio_sched_of, tio_submit_native,
                                     tio_submit_native_many, tio_spawn_native)

# ---- SpscQueue (one producer thread, one consumer thread) ----------------------------
from tallyio._ext.spsc cimport (SpscQueue, tio_spsc, tio_spsc_uint64_ring, tio_spsc_push,
                                tio_spsc_push_many, tio_spsc_pop, tio_spsc_pop_many,
                                tio_spsc_size, tio_spsc_capacity)

# ---- MpmcQueue (any threads) ------------------------------------------------------------
from tallyio._ext.mpmc cimport (MpmcQueue, tio_mpmc, tio_mpmc_uint64_ring, tio_mpmc_push,
                                tio_mpmc_push_many, tio_mpmc_pop, tio_mpmc_pop_many,
                                tio_mpmc_size, tio_mpmc_capacity)

# ---- WorkStealingDeque: the owner and its thieves are distinct types -------------------
from tallyio._ext.deque cimport (WorkStealingDeque, tio_deque_owner, tio_deque_thief,
                                 tio_deque_owner_of, tio_deque_thief_of,
                                 tio_deque_owner_push, tio_deque_owner_push_many,
                                 tio_deque_owner_pop, tio_deque_owner_pop_many,
                                 tio_deque_thief_steal, tio_deque_thief_steal_batch,
                                 tio_deque_thief_len)

# ---- MemoryPool -------------------------------------------------------------------------
from tallyio._ext.pool cimport (MemoryPool, tio_pool, tio_pool_of, tio_pool_alloc, tio_pool_free,
                                tio_pool_block_size, tio_pool_block_count, tio_pool_in_use)

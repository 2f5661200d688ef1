# cython: language_level=3
"""External C the scheduler core needs beyond tallyio/_ext/common.pxd: the
per-thread worker pointer, a compiler builtin, sched_yield, CPython's
unraisable-exception hook and tio_platform.h's debug assertion.  Owned by the scheduler (only scheduler.pyx
cimports it: the thread-locals must exist once, in that extension module).
"""
from libc.stdint cimport uint64_t
from cpython.ref cimport PyObject

cdef extern from *:
    """
    /* The worker running on this thread (NULL elsewhere): lets submit_task()
     * and tio_spawn_native() called from inside a task use the worker's own
     * deque without a lookup. */
    /* initial-exec: no __tls_get_addr call per submit, and ThreadSanitizer
     * does not misreport glibc's reuse of dynamic TLS blocks (16 bytes of the
     * static TLS surplus glibc reserves for dlopen'ed modules) */
    static __thread __attribute__((tls_model("initial-exec"), unused)) void *tio_tls_worker = NULL;
    static __thread __attribute__((tls_model("initial-exec"), unused)) uint64_t tio_tls_rng = 0;
    """
    void *tio_tls_worker
    uint64_t tio_tls_rng
    int __builtin_clzll(unsigned long long x) nogil

cdef extern from "tio_platform.h" nogil:
    # TIO_DEBUG_ASSERT(cond): aborts on a broken invariant when TIO_DEBUG is
    # defined (sanitizer builds), else cond is not evaluated; checks that call
    # functions go under `if TIO_DEBUG_ENABLED:` (see tio_platform.h)
    void TIO_DEBUG_ASSERT(bint cond)
    const bint TIO_DEBUG_ENABLED

cdef extern from "<sched.h>" nogil:
    int sched_yield()

cdef extern from *:
    """
    /* Report the current exception through sys.unraisablehook with our own
     * message, as CPython does for errors in __del__ ("Exception ignored
     * <message>: <obj>").  The hook gets a real UnraisableHookArgs; a hook
     * that itself fails is handled (printed) by CPython. */
    static __attribute__((unused)) void tio_write_unraisable(const char *message, PyObject *obj) {
    #if PY_VERSION_HEX >= 0x030D0000
        PyErr_FormatUnraisable("Exception ignored %s: %R", message, obj);
    #else
        _PyErr_WriteUnraisableMsg(message, obj);
    #endif
    }
    """
    void tio_write_unraisable(const char *message, PyObject *obj)
    void PyErr_Restore(PyObject *tp, PyObject *value, PyObject *tb)

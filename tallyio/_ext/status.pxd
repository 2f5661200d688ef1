"""The one place where tallyio status codes become Python exceptions."""
cdef int raise_status(int status, str what) except -1
cdef object exception_for(int status, str message)

# Deprecated re-exports, kept for one release: these moved to tallyio._ext.checks.
# cimport them from there (or, for user code, from tallyio.capi).
from tallyio._ext.checks cimport (role_claim, role_claim_slow, check_capacity, parse_kind,
                                  acquire_u64_buffer, object_to_u64)

# tallyio._ext.status has no Python-level API: it exports cdef functions
# (raise_status, role_claim, argument checks) to the other compiled modules.

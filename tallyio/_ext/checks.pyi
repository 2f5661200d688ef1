# tallyio._ext.checks has no Python-level API: it exports cdef functions
# (role claims, argument checks, the allocation guard) to the other compiled modules.

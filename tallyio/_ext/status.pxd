"""The one place where tallyio status codes become Python exceptions."""
cdef int raise_status(int status, str what) except -1
cdef object exception_for(int status, str message)

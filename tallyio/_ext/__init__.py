"""tallyio's compiled core: one .pxd/.pyx pair per lock-free component.

The .pxd files are public: other Cython code may ``cimport`` them to use the
structures from nogil code (see each .pxd for its C API and ownership rules).
"""

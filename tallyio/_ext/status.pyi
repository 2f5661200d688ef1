# tallyio._ext.status: status codes -> exceptions.  Its C function raise_status is
# cimported by the other compiled modules; Python sees the codes and raise_for_status.
from typing import NoReturn

OK: int
EMPTY: int
FULL: int
RETRY: int
EXHAUSTED: int
DOUBLE_FREE: int
FOREIGN: int
NOMEM: int
INVALID: int
INTERRUPTED: int
CLOSED: int

def raise_for_status(status: int, what: str) -> NoReturn: ...

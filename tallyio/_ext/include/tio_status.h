/*
 * tio_status.h -- status codes returned by every hot-path function of the C
 * core.  Hot paths never raise; tallyio/_ext/status.pyx is the one place that
 * turns a code into a Python exception.
 */
#ifndef TIO_STATUS_H
#define TIO_STATUS_H

typedef enum {
    TIO_OK = 0,            /* done (Steal.SUCCESS) */
    TIO_EMPTY = 1,         /* nothing to take (Steal.EMPTY) */
    TIO_FULL = 2,          /* no room; the item was NOT taken */
    TIO_RETRY = 3,         /* lost a race; try again (Steal.RETRY) */
    TIO_EXHAUSTED = 4,     /* memory pool has no free block */
    TIO_DOUBLE_FREE = 5,   /* block already free */
    TIO_FOREIGN = 6,       /* pointer is not a block of this pool */
    TIO_NOMEM = 7,         /* malloc failed during setup */
    TIO_INVALID = 8,       /* bad argument during setup */
    TIO_INTERRUPTED = 9,   /* a blocking wait saw a Python exception (signal) */
    TIO_CLOSED = 10        /* the scheduler is not running (not started, stopping, stopped) */
} tio_status;

#endif /* TIO_STATUS_H */

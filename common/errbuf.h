/* errbuf.h — the one way library code reports an error: format a one-line message into the
 * caller's buffer (err may be NULL or n 0) and return -1, so `return rc_errf(err, n, ...)`
 * reads as the failure it is. Modules that keep their message in a struct (a backend's or a
 * device's err[]) wrap rc_verrf; none formats on its own. */
#ifndef RC_ERRBUF_H
#define RC_ERRBUF_H
#include <stddef.h>

#include <stdarg.h>

int rc_errf(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The same for a va_list, for the wrappers that format into a struct's own buffer. */
int rc_verrf(char *err, size_t n, const char *fmt, va_list ap) __attribute__((format(printf, 3, 0)));

/* Errors a caller branches on are codes, never message text. Every other failure is -1. */
enum {
    RC_ERR = -1,
    RC_ERR_NO_TEST = -2,      /* the recording has no test split (evaluation has nothing to do) */
    RC_ERR_ABORT = -3,        /* this MPI rank alone failed after the search started: abort the job */
};
#endif

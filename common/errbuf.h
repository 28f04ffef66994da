/* errbuf.h — the one way library code reports an error: format a one-line message into the
 * caller's buffer (err may be NULL or n 0) and return -1, so `return rc_errf(err, n, ...)`
 * reads as the failure it is. */
#ifndef RC_ERRBUF_H
#define RC_ERRBUF_H
#include <stddef.h>

int rc_errf(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
#endif

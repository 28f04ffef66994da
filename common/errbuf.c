/* errbuf.c — see errbuf.h. */
#include "errbuf.h"
#include <stdarg.h>
#include <stdio.h>

int rc_verrf(char *err, size_t n, const char *fmt, va_list ap)
{
    if (err && n) vsnprintf(err, n, fmt, ap);
    return -1;
}

int rc_errf(char *err, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rc_verrf(err, n, fmt, ap);
    va_end(ap);
    return -1;
}

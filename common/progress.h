/* progress.h — how long library work reports how far it is: a callback with the units done out
 * of a total, per named stage ("gradient STA", "step", "frames"). Library code never prints:
 * the commands draw it (cli/progress.c: one updating line with an ETA on a terminal, a few
 * plain lines otherwise). A zeroed rc_progress reports nothing.
 */
#ifndef RC_PROGRESS_H
#define RC_PROGRESS_H
#include <stdint.h>

typedef struct {
    void (*fn)(void *ctx, const char *stage, int64_t done, int64_t total);
    void *ctx;
} rc_progress;

static inline void rc_progress_report(const rc_progress *p, const char *stage, int64_t done,
                                      int64_t total)
{
    if (p && p->fn) p->fn(p->ctx, stage, done, total);
}
#endif

/* clock.h — the one monotonic wall clock for timings (seconds as a double). Header-only: a
 * static inline over clock_gettime(CLOCK_MONOTONIC), which cannot fail on Linux for this id. */
#ifndef RC_CLOCK_H
#define RC_CLOCK_H
#include <time.h>

static inline double rc_clock_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
#endif

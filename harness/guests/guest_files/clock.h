/* The project's C tools' clock: seconds on CLOCK_MONOTONIC, as a double (what every tool times with). */
#ifndef VMNB_CLOCK_H
#define VMNB_CLOCK_H
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}
#endif

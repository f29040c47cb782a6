/* What the open-loop clients vmnb-http (http.c) and vmnb-h2 (h2.c) share: the clock, the first error, and the
 * JSON report the harness reads (harness/experiment/http.py HttpReport). */
#include <stdio.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static char first_error[200];

/* A failure; `lost`: the counter of requests counted as failed, NULL when none is (a connect failure alone). */
static void note_error(long *lost, const char *what) {
    if (!first_error[0]) snprintf(first_error, sizeof first_error, "%s", what);
    if (lost) (*lost)++;
}

/* Requests not completed are errors: failed (`lost`) or never answered within `grace` seconds of the last due
 * time. `seconds`: from the first due time to the last answer. */
static void print_report(double rate, long scheduled, long completed, long lost, double grace, double seconds,
                         const double *latency_us) {
    long errors = scheduled - completed;
    if (errors > lost && !first_error[0]) snprintf(first_error, sizeof first_error, "no answer within %g s", grace);
    printf("{\"offered_rps\": %g, \"scheduled\": %ld, \"completed\": %ld, \"errors\": %ld, \"first_error\": ",
           rate, scheduled, completed, errors);
    if (errors) printf("\"%s\"", first_error);
    else printf("null");
    printf(", \"seconds\": %.6f, \"latency_us\": [", completed ? seconds : 0.0);
    for (long i = 0; i < completed; i++) printf(i ? ",%.1f" : "%.1f", latency_us[i]);
    printf("]}\n");
}

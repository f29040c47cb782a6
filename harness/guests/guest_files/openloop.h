/* What vmnb-http (http.c) and vmnb-h2 (h2.c) share: the command line, the clock, the first error, and the
 * JSON report the harness reads (harness/experiment/http.py HttpReport). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include "clock.h"
#include "inet.h"
#include <time.h>
#include <unistd.h>

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

/* The command line both tools take: a mode (`server` or `client`), then `--option value` pairs. */
struct options {
    const char *mode, *target, *host;
    int port, connections, stall_ms, grpc;
    long bytes;
    double rate, duration, grace, stall_after;
};

/* `o` from argv, over the defaults already in it; 0, or 2 after saying what is wrong (the exit status). A client
 * needs a positive rate and duration, 1..max_connections connections and 0..max_bytes bytes. */
static int parse_options(const char *tool, int argc, char **argv, struct options *o, int max_connections,
                         long max_bytes) {
    o->mode = argc > 1 ? argv[1] : "";
    for (int i = 2; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--port")) o->port = atoi(v);
        else if (!strcmp(k, "--target")) o->target = v;
        else if (!strcmp(k, "--host")) o->host = v;
        else if (!strcmp(k, "--rate")) o->rate = atof(v);
        else if (!strcmp(k, "--duration")) o->duration = atof(v);
        else if (!strcmp(k, "--connections")) o->connections = atoi(v);
        else if (!strcmp(k, "--bytes")) o->bytes = atol(v);
        else if (!strcmp(k, "--grace")) o->grace = atof(v);
        else if (!strcmp(k, "--grpc")) o->grpc = atoi(v);
        else if (!strcmp(k, "--stall-after")) o->stall_after = atof(v);
        else if (!strcmp(k, "--stall-ms")) o->stall_ms = atoi(v);
        else {
            fprintf(stderr, "%s: unknown option %s\n", tool, k);
            return 2;
        }
    }
    if (strcmp(o->mode, "server") && strcmp(o->mode, "client")) {
        fprintf(stderr, "usage: %s server --port P | client --target A --port P --rate R --duration S ...\n", tool);
        return 2;
    }
    if (!strcmp(o->mode, "client") && (o->rate <= 0 || o->duration <= 0 || o->connections < 1 ||
                                       o->connections > max_connections || o->bytes < 0 || o->bytes > max_bytes)) {
        fprintf(stderr, "%s: --rate and --duration > 0, --connections 1..%d, --bytes 0..%ld\n", tool,
                max_connections, max_bytes);
        return 2;
    }
    return 0;
}

/* A non-blocking TCP_NODELAY socket connecting to `to` (-1 if it cannot even start); *done: already connected. */
static int start_connect(const struct sockaddr_storage *to, int *done) {
    int one = 1, fd = socket(to->ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    *done = connect(fd, (const struct sockaddr *)to, inet_len(to)) == 0;
    return *done || errno == EINPROGRESS ? fd : -1;
}

/* After POLLOUT on a connecting socket: 0 when it connected; else the error is noted, the socket closed, and after
 * a short pause (refused: retry, not spin) the caller connects again. */
static int finish_connect(int fd) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (!err) return 0;
    note_error(NULL, strerror(err));
    close(fd);
    usleep(10000);
    return -1;
}

/* Waits for `fds` until the monotonic time `when` at the latest; ppoll, for microsecond wake-ups. */
static int poll_until(struct pollfd *fds, int n, double when) {
    double wait = when - now_s();
    if (wait < 0) wait = 0;
    struct timespec ts = {.tv_sec = (time_t)wait, .tv_nsec = (long)((wait - (time_t)wait) * 1e9)};
    int got = ppoll(fds, n, &ts, NULL);
    return got < 0 && errno == EINTR ? 0 : got;
}

/* A socket listening on every address (both families) at `port`, or -1 after saying why. */
static int listen_on(const char *tool, int port) {
    int ls = inet_listen_any(port);
    if (ls < 0) {
        fprintf(stderr, "%s server: port %d: %s\n", tool, port, strerror(errno));
        return -1;
    }
    return ls;
}

/* The client's destination from --target and --port (2 after saying what is wrong, the exit status), and a 1 ns
 * timer slack so that it wakes at each due time, not up to 50 us later. */
static int client_target(const char *tool, const char *target, int port, struct sockaddr_storage *to) {
    if (inet_target(target, port, to)) {
        fprintf(stderr, "%s: --target must be an IPv4 or IPv6 address, not %s\n", tool, target);
        return 2;
    }
    prctl(PR_SET_TIMERSLACK, 1UL);
    return 0;
}

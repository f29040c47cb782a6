/* vmnb-crr: connect-request-response server and client, in C so that the same tool runs on the host and
 * inside the QEMU guest's initramfs (which has no Python).
 *
 *   vmnb-crr server --port P [--keepalive]
 *   vmnb-crr client --target A --port P --duration S --bytes N      (prints JSON: latency_us, seconds, errors)
 *   vmnb-crr client --target A --port P --count N --bytes B         (N round trips on one connection, for
 *                                                                     a server with --keepalive: fixed work)
 *
 * Server: one poll() loop, no thread or fork per connection; it answers each read with the same bytes and
 * closes (or keeps the connection with --keepalive). Client: closed loop, each request timed from before
 * connect() to after the full reply and close(), in microseconds. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "inet.h"

#define MAX_FDS 4096

static int serve(int port, int keepalive) {
    int ls = inet_listen_any(port);
    if (ls < 0) {
        perror("vmnb-crr server");
        return 1;
    }
    static struct pollfd fds[MAX_FDS];
    static char buf[65536];
    int n = 1;
    fds[0] = (struct pollfd){.fd = ls, .events = POLLIN};
    for (;;) {
        if (poll(fds, n, -1) < 0 && errno != EINTR) return 1;
        for (int i = n - 1; i >= 1; i--) {
            if (!fds[i].revents) continue;
            ssize_t got = read(fds[i].fd, buf, sizeof buf);
            if (got > 0 && write(fds[i].fd, buf, got) == got && keepalive) continue;
            close(fds[i].fd);
            fds[i] = fds[--n];
        }
        if (fds[0].revents & POLLIN) {
            int c = accept(ls, NULL, NULL);
            if (c >= 0 && n < MAX_FDS) fds[n++] = (struct pollfd){.fd = c, .events = POLLIN};
            else if (c >= 0) close(c);
        }
    }
}

static int client(const char *target, int port, double duration, int size) {
    struct sockaddr_storage a;
    if (inet_target(target, port, &a)) {
        fprintf(stderr, "vmnb-crr: --target must be an IPv4 or IPv6 address\n");
        return 2;
    }
    char *payload = malloc(size), *reply = malloc(65536);
    memset(payload, 'x', size);
    size_t cap = 1 << 16, count = 0;
    double *lat = malloc(cap * sizeof *lat);
    int errors = 0;
    char first_error[160] = "";
    struct timeval tmo = {.tv_sec = 5};
    double start = now_s(), deadline = start + duration;
    while (now_s() < deadline) {
        double t0 = now_s();
        int s = socket(a.ss_family, SOCK_STREAM, 0), ok = 0;
        setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tmo, sizeof tmo);
        setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tmo, sizeof tmo);
        if (connect(s, (struct sockaddr *)&a, inet_len(&a)) == 0 && write(s, payload, size) == size) {
            int got = 0;
            ssize_t r = 1;
            while (got < size && (r = read(s, reply, 65536)) > 0) got += r;
            ok = got >= size;
            if (!ok && r == 0) errno = ECONNRESET;
        }
        int err = errno == EINPROGRESS ? ETIMEDOUT : errno;  /* connect() cut short by SO_SNDTIMEO */
        close(s);
        if (!ok) {
            errors++;
            if (!first_error[0]) snprintf(first_error, sizeof first_error, "%s", strerror(err));
            if (count == 0 && errors >= 3) {
                printf("{\"error\": \"%s\", \"errors\": %d}\n", first_error, errors);
                return 0;
            }
            continue;
        }
        if (count == cap) lat = realloc(lat, (cap *= 2) * sizeof *lat);
        lat[count++] = (now_s() - t0) * 1e6;
    }
    double seconds = now_s() - start;
    printf("{\"latency_us\": [");
    for (size_t i = 0; i < count; i++) printf(i ? ", %.1f" : "%.1f", lat[i]);
    printf("], \"seconds\": %.6f, \"errors\": %d, \"first_error\": \"%s\"}\n", seconds, errors, first_error);
    return 0;
}

static int round_trips(const char *target, int port, long count, int size) {
    struct sockaddr_storage a;
    char *payload = malloc(size), *reply = malloc(65536);
    int s = inet_target(target, port, &a) ? -1 : socket(a.ss_family, SOCK_STREAM, 0), one = 1;
    memset(payload, 'x', size);
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (s < 0 || connect(s, (struct sockaddr *)&a, inet_len(&a))) {
        printf("{\"error\": \"%s\"}\n", strerror(errno));
        return 0;
    }
    double start = now_s();
    for (long i = 0; i < count; i++) {
        int got = 0;
        ssize_t r = 1;
        if (write(s, payload, size) != size) break;
        while (got < size && (r = read(s, reply, 65536)) > 0) got += r;
        if (got < size) {
            printf("{\"error\": \"connection closed before the full reply\"}\n");
            return 0;
        }
    }
    printf("{\"round_trips\": %ld, \"seconds\": %.6f}\n", count, now_s() - start);
    close(s);
    return 0;
}

int main(int argc, char **argv) {
    const char *target = NULL;
    int port = 0, size = 64, keepalive = 0;
    long count = 0;
    double duration = 2.0;
    if (argc < 2) goto usage;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--keepalive")) keepalive = 1;
        else if (i + 1 >= argc) goto usage;
        else if (!strcmp(argv[i], "--port")) port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--target")) target = argv[++i];
        else if (!strcmp(argv[i], "--duration")) duration = atof(argv[++i]);
        else if (!strcmp(argv[i], "--bytes")) size = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--count")) count = atol(argv[++i]);
        else goto usage;
    }
    if (port <= 0 || port > 65535 || size <= 0 || size > 65536) goto usage;
    if (!strcmp(argv[1], "server")) return serve(port, keepalive);
    if (!strcmp(argv[1], "client") && target && count > 0) return round_trips(target, port, count, size);
    if (!strcmp(argv[1], "client") && target) return client(target, port, duration, size);
usage:
    fprintf(stderr, "usage: vmnb-crr server --port P [--keepalive] | client --target A --port P "
                    "[--duration S | --count N] [--bytes B (1-65536)]\n");
    return 2;
}

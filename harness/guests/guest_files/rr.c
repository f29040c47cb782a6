/* vmnb-rr: request-response ping-pong over TCP or UDP, IPv4 or IPv6, for the rr kind where sockperf cannot go
 * (sockperf 3.7, Debian 12's and 13's, takes IPv4 addresses only). It keeps sockperf's ping-pong model so the
 * two tools' rows mean the same: one message in flight, its size --bytes, timed from send to full reply.
 *
 *   vmnb-rr server --port P                                  (TCP and UDP echo on P, both families: echo.h)
 *   vmnb-rr client --target A --port P --proto tcp|udp --duration S --bytes N [--rate R] [--warmup W]
 *
 * Closed loop (no --rate): the next request leaves when the reply arrives. Open loop (--rate R): request i is
 * due at start + i/R and leaves then, or when the previous reply arrives if that is later; its latency counts
 * from its due time (a stall charges every request it delayed: no coordinated omission), as the harness reads
 * sockperf's --mps log. Requests due in the first W seconds (default 0.4, sockperf's warm-up) are not counted.
 * UDP: each datagram carries its sequence number; a reply not back within 1 s (or 1 s after the run's end) is
 * lost and the next request goes; late replies to earlier requests are discarded. TCP: one connection; an error ends the run.
 * Prints JSON: latency_us (counted requests), seconds (after the warm-up), sent, lost, first_error. */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "clock.h"
#include "echo.h"
#include "inet.h"

#define UDP_REPLY_WAIT_S 1.0

/* Waits for the reply to request `seq` until `limit`: 1 when it came, 0 when the time ran out, -1 on error. */
static int await_reply(int s, int tcp, uint64_t seq, int size, char *buf, double limit) {
    int have = 0;
    for (;;) {
        double left = limit - now_s();
        if (left <= 0) return 0;
        struct pollfd p = {.fd = s, .events = POLLIN};
        int ready = poll(&p, 1, (int)(left * 1000) + 1);
        if (ready < 0 && errno == EINTR) continue;
        if (ready <= 0) continue;
        ssize_t got = recv(s, buf + (tcp ? have : 0), tcp ? size - have : size, MSG_DONTWAIT);
        if (got < 0 && (errno == EAGAIN || (!tcp && errno == ECONNREFUSED))) continue;
        if (got < 0) return -1;
        if (got == 0 && tcp) {
            errno = ECONNRESET;
            return -1;
        }
        if (tcp) {
            have += got;
            if (have == size) return 1;
        } else if (got >= (ssize_t)sizeof seq) {
            uint64_t echoed;
            memcpy(&echoed, buf, sizeof echoed);
            if (echoed == seq) return 1;  /* else a late reply to an earlier, already lost request */
        }
    }
}

static int client(const char *target, int port, int tcp, double duration, int size, double rate, double warmup) {
    struct sockaddr_storage to;
    if (inet_target(target, port, &to) < 0) {
        fprintf(stderr, "vmnb-rr: --target must be an IPv4 or IPv6 address\n");
        return 2;
    }
    int s = socket(to.ss_family, tcp ? SOCK_STREAM : SOCK_DGRAM, 0), one = 1;
    struct timeval connect_limit = {.tv_sec = 5};
    if (s >= 0) setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &connect_limit, sizeof connect_limit);
    if (s < 0 || connect(s, (struct sockaddr *)&to, inet_len(&to))) {
        printf("{\"error\": \"%s\"}\n", strerror(errno == EINPROGRESS ? ETIMEDOUT : errno));
        return 0;
    }
    if (tcp) setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char *msg = calloc(1, size), *buf = malloc(size);
    size_t cap = 1 << 16, counted = 0;
    double *lat = malloc(cap * sizeof *lat);
    long sent = 0, lost = 0;
    char first_error[160] = "";
    double start = now_s(), counted_from = start + warmup, deadline = start + duration;
    for (uint64_t seq = 0;; seq++) {
        double due = rate > 0 ? start + seq / rate : now_s();
        if (due >= deadline) break;
        while (now_s() < due) {
            double left = due - now_s();
            struct timespec ts = {.tv_sec = (time_t)left, .tv_nsec = (long)((left - (time_t)left) * 1e9)};
            nanosleep(&ts, NULL);
        }
        memcpy(msg, &seq, sizeof seq);
        double sent_at = now_s();
        if (send(s, msg, size, MSG_NOSIGNAL) != size) {
            snprintf(first_error, sizeof first_error, "%s", strerror(errno));
            break;
        }
        sent++;
        double limit = tcp ? deadline + 5.0 : sent_at + UDP_REPLY_WAIT_S;
        if (limit > deadline + UDP_REPLY_WAIT_S) limit = deadline + UDP_REPLY_WAIT_S;  /* a run ends on time */
        int answered = await_reply(s, tcp, seq, size, buf, limit);
        double back = now_s();
        if (answered <= 0) {
            if (!first_error[0])
                snprintf(first_error, sizeof first_error, "%s",
                         answered < 0 ? strerror(errno) : tcp ? "no reply within 5 s of the end" : "no reply within 1 s");
            if (tcp) break;
            if (due >= counted_from) lost++;
            continue;
        }
        if (due < counted_from) continue;
        if (counted == cap) lat = realloc(lat, (cap *= 2) * sizeof *lat);
        lat[counted++] = (back - (rate > 0 ? due : sent_at)) * 1e6;
    }
    double seconds = now_s() - counted_from;
    printf("{\"latency_us\": [");
    for (size_t i = 0; i < counted; i++) printf(i ? ",%.1f" : "%.1f", lat[i]);
    printf("], \"seconds\": %.6f, \"sent\": %ld, \"lost\": %ld, \"first_error\": \"%s\"}\n",
           seconds > 0 ? seconds : 0.0, sent, lost, first_error);
    close(s);
    return 0;
}

int main(int argc, char **argv) {
    const char *target = NULL, *proto = "tcp";
    int port = 0, size = 64;
    double duration = 3, rate = 0, warmup = 0.4;
    if (argc < 2) goto usage;
    for (int i = 2; i < argc; i++) {
        if (i + 1 >= argc) goto usage;
        if (!strcmp(argv[i], "--port")) port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--target")) target = argv[++i];
        else if (!strcmp(argv[i], "--proto")) proto = argv[++i];
        else if (!strcmp(argv[i], "--duration")) duration = atof(argv[++i]);
        else if (!strcmp(argv[i], "--bytes")) size = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rate")) rate = atof(argv[++i]);
        else if (!strcmp(argv[i], "--warmup")) warmup = atof(argv[++i]);
        else goto usage;
    }
    if (port <= 0 || port > 65535 || size < 8 || size > 65000 || rate < 0 || warmup < 0 || warmup >= duration)
        goto usage;
    if (!strcmp(argv[1], "server")) return echo_serve("vmnb-rr server", port);
    if (!strcmp(argv[1], "client") && target && (!strcmp(proto, "tcp") || !strcmp(proto, "udp")))
        return client(target, port, !strcmp(proto, "tcp"), duration, size, rate, warmup);
usage:
    fprintf(stderr, "usage: vmnb-rr server --port P | client --target A --port P --proto tcp|udp --duration S "
                    "--bytes N (8-65000) [--rate R] [--warmup W (< S)]\n");
    return 2;
}

/* vmnb-probe: a paced request-response probe that measures how long a path stops, for live migration.
 *
 *   vmnb-probe server --port P                       (TCP and UDP echo on P, both families)
 *   vmnb-probe client --target A --port P --proto tcp|udp --interval-ms I --duration S --stall-s T
 *
 * The client sends a 64-byte request every I ms (paced by the clock, never waiting for the previous answer
 * longer than the pace allows) and records when each answer arrives. TCP: one connection for the whole run, a
 * request only after the answer to the previous one (so a stalled path shows as a gap, not a queue); UDP: one
 * datagram per tick carrying its sequence number, answers counted by number. At the end (S seconds, or T
 * seconds without any answer) it prints JSON: fate (survived / stalled / reset / never connected), answers, sent, the largest gap
 * between consecutive answers and when it began, the last answer's time, the error that ended a TCP run. */
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
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "echo.h"
#include "inet.h"

#define MSG 64

struct record {
    double t0, last, gap, gap_at;
    long answers, sent;
};

static void answered(struct record *r, double t) {
    double since = r->answers ? t - r->last : 0;
    if (r->answers && since > r->gap) {
        r->gap = since;
        r->gap_at = r->last - r->t0;
    }
    r->last = t;
    r->answers++;
}

static void report(const char *proto, const char *fate, struct record *r, const char *error) {
    printf("{\"proto\": \"%s\", \"fate\": \"%s\", \"answers\": %ld, \"sent\": %ld, \"largest_gap_s\": %.6f, "
           "\"gap_at_s\": %.6f, \"last_answer_s\": %.6f, \"seconds\": %.6f, \"error\": \"%s\"}\n",
           proto, fate, r->answers, r->sent, r->gap, r->gap_at, r->answers ? r->last - r->t0 : -1.0,
           now_s() - r->t0, error);
}

static int client(const char *target, int port, int tcp, double interval, double duration, double stall) {
    struct sockaddr_storage to;
    if (inet_target(target, port, &to) < 0) {
        fprintf(stderr, "vmnb-probe: --target must be an IPv4 or IPv6 address\n");
        return 2;
    }
    int s = socket(to.ss_family, tcp ? SOCK_STREAM : SOCK_DGRAM, 0);
    struct record r = {.t0 = now_s()};
    struct timeval limit = {.tv_sec = (time_t)stall, .tv_usec = (long)((stall - (time_t)stall) * 1e6)};
    if (s >= 0) setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit); /* bounds a TCP connect */
    if (s < 0 || connect(s, (struct sockaddr *)&to, inet_len(&to))) {
        report(tcp ? "tcp" : "udp", "never connected", &r, strerror(errno == EINPROGRESS ? ETIMEDOUT : errno));
        return 0;
    }
    int one = 1;
    if (tcp) setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    r.last = r.t0;
    char msg[MSG] = {0}, buf[MSG];
    size_t have = 0;
    int waiting = 0;
    double next = r.t0;
    for (;;) {
        double t = now_s();
        if (t - r.t0 >= duration) break;
        if (t - r.last >= stall) {
            report(tcp ? "tcp" : "udp", "stalled", &r, "");
            return 0;
        }
        if (t >= next && !(tcp && waiting)) {
            uint64_t seq = (uint64_t)r.sent;
            memcpy(msg, &seq, sizeof seq);
            if (send(s, msg, MSG, MSG_NOSIGNAL) == MSG) r.sent++, waiting = 1, have = 0;
            else if (tcp) {
                report("tcp", "reset", &r, strerror(errno));
                return 0;
            }
            while (next <= t) next += interval;
        }
        double wait_s = (tcp && waiting) ? 0.05 : next - now_s();
        struct pollfd p = {.fd = s, .events = POLLIN};
        if (poll(&p, 1, wait_s > 0 ? (int)(wait_s * 1000) + 1 : 0) <= 0) continue;
        ssize_t got = recv(s, buf + (tcp ? have : 0), tcp ? MSG - have : MSG, MSG_DONTWAIT);
        if (got < 0 && (errno == EAGAIN || errno == ECONNREFUSED)) continue;  /* UDP: an ICMP error, keep going */
        if (got <= 0 && tcp) {
            report("tcp", "reset", &r, got == 0 ? "closed by the other end" : strerror(errno));
            return 0;
        }
        if (got <= 0) continue;
        if (tcp) {
            have += got;
            if (have < MSG) continue;
            waiting = 0, have = 0;
        }
        answered(&r, now_s());
    }
    report(tcp ? "tcp" : "udp", "survived", &r, "");
    return 0;
}

int main(int argc, char **argv) {
    const char *target = NULL, *proto = "tcp";
    int port = 0;
    double interval = 0.005, duration = 10, stall = 10;
    if (argc < 2) goto usage;
    for (int i = 2; i < argc; i++) {
        if (i + 1 >= argc) goto usage;
        if (!strcmp(argv[i], "--port")) port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--target")) target = argv[++i];
        else if (!strcmp(argv[i], "--proto")) proto = argv[++i];
        else if (!strcmp(argv[i], "--interval-ms")) interval = atof(argv[++i]) / 1000;
        else if (!strcmp(argv[i], "--duration")) duration = atof(argv[++i]);
        else if (!strcmp(argv[i], "--stall-s")) stall = atof(argv[++i]);
        else goto usage;
    }
    if (port <= 0 || port > 65535 || interval <= 0) goto usage;
    if (!strcmp(argv[1], "server")) return echo_serve("vmnb-probe server", port);
    if (!strcmp(argv[1], "client") && target && (!strcmp(proto, "tcp") || !strcmp(proto, "udp")))
        return client(target, port, !strcmp(proto, "tcp"), interval, duration, stall);
usage:
    fprintf(stderr, "usage: vmnb-probe server --port P | client --target A --port P --proto tcp|udp "
                    "[--interval-ms I] [--duration S] [--stall-s T]\n");
    return 2;
}

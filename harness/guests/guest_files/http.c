/* vmnb-http: an HTTP/1.1 server and an open-loop (fixed offered rate) client, in C so that the same tool runs
 * on the host, in every pod namespace and inside the QEMU guest's initramfs (which has no Python).
 *
 *   vmnb-http server --port P [--stall-after S --stall-ms M]
 *   vmnb-http client --target A --port P --rate R --duration S --connections C --bytes N [--host H] [--grace G]
 *
 * Server: one poll() loop, keep-alive connections; each request (any method, a Content-Length body) gets
 * `200 OK` with a body as long as the request's (an echo of its size, as fortio's echo server answers a
 * payload). --stall-after/--stall-ms plant a pause: the first request after S seconds of serving blocks the
 * whole server for M ms (the coordinated-omission test).
 *
 * Client: open loop, the way fortio and wrk2 schedule: request k is due at t0 + k/R, whatever happened before;
 * it goes out on the first idle one of C keep-alive connections, and its latency is measured from the time it
 * was due, not from when a connection became free: a stall shows as latency of every request that waited
 * behind it, not as fewer requests (coordinated omission, Gil Tene). A request not answered within G seconds
 * (default 10) after the last is due counts as an error. Prints JSON: offered_rps, scheduled, completed,
 * errors, first_error, seconds (t0 to the last answer), latency_us (one per completed request). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "openloop.h"

#define MAX_FDS 4096
#define BUF 262144

/* Length of the header block (up to and including the blank line) and its Content-Length; 0 if incomplete. */
static size_t header_end(const char *buf, size_t len, long *content_length) {
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    if (!end) return 0;
    *content_length = 0;
    for (const char *p = buf; p && p < end; p = memmem(p, end - p, "\r\n", 2)) {
        if (p[0] == '\r') p += 2;
        if (strncasecmp(p, "content-length:", 15) == 0) *content_length = strtol(p + 15, NULL, 10);
    }
    return end - buf + 4;
}

struct conn {
    int fd;
    size_t have;
    char *buf;
};

static int serve(int port, double stall_after, int stall_ms) {
    int ls = listen_on("vmnb-http", port), one = 1;
    if (ls < 0) return 1;
    static struct pollfd fds[MAX_FDS];
    static struct conn conns[MAX_FDS];
    static char body[BUF];
    memset(body, 'x', sizeof body);
    double first = 0;
    int stalled = 0, n = 1;
    fds[0] = (struct pollfd){.fd = ls, .events = POLLIN};
    for (;;) {
        if (poll(fds, n, -1) < 0 && errno != EINTR) return 1;
        for (int i = n - 1; i >= 1; i--) {
            if (!fds[i].revents) continue;
            struct conn *c = &conns[i];
            ssize_t got = read(c->fd, c->buf + c->have, BUF - c->have);
            int keep = got > 0;
            if (keep) c->have += got;
            for (;;) {
                long clen;
                size_t hlen = header_end(c->buf, c->have, &clen);
                if (!hlen || c->have < hlen + clen) break;
                if (!first) first = now_s();
                if (stall_ms && !stalled && now_s() - first >= stall_after) {
                    stalled = 1;
                    usleep(stall_ms * 1000);
                }
                char head[160];
                long reply = clen < BUF ? clen : BUF;
                int hl = snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                                  "Content-Length: %ld\r\n\r\n", reply);
                if (write(c->fd, head, hl) != hl || (reply && write(c->fd, body, reply) != reply)) keep = 0;
                memmove(c->buf, c->buf + hlen + clen, c->have - hlen - clen);
                c->have -= hlen + clen;
            }
            if (c->have == BUF) keep = 0; /* a header block larger than the buffer: not a client of ours */
            if (keep) continue;
            close(c->fd);
            free(c->buf);
            fds[i] = fds[--n];
            conns[i] = conns[n];
        }
        if (fds[0].revents & POLLIN) {
            int c = accept(ls, NULL, NULL);
            if (c >= 0 && n < MAX_FDS) {
                setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                conns[n] = (struct conn){.fd = c, .have = 0, .buf = malloc(BUF)};
                fds[n++] = (struct pollfd){.fd = c, .events = POLLIN};
            } else if (c >= 0) close(c);
        }
    }
}

struct client_conn {
    int fd;
    int connected;
    double due; /* intended send time of the request in flight; 0 when idle */
    size_t have;
    char buf[BUF];
};

static int open_conn(struct client_conn *c, struct sockaddr_storage *to) {
    c->due = 0;
    c->have = 0;
    c->fd = start_connect(to, &c->connected);
    return c->fd < 0 ? -1 : 0;
}

static int client(const char *target, int port, double rate, double duration, int nconn, long bytes,
                  const char *host, double grace) {
    struct sockaddr_storage to;
    if (client_target("vmnb-http", target, port, &to)) return 2;
    long scheduled = (long)(rate * duration);
    double *lat = malloc(sizeof(double) * (scheduled + 1));
    struct client_conn *conns = calloc(nconn, sizeof *conns);
    struct pollfd *fds = calloc(nconn, sizeof *fds);
    char *request = malloc(bytes + 512);
    int hl = snprintf(request, 512, "POST /echo HTTP/1.1\r\nHost: %s\r\nContent-Type: application/octet-stream\r\n"
                      "Content-Length: %ld\r\n\r\n", host, bytes);
    memset(request + hl, 'y', bytes);
    long reqlen = hl + bytes, issued = 0, completed = 0, lost = 0;
    for (int i = 0; i < nconn; i++)
        if (open_conn(&conns[i], &to)) note_error(NULL, strerror(errno));
    double t0 = now_s() + 0.05, last = t0, deadline = t0 + duration + grace;
    while (completed + lost < scheduled) {
        double now = now_s();
        if (now > deadline) break;
        /* requests now due, oldest first, onto idle connections */
        for (int i = 0; i < nconn && issued < scheduled && t0 + issued / rate <= now; i++) {
            struct client_conn *c = &conns[i];
            if (!c->connected || c->due) continue;
            c->due = t0 + issued / rate;
            ssize_t w = send(c->fd, request, reqlen, MSG_NOSIGNAL);
            if (w != reqlen) { /* a proxy closed an idle keep-alive connection: reopen, count the request lost */
                note_error(&lost, w < 0 ? strerror(errno) : "short write");
                close(c->fd);
                open_conn(c, &to);
            }
            issued++;
        }
        double next_due = issued < scheduled ? t0 + issued / rate : deadline;
        int idle = 0;
        for (int i = 0; i < nconn; i++) {
            fds[i] = (struct pollfd){.fd = conns[i].fd, .events = conns[i].connected ? POLLIN : POLLOUT};
            idle |= conns[i].connected && !conns[i].due;
        }
        /* wake for the next due request only when a connection could take it */
        if (poll_until(fds, nconn, idle ? next_due : deadline) < 0) break;
        for (int i = 0; i < nconn; i++) {
            struct client_conn *c = &conns[i];
            if (!fds[i].revents) continue;
            if (!c->connected) {
                if (finish_connect(c->fd)) open_conn(c, &to);
                else c->connected = 1;
                continue;
            }
            ssize_t got = read(c->fd, c->buf + c->have, BUF - c->have);
            if (got <= 0) {
                if (c->due) note_error(&lost, got == 0 ? "connection closed" : strerror(errno));
                close(c->fd);
                open_conn(c, &to);
                continue;
            }
            c->have += got;
            long clen;
            size_t hlen = header_end(c->buf, c->have, &clen);
            if (!hlen || c->have < hlen + clen || !c->due) continue;
            if (strncmp(c->buf, "HTTP/1.1 200", 12) != 0) {
                char what[64];
                snprintf(what, sizeof what, "HTTP status %.3s", c->buf + 9);
                note_error(&lost, what);
            } else {
                last = now_s();
                lat[completed++] = (last - c->due) * 1e6;
            }
            c->due = 0;
            memmove(c->buf, c->buf + hlen + clen, c->have - hlen - clen);
            c->have -= hlen + clen;
        }
    }
    print_report(rate, scheduled, completed, lost, grace, last - t0, lat);
    return 0;
}

int main(int argc, char **argv) {
    struct options o = {.target = "127.0.0.1", .host = "server", .port = 8000, .connections = 16, .bytes = 1024,
                        .rate = 1000, .duration = 10, .grace = 10};
    int bad = parse_options("vmnb-http", argc, argv, &o, MAX_FDS, BUF - 512);
    if (bad) return bad;
    if (o.grpc) {
        fprintf(stderr, "vmnb-http: gRPC needs HTTP/2: use vmnb-h2\n");
        return 2;
    }
    if (!strcmp(o.mode, "server")) return serve(o.port, o.stall_after, o.stall_ms);
    return client(o.target, o.port, o.rate, o.duration, o.connections, o.bytes, o.host, o.grace);
}

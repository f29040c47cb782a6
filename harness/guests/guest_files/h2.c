/* vmnb-h2: an HTTP/2 (cleartext, prior knowledge, as Envoy and gRPC speak h2c) and gRPC echo server and
 * open-loop client, on Debian's libnghttp2 linked statically, so the same binary runs on the host, in every pod
 * namespace and inside the QEMU guest's initramfs.
 *
 *   vmnb-h2 server --port P [--stall-after S --stall-ms M]
 *   vmnb-h2 client --target A --port P --rate R --duration S --connections C --bytes N [--grpc 1] [--host H]
 *                  [--grace G]
 *
 * Requests: HTTP/2 `POST /echo` with an N-byte body, answered `200` with as many bytes; with --grpc 1, a unary
 * gRPC call `/vmnb.Echo/Echo` (content-type application/grpc, te: trailers) whose message is the protobuf
 * `message Echo { bytes payload = 1; }` with an N-byte payload, answered with a message of the same payload size
 * and the trailer `grpc-status: 0` (the wire format of grpc/grpc doc/PROTOCOL-HTTP2.md; tests/test_http.py
 * checks it against grpcio's own client and server). The server answers either, by content-type.
 *
 * Client: open loop as vmnb-http's (guest_files/http.c): request k is due at t0 + k/R, whatever happened before;
 * it is opened as a new stream on the connected one of C connections with the fewest streams in flight (HTTP/2
 * multiplexes, so no request waits for an idle connection), and its latency runs from its due time to the end
 * of its response. A stream reset, a status other than 200, a gRPC status other than 0, a connection lost with the
 * stream open, or no answer within G seconds (default 10) after the last request was due is an error. Prints the
 * same JSON as vmnb-http: offered_rps, scheduled, completed, errors, first_error, seconds, latency_us. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "openloop.h"

#define MAX_FDS 4096
#define READ_BUF 65536
#define MAX_BYTES 200000
#define WINDOW (1 << 24) /* flow-control windows large enough that a 200 KB body never waits for WINDOW_UPDATE */

#define NV(n, v) {(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE}

/* A body being sent: `head` (gRPC's length prefix and the protobuf field header) then filler up to `total`. */
struct body {
    uint8_t head[16];
    size_t headlen, total, sent;
    int trailer; /* gRPC: end with the grpc-status trailer instead of END_STREAM on the last DATA frame */
};

/* The gRPC message for an n-byte payload: 5-byte prefix (uncompressed, big-endian length), then field 1 as
 * length-delimited bytes (tag 0x0a, varint length); proto3 encodes an empty payload as an empty message. */
static void grpc_body(struct body *b, size_t n) {
    uint8_t field[12];
    size_t fl = 0;
    if (n) {
        field[fl++] = 0x0a;
        for (size_t v = n; ; v >>= 7) {
            field[fl++] = (v & 0x7f) | (v > 0x7f ? 0x80 : 0);
            if (v <= 0x7f) break;
        }
    }
    size_t msg = fl + n;
    b->head[0] = 0;
    for (int i = 0; i < 4; i++) b->head[1 + i] = (msg >> (24 - 8 * i)) & 0xff;
    memcpy(b->head + 5, field, fl);
    b->headlen = 5 + fl;
    b->total = 5 + msg;
    b->sent = 0;
}

/* The payload size of a gRPC message whose first bytes are `p` (`len` of them); -1 if it is not ours. */
static long grpc_payload(const uint8_t *p, size_t len) {
    if (len < 5 || p[0]) return -1;
    size_t msg = (size_t)p[1] << 24 | p[2] << 16 | p[3] << 8 | p[4];
    if (msg == 0) return 0;
    if (len < 7 || p[5] != 0x0a) return -1;
    long n = 0;
    for (size_t i = 6, shift = 0; i < len && shift < 35; i++, shift += 7) {
        n |= (long)(p[i] & 0x7f) << shift;
        if (!(p[i] & 0x80)) return n;
    }
    return -1;
}

static ssize_t body_read(nghttp2_session *s, int32_t stream_id, uint8_t *buf, size_t length, uint32_t *flags,
                         nghttp2_data_source *source, void *user_data) {
    struct body *b = source->ptr;
    size_t n = b->total - b->sent < length ? b->total - b->sent : length, done = 0;
    while (done < n && b->sent < b->headlen) buf[done++] = b->head[b->sent++];
    memset(buf + done, 'x', n - done);
    b->sent += n - done;
    if (b->sent == b->total) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (b->trailer) {
            nghttp2_nv trailer[] = {NV("grpc-status", "0")};
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
            if (nghttp2_submit_trailer(s, stream_id, trailer, 1)) return NGHTTP2_ERR_CALLBACK_FAILURE;
        }
    }
    return n;
}

/* nghttp2's output onto a non-blocking socket; nghttp2 keeps what the socket does not take. */
static ssize_t send_cb(nghttp2_session *s, const uint8_t *data, size_t length, int flags, void *user_data) {
    int fd = *(int *)user_data;
    ssize_t w = send(fd, data, length, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0) return errno == EAGAIN || errno == EWOULDBLOCK ? NGHTTP2_ERR_WOULDBLOCK : NGHTTP2_ERR_CALLBACK_FAILURE;
    return w;
}

static void start_session(nghttp2_session *s) {
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 1000},
                                   {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, WINDOW}};
    nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, iv, 2);
    nghttp2_session_set_local_window_size(s, NGHTTP2_FLAG_NONE, 0, WINDOW);
}

/* Reads what the socket has into the session; 0 when the connection is still good. */
static int pump_in(int fd, nghttp2_session *s) {
    static uint8_t buf[READ_BUF];
    ssize_t got = read(fd, buf, sizeof buf);
    if (got == 0 || (got < 0 && errno != EAGAIN)) return -1;
    if (got > 0 && nghttp2_session_mem_recv(s, buf, got) < 0) return -1;
    return 0;
}

/* ---- server ---- */

struct server_stream {
    long got;
    int grpc;
    uint8_t first[16]; /* the request body's first bytes: the gRPC prefix and field header */
    struct body reply;
};

static double serving_since, stall_after;
static int stall_ms, stalled;

static int srv_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *u) {
    if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST)
        nghttp2_session_set_stream_user_data(s, f->hd.stream_id, calloc(1, sizeof(struct server_stream)));
    return 0;
}

static int srv_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t namelen,
                      const uint8_t *value, size_t valuelen, uint8_t flags, void *u) {
    struct server_stream *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    if (st && namelen == 12 && !memcmp(name, "content-type", 12) && valuelen >= 16 &&
        !memcmp(value, "application/grpc", 16))
        st->grpc = 1;
    return 0;
}

static int srv_data(nghttp2_session *s, uint8_t flags, int32_t stream_id, const uint8_t *data, size_t len, void *u) {
    struct server_stream *st = nghttp2_session_get_stream_user_data(s, stream_id);
    if (!st) return 0;
    for (size_t i = 0; i < len && st->got + i < (long)sizeof st->first; i++) st->first[st->got + i] = data[i];
    st->got += len;
    return 0;
}

static int srv_frame(nghttp2_session *s, const nghttp2_frame *f, void *u) {
    if ((f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) || !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    struct server_stream *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    if (!st) return 0;
    if (!serving_since) serving_since = now_s();
    if (stall_ms && !stalled && now_s() - serving_since >= stall_after) {
        stalled = 1;
        usleep(stall_ms * 1000);
    }
    nghttp2_data_provider data = {.source.ptr = &st->reply, .read_callback = body_read};
    if (st->grpc) {
        long n = grpc_payload(st->first, st->got < (long)sizeof st->first ? st->got : sizeof st->first);
        if (n < 0) {
            nghttp2_nv nva[] = {NV(":status", "200"), NV("content-type", "application/grpc"),
                                NV("grpc-status", "3"), NV("grpc-message", "not a vmnb.Echo message")};
            return nghttp2_submit_response(s, f->hd.stream_id, nva, 4, NULL);
        }
        grpc_body(&st->reply, n);
        st->reply.trailer = 1;
        nghttp2_nv nva[] = {NV(":status", "200"), NV("content-type", "application/grpc")};
        return nghttp2_submit_response(s, f->hd.stream_id, nva, 2, &data);
    }
    char length[24];
    snprintf(length, sizeof length, "%ld", st->got);
    st->reply = (struct body){.total = st->got};
    nghttp2_nv nva[] = {NV(":status", "200"), NV("content-type", "application/octet-stream"),
                        NV("content-length", length)};
    return nghttp2_submit_response(s, f->hd.stream_id, nva, 3, &data);
}

static int srv_close(nghttp2_session *s, int32_t stream_id, uint32_t error_code, void *u) {
    free(nghttp2_session_get_stream_user_data(s, stream_id));
    return 0;
}

static int serve(int port) {
    int ls = listen_on("vmnb-h2", port), one = 1;
    if (ls < 0) return 1;
    nghttp2_session_callbacks *cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_send_callback(cbs, send_cb);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, srv_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, srv_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, srv_data);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, srv_frame);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, srv_close);
    static struct pollfd fds[MAX_FDS];
    static nghttp2_session *sessions[MAX_FDS];
    static int sock[MAX_FDS];
    int n = 1;
    fds[0] = (struct pollfd){.fd = ls, .events = POLLIN};
    for (;;) {
        for (int i = 1; i < n; i++)
            fds[i].events = POLLIN | (nghttp2_session_want_write(sessions[i]) ? POLLOUT : 0);
        if (poll(fds, n, -1) < 0 && errno != EINTR) return 1;
        for (int i = n - 1; i >= 1; i--) {
            int bad = 0;
            if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) bad = pump_in(sock[i], sessions[i]);
            if (!bad) bad = nghttp2_session_send(sessions[i]) != 0;
            if (!bad && (nghttp2_session_want_read(sessions[i]) || nghttp2_session_want_write(sessions[i]))) continue;
            nghttp2_session_del(sessions[i]);
            close(sock[i]);
            n--;
            fds[i] = fds[n];
            sessions[i] = sessions[n];
            sock[i] = sock[n];
            if (i < n) nghttp2_session_set_user_data(sessions[i], &sock[i]); /* send_cb's fd moved with it */
        }
        if (fds[0].revents & POLLIN) {
            int c = accept4(ls, NULL, NULL, SOCK_NONBLOCK);
            if (c >= 0 && n < MAX_FDS) {
                setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                sock[n] = c;
                nghttp2_session_server_new(&sessions[n], cbs, &sock[n]);
                start_session(sessions[n]);
                nghttp2_session_send(sessions[n]);
                fds[n++] = (struct pollfd){.fd = c, .events = POLLIN};
            } else if (c >= 0) close(c);
        }
    }
}

/* ---- client ---- */

struct client_conn {
    int fd;
    int connected;
    int inflight;
    nghttp2_session *s;
};

struct request {
    double due;
    struct client_conn *conn;
    int status, grpc_status, done;
    struct body body;
};

static struct request *requests;
static double *latency;
static long completed, lost;
static double last_answer;
static int grpc;

static int cli_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t namelen,
                      const uint8_t *value, size_t valuelen, uint8_t flags, void *u) {
    struct request *r = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    if (!r) return 0;
    if (namelen == 7 && !memcmp(name, ":status", 7)) r->status = atoi((const char *)value);
    if (namelen == 11 && !memcmp(name, "grpc-status", 11)) r->grpc_status = atoi((const char *)value);
    return 0;
}

static int cli_close(nghttp2_session *s, int32_t stream_id, uint32_t error_code, void *u) {
    struct request *r = nghttp2_session_get_stream_user_data(s, stream_id);
    if (!r || r->done) return 0;
    r->done = 1;
    r->conn->inflight--;
    char what[64];
    if (error_code) snprintf(what, sizeof what, "stream reset: %s", nghttp2_http2_strerror(error_code));
    else if (r->status != 200) snprintf(what, sizeof what, "HTTP status %d", r->status);
    else if (grpc && r->grpc_status) snprintf(what, sizeof what, "gRPC status %d", r->grpc_status);
    else {
        last_answer = now_s();
        latency[completed++] = (last_answer - r->due) * 1e6;
        return 0;
    }
    note_error(&lost, what);
    return 0;
}

static nghttp2_session_callbacks *client_callbacks;

static void connected(struct client_conn *c);

static int open_conn(struct client_conn *c, struct sockaddr_storage *to) {
    int done;
    c->connected = c->inflight = 0;
    c->s = NULL;
    c->fd = start_connect(to, &done);
    if (c->fd >= 0 && done) connected(c);
    return c->fd < 0 ? -1 : 0;
}

static void connected(struct client_conn *c) {
    c->connected = 1;
    nghttp2_session_client_new(&c->s, client_callbacks, &c->fd);
    start_session(c->s);
}

/* The connection broke: every request still open on it is lost; a new one replaces it. */
static void reopen(struct client_conn *c, struct sockaddr_storage *to, long first, long issued, const char *why) {
    for (long k = first; k < issued; k++)
        if (requests[k].conn == c && !requests[k].done) {
            requests[k].done = 1;
            note_error(&lost, why);
        }
    if (c->s) nghttp2_session_del(c->s);
    close(c->fd);
    open_conn(c, to);
}

static int client(const char *target, int port, double rate, double duration, int nconn, long bytes,
                  const char *host, double grace) {
    struct sockaddr_storage to;
    if (client_target("vmnb-h2", target, port, &to)) return 2;
    nghttp2_session_callbacks_new(&client_callbacks);
    nghttp2_session_callbacks_set_send_callback(client_callbacks, send_cb);
    nghttp2_session_callbacks_set_on_header_callback(client_callbacks, cli_header);
    nghttp2_session_callbacks_set_on_stream_close_callback(client_callbacks, cli_close);
    long scheduled = (long)(rate * duration), issued = 0, oldest_open = 0;
    requests = calloc(scheduled + 1, sizeof *requests);
    latency = malloc(sizeof(double) * (scheduled + 1));
    struct client_conn *conns = calloc(nconn, sizeof *conns);
    struct pollfd *fds = calloc(nconn, sizeof *fds);
    char length[24], authority[300];
    snprintf(authority, sizeof authority, "%s:%d", host, port);
    for (int i = 0; i < nconn; i++)
        if (open_conn(&conns[i], &to)) note_error(NULL, strerror(errno));
    double t0 = now_s() + 0.05, deadline = t0 + duration + grace;
    last_answer = t0;
    while (completed + lost < scheduled && now_s() <= deadline) {
        double now = now_s();
        /* requests now due, oldest first, each onto the connected connection with the fewest open streams */
        while (issued < scheduled && t0 + issued / rate <= now) {
            struct client_conn *best = NULL;
            for (int i = 0; i < nconn; i++)
                if (conns[i].connected && (!best || conns[i].inflight < best->inflight)) best = &conns[i];
            if (!best) break;
            struct request *r = &requests[issued];
            r->due = t0 + issued / rate;
            r->conn = best;
            nghttp2_data_provider data = {.source.ptr = &r->body, .read_callback = body_read};
            int32_t id;
            if (grpc) {
                grpc_body(&r->body, bytes);
                nghttp2_nv nva[] = {NV(":method", "POST"), NV(":scheme", "http"), NV(":authority", authority),
                                    NV(":path", "/vmnb.Echo/Echo"), NV("content-type", "application/grpc"),
                                    NV("te", "trailers")};
                id = nghttp2_submit_request(best->s, NULL, nva, 6, &data, r);
            } else {
                r->body = (struct body){.total = bytes};
                snprintf(length, sizeof length, "%ld", bytes);
                nghttp2_nv nva[] = {NV(":method", "POST"), NV(":scheme", "http"), NV(":authority", authority),
                                    NV(":path", "/echo"), NV("content-type", "application/octet-stream"),
                                    NV("content-length", length)};
                id = nghttp2_submit_request(best->s, NULL, nva, 6, &data, r);
            }
            issued++;
            if (id < 0) { /* the session refuses new streams (GOAWAY received): the request is lost */
                r->done = 1;
                note_error(&lost, nghttp2_strerror(id));
            } else best->inflight++;
        }
        while (oldest_open < issued && requests[oldest_open].done) oldest_open++;
        int any_connected = 0;
        for (int i = 0; i < nconn; i++) {
            struct client_conn *c = &conns[i];
            if (c->connected && nghttp2_session_send(c->s)) reopen(c, &to, oldest_open, issued, "send failed");
            fds[i] = (struct pollfd){.fd = c->fd, .events = POLLOUT};
            if (c->connected) {
                fds[i].events = POLLIN | (nghttp2_session_want_write(c->s) ? POLLOUT : 0);
                any_connected = 1;
            }
        }
        double next_due = issued < scheduled && any_connected ? t0 + issued / rate : deadline;
        if (poll_until(fds, nconn, next_due) < 0) break;
        for (int i = 0; i < nconn; i++) {
            struct client_conn *c = &conns[i];
            if (!fds[i].revents) continue;
            if (!c->connected) {
                if (finish_connect(c->fd)) open_conn(c, &to);
                else connected(c);
                continue;
            }
            if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) {
                if (pump_in(c->fd, c->s)) reopen(c, &to, oldest_open, issued, "connection closed");
                else if (!nghttp2_session_want_read(c->s) && !nghttp2_session_want_write(c->s))
                    reopen(c, &to, oldest_open, issued, "connection closed by the server (GOAWAY)");
            }
        }
    }
    print_report(rate, scheduled, completed, lost, grace, last_answer - t0, latency);
    return 0;
}

int main(int argc, char **argv) {
    struct options o = {.target = "127.0.0.1", .host = "server", .port = 8001, .connections = 16, .bytes = 1024,
                        .rate = 1000, .duration = 10, .grace = 10};
    int bad = parse_options("vmnb-h2", argc, argv, &o, MAX_FDS, MAX_BYTES);
    if (bad) return bad;
    grpc = o.grpc;
    stall_after = o.stall_after;
    stall_ms = o.stall_ms;
    if (!strcmp(o.mode, "server")) return serve(o.port);
    return client(o.target, o.port, o.rate, o.duration, o.connections, o.bytes, o.host, o.grace);
}

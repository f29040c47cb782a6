/*
 * vmnb-relay: the userspace TCP relay of the nat-proxy and tproxy strategies, in C. Same listeners, same
 * behaviour and same output as the Python reference harness/pod/proxy.py (read its docstring first):
 *
 *   vmnb-relay [--workers N] [--connect-timeout SECONDS] LISTENER [LISTENER ...]
 *     static:ADDR:PORT=TO_ADDR:TO_PORT | original-dst:ADDR:PORT | tproxy:ADDR:PORT
 *
 * One epoll loop per process (level-triggered, non-blocking sockets); bytes move with splice(2) through a
 * pipe per direction taken from a pool of empty pipes, so no payload byte is copied into this process; EOF
 * becomes shutdown(SHUT_WR) on the other side; an error or reset on one side resets the other (SO_LINGER 0
 * then close); an upstream connect still pending after the timeout resets the client. --workers N forks
 * N-1 more processes, each with its own SO_REUSEPORT listeners. SIGTERM/SIGINT (via signalfd) end the loop:
 * open connections are reset and the counters printed.
 *
 * Why C: the Python event loop spends ~150 us of CPU per relayed connection (issue 17's profile), as much as
 * Envoy; this is the relay an operator could deploy, built by the harness with the machine's gcc like
 * vmnb-crr. Connection handling follows the 2018 research's nat-proxy (kubevirt/kubevirt.github.io
 * _posts/2018-06-03-Research-run-VMs-with-istio-service-mesh.markdown: getOriginalDst, a copy per direction).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SO_ORIGINAL_DST_OPT 80 /* linux/netfilter_ipv4.h */
#define PIPE_BYTES (1 << 20)
#define POOLED_PIPES 256
#define ACCEPTS_PER_WAKE 64
#define MAX_LISTENERS 32
#define MAX_EVENTS 256

enum mode { STATIC, ORIGINAL_DST, TPROXY };
static const char *mode_names[] = {"static", "original-dst", "tproxy"};
enum kind { K_LISTENER, K_CLIENT, K_UPSTREAM, K_SIGNAL };

struct tag {
    enum kind kind;
    void *ptr;
};

struct listener {
    struct tag tag;
    enum mode mode;
    struct sockaddr_in addr, to;
    int fd;
    const char *spec;
};

struct flow {
    int src, dst, pipe_r, pipe_w;
    size_t pending;
    int eof, done;
    unsigned long long moved;
};

struct conn {
    struct tag tc, tu;
    int client, upstream, connected, closed, queued;
    struct flow out, back;
    uint32_t mask_c, mask_u;
    double deadline;
    enum mode mode;
    char peer[32];
    struct conn *next; /* connect-timeout queue, or the list of closed connections to free */
    struct conn *prev, *next_live; /* every live connection */
};

static int epfd;
static double connect_timeout = 5.0;
static struct listener listeners[MAX_LISTENERS];
static int n_listeners;
static int pool[POOLED_PIPES][2], pooled;
static unsigned long long accepted, open_conns, bytes_in, bytes_out;
static struct conn *queue_head, *queue_tail, *graveyard, *live;
static const char *prefix = "";

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what) {
    fprintf(stdout, "%s%s: %s\n", prefix, what, strerror(errno));
    exit(1);
}

static int parse_addr(const char *text, struct sockaddr_in *out) {
    char host[64];
    const char *colon = strrchr(text, ':');
    if (!colon || colon - text >= (long)sizeof(host)) return -1;
    memcpy(host, text, colon - text);
    host[colon - text] = 0;
    memset(out, 0, sizeof(*out));
    out->sin_family = AF_INET;
    out->sin_port = htons(atoi(colon + 1));
    return inet_pton(AF_INET, host, &out->sin_addr) == 1 ? 0 : -1;
}

static int parse_listener(const char *spec, struct listener *l) {
    char buf[160];
    snprintf(buf, sizeof(buf), "%s", spec);
    char *rest = strchr(buf, ':');
    if (!rest) return -1;
    *rest++ = 0;
    l->spec = spec;
    if (!strcmp(buf, "static")) {
        char *eq = strchr(rest, '=');
        if (!eq) return -1;
        *eq++ = 0;
        l->mode = STATIC;
        if (parse_addr(eq, &l->to)) return -1;
    } else if (!strcmp(buf, "original-dst")) {
        l->mode = ORIGINAL_DST;
    } else if (!strcmp(buf, "tproxy")) {
        l->mode = TPROXY;
    } else {
        return -1;
    }
    return parse_addr(rest, &l->addr);
}

static void watch(int fd, uint32_t events, struct tag *tag, int op) {
    struct epoll_event ev = {.events = events, .data.ptr = tag};
    if (epoll_ctl(epfd, op, fd, &ev) < 0 && op != EPOLL_CTL_DEL) die("epoll_ctl");
}

static void take_pipe(int p[2]) {
    if (pooled) {
        pooled--;
        p[0] = pool[pooled][0];
        p[1] = pool[pooled][1];
        return;
    }
    if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0) die("pipe2");
    fcntl(p[0], F_SETPIPE_SZ, PIPE_BYTES); /* over the user's pipe quota the default size stays */
}

static void give_pipe(int r, int w, int empty) {
    if (empty && pooled < POOLED_PIPES) {
        pool[pooled][0] = r;
        pool[pooled][1] = w;
        pooled++;
    } else {
        close(r);
        close(w);
    }
}

/* Make the coming close() send RST: a reset propagates as a reset, never as a clean FIN. */
static void arm_reset(int fd) {
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

static void close_conn(struct conn *c, int abort_it) {
    if (c->closed) return;
    c->closed = 1;
    open_conns -= c->connected;
    if (c->prev) c->prev->next_live = c->next_live;
    else live = c->next_live;
    if (c->next_live) c->next_live->prev = c->prev;
    bytes_out += c->out.moved;
    bytes_in += c->back.moved;
    give_pipe(c->out.pipe_r, c->out.pipe_w, c->out.pending == 0 && !abort_it);
    give_pipe(c->back.pipe_r, c->back.pipe_w, c->back.pending == 0 && !abort_it);
    int fds[2] = {c->client, c->upstream};
    for (int i = 0; i < 2; i++) { /* close() also takes the fd out of the epoll set: no EPOLL_CTL_DEL */
        if (abort_it) arm_reset(fds[i]);
        close(fds[i]);
    }
    if (!c->queued) { /* freed after this batch of events: a later event may still point at it */
        c->next = graveyard;
        graveyard = c;
    }
}

/* Move what can move now. Returns 0, or -errno when a socket failed. */
static int pump(struct flow *f) {
    while (!f->done) {
        if (f->pending) {
            ssize_t n = splice(f->pipe_r, NULL, f->dst, NULL, f->pending, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (n < 0) return errno == EAGAIN ? 0 : -errno;
            f->pending -= n;
            f->moved += n;
            continue;
        }
        if (f->eof) {
            shutdown(f->dst, SHUT_WR);
            f->done = 1;
            return 0;
        }
        ssize_t n = splice(f->src, NULL, f->pipe_w, NULL, PIPE_BYTES, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n < 0) return errno == EAGAIN ? 0 : -errno;
        if (n == 0) f->eof = 1;
        f->pending = n;
    }
    return 0;
}

static uint32_t wants(struct flow *reads, struct flow *writes) {
    return ((!reads->eof && !reads->pending) ? EPOLLIN : 0) | (writes->pending ? EPOLLOUT : 0);
}

static void update_masks(struct conn *c) {
    uint32_t mc = wants(&c->out, &c->back), mu = wants(&c->back, &c->out);
    if (mc != c->mask_c) watch(c->client, c->mask_c = mc, &c->tc, EPOLL_CTL_MOD);
    if (mu != c->mask_u) watch(c->upstream, c->mask_u = mu, &c->tu, EPOLL_CTL_MOD);
}

static void refuse(enum mode mode, const char *peer, const char *why, int client) {
    fprintf(stdout, "%s%s %s: cannot reach destination: %s\n", prefix, mode_names[mode], peer, why);
    fflush(stdout);
    arm_reset(client);
    close(client);
}

static void accept_from(struct listener *l) {
    for (int i = 0; i < ACCEPTS_PER_WAKE; i++) {
        struct sockaddr_in peer, dst;
        socklen_t len = sizeof(peer);
        int client = accept4(l->fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (client < 0) {
            if (errno != EAGAIN && errno != EINTR) fprintf(stdout, "%saccept: %s\n", prefix, strerror(errno));
            return;
        }
        char name[32];
        snprintf(name, sizeof(name), "%s:%d", inet_ntoa(peer.sin_addr), ntohs(peer.sin_port));
        len = sizeof(dst);
        int failed = 0;
        if (l->mode == STATIC)
            dst = l->to;
        else if (l->mode == ORIGINAL_DST)
            failed = getsockopt(client, SOL_IP, SO_ORIGINAL_DST_OPT, &dst, &len) < 0;
        else /* tproxy: the accepted socket is bound to the original destination */
            failed = getsockname(client, (struct sockaddr *)&dst, &len) < 0;
        if (failed) {
            refuse(l->mode, name, strerror(errno), client);
            continue;
        }
        if (l->mode != STATIC && dst.sin_addr.s_addr == l->addr.sin_addr.s_addr && dst.sin_port == l->addr.sin_port) {
            refuse(l->mode, name, "connection to the relay itself (not redirected)", client);
            continue;
        }
        int up = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (up < 0) {
            refuse(l->mode, name, strerror(errno), client);
            continue;
        }
        if (connect(up, (struct sockaddr *)&dst, sizeof(dst)) < 0 && errno != EINPROGRESS) {
            const char *why = strerror(errno);
            close(up);
            refuse(l->mode, name, why, client);
            continue;
        }
        struct conn *c = calloc(1, sizeof(*c));
        if (!c) die("calloc");
        c->tc = (struct tag){K_CLIENT, c};
        c->tu = (struct tag){K_UPSTREAM, c};
        c->client = client;
        c->upstream = up;
        c->mode = l->mode;
        snprintf(c->peer, sizeof(c->peer), "%s", name);
        c->deadline = now() + connect_timeout;
        int p[2];
        take_pipe(p);
        c->out.pipe_r = p[0], c->out.pipe_w = p[1];
        take_pipe(p);
        c->back.pipe_r = p[0], c->back.pipe_w = p[1];
        c->prev = NULL; /* on the list of live connections, for the reset at stop */
        c->next_live = live;
        if (live) live->prev = c;
        live = c;
        c->out.src = c->back.dst = client;
        c->out.dst = c->back.src = up;
        watch(client, c->mask_c = 0, &c->tc, EPOLL_CTL_ADD);
        watch(up, c->mask_u = EPOLLOUT, &c->tu, EPOLL_CTL_ADD);
        c->queued = 1;
        if (queue_tail) queue_tail->next = c;
        else queue_head = c;
        queue_tail = c;
    }
}

static int socket_error(int fd) {
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    return err ? err : ECONNRESET;
}

static void service(struct conn *c, int from_client, uint32_t events) {
    int fd = from_client ? c->client : c->upstream, rc = 0;
    if ((events & EPOLLERR) || ((events & EPOLLHUP) && !c->connected)) {
        rc = -socket_error(fd);
    } else if (!c->connected) {
        int one = 1;
        c->connected = 1;
        accepted++;
        open_conns++;
        setsockopt(c->client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        setsockopt(c->upstream, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        rc = pump(&c->out); /* a request that arrived during the connect goes now */
        if (!rc) rc = pump(&c->back);
    } else {
        if (events & (EPOLLIN | EPOLLHUP)) rc = pump(from_client ? &c->out : &c->back);
        if (!rc && (events & EPOLLOUT)) rc = pump(from_client ? &c->back : &c->out);
    }
    if (rc) {
        if (!c->connected) {
            fprintf(stdout, "%s%s %s: cannot reach destination: %s\n", prefix, mode_names[c->mode], c->peer,
                    strerror(-rc));
            fflush(stdout);
        }
        close_conn(c, 1);
    } else if (c->out.done && c->back.done) {
        close_conn(c, 0);
    } else {
        update_masks(c);
    }
}

static void expire_connects(void) {
    double t = now();
    while (queue_head && (queue_head->connected || queue_head->closed || queue_head->deadline <= t)) {
        struct conn *c = queue_head;
        queue_head = c->next;
        if (!queue_head) queue_tail = NULL;
        c->queued = 0;
        c->next = NULL;
        if (c->closed) {
            c->next = graveyard;
            graveyard = c;
        } else if (!c->connected) {
            fprintf(stdout, "%s%s %s: cannot reach destination: connect timed out\n", prefix, mode_names[c->mode],
                    c->peer);
            fflush(stdout);
            close_conn(c, 1);
        }
    }
}

static int open_listener(struct listener *l, int reuse_port) {
    int one = 1;
    l->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (l->fd < 0) return -1;
    setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (reuse_port) setsockopt(l->fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (l->mode == TPROXY && setsockopt(l->fd, SOL_IP, IP_TRANSPARENT, &one, sizeof(one)) < 0) return -1;
    if (bind(l->fd, (struct sockaddr *)&l->addr, sizeof(l->addr)) < 0) return -1;
    return listen(l->fd, 4096);
}

static int serve(int reuse_port) {
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0) die("signalfd");
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) die("epoll_create1");
    struct tag sig_tag = {K_SIGNAL, NULL};
    watch(sfd, EPOLLIN, &sig_tag, EPOLL_CTL_ADD);
    for (int i = 0; i < n_listeners; i++) {
        if (open_listener(&listeners[i], reuse_port) < 0) {
            fprintf(stdout, "%s%s: %s\n", prefix, listeners[i].spec, strerror(errno));
            return 1;
        }
        listeners[i].tag = (struct tag){K_LISTENER, &listeners[i]};
        watch(listeners[i].fd, EPOLLIN, &listeners[i].tag, EPOLL_CTL_ADD);
    }
    printf("%slistening:", prefix);
    for (int i = 0; i < n_listeners; i++) printf(" %s", listeners[i].spec);
    printf("\n");
    fflush(stdout);
    struct epoll_event events[MAX_EVENTS];
    for (int stopping = 0; !stopping;) {
        int timeout = -1;
        if (queue_head) {
            double left = queue_head->deadline - now();
            timeout = left > 0 ? (int)(left * 1000) + 1 : 0;
        }
        int n = epoll_wait(epfd, events, MAX_EVENTS, timeout);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        for (int i = 0; i < n; i++) {
            struct tag *tag = events[i].data.ptr;
            if (tag->kind == K_LISTENER) {
                accept_from(tag->ptr);
            } else if (tag->kind == K_SIGNAL) {
                stopping = 1;
            } else if (!((struct conn *)tag->ptr)->closed) {
                service(tag->ptr, tag->kind == K_CLIENT, events[i].events);
            }
        }
        expire_connects();
        while (graveyard) {
            struct conn *c = graveyard;
            graveyard = c->next;
            free(c);
        }
    }
    /* Stop: every open or connecting connection is reset, then the counters. */
    unsigned long long still_open = open_conns;
    while (live) close_conn(live, 1);
    printf("%sstopping: connections=%llu open=%llu bytes={'in': %llu, 'out': %llu}\n", prefix, accepted, still_open,
           bytes_in, bytes_out);
    fflush(stdout);
    return 0;
}

static void usage(void) {
    fprintf(stderr, "usage: vmnb-relay [--workers N] [--connect-timeout S] static:A:P=TA:TP | original-dst:A:P | "
                    "tproxy:A:P ...\n");
    exit(2);
}

int main(int argc, char **argv) {
    int workers = 1;
    int i = 1;
    for (; i < argc && !strncmp(argv[i], "--", 2); i++) {
        if (!strcmp(argv[i], "--workers") && i + 1 < argc) workers = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--connect-timeout") && i + 1 < argc) connect_timeout = atof(argv[++i]);
        else usage();
    }
    if (i == argc || workers < 1 || connect_timeout <= 0) usage();
    for (; i < argc; i++) {
        if (n_listeners == MAX_LISTENERS || parse_listener(argv[i], &listeners[n_listeners])) {
            fprintf(stderr, "listener '%s': mode must be static, original-dst or tproxy (static needs "
                            "=TO_ADDR:TO_PORT)\n", argv[i]);
            return 2;
        }
        n_listeners++;
    }
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL); /* delivered through signalfd, in every worker */
    signal(SIGPIPE, SIG_IGN);
    if (workers == 1) return serve(0);
    pid_t children[64];
    int n_children = 0;
    static char names[64][24];
    for (int w = 1; w < workers && n_children < 64; w++) {
        pid_t pid = fork();
        if (pid < 0) die("fork");
        if (pid == 0) {
            snprintf(names[w], sizeof(names[w]), "worker %d: ", w);
            prefix = names[w];
            return serve(1);
        }
        children[n_children++] = pid;
    }
    prefix = "worker 0: ";
    int code = serve(1);
    for (int c = 0; c < n_children; c++) kill(children[c], SIGTERM); /* told to stop: so are the workers */
    for (int c = 0; c < n_children; c++) waitpid(children[c], NULL, 0);
    return code;
}

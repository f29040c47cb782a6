/* The echo server the project's request-response tools share (vmnb-probe, vmnb-rr): TCP and UDP on one port,
 * both families, one poll() loop; every read is written back as it came, every datagram returned to its sender. */
#ifndef VMNB_ECHO_H
#define VMNB_ECHO_H
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "inet.h"

#define ECHO_MAX_FDS 1024

/* A bound UDP socket on every address of both families at `port` (IPv4 only where the kernel has no IPv6). */
static int udp_bind_any(int port) {
    int off = 0, s = socket(AF_INET6, SOCK_DGRAM, 0);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = in6addr_any};
    if (s >= 0) {
        setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
        if (!bind(s, (struct sockaddr *)&a, sizeof a)) return s;
        close(s);
    }
    struct sockaddr_in b = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = INADDR_ANY};
    s = socket(AF_INET, SOCK_DGRAM, 0);
    if (s < 0 || bind(s, (struct sockaddr *)&b, sizeof b)) return -1;
    return s;
}

/* Serves until killed; returns 1 (with perror under `who`) when the port cannot be taken. */
static int echo_serve(const char *who, int port) {
    int ls = inet_listen_any(port), us = udp_bind_any(port);
    if (ls < 0 || us < 0) {
        perror(who);
        return 1;
    }
    static struct pollfd fds[ECHO_MAX_FDS];
    static char buf[65536];
    int n = 2;
    fds[0] = (struct pollfd){.fd = ls, .events = POLLIN};
    fds[1] = (struct pollfd){.fd = us, .events = POLLIN};
    for (;;) {
        if (poll(fds, n, -1) < 0 && errno != EINTR) return 1;
        for (int i = n - 1; i >= 2; i--) {
            if (!fds[i].revents) continue;
            ssize_t got = read(fds[i].fd, buf, sizeof buf);
            if (got > 0 && write(fds[i].fd, buf, got) == got) continue;
            close(fds[i].fd);
            fds[i] = fds[--n];
        }
        if (fds[1].revents & POLLIN) {
            struct sockaddr_storage from;
            socklen_t len = sizeof from;
            ssize_t got = recvfrom(us, buf, sizeof buf, 0, (struct sockaddr *)&from, &len);
            if (got > 0) sendto(us, buf, got, 0, (struct sockaddr *)&from, len);
        }
        if (fds[0].revents & POLLIN) {
            int c = accept(ls, NULL, NULL);
            int one = 1;
            if (c >= 0) setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            if (c >= 0 && n < ECHO_MAX_FDS) fds[n++] = (struct pollfd){.fd = c, .events = POLLIN};
            else if (c >= 0) close(c);
        }
    }
}
#endif

/* IPv4 or IPv6, whichever the address says: the project's C tools dial an IPv4 or IPv6 --target (a dual-stack
 * bed's IPv6 tests) and listen on both families (one IPv6 socket with IPV6_V6ONLY off takes IPv4 as mapped
 * addresses; where the kernel has no IPv6, an IPv4 socket). */
#ifndef VMNB_INET_H
#define VMNB_INET_H
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

static socklen_t inet_len(const struct sockaddr_storage *a) {
    return a->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

/* `target` (an IPv4 or IPv6 literal) and `port` as a socket address; -1 if it is neither. */
static int inet_target(const char *target, int port, struct sockaddr_storage *to) {
    struct sockaddr_in *v4 = (struct sockaddr_in *)to;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)to;
    memset(to, 0, sizeof *to);
    if (inet_pton(AF_INET, target, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        return 0;
    }
    if (inet_pton(AF_INET6, target, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        return 0;
    }
    return -1;
}

/* A bound, listening socket on every address of both families at `port`; -1 with errno set. */
static int inet_listen_any(int port) {
    int off = 0, one = 1, ls = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_storage a;
    memset(&a, 0, sizeof a);
    if (ls >= 0) {
        struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&a;
        setsockopt(ls, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        v6->sin6_addr = in6addr_any;
    } else {
        struct sockaddr_in *v4 = (struct sockaddr_in *)&a;
        ls = socket(AF_INET, SOCK_STREAM, 0);
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        v4->sin_addr.s_addr = INADDR_ANY;
    }
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ls < 0 || bind(ls, (struct sockaddr *)&a, inet_len(&a)) || listen(ls, 4096)) return -1;
    return ls;
}
#endif

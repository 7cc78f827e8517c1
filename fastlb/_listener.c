/* _listener.c: listening sockets (see _listener.h). */
#include "_api.h"

#include "_listener.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct flb_listener *flb_listener_new(const char *address, const struct sockaddr *sa, socklen_t len,
                                      uint32_t nworkers)
{
    struct flb_listener *l = calloc(1, sizeof(*l));

    if (l == NULL)
        return NULL;
    l->address = strdup(address);
    l->fd = malloc(nworkers * sizeof(*l->fd));
    l->ws = calloc(nworkers, sizeof(*l->ws));
    if (l->address == NULL || l->fd == NULL || l->ws == NULL) {
        free(l->address);
        free(l->fd);
        free(l->ws);
        free(l);
        errno = ENOMEM;
        return NULL;
    }
    memcpy(&l->addr, sa, len);
    l->addrlen = len;
    l->nworkers = nworkers;
    for (uint32_t i = 0; i < nworkers; i++) {
        l->fd[i] = -1;
        l->ws[i].src.kind = FLB_EV_LISTENER;
        l->ws[i].l = l;
    }
    atomic_store_explicit(&l->refs, 1, memory_order_relaxed);
    FLB_LIVE_INC(listeners);
    return l;
}

static int open_one(const struct flb_listener *l)
{
    int one = 1;
    int fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd == -1)
        return -1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == -1)
        goto fail;
    if (l->addr.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    /* Accepted sockets inherit TCP_NODELAY: no setsockopt per connection on the client side. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)&l->addr, l->addrlen) == -1 || listen(fd, FLB_LISTEN_BACKLOG) == -1)
        goto fail;
    FLB_LIVE_INC(fds);
    return fd;
fail: {
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
}
}

int flb_listener_probe(const struct flb_listener *l)
{
    int one = 1, rc = FLB_OK;
    int fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd == -1)
        return FLB_ERR;
    /* SO_REUSEADDR as the listeners have it (a port in TIME_WAIT, or bound and not listening with
     * SO_REUSEADDR, is free), but not SO_REUSEPORT: the bind fails on any listening socket. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1)
        rc = FLB_ERR;
    if (rc == FLB_OK && l->addr.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (rc == FLB_OK && bind(fd, (const struct sockaddr *)&l->addr, l->addrlen) == -1)
        rc = FLB_ERR;
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

static uint16_t port_of(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_port;
    return ((const struct sockaddr_in6 *)a)->sin6_port;
}

static int wildcard(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr == htonl(INADDR_ANY);
    return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)a)->sin6_addr);
}

int flb_listener_overlap(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family || port_of(a) != port_of(b))
        return 0;
    if (wildcard(a) || wildcard(b))
        return 1;
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr == ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    return IN6_ARE_ADDR_EQUAL(&((const struct sockaddr_in6 *)a)->sin6_addr, &((const struct sockaddr_in6 *)b)->sin6_addr);
}

int flb_listener_open(struct flb_listener *l)
{
    for (uint32_t i = 0; i < l->nworkers; i++) {
        l->fd[i] = open_one(l);
        if (l->fd[i] == -1) {
            int saved = errno;
            flb_listener_close(l);
            errno = saved;
            return FLB_ERR;
        }
    }
    return FLB_OK;
}

static int adopt_one(int inherited)
{
    int listening = 0;
    socklen_t len = sizeof(listening);
    int fd, flags;

    if (getsockopt(inherited, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == -1)
        return -1;
    if (!listening) {
        errno = EINVAL;
        return -1;
    }
    fd = fcntl(inherited, F_DUPFD_CLOEXEC, 0);
    if (fd == -1)
        return -1;
    /* O_NONBLOCK lives in the shared file description: the other process's copy gets it too, which
     * is what it has already. */
    flags = fcntl(fd, F_GETFL);
    if (flags == -1 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) == -1) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    FLB_LIVE_INC(fds);
    return fd;
}

int flb_listener_adopt(struct flb_listener *l, const int *fds, uint32_t n)
{
    for (uint32_t i = 0; i < l->nworkers; i++) {
        l->fd[i] = i < n ? adopt_one(fds[i]) : open_one(l);
        if (l->fd[i] == -1) {
            int saved = errno;
            flb_listener_close(l);
            errno = saved;
            return FLB_ERR;
        }
    }
    return FLB_OK;
}

void flb_listener_close(struct flb_listener *l)
{
    for (uint32_t i = 0; i < l->nworkers; i++) {
        if (l->fd[i] != -1) {
            close(l->fd[i]);
            FLB_LIVE_DEC(fds);
            l->fd[i] = -1;
        }
    }
}

void flb_listener_put(struct flb_listener *l)
{
    if (atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel) != 1)
        return;
    flb_listener_close(l);
    free(l->address);
    free(l->fd);
    free(l->ws);
    free(l);
    FLB_LIVE_DEC(listeners);
}

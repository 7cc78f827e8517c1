/* _pass-t.h: TLS passthrough on the https listener: a connection whose ClientHello is being read, and
 * the listener's passthrough counters. */
#ifndef FLB_PASS_T_H
#define FLB_PASS_T_H

#include "_evloop-t.h"
#include "_l7-t.h"
#include "_list-t.h"

#include <sys/socket.h>

/* A listener's, kept in its record so that they survive table swaps. */
struct flb_pass_counters {
    _Atomic uint64_t passthrough; /* connections forwarded untouched to a passthrough service */
    _Atomic uint64_t unknown_sni; /* closed: no passthrough vhost for the name, and no certificate */
};

struct flb_route_listener;
struct flb_table;

/* An accepted connection of the https listener, until its ClientHello says where it goes. It holds
 * nothing but its socket: the hello is peeked (MSG_PEEK), so whoever takes the socket over reads it
 * from the start, OpenSSL or the tcp pump. */
struct flb_pass {
    struct flb_evsrc src;         /* FLB_EV_PASS */
    int fd;
    uint32_t want;                /* epoll interest registered (0: not in epoll) */
    struct flb_l7_timer timer;    /* FLB_L7_T_PASS: the handshake timeout */
    struct flb_table *table;      /* one reference: the table it was accepted with */
    struct flb_route_listener *rl; /* in <table> */
    struct sockaddr_storage peer;
    struct flb_list link;         /* in the worker's pass list */
};

#endif

/* _cidr.h: source allow-lists. A tcp-mode service with allow_cidrs serves only clients whose
 * address falls in one of them; the others are closed at accept (counted as the service's denied
 * and the listener's refused). HTTP mode answers them itself. */
#ifndef FLB_CIDR_H
#define FLB_CIDR_H

#include "_api.h"

#include <sys/socket.h>

/* One network: the first <bits> bits of <net> (4 bytes for IPv4, 16 for IPv6). */
struct flb_cidr {
    uint8_t len;     /* 4 or 16: the address family by its size */
    uint8_t bits;    /* prefix length, 0..8*len */
    uint8_t net[16];
};

/* True when <peer> lies in one of the <n> networks of <list>. An IPv4-mapped IPv6 peer
 * (::ffff:a.b.c.d) is matched as the IPv4 address it carries. */
int flb_cidr_match(const struct flb_cidr *list, uint32_t n, const struct sockaddr *peer);

#endif

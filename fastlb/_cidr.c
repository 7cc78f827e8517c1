/* _cidr.c: source allow-lists (see _cidr.h). */
#include "_api.h"

#include "_cidr.h"

#include "_addr.h"

#include <string.h>

static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static int in_network(const struct flb_cidr *c, const uint8_t *ip)
{
    uint8_t whole = c->bits / 8, rest = c->bits % 8;

    if (memcmp(c->net, ip, whole) != 0)
        return 0;
    if (rest == 0)
        return 1;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (c->net[whole] & mask) == (ip[whole] & mask);
}

int flb_cidr_match(const struct flb_cidr *list, uint32_t n, const struct sockaddr *peer)
{
    const void *bytes;
    size_t len = flb_addr_bytes(peer, &bytes);
    const uint8_t *ip = bytes;

    if (len == 16 && memcmp(ip, v4_mapped, sizeof(v4_mapped)) == 0) {
        ip += 12;
        len = 4;
    }
    for (uint32_t i = 0; i < n; i++)
        if (list[i].len == len && in_network(&list[i], ip))
            return 1;
    return 0;
}

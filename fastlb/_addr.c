/* _addr.c: numeric address parsing and formatting (see _addr.h). */
#include "_api.h"

#include "_addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_port(const char *s, uint16_t *port)
{
    unsigned long v = 0;

    if (*s == '\0' || strlen(s) > 5)
        return FLB_ERR;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return FLB_ERR;
        v = v * 10 + (unsigned long)(*s - '0');
    }
    if (v == 0 || v > 65535)
        return FLB_ERR;
    *port = (uint16_t)v;
    return FLB_OK;
}

int flb_addr_parse(const char *text, struct sockaddr_storage *sa, socklen_t *len)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *colon, *port_text;
    size_t hostlen;
    uint16_t port;

    memset(sa, 0, sizeof(*sa));
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL || close[1] != ':')
            goto bad;
        hostlen = (size_t)(close - text - 1);
        if (hostlen == 0 || hostlen >= sizeof(host))
            goto bad;
        memcpy(host, text + 1, hostlen);
        host[hostlen] = '\0';
        port_text = close + 2;
        if (parse_port(port_text, &port) != FLB_OK)
            goto bad;
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)sa;
        if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
            goto bad;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        *len = sizeof(*s6);
        return FLB_OK;
    }
    colon = strrchr(text, ':');
    if (colon == NULL)
        goto bad;
    hostlen = (size_t)(colon - text);
    if (hostlen == 0 || hostlen >= sizeof(host))
        goto bad;
    memcpy(host, text, hostlen);
    host[hostlen] = '\0';
    if (parse_port(colon + 1, &port) != FLB_OK)
        goto bad;
    struct sockaddr_in *s4 = (struct sockaddr_in *)sa;
    if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
        goto bad;
    s4->sin_family = AF_INET;
    s4->sin_port = htons(port);
    *len = sizeof(*s4);
    return FLB_OK;
bad:
    errno = EINVAL;
    return FLB_ERR;
}

int flb_addr_format(const struct sockaddr *sa, char *out)
{
    char host[INET6_ADDRSTRLEN];

    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
        snprintf(out, FLB_ADDR_TEXT, "%s:%u", host, ntohs(s4->sin_port));
        return FLB_OK;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
        snprintf(out, FLB_ADDR_TEXT, "[%s]:%u", host, ntohs(s6->sin6_port));
        return FLB_OK;
    }
    errno = EAFNOSUPPORT;
    return FLB_ERR;
}

size_t flb_addr_bytes(const struct sockaddr *sa, const void **bytes)
{
    if (sa->sa_family == AF_INET) {
        *bytes = &((const struct sockaddr_in *)sa)->sin_addr;
        return 4;
    }
    if (sa->sa_family == AF_INET6) {
        *bytes = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return 16;
    }
    *bytes = NULL;
    return 0;
}

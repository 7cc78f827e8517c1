/* _addr.h: numeric socket addresses as fastlb spells them: "ip:port", IPv6 as "[v6]:port".
 * No name resolution ever happens in the data plane. */
#ifndef FLB_ADDR_H
#define FLB_ADDR_H

#include "_api.h"

#include <sys/socket.h>

/* Longest text flb_addr_format writes, NUL included ("[" v6 "]:" port). */
#define FLB_ADDR_TEXT 64

/* Parses <text> into <sa>, <len>. Returns FLB_OK, or FLB_ERR with errno EINVAL for anything that
 * is not a numeric address with a port in 1..65535. */
int flb_addr_parse(const char *text, struct sockaddr_storage *sa, socklen_t *len);

/* Writes <sa> as text into <out> (FLB_ADDR_TEXT bytes). Returns FLB_OK or FLB_ERR (EAFNOSUPPORT). */
int flb_addr_format(const struct sockaddr *sa, char *out);

/* The address bytes of <sa> (4 for IPv4, 16 for IPv6, 0 for anything else): the flow key input. */
size_t flb_addr_bytes(const struct sockaddr *sa, const void **bytes);

#endif

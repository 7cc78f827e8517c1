/* _hello.h: reads the server name (SNI) out of a TLS ClientHello, from the bytes a connection has sent
 * so far, so that the https listener can route a connection before (or instead of) terminating it.
 *
 * A pure function: no allocation, no OpenSSL, no state between calls (give it every byte received
 * since the start, each time). It reads a ClientHello split across TLS records and across any number
 * of calls, and bounds what it reads: the handshake message at most FLB_HELLO_MAX bytes, in at most
 * FLB_HELLO_RECORDS records, so never more than FLB_HELLO_WIRE_MAX bytes of input. Reads stay inside
 * [buf, buf + len).
 */
#ifndef FLB_HELLO_H
#define FLB_HELLO_H

#include "_api.h"

#include <stddef.h>
#include <stdint.h>

#define FLB_HELLO_MAX 16384       /* the ClientHello message, its 4-byte header included */
#define FLB_HELLO_RECORDS 64      /* records it may be cut into */
#define FLB_HELLO_WIRE_MAX (FLB_HELLO_MAX + 5 * FLB_HELLO_RECORDS)
#define FLB_HELLO_NAME_MAX 255    /* the longest host name */

/* What the bytes are. */
enum flb_hello_kind {
    FLB_HELLO_SNI = 0,     /* a whole ClientHello naming a host: <name> */
    FLB_HELLO_NO_SNI = 1,  /* a whole ClientHello without a host name */
    FLB_HELLO_NOT_TLS = 2, /* the first byte opens no TLS handshake record (plain HTTP, SSLv2, ...) */
    FLB_HELLO_BAD = 3,     /* a handshake record, but not a ClientHello fastlb reads: broken, or too large */
};

struct flb_hello {
    char name[FLB_HELLO_NAME_MAX + 1]; /* FLB_HELLO_SNI: the host name, lower case, NUL-terminated */
    uint32_t name_len;
};

/* Reads the <len> bytes at <buf>, everything the client has sent. One of enum flb_hello_kind (>= 0),
 * or FLB_AGAIN when the ClientHello is not whole yet (never once <len> reaches FLB_HELLO_WIRE_MAX). */
int flb_hello_read(const uint8_t *buf, size_t len, struct flb_hello *out);

#endif

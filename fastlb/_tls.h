/* _tls.h: TLS termination (OpenSSL 3) as a transport (_xprt.h): a non-blocking handshake driven by
 * the worker's reads, then SSL_read and SSL_write through the connection's buffers. TLS 1.2 and 1.3
 * only, no renegotiation, no compression; sessions resumed from tickets (TLS 1.2 and 1.3) whose keys
 * every worker shares (flb_tls_tickets); ALPN http/1.1; the certificate chosen by SNI: exact names
 * first, then wildcards, else the first certificate. */
#ifndef FLB_TLS_H
#define FLB_TLS_H

#include "_api.h"
#include "_tls-t.h"
#include "_xprt-t.h"

#include <stddef.h>

/* A set of <ncerts> certificates for <nworkers> workers, each to be given with flb_tls_set, whose
 * contexts issue and take session tickets of <tickets> (a reference is taken; NULL: none). NULL with
 * errno. One reference, the caller's. */
struct flb_tls *flb_tls_new(uint32_t nworkers, uint32_t ncerts, uint32_t handshake_ms,
                            struct flb_tls_tickets *tickets);

/* Ticket keys with none set yet (no ticket issued until flb_tls_tickets_set). NULL with errno. One
 * reference, the caller's. */
struct flb_tls_tickets *flb_tls_tickets_new(void);
void flb_tls_tickets_put(struct flb_tls_tickets *k);

/* Rotates to <nkeys> keys (at most FLB_TLS_TICKET_KEYS; 0: tickets off) of <key_len> bytes each (48:
 * AES-128, or 80: AES-256; name, AES key, HMAC key, as HAProxy's tls-ticket-keys), <keys> one after
 * the other; key <enc> encrypts new tickets, every one decrypts. Handshakes under way see the keys
 * before or after, never a mix. FLB_OK, or FLB_ERR (EINVAL). */
int flb_tls_tickets_set(struct flb_tls_tickets *k, const unsigned char *keys, uint32_t nkeys, size_t key_len,
                        uint32_t enc);

/* Certificate <i> from <pem> (<len> bytes: the certificate first, then its chain, and its key, in any
 * order: HAProxy's crt format) with the host names it serves. The default certificate (<i> 0) is
 * parsed now: FLB_OK, or FLB_ERR with the reason in <err> (a missing key, a key that does not match,
 * text that is not PEM). Another is kept as PEM and parsed when SNI first picks it (a handshake then
 * fails as "certificate" if it cannot be: the control plane checks every file before). */
int flb_tls_set(struct flb_tls *t, uint32_t i, const char *pem, size_t len, const char *const *names,
                uint32_t nnames, char *err, size_t errlen);

/* Settings of certificate <i>, given before flb_tls_set(<i>): the host names SNI gives it before any
 * other certificate's names (<claims>, a service's vhosts), the ALPN protocols it offers (<alpn>,
 * wire format; NULL: http/1.1; empty: none), the lowest version (<min_version>: "TLSv1.2", "TLSv1.3"; NULL: 1.2),
 * the TLS 1.2 ciphers and the TLS 1.3 suites (OpenSSL's syntax; NULL: the defaults). FLB_OK, or
 * FLB_ERR with the reason in <err>. */
int flb_tls_options(struct flb_tls *t, uint32_t i, const char *const *claims, uint32_t nclaims,
                    const unsigned char *alpn, size_t alpn_len, const char *min_version, const char *ciphers,
                    const char *suites, char *err, size_t errlen);

/* Whether certificate <i> of <t> is parsed (a later set may then share it: flb_tls_set_from). */
int flb_tls_loaded(const struct flb_tls *t, uint32_t i);

/* Certificate <i> as certificate <j> of <from> (a set made before, with the same PEM, <j> parsed):
 * its parsed certificate, chain and key are shared, not parsed again, and it serves <names>. Options are given
 * before, as for flb_tls_set. FLB_OK, or FLB_ERR with the reason in <err>. */
int flb_tls_set_from(struct flb_tls *t, uint32_t i, const struct flb_tls *from, uint32_t j, const char *const *names,
                     uint32_t nnames, char *err, size_t errlen);

/* Client certificates for certificate <i>'s handshakes, given before flb_tls_set(<i>): <mode> 1 asks
 * for one (a client without one carries on), 2 requires one; either way one sent must verify against
 * the CAs of <ca_pem> (<len> bytes of PEM certificates), whose names the server's request lists.
 * FLB_OK, or FLB_ERR with the reason in <err>. */
int flb_tls_verify(struct flb_tls *t, uint32_t i, int mode, const char *ca_pem, size_t len, char *err, size_t errlen);

struct flb_tls *flb_tls_get(struct flb_tls *t);
void flb_tls_put(struct flb_tls *t);

/* The certificate index (0: the default) that serves host <name> (<len> bytes, lower or upper case):
 * a certificate claiming it (exact, then wildcard), else one naming it (exact, then wildcard). */
uint32_t flb_tls_pick(const struct flb_tls *t, const char *name, size_t len);

/* Whether certificate <c> covers <name> (<len> bytes; a port and one trailing dot are not compared). */
int flb_tls_covers(const struct flb_tls_cert *c, const char *name, size_t len);

/* Makes <x> (a plain side on an accepted socket) a TLS side of <t> as worker <worker> sees it, its
 * handshake counted in <c>. FLB_OK, or FLB_ERR (ENOMEM). */
int flb_tls_accept(struct flb_xprt *x, struct flb_tls *t, uint32_t worker, struct flb_tls_counters *c);

/* TLS objects alive (connections' SSL and the sets' contexts): the tests check they return to zero. */
extern _Atomic long flb_tls_live;

/* PEMs parsed so far (a certificate, its chain and its key each): the tests count what a change reads. */
extern _Atomic long flb_tls_reads;

#endif

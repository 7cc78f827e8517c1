/* _tls-t.h: TLS termination's records: the certificates of a listener, each worker's own contexts for
 * them, and the counters of a listener's handshakes. No OpenSSL type shows here. */
#ifndef FLB_TLS_T_H
#define FLB_TLS_T_H

#include <pthread.h>
#include <stdint.h>

/* Why a handshake failed, as counted. */
enum flb_tls_fail {
    FLB_TLS_F_TIMEOUT = 0,  /* not over within the handshake timeout */
    FLB_TLS_F_VERSION = 1,  /* the client offers no version fastlb speaks (TLS 1.0, 1.1, SSL) */
    FLB_TLS_F_CIPHER = 2,   /* no cipher suite in common */
    FLB_TLS_F_HTTP = 3,     /* plain HTTP on the TLS port */
    FLB_TLS_F_PROTOCOL = 4, /* anything else the client sent wrong (garbage, a broken ClientHello) */
    FLB_TLS_F_EOF = 5,      /* the client closed (or reset) before the handshake was over */
    FLB_TLS_F_CERT = 6,     /* the certificate SNI picked could not be read (or its context made) */
    FLB_TLS_F_CLIENT = 7,   /* a client certificate required and not sent, or not verified */
    FLB_TLS_F_N = 8,
};

/* A listener's, kept in its record so that they survive table swaps. */
struct flb_tls_counters {
    _Atomic uint64_t handshakes;              /* handshakes over */
    _Atomic uint64_t resumed;                 /* of them, resumed from a session ticket */
    _Atomic uint64_t failed[FLB_TLS_F_N];     /* handshakes that failed, by reason */
};

/* Session ticket keys: at most this many decrypt, one of them encrypts. */
#define FLB_TLS_TICKET_KEYS 3
#define FLB_TLS_TICKET_WORDS 10 /* a key's 80 bytes: name 16, AES 32, HMAC 32 (HAProxy's layout) */

/* The ticket keys every worker's contexts share, so that a session begun on one worker (or, from a
 * key file, on another fastlb) resumes on any. Written by the control thread only (a rotation), read
 * by a handshake as a sequence lock: the words are atomics, a read that saw a write under way is
 * made again. One per data plane, referenced by each certificate set. */
struct flb_tls_tickets {
    _Atomic int refs;
    _Atomic uint32_t seq;         /* odd while a rotation writes */
    _Atomic uint32_t nkeys;       /* 0: no tickets are issued (a full handshake every time) */
    _Atomic uint32_t enc;         /* the key that encrypts new tickets */
    _Atomic uint32_t aes_len;     /* 16 (48-byte keys: AES-128, HMAC-SHA256 with a 16-byte key) or 32 */
    _Atomic uint64_t words[FLB_TLS_TICKET_KEYS][FLB_TLS_TICKET_WORDS];
    void *aes128, *aes256;        /* EVP_CIPHER *, fetched once (nothing fetched by name per handshake) */
};

/* One certificate: the host names it serves (lower case; "*.example.com" covers one label), none
 * when it serves every name (the self-signed one made at start). A service's own certificate also
 * claims its vhosts (SNI looks at claims before names) and may carry its own handshake settings. */
struct flb_tls_cert {
    char **names;                 /* [nnames], owned */
    uint32_t nnames;
    char **claims;                /* [nclaims], owned: the host names SNI gives this certificate first */
    uint32_t nclaims;
    int min_version;              /* TLS1_2_VERSION or TLS1_3_VERSION; 0: TLS 1.2 */
    unsigned char *alpn;          /* ALPN protocols in wire format, owned; NULL: http/1.1 (or none) */
    uint32_t alpn_len;
    uint8_t no_alpn;              /* no protocol is named (a tcp-mode service: its bytes are its own) */
    char *ciphers;                /* TLS 1.2 cipher list, owned; NULL: fastlb's */
    char *suites;                 /* TLS 1.3 suites, owned; NULL: OpenSSL's */
    struct flb_tls_tickets *tickets; /* its set's (the set holds the reference) */
    void *leaf, *chain, *key;     /* X509 *, STACK_OF(X509) *, EVP_PKEY *: parsed once, a reference each */
    int verify;                   /* client certificates: 0 not asked, 1 optional, 2 required */
    void *store;                  /* X509_STORE * of the CAs that verify them (a reference), or NULL */
    void *ca_names;               /* STACK_OF(X509_NAME) * sent in the CertificateRequest, owned, or NULL */
    char *pem;                    /* owned until it is parsed (the default: at once; another: first use) */
    size_t pem_len;
    _Atomic int state;            /* 0: not parsed yet, 1: parsed, -1: cannot be */
};

struct flb_tls;


/* What a worker's contexts point their SNI callback at. */
struct flb_tls_worker {
    struct flb_tls *tls;
    uint32_t id;
};

/* The certificates of the https listener and each worker's own SSL_CTX for each: OpenSSL 3 takes a
 * lock per handshake on what contexts share, so no worker touches another's. Built by the control
 * thread, then immutable but for what is made on first use: the default certificate is parsed and
 * every worker's context for it made with the set; another certificate is parsed (once, under the
 * set's lock) and a worker's context for it made (by that worker, in its own row) the first time SNI
 * picks it on that worker. So a set of 10,000 certificates costs copies of their PEMs, and memory
 * grows with the names clients ask for. Reference-counted like the tables that carry it. The first certificate is the
 * default one (no SNI, or a name no certificate has). */
struct flb_tls {
    _Atomic int refs;
    uint32_t nworkers, ncerts;
    uint32_t handshake_ms;        /* a handshake not over in this long is dropped */
    struct flb_tls_cert *certs;   /* [ncerts] */
    void **ctx;                   /* [nworkers * ncerts] SSL_CTX *, worker-major */
    struct flb_tls_worker *ws;    /* [nworkers] */
    struct flb_tls_tickets *tickets; /* a reference; NULL: no session tickets */
    void *probe;                  /* SSL_CTX * on which certificates' cipher settings are tried, or NULL */
    pthread_mutex_t lock;         /* held while a worker parses a certificate none has parsed */
};

#endif

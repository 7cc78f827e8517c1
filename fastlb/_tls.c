/* _tls.c: the TLS transport and the certificate sets (see _tls.h).
 *
 * The handshake runs inside the side's first reads: recv drives SSL_do_handshake until it is over,
 * answering FLB_AGAIN meanwhile, so the HTTP state machine sees a socket that has sent nothing yet.
 * OpenSSL's want-read and want-write become the side's wait flags, which _xprt.h turns into epoll
 * interest. Record buffers are given back whenever a connection is idle (SSL_MODE_RELEASE_BUFFERS).
 */
#define _GNU_SOURCE
#include "_api.h"

#include "_tls.h"

#include "_vhost.h"
#include "_xprt.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <openssl/core_names.h>
#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define RELAXED memory_order_relaxed
#define COUNT(field, n) atomic_fetch_add_explicit(&(field), (n), RELAXED)

/* TLS 1.2's suites when the client has no TLS 1.3: forward secrecy and AEAD only (TLS 1.3's own
 * suites are OpenSSL's defaults). */
#define CIPHERS_12                                                                                                    \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"                        \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

/* Bytes a write gathers from a head's pieces into one record (a TLS record's largest payload). */
#define GATHER 16384

/* Sent, once, to a client that speaks plain HTTP to the TLS port (as nginx does), before the close. */
static const char PLAIN_400[] = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 36\r\n"
                                "Connection: close\r\n\r\nThis port speaks HTTPS (TLS) only.\r\n\r\n";

_Atomic long flb_tls_live;
_Atomic long flb_tls_reads;

/* --- names --------------------------------------------------------------------------------------- */

/* <name> as certificates are matched (flb_vhost_host: no port, no trailing dot, lower case) into <out>.
 * Its length, or -1 when it is too long to be a host name. */
static ssize_t host_norm(const char *name, size_t len, char out[256])
{
    return flb_vhost_host(name, len, out, 255);
}

static int exact(char *const *names, uint32_t nnames, const char *n, size_t len)
{
    for (uint32_t j = 0; j < nnames; j++)
        if (names[j][0] != '*' && strlen(names[j]) == len && memcmp(names[j], n, len) == 0)
            return 1;
    return 0;
}

/* "*.example.com" covers "a.example.com", not "example.com" nor "a.b.example.com". */
static int wildcard(char *const *names, uint32_t nnames, const char *n, size_t len)
{
    const char *dot = memchr(n, '.', len);

    if (dot == NULL || dot == n)
        return 0;
    for (uint32_t j = 0; j < nnames; j++) {
        const char *w = names[j];
        size_t wl = strlen(w);
        if (w[0] == '*' && w[1] == '.' && wl - 1 == len - (size_t)(dot - n) && memcmp(w + 1, dot, wl - 1) == 0)
            return 1;
    }
    return 0;
}

int flb_tls_covers(const struct flb_tls_cert *c, const char *name, size_t len)
{
    char n[256];
    ssize_t k;

    if (c->nnames == 0)
        return 1;
    k = host_norm(name, len, n);
    return k > 0 && (exact(c->names, c->nnames, n, (size_t)k) || wildcard(c->names, c->nnames, n, (size_t)k));
}

uint32_t flb_tls_pick(const struct flb_tls *t, const char *name, size_t len)
{
    char n[256];
    ssize_t k = host_norm(name, len, n);

    if (k <= 0)
        return 0;
    /* A service's certificate for its own vhosts first (claims), then the certificates' names. */
    for (uint32_t i = 0; i < t->ncerts; i++)
        if (exact(t->certs[i].claims, t->certs[i].nclaims, n, (size_t)k))
            return i;
    for (uint32_t i = 0; i < t->ncerts; i++)
        if (wildcard(t->certs[i].claims, t->certs[i].nclaims, n, (size_t)k))
            return i;
    for (uint32_t i = 0; i < t->ncerts; i++)
        if (exact(t->certs[i].names, t->certs[i].nnames, n, (size_t)k))
            return i;
    for (uint32_t i = 0; i < t->ncerts; i++)
        if (wildcard(t->certs[i].names, t->certs[i].nnames, n, (size_t)k))
            return i;
    return 0;
}

/* The host name of the ClientHello's server_name extension into <out> (at most 255 bytes), its
 * length; 0 when it has none (or a malformed one: the default certificate, and OpenSSL's own parse
 * refuses it next). */
static size_t hello_name(SSL *ssl, char out[256])
{
    const unsigned char *p;
    size_t len, list, n;

    if (!SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len) || len < 2)
        return 0;
    list = (size_t)p[0] << 8 | p[1];
    if (list + 2 != len)
        return 0;
    for (p += 2; list >= 3; p += 3 + n, list -= 3 + n) {
        n = (size_t)p[1] << 8 | p[2];
        if (n + 3 > list)
            return 0;
        if (p[0] == TLSEXT_NAMETYPE_host_name) {
            if (n == 0 || n > 255)
                return 0;
            memcpy(out, p + 3, n);
            return n;
        }
    }
    return 0;
}

static SSL_CTX *ctx_new(struct flb_tls *t, uint32_t w, uint32_t i, char *err, size_t errlen);
static int load(struct flb_tls *t, uint32_t i);
static int verify_mode(const struct flb_tls_cert *c);

/* The certificate is chosen here, before the version and the cipher are: so that a certificate's
 * own settings (a service's lowest version, ciphers, TLS 1.3 suites) hold for its handshakes. */
static int on_client_hello(SSL *ssl, int *alert, void *arg)
{
    const struct flb_tls_worker *tw = arg;
    struct flb_tls *t = tw->tls;
    const struct flb_tls_cert *c;
    char name[256];
    size_t len = hello_name(ssl, name);
    uint32_t i;
    void **slot;

    if (len == 0)
        return SSL_CLIENT_HELLO_SUCCESS; /* the default certificate */
    i = flb_tls_pick(t, name, len);
    if (i == 0)
        return SSL_CLIENT_HELLO_SUCCESS;
    /* This worker's context for the certificate, made the first time SNI picks it. */
    slot = &t->ctx[(size_t)tw->id * t->ncerts + i];
    if (*slot == NULL) {
        char err[128];
        if (load(t, i) != FLB_OK || (*slot = ctx_new(t, tw->id, i, err, sizeof(err))) == NULL) {
            *alert = SSL_AD_INTERNAL_ERROR;
            return SSL_CLIENT_HELLO_ERROR;
        }
        atomic_fetch_add_explicit(&flb_tls_live, 1, RELAXED);
    }
    /* The switch takes the certificate and ALPN from the new context; the connection keeps the first
     * context's version range and ciphers, so this certificate's are set on it too. */
    SSL_set_SSL_CTX(ssl, *slot);
    c = &t->certs[i];
    SSL_set_verify(ssl, verify_mode(c), NULL); /* the connection took the first context's */
    if (SSL_set_min_proto_version(ssl, c->min_version ? c->min_version : TLS1_2_VERSION) != 1 ||
        SSL_set_cipher_list(ssl, c->ciphers != NULL ? c->ciphers : CIPHERS_12) != 1 ||
        (c->suites != NULL && SSL_set_ciphersuites(ssl, c->suites) != 1)) {
        ERR_clear_error();
        *alert = SSL_AD_INTERNAL_ERROR;
        return SSL_CLIENT_HELLO_ERROR;
    }
    return SSL_CLIENT_HELLO_SUCCESS;
}

/* The name was taken into account by on_client_hello: acknowledged here. */
static int on_servername(SSL *ssl, int *alert, void *arg)
{
    (void)ssl;
    (void)alert;
    (void)arg;
    return SSL_TLSEXT_ERR_OK;
}

static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                   unsigned int inlen, void *arg)
{
    static const unsigned char mine[] = "\x08http/1.1"; /* h2 joins here with HTTP/2 */
    const struct flb_tls_cert *c = arg;
    const unsigned char *offer = c->alpn != NULL ? c->alpn : mine;
    unsigned int offer_len = c->alpn != NULL ? c->alpn_len : sizeof(mine) - 1;
    unsigned char *sel;

    (void)ssl;
    if (c->no_alpn)
        return SSL_TLSEXT_ERR_NOACK;
    if (SSL_select_next_proto(&sel, outlen, offer, offer_len, in, inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK; /* no protocol in common: none named (HTTP/1.1 on an http listener) */
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

static void say(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    char lib[256] = "";

    if (e != 0)
        ERR_error_string_n(e, lib, sizeof(lib));
    snprintf(err, errlen, "%s%s%s", what, e != 0 ? ": " : "", lib);
    ERR_clear_error();
}

/* --- session tickets ------------------------------------------------------------------------------ */

struct flb_tls_tickets *flb_tls_tickets_new(void)
{
    struct flb_tls_tickets *k = calloc(1, sizeof(*k));

    if (k == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    atomic_init(&k->refs, 1);
    k->aes128 = EVP_CIPHER_fetch(NULL, "AES-128-CBC", NULL);
    k->aes256 = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL);
    if (k->aes128 == NULL || k->aes256 == NULL) {
        ERR_clear_error();
        flb_tls_tickets_put(k);
        errno = ENOMEM;
        return NULL;
    }
    return k;
}

static struct flb_tls_tickets *tickets_get(struct flb_tls_tickets *k)
{
    if (k != NULL)
        atomic_fetch_add_explicit(&k->refs, 1, RELAXED);
    return k;
}

void flb_tls_tickets_put(struct flb_tls_tickets *k)
{
    if (k == NULL || atomic_fetch_sub_explicit(&k->refs, 1, memory_order_acq_rel) != 1)
        return;
    EVP_CIPHER_free(k->aes128);
    EVP_CIPHER_free(k->aes256);
    OPENSSL_cleanse(k->words, sizeof(k->words));
    free(k);
}

int flb_tls_tickets_set(struct flb_tls_tickets *k, const unsigned char *keys, uint32_t nkeys, size_t key_len,
                        uint32_t enc)
{
    uint64_t w[FLB_TLS_TICKET_KEYS][FLB_TLS_TICKET_WORDS] = {{0}};
    uint32_t seq = atomic_load_explicit(&k->seq, RELAXED);

    if (nkeys > FLB_TLS_TICKET_KEYS || (nkeys > 0 && enc >= nkeys) ||
        (nkeys > 0 && key_len != 48 && key_len != 80)) {
        errno = EINVAL;
        return FLB_ERR;
    }
    for (uint32_t i = 0; i < nkeys; i++)
        memcpy(w[i], keys + (size_t)i * key_len, key_len);
    atomic_store_explicit(&k->seq, seq + 1, RELAXED);
    atomic_thread_fence(memory_order_release);
    for (uint32_t i = 0; i < FLB_TLS_TICKET_KEYS; i++)
        for (uint32_t j = 0; j < FLB_TLS_TICKET_WORDS; j++)
            atomic_store_explicit(&k->words[i][j], w[i][j], RELAXED);
    atomic_store_explicit(&k->nkeys, nkeys, RELAXED);
    atomic_store_explicit(&k->enc, enc, RELAXED);
    atomic_store_explicit(&k->aes_len, key_len == 48 ? 16 : 32, RELAXED);
    atomic_store_explicit(&k->seq, seq + 2, memory_order_release);
    OPENSSL_cleanse(w, sizeof(w));
    return FLB_OK;
}

/* What a handshake reads of the keys: a consistent copy (the sequence lock's read side). */
struct ticket_view {
    uint32_t nkeys, enc, aes_len;
    uint64_t words[FLB_TLS_TICKET_KEYS][FLB_TLS_TICKET_WORDS];
};

static void tickets_read(struct flb_tls_tickets *k, struct ticket_view *v)
{
    uint32_t before, after;

    do {
        before = atomic_load_explicit(&k->seq, memory_order_acquire);
        v->nkeys = atomic_load_explicit(&k->nkeys, RELAXED);
        v->enc = atomic_load_explicit(&k->enc, RELAXED);
        v->aes_len = atomic_load_explicit(&k->aes_len, RELAXED);
        for (uint32_t i = 0; i < v->nkeys && i < FLB_TLS_TICKET_KEYS; i++)
            for (uint32_t j = 0; j < FLB_TLS_TICKET_WORDS; j++)
                v->words[i][j] = atomic_load_explicit(&k->words[i][j], RELAXED);
        atomic_thread_fence(memory_order_acquire);
        after = atomic_load_explicit(&k->seq, RELAXED);
    } while ((before & 1) != 0 || before != after);
}

/* OpenSSL's ticket callback: <enc> 1 seals a new ticket with the encrypting key (its name written in
 * <name>), 0 opens one by the key its <name> gives. 1: done; 2: opened, and a new ticket is to be
 * issued (an older key's); 0: no such key (a full handshake); -1: an error. */
static int on_ticket(SSL *ssl, unsigned char name[16], unsigned char *iv, EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx,
                     int enc)
{
    const struct flb_tls_cert *c = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    struct flb_tls_tickets *k = c->tickets;
    struct ticket_view v;
    const unsigned char *key;
    uint32_t i;
    int rc = -1;

    tickets_read(k, &v);
    if (v.nkeys == 0)
        return 0; /* tickets off: none issued (an empty one), none taken */
    if (enc) {
        i = v.enc;
        key = (const unsigned char *)v.words[i];
        if (RAND_bytes(iv, 16) != 1)
            goto out;
        memcpy(name, key, 16);
    } else {
        for (i = 0; i < v.nkeys; i++)
            if (memcmp(name, v.words[i], 16) == 0)
                break;
        if (i == v.nkeys) {
            rc = 0;
            goto out;
        }
        key = (const unsigned char *)v.words[i];
    }
    {
        const unsigned char *aes = key + 16, *hmac = key + 16 + v.aes_len;
        const EVP_CIPHER *cipher = v.aes_len == 16 ? k->aes128 : k->aes256;
        OSSL_PARAM params[] = {
            OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)hmac, v.aes_len),
            OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
            OSSL_PARAM_construct_end(),
        };
        if (EVP_MAC_CTX_set_params(hctx, params) != 1)
            goto out;
        if ((enc ? EVP_EncryptInit_ex(cctx, cipher, NULL, aes, iv) : EVP_DecryptInit_ex(cctx, cipher, NULL, aes, iv)) != 1)
            goto out;
    }
    /* 2: a new ticket goes out. Always in TLS 1.3, whose clients use a ticket once (OpenSSL's, among
     * others): without one after each resumption, every other connection would be a full handshake.
     * In TLS 1.2 when an older key opened it. */
    rc = enc ? 1 : (i != v.enc || SSL_version(ssl) >= TLS1_3_VERSION) ? 2 : 1;
out:
    if (rc < 0)
        ERR_clear_error();
    OPENSSL_cleanse(&v, sizeof(v));
    return rc;
}

/* --- contexts ------------------------------------------------------------------------------------ */

struct flb_tls *flb_tls_new(uint32_t nworkers, uint32_t ncerts, uint32_t handshake_ms,
                            struct flb_tls_tickets *tickets)
{
    struct flb_tls *t = calloc(1, sizeof(*t));

    if (t == NULL || nworkers == 0 || ncerts == 0)
        goto fail;
    t->certs = calloc(ncerts, sizeof(*t->certs));
    t->ctx = calloc((size_t)nworkers * ncerts, sizeof(*t->ctx));
    t->ws = calloc(nworkers, sizeof(*t->ws));
    if (t->certs == NULL || t->ctx == NULL || t->ws == NULL)
        goto fail;
    atomic_init(&t->refs, 1);
    t->nworkers = nworkers;
    t->ncerts = ncerts;
    t->handshake_ms = handshake_ms;
    pthread_mutex_init(&t->lock, NULL);
    t->tickets = tickets_get(tickets);
    for (uint32_t i = 0; i < ncerts; i++)
        t->certs[i].tickets = t->tickets;
    for (uint32_t w = 0; w < nworkers; w++)
        t->ws[w] = (struct flb_tls_worker){t, w};
    return t;
fail:
    if (t != NULL) {
        free(t->certs);
        free(t->ctx);
        free(t->ws);
        free(t);
    }
    errno = nworkers == 0 || ncerts == 0 ? EINVAL : ENOMEM;
    return NULL;
}

/* Sessions resume under the certificate they were made with only: the session context is the
 * leaf's digest (OpenSSL moves a connection to the context SNI picks, in on_client_hello). */
static int session_context(SSL_CTX *ctx, const struct flb_tls_cert *c)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;

    if (X509_digest(c->leaf, EVP_sha256(), md, &n) != 1)
        return 0;
    return SSL_CTX_set_session_id_context(ctx, md, n < SSL_MAX_SID_CTX_LENGTH ? n : SSL_MAX_SID_CTX_LENGTH) == 1;
}

static int verify_mode(const struct flb_tls_cert *c)
{
    if (c->verify == 0)
        return SSL_VERIFY_NONE;
    return SSL_VERIFY_PEER | (c->verify == 2 ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0);
}

static int client_certificates(SSL_CTX *ctx, const struct flb_tls_cert *c)
{
    STACK_OF(X509_NAME) *names;

    if (c->verify == 0)
        return 1;
    if ((names = SSL_dup_CA_list(c->ca_names)) == NULL)
        return 0;
    SSL_CTX_set1_cert_store(ctx, c->store);
    SSL_CTX_set_client_CA_list(ctx, names);
    SSL_CTX_set_verify(ctx, verify_mode(c), NULL);
    return 1;
}

/* Worker <w>'s context for certificate <i> (parsed: flb_tls_set). */
static SSL_CTX *ctx_new(struct flb_tls *t, uint32_t w, uint32_t i, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    const struct flb_tls_cert *c = &t->certs[i];
    X509 *leaf = c->leaf;
    STACK_OF(X509) *chain = c->chain;
    EVP_PKEY *key = c->key;

    if (ctx == NULL) {
        say(err, errlen, "cannot make a TLS context");
        return NULL;
    }

    SSL_CTX_set_min_proto_version(ctx, c->min_version ? c->min_version : TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_IGNORE_UNEXPECTED_EOF |
                                 (t->tickets == NULL ? SSL_OP_NO_TICKET : 0));
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* Sessions live in tickets only (a worker's own cache would resume on that worker alone). */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (t->tickets == NULL)
        SSL_CTX_set_num_tickets(ctx, 0);
    else if (SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, on_ticket) != 1) {
        say(err, errlen, "cannot set the session ticket keys");
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_alpn_select_cb(ctx, on_alpn, &t->certs[i]);
    SSL_CTX_set_client_hello_cb(ctx, on_client_hello, &t->ws[w]);
    SSL_CTX_set_tlsext_servername_callback(ctx, on_servername);
    SSL_CTX_set_app_data(ctx, &t->certs[i]);
    if (!session_context(ctx, c) || !client_certificates(ctx, c)) {
        say(err, errlen, "cannot set the session context or the client certificate CAs");
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_set_cipher_list(ctx, c->ciphers != NULL ? c->ciphers : CIPHERS_12) != 1 ||
        (c->suites != NULL && SSL_CTX_set_ciphersuites(ctx, c->suites) != 1)) {
        say(err, errlen, "the ciphers or cipher suites name none OpenSSL has");
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_use_certificate(ctx, leaf) != 1 ||
        SSL_CTX_use_PrivateKey(ctx, key) != 1) {
        say(err, errlen, "the certificate or its key cannot be used");
        SSL_CTX_free(ctx);
        return NULL;
    }
    for (int k = 0; k < sk_X509_num(chain); k++) {
        if (SSL_CTX_add1_chain_cert(ctx, sk_X509_value(chain, k)) != 1) {
            say(err, errlen, "a chain certificate cannot be used");
            SSL_CTX_free(ctx);
            return NULL;
        }
    }
    return ctx; /* the key was checked against the certificate when it was read */
}

static char **names_dup(const char *const *names, uint32_t n, uint32_t *count)
{
    char **out = calloc(n ? n : 1, sizeof(*out));

    *count = 0;
    if (out == NULL)
        return NULL;
    for (uint32_t j = 0; j < n; j++) {
        char h[256];
        ssize_t k = host_norm(names[j], strlen(names[j]), h);
        if (k < 0 || (out[j] = strndup(h, (size_t)k)) == NULL)
            break;
        *count = j + 1;
    }
    return out;
}

int flb_tls_options(struct flb_tls *t, uint32_t i, const char *const *claims, uint32_t nclaims,
                    const unsigned char *alpn, size_t alpn_len, const char *min_version, const char *ciphers,
                    const char *suites, char *err, size_t errlen)
{
    struct flb_tls_cert *c = &t->certs[i];

    if (i >= t->ncerts || c->names != NULL || c->claims != NULL || alpn_len > 65535) {
        snprintf(err, errlen, "certificate %u: options cannot be set", (unsigned)i);
        return FLB_ERR;
    }
    if (min_version == NULL || strcmp(min_version, "TLSv1.2") == 0)
        c->min_version = TLS1_2_VERSION;
    else if (strcmp(min_version, "TLSv1.3") == 0)
        c->min_version = TLS1_3_VERSION;
    else {
        snprintf(err, errlen, "the lowest version is TLSv1.2 or TLSv1.3, not %.40s", min_version);
        return FLB_ERR;
    }
    for (size_t k = 0; alpn != NULL && k < alpn_len; k += 1 + (size_t)alpn[k]) {
        if (alpn[k] == 0 || k + 1 + alpn[k] > alpn_len) {
            snprintf(err, errlen, "the ALPN protocols are not in wire format");
            return FLB_ERR;
        }
    }
    c->claims = names_dup(claims, nclaims, &c->nclaims);
    if (c->claims == NULL || c->nclaims != nclaims)
        goto nomem;
    c->no_alpn = alpn != NULL && alpn_len == 0;
    if (alpn != NULL && alpn_len > 0) {
        if ((c->alpn = malloc(alpn_len)) == NULL)
            goto nomem;
        memcpy(c->alpn, alpn, alpn_len);
        c->alpn_len = (uint32_t)alpn_len;
    }
    if ((ciphers != NULL && (c->ciphers = strdup(ciphers)) == NULL) ||
        (suites != NULL && (c->suites = strdup(suites)) == NULL))
        goto nomem;
    /* Contexts are made later (a worker's, on first use): the settings are tried now, on one context. */
    if (ciphers != NULL || suites != NULL) {
        if (t->probe == NULL && (t->probe = SSL_CTX_new(TLS_server_method())) == NULL) {
            say(err, errlen, "cannot make a TLS context");
            return FLB_ERR;
        }
        if ((ciphers != NULL && SSL_CTX_set_cipher_list(t->probe, ciphers) != 1) ||
            (suites != NULL && SSL_CTX_set_ciphersuites(t->probe, suites) != 1)) {
            say(err, errlen, "the ciphers or cipher suites name none OpenSSL has");
            return FLB_ERR;
        }
    }
    return FLB_OK;
nomem:
    snprintf(err, errlen, "out of memory");
    return FLB_ERR;
}

int flb_tls_verify(struct flb_tls *t, uint32_t i, int mode, const char *ca_pem, size_t len, char *err, size_t errlen)
{
    struct flb_tls_cert *c = &t->certs[i];
    STACK_OF(X509_INFO) *infos = NULL;
    X509_STORE *store = NULL;
    STACK_OF(X509_NAME) *names = NULL;
    BIO *bio = NULL;
    int n = 0, rc = FLB_ERR;

    if (i >= t->ncerts || c->names != NULL || c->store != NULL || mode < 1 || mode > 2 || len > INT_MAX) {
        snprintf(err, errlen, "certificate %u: client certificates cannot be set", (unsigned)i);
        return FLB_ERR;
    }
    if ((bio = BIO_new_mem_buf(ca_pem, (int)len)) == NULL || (store = X509_STORE_new()) == NULL ||
        (names = sk_X509_NAME_new_null()) == NULL)
        goto nomem;
    infos = PEM_X509_INFO_read_bio(bio, NULL, NULL, NULL);
    for (int k = 0; infos != NULL && k < sk_X509_INFO_num(infos); k++) {
        X509 *ca = sk_X509_INFO_value(infos, k)->x509;
        X509_NAME *name;
        if (ca == NULL)
            continue;
        if (X509_STORE_add_cert(store, ca) != 1 || (name = X509_NAME_dup(X509_get_subject_name(ca))) == NULL)
            goto nomem;
        if (!sk_X509_NAME_push(names, name)) {
            X509_NAME_free(name);
            goto nomem;
        }
        n++;
    }
    ERR_clear_error();
    if (n == 0) {
        snprintf(err, errlen, "no PEM CA certificate to verify client certificates with");
        goto out;
    }
    c->verify = mode;
    c->store = store;
    c->ca_names = names;
    store = NULL;
    names = NULL;
    rc = FLB_OK;
    goto out;
nomem:
    snprintf(err, errlen, "out of memory");
out:
    sk_X509_INFO_pop_free(infos, X509_INFO_free);
    sk_X509_NAME_pop_free(names, X509_NAME_free);
    X509_STORE_free(store);
    BIO_free(bio);
    return rc;
}

/* What reads certificates: a key decoder, made once and used for every key it reads (making one
 * costs ten times decoding a key with it), and where that decoder puts its key. One per thread. */
struct reader {
    OSSL_DECODER_CTX *decoder;
    EVP_PKEY *decoded;
};

static void reader_done(struct reader *r)
{
    OSSL_DECODER_CTX_free(r->decoder);
    r->decoder = NULL;
}

/* The key in DER (<der>, <len> bytes: PKCS#8, or the type's own). NULL when it is none. */
static EVP_PKEY *key_decode(struct reader *r, const unsigned char *der, size_t len)
{
    EVP_PKEY *key;

    if (r->decoder == NULL) {
        r->decoder = OSSL_DECODER_CTX_new_for_pkey(&r->decoded, "DER", NULL, NULL, EVP_PKEY_KEYPAIR, NULL, NULL);
        if (r->decoder == NULL)
            return NULL;
    }
    r->decoded = NULL;
    if (OSSL_DECODER_from_data(r->decoder, &der, &len) != 1) {
        EVP_PKEY_free(r->decoded);
        r->decoded = NULL;
        return NULL;
    }
    key = r->decoded;
    r->decoded = NULL;
    return key;
}

/* Reads <pem> (<len> bytes) into <c>: its certificates in order (the first the leaf, the others its
 * chain) and its first private key, in one pass over the PEM blocks, and checks that they match.
 * FLB_OK, or FLB_ERR with the reason in <err>. Touches nothing shared: threads may read at once. */
static int parse(struct reader *r, struct flb_tls_cert *c, const char *pem, size_t len, char *err, size_t errlen)
{
    BIO *bio = NULL;
    X509 *leaf = NULL, *x;
    STACK_OF(X509) *chain = sk_X509_new_null();
    EVP_PKEY *key = NULL;
    char *type = NULL, *header = NULL;
    unsigned char *der = NULL;
    long dlen;
    int rc = FLB_ERR, encrypted = 0;

    atomic_fetch_add_explicit(&flb_tls_reads, 1, RELAXED);
    if (len > INT_MAX || chain == NULL || (bio = BIO_new_mem_buf(pem, (int)len)) == NULL)
        goto nomem;
    while (PEM_read_bio(bio, &type, &header, &der, &dlen) == 1) {
        const unsigned char *p = der;
        if (strcmp(type, PEM_STRING_X509) == 0 || strcmp(type, PEM_STRING_X509_OLD) == 0) {
            if ((x = d2i_X509(NULL, &p, dlen)) == NULL) {
                say(err, errlen, "a certificate in it cannot be read");
                goto out;
            }
            if (leaf == NULL)
                leaf = x;
            else if (!sk_X509_push(chain, x)) {
                X509_free(x);
                goto nomem;
            }
        } else if (strstr(type, "PRIVATE KEY") != NULL && key == NULL) {
            if (strstr(type, "ENCRYPTED") != NULL || strstr(header, "ENCRYPTED") != NULL)
                encrypted = 1;
            else if ((key = key_decode(r, p, (size_t)dlen)) == NULL) {
                say(err, errlen, "its private key cannot be read");
                goto out;
            }
        }
        OPENSSL_free(type);
        OPENSSL_free(header);
        OPENSSL_free(der);
        type = header = NULL;
        der = NULL;
    }
    ERR_clear_error(); /* the read that found no more blocks */
    if (leaf == NULL) {
        snprintf(err, errlen, "no PEM certificate in it");
        goto out;
    }
    if (key == NULL) {
        snprintf(err, errlen, "no PEM private key in it%s", encrypted ? " (its key is under a passphrase)" : "");
        goto out;
    }
    if (X509_check_private_key(leaf, key) != 1) {
        ERR_clear_error();
        snprintf(err, errlen, "the key does not match the certificate");
        goto out;
    }
    c->leaf = leaf;
    c->chain = chain;
    c->key = key;
    leaf = NULL;
    chain = NULL;
    key = NULL;
    rc = FLB_OK;
    goto out;
nomem:
    snprintf(err, errlen, "out of memory");
out:
    OPENSSL_free(type);
    OPENSSL_free(header);
    OPENSSL_free(der);
    BIO_free(bio);
    X509_free(leaf);
    sk_X509_pop_free(chain, X509_free);
    EVP_PKEY_free(key);
    return rc;
}

/* Certificate <i> serves <names>; every worker's context for it when it is the default one (the
 * others are made by each worker on first use). */
static int install(struct flb_tls *t, uint32_t i, const char *const *names, uint32_t nnames, char *err,
                   size_t errlen)
{
    struct flb_tls_cert *c = &t->certs[i];

    c->names = names_dup(names, nnames, &c->nnames);
    if (c->names == NULL || c->nnames != nnames) {
        snprintf(err, errlen, "out of memory");
        return FLB_ERR;
    }
    for (uint32_t w = 0; i == 0 && w < t->nworkers; w++) {
        void *ctx = ctx_new(t, w, i, err, errlen);
        if (ctx == NULL)
            return FLB_ERR;
        t->ctx[(size_t)w * t->ncerts + i] = ctx;
        atomic_fetch_add_explicit(&flb_tls_live, 1, RELAXED);
    }
    return FLB_OK;
}

int flb_tls_set(struct flb_tls *t, uint32_t i, const char *pem, size_t len, const char *const *names,
                uint32_t nnames, char *err, size_t errlen)
{
    struct flb_tls_cert *c = &t->certs[i];
    struct reader r = {0};
    int rc;

    if (i >= t->ncerts || c->names != NULL || c->leaf != NULL || c->pem != NULL) {
        snprintf(err, errlen, "certificate %u cannot be set", (unsigned)i);
        return FLB_ERR;
    }
    if (i > 0) {
        /* Read when SNI first picks it (load()): the control plane has checked it already. */
        if ((c->pem = malloc(len ? len : 1)) == NULL) {
            snprintf(err, errlen, "out of memory");
            return FLB_ERR;
        }
        memcpy(c->pem, pem, len);
        c->pem_len = len;
        return install(t, i, names, nnames, err, errlen);
    }
    rc = parse(&r, c, pem, len, err, errlen);
    reader_done(&r);
    if (rc == FLB_OK)
        atomic_store_explicit(&c->state, 1, memory_order_release);
    return rc == FLB_OK ? install(t, i, names, nnames, err, errlen) : rc;
}

/* Certificate <i> read (its certificate, chain and key parsed) by the first worker that needs it:
 * FLB_OK, or FLB_ERR when it cannot be (then never tried again). Workers wait on each other here
 * only while one reads a certificate none has read. */
static int load(struct flb_tls *t, uint32_t i)
{
    struct flb_tls_cert *c = &t->certs[i];
    int state = atomic_load_explicit(&c->state, memory_order_acquire);

    if (state != 0)
        return state > 0 ? FLB_OK : FLB_ERR;
    pthread_mutex_lock(&t->lock);
    state = atomic_load_explicit(&c->state, memory_order_relaxed);
    if (state == 0) {
        struct reader r = {0};
        char err[128];
        state = parse(&r, c, c->pem, c->pem_len, err, sizeof(err)) == FLB_OK ? 1 : -1;
        reader_done(&r);
        free(c->pem);
        c->pem = NULL;
        atomic_store_explicit(&c->state, state, memory_order_release);
    }
    pthread_mutex_unlock(&t->lock);
    return state > 0 ? FLB_OK : FLB_ERR;
}

int flb_tls_loaded(const struct flb_tls *t, uint32_t i)
{
    return i < t->ncerts && atomic_load_explicit(&t->certs[i].state, memory_order_acquire) > 0;
}

int flb_tls_set_from(struct flb_tls *t, uint32_t i, const struct flb_tls *from, uint32_t j, const char *const *names,
                     uint32_t nnames, char *err, size_t errlen)
{
    struct flb_tls_cert *c = &t->certs[i];
    const struct flb_tls_cert *f;

    if (i >= t->ncerts || j >= from->ncerts || c->names != NULL || c->leaf != NULL || c->pem != NULL ||
        !flb_tls_loaded(from, j)) {
        snprintf(err, errlen, "certificate %u cannot be set", (unsigned)i);
        return FLB_ERR;
    }
    f = &from->certs[j];
    if ((c->chain = X509_chain_up_ref(f->chain)) == NULL) {
        snprintf(err, errlen, "out of memory");
        return FLB_ERR;
    }
    X509_up_ref(f->leaf);
    EVP_PKEY_up_ref(f->key);
    c->leaf = f->leaf;
    c->key = f->key;
    atomic_store_explicit(&c->state, 1, memory_order_release);
    return install(t, i, names, nnames, err, errlen);
}

struct flb_tls *flb_tls_get(struct flb_tls *t)
{
    atomic_fetch_add_explicit(&t->refs, 1, RELAXED);
    return t;
}

void flb_tls_put(struct flb_tls *t)
{
    if (t == NULL || atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t k = 0; k < (size_t)t->nworkers * t->ncerts; k++) {
        if (t->ctx[k] != NULL) {
            SSL_CTX_free(t->ctx[k]);
            atomic_fetch_sub_explicit(&flb_tls_live, 1, RELAXED);
        }
    }
    for (uint32_t i = 0; i < t->ncerts; i++) {
        struct flb_tls_cert *c = &t->certs[i];
        for (uint32_t j = 0; j < c->nnames; j++)
            free(c->names[j]);
        for (uint32_t j = 0; j < c->nclaims; j++)
            free(c->claims[j]);
        free(c->names);
        free(c->claims);
        free(c->alpn);
        free(c->ciphers);
        free(c->suites);
        X509_free(c->leaf);
        sk_X509_pop_free(c->chain, X509_free);
        EVP_PKEY_free(c->key);
        free(c->pem);
        X509_STORE_free(c->store);
        sk_X509_NAME_pop_free(c->ca_names, X509_NAME_free);
    }
    pthread_mutex_destroy(&t->lock);
    SSL_CTX_free(t->probe);
    free(t->certs);
    free(t->ctx);
    free(t->ws);
    flb_tls_tickets_put(t->tickets);
    free(t);
}

/* --- the transport ------------------------------------------------------------------------------- */

static enum flb_tls_fail why(int e)
{
    unsigned long code = ERR_peek_error();

    if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN)
        return FLB_TLS_F_EOF;
    if (ERR_GET_LIB(code) != ERR_LIB_SSL)
        return FLB_TLS_F_PROTOCOL;
    switch (ERR_GET_REASON(code)) {
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_VERSION_TOO_LOW:
        return FLB_TLS_F_VERSION;
    case SSL_R_NO_SHARED_CIPHER:
        return FLB_TLS_F_CIPHER;
    case SSL_R_HTTP_REQUEST:
    case SSL_R_HTTPS_PROXY_REQUEST:
        return FLB_TLS_F_HTTP;
    case SSL_R_UNEXPECTED_EOF_WHILE_READING:
        return FLB_TLS_F_EOF;
    case SSL_R_CALLBACK_FAILED: /* the ClientHello callback: the certificate SNI picked cannot be used */
        return FLB_TLS_F_CERT;
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
        return FLB_TLS_F_CLIENT;
    default:
        return FLB_TLS_F_PROTOCOL;
    }
}

/* OpenSSL's answer <r> to a call that did not succeed, as _api.h's: FLB_AGAIN with the wait flags,
 * 0 at the end of the stream, FLB_ERR with errno. */
static ssize_t failed(struct flb_xprt *x, int r)
{
    int e = SSL_get_error(x->ctx, r);

    switch (e) {
    case SSL_ERROR_WANT_READ:
        return FLB_AGAIN;
    case SSL_ERROR_WANT_WRITE:
        x->wait_out = 1;
        return FLB_AGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        ERR_clear_error();
        if (errno == 0)
            return 0;
        return FLB_ERR;
    default:
        ERR_clear_error();
        errno = EPROTO;
        return FLB_ERR;
    }
}

/* Drives the handshake on. FLB_OK once over, FLB_AGAIN while under way, FLB_ERR (counted) when it failed. */
static int handshake(struct flb_xprt *x)
{
    struct flb_tls_counters *c = x->counters;
    int r, e;

    errno = 0;
    r = SSL_do_handshake(x->ctx);
    if (r == 1) {
        x->ready = 1;
        COUNT(c->handshakes, 1);
        if (SSL_session_reused(x->ctx))
            COUNT(c->resumed, 1);
        return FLB_OK;
    }
    e = SSL_get_error(x->ctx, r);
    if (e == SSL_ERROR_WANT_READ)
        return FLB_AGAIN;
    if (e == SSL_ERROR_WANT_WRITE) {
        x->wait_out = 1;
        return FLB_AGAIN;
    }
    enum flb_tls_fail f = why(e);
    if (f == FLB_TLS_F_PROTOCOL && SSL_get_verify_result(x->ctx) != X509_V_OK)
        f = FLB_TLS_F_CLIENT; /* a client certificate that did not verify, whatever the alert said */
    COUNT(c->failed[f], 1);
    ERR_clear_error();
    if (f == FLB_TLS_F_HTTP) /* a best effort: the connection closes next */
        (void)!send(x->fd, PLAIN_400, sizeof(PLAIN_400) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    errno = EPROTO;
    return FLB_ERR;
}

static ssize_t tls_recv(struct flb_xprt *x, void *buf, size_t len)
{
    size_t got = 0;

    x->wait_out = 0;
    if (!x->ready) {
        int r = handshake(x);
        if (r != FLB_OK)
            return r;
    }
    /* Reads until <buf> is full or the socket is empty, so that a short read means what a plain
     * socket's does: nothing is left to read until epoll says so. */
    while (got < len) {
        size_t want = len - got > INT_MAX ? INT_MAX : len - got;
        errno = 0;
        int r = SSL_read(x->ctx, (char *)buf + got, (int)want);
        if (r > 0) {
            got += (size_t)r;
            continue;
        }
        if (got > 0) {
            int e = SSL_get_error(x->ctx, r);
            if (e == SSL_ERROR_WANT_WRITE)
                x->wait_out = 1;
            else if (e != SSL_ERROR_WANT_READ)
                ERR_clear_error(); /* the end or the error comes again on the next read */
            break;
        }
        return failed(x, r);
    }
    return (ssize_t)got;
}

static ssize_t tls_sendv(struct flb_xprt *x, const struct iovec *iov, int iovcnt, int more)
{
    static _Thread_local char gather[GATHER];
    const char *p = iov[0].iov_base;
    size_t n = iov[0].iov_len;
    int r;

    (void)more;
    x->wait_in = 0;
    if (!x->ready) {
        int h = handshake(x);
        if (h != FLB_OK)
            return h;
    }
    /* A head cut around its edits comes in small pieces: one record for them, not one each. The
     * pieces stay queued until written, so a retry after FLB_AGAIN gathers the same bytes first. */
    if (iovcnt > 1 && n < GATHER) {
        n = 0;
        for (int k = 0; k < iovcnt && n < GATHER; k++) {
            size_t take = iov[k].iov_len < GATHER - n ? iov[k].iov_len : GATHER - n;
            memcpy(gather + n, iov[k].iov_base, take);
            n += take;
        }
        p = gather;
    }
    if (n == 0)
        return 0;
    errno = 0;
    r = SSL_write(x->ctx, p, n > INT_MAX ? INT_MAX : (int)n);
    if (r > 0)
        return r;
    if (SSL_get_error(x->ctx, r) == SSL_ERROR_WANT_READ) {
        x->wait_in = 1;
        return FLB_AGAIN;
    }
    ssize_t f = failed(x, r);
    if (f == 0) {
        errno = EPIPE;
        return FLB_ERR;
    }
    return f;
}

static void tls_shutw(struct flb_xprt *x)
{
    if (x->ready && SSL_shutdown(x->ctx) < 0)
        ERR_clear_error(); /* close_notify is a courtesy: the FIN follows all the same */
    shutdown(x->fd, SHUT_WR);
}

static void tls_close(struct flb_xprt *x)
{
    if (x->ctx != NULL) {
        SSL_free(x->ctx);
        atomic_fetch_sub_explicit(&flb_tls_live, 1, RELAXED);
    }
    x->ctx = NULL;
}

static int tls_authority(const struct flb_xprt *x, const char *name, size_t len)
{
    const struct flb_tls_cert *c = SSL_CTX_get_app_data(SSL_get_SSL_CTX(x->ctx));

    return c == NULL || flb_tls_covers(c, name, len);
}

static void tls_timeout(struct flb_xprt *x)
{
    struct flb_tls_counters *c = x->counters;

    if (!x->ready)
        COUNT(c->failed[FLB_TLS_F_TIMEOUT], 1);
}

static int tls_handshake(struct flb_xprt *x)
{
    x->wait_out = 0;
    return handshake(x);
}

/* A record read in part, or the peer's close_notify read along with the last bytes (tls_recv gave
 * those; the end of the stream is the next read's). */
static int tls_buffered(const struct flb_xprt *x)
{
    return SSL_has_pending(x->ctx) || (SSL_get_shutdown(x->ctx) & SSL_RECEIVED_SHUTDOWN);
}

static const struct flb_xprt_ops tls_ops = {
    .recv = tls_recv,
    .sendv = tls_sendv,
    .shutw = tls_shutw,
    .close = tls_close,
    .authority = tls_authority,
    .timeout = tls_timeout,
    .handshake = tls_handshake,
    .buffered = tls_buffered,
    .splice = 0,
    .secure = 1,
};

int flb_tls_accept(struct flb_xprt *x, struct flb_tls *t, uint32_t worker, struct flb_tls_counters *c)
{
    SSL *ssl = SSL_new(t->ctx[(size_t)worker * t->ncerts]);

    if (ssl == NULL || SSL_set_fd(ssl, x->fd) != 1) {
        SSL_free(ssl);
        ERR_clear_error();
        errno = ENOMEM;
        return FLB_ERR;
    }
    atomic_fetch_add_explicit(&flb_tls_live, 1, RELAXED);
    SSL_set_accept_state(ssl);
    x->ops = &tls_ops;
    x->ctx = ssl;
    x->ready = 0;
    x->counters = c;
    return FLB_OK;
}

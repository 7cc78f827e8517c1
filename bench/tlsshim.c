/* An LD_PRELOAD shim for wrk: decides whether each new TLS connection offers a session to resume, and
 * counts what the handshakes did. bench/tls.py builds it (cc -shared) into the results folder.
 *
 * wrk keeps one SSL object per connection slot and, on reconnecting, calls SSL_shutdown() and
 * SSL_clear(), which keeps the session: its next handshake offers whatever the object held last, so
 * whether it resumes depends on when the server sent its last ticket. FASTLB_BENCH_TLS_SESSIONS makes
 * that explicit:
 *   "none":  no session is ever offered: every handshake is a full one (tls_cps);
 *   "reuse": each slot offers the last resumable session it was given (tls_resumed);
 *   unset or anything else: wrk's own behaviour, counted only.
 * At exit the counts go, as one JSON line, to the file FASTLB_BENCH_TLS_COUNTS names: handshakes
 * completed, of them resumed (SSL_session_reused), sessions offered, and the first handshake's
 * protocol version and cipher. Only wrk's one thread (-t1) calls in here; the counters are atomic
 * anyway. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MODE_WRK, MODE_NONE, MODE_REUSE };

static int mode = MODE_WRK;
static int slot = -1; /* SSL ex_data index: the session a slot offers next ("reuse") */
static unsigned long handshakes, resumed, offered;
static char version[32] = "", cipher[64] = "";

static int (*real_set_fd)(SSL *, int);
static int (*real_connect)(SSL *);
static int (*real_shutdown)(SSL *);

static void free_slot(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp) {
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    SSL_SESSION_free(ptr);
}

__attribute__((constructor)) static void init(void) {
    const char *m = getenv("FASTLB_BENCH_TLS_SESSIONS");
    if (m && strcmp(m, "none") == 0)
        mode = MODE_NONE;
    else if (m && strcmp(m, "reuse") == 0)
        mode = MODE_REUSE;
    real_set_fd = (int (*)(SSL *, int))dlsym(RTLD_NEXT, "SSL_set_fd");
    real_connect = (int (*)(SSL *))dlsym(RTLD_NEXT, "SSL_connect");
    real_shutdown = (int (*)(SSL *))dlsym(RTLD_NEXT, "SSL_shutdown");
    slot = SSL_get_ex_new_index(0, NULL, NULL, NULL, free_slot);
}

/* wrk calls SSL_set_fd (and SSL_connect) each time a new connection's socket turns ready until its
 * handshake is over; only the first call, before the handshake has begun, decides what is offered. */
int SSL_set_fd(SSL *s, int fd) {
    int r = real_set_fd(s, fd);
    if (!SSL_in_before(s))
        return r;
    if (mode == MODE_NONE) {
        SSL_set_session(s, NULL);
    } else if (mode == MODE_REUSE) {
        SSL_SESSION *next = SSL_get_ex_data(s, slot);
        SSL_set_session(s, next); /* NULL: nothing to offer yet */
    }
    SSL_SESSION *offer = SSL_get_session(s);
    if (offer && SSL_SESSION_is_resumable(offer))
        __atomic_fetch_add(&offered, 1, __ATOMIC_RELAXED);
    return r;
}

int SSL_connect(SSL *s) {
    int r = real_connect(s);
    if (r == 1) {
        if (__atomic_fetch_add(&handshakes, 1, __ATOMIC_RELAXED) == 0) {
            snprintf(version, sizeof version, "%s", SSL_get_version(s));
            const SSL_CIPHER *c = SSL_get_current_cipher(s);
            snprintf(cipher, sizeof cipher, "%s", c ? SSL_CIPHER_get_name(c) : "?");
        }
        if (SSL_session_reused(s))
            __atomic_fetch_add(&resumed, 1, __ATOMIC_RELAXED);
    }
    return r;
}

/* wrk's close: the session, with the tickets read after the handshake, is kept for the slot's next
 * connection ("reuse"). */
int SSL_shutdown(SSL *s) {
    if (mode == MODE_REUSE) {
        SSL_SESSION *sess = SSL_get1_session(s);
        if (sess && SSL_SESSION_is_resumable(sess)) {
            SSL_SESSION_free(SSL_get_ex_data(s, slot));
            SSL_set_ex_data(s, slot, sess);
        } else {
            SSL_SESSION_free(sess);
        }
    }
    return real_shutdown(s);
}

__attribute__((destructor)) static void report(void) {
    const char *path = getenv("FASTLB_BENCH_TLS_COUNTS");
    if (!path || !*path)
        return;
    FILE *f = fopen(path, "w");
    if (!f)
        return;
    const char *names[] = {"wrk", "none", "reuse"};
    fprintf(f, "{\"mode\":\"%s\",\"handshakes\":%lu,\"resumed\":%lu,\"offered\":%lu,\"version\":\"%s\",\"cipher\":\"%s\"}\n",
            names[mode], handshakes, resumed, offered, version, cipher);
    fclose(f);
}

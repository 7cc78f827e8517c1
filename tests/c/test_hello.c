/* test_hello.c: the ClientHello reader (fastlb/_hello.c), standalone, under ASan and UBSan.
 *
 * Real ClientHellos are captured at the start: `openssl s_client` and Python's ssl each connect to a
 * socket this test listens on, and what they send first is read back, so the cases follow whatever
 * those clients send today (TLS 1.3 key shares, GREASE, padding). Each is then read whole, cut at every
 * byte (FLB_AGAIN), framed again into many small records, and placed right before a PROT_NONE page,
 * so that a read one byte too far faults. Hostile inputs follow: garbage, broken lengths, oversized
 * messages and records. Output is TAP; the exit status is the number of failures.
 * Build and run: make -C tests/c test
 */
#define _GNU_SOURCE
#include "_api.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "_hello.h"
#include "check.h"

#define ARENA_PAGES 64

/* Reads <len> bytes of <data> placed so that they end at the guard page. */
static int readp(const uint8_t *data, size_t len, struct flb_hello *h)
{
    return flb_hello_read((const uint8_t *)guard_place(data, len), len, h);
}

/* --- capture -------------------------------------------------------------------------------------- */

/* Runs <cmd> (a shell line; %d: the port) as a client of a socket listening on 127.0.0.1, and reads
 * what it sends first, until it pauses (it waits for a ServerHello that never comes). */
static size_t capture(const char *cmd, uint8_t *out, size_t cap)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), c;
    char line[1024];
    size_t got = 0;
    pid_t pid;

    if (l == -1 || bind(l, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(l, 1) != 0 ||
        getsockname(l, (struct sockaddr *)&a, &alen) != 0) {
        perror("listen");
        exit(99);
    }
    snprintf(line, sizeof(line), cmd, ntohs(a.sin_port));
    pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 0);
        dup2(devnull, 1);
        dup2(devnull, 2);
        execl("/bin/sh", "sh", "-c", line, (char *)NULL);
        _exit(127);
    }
    c = accept(l, NULL, NULL);
    close(l);
    for (;;) {
        struct pollfd p = {.fd = c, .events = POLLIN};
        if (got == cap || poll(&p, 1, got == 0 ? 10000 : 300) != 1)
            break;
        ssize_t n = read(c, out + got, cap - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(c);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return got;
}

struct hello {
    const char *what;
    const char *cmd;
    int kind;         /* what flb_hello_read answers */
    const char *name; /* FLB_HELLO_SNI: the name it finds */
    uint8_t bytes[FLB_HELLO_WIRE_MAX];
    size_t len;
};

#define PY "python3 -c 'import socket, ssl; c = ssl.create_default_context(); c.check_hostname = False; " \
           "c.verify_mode = ssl.CERT_NONE; c.wrap_socket(socket.create_connection((\"127.0.0.1\", %%d)), "  \
           "server_hostname=%s)'"

static struct hello hellos[] = {
    {"openssl s_client, SNI", "openssl s_client -connect 127.0.0.1:%d -servername Api.Example.com",
     FLB_HELLO_SNI, "api.example.com", {0}, 0},
    {"openssl s_client, TLS 1.2 only", "openssl s_client -tls1_2 -connect 127.0.0.1:%d -servername db.example.com",
     FLB_HELLO_SNI, "db.example.com", {0}, 0},
    {"openssl s_client, no SNI", "openssl s_client -connect 127.0.0.1:%d -noservername", FLB_HELLO_NO_SNI, NULL,
     {0}, 0},
    {"python ssl, SNI", NULL, FLB_HELLO_SNI, "a.b.example.org", {0}, 0},
    {"python ssl, no SNI", NULL, FLB_HELLO_NO_SNI, NULL, {0}, 0},
};

static void capture_all(void)
{
    char cmd[1024];

    for (size_t i = 0; i < sizeof(hellos) / sizeof(hellos[0]); i++) {
        struct hello *h = &hellos[i];
        if (h->cmd == NULL) {
            char name[64];
            snprintf(name, sizeof(name), h->name ? "\"%s\"" : "None", h->name);
            snprintf(cmd, sizeof(cmd), PY, name);
        } else {
            snprintf(cmd, sizeof(cmd), "%s", h->cmd);
        }
        h->len = capture(cmd, h->bytes, sizeof(h->bytes));
        CHECK(h->len > 5 && h->bytes[0] == 0x16, "%s: captured %zu bytes", h->what, h->len);
    }
}

/* --- real ClientHellos ---------------------------------------------------------------------------- */

static void check_answer(const struct hello *h, int rc, const struct flb_hello *out, const char *how)
{
    CHECK(rc == h->kind, "%s (%s): %d, expected %d", h->what, how, rc, h->kind);
    if (rc == FLB_HELLO_SNI && h->name != NULL)
        CHECK(strcmp(out->name, h->name) == 0 && out->name_len == strlen(h->name), "%s (%s): name %s", h->what, how,
              out->name);
}

/* The message out of its records, into <msg>; its length. */
static size_t unframe(const uint8_t *b, size_t len, uint8_t *msg)
{
    size_t n = 0, pos = 0;

    while (pos + 5 <= len) {
        size_t r = (size_t)b[pos + 3] << 8 | b[pos + 4];
        if (pos + 5 + r > len)
            r = len - pos - 5;
        memcpy(msg + n, b + pos + 5, r);
        n += r;
        pos += 5 + r;
    }
    return n;
}

/* <msg> framed into records of <size> payload bytes (the last one shorter), into <out>; its length. */
static size_t frame(const uint8_t *msg, size_t n, size_t size, uint8_t *out, size_t cap)
{
    size_t len = 0;

    for (size_t off = 0; off < n; off += size) {
        size_t k = n - off < size ? n - off : size;
        if (len + 5 + k > cap)
            return 0;
        out[len] = 0x16;
        out[len + 1] = 3;
        out[len + 2] = 1;
        out[len + 3] = (uint8_t)(k >> 8);
        out[len + 4] = (uint8_t)k;
        memcpy(out + len + 5, msg + off, k);
        len += 5 + k;
    }
    return len;
}

static void test_real(void)
{
    static uint8_t msg[FLB_HELLO_WIRE_MAX], wire[4 * FLB_HELLO_WIRE_MAX];
    struct flb_hello out;

    for (size_t i = 0; i < sizeof(hellos) / sizeof(hellos[0]); i++) {
        const struct hello *h = &hellos[i];
        int rc = readp(h->bytes, h->len, &out);
        check_answer(h, rc, &out, "whole");
        /* every cut short of the end of the message is incomplete, never an error */
        size_t n = unframe(h->bytes, h->len, msg);
        size_t whole = 5 + n; /* one record, as both clients send it */
        for (size_t cut = 0; cut < whole && cut < h->len; cut++) {
            int r = readp(h->bytes, cut, &out);
            CHECK(r == FLB_AGAIN, "%s cut at %zu: %d", h->what, cut, r);
        }
        /* the same message framed into records of 1000, 300, 260 (as a proxy might) reads the same */
        static const size_t sizes[] = {1000, 300, 260, 4096};
        for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
            size_t wl = frame(msg, n, sizes[k], wire, sizeof(wire));
            char how[64];
            snprintf(how, sizeof(how), "records of %zu", sizes[k]);
            rc = readp(wire, wl, &out);
            check_answer(h, rc, &out, how);
            for (size_t cut = 0; cut < wl; cut += 7) {
                int r = readp(wire, cut, &out);
                CHECK(r == FLB_AGAIN, "%s, %s, cut at %zu: %d", h->what, how, cut, r);
            }
        }
        /* one byte per record passes the record cap: refused, never read past it */
        size_t wl = frame(msg, n, 1, wire, sizeof(wire));
        rc = readp(wire, wl, &out);
        CHECK(rc == FLB_HELLO_BAD, "%s in 1-byte records: %d", h->what, rc);
        /* bytes after the ClientHello (none are sent before the ServerHello, but a client may) change nothing */
        memcpy(wire, h->bytes, h->len);
        memcpy(wire + h->len, "\x17\x03\x03\x00\x01x", 6);
        rc = readp(wire, h->len + 6, &out);
        check_answer(h, rc, &out, "followed by a record");
    }
}

/* --- hostile input -------------------------------------------------------------------------------- */

struct raw {
    const char *what;
    const char *bytes;
    size_t len;
    int kind;
};

#define RAW(what, s, kind) {what, s, sizeof(s) - 1, kind}

static const struct raw raws[] = {
    RAW("plain HTTP", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", FLB_HELLO_NOT_TLS),
    RAW("SSLv2 hello", "\x80\x2e\x01\x00\x02\x00\x15", FLB_HELLO_NOT_TLS),
    RAW("an alert record", "\x15\x03\x01\x00\x02\x02\x28", FLB_HELLO_NOT_TLS),
    RAW("record version 2", "\x16\x02\x00\x00\x04\x01\x00\x00\x00", FLB_HELLO_BAD),
    RAW("empty record", "\x16\x03\x01\x00\x00", FLB_HELLO_BAD),
    RAW("record over 16 KiB", "\x16\x03\x01\x40\x01\x01", FLB_HELLO_BAD),
    RAW("a ServerHello", "\x16\x03\x03\x00\x04\x02\x00\x00\x00", FLB_HELLO_BAD),
    RAW("message over the cap", "\x16\x03\x01\x00\x04\x01\x00\x40\x00", FLB_HELLO_BAD),
    RAW("message too short", "\x16\x03\x01\x00\x08\x01\x00\x00\x04\x03\x03\x00\x00", FLB_HELLO_BAD),
    RAW("header only", "\x16\x03\x01", FLB_AGAIN),
    RAW("a record then an alert", "\x16\x03\x01\x00\x02\x01\x00\x15\x03\x01\x00\x02\x02\x28", FLB_HELLO_BAD),
    RAW("nothing", "", FLB_AGAIN),
};

/* A ClientHello of <ext> (extension bytes, <elen>), in one record, into <out>; its length. */
static size_t build(const uint8_t *ext, size_t elen, uint8_t *out)
{
    uint8_t body[FLB_HELLO_WIRE_MAX];
    size_t n = 0;

    body[n++] = 3;
    body[n++] = 3;
    memset(body + n, 0xab, 32);
    n += 32;
    body[n++] = 0;                           /* session id */
    memcpy(body + n, "\x00\x02\x13\x01", 4); /* one suite */
    n += 4;
    memcpy(body + n, "\x01\x00", 2); /* null compression */
    n += 2;
    body[n++] = (uint8_t)(elen >> 8);
    body[n++] = (uint8_t)elen;
    memcpy(body + n, ext, elen);
    n += elen;
    uint8_t msg[FLB_HELLO_WIRE_MAX];
    msg[0] = 1;
    msg[1] = (uint8_t)(n >> 16);
    msg[2] = (uint8_t)(n >> 8);
    msg[3] = (uint8_t)n;
    memcpy(msg + 4, body, n);
    return frame(msg, n + 4, 16384, out, FLB_HELLO_WIRE_MAX);
}

/* An SNI extension naming <name> (<len> bytes), entry type <type>. */
static size_t sni_ext(const char *name, size_t len, uint8_t type, uint8_t *out)
{
    size_t list = 3 + len;
    out[0] = 0;
    out[1] = 0;
    out[2] = (uint8_t)((list + 2) >> 8);
    out[3] = (uint8_t)(list + 2);
    out[4] = (uint8_t)(list >> 8);
    out[5] = (uint8_t)list;
    out[6] = type;
    out[7] = (uint8_t)(len >> 8);
    out[8] = (uint8_t)len;
    memcpy(out + 9, name, len);
    return 9 + len;
}

static void test_hostile(void)
{
    static uint8_t ext[FLB_HELLO_WIRE_MAX], wire[FLB_HELLO_WIRE_MAX];
    struct flb_hello out;
    size_t n, wl;
    int rc;

    for (size_t i = 0; i < sizeof(raws) / sizeof(raws[0]); i++) {
        rc = readp((const uint8_t *)raws[i].bytes, raws[i].len, &out);
        CHECK(rc == raws[i].kind, "%s: %d, expected %d", raws[i].what, rc, raws[i].kind);
    }
    /* built by hand around one SNI extension */
    n = sni_ext("x.example.com", 13, 0, ext);
    wl = build(ext, n, wire);
    rc = readp(wire, wl, &out);
    CHECK(rc == FLB_HELLO_SNI && strcmp(out.name, "x.example.com") == 0, "built: %d %s", rc, out.name);
    ext[n - 1] = '/';
    rc = readp(wire, build(ext, n, wire), &out);
    CHECK(rc == FLB_HELLO_BAD, "a name with '/': %d", rc);
    n = sni_ext("x.example.com.", 14, 0, ext);
    rc = readp(wire, build(ext, n, wire), &out);
    CHECK(rc == FLB_HELLO_BAD, "a trailing dot: %d", rc);
    n = sni_ext("", 0, 0, ext);
    rc = readp(wire, build(ext, n, wire), &out);
    CHECK(rc == FLB_HELLO_BAD, "an empty name: %d", rc);
    n = sni_ext("x.example.com", 13, 7, ext);
    rc = readp(wire, build(ext, n, wire), &out);
    CHECK(rc == FLB_HELLO_NO_SNI, "an entry of another type: %d", rc);
    /* the same extension twice */
    n = sni_ext("x.example.com", 13, 0, ext);
    memcpy(ext + n, ext, n);
    rc = readp(wire, build(ext, 2 * n, wire), &out);
    CHECK(rc == FLB_HELLO_BAD, "two SNI extensions: %d", rc);
    /* a name of 255 bytes is read, 256 is refused */
    char longname[300];
    memset(longname, 'a', sizeof(longname));
    n = sni_ext(longname, 255, 0, ext);
    rc = readp(wire, build(ext, n, wire), &out);
    CHECK(rc == FLB_HELLO_SNI && out.name_len == 255, "255 bytes: %d", rc);
    n = sni_ext(longname, 256, 0, ext);
    rc = readp(wire, build(ext, n, wire), &out);
    CHECK(rc == FLB_HELLO_BAD, "256 bytes: %d", rc);
    /* an extension longer than what holds it */
    n = sni_ext("x.example.com", 13, 0, ext);
    ext[3] += 1;
    rc = readp(wire, build(ext, n, wire), &out);
    CHECK(rc == FLB_HELLO_BAD, "an extension past its list: %d", rc);
    /* a huge ClientHello: padding up to the cap is read, past it refused without reading it all */
    size_t pad = FLB_HELLO_MAX - 4 - 2 - 32 - 1 - 4 - 2 - 2 - 4;
    memset(ext, 0, sizeof(ext));
    ext[1] = 21; /* padding */
    ext[2] = (uint8_t)(pad >> 8);
    ext[3] = (uint8_t)pad;
    wl = build(ext, pad + 4, wire);
    CHECK(wl > 0, "the largest hello frames: %zu", wl);
    rc = readp(wire, wl, &out);
    CHECK(rc == FLB_HELLO_NO_SNI, "the largest hello: %d", rc);
    CHECK(readp(wire, wl - 1, &out) == FLB_AGAIN, "the largest hello, cut: AGAIN");
    ext[3] = (uint8_t)(pad + 1);
    ext[2] = (uint8_t)((pad + 1) >> 8);
    wl = build(ext, pad + 5, wire);
    rc = readp(wire, wl, &out);
    CHECK(rc == FLB_HELLO_BAD, "one byte over the cap: %d", rc);
    rc = readp(wire, 9, &out);
    CHECK(rc == FLB_HELLO_BAD, "one byte over the cap, its header only: %d", rc);
}

/* Every input of at most 3 bytes, and random bytes after a handshake header: an answer, never a fault. */
static void test_noise(void)
{
    static uint8_t buf[FLB_HELLO_WIRE_MAX];
    struct flb_hello out;
    unsigned seed = 1;

    for (uint32_t v = 0; v < (1u << 24); v += 97) {
        buf[0] = (uint8_t)(v >> 16);
        buf[1] = (uint8_t)(v >> 8);
        buf[2] = (uint8_t)v;
        for (size_t len = 0; len <= 3; len++) {
            int rc = readp(buf, len, &out);
            CHECK(rc >= FLB_AGAIN && rc <= FLB_HELLO_BAD && rc != FLB_ERR, "%06x/%zu: %d", v, len, rc);
        }
    }
    for (int i = 0; i < 2000; i++) {
        size_t len = (size_t)rand_r(&seed) % 600;
        for (size_t k = 0; k < len; k++)
            buf[k] = (uint8_t)rand_r(&seed);
        if (len > 0)
            buf[0] = 0x16;
        int rc = readp(buf, len, &out);
        CHECK(rc >= FLB_AGAIN && rc <= FLB_HELLO_BAD && rc != FLB_ERR, "noise %d: %d", i, rc);
        CHECK(rc != FLB_HELLO_SNI || (out.name_len > 0 && out.name_len == strlen(out.name)), "noise %d", i);
    }
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    guard_init(ARENA_PAGES);
    capture_all();
    test_real();
    test_hostile();
    test_noise();
    return check_done("hello");
}

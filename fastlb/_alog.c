/* _alog.c: the access log (see _alog.h). */
#include "_api.h"

#include "_alog.h"

#include "_addr.h"
#include "_l7.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A line's longest fixed part plus its strings, escaped at worst to six bytes per byte ("\u00XX"). */
#define LINE_MAX_BYTES (768 + 6 * (FLB_H1_LOG_PATH + 16 + 2 * 256))

/* Appends <s> as JSON string content. */
static size_t esc(char *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)s[i];
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20 || c >= 0x7f) {
            memcpy(out + o, "\\u00", 4);
            out[o + 4] = hex[c >> 4];
            out[o + 5] = hex[c & 15];
            o += 6;
        } else {
            out[o++] = (char)c;
        }
    }
    return o;
}

#define PUT(lit)                                                                                                      \
    do {                                                                                                              \
        memcpy(line + n, lit, sizeof(lit) - 1);                                                                       \
        n += sizeof(lit) - 1;                                                                                         \
    } while (0)

void flb_alog_request(struct flb_worker *w, const struct flb_h1conn *h)
{
    struct flb_l7 *l = w->e->l7;
    struct flb_l7_worker *lw = flb_l7_worker(w);
    char line[LINE_MAX_BYTES];
    char client[FLB_ADDR_TEXT] = "";
    struct timespec now;
    size_t n = 0;
    const char *svc = h->svc != NULL ? h->svc->name : "";
    const char *be = h->svc != NULL && h->be >= 0 ? h->svc->be[h->be]->id : "";
    const char *lst = h->rl->l->address;
    uint64_t dur;

    if (l->log_fd < 0)
        return;
    clock_gettime(CLOCK_REALTIME, &now);
    dur = (uint64_t)now.tv_sec * 1000000u + (uint64_t)now.tv_nsec / 1000u;
    dur = dur > h->started_us ? dur - h->started_us : 0;
    flb_addr_format((const struct sockaddr *)&h->peer, client);
    n += (size_t)snprintf(line, 64, "{\"time\":%lld.%03ld,\"client\":\"", (long long)now.tv_sec,
                          now.tv_nsec / 1000000);
    n += esc(line + n, client, strlen(client));
    PUT("\",\"listener\":\"");
    n += esc(line + n, lst, strnlen(lst, 256));
    PUT("\",\"service\":\"");
    n += esc(line + n, svc, strnlen(svc, 256));
    PUT("\",\"backend\":\"");
    n += esc(line + n, be, strnlen(be, 256));
    PUT("\",\"method\":\"");
    n += esc(line + n, h->rq->method, strnlen(h->rq->method, sizeof(h->rq->method)));
    PUT("\",\"path\":\"");
    n += esc(line + n, h->rq->path, h->rq->path_len);
    n += (size_t)snprintf(line + n, 192,
                          "\",\"status\":%d,\"request_bytes\":%llu,\"response_bytes\":%llu,\"duration_us\":%llu,"
                          "\"response_us\":%lld}\n",
                          h->status, (unsigned long long)h->req_bytes, (unsigned long long)h->resp_bytes,
                          (unsigned long long)dur,
                          h->resp_at_us == 0 ? -1LL
                          : h->resp_at_us > h->started_us ? (long long)(h->resp_at_us - h->started_us)
                                                          : 0LL);
    if (n > PIPE_BUF) {
        atomic_fetch_add_explicit(&l->log_drops, 1, memory_order_relaxed);
        return; /* cannot be written atomically: never happens with the bounds above */
    }
    if (lw->loglen + n > FLB_L7_LOG_BUF)
        flb_alog_flush(w);
    if (lw->loglen + n > FLB_L7_LOG_BUF) {
        atomic_fetch_add_explicit(&l->log_drops, 1, memory_order_relaxed);
        return;
    }
    memcpy(lw->log + lw->loglen, line, n);
    lw->loglen += (uint32_t)n;
    atomic_fetch_add_explicit(&l->log_lines, 1, memory_order_relaxed);
}

void flb_alog_flush(struct flb_worker *w)
{
    struct flb_l7 *l = w->e->l7;
    struct flb_l7_worker *lw = flb_l7_worker(w);
    uint32_t off = 0;

    if (l->log_fd < 0 || lw->loglen == 0)
        return;
    while (off < lw->loglen) {
        /* whole lines, at most PIPE_BUF bytes: a pipe writes them atomically or not at all */
        uint32_t len = lw->loglen - off;
        if (len > PIPE_BUF) {
            len = PIPE_BUF;
            while (len > 0 && lw->log[off + len - 1] != '\n')
                len--;
        }
        ssize_t r = write(l->log_fd, lw->log + off, len);
        if (r <= 0)
            break; /* EAGAIN (the reader is slow) or an error: keep the lines for the next flush */
        off += (uint32_t)r;
    }
    if (off > 0) {
        memmove(lw->log, lw->log + off, lw->loglen - off);
        lw->loglen -= off;
    }
}

/* _vhost.c: Host/path and app-id routing (see _vhost.h). */
#include "_api.h"

#include "_vhost.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static uint32_t pow2_at_least(uint32_t n)
{
    uint32_t p = 1;

    while (p < n)
        p <<= 1;
    return p;
}

/* FNV-1a: keys are short and chosen by the operator, not by clients. */
static uint32_t key_hash(const char *p, size_t n)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)p[i]) * 16777619u;
    return h;
}

static char *lower_dup(const char *s, uint32_t *len)
{
    size_t n = strlen(s);
    char *d = malloc(n + 1);

    if (d == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        d[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] | 0x20) : s[i];
    d[n] = '\0';
    *len = (uint32_t)n;
    return d;
}

int flb_vhost_init(struct flb_vhost *v, uint32_t nroutes, uint32_t napps)
{
    memset(v, 0, sizeof(*v));
    v->routes = calloc(nroutes ? nroutes : 1, sizeof(*v->routes));
    v->idx = calloc(nroutes ? nroutes : 1, sizeof(*v->idx));
    v->nappslots = napps ? pow2_at_least(2 * napps) : 0;
    v->apps = calloc(v->nappslots ? v->nappslots : 1, sizeof(*v->apps));
    if (v->routes == NULL || v->idx == NULL || v->apps == NULL) {
        flb_vhost_free(v);
        errno = ENOMEM;
        return FLB_ERR;
    }
    v->nroutes = nroutes;
    return FLB_OK;
}

int flb_vhost_set_route(struct flb_vhost *v, uint32_t i, const char *host, uint32_t service)
{
    struct flb_vhost_route *r = &v->routes[i];

    if (host[0] == '*' && host[1] == '.')
        host++; /* kept as ".example.com": no exact name starts with a dot */
    r->host = lower_dup(host, &r->host_len);
    r->service = service;
    if (r->host == NULL) {
        errno = ENOMEM;
        return FLB_ERR;
    }
    return FLB_OK;
}

int flb_vhost_add_path(struct flb_vhost *v, uint32_t i, const char *path)
{
    struct flb_vhost_route *r = &v->routes[i];
    char **paths = realloc(r->paths, (r->npaths + 1) * sizeof(*paths));
    uint32_t *lens;

    if (paths == NULL)
        goto nomem;
    r->paths = paths;
    lens = realloc(r->path_len, (r->npaths + 1) * sizeof(*lens));
    if (lens == NULL)
        goto nomem;
    r->path_len = lens;
    if ((r->paths[r->npaths] = strdup(path)) == NULL)
        goto nomem;
    r->path_len[r->npaths] = (uint32_t)strlen(path);
    r->npaths++;
    return FLB_OK;
nomem:
    errno = ENOMEM;
    return FLB_ERR;
}

int flb_vhost_add_app(struct flb_vhost *v, const char *id, uint32_t service)
{
    uint32_t len;
    char *low;

    if (v->napps * 2 >= v->nappslots) {
        errno = ENOSPC;
        return FLB_ERR;
    }
    if ((low = lower_dup(id, &len)) == NULL) {
        errno = ENOMEM;
        return FLB_ERR;
    }
    for (uint32_t h = key_hash(low, len);; h++) {
        struct flb_vhost_app *a = &v->apps[h & (v->nappslots - 1)];
        if (a->id == NULL) {
            a->id = low;
            a->len = len;
            a->service = service;
            v->napps++;
            return FLB_OK;
        }
        if (a->len == len && memcmp(a->id, low, len) == 0) {
            free(low); /* the first service in table order keeps the id */
            return FLB_OK;
        }
    }
}

static struct flb_vhost_slot *slot_find(const struct flb_vhost *v, const char *key, size_t len)
{
    if (v->nslots == 0)
        return NULL;
    for (uint32_t h = key_hash(key, len);; h++) {
        struct flb_vhost_slot *s = &v->slots[h & (v->nslots - 1)];
        if (s->key == NULL)
            return (struct flb_vhost_slot *)s;
        if (s->len == len && memcmp(s->key, key, len) == 0)
            return (struct flb_vhost_slot *)s;
    }
}

int flb_vhost_build(struct flb_vhost *v)
{
    uint32_t pos = 0;

    if (v->nroutes == 0)
        return FLB_OK;
    v->nslots = pow2_at_least(2 * v->nroutes);
    v->slots = calloc(v->nslots, sizeof(*v->slots));
    if (v->slots == NULL) {
        v->nslots = 0;
        errno = ENOMEM;
        return FLB_ERR;
    }
    /* Count the routes of each key, lay the runs out in slot order, then fill each run in ascending
     * route order. */
    for (uint32_t i = 0; i < v->nroutes; i++) {
        struct flb_vhost_slot *s = slot_find(v, v->routes[i].host, v->routes[i].host_len);
        if (s->key == NULL) {
            s->key = v->routes[i].host;
            s->len = v->routes[i].host_len;
        }
        s->n++;
    }
    for (uint32_t k = 0; k < v->nslots; k++) {
        struct flb_vhost_slot *s = &v->slots[k];
        if (s->key == NULL)
            continue;
        s->first = pos;
        pos += s->n;
        s->n = 0;
    }
    for (uint32_t i = 0; i < v->nroutes; i++) {
        struct flb_vhost_slot *s = slot_find(v, v->routes[i].host, v->routes[i].host_len);
        v->idx[s->first + s->n++] = i;
    }
    return FLB_OK;
}

void flb_vhost_free(struct flb_vhost *v)
{
    for (uint32_t i = 0; v->routes != NULL && i < v->nroutes; i++) {
        struct flb_vhost_route *r = &v->routes[i];
        for (uint32_t j = 0; j < r->npaths; j++)
            free(r->paths[j]);
        free(r->paths);
        free(r->path_len);
        free(r->host);
    }
    for (uint32_t i = 0; v->apps != NULL && i < v->nappslots; i++)
        free(v->apps[i].id);
    free(v->routes);
    free(v->idx);
    free(v->slots);
    free(v->apps);
    memset(v, 0, sizeof(*v));
}

void flb_vhost_path(const char *target, size_t len, const char **path, size_t *path_len)
{
    size_t i = 0;

    if (len > 0 && target[0] != '/') {
        /* absolute-form "scheme://authority/path": skip to the first '/' after "//" */
        const char *s = memchr(target, ':', len);
        i = s != NULL ? (size_t)(s - target) + 1 : len;
        if (i + 1 < len && target[i] == '/' && target[i + 1] == '/')
            i += 2;
        while (i < len && target[i] != '/' && target[i] != '?')
            i++;
    }
    const char *q = memchr(target + i, '?', len - i);
    *path = target + i;
    *path_len = (q != NULL ? (size_t)(q - target) : len) - i;
}

static int path_matches(const struct flb_vhost_route *r, const char *path, size_t len)
{
    if (r->npaths == 0)
        return 1;
    for (uint32_t j = 0; j < r->npaths; j++)
        if (r->path_len[j] <= len && memcmp(r->paths[j], path, r->path_len[j]) == 0)
            return 1;
    return 0;
}

/* The lowest route index of <key>'s run that accepts <path>, if lower than <best>. */
static uint32_t best_of(const struct flb_vhost *v, const char *key, size_t len, const char *path, size_t plen,
                        uint32_t best)
{
    const struct flb_vhost_slot *s = slot_find(v, key, len);

    if (s == NULL || s->key == NULL)
        return best;
    for (uint32_t j = 0; j < s->n; j++) {
        uint32_t i = v->idx[s->first + j];
        if (i >= best)
            break; /* the run ascends: nothing later can beat <best> */
        if (path_matches(&v->routes[i], path, plen))
            return i;
    }
    return best;
}

ssize_t flb_vhost_host(const char *host, size_t len, char *out, size_t cap)
{
    size_t n = len;

    for (size_t i = len; i > 0; i--) {
        if (host[i - 1] == ':') {
            n = i - 1;
            break;
        }
        if (host[i - 1] == ']' || host[i - 1] == '.')
            break;
        if (host[i - 1] < '0' || host[i - 1] > '9')
            break;
    }
    if (n > 0 && host[n - 1] == '.')
        n--;
    if (n > cap)
        return -1;
    for (size_t i = 0; i < n; i++)
        out[i] = (host[i] >= 'A' && host[i] <= 'Z') ? (char)(host[i] | 0x20) : host[i];
    return (ssize_t)n;
}

int flb_vhost_lookup(const struct flb_vhost *v, const char *host, size_t host_len, const char *target,
                     size_t target_len)
{
    char name[FLB_VHOST_NAME_MAX];
    const char *path;
    size_t plen;
    uint32_t best = UINT32_MAX;

    if (v->nslots == 0 || host == NULL)
        return FLB_ERR;
    ssize_t k = flb_vhost_host(host, host_len, name, sizeof(name));
    if (k <= 0)
        return FLB_ERR;
    size_t n = (size_t)k;
    flb_vhost_path(target, target_len, &path, &plen);
    best = best_of(v, name, n, path, plen, best);
    for (size_t i = 1; i < n; i++)
        if (name[i] == '.')
            best = best_of(v, name + i, n - i, path, plen, best);
    return best == UINT32_MAX ? FLB_ERR : (int)v->routes[best].service;
}

int flb_vhost_lookup_app(const struct flb_vhost *v, const char *id, size_t len)
{
    char low[FLB_VHOST_APP_MAX];

    if (v->nappslots == 0 || id == NULL || len == 0 || len > sizeof(low))
        return FLB_ERR;
    for (size_t i = 0; i < len; i++)
        low[i] = (id[i] >= 'A' && id[i] <= 'Z') ? (char)(id[i] | 0x20) : id[i];
    for (uint32_t h = key_hash(low, len);; h++) {
        const struct flb_vhost_app *a = &v->apps[h & (v->nappslots - 1)];
        if (a->id == NULL)
            return FLB_ERR;
        if (a->len == len && memcmp(a->id, low, len) == 0)
            return (int)a->service;
    }
}

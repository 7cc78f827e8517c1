/* _vhost-t.h: compiled HTTP routing of the shared listeners: Host (and path prefix) for "vhost"
 * listeners, X-Marathon-App-Id for "appid" listeners. Built once per table by the control thread,
 * immutable afterwards, read by every worker. */
#ifndef FLB_VHOST_T_H
#define FLB_VHOST_T_H

#include "_api.h"

/* One spec.HttpRoute. Its index in the table is its priority: the lowest matching index wins. */
struct flb_vhost_route {
    char *host;          /* lower case, owned; a wildcard "*.example.com" is kept as ".example.com" */
    uint32_t host_len;
    uint32_t service;    /* index into the table's services */
    uint32_t npaths;     /* 0: every path */
    char **paths;        /* [npaths] owned path prefixes */
    uint32_t *path_len;  /* [npaths] */
};

/* A hash slot: every route naming one host key, as a run of <idx> in ascending (priority) order. */
struct flb_vhost_slot {
    const char *key;     /* a route's host; NULL: empty slot */
    uint32_t len;
    uint32_t first, n;   /* idx[first .. first + n) */
};

struct flb_vhost_app {
    char *id;            /* lower case, owned; NULL: empty slot */
    uint32_t len;
    uint32_t service;
};

struct flb_vhost {
    uint32_t nroutes;
    struct flb_vhost_route *routes;
    uint32_t nslots;             /* power of two, or 0 */
    struct flb_vhost_slot *slots;
    uint32_t *idx;               /* [nroutes] route indices grouped by host key */
    uint32_t napps, nappslots;   /* nappslots: power of two, or 0 */
    struct flb_vhost_app *apps;
};

#endif

/* _route.h: tables (types in _route-t.h) and the service-counter store. */
#ifndef FLB_ROUTE_H
#define FLB_ROUTE_H

#include "_route-t.h"

/* A zeroed table with room for <nsvc> services and <nlst> listeners, one reference held by the
 * caller. The caller fills it in (control thread) before publishing it. NULL with errno. */
struct flb_table *flb_table_new(uint32_t nsvc, uint32_t nlst);

static inline struct flb_table *flb_table_get(struct flb_table *t)
{
    atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
    return t;
}

/* The service every connection of listener <rl> goes to, or NULL when it routes per request. */
static inline struct flb_service *flb_route_service(const struct flb_table *t, const struct flb_route_listener *rl)
{
    return rl->service < t->nsvc ? &t->svc[rl->service] : NULL;
}

/* Drops a reference (any thread). The last frees the table and drops its references on
 * backends, listeners and service counters; it never closes a listener's sockets itself unless the
 * listener record goes too. */
void flb_table_put(struct flb_table *t);

/* Allocates the backend arrays of <s> for <nbe> backends, and its share (one table holds it).
 * FLB_OK or FLB_ERR (ENOMEM). */
int flb_service_alloc(struct flb_service *s, uint32_t nbe);

/* Service <i> of <t> (zeroed, not published yet) becomes service <from> of <old>, compiled: the
 * same arrays, balancer and HTTP side (when both tables have one), shared, not copied. */
void flb_table_reuse(struct flb_table *t, uint32_t i, const struct flb_table *old, uint32_t from);

/* How many compiled services were freed so far, in the process (any thread): the backend and
 * counter records lose references only then. */
uint64_t flb_route_freed(void);

struct flb_counters_store; /* opaque: name -> struct flb_service_counters */

struct flb_counters_store *flb_counters_store_new(void);
void flb_counters_store_free(struct flb_counters_store *s);

/* Finds or creates the counters of service <name>, with a reference. NULL with errno. */
struct flb_service_counters *flb_counters_get(struct flb_counters_store *s, const char *name);

/* Frees the records no table names any more. Control thread only. */
void flb_counters_store_sweep(struct flb_counters_store *s);

#endif

/* _backend.h: the backend store, backend state keyed by identity (types in _backend-t.h).
 *
 * Only the control thread finds, creates and frees records, under the store's lock. Tables hold one
 * reference per backend they name; connections reach a backend only through the table they hold, so
 * a worker never takes a backend reference and never takes the lock: dropping a table (which may
 * happen on a worker, when its last connection closes) only decrements. A record whose count has
 * reached zero stays in the store, keeping its counters, until the control thread sweeps it: a
 * backend that comes back before the sweep is the same record.
 */
#ifndef FLB_BACKEND_H
#define FLB_BACKEND_H

#include "_backend-t.h"

struct flb_backend_store; /* opaque: a hash map id -> struct flb_backend */

/* A new, empty store, or NULL with errno. */
struct flb_backend_store *flb_backend_store_new(void);

/* Frees every record and the store. Every table must be gone. */
void flb_backend_store_free(struct flb_backend_store *s);

/* Finds or creates the backend <id> and takes a reference on it. A new record starts ready, up,
 * weight 1, with no address. Returns NULL with errno (ENOMEM). Control thread only. */
struct flb_backend *flb_backend_get(struct flb_backend_store *s, const char *id);

/* The backend <id>, or NULL; no reference taken. Control thread only. */
struct flb_backend *flb_backend_find(struct flb_backend_store *s, const char *id);

/* Drops a reference (any thread). */
static inline void flb_backend_put(struct flb_backend *b)
{
    atomic_fetch_sub_explicit(&b->refs, 1, memory_order_release);
}

/* Frees the records no table names any more. Control thread only. */
void flb_backend_store_sweep(struct flb_backend_store *s);

#endif

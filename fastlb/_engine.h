/* _engine.h: the workers and the control API the Cython layer calls (types in _engine-t.h).
 *
 * Every flb_engine_* function below is called from the one control thread, never from a worker.
 * Those that change what workers do (publish, stop_accepting, close_all) return once every running
 * worker has carried the change out: a worker picks it up between two batches of events, woken by
 * its eventfd, so the wait is short and the workers never stop for it.
 */
#ifndef FLB_ENGINE_H
#define FLB_ENGINE_H

#include "_engine-t.h"

/* A new engine with its workers' epoll and eventfd set up, not yet running. NULL with errno. */
struct flb_engine *flb_engine_new(const struct flb_engine_options *o);

/* Starts the worker threads. FLB_OK, or FLB_ERR with errno (EALREADY once started or stopped). */
int flb_engine_start(struct flb_engine *e);

/* Publishes <t> (the caller's reference passes to the engine) with one atomic store, wakes every
 * worker and waits until each has adopted it: from then on the listeners <t> adds are polled and
 * those it drops are polled by no worker, and are closed here. Listeners both tables hold are not
 * touched. Established connections keep the table they were routed with. Returns the generation. */
uint64_t flb_engine_publish(struct flb_engine *e, struct flb_table *t);

/* The published table with a reference (put it), or NULL. */
struct flb_table *flb_engine_table(struct flb_engine *e);

/* The listener of the published table at <address>, or NULL (the listener registry: a listener
 * lives in exactly the tables that name its address). */
struct flb_listener *flb_engine_listener(struct flb_engine *e, const char *address);

/* False once stop_accepting has run: tables published afterwards open no listener. */
int flb_engine_accepting(struct flb_engine *e);

/* Stops polling and closes every listener, for good; open connections carry on. */
void flb_engine_stop_accepting(struct flb_engine *e);

/* Closes every open connection. */
void flb_engine_close_all(struct flb_engine *e);

/* Stops and joins the workers, closes every connection and listener, frees every table and the
 * backends no table names. Idempotent. */
void flb_engine_stop(struct flb_engine *e);

/* Stops (if needed) and frees the engine. */
void flb_engine_free(struct flb_engine *e);

/* Hands the workers a new list of drain deadlines (see _drain.h; ownership passes, NULL: none) and
 * waits until each has adopted it; the old list is freed. */
void flb_engine_set_drains(struct flb_engine *e, struct flb_drains *d);

/* Frees the backend and service-counter records no table names any more (none to look for when
 * no compiled service was freed since the last sweep). */
void flb_engine_sweep(struct flb_engine *e);

/* Worker side: takes a connection slot on listener <rl> of <t> (global, listener and service
 * maxconn). FLB_OK, or FLB_AGAIN when one of the limits is reached. */
int flb_engine_slot_take(struct flb_engine *e, const struct flb_table *t, const struct flb_route_listener *rl,
                         const struct flb_service *s);

/* Worker side: gives a slot back, and wakes the workers when some listener waits for one. */
void flb_engine_slot_release(struct flb_engine *e, struct flb_listener *l, const struct flb_service *s);

/* Worker side: a slot of service <s> alone (a request routed behind a vhost or app-id listener, whose
 * connection holds no service slot): FLB_OK, or FLB_AGAIN at the service's maxconn. Given back with
 * flb_engine_service_slot_release, which wakes the workers when some listener waits for one. */
int flb_engine_service_slot_take(struct flb_engine *e, const struct flb_service *s);
void flb_engine_service_slot_release(struct flb_engine *e, const struct flb_service *s);

/* Worker side: gives back the slot a connection held on backend <idx> of <s>. While connections or
 * requests wait for a slot of <s> (_queue.h), the other workers are woken to offer it to theirs
 * (<w> offers it to its own after the batch). */
void flb_engine_backend_release(struct flb_worker *w, const struct flb_service *s, uint32_t idx);

/* Gives the allocator's free memory back to the system when it holds at least <min_free> bytes
 * (glibc: the free pages inside its heaps too). Buffers freed after a burst of requests otherwise
 * stay resident. Returns 1 when memory was given back. Any thread; called now and then by the
 * control plane. */
int flb_engine_trim(size_t min_free);

/* Wakes worker <id> (its loop turns once more). */
void flb_engine_wake(struct flb_engine *e, uint32_t id);

#endif

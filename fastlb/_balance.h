/* _balance.h: balancing is a pure function of (balancer, the backends' dynamic state, flow key,
 * the calling worker's scratch): no clock, no globals, no allocation on the pick path. */
#ifndef FLB_BALANCE_H
#define FLB_BALANCE_H

#include "_balance-t.h"

/* Builds <b> for <n> backends <be> (sorted by identity by the caller; borrowed, must outlive <b>).
 * Weights are read from each backend's current weight. <nworkers> sizes the per-worker scratch.
 * Returns FLB_OK, or FLB_ERR with errno (ENOMEM, EINVAL). Called from the control thread. */
int flb_balance_build(struct flb_balancer *b, enum flb_balance_algo algo, struct flb_backend **be, uint32_t n,
                      uint32_t nworkers);

/* Frees what flb_balance_build allocated; <b> may then be built again. */
void flb_balance_free(struct flb_balancer *b);

/* Picks a backend index for a new connection, or returns FLB_ERR (errno EHOSTUNREACH) when no
 * backend is available. <key> is the flow key (a hash of the client address for maglev and source,
 * ignored by the others). <worker> indexes the scratch. <exclude>, <nexclude> name the indices
 * already tried by this connection (retries): they are never picked again, and FLB_ERR (EHOSTUNREACH)
 * is returned when only excluded ones remain. A backend at its maxconn (b->maxconn) is not picked.
 * Only the calling worker's scratch is written. */
int flb_balance_pick(struct flb_balancer *b, uint64_t key, uint32_t worker, const uint32_t *exclude,
                     uint32_t nexclude);

/* After a pick that found no backend: whether one would have been picked but for its maxconn (the
 * caller may then wait for a slot rather than give up). */
int flb_balance_full(const struct flb_balancer *b, const uint32_t *exclude, uint32_t nexclude);

/* 64-bit hash of a byte string (used for flow keys and Maglev permutations; stable across
 * processes and machines, so every fastlb instance builds the same table). */
uint64_t flb_hash64(const void *data, size_t len, uint64_t seed);

/* Smallest prime >= <x>. */
uint32_t flb_next_prime(uint32_t x);

#endif

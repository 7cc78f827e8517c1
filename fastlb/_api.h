/* _api.h: included first by every C file of fastlb's data plane.
 *
 * Return convention, for every exported flb_* function that returns int or ssize_t:
 *   >= 0          success, or a count (bytes, entries, an index)
 *   FLB_ERR (-1)  failure, errno says why
 *   FLB_AGAIN (-2) would block, or the input is incomplete: call again with more
 * Syscall results are compared with exactly -1.
 *
 * The C core never includes Python.h and never touches a Python object; every function the
 * workers call is safe to run without the GIL.
 */
#ifndef FLB_API_H
#define FLB_API_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define FLB_OK 0
#define FLB_ERR (-1)
#define FLB_AGAIN (-2)

/* The record that embeds <ptr> as its <member>. */
#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

#define FLB_LIKELY(x) __builtin_expect(!!(x), 1)
#define FLB_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* Live counts of the resources the core owns. The test suite asserts that each returns to its
 * baseline after every test, so a leak of an fd, a pipe, a connection or a table fails the test
 * that caused it. Updated with relaxed atomics: they are counts, not synchronisation. */
struct flb_live {
    _Atomic long fds;       /* sockets and eventfds the core opened and has not closed */
    _Atomic long pipes;     /* pipes (pairs of fds) alive, pooled or in use */
    _Atomic long conns;     /* proxied connections alive */
    _Atomic long tables;    /* compiled routing tables alive */
    _Atomic long backends;  /* backend state records alive */
    _Atomic long listeners; /* listener records alive */
};

extern struct flb_live flb_live;

#define FLB_LIVE_INC(field) atomic_fetch_add_explicit(&flb_live.field, 1, memory_order_relaxed)
#define FLB_LIVE_DEC(field) atomic_fetch_sub_explicit(&flb_live.field, 1, memory_order_relaxed)

#endif

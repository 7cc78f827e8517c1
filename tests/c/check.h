/* check.h: what the standalone C tests share (one test is one translation unit).
 *
 * CHECK counts a check and prints a TAP "not ok" line when it fails; check_done prints the plan and
 * the tally and gives the exit status (the number of failures, capped at 1). guard_init maps RW
 * pages followed by one PROT_NONE page, and guard_place copies an input so that its last byte sits
 * right before that page: a read one byte too far faults at once instead of reading stale memory.
 */
#ifndef FLB_TESTS_CHECK_H
#define FLB_TESTS_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int failures, checks;

#define CHECK(cond, ...)                                                                                             \
    do {                                                                                                             \
        checks++;                                                                                                    \
        if (!(cond)) {                                                                                               \
            failures++;                                                                                              \
            printf("not ok - %s:%d: %s: ", __FILE__, __LINE__, #cond);                                               \
            printf(__VA_ARGS__);                                                                                     \
            printf("\n");                                                                                            \
        }                                                                                                            \
    } while (0)

static inline int check_done(const char *name)
{
    printf("1..%d\n", checks);
    printf("# %s: %d checks, %d failures\n", name, checks, failures);
    return failures ? 1 : 0;
}

static char *guard_arena; /* RW pages followed by one PROT_NONE page */
static size_t guard_len;  /* the RW part */

static inline void guard_init(size_t pages)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);

    guard_len = page * pages;
    guard_arena = mmap(NULL, guard_len + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (guard_arena == MAP_FAILED || mprotect(guard_arena + guard_len, page, PROT_NONE) != 0) {
        perror("mmap/mprotect");
        exit(99);
    }
}

/* Where an input of <len> bytes starts when it ends at the guard page. */
static inline char *guard_at(size_t len)
{
    if (len > guard_len) {
        fprintf(stderr, "input too large for the guarded arena\n");
        exit(99);
    }
    return guard_arena + guard_len - len;
}

/* Copies <len> bytes of <data> (which may already lie in the arena) to end at the guard page. */
static inline char *guard_place(const void *data, size_t len)
{
    char *p = guard_at(len);

    memmove(p, data, len);
    return p;
}

#endif

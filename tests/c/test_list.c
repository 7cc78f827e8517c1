/* test_list.c: the intrusive list (fastlb/_list.h), standalone, under ASan and UBSan.
 *
 * The fixed cases state each promise of the header; a random sequence of operations is then checked
 * after every step against an array kept in the same order, walked forwards and backwards. The records
 * are cache-line aligned, as the queues are, so that UBSan sees any walk that treats the head as one.
 * Output is TAP; the exit status is the number of failures. Build and run: make -C tests/c test
 */
#include "_api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "_list.h"
#include "check.h"

struct rec {
    _Alignas(64) int id;
    struct flb_list link;
    struct flb_list other; /* a second list the same record can be in */
};

#define NREC 64

/* The ids of <head>, in order, into <out>; the count, or -1 when the backward walk disagrees. */
static int ids(const struct flb_list *head, int *out)
{
    const struct rec *r;
    int n = 0;

    flb_list_for_each (r, (struct flb_list *)head, link)
        out[n++] = r->id;
    int k = n;
    for (const struct flb_list *p = head->prev; p != head; p = p->prev) {
        if (k == 0 || flb_list_entry(p, const struct rec, link)->id != out[--k])
            return -1;
        if (p->next->prev != p)
            return -1;
    }
    return k == 0 ? n : -1;
}

static int same(const struct flb_list *head, const int *want, int n)
{
    int got[NREC + 1];
    return ids(head, got) == n && (n == 0 || memcmp(got, want, (size_t)n * sizeof(int)) == 0);
}

static void test_empty(void)
{
    struct flb_list head;
    struct rec zeroed;

    flb_list_init(&head);
    memset(&zeroed, 0, sizeof(zeroed));
    CHECK(flb_list_empty(&head), "a new list is empty");
    CHECK(flb_list_first(&head, struct rec, link) == NULL && flb_list_last(&head, struct rec, link) == NULL,
          "no first or last");
    CHECK(!flb_list_linked(&zeroed.link), "zeroed memory is a node in no list");
    CHECK(same(&head, NULL, 0), "walks nothing");
}

static void test_order(void)
{
    struct rec r[4];
    struct flb_list head;

    memset(r, 0, sizeof(r));
    flb_list_init(&head);
    for (int i = 0; i < 4; i++)
        r[i].id = i;
    flb_list_add_tail(&head, &r[1].link);
    flb_list_add_tail(&head, &r[2].link);
    flb_list_add_head(&head, &r[0].link);
    flb_list_add_tail(&head, &r[3].link);
    CHECK(same(&head, (int[]){0, 1, 2, 3}, 4), "head and tail inserts keep their order");
    CHECK(flb_list_first(&head, struct rec, link) == &r[0] && flb_list_last(&head, struct rec, link) == &r[3],
          "first and last");
    CHECK(flb_list_linked(&r[2].link) && !flb_list_empty(&head), "linked");

    flb_list_del(&r[2].link);
    CHECK(same(&head, (int[]){0, 1, 3}, 3) && !flb_list_linked(&r[2].link), "unlink from the middle");
    flb_list_del(&r[0].link);
    CHECK(same(&head, (int[]){1, 3}, 2) && flb_list_first(&head, struct rec, link) == &r[1], "unlink the first");
    flb_list_del(&r[3].link);
    CHECK(same(&head, (int[]){1}, 1) && flb_list_last(&head, struct rec, link) == &r[1], "unlink the last");
    flb_list_del(&r[1].link);
    CHECK(flb_list_empty(&head) && !flb_list_linked(&r[1].link), "unlink the only one");
    flb_list_add_head(&head, &r[2].link);
    CHECK(same(&head, (int[]){2}, 1), "an unlinked node goes in again");
}

static void test_two_lists(void)
{
    struct rec r[3];
    struct flb_list a, b;

    memset(r, 0, sizeof(r));
    flb_list_init(&a);
    flb_list_init(&b);
    for (int i = 0; i < 3; i++) {
        r[i].id = i;
        flb_list_add_tail(&a, &r[i].link);
        flb_list_add_head(&b, &r[i].other);
    }
    flb_list_del(&r[1].link);
    CHECK(same(&a, (int[]){0, 2}, 2), "one list");
    int n = 0, want[] = {2, 1, 0};
    struct rec *p;
    flb_list_for_each (p, &b, other)
        CHECK(p->id == want[n++], "the other list keeps %d", p->id);
    CHECK(n == 3, "the other list is untouched: %d", n);
}

static void test_walk_unlinking(void)
{
    struct rec r[6], *p;
    struct flb_list head, dead;
    int seen = 0;

    memset(r, 0, sizeof(r));
    flb_list_init(&head);
    flb_list_init(&dead);
    for (int i = 0; i < 6; i++) {
        r[i].id = i;
        flb_list_add_tail(&head, &r[i].link);
    }
    /* as a drain does: closing moves the record to another list while the walk goes on */
    flb_list_for_each_safe (p, &head, link) {
        seen++;
        if (p->id % 2 == 0) {
            flb_list_del(&p->link);
            flb_list_add_tail(&dead, &p->link);
        }
    }
    CHECK(seen == 6, "every record is visited: %d", seen);
    CHECK(same(&head, (int[]){1, 3, 5}, 3) && same(&dead, (int[]){0, 2, 4}, 3), "unlinked while walking");
    flb_list_for_each_safe (p, &head, link)
        flb_list_del(&p->link);
    CHECK(flb_list_empty(&head), "all unlinked while walking");
    int n = 0;
    flb_list_for_each (p, &head, link)
        n++;
    CHECK(n == 0, "an empty list walks nothing");
}

static void test_take_all(void)
{
    struct rec r[4];
    struct flb_list from, to;

    memset(r, 0, sizeof(r));
    flb_list_init(&from);
    flb_list_take_all(&to, &from);
    CHECK(flb_list_empty(&to) && flb_list_empty(&from), "taking an empty list");
    for (int i = 0; i < 3; i++) {
        r[i].id = i;
        flb_list_add_tail(&from, &r[i].link);
    }
    flb_list_take_all(&to, &from);
    CHECK(flb_list_empty(&from) && same(&to, (int[]){0, 1, 2}, 3), "every node moves, in order");
    r[3].id = 3;
    flb_list_add_tail(&from, &r[3].link);
    CHECK(same(&to, (int[]){0, 1, 2}, 3) && same(&from, (int[]){3}, 1), "the source takes inserts of its own again");
    flb_list_del(&r[1].link);
    CHECK(same(&to, (int[]){0, 2}, 2), "a taken node unlinks from its new list");
    flb_list_add_head(&to, &r[1].link);
    CHECK(same(&to, (int[]){1, 0, 2}, 3), "the new list takes inserts");
}

/* Random operations against an array in the same order. */
static void test_against_array(void)
{
    static struct rec r[NREC];
    struct flb_list head;
    int model[NREC], n = 0;
    unsigned seed = 12345;

    memset(r, 0, sizeof(r));
    flb_list_init(&head);
    for (int i = 0; i < NREC; i++)
        r[i].id = i;
    for (int step = 0; step < 20000; step++) {
        seed = seed * 1103515245u + 12345u;
        int i = (int)((seed >> 8) % NREC), op = (int)((seed >> 20) % 5);
        if (!flb_list_linked(&r[i].link)) {
            if (op % 2 == 0) {
                flb_list_add_head(&head, &r[i].link);
                memmove(model + 1, model, (size_t)n * sizeof(int));
                model[0] = i;
            } else {
                flb_list_add_tail(&head, &r[i].link);
                model[n] = i;
            }
            n++;
        } else if (op == 4) {
            struct flb_list tmp;
            flb_list_take_all(&tmp, &head);
            flb_list_take_all(&head, &tmp);
        } else {
            flb_list_del(&r[i].link);
            int k = 0;
            while (model[k] != i)
                k++;
            memmove(model + k, model + k + 1, (size_t)(n - k - 1) * sizeof(int));
            n--;
        }
        if (!same(&head, model, n)) {
            CHECK(0, "step %d: the list and the array differ", step);
            return;
        }
        CHECK(flb_list_empty(&head) == (n == 0), "step %d: empty", step);
    }
}

int main(void)
{
    test_empty();
    test_order();
    test_two_lists();
    test_walk_unlinking();
    test_take_all();
    test_against_array();
    return check_done("list");
}

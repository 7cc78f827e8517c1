/* _list.h: the intrusive doubly linked list (struct flb_list, in _list-t.h).
 *
 * Every list of the data plane goes through these: a worker's connections and its closed ones, the
 * HTTP ready list, the idle pool, the queues, the timer wheel's slots. Each call is O(1); none
 * allocates and none fails. A list is touched by one thread only: there is no locking here. */
#ifndef FLB_LIST_H
#define FLB_LIST_H

#include "_api.h"
#include "_list-t.h"

#include <stddef.h>

/* An empty list. */
static inline void flb_list_init(struct flb_list *head)
{
    head->next = head->prev = head;
}

static inline int flb_list_empty(const struct flb_list *head)
{
    return head->next == head;
}

/* Whether <node> is in a list (a zeroed node is not). */
static inline int flb_list_linked(const struct flb_list *node)
{
    return node->next != NULL;
}

static inline void flb_list_insert_(struct flb_list *node, struct flb_list *prev, struct flb_list *next)
{
    node->prev = prev;
    node->next = next;
    prev->next = node;
    next->prev = node;
}

/* Puts <node>, in no list, first in <head>. */
static inline void flb_list_add_head(struct flb_list *head, struct flb_list *node)
{
    flb_list_insert_(node, head, head->next);
}

/* Puts <node>, in no list, last in <head>. */
static inline void flb_list_add_tail(struct flb_list *head, struct flb_list *node)
{
    flb_list_insert_(node, head->prev, head);
}

/* Takes <node> out of the list it is in; it is then in none. */
static inline void flb_list_del(struct flb_list *node)
{
    node->prev->next = node->next;
    node->next->prev = node->prev;
    node->next = node->prev = NULL;
}

/* Moves every node of <from> to <to>, in order; <from> is left empty, <to> must be empty. A list may
 * be detached this way before it is walked, so that what the walk adds goes to a fresh one. */
static inline void flb_list_take_all(struct flb_list *to, struct flb_list *from)
{
    if (flb_list_empty(from)) {
        flb_list_init(to);
        return;
    }
    to->next = from->next;
    to->prev = from->prev;
    to->next->prev = to;
    to->prev->next = to;
    flb_list_init(from);
}

/* The record of type <type> that embeds <node> as its <member>. */
#define flb_list_entry(node, type, member) container_of(node, type, member)

/* The first (last) record of <head>, NULL when it is empty. */
#define flb_list_first(head, type, member) \
    (flb_list_empty(head) ? NULL : flb_list_entry((head)->next, type, member))
#define flb_list_last(head, type, member) \
    (flb_list_empty(head) ? NULL : flb_list_entry((head)->prev, type, member))

/* Walks the records of <head> in order, <pos> pointing at each; the body must not unlink <pos>. */
#define flb_list_for_each(pos, head, member)                                                          \
    for (struct flb_list *flb_node_ = (head)->next;                                                   \
         flb_node_ != (head) && ((pos) = flb_list_entry(flb_node_, __typeof__(*(pos)), member), 1);   \
         flb_node_ = flb_node_->next)

/* The same, where the body may unlink <pos> (and only <pos>): the next node is read before it runs. */
#define flb_list_for_each_safe(pos, head, member)                                                     \
    for (struct flb_list *flb_node_ = (head)->next, *flb_after_ = flb_node_->next;                    \
         flb_node_ != (head) && ((pos) = flb_list_entry(flb_node_, __typeof__(*(pos)), member), 1);   \
         flb_node_ = flb_after_, flb_after_ = flb_node_->next)

#endif

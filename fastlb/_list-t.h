/* _list-t.h: the one doubly linked list of the C core (functions in _list.h).
 *
 * Intrusive and circular: a record embeds a struct flb_list per list it can be in, and a list is a
 * head of the same type that points at itself while the list is empty. Unlinking needs only the node
 * (no head, no walk), and the head needs no special case for its first or last node.
 *
 * A node that is in no list has NULL pointers, so zeroed memory (calloc) is a node in no list; a head
 * must be set up with flb_list_init before use. */
#ifndef FLB_LIST_T_H
#define FLB_LIST_T_H

struct flb_list {
    struct flb_list *next, *prev;
};

#endif

/* An intrusive doubly linked list (the engine's lists and the backends' own queues). */
#ifndef PCPMAP_LIST_H
#define PCPMAP_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct pm_list {
	struct pm_list *prev, *next;
};

static inline void pm_list_init(struct pm_list *l)
{
	l->prev = l->next = l;
}
static inline bool pm_list_empty(const struct pm_list *l)
{
	return l->next == l;
}
static inline void pm_list_add_tail(struct pm_list *head, struct pm_list *n)
{
	n->prev = head->prev;
	n->next = head;
	head->prev->next = n;
	head->prev = n;
}
static inline void pm_list_del(struct pm_list *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->prev = n->next = n;
}
#define pm_container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

#endif

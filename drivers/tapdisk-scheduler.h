/* The epoll event loop under tapdisk_server_register_event.  Private to tapdisk. */
#ifndef _TAPDISK_SCHEDULER_PRIV_H_
#define _TAPDISK_SCHEDULER_PRIV_H_

#include "scheduler.h"
#include "list.h"

struct scheduler_fd;

typedef struct scheduler {
	int epfd;
	int max_timeout; /* seconds */
	event_id_t uuid;
	int depth; /* dispatch nesting, to know when dead events can be freed */
	int dead;  /* dead events waiting to be freed */

	struct list_head events;      /* every event */
	struct list_head timers;      /* events with a finite timeout */
	struct scheduler_fd **fds;    /* indexed by fd */
	int nfds;
} scheduler_t;

int scheduler_initialize(scheduler_t *s);
void scheduler_destroy(scheduler_t *s);
event_id_t scheduler_register_event(scheduler_t *s, char mode, int fd, struct timeval timeout,
				    event_cb_t cb, void *private);
void scheduler_unregister_event(scheduler_t *s, event_id_t id);
void scheduler_mask_event(scheduler_t *s, event_id_t id, int masked);
int scheduler_event_set_timeout(scheduler_t *s, event_id_t id, struct timeval timeout);
void scheduler_set_max_timeout(scheduler_t *s, int seconds);
/*
 * Waits at most @max_wait_ms (-1: up to the max timeout) for fd events and timers, and
 * runs their callbacks.  Returns the number of callbacks run, or a negative errno.
 */
int scheduler_wait_for_events(scheduler_t *s, int max_wait_ms);
/* Number of live events, for tests and leak checks. */
int scheduler_event_count(const scheduler_t *s);

#endif

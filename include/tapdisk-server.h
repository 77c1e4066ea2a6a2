/* The tapdisk server: event registration and VBD lookup (blktap3 drivers/tapdisk-server.h). */
#ifndef _TAPDISK_SERVER_H_
#define _TAPDISK_SERVER_H_

#include <sys/time.h>

#include "io-backend.h"
#include "list.h"
#include "scheduler.h"
#include "tapdisk.h"

struct tap_disk;

/*
 * Returns an id > 0, or a negative errno.  Timers are periodic: after each call the
 * deadline is re-armed to now + @timeout.  @timeout is ignored without SCHEDULER_POLL_TIMEOUT.
 */
event_id_t tapdisk_server_register_event(char mode, int fd, struct timeval timeout, event_cb_t cb,
					 void *private);
void tapdisk_server_unregister_event(event_id_t id);
void tapdisk_server_mask_event(event_id_t id, int masked);
void tapdisk_server_set_max_timeout(int seconds);
int tapdisk_server_event_set_timeout(event_id_t id, struct timeval timeout);

td_vbd_t *tapdisk_server_get_vbd(td_uuid_t uuid);
struct list_head *tapdisk_server_get_all_vbds(void);
void tapdisk_server_add_vbd(td_vbd_t *vbd);
void tapdisk_server_remove_vbd(td_vbd_t *vbd);

const struct tap_disk *tapdisk_server_find_driver_interface(int type);

/*
 * Extension: work to run once at the end of the current loop iteration, after every event
 * of the iteration has run and its I/O went to the kernel; the NBD export sends the replies
 * of a whole batch of completions this way, in one call.
 */
struct td_deferred {
	struct list_head next; /* self when not queued */
	void (*fn)(void *arg);
	void *arg;
};

static inline void tapdisk_deferred_init(struct td_deferred *d, void (*fn)(void *), void *arg)
{
	INIT_LIST_HEAD(&d->next);
	d->fn = fn;
	d->arg = arg;
}

/* Queues @d once; queuing it again before it ran does nothing. */
void tapdisk_server_defer(struct td_deferred *d);
void tapdisk_server_cancel_deferred(struct td_deferred *d);

/* Queues an I/O for the next batch submission of the loop. */
void tapdisk_server_queue_tiocb(struct tiocb *tiocb);

int tapdisk_server_init(void);
int tapdisk_server_run(void);
void tapdisk_server_iterate(void);
/* Finish in-flight I/O, close every VBD and leave tapdisk_server_run. */
void tapdisk_server_request_shutdown(void);
void tapdisk_server_check_state(void);

#endif

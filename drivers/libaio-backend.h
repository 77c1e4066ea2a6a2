/*
 * The I/O queue: tiocbs queued by drivers during a loop iteration are submitted to the
 * kernel in one io_submit batch; completions are reaped through an eventfd.
 */
#ifndef _TAPDISK_LIBAIO_BACKEND_H_
#define _TAPDISK_LIBAIO_BACKEND_H_

#include "io-backend.h"
#include "tapdisk-scheduler.h"

struct tioq {
	io_context_t ctx;
	int size;     /* kernel slots */
	int inflight; /* submitted, not yet reaped */
	int queued;   /* waiting for submission */
	int efd;
	event_id_t event;
	scheduler_t *sched;
	struct tiocb *head, *tail;
	struct io_event *events;
	struct iocb **batch;

	unsigned long long submitted, completed, errors;
};

int tioq_init(struct tioq *q, scheduler_t *sched, int size);
void tioq_free(struct tioq *q);
void tioq_prep_rw(struct tiocb *tiocb, int fd, int write, char *buf, size_t bytes, long long offset,
		  td_queue_callback_t cb, void *arg);
void tioq_prep_fdatasync(struct tiocb *tiocb, int fd, td_queue_callback_t cb, void *arg);
void tioq_queue(struct tioq *q, struct tiocb *tiocb);
/* Submits every queued tiocb the kernel has room for.  Returns how many went in. */
int tioq_submit_all(struct tioq *q);
/* Reaps completed I/O without waiting and runs the callbacks.  Returns how many. */
int tioq_reap(struct tioq *q);

#endif

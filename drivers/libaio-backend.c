/* libaio I/O queue with eventfd completion, as blktap3's libaio backend does it. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "libaio-backend.h"
#include "tapdisk-log.h"
#include "timeout-math.h"

static void tioq_event(event_id_t id, char mode, void *private)
{
	struct tioq *q = private;
	uint64_t count;

	/* The count only wakes us; io_getevents says what completed. */
	if (read(q->efd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		EPRINTF("eventfd read: %s", strerror(errno));
	tioq_reap(q);
}

int tioq_init(struct tioq *q, scheduler_t *sched, int size)
{
	int err;

	memset(q, 0, sizeof(*q));
	q->size = size;
	q->sched = sched;
	q->efd = -1;

	err = io_setup(size, &q->ctx);
	if (err) {
		EPRINTF("io_setup(%d): %s", size, strerror(-err));
		q->ctx = 0;
		return err;
	}
	q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (q->efd < 0) {
		err = -errno;
		EPRINTF("eventfd: %s", strerror(errno));
		goto fail;
	}
	q->events = calloc(size, sizeof(*q->events));
	q->batch = calloc(size, sizeof(*q->batch));
	if (!q->events || !q->batch) {
		err = -ENOMEM;
		goto fail;
	}
	q->event = scheduler_register_event(sched, SCHEDULER_POLL_READ_FD, q->efd, TV_ZERO,
					    tioq_event, q);
	if (q->event < 0) {
		err = q->event;
		goto fail;
	}
	return 0;

fail:
	tioq_free(q);
	return err;
}

void tioq_free(struct tioq *q)
{
	if (q->event > 0)
		scheduler_unregister_event(q->sched, q->event);
	q->event = 0;
	if (q->ctx)
		io_destroy(q->ctx);
	q->ctx = 0;
	if (q->efd >= 0)
		close(q->efd);
	q->efd = -1;
	free(q->events);
	free(q->batch);
	q->events = NULL;
	q->batch = NULL;
}

void tioq_prep_rw(struct tiocb *tiocb, int fd, int write, char *buf, size_t bytes, long long offset,
		  td_queue_callback_t cb, void *arg)
{
	struct iocb *iocb = &tiocb->uiocb.io;

	if (write)
		io_prep_pwrite(iocb, fd, buf, bytes, offset);
	else
		io_prep_pread(iocb, fd, buf, bytes, offset);
	iocb->data = tiocb;
	tiocb->cb = cb;
	tiocb->arg = arg;
	tiocb->next = NULL;
}

void tioq_prep_fdatasync(struct tiocb *tiocb, int fd, td_queue_callback_t cb, void *arg)
{
	struct iocb *iocb = &tiocb->uiocb.io;

	io_prep_fdsync(iocb, fd);
	iocb->data = tiocb;
	tiocb->cb = cb;
	tiocb->arg = arg;
	tiocb->next = NULL;
}

void tioq_queue(struct tioq *q, struct tiocb *tiocb)
{
	/* Completions signal our eventfd, which wakes the loop. */
	io_set_eventfd(&tiocb->uiocb.io, q->efd);
	tiocb->next = NULL;
	if (q->tail)
		q->tail->next = tiocb;
	else
		q->head = tiocb;
	q->tail = tiocb;
	q->queued++;
}

static void tioq_complete(struct tioq *q, struct tiocb *tiocb, long res)
{
	struct iocb *iocb = &tiocb->uiocb.io;
	int err = 0;

	if (iocb->aio_lio_opcode == IO_CMD_FDSYNC) {
		/* Some file systems refuse aio fsync: do it the plain way, durability first. */
		if (res == -EINVAL && fdatasync(iocb->aio_fildes))
			res = -errno;
		else if (res == -EINVAL)
			res = 0;
		err = res < 0 ? (int)res : 0;
	} else if (res < 0) {
		err = (int)res;
	} else if ((unsigned long)res != iocb->u.c.nbytes) {
		err = -EIO;
	}
	q->completed++;
	if (err)
		q->errors++;
	tiocb->cb(tiocb->arg, tiocb, err);
}

int tioq_submit_all(struct tioq *q)
{
	int total = 0;

	while (q->head && q->inflight < q->size) {
		int n = 0, room = q->size - q->inflight, ret;
		struct tiocb *t = q->head;

		while (t && n < room) {
			q->batch[n++] = &t->uiocb.io;
			t = t->next;
		}
		ret = io_submit(q->ctx, n, q->batch);
		if (ret == -EAGAIN || ret == 0)
			break; /* the kernel is full: the rest goes in after completions */
		if (ret < 0) {
			/* The first iocb was refused: fail it alone and go on with the rest. */
			t = q->head;
			q->head = t->next;
			if (!q->head)
				q->tail = NULL;
			q->queued--;
			tioq_complete(q, t, ret);
			continue;
		}
		for (int i = 0; i < ret; i++) {
			t = q->head;
			q->head = t->next;
			q->queued--;
		}
		if (!q->head)
			q->tail = NULL;
		q->inflight += ret;
		q->submitted += ret;
		total += ret;
	}
	return total;
}

int tioq_reap(struct tioq *q)
{
	struct timespec zero = { 0, 0 };
	int total = 0;

	while (q->inflight > 0) {
		int n = io_getevents(q->ctx, 0, q->size, q->events, &zero);

		if (n == -EINTR)
			continue;
		if (n < 0) {
			EPRINTF("io_getevents: %s", strerror(-n));
			break;
		}
		if (n == 0)
			break;
		q->inflight -= n;
		for (int i = 0; i < n; i++) {
			struct tiocb *tiocb = q->events[i].data;

			tioq_complete(q, tiocb, (long)q->events[i].res);
		}
		total += n;
	}
	return total;
}

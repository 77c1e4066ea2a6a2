/*
 * The tapdisk server: one event loop, one I/O queue and the list of VBDs.
 *
 * Each iteration waits for events, then lets every VBD issue its queued requests, then
 * submits all the disk I/O they produced in one batch.  Completions that queue new
 * requests (a FUA write's flush, say) are issued in the same iteration.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "libaio-backend.h"
#include "tapdisk-scheduler.h"
#include "tapdisk-disktype.h"
#include "tapdisk-log.h"
#include "tapdisk-server.h"
#include "tapdisk-vbd.h"
#include "timeout-math.h"

unsigned int PAGE_SIZE;
unsigned int PAGE_MASK;
unsigned int PAGE_SHIFT;

/* Kernel I/O slots: enough for every client's queue depth on a busy host. */
#define TAPDISK_AIO_SLOTS 1024

static struct {
	scheduler_t scheduler;
	struct tioq aio;
	struct list_head vbds;
	struct list_head deferred;
	int signal_fd;
	event_id_t signal_event;
	int shutdown;
	int initialized;
} server = { .signal_fd = -1 };

event_id_t tapdisk_server_register_event(char mode, int fd, struct timeval timeout, event_cb_t cb,
					 void *private)
{
	return scheduler_register_event(&server.scheduler, mode, fd, timeout, cb, private);
}

void tapdisk_server_unregister_event(event_id_t id)
{
	scheduler_unregister_event(&server.scheduler, id);
}

void tapdisk_server_mask_event(event_id_t id, int masked)
{
	scheduler_mask_event(&server.scheduler, id, masked);
}

void tapdisk_server_set_max_timeout(int seconds)
{
	scheduler_set_max_timeout(&server.scheduler, seconds);
}

int tapdisk_server_event_set_timeout(event_id_t id, struct timeval timeout)
{
	return scheduler_event_set_timeout(&server.scheduler, id, timeout);
}

td_vbd_t *tapdisk_server_get_vbd(td_uuid_t uuid)
{
	td_vbd_t *vbd;

	list_for_each_entry(vbd, &server.vbds, next)
		if (vbd->uuid == uuid)
			return vbd;
	return NULL;
}

struct list_head *tapdisk_server_get_all_vbds(void)
{
	return &server.vbds;
}

void tapdisk_server_add_vbd(td_vbd_t *vbd)
{
	list_add_tail(&vbd->next, &server.vbds);
}

void tapdisk_server_remove_vbd(td_vbd_t *vbd)
{
	list_del(&vbd->next);
}

const struct tap_disk *tapdisk_server_find_driver_interface(int type)
{
	if (type < 0 || type >= DISK_TYPE_MAX)
		return NULL;
	return tapdisk_disk_drivers[type];
}

void tapdisk_server_queue_tiocb(struct tiocb *tiocb)
{
	tioq_queue(&server.aio, tiocb);
}

void tapdisk_server_defer(struct td_deferred *d)
{
	if (list_empty(&d->next))
		list_add_tail(&d->next, &server.deferred);
}

void tapdisk_server_cancel_deferred(struct td_deferred *d)
{
	list_del_init(&d->next);
}

/* Runs the deferred work queued so far; returns how much ran. */
static int tapdisk_server_run_deferred(void)
{
	LIST_HEAD(batch);
	int ran = 0;

	list_splice_tail_init(&server.deferred, &batch);
	while (!list_empty(&batch)) {
		struct td_deferred *d = list_first_entry(&batch, struct td_deferred, next);

		list_del_init(&d->next);
		d->fn(d->arg);
		ran++;
	}
	return ran;
}

/*
 * Issues what the VBDs hold and submits the I/O, then runs the deferred work, until none
 * of it queues more.
 */
static void tapdisk_server_kick(void)
{
	int issued;

	do {
		td_vbd_t *vbd, *tmp;

		issued = 0;
		list_for_each_entry_safe(vbd, tmp, &server.vbds, next)
			issued += tapdisk_vbd_check_state(vbd);
		tioq_submit_all(&server.aio);
		issued += tapdisk_server_run_deferred();
	} while (issued);
}

void tapdisk_server_check_state(void)
{
	tapdisk_server_kick();
}

static int tapdisk_server_wait_ms(void)
{
	td_vbd_t *vbd;
	int wait = -1;

	list_for_each_entry(vbd, &server.vbds, next) {
		int w;

		if (!list_empty(&vbd->new_requests) &&
		    !(vbd->state & (TD_VBD_PAUSED | TD_VBD_PAUSE_REQUESTED)))
			return 0;
		w = tapdisk_vbd_retry_wait_ms(vbd);
		if (w >= 0 && (wait < 0 || w < wait))
			wait = w;
	}
	if (server.aio.queued && server.aio.inflight < server.aio.size)
		return 0;
	return wait;
}

static void tapdisk_server_close_vbds(void)
{
	td_vbd_t *vbd;

	list_for_each_entry(vbd, &server.vbds, next)
		if (!(vbd->state & (TD_VBD_CLOSED | TD_VBD_QUIESCE_REQUESTED)))
			tapdisk_vbd_close(vbd, NULL, NULL);
}

void tapdisk_server_iterate(void)
{
	scheduler_wait_for_events(&server.scheduler, tapdisk_server_wait_ms());
	/* A VBD that was mid-pause when shutdown came can only be closed once paused. */
	if (server.shutdown)
		tapdisk_server_close_vbds();
	tapdisk_server_kick();
}

void tapdisk_server_request_shutdown(void)
{
	if (!server.shutdown)
		DPRINTF("shutting down: finishing in-flight I/O");
	server.shutdown = 1;
	tapdisk_server_close_vbds();
}

static int tapdisk_server_done(void)
{
	td_vbd_t *vbd;

	if (!server.shutdown)
		return 0;
	list_for_each_entry(vbd, &server.vbds, next)
		if (!(vbd->state & TD_VBD_CLOSED))
			return 0;
	return !server.aio.inflight && !server.aio.queued;
}

static void tapdisk_server_signal(event_id_t id, char mode, void *private)
{
	struct signalfd_siginfo si;

	while (read(server.signal_fd, &si, sizeof(si)) == sizeof(si)) {
		DPRINTF("got signal %u", si.ssi_signo);
		tapdisk_server_request_shutdown();
	}
}

static int tapdisk_server_init_signals(void)
{
	sigset_t set;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL)) {
		EPRINTF("sigprocmask: %s", strerror(errno));
		return -errno;
	}
	server.signal_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (server.signal_fd < 0) {
		EPRINTF("signalfd: %s", strerror(errno));
		return -errno;
	}
	server.signal_event = tapdisk_server_register_event(SCHEDULER_POLL_READ_FD, server.signal_fd,
							    TV_ZERO, tapdisk_server_signal, NULL);
	return server.signal_event < 0 ? server.signal_event : 0;
}

int tapdisk_server_init(void)
{
	int err;

	PAGE_SIZE = (unsigned int)sysconf(_SC_PAGESIZE);
	PAGE_MASK = ~(PAGE_SIZE - 1);
	PAGE_SHIFT = (unsigned int)__builtin_ctz(PAGE_SIZE);

	INIT_LIST_HEAD(&server.vbds);
	INIT_LIST_HEAD(&server.deferred);
	err = scheduler_initialize(&server.scheduler);
	if (err)
		return err;
	err = tioq_init(&server.aio, &server.scheduler, TAPDISK_AIO_SLOTS);
	if (err)
		return err;
	err = tapdisk_server_init_signals();
	if (err)
		return err;
	server.initialized = 1;
	return 0;
}

int tapdisk_server_run(void)
{
	while (!tapdisk_server_done())
		tapdisk_server_iterate();
	DPRINTF("all VBDs closed, leaving");
	return 0;
}

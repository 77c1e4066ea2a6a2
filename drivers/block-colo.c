/*
 * The colo driver: COLO disk replication as a tapdisk filter, opened as
 * "colo:HOST:PORT:/path/img".  The image below it is the local disk, served by the aio driver.
 * Until replication starts this driver passes everything through.  Once started, the Primary
 * forwards every completed guest write to the Secondary (colo-primary.c), and the Secondary
 * keeps checkpoint contents and its own VM's writes in a disk buffer (colo-secondary.c).
 *
 * This file holds the driver's operations, the replication API of colo.h, and the driver's
 * own I/O: requests it sends to the disk below through the VBD, so that a pause or close
 * waits for them as for the guest's.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "colo-internal.h"
#include "timeout-math.h"
#include "tapdisk-disktype.h"
#include "tapdisk-driver.h"
#include "tapdisk-image.h"
#include "tapdisk-interface.h"
#include "tapdisk-vbd.h"

static uint64_t colo_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int colo_fail(struct colo *c, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->last_error, sizeof(c->last_error), fmt, ap);
	va_end(ap);
	c->last_error_at = colo_wall_ms();
	EPRINTF("colo %s:%s: %s", c->host, c->port, c->last_error);
	return err;
}

void colo_note(struct colo *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->last_error, sizeof(c->last_error), fmt, ap);
	va_end(ap);
	c->last_error_at = colo_wall_ms();
}

void colo_clear_error(struct colo *c)
{
	c->last_error[0] = '\0';
	c->last_error_at = 0;
}

#define COLO_RECONNECT_MS 500 /* reconnect=1: how soon, and how often while writes finish */

static void colo_reconnect_cb(event_id_t id, char mode, void *priv);

static void colo_reconnect_arm(struct colo *c)
{
	if (c->reconnect_timer > 0)
		return;
	c->reconnect_timer = tapdisk_server_register_event(SCHEDULER_POLL_TIMEOUT, -1,
							   TV_MSECS(COLO_RECONNECT_MS),
							   colo_reconnect_cb, c);
	if (c->reconnect_timer < 0)
		c->reconnect_timer = 0;
}

static void colo_reconnect_cancel(struct colo *c)
{
	if (c->reconnect_timer > 0)
		tapdisk_server_unregister_event(c->reconnect_timer);
	c->reconnect_timer = 0;
}

/*
 * reconnect=1: a side whose link was lost (not ended in order) starts again in its role, with
 * the same options, as `start` would: the Secondary listens, the Primary connects (for
 * connect_timeout) and resyncs.  Until the last run's writes are done start says EBUSY: retry.
 */
static void colo_reconnect_cb(event_id_t id, char mode, void *priv)
{
	struct colo *c = priv;
	struct colo_options opts = c->opts;
	int err;

	colo_reconnect_cancel(c);
	if (c->state != COLO_STATE_BROKEN || c->link_state != COLO_LINK_LOST || !opts.reconnect)
		return;
	DPRINTF("colo %s:%s: reconnect=1: starting the %s again", c->host, c->port,
		colo_role_name(c->role));
	err = colo_start(c, c->role, &opts, NULL, NULL);
	if (!err)
		c->auto_start = true;
	if (err == -EBUSY && c->state == COLO_STATE_BROKEN)
		colo_reconnect_arm(c);
}

void colo_set_state(struct colo *c, enum colo_state state)
{
	if (c->state == state)
		return;
	DPRINTF("colo %s:%s: %s %s -> %s (epoch %llu)", c->host, c->port, colo_role_name(c->role),
		colo_state_name(c->state), colo_state_name(state), (unsigned long long)c->epoch);
	c->state = state;
	if (state == COLO_STATE_BROKEN && c->opts.reconnect && c->link_state == COLO_LINK_LOST)
		colo_reconnect_arm(c);
}

void colo_call_done(struct colo_call *call, int err, uint64_t value)
{
	colo_done_t done = call->done;
	void *arg = call->arg;

	if (!done)
		return;
	call->done = NULL;
	call->arg = NULL;
	done(arg, err, value);
}

bool colo_ended(const struct colo *c)
{
	return c->state == COLO_STATE_FAILED_OVER || c->state == COLO_STATE_STOPPED;
}

/* ---- the driver's own I/O ---- */

static void colo_io_vreq_done(td_vbd_request_t *vreq, int err, void *token, int final)
{
	struct colo_io *io = token;

	list_del_init(&io->next);
	io->done(io->c, io, err);
}

static bool colo_io_is_own(const td_request_t *treq)
{
	return treq->vreq && treq->vreq->cb == colo_io_vreq_done;
}

int colo_io_submit(struct colo *c, struct colo_io *io, int op, uint64_t offset, void *buf,
		   uint64_t len, colo_io_done_t done, void *priv)
{
	int err;

	memset(&io->vreq, 0, sizeof(io->vreq));
	io->c = c;
	io->done = done;
	io->priv = priv;
	io->iov.base = buf;
	io->iov.secs = (unsigned int)(len >> SECTOR_SHIFT);
	io->vreq.op = op;
	io->vreq.sec = offset >> SECTOR_SHIFT;
	io->vreq.iov = op == TD_OP_FLUSH ? NULL : &io->iov;
	io->vreq.iovcnt = op == TD_OP_FLUSH ? 0 : 1;
	io->vreq.cb = colo_io_vreq_done;
	io->vreq.token = io;
	io->vreq.name = "colo";
	err = tapdisk_vbd_queue_request(c->vbd, &io->vreq);
	if (err)
		return colo_fail(c, err, "cannot queue a %s of %llu bytes at %llu: %s",
				 op == TD_OP_READ    ? "read"
				 : op == TD_OP_WRITE ? "write"
						     : "flush",
				 (unsigned long long)len, (unsigned long long)offset,
				 strerror(-err));
	list_add_tail(&io->next, &c->ios);
	return 0;
}

/* Requests the VBD still holds (a pause holds new ones) must not outlive the driver. */
static void colo_io_cancel_all(struct colo *c)
{
	struct colo_io *io, *tmp;

	list_for_each_entry_safe(io, tmp, &c->ios, next) {
		if (io->vreq.list_head) {
			list_del(&io->vreq.next);
			io->vreq.list_head = NULL;
		}
		list_del_init(&io->next);
		io->done(c, io, -ENODEV);
	}
}

/* ---- driver operations ---- */

/* "HOST:PORT:/path", HOST may be "[v6addr]". */
static int colo_parse_name(struct colo *c, const char *name)
{
	struct colo_name n;

	if (colo_name_parse(name, &n)) {
		EPRINTF("colo: '%s' is not HOST:PORT:/path/to/image (port 1-65535, absolute path)",
			name);
		return -EINVAL;
	}
	memcpy(c->host, n.host, sizeof(c->host));
	memcpy(c->port, n.port, sizeof(c->port));
	memcpy(c->name_host, n.host, sizeof(c->name_host));
	memcpy(c->name_port, n.port, sizeof(c->name_port));
	memcpy(c->path, n.path, sizeof(c->path));
	return 0;
}

void colo_init(struct colo *c)
{
	c->link.fd = -1;
	c->hs.fd = -1;
	c->s.listen_fd = -1;
	INIT_LIST_HEAD(&c->link.sendq);
	INIT_LIST_HEAD(&c->p.waiting);
	INIT_LIST_HEAD(&c->p.local);
	INIT_LIST_HEAD(&c->p.unacked);
	INIT_LIST_HEAD(&c->p.borrowed);
	INIT_LIST_HEAD(&c->p.logwait);
	tapdisk_deferred_init(&c->p.log_flush, colo_primary_log_flush, c);
	INIT_LIST_HEAD(&c->p.holds);
	INIT_LIST_HEAD(&c->s.rxq);
	INIT_LIST_HEAD(&c->ios);
	colo_options_init(&c->opts);
}

static int colo_open(td_driver_t *driver, const char *name, struct td_vbd_encryption *encryption,
		     td_flag_t flags)
{
	struct colo *c = driver->data;
	int err;

	memset(c, 0, sizeof(*c));
	err = colo_parse_name(c, name);
	if (err)
		return err;
	c->driver = driver;
	colo_init(c);
	DPRINTF("colo: %s, replicating with %s port %s", c->path, c->host, c->port);
	return 0;
}

static int colo_close(td_driver_t *driver)
{
	struct colo *c = driver->data;

	colo_reconnect_cancel(c);
	if (c->role == COLO_ROLE_PRIMARY)
		colo_primary_close(c);
	else if (c->role == COLO_ROLE_SECONDARY)
		colo_secondary_close(c);
	/* A failed start leaves the role none with the dirty map kept for a retry. */
	colo_primary_dirty_close(c);
	colo_link_close(c);
	colo_start_steps_cancel(c);
	free(c->link.rx);
	c->link.rx = NULL;
	colo_io_cancel_all(c);
	/*
	 * Only a call cut short is a failure to log.  A close after a failed open must leave
	 * the lower image's reason as the last one logged: that is what tap-ctl shows.
	 */
	if (c->start_call.done || c->ckpt_call.done || c->stop_call.done)
		colo_fail(c, -ENODEV, "the VBD was closed");
	else
		colo_note(c, "the VBD was closed");
	colo_call_done(&c->start_call, -ENODEV, 0);
	colo_call_done(&c->ckpt_call, -ENODEV, 0);
	colo_call_done(&c->stop_call, -ENODEV, 0);
	return 0;
}

static int colo_get_parent_id(td_driver_t *driver, td_disk_id_t *id)
{
	struct colo *c = driver->data;

	id->name = strdup(c->path);
	if (!id->name)
		return -ENOMEM;
	id->type = DISK_TYPE_AIO;
	id->flags = 0;
	return 0;
}

static int colo_validate_parent(td_driver_t *driver, td_driver_t *parent, td_flag_t flags)
{
	return 0;
}

static bool colo_secondary_active(const struct colo *c)
{
	return c->role == COLO_ROLE_SECONDARY && !colo_ended(c);
}

static void colo_queue_read(td_driver_t *driver, td_request_t treq)
{
	struct colo *c = driver->data;

	if (!colo_io_is_own(&treq) && colo_secondary_active(c))
		colo_secondary_queue_read(c, treq);
	else
		td_forward_request(treq);
}

static void colo_queue_write(td_driver_t *driver, td_request_t treq)
{
	struct colo *c = driver->data;

	if (colo_io_is_own(&treq))
		td_forward_request(treq);
	else if (c->role == COLO_ROLE_PRIMARY)
		colo_primary_queue_write(c, treq);
	else if (colo_secondary_active(c))
		colo_secondary_queue_write(c, treq);
	else if (c->p.dirty && (c->role == COLO_ROLE_NONE || colo_ended(c)))
		/* A failed start's map keeps counting, and a failed-over Secondary's (re-protect). */
		colo_primary_queue_write(c, treq);
	else {
		c->p.untracked = true;
		td_forward_request(treq);
	}
}

static void colo_queue_flush(td_driver_t *driver, td_request_t treq)
{
	struct colo *c = driver->data;

	/* The Secondary VM's writes live in the buffer, which no flush makes durable. */
	if (!colo_io_is_own(&treq) && colo_secondary_active(c) &&
	    c->state != COLO_STATE_FAILING_OVER)
		td_complete_request(treq, 0);
	else if (!colo_io_is_own(&treq) && c->state == COLO_STATE_FAILING_OVER)
		td_complete_request(treq, -EBUSY); /* retried once the disk is plain */
	else
		td_forward_request(treq);
}

static void colo_stats(td_driver_t *driver, td_stats_t *st)
{
	struct colo *c = driver->data;
	struct colo_status s;

	colo_get_status(c, &s);
	tapdisk_stats_field(st, "role", "s", colo_role_name(s.role));
	tapdisk_stats_field(st, "state", "s", colo_state_name(s.state));
	tapdisk_stats_field(st, "link", "s", colo_link_name(s.link));
	tapdisk_stats_field(st, "epoch", "llu", (unsigned long long)s.epoch);
	tapdisk_stats_field(st, "sent_bytes", "llu", (unsigned long long)s.sent_bytes);
	tapdisk_stats_field(st, "inflight_bytes", "llu", (unsigned long long)s.inflight_bytes);
	tapdisk_stats_field(st, "buffer_blocks", "llu", (unsigned long long)s.buffer_blocks);
	tapdisk_stats_field(st, "dirty_blocks", "llu", (unsigned long long)s.dirty_blocks);
}

struct tap_disk tapdisk_colo = {
	.disk_type = "tapdisk_colo",
	.flags = 0,
	.private_data_size = sizeof(struct colo),
	.td_open = colo_open,
	.td_close = colo_close,
	.td_queue_read = colo_queue_read,
	.td_queue_write = colo_queue_write,
	.td_queue_flush = colo_queue_flush,
	.td_get_parent_id = colo_get_parent_id,
	.td_validate_parent = colo_validate_parent,
	.td_stats = colo_stats,
};

/* ---- the replication API ---- */

struct colo *colo_from_vbd(td_vbd_t *vbd)
{
	td_image_t *image;

	if (!vbd)
		return NULL;
	tapdisk_for_each_image(image, &vbd->images) {
		if (image->type == DISK_TYPE_COLO && image->driver &&
		    image->driver->ops == &tapdisk_colo) {
			struct colo *c = image->driver->data;

			c->image = image;
			c->vbd = vbd;
			c->disk_size = (uint64_t)image->info.size << SECTOR_SHIFT;
			return c;
		}
	}
	return NULL;
}

static int colo_refuse_ended(struct colo *c, const char *what)
{
	return colo_fail(c, -ESHUTDOWN, "%s: replication has ended (%s); the disk is a plain disk",
			 what, colo_state_name(c->state));
}

static const char *colo_pending(struct colo *c);

/*
 * A VBD whose replication ended (failed-over, stopped) starts again in either role, a broken
 * one in either role (in its own role it resyncs: colo-protocol.md, "Resync"): the
 * last run's state goes (timers, sockets, queues; a broken Secondary's buffer is dropped
 * unwritten: the new Primary's sync makes the other disk right).  The dirty map stays: a failed-over Secondary's is what it wrote
 * since the failover (its re-protect sends it), an old Primary's what the new Primary lacks.
 *
 * colo_start_again_check: whether the VBD may start again now, 0 or EBUSY and why.
 */
static int colo_start_again_check(struct colo *c, enum colo_role role)
{
	bool broken = c->state == COLO_STATE_BROKEN;

	if (!colo_ended(c) && !broken)
		return colo_fail(c, -EBUSY, "start: already started as %s (%s)",
				 colo_role_name(c->role), colo_state_name(c->state));
	if (c->start_call.done || c->ckpt_call.done || c->stop_call.done)
		return colo_fail(c, -EBUSY, "start: wait for the %s in progress",
				 colo_pending(c));
	/*
	 * Guest writes in flight through the Primary's path complete in the new run: forwarded
	 * if it is a Primary's (colo_primary_local_done), so a Primary (resync, re-protect)
	 * starts at once.  A Secondary must not inherit them.
	 */
	if ((role == COLO_ROLE_SECONDARY &&
	     (!list_empty(&c->p.local) || !list_empty(&c->p.logwait))) ||
	    !list_empty(&c->p.waiting))
		return colo_fail(c, -EBUSY, "start: guest writes of the last run are in flight; retry");
	if (c->role != COLO_ROLE_PRIMARY && (c->s.inflight || c->s.svm_writes || c->s.wb_inflight))
		return colo_fail(c, -EBUSY, "start: disk writes of the last run are in flight; retry");
	return 0;
}

/* Takes the last run apart, once colo_start_again_check and colo_start_check passed. */
static void colo_start_again(struct colo *c, enum colo_role role)
{
	bool broken = c->state == COLO_STATE_BROKEN;
	bool failed_over_secondary =
		c->role == COLO_ROLE_SECONDARY && c->state == COLO_STATE_FAILED_OVER;

	if (c->role == COLO_ROLE_PRIMARY) {
		colo_primary_close(c);
	} else {
		struct colo_buffer *keep = NULL;

		if (c->s.buf && broken) {
			/*
			 * As a Secondary again, kept until a Primary is accepted
			 * (colo_secondary_link_ready drops it): a failover meanwhile writes it
			 * back, so the disk is the last checkpoint and the Secondary VM's writes,
			 * not the unfinished epoch's.  As a Primary, dropped unwritten once the
			 * start is accepted (colo_start): a start refused keeps it.
			 */
			keep = c->s.buf;
			c->s.buf = NULL;
		}
		colo_secondary_close(c);
		c->s.buf = keep;
		c->s.verifying = c->s.syncing = false;
	}
	/*
	 * A broken Secondary started again in its role keeps its disk's story (a checkpoint,
	 * or a copy without one); any other becomes a Secondary now, with no checkpoint.
	 */
	if (!broken || c->role != COLO_ROLE_SECONDARY || role != COLO_ROLE_SECONDARY)
		c->s.inconsistent = c->s.checkpointed = false;
	colo_link_close(c);
	colo_start_steps_cancel(c);
	DPRINTF("colo %s:%s: start %s again after %s %s (epoch %llu)", c->host, c->port,
		colo_role_name(role), colo_role_name(c->role), colo_state_name(c->state),
		(unsigned long long)c->epoch);
	c->link_state = COLO_LINK_NONE;
	c->stop_failover = false;
	if (!broken || role != c->role) {
		/* The pair's history (the resync's) does not survive a change of role or an end. */
		c->p.history = false;
		c->p.committed = 0;
		c->s.pair_known = c->s.resumable = false;
	}
	c->p.reprotect = role == COLO_ROLE_PRIMARY && failed_over_secondary && c->p.dirty;
	c->role = COLO_ROLE_NONE;
	colo_set_state(c, COLO_STATE_IDLE);
}

/*
 * What a start on a VBD that ran before changes before it can still be refused: put back if it
 * is (colo.h: a refused call changes nothing).  The last run's sockets, timers and queues are
 * gone by then, but a side that is broken, failed over or stopped has none that work anyway.
 */
struct colo_start_undo {
	enum colo_role role;
	enum colo_state state;
	enum colo_link link;
	uint64_t epoch, last_epoch, committed;
	struct colo_options opts;
	char host[sizeof(((struct colo *)0)->host)], port[sizeof(((struct colo *)0)->port)];
	bool stop_failover, reprotect, history, untracked;
	bool dirty; /* a dirty map: a Primary's start makes one, a Secondary's from its log */
	const char *reprotect_kind;
	bool inconsistent, checkpointed, pair_known, resumable;
};

static void colo_start_undo_save(const struct colo *c, struct colo_start_undo *u)
{
	*u = (struct colo_start_undo){
		.role = c->role, .state = c->state, .link = c->link_state, .epoch = c->epoch,
		.last_epoch = c->p.last_epoch, .committed = c->p.committed, .opts = c->opts,
		.stop_failover = c->stop_failover, .reprotect = c->p.reprotect,
		.history = c->p.history, .untracked = c->p.untracked, .dirty = c->p.dirty != NULL,
		.reprotect_kind = c->p.reprotect_kind, .inconsistent = c->s.inconsistent,
		.checkpointed = c->s.checkpointed, .pair_known = c->s.pair_known,
		.resumable = c->s.resumable,
	};
	memcpy(u->host, c->host, sizeof(u->host));
	memcpy(u->port, c->port, sizeof(u->port));
}

static void colo_start_undo(struct colo *c, const struct colo_start_undo *u)
{
	DPRINTF("colo %s:%s: the start was refused: %s %s as before", c->host, c->port,
		colo_role_name(u->role), colo_state_name(u->state));
	if (!u->dirty && c->p.dirty)
		colo_primary_dirty_close(c);
	c->role = u->role;
	c->state = u->state; /* as it was: not colo_set_state, which would arm reconnect=1 */
	c->link_state = u->link;
	c->epoch = u->epoch;
	c->p.last_epoch = u->last_epoch;
	c->p.committed = u->committed;
	c->opts = u->opts;
	c->stop_failover = u->stop_failover;
	c->p.reprotect = u->reprotect;
	c->p.history = u->history;
	c->p.untracked = u->untracked;
	c->p.reprotect_kind = u->reprotect_kind;
	c->s.inconsistent = u->inconsistent;
	c->s.checkpointed = u->checkpointed;
	c->s.pair_known = u->pair_known;
	c->s.resumable = u->resumable;
	memcpy(c->host, u->host, sizeof(c->host));
	memcpy(c->port, u->port, sizeof(c->port));
}

/* What a start can refuse before it touches the VBD: nothing changes if it does. */
static int colo_start_check(struct colo *c, enum colo_role role, const struct colo_options *opts)
{
	if (role == COLO_ROLE_PRIMARY && opts->verify &&
	    (opts->sync == COLO_SYNC_FULL || opts->sync == COLO_SYNC_DIFF))
		return colo_fail(c, -EINVAL,
				 "start: verify=1 checks that the disks are identical, sync=%s "
				 "copies them: choose one",
				 colo_sync_mode_name(opts->sync));
	/* A broken Secondary's buffer is kept (colo_start_again): its blocks must stay whole. */
	if (role == COLO_ROLE_SECONDARY && c->role == COLO_ROLE_SECONDARY &&
	    c->state == COLO_STATE_BROKEN && colo_buffer_blocks(c->s.buf) &&
	    opts->block_size != c->opts.block_size)
		return colo_fail(c, -EINVAL,
				 "start: block_size=%u: this broken Secondary keeps its buffer of "
				 "%u-byte blocks for a failover until a Primary connects; start it "
				 "with block_size=%u, or fail it over or stop it first",
				 opts->block_size, c->opts.block_size, c->opts.block_size);
	return colo_handshake_check(c, role, opts);
}

int colo_start(struct colo *c, enum colo_role role, const struct colo_options *opts,
	       colo_done_t done, void *arg)
{
	struct colo_buffer *old_buf = NULL;
	struct colo_start_undo undo;
	bool again = c->role != COLO_ROLE_NONE;
	int err;

	c->auto_start = false; /* the operator's, or reconnect=1's which says so once started */
	if (role != COLO_ROLE_PRIMARY && role != COLO_ROLE_SECONDARY)
		return colo_fail(c, -EINVAL, "start: the role must be primary or secondary");
	err = again ? colo_start_again_check(c, role) : 0;
	if (!err)
		err = colo_start_check(c, role, opts);
	if (err)
		return err;
	colo_start_undo_save(c, &undo);
	if (again) {
		colo_start_again(c, role);
		if (role == COLO_ROLE_PRIMARY) {
			old_buf = c->s.buf; /* a broken Secondary's: dropped once accepted */
			c->s.buf = NULL;
		}
	} else if (role == COLO_ROLE_SECONDARY) {
		c->p.reprotect = false; /* a failed re-protect that becomes a Secondary instead */
	}
	if (c->disk_size % opts->block_size && role == COLO_ROLE_SECONDARY)
		DPRINTF("colo: the disk's last %llu bytes are a partial block",
			(unsigned long long)(c->disk_size % opts->block_size));
	c->opts = *opts;
	/* address=: after a failover the roles swap, the VBD names stay. */
	snprintf(c->host, sizeof(c->host), "%s",
		 opts->address_host[0] ? opts->address_host : c->name_host);
	snprintf(c->port, sizeof(c->port), "%s",
		 opts->address_port[0] ? opts->address_port : c->name_port);
	c->role = role;
	c->p.last_epoch = c->epoch;
	c->epoch = 1;
	colo_clear_error(c);
	c->start_call.done = done;
	c->start_call.arg = arg;
	c->p.reprotect_kind = c->p.reprotect ? "waiting" : "";
	if (role == COLO_ROLE_SECONDARY)
		err = colo_reprotect_open_log(c);
	/* What we wrote since the failover stays dirty until the re-protect copies it. */
	else if (!err && c->p.reprotect && colo_dirty_carry_all(c->p.dirty))
		err = colo_fail(c, -ENOMEM, "start: out of memory for the dirty map");
	if (!err)
		err = role == COLO_ROLE_PRIMARY ? colo_primary_start(c) : colo_secondary_start(c);
	if (err && again) {
		/* Refused: the VBD is what it was (a broken Secondary keeps its buffer). */
		c->start_call.done = NULL;
		if (old_buf)
			c->s.buf = old_buf;
		colo_start_undo(c, &undo);
	} else if (err) {
		c->start_call.done = NULL;
		c->role = COLO_ROLE_NONE;
		colo_set_state(c, COLO_STATE_IDLE);
		c->link_state = COLO_LINK_NONE;
	} else if (old_buf) {
		/* A broken Secondary became a Primary: its buffer goes unwritten (colo.md). */
		colo_buffer_destroy(old_buf);
	}
	return err;
}

static int colo_check_role(struct colo *c, enum colo_role role, const char *what)
{
	if (colo_ended(c))
		return colo_refuse_ended(c, what);
	if (c->role == COLO_ROLE_NONE)
		return colo_fail(c, -EINVAL, "%s: replication is not started", what);
	if (c->role != role)
		return colo_fail(c, -EINVAL, "%s is a %s operation; this VBD is the %s", what,
				 role == COLO_ROLE_PRIMARY ? "Primary" : "Secondary",
				 colo_role_name(c->role));
	return 0;
}

int colo_prepare_checkpoint(struct colo *c, colo_done_t done, void *arg)
{
	int err = colo_check_role(c, COLO_ROLE_PRIMARY, "prepare_checkpoint");

	if (err)
		return err;
	if (c->ckpt_call.done)
		return colo_fail(c, -EBUSY, "prepare_checkpoint: a checkpoint is in progress");
	c->ckpt_call.done = done;
	c->ckpt_call.arg = arg;
	err = colo_primary_prepare(c);
	if (err)
		c->ckpt_call.done = NULL;
	return err;
}

int colo_do_checkpoint(struct colo *c, colo_done_t done, void *arg)
{
	int err = colo_check_role(c, COLO_ROLE_SECONDARY, "do_checkpoint");

	if (err)
		return err;
	if (c->ckpt_call.done)
		return colo_fail(c, -EBUSY,
				 "do_checkpoint: a checkpoint is in progress (waiting for the end "
				 "of epoch %llu)",
				 (unsigned long long)c->epoch);
	if (c->stop_call.done)
		return colo_fail(c, -EBUSY, "do_checkpoint: a %s is in progress",
				 c->stop_failover ? "failover" : "stop");
	c->ckpt_call.done = done;
	c->ckpt_call.arg = arg;
	err = colo_secondary_checkpoint(c);
	if (err)
		c->ckpt_call.done = NULL;
	return err;
}

int colo_get_sent_data_size(struct colo *c, uint64_t *sent, uint64_t *inflight)
{
	if (c->role != COLO_ROLE_PRIMARY)
		return colo_fail(c, -EINVAL,
				 "get_sent_data_size is a Primary operation; this VBD "
				 "is the %s",
				 colo_role_name(c->role));
	*sent = c->p.sent_bytes;
	*inflight = c->p.reserved;
	return 0;
}

int colo_stop_replication(struct colo *c, bool failover, colo_done_t done, void *arg)
{
	const char *what = failover ? "failover" : "stop";
	int err;

	c->auto_start = false; /* a reconnect=1 start this ends is not tried again */
	if (c->state == COLO_STATE_FAILED_OVER || c->state == COLO_STATE_STOPPED) {
		bool same = failover == (c->state == COLO_STATE_FAILED_OVER);

		return colo_fail(c, same ? -EALREADY : -ESHUTDOWN, "%s: replication has %s", what,
				 c->state == COLO_STATE_FAILED_OVER ? "already failed over"
								    : "already stopped");
	}
	if (c->role == COLO_ROLE_NONE)
		return colo_fail(c, -EINVAL, "%s: replication is not started", what);
	if (c->stop_call.done)
		return colo_fail(c, -EALREADY, "%s: a %s is already in progress", what,
				 c->stop_failover ? "failover" : "stop");
	if (failover && c->role == COLO_ROLE_SECONDARY &&
	    (c->s.inconsistent || !c->s.checkpointed)) {
		char why[COLO_ERR_LEN];

		if (c->s.syncing)
			snprintf(why, sizeof(why), "the Primary's copy has not ended (%llu bytes "
				 "received)", (unsigned long long)c->s.sync_rx);
		else if (c->s.inconsistent)
			snprintf(why, sizeof(why), "no checkpoint since the Primary's copy");
		else
			snprintf(why, sizeof(why), "no checkpoint since this VBD became a Secondary");
		if (!c->stop_force)
			return colo_fail(c, -EBUSY,
					 "failover: the disk is inconsistent: %s; 'failover force' "
					 "fails over anyway",
					 why);
		colo_fail(c, 0, "failover forced: the disk is inconsistent: %s", why);
		snprintf(c->stop_forced, sizeof(c->stop_forced), "%s", c->last_error);
	} else {
		c->stop_forced[0] = '\0';
	}
	c->stop_call.done = done;
	c->stop_call.arg = arg;
	c->stop_failover = failover;
	err = c->role == COLO_ROLE_PRIMARY ? colo_primary_stop(c, failover)
					   : colo_secondary_stop(c, failover);
	if (err)
		c->stop_call.done = NULL;
	return err;
}

int colo_failover_force(struct colo *c, colo_done_t done, void *arg)
{
	int err;

	c->stop_force = true;
	err = colo_stop_replication(c, true, done, arg);
	c->stop_force = false;
	return err;
}

const char *colo_failover_forced(struct colo *c)
{
	return c->stop_forced;
}

int colo_cancel(struct colo *c, void *arg)
{
	if (c->start_call.done && c->start_call.arg == arg && c->role == COLO_ROLE_PRIMARY) {
		colo_primary_cancel_start(c);
		return 0;
	}
	if (c->ckpt_call.done && c->ckpt_call.arg == arg && c->role == COLO_ROLE_SECONDARY) {
		colo_secondary_cancel_checkpoint(c);
		return 0;
	}
	return -EBUSY;
}

/* The operations whose callbacks have not run, for status. */
static const char *colo_pending(struct colo *c)
{
	const struct {
		const struct colo_call *call;
		const char *name;
	} calls[] = {
		{ &c->start_call, "start" },
		{ &c->ckpt_call, "checkpoint" },
		{ &c->stop_call, c->stop_failover ? "failover" : "stop" },
	};
	size_t len = 0;

	c->pending[0] = '\0';
	for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]); i++)
		if (calls[i].call->done)
			len += snprintf(c->pending + len, sizeof(c->pending) - len, "%s%s",
					len ? " " : "", calls[i].name);
	return c->pending;
}

void colo_get_status(struct colo *c, struct colo_status *st)
{
	memset(st, 0, sizeof(*st));
	st->pending = colo_pending(c);
	st->role = c->role;
	st->state = c->state;
	st->link = c->link_state;
	st->epoch = c->role == COLO_ROLE_NONE ? 0 : c->epoch;
	st->block_size = c->opts.block_size;
	st->last_error = c->last_error;
	st->last_error_at = c->last_error_at;
	if (c->role == COLO_ROLE_PRIMARY) {
		st->sent_bytes = c->p.sent_bytes;
		st->inflight_bytes = c->p.reserved;
		st->inflight_limit = colo_pace_limit(c);
		st->apply_rate = c->p.pace.rate;
	}
	/* Any role: a failed-over Secondary's map, an old Primary's that a re-protect sends. */
	if (c->p.dirty)
		colo_primary_dirty_status(c, st);
	if (c->role == COLO_ROLE_PRIMARY) {
		st->sync_done_bytes = c->p.sync_done;
		st->sync_total_bytes = c->p.sync_total;
		st->sync_sent_bytes = c->p.sync_sent;
		st->sync_rate = c->p.sync_rate;
		st->reprotect = c->p.reprotect_kind;
	}
	if (c->role == COLO_ROLE_SECONDARY)
		st->sync_done_bytes = c->s.sync_rx;
	if (c->role == COLO_ROLE_SECONDARY && c->s.buf) {
		st->buffer_blocks = colo_buffer_blocks(c->s.buf);
		st->buffer_bytes = colo_buffer_bytes(c->s.buf);
	}
}

const char *colo_last_error(struct colo *c)
{
	return c->last_error;
}

long long colo_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

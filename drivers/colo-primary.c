/*
 * The Primary: a guest write completes once the local disk has it and its frame is queued
 * (with the link up, sent from the guest's own buffer by the link's flush at the end of the
 * same loop iteration, which then completes it); frames are forwarded, in the order the writes
 * completed, to the Secondary.  The queue counts every
 * byte from the local write's start to the Secondary's acknowledgement and is bounded by
 * queue_limit: past it, new guest writes wait (backpressure), and nothing is ever dropped
 * while the link lives.  A checkpoint is an epoch marker in the same stream: once the
 * Secondary acknowledges it, every write before it is on the Secondary.
 *
 * Every written block is also marked dirty, so that after a lost Secondary or a failover the
 * blocks changed since the last checkpoint are known (for the resync that comes later).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "colo-internal.h"
#include "crc32c.h"
#include "tapdisk-interface.h"
#include "timeout-math.h"

/* One forwarded frame: a write (with its data) or an epoch marker or the verify list. */
struct colo_fwd {
	struct colo_msg msg;
	struct list_head list; /* in p.unacked, seq order, once the local write completed */
	/*
	 * In p.local while the local write is in flight; then, while @borrowed, in p.borrowed.
	 */
	struct list_head local;
	struct colo *c;
	/* The guest's request until its local write completes, or while @borrowed. */
	td_request_t treq;
	/*
	 * The frame's data is the guest's buffer (treq.buf), not yet completed: see
	 * colo_primary_link_flushed().
	 */
	bool borrowed;
	struct colo_frame f;
	char data[];
};

/* A guest write held by backpressure. */
struct colo_wait {
	struct list_head next;
	td_request_t treq;
};

static void colo_primary_issue(struct colo *c, td_request_t treq);
static void colo_primary_ckpt_timer_stop(struct colo *c);
static void colo_primary_kick_waiting(struct colo *c);

/* ---- dirty blocks (colo-dirty.h) and the dirty log ---- */

/* A write held until the log flush @gen made its extents durable, then forwarded to the disk. */
struct colo_logwait {
	struct list_head next;
	td_request_t req;
	uint64_t gen;
};

uint64_t colo_primary_dirty_blocks(const struct colo *c)
{
	return c->p.dirty ? colo_dirty_count(c->p.dirty, 0) : 0;
}

void colo_primary_dirty_status(const struct colo *c, struct colo_status *st)
{
	struct colo_dirty_log *log = colo_dirty_log(c->p.dirty);

	st->dirty_blocks = colo_primary_dirty_blocks(c);
	st->dirty_bytes = c->p.dirty ? colo_dirty_bytes(c->p.dirty, 0) : 0;
	if (!log)
		return;
	st->dirty_log = colo_dirty_log_path(log);
	st->dirty_log_extents = colo_dirty_log_count(log);
	st->dirty_log_flushes = colo_dirty_log_flushes(log);
}

/*
 * Issues the held writes whose flush is done; with @err (the log could not be written) fails
 * them all instead: a write whose extent is not durably dirty must not reach the disk.
 */
static void colo_primary_log_release(struct colo *c, int err)
{
	struct colo_dirty_log *log = colo_dirty_log(c->p.dirty);
	uint64_t synced = log ? colo_dirty_log_synced_gen(log) : UINT64_MAX;
	struct colo_logwait *w, *tmp;
	LIST_HEAD(ready);

	list_for_each_entry_safe(w, tmp, &c->p.logwait, next)
		if (err || w->gen <= synced)
			list_move_tail(&w->next, &ready);
	list_for_each_entry_safe(w, tmp, &ready, next) {
		td_request_t req = w->req;

		list_del(&w->next);
		free(w);
		if (err)
			td_complete_request(req, -EIO);
		else
			td_forward_request(req);
	}
}

/* End of a loop iteration with writes held: one flush starts for all of them. */
void colo_primary_log_flush(void *arg)
{
	struct colo *c = arg;
	struct colo_dirty_log *log = colo_dirty_log(c->p.dirty);
	int err = log ? colo_dirty_log_flush_start(log) : 0;

	if (err)
		colo_fail(c, err, "dirty_log=%s: cannot write: %s", colo_dirty_log_path(log),
			  strerror(-err));
	colo_primary_log_release(c, err);
}

/* The log's flush thread finished a flush: its writes go, and the next flush starts. */
static void colo_primary_log_event(event_id_t id, char mode, void *arg)
{
	struct colo *c = arg;
	struct colo_dirty_log *log = colo_dirty_log(c->p.dirty);
	int err = log ? colo_dirty_log_flush_reap(log) : -EAGAIN;

	if (err == -EAGAIN)
		return;
	if (!err)
		err = colo_dirty_log_flush_start(log);
	if (err)
		colo_fail(c, err, "dirty_log=%s: cannot write: %s", colo_dirty_log_path(log),
			  strerror(-err));
	colo_primary_log_release(c, err);
}

/*
 * Forwards a write to the disk once the dirty log records its extents durably (at once if it
 * did already).  @req's callback must end it with colo_dirty_end().
 */
static void colo_primary_forward(struct colo *c, td_request_t req)
{
	uint64_t gen = colo_dirty_begin(c->p.dirty, req.sec << SECTOR_SHIFT,
					(uint64_t)req.secs << SECTOR_SHIFT);
	struct colo_logwait *w;

	if (!gen) {
		td_forward_request(req);
		return;
	}
	w = malloc(sizeof(*w));
	if (!w) {
		/* No memory to wait: flush now, blocking. */
		int err = colo_dirty_log_flush(colo_dirty_log(c->p.dirty));

		if (err)
			td_complete_request(req, -EIO);
		else
			td_forward_request(req);
		return;
	}
	w->req = req;
	w->gen = gen;
	list_add_tail(&w->next, &c->p.logwait);
	tapdisk_server_defer(&c->p.log_flush);
}

/* Closes the log (waiting for its flush in flight); held writes go once it is durable. */
static void colo_primary_close_log(struct colo *c)
{
	struct colo_dirty_log *log = colo_dirty_log(c->p.dirty);
	int err = 0;

	tapdisk_server_cancel_deferred(&c->p.log_flush);
	if (c->p.log_event > 0)
		tapdisk_server_unregister_event(c->p.log_event);
	c->p.log_event = 0;
	if (log && !list_empty(&c->p.logwait))
		err = colo_dirty_log_flush(log);
	if (c->p.dirty)
		colo_dirty_close_log(c->p.dirty);
	colo_primary_log_release(c, err);
}

void colo_primary_dirty_close(struct colo *c)
{
	colo_primary_close_log(c);
	colo_dirty_destroy(c->p.dirty);
	c->p.dirty = NULL;
}

/* Opens the dirty_log= of this start (if another or none was open) and records the map in it. */
static int colo_primary_open_log(struct colo *c)
{
	struct colo_dirty_log_geometry g = {
		.disk_size = c->disk_size,
		.block_size = c->opts.block_size,
	};
	struct colo_dirty_log *log = colo_dirty_log(c->p.dirty);
	char why[COLO_ERR_LEN];
	int err;

	if (log && !strcmp(colo_dirty_log_path(log), c->opts.dirty_log))
		return 0;
	err = colo_dirty_log_open(c->opts.dirty_log, &g, NULL, &log, why, sizeof(why));
	if (err)
		return colo_fail(c, err, "%s", why);
	colo_primary_close_log(c); /* another path's */
	err = colo_dirty_attach_log(c->p.dirty, log);
	if (!err) {
		err = colo_dirty_log_flush(log);
		c->p.log_event = tapdisk_server_register_event(SCHEDULER_POLL_READ_FD,
							       colo_dirty_log_fd(log), TV_ZERO,
							       colo_primary_log_event, c);
		if (!err && c->p.log_event < 0)
			err = c->p.log_event;
		if (err)
			colo_primary_close_log(c);
	}
	if (err)
		return colo_fail(c, err, "dirty_log=%s: %s", c->opts.dirty_log, strerror(-err));
	if (colo_dirty_log_epoch(log) || colo_dirty_log_count(log)) {
		/* A log of an earlier run: it knows what changed since its checkpoint. */
		c->p.history = true;
		if (colo_dirty_log_epoch(log) > c->p.committed)
			c->p.committed = colo_dirty_log_epoch(log);
	}
	DPRINTF("colo %s:%s: dirty log %s: %llu extents dirty from before, checkpoint %llu",
		c->host, c->port, c->opts.dirty_log, (unsigned long long)colo_dirty_log_count(log),
		(unsigned long long)colo_dirty_log_epoch(log));
	return 0;
}

/* ---- the forward queue ---- */

static void colo_fwd_sent(struct colo *c, struct colo_msg *m)
{
	/* Stays in p.unacked, where the acknowledgement frees it. */
}

static void colo_primary_send(struct colo *c, struct colo_fwd *fwd)
{
	fwd->f.seq = c->p.next_seq++;
	fwd->msg.data = !fwd->f.length ? NULL : fwd->borrowed ? fwd->treq.buf : fwd->data;
	fwd->msg.len = fwd->f.length;
	fwd->msg.sent = colo_fwd_sent;
	colo_link_send(c, &fwd->msg, &fwd->f);
}

static bool colo_primary_forwarding(const struct colo *c)
{
	/*
	 * While a start that copies connects, its copy will take every block written meanwhile
	 * from the dirty map, so the writes are not queued: a Secondary that does not answer
	 * (gone, for a resync or reconnect=1) must not hold the guest back for connect_timeout
	 * once queue_limit is full.  A start without a copy (sync=none, verify=1, a re-protect
	 * whose set is taken apart) queues them for the link.
	 */
	if (c->state == COLO_STATE_CONNECTING)
		return !colo_sync_covers_connecting(c);
	return c->state == COLO_STATE_RUNNING || c->state == COLO_STATE_SYNCING;
}

/* Appends a frame; it is sent now if the link is up, else when it comes up. */
static void colo_primary_enqueue(struct colo *c, struct colo_fwd *fwd)
{
	list_add_tail(&fwd->list, &c->p.unacked);
	INIT_LIST_HEAD(&fwd->msg.next);
	fwd->f.seq = 0;
	if (c->link_state == COLO_LINK_UP)
		colo_primary_send(c, fwd);
}

/*
 * Gives a borrowed buffer back: a frame still queued (not, or not fully, taken by the socket)
 * gets a copy of its data first, and the guest's write completes.
 */
static void colo_primary_unborrow(struct colo *c, struct colo_fwd *fwd)
{
	td_request_t treq = fwd->treq;

	list_del_init(&fwd->local);
	fwd->borrowed = false;
	if (!list_empty(&fwd->msg.next)) {
		memcpy(fwd->data, treq.buf, fwd->f.length);
		fwd->msg.data = fwd->data;
	}
	td_complete_request(treq, 0);
}

/*
 * The link flushed (or closes): every buffer borrowed since the last flush goes back.  The
 * socket took most frames whole, so most writes complete without their data ever copied:
 * once sent, a frame's data is not needed again (a lost link drops the queue, and the resync
 * that follows reads the disk).  One at a time, so that a completion's side effects cannot
 * disturb the walk.
 */
void colo_primary_link_flushed(struct colo *c)
{
	while (!list_empty(&c->p.borrowed))
		colo_primary_unborrow(c, list_first_entry(&c->p.borrowed, struct colo_fwd, local));
}

static void colo_primary_release(struct colo *c, struct colo_fwd *fwd)
{
	if (fwd->borrowed)
		colo_primary_unborrow(c, fwd);
	c->p.reserved -= fwd->f.length;
	list_del(&fwd->list);
	free(fwd);
}

bool colo_primary_writing(const struct colo *c, uint64_t off, uint64_t len)
{
	const struct colo_fwd *fwd;

	list_for_each_entry(fwd, &c->p.local, local)
		if (fwd->f.offset < off + len && off < fwd->f.offset + fwd->f.length)
			return true;
	return false;
}

static bool colo_primary_held(const struct colo *c, uint64_t off, uint64_t len)
{
	const struct colo_hold *h;

	list_for_each_entry(h, &c->p.holds, next)
		if (h->offset < off + len && off < h->offset + h->length)
			return true;
	return false;
}

void colo_primary_hold(struct colo *c, struct colo_hold *h)
{
	list_add_tail(&h->next, &c->p.holds);
}

void colo_primary_release_hold(struct colo *c, struct colo_hold *h)
{
	list_del_init(&h->next);
	colo_primary_kick_waiting(c);
}

/*
 * A write must wait when the queue is full, or when it overlaps a local write in flight: the
 * local disk would order the two arbitrarily, and the Secondary applies them in completion
 * order, so overlapping writes are serialised to keep both disks equal.
 */
/* Whether the queue takes @len more bytes; one write always goes into an empty queue. */
static bool colo_primary_queue_room(const struct colo *c, uint64_t len)
{
	return !c->p.reserved || c->p.reserved + len <= colo_pace_limit(c);
}

static bool colo_primary_must_wait(const struct colo *c, const td_request_t *treq)
{
	uint64_t len = (uint64_t)treq->secs << SECTOR_SHIFT, off = treq->sec << SECTOR_SHIFT;

	if (!colo_primary_forwarding(c))
		return false;
	if (!colo_primary_queue_room(c, len))
		return true;
	return colo_primary_writing(c, off, len) || colo_primary_held(c, off, len);
}

/* Whether the first held write waits for queue space (not only for an overlap). */
static bool colo_primary_queue_full(const struct colo *c)
{
	const struct colo_wait *w;

	if (list_empty(&c->p.waiting))
		return false;
	w = list_first_entry(&c->p.waiting, struct colo_wait, next);
	return !colo_primary_queue_room(c, (uint64_t)w->treq.secs << SECTOR_SHIFT);
}

/*
 * A live Secondary acknowledges nothing while it holds the next epoch for its own checkpoint,
 * which never comes if whoever drives the checkpoints died between the Primary's and the
 * Secondary's; heartbeats keep the link up meanwhile.  The guest's writes must not wait on it
 * for ever: after timeout without an acknowledgement the link goes, as if the Secondary had
 * fallen silent, and they complete on the local disk (the dirty map keeps them for a resync).
 */
bool colo_primary_stalled(struct colo *c, long long now_ms)
{
	if (!colo_primary_forwarding(c) || !colo_primary_queue_full(c)) {
		c->p.stall_since_ms = 0;
		return false;
	}
	if (!c->p.stall_since_ms || c->p.acked_seq != c->p.stall_seq) {
		c->p.stall_seq = c->p.acked_seq;
		c->p.stall_since_ms = now_ms;
		return false;
	}
	if (now_ms - c->p.stall_since_ms < (long long)c->opts.timeout_ms)
		return false;
	c->p.stall_since_ms = 0;
	colo_link_lost(c, -ETIMEDOUT,
		       "the Secondary acknowledged nothing for %u ms while guest writes waited "
		       "for queue space (%llu bytes unacknowledged, limit %llu): it holds the "
		       "next epoch until its own checkpoint, or cannot apply",
		       c->opts.timeout_ms, (unsigned long long)c->p.reserved,
		       (unsigned long long)colo_pace_limit(c));
	return true;
}

/* Issues held writes while they may go, in their order. */
static void colo_primary_kick_waiting(struct colo *c)
{
	while (!list_empty(&c->p.waiting)) {
		struct colo_wait *w = list_first_entry(&c->p.waiting, struct colo_wait, next);
		td_request_t treq = w->treq;

		if (colo_primary_must_wait(c, &treq))
			return;
		list_del(&w->next);
		free(w);
		colo_primary_issue(c, treq);
	}
}

/* Drops everything queued: the link is gone or replication ended. */
static void colo_primary_drop_queue(struct colo *c)
{
	struct colo_fwd *fwd, *tmp;

	list_for_each_entry_safe(fwd, tmp, &c->p.unacked, list)
		colo_primary_release(c, fwd);
	c->p.ckpt_seq = 0;
}

static void colo_primary_local_done(td_request_t clone, int err)
{
	struct colo_fwd *fwd = clone.cb_data;
	struct colo *c = fwd->c;
	td_request_t treq = fwd->treq;
	uint64_t len = fwd->f.length;

	list_del_init(&fwd->local);
	/* A failed write is dirty too: it may have changed part of the disk. */
	colo_dirty_end(c->p.dirty, fwd->f.offset, len, c->epoch);
	/*
	 * Forwarded if replication runs now, even if it did not when the write was issued: a
	 * start (a resync, a re-protect) may have come meanwhile, and its set of blocks to copy
	 * was taken without this write.  A failed local write is not forwarded: the Secondary
	 * must not get ahead.
	 */
	if (err || c->role != COLO_ROLE_PRIMARY || !colo_primary_forwarding(c)) {
		c->p.reserved -= len;
		free(fwd);
		td_complete_request(treq, err);
	} else {
		fwd->f.epoch = c->epoch;
		c->p.sent_bytes += len;
		if (c->link_state == COLO_LINK_UP) {
			/*
			 * Sent from the guest's buffer by this loop iteration's flush, which
			 * then completes the write (colo_primary_link_flushed): no copy.
			 */
			fwd->f.data_crc = crc32c(0, treq.buf, len);
			fwd->borrowed = true;
			list_add_tail(&fwd->local, &c->p.borrowed);
			colo_primary_enqueue(c, fwd);
		} else {
			memcpy(fwd->data, treq.buf, len);
			fwd->f.data_crc = crc32c(0, fwd->data, len);
			colo_primary_enqueue(c, fwd);
			td_complete_request(treq, 0);
		}
	}
	colo_primary_kick_waiting(c);
	colo_sync_kick(c); /* the range may be free for the copy now */
}

static void colo_primary_issue(struct colo *c, td_request_t treq)
{
	uint64_t len = (uint64_t)treq.secs << SECTOR_SHIFT;
	struct colo_fwd *fwd;
	td_request_t clone;

	/*
	 * Tracked in p.local even while not forwarding (broken, failed over, stopped): a start
	 * may come before it completes, and then it is forwarded like any other (see
	 * colo_primary_local_done), and the sync's copy of its extents waits for it.
	 */
	fwd = malloc(sizeof(*fwd) + len);
	if (!fwd) {
		td_complete_request(treq, -EBUSY); /* retried by the VBD */
		return;
	}
	memset(fwd, 0, sizeof(*fwd));
	fwd->c = c;
	fwd->treq = treq;
	fwd->f.type = COLO_FRAME_WRITE;
	fwd->f.offset = treq.sec << SECTOR_SHIFT;
	fwd->f.length = (uint32_t)len;
	INIT_LIST_HEAD(&fwd->list);
	list_add_tail(&fwd->local, &c->p.local);
	c->p.reserved += len;
	clone = treq;
	clone.cb = colo_primary_local_done;
	clone.cb_data = fwd;
	colo_primary_forward(c, clone);
}

void colo_primary_queue_write(struct colo *c, td_request_t treq)
{
	struct colo_wait *w;

	if (colo_primary_forwarding(c) &&
	    (!list_empty(&c->p.waiting) || colo_primary_must_wait(c, &treq))) {
		w = malloc(sizeof(*w));
		if (!w) {
			td_complete_request(treq, -EBUSY);
			return;
		}
		w->treq = treq;
		list_add_tail(&w->next, &c->p.waiting);
		return;
	}
	colo_primary_issue(c, treq);
}

/* ---- frames from the Secondary ---- */

static void colo_primary_acked(struct colo *c, uint64_t seq)
{
	uint64_t before = c->p.reserved;
	struct colo_fwd *fwd, *tmp;

	list_for_each_entry_safe(fwd, tmp, &c->p.unacked, list) {
		if (!fwd->f.seq || fwd->f.seq > seq)
			break;
		colo_primary_release(c, fwd);
	}
	colo_pace_acked(c, before - c->p.reserved);
	c->p.acked_seq = seq;
	if (c->p.step >= 0 && colo_start_steps[c->p.step]->acked)
		colo_start_steps[c->p.step]->acked(c, seq);
	if (c->p.ckpt_seq && seq >= c->p.ckpt_seq) {
		c->p.ckpt_seq = 0;
		colo_primary_ckpt_timer_stop(c);
		/*
		 * The Secondary applied marker N only after its checkpoint of N - 1 (it holds
		 * what follows a marker until then): N - 1 is complete on both sides.
		 */
		if (c->p.ckpt_epoch > 1) {
			colo_dirty_commit(c->p.dirty, c->p.ckpt_epoch - 1);
			if (c->p.ckpt_epoch - 1 > c->p.committed)
				c->p.committed = c->p.ckpt_epoch - 1;
			/* The clears go to disk in the background, so that a crash resyncs less. */
			if (colo_dirty_log(c->p.dirty))
				tapdisk_server_defer(&c->p.log_flush);
		}
		colo_call_done(&c->ckpt_call, 0, c->epoch);
	}
	colo_primary_kick_waiting(c);
}

static void colo_primary_ack(struct colo *c, struct colo_frame *f, void *payload)
{
	free(payload);
	if (f->seq < c->p.acked_seq || f->seq >= c->p.next_seq) {
		colo_link_send_error(c, -EPROTO, "acknowledgement out of range");
		colo_link_lost(c, -EPROTO, "ACK of seq %llu, but %llu..%llu are outstanding",
			       (unsigned long long)f->seq, (unsigned long long)c->p.acked_seq + 1,
			       (unsigned long long)c->p.next_seq - 1);
		return;
	}
	colo_primary_acked(c, f->seq);
}

const struct colo_frame_handler colo_primary_frames[] = {
	{ COLO_FRAME_ACK, colo_primary_ack },
	{ COLO_FRAME_HASHES, colo_sync_hashes_rx },
	{ COLO_FRAME_DIRTY, colo_reprotect_dirty_rx },
	{ COLO_FRAME_DIRTY_END, colo_reprotect_dirty_end_rx },
	{ 0, NULL },
};

/* The Secondary is gone: keep serving the guest, remember what changed. */
void colo_primary_link_lost(struct colo *c, int err)
{
	colo_primary_drop_queue(c);
	colo_primary_ckpt_timer_stop(c);
	colo_start_steps_cancel(c);
	c->p.step = -1;
	if (c->start_call.done) {
		/* Lost before the start finished (a start step): the start fails. */
		colo_set_state(c, COLO_STATE_IDLE);
		c->role = COLO_ROLE_NONE;
		c->link_state = COLO_LINK_NONE;
		colo_call_done(&c->start_call, err, 0);
	} else {
		colo_set_state(c, COLO_STATE_BROKEN);
	}
	colo_call_done(&c->ckpt_call, err, 0);
	colo_primary_kick_waiting(c);
}

/* ---- start: the start steps' prepare, connect and handshake (colo-handshake.c), the start
 * steps ---- */

void colo_primary_start_failed(struct colo *c, int err)
{
	colo_start_steps_cancel(c);
	c->p.step = -1;
	colo_handshake_close(c);
	colo_link_close(c);
	colo_primary_drop_queue(c);
	if (c->auto_start && c->opts.reconnect) {
		/*
		 * reconnect=1's own start (the Secondary still gone): broken as before it, with
		 * its history, and tried again (colo_set_state arms the timer), until the
		 * Secondary answers or the operator says otherwise.
		 */
		c->auto_start = false;
		c->link_state = COLO_LINK_LOST;
		colo_set_state(c, COLO_STATE_BROKEN);
	} else {
		colo_set_state(c, COLO_STATE_IDLE);
		c->role = COLO_ROLE_NONE;
		c->link_state = COLO_LINK_NONE;
	}
	colo_call_done(&c->start_call, err, 0);
	colo_primary_kick_waiting(c);
}

void colo_primary_cancel_start(struct colo *c)
{
	colo_fail(c, -ECANCELED, "start: cancelled: the caller went away before the %s",
		  c->link_state == COLO_LINK_UP ? "start steps ended" : "handshake");
	colo_primary_start_failed(c, -ECANCELED);
}

int colo_primary_queue_frame(struct colo *c, uint16_t type, uint64_t offset, const void *data,
			     uint32_t len, bool first, uint64_t *seq)
{
	struct colo_fwd *fwd = calloc(1, sizeof(*fwd) + len);

	if (!fwd)
		return colo_fail(c, -ENOMEM, "out of memory for a %s frame",
				 colo_frame_type_name(type));
	INIT_LIST_HEAD(&fwd->local);
	if (len)
		memcpy(fwd->data, data, len);
	fwd->c = c;
	fwd->f.type = type;
	fwd->f.epoch = c->epoch;
	fwd->f.offset = offset;
	fwd->f.length = len;
	fwd->f.data_crc = crc32c(0, fwd->data, len);
	/* Its length is not a write: keep the byte accounting of writes exact. */
	c->p.reserved += len;
	if (first) {
		list_add(&fwd->list, &c->p.unacked);
		INIT_LIST_HEAD(&fwd->msg.next);
		colo_primary_send(c, fwd);
	} else {
		colo_primary_enqueue(c, fwd);
	}
	*seq = fwd->f.seq;
	return 0;
}

/* Runs the wanted steps after the current one; after the last, replication is plain. */
static int colo_primary_next_step(struct colo *c)
{
	const struct colo_start_step *s;

	while ((s = colo_start_steps[++c->p.step])) {
		if (s->wanted(c)) {
			DPRINTF("colo %s:%s: start step: %s", c->host, c->port, s->name);
			return s->run(c);
		}
	}
	c->p.step = -1;
	colo_set_state(c, COLO_STATE_RUNNING);
	colo_call_done(&c->start_call, 0, 0);
	return 0;
}

void colo_primary_step_done(struct colo *c, int err)
{
	if (!err)
		err = colo_primary_next_step(c);
	if (err && c->start_call.done)
		colo_primary_start_failed(c, err);
	else if (err)
		colo_link_lost(c, err, "start step failed: %s", c->last_error);
}

/* The handshake succeeded: the link is up and what was queued meanwhile goes out. */
int colo_primary_link_ready(struct colo *c)
{
	struct colo_fwd *fwd;
	int err;

	colo_clear_error(c); /* the failed attempts before this one are history */
	c->auto_start = false;
	colo_set_state(c, COLO_STATE_RUNNING);
	c->p.history = true; /* from now on the map knows what the Secondary lacks */
	colo_pace_reset(c); /* a new connection: the rate is measured again */
	DPRINTF("colo %s:%s: replicating to the Secondary", c->host, c->port);
	/* The steps' first frames go ahead of the writes queued while connecting. */
	c->p.step = -1;
	err = colo_primary_next_step(c);
	if (err)
		return err;
	list_for_each_entry(fwd, &c->p.unacked, list)
		if (!fwd->f.seq)
			colo_primary_send(c, fwd);
	return 0;
}

/* ---- the pair: its identity, and the resync after a lost link or a restart ---- */

void colo_primary_hello(struct colo *c, struct colo_hello *h)
{
	struct colo_dirty_log *log = colo_dirty_log(c->p.dirty);

	if (!c->p.pair_set) {
		if (log)
			memcpy(c->p.pair_id, colo_dirty_log_pair(log), sizeof(c->p.pair_id));
		else if (getrandom(c->p.pair_id, sizeof(c->p.pair_id), 0) != sizeof(c->p.pair_id))
			memcpy(c->p.pair_id, c->session_id, sizeof(c->p.pair_id));
		c->p.pair_set = true;
	}
	memcpy(h->pair_id, c->p.pair_id, sizeof(h->pair_id));
	if (c->p.resuming) {
		h->flags |= COLO_HELLO_RESUME;
		h->resume_epoch = c->p.committed;
	}
}

/*
 * The epoch of this run is known now: writes that completed meanwhile were queued and marked
 * dirty in the provisional one.  Queued frames are not sent yet (the link is not up): they
 * take the new epoch.  Dirty blocks move only to a later epoch (dirty longer is safe; a
 * Secondary never grants one later than the provisional, but a map must not lose blocks
 * whatever it says); marked later than the run's epochs, they stay dirty longer.
 */
static void colo_primary_relabel(struct colo *c, uint64_t epoch)
{
	struct colo_fwd *fwd;

	if (epoch == c->epoch)
		return;
	list_for_each_entry(fwd, &c->p.unacked, list)
		if (!fwd->f.seq && fwd->f.type == COLO_FRAME_WRITE)
			fwd->f.epoch = epoch;
	if (epoch > c->epoch)
		colo_dirty_relabel(c->p.dirty, c->epoch, epoch);
	c->epoch = epoch;
}

int colo_primary_resume_reply(struct colo *c, const struct colo_hello_reply *r)
{
	c->p.resumed = false;
	if (!(r->flags & COLO_REPLY_RESUMED)) {
		struct colo_dirty_log *log = colo_dirty_log(c->p.dirty);

		colo_primary_relabel(c, 1);
		/*
		 * A new run: its epochs start again at 1, and no checkpoint of it is complete.
		 * A checkpoint of the last run kept here (or in the log) would make a later
		 * resync of this run ask for a checkpoint its Secondary never reaches, and
		 * copy the whole disk.  (A crash before the log says so only asks too much.)
		 */
		c->p.committed = 0;
		if (log)
			colo_dirty_log_set_epoch(log, 0);
		if (c->p.resuming)
			DPRINTF("colo %s:%s: resync: the Secondary has no checkpoint in common with "
				"us (pair, or a checkpoint since %llu): diff of the whole disk",
				c->host, c->port, (unsigned long long)c->p.committed);
		return 0;
	}
	if (!c->p.resuming || r->epoch < c->p.committed)
		return colo_fail(c, -EPROTO,
				 "start: the Secondary offered a resync since checkpoint %llu, but "
				 "we %s",
				 (unsigned long long)r->epoch,
				 c->p.resuming ? "know the changes only since a later one"
					       : "asked for none");
	c->p.resumed = true;
	c->p.resume_at = r->epoch;
	/* The Secondary's epochs go on from its checkpoint: so do ours. */
	colo_primary_relabel(c, r->epoch + 1);
	DPRINTF("colo %s:%s: resync since checkpoint %llu, both sides' last in common: %llu "
		"bytes dirty",
		c->host, c->port, (unsigned long long)r->epoch,
		(unsigned long long)colo_dirty_bytes(c->p.dirty, r->epoch));
	return 0;
}

/* Runs the prepare of the wanted steps after the current one, then connects. */
static int colo_primary_next_prepare(struct colo *c)
{
	const struct colo_start_step *s;

	while ((s = colo_start_steps[++c->p.step]))
		if (s->prepare && s->wanted(c))
			return s->prepare(c);
	c->p.step = -1;
	return colo_handshake_connect(c);
}

void colo_primary_step_prepared(struct colo *c, int err)
{
	if (!err)
		err = colo_primary_next_prepare(c);
	if (err)
		colo_primary_start_failed(c, err);
}

int colo_primary_start(struct colo *c)
{
	int err;

	if (!c->p.dirty && colo_dirty_create(c->disk_size, c->opts.block_size, &c->p.dirty))
		return colo_fail(c, -ENOMEM, "start: out of memory for the dirty map");
	if (c->opts.dirty_log[0]) {
		err = colo_primary_open_log(c);
		if (err)
			return err;
	}
	/* With what changed since a checkpoint known, a start resyncs if the Secondary can. */
	c->p.resuming = c->p.history && !c->p.reprotect;
	if (c->p.resuming && c->p.untracked)
		DPRINTF("colo %s:%s: resync: guest writes reached the disk before this start, with "
			"no dirty map to record them: diff of the whole disk", c->host, c->port);
	c->p.resuming = c->p.resuming && !c->p.untracked;
	c->p.untracked = false; /* the map counts from here, and the copy covers the rest */
	if (c->opts.verify && (c->p.resuming || c->p.reprotect))
		DPRINTF("colo %s:%s: verify=1: no verify step for a %s, which copies what differs",
			c->host, c->port, c->p.resuming ? "resync" : "re-protect");
	c->p.resumed = false;
	/*
	 * Writes completing before the Secondary's answer are marked and queued in the epoch
	 * the last run was in (or the one after the last checkpoint we know complete, for a
	 * Primary restarted from its log): the latest a resync can go on with, the Secondary
	 * having completed at most the checkpoint before it.  colo_primary_resume_reply
	 * relabels the queued ones.
	 */
	if (c->p.resuming)
		c->epoch = c->p.last_epoch > c->p.committed + 1 ? c->p.last_epoch
								 : c->p.committed + 1;
	if (getrandom(c->session_id, sizeof(c->session_id), 0) != sizeof(c->session_id))
		return colo_fail(c, -errno, "start: no random session id: %s", strerror(errno));
	c->p.next_seq = 1;
	c->p.acked_seq = 0;
	c->p.sent_bytes = 0;
	colo_set_state(c, COLO_STATE_CONNECTING);
	c->link_state = COLO_LINK_CONNECTING;
	c->p.step = -1;
	err = colo_primary_next_prepare(c);
	if (err) {
		colo_start_steps_cancel(c);
		c->p.step = -1;
		colo_handshake_close(c);
	}
	return err;
}

static void colo_primary_ckpt_timer_stop(struct colo *c)
{
	if (c->p.ckpt_timer > 0)
		tapdisk_server_unregister_event(c->p.ckpt_timer);
	c->p.ckpt_timer = 0;
}

/*
 * A checkpoint waits for the Secondary to acknowledge its marker, which a live Secondary may
 * never do: it holds a second epoch's frames until its own checkpoint, and heartbeats
 * meanwhile.  So the wait ends once nothing at all was acknowledged for timeout.  The marker
 * cannot be taken back: it stays in the stream for the Secondary's next checkpoint.
 */
static void colo_primary_ckpt_timeout(event_id_t id, char mode, void *priv)
{
	struct colo *c = priv;

	if (!c->ckpt_call.done || !c->p.ckpt_seq) {
		colo_primary_ckpt_timer_stop(c);
		return;
	}
	if (c->p.acked_seq > c->p.ckpt_progress) {
		c->p.ckpt_progress = c->p.acked_seq;
		return; /* applying goes on: wait another timeout */
	}
	colo_primary_ckpt_timer_stop(c);
	c->p.ckpt_seq = 0;
	colo_fail(c, -ETIMEDOUT,
		  "prepare_checkpoint: no acknowledgement from the Secondary for %u ms (it holds "
		  "the next epoch until its own checkpoint); the marker of epoch %llu stays sent",
		  c->opts.timeout_ms, (unsigned long long)c->epoch - 1);
	colo_call_done(&c->ckpt_call, -ETIMEDOUT, 0);
}

int colo_primary_prepare(struct colo *c)
{
	struct colo_fwd *fwd;

	if (c->state == COLO_STATE_SYNCING)
		return colo_fail(c, -EBUSY, "prepare_checkpoint: syncing: %llu of %llu bytes copied",
				 (unsigned long long)c->p.sync_done,
				 (unsigned long long)c->p.sync_total);
	if (c->state != COLO_STATE_RUNNING || c->p.step >= 0)
		return colo_fail(c, -ENOTCONN, "prepare_checkpoint: not replicating (%s, link %s)",
				 colo_state_name(c->state), colo_link_name(c->link_state));
	fwd = calloc(1, sizeof(*fwd));
	if (!fwd)
		return colo_fail(c, -ENOMEM, "prepare_checkpoint: out of memory");
	INIT_LIST_HEAD(&fwd->local);
	fwd->c = c;
	fwd->f.type = COLO_FRAME_EPOCH;
	fwd->f.epoch = c->epoch;
	c->p.ckpt_epoch = c->epoch;
	/* Writes completing from now on belong to the next epoch. */
	c->epoch++;
	c->p.sent_bytes = 0;
	colo_primary_enqueue(c, fwd);
	c->p.ckpt_seq = fwd->f.seq;
	c->p.ckpt_progress = c->p.acked_seq;
	c->p.ckpt_timer = tapdisk_server_register_event(SCHEDULER_POLL_TIMEOUT, -1,
							TV_MSECS(c->opts.timeout_ms),
							colo_primary_ckpt_timeout, c);
	if (c->p.ckpt_timer < 0)
		c->p.ckpt_timer = 0;
	return 0;
}

int colo_primary_stop(struct colo *c, bool failover)
{
	colo_primary_ckpt_timer_stop(c);
	colo_start_steps_cancel(c);
	c->p.step = -1;
	colo_handshake_close(c);
	colo_link_goodbye(c);
	colo_primary_drop_queue(c);
	if (c->link_state != COLO_LINK_LOST)
		c->link_state = COLO_LINK_NONE;
	if (c->start_call.done) {
		colo_fail(c, -ECANCELED, "start: cancelled by %s", failover ? "failover" : "stop");
		colo_call_done(&c->start_call, -ECANCELED, 0);
	}
	if (c->ckpt_call.done) {
		colo_fail(c, -ECANCELED, "prepare_checkpoint: cancelled by %s",
			  failover ? "failover" : "stop");
		colo_call_done(&c->ckpt_call, -ECANCELED, 0);
	}
	colo_set_state(c, failover ? COLO_STATE_FAILED_OVER : COLO_STATE_STOPPED);
	colo_primary_kick_waiting(c);
	colo_call_done(&c->stop_call, 0, 0);
	return 0;
}

void colo_primary_close(struct colo *c)
{
	struct colo_wait *w, *tmp;

	colo_start_steps_cancel(c);
	c->p.step = -1;
	colo_primary_ckpt_timer_stop(c);
	colo_handshake_close(c);
	colo_link_goodbye(c);
	colo_primary_drop_queue(c);
	/* The VBD drained before closing, so nothing waits here; be safe anyway. */
	list_for_each_entry_safe(w, tmp, &c->p.waiting, next) {
		list_del(&w->next);
		td_complete_request(w->treq, -EIO);
		free(w);
	}
}

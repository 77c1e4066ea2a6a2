/*
 * The Secondary.  Invariant: a block that is not in the disk buffer holds its checkpoint
 * contents on the disk.
 *
 *  - A forwarded write first saves the current contents of every block it touches that the
 *    buffer does not hold (never overwriting the buffer), then goes to the disk.  Writes that
 *    share a block run one after another, in the Primary's order; others run concurrently.
 *  - The Secondary VM's writes go only to the buffer; a partial block is filled from the disk.
 *  - The Secondary VM's reads come from the disk, then every block the buffer holds is laid
 *    over them at completion.  Because a forwarded write saves the old block in the buffer
 *    before it writes the disk, a read racing it still returns checkpoint contents.
 *  - An epoch marker is applied once every write before it is; later frames wait until
 *    do_checkpoint for that epoch has dropped the buffer.
 *  - Failover writes the buffer back in disk order, flushes, and the disk becomes plain.
 *
 * The Secondary VM's reads and writes are in colo-secondary-vm.c, listening for the Primary
 * and the handshake in colo-handshake.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "colo-internal.h"
#include "tapdisk-interface.h"
#include "timeout-math.h"

/* Forwarded writes considered for concurrent application: bounds the overlap checks. */
#define COLO_APPLY_WINDOW 64
/* Forwarded writes with disk I/O in flight at once. */
#define COLO_APPLY_INFLIGHT 32
#define COLO_WB_RUN (1U << 20)
#define COLO_WB_DEPTH 8

struct colo_apply {
	struct list_head next; /* in s.rxq */
	struct colo *c;
	struct colo_frame f;
	void *data;
	int stage;
	uint64_t b0, b1; /* blocks touched */
	void *cow;
	uint64_t cow_off, cow_len;
	struct colo_io *cow_ios; /* the save read, in pieces the VBD accepts */
	int cow_pending, cow_err;
	struct colo_io io;
};

/* A save read of a 64 MiB write spans more than the VBD's largest request: split it. */
#define COLO_COW_PIECE (16U << 20)

enum { APPLY_WAITING, APPLY_COW, APPLY_WRITING, APPLY_DONE };

static void colo_secondary_finish_stop(struct colo *c);
static bool colo_secondary_start_failed(struct colo *c);
static void colo_secondary_cancel_ckpt_timer(struct colo *c);
static void colo_secondary_arm_ckpt_timer(struct colo *c);

/* A forwarded write or a copied extent (SYNC): data for the disk, in stream order. */
static bool colo_apply_is_write(const struct colo_apply *a)
{
	return a->f.type == COLO_FRAME_WRITE || a->f.type == COLO_FRAME_SYNC;
}

/* Applying, or syncing (which applies too, straight to the disk). */
static bool colo_secondary_applying(const struct colo *c)
{
	return c->state == COLO_STATE_RUNNING || c->state == COLO_STATE_SYNCING;
}

static void colo_apply_free(struct colo *c, struct colo_apply *a)
{
	c->s.rx_bytes -= a->f.length;
	list_del(&a->next);
	free(a->data);
	free(a->cow);
	free(a->cow_ios);
	free(a);
}

void colo_secondary_fatal(struct colo *c, int err)
{
	colo_link_send_error(c, err, c->last_error);
	colo_link_close(c);
	c->link_state = COLO_LINK_LOST;
	colo_secondary_link_lost(c);
}

/* ---- dropping the buffer ---- */

/* Chunks unmapped per tick: about 2 ms of work, between which I/O goes on. */
#define COLO_TRIM_CHUNKS 16
#define COLO_TRIM_TICK_MS 2

static void colo_secondary_trim_cb(event_id_t id, char mode, void *priv)
{
	struct colo *c = priv;

	if (c->s.buf && colo_buffer_trim(c->s.buf, COLO_TRIM_CHUNKS))
		return;
	tapdisk_server_unregister_event(c->s.trim_timer);
	c->s.trim_timer = 0;
}

/* The checkpoint's drop is quick; the memory goes back after the reply, in small steps. */
static void colo_secondary_drop_buffer(struct colo *c)
{
	if (c->s.buf) /* none before a start made it (the handshake's fuzzer runs without) */
		colo_buffer_drop(c->s.buf);
	c->s.gen++;
	if (c->s.trim_timer)
		return;
	c->s.trim_timer = tapdisk_server_register_event(
		SCHEDULER_POLL_TIMEOUT, -1, TV_MSECS(COLO_TRIM_TICK_MS), colo_secondary_trim_cb, c);
	if (c->s.trim_timer < 0)
		c->s.trim_timer = 0;
}

/* ---- applying forwarded writes ---- */

static void colo_apply_write_done(struct colo *c, struct colo_io *io, int err)
{
	struct colo_apply *a = io->priv;

	c->s.inflight--;
	a->stage = APPLY_DONE;
	if (err && err != -ENODEV) {
		colo_fail(c, err, "writing %u bytes at %llu to the disk failed: %s", a->f.length,
			  (unsigned long long)a->f.offset, strerror(-err));
		colo_secondary_fatal(c, err);
	}
	if (err != -ENODEV)
		colo_secondary_pump(c);
}

static int colo_apply_write(struct colo *c, struct colo_apply *a)
{
	a->stage = APPLY_WRITING;
	return colo_io_submit(c, &a->io, TD_OP_WRITE, a->f.offset, a->data, a->f.length,
			      colo_apply_write_done, a);
}

static void colo_apply_cow_done(struct colo *c, struct colo_io *io, int err)
{
	struct colo_apply *a = io->priv;
	uint64_t bs = colo_bs(c);

	if (err && !a->cow_err)
		a->cow_err = err;
	if (--a->cow_pending)
		return;
	err = a->cow_err;
	free(a->cow_ios);
	a->cow_ios = NULL;
	if (err == -ENODEV) {
		c->s.inflight--;
		return;
	}
	if (!err) {
		for (uint64_t b = a->b0; b <= a->b1 && !err; b++) {
			int rc = colo_buffer_put(c->s.buf, b, (char *)a->cow + (b - a->b0) * bs,
						 false);

			if (rc < 0)
				err = colo_fail(c, rc,
						"cannot save block %llu in the disk buffer: "
						"%s",
						(unsigned long long)b, strerror(-rc));
		}
	} else {
		colo_fail(c, err, "reading %llu bytes at %llu for the disk buffer failed: %s",
			  (unsigned long long)a->cow_len, (unsigned long long)a->cow_off,
			  strerror(-err));
	}
	free(a->cow);
	a->cow = NULL;
	if (!err)
		err = colo_apply_write(c, a);
	if (err) {
		/* Nothing of this write reached the disk. */
		c->s.inflight--;
		a->stage = APPLY_DONE;
		colo_secondary_fatal(c, err);
		colo_secondary_pump(c);
	}
}

/* Reads [cow_off, cow_off + cow_len) clipped at the disk's end, in pieces. */
static int colo_apply_cow_read(struct colo *c, struct colo_apply *a)
{
	uint64_t end =
		a->cow_off + a->cow_len > c->disk_size ? c->disk_size : a->cow_off + a->cow_len;
	size_t n = (end - a->cow_off + COLO_COW_PIECE - 1) / COLO_COW_PIECE;
	int err = 0;

	a->cow_ios = calloc(n, sizeof(*a->cow_ios));
	if (!a->cow_ios)
		return colo_fail(c, -ENOMEM, "out of memory for the disk buffer");
	a->cow_err = 0;
	/* Held until every piece is queued, so that none completes the read early. */
	a->cow_pending = 1;
	for (size_t i = 0; i < n && !err; i++) {
		uint64_t off = a->cow_off + (uint64_t)i * COLO_COW_PIECE;
		uint64_t len = end - off < COLO_COW_PIECE ? end - off : COLO_COW_PIECE;

		a->cow_pending++;
		err = colo_io_submit(c, &a->cow_ios[i], TD_OP_READ, off,
				     (char *)a->cow + (off - a->cow_off), len, colo_apply_cow_done,
				     a);
		if (err)
			a->cow_pending--;
	}
	if (err && a->cow_pending == 1) {
		free(a->cow_ios);
		a->cow_ios = NULL;
		return err;
	}
	/* Drop the hold: the pieces in flight finish the read (with the error, if any). */
	colo_apply_cow_done(c, &(struct colo_io){.priv = a}, err);
	return 0;
}

static int colo_apply_start(struct colo *c, struct colo_apply *a)
{
	uint64_t bs = colo_bs(c);
	bool missing = false;

	c->s.inflight++;
	if (a->f.type == COLO_FRAME_SYNC)
		c->s.sync_rx += a->f.length;
	/* While syncing the disk has no consistent contents to keep: nothing to save. */
	if (c->s.syncing)
		return colo_apply_write(c, a);
	for (uint64_t b = a->b0; b <= a->b1 && !missing; b++)
		missing = !colo_buffer_contains(c->s.buf, b);
	if (!missing)
		return colo_apply_write(c, a);
	/* Whole blocks, clipped at the disk's end; the buffer pads a short last block. */
	a->cow_off = a->b0 * bs;
	a->cow_len = (a->b1 - a->b0 + 1) * bs;
	a->cow = colo_alloc_aligned(a->cow_len);
	if (!a->cow)
		return colo_fail(c, -ENOMEM, "out of memory for the disk buffer");
	/* The read fills all but a short last block past the disk's end, which reads as zeros. */
	if (a->cow_off + a->cow_len > c->disk_size)
		memset((char *)a->cow + (c->disk_size - a->cow_off), 0,
		       a->cow_off + a->cow_len - c->disk_size);
	a->stage = APPLY_COW;
	return colo_apply_cow_read(c, a);
}

static bool colo_apply_overlaps(const struct colo_apply *x, const struct colo_apply *y)
{
	return colo_apply_is_write(x) && colo_apply_is_write(y) && x->b0 <= y->b1 &&
	       y->b0 <= x->b1;
}

void colo_secondary_send_ack(void *arg)
{
	struct colo *c = arg;

	if (c->s.applied_seq > c->s.acked_seq && c->link.fd >= 0) {
		c->s.acked_seq = c->s.applied_seq;
		colo_link_send_simple(c, COLO_FRAME_ACK, c->s.acked_seq, c->epoch);
	}
}

/* A marker is applied: the epoch's writes are all on the disk. */
static void colo_secondary_marker(struct colo *c, struct colo_apply *a)
{
	c->s.marker_epoch = a->f.epoch;
	DPRINTF("colo %s:%s: epoch %llu complete", c->host, c->port,
		(unsigned long long)a->f.epoch);
}

/* Starts what may start, retires what finished, in order. */
void colo_secondary_pump(struct colo *c)
{
	struct colo_apply *a, *tmp, *e;
	bool advanced = false;
	int window = 0, err;

	/* Retire from the head, in order. */
	while (!list_empty(&c->s.rxq)) {
		a = list_first_entry(&c->s.rxq, struct colo_apply, next);
		if (colo_apply_is_write(a)) {
			if (a->stage != APPLY_DONE)
				break;
		} else if (!colo_secondary_applying(c) || c->s.marker_epoch == c->epoch) {
			break; /* held until do_checkpoint */
		} else if (a->f.type == COLO_FRAME_EPOCH) {
			colo_secondary_marker(c, a);
		} else {
			/* A start step's frame: its step applies it, maybe in the background. */
			err = colo_start_step_of_frame(a->f.type)->apply(c, &a->f, a->data);
			if (err < 0) {
				colo_secondary_fatal(c, err);
				return;
			}
			if (!err)
				break;
		}
		c->s.applied_seq = a->f.seq;
		advanced = true;
		colo_apply_free(c, a);
	}
	/* A start that failed with frames still being applied is undone once they are. */
	if (c->state == COLO_STATE_BROKEN && c->link.fd < 0 && colo_secondary_start_failed(c))
		return;
	if (advanced)
		tapdisk_server_defer(&c->s.ack);
	if (c->link.fd >= 0 && c->s.rx_bytes <= c->opts.queue_limit)
		colo_link_pause_reading(c, false);
	/* A checkpoint was waiting for this marker (it pumps again). */
	if (c->ckpt_call.done && c->s.marker_epoch == c->epoch) {
		colo_secondary_checkpoint(c);
		return;
	}
	/* Nothing new starts once a stop is asked for, unless a checkpoint still needs it. */
	if (!colo_secondary_applying(c) || c->s.marker_epoch == c->epoch ||
	    (c->stop_call.done && !c->ckpt_call.done))
		goto out;
	/* Start writes that overlap nothing before them, up to the first marker. */
	list_for_each_entry_safe(a, tmp, &c->s.rxq, next) {
		bool blocked = false;

		if (!colo_apply_is_write(a) || ++window > COLO_APPLY_WINDOW ||
		    c->s.inflight >= COLO_APPLY_INFLIGHT)
			break;
		if (a->stage != APPLY_WAITING)
			continue;
		list_for_each_entry(e, &c->s.rxq, next) {
			if (e == a)
				break;
			if (e->stage != APPLY_DONE && colo_apply_overlaps(e, a)) {
				blocked = true;
				break;
			}
		}
		if (blocked)
			continue;
		err = colo_apply_start(c, a);
		if (err) {
			c->s.inflight--;
			a->stage = APPLY_DONE;
			colo_secondary_fatal(c, err);
			goto out;
		}
	}
out:
	if (c->stop_call.done && !c->ckpt_call.done)
		colo_secondary_finish_stop(c);
}

void colo_secondary_enqueue(struct colo *c, struct colo_frame *f, void *payload)
{
	struct colo_apply *a;
	uint64_t want_epoch;

	/* Writes, markers and step frames of epoch N follow the marker of N - 1. */
	want_epoch = c->s.last_rx_marker + 1;
	if (f->seq != c->s.expect_seq || f->epoch != want_epoch) {
		free(payload);
		colo_fail(c, -EPROTO,
			  "%s frame seq %llu epoch %llu out of order (expected seq %llu "
			  "epoch %llu)",
			  colo_frame_type_name(f->type), (unsigned long long)f->seq,
			  (unsigned long long)f->epoch, (unsigned long long)c->s.expect_seq,
			  (unsigned long long)want_epoch);
		colo_secondary_fatal(c, -EPROTO);
		return;
	}
	a = calloc(1, sizeof(*a));
	if (!a) {
		free(payload);
		colo_fail(c, -ENOMEM, "out of memory for a received frame");
		colo_secondary_fatal(c, -ENOMEM);
		return;
	}
	c->s.expect_seq++;
	if (f->type == COLO_FRAME_EPOCH)
		c->s.last_rx_marker = f->epoch;
	a->c = c;
	a->f = *f;
	a->data = payload;
	a->stage = APPLY_WAITING;
	if (colo_apply_is_write(a)) {
		a->b0 = f->offset / colo_bs(c);
		a->b1 = (f->offset + f->length - 1) / colo_bs(c);
	}
	list_add_tail(&a->next, &c->s.rxq);
	c->s.rx_bytes += f->length;
	if (c->s.rx_bytes > c->opts.queue_limit)
		colo_link_pause_reading(c, true);
	colo_secondary_pump(c);
}

/* The stream's frames; a start step's frame goes through its step's check (colo-start.c). */
static void colo_secondary_step_rx(struct colo *c, struct colo_frame *f, void *payload)
{
	colo_start_step_of_frame(f->type)->rx(c, f, payload);
}

const struct colo_frame_handler colo_secondary_frames[] = {
	{ COLO_FRAME_WRITE, colo_secondary_enqueue },
	{ COLO_FRAME_EPOCH, colo_secondary_enqueue },
	{ COLO_FRAME_VERIFY, colo_secondary_step_rx },
	{ COLO_FRAME_SYNC, colo_sync_rx },
	{ COLO_FRAME_SYNC_END, colo_secondary_step_rx },
	{ 0, NULL },
};

/* How the Primary went, for the errors of a checkpoint that cannot end. */
static const char *colo_secondary_primary_gone(const struct colo *c)
{
	return c->link_state == COLO_LINK_CLOSED ? "ended replication" : "is lost";
}

/* Frames not yet applied are dropped: their epoch never completes. */
static void colo_secondary_drop_unapplied(struct colo *c)
{
	struct colo_apply *a, *tmp;

	/* A step's background work has nothing to apply to now. */
	colo_start_steps_cancel(c);
	list_for_each_entry_safe(a, tmp, &c->s.rxq, next)
		if (a->stage == APPLY_WAITING || colo_start_step_of_frame(a->f.type))
			colo_apply_free(c, a);
}

/*
 * The Primary's start failed with our verify step (the disks differ, or the link went first)
 * or during its sync (the link went): no checkpoint was replicated, so the VBD is a plain disk
 * again and can be started anew (after a cut sync, its disk holds part of the copy: the next
 * start's sync copies the rest).  Not if the Secondary VM wrote meanwhile: its writes are only
 * in the buffer, which then stays.
 */
static bool colo_secondary_start_failed(struct colo *c)
{
	if ((!c->s.verifying && !c->s.syncing) || c->stop_call.done || c->s.inflight ||
	    c->s.svm_writes || !list_empty(&c->s.rxq) || colo_buffer_blocks(c->s.buf))
		return false;
	if (c->s.verifying) /* the disks differ: ours is no checkpoint of this pair */
		c->s.checkpointed = false;
	c->s.verifying = false;
	c->s.syncing = false;
	colo_secondary_close(c);
	c->role = COLO_ROLE_NONE;
	c->link_state = COLO_LINK_NONE;
	colo_set_state(c, COLO_STATE_IDLE);
	return true;
}

void colo_secondary_link_lost(struct colo *c)
{
	colo_secondary_drop_unapplied(c);
	if (colo_secondary_start_failed(c)) {
		/* A checkpoint asked for meanwhile fails with the start's reason. */
		colo_call_done(&c->ckpt_call, -ENOTCONN, 0);
		return;
	}
	if (colo_secondary_applying(c) || c->state == COLO_STATE_CONNECTING)
		colo_set_state(c, COLO_STATE_BROKEN);
	/* A checkpoint waiting for its marker never gets it. */
	if (c->ckpt_call.done && c->s.marker_epoch != c->epoch) {
		colo_fail(c, -ENOTCONN, "do_checkpoint: the Primary %s before the end of epoch %llu",
			  colo_secondary_primary_gone(c), (unsigned long long)c->epoch);
		colo_secondary_cancel_ckpt_timer(c);
		colo_call_done(&c->ckpt_call, -ENOTCONN, 0);
		if (c->stop_call.done)
			colo_secondary_pump(c);
	}
}

/* ---- checkpoint ---- */

int colo_secondary_checkpoint(struct colo *c)
{
	uint64_t n;

	if (!colo_secondary_applying(c) && c->state != COLO_STATE_BROKEN &&
	    c->state != COLO_STATE_CONNECTING)
		return colo_fail(c, -EINVAL, "do_checkpoint: not replicating (%s)",
				 colo_state_name(c->state));
	if (c->s.marker_epoch != c->epoch) {
		if (c->link_state != COLO_LINK_UP && c->link_state != COLO_LINK_LISTENING)
			return colo_fail(c, -ENOTCONN,
					 "do_checkpoint: the Primary %s and epoch %llu never ended",
					 colo_secondary_primary_gone(c),
					 (unsigned long long)c->epoch);
		/* Bounded: a marker that is not on its way within timeout may never come. */
		colo_secondary_arm_ckpt_timer(c);
		return 0; /* colo_secondary_pump calls again */
	}
	colo_secondary_cancel_ckpt_timer(c);
	n = colo_buffer_blocks(c->s.buf);
	colo_secondary_drop_buffer(c);
	colo_reprotect_checkpoint(c);
	c->s.ckpt_done = c->epoch;
	c->s.resumable = true;
	c->epoch++;
	if (c->s.inconsistent)
		DPRINTF("colo %s:%s: the first checkpoint after the Primary's copy: the disk is "
			"consistent",
			c->host, c->port);
	c->s.inconsistent = false;
	c->s.checkpointed = true;
	DPRINTF("colo %s:%s: checkpoint: dropped %llu blocks, now epoch %llu", c->host, c->port,
		(unsigned long long)n, (unsigned long long)c->epoch);
	colo_call_done(&c->ckpt_call, 0, c->epoch);
	colo_secondary_pump(c);
	return 0;
}

/* ---- failover and stop ---- */

struct colo_wb {
	struct colo_io io;
	void *bounce;
};

static void colo_wb_next(struct colo *c);

static void colo_secondary_failover_done(struct colo *c, int err)
{
	if (err) {
		/* The buffer is intact: the failover can be asked again. */
		colo_set_state(c, COLO_STATE_BROKEN);
	} else {
		colo_secondary_drop_buffer(c);
		colo_set_state(c, COLO_STATE_FAILED_OVER);
		DPRINTF("colo %s:%s: failover complete: the disk holds the last checkpoint and the "
			"Secondary VM's writes",
			c->host, c->port);
	}
	free(c->s.wb_blocks);
	c->s.wb_blocks = NULL;
	colo_call_done(&c->stop_call, err, 0);
}

static void colo_wb_flush_done(struct colo *c, struct colo_io *io, int err)
{
	free(io);
	if (err == -ENODEV)
		return;
	if (err)
		colo_fail(c, err, "failover: flushing the disk failed: %s", strerror(-err));
	colo_secondary_failover_done(c, err);
}

static void colo_wb_write_done(struct colo *c, struct colo_io *io, int err)
{
	struct colo_wb *wb = io->priv;

	free(wb->bounce);
	free(wb);
	c->s.wb_inflight--;
	if (err == -ENODEV)
		return;
	if (err && !c->s.wb_err)
		c->s.wb_err = colo_fail(c, err, "failover: writing the buffer back failed: %s",
					strerror(-err));
	colo_wb_next(c);
}

/* Keeps COLO_WB_DEPTH runs of adjacent blocks in flight, lowest block first. */
static void colo_wb_next(struct colo *c)
{
	uint64_t bs = colo_bs(c);

	while (!c->s.wb_err && c->s.wb_next < c->s.wb_n && c->s.wb_inflight < COLO_WB_DEPTH) {
		size_t i = c->s.wb_next, n = 1;
		uint64_t first = c->s.wb_blocks[i], off = first * bs, len;
		const char *ram = colo_buffer_ram_ptr(c->s.buf, first);
		bool direct = ram != NULL;
		struct colo_wb *wb;
		int err = 0;

		while (i + n < c->s.wb_n && c->s.wb_blocks[i + n] == first + n &&
		       (n + 1) * bs <= COLO_WB_RUN) {
			if (direct && colo_buffer_ram_ptr(c->s.buf, first + n) != ram + n * bs)
				direct = false;
			n++;
		}
		len = n * bs;
		if (off + len > c->disk_size)
			len = c->disk_size - off;
		wb = calloc(1, sizeof(*wb));
		if (!wb) {
			c->s.wb_err = colo_fail(c, -ENOMEM, "failover: out of memory");
			break;
		}
		if (!direct) {
			wb->bounce = colo_alloc_aligned(n * bs);
			for (size_t k = 0; wb->bounce && k < n && !err; k++) {
				int rc = colo_buffer_get(c->s.buf, first + k,
							 (char *)wb->bounce + k * bs);

				if (rc != 1)
					err = rc < 0 ? rc : -EIO;
			}
			if (!wb->bounce || err) {
				free(wb->bounce);
				free(wb);
				c->s.wb_err = colo_fail(c, err ? err : -ENOMEM,
							"failover: cannot read the buffer: %s",
							strerror(err ? -err : ENOMEM));
				break;
			}
		}
		c->s.wb_next += n;
		c->s.wb_inflight++;
		err = colo_io_submit(c, &wb->io, TD_OP_WRITE, off,
				     direct ? (void *)ram : wb->bounce, len, colo_wb_write_done,
				     wb);
		if (err) {
			c->s.wb_inflight--;
			free(wb->bounce);
			free(wb);
			c->s.wb_err = err;
			break;
		}
	}
	if (c->s.wb_inflight)
		return;
	if (c->s.wb_err) {
		colo_secondary_failover_done(c, c->s.wb_err);
		return;
	}
	if (c->s.wb_next == c->s.wb_n) {
		struct colo_io *io = calloc(1, sizeof(*io));
		int err =
			io ? colo_io_submit(c, io, TD_OP_FLUSH, 0, NULL, 0, colo_wb_flush_done, io)
			   : colo_fail(c, -ENOMEM, "failover: out of memory");

		if (err) {
			free(io);
			colo_secondary_failover_done(c, err);
		}
	}
}

static void colo_secondary_close_sockets(struct colo *c)
{
	colo_handshake_close(c);
	/* The Primary may be waiting for the ack of a marker we applied: send it first. */
	tapdisk_server_cancel_deferred(&c->s.ack);
	colo_secondary_send_ack(c);
	colo_link_goodbye(c);
}

/*
 * Runs once no forwarded write is in flight, no Secondary VM write is still filling a block
 * (it would reach the buffer after the write-back or the drop, and be lost), and no
 * checkpoint is pending.
 */
static void colo_secondary_finish_stop(struct colo *c)
{
	int err;

	if (c->state == COLO_STATE_FAILING_OVER || c->ckpt_call.done)
		return;
	colo_secondary_close_sockets(c);
	if (c->link_state != COLO_LINK_LOST)
		c->link_state = COLO_LINK_NONE;
	colo_secondary_drop_unapplied(c);
	if (c->s.inflight || c->s.svm_writes)
		return;
	if (!list_empty(&c->s.rxq))
		return;
	if (!c->stop_failover) {
		colo_secondary_drop_buffer(c);
		colo_set_state(c, COLO_STATE_STOPPED);
		colo_call_done(&c->stop_call, 0, 0);
		return;
	}
	colo_set_state(c, COLO_STATE_FAILING_OVER);
	c->s.wb_err = 0;
	c->s.wb_next = 0;
	c->s.wb_inflight = 0;
	err = colo_buffer_sorted(c->s.buf, &c->s.wb_blocks, &c->s.wb_n);
	if (!err && (c->s.inconsistent || !c->s.checkpointed))
		/*
		 * Forced onto a disk that is no checkpoint: where it differs from the other
		 * disk is unknown, so we keep no set (a set from before would be wrong too):
		 * a re-protect either way compares the disks.
		 */
		colo_primary_dirty_close(c);
	else if (!err)
		err = colo_reprotect_failover(c, c->s.wb_blocks, c->s.wb_n);
	if (err) {
		colo_fail(c, err, "failover: out of memory");
		colo_secondary_failover_done(c, err);
		return;
	}
	DPRINTF("colo %s:%s: failover: writing %zu blocks back", c->host, c->port, c->s.wb_n);
	colo_wb_next(c);
}

static void colo_secondary_cancel_ckpt_timer(struct colo *c)
{
	if (c->s.ckpt_timer > 0)
		tapdisk_server_unregister_event(c->s.ckpt_timer);
	c->s.ckpt_timer = 0;
}

/*
 * The marker a checkpoint waits for did not come in time.  Asked for alone, the checkpoint
 * keeps waiting only if the marker has arrived and waits for the writes before it; with a
 * failover or stop behind it, it ends now and the failover or stop goes on.
 */
static void colo_secondary_ckpt_timeout(event_id_t id, char mode, void *priv)
{
	struct colo *c = priv;

	colo_secondary_cancel_ckpt_timer(c);
	if (!c->ckpt_call.done)
		return;
	if (!c->stop_call.done && c->s.last_rx_marker >= c->epoch)
		return; /* applying them is bounded by the disk; a lost link ends it too */
	if (c->stop_call.done)
		colo_fail(c, -ETIMEDOUT,
			  "do_checkpoint: the end of epoch %llu did not come within %u ms; "
			  "the last checkpoint stays and the %s goes on",
			  (unsigned long long)c->epoch, c->opts.timeout_ms,
			  c->stop_failover ? "failover" : "stop");
	else
		colo_fail(c, -ETIMEDOUT,
			  "do_checkpoint: the end of epoch %llu did not come within %u ms; "
			  "nothing changed",
			  (unsigned long long)c->epoch, c->opts.timeout_ms);
	colo_call_done(&c->ckpt_call, -ETIMEDOUT, 0);
	colo_secondary_pump(c);
}

static void colo_secondary_arm_ckpt_timer(struct colo *c)
{
	if (c->s.ckpt_timer)
		return;
	c->s.ckpt_timer = tapdisk_server_register_event(SCHEDULER_POLL_TIMEOUT, -1,
							TV_MSECS(c->opts.timeout_ms),
							colo_secondary_ckpt_timeout, c);
	if (c->s.ckpt_timer < 0)
		c->s.ckpt_timer = 0;
}

void colo_secondary_cancel_checkpoint(struct colo *c)
{
	colo_secondary_cancel_ckpt_timer(c);
	colo_fail(c, -ECANCELED,
		  "do_checkpoint: cancelled: the caller went away before the end of epoch %llu; "
		  "nothing changed",
		  (unsigned long long)c->epoch);
	colo_call_done(&c->ckpt_call, -ECANCELED, 0);
	colo_secondary_pump(c);
}

int colo_secondary_stop(struct colo *c, bool failover)
{
	/*
	 * A checkpoint waiting for its marker finishes first (rule: a failover asked for during
	 * a checkpoint runs after it), but waits at most the link timeout: a Primary that never
	 * ends the epoch must not block the failover.
	 */
	if (c->ckpt_call.done)
		colo_secondary_arm_ckpt_timer(c);
	colo_secondary_finish_stop(c);
	return 0;
}

void colo_secondary_close(struct colo *c)
{
	struct colo_apply *a, *tmp;

	colo_secondary_close_sockets(c);
	colo_secondary_cancel_ckpt_timer(c);
	if (c->s.trim_timer)
		tapdisk_server_unregister_event(c->s.trim_timer);
	c->s.trim_timer = 0;
	list_for_each_entry_safe(a, tmp, &c->s.rxq, next)
		colo_apply_free(c, a);
	if (c->s.buf && colo_buffer_blocks(c->s.buf) && !colo_ended(c))
		colo_secondary_writeback_sync(c);
	if (c->s.buf)
		colo_buffer_destroy(c->s.buf);
	c->s.buf = NULL;
	free(c->s.wb_blocks);
	c->s.wb_blocks = NULL;
}

/* ---- helpers ---- */

/* Closing mid-replication: write the buffer back so the disk holds the last checkpoint. */
void colo_secondary_writeback_sync(struct colo *c)
{
	uint64_t *blocks, bs = colo_bs(c);
	size_t n;
	char *blk;
	int fd;

	if (colo_buffer_sorted(c->s.buf, &blocks, &n))
		return;
	blk = malloc(bs);
	fd = open(c->path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || !blk) {
		EPRINTF("colo %s:%s: close: cannot write the buffer back to %s: %s", c->host,
			c->port, c->path, strerror(errno));
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		uint64_t off = blocks[i] * bs,
			 len = off + bs > c->disk_size ? c->disk_size - off : bs;

		if (colo_buffer_get(c->s.buf, blocks[i], blk) != 1 ||
		    pwrite(fd, blk, len, (off_t)off) != (ssize_t)len) {
			EPRINTF("colo %s:%s: close: writing block %llu back failed", c->host,
				c->port, (unsigned long long)blocks[i]);
			goto out;
		}
	}
	if (fdatasync(fd))
		EPRINTF("colo %s:%s: close: fdatasync: %s", c->host, c->port, strerror(errno));
	else
		DPRINTF("colo %s:%s: close: wrote %zu buffered blocks back: the disk holds the "
			"last "
			"checkpoint",
			c->host, c->port, n);
out:
	if (fd >= 0)
		close(fd);
	free(blk);
	free(blocks);
}

/* ---- start: the buffer, then listening (colo-handshake.c) ---- */

int colo_secondary_start(struct colo *c)
{
	char why[COLO_ERR_LEN] = "";
	struct colo_buffer_config cfg = {
		.block_size = c->opts.block_size,
		.ram_limit = c->opts.ram_limit,
		.spill_path = c->opts.spill_path,
		.spill_limit = c->opts.spill_limit,
		.why = why,
		.why_len = sizeof(why),
	};
	/* A broken Secondary started again keeps its buffer (colo_start_again). */
	bool made = !c->s.buf;
	int err = made ? colo_buffer_create(&cfg, &c->s.buf) : 0;

	if (err && why[0])
		return colo_fail(c, err, "start: %s", why);
	if (err)
		return colo_fail(c, err, "start: cannot create the disk buffer: %s",
				 strerror(-err));
	err = colo_handshake_listen(c);
	if (err) {
		if (made) { /* a kept one stays, for a failover (colo_start) */
			colo_buffer_destroy(c->s.buf);
			c->s.buf = NULL;
		}
		return err;
	}
	tapdisk_deferred_init(&c->s.ack, colo_secondary_send_ack, c);
	c->s.expect_seq = 1;
	c->s.applied_seq = c->s.acked_seq = 0;
	c->s.marker_epoch = 0;
	c->s.last_rx_marker = 0;
	/* A sync cut short leaves s.inconsistent: the disk holds part of the copy. */
	c->s.syncing = false;
	c->s.sync_rx = 0;
	colo_set_state(c, COLO_STATE_CONNECTING);
	c->link_state = COLO_LINK_LISTENING;
	DPRINTF("colo %s:%s: waiting for the Primary", c->host, c->port);
	colo_call_done(&c->start_call, 0, 0);
	return 0;
}

void colo_secondary_check_resume(struct colo *c, const struct colo_hello *h)
{
	c->s.resume_ok = (h->flags & COLO_HELLO_RESUME) && c->s.pair_known &&
			 !memcmp(c->s.pair_id, h->pair_id, sizeof(h->pair_id)) && c->s.resumable &&
			 c->s.ckpt_done >= h->resume_epoch;
	c->s.resume_at = c->s.resume_ok ? c->s.ckpt_done : 0;
}

void colo_secondary_link_ready(struct colo *c, const struct colo_hello *h)
{
	uint32_t flags = h->flags;

	memcpy(c->session_id, h->session_id, sizeof(c->session_id));
	colo_clear_error(c); /* refused Primaries before this one are history */
	/*
	 * A resync goes on from our last checkpoint: the Primary sends every extent changed
	 * since, so the blocks the buffer saved are sent again, and the Secondary VM's writes
	 * would be replaced by the next checkpoint anyway.  Otherwise the run starts afresh at
	 * epoch 1.  Either way what an earlier run left in the buffer (kept by a broken
	 * Secondary started again, for a failover until now) is history.
	 */
	colo_secondary_drop_buffer(c);
	if (c->s.resume_ok) {
		c->epoch = c->s.resume_at + 1;
		c->s.marker_epoch = c->s.last_rx_marker = c->s.resume_at;
		flags &= ~(uint32_t)COLO_HELLO_SYNC_DIFF;
		DPRINTF("colo %s:%s: resync since our checkpoint %llu", c->host, c->port,
			(unsigned long long)c->s.resume_at);
	} else {
		c->s.ckpt_done = 0;
		/*
		 * Without a copy the disks are identical by the toolstack's word.  A re-protect
		 * copies too (both sides' sets): until its first checkpoint our disk holds
		 * writes of ours the new Primary knows only from our DIRTY frames.
		 */
		c->s.resumable = !(flags & (COLO_HELLO_SYNC | COLO_HELLO_REPROTECT));
		if (c->s.resumable)
			c->s.checkpointed = true;
	}
	memcpy(c->s.pair_id, h->pair_id, sizeof(c->s.pair_id));
	c->s.pair_known = true;
	colo_set_state(c, COLO_STATE_RUNNING);
	for (size_t i = 0; colo_start_steps[i]; i++)
		if (flags & colo_start_steps[i]->hello_flag)
			colo_start_steps[i]->begin(c, flags);
	DPRINTF("colo %s:%s: replicating from the Primary at %s", c->host, c->port, c->link.peer);
}

/*
 * The Secondary VM's own I/O while replication runs.  Its writes go only to the disk buffer
 * (a partial block is first filled from the disk); its reads come from the disk with every
 * block the buffer holds laid over them at completion, which is what keeps a read that races
 * a forwarded write from seeing the Primary's new data (see colo-secondary.c).
 *
 * A disk read is only good for the buffer it was begun under.  A read or fill that a drop of
 * the buffer (checkpoint, failover, stop) overtook is done again: the disk may have held an
 * older checkpoint's data, or blocks that only the dropped buffer held.  A stop or failover
 * waits for the writes still filling (s.svm_writes) and turns new ones away (-EBUSY, retried
 * by the VBD), so that no acknowledged write reaches the buffer after its write-back.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "colo-internal.h"
#include "tapdisk-interface.h"

/* ---- the Secondary VM's reads ---- */

struct colo_svm_req {
	td_request_t treq;
	struct colo *c;
	uint64_t gen; /* s.gen when the disk read began */
	int pending;
	int err;
};

/* Lays the buffer's blocks over what the disk returned. */
static int colo_overlay(struct colo *c, char *buf, uint64_t off, uint64_t len)
{
	uint64_t bs = colo_bs(c), b, last;
	char *tmp = NULL;
	int err = 0;

	if (!colo_buffer_blocks(c->s.buf))
		return 0;
	last = (off + len - 1) / bs;
	for (b = off / bs; b <= last; b++) {
		uint64_t start = b * bs, from = off > start ? off : start;
		uint64_t to = off + len < start + bs ? off + len : start + bs;
		const char *src = colo_buffer_ram_ptr(c->s.buf, b);

		if (!src) {
			int rc;

			if (!colo_buffer_contains(c->s.buf, b))
				continue;
			if (!tmp && !(tmp = malloc(bs)))
				return -ENOMEM;
			rc = colo_buffer_get(c->s.buf, b, tmp);
			if (rc < 0) {
				err = rc;
				break;
			}
			src = tmp;
		}
		memcpy(buf + (from - off), src + (from - start), to - from);
	}
	free(tmp);
	return err;
}

static void colo_svm_read_done(td_request_t clone, int err)
{
	struct colo_svm_req *r = clone.cb_data;
	struct colo *c = r->c;
	td_request_t treq = r->treq;
	bool overtaken = r->gen != c->s.gen;

	free(r);
	if (!err && overtaken) {
		/* Once replication has ended the disk is plain and complete. */
		if (colo_ended(c) || c->role != COLO_ROLE_SECONDARY)
			td_forward_request(treq);
		else
			colo_secondary_queue_read(c, treq);
		return;
	}
	if (!err && c->s.buf)
		err = colo_overlay(c, treq.buf, treq.sec << SECTOR_SHIFT,
				   (uint64_t)treq.secs << SECTOR_SHIFT);
	td_complete_request(treq, err);
}

void colo_secondary_queue_read(struct colo *c, td_request_t treq)
{
	struct colo_svm_req *r = calloc(1, sizeof(*r));
	td_request_t clone = treq;

	if (!r) {
		td_complete_request(treq, -EBUSY);
		return;
	}
	r->treq = treq;
	r->c = c;
	r->gen = c->s.gen;
	clone.cb = colo_svm_read_done;
	clone.cb_data = r;
	td_forward_request(clone);
}

/* ---- the Secondary VM's writes ---- */

static void colo_svm_write_finish(struct colo_svm_req *r)
{
	struct colo *c = r->c;
	td_request_t treq = r->treq;
	int err = r->err;

	if (--r->pending)
		return;
	free(r);
	td_complete_request(treq, err);
	if (!--c->s.svm_writes && c->stop_call.done)
		colo_secondary_pump(c); /* the stop or failover waited for this write */
}

/* Stores the part of the write that falls in block @b; @blk is the block's old contents. */
static int colo_svm_store(struct colo *c, const td_request_t *treq, uint64_t b, char *blk)
{
	uint64_t bs = colo_bs(c), off = treq->sec << SECTOR_SHIFT;
	uint64_t len = (uint64_t)treq->secs << SECTOR_SHIFT, start = b * bs;
	uint64_t from = off > start ? off : start,
		 to = off + len < start + bs ? off + len : start + bs;
	const char *src = (const char *)treq->buf + (from - off);
	int rc;

	if (colo_buffer_contains(c->s.buf, b))
		rc = colo_buffer_update(c->s.buf, b, (uint32_t)(from - start), src,
					(uint32_t)(to - from));
	else if (blk) {
		memcpy(blk + (from - start), src, to - from);
		rc = colo_buffer_put(c->s.buf, b, blk, false);
	} else {
		rc = colo_buffer_put(c->s.buf, b, src, true);
	}
	if (rc < 0)
		return colo_fail(c, rc,
				 "Secondary VM write: block %llu does not fit in the disk "
				 "buffer: %s",
				 (unsigned long long)b, strerror(-rc));
	return 0;
}

struct colo_fill {
	struct colo_svm_req *r;
	uint64_t block;
	uint64_t gen; /* s.gen when this read of the block began */
	char *blk;
};

static void colo_svm_fill_done(td_request_t clone, int err);

/* Reads the block's old contents from the disk.  The read is a piece of the guest's own
 * request, so a pause waits for it and never holds it back. */
static void colo_svm_fill_read(struct colo *c, struct colo_fill *f)
{
	uint64_t bs = colo_bs(c), start = f->block * bs;
	td_request_t clone = f->r->treq;

	f->gen = c->s.gen;
	clone.op = TD_OP_READ;
	clone.sec = start >> SECTOR_SHIFT;
	clone.secs = (int)((start + bs > c->disk_size ? c->disk_size - start : bs) >> SECTOR_SHIFT);
	clone.buf = f->blk;
	clone.cb = colo_svm_fill_done;
	clone.cb_data = f;
	td_forward_request(clone);
}

static void colo_svm_fill_done(td_request_t clone, int err)
{
	struct colo_fill *f = clone.cb_data;
	struct colo_svm_req *r = f->r;
	struct colo *c = r->c;

	/*
	 * A checkpoint dropped the buffer during the read, which may then hold the checkpoint
	 * before.  Read again, unless a forwarded write has saved the block since: the buffer's
	 * copy is then the one to write into.
	 */
	if (!err && f->gen != c->s.gen && !colo_buffer_contains(c->s.buf, f->block)) {
		colo_svm_fill_read(c, f);
		return;
	}
	if (!err)
		err = colo_svm_store(c, &r->treq, f->block, f->blk);
	if (err && !r->err)
		r->err = err;
	free(f->blk);
	free(f);
	colo_svm_write_finish(r);
}

/* A partial block not in the buffer: read the rest of it from the disk first. */
static int colo_svm_fill(struct colo *c, struct colo_svm_req *r, uint64_t b)
{
	struct colo_fill *f = calloc(1, sizeof(*f));

	if (!f)
		return -ENOMEM;
	f->blk = colo_alloc_aligned(colo_bs(c));
	if (!f->blk) {
		free(f);
		return -ENOMEM;
	}
	memset(f->blk, 0, colo_bs(c));
	f->r = r;
	f->block = b;
	r->pending++;
	colo_svm_fill_read(c, f);
	return 0;
}

static void colo_svm_write(struct colo *c, td_request_t treq)
{
	uint64_t bs = colo_bs(c), off = treq.sec << SECTOR_SHIFT;
	uint64_t len = (uint64_t)treq.secs << SECTOR_SHIFT, b, last = (off + len - 1) / bs;
	struct colo_svm_req *r = calloc(1, sizeof(*r));

	if (!r) {
		td_complete_request(treq, -EBUSY);
		return;
	}
	r->treq = treq;
	r->c = c;
	r->pending = 1;
	c->s.svm_writes++;
	for (b = off / bs; b <= last && !r->err; b++) {
		uint64_t start = b * bs, end = start + bs;
		bool whole = off <= start && (off + len >= end || off + len >= c->disk_size);

		if (whole || colo_buffer_contains(c->s.buf, b)) {
			if (whole && end > c->disk_size) {
				/* The disk's short last block: pad what lies past the end. */
				char *blk = calloc(1, bs);

				r->err = blk ? colo_svm_store(c, &treq, b, blk) : -ENOMEM;
				free(blk);
			} else {
				r->err = colo_svm_store(c, &treq, b, NULL);
			}
		} else {
			r->err = colo_svm_fill(c, r, b);
		}
	}
	colo_svm_write_finish(r);
}

void colo_secondary_queue_write(struct colo *c, td_request_t treq)
{
	/*
	 * A stop or failover is pending or the buffer is being written back: the VBD retries
	 * the write with backoff until the disk is plain.  Holding it here instead would stall
	 * a pause.
	 */
	if (c->state == COLO_STATE_FAILING_OVER || c->stop_call.done) {
		td_complete_request(treq, -EBUSY);
		return;
	}
	colo_svm_write(c, treq);
}

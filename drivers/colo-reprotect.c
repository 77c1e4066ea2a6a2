/*
 * The re-protect start step: a failed-over Secondary starts as Primary toward its old
 * Primary, which starts as Secondary, on the same VBDs (docs/colo.md, "Re-protect and
 * failback"; docs/colo-protocol.md, "Re-protect").
 *
 * The disks differ exactly in the blocks each side wrote after the last checkpoint both
 * have: the new Primary's writes since its failover (the buffer written back, and every
 * write after it: colo_reprotect_failover records them in its dirty map) and the old
 * Primary's writes after that checkpoint, which only the old Primary knows (its dirty map if
 * its tapdisk lived, its dirty log if it was restarted with dirty_log=).  The old Primary sends
 * its set (DIRTY frames, per epoch, then DIRTY_END) first thing once the link is up; the new
 * Primary copies the union of both sets with the sync's copy (colo_sync_start, no diff) and
 * says how many bytes that is in sync_total_bytes before it sends one.  An old Primary that
 * knows nothing (DIRTY_END with offset 0) hashes its disk, and the new Primary falls back to
 * a diff of the whole disk, and says so.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "colo-internal.h"
#include "crc32c.h"
#include "timeout-math.h"

struct colo_reprotect {
	uint64_t *peer; /* extents the old Primary wrote after our last checkpoint */
	uint64_t words;
	uint64_t frames; /* DIRTY frames received */
	event_id_t timer; /* bounds the wait for DIRTY_END */
};

static uint64_t rp_words(const struct colo *c)
{
	return (colo_sync_extents(c) + 63) / 64 + 1;
}

static bool rp_bit(const uint64_t *map, uint64_t i)
{
	return map[i / 64] >> (i % 64) & 1;
}

static uint64_t rp_bytes(const struct colo *c, const uint64_t *ext)
{
	uint64_t n = 0, extents = colo_sync_extents(c);

	for (uint64_t e = 0; e < extents; e++)
		if (rp_bit(ext, e))
			n += e + 1 < extents ? COLO_SYNC_EXTENT
					     : c->disk_size - e * (uint64_t)COLO_SYNC_EXTENT;
	return n;
}

/* ---- the new Primary ---- */

static void rp_free(struct colo *c)
{
	if (!c->p.rp)
		return;
	if (c->p.rp->timer > 0)
		tapdisk_server_unregister_event(c->p.rp->timer);
	free(c->p.rp->peer);
	free(c->p.rp);
	c->p.rp = NULL;
}

static bool rp_wanted(const struct colo *c)
{
	return c->p.reprotect;
}

/*
 * The old Primary sends its set first thing once the link is up: a live one that has not
 * ended it within timeout never will (its heartbeats keep the link up meanwhile).
 */
static void rp_timeout(event_id_t id, char mode, void *priv)
{
	struct colo *c = priv;

	rp_free(c);
	colo_primary_step_done(c, colo_fail(c, -ETIMEDOUT,
					    "re-protect: the old Primary sent no DIRTY_END within "
					    "%u ms",
					    c->opts.timeout_ms));
}

static int rp_run(struct colo *c)
{
	struct colo_reprotect *rp = calloc(1, sizeof(*rp));

	if (rp)
		rp->peer = calloc(rp_words(c), sizeof(uint64_t));
	if (!rp || !rp->peer) {
		free(rp);
		return colo_fail(c, -ENOMEM, "re-protect: out of memory");
	}
	rp->words = rp_words(c);
	rp->timer = tapdisk_server_register_event(SCHEDULER_POLL_TIMEOUT, -1,
						  TV_MSECS(c->opts.timeout_ms), rp_timeout, c);
	if (rp->timer < 0) {
		int err = rp->timer;

		free(rp->peer);
		free(rp);
		return colo_fail(c, err, "re-protect: cannot start its timer: %s", strerror(-err));
	}
	c->p.rp = rp;
	colo_set_state(c, COLO_STATE_SYNCING);
	DPRINTF("colo %s:%s: re-protect: waiting for the old Primary's writes after checkpoint "
		"%llu",
		c->host, c->port, (unsigned long long)c->p.reprotect_since);
	return 0;
}

static void rp_protocol_error(struct colo *c, const char *what)
{
	colo_fail(c, -EPROTO, "re-protect: %s", what);
	colo_link_send_error(c, -EPROTO, c->last_error);
	colo_link_lost(c, -EPROTO, "re-protect: %s", what);
}

/* DIRTY: bits of extents offset, offset + 1, ... (bounded by the codec); epoch 0: carried. */
void colo_reprotect_dirty_rx(struct colo *c, struct colo_frame *f, void *payload)
{
	struct colo_reprotect *rp = c->p.rp;
	const uint8_t *bytes = payload;
	uint64_t extents = colo_sync_extents(c);
	bool take;

	if (!rp) {
		free(payload);
		rp_protocol_error(c, "a DIRTY frame, but no re-protect runs");
		return;
	}
	rp->frames++;
	/* Epochs up to our last checkpoint are on our disk already. */
	take = !f->epoch || f->epoch > c->p.reprotect_since;
	for (uint32_t i = 0; i < f->length; i++) {
		for (int b = 0; b < 8; b++) {
			uint64_t e = f->offset + 8ULL * i + b;

			if (!(bytes[i] >> b & 1))
				continue;
			if (e >= extents) {
				free(payload);
				rp_protocol_error(c, "DIRTY: an extent past the end of the disk");
				return;
			}
			if (take)
				rp->peer[e / 64] |= 1ULL << (e % 64);
		}
	}
	free(payload);
}

/* DIRTY_END: the old Primary's set is complete (offset 1), or it has none (offset 0). */
void colo_reprotect_dirty_end_rx(struct colo *c, struct colo_frame *f, void *payload)
{
	struct colo_reprotect *rp = c->p.rp;
	uint64_t *ext, mine, both;
	bool known = f->offset == 1;
	int err;

	free(payload);
	if (!rp) {
		rp_protocol_error(c, "a DIRTY_END frame, but no re-protect runs");
		return;
	}
	ext = calloc(rp->words, sizeof(uint64_t));
	if (!ext) {
		colo_primary_step_done(c, colo_fail(c, -ENOMEM, "re-protect: out of memory"));
		return;
	}
	if (known) {
		/* Ours: what we wrote since the failover (carried at start). */
		colo_dirty_extents(c->p.dirty, -1, COLO_SYNC_EXTENT, ext);
		mine = rp_bytes(c, ext);
		for (uint64_t i = 0; i < rp->words; i++)
			ext[i] |= rp->peer[i];
		both = rp_bytes(c, ext);
		DPRINTF("colo %s:%s: re-protect: sending %llu bytes: %llu of ours since the failover, "
			"%llu of the old Primary's after checkpoint %llu (%llu DIRTY frames)",
			c->host, c->port, (unsigned long long)both, (unsigned long long)mine,
			(unsigned long long)rp_bytes(c, rp->peer),
			(unsigned long long)c->p.reprotect_since, (unsigned long long)rp->frames);
		c->p.reprotect_kind = "exact";
	} else {
		memset(ext, 0xff, rp->words * sizeof(uint64_t));
		DPRINTF("colo %s:%s: re-protect: the old Primary does not know what it wrote after "
			"checkpoint %llu (no dirty map, no dirty_log=): diff of the whole disk",
			c->host, c->port, (unsigned long long)c->p.reprotect_since);
		c->p.reprotect_kind = "diff";
	}
	rp_free(c);
	err = colo_sync_start(c, ext, !known);
	free(ext);
	if (err)
		colo_primary_step_done(c, err);
}

/* The copy is the sync's: its acknowledgements end it, and with it our start. */
static void rp_acked(struct colo *c, uint64_t seq)
{
	colo_sync_step.acked(c, seq);
	if (c->p.reprotect && !c->start_call.done && c->state == COLO_STATE_RUNNING) {
		/* What we wrote since the failover is on the Secondary now. */
		colo_dirty_forget_carried(c->p.dirty);
		c->p.reprotect = false;
	}
}

static uint32_t rp_flags(const struct colo *c)
{
	return COLO_HELLO_REPROTECT;
}

/* ---- the old Primary, now Secondary ---- */

/* Sends the extents set in @ext as DIRTY frames labelled @epoch, all-zero chunks left out. */
static int rp_send_set(struct colo *c, const uint64_t *ext, uint64_t epoch)
{
	uint64_t extents = colo_sync_extents(c), nbytes = (extents + 7) / 8;

	for (uint64_t first = 0; first < nbytes; first += COLO_DIRTY_MAX) {
		uint32_t len = nbytes - first < COLO_DIRTY_MAX ? nbytes - first : COLO_DIRTY_MAX;
		struct colo_msg *m = calloc(1, sizeof(*m) + len);
		struct colo_frame f = { .type = COLO_FRAME_DIRTY, .epoch = epoch,
					.offset = first * 8, .length = len };
		uint8_t *out;
		bool any = false;

		if (!m)
			return colo_fail(c, -ENOMEM, "re-protect: out of memory");
		out = (uint8_t *)(m + 1);
		for (uint64_t e = first * 8; e < extents && e < (first + len) * 8; e++) {
			if (rp_bit(ext, e)) {
				out[e / 8 - first] |= 1 << (e % 8);
				any = true;
			}
		}
		if (!any) {
			free(m);
			continue;
		}
		m->data = out;
		m->len = len;
		f.data_crc = crc32c(0, out, len);
		colo_link_send(c, m, &f);
	}
	return 0;
}

static void rp_send_end(struct colo *c, bool known)
{
	struct colo_msg *m = calloc(1, sizeof(*m));
	struct colo_frame f = { .type = COLO_FRAME_DIRTY_END, .offset = known };

	if (!m) {
		colo_fail(c, -ENOMEM, "re-protect: out of memory");
		colo_secondary_fatal(c, -ENOMEM);
		return;
	}
	colo_link_send(c, m, &f);
}

/* Our writes the new Primary lacks: each open epoch's bitmap, and the carried blocks. */
static int rp_send_sets(struct colo *c)
{
	uint64_t epochs[COLO_DIRTY_MAPS_MAX], words = rp_words(c);
	uint64_t *ext = calloc(words, sizeof(uint64_t));
	int n = colo_dirty_maps(c->p.dirty, epochs), err = 0;

	if (!ext)
		return colo_fail(c, -ENOMEM, "re-protect: out of memory");
	for (int i = -1; i < n && !err; i++) {
		memset(ext, 0, words * sizeof(uint64_t));
		colo_dirty_extents(c->p.dirty, i, COLO_SYNC_EXTENT, ext);
		DPRINTF("colo %s:%s: re-protect: our writes %s%llu: %llu bytes", c->host, c->port,
			i < 0 ? "from before (carried), epoch " : "in epoch ",
			(unsigned long long)(i < 0 ? 0 : epochs[i]),
			(unsigned long long)rp_bytes(c, ext));
		err = rp_send_set(c, ext, i < 0 ? 0 : epochs[i]);
	}
	free(ext);
	return err;
}

static void rp_begin(struct colo *c, uint32_t flags)
{
	/* Writes that reached the disk untracked (before this start) make our set incomplete. */
	bool known = c->p.dirty != NULL && !c->p.untracked;
	int err;

	if (c->p.untracked)
		DPRINTF("colo %s:%s: re-protect: guest writes reached the disk before this start, "
			"with no dirty map to record them: the Primary compares the disks",
			c->host, c->port);
	c->p.untracked = false;
	if (known) {
		err = rp_send_sets(c);
		if (err) {
			colo_secondary_fatal(c, err);
			return;
		}
	} else {
		DPRINTF("colo %s:%s: re-protect: we do not know what we wrote after the last "
			"checkpoint (no dirty map, no dirty_log=): the Primary compares the disks",
			c->host, c->port);
	}
	rp_send_end(c, known);
	/* The copy that follows is the sync's; without our set the Primary needs our hashes. */
	colo_sync_step.begin(c, COLO_HELLO_SYNC | (known ? 0 : COLO_HELLO_SYNC_DIFF));
}

static void rp_cancel(struct colo *c)
{
	rp_free(c);
}

const struct colo_start_step colo_reprotect_step = {
	.name = "reprotect",
	.hello_flag = COLO_HELLO_REPROTECT,
	.frame_type = 0, /* no frame of its own in the stream: the copy's are the sync's */
	.wanted = rp_wanted,
	.flags = rp_flags,
	.run = rp_run,
	.acked = rp_acked,
	.begin = rp_begin,
	.cancel = rp_cancel,
};

/* ---- the VBD's life around it ---- */

int colo_reprotect_failover(struct colo *c, const uint64_t *blocks, size_t n)
{
	uint64_t bs = colo_bs(c);

	colo_primary_dirty_close(c); /* a set an earlier run left is history */
	if (colo_dirty_create(c->disk_size, c->opts.block_size, &c->p.dirty))
		return colo_fail(c, -ENOMEM, "failover: out of memory for the dirty map");
	for (size_t i = 0; i < n; i++)
		colo_dirty_mark(c->p.dirty, blocks[i] * bs, bs, c->epoch);
	c->p.reprotect_since = c->epoch - 1;
	return 0;
}

int colo_reprotect_open_log(struct colo *c)
{
	struct colo_dirty_log_geometry g = {
		.disk_size = c->disk_size,
		.block_size = c->opts.block_size,
	};
	struct colo_dirty_log *log;
	char why[COLO_ERR_LEN];
	struct stat st;
	int err;

	if (!c->opts.dirty_log[0] || c->p.dirty)
		return 0; /* our map, if we have one, knows more than a log */
	if (stat(c->opts.dirty_log, &st))
		return colo_fail(c, -errno,
				 "start: dirty_log=%s: %s (a Secondary only reads an existing log)",
				 c->opts.dirty_log, strerror(errno));
	err = colo_dirty_log_open(c->opts.dirty_log, &g, NULL, &log, why, sizeof(why));
	if (err)
		return colo_fail(c, err, "start: %s", why);
	if (colo_dirty_create(c->disk_size, c->opts.block_size, &c->p.dirty)) {
		colo_dirty_log_close(log);
		return colo_fail(c, -ENOMEM, "start: out of memory for the dirty map");
	}
	err = colo_dirty_attach_log(c->p.dirty, log);
	if (err) {
		colo_primary_dirty_close(c);
		return colo_fail(c, err, "start: dirty_log=%s: %s", c->opts.dirty_log,
				 strerror(-err));
	}
	DPRINTF("colo %s:%s: dirty log %s: %llu extents we wrote that the Primary may lack",
		c->host, c->port, c->opts.dirty_log,
		(unsigned long long)colo_dirty_log_count(log));
	return 0;
}

void colo_reprotect_checkpoint(struct colo *c)
{
	struct colo_dirty_log *log = colo_dirty_log(c->p.dirty);

	if (!c->p.dirty)
		return;
	/* The disks are equal from here on: what we wrote as Primary is history. */
	colo_dirty_forget_carried(c->p.dirty);
	colo_dirty_commit(c->p.dirty, UINT64_MAX);
	/*
	 * A clean log, as if new: no checkpoint of ours (this pair's epochs start again with
	 * the new Primary), so that a later start as Primary from it begins a history of its
	 * own instead of asking a resync since a checkpoint no Secondary has.
	 */
	if (log)
		colo_dirty_log_set_epoch(log, 0);
	if (log && colo_dirty_log_flush(log))
		EPRINTF("colo %s:%s: dirty_log=%s: cannot clear it; the next re-protect from it "
			"sends more than needed",
			c->host, c->port, colo_dirty_log_path(log));
	colo_primary_dirty_close(c);
}

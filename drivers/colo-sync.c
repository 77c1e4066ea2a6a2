/*
 * The sync start step (sync=full|diff) and the copy under it, colo_sync_start, which a resync
 * calls too.  docs/colo-protocol.md ("SYNC") gives the frames, docs/colo.md the operator's
 * view.
 *
 * The Primary copies a set of extents (COLO_SYNC_EXTENT bytes each) to the Secondary while the
 * guest keeps writing, on the same ordered link as the forwarded writes.  Invariant: a copy of
 * block B never overtakes or undoes a later guest write to B.  An extent is read only while no
 * guest write to it is in flight on the local disk, and from the read's start until its SYNC
 * frame is queued the extent is held: guest writes to it wait (p.holds, like a write that
 * overlaps a write in flight).  So a guest write to the extent either completed before the
 * read (the read has its data, and its WRITE is ahead in the stream) or is issued after the
 * SYNC frame is queued (its WRITE follows it).  The Secondary applies overlapping frames in
 * stream order, so it ends with the newest data.
 *
 * diff: the Secondary hashes its disk in the background (XXH3-128 per extent) and sends the
 * hashes as it makes them (HASHES, in extent order); the Primary hashes each extent as it reads it, under the hold, and sends it
 * only if the hashes differ.  The Secondary sends because only it can hash its disk, and this
 * way the Primary's decision is made on the very bytes it would send: no second round trip,
 * and nothing read twice.  A Secondary hash taken before a forwarded write was applied is
 * safe: that write is in the Primary's extent too, and is applied on the Secondary anyway.
 *
 * The Secondary writes SYNC frames and forwarded writes straight to its disk while syncing
 * (there is no consistent contents to keep yet), ends syncing at SYNC_END, and is consistent
 * after its first checkpoint: until then it refuses a failover unless forced.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "colo-internal.h"
#include "crc32c.h"
#include "tapdisk-interface.h"
#include "timeout-math.h"

#define COLO_SYNC_READS 4	 /* extent reads in flight */
#define COLO_SYNC_WINDOW 16	 /* SYNC frames queued and not yet acknowledged */
#define COLO_SYNC_TICK_MS 10	 /* the rate bound's clock */
#define COLO_SYNC_BURST_MS 100 /* the rate bound lets this much time's bytes go at once */
/*
 * For tests only: each extent read completes this many ms late (at most 10 s), as on a slow
 * disk, so that guest writes surely race the copy (tests/test-colo-sync.sh).  Read once per
 * copy from the tapdisk's environment; unset in production.
 */
#define COLO_SYNC_TEST_DELAY_ENV "TAPDISK_COLO_SYNC_TEST_DELAY_MS"

struct colo_sync;

struct colo_sync_read {
	struct colo_io io;
	struct colo_hold hold;
	struct colo_sync *sync; /* NULL once the sync is gone: the read only frees itself */
	struct colo *c;
	uint64_t extent;
	void *buf;
	event_id_t delay; /* the test delay's timer, while it runs */
};

struct colo_sync {
	uint64_t n;	 /* extents */
	uint64_t *todo;	 /* extents not read yet */
	uint64_t next;	 /* the first extent that may still be in todo */
	bool diff;
	uint8_t *hashes; /* diff: the Secondary's, COLO_HASH_SIZE per extent */
	uint64_t *known; /* diff: extents whose hash arrived */
	int reads;
	struct colo_sync_read *inflight[COLO_SYNC_READS];
	uint64_t window[COLO_SYNC_WINDOW]; /* seqs of SYNC frames not acknowledged, oldest first */
	int w_head, w_n;
	uint64_t end_seq; /* SYNC_END's, once queued */
	long long start_ms;
	/* The rate bound: a token bucket, bytes, refilled by the timer. */
	int64_t tokens;
	long long tokens_ms;
	event_id_t timer;
	int test_delay_ms;
};

static bool colo_bit(const uint64_t *map, uint64_t i)
{
	return map[i / 64] >> (i % 64) & 1;
}

uint64_t colo_sync_extents(const struct colo *c)
{
	return (c->disk_size + COLO_SYNC_EXTENT - 1) / COLO_SYNC_EXTENT;
}

enum colo_sync_mode colo_sync_mode(const struct colo *c)
{
	if (c->opts.sync == COLO_SYNC_DEFAULT)
		return c->opts.verify ? COLO_SYNC_NONE : COLO_SYNC_DIFF;
	return c->opts.sync;
}

static uint64_t colo_sync_extent_len(const struct colo *c, uint64_t e)
{
	uint64_t off = e * COLO_SYNC_EXTENT;

	return c->disk_size - off < COLO_SYNC_EXTENT ? c->disk_size - off : COLO_SYNC_EXTENT;
}

static void colo_sync_hash(const void *buf, size_t len, void *out)
{
	XXH128_canonicalFromHash(out, XXH3_128bits(buf, len));
}

/* ---- the Primary: the copy ---- */

static void colo_sync_free(struct colo *c)
{
	struct colo_sync *s = c->p.sync;

	if (!s)
		return;
	if (s->timer > 0)
		tapdisk_server_unregister_event(s->timer);
	/* Reads still in flight free themselves; their holds go now. */
	for (int i = 0; i < COLO_SYNC_READS; i++) {
		struct colo_sync_read *r = s->inflight[i];

		if (!r)
			continue;
		colo_primary_release_hold(c, &r->hold);
		if (r->delay > 0) { /* read, and waiting out the test delay */
			tapdisk_server_unregister_event(r->delay);
			free(r->buf);
			free(r);
		} else {
			r->sync = NULL;
		}
	}
	free(s->todo);
	free(s->hashes);
	free(s->known);
	free(s);
	c->p.sync = NULL;
}

static void colo_sync_update_rate(struct colo *c)
{
	long long ms = colo_now_ms() - c->p.sync->start_ms;

	c->p.sync_rate = c->p.sync_done * 1000 / (uint64_t)(ms > 0 ? ms : 1);
}

static void colo_sync_fail(struct colo *c, int err)
{
	colo_sync_free(c);
	colo_primary_step_done(c, err);
}

static void colo_sync_tick(event_id_t id, char mode, void *priv)
{
	struct colo *c = priv;
	struct colo_sync *s = c->p.sync;
	long long now = colo_now_ms();
	int64_t burst = (int64_t)(c->opts.sync_rate * COLO_SYNC_BURST_MS / 1000);

	s->tokens += (int64_t)(c->opts.sync_rate * (uint64_t)(now - s->tokens_ms) / 1000);
	s->tokens_ms = now;
	if (s->tokens > burst)
		s->tokens = burst;
	colo_sync_update_rate(c);
	colo_sync_kick(c);
}

static void colo_sync_read_done(struct colo *c, struct colo_io *io, int err);

/* The next extent that may be read now, or n. */
static uint64_t colo_sync_next(struct colo *c)
{
	struct colo_sync *s = c->p.sync;

	while (s->next < s->n && !colo_bit(s->todo, s->next))
		s->next++;
	for (uint64_t e = s->next; e < s->n; e++) {
		if (!colo_bit(s->todo, e))
			continue;
		if (s->diff && !colo_bit(s->known, e))
			return s->n; /* hashes arrive in order: wait for this one */
		if (!colo_primary_writing(c, e * COLO_SYNC_EXTENT, colo_sync_extent_len(c, e)))
			return e;
		/* A guest write to it is in flight: take a later one meanwhile. */
	}
	return s->n;
}

static int colo_sync_read(struct colo *c, uint64_t e)
{
	struct colo_sync *s = c->p.sync;
	uint64_t len = colo_sync_extent_len(c, e);
	struct colo_sync_read *r = calloc(1, sizeof(*r));
	int slot = 0, err;

	if (r)
		r->buf = colo_alloc_aligned(len);
	if (!r || !r->buf) {
		free(r);
		return colo_fail(c, -ENOMEM, "sync: out of memory");
	}
	while (s->inflight[slot])
		slot++;
	r->sync = s;
	r->c = c;
	r->extent = e;
	r->hold.offset = e * COLO_SYNC_EXTENT;
	r->hold.length = len;
	colo_primary_hold(c, &r->hold);
	err = colo_io_submit(c, &r->io, TD_OP_READ, r->hold.offset, r->buf, len,
			     colo_sync_read_done, r);
	if (err) {
		colo_primary_release_hold(c, &r->hold);
		free(r->buf);
		free(r);
		return err;
	}
	s->todo[e / 64] &= ~(1ULL << (e % 64));
	s->inflight[slot] = r;
	s->reads++;
	if (c->opts.sync_rate)
		s->tokens -= (int64_t)len;
	return 0;
}

/* Everything is read: SYNC_END follows the last copy; its acknowledgement ends the step. */
static int colo_sync_end(struct colo *c)
{
	struct colo_sync *s = c->p.sync;

	colo_sync_update_rate(c);
	DPRINTF("colo %s:%s: sync: %llu of %llu bytes examined, %llu sent; waiting for the "
		"Secondary",
		c->host, c->port, (unsigned long long)c->p.sync_done,
		(unsigned long long)c->p.sync_total, (unsigned long long)c->p.sync_sent);
	return colo_primary_queue_frame(c, COLO_FRAME_SYNC_END, 0, NULL, 0, false, &s->end_seq);
}

void colo_sync_kick(struct colo *c)
{
	struct colo_sync *s = c->p.sync;
	int err = 0;

	if (!s || s->end_seq || c->link_state != COLO_LINK_UP)
		return;
	/*
	 * Bounded by the window, the rate, and queue_limit like the guest's writes; but one
	 * extent may always be under way, so that a small queue_limit that guest writes keep
	 * busy does not stop the copy (it then overshoots by that one extent).
	 */
	while (s->reads < COLO_SYNC_READS && s->reads + s->w_n < COLO_SYNC_WINDOW &&
	       (!c->opts.sync_rate || s->tokens > 0) &&
	       ((!s->reads && !s->w_n) ||
		c->p.reserved + COLO_SYNC_EXTENT <= c->opts.queue_limit)) {
		uint64_t e = colo_sync_next(c);

		if (e == s->n)
			break;
		err = colo_sync_read(c, e);
		if (err) {
			colo_sync_fail(c, err);
			return;
		}
	}
	if (!s->reads && s->next == s->n) {
		err = colo_sync_end(c);
		if (err)
			colo_sync_fail(c, err);
	}
}

static void colo_sync_read_finish(struct colo *c, struct colo_sync_read *r, int err);

static void colo_sync_read_delayed(event_id_t id, char mode, void *priv)
{
	struct colo_sync_read *r = priv;

	tapdisk_server_unregister_event(r->delay);
	r->delay = 0;
	colo_sync_read_finish(r->c, r, 0);
}

static void colo_sync_read_done(struct colo *c, struct colo_io *io, int err)
{
	struct colo_sync_read *r = io->priv;
	struct colo_sync *s = r->sync;

	if (!s) { /* the sync ended meanwhile; the hold went with it */
		free(r->buf);
		free(r);
		return;
	}
	if (!err && s->test_delay_ms) {
		r->delay = tapdisk_server_register_event(SCHEDULER_POLL_TIMEOUT, -1,
							 TV_MSECS(s->test_delay_ms),
							 colo_sync_read_delayed, r);
		if (r->delay > 0)
			return;
		r->delay = 0;
	}
	colo_sync_read_finish(c, r, err);
}

/* The extent is read: queue its copy (unless diff finds it equal), then let the writes go. */
static void colo_sync_read_finish(struct colo *c, struct colo_sync_read *r, int err)
{
	struct colo_sync *s = r->sync;
	uint64_t len = r->hold.length, seq;
	uint8_t hash[COLO_HASH_SIZE];
	bool same = false;

	for (int i = 0; i < COLO_SYNC_READS; i++)
		if (s->inflight[i] == r)
			s->inflight[i] = NULL;
	s->reads--;
	if (err) {
		uint64_t off = r->hold.offset;

		colo_primary_release_hold(c, &r->hold);
		free(r->buf);
		free(r);
		if (err == -ENODEV)
			return; /* the VBD closes */
		colo_fail(c, err, "sync: reading %llu bytes at %llu failed: %s",
			  (unsigned long long)len, (unsigned long long)off, strerror(-err));
		colo_sync_fail(c, err);
		return;
	}
	if (s->diff) {
		colo_sync_hash(r->buf, len, hash);
		same = !memcmp(hash, s->hashes + r->extent * COLO_HASH_SIZE, COLO_HASH_SIZE);
	}
	if (!same) {
		/* Queued before the hold goes: the guest writes it held follow it. */
		err = colo_primary_queue_frame(c, COLO_FRAME_SYNC, r->hold.offset, r->buf,
					       (uint32_t)len, false, &seq);
		if (!err) {
			s->window[(s->w_head + s->w_n++) % COLO_SYNC_WINDOW] = seq;
			c->p.sync_sent += len;
		}
	}
	c->p.sync_done += len;
	colo_primary_release_hold(c, &r->hold);
	free(r->buf);
	free(r);
	if (err) {
		colo_sync_fail(c, err);
		return;
	}
	colo_sync_kick(c);
}

static void colo_sync_acked(struct colo *c, uint64_t seq)
{
	struct colo_sync *s = c->p.sync;

	if (!s)
		return;
	while (s->w_n && s->window[s->w_head] <= seq) {
		s->w_head = (s->w_head + 1) % COLO_SYNC_WINDOW;
		s->w_n--;
	}
	if (s->end_seq && seq >= s->end_seq) {
		colo_sync_update_rate(c);
		DPRINTF("colo %s:%s: sync complete: %llu bytes sent in %lld ms; the first "
			"checkpoint makes the Secondary consistent",
			c->host, c->port, (unsigned long long)c->p.sync_sent,
			colo_now_ms() - s->start_ms);
		colo_sync_free(c);
		/* What a restarted Primary carried over is on the Secondary now. */
		colo_dirty_forget_carried(c->p.dirty);
		colo_primary_step_done(c, 0);
		return;
	}
	colo_sync_kick(c);
}

int colo_sync_start(struct colo *c, const uint64_t *extents, bool diff)
{
	uint64_t words = (colo_sync_extents(c) + 63) / 64;
	struct colo_sync *s;

	if (c->p.sync)
		return colo_fail(c, -EBUSY, "sync: a copy is running");
	s = calloc(1, sizeof(*s));
	if (!s)
		return colo_fail(c, -ENOMEM, "sync: out of memory");
	c->p.sync = s;
	s->n = colo_sync_extents(c);
	s->diff = diff;
	s->todo = calloc(words + 1, sizeof(uint64_t));
	if (diff) {
		s->hashes = calloc(s->n, COLO_HASH_SIZE);
		s->known = calloc(words + 1, sizeof(uint64_t));
	}
	if (!s->todo || (diff && (!s->hashes || !s->known))) {
		colo_sync_free(c);
		return colo_fail(c, -ENOMEM, "sync: out of memory for %llu extents",
				 (unsigned long long)s->n);
	}
	c->p.sync_done = c->p.sync_sent = c->p.sync_rate = c->p.sync_total = 0;
	for (uint64_t e = 0; e < s->n; e++) {
		if (colo_bit(extents, e)) {
			s->todo[e / 64] |= 1ULL << (e % 64);
			c->p.sync_total += colo_sync_extent_len(c, e);
		}
	}
	s->start_ms = s->tokens_ms = colo_now_ms();
	if (getenv(COLO_SYNC_TEST_DELAY_ENV)) {
		s->test_delay_ms = atoi(getenv(COLO_SYNC_TEST_DELAY_ENV));
		if (s->test_delay_ms < 0 || s->test_delay_ms > 10000)
			s->test_delay_ms = 0;
		DPRINTF("colo %s:%s: sync: each read completes %d ms late (%s, for tests)",
			c->host, c->port, s->test_delay_ms, COLO_SYNC_TEST_DELAY_ENV);
	}
	s->tokens = (int64_t)(c->opts.sync_rate * COLO_SYNC_BURST_MS / 1000);
	s->timer = tapdisk_server_register_event(SCHEDULER_POLL_TIMEOUT, -1,
						 TV_MSECS(COLO_SYNC_TICK_MS), colo_sync_tick, c);
	if (s->timer < 0) {
		int err = s->timer;

		s->timer = 0;
		colo_sync_free(c);
		return colo_fail(c, err, "sync: cannot start its timer: %s", strerror(-err));
	}
	colo_set_state(c, COLO_STATE_SYNCING);
	DPRINTF("colo %s:%s: sync: %s copy of %llu bytes (%llu extents of %u)%s", c->host, c->port,
		diff ? "diff" : "full", (unsigned long long)c->p.sync_total,
		(unsigned long long)s->n, COLO_SYNC_EXTENT,
		diff ? ", waiting for the Secondary's hashes" : "");
	colo_sync_kick(c);
	return 0;
}

/* HASHES from the Secondary: the hashes of extents offset, offset + 1, ... (bounded by the
 * codec: within the disk, at most COLO_HASHES_MAX bytes). */
void colo_sync_hashes_rx(struct colo *c, struct colo_frame *f, void *payload)
{
	struct colo_sync *s = c->p.sync;
	uint64_t k = f->length / COLO_HASH_SIZE;

	if (!s || !s->diff) {
		free(payload);
		colo_fail(c, -EPROTO, "HASHES from the Secondary, but no diff sync runs");
		colo_link_send_error(c, -EPROTO, c->last_error);
		colo_link_lost(c, -EPROTO, "unexpected HASHES frame from the Secondary");
		return;
	}
	for (uint64_t i = 0; i < k; i++) {
		if (colo_bit(s->known, f->offset + i)) {
			free(payload);
			colo_link_send_error(c, -EPROTO, "HASHES: an extent's hash sent twice");
			colo_link_lost(c, -EPROTO, "HASHES: extent %llu's hash sent twice",
				       (unsigned long long)(f->offset + i));
			return;
		}
		s->known[(f->offset + i) / 64] |= 1ULL << ((f->offset + i) % 64);
	}
	memcpy(s->hashes + f->offset * COLO_HASH_SIZE, payload, f->length);
	free(payload);
	colo_sync_kick(c);
}

/* ---- the sync step ---- */

/*
 * A re-protect copies its own set (colo-reprotect.c) instead; a Primary that knows what
 * changed since a checkpoint always resyncs (p.resuming).
 */
static bool colo_sync_wanted(const struct colo *c)
{
	return (colo_sync_mode(c) != COLO_SYNC_NONE || c->p.resuming) && !c->p.reprotect;
}

bool colo_sync_covers_connecting(const struct colo *c)
{
	return colo_sync_wanted(c);
}

static uint32_t colo_sync_flags(const struct colo *c)
{
	/* A resync asks for the hashes too: they decide if there is no common checkpoint. */
	if (c->p.resuming)
		return COLO_HELLO_SYNC | COLO_HELLO_SYNC_DIFF | COLO_HELLO_RESUME;
	return COLO_HELLO_SYNC | (colo_sync_mode(c) == COLO_SYNC_DIFF ? COLO_HELLO_SYNC_DIFF : 0);
}

/* A resync's extents: every one with a block dirty since the common checkpoint. */
static void colo_sync_resync_extents(struct colo *c, uint64_t *ext)
{
	uint64_t nb = colo_dirty_nblocks(c->p.dirty), words = (nb + 63) / 64;
	uint64_t per = COLO_SYNC_EXTENT / c->opts.block_size;
	uint64_t *blocks = calloc(words + 1, sizeof(uint64_t));

	if (!blocks || !per) {
		/* No memory for the exact set: every extent (a superset is safe). */
		memset(ext, 0xff, ((colo_sync_extents(c) + 63) / 64 + 1) * sizeof(uint64_t));
		free(blocks);
		return;
	}
	colo_dirty_since(c->p.dirty, c->p.resume_at, blocks, words);
	for (uint64_t b = 0; b < nb; b++)
		if (blocks[b / 64] >> (b % 64) & 1)
			ext[b / per / 64] |= 1ULL << (b / per % 64);
	free(blocks);
}

static int colo_sync_run(struct colo *c)
{
	uint64_t words = (colo_sync_extents(c) + 63) / 64;
	uint64_t *ext = calloc(words + 1, sizeof(uint64_t));
	bool diff = colo_sync_mode(c) == COLO_SYNC_DIFF || c->p.resuming;
	int err;

	if (!ext)
		return colo_fail(c, -ENOMEM, "sync: out of memory");
	if (c->p.resumed) {
		colo_sync_resync_extents(c, ext);
		diff = false;
	} else {
		memset(ext, 0xff, (words + 1) * sizeof(uint64_t));
		/*
		 * The whole disk is compared: this run's epochs start again at 1, so what the
		 * map labelled with an earlier run's epochs (a failed-over Primary started
		 * again, a resync the Secondary did not grant) means nothing in them.  Carried
		 * instead, and forgotten once the copy is on the Secondary, like a restarted
		 * Primary's log; else a later resync or re-protect would send it again.
		 */
		if (colo_dirty_carry_all(c->p.dirty)) {
			free(ext);
			return colo_fail(c, -ENOMEM, "sync: out of memory for the dirty map");
		}
	}
	err = colo_sync_start(c, ext, diff);
	free(ext);
	return err;
}

/* ---- the Secondary ---- */

/* Hashes made this tick: sent at once, at most COLO_HASHES_MAX bytes a frame, so that the
 * Primary compares and copies while we still read. */
static void colo_sync_hashes_made(struct colo *c, const void *sums, uint32_t first, uint32_t n)
{
	uint32_t per = COLO_HASHES_MAX / COLO_HASH_SIZE;

	for (uint32_t i = 0; i < n && c->link.fd >= 0; i += per) {
		uint32_t k = n - i < per ? n - i : per, len = k * COLO_HASH_SIZE;
		struct colo_msg *m = calloc(1, sizeof(*m) + len);
		struct colo_frame f = { .type = COLO_FRAME_HASHES, .offset = first + i,
					.length = len };

		if (!m) {
			colo_fail(c, -ENOMEM, "sync: out of memory for the hashes");
			colo_disk_sum_cancel(c);
			colo_secondary_fatal(c, -ENOMEM);
			return;
		}
		memcpy(m + 1, (const char *)sums + (size_t)i * COLO_HASH_SIZE, len);
		m->data = m + 1;
		m->len = len;
		f.epoch = c->epoch;
		f.data_crc = crc32c(0, m->data, len);
		colo_link_send(c, m, &f); /* sent: free(m) frees the payload with it */
	}
}

static void colo_sync_hashes_done(struct colo *c, int err, void *sums, uint32_t n)
{
	free(sums);
	if (err) {
		colo_secondary_fatal(c, err);
		return;
	}
	DPRINTF("colo %s:%s: sync: sent the hashes of %u extents", c->host, c->port, n);
}

static void colo_sync_begin(struct colo *c, uint32_t flags)
{
	int err;

	c->s.syncing = true;
	c->s.inconsistent = true;
	c->s.sync_rx = 0;
	colo_set_state(c, COLO_STATE_SYNCING);
	if (!(flags & COLO_HELLO_SYNC_DIFF))
		return;
	DPRINTF("colo %s:%s: sync: hashing %s for the Primary", c->host, c->port, c->path);
	err = colo_disk_sum_start(c, "sync", COLO_SYNC_EXTENT, COLO_HASH_SIZE, colo_sync_hash,
				  colo_sync_hashes_made, colo_sync_hashes_done);
	if (err)
		colo_secondary_fatal(c, err);
}

void colo_sync_rx(struct colo *c, struct colo_frame *f, void *payload)
{
	if (!c->s.syncing) {
		free(payload);
		colo_fail(c, -EPROTO, "%s frame seq %llu, but no sync runs",
			  colo_frame_type_name(f->type), (unsigned long long)f->seq);
		colo_secondary_fatal(c, -EPROTO);
		return;
	}
	colo_secondary_enqueue(c, f, payload);
}

/* SYNC_END: every extent is on our disk; the first checkpoint makes it consistent. */
static int colo_sync_apply_end(struct colo *c, const struct colo_frame *f, const void *payload)
{
	c->s.syncing = false;
	DPRINTF("colo %s:%s: sync complete: %llu bytes copied; consistent after the first "
		"checkpoint",
		c->host, c->port, (unsigned long long)c->s.sync_rx);
	colo_set_state(c, COLO_STATE_RUNNING);
	return 1;
}

/* s.syncing stays: colo_secondary_link_lost looks at it (the start failed during the copy). */
static void colo_sync_cancel(struct colo *c)
{
	colo_sync_free(c);
	colo_disk_sum_cancel(c);
}

const struct colo_start_step colo_sync_step = {
	.name = "sync",
	.hello_flag = COLO_HELLO_SYNC,
	.frame_type = COLO_FRAME_SYNC_END,
	.wanted = colo_sync_wanted,
	.flags = colo_sync_flags,
	.run = colo_sync_run,
	.acked = colo_sync_acked,
	.begin = colo_sync_begin,
	.rx = colo_sync_rx,
	.apply = colo_sync_apply_end,
	.cancel = colo_sync_cancel,
};

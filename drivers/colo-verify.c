/*
 * The verify start step (verify=1): both sides checksum their whole disk, the CRC32C of every
 * COLO_VERIFY_CHUNK.  The Primary makes its list before connecting and sends it as the first
 * frame of the stream (VERIFY); the Secondary makes its own when that frame reaches the head
 * of its apply queue and compares: a difference ends the link and so fails the Primary's
 * start.
 *
 * The checksum run over a whole disk is here too, for verify and for sync=diff's hashes:
 * reading a whole disk takes as long as the disk takes, so it runs a few chunks per tick of a
 * timer, and guest I/O, other VBDs and the link's heartbeats go on meanwhile.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "colo-internal.h"
#include "crc32c.h"
#include "tapdisk-interface.h"
#include "timeout-math.h"

/* Work per tick, then a chance for other events: short next to any heartbeat timeout. */
#define COLO_SUM_BUDGET_MS 5
#define COLO_SUM_TICK_MS 1

struct colo_crc_job {
	int fd;
	uint64_t disk_size;
	uint32_t chunk;
	size_t size; /* bytes of one digest */
	colo_sum_fn_t fn;
	colo_sum_progress_t progress;
	const char *what;
	uint32_t n, next, first_of_tick;
	char *sums;
	char *buf;
	event_id_t timer;
	colo_sum_done_t done;
};

static void colo_sum_free(struct colo *c)
{
	struct colo_crc_job *job = c->crc;

	if (!job)
		return;
	if (job->timer > 0)
		tapdisk_server_unregister_event(job->timer);
	if (job->fd >= 0)
		close(job->fd);
	free(job->buf);
	free(job->sums);
	free(job);
	c->crc = NULL;
}

static void colo_sum_finish(struct colo *c, int err)
{
	struct colo_crc_job *job = c->crc;
	colo_sum_done_t done = job->done;
	void *sums = job->sums;
	uint32_t n = job->n;

	job->sums = NULL;
	colo_sum_free(c);
	if (err) {
		free(sums);
		sums = NULL;
		n = 0;
	}
	done(c, err, sums, n);
}

static void colo_sum_tick(event_id_t id, char mode, void *priv)
{
	struct colo *c = priv;
	struct colo_crc_job *job = c->crc;
	long long start = colo_now_ms();

	/* At least one chunk per tick, then as many as fit in the budget. */
	for (; job->next < job->n; job->next++) {
		if (job->next != job->first_of_tick && colo_now_ms() - start >= COLO_SUM_BUDGET_MS)
			break;
		uint64_t off = (uint64_t)job->next * job->chunk;
		size_t len = job->disk_size - off < job->chunk ? job->disk_size - off : job->chunk;
		ssize_t got = pread(job->fd, job->buf, len, (off_t)off);

		if (got != (ssize_t)len) {
			int err = got < 0 ? -errno : -EIO;

			colo_fail(c, err, "%s: reading %s at %llu: %s", job->what, c->path,
				  (unsigned long long)off, got < 0 ? strerror(-err) : "short read");
			colo_sum_finish(c, err);
			return;
		}
		job->fn(job->buf, len, job->sums + (size_t)job->next * job->size);
	}
	if (job->progress && job->next > job->first_of_tick)
		job->progress(c, job->sums + (size_t)job->first_of_tick * job->size,
			      job->first_of_tick, job->next - job->first_of_tick);
	if (c->crc != job)
		return; /* the progress callback cancelled the run */
	job->first_of_tick = job->next;
	if (job->next == job->n)
		colo_sum_finish(c, 0);
}

int colo_disk_sum_start(struct colo *c, const char *what, uint32_t chunk, size_t size,
			colo_sum_fn_t fn, colo_sum_progress_t progress, colo_sum_done_t done)
{
	struct colo_crc_job *job;

	if (c->crc)
		return colo_fail(c, -EBUSY, "%s: a checksum run is in progress", what);
	job = calloc(1, sizeof(*job));
	if (!job)
		return colo_fail(c, -ENOMEM, "%s: out of memory", what);
	c->crc = job;
	job->done = done;
	job->what = what;
	job->fn = fn;
	job->progress = progress;
	job->size = size;
	job->chunk = chunk;
	job->disk_size = c->disk_size;
	job->n = (uint32_t)((c->disk_size + chunk - 1) / chunk);
	job->fd = open(c->path, O_RDONLY | O_CLOEXEC);
	job->sums = calloc(job->n ? job->n : 1, size);
	job->buf = malloc(chunk);
	if (job->fd < 0 || !job->sums || !job->buf) {
		int err = job->fd < 0 ? -errno : -ENOMEM;

		colo_sum_free(c);
		return colo_fail(c, err, "%s: cannot read %s: %s", what, c->path, strerror(-err));
	}
	job->timer = tapdisk_server_register_event(SCHEDULER_POLL_TIMEOUT, -1,
						   TV_MSECS(COLO_SUM_TICK_MS), colo_sum_tick, c);
	if (job->timer < 0) {
		int err = job->timer;

		job->timer = 0;
		colo_sum_free(c);
		return colo_fail(c, err, "%s: cannot start: %s", what, strerror(-err));
	}
	return 0;
}

void colo_disk_sum_cancel(struct colo *c)
{
	colo_sum_free(c);
}

/* ---- the verify step: CRC32C per COLO_VERIFY_CHUNK ---- */

static void colo_verify_crc(const void *buf, size_t len, void *out)
{
	uint32_t crc = crc32c(0, buf, len);

	memcpy(out, &crc, sizeof(crc));
}

static int colo_crc_start(struct colo *c, colo_sum_done_t done)
{
	return colo_disk_sum_start(c, "verify", COLO_VERIFY_CHUNK, sizeof(uint32_t),
				   colo_verify_crc, NULL, done);
}

/* ---- the Primary's part ---- */

/*
 * Not for a start that copies what it knows differs, a resync (p.resuming) or a re-protect:
 * its disks differ by design until the copy, which makes them equal.
 */
static bool colo_verify_wanted(const struct colo *c)
{
	return c->opts.verify && !c->p.resuming && !c->p.reprotect;
}

static void colo_verify_primary_crcs(struct colo *c, int err, void *crcs, uint32_t n)
{
	if (!err) {
		c->p.verify_crcs = crcs;
		c->p.verify_n = n;
	}
	colo_primary_step_prepared(c, err);
}

/* The list is made before connecting; the connection starts once it is done. */
static int colo_verify_prepare(struct colo *c)
{
	DPRINTF("colo %s:%s: checksumming %s for the verify step", c->host, c->port, c->path);
	return colo_crc_start(c, colo_verify_primary_crcs);
}

/* The list goes first in the stream, before any write queued while connecting. */
static int colo_verify_run(struct colo *c)
{
	uint32_t *crcs = c->p.verify_crcs, n = c->p.verify_n;
	int err;

	c->p.verify_crcs = NULL;
	for (uint32_t i = 0; i < n; i++)
		crcs[i] = htobe32(crcs[i]);
	err = colo_primary_queue_frame(c, COLO_FRAME_VERIFY, 0, crcs, n * 4, true,
				       &c->p.verify_seq);
	free(crcs);
	return err;
}

static void colo_verify_acked(struct colo *c, uint64_t seq)
{
	if (!c->p.verify_seq || seq < c->p.verify_seq)
		return;
	c->p.verify_seq = 0;
	DPRINTF("colo %s:%s: the Secondary's disk matches ours", c->host, c->port);
	colo_primary_step_done(c, 0);
}

/* ---- the Secondary's part ---- */

static void colo_verify_begin(struct colo *c, uint32_t flags)
{
	c->s.verifying = true;
}

static void colo_verify_rx(struct colo *c, struct colo_frame *f, void *payload)
{
	if (!c->s.verifying || f->seq != 1) {
		free(payload);
		colo_fail(c, -EPROTO, "VERIFY frame seq %llu %s", (unsigned long long)f->seq,
			  c->s.verifying ? "is not the first" : "not announced in the hello");
		colo_secondary_fatal(c, -EPROTO);
		return;
	}
	colo_secondary_enqueue(c, f, payload);
}

static void colo_verify_secondary_crcs(struct colo *c, int err, void *crcs, uint32_t n)
{
	c->s.verify_crcs = crcs;
	c->s.verify_err = err;
	colo_secondary_pump(c);
}

/* Checksums our disk in the background, then compares with the Primary's list. */
static int colo_verify_apply(struct colo *c, const struct colo_frame *f, const void *payload)
{
	uint32_t n = f->length / 4;
	int err = c->s.verify_err;

	if (!c->s.verify_crcs && !err) {
		if (!c->crc)
			err = colo_crc_start(c, colo_verify_secondary_crcs);
		return err;
	}
	for (uint32_t i = 0; !err && i < n; i++) {
		uint32_t be;

		memcpy(&be, (const char *)payload + (size_t)i * 4, 4);
		if (be32toh(be) != c->s.verify_crcs[i])
			err = colo_fail(c, -EILSEQ,
					"verify: the disks differ in the %u-byte chunk at byte "
					"offset %llu",
					COLO_VERIFY_CHUNK,
					(unsigned long long)i * COLO_VERIFY_CHUNK);
	}
	free(c->s.verify_crcs);
	c->s.verify_crcs = NULL;
	c->s.verify_err = 0;
	if (err)
		return err;
	DPRINTF("colo %s:%s: verify: both disks match (%u chunks)", c->host, c->port, n);
	c->s.verifying = false;
	return 1;
}

static void colo_verify_cancel(struct colo *c)
{
	colo_disk_sum_cancel(c);
	free(c->p.verify_crcs);
	c->p.verify_crcs = NULL;
	c->p.verify_seq = 0;
	free(c->s.verify_crcs);
	c->s.verify_crcs = NULL;
	c->s.verify_err = 0;
}

const struct colo_start_step colo_verify_step = {
	.name = "verify",
	.hello_flag = COLO_HELLO_VERIFY,
	.frame_type = COLO_FRAME_VERIFY,
	.wanted = colo_verify_wanted,
	.prepare = colo_verify_prepare,
	.run = colo_verify_run,
	.acked = colo_verify_acked,
	.begin = colo_verify_begin,
	.rx = colo_verify_rx,
	.apply = colo_verify_apply,
	.cancel = colo_verify_cancel,
};

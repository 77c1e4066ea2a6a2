/*
 * The optional start check (verify=1): the CRC32C of every COLO_VERIFY_CHUNK of the disk.
 * Reading a whole disk takes as long as the disk takes, so it runs a few chunks per tick of a
 * timer: guest I/O, other VBDs and the link's heartbeats go on meanwhile.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "colo-internal.h"
#include "crc32c.h"
#include "timeout-math.h"

/* Work per tick, then a chance for other events: short next to any heartbeat timeout. */
#define COLO_CRC_BUDGET_MS 5
#define COLO_CRC_TICK_MS 1

struct colo_crc_job {
	int fd;
	uint64_t disk_size;
	uint32_t n, next, first_of_tick;
	uint32_t *crcs;
	char *buf;
	event_id_t timer;
	colo_crc_done_t done;
};

static void colo_crc_free(struct colo *c)
{
	struct colo_crc_job *job = c->crc;

	if (!job)
		return;
	if (job->timer > 0)
		tapdisk_server_unregister_event(job->timer);
	if (job->fd >= 0)
		close(job->fd);
	free(job->buf);
	free(job->crcs);
	free(job);
	c->crc = NULL;
}

static void colo_crc_finish(struct colo *c, int err)
{
	struct colo_crc_job *job = c->crc;
	colo_crc_done_t done = job->done;
	uint32_t *crcs = job->crcs, n = job->n;

	job->crcs = NULL;
	colo_crc_free(c);
	if (err) {
		free(crcs);
		crcs = NULL;
		n = 0;
	}
	done(c, err, crcs, n);
}

static void colo_crc_tick(event_id_t id, char mode, void *priv)
{
	struct colo *c = priv;
	struct colo_crc_job *job = c->crc;
	long long start = colo_now_ms();

	/* At least one chunk per tick, then as many as fit in the budget. */
	for (; job->next < job->n; job->next++) {
		if (job->next != job->first_of_tick && colo_now_ms() - start >= COLO_CRC_BUDGET_MS)
			break;
		uint64_t off = (uint64_t)job->next * COLO_VERIFY_CHUNK;
		size_t len = job->disk_size - off < COLO_VERIFY_CHUNK ? job->disk_size - off
								      : COLO_VERIFY_CHUNK;
		ssize_t got = pread(job->fd, job->buf, len, (off_t)off);

		if (got != (ssize_t)len) {
			int err = got < 0 ? -errno : -EIO;

			colo_fail(c, err, "verify: reading %s at %llu: %s", c->path,
				  (unsigned long long)off, got < 0 ? strerror(-err) : "short read");
			colo_crc_finish(c, err);
			return;
		}
		job->crcs[job->next] = crc32c(0, job->buf, len);
	}
	job->first_of_tick = job->next;
	if (job->next == job->n)
		colo_crc_finish(c, 0);
}

int colo_crc_start(struct colo *c, colo_crc_done_t done)
{
	struct colo_crc_job *job;

	if (c->crc)
		return colo_fail(c, -EBUSY, "verify: a checksum run is in progress");
	job = calloc(1, sizeof(*job));
	if (!job)
		return colo_fail(c, -ENOMEM, "verify: out of memory");
	c->crc = job;
	job->done = done;
	job->disk_size = c->disk_size;
	job->n = (uint32_t)((c->disk_size + COLO_VERIFY_CHUNK - 1) / COLO_VERIFY_CHUNK);
	job->fd = open(c->path, O_RDONLY | O_CLOEXEC);
	job->crcs = calloc(job->n ? job->n : 1, sizeof(*job->crcs));
	job->buf = malloc(COLO_VERIFY_CHUNK);
	if (job->fd < 0 || !job->crcs || !job->buf) {
		int err = job->fd < 0 ? -errno : -ENOMEM;

		colo_crc_free(c);
		return colo_fail(c, err, "verify: cannot read %s: %s", c->path, strerror(-err));
	}
	job->timer = tapdisk_server_register_event(SCHEDULER_POLL_TIMEOUT, -1,
						   TV_MSECS(COLO_CRC_TICK_MS), colo_crc_tick, c);
	if (job->timer < 0) {
		int err = job->timer;

		job->timer = 0;
		colo_crc_free(c);
		return colo_fail(c, err, "verify: cannot start: %s", strerror(-err));
	}
	return 0;
}

void colo_crc_cancel(struct colo *c)
{
	colo_crc_free(c);
}

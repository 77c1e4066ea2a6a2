/*
 * The Primary's persistent dirty log: one bit per coarse extent of the disk, set and synced
 * before a write to the extent is issued, cleared lazily once the checkpoints that make the
 * extent clean are complete.  The format and the crash-safety argument are in
 * docs/colo-dirty-log.md; this file is the only code that reads or writes it.
 *
 * Every header and bitmap page has two slots.  An update writes the slot that does not hold
 * the newest valid copy, with a higher sequence number, and every flush ends with fdatasync,
 * so that at most one slot of a page is ever unsynced: a write torn by a crash leaves the
 * other slot, which is valid and holds every bit that had to be on disk.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "colo-dirty.h"
#include "crc32c.h"
#include "tapdisk-log.h"

#define DL_MAGIC 0x42434F4C4F444C31ULL /* "BCOLODL1" */
#define DL_VERSION 1u
#define DL_HDR_SLOT 512u
#define DL_HDR_AREA 4096u
#define DL_PAGE 4096u
#define DL_PAGE_MAGIC 0x43444C50u /* "CDLP" */
#define DL_PAGE_HDR 16u		  /* magic, page index, seq */
#define DL_PAGE_BITS ((DL_PAGE - DL_PAGE_HDR - 4u) * 8u)

/* Offsets in a header slot. */
enum {
	H_MAGIC = 0,
	H_VERSION = 8,
	H_FLAGS = 12,
	H_SEQ = 16,
	H_DISK = 24,
	H_BS = 32,
	H_ES = 36,
	H_EXTENTS = 40,
	H_PAGES = 48,
	H_RSVD = 52,
	H_PAIR = 56,
	H_EPOCH = 72,
	H_CRC = DL_HDR_SLOT - 4,
};

struct colo_dirty_log {
	int fd;
	char *path;
	uint64_t disk_size, extents;
	uint32_t block_size, extent_size, pages;
	uint8_t pair[COLO_DIRTY_PAIR_LEN];
	uint64_t epoch;
	uint64_t hdr_seq;
	int hdr_slot; /* the slot holding the newest valid header */
	bool hdr_changed;
	uint8_t *bits;	   /* the image: pages * (DL_PAGE_BITS / 8) bytes */
	uint64_t *seq;	   /* per page: the newest valid slot's sequence number */
	uint8_t *slot;	   /* per page: which slot holds it */
	uint8_t *changed;  /* per page: 1 cleared bits only, 2 set bits (a flush must sync) */
	uint32_t unsynced; /* pages with set bits not handed to a flush */
	uint64_t flushes;
	uint8_t *buf; /* one aligned page of scratch */

	/*
	 * Flushes run in a thread of their own, one at a time, so that the event loop goes on
	 * while the disk syncs: @durable is the image as of the last completed flush, @handed
	 * the image the flush in flight writes.  Flush generations count from 1.
	 */
	uint8_t *durable, *handed;
	uint64_t handed_gen, synced_gen;
	bool busy;  /* a flush in flight */
	int failed; /* a flush failed: the log is not trusted any more */
	int efd;    /* the thread signals a finished flush here */
	pthread_t thr;
	bool thr_started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop, job_ready, job_done;
	uint8_t *jobbuf; /* the slots to write, DL_PAGE each */
	off_t *joboff;
	uint32_t njob;
	int joberr;
};

static void dl_why(char *why, size_t len, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void dl_why(char *why, size_t len, const char *path, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (why && len)
		snprintf(why, len, "dirty_log=%s: %s", path, msg);
}

static void put32(uint8_t *p, uint32_t v)
{
	v = htobe32(v);
	memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
	v = htobe64(v);
	memcpy(p, &v, 8);
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return be32toh(v);
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return be64toh(v);
}

static uint32_t dl_bytes_per_page(void)
{
	return DL_PAGE_BITS / 8;
}

static uint64_t dl_file_size(uint32_t pages)
{
	return DL_HDR_AREA + (uint64_t)pages * 2 * DL_PAGE;
}

static off_t dl_page_off(uint32_t page, int slot)
{
	return (off_t)DL_HDR_AREA + ((off_t)page * 2 + slot) * DL_PAGE;
}

/* Whole-buffer pread or pwrite: 0, or -errno (-EIO at the end of the file). */
static int dl_io(int fd, bool write, void *buf, size_t len, off_t off)
{
	char *p = buf;

	while (len) {
		ssize_t n = write ? pwrite(fd, p, len, off) : pread(fd, p, len, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		len -= n;
		off += n;
	}
	return 0;
}

static int dl_pwrite(int fd, const void *buf, size_t len, off_t off)
{
	return dl_io(fd, true, (void *)buf, len, off);
}

static int dl_pread(int fd, void *buf, size_t len, off_t off)
{
	return dl_io(fd, false, buf, len, off);
}

static void dl_encode_header(const struct colo_dirty_log *log, uint64_t seq, uint8_t *h)
{
	memset(h, 0, DL_HDR_SLOT);
	put64(h + H_MAGIC, DL_MAGIC);
	put32(h + H_VERSION, DL_VERSION);
	put64(h + H_SEQ, seq);
	put64(h + H_DISK, log->disk_size);
	put32(h + H_BS, log->block_size);
	put32(h + H_ES, log->extent_size);
	put64(h + H_EXTENTS, log->extents);
	put32(h + H_PAGES, log->pages);
	memcpy(h + H_PAIR, log->pair, COLO_DIRTY_PAIR_LEN);
	put64(h + H_EPOCH, log->epoch);
	put32(h + H_CRC, crc32c(0, h, H_CRC));
}

static void dl_encode_page(const struct colo_dirty_log *log, uint32_t page, uint64_t seq,
			   uint8_t *p)
{
	put32(p, DL_PAGE_MAGIC);
	put32(p + 4, page);
	put64(p + 8, seq);
	memcpy(p + DL_PAGE_HDR, log->bits + (size_t)page * dl_bytes_per_page(),
	       dl_bytes_per_page());
	put32(p + DL_PAGE - 4, crc32c(0, p, DL_PAGE - 4));
}

static bool dl_page_valid(const uint8_t *p, uint32_t page)
{
	return get32(p) == DL_PAGE_MAGIC && get32(p + 4) == page &&
	       get32(p + DL_PAGE - 4) == crc32c(0, p, DL_PAGE - 4);
}

static bool dl_header_valid(const uint8_t *h)
{
	return get64(h + H_MAGIC) == DL_MAGIC && get32(h + H_CRC) == crc32c(0, h, H_CRC);
}

static void dl_free(struct colo_dirty_log *log)
{
	if (!log)
		return;
	if (log->thr_started) {
		pthread_mutex_lock(&log->mu);
		log->stop = true;
		pthread_cond_signal(&log->cv);
		pthread_mutex_unlock(&log->mu);
		pthread_join(log->thr, NULL);
	}
	pthread_mutex_destroy(&log->mu);
	pthread_cond_destroy(&log->cv);
	if (log->efd >= 0)
		close(log->efd);
	if (log->fd >= 0)
		close(log->fd);
	free(log->path);
	free(log->bits);
	free(log->durable);
	free(log->handed);
	free(log->jobbuf);
	free(log->joboff);
	free(log->seq);
	free(log->slot);
	free(log->changed);
	free(log->buf);
	free(log);
}

static struct colo_dirty_log *dl_alloc(const char *path, const struct colo_dirty_log_geometry *g)
{
	struct colo_dirty_log *log = calloc(1, sizeof(*log));

	if (!log)
		return NULL;
	log->fd = -1;
	log->efd = -1;
	pthread_mutex_init(&log->mu, NULL);
	pthread_cond_init(&log->cv, NULL);
	log->disk_size = g->disk_size;
	log->block_size = g->block_size;
	log->extent_size = g->extent_size;
	if (!log->extent_size)
		log->extent_size = g->block_size > COLO_DIRTY_LOG_EXTENT ? g->block_size
									 : COLO_DIRTY_LOG_EXTENT;
	log->extents = (g->disk_size + log->extent_size - 1) / log->extent_size;
	log->pages = (uint32_t)((log->extents + DL_PAGE_BITS - 1) / DL_PAGE_BITS);
	if (!log->pages)
		log->pages = 1;
	log->path = strdup(path);
	log->bits = calloc(log->pages, dl_bytes_per_page());
	log->seq = calloc(log->pages, sizeof(*log->seq));
	log->slot = calloc(log->pages, 1);
	log->changed = calloc(log->pages, 1);
	log->durable = calloc(log->pages, dl_bytes_per_page());
	log->handed = calloc(log->pages, dl_bytes_per_page());
	log->joboff = calloc(log->pages + 1, sizeof(*log->joboff));
	if (posix_memalign((void **)&log->buf, 4096, DL_PAGE))
		log->buf = NULL;
	if (posix_memalign((void **)&log->jobbuf, 4096, (size_t)(log->pages + 1) * DL_PAGE))
		log->jobbuf = NULL;
	log->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (!log->path || !log->bits || !log->seq || !log->slot || !log->changed || !log->buf ||
	    !log->durable || !log->handed || !log->joboff || !log->jobbuf || log->efd < 0) {
		dl_free(log);
		return NULL;
	}
	return log;
}

static void dl_hex(const uint8_t *id, char *out)
{
	for (int i = 0; i < COLO_DIRTY_PAIR_LEN; i++)
		sprintf(out + 2 * i, "%02x", id[i]);
}

/* Reads and checks an existing log; nothing is written. */
static int dl_load(struct colo_dirty_log *log, const uint8_t *pair, char *why, size_t why_len)
{
	uint8_t hdr[2][DL_HDR_SLOT], *h;
	struct stat st;
	uint64_t want;
	int best = -1, err;

	if (fstat(log->fd, &st))
		return -errno;
	if (!S_ISREG(st.st_mode)) {
		dl_why(why, why_len, log->path, "not a regular file");
		return -EINVAL;
	}
	if ((st.st_mode & 07777) != 0600) {
		dl_why(why, why_len, log->path, "mode %04o, must be 0600 (owner read-write only)",
		       (unsigned int)(st.st_mode & 07777));
		return -EPERM;
	}
	if (st.st_uid != geteuid()) {
		dl_why(why, why_len, log->path, "owned by uid %u, not by this tapdisk's uid %u",
		       (unsigned int)st.st_uid, (unsigned int)geteuid());
		return -EPERM;
	}
	if ((uint64_t)st.st_size < DL_HDR_AREA) {
		dl_why(why, why_len, log->path,
		       "truncated: %llu bytes, shorter than the %u-byte header area",
		       (unsigned long long)st.st_size, DL_HDR_AREA);
		return -EBADMSG;
	}
	err = dl_pread(log->fd, hdr, sizeof(hdr), 0);
	if (err) {
		dl_why(why, why_len, log->path, "cannot read the header: %s", strerror(-err));
		return err;
	}
	for (int s = 0; s < 2; s++)
		if (dl_header_valid(hdr[s]) &&
		    (best < 0 || get64(hdr[s] + H_SEQ) > get64(hdr[best] + H_SEQ)))
			best = s;
	if (best < 0) {
		if (get64(hdr[0] + H_MAGIC) != DL_MAGIC && get64(hdr[1] + H_MAGIC) != DL_MAGIC) {
			dl_why(why, why_len, log->path, "not a dirty log (magic 0x%016llx)",
			       (unsigned long long)get64(hdr[0] + H_MAGIC));
			return -EBADMSG;
		}
		dl_why(why, why_len, log->path, "bad checksum in the header (both copies)");
		return -EBADMSG;
	}
	h = hdr[best];
	if (get32(h + H_VERSION) != DL_VERSION) {
		dl_why(why, why_len, log->path, "format version %u, this tapdisk reads version %u",
		       get32(h + H_VERSION), DL_VERSION);
		return -EINVAL;
	}
	if (get64(h + H_DISK) != log->disk_size) {
		dl_why(why, why_len, log->path,
		       "made for a disk of %llu bytes, this disk has %llu bytes",
		       (unsigned long long)get64(h + H_DISK), (unsigned long long)log->disk_size);
		return -EINVAL;
	}
	if (get32(h + H_BS) != log->block_size) {
		dl_why(why, why_len, log->path, "made for block_size %u, this disk uses %u",
		       get32(h + H_BS), log->block_size);
		return -EINVAL;
	}
	if (get32(h + H_ES) != log->extent_size || get64(h + H_EXTENTS) != log->extents ||
	    get32(h + H_PAGES) != log->pages || get32(h + H_FLAGS) || get32(h + H_RSVD)) {
		dl_why(why, why_len, log->path,
		       "extent size %u (%llu extents, %u pages), expected %u (%llu, %u)",
		       get32(h + H_ES), (unsigned long long)get64(h + H_EXTENTS),
		       get32(h + H_PAGES), log->extent_size, (unsigned long long)log->extents,
		       log->pages);
		return -EINVAL;
	}
	if (pair && memcmp(h + H_PAIR, pair, COLO_DIRTY_PAIR_LEN)) {
		char a[33], b[33];

		dl_hex(h + H_PAIR, a);
		dl_hex(pair, b);
		dl_why(why, why_len, log->path, "belongs to pair %s, not to pair %s", a, b);
		return -EINVAL;
	}
	want = dl_file_size(log->pages);
	if ((uint64_t)st.st_size != want) {
		dl_why(why, why_len, log->path, "%s: %llu bytes, the log of this disk has %llu",
		       (uint64_t)st.st_size < want ? "truncated" : "wrong size",
		       (unsigned long long)st.st_size, (unsigned long long)want);
		return -EBADMSG;
	}
	memcpy(log->pair, h + H_PAIR, COLO_DIRTY_PAIR_LEN);
	log->epoch = get64(h + H_EPOCH);
	log->hdr_seq = get64(h + H_SEQ);
	log->hdr_slot = best;
	for (uint32_t p = 0; p < log->pages; p++) {
		int pick = -1;
		uint64_t pick_seq = 0;

		for (int s = 0; s < 2; s++) {
			err = dl_pread(log->fd, log->buf, DL_PAGE, dl_page_off(p, s));
			if (err) {
				dl_why(why, why_len, log->path, "cannot read bitmap page %u: %s", p,
				       strerror(-err));
				return err;
			}
			if (!dl_page_valid(log->buf, p))
				continue;
			if (pick < 0 || get64(log->buf + 8) > pick_seq) {
				pick = s;
				pick_seq = get64(log->buf + 8);
				memcpy(log->bits + (size_t)p * dl_bytes_per_page(),
				       log->buf + DL_PAGE_HDR, dl_bytes_per_page());
			}
		}
		if (pick < 0) {
			dl_why(why, why_len, log->path,
			       "bad checksum in bitmap page %u (both copies)", p);
			return -EBADMSG;
		}
		log->seq[p] = pick_seq;
		log->slot[p] = (uint8_t)pick;
	}
	/* Bits past the last extent are never set by us: one that is means a foreign file. */
	for (uint64_t e = log->extents; e < (uint64_t)log->pages * DL_PAGE_BITS; e++)
		if (log->bits[e / 8] & (1u << (e % 8))) {
			dl_why(why, why_len, log->path, "bit %llu set past the last extent %llu",
			       (unsigned long long)e, (unsigned long long)log->extents - 1);
			return -EBADMSG;
		}
	memcpy(log->durable, log->bits, (size_t)log->pages * dl_bytes_per_page());
	return 0;
}

static int dl_fsync_dir(const char *path)
{
	char *copy = strdup(path);
	int fd, err = 0;

	if (!copy)
		return -ENOMEM;
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(copy);
	if (fd < 0)
		return -errno;
	if (fsync(fd))
		err = -errno;
	close(fd);
	return err;
}

/*
 * Writes a whole empty log under a temporary name and links it into place: another process
 * never sees a half-made log, and a log made meanwhile by someone else is not replaced.
 */
static int dl_create(struct colo_dirty_log *log, const uint8_t *pair, char *why, size_t why_len)
{
	size_t len = strlen(log->path) + 8;
	char *tmp = malloc(len);
	uint8_t hdr[DL_HDR_AREA];
	int fd, err = 0;

	if (!tmp)
		return -ENOMEM;
	snprintf(tmp, len, "%s.XXXXXX", log->path);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		dl_why(why, why_len, log->path, "cannot create the file (%s)", strerror(errno));
		free(tmp);
		return err;
	}
	if (fchmod(fd, 0600)) {
		err = -errno;
		goto fail;
	}
	if (pair)
		memcpy(log->pair, pair, COLO_DIRTY_PAIR_LEN);
	else if (getrandom(log->pair, COLO_DIRTY_PAIR_LEN, 0) != COLO_DIRTY_PAIR_LEN) {
		err = -errno;
		goto fail;
	}
	memset(hdr, 0, sizeof(hdr));
	dl_encode_header(log, 1, hdr);
	dl_encode_header(log, 0, hdr + DL_HDR_SLOT);
	log->hdr_seq = 1;
	log->hdr_slot = 0;
	err = dl_pwrite(fd, hdr, sizeof(hdr), 0);
	for (uint32_t p = 0; !err && p < log->pages; p++)
		for (int s = 0; !err && s < 2; s++) {
			dl_encode_page(log, p, 1 - s, log->buf);
			err = dl_pwrite(fd, log->buf, DL_PAGE, dl_page_off(p, s));
		}
	if (!err && fdatasync(fd))
		err = -errno;
	if (err)
		goto fail;
	for (uint32_t p = 0; p < log->pages; p++)
		log->seq[p] = 1;
	if (link(tmp, log->path)) {
		err = -errno;
		unlink(tmp);
		close(fd);
		free(tmp);
		return err; /* EEXIST: someone made it meanwhile; the caller opens theirs */
	}
	unlink(tmp);
	free(tmp);
	log->fd = fd;
	dl_fsync_dir(log->path);
	return 0;
fail:
	dl_why(why, why_len, log->path, "cannot write the new log (%s)", strerror(-err));
	unlink(tmp);
	close(fd);
	free(tmp);
	return err;
}

int colo_dirty_log_open(const char *path, const struct colo_dirty_log_geometry *g,
			const uint8_t *pair, struct colo_dirty_log **out, char *why, size_t why_len)
{
	struct colo_dirty_log *log;
	int err;

	*out = NULL;
	if (!path || !*path || !g->disk_size || !g->block_size ||
	    (g->extent_size && g->extent_size % g->block_size)) {
		dl_why(why, why_len, path ? path : "", "bad geometry");
		return -EINVAL;
	}
	log = dl_alloc(path, g);
	if (!log) {
		dl_why(why, why_len, path, "out of memory");
		return -ENOMEM;
	}
	for (int tries = 0;; tries++) {
		log->fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
		if (log->fd >= 0 || errno != ENOENT || tries == 2)
			break;
		err = dl_create(log, pair, why, why_len);
		if (!err)
			break;
		if (err != -EEXIST)
			goto fail;
	}
	if (log->fd < 0) {
		err = -errno;
		dl_why(why, why_len, path, "cannot open (%s)", strerror(errno));
		goto fail;
	}
	if (flock(log->fd, LOCK_EX | LOCK_NB)) {
		err = errno == EWOULDBLOCK ? -EAGAIN : -errno;
		dl_why(why, why_len, path, "%s",
		       err == -EAGAIN ? "in use by another tapdisk" : strerror(-err));
		goto fail;
	}
	err = dl_load(log, pair, why, why_len);
	if (err)
		goto fail;
	*out = log;
	return 0;
fail:
	dl_free(log);
	return err;
}

uint32_t colo_dirty_log_extent_size(const struct colo_dirty_log *log)
{
	return log->extent_size;
}

uint64_t colo_dirty_log_extents(const struct colo_dirty_log *log)
{
	return log->extents;
}

const uint8_t *colo_dirty_log_pair(const struct colo_dirty_log *log)
{
	return log->pair;
}

const char *colo_dirty_log_path(const struct colo_dirty_log *log)
{
	return log->path;
}

uint64_t colo_dirty_log_epoch(const struct colo_dirty_log *log)
{
	return log->epoch;
}

void colo_dirty_log_set_epoch(struct colo_dirty_log *log, uint64_t epoch)
{
	if (log->epoch != epoch) {
		log->epoch = epoch;
		log->hdr_changed = true;
	}
}

uint64_t colo_dirty_log_flushes(const struct colo_dirty_log *log)
{
	return log->flushes;
}

uint64_t colo_dirty_log_count(const struct colo_dirty_log *log)
{
	uint64_t n = 0;

	for (size_t i = 0; i < (size_t)log->pages * dl_bytes_per_page(); i++)
		n += __builtin_popcount(log->bits[i]);
	return n;
}

bool colo_dirty_log_test(const struct colo_dirty_log *log, uint64_t e)
{
	return e < log->extents && (log->bits[e / 8] & (1u << (e % 8)));
}

bool colo_dirty_log_set(struct colo_dirty_log *log, uint64_t e)
{
	uint32_t page = (uint32_t)(e / DL_PAGE_BITS);

	if (e >= log->extents || colo_dirty_log_test(log, e))
		return false;
	log->bits[e / 8] |= 1u << (e % 8);
	if (log->changed[page] != 2)
		log->unsynced++;
	log->changed[page] = 2;
	return true;
}

bool colo_dirty_log_clear(struct colo_dirty_log *log, uint64_t e)
{
	uint32_t page = (uint32_t)(e / DL_PAGE_BITS);

	if (!colo_dirty_log_test(log, e))
		return false;
	log->bits[e / 8] &= ~(1u << (e % 8));
	if (!log->changed[page])
		log->changed[page] = 1;
	return true;
}

bool colo_dirty_log_unsynced(const struct colo_dirty_log *log)
{
	return log->unsynced > 0;
}

/*
 * Encodes every changed page and the header, each into its older slot with the next sequence
 * number, as the job; the image they hold becomes @handed.  Returns the number of slots.
 */
static uint32_t dl_prepare_job(struct colo_dirty_log *log)
{
	uint32_t n = 0;

	for (uint32_t p = 0; p < log->pages; p++) {
		int s = log->slot[p] ^ 1;

		if (!log->changed[p])
			continue;
		dl_encode_page(log, p, log->seq[p] + 1, log->jobbuf + (size_t)n * DL_PAGE);
		log->joboff[n++] = dl_page_off(p, s);
		log->seq[p]++;
		log->slot[p] = (uint8_t)s;
		log->changed[p] = 0;
	}
	if (log->hdr_changed) {
		dl_encode_header(log, log->hdr_seq + 1, log->jobbuf + (size_t)n * DL_PAGE);
		log->joboff[n++] = (off_t)(log->hdr_slot ^ 1) * DL_HDR_SLOT;
		log->hdr_seq++;
		log->hdr_slot ^= 1;
		log->hdr_changed = false;
	}
	memcpy(log->handed, log->bits, (size_t)log->pages * dl_bytes_per_page());
	log->unsynced = 0;
	log->njob = n;
	return n;
}

/* Writes the job's slots; @sync: then fdatasync.  0 or -errno. */
static int dl_run_job(struct colo_dirty_log *log, bool sync)
{
	int err = 0;

	for (uint32_t i = 0; !err && i < log->njob; i++)
		err = dl_pwrite(log->fd, log->jobbuf + (size_t)i * DL_PAGE,
				log->joboff[i] < DL_HDR_AREA ? DL_HDR_SLOT : DL_PAGE,
				log->joboff[i]);
	if (!err && sync && fdatasync(log->fd))
		err = -errno;
	return err;
}

/* The job ended with @err: what it wrote is durable, or the log is not trusted any more. */
static int dl_finish_job(struct colo_dirty_log *log, int err)
{
	log->busy = false;
	if (err) {
		log->failed = err;
		EPRINTF("dirty_log=%s: cannot write the log: %s", log->path, strerror(-err));
		return err;
	}
	memcpy(log->durable, log->handed, (size_t)log->pages * dl_bytes_per_page());
	log->synced_gen = log->handed_gen;
	log->flushes++;
	return 0;
}

static void *dl_thread(void *arg)
{
	struct colo_dirty_log *log = arg;
	uint64_t one = 1;
	int err;

	pthread_mutex_lock(&log->mu);
	for (;;) {
		while (!log->job_ready && !log->stop)
			pthread_cond_wait(&log->cv, &log->mu);
		if (log->stop)
			break;
		pthread_mutex_unlock(&log->mu);
		err = dl_run_job(log, true);
		pthread_mutex_lock(&log->mu);
		log->joberr = err;
		log->job_ready = false;
		log->job_done = true;
		pthread_cond_signal(&log->cv);
		/* The counter cannot overflow: one flush at a time. */
		(void)!write(log->efd, &one, sizeof(one));
	}
	pthread_mutex_unlock(&log->mu);
	return NULL;
}

bool colo_dirty_log_pending(const struct colo_dirty_log *log)
{
	for (uint32_t p = 0; p < log->pages; p++)
		if (log->changed[p])
			return true;
	return log->hdr_changed;
}

bool colo_dirty_log_busy(const struct colo_dirty_log *log)
{
	return log->busy;
}

int colo_dirty_log_fd(const struct colo_dirty_log *log)
{
	return log->efd;
}

uint64_t colo_dirty_log_synced_gen(const struct colo_dirty_log *log)
{
	return log->synced_gen;
}

uint64_t colo_dirty_log_need(const struct colo_dirty_log *log, uint64_t e)
{
	uint8_t bit = (uint8_t)(1u << (e % 8));

	if (e >= log->extents)
		return 0;
	/*
	 * A flush in flight replaces the durable image with the handed one: a bit it clears
	 * (a lazy clear handed before the extent was dirtied again) is gone from the disk once
	 * it ends, so only the next flush makes it durable again.
	 */
	if (log->busy) {
		if (!(log->handed[e / 8] & bit))
			return log->handed_gen + 1;
		return (log->durable[e / 8] & bit) ? 0 : log->handed_gen;
	}
	return (log->durable[e / 8] & bit) ? 0 : log->handed_gen + 1;
}

int colo_dirty_log_flush_start(struct colo_dirty_log *log)
{
	if (log->failed)
		return log->failed;
	if (log->busy || !colo_dirty_log_pending(log))
		return 0;
	if (!log->thr_started) {
		int rc = pthread_create(&log->thr, NULL, dl_thread, log);

		if (rc) {
			EPRINTF("dirty_log=%s: no flush thread: %s", log->path, strerror(rc));
			return -rc;
		}
		log->thr_started = true;
	}
	dl_prepare_job(log);
	log->handed_gen++;
	log->busy = true;
	pthread_mutex_lock(&log->mu);
	log->job_done = false;
	log->job_ready = true;
	pthread_cond_signal(&log->cv);
	pthread_mutex_unlock(&log->mu);
	return 0;
}

/* Waits (blocking) for the flush in flight, if any, and takes its result. */
static int dl_wait(struct colo_dirty_log *log)
{
	uint64_t v;
	int err;

	if (!log->busy)
		return 0;
	pthread_mutex_lock(&log->mu);
	while (!log->job_done)
		pthread_cond_wait(&log->cv, &log->mu);
	err = log->joberr;
	log->job_done = false;
	pthread_mutex_unlock(&log->mu);
	/* Drained here (the loop's event then finds nothing: EAGAIN). */
	(void)!read(log->efd, &v, sizeof(v));
	return dl_finish_job(log, err);
}

int colo_dirty_log_flush_reap(struct colo_dirty_log *log)
{
	uint64_t v;
	bool done;
	int err;

	/* Empty if dl_wait() took the result already: the job state below decides. */
	(void)!read(log->efd, &v, sizeof(v));
	pthread_mutex_lock(&log->mu);
	done = log->job_done;
	err = log->joberr;
	log->job_done = false;
	pthread_mutex_unlock(&log->mu);
	if (!log->busy || !done)
		return -EAGAIN;
	return dl_finish_job(log, err);
}

int colo_dirty_log_flush(struct colo_dirty_log *log)
{
	int err = dl_wait(log);

	if (err)
		return err;
	if (log->failed)
		return log->failed;
	dl_prepare_job(log);
	log->handed_gen++;
	log->busy = true;
	return dl_finish_job(log, dl_run_job(log, true));
}

void colo_dirty_log_close(struct colo_dirty_log *log)
{
	if (!log)
		return;
	/*
	 * Clears only (sets were synced before their writes): losing them costs a resync.  One
	 * unsynced write per slot pair at most: every flush before this one synced.
	 */
	if (!dl_wait(log) && !log->failed && colo_dirty_log_pending(log)) {
		dl_prepare_job(log);
		dl_run_job(log, false);
	}
	dl_free(log);
}

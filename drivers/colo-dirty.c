/*
 * The Primary's dirty map: which blocks may differ from a given checkpoint on the Secondary.
 *
 * One bitmap of blocks per epoch still open, labelled with its epoch: a write is marked in the
 * bitmap of the epoch it completed in (the epoch its WRITE frame carries).  Marking a block in
 * a later epoch than its own is always safe (it stays dirty longer), never an earlier one; so
 * when memory is short or too many epochs are open, bitmaps are merged into the later one.
 * The blocks a log or an earlier run left are "carried": dirty until a sync copies them.
 *
 * With a log attached, a write is counted in flight per log extent from before it is issued
 * until it ends, and its extents are set in the log first; an extent is cleared from the log
 * only when no open bitmap, no carried block and no write in flight touches it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "colo-dirty.h"

#define COLO_DIRTY_MAX_MAPS COLO_DIRTY_MAPS_MAX /* open epochs; more are merged (see above) */

struct colo_dirty_map {
	uint64_t epoch;
	uint64_t *bits;
};

struct colo_dirty {
	uint64_t disk_size;
	uint64_t nblocks;
	uint32_t block_size;
	size_t words;
	struct colo_dirty_map maps[COLO_DIRTY_MAX_MAPS]; /* ascending epochs */
	int n;
	uint64_t *spare; /* a zeroed bitmap kept from a commit, for the next epoch */
	uint64_t *carried;
	struct colo_dirty_log *log;
	uint32_t ext_size;   /* the log's extent: max(COLO_DIRTY_LOG_EXTENT, block_size) */
	uint64_t ext_blocks; /* blocks per extent */
	uint64_t extents;
	uint32_t *inflight; /* per extent, with or without a log: one attached later needs it */
};

int colo_dirty_create(uint64_t disk_size, uint32_t block_size, struct colo_dirty **out)
{
	struct colo_dirty *d = calloc(1, sizeof(*d));

	*out = NULL;
	if (!d)
		return -ENOMEM;
	d->block_size = block_size;
	d->disk_size = disk_size;
	d->nblocks = (disk_size + block_size - 1) / block_size;
	d->words = (d->nblocks + 63) / 64;
	d->ext_size = block_size > COLO_DIRTY_LOG_EXTENT ? block_size : COLO_DIRTY_LOG_EXTENT;
	d->ext_blocks = d->ext_size / block_size;
	d->extents = (disk_size + d->ext_size - 1) / d->ext_size;
	d->spare = calloc(d->words + 1, sizeof(uint64_t));
	d->inflight = calloc(d->extents + 1, sizeof(*d->inflight));
	if (!d->spare || !d->inflight) {
		free(d->spare);
		free(d->inflight);
		free(d);
		return -ENOMEM;
	}
	*out = d;
	return 0;
}

void colo_dirty_destroy(struct colo_dirty *d)
{
	if (!d)
		return;
	for (int i = 0; i < d->n; i++)
		free(d->maps[i].bits);
	free(d->spare);
	free(d->carried);
	free(d->inflight);
	colo_dirty_log_close(d->log);
	free(d);
}

uint64_t colo_dirty_nblocks(const struct colo_dirty *d)
{
	return d->nblocks;
}

struct colo_dirty_log *colo_dirty_log(const struct colo_dirty *d)
{
	return d ? d->log : NULL;
}

static void bits_set(uint64_t *bits, uint64_t first, uint64_t last)
{
	for (uint64_t b = first; b <= last; b++)
		bits[b / 64] |= 1ULL << (b % 64);
}

static bool bits_any(const uint64_t *bits, uint64_t first, uint64_t last)
{
	for (uint64_t b = first; b <= last; b++) {
		if (!(b % 64) && b + 63 <= last) {
			if (bits[b / 64])
				return true;
			b += 63;
		} else if (bits[b / 64] & (1ULL << (b % 64))) {
			return true;
		}
	}
	return false;
}

static void bits_or(uint64_t *dst, const uint64_t *src, size_t words)
{
	for (size_t i = 0; i < words; i++)
		dst[i] |= src[i];
}

/* ORs the oldest map into the next one: its blocks now count as that later epoch's. */
static void dirty_merge_oldest(struct colo_dirty *d)
{
	bits_or(d->maps[1].bits, d->maps[0].bits, d->words);
	free(d->maps[0].bits);
	memmove(&d->maps[0], &d->maps[1], (d->n - 1) * sizeof(d->maps[0]));
	d->n--;
}

void colo_dirty_relabel(struct colo_dirty *d, uint64_t from, uint64_t to)
{
	if (!d)
		return;
	for (int i = 0; i < d->n; i++) {
		if (d->maps[i].epoch != from)
			continue;
		if (i + 1 == d->n || d->maps[i + 1].epoch > to) {
			d->maps[i].epoch = to; /* the order stays ascending */
		} else {
			/* A later map exists: its epoch is later than @from, which is safe. */
			bits_or(d->maps[i + 1].bits, d->maps[i].bits, d->words);
			free(d->maps[i].bits);
			memmove(&d->maps[i], &d->maps[i + 1], (d->n - i - 1) * sizeof(d->maps[0]));
			d->n--;
		}
		return;
	}
}

/* The bitmap to mark a write of @epoch in: that epoch's, or a later one's. */
static uint64_t *dirty_map_for(struct colo_dirty *d, uint64_t epoch)
{
	uint64_t *bits;

	for (int i = 0; i < d->n; i++)
		if (d->maps[i].epoch >= epoch)
			return d->maps[i].bits;
	if (d->n == COLO_DIRTY_MAX_MAPS)
		dirty_merge_oldest(d);
	bits = d->spare;
	d->spare = NULL;
	if (!bits)
		bits = calloc(d->words + 1, sizeof(uint64_t));
	if (!bits) {
		/* No memory: relabel the newest map to this epoch (safe: later, see above). */
		if (!d->n)
			return d->carried; /* NULL only if nothing could ever be allocated */
		d->maps[d->n - 1].epoch = epoch;
		return d->maps[d->n - 1].bits;
	}
	d->maps[d->n].epoch = epoch;
	d->maps[d->n].bits = bits;
	return d->maps[d->n++].bits;
}

void colo_dirty_mark(struct colo_dirty *d, uint64_t offset, uint64_t len, uint64_t epoch)
{
	uint64_t first = offset / d->block_size, last;
	uint64_t *bits;

	if (!len || first >= d->nblocks)
		return;
	last = (offset + len - 1) / d->block_size;
	if (last >= d->nblocks)
		last = d->nblocks - 1;
	bits = dirty_map_for(d, epoch);
	if (bits)
		bits_set(bits, first, last);
}

/* The extents [first, last] a byte range touches; false if none. */
static bool dirty_extents(const struct colo_dirty *d, uint64_t offset, uint64_t len,
			  uint64_t *first, uint64_t *last)
{
	if (!len)
		return false;
	*first = offset / d->ext_size;
	*last = (offset + len - 1) / d->ext_size;
	if (*last >= d->extents)
		*last = d->extents - 1;
	return *first <= *last;
}

uint64_t colo_dirty_begin(struct colo_dirty *d, uint64_t offset, uint64_t len)
{
	uint64_t first, last, need = 0, n;

	if (!dirty_extents(d, offset, len, &first, &last))
		return 0;
	for (uint64_t e = first; e <= last; e++) {
		d->inflight[e]++;
		if (!d->log)
			continue;
		colo_dirty_log_set(d->log, e);
		n = colo_dirty_log_need(d->log, e);
		if (n > need)
			need = n;
	}
	return need;
}

void colo_dirty_end(struct colo_dirty *d, uint64_t offset, uint64_t len, uint64_t epoch)
{
	uint64_t first, last;

	colo_dirty_mark(d, offset, len, epoch);
	if (!dirty_extents(d, offset, len, &first, &last))
		return;
	for (uint64_t e = first; e <= last; e++)
		if (d->inflight[e])
			d->inflight[e]--;
}

/* Is any block of log extent @e dirty in the map? */
static bool dirty_extent_in_map(const struct colo_dirty *d, uint64_t e)
{
	uint64_t first = e * d->ext_blocks, last = first + d->ext_blocks - 1;

	if (first >= d->nblocks)
		return false;
	if (last >= d->nblocks)
		last = d->nblocks - 1;
	if (d->carried && bits_any(d->carried, first, last))
		return true;
	for (int i = 0; i < d->n; i++)
		if (bits_any(d->maps[i].bits, first, last))
			return true;
	return false;
}

/* Clears (lazily: in the log's image, written with its next flush) what became clean. */
static void dirty_clear_log(struct colo_dirty *d)
{
	uint64_t n;

	if (!d->log)
		return;
	n = colo_dirty_log_extents(d->log);
	for (uint64_t e = 0; e < n; e++)
		if (colo_dirty_log_test(d->log, e) && !d->inflight[e] && !dirty_extent_in_map(d, e))
			colo_dirty_log_clear(d->log, e);
}

void colo_dirty_commit(struct colo_dirty *d, uint64_t epoch)
{
	int drop = 0;

	while (drop < d->n && d->maps[drop].epoch <= epoch)
		drop++;
	for (int i = 0; i < drop; i++) {
		if (!d->spare) {
			memset(d->maps[i].bits, 0, (d->words + 1) * sizeof(uint64_t));
			d->spare = d->maps[i].bits;
		} else {
			free(d->maps[i].bits);
		}
	}
	memmove(&d->maps[0], &d->maps[drop], (d->n - drop) * sizeof(d->maps[0]));
	d->n -= drop;
	if (d->log && epoch > colo_dirty_log_epoch(d->log))
		colo_dirty_log_set_epoch(d->log, epoch);
	dirty_clear_log(d);
}

void colo_dirty_forget_carried(struct colo_dirty *d)
{
	if (!d)
		return;
	free(d->carried);
	d->carried = NULL;
	dirty_clear_log(d);
}

int colo_dirty_attach_log(struct colo_dirty *d, struct colo_dirty_log *log)
{
	if (colo_dirty_log_extent_size(log) != d->ext_size ||
	    colo_dirty_log_extents(log) != d->extents) {
		colo_dirty_log_close(log);
		return -EINVAL;
	}
	if (!d->carried)
		d->carried = calloc(d->words + 1, sizeof(uint64_t));
	if (!d->carried) {
		colo_dirty_log_close(log);
		return -ENOMEM;
	}
	colo_dirty_log_close(d->log);
	d->log = log;
	for (uint64_t e = 0; e < d->extents; e++) {
		uint64_t first = e * d->ext_blocks, last = first + d->ext_blocks - 1;

		if (last >= d->nblocks)
			last = d->nblocks - 1;
		if (colo_dirty_log_test(log, e))
			bits_set(d->carried, first, last);
		else if (d->inflight[e] || dirty_extent_in_map(d, e))
			colo_dirty_log_set(log,
					   e); /* dirty before the log came: the caller flushes */
	}
	return 0;
}

void colo_dirty_close_log(struct colo_dirty *d)
{
	colo_dirty_log_close(d->log);
	d->log = NULL;
}

/* The union of what may differ from checkpoint @since, a word at a time. */
static uint64_t dirty_word(const struct colo_dirty *d, uint64_t since, size_t i)
{
	uint64_t w = d->carried ? d->carried[i] : 0;

	for (int m = 0; m < d->n; m++)
		if (d->maps[m].epoch > since)
			w |= d->maps[m].bits[i];
	return w;
}

uint64_t colo_dirty_count(const struct colo_dirty *d, uint64_t since)
{
	uint64_t n = 0;

	for (size_t i = 0; i < d->words; i++)
		n += __builtin_popcountll(dirty_word(d, since, i));
	return n;
}

uint64_t colo_dirty_bytes(const struct colo_dirty *d, uint64_t since)
{
	uint64_t n = colo_dirty_count(d, since) * d->block_size, last = d->nblocks - 1;

	if (n && d->disk_size % d->block_size &&
	    ((dirty_word(d, since, last / 64) >> (last % 64)) & 1))
		n -= d->block_size - d->disk_size % d->block_size;
	return n;
}

void colo_dirty_since(const struct colo_dirty *d, uint64_t since, uint64_t *bitmap, size_t words)
{
	for (size_t i = 0; i < words; i++)
		bitmap[i] = i < d->words ? dirty_word(d, since, i) : 0;
}

int colo_dirty_maps(const struct colo_dirty *d, uint64_t *epochs)
{
	for (int i = 0; i < d->n; i++)
		epochs[i] = d->maps[i].epoch;
	return d->n;
}

void colo_dirty_extents(const struct colo_dirty *d, int i, uint32_t extent_size, uint64_t *ext)
{
	const uint64_t *bits = i < 0 ? d->carried : d->maps[i].bits;
	uint64_t per = extent_size / d->block_size ? extent_size / d->block_size : 1;

	if (!bits)
		return;
	for (uint64_t b = 0; b < d->nblocks; b++) {
		if (!(b % 64) && !bits[b / 64]) {
			b += 63;
			continue;
		}
		if (bits[b / 64] >> (b % 64) & 1)
			ext[b / per / 64] |= 1ULL << (b / per % 64);
	}
}

int colo_dirty_carry_all(struct colo_dirty *d)
{
	if (!d->n)
		return 0;
	if (!d->carried)
		d->carried = calloc(d->words + 1, sizeof(uint64_t));
	if (!d->carried)
		return -ENOMEM;
	for (int i = 0; i < d->n; i++) {
		bits_or(d->carried, d->maps[i].bits, d->words);
		free(d->maps[i].bits);
	}
	d->n = 0;
	return 0;
}

/*
 * The Primary's dirty map and its persistent log.
 *
 * colo-dirty.c      the in-memory map: one bitmap of blocks per epoch still open (exact, at
 *                   the replication block size), the blocks carried over from before this
 *                   run (a log read at start), and the writes in flight per log extent
 * colo-dirty-log.c  the on-disk log (docs/colo-dirty-log.md): one bit per coarse extent,
 *                   set and synced before a write to the extent is issued, cleared lazily
 *
 * The map answers "which blocks may differ from checkpoint N on the Secondary": the union of
 * the bitmaps of epochs after N and of the carried-over blocks.  A checkpoint N that both
 * sides completed drops the bitmaps of epochs up to N.  The log records a superset of that
 * union at extent granularity, so that a Primary restarted after a crash still knows it.
 *
 * Single-threaded (tapdisk's event loop), no locks.  Errors: -errno, with the reason in
 * @why when the function takes one.
 */
#ifndef _COLO_DIRTY_H_
#define _COLO_DIRTY_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define COLO_DIRTY_LOG_EXTENT (1u << 20) /* the log's extent unless the block is larger */
#define COLO_DIRTY_PAIR_LEN 16

/* ---- colo-dirty-log.c ---- */

struct colo_dirty_log;

struct colo_dirty_log_geometry {
	uint64_t disk_size;   /* bytes */
	uint32_t block_size;  /* the replication block size */
	uint32_t extent_size; /* a multiple of block_size; 0: max(1 MiB, block_size) */
};

/*
 * Opens the log at @path, or creates it (mode 0600, written whole under a temporary name and
 * renamed into place, so that a log is never seen half made).  An existing log must be a
 * regular file of ours with mode 0600, made for the same geometry, and when @pair is given
 * for that pair; anything else is refused before one byte of it is written.  It is locked
 * against other tapdisks.  A new log gets @pair, or a random pair id when @pair is NULL.
 */
int colo_dirty_log_open(const char *path, const struct colo_dirty_log_geometry *g,
			const uint8_t *pair, struct colo_dirty_log **out, char *why,
			size_t why_len);
/* Writes what is pending (without a sync: clears may be lost, never needed) and closes. */
void colo_dirty_log_close(struct colo_dirty_log *log);

uint32_t colo_dirty_log_extent_size(const struct colo_dirty_log *log);
uint64_t colo_dirty_log_extents(const struct colo_dirty_log *log);
const uint8_t *colo_dirty_log_pair(const struct colo_dirty_log *log);
/* The last checkpoint the log knows both sides completed; 0: none. */
uint64_t colo_dirty_log_epoch(const struct colo_dirty_log *log);
void colo_dirty_log_set_epoch(struct colo_dirty_log *log, uint64_t epoch);

bool colo_dirty_log_test(const struct colo_dirty_log *log, uint64_t extent);
/* Changes the in-memory image; true if the bit changed (the page then needs a flush). */
bool colo_dirty_log_set(struct colo_dirty_log *log, uint64_t extent);
bool colo_dirty_log_clear(struct colo_dirty_log *log, uint64_t extent);
/* Bits set that no flush took yet. */
bool colo_dirty_log_unsynced(const struct colo_dirty_log *log);

/*
 * Flushing: every changed page and the header are written to their older slots, then
 * fdatasync.  A flush runs in a thread of the log's own, one at a time, so that the event
 * loop goes on meanwhile; flushes are numbered 1, 2, ... (generations).
 *
 * need(): 0 if extent @e's bit is on disk, else the generation whose end makes it durable
 * (the flush in flight, or the next one).  flush_start(): starts the next flush unless one
 * is in flight or nothing changed; 0 or the error that made the log unusable.  When
 * colo_dirty_log_fd() becomes readable, flush_reap() takes the result: 0 (synced_gen() is
 * now that flush's), -EAGAIN (not finished), or -errno (logged; the log is unusable from
 * then on: every later start fails with it).  flush() does one whole flush, blocking.
 */
uint64_t colo_dirty_log_need(const struct colo_dirty_log *log, uint64_t e);
bool colo_dirty_log_pending(const struct colo_dirty_log *log);
bool colo_dirty_log_busy(const struct colo_dirty_log *log);
int colo_dirty_log_flush_start(struct colo_dirty_log *log);
int colo_dirty_log_fd(const struct colo_dirty_log *log);
int colo_dirty_log_flush_reap(struct colo_dirty_log *log);
uint64_t colo_dirty_log_synced_gen(const struct colo_dirty_log *log);
int colo_dirty_log_flush(struct colo_dirty_log *log);
uint64_t colo_dirty_log_flushes(const struct colo_dirty_log *log);
/* Extents set in the image. */
uint64_t colo_dirty_log_count(const struct colo_dirty_log *log);
const char *colo_dirty_log_path(const struct colo_dirty_log *log);

/* ---- colo-dirty.c ---- */

struct colo_dirty;

int colo_dirty_create(uint64_t disk_size, uint32_t block_size, struct colo_dirty **out);
void colo_dirty_destroy(struct colo_dirty *d);

/*
 * Takes over @log (closed by destroy, also on failure): the extents it records are added to
 * the carried-over blocks (every block of each), extents dirty in the map are set in it (the
 * caller flushes, and so are extents with a write in flight), and from now on begin() marks
 * it.  0, -ENOMEM, or -EINVAL if its extent size is not max(COLO_DIRTY_LOG_EXTENT, block).
 */
int colo_dirty_attach_log(struct colo_dirty *d, struct colo_dirty_log *log);
/* The attached log, or NULL (also for a NULL map). */
struct colo_dirty_log *colo_dirty_log(const struct colo_dirty *d);
/* Closes the log (its bits stay as they are on disk); the map goes on without one. */
void colo_dirty_close_log(struct colo_dirty *d);

/*
 * A write of [@offset, @offset + @len) is about to be issued to the disk: counts it in flight
 * until end() and sets its extents in the log.  Returns 0 if it may be issued now, else the
 * log flush generation it must wait for (colo_dirty_log_synced_gen() >= it).
 */
uint64_t colo_dirty_begin(struct colo_dirty *d, uint64_t offset, uint64_t len);
/* The write ended (done or failed: a failed write may have changed the disk too). */
void colo_dirty_end(struct colo_dirty *d, uint64_t offset, uint64_t len, uint64_t epoch);

/* Marks blocks dirty in @epoch without a write in flight (no log involved). */
void colo_dirty_mark(struct colo_dirty *d, uint64_t offset, uint64_t len, uint64_t epoch);

/*
 * Checkpoint @epoch is complete on both sides: the blocks of epochs up to it are clean, and
 * log extents with no dirty block left and no write in flight are cleared (lazily).
 */
void colo_dirty_commit(struct colo_dirty *d, uint64_t epoch);
/* The blocks marked in epoch @from count as epoch @to (> @from, or a later open one). */
void colo_dirty_relabel(struct colo_dirty *d, uint64_t from, uint64_t to);
/* The carried-over blocks are on the Secondary (a sync or resync ended). */
void colo_dirty_forget_carried(struct colo_dirty *d);

/* Blocks that may differ from checkpoint @since (0: every dirty block). */
uint64_t colo_dirty_count(const struct colo_dirty *d, uint64_t since);
/* The same set as a bitmap of blocks, bit b of word b / 64; @words = ceil(blocks / 64). */
void colo_dirty_since(const struct colo_dirty *d, uint64_t since, uint64_t *bitmap, size_t words);
uint64_t colo_dirty_nblocks(const struct colo_dirty *d);

/*
 * Re-protect (docs/colo-protocol.md, "Re-protect"): the sets one by one.  maps() writes the
 * epochs of the open bitmaps, ascending, to @epochs (room for COLO_DIRTY_MAPS_MAX) and
 * returns how many.  extents() ORs into @ext (bit e of word e / 64) every extent of
 * @extent_size bytes with a block in bitmap @i (0 <= i < maps()), or, with @i -1, in the
 * carried blocks.
 */
#define COLO_DIRTY_MAPS_MAX 4
int colo_dirty_maps(const struct colo_dirty *d, uint64_t *epochs);
void colo_dirty_extents(const struct colo_dirty *d, int i, uint32_t extent_size, uint64_t *ext);
/* Every open bitmap's blocks become carried (dirty until a sync copies them, whatever epoch). */
int colo_dirty_carry_all(struct colo_dirty *d);
/* The bytes of the disk in the blocks colo_dirty_count() counts (the last block may be short). */
uint64_t colo_dirty_bytes(const struct colo_dirty *d, uint64_t since);

#endif

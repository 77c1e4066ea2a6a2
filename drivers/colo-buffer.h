/*
 * The COLO Secondary's disk buffer: one block of data per block number, held in RAM up to a
 * limit and then in a spill file, emptied all at once at each checkpoint. Single-threaded (the
 * tapdisk event loop), no locking.
 */
#ifndef _COLO_BUFFER_H_
#define _COLO_BUFFER_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct colo_buffer;

struct colo_buffer_config {
	uint32_t block_size;	/* power of two, 512 .. 1 MiB */
	uint64_t ram_limit;	/* bytes of block data kept in RAM */
	const char *spill_path; /* NULL or "": no spill file; beyond ram_limit puts fail -ENOSPC */
	uint64_t spill_limit;	/* bytes of block data in the spill file; 0: only the disk's */
	char *why;		/* optional: where create puts the reason it failed */
	size_t why_len;
};

/*
 * Returns 0 or -errno.  The reason goes to cfg->why when given, for the caller to log with
 * its own context, and is logged here otherwise.  A spill path that names a directory gets a
 * nameless file in it (O_TMPFILE); otherwise the file is created, locked against every other
 * tapdisk (-EAGAIN while another holds it), truncated to mode 0600, and unlinked by
 * colo_buffer_destroy().
 */
int colo_buffer_create(const struct colo_buffer_config *cfg, struct colo_buffer **out);
void colo_buffer_destroy(struct colo_buffer *b);

bool colo_buffer_contains(const struct colo_buffer *b, uint64_t block);

/* Copies the block into @dst (block_size bytes): 1 if present, 0 if absent, -errno on spill I/O. */
int colo_buffer_get(struct colo_buffer *b, uint64_t block, void *dst);

/*
 * Stores a whole block. Without @overwrite an existing block is kept and 0 returned; otherwise
 * returns 1. -ENOSPC when neither RAM nor the spill file has room, -ENOMEM, -EINVAL for
 * block == UINT64_MAX, -errno when the spill write fails: in all these cases a new block is not
 * added. If the in-place rewrite of an existing spilled block fails, that block stays present
 * with undefined contents (a partial write may have reached the file).
 */
int colo_buffer_put(struct colo_buffer *b, uint64_t block, const void *src, bool overwrite);

/*
 * Overwrites @len bytes at @off inside a block already present: 0, -ENOENT if absent, -EINVAL if
 * off + len > block_size, -errno on spill I/O (the block's contents are then undefined).
 */
int colo_buffer_update(struct colo_buffer *b, uint64_t block, uint32_t off, const void *src,
		       uint32_t len);

/*
 * Empties the buffer (the checkpoint) without touching any block's data. The RAM chunks stay
 * mapped until colo_buffer_trim; the spill file keeps its size for the next epoch.
 */
void colo_buffer_drop(struct colo_buffer *b);
/*
 * Unmaps up to @max_chunks RAM chunks that a drop left unused beyond the 64 MiB kept for
 * reuse; returns how many remain to unmap.  Separate from the drop, so that a checkpoint does
 * not pay for unmapping (about 65 ms per GiB) while the VM waits.
 */
size_t colo_buffer_trim(struct colo_buffer *b, size_t max_chunks);

/*
 * The present blocks in ascending order, for failover's write-back in disk order: a malloc'd
 * array that the caller frees; NULL and 0 when empty. Returns 0 or -ENOMEM.
 */
int colo_buffer_sorted(const struct colo_buffer *b, uint64_t **blocks, size_t *n);

/*
 * The block's data when it is held in RAM, NULL if absent or spilled. Valid until the next drop
 * or destroy. Aligned to min(block_size, 4096), and blocks put one after another are usually
 * adjacent, so failover can write runs with O_DIRECT straight from here.
 */
const void *colo_buffer_ram_ptr(const struct colo_buffer *b, uint64_t block);

uint32_t colo_buffer_block_size(const struct colo_buffer *b);
uint64_t colo_buffer_blocks(const struct colo_buffer *b); /* blocks present */
uint64_t colo_buffer_bytes(const struct colo_buffer *b);  /* blocks * block_size */
uint64_t colo_buffer_spilled_bytes(const struct colo_buffer *b);
/* RAM mapped for block data, used or kept for reuse: at most 64 MiB right after a drop. */
uint64_t colo_buffer_ram_bytes(const struct colo_buffer *b);
/* Memory used by the index and bookkeeping, block data excluded. */
uint64_t colo_buffer_index_bytes(const struct colo_buffer *b);

#endif

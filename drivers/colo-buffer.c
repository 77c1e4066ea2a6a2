/*
 * The COLO Secondary's disk buffer.
 *
 * Why it is built this way:
 * - It may hold hundreds of thousands of blocks per checkpoint, so the per-block overhead must
 *   stay small next to a 4 KiB block: the index is an open-addressing hash table with linear
 *   probing in two parallel arrays (8-byte key + 4-byte slot, 12 bytes an entry). It grows by
 *   1.5x when the load passes 0.75, so the load stays between 0.5 and 0.75 and the index costs
 *   at most 24 bytes a block, plus a little bookkeeping. The position in the table comes from
 *   the high bits of the hash multiplied by the capacity, which needs no power-of-two size.
 * - Keys are block + 1, so that 0 marks an empty entry without stealing a block number that
 *   could be valid; only UINT64_MAX cannot be stored.
 * - Blocks are only ever removed all together, at the checkpoint, so data slots are handed out
 *   by a bump counter and never freed one by one: first RAM slots, carved from 2 MiB chunks
 *   (blocks put one after another end up adjacent, which failover's O_DIRECT write-back likes),
 *   then spill slots at slot * block_size in the spill file.
 * - RAM chunks are mmap'd, not malloc'd: malloc serves big blocks from the heap once its mmap
 *   threshold has risen (or been set, as tapdisk does), and free() then keeps them, so a
 *   checkpoint would never give the memory back. mmap also gives page-aligned memory whose pages
 *   cost nothing until a block is written there.
 * - Drop must be cheap because it runs at every checkpoint while the Secondary VM is paused: it
 *   resets the index and the slot counters, and never looks at the data. It gives a big index
 *   back to malloc (a fresh small table costs less than clearing a big one), keeps up to 64 MiB
 *   of RAM chunks for the next checkpoint and unmaps the rest. Unmapping is the one cost that
 *   grows with the data, about 65 ms a GiB of 4 KiB pages: the price of giving memory back.
 * - Drop leaves the spill file alone: truncating 768 MiB of it, with its dirty page cache, took
 *   most of a checkpoint. The next epoch hands out spill slots from 0 again and writes each
 *   before it can be read, so stale data is never seen and the file only grows to the largest
 *   epoch's spill. It is removed at destroy.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "colo-buffer.h"
#include "tapdisk-log.h"

#define COLO_BUFFER_MIN_BLOCK 512u
#define COLO_BUFFER_MAX_BLOCK (1u << 20)
/* Keeps slot numbers in 32 bits and the table capacity below 2^32: 4 TiB of 4 KiB blocks. */
#define COLO_BUFFER_MAX_BLOCKS (1u << 30)
/* Below this the table's fixed cost dominates; it is only 12 KiB. */
#define COLO_BUFFER_INITIAL_CAP 1024u
#define COLO_BUFFER_CHUNK_SHIFT 21 /* 2 MiB RAM chunks */
#define COLO_BUFFER_KEEP_CHUNKS ((64u << 20) >> COLO_BUFFER_CHUNK_SHIFT)

struct colo_buffer {
	uint32_t block_size;
	unsigned int shift; /* log2(block_size) */

	/* The index: keys[i] is block + 1 (0 = empty), slots[i] where its data is. */
	uint64_t *keys;
	uint32_t *slots;
	uint64_t cap;
	uint64_t count;

	/* Slots below ram_max are RAM slots; slot ram_max + s is spill slot s. */
	uint32_t ram_max;
	uint32_t ram_used;
	unsigned int chunk_shift; /* log2 of slots per chunk */
	void **chunks;		  /* chunks[0 .. nr_chunks) are allocated */
	size_t nr_chunks;
	size_t chunks_cap;

	int spill_fd; /* -1: no spill file */
	char *spill_path;
	bool spill_unlink; /* a named file of ours, not one in a directory */
	uint32_t spill_max;
	uint32_t spill_used;
};

/* splitmix64's finalizer: block numbers are often sequential or strided, the table wants noise. */
static uint64_t index_hash(uint64_t key)
{
	key ^= key >> 30;
	key *= 0xbf58476d1ce4e5b9ULL;
	key ^= key >> 27;
	key *= 0x94d049bb133111ebULL;
	key ^= key >> 31;
	return key;
}

/* Scales the hash's high 32 bits to [0, cap): cap < 2^32, so the product fits in 64 bits. */
static uint64_t index_home(uint64_t key, uint64_t cap)
{
	return ((index_hash(key) >> 32) * cap) >> 32;
}

/* The entry holding @key, or the empty entry where it would go: the table is never full. */
static uint64_t index_find(const uint64_t *keys, uint64_t cap, uint64_t key)
{
	uint64_t i = index_home(key, cap);

	while (keys[i] && keys[i] != key)
		if (++i == cap)
			i = 0;
	return i;
}

static int index_alloc(uint64_t cap, uint64_t **keys, uint32_t **slots)
{
	*keys = calloc(cap, sizeof(**keys));
	*slots = malloc(cap * sizeof(**slots));
	if (!*keys || !*slots) {
		free(*keys);
		free(*slots);
		return -ENOMEM;
	}
	return 0;
}

/* Looks a block up; false for UINT64_MAX, which would alias the empty key. */
static bool index_lookup(const struct colo_buffer *b, uint64_t block, uint32_t *slot)
{
	uint64_t i;

	if (block == UINT64_MAX)
		return false;
	i = index_find(b->keys, b->cap, block + 1);
	if (!b->keys[i])
		return false;
	*slot = b->slots[i];
	return true;
}

static int index_grow(struct colo_buffer *b)
{
	uint64_t cap = b->cap + b->cap / 2, *keys;
	uint32_t *slots;
	int err;

	err = index_alloc(cap, &keys, &slots);
	if (err) {
		EPRINTF("cannot grow the index to %llu entries", (unsigned long long)cap);
		return err;
	}
	for (uint64_t i = 0; i < b->cap; i++) {
		uint64_t j;

		if (!b->keys[i])
			continue;
		j = index_find(keys, cap, b->keys[i]);
		keys[j] = b->keys[i];
		slots[j] = b->slots[i];
	}
	free(b->keys);
	free(b->slots);
	b->keys = keys;
	b->slots = slots;
	b->cap = cap;
	return 0;
}

static size_t chunk_bytes(const struct colo_buffer *b, size_t chunk)
{
	uint32_t per_chunk = 1u << b->chunk_shift;
	uint32_t first = (uint32_t)chunk << b->chunk_shift;
	uint32_t n = b->ram_max - first < per_chunk ? b->ram_max - first : per_chunk;

	/* The last chunk holds only what ram_limit allows. */
	return (size_t)n << b->shift;
}

static void *ram_slot_ptr(const struct colo_buffer *b, uint32_t slot)
{
	uint32_t mask = (1u << b->chunk_shift) - 1;

	return (char *)b->chunks[slot >> b->chunk_shift] + ((size_t)(slot & mask) << b->shift);
}

/* Unmaps the chunks from @keep on: a failure only costs memory, nobody uses them any more. */
static void ram_chunks_release(struct colo_buffer *b, size_t keep)
{
	while (b->nr_chunks > keep) {
		size_t chunk = --b->nr_chunks;

		if (munmap(b->chunks[chunk], chunk_bytes(b, chunk)))
			EPRINTF("cannot unmap a RAM chunk of %zu bytes: %s", chunk_bytes(b, chunk),
				strerror(errno));
	}
}

/* Makes sure the chunk that RAM slot @slot falls in exists: slots are handed out in order. */
static int ram_chunk_ensure(struct colo_buffer *b, uint32_t slot)
{
	size_t chunk = slot >> b->chunk_shift;
	void *p;

	if (chunk < b->nr_chunks)
		return 0;
	if (b->nr_chunks == b->chunks_cap) {
		size_t cap = b->chunks_cap ? b->chunks_cap * 2 : 16;
		void **chunks = realloc(b->chunks, cap * sizeof(*chunks));

		if (!chunks) {
			EPRINTF("cannot grow the chunk table to %zu entries", cap);
			return -ENOMEM;
		}
		b->chunks = chunks;
		b->chunks_cap = cap;
	}
	p = mmap(NULL, chunk_bytes(b, chunk), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		 -1, 0);
	if (p == MAP_FAILED) {
		int err = -errno;

		EPRINTF("cannot map a RAM chunk of %zu bytes: %s", chunk_bytes(b, chunk),
			strerror(-err));
		return err;
	}
	b->chunks[b->nr_chunks++] = p;
	return 0;
}

static off_t spill_offset(const struct colo_buffer *b, uint32_t slot, uint32_t off)
{
	return (off_t)(((uint64_t)(slot - b->ram_max) << b->shift) + off);
}

/* All of @len bytes, or -errno logged once (a read of 0 bytes: the block is not there). */
static int spill_io(struct colo_buffer *b, bool write, void *buf, size_t len, off_t off)
{
	char *p = buf;

	while (len) {
		ssize_t n =
			write ? pwrite(b->spill_fd, p, len, off) : pread(b->spill_fd, p, len, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int err = n < 0 ? -errno : -EIO;

			EPRINTF("%s: %s of %zu bytes at %lld: %s", b->spill_path,
				write ? "write" : "read", len, (long long)off, strerror(-err));
			return err;
		}
		p += n;
		len -= n;
		off += n;
	}
	return 0;
}

static int spill_write(struct colo_buffer *b, const void *buf, size_t len, off_t off)
{
	return spill_io(b, true, (void *)buf, len, off);
}

static int spill_read(struct colo_buffer *b, void *buf, size_t len, off_t off)
{
	return spill_io(b, false, buf, len, off);
}

static int slot_write(struct colo_buffer *b, uint32_t slot, uint32_t off, const void *src,
		      uint32_t len)
{
	if (slot < b->ram_max) {
		memcpy((char *)ram_slot_ptr(b, slot) + off, src, len);
		return 0;
	}
	return spill_write(b, src, len, spill_offset(b, slot, off));
}

/* Takes the next free slot and fills it with @src; on failure no slot is taken. */
static int slot_new(struct colo_buffer *b, const void *src, uint32_t *slot)
{
	int err;

	if (b->ram_used < b->ram_max) {
		err = ram_chunk_ensure(b, b->ram_used);
		if (err)
			return err;
		*slot = b->ram_used++;
		memcpy(ram_slot_ptr(b, *slot), src, b->block_size);
		return 0;
	}
	if (b->spill_fd < 0 || b->spill_used >= b->spill_max)
		return -ENOSPC;
	*slot = b->ram_max + b->spill_used;
	err = slot_write(b, *slot, 0, src, b->block_size);
	if (err)
		return err;
	b->spill_used++;
	return 0;
}

/* Tells the caller why create failed, through cfg->why; logs it only for a caller without. */
static int __attribute__((format(printf, 3, 4)))
create_fail(const struct colo_buffer_config *cfg, int err, const char *fmt, ...)
{
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (cfg->why)
		snprintf(cfg->why, cfg->why_len, "%s", why);
	else
		EPRINTF("%s", why);
	return err;
}

static int config_check(const struct colo_buffer_config *cfg)
{
	uint32_t bs = cfg->block_size;

	if (bs < COLO_BUFFER_MIN_BLOCK || bs > COLO_BUFFER_MAX_BLOCK || (bs & (bs - 1)))
		return create_fail(cfg, -EINVAL,
				   "block size %u is not a power of two from %u to %u", bs,
				   COLO_BUFFER_MIN_BLOCK, COLO_BUFFER_MAX_BLOCK);
	return 0;
}

static int spill_fail(const struct colo_buffer_config *cfg, int err, const char *what)
{
	return create_fail(cfg, err, "spill=%s: %s (%s)", cfg->spill_path, what, strerror(-err));
}

/*
 * Two Secondaries writing their saved blocks into one file would restore each other's data
 * at failover, so a named file is locked for as long as it is used.  A directory serves any
 * number of them (one start request for all the disks of a domain names one path): each gets
 * a nameless file there, which not even a crash leaves behind.
 */
static int spill_open(struct colo_buffer *b, const struct colo_buffer_config *cfg)
{
	const char *path = cfg->spill_path;
	struct stat st;
	int fd;

	if (!stat(path, &st) && S_ISDIR(st.st_mode)) {
		b->spill_fd = open(path, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		if (b->spill_fd < 0)
			return spill_fail(cfg, -errno, "cannot create a file in this directory");
	} else {
		/*
		 * Not through a symbolic link, and only a regular file: the file is truncated,
		 * and a link planted where the path was expected, or a device, would have what
		 * it names emptied or overwritten with guest data.
		 */
		fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0)
			return spill_fail(cfg, -errno,
					  errno == ELOOP ? "a symbolic link: name the file itself"
							 : "cannot create the file");
		b->spill_fd = fd;
		if (fstat(fd, &st))
			return spill_fail(cfg, -errno, "cannot stat the file");
		if (!S_ISREG(st.st_mode))
			return spill_fail(cfg, -EINVAL, "not a regular file");
		if (flock(fd, LOCK_EX | LOCK_NB))
			return spill_fail(cfg, errno == EWOULDBLOCK ? -EAGAIN : -errno,
					  "in use by another tapdisk");
		/* It holds guest data: an old file of the same name may have been readable. */
		if (ftruncate(fd, 0) || fchmod(fd, 0600))
			return spill_fail(cfg, -errno, "cannot make the file empty and private");
		b->spill_unlink = true;
	}
	b->spill_path = strdup(path);
	if (!b->spill_path)
		return create_fail(cfg, -ENOMEM, "out of memory for the disk buffer");
	return 0;
}

int colo_buffer_create(const struct colo_buffer_config *cfg, struct colo_buffer **out)
{
	struct colo_buffer *b;
	uint64_t n;
	int err;

	err = config_check(cfg);
	if (err)
		return err;
	b = calloc(1, sizeof(*b));
	if (!b)
		return create_fail(cfg, -ENOMEM, "out of memory for the disk buffer");
	b->spill_fd = -1;
	b->block_size = cfg->block_size;
	b->shift = __builtin_ctz(cfg->block_size);
	b->chunk_shift = COLO_BUFFER_CHUNK_SHIFT - b->shift;
	n = cfg->ram_limit >> b->shift;
	b->ram_max = n < COLO_BUFFER_MAX_BLOCKS ? n : COLO_BUFFER_MAX_BLOCKS;

	err = index_alloc(COLO_BUFFER_INITIAL_CAP, &b->keys, &b->slots);
	if (err) {
		create_fail(cfg, err, "out of memory for the disk buffer");
		goto fail;
	}
	b->cap = COLO_BUFFER_INITIAL_CAP;

	if (cfg->spill_path && cfg->spill_path[0]) {
		err = spill_open(b, cfg);
		if (err)
			goto fail;
		n = COLO_BUFFER_MAX_BLOCKS - b->ram_max;
		if (cfg->spill_limit && cfg->spill_limit >> b->shift < n)
			n = cfg->spill_limit >> b->shift;
		b->spill_max = n;
	}
	*out = b;
	return 0;

fail:
	colo_buffer_destroy(b);
	return err;
}

void colo_buffer_destroy(struct colo_buffer *b)
{
	if (!b)
		return;
	ram_chunks_release(b, 0);
	free(b->chunks);
	free(b->keys);
	free(b->slots);
	if (b->spill_fd >= 0)
		close(b->spill_fd);
	if (b->spill_unlink && unlink(b->spill_path) && errno != ENOENT)
		EPRINTF("cannot remove spill file %s: %s", b->spill_path, strerror(errno));
	free(b->spill_path);
	free(b);
}

bool colo_buffer_contains(const struct colo_buffer *b, uint64_t block)
{
	uint32_t slot;

	return index_lookup(b, block, &slot);
}

int colo_buffer_get(struct colo_buffer *b, uint64_t block, void *dst)
{
	uint32_t slot;
	int err;

	if (!index_lookup(b, block, &slot))
		return 0;
	if (slot < b->ram_max) {
		memcpy(dst, ram_slot_ptr(b, slot), b->block_size);
		return 1;
	}
	err = spill_read(b, dst, b->block_size, spill_offset(b, slot, 0));
	return err ? err : 1;
}

int colo_buffer_put(struct colo_buffer *b, uint64_t block, const void *src, bool overwrite)
{
	uint64_t key = block + 1, i;
	uint32_t slot;
	int err;

	if (block == UINT64_MAX)
		return -EINVAL;
	i = index_find(b->keys, b->cap, key);
	if (b->keys[i]) {
		if (!overwrite)
			return 0;
		err = slot_write(b, b->slots[i], 0, src, b->block_size);
		return err ? err : 1;
	}
	/* Grow before taking a slot, so that a failed grow leaves nothing to undo. */
	if ((b->count + 1) * 4 > b->cap * 3) {
		err = index_grow(b);
		if (err)
			return err;
		i = index_find(b->keys, b->cap, key);
	}
	err = slot_new(b, src, &slot);
	if (err)
		return err;
	b->keys[i] = key;
	b->slots[i] = slot;
	b->count++;
	return 1;
}

int colo_buffer_update(struct colo_buffer *b, uint64_t block, uint32_t off, const void *src,
		       uint32_t len)
{
	uint32_t slot;

	if (off > b->block_size || len > b->block_size - off)
		return -EINVAL;
	if (!index_lookup(b, block, &slot))
		return -ENOENT;
	return slot_write(b, slot, off, src, len);
}

void colo_buffer_drop(struct colo_buffer *b)
{
	uint64_t *keys;
	uint32_t *slots;

	if (b->cap > COLO_BUFFER_INITIAL_CAP &&
	    !index_alloc(COLO_BUFFER_INITIAL_CAP, &keys, &slots)) {
		free(b->keys);
		free(b->slots);
		b->keys = keys;
		b->slots = slots;
		b->cap = COLO_BUFFER_INITIAL_CAP;
	} else {
		/* Already small, or no memory for a small one: clear the one we have. */
		memset(b->keys, 0, b->cap * sizeof(*b->keys));
	}
	b->count = 0;
	/* The chunks stay mapped (the next epoch reuses them): colo_buffer_trim unmaps later. */
	b->ram_used = 0;
	b->spill_used = 0;
}

size_t colo_buffer_trim(struct colo_buffer *b, size_t max_chunks)
{
	uint32_t per_chunk = 1u << b->chunk_shift;
	size_t used = (b->ram_used + per_chunk - 1) / per_chunk;
	size_t keep = used > COLO_BUFFER_KEEP_CHUNKS ? used : COLO_BUFFER_KEEP_CHUNKS;
	size_t excess = b->nr_chunks > keep ? b->nr_chunks - keep : 0;

	ram_chunks_release(b, b->nr_chunks - (excess < max_chunks ? excess : max_chunks));
	return b->nr_chunks > keep ? b->nr_chunks - keep : 0;
}

static int block_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int colo_buffer_sorted(const struct colo_buffer *b, uint64_t **blocks, size_t *n)
{
	uint64_t *v;
	size_t k = 0;

	*blocks = NULL;
	*n = 0;
	if (!b->count)
		return 0;
	v = malloc(b->count * sizeof(*v));
	if (!v) {
		EPRINTF("cannot allocate %llu block numbers", (unsigned long long)b->count);
		return -ENOMEM;
	}
	for (uint64_t i = 0; i < b->cap; i++)
		if (b->keys[i])
			v[k++] = b->keys[i] - 1;
	qsort(v, k, sizeof(*v), block_cmp);
	*blocks = v;
	*n = k;
	return 0;
}

const void *colo_buffer_ram_ptr(const struct colo_buffer *b, uint64_t block)
{
	uint32_t slot;

	if (!index_lookup(b, block, &slot) || slot >= b->ram_max)
		return NULL;
	return ram_slot_ptr(b, slot);
}

uint32_t colo_buffer_block_size(const struct colo_buffer *b)
{
	return b->block_size;
}

uint64_t colo_buffer_blocks(const struct colo_buffer *b)
{
	return b->count;
}

uint64_t colo_buffer_bytes(const struct colo_buffer *b)
{
	return b->count << b->shift;
}

uint64_t colo_buffer_spilled_bytes(const struct colo_buffer *b)
{
	return (uint64_t)b->spill_used << b->shift;
}

uint64_t colo_buffer_ram_bytes(const struct colo_buffer *b)
{
	uint64_t bytes = 0;

	for (size_t i = 0; i < b->nr_chunks; i++)
		bytes += chunk_bytes(b, i);
	return bytes;
}

uint64_t colo_buffer_index_bytes(const struct colo_buffer *b)
{
	return sizeof(*b) + b->cap * (sizeof(*b->keys) + sizeof(*b->slots)) +
	       b->chunks_cap * sizeof(*b->chunks) + (b->spill_path ? strlen(b->spill_path) + 1 : 0);
}

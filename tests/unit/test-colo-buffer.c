/*
 * The Secondary's disk buffer: exact bytes through RAM and a real spill file, the limits and
 * their error codes, drop, ordering, and a seeded random run against a reference model.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "colo-buffer.h"

#define BS 4096u

static char tmp_dir[] = "/tmp/test-colo-buffer-XXXXXX";
static char spill_path[sizeof(tmp_dir) + 16];

/* Unchecked fixtures run in the parent, so files are removed even when a test child dies. */
static void dir_setup(void)
{
	ck_assert_ptr_nonnull(mkdtemp(tmp_dir));
	snprintf(spill_path, sizeof(spill_path), "%s/spill", tmp_dir);
}

static void dir_teardown(void)
{
	DIR *d = opendir(tmp_dir);
	struct dirent *e;
	char path[sizeof(tmp_dir) + 256];

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", tmp_dir, e->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(tmp_dir);
}

static struct colo_buffer *buffer_new(uint32_t bs, uint64_t ram_blocks, const char *spill,
				      uint64_t spill_limit)
{
	struct colo_buffer_config cfg = {
		.block_size = bs,
		.ram_limit = ram_blocks * bs,
		.spill_path = spill,
		.spill_limit = spill_limit,
	};
	struct colo_buffer *b = NULL;

	ck_assert_int_eq(colo_buffer_create(&cfg, &b), 0);
	ck_assert_ptr_nonnull(b);
	return b;
}

/* A block's contents that differ with the block number, the version and the offset. */
static void pattern(void *buf, uint32_t bs, uint64_t block, unsigned int version)
{
	unsigned char *p = buf;

	for (uint32_t i = 0; i < bs; i++)
		p[i] = (unsigned char)(block * 31 + version * 7 + i * 13 + (i >> 8));
}

static void check_block(struct colo_buffer *b, uint64_t block, unsigned int version)
{
	uint32_t bs = colo_buffer_block_size(b);
	unsigned char *want = malloc(bs), *got = malloc(bs);

	pattern(want, bs, block, version);
	memset(got, 0xee, bs);
	ck_assert_int_eq(colo_buffer_get(b, block, got), 1);
	ck_assert_mem_eq(got, want, bs);
	free(want);
	free(got);
}

static void put_pattern(struct colo_buffer *b, uint64_t block, unsigned int version, bool overwrite,
			int expect)
{
	uint32_t bs = colo_buffer_block_size(b);
	unsigned char *buf = malloc(bs);

	pattern(buf, bs, block, version);
	ck_assert_int_eq(colo_buffer_put(b, block, buf, overwrite), expect);
	free(buf);
}

static off_t file_size(const char *path)
{
	struct stat st;

	ck_assert_int_eq(stat(path, &st), 0);
	return st.st_size;
}

START_TEST(test_create_rejects_bad_config)
{
	static const uint32_t bad[] = { 0, 256, 511, 4095, 4097, 3 << 12, 2u << 20 };
	struct colo_buffer_config cfg = { .ram_limit = 1 << 20 };
	struct colo_buffer *b = NULL;
	char missing[sizeof(tmp_dir) + 32];
	struct stat st;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cfg.block_size = bad[i];
		ck_assert_int_eq(colo_buffer_create(&cfg, &b), -EINVAL);
		ck_assert_ptr_null(b);
	}
	cfg.block_size = BS;
	snprintf(missing, sizeof(missing), "%s/no-such-dir/spill", tmp_dir);
	cfg.spill_path = missing;
	ck_assert_int_eq(colo_buffer_create(&cfg, &b), -ENOENT);
	ck_assert_ptr_null(b);

	/* An old spill file is truncated, created private, and removed at destroy. */
	ck_assert_int_eq(close(creat(spill_path, 0644)), 0);
	ck_assert_int_eq(truncate(spill_path, 12345), 0);
	b = buffer_new(BS, 4, spill_path, 0);
	ck_assert_int_eq(stat(spill_path, &st), 0);
	ck_assert_int_eq(st.st_size, 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	colo_buffer_destroy(b);
	ck_assert_int_eq(stat(spill_path, &st), -1);
	ck_assert_int_eq(errno, ENOENT);
	colo_buffer_destroy(NULL);
}
END_TEST

START_TEST(test_put_get_contains)
{
	struct colo_buffer *b = buffer_new(BS, 64, NULL, 0);
	static const uint64_t blocks[] = { 0, 1, 7, 1000000, UINT64_MAX / BS, UINT64_MAX - 1 };
	const size_t n = sizeof(blocks) / sizeof(blocks[0]);
	unsigned char buf[BS], ones[BS];

	ck_assert_uint_eq(colo_buffer_block_size(b), BS);
	ck_assert_uint_eq(colo_buffer_blocks(b), 0);
	for (size_t i = 0; i < n; i++) {
		ck_assert(!colo_buffer_contains(b, blocks[i]));
		put_pattern(b, blocks[i], 1, true, 1);
		ck_assert(colo_buffer_contains(b, blocks[i]));
	}
	ck_assert_uint_eq(colo_buffer_blocks(b), n);
	ck_assert_uint_eq(colo_buffer_bytes(b), n * BS);
	ck_assert_uint_eq(colo_buffer_spilled_bytes(b), 0);
	for (size_t i = 0; i < n; i++)
		check_block(b, blocks[i], 1);

	/* An absent block leaves the destination alone. */
	memset(buf, 0x5a, BS);
	memset(ones, 0x5a, BS);
	ck_assert(!colo_buffer_contains(b, 2));
	ck_assert_int_eq(colo_buffer_get(b, 2, buf), 0);
	ck_assert_mem_eq(buf, ones, BS);

	/* UINT64_MAX would alias the empty entry: refused, never present. */
	ck_assert_int_eq(colo_buffer_put(b, UINT64_MAX, buf, true), -EINVAL);
	ck_assert(!colo_buffer_contains(b, UINT64_MAX));
	ck_assert_int_eq(colo_buffer_get(b, UINT64_MAX, buf), 0);
	ck_assert_ptr_null(colo_buffer_ram_ptr(b, UINT64_MAX));
	ck_assert_int_eq(colo_buffer_update(b, UINT64_MAX, 0, buf, 1), -ENOENT);
	ck_assert_uint_eq(colo_buffer_blocks(b), n);
	colo_buffer_destroy(b);
}
END_TEST

/* Block 0 lands in RAM and block 1 in the spill file: both paths must behave the same. */
START_TEST(test_put_overwrite)
{
	struct colo_buffer *b = buffer_new(BS, 1, spill_path, 0);

	put_pattern(b, 0, 1, false, 1);
	put_pattern(b, 1, 1, false, 1);
	ck_assert_ptr_nonnull(colo_buffer_ram_ptr(b, 0));
	ck_assert_ptr_null(colo_buffer_ram_ptr(b, 1));

	put_pattern(b, 0, 2, false, 0);
	put_pattern(b, 1, 2, false, 0);
	check_block(b, 0, 1);
	check_block(b, 1, 1);

	put_pattern(b, 0, 3, true, 1);
	put_pattern(b, 1, 3, true, 1);
	check_block(b, 0, 3);
	check_block(b, 1, 3);

	/* Rewriting in place takes no new slot. */
	ck_assert_uint_eq(colo_buffer_blocks(b), 2);
	ck_assert_uint_eq(colo_buffer_spilled_bytes(b), BS);
	ck_assert_int_eq(file_size(spill_path), BS);
	colo_buffer_destroy(b);
}
END_TEST

START_TEST(test_update)
{
	struct colo_buffer *b = buffer_new(BS, 1, spill_path, 0);
	unsigned char want[BS], got[BS], patch[BS];

	memset(patch, 0xa5, sizeof(patch));
	for (uint64_t block = 0; block < 2; block++) {
		put_pattern(b, block, 1, true, 1);
		pattern(want, BS, block, 1);

		ck_assert_int_eq(colo_buffer_update(b, block, 100, patch, 37), 0);
		memset(want + 100, 0xa5, 37);
		ck_assert_int_eq(colo_buffer_get(b, block, got), 1);
		ck_assert_mem_eq(got, want, BS);

		/* The very first and the very last byte. */
		ck_assert_int_eq(colo_buffer_update(b, block, 0, "\x01", 1), 0);
		ck_assert_int_eq(colo_buffer_update(b, block, BS - 1, "\x02", 1), 0);
		want[0] = 1;
		want[BS - 1] = 2;
		ck_assert_int_eq(colo_buffer_get(b, block, got), 1);
		ck_assert_mem_eq(got, want, BS);

		/* Out of range, including sums that overflow 32 bits: nothing written. */
		ck_assert_int_eq(colo_buffer_update(b, block, BS - 10, patch, 11), -EINVAL);
		ck_assert_int_eq(colo_buffer_update(b, block, BS + 1, patch, 0), -EINVAL);
		ck_assert_int_eq(colo_buffer_update(b, block, 1, patch, UINT32_MAX), -EINVAL);
		ck_assert_int_eq(colo_buffer_update(b, block, UINT32_MAX, patch, 2), -EINVAL);
		ck_assert_int_eq(colo_buffer_update(b, block, BS, patch, 0), 0);
		ck_assert_int_eq(colo_buffer_get(b, block, got), 1);
		ck_assert_mem_eq(got, want, BS);

		/* A whole-block update is a rewrite. */
		pattern(want, BS, block, 9);
		ck_assert_int_eq(colo_buffer_update(b, block, 0, want, BS), 0);
		check_block(b, block, 9);
	}
	ck_assert_int_eq(colo_buffer_update(b, 2, 0, patch, 1), -ENOENT);
	ck_assert(!colo_buffer_contains(b, 2));
	ck_assert_uint_eq(colo_buffer_blocks(b), 2);
	colo_buffer_destroy(b);
}
END_TEST

START_TEST(test_spill)
{
	struct colo_buffer *b = buffer_new(BS, 4, spill_path, 0);
	const unsigned char *first = NULL;

	for (uint64_t i = 0; i < 20; i++)
		put_pattern(b, 100 + i, 1, true, 1);
	ck_assert_uint_eq(colo_buffer_blocks(b), 20);
	ck_assert_uint_eq(colo_buffer_bytes(b), 20 * BS);
	ck_assert_uint_eq(colo_buffer_spilled_bytes(b), 16 * BS);
	ck_assert_int_eq(file_size(spill_path), 16 * BS);
	for (uint64_t i = 0; i < 20; i++) {
		const unsigned char *p = colo_buffer_ram_ptr(b, 100 + i);
		unsigned char want[BS];

		check_block(b, 100 + i, 1);
		if (i >= 4) {
			ck_assert_ptr_null(p);
			continue;
		}
		ck_assert_ptr_nonnull(p);
		ck_assert_uint_eq((uintptr_t)p % 4096, 0);
		pattern(want, BS, 100 + i, 1);
		ck_assert_mem_eq(p, want, BS);
		/* Put one after another, so adjacent: failover writes the run in one go. */
		if (i == 0)
			first = p;
		else
			ck_assert_ptr_eq(p, first + i * BS);
	}
	ck_assert_ptr_null(colo_buffer_ram_ptr(b, 99));
	colo_buffer_destroy(b);
}
END_TEST

START_TEST(test_spill_limit)
{
	/* 8.5 blocks of spill room is 8 blocks. */
	struct colo_buffer *b = buffer_new(BS, 4, spill_path, 8 * BS + BS / 2);

	for (uint64_t i = 0; i < 12; i++)
		put_pattern(b, i, 1, true, 1);
	put_pattern(b, 12, 1, true, -ENOSPC);
	put_pattern(b, 13, 1, false, -ENOSPC);
	ck_assert(!colo_buffer_contains(b, 12));
	ck_assert(!colo_buffer_contains(b, 13));
	ck_assert_uint_eq(colo_buffer_blocks(b), 12);
	ck_assert_uint_eq(colo_buffer_spilled_bytes(b), 8 * BS);
	ck_assert_int_eq(file_size(spill_path), 8 * BS);
	for (uint64_t i = 0; i < 12; i++)
		check_block(b, i, 1);

	/* Full, but blocks already present can still be rewritten. */
	put_pattern(b, 3, 2, true, 1);
	put_pattern(b, 11, 2, true, 1);
	put_pattern(b, 5, 2, false, 0);
	check_block(b, 3, 2);
	check_block(b, 11, 2);
	check_block(b, 5, 1);
	ck_assert_uint_eq(colo_buffer_blocks(b), 12);
	colo_buffer_destroy(b);
}
END_TEST

START_TEST(test_no_spill_path)
{
	const char *paths[] = { NULL, "" };

	for (int k = 0; k < 2; k++) {
		struct colo_buffer *b = buffer_new(BS, 4, paths[k], 0);

		for (uint64_t i = 0; i < 4; i++)
			put_pattern(b, i, 1, true, 1);
		put_pattern(b, 4, 1, true, -ENOSPC);
		ck_assert(!colo_buffer_contains(b, 4));
		ck_assert_uint_eq(colo_buffer_blocks(b), 4);
		ck_assert_uint_eq(colo_buffer_spilled_bytes(b), 0);
		for (uint64_t i = 0; i < 4; i++)
			check_block(b, i, 1);
		colo_buffer_destroy(b);
	}

	/* No RAM at all and no spill file: nothing fits. */
	{
		struct colo_buffer *b = buffer_new(BS, 0, NULL, 0);

		put_pattern(b, 0, 1, true, -ENOSPC);
		ck_assert_uint_eq(colo_buffer_blocks(b), 0);
		colo_buffer_destroy(b);
	}
}
END_TEST

/*
 * A spill file that cannot grow (RLIMIT_FSIZE; SIGXFSZ ignored gives EFBIG): the put fails with
 * the file system's error and the block is not in the buffer. The limit is not block-aligned, so
 * the failing write is first a short one.
 */
START_TEST(test_spill_write_error)
{
	struct rlimit old, lim;
	struct colo_buffer *b = buffer_new(BS, 2, spill_path, 0);
	void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);

	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 3 * BS + 100;
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);

	for (uint64_t i = 0; i < 5; i++)
		put_pattern(b, i, 1, true, 1);
	put_pattern(b, 5, 1, true, -EFBIG);
	put_pattern(b, 6, 1, false, -EFBIG);
	ck_assert(!colo_buffer_contains(b, 5));
	ck_assert(!colo_buffer_contains(b, 6));
	ck_assert_uint_eq(colo_buffer_blocks(b), 5);
	ck_assert_uint_eq(colo_buffer_spilled_bytes(b), 3 * BS);
	for (uint64_t i = 0; i < 5; i++)
		check_block(b, i, 1);

	/* Drop gives the room back: the next epoch rewrites the file's slots from the start. */
	colo_buffer_drop(b);
	for (uint64_t i = 10; i < 15; i++)
		put_pattern(b, i, 2, true, 1);
	for (uint64_t i = 10; i < 15; i++)
		check_block(b, i, 2);

	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, old_handler);
	colo_buffer_destroy(b);
}
END_TEST

/*
 * Epochs of different sizes with the same block numbers: each must read back its own contents,
 * never the last epoch's left in RAM or in the spill file. Drop leaves the spill file as it is,
 * and the file never grows beyond the largest epoch's spill.
 */
START_TEST(test_drop)
{
	static const uint64_t sizes[] = { 10, 6, 14, 5, 10 };
	struct colo_buffer *b = buffer_new(BS, 4, spill_path, 0);
	unsigned char buf[BS];
	off_t largest = 0;
	uint64_t *v;
	size_t n;

	colo_buffer_drop(b); /* empty: nothing to do, must not fail */
	ck_assert_int_eq(file_size(spill_path), 0);
	for (unsigned int round = 0; round < sizeof(sizes) / sizeof(sizes[0]); round++) {
		uint64_t nr = sizes[round], spilled = nr - 4;

		for (uint64_t i = 0; i < nr; i++)
			put_pattern(b, i * 3, round, true, 1);
		ck_assert_uint_eq(colo_buffer_blocks(b), nr);
		ck_assert_uint_eq(colo_buffer_spilled_bytes(b), spilled * BS);
		if ((off_t)(spilled * BS) > largest)
			largest = spilled * BS;
		ck_assert_int_eq(file_size(spill_path), largest);
		for (uint64_t i = 0; i < nr; i++) {
			check_block(b, i * 3, round);
			ck_assert(i < 4 ? colo_buffer_ram_ptr(b, i * 3) != NULL
					: colo_buffer_ram_ptr(b, i * 3) == NULL);
		}

		colo_buffer_drop(b);
		ck_assert_uint_eq(colo_buffer_blocks(b), 0);
		ck_assert_uint_eq(colo_buffer_bytes(b), 0);
		ck_assert_uint_eq(colo_buffer_spilled_bytes(b), 0);
		ck_assert_int_eq(file_size(spill_path), largest);
		for (uint64_t i = 0; i < 14; i++) {
			ck_assert(!colo_buffer_contains(b, i * 3));
			ck_assert_int_eq(colo_buffer_get(b, i * 3, buf), 0);
			ck_assert_ptr_null(colo_buffer_ram_ptr(b, i * 3));
			ck_assert_int_eq(colo_buffer_update(b, i * 3, 0, buf, 1), -ENOENT);
		}
		ck_assert_int_eq(colo_buffer_sorted(b, &v, &n), 0);
		ck_assert_ptr_null(v);
		ck_assert_uint_eq(n, 0);
	}
	ck_assert_int_eq(largest, 10 * BS);

	/* Re-use: other blocks, other contents, RAM and spill again, partly updated. */
	for (uint64_t i = 0; i < 10; i++)
		put_pattern(b, 1000 - i, 7, false, 1);
	ck_assert_int_eq(colo_buffer_update(b, 1000 - 9, 0, "\x5a", 1), 0);
	for (uint64_t i = 0; i < 9; i++) {
		check_block(b, 1000 - i, 7);
		if (i < 4)
			ck_assert_ptr_nonnull(colo_buffer_ram_ptr(b, 1000 - i));
		else
			ck_assert_ptr_null(colo_buffer_ram_ptr(b, 1000 - i));
	}
	pattern(buf, BS, 1000 - 9, 7);
	buf[0] = 0x5a;
	{
		unsigned char got[BS];

		ck_assert_int_eq(colo_buffer_get(b, 1000 - 9, got), 1);
		ck_assert_mem_eq(got, buf, BS);
	}
	ck_assert_uint_eq(colo_buffer_spilled_bytes(b), 6 * BS);
	ck_assert_int_eq(file_size(spill_path), 10 * BS);
	colo_buffer_destroy(b);
}
END_TEST

static uint64_t rss_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long size, rss;

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fscanf(f, "%lu %lu", &size, &rss), 2);
	fclose(f);
	return (uint64_t)rss * sysconf(_SC_PAGESIZE);
}

/*
 * Drop gives the RAM beyond its 64 MiB cache back to the system, whatever malloc's settings:
 * tapdisk raises malloc's mmap threshold to 32 MiB, with which memory from malloc would stay in
 * the heap after free(). Measured both in mapped bytes and in the process's RSS.
 */
START_TEST(test_drop_returns_memory)
{
	enum { N = 65536 }; /* 256 MiB of 4 KiB blocks */
	const uint64_t keep = 64 << 20;
	struct colo_buffer *b;
	uint64_t before, full, after;
	unsigned char buf[BS];

	mallopt(M_MMAP_THRESHOLD, 32 << 20);
	b = buffer_new(BS, N, NULL, 0);
	ck_assert_uint_eq(colo_buffer_ram_bytes(b), 0);
	before = rss_bytes();
	for (int epoch = 0; epoch < 3; epoch++) {
		/* A full epoch, then a small one that fits in the cache. */
		uint64_t nr = epoch == 1 ? 1000 : N;

		for (uint64_t i = 0; i < nr; i++) {
			memset(buf, (int)(i + epoch), BS);
			ck_assert_int_eq(colo_buffer_put(b, i * 2, buf, true), 1);
		}
		full = rss_bytes();
		ck_assert_uint_eq(colo_buffer_ram_bytes(b), nr == N ? (uint64_t)N * BS : keep);
		colo_buffer_drop(b);
		/* The drop keeps every chunk mapped; trimming gives back all but the cache. */
		ck_assert_uint_eq(colo_buffer_ram_bytes(b), nr == N ? (uint64_t)N * BS : keep);
		if (nr == N) {
			ck_assert_uint_gt(colo_buffer_trim(b, 4), 0);
			ck_assert_uint_eq(colo_buffer_ram_bytes(b), (uint64_t)N * BS - (8 << 20));
		}
		ck_assert_uint_eq(colo_buffer_trim(b, SIZE_MAX), 0);
		after = rss_bytes();
		fprintf(stderr,
			"test_drop_returns_memory: epoch %d, %" PRIu64 " blocks: RSS +%.1f MiB, "
			"+%.1f MiB after drop, %" PRIu64 " MiB mapped\n",
			epoch, nr, ((double)full - before) / (1 << 20),
			((double)after - before) / (1 << 20), colo_buffer_ram_bytes(b) >> 20);
		ck_assert_uint_eq(colo_buffer_ram_bytes(b), keep);
		if (nr < N)
			continue;
		/*
		 * All that was unmapped left the RSS, give or take 1/8 for the index and for what
		 * a sanitizer's allocator keeps.
		 */
		ck_assert_uint_ge(full, before + (uint64_t)N * BS);
		ck_assert_uint_ge(full - after, ((uint64_t)N * BS - keep) / 8 * 7);
	}
	/* The cached chunks still work. */
	put_pattern(b, 5, 1, true, 1);
	check_block(b, 5, 1);
	colo_buffer_destroy(b);
}
END_TEST

static uint64_t rng_state;

/* xorshift64*: small, seedable, good enough to pick operations. */
static uint64_t rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

START_TEST(test_sorted)
{
	enum { N = 5000 };
	struct colo_buffer *b = buffer_new(512, 1000, spill_path, 0);
	uint64_t *want = malloc(N * sizeof(*want)), *got;
	unsigned char buf[512] = { 0 };
	size_t n = 0;

	rng_state = 12345;
	while (n < N) {
		/* Small and huge block numbers, in random order. */
		uint64_t block = (rng() & 1) ? rng() % 100000 : rng() % (UINT64_MAX / 512);

		if (colo_buffer_contains(b, block))
			continue;
		ck_assert_int_eq(colo_buffer_put(b, block, buf, false), 1);
		want[n++] = block;
	}
	qsort(want, N, sizeof(*want), u64_cmp);
	ck_assert_int_eq(colo_buffer_sorted(b, &got, &n), 0);
	ck_assert_uint_eq(n, N);
	for (size_t i = 0; i < N; i++)
		ck_assert_uint_eq(got[i], want[i]);
	for (size_t i = 1; i < N; i++)
		ck_assert_uint_lt(got[i - 1], got[i]);
	free(got);
	free(want);
	colo_buffer_destroy(b);
}
END_TEST

START_TEST(test_block_sizes)
{
	static const uint32_t sizes[] = { 512, 4096, 65536, 1u << 20 };

	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		uint32_t bs = sizes[k];
		struct colo_buffer *b = buffer_new(bs, 3, spill_path, 0);
		uint32_t align = bs < 4096 ? bs : 4096;
		unsigned char *want = malloc(bs), *got = malloc(bs);

		ck_assert_uint_eq(colo_buffer_block_size(b), bs);
		for (uint64_t i = 0; i < 8; i++)
			put_pattern(b, 50 - i * 5, 1, true, 1);
		ck_assert_uint_eq(colo_buffer_bytes(b), 8ull * bs);
		ck_assert_uint_eq(colo_buffer_spilled_bytes(b), 5ull * bs);
		ck_assert_int_eq(file_size(spill_path), 5ll * bs);
		for (uint64_t i = 0; i < 8; i++) {
			uint64_t block = 50 - i * 5;
			const void *p = colo_buffer_ram_ptr(b, block);

			check_block(b, block, 1);
			ck_assert(i < 3 ? p != NULL : p == NULL);
			if (p)
				ck_assert_uint_eq((uintptr_t)p % align, 0);

			/* The last byte of the block: off + len == block_size exactly. */
			pattern(want, bs, block, 1);
			want[bs - 1] ^= 0xff;
			ck_assert_int_eq(colo_buffer_update(b, block, bs - 1, &want[bs - 1], 1), 0);
			ck_assert_int_eq(colo_buffer_update(b, block, bs - 1, want, 2), -EINVAL);
			ck_assert_int_eq(colo_buffer_get(b, block, got), 1);
			ck_assert_mem_eq(got, want, bs);
		}
		free(want);
		free(got);
		colo_buffer_destroy(b);
	}
}
END_TEST

/*
 * Random puts, updates, gets and drops against a plain array of 2048 blocks. The buffer holds
 * 64 blocks in RAM and 512 in the spill file, so both are exercised and the buffer sometimes
 * fills up: the model then expects -ENOSPC and no change.
 */
START_TEST(test_random_model)
{
	enum { MB = 2048, MBS = 512, RAM = 64, SPILL = 512, OPS = 20000 };
	struct colo_buffer *b = buffer_new(MBS, RAM, spill_path, (uint64_t)SPILL * MBS);
	static unsigned char model[MB][MBS], buf[MBS], got[MBS];
	static bool present[MB];
	const char *env = getenv("COLO_SEED");
	uint64_t count = 0, drops = 0, full = 0, seed;

	seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL) ^ (uint64_t)getpid() << 32;

	fprintf(stderr, "test_random_model: COLO_SEED=%" PRIu64 "\n", seed);
	rng_state = seed ? seed : 1;
	memset(present, 0, sizeof(present));
	for (int op = 0; op < OPS; op++) {
		uint64_t block = rng() % MB, r = rng() % 1000;

		if (r < 450) {
			bool overwrite = r < 300;
			int want_rc = 1;

			if (present[block])
				want_rc = overwrite;
			else if (count == RAM + SPILL)
				want_rc = -ENOSPC;

			for (int i = 0; i < MBS; i++)
				buf[i] = (unsigned char)rng();
			ck_assert_int_eq(colo_buffer_put(b, block, buf, overwrite), want_rc);
			if (want_rc == 1) {
				memcpy(model[block], buf, MBS);
				count += !present[block];
				present[block] = true;
			}
			full += want_rc == -ENOSPC;
		} else if (r < 650) {
			uint32_t off = rng() % (MBS + 1), len = rng() % (MBS + 1 - off);

			for (uint32_t i = 0; i < len; i++)
				buf[i] = (unsigned char)rng();
			ck_assert_int_eq(colo_buffer_update(b, block, off, buf, len),
					 present[block] ? 0 : -ENOENT);
			if (present[block])
				memcpy(model[block] + off, buf, len);
		} else if (r < 999) {
			memset(got, 0xcc, MBS);
			ck_assert_int_eq(colo_buffer_get(b, block, got), present[block]);
			if (present[block])
				ck_assert_mem_eq(got, model[block], MBS);
			ck_assert(colo_buffer_contains(b, block) == present[block]);
		} else {
			colo_buffer_drop(b);
			memset(present, 0, sizeof(present));
			count = 0;
			drops++;
		}
		ck_assert_uint_eq(colo_buffer_blocks(b), count);
	}
	fprintf(stderr, "test_random_model: %" PRIu64 " drops, %" PRIu64 " puts refused full\n",
		drops, full);

	/* Everything, in the end: contents, RAM pointers and the sorted list. */
	{
		uint64_t *v;
		size_t n, k = 0;

		for (uint64_t block = 0; block < MB; block++) {
			const void *p = colo_buffer_ram_ptr(b, block);

			ck_assert_int_eq(colo_buffer_get(b, block, got), present[block]);
			if (!present[block]) {
				ck_assert_ptr_null(p);
				continue;
			}
			ck_assert_mem_eq(got, model[block], MBS);
			if (p)
				ck_assert_mem_eq(p, model[block], MBS);
		}
		ck_assert_int_eq(colo_buffer_sorted(b, &v, &n), 0);
		ck_assert_uint_eq(n, count);
		for (uint64_t block = 0; block < MB; block++)
			if (present[block])
				ck_assert_uint_eq(v[k++], block);
		free(v);
	}
	colo_buffer_destroy(b);
}
END_TEST

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * The index must stay small next to the data: at most 32 bytes a block at any fill level past a
 * few thousand blocks. 512-byte blocks keep this at 128 MiB of RAM: the index's cost per block
 * does not depend on the block size.
 */
START_TEST(test_index_overhead)
{
	enum { N = 262144 };
	struct colo_buffer *b = buffer_new(512, N, NULL, 0);
	unsigned char buf[512] = { 0 };
	uint64_t max_bytes = 0, at = 0;
	double t;

	for (uint64_t i = 0; i < N; i++) {
		uint64_t bytes;

		/* Strided block numbers, as a guest writing every other block would make. */
		ck_assert_int_eq(colo_buffer_put(b, i * 2, buf, true), 1);
		if (i + 1 < 4096)
			continue;
		bytes = colo_buffer_index_bytes(b);
		ck_assert_uint_le(bytes, 32 * (i + 1));
		if (!at || bytes * at > max_bytes * (i + 1)) {
			max_bytes = bytes;
			at = i + 1;
		}
	}
	fprintf(stderr,
		"test_index_overhead: %.2f index bytes/block at %d blocks, worst %.2f at %" PRIu64
		"\n",
		(double)colo_buffer_index_bytes(b) / N, N, (double)max_bytes / at, at);
	ck_assert_uint_eq(colo_buffer_ram_bytes(b), (uint64_t)N * 512);
	t = now();
	colo_buffer_drop(b);
	t = now() - t;
	ck_assert_uint_eq(colo_buffer_trim(b, SIZE_MAX), 0);
	fprintf(stderr,
		"test_index_overhead: drop of %d blocks took %.3f ms, RAM mapped %d -> %" PRIu64
		" MiB after the trim\n",
		N, t * 1e3, (N * 512) >> 20, colo_buffer_ram_bytes(b) >> 20);
	ck_assert_uint_eq(colo_buffer_ram_bytes(b), 64 << 20);
	ck_assert_uint_eq(colo_buffer_blocks(b), 0);
	ck_assert(!colo_buffer_contains(b, 0));
	put_pattern(b, 2, 3, true, 1);
	check_block(b, 2, 3);
	colo_buffer_destroy(b);
}
END_TEST

int main(void)
{
	Suite *suite = suite_create("colo-buffer");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_unchecked_fixture(tc, dir_setup, dir_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_create_rejects_bad_config);
	tcase_add_test(tc, test_put_get_contains);
	tcase_add_test(tc, test_put_overwrite);
	tcase_add_test(tc, test_update);
	tcase_add_test(tc, test_spill);
	tcase_add_test(tc, test_spill_limit);
	tcase_add_test(tc, test_no_spill_path);
	tcase_add_test(tc, test_spill_write_error);
	tcase_add_test(tc, test_drop);
	tcase_add_test(tc, test_drop_returns_memory);
	tcase_add_test(tc, test_sorted);
	tcase_add_test(tc, test_block_sizes);
	tcase_add_test(tc, test_random_model);
	tcase_add_test(tc, test_index_overhead);
	suite_add_tcase(suite, tc);
	sr = srunner_create(suite);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}

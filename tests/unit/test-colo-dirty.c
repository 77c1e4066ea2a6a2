/*
 * The Primary's dirty map and its on-disk log (docs/colo-dirty-log.md): exact counts per
 * epoch, a log that survives a close and reopen, the refusals with their exact messages and
 * errnos (another disk, block size or pair, truncated, bad checksum, mode 0644), and that a
 * refused log is left byte for byte as it was.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "colo-dirty.h"

#define MiB (1024ULL * 1024)
#define DISK (64 * MiB)
#define BS 4096u

static char tmp_dir[] = "/tmp/test-colo-dirty-XXXXXX";
static char log_path[sizeof(tmp_dir) + 16];
static const uint8_t pair_a[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
static const uint8_t pair_b[16] = {0xa0, 0xa1};

static void dir_setup(void)
{
	ck_assert_ptr_nonnull(mkdtemp(tmp_dir));
	snprintf(log_path, sizeof(log_path), "%s/log", tmp_dir);
}

static void dir_teardown(void)
{
	char cmd[sizeof(tmp_dir) + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp_dir);
	if (system(cmd))
		fprintf(stderr, "cannot remove %s\n", tmp_dir);
}

static void per_test_setup(void)
{
	unlink(log_path);
}

static struct colo_dirty_log *log_open_ok(uint64_t disk, uint32_t bs, const uint8_t *pair)
{
	struct colo_dirty_log_geometry g = {.disk_size = disk, .block_size = bs};
	struct colo_dirty_log *log = NULL;
	char why[512] = "";
	int rc = colo_dirty_log_open(log_path, &g, pair, &log, why, sizeof(why));

	ck_assert_msg(rc == 0, "open: %d %s", rc, why);
	ck_assert_ptr_nonnull(log);
	return log;
}

/* The whole file, to check that a refusal wrote nothing. */
static char *slurp(size_t *len)
{
	FILE *f = fopen(log_path, "rb");
	char *buf;
	long n;

	ck_assert_ptr_nonnull(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc(n + 1);
	ck_assert_int_eq(fread(buf, 1, n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/* Opening must fail with @err and exactly @msg (after "dirty_log=PATH: "), changing nothing. */
static void expect_refused(uint64_t disk, uint32_t bs, const uint8_t *pair, int err,
			   const char *msg)
{
	struct colo_dirty_log_geometry g = {.disk_size = disk, .block_size = bs};
	struct colo_dirty_log *log = (void *)1;
	char why[512] = "", want[512];
	size_t before_len, after_len;
	char *before = slurp(&before_len), *after;
	struct stat st1, st2;

	ck_assert_int_eq(stat(log_path, &st1), 0);
	ck_assert_int_eq(colo_dirty_log_open(log_path, &g, pair, &log, why, sizeof(why)), err);
	ck_assert_ptr_null(log);
	snprintf(want, sizeof(want), "dirty_log=%s: %s", log_path, msg);
	ck_assert_str_eq(why, want);
	after = slurp(&after_len);
	ck_assert_int_eq(stat(log_path, &st2), 0);
	ck_assert_uint_eq(before_len, after_len);
	ck_assert_msg(!memcmp(before, after, before_len), "a refused log was changed");
	ck_assert_int_eq(st1.st_mtim.tv_sec, st2.st_mtim.tv_sec);
	ck_assert_int_eq(st1.st_mtim.tv_nsec, st2.st_mtim.tv_nsec);
	free(before);
	free(after);
}

static void poke(off_t off, const void *bytes, size_t len)
{
	int fd = open(log_path, O_WRONLY);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, bytes, len, off), (ssize_t)len);
	close(fd);
}

/* A log with extents 3 and 40 set (through the map, as the Primary does) and epoch 7. */
static void make_log(void)
{
	struct colo_dirty *d;

	ck_assert_int_eq(colo_dirty_create(DISK, BS, &d), 0);
	ck_assert_int_eq(colo_dirty_attach_log(d, log_open_ok(DISK, BS, pair_a)), 0);
	ck_assert(colo_dirty_begin(d, 3 * MiB + 4096, 8192));
	ck_assert(colo_dirty_begin(d, 40 * MiB, 4096));
	ck_assert_int_eq(colo_dirty_log_flush(colo_dirty_log(d)), 0);
	colo_dirty_end(d, 3 * MiB + 4096, 8192, 8);
	colo_dirty_end(d, 40 * MiB, 4096, 8);
	colo_dirty_commit(d, 7);
	colo_dirty_destroy(d);
}

START_TEST(test_map_epochs)
{
	struct colo_dirty *d;
	uint64_t bm[DISK / BS / 64];

	ck_assert_int_eq(colo_dirty_create(DISK, BS, &d), 0);
	ck_assert_uint_eq(colo_dirty_nblocks(d), DISK / BS);
	colo_dirty_mark(d, 0, 8192, 1);		/* blocks 0-1, epoch 1 */
	colo_dirty_mark(d, 12345, 6789, 2);	/* blocks 3-4, epoch 2 */
	colo_dirty_mark(d, DISK - 512, 512, 3); /* the last block, epoch 3 */
	colo_dirty_mark(d, DISK, 4096, 3);	/* past the end: nothing */
	colo_dirty_mark(d, 4096, 4096, 3);	/* block 1 again, epoch 3 */
	ck_assert_uint_eq(colo_dirty_count(d, 0), 2 + 2 + 1);
	ck_assert_uint_eq(colo_dirty_count(d, 1), 2 + 1 + 1);
	ck_assert_uint_eq(colo_dirty_count(d, 2), 1 + 1);
	ck_assert_uint_eq(colo_dirty_count(d, 3), 0);
	colo_dirty_since(d, 2, bm, sizeof(bm) / 8);
	ck_assert_uint_eq(bm[0], 1ULL << 1);
	ck_assert_uint_eq(bm[sizeof(bm) / 8 - 1], 1ULL << 63);
	colo_dirty_commit(d, 1);
	ck_assert_uint_eq(colo_dirty_count(d, 0), 1 + 2 + 1);
	colo_dirty_commit(d, 3);
	ck_assert_uint_eq(colo_dirty_count(d, 0), 0);
	/* More open epochs than maps: merged into the later epoch, never lost. */
	for (uint64_t e = 10; e < 20; e++)
		colo_dirty_mark(d, e * BS, BS, e);
	ck_assert_uint_eq(colo_dirty_count(d, 0), 10);
	ck_assert_uint_eq(colo_dirty_count(d, 18), 1);
	ck_assert_uint_ge(colo_dirty_count(d, 15), 4);
	colo_dirty_commit(d, 19);
	ck_assert_uint_eq(colo_dirty_count(d, 0), 0);
	colo_dirty_destroy(d);
}
END_TEST

/* Re-protect: each open epoch's set and the carried one as extents; carry_all keeps every block. */
START_TEST(test_sets)
{
	struct colo_dirty *d;
	uint64_t epochs[COLO_DIRTY_MAPS_MAX], ext[2], mib = 1 << 20;

	ck_assert_int_eq(colo_dirty_create(70 * mib, BS, &d), 0);
	ck_assert_int_eq(colo_dirty_maps(d, epochs), 0);
	colo_dirty_mark(d, 3 * mib + 4096, 4096, 4);	  /* extent 3, epoch 4 */
	colo_dirty_mark(d, 65 * mib - 4096, 8192, 5);	  /* extents 64 and 65, epoch 5 */
	colo_dirty_mark(d, 70 * mib - 512, 512, 5);	  /* the last extent, 69 */
	ck_assert_int_eq(colo_dirty_maps(d, epochs), 2);
	ck_assert_uint_eq(epochs[0], 4);
	ck_assert_uint_eq(epochs[1], 5);
	memset(ext, 0, sizeof(ext));
	colo_dirty_extents(d, 0, mib, ext);
	ck_assert_uint_eq(ext[0], 1ULL << 3);
	ck_assert_uint_eq(ext[1], 0);
	memset(ext, 0, sizeof(ext));
	colo_dirty_extents(d, 1, mib, ext);
	ck_assert_uint_eq(ext[0], 0);
	ck_assert_uint_eq(ext[1], 1ULL | 1ULL << 1 | 1ULL << 5);
	memset(ext, 0, sizeof(ext));
	colo_dirty_extents(d, -1, mib, ext); /* nothing carried yet */
	ck_assert_uint_eq(ext[0] | ext[1], 0);
	ck_assert_int_eq(colo_dirty_carry_all(d), 0);
	ck_assert_int_eq(colo_dirty_maps(d, epochs), 0);
	ck_assert_uint_eq(colo_dirty_count(d, UINT64_MAX), 1 + 2 + 1);
	colo_dirty_extents(d, -1, mib, ext);
	ck_assert_uint_eq(ext[0], 1ULL << 3);
	ck_assert_uint_eq(ext[1], 1ULL | 1ULL << 1 | 1ULL << 5);
	colo_dirty_commit(d, UINT64_MAX); /* a commit leaves carried blocks */
	ck_assert_uint_eq(colo_dirty_count(d, 0), 4);
	colo_dirty_forget_carried(d);
	ck_assert_uint_eq(colo_dirty_count(d, 0), 0);
	colo_dirty_destroy(d);
}
END_TEST

START_TEST(test_round_trip)
{
	struct colo_dirty_log *log;
	struct colo_dirty *d;
	struct stat st;

	make_log();
	ck_assert_int_eq(stat(log_path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0600);
	ck_assert_uint_eq(st.st_size, 4096 + 2 * 4096);
	log = log_open_ok(DISK, BS, NULL);
	ck_assert_mem_eq(colo_dirty_log_pair(log), pair_a, 16);
	ck_assert_uint_eq(colo_dirty_log_epoch(log), 7);
	ck_assert_uint_eq(colo_dirty_log_extent_size(log), MiB);
	ck_assert_uint_eq(colo_dirty_log_extents(log), 64);
	for (uint64_t e = 0; e < 64; e++)
		ck_assert_int_eq(colo_dirty_log_test(log, e), e == 3 || e == 40);
	/* Restarted: each logged extent is carried whole, whatever the epoch asked about. */
	ck_assert_int_eq(colo_dirty_create(DISK, BS, &d), 0);
	ck_assert_int_eq(colo_dirty_attach_log(d, log), 0);
	ck_assert_uint_eq(colo_dirty_count(d, 0), 2 * MiB / BS);
	ck_assert_uint_eq(colo_dirty_count(d, 1000), 2 * MiB / BS);
	colo_dirty_commit(d, 9);
	ck_assert_uint_eq(colo_dirty_count(d, 0), 2 * MiB / BS);
	/* A sync copied them: cleared, lazily: written by the close. */
	colo_dirty_forget_carried(d);
	ck_assert_uint_eq(colo_dirty_count(d, 0), 0);
	colo_dirty_destroy(d);
	log = log_open_ok(DISK, BS, pair_a);
	for (uint64_t e = 0; e < 64; e++)
		ck_assert(!colo_dirty_log_test(log, e));
	ck_assert_uint_eq(colo_dirty_log_epoch(log), 9);
	colo_dirty_log_close(log);
}
END_TEST

/* An extent with a write in flight is not cleared by a checkpoint, nor one with dirty blocks. */
START_TEST(test_clear_rules)
{
	struct colo_dirty *d;
	struct colo_dirty_log *log;

	ck_assert_int_eq(colo_dirty_create(DISK, BS, &d), 0);
	ck_assert_int_eq(colo_dirty_attach_log(d, log_open_ok(DISK, BS, NULL)), 0);
	log = colo_dirty_log(d);
	ck_assert(colo_dirty_begin(d, 0, 4096));    /* extent 0: flush needed */
	ck_assert(colo_dirty_begin(d, 4096, 4096)); /* still unsynced: waits too */
	ck_assert_int_eq(colo_dirty_log_flush(log), 0);
	ck_assert(!colo_dirty_begin(d, 8192, 4096));   /* already on disk: goes at once */
	ck_assert(colo_dirty_begin(d, 5 * MiB, 4096)); /* extent 5 */
	ck_assert_int_eq(colo_dirty_log_flush(log), 0);
	colo_dirty_end(d, 0, 4096, 1);
	colo_dirty_end(d, 4096, 4096, 1);
	colo_dirty_end(d, 5 * MiB, 4096, 2);
	colo_dirty_commit(d, 1); /* extent 0: a write still in flight */
	ck_assert(colo_dirty_log_test(log, 0));
	ck_assert(colo_dirty_log_test(log, 5)); /* epoch 2 is dirty */
	colo_dirty_end(d, 8192, 4096, 2);
	colo_dirty_commit(d, 1);
	ck_assert(colo_dirty_log_test(log, 0)); /* its block is epoch 2's */
	colo_dirty_commit(d, 2);
	ck_assert(!colo_dirty_log_test(log, 0));
	ck_assert(!colo_dirty_log_test(log, 5));
	ck_assert_uint_eq(colo_dirty_count(d, 0), 0);
	colo_dirty_destroy(d);
}
END_TEST

/* The flush thread: generations, what waits for which, and the eventfd that says it ended. */
START_TEST(test_async_flush)
{
	struct colo_dirty *d;
	struct colo_dirty_log *log;
	struct pollfd pfd;

	ck_assert_int_eq(colo_dirty_create(DISK, BS, &d), 0);
	ck_assert_int_eq(colo_dirty_attach_log(d, log_open_ok(DISK, BS, NULL)), 0);
	log = colo_dirty_log(d);
	ck_assert_uint_eq(colo_dirty_begin(d, 0, 4096), 1);
	ck_assert_int_eq(colo_dirty_log_flush_start(log), 0);
	ck_assert(colo_dirty_log_busy(log));
	ck_assert_uint_eq(colo_dirty_begin(d, 4096, 4096), 1);	  /* extent 0: in the flush */
	ck_assert_uint_eq(colo_dirty_begin(d, 2 * MiB, 4096), 2); /* extent 2: the next one */
	ck_assert_int_eq(colo_dirty_log_flush_start(log), 0);	  /* one at a time */
	pfd = (struct pollfd){.fd = colo_dirty_log_fd(log), .events = POLLIN};
	ck_assert_int_eq(poll(&pfd, 1, 10000), 1);
	ck_assert_int_eq(colo_dirty_log_flush_reap(log), 0);
	ck_assert_uint_eq(colo_dirty_log_synced_gen(log), 1);
	ck_assert_int_eq(colo_dirty_log_flush_reap(log), -EAGAIN);
	ck_assert(!colo_dirty_log_busy(log));
	ck_assert_uint_eq(colo_dirty_begin(d, 8192, 4096), 0); /* extent 0 is durable */
	ck_assert_uint_eq(colo_dirty_log_need(log, 2), 2);
	ck_assert_int_eq(colo_dirty_log_flush_start(log), 0);
	ck_assert_int_eq(poll(&pfd, 1, 10000), 1);
	ck_assert_int_eq(colo_dirty_log_flush_reap(log), 0);
	ck_assert_uint_eq(colo_dirty_log_synced_gen(log), 2);
	ck_assert_uint_eq(colo_dirty_log_need(log, 2), 0);
	ck_assert_uint_eq(colo_dirty_log_flushes(log), 2);
	/*
	 * A lazy clear in flight: extent 2 cleared and handed to a flush, then dirtied again
	 * before the flush ends.  It must wait for the flush after (the one in flight takes the
	 * bit off the disk), even though the disk still has the bit now.
	 */
	colo_dirty_end(d, 0, 4096, 1);
	colo_dirty_end(d, 4096, 4096, 1);
	colo_dirty_end(d, 8192, 4096, 1);
	colo_dirty_end(d, 2 * MiB, 4096, 1);
	colo_dirty_commit(d, 1);
	ck_assert(!colo_dirty_log_test(log, 2));
	ck_assert_int_eq(colo_dirty_log_flush_start(log), 0);
	ck_assert_uint_eq(colo_dirty_begin(d, 2 * MiB, 4096), 4);
	ck_assert_int_eq(poll(&pfd, 1, 10000), 1);
	ck_assert_int_eq(colo_dirty_log_flush_reap(log), 0);
	ck_assert_uint_eq(colo_dirty_log_need(log, 2), 4);
	ck_assert_uint_eq(colo_dirty_log_need(log, 0), 4); /* 0 was cleared too */
	ck_assert_int_eq(colo_dirty_log_flush_start(log), 0);
	ck_assert_int_eq(poll(&pfd, 1, 10000), 1);
	ck_assert_int_eq(colo_dirty_log_flush_reap(log), 0);
	ck_assert_uint_eq(colo_dirty_log_need(log, 2), 0);
	colo_dirty_end(d, 2 * MiB, 4096, 2);
	/* A close with a flush in flight waits for it. */
	ck_assert_uint_eq(colo_dirty_begin(d, 9 * MiB, 4096), 5);
	ck_assert_int_eq(colo_dirty_log_flush_start(log), 0);
	colo_dirty_destroy(d);
	log = log_open_ok(DISK, BS, NULL);
	for (uint64_t e = 0; e < 64; e++)
		ck_assert_int_eq(colo_dirty_log_test(log, e), e == 2 || e == 9);
	colo_dirty_log_close(log);
}
END_TEST

START_TEST(test_other_disk)
{
	char msg[200];

	make_log();
	snprintf(msg, sizeof(msg), "made for a disk of %llu bytes, this disk has %llu bytes",
		 (unsigned long long)DISK, (unsigned long long)(DISK + 512));
	expect_refused(DISK + 512, BS, NULL, -EINVAL, msg);
	expect_refused(DISK, 8192, NULL, -EINVAL, "made for block_size 4096, this disk uses 8192");
	expect_refused(DISK, BS, pair_b, -EINVAL,
		       "belongs to pair 0102030405060708090a0b0c0d0e0f10, not to pair "
		       "a0a10000000000000000000000000000");
	colo_dirty_log_close(log_open_ok(DISK, BS, pair_a));
}
END_TEST

START_TEST(test_truncated)
{
	make_log();
	ck_assert_int_eq(truncate(log_path, 4096 + 4096), 0);
	expect_refused(DISK, BS, NULL, -EBADMSG,
		       "truncated: 8192 bytes, the log of this disk has 12288");
	ck_assert_int_eq(truncate(log_path, 1000), 0);
	expect_refused(DISK, BS, NULL, -EBADMSG,
		       "truncated: 1000 bytes, shorter than the 4096-byte header area");
	ck_assert_int_eq(truncate(log_path, 0), 0);
	expect_refused(DISK, BS, NULL, -EBADMSG,
		       "truncated: 0 bytes, shorter than the 4096-byte header area");
}
END_TEST

START_TEST(test_bad_checksum)
{
	uint8_t x = 0x5a;

	make_log();
	/* One copy torn (as by a crash in a write): the other is used. */
	poke(100, &x, 1);
	colo_dirty_log_close(log_open_ok(DISK, BS, pair_a));
	poke(512 + 100, &x, 1);
	expect_refused(DISK, BS, NULL, -EBADMSG, "bad checksum in the header (both copies)");
}
END_TEST

START_TEST(test_bad_page_checksum)
{
	struct colo_dirty_log *log;
	uint8_t x = 0x5a;

	make_log();
	/* Page 0's slot 0 holds the older copy (slot 1 got the synced set of extent 3). */
	poke(4096 + 50, &x, 1);
	log = log_open_ok(DISK, BS, pair_a);
	ck_assert(colo_dirty_log_test(log, 3));
	colo_dirty_log_close(log);
	poke(4096 + 4096 + 50, &x, 1);
	expect_refused(DISK, BS, NULL, -EBADMSG, "bad checksum in bitmap page 0 (both copies)");
}
END_TEST

START_TEST(test_not_a_log)
{
	char junk[12288];

	memset(junk, 'x', sizeof(junk));
	ck_assert_int_eq(close(open(log_path, O_CREAT | O_WRONLY, 0600)), 0);
	poke(0, junk, sizeof(junk));
	expect_refused(DISK, BS, NULL, -EBADMSG, "not a dirty log (magic 0x7878787878787878)");
}
END_TEST

START_TEST(test_mode)
{
	struct stat st;

	make_log();
	ck_assert_int_eq(chmod(log_path, 0644), 0);
	expect_refused(DISK, BS, NULL, -EPERM, "mode 0644, must be 0600 (owner read-write only)");
	ck_assert_int_eq(chmod(log_path, 0640), 0);
	expect_refused(DISK, BS, NULL, -EPERM, "mode 0640, must be 0600 (owner read-write only)");
	ck_assert_int_eq(chmod(log_path, 0600), 0);
	colo_dirty_log_close(log_open_ok(DISK, BS, pair_a));
	/* A new log is 0600 whatever the umask. */
	unlink(log_path);
	umask(0);
	colo_dirty_log_close(log_open_ok(DISK, BS, NULL));
	umask(022);
	ck_assert_int_eq(stat(log_path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0600);
}
END_TEST

START_TEST(test_locked)
{
	struct colo_dirty_log_geometry g = {.disk_size = DISK, .block_size = BS};
	struct colo_dirty_log *a = log_open_ok(DISK, BS, NULL), *b = NULL;
	char why[512], want[512];

	ck_assert_int_eq(colo_dirty_log_open(log_path, &g, NULL, &b, why, sizeof(why)), -EAGAIN);
	snprintf(want, sizeof(want), "dirty_log=%s: in use by another tapdisk", log_path);
	ck_assert_str_eq(why, want);
	colo_dirty_log_close(a);
}
END_TEST

/* A disk of several bitmap pages, a block size above 1 MiB's extent, a short last extent. */
START_TEST(test_big_geometry)
{
	uint64_t disk = 40000ULL * 2 * MiB + 512; /* 40001 extents of 2 MiB: 2 pages */
	struct colo_dirty_log_geometry g = {.disk_size = disk, .block_size = 2 * MiB};
	struct colo_dirty_log *log = NULL;
	struct colo_dirty *d;
	char why[256];
	struct stat st;

	ck_assert_int_eq(colo_dirty_log_open(log_path, &g, NULL, &log, why, sizeof(why)), 0);
	ck_assert_uint_eq(colo_dirty_log_extent_size(log), 2 * MiB);
	ck_assert_uint_eq(colo_dirty_log_extents(log), 40001);
	ck_assert_int_eq(colo_dirty_create(disk, 2 * MiB, &d), 0);
	ck_assert_int_eq(colo_dirty_attach_log(d, log), 0);
	ck_assert(colo_dirty_begin(d, disk - 512, 512));
	ck_assert_int_eq(colo_dirty_log_flush(log), 0);
	colo_dirty_end(d, disk - 512, 512, 1);
	colo_dirty_destroy(d);
	ck_assert_int_eq(stat(log_path, &st), 0);
	ck_assert_uint_eq(st.st_size, 4096 + 2 * 2 * 4096);
	ck_assert_int_eq(colo_dirty_log_open(log_path, &g, NULL, &log, why, sizeof(why)), 0);
	ck_assert(colo_dirty_log_test(log, 40000));
	ck_assert(!colo_dirty_log_test(log, 39999));
	colo_dirty_log_close(log);
}
END_TEST

static Suite *colo_dirty_suite(void)
{
	Suite *s = suite_create("colo_dirty");
	TCase *tc = tcase_create("core");

	tcase_add_unchecked_fixture(tc, dir_setup, dir_teardown);
	tcase_add_checked_fixture(tc, per_test_setup, NULL);
	tcase_add_test(tc, test_map_epochs);
	tcase_add_test(tc, test_sets);
	tcase_add_test(tc, test_round_trip);
	tcase_add_test(tc, test_clear_rules);
	tcase_add_test(tc, test_async_flush);
	tcase_add_test(tc, test_other_disk);
	tcase_add_test(tc, test_truncated);
	tcase_add_test(tc, test_bad_checksum);
	tcase_add_test(tc, test_bad_page_checksum);
	tcase_add_test(tc, test_not_a_log);
	tcase_add_test(tc, test_mode);
	tcase_add_test(tc, test_locked);
	tcase_add_test(tc, test_big_geometry);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(colo_dirty_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

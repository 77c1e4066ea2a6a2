/* The libaio I/O queue against real files: batching, completion, errors, fdatasync. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libaio-backend.h"
#include "tapdisk-scheduler.h"

static scheduler_t s;
static struct tioq q;
static char path[] = "/tmp/test-ioqueue-XXXXXX";
static int fd;

struct io {
	struct tiocb tiocb;
	int done;
	int err;
	char *buf;
};

static void io_done(void *arg, struct tiocb *tiocb, int err)
{
	struct io *io = arg;

	ck_assert_ptr_eq(tiocb, &io->tiocb);
	io->done++;
	io->err = err;
}

static void setup(void)
{
	ck_assert_int_eq(scheduler_initialize(&s), 0);
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, 1 << 20), 0);
}

static void teardown(void)
{
	tioq_free(&q);
	scheduler_destroy(&s);
	close(fd);
	unlink(path);
	strcpy(path, "/tmp/test-ioqueue-XXXXXX");
}

/* Runs the loop until @n completions have been counted in @ios, or fails after 5 s. */
static void wait_done(struct io *ios, int nios, int n)
{
	for (int rounds = 0; rounds < 500; rounds++) {
		int total = 0;

		for (int i = 0; i < nios; i++)
			total += ios[i].done;
		if (total >= n)
			return;
		tioq_submit_all(&q);
		scheduler_wait_for_events(&s, 10);
	}
	ck_abort_msg("I/O did not complete");
}

static char *aligned(size_t size, int fill)
{
	void *buf;

	ck_assert_int_eq(posix_memalign(&buf, 4096, size), 0);
	memset(buf, fill, size);
	return buf;
}

START_TEST(test_writes_then_reads_exact_bytes)
{
	enum { N = 40 };
	struct io w[N] = { 0 }, r[N] = { 0 };

	/* A queue smaller than the batch: the rest must go in as slots free up. */
	ck_assert_int_eq(tioq_init(&q, &s, 8), 0);
	for (int i = 0; i < N; i++) {
		w[i].buf = aligned(4096, 0x10 + i);
		tioq_prep_rw(&w[i].tiocb, fd, 1, w[i].buf, 4096, i * 8192LL, io_done, &w[i]);
		tioq_queue(&q, &w[i].tiocb);
	}
	ck_assert_int_eq(q.queued, N);
	wait_done(w, N, N);
	for (int i = 0; i < N; i++) {
		ck_assert_int_eq(w[i].done, 1);
		ck_assert_int_eq(w[i].err, 0);
	}
	for (int i = 0; i < N; i++) {
		r[i].buf = aligned(4096, 0);
		tioq_prep_rw(&r[i].tiocb, fd, 0, r[i].buf, 4096, i * 8192LL, io_done, &r[i]);
		tioq_queue(&q, &r[i].tiocb);
	}
	wait_done(r, N, N);
	for (int i = 0; i < N; i++) {
		ck_assert_int_eq(r[i].err, 0);
		ck_assert_int_eq(memcmp(r[i].buf, w[i].buf, 4096), 0);
		/* The gaps between the writes were never written and still read as zeros. */
		char gap[4096];

		ck_assert_int_eq(pread(fd, gap, sizeof(gap), i * 8192LL + 4096), 4096);
		for (int j = 0; j < 4096; j++)
			ck_assert_int_eq(gap[j], 0);
		free(w[i].buf);
		free(r[i].buf);
	}
	ck_assert_int_eq(q.inflight, 0);
	ck_assert_int_eq(q.queued, 0);
	ck_assert_int_eq(q.completed, 2 * N);
}
END_TEST

START_TEST(test_short_read_is_eio)
{
	struct io r = { 0 };

	ck_assert_int_eq(tioq_init(&q, &s, 8), 0);
	r.buf = aligned(8192, 0);
	/* The file is 1 MiB long: 8 KiB from 1 MiB - 4 KiB returns only 4 KiB. */
	tioq_prep_rw(&r.tiocb, fd, 0, r.buf, 8192, (1 << 20) - 4096, io_done, &r);
	tioq_queue(&q, &r.tiocb);
	wait_done(&r, 1, 1);
	ck_assert_int_eq(r.err, -EIO);
	free(r.buf);
}
END_TEST

START_TEST(test_bad_fd_fails_alone)
{
	struct io io[3] = { 0 };

	ck_assert_int_eq(tioq_init(&q, &s, 8), 0);
	for (int i = 0; i < 3; i++)
		io[i].buf = aligned(4096, 0x5a);
	tioq_prep_rw(&io[0].tiocb, fd, 1, io[0].buf, 4096, 0, io_done, &io[0]);
	tioq_prep_rw(&io[1].tiocb, 999, 1, io[1].buf, 4096, 0, io_done, &io[1]);
	tioq_prep_rw(&io[2].tiocb, fd, 1, io[2].buf, 4096, 4096, io_done, &io[2]);
	for (int i = 0; i < 3; i++)
		tioq_queue(&q, &io[i].tiocb);
	wait_done(io, 3, 3);
	ck_assert_int_eq(io[0].err, 0);
	ck_assert_int_eq(io[1].err, -EBADF);
	ck_assert_int_eq(io[2].err, 0);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(io[i].done, 1);
		free(io[i].buf);
	}
}
END_TEST

START_TEST(test_fdatasync_completes)
{
	struct io w = { 0 }, f = { 0 };
	char back[4096];

	ck_assert_int_eq(tioq_init(&q, &s, 8), 0);
	w.buf = aligned(4096, 0xc3);
	tioq_prep_rw(&w.tiocb, fd, 1, w.buf, 4096, 65536, io_done, &w);
	tioq_queue(&q, &w.tiocb);
	wait_done(&w, 1, 1);
	tioq_prep_fdatasync(&f.tiocb, fd, io_done, &f);
	tioq_queue(&q, &f.tiocb);
	wait_done(&f, 1, 1);
	ck_assert_int_eq(f.err, 0);
	ck_assert_int_eq(pread(fd, back, sizeof(back), 65536), 4096);
	ck_assert_int_eq(memcmp(back, w.buf, 4096), 0);
	free(w.buf);
}
END_TEST

START_TEST(test_o_direct_file)
{
	struct io w = { 0 }, r = { 0 };
	int dfd = open(path, O_RDWR | O_DIRECT);

	if (dfd < 0 && errno == EINVAL)
		return; /* /tmp is tmpfs here: nothing to test */
	ck_assert_int_ge(dfd, 0);
	ck_assert_int_eq(tioq_init(&q, &s, 8), 0);
	w.buf = aligned(1 << 16, 0x77);
	r.buf = aligned(1 << 16, 0);
	tioq_prep_rw(&w.tiocb, dfd, 1, w.buf, 1 << 16, 1 << 16, io_done, &w);
	tioq_queue(&q, &w.tiocb);
	wait_done(&w, 1, 1);
	ck_assert_int_eq(w.err, 0);
	tioq_prep_rw(&r.tiocb, dfd, 0, r.buf, 1 << 16, 1 << 16, io_done, &r);
	tioq_queue(&q, &r.tiocb);
	wait_done(&r, 1, 1);
	ck_assert_int_eq(r.err, 0);
	ck_assert_int_eq(memcmp(r.buf, w.buf, 1 << 16), 0);
	free(w.buf);
	free(r.buf);
	close(dfd);
}
END_TEST

int main(void)
{
	Suite *suite = suite_create("ioqueue");
	TCase *tc = tcase_create("libaio");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_writes_then_reads_exact_bytes);
	tcase_add_test(tc, test_short_read_is_eio);
	tcase_add_test(tc, test_bad_fd_fails_alone);
	tcase_add_test(tc, test_fdatasync_completes);
	tcase_add_test(tc, test_o_direct_file);
	suite_add_tcase(suite, tc);
	sr = srunner_create(suite);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}

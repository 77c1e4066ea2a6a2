/*
 * The VBD request lifecycle with the real runtime and a scripted in-memory driver:
 * completion, -EBUSY retries, errors, splitting, pause/resume, close, filter chains.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tapdisk-disktype.h"
#include "tapdisk-driver.h"
#include "tapdisk-interface.h"
#include "tapdisk-server.h"
#include "tapdisk-vbd.h"
#include "timeout-math.h"

#define DISK_SECS 2048 /* 1 MiB */

/* The scripted driver's disk, and what the test tells it to do. */
static struct {
	char data[DISK_SECS << SECTOR_SHIFT];
	int busy;  /* answer -EBUSY this many times */
	int fail;  /* answer this error once */
	int opens, closes, writes, reads, flushes;
} mem;

static int mem_open(td_driver_t *driver, const char *name, struct td_vbd_encryption *e,
		    td_flag_t flags)
{
	mem.opens++;
	driver->info.size = DISK_SECS;
	driver->info.sector_size = 512;
	return 0;
}

static int mem_close(td_driver_t *driver)
{
	mem.closes++;
	return 0;
}

static void mem_queue(td_driver_t *driver, td_request_t treq)
{
	char *at = mem.data + (treq.sec << SECTOR_SHIFT);
	size_t len = (size_t)treq.secs << SECTOR_SHIFT;

	if (mem.busy) {
		mem.busy--;
		td_complete_request(treq, -EBUSY);
		return;
	}
	if (mem.fail) {
		int err = mem.fail;

		mem.fail = 0;
		td_complete_request(treq, err);
		return;
	}
	if (treq.op == TD_OP_WRITE) {
		memcpy(at, treq.buf, len);
		mem.writes++;
	} else {
		memcpy(treq.buf, at, len);
		mem.reads++;
	}
	td_complete_request(treq, 0);
}

static void mem_flush(td_driver_t *driver, td_request_t treq)
{
	mem.flushes++;
	td_complete_request(treq, 0);
}

static int mem_parent(td_driver_t *driver, td_disk_id_t *id)
{
	return TD_NO_PARENT;
}

static struct tap_disk mem_disk = {
	.disk_type = "mem",
	.private_data_size = 1,
	.td_open = mem_open,
	.td_close = mem_close,
	.td_queue_read = mem_queue,
	.td_queue_write = mem_queue,
	.td_queue_flush = mem_flush,
	.td_get_parent_id = mem_parent,
};

/* The blktap3-style filter of compat-driver.c. */
extern struct tap_disk tapdisk_compat_filter;
extern int compat_forwarded;

struct result {
	int done;
	int err;
};

static void vreq_done(td_vbd_request_t *vreq, int err, void *token, int final)
{
	struct result *r = token;

	r->done++;
	r->err = err;
}

static td_vbd_t *vbd;
static char ctl_dir[] = "/tmp/test-vbd-XXXXXX";

static void run_until(struct result *r, int n)
{
	for (int i = 0; i < 2000 && r->done < n; i++)
		tapdisk_server_iterate();
	ck_assert_int_eq(r->done, n);
}

static void tick(event_id_t id, char mode, void *private)
{
}

static void setup(void)
{
	static int initialized;

	if (!initialized) {
		ck_assert_ptr_nonnull(mkdtemp(ctl_dir));
		setenv("BLKTAP_CONTROL_DIR", ctl_dir, 1);
		ck_assert_int_eq(tapdisk_server_init(), 0);
		/* A 1 ms tick, so that an iteration with nothing to do returns at once. */
		ck_assert_int_gt(tapdisk_server_register_event(SCHEDULER_POLL_TIMEOUT, -1, TV_MSECS(1),
							       tick, NULL), 0);
		tapdisk_disk_drivers[DISK_TYPE_RAM] = &mem_disk;
		tapdisk_disk_drivers[DISK_TYPE_COLO] = &tapdisk_compat_filter;
		initialized = 1;
	}
	memset(&mem, 0, sizeof(mem));
	compat_forwarded = 0;
	vbd = tapdisk_vbd_create(7);
	ck_assert_ptr_nonnull(vbd);
	tapdisk_server_add_vbd(vbd);
	ck_assert_int_eq(tapdisk_vbd_open_vdi(vbd, "ram:/mem", 0, -1), 0);
}

/* The done callback of pause and close: sets the int it is given. */
static void set_flag(td_vbd_t *v, int err, void *arg)
{
	*(int *)arg = 1;
}

/* Runs the loop until *@flag is set, for at most @rounds iterations. */
static void run_until_flag(int *flag, int rounds)
{
	for (int i = 0; i < rounds && !*flag; i++)
		tapdisk_server_iterate();
	ck_assert_int_eq(*flag, 1);
}

static void teardown(void)
{
	int done = 0;

	ck_assert_int_eq(tapdisk_vbd_close(vbd, set_flag, &done), 0);
	run_until_flag(&done, 1000);
	tapdisk_server_remove_vbd(vbd);
	tapdisk_vbd_free(vbd);
}

static void fill_vreq(td_vbd_request_t *vreq, int op, td_sector_t sec, struct td_iovec *iov, int n,
		      struct result *r)
{
	memset(vreq, 0, sizeof(*vreq));
	vreq->op = op;
	vreq->sec = sec;
	vreq->iov = iov;
	vreq->iovcnt = n;
	vreq->cb = vreq_done;
	vreq->token = r;
	vreq->name = "test";
}

START_TEST(test_write_split_over_iovecs_completes_once)
{
	char a[1024], b[512];
	struct td_iovec iov[2] = { { a, 2 }, { b, 1 } };
	td_vbd_request_t vreq;
	struct result r = { 0 };

	memset(a, 0xaa, sizeof(a));
	memset(b, 0xbb, sizeof(b));
	fill_vreq(&vreq, TD_OP_WRITE, 10, iov, 2, &r);
	ck_assert_int_eq(tapdisk_vbd_queue_request(vbd, &vreq), 0);
	ck_assert_int_eq(r.done, 0); /* never completed inside queue_request */
	run_until(&r, 1);
	ck_assert_int_eq(r.err, 0);
	ck_assert_int_eq(mem.writes, 2);
	for (int i = 0; i < 1024; i++)
		ck_assert_int_eq((unsigned char)mem.data[10 * 512 + i], 0xaa);
	for (int i = 0; i < 512; i++)
		ck_assert_int_eq((unsigned char)mem.data[12 * 512 + i], 0xbb);
	ck_assert_int_eq(mem.data[13 * 512], 0);
	ck_assert_int_eq(mem.data[10 * 512 - 1], 0);
}
END_TEST

START_TEST(test_ebusy_is_retried)
{
	char buf[512] = { 0x5 };
	struct td_iovec iov = { buf, 1 };
	td_vbd_request_t vreq;
	struct result r = { 0 };

	mem.busy = 3;
	fill_vreq(&vreq, TD_OP_WRITE, 0, &iov, 1, &r);
	ck_assert_int_eq(tapdisk_vbd_queue_request(vbd, &vreq), 0);
	run_until(&r, 1);
	ck_assert_int_eq(r.err, 0);
	ck_assert_int_eq(mem.writes, 1);
	ck_assert_int_eq(vbd->retries, 3);
	ck_assert_int_eq(mem.data[0], 0x5);
}
END_TEST

START_TEST(test_eio_is_returned_without_retry)
{
	char buf[512];
	struct td_iovec iov = { buf, 1 };
	td_vbd_request_t vreq;
	struct result r = { 0 };

	mem.fail = -EIO;
	fill_vreq(&vreq, TD_OP_READ, 0, &iov, 1, &r);
	ck_assert_int_eq(tapdisk_vbd_queue_request(vbd, &vreq), 0);
	run_until(&r, 1);
	ck_assert_int_eq(r.err, -EIO);
	ck_assert_int_eq(vbd->retries, 0);
	ck_assert_int_eq(vbd->errors, 1);
}
END_TEST

START_TEST(test_bad_requests_are_refused_up_front)
{
	char buf[1024];
	struct td_iovec iov = { buf, 2 }, zero = { buf, 0 };
	td_vbd_request_t vreq;
	struct result r = { 0 };

	fill_vreq(&vreq, TD_OP_READ, DISK_SECS - 1, &iov, 1, &r);
	ck_assert_int_eq(tapdisk_vbd_queue_request(vbd, &vreq), -EINVAL);
	fill_vreq(&vreq, TD_OP_READ, ~0ULL, &iov, 1, &r);
	ck_assert_int_eq(tapdisk_vbd_queue_request(vbd, &vreq), -EINVAL);
	fill_vreq(&vreq, TD_OP_WRITE, 0, &zero, 1, &r);
	ck_assert_int_eq(tapdisk_vbd_queue_request(vbd, &vreq), -EINVAL);
	fill_vreq(&vreq, TD_OP_FLUSH, 0, &iov, 1, &r);
	ck_assert_int_eq(tapdisk_vbd_queue_request(vbd, &vreq), -EINVAL);
	fill_vreq(&vreq, 99, 0, &iov, 1, &r);
	ck_assert_int_eq(tapdisk_vbd_queue_request(vbd, &vreq), -EOPNOTSUPP);
	for (int i = 0; i < 10; i++)
		tapdisk_server_iterate();
	ck_assert_int_eq(r.done, 0);
	ck_assert_int_eq(mem.reads + mem.writes, 0);
}
END_TEST

START_TEST(test_pause_holds_requests_until_resume)
{
	char buf[512];
	struct td_iovec iov = { buf, 1 };
	td_vbd_request_t vreq;
	struct result r = { 0 };
	int done = 0;

	ck_assert_int_eq(tapdisk_vbd_pause(vbd, set_flag, &done), 0);
	run_until_flag(&done, 10);
	ck_assert_int_eq(vbd->state, TD_VBD_PAUSED);
	ck_assert_int_eq(mem.closes, 1);

	memset(buf, 0x77, sizeof(buf));
	fill_vreq(&vreq, TD_OP_WRITE, 5, &iov, 1, &r);
	ck_assert_int_eq(tapdisk_vbd_queue_request(vbd, &vreq), 0);
	for (int i = 0; i < 10; i++)
		tapdisk_server_iterate();
	ck_assert_int_eq(r.done, 0); /* held */
	ck_assert_int_eq(mem.writes, 0);

	ck_assert_int_eq(tapdisk_vbd_resume(vbd, NULL), 0);
	ck_assert_int_eq(mem.opens, 2); /* the chain was reopened */
	run_until(&r, 1);
	ck_assert_int_eq(r.err, 0);
	ck_assert_int_eq(mem.data[5 * 512], 0x77);
	ck_assert_int_eq(tapdisk_vbd_resume(vbd, NULL), -EINVAL); /* not paused */
}
END_TEST

START_TEST(test_close_while_paused_fails_held_requests)
{
	char buf[512];
	struct td_iovec iov = { buf, 1 };
	td_vbd_request_t vreq;
	struct result r = { 0 };
	int done = 0;

	ck_assert_int_eq(tapdisk_vbd_pause(vbd, set_flag, &done), 0);
	run_until_flag(&done, 10);
	fill_vreq(&vreq, TD_OP_WRITE, 0, &iov, 1, &r);
	ck_assert_int_eq(tapdisk_vbd_queue_request(vbd, &vreq), 0);
	done = 0;
	ck_assert_int_eq(tapdisk_vbd_close(vbd, set_flag, &done), 0);
	run_until(&r, 1);
	ck_assert_int_eq(r.err, -EIO);
	ck_assert_int_eq(mem.writes, 0);
	ck_assert_int_eq(done, 1);
	ck_assert_int_eq(vbd->state, TD_VBD_CLOSED);
	/* Requests to a closed VBD are refused; teardown's close is a no-op. */
	ck_assert_int_eq(tapdisk_vbd_queue_request(vbd, &vreq), -ENODEV);
}
END_TEST

START_TEST(test_flush_reaches_the_driver)
{
	td_vbd_request_t vreq;
	struct result r = { 0 };

	fill_vreq(&vreq, TD_OP_FLUSH, 0, NULL, 0, &r);
	ck_assert_int_eq(tapdisk_vbd_queue_request(vbd, &vreq), 0);
	run_until(&r, 1);
	ck_assert_int_eq(r.err, 0);
	ck_assert_int_eq(mem.flushes, 1);
}
END_TEST

START_TEST(test_filter_chain_forwards_and_takes_parent_size)
{
	td_vbd_t *chain = tapdisk_vbd_create(8);
	char buf[512];
	struct td_iovec iov = { buf, 1 };
	td_vbd_request_t vreq;
	struct result r = { 0 };
	int done = 0;

	tapdisk_server_add_vbd(chain);
	ck_assert_int_eq(tapdisk_vbd_open_vdi(chain, "colo:/mem", 0, -1), 0);
	ck_assert_int_eq(chain->disk_info.size, DISK_SECS);
	memset(buf, 0x42, sizeof(buf));
	fill_vreq(&vreq, TD_OP_WRITE, 100, &iov, 1, &r);
	ck_assert_int_eq(tapdisk_vbd_queue_request(chain, &vreq), 0);
	run_until(&r, 1);
	ck_assert_int_eq(r.err, 0);
	ck_assert_int_eq(compat_forwarded, 1);
	ck_assert_int_eq(mem.writes, 1);
	ck_assert_int_eq(mem.data[100 * 512], 0x42);
	/* A flush passes a filter without td_queue_flush on to its parent. */
	fill_vreq(&vreq, TD_OP_FLUSH, 0, NULL, 0, &r);
	ck_assert_int_eq(tapdisk_vbd_queue_request(chain, &vreq), 0);
	run_until(&r, 2);
	ck_assert_int_eq(mem.flushes, 1);

	ck_assert_int_eq(tapdisk_vbd_close(chain, set_flag, &done), 0);
	run_until_flag(&done, 100);
	tapdisk_server_remove_vbd(chain);
	tapdisk_vbd_free(chain);
}
END_TEST

int main(void)
{
	Suite *suite = suite_create("vbd");
	TCase *tc = tcase_create("lifecycle");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_write_split_over_iovecs_completes_once);
	tcase_add_test(tc, test_ebusy_is_retried);
	tcase_add_test(tc, test_eio_is_returned_without_retry);
	tcase_add_test(tc, test_bad_requests_are_refused_up_front);
	tcase_add_test(tc, test_pause_holds_requests_until_resume);
	tcase_add_test(tc, test_close_while_paused_fails_held_requests);
	tcase_add_test(tc, test_flush_reaches_the_driver);
	tcase_add_test(tc, test_filter_chain_forwards_and_takes_parent_size);
	suite_add_tcase(suite, tc);
	sr = srunner_create(suite);
	/* One process: the server and its event loop are set up once. */
	srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	rmdir(ctl_dir);
	return failed ? 1 : 0;
}

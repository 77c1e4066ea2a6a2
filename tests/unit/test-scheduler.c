/* The event loop: fd events, periodic timers, masking, and unregistering from callbacks. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "tapdisk-scheduler.h"
#include "timeout-math.h"

static scheduler_t s;
static int pipefd[2];

struct counter {
	int calls;
	char last_mode;
	event_id_t id;
	event_id_t victim; /* unregistered by the callback when set */
	int drain;         /* fd the callback reads one byte from, when readable */
};

static void count_cb(event_id_t id, char mode, void *private)
{
	struct counter *c = private;
	char byte;

	c->calls++;
	c->last_mode = mode;
	if ((mode & SCHEDULER_POLL_READ_FD) && c->drain >= 0)
		(void)!read(c->drain, &byte, 1);
	if (c->victim)
		scheduler_unregister_event(&s, c->victim);
}

static void setup(void)
{
	ck_assert_int_eq(scheduler_initialize(&s), 0);
	ck_assert_int_eq(pipe(pipefd), 0);
}

static void teardown(void)
{
	scheduler_destroy(&s);
	close(pipefd[0]);
	close(pipefd[1]);
}

START_TEST(test_register_rejects_bad_arguments)
{
	struct counter c = { .drain = -1 };

	ck_assert_int_eq(scheduler_register_event(&s, SCHEDULER_POLL_READ_FD, 0, TV_ZERO, NULL, &c),
			 -EINVAL);
	ck_assert_int_eq(scheduler_register_event(&s, 0, pipefd[0], TV_ZERO, count_cb, &c), -EINVAL);
	ck_assert_int_eq(scheduler_register_event(&s, SCHEDULER_POLL_READ_FD, -1, TV_ZERO, count_cb, &c),
			 -EBADF);
	ck_assert_int_eq(scheduler_event_count(&s), 0);
}
END_TEST

START_TEST(test_read_event_fires_only_when_readable)
{
	struct counter c = { .drain = -1 };
	event_id_t id = scheduler_register_event(&s, SCHEDULER_POLL_READ_FD, pipefd[0], TV_ZERO,
						 count_cb, &c);

	ck_assert_int_gt(id, 0);
	ck_assert_int_eq(scheduler_wait_for_events(&s, 0), 0);
	ck_assert_int_eq(c.calls, 0);
	ck_assert_int_eq(write(pipefd[1], "x", 1), 1);
	ck_assert_int_eq(scheduler_wait_for_events(&s, 1000), 1);
	ck_assert_int_eq(c.calls, 1);
	ck_assert_int_eq(c.last_mode, SCHEDULER_POLL_READ_FD);
}
END_TEST

START_TEST(test_reader_and_writer_share_one_fd)
{
	struct counter r = { .drain = -1 }, w = { .drain = -1 };
	int sv[2];

	ck_assert_int_eq(pipe(sv), 0);
	/* The write end of a pipe is writable at once; the read end of ours is not. */
	ck_assert_int_gt(scheduler_register_event(&s, SCHEDULER_POLL_WRITE_FD, pipefd[1], TV_ZERO,
						  count_cb, &w), 0);
	ck_assert_int_gt(scheduler_register_event(&s, SCHEDULER_POLL_READ_FD, pipefd[0], TV_ZERO,
						  count_cb, &r), 0);
	ck_assert_int_eq(scheduler_wait_for_events(&s, 1000), 1);
	ck_assert_int_eq(w.calls, 1);
	ck_assert_int_eq(w.last_mode, SCHEDULER_POLL_WRITE_FD);
	ck_assert_int_eq(r.calls, 0);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

START_TEST(test_two_events_on_the_same_fd)
{
	struct counter a = { .drain = -1 }, b = { .drain = -1 };
	int sv[2];

	ck_assert_int_eq(pipe(sv), 0);
	a.drain = b.drain = sv[0];
	ck_assert_int_gt(scheduler_register_event(&s, SCHEDULER_POLL_READ_FD, sv[0], TV_ZERO, count_cb,
						  &a), 0);
	b.id = scheduler_register_event(&s, SCHEDULER_POLL_READ_FD, sv[0], TV_ZERO, count_cb, &b);
	ck_assert_int_gt(b.id, 0);
	ck_assert_int_eq(write(sv[1], "xy", 2), 2);
	/* Both watchers of one fd are told; each reads one of the two bytes. */
	ck_assert_int_eq(scheduler_wait_for_events(&s, 1000), 2);
	ck_assert_int_eq(a.calls, 1);
	ck_assert_int_eq(b.calls, 1);
	scheduler_unregister_event(&s, b.id);
	ck_assert_int_eq(write(sv[1], "z", 1), 1);
	ck_assert_int_eq(scheduler_wait_for_events(&s, 1000), 1);
	ck_assert_int_eq(a.calls, 2);
	ck_assert_int_eq(b.calls, 1);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

static long long ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

START_TEST(test_timer_is_periodic)
{
	struct counter c = { .drain = -1 };
	long long start = ms_now();

	ck_assert_int_gt(scheduler_register_event(&s, SCHEDULER_POLL_TIMEOUT, -1, TV_MSECS(20), count_cb,
						  &c), 0);
	while (c.calls < 3)
		ck_assert_int_ge(scheduler_wait_for_events(&s, -1), 0);
	ck_assert_int_eq(c.last_mode, SCHEDULER_POLL_TIMEOUT);
	/* Three periods of 20 ms cannot be over in less than 60 ms. */
	ck_assert_int_ge(ms_now() - start, 60);
}
END_TEST

START_TEST(test_masked_event_does_not_fire)
{
	struct counter c = { .drain = -1 };
	event_id_t id = scheduler_register_event(&s, SCHEDULER_POLL_READ_FD, pipefd[0], TV_ZERO,
						 count_cb, &c);

	ck_assert_int_eq(write(pipefd[1], "x", 1), 1);
	scheduler_mask_event(&s, id, 1);
	ck_assert_int_eq(scheduler_wait_for_events(&s, 10), 0);
	ck_assert_int_eq(c.calls, 0);
	scheduler_mask_event(&s, id, 0);
	ck_assert_int_eq(scheduler_wait_for_events(&s, 1000), 1);
	ck_assert_int_eq(c.calls, 1);
}
END_TEST

START_TEST(test_callback_may_unregister_a_pending_event)
{
	struct counter a = { .drain = -1 }, b = { .drain = -1 };
	event_id_t ida, idb;

	ck_assert_int_eq(write(pipefd[1], "xy", 2), 2);
	ida = scheduler_register_event(&s, SCHEDULER_POLL_READ_FD, pipefd[0], TV_ZERO, count_cb, &a);
	idb = scheduler_register_event(&s, SCHEDULER_POLL_READ_FD, pipefd[0], TV_ZERO, count_cb, &b);
	ck_assert_int_gt(idb, ida);
	/* a runs first and removes b, which was already pending: b must not run. */
	a.victim = idb;
	a.drain = pipefd[0];
	ck_assert_int_eq(scheduler_wait_for_events(&s, 1000), 1);
	ck_assert_int_eq(a.calls, 1);
	ck_assert_int_eq(b.calls, 0);
	ck_assert_int_eq(scheduler_event_count(&s), 1);
}
END_TEST

START_TEST(test_callback_may_unregister_itself)
{
	struct counter c = { .drain = -1 };

	c.id = scheduler_register_event(&s, SCHEDULER_POLL_READ_FD, pipefd[0], TV_ZERO, count_cb, &c);
	c.victim = c.id;
	ck_assert_int_eq(write(pipefd[1], "xy", 2), 2);
	ck_assert_int_eq(scheduler_wait_for_events(&s, 1000), 1);
	ck_assert_int_eq(scheduler_wait_for_events(&s, 10), 0);
	ck_assert_int_eq(c.calls, 1);
	ck_assert_int_eq(scheduler_event_count(&s), 0);
}
END_TEST

START_TEST(test_fd_reused_after_unregister)
{
	struct counter a = { .drain = -1 }, b = { .drain = -1 };
	event_id_t id;
	int p2[2];

	id = scheduler_register_event(&s, SCHEDULER_POLL_READ_FD, pipefd[0], TV_ZERO, count_cb, &a);
	scheduler_unregister_event(&s, id);
	close(pipefd[0]);
	close(pipefd[1]);
	/* The kernel hands out the same numbers again: the loop must watch the new pipe. */
	ck_assert_int_eq(pipe(p2), 0);
	pipefd[0] = p2[0];
	pipefd[1] = p2[1];
	ck_assert_int_gt(scheduler_register_event(&s, SCHEDULER_POLL_READ_FD, pipefd[0], TV_ZERO,
						  count_cb, &b), 0);
	ck_assert_int_eq(write(pipefd[1], "x", 1), 1);
	ck_assert_int_eq(scheduler_wait_for_events(&s, 1000), 1);
	ck_assert_int_eq(a.calls, 0);
	ck_assert_int_eq(b.calls, 1);
}
END_TEST

START_TEST(test_many_fds)
{
	enum { N = 300 };
	struct counter c[N];
	int fds[N][2];

	/* Past the first growth of the fd table, every event still fires once. */
	for (int i = 0; i < N; i++) {
		c[i] = (struct counter){ .drain = -1 };
		ck_assert_int_eq(pipe(fds[i]), 0);
		ck_assert_int_gt(scheduler_register_event(&s, SCHEDULER_POLL_WRITE_FD, fds[i][1], TV_ZERO,
							  count_cb, &c[i]), 0);
	}
	/* epoll hands out 128 ready fds a call, in turn: three calls reach every one. */
	ck_assert_int_eq(scheduler_wait_for_events(&s, 1000), 128);
	ck_assert_int_eq(scheduler_wait_for_events(&s, 1000), 128);
	ck_assert_int_eq(scheduler_wait_for_events(&s, 1000), 128);
	for (int i = 0; i < N; i++) {
		ck_assert_int_ge(c[i].calls, 1);
		close(fds[i][0]);
		close(fds[i][1]);
	}
}
END_TEST

int main(void)
{
	Suite *suite = suite_create("scheduler");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_register_rejects_bad_arguments);
	tcase_add_test(tc, test_read_event_fires_only_when_readable);
	tcase_add_test(tc, test_reader_and_writer_share_one_fd);
	tcase_add_test(tc, test_two_events_on_the_same_fd);
	tcase_add_test(tc, test_timer_is_periodic);
	tcase_add_test(tc, test_masked_event_does_not_fire);
	tcase_add_test(tc, test_callback_may_unregister_a_pending_event);
	tcase_add_test(tc, test_callback_may_unregister_itself);
	tcase_add_test(tc, test_fd_reused_after_unregister);
	tcase_add_test(tc, test_many_fds);
	suite_add_tcase(suite, tc);
	sr = srunner_create(suite);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}

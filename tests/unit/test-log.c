/*
 * tapdisk-log.c: the last warning, which the control plane hands back to tap-ctl as the
 * reason of a failure, belongs to the thread that logged it.  The xenstore thread's warnings
 * must never become the reason of a control request that the main loop failed.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "tapdisk-log.h"

#define ROUNDS 20000

static char other_seen[256];

/* What the xenstore thread does: log a warning of its own. */
static void *other_thread_warns(void *arg)
{
	EPRINTF("colo xenstore: lost the connection to %s", (const char *)arg);
	snprintf(other_seen, sizeof(other_seen), "%s", tlog_last_error());
	return NULL;
}

static void run_other_thread(void)
{
	pthread_t t;

	ck_assert_int_eq(pthread_create(&t, NULL, other_thread_warns, "xs.sock"), 0);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
}

START_TEST(test_prefix_stripped)
{
	tlog_clear_last_error();
	ck_assert_str_eq(tlog_last_error(), "");
	EPRINTF("%s: cannot open for writing: %s", "/x.img", "No such file or directory");
	ck_assert_str_eq(tlog_last_error(), "/x.img: cannot open for writing: No such file or "
					    "directory");
	DPRINTF("an info line is no error");
	ck_assert_str_eq(tlog_last_error(), "/x.img: cannot open for writing: No such file or "
					    "directory");
}
END_TEST

START_TEST(test_other_thread_keeps_its_own)
{
	/* The main loop's failure, then a warning on another thread before the reply is built. */
	tlog_clear_last_error();
	EPRINTF("/x.img: cannot open for writing: No such file or directory");
	run_other_thread();
	ck_assert_str_eq(tlog_last_error(), "/x.img: cannot open for writing: No such file or "
					    "directory");
	ck_assert_str_eq(other_seen, "colo xenstore: lost the connection to xs.sock");

	/* A request that failed without a sentence of its own gets none from the other thread. */
	tlog_clear_last_error();
	run_other_thread();
	ck_assert_str_eq(tlog_last_error(), "");
}
END_TEST

struct racer {
	const char *text;
	int wrong;
};

static void *racer_run(void *arg)
{
	struct racer *r = arg;

	for (int i = 0; i < ROUNDS; i++) {
		EPRINTF("%s", r->text);
		if (strcmp(tlog_last_error(), r->text))
			r->wrong++;
	}
	return NULL;
}

START_TEST(test_threads_race)
{
	struct racer a = {.text = "the main loop's failure"};
	struct racer b = {.text = "a warning of the xenstore thread, which is longer"};
	pthread_t ta, tb;

	ck_assert_int_eq(pthread_create(&ta, NULL, racer_run, &a), 0);
	ck_assert_int_eq(pthread_create(&tb, NULL, racer_run, &b), 0);
	ck_assert_int_eq(pthread_join(ta, NULL), 0);
	ck_assert_int_eq(pthread_join(tb, NULL), 0);
	ck_assert_int_eq(a.wrong, 0);
	ck_assert_int_eq(b.wrong, 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("last-error");
	SRunner *sr;
	int failed;

	/* Neither syslog (never opened) nor stderr: the test's log stays readable. */
	tlog_set_stderr(0);
	tcase_add_test(tc, test_prefix_stripped);
	tcase_add_test(tc, test_other_thread_keeps_its_own);
	tcase_add_test(tc, test_threads_race);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}

/*
 * colo-test-xenstored through Debian's libxenstore: transactions (commit, conflict, abort),
 * watches (blocking, with xs_fileno and xs_check_watch, from other handles, at commit time
 * only), long directories (DIRECTORY_PART), permissions and exact errnos.
 *
 * The daemon is $COLO_TEST_XENSTORED; without it the test is skipped (exit 77).  Each test
 * gets a fresh daemon on its own socket.
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xenstore.h>

static const char *daemon_path;
static char dir[64];
static char sock_path[256];
static pid_t daemon_pid;
static struct xs_handle *h, *h2;

static void daemon_setup(void)
{
	char state[256];
	struct stat st;
	int i;

	snprintf(dir, sizeof(dir), "%s/xsd-libxs.XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(sock_path, sizeof(sock_path), "%s/sock", dir);
	snprintf(state, sizeof(state), "%s/state", dir);
	daemon_pid = fork();
	ck_assert_int_ge(daemon_pid, 0);
	if (!daemon_pid) {
		execl(daemon_path, daemon_path, "--socket", sock_path, "--state", state,
		      (char *)NULL);
		_exit(127);
	}
	for (i = 0; i < 500 && stat(sock_path, &st); i++)
		usleep(10000);
	ck_assert_msg(!stat(sock_path, &st), "the daemon made no socket");
	setenv("XENSTORED_PATH", sock_path, 1);
	h = xs_open(0);
	h2 = xs_open(0);
	ck_assert_ptr_nonnull(h);
	ck_assert_ptr_nonnull(h2);
}

static void daemon_teardown(void)
{
	char cmd[300];
	int status;

	xs_close(h);
	xs_close(h2);
	kill(daemon_pid, SIGTERM);
	ck_assert_int_eq(waitpid(daemon_pid, &status, 0), daemon_pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "the daemon did not exit cleanly (status 0x%x)", status);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	ck_assert_int_eq(system(cmd), 0);
}

/* Reads @path through @t and checks the exact value (NULL: the node must be missing). */
static void expect_value(struct xs_handle *xh, xs_transaction_t t, const char *path,
			 const char *value)
{
	unsigned int len = 12345;
	char *v;

	errno = 0;
	v = xs_read(xh, t, path, &len);
	if (!value) {
		ck_assert_msg(!v, "%s exists: '%s'", path, v ? v : "");
		ck_assert_int_eq(errno, ENOENT);
		return;
	}
	ck_assert_msg(v, "%s: %s", path, strerror(errno));
	ck_assert_uint_eq(len, strlen(value));
	ck_assert_str_eq(v, value);
	free(v);
}

static void write_ok(struct xs_handle *xh, xs_transaction_t t, const char *path, const char *v)
{
	ck_assert_msg(xs_write(xh, t, path, v, strlen(v)), "write %s: %s", path, strerror(errno));
}

/* The next event on @xh is exactly @path and @token (waits up to 5 s). */
static void expect_event(struct xs_handle *xh, const char *path, const char *token)
{
	struct pollfd pfd = { .fd = xs_fileno(xh), .events = POLLIN };
	char **ev;
	int i;

	for (i = 0; i < 50; i++) {
		ev = xs_check_watch(xh);
		if (ev)
			break;
		ck_assert_int_eq(errno, EAGAIN);
		poll(&pfd, 1, 100);
	}
	ck_assert_msg(ev, "no event for %s", path);
	ck_assert_str_eq(ev[XS_WATCH_PATH], path);
	ck_assert_str_eq(ev[XS_WATCH_TOKEN], token);
	free(ev);
}

/* No event arrives on @xh within @ms. */
static void expect_no_event(struct xs_handle *xh, int ms)
{
	struct pollfd pfd = { .fd = xs_fileno(xh), .events = POLLIN };
	char **ev;

	poll(&pfd, 1, ms);
	ev = xs_check_watch(xh);
	ck_assert_msg(!ev, "unexpected event %s %s", ev ? ev[0] : "", ev ? ev[1] : "");
	ck_assert_int_eq(errno, EAGAIN);
}

START_TEST(test_read_write)
{
	unsigned int num;
	char **list;

	write_ok(h, XBT_NULL, "/a/b/c", "hello");
	expect_value(h, XBT_NULL, "/a/b/c", "hello");
	/* Parents were created empty. */
	expect_value(h, XBT_NULL, "/a/b", "");
	/* Relative paths are below /local/domain/0. */
	write_ok(h, XBT_NULL, "rel", "r");
	expect_value(h, XBT_NULL, "/local/domain/0/rel", "r");
	/* Values are binary. */
	ck_assert(xs_write(h, XBT_NULL, "/bin", "a\0b", 3));
	{
		unsigned int len;
		char *v = xs_read(h, XBT_NULL, "/bin", &len);

		ck_assert_uint_eq(len, 3);
		ck_assert_int_eq(memcmp(v, "a\0b", 3), 0);
		free(v);
	}
	list = xs_directory(h, XBT_NULL, "/", &num);
	ck_assert_ptr_nonnull(list);
	ck_assert_uint_eq(num, 4);
	ck_assert_str_eq(list[0], "tool");
	ck_assert_str_eq(list[1], "local");
	ck_assert_str_eq(list[2], "a");
	ck_assert_str_eq(list[3], "bin");
	free(list);
	ck_assert(xs_mkdir(h, XBT_NULL, "/a/b"));
	expect_value(h, XBT_NULL, "/a/b/c", "hello");
	ck_assert(xs_rm(h, XBT_NULL, "/a"));
	expect_value(h, XBT_NULL, "/a/b/c", NULL);
	expect_value(h, XBT_NULL, "/a", NULL);
}
END_TEST

START_TEST(test_errors)
{
	unsigned int num;
	char *p;

	expect_value(h, XBT_NULL, "/missing", NULL);
	errno = 0;
	ck_assert(!xs_directory(h, XBT_NULL, "/missing", &num));
	ck_assert_int_eq(errno, ENOENT);
	errno = 0;
	ck_assert(!xs_write(h, XBT_NULL, "/bad//path", "x", 1));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert(!xs_write(h, XBT_NULL, "/trailing/", "x", 1));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert(!xs_write(h, XBT_NULL, "/bad char", "x", 1));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert(!xs_read(h, XBT_NULL, "@introduceDomain", &num));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert(!xs_rm(h, XBT_NULL, "/"));
	ck_assert_int_eq(errno, EINVAL);
	/* A missing node is removed fine if its parent exists, ENOENT otherwise. */
	ck_assert(xs_rm(h, XBT_NULL, "/missing"));
	errno = 0;
	ck_assert(!xs_rm(h, XBT_NULL, "/missing/child"));
	ck_assert_int_eq(errno, ENOENT);
	errno = 0;
	ck_assert(!xs_read(h, 999, "/tool", &num));
	ck_assert_int_eq(errno, ENOENT);
	errno = 0;
	ck_assert(!xs_transaction_end(h, 999, false));
	ck_assert_int_eq(errno, ENOENT);
	p = xs_get_domain_path(h, 5);
	ck_assert_str_eq(p, "/local/domain/5");
	free(p);
	ck_assert(xs_is_domain_introduced(h, 0));
	ck_assert(!xs_is_domain_introduced(h, 5));
}
END_TEST

START_TEST(test_txn_commit)
{
	xs_transaction_t t = xs_transaction_start(h);

	ck_assert_uint_ne(t, XBT_NULL);
	write_ok(h, t, "/t/x", "1");
	write_ok(h, t, "/t/y", "2");
	expect_value(h, t, "/t/x", "1");
	/* Not visible outside before commit. */
	expect_value(h2, XBT_NULL, "/t/x", NULL);
	ck_assert(xs_rm(h, t, "/t/x"));
	expect_value(h, t, "/t/x", NULL);
	ck_assert(xs_transaction_end(h, t, false));
	expect_value(h2, XBT_NULL, "/t/x", NULL);
	expect_value(h2, XBT_NULL, "/t/y", "2");
	/* The transaction is gone. */
	errno = 0;
	ck_assert(!xs_transaction_end(h, t, false));
	ck_assert_int_eq(errno, ENOENT);
}
END_TEST

START_TEST(test_txn_conflict)
{
	xs_transaction_t t;

	write_ok(h, XBT_NULL, "/c/x", "0");
	t = xs_transaction_start(h);
	expect_value(h, t, "/c/x", "0");
	write_ok(h2, XBT_NULL, "/c/x", "other");
	write_ok(h, t, "/c/y", "1");
	errno = 0;
	ck_assert(!xs_transaction_end(h, t, false));
	ck_assert_int_eq(errno, EAGAIN);
	expect_value(h, XBT_NULL, "/c/y", NULL);
	expect_value(h, XBT_NULL, "/c/x", "other");

	/* A node read as missing that appears meanwhile conflicts too. */
	t = xs_transaction_start(h);
	expect_value(h, t, "/c/new", NULL);
	write_ok(h2, XBT_NULL, "/c/new", "n");
	errno = 0;
	ck_assert(!xs_transaction_end(h, t, false));
	ck_assert_int_eq(errno, EAGAIN);

	/* Creating a child rewrites the parent: a concurrent sibling conflicts. */
	t = xs_transaction_start(h);
	write_ok(h, t, "/c/a", "a");
	write_ok(h2, XBT_NULL, "/c/b", "b");
	errno = 0;
	ck_assert(!xs_transaction_end(h, t, false));
	ck_assert_int_eq(errno, EAGAIN);
	expect_value(h, XBT_NULL, "/c/a", NULL);

	/* Untouched nodes don't conflict. */
	t = xs_transaction_start(h);
	write_ok(h, t, "/c/x", "mine");
	write_ok(h2, XBT_NULL, "/elsewhere", "e");
	ck_assert(xs_transaction_end(h, t, false));
	expect_value(h2, XBT_NULL, "/c/x", "mine");
}
END_TEST

START_TEST(test_txn_abort)
{
	xs_transaction_t t = xs_transaction_start(h);

	write_ok(h, t, "/ab/x", "1");
	ck_assert(xs_transaction_end(h, t, true));
	expect_value(h, XBT_NULL, "/ab", NULL);
}
END_TEST

START_TEST(test_watch)
{
	unsigned int num;
	char **ev;

	ck_assert(xs_watch(h, "/w", "tok"));
	/* The initial event, even for a missing node. */
	ev = xs_read_watch(h, &num);
	ck_assert_ptr_nonnull(ev);
	ck_assert_uint_eq(num, 2);
	ck_assert_str_eq(ev[XS_WATCH_PATH], "/w");
	ck_assert_str_eq(ev[XS_WATCH_TOKEN], "tok");
	free(ev);
	errno = 0;
	ck_assert(!xs_watch(h, "/w", "tok"));
	ck_assert_int_eq(errno, EEXIST);

	write_ok(h2, XBT_NULL, "/w/a/b", "1");
	expect_event(h, "/w/a/b", "tok");
	write_ok(h2, XBT_NULL, "/wx", "1");
	write_ok(h2, XBT_NULL, "/w", "2");
	expect_event(h, "/w", "tok");
	/* Removing an ancestor fires for the watched node. */
	ck_assert(xs_watch(h, "/w/a/b", "deep"));
	expect_event(h, "/w/a/b", "deep");
	ck_assert(xs_rm(h2, XBT_NULL, "/w"));
	expect_event(h, "/w/a/b", "deep");
	expect_event(h, "/w", "tok");
	expect_no_event(h, 100);

	ck_assert(xs_unwatch(h, "/w", "tok"));
	errno = 0;
	ck_assert(!xs_unwatch(h, "/w", "tok"));
	ck_assert_int_eq(errno, ENOENT);
	write_ok(h2, XBT_NULL, "/w", "3");
	expect_no_event(h, 200);

	/* Relative watches see relative paths. */
	ck_assert(xs_watch(h, "rel", "r"));
	expect_event(h, "rel", "r");
	write_ok(h2, XBT_NULL, "/local/domain/0/rel/x", "1");
	expect_event(h, "rel/x", "r");
}
END_TEST

START_TEST(test_watch_at_commit)
{
	xs_transaction_t t;

	ck_assert(xs_watch(h, "/tw", "t"));
	expect_event(h, "/tw", "t");
	t = xs_transaction_start(h2);
	write_ok(h2, t, "/tw/a", "1");
	write_ok(h2, t, "/tw/a", "2");
	write_ok(h2, t, "/tw/b", "3");
	expect_no_event(h, 200);
	ck_assert(xs_transaction_end(h2, t, false));
	/* One event per node, in order of first access. */
	expect_event(h, "/tw/a", "t");
	expect_event(h, "/tw/b", "t");
	expect_no_event(h, 100);

	/* An aborted or failed transaction fires nothing. */
	t = xs_transaction_start(h2);
	write_ok(h2, t, "/tw/c", "1");
	ck_assert(xs_transaction_end(h2, t, true));
	expect_no_event(h, 200);
}
END_TEST

START_TEST(test_directory_long)
{
	char path[64], name[64];
	unsigned int num, i;
	char **list;

	/* 300 names of 24 bytes: over 7000 bytes, more than one message can carry. */
	for (i = 0; i < 300; i++) {
		snprintf(path, sizeof(path), "/many/child-%017u", i);
		write_ok(h, XBT_NULL, path, "v");
	}
	list = xs_directory(h, XBT_NULL, "/many", &num);
	ck_assert_msg(list, "xs_directory: %s", strerror(errno));
	ck_assert_uint_eq(num, 300);
	for (i = 0; i < 300; i++) {
		snprintf(name, sizeof(name), "child-%017u", i);
		ck_assert_str_eq(list[i], name);
	}
	free(list);
}
END_TEST

START_TEST(test_perms)
{
	struct xs_permissions set[3] = {
		{ .id = 0, .perms = XS_PERM_NONE },
		{ .id = 5, .perms = XS_PERM_READ },
		{ .id = 7, .perms = XS_PERM_READ | XS_PERM_WRITE },
	};
	struct xs_permissions *got;
	unsigned int num;

	write_ok(h, XBT_NULL, "/p", "");
	ck_assert(xs_set_permissions(h, XBT_NULL, "/p", set, 3));
	got = xs_get_permissions(h, XBT_NULL, "/p", &num);
	ck_assert_ptr_nonnull(got);
	ck_assert_uint_eq(num, 3);
	ck_assert_int_eq(memcmp(got, set, sizeof(set)), 0);
	free(got);
	/* New nodes inherit their parent's permissions. */
	write_ok(h, XBT_NULL, "/p/q/r", "");
	got = xs_get_permissions(h, XBT_NULL, "/p/q/r", &num);
	ck_assert_uint_eq(num, 3);
	ck_assert_int_eq(memcmp(got, set, sizeof(set)), 0);
	free(got);
	got = xs_get_permissions(h, XBT_NULL, "/tool", &num);
	ck_assert_uint_eq(num, 1);
	ck_assert_uint_eq(got[0].id, 0);
	ck_assert_uint_eq(got[0].perms, XS_PERM_NONE);
	free(got);
	errno = 0;
	ck_assert(!xs_set_permissions(h, XBT_NULL, "/nope", set, 1));
	ck_assert_int_eq(errno, ENOENT);
	errno = 0;
	ck_assert(!xs_get_permissions(h, XBT_NULL, "/nope", &num));
	ck_assert_int_eq(errno, ENOENT);
}
END_TEST

static Suite *xenstored_suite(void)
{
	Suite *s = suite_create("xenstored-libxs");
	TCase *tc = tcase_create("libxenstore");

	tcase_add_checked_fixture(tc, daemon_setup, daemon_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_read_write);
	tcase_add_test(tc, test_errors);
	tcase_add_test(tc, test_txn_commit);
	tcase_add_test(tc, test_txn_conflict);
	tcase_add_test(tc, test_txn_abort);
	tcase_add_test(tc, test_watch);
	tcase_add_test(tc, test_watch_at_commit);
	tcase_add_test(tc, test_directory_long);
	tcase_add_test(tc, test_perms);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	daemon_path = getenv("COLO_TEST_XENSTORED");
	if (!daemon_path || !*daemon_path) {
		printf("SKIP: COLO_TEST_XENSTORED is not set\n");
		return 77;
	}
	sr = srunner_create(xenstored_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

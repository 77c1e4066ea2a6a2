/*
 * The replication commands as text (colo-command.c), shared by the COLO control message and
 * the xenstore requests: every verb, every refusal with its exact sentence, the shape of a
 * xenstore binding path, and the request-id parser of colo-xenstore.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "colo-command.h"
#include "colo-xenstore.h"

static struct colo_command cmd;
static char why[300];

static void expect_ok(const char *text, enum colo_command_verb verb)
{
	ck_assert_msg(colo_command_parse(text, &cmd, why, sizeof(why)) == 0, "'%s': %s", text,
		      why);
	ck_assert_int_eq(cmd.verb, verb);
}

static void expect_refused(const char *text, const char *msg)
{
	ck_assert_msg(colo_command_parse(text, &cmd, why, sizeof(why)) == -EINVAL,
		      "'%s' was accepted", text);
	ck_assert_str_eq(why, msg);
}

START_TEST(test_verbs)
{
	expect_ok("checkpoint", COLO_COMMAND_CHECKPOINT);
	expect_ok("  failover \t", COLO_COMMAND_FAILOVER);
	expect_ok("stop", COLO_COMMAND_STOP);
	expect_ok("status", COLO_COMMAND_STATUS);
	expect_ok("start secondary", COLO_COMMAND_START);
	ck_assert_int_eq(cmd.role, COLO_ROLE_SECONDARY);
	expect_ok("start primary timeout=250  queue_limit=1M", COLO_COMMAND_START);
	ck_assert_int_eq(cmd.role, COLO_ROLE_PRIMARY);
	ck_assert_uint_eq(cmd.opts.timeout_ms, 250);
	ck_assert_uint_eq(cmd.opts.queue_limit, 1 << 20);
	ck_assert_str_eq(colo_command_verb_name(COLO_COMMAND_XENSTORE), "xenstore");
}
END_TEST

START_TEST(test_refusals)
{
	char long_text[1100];

	expect_refused("", "missing colo command (start, checkpoint, failover, stop, status, "
			   "xenstore)");
	expect_refused("chekpoint", "unknown colo command 'chekpoint' (start, checkpoint, "
				    "failover, stop, status, xenstore)");
	expect_refused("checkpoint now", "checkpoint takes no arguments (got 'now')");
	/* Each role refuses the options only the other one uses. */
	expect_refused("start primary ram_limit=1M", "ram_limit is an option of the Secondary, "
						     "not of the Primary");
	expect_refused("start primary timeout=1000 spill=/x", "spill is an option of the "
							      "Secondary, not of the Primary");
	expect_refused("start primary spill_limit=1M", "spill_limit is an option of the "
						       "Secondary, not of the Primary");
	expect_refused("start primary peer=::1", "peer is an option of the Secondary, not of "
						 "the Primary");
	expect_refused("start secondary connect_timeout=0", "connect_timeout is an option of the "
							    "Primary, not of the Secondary");
	expect_ok("start secondary ram_limit=1M spill=/x spill_limit=2M peer=::1 timeout=1000",
		  COLO_COMMAND_START);
	expect_ok("start primary connect_timeout=0 queue_limit=1M verify=1 block_size=512",
		  COLO_COMMAND_START);
	expect_refused("start", "start needs a role: start primary|secondary [key=value ...]");
	expect_refused("start tertiary", "unknown role 'tertiary': expected primary or secondary");
	expect_refused("start primary timeout=0", "timeout=0: must be from 100 to 600000 ms");
	memset(long_text, 'a', sizeof(long_text) - 1);
	long_text[sizeof(long_text) - 1] = '\0';
	expect_refused(long_text, "colo command is longer than 1023 bytes");
}
END_TEST

START_TEST(test_xenstore_paths)
{
	expect_ok("xenstore /local/domain/0/colo/5/disks/51712", COLO_COMMAND_XENSTORE);
	ck_assert_str_eq(cmd.xs_path, "/local/domain/0/colo/5/disks/51712");
	expect_ok("xenstore off", COLO_COMMAND_XENSTORE);
	ck_assert_str_eq(cmd.xs_path, "");
	expect_refused("xenstore", "xenstore needs the VBD's directory or 'off': xenstore "
				   "PATH|off");
	expect_refused("xenstore local/domain/0/colo/5/disks/1",
		       "xenstore path 'local/domain/0/colo/5/disks/1' is not absolute");
	expect_refused("xenstore /colo/5/disks/1 extra", "xenstore takes one argument (got 'extra')");
	expect_refused("xenstore /colo/5/disk/1", "xenstore path '/colo/5/disk/1' does not end in "
						  "/disks/NAME (see docs/xenstore.md)");
	expect_refused("xenstore /disks/1", "xenstore path '/disks/1' does not end in /disks/NAME "
					    "(see docs/xenstore.md)");
	expect_refused("xenstore /colo/5/disks/", "xenstore path '/colo/5/disks/' has an empty "
						  "component");
	expect_refused("xenstore /colo//disks/1", "xenstore path '/colo//disks/1' has an empty "
						  "component");
	expect_refused("xenstore /colo/5/disks/a.b",
		       "xenstore path '/colo/5/disks/a.b' has a character xenstore refuses");
}
END_TEST

START_TEST(test_request_ids)
{
	uint64_t v = 7;

	ck_assert_int_eq(colo_parse_u63("42", 2, &v), 0);
	ck_assert_uint_eq(v, 42);
	ck_assert_int_eq(colo_parse_u63("0", 1, &v), 0);
	ck_assert_uint_eq(v, 0);
	ck_assert_int_eq(colo_parse_u63("9223372036854775807", 19, &v), 0);
	ck_assert_uint_eq(v, INT64_MAX);
	v = 7;
	ck_assert_int_eq(colo_parse_u63("9223372036854775808", 19, &v), -EINVAL);
	ck_assert_int_eq(colo_parse_u63("12345678901234567890", 20, &v), -EINVAL);
	ck_assert_int_eq(colo_parse_u63("", 0, &v), -EINVAL);
	ck_assert_int_eq(colo_parse_u63("-1", 2, &v), -EINVAL);
	ck_assert_int_eq(colo_parse_u63("+1", 2, &v), -EINVAL);
	ck_assert_int_eq(colo_parse_u63("007", 3, &v), -EINVAL);
	ck_assert_int_eq(colo_parse_u63("1x", 2, &v), -EINVAL);
	ck_assert_uint_eq(v, 7);
	/* Only @len bytes count: the request's id ends at its first blank. */
	ck_assert_int_eq(colo_parse_u63("12 checkpoint", 2, &v), 0);
	ck_assert_uint_eq(v, 12);
}
END_TEST

/* @text is a request with id @id that fails with exactly @msg (or succeeds when @msg is NULL). */
static void expect_request(const char *text, uint64_t id, const char *msg)
{
	uint64_t got = 99;
	int rc = colo_request_parse(text, &got, &cmd, why, sizeof(why));

	ck_assert_msg(got == id, "'%s': id %llu, expected %llu", text, (unsigned long long)got,
		      (unsigned long long)id);
	if (!msg) {
		ck_assert_msg(rc == 0, "'%s': %s", text, why);
		return;
	}
	ck_assert_int_eq(rc, -EINVAL);
	ck_assert_str_eq(why, msg);
}

START_TEST(test_requests)
{
	char long_text[1100];

	expect_request("7 checkpoint", 7, NULL);
	ck_assert_int_eq(cmd.verb, COLO_COMMAND_CHECKPOINT);
	expect_request("8 start secondary peer=192.0.2.1", 8, NULL);
	ck_assert_int_eq(cmd.role, COLO_ROLE_SECONDARY);
	ck_assert_str_eq(cmd.opts.peer, "192.0.2.1");
	expect_request("9\tfailover", 9, NULL);
	expect_request("10", 10, "missing colo command (start, checkpoint, failover, stop, status, "
				 "xenstore)");
	expect_request("11 status", 11,
		       "'status' is not a request (start, checkpoint, failover, stop)");
	expect_request("12 xenstore off", 12,
		       "'xenstore' is not a request (start, checkpoint, failover, stop)");
	expect_request("x1 checkpoint", 0, "malformed request 'x1 checkpoint': bad id 'x1'");
	expect_request("0 checkpoint", 0, "malformed request '0 checkpoint': bad id '0'");
	expect_request("", 0, "malformed request '': bad id ''");
	expect_request(" 5 checkpoint", 0, "malformed request ' 5 checkpoint': bad id ''");
	/* "?" "?" keeps the compiler from reading a trigraph. */
	expect_request("5'\x01 stop", 0, "malformed request '5?" "? stop': bad id '5?" "?'");
	memset(long_text, '7', sizeof(long_text) - 1);
	long_text[sizeof(long_text) - 1] = '\0';
	expect_request(long_text, 0, "malformed request '7777777777777777777777777777777777777777"
				     "777777777777777777777777': bad id '777777777777777777777777"
				     "7777777777777777777777777777777777777777'");
	memset(long_text, ' ', sizeof(long_text) - 1);
	long_text[0] = '3';
	expect_request(long_text, 3, "request is longer than 1023 bytes");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("colo-command");
	TCase *tc = tcase_create("parse");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_verbs);
	tcase_add_test(tc, test_refusals);
	tcase_add_test(tc, test_xenstore_paths);
	tcase_add_test(tc, test_request_ids);
	tcase_add_test(tc, test_requests);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}

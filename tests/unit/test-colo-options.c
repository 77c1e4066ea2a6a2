/*
 * The text side of the replication API: colo start's options (every key, suffix, limit and
 * error sentence), the names of roles, states and links, and the exact status JSON.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "colo.h"
#include "colo-start-options.h"

static struct colo_options opts;
static char err[256];

static int parse(const char *kv)
{
	return colo_options_parse(&opts, kv, err, sizeof(err));
}

/* @kv is refused with exactly @msg and leaves the options as they were. */
static void expect_error(const char *kv, const char *msg)
{
	struct colo_options before = opts;

	ck_assert_msg(parse(kv) == -EINVAL, "'%s' was accepted", kv);
	ck_assert_str_eq(err, msg);
	ck_assert_int_eq(memcmp(&before, &opts, sizeof(opts)), 0);
}

static void setup(void)
{
	colo_options_init(&opts);
	memset(err, 'x', sizeof(err) - 1);
	err[sizeof(err) - 1] = '\0';
}

START_TEST(test_defaults)
{
	ck_assert_uint_eq(opts.block_size, 4096);
	ck_assert_uint_eq(opts.queue_limit, 64ULL << 20);
	ck_assert_uint_eq(opts.ram_limit, 1ULL << 30);
	ck_assert_str_eq(opts.spill_path, "");
	ck_assert_uint_eq(opts.spill_limit, 0);
	ck_assert_uint_eq(opts.timeout_ms, 5000);
	ck_assert_uint_eq(opts.connect_timeout_ms, 30000);
	ck_assert(!opts.verify);
}
END_TEST

START_TEST(test_block_size)
{
	ck_assert_int_eq(parse("block_size=512"), 0);
	ck_assert_uint_eq(opts.block_size, 512);
	/* Success clears @err. */
	ck_assert_str_eq(err, "");
	ck_assert_int_eq(parse("block_size=64K"), 0);
	ck_assert_uint_eq(opts.block_size, 65536);
	ck_assert_int_eq(parse("block_size=1M"), 0);
	ck_assert_uint_eq(opts.block_size, 1 << 20);
	ck_assert_int_eq(parse("block_size=8k"), 0);
	ck_assert_uint_eq(opts.block_size, 8192);

	expect_error("block_size=3000",
		     "block_size=3000: must be a power of two from 512 to 1048576");
	expect_error("block_size=256",
		     "block_size=256: must be a power of two from 512 to 1048576");
	expect_error("block_size=2M", "block_size=2M: must be a power of two from 512 to 1048576");
	expect_error("block_size=0", "block_size=0: must be a power of two from 512 to 1048576");
	expect_error("block_size=4x",
		     "block_size=4x: not a size (a number with an optional K, M or G suffix)");
	expect_error("block_size=-4096",
		     "block_size=-4096: not a size (a number with an optional K, M or G suffix)");
	expect_error("block_size= 4096",
		     "block_size= 4096: not a size (a number with an optional K, M or G suffix)");
	expect_error("block_size=4KB",
		     "block_size=4KB: not a size (a number with an optional K, M or G suffix)");
	expect_error("block_size=K",
		     "block_size=K: not a size (a number with an optional K, M or G suffix)");
	expect_error("block_size=0x1000",
		     "block_size=0x1000: not a size (a number with an optional K, M or G suffix)");
	expect_error("block_size=", "block_size: missing value (expected block_size=VALUE)");
	expect_error("block_size", "block_size: missing value (expected block_size=VALUE)");
}
END_TEST

START_TEST(test_queue_limit)
{
	ck_assert_int_eq(parse("queue_limit=1M"), 0);
	ck_assert_uint_eq(opts.queue_limit, 1ULL << 20);
	ck_assert_int_eq(parse("queue_limit=64G"), 0);
	ck_assert_uint_eq(opts.queue_limit, 64ULL << 30);
	ck_assert_int_eq(parse("queue_limit=1048577"), 0);
	ck_assert_uint_eq(opts.queue_limit, 1048577);

	expect_error("queue_limit=1023K",
		     "queue_limit=1023K: must be from 1M (1048576) to 64G (68719476736) bytes");
	expect_error("queue_limit=68719476737", "queue_limit=68719476737: must be from 1M "
						"(1048576) to 64G (68719476736) bytes");
	expect_error("queue_limit=65G",
		     "queue_limit=65G: must be from 1M (1048576) to 64G (68719476736) bytes");
}
END_TEST

START_TEST(test_ram_limit)
{
	ck_assert_int_eq(parse("ram_limit=1M"), 0);
	ck_assert_uint_eq(opts.ram_limit, 1ULL << 20);
	ck_assert_int_eq(parse("ram_limit=16G"), 0);
	ck_assert_uint_eq(opts.ram_limit, 16ULL << 30);
	ck_assert_int_eq(parse("ram_limit=1099511627776"), 0);
	ck_assert_uint_eq(opts.ram_limit, 1ULL << 40);

	expect_error("ram_limit=1048575", "ram_limit=1048575: must be at least 1M (1048576) bytes");
	/* Overflow is refused, never wrapped to a small limit. */
	expect_error("ram_limit=17179869184G", "ram_limit=17179869184G: too large");
	expect_error("ram_limit=18446744073709551616", "ram_limit=18446744073709551616: too large");
}
END_TEST

START_TEST(test_spill)
{
	char kv[300], path[300];

	ck_assert_int_eq(parse("spill=/var/lib/colo/spill"), 0);
	ck_assert_str_eq(opts.spill_path, "/var/lib/colo/spill");
	/* Only the first '=' splits. */
	ck_assert_int_eq(parse("spill=/a=b"), 0);
	ck_assert_str_eq(opts.spill_path, "/a=b");

	ck_assert_int_eq(parse("spill_limit=0"), 0);
	ck_assert_uint_eq(opts.spill_limit, 0);
	ck_assert_int_eq(parse("spill_limit=10G"), 0);
	ck_assert_uint_eq(opts.spill_limit, 10ULL << 30);
	ck_assert_int_eq(parse("spill_limit=123"), 0);
	ck_assert_uint_eq(opts.spill_limit, 123);
	ck_assert_int_eq(parse("spill_limit=18446744073709551615"), 0);
	ck_assert_uint_eq(opts.spill_limit, UINT64_MAX);

	expect_error("spill=relative/path", "spill=relative/path: must be an absolute path");
	expect_error("spill=", "spill: missing value (expected spill=VALUE)");
	expect_error("spill_limit=1T",
		     "spill_limit=1T: not a size (a number with an optional K, M or G suffix)");
	expect_error("spill_limit=17179869184G", "spill_limit=17179869184G: too large");

	/* 255 bytes fit the array with its NUL; 256 do not. */
	path[0] = '/';
	memset(path + 1, 'p', 254);
	path[255] = '\0';
	snprintf(kv, sizeof(kv), "spill=%s", path);
	ck_assert_int_eq(parse(kv), 0);
	ck_assert_str_eq(opts.spill_path, path);
	strcat(kv, "q");
	expect_error(kv, "spill=...: path must be shorter than 256 bytes");
}
END_TEST

START_TEST(test_timeouts)
{
	ck_assert_int_eq(parse("timeout=100"), 0);
	ck_assert_uint_eq(opts.timeout_ms, 100);
	ck_assert_int_eq(parse("timeout=600000"), 0);
	ck_assert_uint_eq(opts.timeout_ms, 600000);
	ck_assert_int_eq(parse("connect_timeout=0"), 0);
	ck_assert_uint_eq(opts.connect_timeout_ms, 0);
	ck_assert_int_eq(parse("connect_timeout=3600000"), 0);
	ck_assert_uint_eq(opts.connect_timeout_ms, 3600000);

	expect_error("timeout=99", "timeout=99: must be from 100 to 600000 ms");
	expect_error("timeout=600001", "timeout=600001: must be from 100 to 600000 ms");
	expect_error("timeout=18446744073709551617", "timeout=18446744073709551617: not a number");
	/* Milliseconds only: no size suffix, no unit. */
	expect_error("timeout=5K", "timeout=5K: not a number");
	expect_error("timeout=5s", "timeout=5s: not a number");
	expect_error("timeout=", "timeout: missing value (expected timeout=VALUE)");
	expect_error("connect_timeout=3600001",
		     "connect_timeout=3600001: must be from 0 to 3600000 ms");
	expect_error("connect_timeout=-1", "connect_timeout=-1: not a number");
	ck_assert_uint_eq(opts.pause_target_ms, 0); /* off unless asked for */
	ck_assert_int_eq(parse("pause_target=0"), 0);
	ck_assert_int_eq(parse("pause_target=60000"), 0);
	ck_assert_uint_eq(opts.pause_target_ms, 60000);
	expect_error("pause_target=60001", "pause_target=60001: must be from 0 to 60000 ms");
	expect_error("pause_target=50ms", "pause_target=50ms: not a number");
}
END_TEST

START_TEST(test_verify)
{
	ck_assert_int_eq(parse("verify=1"), 0);
	ck_assert(opts.verify);
	ck_assert_int_eq(parse("verify=0"), 0);
	ck_assert(!opts.verify);

	expect_error("verify=2", "verify=2: must be 0 or 1");
	ck_assert_int_eq(parse("sync=full"), 0);
	ck_assert_int_eq(opts.sync, COLO_SYNC_FULL);
	ck_assert_int_eq(parse("sync=none"), 0);
	ck_assert_int_eq(opts.sync, COLO_SYNC_NONE);
	ck_assert_int_eq(parse("sync=diff"), 0);
	ck_assert_int_eq(opts.sync, COLO_SYNC_DIFF);
	expect_error("sync=some", "sync=some: must be full, diff or none");
	ck_assert_int_eq(parse("sync_rate=10M"), 0);
	ck_assert_int_eq(opts.sync_rate, 10 << 20);
	expect_error("verify=yes", "verify=yes: not a number");
	expect_error("verify", "verify: missing value (expected verify=VALUE)");
}
END_TEST

START_TEST(test_address)
{
	ck_assert_str_eq(opts.address_host, "");
	ck_assert_int_eq(parse("address=192.0.2.7:7000"), 0);
	ck_assert_str_eq(opts.address_host, "192.0.2.7");
	ck_assert_str_eq(opts.address_port, "7000");
	ck_assert_int_eq(parse("address=[2001:db8::1]:65535"), 0);
	ck_assert_str_eq(opts.address_host, "2001:db8::1");
	ck_assert_str_eq(opts.address_port, "65535");
	ck_assert_int_eq(parse("address=node-b.example:1"), 0);
	ck_assert_str_eq(opts.address_host, "node-b.example");
	ck_assert_str_eq(opts.address_port, "1");
	expect_error("address=node-b", "address=node-b: not HOST:PORT (an IPv6 HOST goes in brackets: [::1]:PORT)");
	expect_error("address=2001:db8::1:7000", "address=2001:db8::1:7000: not HOST:PORT (an IPv6 HOST goes in brackets: [::1]:PORT)");
	expect_error("address=[2001:db8::1]7000", "address=[2001:db8::1]7000: not [IPv6]:PORT (a ']' then ':' must follow)");
	expect_error("address=:7000", "address=:7000: the HOST is empty");
	expect_error("address=[]:7000", "address=[]:7000: the HOST is empty");
	expect_error("address=h:0", "address=h:0: the PORT must be a number from 1 to 65535");
	expect_error("address=h:65536", "address=h:65536: the PORT must be a number from 1 to 65535");
	expect_error("address=h:", "address=h:: the PORT must be a number from 1 to 65535");
	expect_error("address=h:+7", "address=h:+7: the PORT must be a number from 1 to 65535");
	expect_error("address=", "address: missing value (expected address=VALUE)");
	ck_assert_str_eq(opts.address_host, "node-b.example");
}
END_TEST

START_TEST(test_peer)
{
	ck_assert_str_eq(opts.peer, "");
	ck_assert_int_eq(parse("peer=192.0.2.7"), 0);
	ck_assert_str_eq(opts.peer, "192.0.2.7");
	ck_assert_int_eq(parse("peer=2001:db8::1"), 0);
	ck_assert_str_eq(opts.peer, "2001:db8::1");

	expect_error("peer=primary.example", "peer=primary.example: not a numeric IPv4 or IPv6 address");
	expect_error("peer=192.0.2.256", "peer=192.0.2.256: not a numeric IPv4 or IPv6 address");
	expect_error("peer=", "peer: missing value (expected peer=VALUE)");
	ck_assert_str_eq(opts.peer, "2001:db8::1");
}
END_TEST

START_TEST(test_dirty_log)
{
	char kv[300], path[260];

	ck_assert_str_eq(opts.dirty_log, "");
	ck_assert_int_eq(parse("dirty_log=/var/lib/colo/vm1.dlog"), 0);
	ck_assert_str_eq(opts.dirty_log, "/var/lib/colo/vm1.dlog");
	expect_error("dirty_log=vm1.dlog", "dirty_log=vm1.dlog: must be an absolute path");
	expect_error("dirty_log=", "dirty_log: missing value (expected dirty_log=VALUE)");
	memset(path, 'a', 256);
	path[0] = '/';
	path[256] = '\0';
	snprintf(kv, sizeof(kv), "dirty_log=%s", path);
	expect_error(kv, "dirty_log=...: path must be shorter than 256 bytes");
	ck_assert_str_eq(opts.dirty_log, "/var/lib/colo/vm1.dlog");
	/* A Secondary reads the log it kept as Primary (re-protect). */
	ck_assert_int_eq(colo_options_check_role("dirty_log=/x", COLO_ROLE_SECONDARY, err,
						 sizeof(err)),
			 0);
	ck_assert_int_eq(colo_options_check_role("dirty_log=/x", COLO_ROLE_PRIMARY, err,
						 sizeof(err)),
			 0);
}
END_TEST

START_TEST(test_unknown)
{
	expect_error("foo", "unknown option 'foo'");
	expect_error("foo=1", "unknown option 'foo'");
	expect_error("", "unknown option ''");
	expect_error("=1", "unknown option ''");
	/* Keys are exact: no prefixes, no other case. */
	expect_error("block=4096", "unknown option 'block'");
	expect_error("block_size_x=4096", "unknown option 'block_size_x'");
	expect_error("Verify=1", "unknown option 'Verify'");

	/* @err may be omitted, or tiny. */
	ck_assert_int_eq(colo_options_parse(&opts, "foo", NULL, 0), -EINVAL);
	ck_assert_int_eq(colo_options_parse(&opts, "foo", err, 4), -EINVAL);
	ck_assert_str_eq(err, "unk");
}
END_TEST

START_TEST(test_names)
{
	ck_assert_str_eq(colo_role_name(COLO_ROLE_NONE), "none");
	ck_assert_str_eq(colo_role_name(COLO_ROLE_PRIMARY), "primary");
	ck_assert_str_eq(colo_role_name(COLO_ROLE_SECONDARY), "secondary");
	ck_assert_str_eq(colo_state_name(COLO_STATE_IDLE), "idle");
	ck_assert_str_eq(colo_state_name(COLO_STATE_CONNECTING), "connecting");
	ck_assert_str_eq(colo_state_name(COLO_STATE_RUNNING), "running");
	ck_assert_str_eq(colo_state_name(COLO_STATE_SYNCING), "syncing");
	ck_assert_str_eq(colo_state_name(COLO_STATE_BROKEN), "broken");
	ck_assert_str_eq(colo_state_name(COLO_STATE_FAILING_OVER), "failing-over");
	ck_assert_str_eq(colo_state_name(COLO_STATE_FAILED_OVER), "failed-over");
	ck_assert_str_eq(colo_state_name(COLO_STATE_STOPPED), "stopped");
	ck_assert_str_eq(colo_link_name(COLO_LINK_NONE), "none");
	ck_assert_str_eq(colo_link_name(COLO_LINK_CONNECTING), "connecting");
	ck_assert_str_eq(colo_link_name(COLO_LINK_LISTENING), "listening");
	ck_assert_str_eq(colo_link_name(COLO_LINK_UP), "up");
	ck_assert_str_eq(colo_link_name(COLO_LINK_LOST), "lost");
}
END_TEST

static const char running_json[] =
	"{\"role\":\"primary\",\"state\":\"running\",\"epoch\":3,\"sent_bytes\":0,"
	"\"inflight_bytes\":0,\"inflight_limit\":0,\"apply_rate\":0,"
	"\"buffer_blocks\":0,\"buffer_bytes\":0,\"dirty_blocks\":0,\"block_size\":4096,"
	"\"dirty_bytes\":0,\"dirty_log\":\"\",\"dirty_log_extents\":0,\"dirty_log_flushes\":0,"
	"\"sync_done_bytes\":0,\"sync_total_bytes\":0,\"sync_sent_bytes\":0,\"sync_rate\":0,"
	"\"reprotect\":\"\",\"link\":\"up\",\"last_error\":\"\",\"last_error_at\":\"\",\"pending\":\"\"}";

/* What follows last_error. */
static const char json_tail[] = ",\"last_error_at\":\"\",\"pending\":\"\"}";

START_TEST(test_json)
{
	struct colo_status st = {
		.role = COLO_ROLE_PRIMARY,
		.state = COLO_STATE_RUNNING,
		.link = COLO_LINK_UP,
		.epoch = 3,
		.block_size = 4096,
		.last_error = "",
	};
	char buf[512];

	ck_assert_int_eq(colo_status_json(&st, buf, sizeof(buf)), strlen(running_json));
	ck_assert_str_eq(buf, running_json);

	/* Every counter in its place, at full width. */
	st = (struct colo_status){
		.role = COLO_ROLE_SECONDARY,
		.state = COLO_STATE_FAILING_OVER,
		.link = COLO_LINK_LOST,
		.epoch = UINT64_MAX,
		.sent_bytes = 1,
		.inflight_bytes = 2,
		.inflight_limit = 10,
		.apply_rate = 11,
		.buffer_blocks = 3,
		.buffer_bytes = 4,
		.dirty_blocks = 5,
		.block_size = 1 << 20,
		.dirty_bytes = 6,
		.dirty_log = "/l\"og",
		.dirty_log_extents = 7,
		.dirty_log_flushes = 8,
		.sync_done_bytes = 6,
		.sync_total_bytes = 7,
		.sync_sent_bytes = 8,
		.sync_rate = 9,
		.last_error = NULL,
	};
	colo_status_json(&st, buf, sizeof(buf));
	ck_assert_str_eq(buf, "{\"role\":\"secondary\",\"state\":\"failing-over\","
			      "\"epoch\":18446744073709551615,\"sent_bytes\":1,"
			      "\"inflight_bytes\":2,\"inflight_limit\":10,\"apply_rate\":11,"
			      "\"buffer_blocks\":3,\"buffer_bytes\":4,\"dirty_blocks\":5,"
			      "\"block_size\":1048576,\"dirty_bytes\":6,\"dirty_log\":\"/l\\\"og\","
			      "\"dirty_log_extents\":7,\"dirty_log_flushes\":8,\"sync_done_bytes\":6,"
			      "\"sync_total_bytes\":7,\"sync_sent_bytes\":8,\"sync_rate\":9,"
			      "\"reprotect\":\"\",\"link\":\"lost\",\"last_error\":\"\",\"last_error_at\":\"\",\"pending\":\"\"}");
}
END_TEST

/* When the last error happened, in UTC with milliseconds; "" when there is none. */
START_TEST(test_json_error_time)
{
	struct colo_status st = { .last_error = "x", .last_error_at = 1796614394123ULL };
	char buf[512];

	colo_status_json(&st, buf, sizeof(buf));
	ck_assert(strstr(buf, ",\"last_error\":\"x\",\"last_error_at\":\"2026-12-07T03:33:14.123Z\","));
	st.last_error_at = 5;
	colo_status_json(&st, buf, sizeof(buf));
	ck_assert(strstr(buf, ",\"last_error_at\":\"1970-01-01T00:00:00.005Z\","));
	st.last_error_at = 0;
	colo_status_json(&st, buf, sizeof(buf));
	ck_assert(strstr(buf, ",\"last_error_at\":\"\","));
}
END_TEST

START_TEST(test_json_escaping)
{
	struct colo_status st = { .last_error = "a\"b\\c\n" };
	char buf[512];

	colo_status_json(&st, buf, sizeof(buf));
	ck_assert_str_eq(buf, "{\"role\":\"none\",\"state\":\"idle\",\"epoch\":0,\"sent_bytes\":0,"
			      "\"inflight_bytes\":0,\"inflight_limit\":0,\"apply_rate\":0,"
			      "\"buffer_blocks\":0,\"buffer_bytes\":0,"
			      "\"dirty_blocks\":0,\"block_size\":0,"
			      "\"dirty_bytes\":0,\"dirty_log\":\"\",\"dirty_log_extents\":0,\"dirty_log_flushes\":0,"
			      "\"sync_done_bytes\":0,\"sync_total_bytes\":0,\"sync_sent_bytes\":0,\"sync_rate\":0,"
			      "\"reprotect\":\"\",\"link\":\"none\","
			      "\"last_error\":\"a\\\"b\\\\c\\u000a\",\"last_error_at\":\"\",\"pending\":\"\"}");

	/* Every control character as \u00XX; bytes from 0x7f up pass as they are. */
	st.last_error = "\x01\t\x1f \x7f\xc3\xa9/";
	colo_status_json(&st, buf, sizeof(buf));
	ck_assert(strstr(buf, "\"last_error\":\"\\u0001\\u0009\\u001f \x7f\xc3\xa9/\",") != NULL);
}
END_TEST

START_TEST(test_json_truncation)
{
	struct colo_status st = {
		.role = COLO_ROLE_PRIMARY,
		.state = COLO_STATE_RUNNING,
		.link = COLO_LINK_UP,
		.epoch = 3,
		.block_size = 4096,
		.last_error = "",
	};
	int len = strlen(running_json), cut;
	char buf[512];

	/* As snprintf: the full length, a NUL-terminated prefix, and no write past @size. */
	ck_assert_int_eq(colo_status_json(&st, NULL, 0), len);
	memset(buf, '#', sizeof(buf));
	ck_assert_int_eq(colo_status_json(&st, buf, 20), len);
	ck_assert_int_eq(strlen(buf), 19);
	ck_assert_int_eq(strncmp(buf, running_json, 19), 0);
	ck_assert_int_eq(buf[20], '#');
	ck_assert_int_eq(colo_status_json(&st, buf, len), len);
	ck_assert_int_eq(strlen(buf), len - 1);
	ck_assert_int_eq(colo_status_json(&st, buf, len + 1), len);
	ck_assert_str_eq(buf, running_json);

	/* An escape cut by the end of the buffer. */
	st.last_error = "\n\n\n";
	len = colo_status_json(&st, NULL, 0);
	ck_assert_int_eq(len, strlen(running_json) + 18);
	memset(buf, '#', sizeof(buf));
	cut = len - 3 - (int)strlen(json_tail);
	ck_assert_int_eq(colo_status_json(&st, buf, cut), len);
	ck_assert_int_eq(strlen(buf), cut - 1);
	ck_assert_int_eq(buf[cut], '#');
}
END_TEST

/*
 * The table that tap-ctl colo -h and colo-controller --help print is the parser's: every
 * entry parses to a changed option, and a key outside it is unknown.  A new option needs a
 * line here, so neither side can gain one alone.
 */
START_TEST(test_table)
{
	static const struct {
		const char *name, *value;
		unsigned int roles;
	} examples[] = {
		{ "block_size", "8192", COLO_OPTION_BOTH },
		{ "queue_limit", "2M", COLO_OPTION_BOTH },
		{ "ram_limit", "2M", COLO_OPTION_SECONDARY },
		{ "spill", "/var/tmp/spill", COLO_OPTION_SECONDARY },
		{ "spill_limit", "1G", COLO_OPTION_SECONDARY },
		{ "timeout", "1000", COLO_OPTION_BOTH },
		{ "connect_timeout", "1000", COLO_OPTION_PRIMARY },
		{ "verify", "1", COLO_OPTION_BOTH },
		{ "sync", "full", COLO_OPTION_PRIMARY },
		{ "sync_rate", "1M", COLO_OPTION_PRIMARY },
		{ "pause_target", "50", COLO_OPTION_PRIMARY },
		{ "peer", "192.0.2.1", COLO_OPTION_SECONDARY },
		{ "address", "192.0.2.9:9000", COLO_OPTION_BOTH },
		{ "dirty_log", "/var/lib/colo/vm1.dlog", COLO_OPTION_BOTH },
		{ "tls", "x509", COLO_OPTION_BOTH },
		{ "tls_dir", "/etc/pki/blktap-colo", COLO_OPTION_BOTH },
		{ "tls_psk", "/etc/pki/blktap-colo/keys.psk", COLO_OPTION_BOTH },
		{ "tls_user", "primary", COLO_OPTION_PRIMARY },
		{ "tls_name", "secondary.example", COLO_OPTION_PRIMARY },
		{ "reconnect", "1", COLO_OPTION_BOTH },
	};
	const size_t n = sizeof(examples) / sizeof(examples[0]);
	struct colo_options defaults;
	char kv[64];

	ck_assert_uint_eq(colo_start_options_count, n);
	colo_options_init(&defaults);
	for (size_t i = 0; i < n; i++) {
		const struct colo_start_option *o = &colo_start_options[i];

		ck_assert_str_eq(o->name, examples[i].name);
		ck_assert_uint_eq(o->roles, examples[i].roles);
		ck_assert_ptr_eq(colo_start_option_find(o->name, strlen(o->name)), o);
		ck_assert(o->value && o->value[0] && o->deflt && o->deflt[0]);
		ck_assert(o->meaning && o->meaning[0] && !strchr(o->meaning, '\n'));
		colo_options_init(&opts);
		snprintf(kv, sizeof(kv), "%s=%s", o->name, examples[i].value);
		ck_assert_msg(parse(kv) == 0, "%s: %s", kv, err);
		ck_assert_msg(memcmp(&opts, &defaults, sizeof(opts)), "%s changed nothing", kv);
	}
	ck_assert_ptr_null(colo_start_option_find("verif", 5));
	ck_assert_ptr_null(colo_start_option_find("verify_", 7));
	expect_error("verif=1", "unknown option 'verif'");
}
END_TEST

static Suite *colo_options_suite(void)
{
	Suite *s = suite_create("colo-options");
	TCase *tc;

	tc = tcase_create("options");
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_block_size);
	tcase_add_test(tc, test_queue_limit);
	tcase_add_test(tc, test_ram_limit);
	tcase_add_test(tc, test_spill);
	tcase_add_test(tc, test_timeouts);
	tcase_add_test(tc, test_verify);
	tcase_add_test(tc, test_address);
	tcase_add_test(tc, test_peer);
	tcase_add_test(tc, test_dirty_log);
	tcase_add_test(tc, test_unknown);
	tcase_add_test(tc, test_table);
	suite_add_tcase(s, tc);

	tc = tcase_create("status");
	tcase_add_test(tc, test_names);
	tcase_add_test(tc, test_json);
	tcase_add_test(tc, test_json_error_time);
	tcase_add_test(tc, test_json_escaping);
	tcase_add_test(tc, test_json_truncation);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(colo_options_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/*
 * The control message codec and libblktapctl's message I/O: exact layout, exact validation
 * outcomes, and reads and writes over real sockets (short reads, timeouts, peers that leave).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "blktap.h"
#include "tap-ctl.h"
#include "tapdisk-control-internal.h"
#include "tapdisk-log.h"
#include "tapdisk-message-codec.h"
#include "tapdisk-message.h"
#include "tapdisk-server.h"
#include "tapdisk-vbd.h"

static tapdisk_message_t msg_make(int type, int cookie)
{
	tapdisk_message_t m;

	memset(&m, 0, sizeof(m));
	m.type = type;
	m.cookie = cookie;
	return m;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* ---- layout ---- */

START_TEST(test_layout)
{
	/* blktap3 v4.0 on x86_64: tools built against it must interoperate. */
#if defined(__x86_64__)
	ck_assert_uint_eq(sizeof(tapdisk_message_t), 544);
#endif
	ck_assert_uint_eq(offsetof(tapdisk_message_t, type), 0);
	ck_assert_uint_eq(offsetof(tapdisk_message_t, cookie), 2);
	ck_assert_uint_eq(offsetof(tapdisk_message_t, u), 8);
	ck_assert_uint_eq(sizeof(((tapdisk_message_t *)0)->u.params.path), 256);
	ck_assert_uint_eq(sizeof(((tapdisk_message_t *)0)->u.response.message), 256);
	ck_assert_uint_eq(TAPDISK_MESSAGE_MAX_MINORS, 63);
	ck_assert_int_eq(TAPDISK_MESSAGE_EXIT, 30);
	ck_assert_int_eq(TAPDISK_MESSAGE_DISK_INFO_RSP, 29);
	ck_assert_int_eq(TAPDISK_MESSAGE_NBD_TCP, 64);
	ck_assert_int_eq(TAPDISK_MESSAGE_NBD_TCP_RSP, 65);
	ck_assert_int_eq(TAPDISK_MESSAGE_COLO, 66);
	ck_assert_int_eq(TAPDISK_MESSAGE_COLO_RSP, 67);
}
END_TEST

START_TEST(test_names)
{
	ck_assert_str_eq(tapdisk_message_name(TAPDISK_MESSAGE_ERROR), "error");
	ck_assert_str_eq(tapdisk_message_name(TAPDISK_MESSAGE_OPEN), "open");
	ck_assert_str_eq(tapdisk_message_name(TAPDISK_MESSAGE_STATS_RSP), "stats response");
	ck_assert_str_eq(tapdisk_message_name(TAPDISK_MESSAGE_NBD_TCP), "nbd tcp");
	ck_assert_str_eq(tapdisk_message_name(TAPDISK_MESSAGE_COLO), "colo");
	ck_assert_str_eq(tapdisk_message_name(TAPDISK_MESSAGE_COLO_RSP), "colo response");
	ck_assert_str_eq(tapdisk_message_name(68), "unknown");
	ck_assert_str_eq(tapdisk_message_name(0), "unknown");
	ck_assert_str_eq(tapdisk_message_name(31), "unknown");
	ck_assert_str_eq(tapdisk_message_name(-1), "unknown");
	ck_assert_str_eq(tapdisk_message_name(65535), "unknown");
}
END_TEST

START_TEST(test_reply_type)
{
	ck_assert_int_eq(tapdisk_message_reply_type(TAPDISK_MESSAGE_PID), TAPDISK_MESSAGE_PID_RSP);
	ck_assert_int_eq(tapdisk_message_reply_type(TAPDISK_MESSAGE_OPEN), TAPDISK_MESSAGE_OPEN_RSP);
	ck_assert_int_eq(tapdisk_message_reply_type(TAPDISK_MESSAGE_FORCE_SHUTDOWN),
			 TAPDISK_MESSAGE_CLOSE_RSP);
	ck_assert_int_eq(tapdisk_message_reply_type(TAPDISK_MESSAGE_EXIT), TAPDISK_MESSAGE_EXIT);
	ck_assert_int_eq(tapdisk_message_reply_type(TAPDISK_MESSAGE_NBD_TCP),
			 TAPDISK_MESSAGE_NBD_TCP_RSP);
	ck_assert_int_eq(tapdisk_message_reply_type(TAPDISK_MESSAGE_COLO),
			 TAPDISK_MESSAGE_COLO_RSP);
	ck_assert_int_eq(tapdisk_message_reply_type(TAPDISK_MESSAGE_COLO_RSP), -1);
	ck_assert_int_eq(tapdisk_message_reply_type(TAPDISK_MESSAGE_PID_RSP), -1);
	ck_assert_int_eq(tapdisk_message_reply_type(0), -1);
}
END_TEST

/* ---- request validation ---- */

START_TEST(test_request_types)
{
	tapdisk_message_t m;
	char why[256];
	int t;

	for (t = 0; t < 70; t++) {
		m = msg_make(t, 0);
		/* Requests with strings need them; an all-zero OPEN has an empty path. */
		int err = tapdisk_message_check_request(&m, why, sizeof(why));

		if (t == TAPDISK_MESSAGE_OPEN || t == TAPDISK_MESSAGE_NBD_TCP ||
		    t == TAPDISK_MESSAGE_COLO)
			ck_assert_int_eq(err, -EINVAL);
		else if (tapdisk_message_is_request(t))
			ck_assert_int_eq(err, 0);
		else
			ck_assert_int_eq(err, -EINVAL);
	}

	m = msg_make(TAPDISK_MESSAGE_PID_RSP, 0);
	ck_assert_int_eq(tapdisk_message_check_request(&m, why, sizeof(why)), -EINVAL);
	ck_assert_str_eq(why, "message type 4 (pid response) is not a request");

	m = msg_make(0xffff, 0);
	ck_assert_int_eq(tapdisk_message_check_request(&m, why, sizeof(why)), -EINVAL);
	ck_assert_str_eq(why, "message type 65535 (unknown) is not a request");

	/* @why may be omitted. */
	ck_assert_int_eq(tapdisk_message_check_request(&m, NULL, 0), -EINVAL);
}
END_TEST

START_TEST(test_request_open)
{
	tapdisk_message_t m = msg_make(TAPDISK_MESSAGE_OPEN, 3);
	char why[256];

	strcpy(m.u.params.path, "aio:/tmp/x.img");
	ck_assert_int_eq(tapdisk_message_check_request(&m, why, sizeof(why)), 0);
	ck_assert_str_eq(why, "");

	/* A path that fills its array with no NUL. */
	memset(m.u.params.path, 'a', sizeof(m.u.params.path));
	ck_assert_int_eq(tapdisk_message_check_request(&m, why, sizeof(why)), -EINVAL);
	ck_assert_str_eq(why, "path is not NUL-terminated");

	/* The NUL at the very last byte is fine. */
	m.u.params.path[sizeof(m.u.params.path) - 1] = '\0';
	ck_assert_int_eq(tapdisk_message_check_request(&m, why, sizeof(why)), 0);

	m.u.params.path[0] = '\0';
	ck_assert_int_eq(tapdisk_message_check_request(&m, why, sizeof(why)), -EINVAL);
	ck_assert_str_eq(why, "path is empty");

	strcpy(m.u.params.path, "aio:/x");
	m.u.params.flags = 0x800;
	ck_assert_int_eq(tapdisk_message_check_request(&m, why, sizeof(why)), -EINVAL);
	ck_assert_str_eq(why, "unknown flags 0x800");

	m.u.params.flags = 0x80000003;
	ck_assert_int_eq(tapdisk_message_check_request(&m, why, sizeof(why)), -EINVAL);
	ck_assert_str_eq(why, "unknown flags 0x80000000");

	/* Known flags pass the codec; the handler decides what it supports. */
	m.u.params.flags = TAPDISK_MESSAGE_FLAG_ALL & ~TAPDISK_MESSAGE_FLAG_SECONDARY;
	ck_assert_int_eq(tapdisk_message_check_request(&m, why, sizeof(why)), 0);

	/* secondary is checked only when the flag says it is used. */
	memset(m.u.params.secondary, 'b', sizeof(m.u.params.secondary));
	m.u.params.flags = 0;
	ck_assert_int_eq(tapdisk_message_check_request(&m, why, sizeof(why)), 0);
	m.u.params.flags = TAPDISK_MESSAGE_FLAG_SECONDARY;
	ck_assert_int_eq(tapdisk_message_check_request(&m, why, sizeof(why)), -EINVAL);
	ck_assert_str_eq(why, "secondary is not NUL-terminated");
	m.u.params.secondary[0] = '\0';
	ck_assert_int_eq(tapdisk_message_check_request(&m, why, sizeof(why)), -EINVAL);
	ck_assert_str_eq(why, "secondary is empty");
}
END_TEST

START_TEST(test_request_resume_nbd)
{
	tapdisk_message_t m = msg_make(TAPDISK_MESSAGE_RESUME, 1);
	char why[256];

	/* Empty path: resume on the same image.  The path is blktap3's u.params.path. */
	ck_assert_int_eq(tapdisk_message_check_request(&m, why, sizeof(why)), 0);
	memset(m.u.params.path, 'x', sizeof(m.u.params.path));
	ck_assert_int_eq(tapdisk_message_check_request(&m, why, sizeof(why)), -EINVAL);
	ck_assert_str_eq(why, "path is not NUL-terminated");
	m.u.params.path[0] = '\0';
	m.u.params.flags = 0x1000;
	ck_assert_int_eq(tapdisk_message_check_request(&m, why, sizeof(why)), -EINVAL);

	m = msg_make(TAPDISK_MESSAGE_NBD_TCP, 1);
	ck_assert_int_eq(tapdisk_message_check_request(&m, why, sizeof(why)), -EINVAL);
	ck_assert_str_eq(why, "address is empty");
	strcpy(m.u.string.text, "127.0.0.1:0");
	ck_assert_int_eq(tapdisk_message_check_request(&m, why, sizeof(why)), 0);
	memset(m.u.string.text, '1', sizeof(m.u.string.text));
	ck_assert_int_eq(tapdisk_message_check_request(&m, why, sizeof(why)), -EINVAL);
	ck_assert_str_eq(why, "address is not NUL-terminated");

	/* A tiny @why is truncated, never overrun. */
	ck_assert_int_eq(tapdisk_message_check_request(&m, why, 4), -EINVAL);
	ck_assert_str_eq(why, "add");
}
END_TEST

START_TEST(test_request_colo)
{
	tapdisk_message_t m = msg_make(TAPDISK_MESSAGE_COLO, 2);
	char why[256];

	ck_assert_int_eq(tapdisk_message_check_request(&m, why, sizeof(why)), -EINVAL);
	ck_assert_str_eq(why, "command is empty");
	strcpy(m.u.string.text, "start primary block_size=64K");
	ck_assert_int_eq(tapdisk_message_check_request(&m, why, sizeof(why)), 0);
	/* The verb is the handler's business: the codec checks only the string. */
	strcpy(m.u.string.text, "frobnicate");
	ck_assert_int_eq(tapdisk_message_check_request(&m, why, sizeof(why)), 0);
	memset(m.u.string.text, 's', sizeof(m.u.string.text));
	ck_assert_int_eq(tapdisk_message_check_request(&m, why, sizeof(why)), -EINVAL);
	ck_assert_str_eq(why, "command is not NUL-terminated");
	m.u.string.text[sizeof(m.u.string.text) - 1] = '\0';
	ck_assert_int_eq(tapdisk_message_check_request(&m, why, sizeof(why)), 0);
}
END_TEST

START_TEST(test_needs_vbd)
{
	ck_assert(tapdisk_message_needs_vbd(TAPDISK_MESSAGE_OPEN));
	ck_assert(tapdisk_message_needs_vbd(TAPDISK_MESSAGE_NBD_TCP));
	ck_assert(tapdisk_message_needs_vbd(TAPDISK_MESSAGE_DETACH));
	ck_assert(tapdisk_message_needs_vbd(TAPDISK_MESSAGE_COLO));
	ck_assert(!tapdisk_message_needs_vbd(TAPDISK_MESSAGE_ATTACH));
	ck_assert(!tapdisk_message_needs_vbd(TAPDISK_MESSAGE_STATS));
	ck_assert(!tapdisk_message_needs_vbd(TAPDISK_MESSAGE_LIST));
	ck_assert(!tapdisk_message_needs_vbd(TAPDISK_MESSAGE_PID));
}
END_TEST

/* ---- reply validation ---- */

START_TEST(test_reply_check)
{
	tapdisk_message_t m;
	char why[256];

	m = msg_make(TAPDISK_MESSAGE_ERROR, 0);
	m.u.response.error = ENOENT;
	ck_assert_int_eq(tapdisk_message_check_reply(&m, why, sizeof(why)), 0);
	memset(m.u.response.message, 'e', sizeof(m.u.response.message));
	ck_assert_int_eq(tapdisk_message_check_reply(&m, why, sizeof(why)), -EPROTO);
	ck_assert_str_eq(why, "error message is not NUL-terminated");

	m = msg_make(TAPDISK_MESSAGE_LIST_RSP, 0);
	m.u.list.count = -2;
	ck_assert_int_eq(tapdisk_message_check_reply(&m, why, sizeof(why)), -EPROTO);
	ck_assert_str_eq(why, "negative list count -2");
	m.u.list.count = 1;
	ck_assert_int_eq(tapdisk_message_check_reply(&m, why, sizeof(why)), 0);
	memset(m.u.list.path, 'p', sizeof(m.u.list.path));
	ck_assert_int_eq(tapdisk_message_check_reply(&m, why, sizeof(why)), -EPROTO);

	m = msg_make(TAPDISK_MESSAGE_LIST_MINORS_RSP, 0);
	m.u.minors.count = 63;
	ck_assert_int_eq(tapdisk_message_check_reply(&m, why, sizeof(why)), 0);
	m.u.minors.count = 64;
	ck_assert_int_eq(tapdisk_message_check_reply(&m, why, sizeof(why)), -EPROTO);
	ck_assert_str_eq(why, "minor count 64 out of range");
	m.u.minors.count = -1;
	ck_assert_int_eq(tapdisk_message_check_reply(&m, why, sizeof(why)), -EPROTO);

	m = msg_make(TAPDISK_MESSAGE_STATS_RSP, 0);
	m.u.info.length = TAPDISK_MESSAGE_STATS_MAX;
	ck_assert_int_eq(tapdisk_message_check_reply(&m, why, sizeof(why)), 0);
	m.u.info.length = TAPDISK_MESSAGE_STATS_MAX + 1;
	ck_assert_int_eq(tapdisk_message_check_reply(&m, why, sizeof(why)), -EPROTO);
	ck_assert_str_eq(why, "stats length 1048577 exceeds 1048576 bytes");

	m = msg_make(TAPDISK_MESSAGE_COLO_RSP, 0);
	ck_assert_int_eq(tapdisk_message_check_reply(&m, why, sizeof(why)), 0);
	m.u.info.length = TAPDISK_MESSAGE_COLO_MAX;
	ck_assert_int_eq(tapdisk_message_check_reply(&m, why, sizeof(why)), 0);
	m.u.info.length = TAPDISK_MESSAGE_COLO_MAX + 1;
	ck_assert_int_eq(tapdisk_message_check_reply(&m, why, sizeof(why)), -EPROTO);
	ck_assert_str_eq(why, "colo text length 65537 exceeds 65536 bytes");
	m.u.info.length = (size_t)-1;
	ck_assert_int_eq(tapdisk_message_check_reply(&m, why, sizeof(why)), -EPROTO);
	m = msg_make(TAPDISK_MESSAGE_COLO, 0);
	ck_assert_int_eq(tapdisk_message_check_reply(&m, why, sizeof(why)), -EPROTO);
	ck_assert_str_eq(why, "message type 66 is not a reply");

	m = msg_make(TAPDISK_MESSAGE_PID, 0);
	ck_assert_int_eq(tapdisk_message_check_reply(&m, why, sizeof(why)), -EPROTO);
	ck_assert_str_eq(why, "message type 3 is not a reply");
	m = msg_make(0, 0);
	ck_assert_int_eq(tapdisk_message_check_reply(&m, why, sizeof(why)), -EPROTO);
	m = msg_make(TAPDISK_MESSAGE_EXIT, 0);
	ck_assert_int_eq(tapdisk_message_check_reply(&m, why, sizeof(why)), 0);
}
END_TEST

/* ---- parsing ---- */

START_TEST(test_split_params)
{
	char type[32];
	const char *path;

	ck_assert_int_eq(tapdisk_message_split_params("aio:/tmp/x.img", type, sizeof(type), &path),
			 0);
	ck_assert_str_eq(type, "aio");
	ck_assert_str_eq(path, "/tmp/x.img");
	/* Only the first ':' splits: paths may contain more. */
	ck_assert_int_eq(tapdisk_message_split_params("nbd:/a:b", type, sizeof(type), &path), 0);
	ck_assert_str_eq(type, "nbd");
	ck_assert_str_eq(path, "/a:b");
	ck_assert_int_eq(tapdisk_message_split_params("/tmp/x", type, sizeof(type), &path), -EINVAL);
	ck_assert_int_eq(tapdisk_message_split_params(":/tmp/x", type, sizeof(type), &path),
			 -EINVAL);
	ck_assert_int_eq(tapdisk_message_split_params("aio:", type, sizeof(type), &path), -EINVAL);
	ck_assert_int_eq(tapdisk_message_split_params("aio:/x", type, 3, &path), -EINVAL);
}
END_TEST

START_TEST(test_split_hostport)
{
	char host[TAPDISK_MESSAGE_HOST_MAX], port[TAPDISK_MESSAGE_PORT_MAX];

#define SPLIT(s) tapdisk_message_split_hostport(s, host, sizeof(host), port, sizeof(port))
	ck_assert_int_eq(SPLIT("127.0.0.1:10809"), 0);
	ck_assert_str_eq(host, "127.0.0.1");
	ck_assert_str_eq(port, "10809");
	ck_assert_int_eq(SPLIT("[::1]:0"), 0);
	ck_assert_str_eq(host, "::1");
	ck_assert_str_eq(port, "0");
	ck_assert_int_eq(SPLIT("localhost:65535"), 0);
	ck_assert_int_eq(SPLIT("::1:80"), -EINVAL);
	ck_assert_int_eq(SPLIT("localhost"), -EINVAL);
	ck_assert_int_eq(SPLIT("localhost:"), -EINVAL);
	ck_assert_int_eq(SPLIT(":80"), -EINVAL);
	ck_assert_int_eq(SPLIT("[]:80"), -EINVAL);
	ck_assert_int_eq(SPLIT("h:65536"), -EINVAL);
	ck_assert_int_eq(SPLIT("h:-1"), -EINVAL);
	ck_assert_int_eq(SPLIT("h:+1"), -EINVAL);
	ck_assert_int_eq(SPLIT("h:80x"), -EINVAL);
	ck_assert_int_eq(SPLIT("h:99999999999999999999999"), -EINVAL);
#undef SPLIT
	ck_assert_int_eq(tapdisk_message_split_hostport("hostname:80", host, 4, port, sizeof(port)),
			 -EINVAL);
}
END_TEST

/* ---- message I/O over a socketpair ---- */

static int sv[2];

static void pair_setup(void)
{
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
}

static void pair_teardown(void)
{
	close(sv[0]);
	close(sv[1]);
}

START_TEST(test_io_roundtrip)
{
	tapdisk_message_t out = msg_make(TAPDISK_MESSAGE_OPEN_RSP, 7), in;
	struct timeval tv = { .tv_sec = 1 };

	out.u.image.sectors = 123456789012ULL;
	out.u.image.sector_size = 4096;
	ck_assert_int_eq(tap_ctl_write_message(sv[0], &out, &tv), 0);
	ck_assert_int_eq(tap_ctl_read_message(sv[1], &in, &tv), 0);
	ck_assert_int_eq(memcmp(&in, &out, sizeof(in)), 0);

	/* NULL: no timeout. */
	ck_assert_int_eq(tap_ctl_write_message(sv[0], &out, NULL), 0);
	ck_assert_int_eq(tap_ctl_read_message(sv[1], &in, NULL), 0);
	ck_assert_int_eq(in.u.image.sectors, 123456789012ULL);
}
END_TEST

struct dribble {
	int fd;
	const char *buf;
	size_t len, chunk;
	int delay_ms;
	int close_after; /* close the fd after this many bytes (0: never) */
};

static void *dribble_thread(void *arg)
{
	struct dribble *d = arg;
	size_t off = 0, n;

	while (off < d->len) {
		n = d->len - off < d->chunk ? d->len - off : d->chunk;
		if (d->close_after && off + n > (size_t)d->close_after)
			n = d->close_after - off;
		if (write(d->fd, d->buf + off, n) != (ssize_t)n)
			break;
		off += n;
		if (d->close_after && off >= (size_t)d->close_after)
			break;
		usleep(d->delay_ms * 1000);
	}
	if (d->close_after)
		close(d->fd);
	return NULL;
}

START_TEST(test_io_short_reads)
{
	tapdisk_message_t out = msg_make(TAPDISK_MESSAGE_LIST_RSP, 2), in;
	struct dribble d = { sv[0], (const char *)&out, sizeof(out), 100, 5, 0 };
	struct timeval tv = { .tv_sec = 5 };
	pthread_t th;

	out.u.list.count = 1;
	strcpy(out.u.list.path, "aio:/a");
	ck_assert_int_eq(pthread_create(&th, NULL, dribble_thread, &d), 0);
	ck_assert_int_eq(tap_ctl_read_message(sv[1], &in, &tv), 0);
	pthread_join(th, NULL);
	ck_assert_int_eq(memcmp(&in, &out, sizeof(in)), 0);
	/* Time spent was charged to the timeout. */
	ck_assert(tv.tv_sec < 5);
}
END_TEST

START_TEST(test_io_timeout)
{
	struct timeval tv = { .tv_sec = 0, .tv_usec = 200 * 1000 };
	tapdisk_message_t in;
	long long t0 = now_ms(), dt;

	ck_assert_int_eq(tap_ctl_read_message(sv[1], &in, &tv), -ETIMEDOUT);
	dt = now_ms() - t0;
	ck_assert_int_ge(dt, 190);
	ck_assert_int_lt(dt, 2000);
	ck_assert_int_eq(tv.tv_sec, 0);
	ck_assert_int_eq(tv.tv_usec, 0);

	/* A partial message, then silence: still a timeout, not a short message. */
	tv.tv_usec = 100 * 1000;
	ck_assert_int_eq(write(sv[0], "abc", 3), 3);
	ck_assert_int_eq(tap_ctl_read_message(sv[1], &in, &tv), -ETIMEDOUT);

	/* A zero timeout polls once. */
	tv.tv_sec = tv.tv_usec = 0;
	ck_assert_int_eq(tap_ctl_read_raw(sv[1], &in, 1, &tv), -ETIMEDOUT);
}
END_TEST

START_TEST(test_io_write_timeout)
{
	tapdisk_message_t out = msg_make(TAPDISK_MESSAGE_PID, 0);
	struct timeval tv = { .tv_sec = 0, .tv_usec = 100 * 1000 };
	char junk[4096] = { 0 };
	int sz = 4096;

	/* Fill the socket: the peer never reads. */
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	while (send(sv[0], junk, sizeof(junk), MSG_DONTWAIT) > 0)
		;
	ck_assert_int_eq(tap_ctl_write_message(sv[0], &out, &tv), -ETIMEDOUT);
}
END_TEST

START_TEST(test_io_peer_closes)
{
	tapdisk_message_t out = msg_make(TAPDISK_MESSAGE_PID_RSP, 0), in;
	struct timeval tv = { .tv_sec = 2 };

	/* Closed before anything was sent. */
	close(sv[0]);
	sv[0] = -1;
	ck_assert_int_eq(tap_ctl_read_message(sv[1], &in, &tv), -ECONNRESET);
	/* Writing to a closed peer: EPIPE, and no SIGPIPE kills us. */
	ck_assert_int_eq(tap_ctl_write_message(sv[1], &out, &tv), -EPIPE);
}
END_TEST

START_TEST(test_io_peer_closes_midway)
{
	tapdisk_message_t out = msg_make(TAPDISK_MESSAGE_PID_RSP, 0), in;
	struct dribble d = { sv[0], (const char *)&out, sizeof(out), 50, 2, 120 };
	struct timeval tv = { .tv_sec = 5 };
	pthread_t th;

	ck_assert_int_eq(pthread_create(&th, NULL, dribble_thread, &d), 0);
	ck_assert_int_eq(tap_ctl_read_message(sv[1], &in, &tv), -ECONNRESET);
	pthread_join(th, NULL);
	sv[0] = -1;
}
END_TEST

START_TEST(test_io_bad_reply)
{
	tapdisk_message_t out = msg_make(TAPDISK_MESSAGE_LIST_MINORS_RSP, 0), in;
	struct timeval tv = { .tv_sec = 1 };

	out.u.minors.count = 1000;
	ck_assert_int_eq(tap_ctl_write_message(sv[0], &out, &tv), 0);
	ck_assert_int_eq(tap_ctl_read_message(sv[1], &in, &tv), -EPROTO);
}
END_TEST

/* ---- requests against a scripted tapdisk ---- */

#define FAKE_ID 4242

static char fake_dir[64];
static int fake_listen = -1;

/* One scripted connection: expect @want_type, answer with @n replies. */
struct fake_step {
	int want_type;
	tapdisk_message_t replies[4];
	int n;
};

struct fake_script {
	struct fake_step steps[4];
	int n;
	int got_type[4];
};

static void *fake_tapdisk(void *arg)
{
	struct fake_script *s = arg;
	tapdisk_message_t req;
	int i, j, fd;

	for (i = 0; i < s->n; i++) {
		fd = accept(fake_listen, NULL, NULL);
		if (fd < 0)
			return NULL;
		if (read(fd, &req, sizeof(req)) == sizeof(req))
			s->got_type[i] = req.type;
		for (j = 0; j < s->steps[i].n; j++)
			if (write(fd, &s->steps[i].replies[j], sizeof(req)) != sizeof(req))
				break;
		close(fd);
	}
	return NULL;
}

static void fake_setup(void)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };

	strcpy(fake_dir, "/tmp/test-message.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(fake_dir));
	setenv(BLKTAP_CONTROL_DIR_ENV, fake_dir, 1);
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/ctl%d", fake_dir, FAKE_ID);
	fake_listen = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_ge(fake_listen, 0);
	ck_assert_int_eq(bind(fake_listen, (struct sockaddr *)&addr, sizeof(addr)), 0);
	ck_assert_int_eq(listen(fake_listen, 4), 0);
}

static void fake_teardown(void)
{
	char path[128];

	close(fake_listen);
	snprintf(path, sizeof(path), "%s/ctl%d", fake_dir, FAKE_ID);
	unlink(path);
	snprintf(path, sizeof(path), "%s/tapdisk", fake_dir);
	rmdir(path);
	rmdir(fake_dir);
}

START_TEST(test_request_error_reply)
{
	struct fake_script s = { .n = 1 };
	pthread_t th;

	s.steps[0].replies[0] = msg_make(TAPDISK_MESSAGE_ERROR, 3);
	s.steps[0].replies[0].u.response.error = EEXIST;
	strcpy(s.steps[0].replies[0].u.response.message, "minor 3 is already attached");
	s.steps[0].n = 1;
	pthread_create(&th, NULL, fake_tapdisk, &s);
	ck_assert_int_eq(tap_ctl_attach(FAKE_ID, 3), -EEXIST);
	pthread_join(th, NULL);
	ck_assert_int_eq(s.got_type[0], TAPDISK_MESSAGE_ATTACH);
}
END_TEST

START_TEST(test_request_wrong_reply)
{
	struct fake_script s = { .n = 2 };
	pthread_t th;

	s.steps[0].replies[0] = msg_make(TAPDISK_MESSAGE_OPEN_RSP, 3);
	s.steps[0].n = 1;
	/* Hang up without a reply. */
	s.steps[1].n = 0;
	pthread_create(&th, NULL, fake_tapdisk, &s);
	ck_assert_int_eq(tap_ctl_detach(FAKE_ID, 3), -EPROTO);
	ck_assert_int_eq(tap_ctl_pause(FAKE_ID, 3, NULL), -ECONNRESET);
	pthread_join(th, NULL);
	ck_assert_int_eq(s.got_type[1], TAPDISK_MESSAGE_PAUSE);
}
END_TEST

START_TEST(test_request_list_pid)
{
	struct fake_script s = { .n = 2 };
	struct list_head list;
	tap_list_t *e;
	pthread_t th;
	int n = 0;

	s.steps[0].replies[0] = msg_make(TAPDISK_MESSAGE_PID_RSP, 0);
	s.steps[0].replies[0].u.tapdisk_pid = 999;
	s.steps[0].n = 1;
	s.steps[1].replies[0] = msg_make(TAPDISK_MESSAGE_LIST_RSP, 0);
	s.steps[1].replies[0].u.list = (tapdisk_message_list_t){ 2, 5, 0x2, "" };
	s.steps[1].replies[1] = msg_make(TAPDISK_MESSAGE_LIST_RSP, 0);
	s.steps[1].replies[1].u.list = (tapdisk_message_list_t){ 1, 6, 0, "aio:/img:1" };
	s.steps[1].replies[2] = msg_make(TAPDISK_MESSAGE_LIST_RSP, 0);
	s.steps[1].replies[2].u.list = (tapdisk_message_list_t){ 0, -1, -1, "" };
	s.steps[1].n = 3;
	pthread_create(&th, NULL, fake_tapdisk, &s);
	ck_assert_int_eq(tap_ctl_list_pid(FAKE_ID, &list), 0);
	pthread_join(th, NULL);

	tap_list_for_each_entry(e, &list) {
		ck_assert_int_eq(e->pid, 999);
		if (n == 0) {
			ck_assert_int_eq(e->minor, 5);
			ck_assert_int_eq(e->state, 2);
			ck_assert_ptr_null(e->type);
		} else {
			ck_assert_int_eq(e->minor, 6);
			ck_assert_str_eq(e->type, "aio");
			ck_assert_str_eq(e->path, "/img:1");
		}
		n++;
	}
	ck_assert_int_eq(n, 2);
	tap_ctl_list_free(&list);
}
END_TEST

START_TEST(test_request_stats)
{
	struct fake_script s = { .n = 1 };
	static const char text[] = "{ \"name\": \"aio:/x\" }";
	char buf[8];
	pthread_t th;

	s.steps[0].replies[0] = msg_make(TAPDISK_MESSAGE_STATS_RSP, 1);
	s.steps[0].replies[0].u.info.length = sizeof(text) - 1;
	s.steps[0].n = 1;
	pthread_create(&th, NULL, fake_tapdisk, &s);
	/* The fake sends no text: the read of the text must fail cleanly, not hang. */
	ck_assert_int_eq(tap_ctl_stats(FAKE_ID, 1, buf, sizeof(buf)), -ECONNRESET);
	pthread_join(th, NULL);
}
END_TEST

START_TEST(test_request_colo_client)
{
	struct fake_script s = { .n = 3 };
	char *text = (char *)"unset", longcmd[300];
	pthread_t th;

	s.steps[0].replies[0] = msg_make(TAPDISK_MESSAGE_COLO_RSP, 1);
	s.steps[0].n = 1;
	s.steps[1].replies[0] = msg_make(TAPDISK_MESSAGE_ERROR, 1);
	s.steps[1].replies[0].u.response.error = EINVAL;
	strcpy(s.steps[1].replies[0].u.response.message, "VBD 1 is not a colo disk");
	s.steps[1].n = 1;
	/* Announces text that never comes. */
	s.steps[2].replies[0] = msg_make(TAPDISK_MESSAGE_COLO_RSP, 1);
	s.steps[2].replies[0].u.info.length = 7;
	s.steps[2].n = 1;
	pthread_create(&th, NULL, fake_tapdisk, &s);

	ck_assert_int_eq(tap_ctl_colo(FAKE_ID, 1, "stop", &text), 0);
	ck_assert_str_eq(text, "");
	free(text);
	ck_assert_int_eq(tap_ctl_colo(FAKE_ID, 1, "status", &text), -EINVAL);
	ck_assert_ptr_null(text);
	ck_assert_int_eq(tap_ctl_colo(FAKE_ID, 1, "checkpoint", &text), -ECONNRESET);
	ck_assert_ptr_null(text);
	pthread_join(th, NULL);
	ck_assert_int_eq(s.got_type[0], TAPDISK_MESSAGE_COLO);
	ck_assert_int_eq(s.got_type[2], TAPDISK_MESSAGE_COLO);

	/* Refused before any connection: the fake has hung up by now. */
	memset(longcmd, 'c', sizeof(longcmd) - 1);
	longcmd[sizeof(longcmd) - 1] = '\0';
	ck_assert_int_eq(tap_ctl_colo(FAKE_ID, 1, longcmd, &text), -EINVAL);
	longcmd[256] = '\0';
	ck_assert_int_eq(tap_ctl_colo(FAKE_ID, 1, longcmd, &text), -EINVAL);
	ck_assert_int_eq(tap_ctl_colo(FAKE_ID, 1, "", &text), -EINVAL);
}
END_TEST

START_TEST(test_allocate_free)
{
	char *name = NULL, *name2 = NULL;
	int minor, minor2;

	ck_assert_int_eq(tap_ctl_allocate(&minor, &name), 0);
	ck_assert_int_eq(minor, 0);
	ck_assert_int_eq(tap_ctl_allocate(&minor2, &name2), 0);
	ck_assert_int_eq(minor2, 1);
	ck_assert(strstr(name2, "/tapdisk/tapdisk-1") != NULL);
	ck_assert_int_eq(tap_ctl_free(0), 0);
	ck_assert_int_eq(tap_ctl_free(0), -ENOENT);
	free(name);
	name = NULL;
	/* The lowest free minor is reused. */
	ck_assert_int_eq(tap_ctl_allocate(&minor, &name), 0);
	ck_assert_int_eq(minor, 0);
	ck_assert_int_eq(tap_ctl_free(0), 0);
	ck_assert_int_eq(tap_ctl_free(1), 0);
	ck_assert_int_eq(tap_ctl_free(MAX_ID), -EINVAL);
	free(name);
	free(name2);
}
END_TEST

/* ---- COLO through the request handler, on a VBD with a plain aio image ---- */

#define HANDLER_IMAGE_SIZE (1 << 20)

static char handler_dir[64], handler_image[160];
static td_vbd_t *handler_vbd;

struct handler_sink {
	struct tapdisk_control_reply reply;
	tapdisk_message_t rsp;
	int n_replies;
	int completed;
	size_t text_len;
};

static int handler_sink_send(struct tapdisk_control_reply *reply, const void *buf, size_t len)
{
	struct handler_sink *sink = (struct handler_sink *)reply;

	ck_assert(!sink->completed);
	if (sink->n_replies++ == 0) {
		ck_assert_uint_eq(len, sizeof(sink->rsp));
		memcpy(&sink->rsp, buf, len);
	} else {
		sink->text_len += len;
	}
	return 0;
}

static void handler_sink_complete(struct tapdisk_control_reply *reply, int after)
{
	struct handler_sink *sink = (struct handler_sink *)reply;

	ck_assert(!sink->completed);
	ck_assert_int_eq(after, 0);
	sink->completed = 1;
}

static void handler_setup(void)
{
	static int initialized;
	char path[128];
	int fd;

	strcpy(handler_dir, "/tmp/test-message-colo.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(handler_dir));
	setenv(BLKTAP_CONTROL_DIR_ENV, handler_dir, 1);
	snprintf(path, sizeof(path), "%s/disk.img", handler_dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, HANDLER_IMAGE_SIZE), 0);
	close(fd);
	snprintf(handler_image, sizeof(handler_image), "aio:%s", path);

	if (!initialized) {
		tlog_set_stderr(0);
		ck_assert_int_eq(tapdisk_server_init(), 0);
		initialized = 1;
	}
	handler_vbd = tapdisk_vbd_create(0);
	ck_assert_ptr_nonnull(handler_vbd);
	tapdisk_server_add_vbd(handler_vbd);
	ck_assert_int_eq(tapdisk_vbd_open_vdi(handler_vbd, handler_image, TD_OPEN_NO_O_DIRECT, -1),
			 0);
}

static void handler_close_done(td_vbd_t *vbd, int err, void *arg)
{
	*(int *)arg = 1;
}

static void handler_teardown(void)
{
	char path[128];
	int i, done = 0;

	ck_assert_int_eq(tapdisk_vbd_close(handler_vbd, handler_close_done, &done), 0);
	for (i = 0; i < 100 && !done; i++)
		tapdisk_server_check_state();
	ck_assert(done);
	tapdisk_server_remove_vbd(handler_vbd);
	tapdisk_vbd_free(handler_vbd);
	snprintf(path, sizeof(path), "%s/disk.img", handler_dir);
	unlink(path);
	rmdir(handler_dir);
}

/* Sends COLO @text to VBD @minor; the request must complete at once with one reply. */
static tapdisk_message_t colo_handle(int minor, const char *text)
{
	struct handler_sink sink = {
		.reply = { .send = handler_sink_send, .complete = handler_sink_complete },
	};
	tapdisk_message_t req = msg_make(TAPDISK_MESSAGE_COLO, minor);

	snprintf(req.u.string.text, sizeof(req.u.string.text), "%s", text);
	tapdisk_control_handle_message(&req, &sink.reply);
	ck_assert(sink.completed);
	ck_assert_int_eq(sink.n_replies, 1);
	ck_assert_uint_eq(sink.text_len, 0);
	return sink.rsp;
}

/* COLO @text to @minor fails with @err and exactly @msg. */
static void expect_colo_error(int minor, const char *text, int err, const char *msg)
{
	tapdisk_message_t rsp = colo_handle(minor, text);

	ck_assert_msg(rsp.type == TAPDISK_MESSAGE_ERROR, "'%s': reply type %u", text, rsp.type);
	ck_assert_int_eq(rsp.cookie, minor);
	ck_assert_int_eq(rsp.u.response.error, err);
	ck_assert_str_eq(rsp.u.response.message, msg);
}

START_TEST(test_colo_not_colo)
{
	static const char *const commands[] = {
		"status", "checkpoint", "failover", "stop", "start primary", "start secondary",
		"start secondary ram_limit=2G spill=/tmp/spill timeout=1000 verify=1",
		/* Blanks are separators, however many. */
		"  status\t", "start  primary   block_size=64K",
	};
	size_t i;

	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		expect_colo_error(0, commands[i], EINVAL, "VBD 0 is not a colo disk");
}
END_TEST

START_TEST(test_colo_no_vbd)
{
	expect_colo_error(9, "status", ENODEV, "no VBD with minor 9");
	expect_colo_error(9, "frobnicate", ENODEV, "no VBD with minor 9");
}
END_TEST

START_TEST(test_colo_bad_commands)
{
	static const struct {
		const char *text, *msg;
	} cases[] = {
		{ "frobnicate",
		  "unknown colo command 'frobnicate' (start, checkpoint, failover, stop, status, xenstore)" },
		{ "Status",
		  "unknown colo command 'Status' (start, checkpoint, failover, stop, status, xenstore)" },
		{ "   ", "missing colo command (start, checkpoint, failover, stop, status, xenstore)" },
		{ "start", "start needs a role: start primary|secondary [key=value ...]" },
		{ "start  ", "start needs a role: start primary|secondary [key=value ...]" },
		{ "start tertiary", "unknown role 'tertiary': expected primary or secondary" },
		{ "start block_size=4096",
		  "unknown role 'block_size=4096': expected primary or secondary" },
		{ "start primary block_size=3000",
		  "block_size=3000: must be a power of two from 512 to 1048576" },
		{ "start secondary timeout=100 foo=1", "unknown option 'foo'" },
		{ "start secondary spill=relative", "spill=relative: must be an absolute path" },
		{ "checkpoint now", "checkpoint takes no arguments (got 'now')" },
		{ "failover -f", "failover takes no argument but 'force' (got '-f')" },
		{ "stop primary", "stop takes no arguments (got 'primary')" },
		{ "status json", "status takes no arguments (got 'json')" },
	};
	size_t i;

	/* The command is checked before the disk: the same answer on every VBD. */
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_colo_error(0, cases[i].text, EINVAL, cases[i].msg);
}
END_TEST

START_TEST(test_colo_malformed)
{
	struct handler_sink sink = {
		.reply = { .send = handler_sink_send, .complete = handler_sink_complete },
	};
	tapdisk_message_t req = msg_make(TAPDISK_MESSAGE_COLO, 0);

	expect_colo_error(0, "", EINVAL, "malformed request: command is empty");

	/* 256 bytes and no NUL: refused without reading past the array. */
	memset(req.u.string.text, 's', sizeof(req.u.string.text));
	tapdisk_control_handle_message(&req, &sink.reply);
	ck_assert(sink.completed);
	ck_assert_int_eq(sink.rsp.type, TAPDISK_MESSAGE_ERROR);
	ck_assert_int_eq(sink.rsp.u.response.error, EINVAL);
	ck_assert_str_eq(sink.rsp.u.response.message,
			 "malformed request: command is not NUL-terminated");

	/* 255 bytes is the longest command: it reaches the parser. */
	memset(req.u.string.text, 's', sizeof(req.u.string.text) - 1);
	req.u.string.text[sizeof(req.u.string.text) - 1] = '\0';
	memset(&sink.rsp, 0, sizeof(sink.rsp));
	sink.n_replies = sink.completed = 0;
	tapdisk_control_handle_message(&req, &sink.reply);
	ck_assert(sink.completed);
	ck_assert_int_eq(sink.rsp.u.response.error, EINVAL);
	ck_assert(!strncmp(sink.rsp.u.response.message, "unknown colo command 'sss", 25));
	ck_assert(tapdisk_message_str_terminated(sink.rsp.u.response.message,
						 sizeof(sink.rsp.u.response.message)));
}
END_TEST

static Suite *message_suite(void)
{
	Suite *s = suite_create("message");
	TCase *tc;

	tc = tcase_create("codec");
	tcase_add_test(tc, test_layout);
	tcase_add_test(tc, test_names);
	tcase_add_test(tc, test_reply_type);
	tcase_add_test(tc, test_request_types);
	tcase_add_test(tc, test_request_open);
	tcase_add_test(tc, test_request_resume_nbd);
	tcase_add_test(tc, test_request_colo);
	tcase_add_test(tc, test_needs_vbd);
	tcase_add_test(tc, test_reply_check);
	tcase_add_test(tc, test_split_params);
	tcase_add_test(tc, test_split_hostport);
	suite_add_tcase(s, tc);

	tc = tcase_create("io");
	tcase_add_checked_fixture(tc, pair_setup, pair_teardown);
	tcase_add_test(tc, test_io_roundtrip);
	tcase_add_test(tc, test_io_short_reads);
	tcase_add_test(tc, test_io_timeout);
	tcase_add_test(tc, test_io_write_timeout);
	tcase_add_test(tc, test_io_peer_closes);
	tcase_add_test(tc, test_io_peer_closes_midway);
	tcase_add_test(tc, test_io_bad_reply);
	suite_add_tcase(s, tc);

	tc = tcase_create("requests");
	tcase_add_checked_fixture(tc, fake_setup, fake_teardown);
	tcase_add_test(tc, test_request_error_reply);
	tcase_add_test(tc, test_request_wrong_reply);
	tcase_add_test(tc, test_request_list_pid);
	tcase_add_test(tc, test_request_stats);
	tcase_add_test(tc, test_request_colo_client);
	tcase_add_test(tc, test_allocate_free);
	tcase_set_timeout(tc, 20);
	suite_add_tcase(s, tc);

	tc = tcase_create("colo handler");
	tcase_add_checked_fixture(tc, handler_setup, handler_teardown);
	tcase_add_test(tc, test_colo_not_colo);
	tcase_add_test(tc, test_colo_no_vbd);
	tcase_add_test(tc, test_colo_bad_commands);
	tcase_add_test(tc, test_colo_malformed);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(message_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

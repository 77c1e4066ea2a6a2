/*
 * libFuzzer target for the replication link's handshake (drivers/colo-handshake.c) with its
 * transport (drivers/tls-session.c): what the peer sends before the first frame.
 *
 * The first input byte picks our side and mode: bit 0 the role (0: the Secondary, which
 * reads a ClientHello or a plain hello; 1: the Primary, which reads a ServerHello or a plain
 * hello_reply), bit 1 the mode (0: tls=none, 1: tls=psk with a key file made at start), bit 2
 * a start from a right message: a hello of our disk (or a hello_reply of our session) that
 * the next input bytes are XORed into, the rest following it, so that mutations near a right
 * message are common and the paths after an accepted one are fuzzed too.  The rest is what
 * the peer sends, over one end of a socket pair whose other end is handed to
 * colo_handshake_begin, as the accept or the connect would; then the peer shuts its side
 * down and tapdisk's event loop runs until the handshake ends.  A hello's flags are cleared
 * and this Primary wants no start step: the steps read a disk this colo does not have (their
 * decoding is fuzz-colo-frame's).
 *
 * Checked: the handshake always ends (accepted or dropped) once the peer has closed, without
 * waiting for a timeout; the link comes up only for a hello (or hello_reply) that is right:
 * for the Secondary in plain text, the first 80 bytes decode and match our disk, block size
 * and mode; for the Primary, a hello_reply with status 0 and our session id; and nothing
 * leaks or overruns (ASan/UBSan).  Not covered: a successful TLS handshake (the peer would
 * need the key), which tests/test-colo-tls.sh runs with real peers.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "colo-internal.h"
#include "tapdisk-log.h"
#include "tapdisk-server.h"

#define FUZZ_DISK_SIZE (1ULL << 20)
#define FUZZ_MAX_INPUT (128U << 10) /* what a socket pair's buffer takes at once */
#define FUZZ_MAX_ITERATIONS 1000

static struct colo *c;
static char fuzz_dir[64];
static char fuzz_psk[96];

static void fuzz_assert(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz-colo-handshake: check failed: %s\n", what);
		abort();
	}
}

static void fuzz_cleanup(void)
{
	unlink(fuzz_psk);
	rmdir(fuzz_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char key[] = "primary:0123456789abcdef0123456789abcdef\n";
	int fd;

	(void)argc;
	(void)argv;
	tlog_set_stderr(getenv("FUZZ_VERBOSE") != NULL);
	fuzz_assert(tapdisk_server_init() == 0, "tapdisk_server_init");
	snprintf(fuzz_dir, sizeof(fuzz_dir), "/tmp/fuzz-colo-handshake.XXXXXX");
	fuzz_assert(mkdtemp(fuzz_dir) != NULL, "mkdtemp");
	snprintf(fuzz_psk, sizeof(fuzz_psk), "%s/keys.psk", fuzz_dir);
	atexit(fuzz_cleanup);
	fd = open(fuzz_psk, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	fuzz_assert(fd >= 0 && write(fd, key, sizeof(key) - 1) == sizeof(key) - 1, "the PSK file");
	close(fd);
	c = calloc(1, sizeof(*c));
	fuzz_assert(c != NULL, "calloc");
	snprintf(c->host, sizeof(c->host), "127.0.0.1");
	snprintf(c->port, sizeof(c->port), "1");
	c->disk_size = FUZZ_DISK_SIZE;
	colo_init(c);
	return 0;
}

/* The link came up: was the peer's message one that should have been accepted? */
static void fuzz_check_accepted(const uint8_t *peer, size_t len)
{
	char err[COLO_ERR_LEN];

	if (c->role == COLO_ROLE_SECONDARY) {
		struct colo_wire_hello w;
		struct colo_hello h;

		fuzz_assert(c->opts.tls == COLO_TLS_NONE, "a TLS handshake with garbage succeeded");
		fuzz_assert(len >= sizeof(w), "accepted before a whole hello");
		memcpy(&w, peer, sizeof(w));
		fuzz_assert(!colo_hello_decode(&w, &h, err, sizeof(err)), "accepted a bad hello");
		fuzz_assert(h.disk_size == c->disk_size && h.block_size == c->opts.block_size &&
				    h.auth_type == COLO_AUTH_NONE,
			    "accepted a hello of another disk or mode");
	} else {
		struct colo_wire_hello_reply w;
		struct colo_hello_reply r;

		fuzz_assert(c->opts.tls == COLO_TLS_NONE, "a TLS handshake with garbage succeeded");
		fuzz_assert(len >= sizeof(w), "accepted before a whole hello_reply");
		memcpy(&w, peer, sizeof(w));
		fuzz_assert(!colo_hello_reply_decode(&w, &r, err, sizeof(err)) && !r.status,
			    "accepted a refusal or a bad reply");
		fuzz_assert(!memcmp(r.session_id, c->session_id, sizeof(r.session_id)),
			    "accepted a reply to another session");
	}
}

/* Bit 2 of the first byte: @data XORed into a right hello or hello_reply, then the rest. */
static size_t fuzz_from_right_message(const uint8_t *data, size_t size, uint8_t *out)
{
	union {
		struct colo_wire_hello hello;
		struct colo_wire_hello_reply reply;
	} m;
	size_t len, i;

	if (c->role == COLO_ROLE_SECONDARY) {
		struct colo_hello h = {
			.version = COLO_PROTO_VERSION,
			.disk_size = c->disk_size,
			.block_size = c->opts.block_size,
			.auth_type = COLO_AUTH_NONE,
		};

		colo_hello_encode(&h, &m.hello);
		len = sizeof(m.hello);
	} else {
		struct colo_hello_reply r = {.version = COLO_PROTO_VERSION};

		memcpy(r.session_id, c->session_id, sizeof(r.session_id));
		colo_hello_reply_encode(&r, &m.reply);
		len = sizeof(m.reply);
	}
	memcpy(out, &m, len);
	for (i = 0; i < len && i < size; i++)
		out[i] ^= data[i];
	if (size > len)
		memcpy(out + len, data + len, size - len);
	return size > len ? size : len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t buf[FUZZ_MAX_INPUT + sizeof(struct colo_wire_hello_reply)];
	int sv[2], i, err, right;
	ssize_t n;

	if (!size)
		return 0;
	colo_options_init(&c->opts);
	c->opts.timeout_ms = 100;
	/* The start steps read the disk, which this colo has not: none is wanted or announced. */
	c->opts.sync = COLO_SYNC_NONE;
	c->role = data[0] & 1 ? COLO_ROLE_PRIMARY : COLO_ROLE_SECONDARY;
	if (data[0] & 2) {
		c->opts.tls = COLO_TLS_PSK;
		snprintf(c->opts.tls_psk, sizeof(c->opts.tls_psk), "%s", fuzz_psk);
		if (c->role == COLO_ROLE_PRIMARY)
			snprintf(c->opts.tls_user, sizeof(c->opts.tls_user), "primary");
	} else {
		c->opts.tls = COLO_TLS_NONE;
	}
	right = data[0] & 4;
	data++;
	size--;
	if (size > FUZZ_MAX_INPUT)
		size = FUZZ_MAX_INPUT;
	if (right) {
		size = fuzz_from_right_message(data, size, buf);
	} else {
		memcpy(buf, data, size);
	}
	if (c->role == COLO_ROLE_SECONDARY && size >= offsetof(struct colo_wire_hello, disk_size))
		memset(buf + offsetof(struct colo_wire_hello, flags), 0, 4);
	data = buf;
	c->state = COLO_STATE_CONNECTING;
	c->link_state = c->role == COLO_ROLE_PRIMARY ? COLO_LINK_CONNECTING : COLO_LINK_LISTENING;
	c->p.step = -1;
	c->last_error[0] = '\0';
	snprintf(c->link.peer, sizeof(c->link.peer), "fuzz");

	fuzz_assert(!socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv),
		    "socketpair");
	n = size ? send(sv[1], data, size, MSG_NOSIGNAL) : 0;
	fuzz_assert(n == (ssize_t)size, "the peer's bytes fit the socket");
	shutdown(sv[1], SHUT_WR);

	/* As the connect or accept callback would on a failure. */
	err = colo_handshake_begin(c, sv[0]);
	if (err && c->role == COLO_ROLE_PRIMARY)
		colo_primary_start_failed(c, err);
	else if (err)
		colo_handshake_close(c);
	for (i = 0; i < FUZZ_MAX_ITERATIONS && c->hs.fd >= 0; i++)
		tapdisk_server_iterate();
	fuzz_assert(c->hs.fd < 0, "the handshake did not end after the peer closed");
	if (c->link.fd >= 0) {
		fuzz_check_accepted(data, size);
		colo_link_close(c);
	}
	colo_handshake_close(c);
	close(sv[1]);
	c->role = COLO_ROLE_NONE;
	return 0;
}

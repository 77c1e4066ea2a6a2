/*
 * libFuzzer target for the control request handler: the bytes a local client can send on
 * ctl<pid>.
 *
 * The input is cut into up to FUZZ_MAX_MESSAGES tapdisk_message_t (the last one padded with
 * zeros) and each goes through tapdisk_control_handle_message, the same check + dispatch
 * the socket server runs, with a reply sink in place of the socket.  Every input starts from
 * the same state: VBD 0 attached and open on a scratch image, so that PAUSE, RESUME, CLOSE,
 * DETACH, STATS, DISK_INFO and NBD_TCP reach their open-VBD paths; ATTACH may add more.
 *
 * Safety: the fuzzer must not make tapdisk open host files.  BLKTAP_CONTROL_DIR is a temp
 * dir, in which minors 0..FUZZ_MARKERS-1 are allocated, and a well-formed image name in OPEN or RESUME is replaced by the scratch image
 * (flags and all other fields stay fuzzed; malformed names are kept, so their rejection is
 * fuzzed too).  A well-formed NBD_TCP address becomes "127.0.0.1:0 tls=none".  EXIT, FORCE_SHUTDOWN and
 * the last DETACH only set flags in the sink, which never calls tapdisk_server_request_shutdown.
 *
 * Checked: every reply is a well-formed reply (tapdisk_message_check_reply), of the type
 * the request expects or ERROR with a positive errno and a message; STATS text has the
 * announced length; complete() runs exactly once per request; nothing leaks or overruns
 * (ASan/UBSan).  Not covered: the socket layer (accept, partial reads, timeouts, SO_PEERCRED),
 * tested in tests/unit/test-message.c and by the integration tests.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "list.h"
#include "tapdisk-control-internal.h"
#include "tapdisk-log.h"
#include "tapdisk-message-codec.h"
#include "tapdisk-message.h"
#include "tapdisk-server.h"
#include "tapdisk-vbd.h"

#define FUZZ_MAX_MESSAGES 8
#define FUZZ_IMAGE_SIZE (1 << 20)
/* Minors allocated (their markers exist), so that ATTACH of them reaches the VBD code. */
#define FUZZ_MARKERS 4

static char fuzz_dir[64];
static char fuzz_image[128]; /* "aio:<dir>/disk.img" */

struct fuzz_sink {
	struct tapdisk_control_reply reply;
	const tapdisk_message_t *req;
	int completed;
	int after;
	int n_replies;
	size_t text_left; /* STATS text still to come */
};

static void fuzz_assert(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz-control-message: check failed: %s\n", what);
		abort();
	}
}

static int fuzz_sink_send(struct tapdisk_control_reply *reply, const void *buf, size_t len)
{
	struct fuzz_sink *sink = (struct fuzz_sink *)reply;
	tapdisk_message_t rsp;
	int expect;

	fuzz_assert(!sink->completed, "reply after complete()");
	if (sink->text_left) {
		fuzz_assert(len <= sink->text_left, "STATS text longer than announced");
		sink->text_left -= len;
		return 0;
	}
	fuzz_assert(len == sizeof(rsp), "reply is not one message");
	memcpy(&rsp, buf, sizeof(rsp));
	fuzz_assert(!tapdisk_message_check_reply(&rsp, NULL, 0), "malformed reply");
	sink->n_replies++;

	if (rsp.type == TAPDISK_MESSAGE_ERROR) {
		fuzz_assert(rsp.u.response.error > 0, "ERROR without a positive errno");
		fuzz_assert(rsp.u.response.message[0], "ERROR without a message");
		return 0;
	}
	expect = tapdisk_message_reply_type(sink->req->type);
	fuzz_assert(rsp.type == expect, "reply of the wrong type");
	if (rsp.type == TAPDISK_MESSAGE_STATS_RSP)
		sink->text_left = rsp.u.info.length;
	return 0;
}

static void fuzz_sink_complete(struct tapdisk_control_reply *reply, int after)
{
	struct fuzz_sink *sink = (struct fuzz_sink *)reply;

	fuzz_assert(!sink->completed, "complete() twice");
	fuzz_assert(sink->n_replies > 0, "request completed without a reply");
	fuzz_assert(!sink->text_left, "STATS text shorter than announced");
	sink->completed = 1;
	sink->after = after;
}

/* Confines what a message may touch to the scratch image and loopback. */
static void fuzz_sanitize(tapdisk_message_t *m)
{
	char host[TAPDISK_MESSAGE_HOST_MAX], port[TAPDISK_MESSAGE_PORT_MAX];
	char *name = NULL;
	size_t size = 0;

	switch (m->type) {
	case TAPDISK_MESSAGE_OPEN:
		name = m->u.params.path;
		size = sizeof(m->u.params.path);
		break;
	case TAPDISK_MESSAGE_RESUME:
		name = m->u.params.path;
		size = sizeof(m->u.params.path);
		break;
	case TAPDISK_MESSAGE_NBD_TCP:
		if (tapdisk_message_str_terminated(m->u.string.text, sizeof(m->u.string.text)) &&
		    !tapdisk_message_split_hostport(m->u.string.text, host, sizeof(host), port,
						    sizeof(port)))
			snprintf(m->u.string.text, sizeof(m->u.string.text), "127.0.0.1:0 tls=none");
		return;
	default:
		return;
	}
	if (tapdisk_message_str_terminated(name, size) && name[0]) {
		/* Keep a bad type: "type:" prefixes other than aio reach the driver lookup. */
		if (strncmp(name, "aio:", 4))
			snprintf(name, size, "%.*s", (int)strcspn(name, ":/"), name);
		else
			snprintf(name, size, "%s", fuzz_image);
	}
}

static void fuzz_run_message(const tapdisk_message_t *msg)
{
	struct fuzz_sink sink = {
		.reply = { .send = fuzz_sink_send, .complete = fuzz_sink_complete },
		.req = msg,
	};
	int i;

	tapdisk_control_handle_message(msg, &sink.reply);
	/* A pause or close of an idle VBD completes within a few passes of the loop's check. */
	for (i = 0; i < 4 && !sink.completed; i++)
		tapdisk_server_check_state();
	fuzz_assert(sink.completed, "request never completed");
}

static void fuzz_close_done(td_vbd_t *vbd, int err, void *arg)
{
	*(int *)arg = 1;
}

/* Back to no VBD at all, without the control plane's help. */
static void fuzz_reset(void)
{
	struct list_head *vbds = tapdisk_server_get_all_vbds();
	td_vbd_t *vbd, *next;
	int i, done;

	list_for_each_entry_safe(vbd, next, vbds, next) {
		done = 0;
		if (tapdisk_vbd_close(vbd, fuzz_close_done, &done) == 0)
			for (i = 0; i < 4 && !done; i++)
				tapdisk_server_check_state();
		else
			done = !!(vbd->state & TD_VBD_CLOSED);
		fuzz_assert(done, "VBD does not close");
		tapdisk_server_remove_vbd(vbd);
		tapdisk_vbd_free(vbd);
	}
}

static void fuzz_setup_vbd0(void)
{
	td_vbd_t *vbd = tapdisk_vbd_create(0);

	fuzz_assert(vbd != NULL, "cannot create VBD 0");
	tapdisk_server_add_vbd(vbd);
	fuzz_assert(tapdisk_vbd_open_vdi(vbd, fuzz_image, TD_OPEN_NO_O_DIRECT, -1) == 0,
		    "cannot open the scratch image");
}

static void fuzz_cleanup(void)
{
	char path[128];
	int i;

	for (i = 0; i < FUZZ_MARKERS; i++) {
		snprintf(path, sizeof(path), "%s/tapdisk/tapdisk-%d", fuzz_dir, i);
		unlink(path);
	}
	snprintf(path, sizeof(path), "%s/tapdisk", fuzz_dir);
	rmdir(path);
	snprintf(path, sizeof(path), "%s/disk.img", fuzz_dir);
	unlink(path);
	rmdir(fuzz_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char path[128];
	int fd;

	snprintf(fuzz_dir, sizeof(fuzz_dir), "/tmp/fuzz-control.XXXXXX");
	fuzz_assert(mkdtemp(fuzz_dir) != NULL, "mkdtemp");
	setenv("BLKTAP_CONTROL_DIR", fuzz_dir, 1);

	snprintf(path, sizeof(path), "%s/disk.img", fuzz_dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	fuzz_assert(fd >= 0 && ftruncate(fd, FUZZ_IMAGE_SIZE) == 0, "scratch image");
	close(fd);
	snprintf(fuzz_image, sizeof(fuzz_image), "aio:%s", path);
	snprintf(path, sizeof(path), "%s/tapdisk", fuzz_dir);
	fuzz_assert(mkdir(path, 0700) == 0, "marker directory");
	for (int i = 0; i < FUZZ_MARKERS; i++) {
		snprintf(path, sizeof(path), "%s/tapdisk/tapdisk-%d", fuzz_dir, i);
		fd = open(path, O_RDWR | O_CREAT, 0600);
		fuzz_assert(fd >= 0, "minor marker");
		close(fd);
	}
	atexit(fuzz_cleanup);

	tlog_set_stderr(getenv("FUZZ_VERBOSE") != NULL);
	fuzz_assert(tapdisk_server_init() == 0, "tapdisk_server_init");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	tapdisk_message_t msg;
	size_t n;
	int i;

	fuzz_setup_vbd0();
	for (i = 0; i < FUZZ_MAX_MESSAGES && size; i++) {
		n = size < sizeof(msg) ? size : sizeof(msg);
		memset(&msg, 0, sizeof(msg));
		memcpy(&msg, data, n);
		data += n;
		size -= n;
		fuzz_sanitize(&msg);
		fuzz_run_message(&msg);
	}
	fuzz_reset();
	return 0;
}

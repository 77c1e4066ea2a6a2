/*
 * The control socket <control dir>/ctl<pid>.
 *
 * A client sends one fixed-size tapdisk_message_t and reads one or more replies; it may then
 * send another request on the same connection.  Everything runs in the event loop, so
 * nothing here may block: sockets are non-blocking, a request must arrive within
 * CONTROL_REQUEST_TIMEOUT, and replies are buffered and flushed on WRITE_FD events.
 *
 * The handler (tapdisk_control_handle_message) knows nothing of sockets: it writes to a reply
 * sink, which is how the fuzzer drives it.  docs/control-protocol.md describes the messages.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "blktap.h"
#include "list.h"
#include "scheduler.h"
#include "tapdisk-control-internal.h"
#include "tapdisk-control.h"
#include "tapdisk-log.h"
#include "tapdisk-message-codec.h"
#include "tapdisk-message.h"
#include "tapdisk-nbdserver.h"
#include "tapdisk-server.h"
#include "tapdisk-stats.h"
#include "tapdisk-vbd.h"
#include "tapdisk.h"
#include "timeout-math.h"

/* A client has this long to send a whole request, and to read a reply once it is queued. */
#define CONTROL_REQUEST_TIMEOUT 10
#define CONTROL_REPLY_TIMEOUT 30

/* More clients than this at once is a runaway script, not a toolstack. */
#define CONTROL_MAX_CONNECTIONS 64

/* STATS text plus a few messages; anything bigger is a bug, and the client is dropped. */
#define CONTROL_MAX_OUTPUT (TAPDISK_MESSAGE_STATS_MAX + 64 * sizeof(tapdisk_message_t))

#define CONTROL_STATS_INITIAL_SIZE (16 << 10)

/* -------------------------------------------------------------------------------------- */
/* Replies                                                                                */

static void control_reply_init(tapdisk_message_t *rsp, int type, uint16_t cookie)
{
	memset(rsp, 0, sizeof(*rsp));
	rsp->type = type;
	rsp->cookie = cookie;
}

static void control_reply_send(struct tapdisk_control_reply *reply, const tapdisk_message_t *rsp)
{
	/* A failed send means the client left; the connection has already logged it. */
	reply->send(reply, rsp, sizeof(*rsp));
}

/* Sends ERROR with the positive errno of @err (< 0) and one sentence, and logs it once. */
static void __attribute__((format(printf, 4, 5)))
control_reply_error(struct tapdisk_control_reply *reply, const tapdisk_message_t *req, int err,
		    const char *fmt, ...)
{
	tapdisk_message_t rsp;
	va_list ap;

	control_reply_init(&rsp, TAPDISK_MESSAGE_ERROR, req->cookie);
	rsp.u.response.error = -err;
	va_start(ap, fmt);
	vsnprintf(rsp.u.response.message, sizeof(rsp.u.response.message), fmt, ap);
	va_end(ap);

	EPRINTF("%s request (type %u, minor %u) failed: %s (%s)", tapdisk_message_name(req->type),
		req->type, req->cookie, rsp.u.response.message, strerror(-err));
	control_reply_send(reply, &rsp);
}

/*
 * Sends ERROR for a failure of the VBD layer, which already logged why: hand that sentence
 * to the client rather than log the failure a second time.  @what names the operation in
 * the fallback sentence.
 */
static void control_reply_vbd_error(struct tapdisk_control_reply *reply,
				    const tapdisk_message_t *req, int err, const char *what)
{
	const char *why = tlog_last_error();
	tapdisk_message_t rsp;

	if (!why || !why[0]) {
		control_reply_error(reply, req, err, "%s: %s", what, strerror(-err));
		return;
	}
	control_reply_init(&rsp, TAPDISK_MESSAGE_ERROR, req->cookie);
	rsp.u.response.error = -err;
	snprintf(rsp.u.response.message, sizeof(rsp.u.response.message), "%s", why);
	control_reply_send(reply, &rsp);
}

static void control_reply_image(struct tapdisk_control_reply *reply, int type,
				const tapdisk_message_t *req, const td_vbd_t *vbd)
{
	tapdisk_message_t rsp;

	control_reply_init(&rsp, type, req->cookie);
	rsp.u.image.sectors = vbd->disk_info.size;
	rsp.u.image.sector_size = vbd->disk_info.sector_size;
	rsp.u.image.info = vbd->disk_info.info;
	control_reply_send(reply, &rsp);
}

/* -------------------------------------------------------------------------------------- */
/* Handlers: each returns 0 when the request is complete, 1 when a callback completes it.  */

#define CONTROL_PENDING 1

/* A request that waits for the VBD to drain (PAUSE, CLOSE). */
struct control_pending {
	struct tapdisk_control_reply *reply;
	tapdisk_message_t req;
};

/* Closed: no chain and no pause in progress, so the VBD may be opened or detached. */
static int control_vbd_is_closed(const td_vbd_t *vbd)
{
	if (vbd->state & TD_VBD_CLOSED)
		return 1;
	return !(vbd->state & (TD_VBD_PAUSED | TD_VBD_PAUSE_REQUESTED | TD_VBD_QUIESCE_REQUESTED)) &&
	       list_empty(&vbd->images) && !vbd->quiesce_done;
}

static int control_handle_pid(const tapdisk_message_t *req, struct tapdisk_control_reply *reply,
			      int *after)
{
	tapdisk_message_t rsp;

	control_reply_init(&rsp, TAPDISK_MESSAGE_PID_RSP, req->cookie);
	rsp.u.tapdisk_pid = getpid();
	control_reply_send(reply, &rsp);
	return 0;
}

static int control_handle_attach(const tapdisk_message_t *req,
				 struct tapdisk_control_reply *reply, int *after)
{
	tapdisk_message_t rsp;
	td_vbd_t *vbd;

	if (req->cookie >= MAX_ID) {
		control_reply_error(reply, req, -EINVAL, "minor %u is out of range (0..%d)",
				    req->cookie, MAX_ID - 1);
		return 0;
	}
	if (tapdisk_server_get_vbd(req->cookie)) {
		control_reply_error(reply, req, -EEXIST, "minor %u is already attached",
				    req->cookie);
		return 0;
	}
	vbd = tapdisk_vbd_create(req->cookie);
	if (!vbd) {
		control_reply_error(reply, req, -ENOMEM, "cannot allocate VBD %u", req->cookie);
		return 0;
	}
	tapdisk_server_add_vbd(vbd);
	DPRINTF("attached VBD %u", req->cookie);

	control_reply_init(&rsp, TAPDISK_MESSAGE_ATTACH_RSP, req->cookie);
	control_reply_send(reply, &rsp);
	return 0;
}

/* Names the first unsupported flag, for the error sentence. */
static const char *control_flag_name(uint32_t flags)
{
	if (flags & TAPDISK_MESSAGE_FLAG_ADD_CACHE)
		return "read cache (ADD_CACHE)";
	if (flags & TAPDISK_MESSAGE_FLAG_VHD_INDEX)
		return "VHD index (VHD_INDEX)";
	if (flags & TAPDISK_MESSAGE_FLAG_ADD_LOG)
		return "changed-block log (ADD_LOG, -C)";
	if (flags & TAPDISK_MESSAGE_FLAG_ADD_LCACHE)
		return "local cache (ADD_LCACHE, -r)";
	if (flags & TAPDISK_MESSAGE_FLAG_SECONDARY)
		return "secondary image (SECONDARY, -2)";
	if (flags & TAPDISK_MESSAGE_FLAG_STANDBY)
		return "standby (STANDBY, -s)";
	if (flags & TAPDISK_MESSAGE_FLAG_OPEN_ENCRYPTED)
		return "encryption (OPEN_ENCRYPTED, -E)";
	return "unknown";
}

/* Returns 0, or -EOPNOTSUPP after replying. */
static int control_check_flags(const tapdisk_message_t *req, struct tapdisk_control_reply *reply,
			       uint32_t flags, int *after)
{
	if (!(flags & TAPDISK_MESSAGE_FLAG_UNSUPPORTED))
		return 0;
	control_reply_error(reply, req, -EOPNOTSUPP, "%s is not supported by this tapdisk",
			    control_flag_name(flags & TAPDISK_MESSAGE_FLAG_UNSUPPORTED));
	/* blktap3 clients send a log path or key after the message: the stream is lost. */
	if (flags & (TAPDISK_MESSAGE_FLAG_ADD_LOG | TAPDISK_MESSAGE_FLAG_OPEN_ENCRYPTED))
		*after |= TAPDISK_CONTROL_AFTER_CLOSE;
	return -EOPNOTSUPP;
}

static int control_handle_open(const tapdisk_message_t *req, td_vbd_t *vbd,
			       struct tapdisk_control_reply *reply, int *after)
{
	const tapdisk_message_params_t *p = &req->u.params;
	td_flag_t flags = 0;
	int prt_devnum = -1;
	int err;

	if (control_check_flags(req, reply, p->flags, after))
		return 0;
	if (!control_vbd_is_closed(vbd)) {
		control_reply_error(reply, req, -EBUSY, "VBD %u is already open (%s)", req->cookie,
				    vbd->name ? vbd->name : "paused");
		return 0;
	}

	if (p->flags & TAPDISK_MESSAGE_FLAG_RDONLY)
		flags |= TD_OPEN_RDONLY;
	if (p->flags & TAPDISK_MESSAGE_FLAG_NO_O_DIRECT)
		flags |= TD_OPEN_NO_O_DIRECT;
	if (p->flags & TAPDISK_MESSAGE_FLAG_SHARED)
		flags |= TD_OPEN_SHAREABLE;
	if (p->flags & TAPDISK_MESSAGE_FLAG_REUSE_PRT) {
		flags |= TD_OPEN_REUSE_PARENT;
		prt_devnum = p->prt_devnum;
	}

	tlog_clear_last_error();
	err = tapdisk_vbd_open_vdi(vbd, p->path, flags, prt_devnum);
	if (err) {
		control_reply_vbd_error(reply, req, err, p->path);
		return 0;
	}
	DPRINTF("opened VBD %u: %s, %llu sectors of %ld bytes", req->cookie, p->path,
		(unsigned long long)vbd->disk_info.size, vbd->disk_info.sector_size);
	control_reply_image(reply, TAPDISK_MESSAGE_OPEN_RSP, req, vbd);
	return 0;
}

static void control_quiesce_done(td_vbd_t *vbd, int err, void *arg)
{
	struct control_pending *pending = arg;
	const tapdisk_message_t *req = &pending->req;
	struct tapdisk_control_reply *reply = pending->reply;
	tapdisk_message_t rsp;
	int type = req->type == TAPDISK_MESSAGE_PAUSE ? TAPDISK_MESSAGE_PAUSE_RSP
						      : TAPDISK_MESSAGE_CLOSE_RSP;

	if (err) {
		control_reply_error(reply, req, err < 0 ? err : -err, "%s of VBD %u failed: %s",
				    tapdisk_message_name(req->type), req->cookie,
				    strerror(err < 0 ? -err : err));
	} else {
		DPRINTF("%s of VBD %u done", tapdisk_message_name(req->type), req->cookie);
		control_reply_init(&rsp, type, req->cookie);
		control_reply_send(reply, &rsp);
	}
	free(pending);
	reply->complete(reply, 0);
}

/* Starts a pause or close; the reply goes out from control_quiesce_done. */
static int control_start_quiesce(const tapdisk_message_t *req, td_vbd_t *vbd,
				 struct tapdisk_control_reply *reply,
				 int (*quiesce)(td_vbd_t *, td_vbd_done_t, void *))
{
	struct control_pending *pending;
	int err;

	pending = calloc(1, sizeof(*pending));
	if (!pending) {
		control_reply_error(reply, req, -ENOMEM, "out of memory");
		return 0;
	}
	pending->reply = reply;
	pending->req = *req;

	/* On success, @pending belongs to the callback, which may already have run. */
	err = quiesce(vbd, control_quiesce_done, pending);
	if (err) {
		free(pending);
		control_reply_error(reply, req, err, "cannot %s VBD %u: %s",
				    tapdisk_message_name(req->type), req->cookie,
				    err == -EBUSY ? "another pause or close is in progress"
						  : strerror(-err));
		return 0;
	}
	return CONTROL_PENDING;
}

static int control_handle_pause(const tapdisk_message_t *req, td_vbd_t *vbd,
				struct tapdisk_control_reply *reply, int *after)
{
	tapdisk_message_t rsp;

	if (control_vbd_is_closed(vbd)) {
		control_reply_error(reply, req, -EINVAL, "VBD %u is not open", req->cookie);
		return 0;
	}
	if (vbd->state & TD_VBD_PAUSED) {
		/* Pausing twice is harmless, as in blktap3. */
		control_reply_init(&rsp, TAPDISK_MESSAGE_PAUSE_RSP, req->cookie);
		control_reply_send(reply, &rsp);
		return 0;
	}
	return control_start_quiesce(req, vbd, reply, tapdisk_vbd_pause);
}

static int control_handle_resume(const tapdisk_message_t *req, td_vbd_t *vbd,
				 struct tapdisk_control_reply *reply, int *after)
{
	const char *params = req->u.resume.new_params[0] ? req->u.resume.new_params : NULL;
	tapdisk_message_t rsp;
	int err;

	if (control_check_flags(req, reply, req->u.resume.flags, after))
		return 0;
	if (!(vbd->state & TD_VBD_PAUSED)) {
		control_reply_error(reply, req, -EINVAL, "VBD %u is not paused", req->cookie);
		return 0;
	}

	tlog_clear_last_error();
	err = tapdisk_vbd_resume(vbd, params);
	if (err) {
		control_reply_vbd_error(reply, req, err,
					params ? params : vbd->name ? vbd->name : "resume");
		return 0;
	}
	DPRINTF("resumed VBD %u on %s", req->cookie, vbd->name ? vbd->name : "?");
	control_reply_init(&rsp, TAPDISK_MESSAGE_RESUME_RSP, req->cookie);
	control_reply_send(reply, &rsp);
	return 0;
}

static int control_handle_close(const tapdisk_message_t *req, td_vbd_t *vbd,
				struct tapdisk_control_reply *reply, int *after)
{
	tapdisk_message_t rsp;

	if (control_vbd_is_closed(vbd)) {
		/* Idempotent, so that destroy can clean up after a failed open. */
		control_reply_init(&rsp, TAPDISK_MESSAGE_CLOSE_RSP, req->cookie);
		control_reply_send(reply, &rsp);
		return 0;
	}
	return control_start_quiesce(req, vbd, reply, tapdisk_vbd_close);
}

static int control_handle_detach(const tapdisk_message_t *req, td_vbd_t *vbd,
				 struct tapdisk_control_reply *reply, int *after)
{
	tapdisk_message_t rsp;

	if (!control_vbd_is_closed(vbd)) {
		control_reply_error(reply, req, -EBUSY, "VBD %u is still open: close it first",
				    req->cookie);
		return 0;
	}
	tapdisk_server_remove_vbd(vbd);
	tapdisk_vbd_free(vbd);
	DPRINTF("detached VBD %u", req->cookie);

	control_reply_init(&rsp, TAPDISK_MESSAGE_DETACH_RSP, req->cookie);
	control_reply_send(reply, &rsp);
	/* blktap3's tapdisk exits with its last VBD. */
	*after |= TAPDISK_CONTROL_AFTER_SHUTDOWN_IF_IDLE;
	return 0;
}

static int control_handle_list_minors(const tapdisk_message_t *req,
				      struct tapdisk_control_reply *reply, int *after)
{
	tapdisk_message_t rsp;
	td_vbd_t *vbd;
	int n = 0;

	control_reply_init(&rsp, TAPDISK_MESSAGE_LIST_MINORS_RSP, req->cookie);
	list_for_each_entry(vbd, tapdisk_server_get_all_vbds(), next) {
		if ((size_t)n >= TAPDISK_MESSAGE_MAX_MINORS) {
			EPRINTF("more than %zu VBDs: list of minors truncated",
				TAPDISK_MESSAGE_MAX_MINORS);
			break;
		}
		rsp.u.minors.list[n++] = vbd->uuid;
	}
	rsp.u.minors.count = n;
	control_reply_send(reply, &rsp);
	return 0;
}

static int control_handle_list(const tapdisk_message_t *req, struct tapdisk_control_reply *reply,
			       int *after)
{
	struct list_head *vbds = tapdisk_server_get_all_vbds();
	tapdisk_message_t rsp;
	td_vbd_t *vbd;
	int count = 0;

	list_for_each_entry(vbd, vbds, next)
		count++;

	list_for_each_entry(vbd, vbds, next) {
		control_reply_init(&rsp, TAPDISK_MESSAGE_LIST_RSP, req->cookie);
		rsp.u.list.count = count--;
		rsp.u.list.minor = vbd->uuid;
		rsp.u.list.state = vbd->state;
		if (vbd->name && !(vbd->state & TD_VBD_CLOSED))
			snprintf(rsp.u.list.path, sizeof(rsp.u.list.path), "%s", vbd->name);
		control_reply_send(reply, &rsp);
	}

	/* count 0 ends the list for blktap3's client, minor -1 for ours. */
	control_reply_init(&rsp, TAPDISK_MESSAGE_LIST_RSP, req->cookie);
	rsp.u.list.count = 0;
	rsp.u.list.minor = TAPDISK_MESSAGE_LIST_END_MINOR;
	rsp.u.list.state = -1;
	control_reply_send(reply, &rsp);
	return 0;
}

/* Writes the stats of @vbd, or of every VBD as a list when @vbd is NULL. */
static int control_stats_write(td_vbd_t *vbd, char *buf, size_t size)
{
	struct tapdisk_stats_ctx st;
	td_vbd_t *v;

	tapdisk_stats_init(&st, buf, size);
	if (vbd) {
		tapdisk_vbd_stats(vbd, &st);
	} else {
		tapdisk_stats_enter(&st, '[');
		list_for_each_entry(v, tapdisk_server_get_all_vbds(), next)
			tapdisk_vbd_stats(v, &st);
		tapdisk_stats_leave(&st, ']');
	}
	return tapdisk_stats_length(&st);
}

static int control_handle_stats(const tapdisk_message_t *req, struct tapdisk_control_reply *reply,
				int *after)
{
	size_t size = CONTROL_STATS_INITIAL_SIZE;
	td_vbd_t *vbd = NULL;
	tapdisk_message_t rsp;
	char *buf = NULL, *nbuf;
	int len;

	if (req->cookie != TAPDISK_MESSAGE_STATS_ALL) {
		vbd = tapdisk_server_get_vbd(req->cookie);
		if (!vbd) {
			control_reply_error(reply, req, -ENOENT, "no VBD with minor %u",
					    req->cookie);
			return 0;
		}
	}

	/* The text size is unknown until written: retry with a bigger buffer. */
	for (;;) {
		nbuf = realloc(buf, size);
		if (!nbuf) {
			free(buf);
			control_reply_error(reply, req, -ENOMEM, "out of memory for stats");
			return 0;
		}
		buf = nbuf;
		len = control_stats_write(vbd, buf, size);
		if (len >= 0 || size >= TAPDISK_MESSAGE_STATS_MAX)
			break;
		size *= 2;
		if (size > TAPDISK_MESSAGE_STATS_MAX)
			size = TAPDISK_MESSAGE_STATS_MAX;
	}
	if (len < 0 || (size_t)len > TAPDISK_MESSAGE_STATS_MAX) {
		free(buf);
		control_reply_error(reply, req, -ENOBUFS, "stats exceed %d bytes",
				    TAPDISK_MESSAGE_STATS_MAX);
		return 0;
	}

	control_reply_init(&rsp, TAPDISK_MESSAGE_STATS_RSP, req->cookie);
	rsp.u.info.type = TAPDISK_MESSAGE_STATS_RSP;
	rsp.u.info.cookie = req->cookie;
	rsp.u.info.length = len;
	control_reply_send(reply, &rsp);
	if (len)
		reply->send(reply, buf, len);
	free(buf);
	return 0;
}

static int control_handle_disk_info(const tapdisk_message_t *req, td_vbd_t *vbd,
				    struct tapdisk_control_reply *reply, int *after)
{
	if (control_vbd_is_closed(vbd)) {
		control_reply_error(reply, req, -ENXIO, "VBD %u is not open", req->cookie);
		return 0;
	}
	control_reply_image(reply, TAPDISK_MESSAGE_DISK_INFO_RSP, req, vbd);
	return 0;
}

static int control_handle_shutdown(const tapdisk_message_t *req,
				   struct tapdisk_control_reply *reply, int *after)
{
	tapdisk_message_t rsp;

	DPRINTF("%s requested", tapdisk_message_name(req->type));
	control_reply_init(&rsp, tapdisk_message_reply_type(req->type), req->cookie);
	control_reply_send(reply, &rsp);
	*after |= TAPDISK_CONTROL_AFTER_SHUTDOWN;
	return 0;
}

static int control_handle_nbd_tcp(const tapdisk_message_t *req, td_vbd_t *vbd,
				  struct tapdisk_control_reply *reply, int *after)
{
	char host[TAPDISK_MESSAGE_HOST_MAX], port[TAPDISK_MESSAGE_PORT_MAX];
	char bound[TAPDISK_MESSAGE_STRING_LENGTH] = "";
	tapdisk_message_t rsp;
	int err;

	if (tapdisk_message_split_hostport(req->u.string.text, host, sizeof(host), port,
					   sizeof(port))) {
		control_reply_error(reply, req, -EINVAL,
				    "bad address '%s': expected host:port or [v6addr]:port",
				    req->u.string.text);
		return 0;
	}
	if (control_vbd_is_closed(vbd) || !vbd->nbdserver) {
		control_reply_error(reply, req, -ENXIO, "VBD %u is not open", req->cookie);
		return 0;
	}

	tlog_clear_last_error();
	err = tapdisk_nbdserver_listen_tcp(vbd->nbdserver, host, port, bound, sizeof(bound));
	if (err) {
		control_reply_vbd_error(reply, req, err, req->u.string.text);
		return 0;
	}
	DPRINTF("VBD %u serves NBD on %s", req->cookie, bound);

	control_reply_init(&rsp, TAPDISK_MESSAGE_NBD_TCP_RSP, req->cookie);
	snprintf(rsp.u.string.text, sizeof(rsp.u.string.text), "%s", bound);
	control_reply_send(reply, &rsp);
	return 0;
}

static int control_dispatch(const tapdisk_message_t *req, struct tapdisk_control_reply *reply,
			    int *after)
{
	char why[TAPDISK_MESSAGE_STRING_LENGTH];
	td_vbd_t *vbd = NULL;
	int err;

	err = tapdisk_message_check_request(req, why, sizeof(why));
	if (err) {
		control_reply_error(reply, req, err, "malformed request: %s", why);
		return 0;
	}

	if (tapdisk_message_needs_vbd(req->type)) {
		vbd = tapdisk_server_get_vbd(req->cookie);
		if (!vbd) {
			control_reply_error(reply, req, -ENOENT, "no VBD with minor %u",
					    req->cookie);
			return 0;
		}
	}

	switch (req->type) {
	case TAPDISK_MESSAGE_PID:
		return control_handle_pid(req, reply, after);
	case TAPDISK_MESSAGE_ATTACH:
		return control_handle_attach(req, reply, after);
	case TAPDISK_MESSAGE_OPEN:
		return control_handle_open(req, vbd, reply, after);
	case TAPDISK_MESSAGE_PAUSE:
		return control_handle_pause(req, vbd, reply, after);
	case TAPDISK_MESSAGE_RESUME:
		return control_handle_resume(req, vbd, reply, after);
	case TAPDISK_MESSAGE_CLOSE:
		return control_handle_close(req, vbd, reply, after);
	case TAPDISK_MESSAGE_DETACH:
		return control_handle_detach(req, vbd, reply, after);
	case TAPDISK_MESSAGE_LIST_MINORS:
		return control_handle_list_minors(req, reply, after);
	case TAPDISK_MESSAGE_LIST:
		return control_handle_list(req, reply, after);
	case TAPDISK_MESSAGE_STATS:
		return control_handle_stats(req, reply, after);
	case TAPDISK_MESSAGE_DISK_INFO:
		return control_handle_disk_info(req, vbd, reply, after);
	case TAPDISK_MESSAGE_FORCE_SHUTDOWN:
	case TAPDISK_MESSAGE_EXIT:
		return control_handle_shutdown(req, reply, after);
	case TAPDISK_MESSAGE_NBD_TCP:
		return control_handle_nbd_tcp(req, vbd, reply, after);
	case TAPDISK_MESSAGE_XENBLKIF_CONNECT:
	case TAPDISK_MESSAGE_XENBLKIF_DISCONNECT:
		control_reply_error(reply, req, -EOPNOTSUPP,
				    "Xen shared rings are not supported: use the NBD export");
		return 0;
	default:
		/* tapdisk_message_check_request accepts only the ids above. */
		control_reply_error(reply, req, -EINVAL, "unhandled request type %u", req->type);
		return 0;
	}
}

void tapdisk_control_handle_message(const tapdisk_message_t *req,
				    struct tapdisk_control_reply *reply)
{
	int after = 0;

	/* PAUSE and CLOSE complete from their callback, which may already have run. */
	if (control_dispatch(req, reply, &after) != CONTROL_PENDING)
		reply->complete(reply, after);
}

/* -------------------------------------------------------------------------------------- */
/* Connections                                                                            */

struct control_conn {
	struct tapdisk_control_reply reply;
	int fd;
	event_id_t in_event;
	event_id_t out_event;
	struct timespec deadline; /* of the request being read, or of the reply being written */

	tapdisk_message_t req;
	size_t req_len;

	char *out;
	size_t out_head, out_len, out_cap;

	int busy; /* a request is being handled: its complete() has not run */
	int after;
	struct list_head entry;
};

static struct {
	int fd;
	char *path;
	event_id_t event;
	struct list_head conns;
	int n_conns;
} td_control = {
	.fd = -1,
	.conns = LIST_HEAD_INIT(td_control.conns),
};

static void control_deadline_set(struct timespec *ts, int secs)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += secs;
}

static int control_deadline_passed(const struct timespec *ts)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > ts->tv_sec || (now.tv_sec == ts->tv_sec && now.tv_nsec >= ts->tv_nsec);
}

static void control_conn_free(struct control_conn *conn)
{
	free(conn->out);
	free(conn);
}

/* Drops the client.  A request still being handled keeps @conn alive until it completes. */
static void control_conn_close(struct control_conn *conn)
{
	if (conn->in_event > 0)
		tapdisk_server_unregister_event(conn->in_event);
	if (conn->out_event > 0)
		tapdisk_server_unregister_event(conn->out_event);
	conn->in_event = conn->out_event = 0;
	if (conn->fd >= 0) {
		close(conn->fd);
		conn->fd = -1;
		list_del(&conn->entry);
		td_control.n_conns--;
	}
	if (!conn->busy)
		control_conn_free(conn);
}

static void control_conn_read_event(event_id_t id, char mode, void *private);

/* Waits for the next request. */
static int control_conn_read_start(struct control_conn *conn)
{
	event_id_t id;

	conn->req_len = 0;
	control_deadline_set(&conn->deadline, CONTROL_REQUEST_TIMEOUT);
	id = tapdisk_server_register_event(SCHEDULER_POLL_READ_FD | SCHEDULER_POLL_TIMEOUT,
					   conn->fd, TV_SECS(CONTROL_REQUEST_TIMEOUT),
					   control_conn_read_event, conn);
	if (id < 0) {
		EPRINTF("cannot register control connection: %s", strerror(-id));
		return id;
	}
	conn->in_event = id;
	return 0;
}

/* The request's replies are all out: do what it asked for afterwards, then read the next. */
static void control_conn_request_done(struct control_conn *conn)
{
	int after = conn->after;

	conn->after = 0;
	if (after & TAPDISK_CONTROL_AFTER_SHUTDOWN)
		tapdisk_server_request_shutdown();
	else if ((after & TAPDISK_CONTROL_AFTER_SHUTDOWN_IF_IDLE) &&
		 list_empty(tapdisk_server_get_all_vbds()))
		tapdisk_server_request_shutdown();

	if ((after & TAPDISK_CONTROL_AFTER_CLOSE) || control_conn_read_start(conn))
		control_conn_close(conn);
}

static void control_conn_write_event(event_id_t id, char mode, void *private);

/* Writes what the socket takes.  Returns 0 or -errno (then the caller closes). */
static int control_conn_flush(struct control_conn *conn)
{
	ssize_t n;

	while (conn->out_head < conn->out_len) {
		n = send(conn->fd, conn->out + conn->out_head, conn->out_len - conn->out_head,
			 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			EPRINTF("control client gone while replying: %s", strerror(errno));
			return -errno;
		}
		conn->out_head += n;
	}

	if (conn->out_head < conn->out_len) {
		if (conn->out_event <= 0) {
			event_id_t id = tapdisk_server_register_event(
				SCHEDULER_POLL_WRITE_FD | SCHEDULER_POLL_TIMEOUT, conn->fd,
				TV_SECS(CONTROL_REPLY_TIMEOUT), control_conn_write_event, conn);
			if (id < 0) {
				EPRINTF("cannot register control reply: %s", strerror(-id));
				return id;
			}
			conn->out_event = id;
			control_deadline_set(&conn->deadline, CONTROL_REPLY_TIMEOUT);
		}
		return 0;
	}

	conn->out_head = conn->out_len = 0;
	if (conn->out_event > 0) {
		tapdisk_server_unregister_event(conn->out_event);
		conn->out_event = 0;
	}
	return 0;
}

static void control_conn_write_event(event_id_t id, char mode, void *private)
{
	struct control_conn *conn = private;
	size_t before = conn->out_head;

	if (control_conn_flush(conn)) {
		control_conn_close(conn);
		return;
	}
	if (conn->out_head > before)
		control_deadline_set(&conn->deadline, CONTROL_REPLY_TIMEOUT);
	else if ((mode & SCHEDULER_POLL_TIMEOUT) && control_deadline_passed(&conn->deadline)) {
		EPRINTF("control client does not read its reply: dropped");
		control_conn_close(conn);
		return;
	}
	if (!conn->out_len && !conn->busy)
		control_conn_request_done(conn);
}

static int control_conn_send(struct tapdisk_control_reply *reply, const void *buf, size_t len)
{
	struct control_conn *conn = container_of_list(reply, struct control_conn, reply);
	size_t need;
	char *out;

	if (conn->fd < 0)
		return -EPIPE;

	need = conn->out_len + len;
	if (need > CONTROL_MAX_OUTPUT) {
		EPRINTF("control reply of %zu bytes exceeds %zu: client dropped", need,
			(size_t)CONTROL_MAX_OUTPUT);
		control_conn_close(conn);
		return -ENOBUFS;
	}
	if (need > conn->out_cap) {
		out = realloc(conn->out, need);
		if (!out) {
			EPRINTF("out of memory for a control reply: client dropped");
			control_conn_close(conn);
			return -ENOMEM;
		}
		conn->out = out;
		conn->out_cap = need;
	}
	memcpy(conn->out + conn->out_len, buf, len);
	conn->out_len += len;

	if (control_conn_flush(conn)) {
		control_conn_close(conn);
		return -EPIPE;
	}
	return 0;
}

static void control_conn_complete(struct tapdisk_control_reply *reply, int after)
{
	struct control_conn *conn = container_of_list(reply, struct control_conn, reply);

	conn->busy = 0;
	if (conn->fd < 0) {
		/* The client left while we waited for the VBD. */
		control_conn_free(conn);
		return;
	}
	conn->after |= after;
	if (!conn->out_len)
		control_conn_request_done(conn);
}

static void control_conn_read_event(event_id_t id, char mode, void *private)
{
	struct control_conn *conn = private;
	ssize_t n;

	if (control_deadline_passed(&conn->deadline)) {
		EPRINTF("no complete control request within %d s (%zu of %zu bytes): dropped",
			CONTROL_REQUEST_TIMEOUT, conn->req_len, sizeof(conn->req));
		control_conn_close(conn);
		return;
	}
	if (!(mode & SCHEDULER_POLL_READ_FD))
		return;

	n = recv(conn->fd, (char *)&conn->req + conn->req_len, sizeof(conn->req) - conn->req_len,
		 MSG_DONTWAIT);
	if (n < 0) {
		if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		EPRINTF("control connection read failed: %s", strerror(errno));
		control_conn_close(conn);
		return;
	}
	if (n == 0) {
		/* Hanging up between requests is how a client says goodbye. */
		if (conn->req_len)
			EPRINTF("control client hung up after %zu of %zu bytes of a request",
				conn->req_len, sizeof(conn->req));
		control_conn_close(conn);
		return;
	}
	conn->req_len += n;
	if (conn->req_len < sizeof(conn->req))
		return;

	/* One request at a time per connection: stop reading until it completes. */
	tapdisk_server_unregister_event(conn->in_event);
	conn->in_event = 0;
	conn->busy = 1;
	tapdisk_control_handle_message(&conn->req, &conn->reply);
}

/* Only root and our own user may drive tapdisk. */
static int control_peer_allowed(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len)) {
		EPRINTF("cannot get control client credentials: %s", strerror(errno));
		return 0;
	}
	if (cred.uid != 0 && cred.uid != geteuid()) {
		EPRINTF("refused control client pid %d uid %u: not root or uid %u", cred.pid,
			cred.uid, geteuid());
		return 0;
	}
	return 1;
}

static void control_accept_one(int fd)
{
	struct control_conn *conn;

	if (!control_peer_allowed(fd))
		goto fail;
	if (td_control.n_conns >= CONTROL_MAX_CONNECTIONS) {
		EPRINTF("more than %d control clients: connection refused",
			CONTROL_MAX_CONNECTIONS);
		goto fail;
	}
	conn = calloc(1, sizeof(*conn));
	if (!conn) {
		EPRINTF("out of memory for a control connection");
		goto fail;
	}
	conn->fd = fd;
	conn->reply.send = control_conn_send;
	conn->reply.complete = control_conn_complete;
	list_add_tail(&conn->entry, &td_control.conns);
	td_control.n_conns++;
	if (control_conn_read_start(conn))
		control_conn_close(conn);
	return;

fail:
	close(fd);
}

static void control_accept_event(event_id_t id, char mode, void *private)
{
	int fd;

	for (;;) {
		fd = accept4(td_control.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				EPRINTF("accept on %s failed: %s", td_control.path,
					strerror(errno));
			return;
		}
		control_accept_one(fd);
	}
}

/* -------------------------------------------------------------------------------------- */
/* The listening socket                                                                   */

/* mkdir -p; directories we create are 0700, since the sockets in them control disks. */
static int control_mkdir_p(const char *dir)
{
	char path[PATH_MAX];
	struct stat st;
	char *p;

	if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path)) {
		EPRINTF("control directory %s: name too long", dir);
		return -ENAMETOOLONG;
	}
	for (p = path + 1;; p++) {
		if (*p != '/' && *p)
			continue;
		char c = *p;

		*p = '\0';
		if (mkdir(path, 0700) && errno != EEXIST) {
			int err = -errno;

			EPRINTF("cannot create %s: %s", path, strerror(errno));
			return err;
		}
		*p = c;
		if (!c)
			break;
	}
	if (stat(path, &st) || !S_ISDIR(st.st_mode)) {
		EPRINTF("control directory %s is not a directory", path);
		return -ENOTDIR;
	}
	return 0;
}

int tapdisk_control_open(char **path)
{
	const char *dir = blktap_control_dir();
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	mode_t mask;
	int fd, err;
	event_id_t id;

	if (td_control.fd >= 0)
		return -EALREADY;

	err = control_mkdir_p(dir);
	if (err)
		return err;

	if (snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/%s%d", dir,
		     BLKTAP2_CONTROL_SOCKET, getpid()) >= (int)sizeof(addr.sun_path)) {
		EPRINTF("control socket path %s/%s%d is too long for a Unix socket", dir,
			BLKTAP2_CONTROL_SOCKET, getpid());
		return -ENAMETOOLONG;
	}

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		err = -errno;
		EPRINTF("cannot create control socket: %s", strerror(errno));
		return err;
	}

	/* A file with our pid in its name can only be left over from a dead process. */
	unlink(addr.sun_path);

	/* Created 0600 from the start, so no other user can connect in between. */
	mask = umask(0177);
	err = bind(fd, (struct sockaddr *)&addr, sizeof(addr));
	umask(mask);
	if (err) {
		err = -errno;
		EPRINTF("cannot bind control socket %s: %s", addr.sun_path, strerror(errno));
		goto fail;
	}
	if (listen(fd, 32)) {
		err = -errno;
		EPRINTF("cannot listen on control socket %s: %s", addr.sun_path, strerror(errno));
		goto fail_unlink;
	}

	td_control.path = strdup(addr.sun_path);
	*path = strdup(addr.sun_path);
	if (!td_control.path || !*path) {
		err = -ENOMEM;
		EPRINTF("out of memory");
		goto fail_free;
	}

	td_control.fd = fd;
	id = tapdisk_server_register_event(SCHEDULER_POLL_READ_FD, fd, TV_ZERO,
					   control_accept_event, NULL);
	if (id < 0) {
		err = id;
		td_control.fd = -1;
		EPRINTF("cannot register control socket: %s", strerror(-id));
		goto fail_free;
	}
	td_control.event = id;
	DPRINTF("control socket %s", addr.sun_path);
	return 0;

fail_free:
	free(td_control.path);
	td_control.path = NULL;
	free(*path);
	*path = NULL;
fail_unlink:
	unlink(addr.sun_path);
fail:
	close(fd);
	return err;
}

void tapdisk_control_close(void)
{
	struct control_conn *conn, *next;

	list_for_each_entry_safe(conn, next, &td_control.conns, entry)
		control_conn_close(conn);

	if (td_control.event > 0)
		tapdisk_server_unregister_event(td_control.event);
	td_control.event = 0;
	if (td_control.fd >= 0) {
		close(td_control.fd);
		td_control.fd = -1;
	}
	if (td_control.path) {
		unlink(td_control.path);
		free(td_control.path);
		td_control.path = NULL;
	}
}

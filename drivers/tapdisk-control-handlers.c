/*
 * Control requests, one handler per message (docs/control-protocol.md).  The handlers know
 * nothing of sockets: they write to a reply sink, which is how tapdisk-control.c and the
 * fuzzer drive them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blktap.h"
#include "tapdisk-control-internal.h"
#include "tapdisk-log.h"
#include "tapdisk-marker.h"
#include "tapdisk-message-codec.h"
#include "tapdisk-nbdserver.h"
#include "tapdisk-server.h"
#include "tapdisk-stats.h"
#include "tapdisk-vbd.h"

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
	char why[TAPDISK_MESSAGE_STRING_LENGTH];
	tapdisk_message_t rsp;
	td_vbd_t *vbd;
	int fd;

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
	/* As blktap3: the minor must be allocated, and is ours (locked) until detach. */
	fd = tapdisk_marker_hold(req->cookie, why, sizeof(why));
	if (fd < 0) {
		control_reply_error(reply, req, fd, "%s", why);
		return 0;
	}
	vbd = tapdisk_vbd_create(req->cookie);
	if (!vbd) {
		tapdisk_marker_release(fd);
		control_reply_error(reply, req, -ENOMEM, "cannot allocate VBD %u", req->cookie);
		return 0;
	}
	vbd->marker_fd = fd;
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
		control_reply_error(reply, req, -EALREADY, "VBD %u is already open (%s)",
				    req->cookie, vbd->name ? vbd->name : "paused");
		return 0;
	}
	if (vbd->state & TD_VBD_PAUSED) {
		control_reply_error(reply, req, -EBUSY, "VBD %u is paused: unpause it first",
				    req->cookie);
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
	/* blktap3's layout: the new image, if any, in the open parameters' path. */
	const char *params = req->u.params.path[0] ? req->u.params.path : NULL;
	tapdisk_message_t rsp;
	int err;

	if (control_check_flags(req, reply, req->u.params.flags, after))
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
	/* Closing a closed VBD succeeds, so that destroy can clean up after a failed open. */
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
		rsp.u.list.state = tapdisk_vbd_reported_state(vbd);
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
			control_reply_error(reply, req, -ENODEV, "no VBD with minor %u",
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

/* "host:port [key=value ...]": the address, then the TLS options (tls-session.h). */
static int control_parse_nbd_tcp(const char *text, char *host, size_t host_size, char *port,
				 size_t port_size, struct tls_config *tls, char *why,
				 size_t why_size)
{
	char buf[TAPDISK_MESSAGE_STRING_LENGTH], *word, *eq, *save = NULL;
	int err;

	snprintf(buf, sizeof(buf), "%s", text);
	word = strtok_r(buf, " ", &save);
	if (!word || tapdisk_message_split_hostport(word, host, host_size, port, port_size)) {
		snprintf(why, why_size, "bad address '%s': expected host:port or [v6addr]:port",
			 word ? word : "");
		return -EINVAL;
	}
	memset(tls, 0, sizeof(*tls));
	while ((word = strtok_r(NULL, " ", &save))) {
		eq = strchr(word, '=');
		if (!eq) {
			snprintf(why, why_size, "bad option '%s': expected key=value", word);
			return -EINVAL;
		}
		*eq = '\0';
		err = tls_config_set(tls, word, eq + 1, why, why_size);
		if (err > 0) {
			snprintf(why, why_size, "unknown option '%s'", word);
			return -EINVAL;
		}
		if (err)
			return err;
	}
	return 0;
}

static int control_handle_nbd_tcp(const tapdisk_message_t *req, td_vbd_t *vbd,
				  struct tapdisk_control_reply *reply, int *after)
{
	char host[TAPDISK_MESSAGE_HOST_MAX], port[TAPDISK_MESSAGE_PORT_MAX];
	char bound[TAPDISK_MESSAGE_STRING_LENGTH] = "", why[TAPDISK_MESSAGE_STRING_LENGTH];
	struct tls_config *tls;
	tapdisk_message_t rsp;
	int err;

	/* Two paths of PATH_MAX: too big for the stack of a handler. */
	tls = malloc(sizeof(*tls));
	if (!tls) {
		control_reply_error(reply, req, -ENOMEM, "out of memory");
		return 0;
	}
	err = control_parse_nbd_tcp(req->u.string.text, host, sizeof(host), port, sizeof(port),
				    tls, why, sizeof(why));
	if (err) {
		free(tls);
		control_reply_error(reply, req, err, "%s", why);
		return 0;
	}
	if (control_vbd_is_closed(vbd) || !vbd->nbdserver) {
		free(tls);
		control_reply_error(reply, req, -ENXIO, "VBD %u is not open", req->cookie);
		return 0;
	}

	tlog_clear_last_error();
	err = tapdisk_nbdserver_listen_tcp(vbd->nbdserver, host, port, tls, bound, sizeof(bound));
	free(tls);
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
			/* blktap3's errno for a minor not attached. */
			control_reply_error(reply, req, -ENODEV, "no VBD with minor %u",
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
	case TAPDISK_MESSAGE_FORCE_SHUTDOWN:
		/*
		 * blktap3's forced close closes that VBD only, without waiting for Xen rings
		 * whose guest is gone.  There are no rings here, so it is a close.
		 */
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
	case TAPDISK_MESSAGE_EXIT:
		return control_handle_shutdown(req, reply, after);
	case TAPDISK_MESSAGE_NBD_TCP:
		return control_handle_nbd_tcp(req, vbd, reply, after);
	case TAPDISK_MESSAGE_COLO:
		return tapdisk_control_handle_colo(req, vbd, reply);
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
	int after = 0, prev;

	reply->hangup = NULL; /* a waiting handler sets it */
	/* Lines about a VBD name its minor, and so do those of the events registered for it. */
	prev = tlog_set_vbd(req->type == TAPDISK_MESSAGE_ATTACH ||
					    tapdisk_message_needs_vbd(req->type)
				    ? (int)req->cookie
				    : -1);
	/* PAUSE, CLOSE and COLO complete from their callback, which may already have run. */
	if (control_dispatch(req, reply, &after) != CONTROL_PENDING)
		reply->complete(reply, after);
	tlog_set_vbd(prev);
}

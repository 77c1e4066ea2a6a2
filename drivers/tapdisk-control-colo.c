/*
 * The COLO control request: the replication commands of one colo VBD ("start primary",
 * "checkpoint", "failover", "stop", "status", "xenstore PATH|off"), as text, parsed by
 * colo-command.c.  docs/control-protocol.md describes the message.
 *
 * start, checkpoint, failover and stop are asynchronous: the driver
 * calls back once it is done, possibly before the call returns, and the reply goes out from
 * that callback, as PAUSE's does.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "colo-command.h"
#include "colo-xenstore.h"
#include "tapdisk-control-internal.h"
#include "tapdisk-log.h"
#include "tapdisk-message.h"
#include "tapdisk-vbd.h"

#define CONTROL_COLO_STATUS_SIZE 1024

/* An accepted command waiting for its callback; @reply stays valid until complete(). */
struct control_colo_pending {
	struct tapdisk_control_reply *reply;
	struct colo *colo;
	uint16_t cookie;
	enum colo_command_verb verb;
	bool force; /* failover force: the reply says what it forced, if anything */
};

/* -------------------------------------------------------------------------------------- */
/* Replies                                                                                */

static void control_colo_reply_send(struct tapdisk_control_reply *reply, const void *buf,
				    size_t len)
{
	/* A failed send means the client left; the connection has already logged it. */
	reply->send(reply, buf, len);
}

/* Sends ERROR with the positive errno of @err (< 0) and the sentence @why, unlogged. */
static void control_colo_reply_sentence(struct tapdisk_control_reply *reply, uint16_t cookie,
					int err, const char *why)
{
	tapdisk_message_t rsp;

	memset(&rsp, 0, sizeof(rsp));
	rsp.type = TAPDISK_MESSAGE_ERROR;
	rsp.cookie = cookie;
	rsp.u.response.error = -err;
	snprintf(rsp.u.response.message, sizeof(rsp.u.response.message), "%s", why);
	control_colo_reply_send(reply, &rsp, sizeof(rsp));
}

/* Sends ERROR for a failure found here, and logs it once. */
static void __attribute__((format(printf, 5, 6)))
control_colo_reply_error(struct tapdisk_control_reply *reply, uint16_t cookie, const char *verb,
			 int err, const char *fmt, ...)
{
	char why[TAPDISK_MESSAGE_STRING_LENGTH];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);

	EPRINTF("colo %s on VBD %u failed: %s (%s)", verb, cookie, why, strerror(-err));
	control_colo_reply_sentence(reply, cookie, err, why);
}

/*
 * The driver's own sentence for a failure, which says more than the errno.  The driver
 * logged it where it failed (colo_fail): it is not logged again.
 */
static void control_colo_reply_driver_error(struct tapdisk_control_reply *reply, uint16_t cookie,
					    enum colo_command_verb verb, struct colo *c, int err)
{
	const char *why = c ? colo_command_error(c, verb) : "", *name = colo_command_verb_name(verb);

	if (err >= 0)
		err = err ? -err : -EIO; /* the API promises a negative errno; never send 0 */
	if (why[0])
		control_colo_reply_sentence(reply, cookie, err, why);
	else
		control_colo_reply_error(reply, cookie, name, err, "%s failed: %s", name,
					 strerror(-err));
}

/* COLO_RSP, then @len bytes of text on the stream, as STATS_RSP does. */
static void control_colo_reply_text(struct tapdisk_control_reply *reply, uint16_t cookie,
				    const char *text, size_t len)
{
	tapdisk_message_t rsp;

	memset(&rsp, 0, sizeof(rsp));
	rsp.type = TAPDISK_MESSAGE_COLO_RSP;
	rsp.cookie = cookie;
	rsp.u.info.type = TAPDISK_MESSAGE_COLO_RSP;
	rsp.u.info.cookie = cookie;
	rsp.u.info.length = len;
	control_colo_reply_send(reply, &rsp, sizeof(rsp));
	if (len)
		control_colo_reply_send(reply, text, len);
}

/* -------------------------------------------------------------------------------------- */
/* Commands                                                                               */

/*
 * Runs from the driver, maybe inside the call that accepted the command, maybe while the VBD
 * closes: it touches only @p and the colo, which outlives its callbacks.
 */
static void control_colo_command_done(void *arg, int err, uint64_t value)
{
	struct control_colo_pending *p = arg;
	struct tapdisk_control_reply *reply = p->reply;
	char text[256] = "";
	int len = 0;

	if (err) {
		control_colo_reply_driver_error(reply, p->cookie, p->verb, p->colo, err);
	} else {
		if (p->verb == COLO_COMMAND_CHECKPOINT)
			len = snprintf(text, sizeof(text), "epoch=%" PRIu64, value);
		if (p->force && p->colo && colo_failover_forced(p->colo)[0])
			len = snprintf(text, sizeof(text), "%s", colo_failover_forced(p->colo));
		DPRINTF("colo %s on VBD %u done%s%.*s", colo_command_verb_name(p->verb), p->cookie,
			len ? ": " : "", len, text);
		control_colo_reply_text(reply, p->cookie, text, len);
	}
	reply->hangup = NULL;
	free(p);
	reply->complete(reply, 0);
}

/* The client hung up: a request the driver can withdraw is; the others go on unheard. */
static void control_colo_command_hangup(struct tapdisk_control_reply *reply, void *arg)
{
	struct control_colo_pending *p = arg;

	if (colo_cancel(p->colo, p))
		DPRINTF("colo %s on VBD %u: the client left; it goes on",
			colo_command_verb_name(p->verb), p->cookie);
}

static int control_colo_command_run(const tapdisk_message_t *req, struct colo *c,
				    const struct colo_command *cmd,
				    struct tapdisk_control_reply *reply)
{
	struct control_colo_pending *p;
	int err;

	p = calloc(1, sizeof(*p));
	if (!p) {
		control_colo_reply_error(reply, req->cookie, colo_command_verb_name(cmd->verb), -ENOMEM,
					 "out of memory");
		return 0;
	}
	p->reply = reply;
	p->colo = c;
	p->cookie = req->cookie;
	p->verb = cmd->verb;
	p->force = cmd->force;

	DPRINTF("colo %s on VBD %u: %s", colo_command_verb_name(cmd->verb), req->cookie,
		req->u.string.text);

	/* On success, @p belongs to control_colo_command_done, which may already have run. */
	reply->hangup = control_colo_command_hangup;
	reply->hangup_arg = p;
	err = colo_command_run(c, cmd, control_colo_command_done, p);
	if (err) {
		/* Refused: the callback will not run. */
		reply->hangup = NULL;
		free(p);
		control_colo_reply_driver_error(reply, req->cookie, cmd->verb, c, err);
		return 0;
	}
	return CONTROL_PENDING;
}

static int control_colo_command_status(const tapdisk_message_t *req, struct colo *c,
				       struct tapdisk_control_reply *reply)
{
	char small[CONTROL_COLO_STATUS_SIZE], *buf = small;
	struct colo_status st;
	int len;

	colo_get_status(c, &st);
	len = colo_status_json(&st, small, sizeof(small));
	/* Only a long last_error needs more room. */
	if (len >= 0 && (size_t)len >= sizeof(small) && len <= TAPDISK_MESSAGE_COLO_MAX) {
		buf = malloc(len + 1);
		if (!buf) {
			control_colo_reply_error(reply, req->cookie, "status", -ENOMEM,
						 "out of memory");
			return 0;
		}
		len = colo_status_json(&st, buf, len + 1);
	}
	if (len < 0 || len > TAPDISK_MESSAGE_COLO_MAX) {
		control_colo_reply_error(reply, req->cookie, "status", -ENOBUFS,
					 "colo status exceeds %d bytes", TAPDISK_MESSAGE_COLO_MAX);
	} else {
		control_colo_reply_text(reply, req->cookie, buf, len);
	}
	if (buf != small)
		free(buf);
	return 0;
}

/*
 * The bind finished (or failed) on the xenstore thread's word; see colo-xenstore.c, which
 * logged a failure.
 */
static void control_colo_xenstore_bound(void *arg, int err, const char *why)
{
	struct control_colo_pending *p = arg;
	struct tapdisk_control_reply *reply = p->reply;

	if (err)
		control_colo_reply_sentence(reply, p->cookie, err, why);
	else
		control_colo_reply_text(reply, p->cookie, "", 0);
	free(p);
	reply->complete(reply, 0);
}

static int control_colo_command_xenstore(const tapdisk_message_t *req, td_vbd_t *vbd,
					 const struct colo_command *cmd,
					 struct tapdisk_control_reply *reply)
{
	char why[TAPDISK_MESSAGE_STRING_LENGTH];
	struct control_colo_pending *p;
	int err;

	if (!cmd->xs_path[0]) {
		err = colo_xenstore_unbind(vbd, why, sizeof(why));
		if (err)
			control_colo_reply_error(reply, req->cookie, "xenstore", err, "%s", why);
		else
			control_colo_reply_text(reply, req->cookie, "", 0);
		return 0;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		control_colo_reply_error(reply, req->cookie, "xenstore", -ENOMEM, "out of memory");
		return 0;
	}
	p->reply = reply;
	p->cookie = req->cookie;
	p->verb = cmd->verb;
	err = colo_xenstore_bind(vbd, cmd->xs_path, control_colo_xenstore_bound, p, why,
				 sizeof(why));
	if (err) {
		free(p);
		control_colo_reply_error(reply, req->cookie, "xenstore", err, "%s", why);
		return 0;
	}
	return CONTROL_PENDING;
}

/*
 * tapdisk-control-handlers.c has looked up @vbd.  Returns 0 once the reply is sent, or
 * CONTROL_PENDING when the driver's callback will send it and complete().
 */
int tapdisk_control_handle_colo(const tapdisk_message_t *req, td_vbd_t *vbd,
				struct tapdisk_control_reply *reply)
{
	char why[TAPDISK_MESSAGE_STRING_LENGTH];
	struct colo_command cmd;
	struct colo *c;

	if (colo_command_parse(req->u.string.text, &cmd, why, sizeof(why))) {
		control_colo_reply_error(reply, req->cookie, "command", -EINVAL, "%s", why);
		return 0;
	}
	/* Unbinding needs no colo driver: the hotplug script may run it on a paused VBD. */
	if (cmd.verb == COLO_COMMAND_XENSTORE && !cmd.xs_path[0])
		return control_colo_command_xenstore(req, vbd, &cmd, reply);
	/* A paused VBD has no image chain, hence no colo driver to ask. */
	if (!tapdisk_vbd_is_open(vbd)) {
		control_colo_reply_error(reply, req->cookie, colo_command_verb_name(cmd.verb), -EINVAL,
					 "VBD %u is %s", req->cookie,
					 vbd->state & TD_VBD_PAUSED ? "paused" : "not open");
		return 0;
	}
	c = colo_from_vbd(vbd);
	if (!c) {
		control_colo_reply_error(reply, req->cookie, colo_command_verb_name(cmd.verb), -EINVAL,
					 "VBD %u is not a colo disk", req->cookie);
		return 0;
	}
	if (cmd.verb == COLO_COMMAND_STATUS)
		return control_colo_command_status(req, c, reply);
	if (cmd.verb == COLO_COMMAND_XENSTORE)
		return control_colo_command_xenstore(req, vbd, &cmd, reply);
	return control_colo_command_run(req, c, &cmd, reply);
}

/*
 * The COLO control request: the replication commands of one colo VBD ("start primary",
 * "checkpoint", "failover", "stop", "status"), as text, mapped onto the replication API of
 * include/colo.h.  docs/control-protocol.md describes the message.
 *
 * The command is checked in full before the VBD is looked at, so that a typo gets the same
 * answer on every disk.  start, checkpoint, failover and stop are asynchronous: the driver
 * calls back once it is done, possibly before the call returns, and the reply goes out from
 * that callback, as PAUSE's does.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "colo.h"
#include "tapdisk-control-internal.h"
#include "tapdisk-log.h"
#include "tapdisk-message.h"
#include "tapdisk-vbd.h"

#define CONTROL_COLO_STATUS_SIZE 1024

enum control_colo_verb {
	CONTROL_COLO_START,
	CONTROL_COLO_CHECKPOINT,
	CONTROL_COLO_FAILOVER,
	CONTROL_COLO_STOP,
	CONTROL_COLO_STATUS,
};

static const char *const control_colo_verbs[] = {
	[CONTROL_COLO_START] = "start",
	[CONTROL_COLO_CHECKPOINT] = "checkpoint",
	[CONTROL_COLO_FAILOVER] = "failover",
	[CONTROL_COLO_STOP] = "stop",
	[CONTROL_COLO_STATUS] = "status",
};

#define CONTROL_COLO_N_VERBS (sizeof(control_colo_verbs) / sizeof(control_colo_verbs[0]))
#define CONTROL_COLO_VERB_LIST "start, checkpoint, failover, stop, status"

struct control_colo_command {
	enum control_colo_verb verb;
	enum colo_role role;	  /* start */
	struct colo_options opts; /* start */
};

/* An accepted command waiting for its callback; @reply stays valid until complete(). */
struct control_colo_pending {
	struct tapdisk_control_reply *reply;
	struct colo *colo;
	uint16_t cookie;
	enum control_colo_verb verb;
};

/* -------------------------------------------------------------------------------------- */
/* Replies                                                                                */

static void control_colo_reply_send(struct tapdisk_control_reply *reply, const void *buf,
				    size_t len)
{
	/* A failed send means the client left; the connection has already logged it. */
	reply->send(reply, buf, len);
}

/* Sends ERROR with the positive errno of @err (< 0) and one sentence, and logs it once. */
static void __attribute__((format(printf, 5, 6)))
control_colo_reply_error(struct tapdisk_control_reply *reply, uint16_t cookie, const char *verb,
			 int err, const char *fmt, ...)
{
	tapdisk_message_t rsp;
	va_list ap;

	memset(&rsp, 0, sizeof(rsp));
	rsp.type = TAPDISK_MESSAGE_ERROR;
	rsp.cookie = cookie;
	rsp.u.response.error = -err;
	va_start(ap, fmt);
	vsnprintf(rsp.u.response.message, sizeof(rsp.u.response.message), fmt, ap);
	va_end(ap);

	EPRINTF("colo %s on VBD %u failed: %s (%s)", verb, cookie, rsp.u.response.message,
		strerror(-err));
	control_colo_reply_send(reply, &rsp, sizeof(rsp));
}

/* The driver's own sentence for a failure, which says more than the errno. */
static void control_colo_reply_driver_error(struct tapdisk_control_reply *reply, uint16_t cookie,
					    enum control_colo_verb verb, struct colo *c, int err)
{
	const char *why = colo_last_error(c), *name = control_colo_verbs[verb];
	size_t n = strlen(name);

	/* The client names the command already: "failover: ..." would say it twice. */
	if (why && !strncmp(why, name, n) && why[n] == ':' && why[n + 1] == ' ')
		why += n + 2;
	if (err >= 0)
		err = err ? -err : -EIO; /* the API promises a negative errno; never send 0 */
	if (why && why[0])
		control_colo_reply_error(reply, cookie, control_colo_verbs[verb], err, "%s", why);
	else
		control_colo_reply_error(reply, cookie, control_colo_verbs[verb], err,
					 "%s failed: %s", control_colo_verbs[verb], strerror(-err));
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
/* Parsing                                                                                */

static int __attribute__((format(printf, 3, 4)))
control_colo_reject(char *why, size_t why_size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, why_size, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* Words are separated by runs of blanks, so a hand-typed double space is no error. */
static char *control_colo_next_word(char **save)
{
	return strtok_r(NULL, " \t\n", save);
}

/* Parses the whole command into @cmd.  Returns 0, or -EINVAL with the reason in @why. */
static int control_colo_command_parse(const char *text, struct control_colo_command *cmd, char *why,
				      size_t why_size)
{
	char buf[TAPDISK_MESSAGE_STRING_LENGTH];
	char *save, *word, *extra;
	size_t i;
	int err;

	memset(cmd, 0, sizeof(*cmd));
	snprintf(buf, sizeof(buf), "%s", text);

	word = strtok_r(buf, " \t\n", &save);
	if (!word)
		return control_colo_reject(why, why_size,
					   "missing colo command (" CONTROL_COLO_VERB_LIST ")");
	for (i = 0; i < CONTROL_COLO_N_VERBS; i++)
		if (!strcmp(word, control_colo_verbs[i]))
			break;
	if (i == CONTROL_COLO_N_VERBS)
		return control_colo_reject(why, why_size,
					   "unknown colo command '%s' (" CONTROL_COLO_VERB_LIST ")",
					   word);
	cmd->verb = i;

	if (cmd->verb != CONTROL_COLO_START) {
		extra = control_colo_next_word(&save);
		if (extra)
			return control_colo_reject(why, why_size,
						   "%s takes no arguments (got '%s')", word, extra);
		return 0;
	}

	word = control_colo_next_word(&save);
	if (!word)
		return control_colo_reject(why, why_size, "start needs a role: "
					   "start primary|secondary [key=value ...]");
	if (!strcmp(word, "primary"))
		cmd->role = COLO_ROLE_PRIMARY;
	else if (!strcmp(word, "secondary"))
		cmd->role = COLO_ROLE_SECONDARY;
	else
		return control_colo_reject(why, why_size,
					   "unknown role '%s': expected primary or secondary",
					   word);

	colo_options_init(&cmd->opts);
	while ((word = control_colo_next_word(&save))) {
		err = colo_options_parse(&cmd->opts, word, why, why_size);
		if (err)
			return err;
	}
	return 0;
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
	char text[32] = "";
	int len = 0;

	if (err) {
		control_colo_reply_driver_error(reply, p->cookie, p->verb, p->colo, err);
	} else {
		if (p->verb == CONTROL_COLO_CHECKPOINT)
			len = snprintf(text, sizeof(text), "epoch=%" PRIu64, value);
		DPRINTF("colo %s on VBD %u done%s%.*s", control_colo_verbs[p->verb], p->cookie,
			len ? ": " : "", len, text);
		control_colo_reply_text(reply, p->cookie, text, len);
	}
	free(p);
	reply->complete(reply, 0);
}

static int control_colo_command_run(const tapdisk_message_t *req, struct colo *c,
				    const struct control_colo_command *cmd,
				    struct tapdisk_control_reply *reply)
{
	struct control_colo_pending *p;
	struct colo_status st;
	int err;

	p = calloc(1, sizeof(*p));
	if (!p) {
		control_colo_reply_error(reply, req->cookie, control_colo_verbs[cmd->verb], -ENOMEM,
					 "out of memory");
		return 0;
	}
	p->reply = reply;
	p->colo = c;
	p->cookie = req->cookie;
	p->verb = cmd->verb;

	DPRINTF("colo %s on VBD %u: %s", control_colo_verbs[cmd->verb], req->cookie,
		req->u.string.text);

	/* On success, @p belongs to control_colo_command_done, which may already have run. */
	switch (cmd->verb) {
	case CONTROL_COLO_START:
		err = colo_start(c, cmd->role, &cmd->opts, control_colo_command_done, p);
		break;
	case CONTROL_COLO_CHECKPOINT:
		/* Each side has its own half; a disk never started is refused by the Primary's. */
		colo_get_status(c, &st);
		if (st.role == COLO_ROLE_SECONDARY)
			err = colo_do_checkpoint(c, control_colo_command_done, p);
		else
			err = colo_prepare_checkpoint(c, control_colo_command_done, p);
		break;
	case CONTROL_COLO_FAILOVER:
		err = colo_stop_replication(c, true, control_colo_command_done, p);
		break;
	case CONTROL_COLO_STOP:
	default:
		err = colo_stop_replication(c, false, control_colo_command_done, p);
		break;
	}
	if (err) {
		/* Refused: the callback will not run. */
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
 * tapdisk-control-handlers.c has looked up @vbd.  Returns 0 once the reply is sent, or
 * CONTROL_PENDING when the driver's callback will send it and complete().
 */
int tapdisk_control_handle_colo(const tapdisk_message_t *req, td_vbd_t *vbd,
				struct tapdisk_control_reply *reply)
{
	char why[TAPDISK_MESSAGE_STRING_LENGTH];
	struct control_colo_command cmd;
	struct colo *c;

	if (control_colo_command_parse(req->u.string.text, &cmd, why, sizeof(why))) {
		control_colo_reply_error(reply, req->cookie, "command", -EINVAL, "%s", why);
		return 0;
	}
	/* A paused VBD has no image chain, hence no colo driver to ask. */
	if (!tapdisk_vbd_is_open(vbd)) {
		control_colo_reply_error(reply, req->cookie, control_colo_verbs[cmd.verb], -EINVAL,
					 "VBD %u is %s", req->cookie,
					 vbd->state & TD_VBD_PAUSED ? "paused" : "not open");
		return 0;
	}
	c = colo_from_vbd(vbd);
	if (!c) {
		control_colo_reply_error(reply, req->cookie, control_colo_verbs[cmd.verb], -EINVAL,
					 "VBD %u is not a colo disk", req->cookie);
		return 0;
	}
	if (cmd.verb == CONTROL_COLO_STATUS)
		return control_colo_command_status(req, c, reply);
	return control_colo_command_run(req, c, &cmd, reply);
}

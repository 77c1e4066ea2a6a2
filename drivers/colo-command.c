/*
 * Parsing and running the replication commands of one colo VBD; see colo-command.h.
 *
 * A command is checked in full before any VBD is looked at, so that a typo gets the same
 * answer on every disk.
 */
#include <errno.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "colo-command.h"

static const char *const colo_command_verbs[] = {
	[COLO_COMMAND_START] = "start",
	[COLO_COMMAND_CHECKPOINT] = "checkpoint",
	[COLO_COMMAND_FAILOVER] = "failover",
	[COLO_COMMAND_STOP] = "stop",
	[COLO_COMMAND_STATUS] = "status",
	[COLO_COMMAND_XENSTORE] = "xenstore",
};

#define COLO_COMMAND_N_VERBS (sizeof(colo_command_verbs) / sizeof(colo_command_verbs[0]))
#define COLO_COMMAND_VERB_LIST "start, checkpoint, failover, stop, status, xenstore"

/* Longest command text accepted; the control message carries at most 256 bytes. */
#define COLO_COMMAND_TEXT_MAX 1024

const char *colo_command_verb_name(enum colo_command_verb verb)
{
	return verb < COLO_COMMAND_N_VERBS ? colo_command_verbs[verb] : "?";
}

static int __attribute__((format(printf, 3, 4)))
colo_command_reject(char *why, size_t why_size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, why_size, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* Words are separated by runs of blanks, so a hand-typed double space is no error. */
static char *colo_command_next_word(char **save)
{
	return strtok_r(NULL, " \t\n", save);
}

/* xenstore's own rules for a path, plus ours: the VBD's directory ends in /disks/NAME. */
static int colo_command_parse_xs_path(const char *path, struct colo_command *cmd, char *why,
				      size_t why_size)
{
	const char *disks, *name;
	size_t len = strlen(path);

	if (!strcmp(path, "off")) {
		cmd->xs_path[0] = '\0';
		return 0;
	}
	if (path[0] != '/')
		return colo_command_reject(why, why_size,
					   "xenstore path '%s' is not absolute", path);
	if (len >= sizeof(cmd->xs_path))
		return colo_command_reject(why, why_size, "xenstore path is longer than %zu bytes",
					   sizeof(cmd->xs_path) - 1);
	if (strspn(path, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/_@-") !=
	    len)
		return colo_command_reject(why, why_size,
					   "xenstore path '%s' has a character xenstore refuses",
					   path);
	if (strstr(path, "//") || path[len - 1] == '/')
		return colo_command_reject(why, why_size,
					   "xenstore path '%s' has an empty component", path);
	name = strrchr(path, '/') + 1;
	disks = name - 7;
	if (disks <= path || strncmp(disks, "/disks/", 7))
		return colo_command_reject(why, why_size, "xenstore path '%s' does not end in "
					   "/disks/NAME (see docs/xenstore.md)", path);
	memcpy(cmd->xs_path, path, len + 1);
	return 0;
}

int colo_command_parse(const char *text, struct colo_command *cmd, char *why, size_t why_size)
{
	char buf[COLO_COMMAND_TEXT_MAX];
	char *save, *word, *extra;
	size_t i;
	int err;

	memset(cmd, 0, sizeof(*cmd));
	if (strlen(text) >= sizeof(buf))
		return colo_command_reject(why, why_size, "colo command is longer than %zu bytes",
					   sizeof(buf) - 1);
	snprintf(buf, sizeof(buf), "%s", text);

	word = strtok_r(buf, " \t\n", &save);
	if (!word)
		return colo_command_reject(why, why_size,
					   "missing colo command (" COLO_COMMAND_VERB_LIST ")");
	for (i = 0; i < COLO_COMMAND_N_VERBS; i++)
		if (!strcmp(word, colo_command_verbs[i]))
			break;
	if (i == COLO_COMMAND_N_VERBS)
		return colo_command_reject(why, why_size,
					   "unknown colo command '%s' (" COLO_COMMAND_VERB_LIST ")",
					   word);
	cmd->verb = i;

	if (cmd->verb == COLO_COMMAND_XENSTORE) {
		word = colo_command_next_word(&save);
		if (!word)
			return colo_command_reject(why, why_size, "xenstore needs the VBD's "
						   "directory or 'off': xenstore PATH|off");
		err = colo_command_parse_xs_path(word, cmd, why, why_size);
		if (err)
			return err;
		extra = colo_command_next_word(&save);
		if (extra)
			return colo_command_reject(why, why_size,
						   "xenstore takes one argument (got '%s')", extra);
		return 0;
	}

	if (cmd->verb == COLO_COMMAND_FAILOVER) {
		extra = colo_command_next_word(&save);
		if (extra && !strcmp(extra, "force")) {
			cmd->force = true;
			extra = colo_command_next_word(&save);
		}
		if (extra)
			return colo_command_reject(why, why_size,
						   "failover takes no argument but 'force' (got '%s')",
						   extra);
		return 0;
	}

	if (cmd->verb != COLO_COMMAND_START) {
		extra = colo_command_next_word(&save);
		if (extra)
			return colo_command_reject(why, why_size,
						   "%s takes no arguments (got '%s')", word, extra);
		return 0;
	}

	word = colo_command_next_word(&save);
	if (!word)
		return colo_command_reject(why, why_size, "start needs a role: "
					   "start primary|secondary [key=value ...]");
	if (!strcmp(word, "primary"))
		cmd->role = COLO_ROLE_PRIMARY;
	else if (!strcmp(word, "secondary"))
		cmd->role = COLO_ROLE_SECONDARY;
	else
		return colo_command_reject(why, why_size,
					   "unknown role '%s': expected primary or secondary",
					   word);

	colo_options_init(&cmd->opts);
	while ((word = colo_command_next_word(&save))) {
		err = colo_options_parse(&cmd->opts, word, why, why_size);
		if (!err)
			err = colo_options_check_role(word, cmd->role, why, why_size);
		if (err)
			return err;
	}
	return 0;
}

int colo_command_run(struct colo *c, const struct colo_command *cmd, colo_done_t done, void *arg)
{
	struct colo_status st;

	switch (cmd->verb) {
	case COLO_COMMAND_START:
		return colo_start(c, cmd->role, &cmd->opts, done, arg);
	case COLO_COMMAND_CHECKPOINT:
		/* Each side has its own half; a disk never started is refused by the Primary's. */
		colo_get_status(c, &st);
		if (st.role == COLO_ROLE_SECONDARY)
			return colo_do_checkpoint(c, done, arg);
		return colo_prepare_checkpoint(c, done, arg);
	case COLO_COMMAND_FAILOVER:
		return cmd->force ? colo_failover_force(c, done, arg)
				  : colo_stop_replication(c, true, done, arg);
	case COLO_COMMAND_STOP:
		return colo_stop_replication(c, false, done, arg);
	default:
		return -EINVAL; /* status and xenstore are answered by their callers */
	}
}

const char *colo_command_error(struct colo *c, enum colo_command_verb verb)
{
	const char *why = colo_last_error(c), *name = colo_command_verb_name(verb);
	size_t n = strlen(name);

	/* The caller names the command already: "failover: ..." would say it twice. */
	if (why && !strncmp(why, name, n) && why[n] == ':' && why[n + 1] == ' ')
		why += n + 2;
	return why ? why : "";
}

int colo_parse_u63(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (!len || len > 19)
		return -EINVAL;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		if (v > (INT64_MAX - (uint64_t)(s[i] - '0')) / 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (len > 1 && s[0] == '0')
		return -EINVAL; /* one spelling per number, so ids compare as text does */
	*out = v;
	return 0;
}

/* Printable and short, for echoing a malformed request back. */
static void colo_request_echo(const char *text, size_t len, char *out, size_t size)
{
	size_t i;

	for (i = 0; i < len && text[i] && i + 1 < size; i++)
		out[i] = text[i] >= 0x20 && text[i] < 0x7f && text[i] != '\'' ? text[i] : '?';
	out[i] = '\0';
}

int colo_request_parse(const char *text, uint64_t *id, struct colo_command *cmd, char *why,
		       size_t why_size)
{
	char echo[COLO_REQUEST_ECHO_MAX + 1], tok[COLO_REQUEST_ECHO_MAX + 1];
	size_t id_len = strcspn(text, " \t\n");
	int err;

	*id = 0;
	if (colo_parse_u63(text, id_len, id) || *id == 0) {
		*id = 0;
		colo_request_echo(text, COLO_REQUEST_ECHO_MAX, echo, sizeof(echo));
		colo_request_echo(text, id_len, tok, sizeof(tok));
		return colo_command_reject(why, why_size, "malformed request '%s': bad id '%s'",
					   echo, tok);
	}
	if (strlen(text) >= COLO_COMMAND_TEXT_MAX)
		return colo_command_reject(why, why_size, "request is longer than %d bytes",
					   COLO_COMMAND_TEXT_MAX - 1);
	err = colo_command_parse(text + id_len, cmd, why, why_size);
	if (err)
		return err;
	if (cmd->verb == COLO_COMMAND_STATUS || cmd->verb == COLO_COMMAND_XENSTORE)
		return colo_command_reject(why, why_size, "'%s' is not a request (start, "
					   "checkpoint, failover, stop)",
					   colo_command_verb_name(cmd->verb));
	return 0;
}

/*
 * The replication commands of one colo VBD as text ("start primary timeout=500",
 * "checkpoint", "failover", "stop", "status", "xenstore PATH|off"), parsed once and run
 * against include/colo.h.  Both ways in use it: the COLO control message
 * (tapdisk-control-colo.c) and the xenstore requests (colo-xenstore.c).
 */
#ifndef _COLO_COMMAND_H_
#define _COLO_COMMAND_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "colo.h"

#define COLO_COMMAND_PATH_MAX 512

enum colo_command_verb {
	COLO_COMMAND_START,
	COLO_COMMAND_CHECKPOINT,
	COLO_COMMAND_FAILOVER,
	COLO_COMMAND_STOP,
	COLO_COMMAND_STATUS,
	COLO_COMMAND_XENSTORE,
};

struct colo_command {
	enum colo_command_verb verb;
	enum colo_role role;			  /* start */
	struct colo_options opts;		  /* start */
	bool force;				  /* failover force */
	char xs_path[COLO_COMMAND_PATH_MAX]; /* xenstore: the VBD's directory, "" = off */
};

/* Parses the whole of @text.  Returns 0, or -EINVAL with one sentence in @why. */
int colo_command_parse(const char *text, struct colo_command *cmd, char *why, size_t why_size);

const char *colo_command_verb_name(enum colo_command_verb verb);

/*
 * Runs start, checkpoint (the Primary's prepare or the Secondary's do_checkpoint, by role),
 * failover or stop.  Returns 0 once accepted (@done then runs exactly once) or a negative
 * errno when refused (colo_command_error says why).
 */
int colo_command_run(struct colo *c, const struct colo_command *cmd, colo_done_t done, void *arg);

/* Parses a number: decimal, no sign, no leading zero, 0 ... 2^63-1.  Returns 0 or -EINVAL. */
int colo_parse_u63(const char *s, size_t len, uint64_t *out);

/* How much of a malformed request its error echoes. */
#define COLO_REQUEST_ECHO_MAX 64

/*
 * Parses a xenstore request, "<id> start|checkpoint|failover|stop [args]".  Returns 0, or
 * -EINVAL with one sentence in @why.  @id is the request's id (1 ... 2^63-1), or 0 when the
 * id itself cannot be read.
 */
int colo_request_parse(const char *text, uint64_t *id, struct colo_command *cmd, char *why,
		       size_t why_size);

/* The driver's sentence for the last failure of @verb, without a repeated "verb: " prefix. */
const char *colo_command_error(struct colo *c, enum colo_command_verb verb);

#endif

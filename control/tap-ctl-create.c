/* create: allocate + spawn + attach + open; on failure, undo what was done, last step first. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tap-ctl-internal.h"
#include "tap-ctl.h"

/* Asks a tapdisk we spawned, and that has no VBD, to exit. */
static void create_undo_spawn(int id)
{
	struct timeval timeout = { .tv_sec = TAP_CTL_TIMEOUT };
	tapdisk_message_t message;

	memset(&message, 0, sizeof(message));
	message.type = TAPDISK_MESSAGE_EXIT;
	tap_ctl_request("create: undo spawn", id, &message, TAPDISK_MESSAGE_EXIT, &timeout, NULL);
}

int tap_ctl_create(const char *params, char **devname, int flags, int prt_minor, char *secondary,
		   int timeout)
{
	int minor, id, err;
	char *given = *devname;

	/* Check what tapdisk would refuse before anything needs undoing. */
	if (!params || !strchr(params, ':') || strchr(params, ':') == params) {
		tap_ctl_error("create: '%s' is not of the form type:/path", params ? params : "");
		return -EINVAL;
	}
	if (strlen(params) >= TAPDISK_MESSAGE_MAX_PATH_LENGTH) {
		tap_ctl_error("create: %s: name longer than %d bytes", params,
			      TAPDISK_MESSAGE_MAX_PATH_LENGTH - 1);
		return -ENAMETOOLONG;
	}

	err = tap_ctl_allocate(&minor, devname);
	if (err)
		return err;

	id = tap_ctl_spawn();
	if (id < 0) {
		err = id;
		goto free_minor;
	}

	err = tap_ctl_attach(id, minor);
	if (err) {
		create_undo_spawn(id);
		goto free_minor;
	}

	err = tap_ctl_open(id, minor, params, flags, prt_minor, secondary, timeout);
	if (err) {
		/* tapdisk exits once its last VBD is detached. */
		tap_ctl_detach(id, minor);
		goto free_minor;
	}
	return 0;

free_minor:
	tap_ctl_free(minor);
	if (*devname != given) {
		free(*devname);
		*devname = given;
	}
	return err;
}

/* unpause: reopen the chain of paused VBD @minor (@params: another image) and resume. */
#include <errno.h>
#include <string.h>

#include "tap-ctl-internal.h"
#include "tap-ctl.h"

int tap_ctl_unpause(const int id, const int minor, const char *params, int flags, char *secondary,
		    const char *logpath)
{
	struct timeval timeout = { .tv_sec = TAP_CTL_OPEN_TIMEOUT };
	tapdisk_message_t message;

	memset(&message, 0, sizeof(message));
	message.type = TAPDISK_MESSAGE_RESUME;
	message.cookie = minor;
	/* blktap3's layout: RESUME carries the open parameters (tapdisk-message.h). */
	message.u.params.flags = flags;
	if (logpath)
		message.u.params.flags |= TAPDISK_MESSAGE_FLAG_ADD_LOG;

	if (params) {
		if (strlen(params) >= sizeof(message.u.params.path)) {
			tap_ctl_error("unpause: %s: name longer than %zu bytes", params,
				      sizeof(message.u.params.path) - 1);
			return -ENAMETOOLONG;
		}
		strcpy(message.u.params.path, params);
	}
	if (secondary) {
		if (strlen(secondary) >= sizeof(message.u.params.secondary)) {
			tap_ctl_error("unpause: %s: name longer than %zu bytes", secondary,
				      sizeof(message.u.params.secondary) - 1);
			return -ENAMETOOLONG;
		}
		strcpy(message.u.params.secondary, secondary);
	}

	return tap_ctl_request("unpause", id, &message, TAPDISK_MESSAGE_RESUME_RSP, &timeout,
			       NULL);
}

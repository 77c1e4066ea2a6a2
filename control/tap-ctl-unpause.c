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
	message.u.resume.flags = flags;
	if (logpath)
		message.u.resume.flags |= TAPDISK_MESSAGE_FLAG_ADD_LOG;

	if (params) {
		if (strlen(params) >= sizeof(message.u.resume.new_params)) {
			tap_ctl_error("unpause: %s: name longer than %zu bytes", params,
				      sizeof(message.u.resume.new_params) - 1);
			return -ENAMETOOLONG;
		}
		strcpy(message.u.resume.new_params, params);
	}
	if (secondary) {
		if (strlen(secondary) >= sizeof(message.u.resume.secondary)) {
			tap_ctl_error("unpause: %s: name longer than %zu bytes", secondary,
				      sizeof(message.u.resume.secondary) - 1);
			return -ENAMETOOLONG;
		}
		strcpy(message.u.resume.secondary, secondary);
	}

	return tap_ctl_request("unpause", id, &message, TAPDISK_MESSAGE_RESUME_RSP, &timeout,
			       NULL);
}

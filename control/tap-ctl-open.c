/* open: open the image chain "type:/path" on VBD @minor. */
#include <errno.h>
#include <string.h>

#include "tap-ctl-internal.h"
#include "tap-ctl.h"

int tap_ctl_open(const int id, const int minor, const char *params, int flags, const int prt_minor,
		 const char *secondary, int timeout)
{
	struct timeval tv = { .tv_sec = TAP_CTL_OPEN_TIMEOUT };
	tapdisk_message_t message;

	memset(&message, 0, sizeof(message));
	message.type = TAPDISK_MESSAGE_OPEN;
	message.cookie = minor;
	message.u.params.flags = flags;
	message.u.params.devnum = minor;
	message.u.params.prt_devnum = prt_minor;
	message.u.params.req_timeout = timeout;

	if (!params || !strchr(params, ':')) {
		tap_ctl_error("open: '%s' is not of the form type:/path", params ? params : "");
		return -EINVAL;
	}
	if (strlen(params) >= sizeof(message.u.params.path)) {
		tap_ctl_error("open: %s: name longer than %zu bytes", params,
			      sizeof(message.u.params.path) - 1);
		return -ENAMETOOLONG;
	}
	strcpy(message.u.params.path, params);

	if (secondary) {
		if (strlen(secondary) >= sizeof(message.u.params.secondary)) {
			tap_ctl_error("open: %s: name longer than %zu bytes", secondary,
				      sizeof(message.u.params.secondary) - 1);
			return -ENAMETOOLONG;
		}
		strcpy(message.u.params.secondary, secondary);
	}

	return tap_ctl_request("open", id, &message, TAPDISK_MESSAGE_OPEN_RSP, &tv, NULL);
}

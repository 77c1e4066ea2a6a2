/* detach: free closed VBD @minor; tapdisk exits when it has no VBD left. */
#include <string.h>

#include "tap-ctl-internal.h"
#include "tap-ctl.h"

int tap_ctl_detach(const int id, const int minor)
{
	struct timeval timeout = { .tv_sec = TAP_CTL_TIMEOUT };
	tapdisk_message_t message;

	memset(&message, 0, sizeof(message));
	message.type = TAPDISK_MESSAGE_DETACH;
	message.cookie = minor;
	return tap_ctl_request("detach", id, &message, TAPDISK_MESSAGE_DETACH_RSP, &timeout, NULL);
}

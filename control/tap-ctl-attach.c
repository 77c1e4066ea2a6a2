/* attach: create VBD @minor in tapdisk @id. */
#include <string.h>

#include "tap-ctl-internal.h"
#include "tap-ctl.h"

int tap_ctl_attach(const int id, const int minor)
{
	struct timeval timeout = { .tv_sec = TAP_CTL_TIMEOUT };
	tapdisk_message_t message;

	memset(&message, 0, sizeof(message));
	message.type = TAPDISK_MESSAGE_ATTACH;
	message.cookie = minor;
	return tap_ctl_request("attach", id, &message, TAPDISK_MESSAGE_ATTACH_RSP, &timeout, NULL);
}

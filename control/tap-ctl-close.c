/* close: drain and close VBD @minor.  Forced, it is blktap3's FORCE_SHUTDOWN of that VBD. */
#include <string.h>

#include "tap-ctl-internal.h"
#include "tap-ctl.h"

int tap_ctl_close(const int id, const int minor, const int force, struct timeval *timeout)
{
	tapdisk_message_t message;

	memset(&message, 0, sizeof(message));
	message.type = force ? TAPDISK_MESSAGE_FORCE_SHUTDOWN : TAPDISK_MESSAGE_CLOSE;
	message.cookie = minor;
	return tap_ctl_request("close", id, &message, TAPDISK_MESSAGE_CLOSE_RSP, timeout, NULL);
}

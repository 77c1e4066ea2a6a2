/* pause: hold new requests of VBD @minor, drain, and close its chain. */
#include <string.h>

#include "tap-ctl-internal.h"
#include "tap-ctl.h"

int tap_ctl_pause(const int id, const int minor, struct timeval *timeout)
{
	tapdisk_message_t message;

	memset(&message, 0, sizeof(message));
	message.type = TAPDISK_MESSAGE_PAUSE;
	message.cookie = minor;
	return tap_ctl_request("pause", id, &message, TAPDISK_MESSAGE_PAUSE_RSP, timeout, NULL);
}

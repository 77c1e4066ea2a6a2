/* info: size and geometry of open VBD @minor. */
#include <string.h>

#include "tap-ctl-internal.h"
#include "tap-ctl.h"

int tap_ctl_info(pid_t pid, int minor, unsigned long long *sectors, unsigned int *sector_size,
		 unsigned int *info)
{
	struct timeval timeout = { .tv_sec = TAP_CTL_TIMEOUT };
	tapdisk_message_t message;
	int err;

	memset(&message, 0, sizeof(message));
	message.type = TAPDISK_MESSAGE_DISK_INFO;
	message.cookie = minor;
	err = tap_ctl_request("info", pid, &message, TAPDISK_MESSAGE_DISK_INFO_RSP, &timeout,
			      NULL);
	if (err)
		return err;
	*sectors = message.u.image.sectors;
	*sector_size = message.u.image.sector_size;
	*info = message.u.image.info;
	return 0;
}

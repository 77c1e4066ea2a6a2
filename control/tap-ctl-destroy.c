/* destroy: close + detach + free.  Stops at the first step that fails. */
#include "tap-ctl-internal.h"
#include "tap-ctl.h"

int tap_ctl_destroy(const int id, const int minor, int force, struct timeval *timeout)
{
	int err;

	err = tap_ctl_close(id, minor, force, timeout);
	if (err)
		return err;

	err = tap_ctl_detach(id, minor);
	if (err)
		return err;

	return tap_ctl_free(minor);
}

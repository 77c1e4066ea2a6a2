/* free: remove the marker of @minor, under the same lock as allocate. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blktap.h"
#include "tap-ctl-internal.h"
#include "tap-ctl.h"

int tap_ctl_free(const int minor)
{
	char *dir, *name;
	int dfd, err = 0;

	if (minor < 0 || minor >= MAX_ID) {
		tap_ctl_error("free: minor %d out of range (0..%d)", minor, MAX_ID - 1);
		return -EINVAL;
	}
	dir = tap_ctl_minor_dir();
	name = tap_ctl_minor_name(minor);
	if (!dir || !name) {
		free(dir);
		free(name);
		tap_ctl_error("free: out of memory");
		return -ENOMEM;
	}
	dfd = tap_ctl_minor_dir_lock("free", dir);
	if (dfd < 0) {
		err = dfd;
		goto out;
	}
	if (unlink(name)) {
		err = -errno;
		tap_ctl_error("free: %s: %s", name,
			      errno == ENOENT ? "minor not allocated" : strerror(errno));
	}
	close(dfd);
out:
	free(dir);
	free(name);
	return err;
}

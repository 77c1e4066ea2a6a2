/*
 * free: remove the marker of @minor, under the same lock as allocate.  As blktap3's, it
 * refuses a minor whose marker a tapdisk holds locked: the minor is attached.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blktap.h"
#include "tap-ctl-internal.h"
#include "tap-ctl.h"
#include "tapdisk-marker.h"

int tap_ctl_free(const int minor)
{
	char *dir, *name;
	int dfd, fd, err = 0;
	pid_t holder;

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
	fd = tapdisk_marker_try_lock(name, &holder);
	if (fd == -EAGAIN && holder > 0)
		tap_ctl_error("free: minor %d is in use by tapdisk %d", minor, (int)holder);
	else if (fd == -EAGAIN)
		tap_ctl_error("free: minor %d is in use (%s is locked)", minor, name);
	else if (fd < 0)
		tap_ctl_error("free: %s: %s", name,
			      fd == -ENOENT ? "minor not allocated" : strerror(-fd));
	if (fd < 0) {
		err = fd;
	} else {
		/* Unlinked while locked, so that no tapdisk attaches it meanwhile. */
		if (unlink(name)) {
			err = -errno;
			tap_ctl_error("free: %s: %s", name, strerror(errno));
		}
		close(fd);
	}
	close(dfd);
out:
	free(dir);
	free(name);
	return err;
}

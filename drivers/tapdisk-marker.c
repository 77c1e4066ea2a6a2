/* Minor markers: see tapdisk-marker.h for what a held, an empty and a stale marker mean. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blktap.h"
#include "tapdisk-marker.h"

/*
 * tap-ctl takes a marker's lock for an instant to see whether a tapdisk holds it: an attach
 * that meets such a probe tries again for this long before it calls the minor taken.
 */
#define MARKER_LOCK_TRIES 100
#define MARKER_LOCK_WAIT_US 10000

char *tapdisk_marker_path(int minor)
{
	char *path;

	if (asprintf(&path, "%s/tapdisk/%s%d", blktap_control_dir(), BLKTAP2_MINOR_PREFIX,
		     minor) < 0)
		return NULL;
	return path;
}

static int marker_lock(int fd)
{
	int i;

	for (i = 0;; i++) {
		if (!flock(fd, LOCK_EX | LOCK_NB))
			return 0;
		if (errno != EWOULDBLOCK || i == MARKER_LOCK_TRIES)
			return -errno;
		usleep(MARKER_LOCK_WAIT_US);
	}
}

/* True when @path still names the file open as @fd: tap-ctl may have reclaimed it. */
static int marker_is_current(int fd, const char *path)
{
	struct stat a, b;

	return !fstat(fd, &a) && !stat(path, &b) && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

int tapdisk_marker_hold(int minor, char *why, size_t why_size)
{
	char *path = tapdisk_marker_path(minor);
	char pid[16];
	int fd, err, len;

	if (!path) {
		snprintf(why, why_size, "out of memory");
		return -ENOMEM;
	}
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		if (err == -ENOENT)
			snprintf(why, why_size, "minor %d is not allocated (%s: %s)", minor, path,
				 strerror(-err));
		else
			snprintf(why, why_size, "cannot open %s: %s", path, strerror(-err));
		goto out;
	}
	err = marker_lock(fd);
	if (err) {
		if (err == -EWOULDBLOCK) {
			err = -EBUSY;
			snprintf(why, why_size, "minor %d is held by another tapdisk (%s is locked)",
				 minor, path);
		} else {
			snprintf(why, why_size, "cannot lock %s: %s", path, strerror(-err));
		}
		goto fail;
	}
	if (!marker_is_current(fd, path)) {
		err = -ENOENT;
		snprintf(why, why_size, "minor %d is not allocated (%s was freed)", minor, path);
		goto fail;
	}
	len = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (ftruncate(fd, 0) || pwrite(fd, pid, len, 0) != len) {
		err = errno ? -errno : -EIO;
		snprintf(why, why_size, "cannot write our pid in %s: %s", path, strerror(-err));
		goto fail;
	}
	err = fd;
	goto out;
fail:
	close(fd);
out:
	free(path);
	return err;
}

void tapdisk_marker_release(int fd)
{
	/*
	 * Emptied first: once unlocked, a marker with a pid in it looks stale.  If that fails,
	 * tap-ctl may reclaim the detached minor before its free does: no harm.
	 */
	if (ftruncate(fd, 0) < 0)
		errno = 0;
	close(fd);
}

static pid_t marker_read_pid(int fd)
{
	char buf[16];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	long pid;

	if (n <= 0)
		return 0;
	buf[n] = '\0';
	pid = strtol(buf, NULL, 10);
	return pid > 0 && pid <= INT_MAX ? (pid_t)pid : 0;
}

int tapdisk_marker_try_lock(const char *path, pid_t *pid)
{
	int fd, err;

	*pid = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	*pid = marker_read_pid(fd);
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		err = errno == EWOULDBLOCK ? -EAGAIN : -errno;
		close(fd);
		return err;
	}
	/* Read again: a tapdisk may have let go of it between the read and the lock. */
	*pid = marker_read_pid(fd);
	return fd;
}

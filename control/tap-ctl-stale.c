/*
 * What a tapdisk killed without a detach (kill -9, a crash) leaves behind: its minors'
 * markers, unlocked but with its pid in them (tapdisk-marker.h), and its ctl<pid> and
 * nbd<pid>.<minor> sockets, which nothing will answer again.  list and allocate reclaim them,
 * so that a dead tapdisk's minor is free again and no bare "minor=N" row stays listed.
 *
 * Best effort and quiet: what cannot be reclaimed (no permission, no directory) is left,
 * and list shows it as before.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "blktap.h"
#include "tap-ctl-internal.h"
#include "tap-ctl.h"
#include "tapdisk-marker.h"

static int stale_pid_is_dead(long pid)
{
	return pid > 0 && pid <= INT32_MAX && kill((pid_t)pid, 0) && errno == ESRCH;
}

static void stale_unlink(const char *dir, const char *name, const char *why)
{
	char path[512];

	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
		return;
	if (!unlink(path))
		tap_ctl_dbg("reclaimed %s (%s)", path, why);
}

/* Unlinks the markers that a dead tapdisk held; @dfd is the minor directory, locked. */
static void stale_markers(int dfd, const char *dir)
{
	char path[512];
	struct dirent *de;
	pid_t pid;
	DIR *d;
	int fd;

	fd = dup(dfd);
	if (fd < 0)
		return;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	rewinddir(d); /* the dup shares its offset with @dfd, which others read too */
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, BLKTAP2_MINOR_PREFIX, strlen(BLKTAP2_MINOR_PREFIX)))
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >= (int)sizeof(path))
			continue;
		fd = tapdisk_marker_try_lock(path, &pid);
		if (fd < 0)
			continue; /* held by a live tapdisk, or gone */
		/* Unlocked with a pid in it: that tapdisk died attached. */
		if (pid > 0)
			stale_unlink(dir, de->d_name, "its tapdisk died attached");
		close(fd);
	}
	closedir(d);
}

/* Unlinks ctl<pid> and nbd<pid>.<minor> of processes that are gone. */
static void stale_sockets(const char *dir)
{
	size_t clen = strlen(BLKTAP2_CONTROL_SOCKET), nlen = strlen(BLKTAP2_NBD_PREFIX);
	struct dirent *de;
	const char *num;
	char *end;
	long pid;
	DIR *d;

	d = opendir(dir);
	if (!d)
		return;
	while ((de = readdir(d))) {
		if (!strncmp(de->d_name, BLKTAP2_CONTROL_SOCKET, clen))
			num = de->d_name + clen;
		else if (!strncmp(de->d_name, BLKTAP2_NBD_PREFIX, nlen))
			num = de->d_name + nlen;
		else
			continue;
		if (*num < '0' || *num > '9')
			continue;
		pid = strtol(num, &end, 10);
		if (*end && *end != '.')
			continue;
		if (de->d_type != DT_SOCK && de->d_type != DT_UNKNOWN)
			continue;
		if (stale_pid_is_dead(pid))
			stale_unlink(dir, de->d_name, "its tapdisk is gone");
	}
	closedir(d);
}

void tap_ctl_reclaim_stale(int locked_dfd)
{
	char *dir = tap_ctl_minor_dir();
	int dfd = locked_dfd;

	if (!dir)
		return;
	if (dfd < 0) {
		/* Not created here: list must not make directories. */
		dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0 && flock(dfd, LOCK_EX)) {
			close(dfd);
			dfd = -1;
		}
	}
	if (dfd >= 0)
		stale_markers(dfd, dir);
	stale_sockets(blktap_control_dir());
	if (dfd >= 0 && dfd != locked_dfd)
		close(dfd);
	free(dir);
}

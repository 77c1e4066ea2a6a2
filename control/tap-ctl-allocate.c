/*
 * allocate: reserve a minor by creating its marker <control dir>/tapdisk/tapdisk-<minor>.
 * Markers are created and removed under flock on the directory, so that two tap-ctls never
 * pick the same minor (tap-ctl-free.c takes the same lock).
 */
#include <dirent.h>
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
#include "tap-ctl-internal.h"
#include "tap-ctl.h"
#include "tapdisk-marker.h"

char *tap_ctl_minor_dir(void)
{
	char *dir;

	if (asprintf(&dir, "%s/tapdisk", blktap_control_dir()) < 0)
		return NULL;
	return dir;
}

char *tap_ctl_minor_name(int minor)
{
	return tapdisk_marker_path(minor);
}

/* mkdir -p @dir; what we create is 0700, since it holds control sockets and markers. */
static int allocate_mkdir_p(const char *dir)
{
	char path[PATH_MAX];
	char *p, c;

	if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	for (p = path + 1;; p++) {
		if (*p && *p != '/')
			continue;
		c = *p;
		*p = '\0';
		if (mkdir(path, 0700) && errno != EEXIST)
			return -errno;
		*p = c;
		if (!c)
			return 0;
	}
}

int tap_ctl_minor_dir_lock(const char *verb, const char *dir)
{
	int fd, err;

	err = allocate_mkdir_p(dir);
	if (err) {
		tap_ctl_error("%s: cannot create %s: %s", verb, dir, strerror(-err));
		return err;
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		tap_ctl_error("%s: cannot open %s: %s", verb, dir, strerror(errno));
		return err;
	}
	if (flock(fd, LOCK_EX)) {
		err = -errno;
		tap_ctl_error("%s: cannot lock %s: %s", verb, dir, strerror(errno));
		close(fd);
		return err;
	}
	return fd;
}

/* Parses "tapdisk-<n>" with n in 0..MAX_ID-1; returns n or -1. */
static int allocate_parse_minor(const char *name)
{
	size_t plen = strlen(BLKTAP2_MINOR_PREFIX);
	char *end;
	long n;

	if (strncmp(name, BLKTAP2_MINOR_PREFIX, plen) || name[plen] < '0' || name[plen] > '9')
		return -1;
	n = strtol(name + plen, &end, 10);
	if (*end || n < 0 || n >= MAX_ID)
		return -1;
	return n;
}

/* The lowest minor without a marker, or -ENOSPC. */
static int allocate_find_free(int dfd)
{
	static unsigned char used[MAX_ID];
	struct dirent *de;
	DIR *d;
	int fd, minor;

	fd = dup(dfd);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	rewinddir(d); /* the dup shares its offset with @dfd, which may have been read */
	memset(used, 0, sizeof(used));
	while ((de = readdir(d))) {
		minor = allocate_parse_minor(de->d_name);
		if (minor >= 0)
			used[minor] = 1;
	}
	closedir(d);

	for (minor = 0; minor < MAX_ID; minor++)
		if (!used[minor])
			return minor;
	return -ENOSPC;
}

int tap_ctl_allocate(int *minor, char **devname)
{
	char *dir, *name = NULL;
	int dfd, fd, m, err;
	const char *base;

	dir = tap_ctl_minor_dir();
	if (!dir) {
		tap_ctl_error("allocate: out of memory");
		return -ENOMEM;
	}
	dfd = tap_ctl_minor_dir_lock("allocate", dir);
	if (dfd < 0) {
		free(dir);
		return dfd;
	}

	if (*devname) {
		/* A name asked for (-d): it must be one of our markers. */
		base = strrchr(*devname, '/');
		m = allocate_parse_minor(base ? base + 1 : *devname);
		if (m < 0) {
			tap_ctl_error("allocate: %s: not of the form %s/%sN with N below %d",
				      *devname, dir, BLKTAP2_MINOR_PREFIX, MAX_ID);
			err = -EINVAL;
			goto out;
		}
	} else {
		/* The minors of tapdisks that died attached are free again. */
		tap_ctl_reclaim_stale(dfd);
		m = allocate_find_free(dfd);
		if (m < 0) {
			err = m;
			tap_ctl_error("allocate: no free minor in %s: %s", dir, strerror(-err));
			goto out;
		}
	}

	name = tap_ctl_minor_name(m);
	if (!name) {
		err = -ENOMEM;
		tap_ctl_error("allocate: out of memory");
		goto out;
	}
	fd = open(name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		err = -errno;
		tap_ctl_error("allocate: %s: %s", name,
			      errno == EEXIST ? "minor already allocated" : strerror(errno));
		goto out;
	}
	close(fd);

	*minor = m;
	if (!*devname) {
		*devname = name;
		name = NULL;
	}
	err = 0;
out:
	free(name);
	close(dfd); /* drops the lock */
	free(dir);
	return err;
}

/*
 * Whether the tapdisk behind a disk's xenstore nodes still runs.  The nodes outlive their
 * tapdisk (a kill -9 leaves them as they were), so status must not show a dead process's last
 * words as its state.  The disk's `pid` node names the process and its `boot-id` node (the
 * tapdisk writes it when it binds) the host: only a process of this host, in this boot, can be
 * looked at; any other is "?".
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "colo-controller.h"

#define CTL_BOOT_ID_PATH "/proc/sys/kernel/random/boot_id"

/* The first line of @path, without its newline; false if it cannot be read. */
static bool read_line(const char *path, char *buf, size_t size)
{
	FILE *f = fopen(path, "re");
	bool ok;

	if (!f)
		return false;
	ok = fgets(buf, (int)size, f) != NULL;
	fclose(f);
	if (ok)
		buf[strcspn(buf, "\n")] = '\0';
	return ok;
}

static bool parse_pid(const char *s, pid_t *pid)
{
	char *end;
	long v;

	if (!s || *s < '1' || *s > '9')
		return false;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v > INT_MAX)
		return false;
	*pid = (pid_t)v;
	return true;
}

enum ctl_alive ctl_tapdisk_alive(const char *pid_node, const char *boot_id_node)
{
	char ours[64], path[64], comm[64];
	pid_t pid;

	if (!parse_pid(pid_node, &pid) || !boot_id_node || !read_line(CTL_BOOT_ID_PATH, ours,
								   sizeof(ours)))
		return CTL_ALIVE_UNKNOWN;
	if (strcmp(ours, boot_id_node))
		return CTL_ALIVE_UNKNOWN; /* another host, or this one before a reboot */
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	if (read_line(path, comm, sizeof(comm)))
		/* The pid of a dead tapdisk may have gone to another program since. */
		return strncmp(comm, "tapdisk", 7) ? CTL_ALIVE_NO : CTL_ALIVE_YES;
	if (kill(pid, 0) && errno == ESRCH)
		return CTL_ALIVE_NO;
	return CTL_ALIVE_UNKNOWN;
}

const char *ctl_alive_name(enum ctl_alive alive)
{
	switch (alive) {
	case CTL_ALIVE_YES:
		return "yes";
	case CTL_ALIVE_NO:
		return "no";
	default:
		return "?";
	}
}

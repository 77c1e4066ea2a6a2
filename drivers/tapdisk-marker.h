/*
 * The minor markers <control dir>/tapdisk/tapdisk-<minor>, blktap3's: tap-ctl allocate
 * creates one per minor, and the tapdisk that attaches the minor holds it flock'd until
 * detach, so that tap-ctl free refuses a minor in use.  Ours also writes its pid in it
 * while it holds it: a marker left unlocked with a pid in it belonged to a tapdisk that died
 * without detaching, whereas an empty one is allocated and not attached yet.  Linked into
 * tapdisk and libblktapctl.
 */
#ifndef _TAPDISK_MARKER_H_
#define _TAPDISK_MARKER_H_

#include <stddef.h>
#include <sys/types.h>

/* The marker's path, malloc'd, or NULL without memory. */
char *tapdisk_marker_path(int minor);

/*
 * tapdisk: opens and locks the marker of @minor and writes our pid in it.  Returns the fd to
 * keep while attached, or -errno with the reason in @why: -ENOENT when the minor is not
 * allocated, -EBUSY when another process holds it.
 */
int tapdisk_marker_hold(int minor, char *why, size_t why_size);
/* tapdisk: empties the marker and unlocks it (closes @fd). */
void tapdisk_marker_release(int fd);

/*
 * tap-ctl: opens and locks the marker at @path without waiting, as blktap3's free does.
 * *@pid gets the pid written in it (0 when none: not attached, or by blktap3's tapdisk).
 * Returns the fd (close it to unlock), -EAGAIN while a tapdisk holds it, or -errno.
 * Locked, and with a pid in it, the marker is stale: its tapdisk died attached.
 */
int tapdisk_marker_try_lock(const char *path, pid_t *pid);

#endif

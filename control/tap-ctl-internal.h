/* Private to libblktapctl: quiet I/O helpers and the one-line error report. */
#ifndef _TAP_CTL_INTERNAL_H_
#define _TAP_CTL_INTERNAL_H_

#include <stddef.h>
#include <sys/time.h>

#include "tap-ctl.h"
#include "tapdisk-message.h"

/* Replies to PID, ATTACH, LIST... come at once; a client waits this long for them. */
#define TAP_CTL_TIMEOUT 10
/* OPEN may scan a large image; blktap3 waits forever, we wait this long. */
#define TAP_CTL_OPEN_TIMEOUT 300
/* How long spawn waits for a new tapdisk to name its control socket. */
#define TAP_CTL_SPAWN_TIMEOUT 30

/* Prints "<program>: <fmt>\n" on stderr: the one line a failed call reports. */
void tap_ctl_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints only when tap_ctl_debug is set. */
void tap_ctl_dbg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Quiet versions: return 0 or -errno and print nothing.  @timeout is relative, NULL waits
 * forever, and is decreased by the time spent, so a sequence of calls shares one budget.
 * A peer that closes before @size bytes gives -ECONNRESET; no progress in time, -ETIMEDOUT.
 */
int __tap_ctl_connect(const char *path, int *fd);
int __tap_ctl_read_raw(int fd, void *buf, size_t size, struct timeval *timeout);
int __tap_ctl_write_raw(int fd, const void *buf, size_t size, struct timeval *timeout);

/*
 * Connects to tapdisk @id, sends @message and reads its reply into @message.  An ERROR
 * reply, a reply of another type than @rsp_type, or any I/O failure is reported as
 * "<program>: <verb>: <reason>" and returned as -errno.  With @fdp the socket is left open
 * there (for LIST and STATS, which send more), otherwise closed.
 */
int tap_ctl_request(const char *verb, int id, tapdisk_message_t *message, int rsp_type,
		    struct timeval *timeout, int *fdp);

/* PID request that prints nothing: for probing sockets that may be stale. */
pid_t __tap_ctl_get_pid(int id);

/* "<control dir>/tapdisk", where the minor markers live, and one marker's name. */
char *tap_ctl_minor_dir(void);
char *tap_ctl_minor_name(int minor);
/* Creates @dir if needed, opens and flocks it.  Returns the fd (close it to unlock) or -errno. */
int tap_ctl_minor_dir_lock(const char *verb, const char *dir);

/*
 * Unlinks what tapdisks killed while attached left behind (tap-ctl-stale.c).  @locked_dfd is
 * the minor directory when the caller holds its lock, or -1.  Never fails.
 */
void tap_ctl_reclaim_stale(int locked_dfd);

/* Splits "type:/path" into two malloc'd strings.  Returns 0 or -EINVAL / -ENOMEM. */
int tap_ctl_split_params(const char *params, char **type, char **path);

#endif

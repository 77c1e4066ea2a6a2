/*
 * Logging for tapdisk and its drivers: to syslog (falling back to stderr when no syslog daemon
 * listens), stderr or a file, and a copy on stderr with tapdisk -D.
 */
#ifndef _TAPDISK_LOG_H_
#define _TAPDISK_LOG_H_

#include <stdarg.h>

#define TLOG_WARN 0
#define TLOG_INFO 1
#define TLOG_DBG 2

#define TLOG_TO_SYSLOG 0
#define TLOG_TO_STDERR 1
#define TLOG_TO_FILE 2

/* "syslog", "stderr" or "file:/absolute/path", before tlog_open; -EINVAL for anything else. */
int tlog_set_target(const char *spec);
int tlog_target(void);
/* The path of a TLOG_TO_FILE target. */
const char *tlog_file(void);
/* "warning", "info" or "debug": the TLOG_* level, or -EINVAL. */
int tlog_parse_level(const char *name);
/* Opens the target (creates the file); 0 or -errno. */
int tlog_open(const char *name, int facility, int level);
/* Whether lines may go to stderr: its target, or the fallback of syslog. */
int tlog_uses_stderr(void);
/* 0: never write to stderr (a daemon's pipe, whose reader would wait for our exit). */
void tlog_set_stderr_usable(int usable);
void tlog_close(void);
/* A copy of each line on stderr too (tapdisk -D). */
void tlog_set_stderr(int on);

/*
 * The minor of the VBD that the calling thread works for (-1: none), which starts each line;
 * returns the previous one.  The scheduler gives an event's callbacks the minor in force
 * when it was registered.
 */
int tlog_set_vbd(int minor);
int tlog_vbd(void);

void tlog_syslog(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void tlog_error(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * The last warning logged by the calling thread, so that the control plane can hand the one
 * clear message written where an error happened back to tap-ctl without reporting it twice.
 * Another thread's warnings (the xenstore thread's) never show here.
 */
void tlog_clear_last_error(void);
const char *tlog_last_error(void);

struct td_driver_handle;
/* Rate-limited per driver, so a failing disk cannot flood the log. */
void tlog_drv_error(struct td_driver_handle *drv, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define DPRINTF(_f, _a...) tlog_syslog(TLOG_INFO, _f, ##_a)
#define EPRINTF(_f, _a...) tlog_syslog(TLOG_WARN, "tap-err:%s: " _f, __func__, ##_a)
#define PERROR(_f, _a...) EPRINTF(_f ": %s", ##_a, strerror(errno))

#endif

/* Logging for tapdisk and its drivers: syslog, and stderr while attached to a terminal or -D. */
#ifndef _TAPDISK_LOG_H_
#define _TAPDISK_LOG_H_

#include <stdarg.h>

#define TLOG_WARN 0
#define TLOG_INFO 1
#define TLOG_DBG 2

int tlog_open(const char *name, int facility, int level);
void tlog_close(void);
void tlog_set_stderr(int on);
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

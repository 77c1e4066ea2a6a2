/*
 * tapdisk logging: syslog always, stderr too while tapdisk runs in the foreground.
 *
 * Any thread may log: the settings below are written before the xenstore thread starts, and
 * syslog(3) and stdio lock around each line.  The last warning is per thread, so that the
 * xenstore thread's warnings never become the reason of a control request that failed in the
 * main loop.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "tapdisk-driver.h"
#include "tapdisk-log.h"

static struct {
	int opened;
	int to_stderr;
	int level;
	char ident[64];
} tlog = { .to_stderr = 1, .level = TLOG_INFO };

static __thread char tlog_last[256];

void tlog_clear_last_error(void)
{
	tlog_last[0] = '\0';
}

const char *tlog_last_error(void)
{
	return tlog_last;
}

int tlog_open(const char *name, int facility, int level)
{
	snprintf(tlog.ident, sizeof(tlog.ident), "%s[%d]", name, getpid());
	openlog(tlog.ident, LOG_NDELAY, facility);
	tlog.opened = 1;
	tlog.level = level;
	return 0;
}

void tlog_close(void)
{
	if (tlog.opened)
		closelog();
	tlog.opened = 0;
}

void tlog_set_stderr(int on)
{
	tlog.to_stderr = on;
}

static void tlog_vlog(int level, const char *fmt, va_list ap)
{
	static const int prio[] = { LOG_WARNING, LOG_INFO, LOG_DEBUG };
	char msg[1024];

	if (level > tlog.level && level != TLOG_WARN)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (level == TLOG_WARN) {
		/* Users get the message without EPRINTF's "tap-err:function: " prefix. */
		const char *text = msg;

		if (!strncmp(text, "tap-err:", 8) && strstr(text + 8, ": "))
			text = strstr(text + 8, ": ") + 2;
		snprintf(tlog_last, sizeof(tlog_last), "%.255s", text);
	}
	if (tlog.opened)
		syslog(prio[level < 0 ? 0 : level > 2 ? 2 : level], "%s", msg);
	if (tlog.to_stderr)
		fprintf(stderr, "%s: %s\n", tlog.ident[0] ? tlog.ident : "tapdisk", msg);
}

void tlog_syslog(int level, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	tlog_vlog(level, fmt, ap);
	va_end(ap);
	errno = saved;
}

void tlog_error(int err, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	tlog_syslog(TLOG_WARN, "%s: %s", msg, strerror(err < 0 ? -err : err));
}

void tlog_drv_error(struct td_driver_handle *drv, int err, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (drv && !tapdisk_loglimit_pass(&drv->loglimit))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	tlog_syslog(TLOG_WARN, "%s: %s: %s", drv && drv->name ? drv->name : "driver", msg,
		    strerror(err < 0 ? -err : err));
}

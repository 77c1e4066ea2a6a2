/*
 * tapdisk logging: one target (syslog, stderr or a file), a level, and stderr too while
 * tapdisk runs with -D.
 *
 * Each line carries "tapdisk[pid]" and, when it concerns one VBD, "minor N": the minor is a
 * per-thread context that the control plane sets around a request, the scheduler restores
 * around the callbacks of events registered under it, and a driver handle keeps from its
 * open.  Syslog is spoken here rather than through syslog(3), which drops a line in silence
 * when nothing listens on /dev/log: a line that no syslog daemon takes goes to stderr.  On
 * stderr under systemd (JOURNAL_STREAM names our stderr) each line starts with sd-daemon's
 * "<N>", so the journal keeps its priority.
 *
 * Any thread may log: the settings are written before the xenstore thread starts, each line
 * is one write(2), and the syslog socket is reconnected under a lock.  The last warning and
 * the minor are per thread, so that the xenstore thread's warnings never become the reason
 * of a control request that failed in the main loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "tapdisk-driver.h"
#include "tapdisk-log.h"

static struct {
	int opened;	   /* tlog_open ran: until then only the stderr copy, if on */
	int target;	   /* TLOG_TO_* */
	int also_stderr;   /* -D: a copy of each line on stderr */
	int stderr_usable; /* 0: a daemon's pipe, never written (tlog_set_stderr_usable) */
	int journal;	   /* stderr is the journal's stream: "<N>" prefixes */
	int level;
	int facility;
	int file_fd;	   /* TLOG_TO_FILE */
	int syslog_fd;	   /* -1: not connected */
	int syslog_missed; /* the last line found no syslog daemon */
	char ident[64];
	char file[256];
	pthread_mutex_t syslog_lock;
} tlog = {
	.target = TLOG_TO_SYSLOG,
	.also_stderr = 1,
	.stderr_usable = 1,
	.level = TLOG_INFO,
	.facility = LOG_DAEMON,
	.file_fd = -1,
	.syslog_fd = -1,
	.syslog_lock = PTHREAD_MUTEX_INITIALIZER,
};

static __thread char tlog_last[256];
static __thread int tlog_minor = -1;

void tlog_clear_last_error(void)
{
	tlog_last[0] = '\0';
}

const char *tlog_last_error(void)
{
	return tlog_last;
}

int tlog_set_vbd(int minor)
{
	int prev = tlog_minor;

	tlog_minor = minor;
	return prev;
}

int tlog_vbd(void)
{
	return tlog_minor;
}

int tlog_parse_level(const char *name)
{
	if (!strcmp(name, "warning"))
		return TLOG_WARN;
	if (!strcmp(name, "info"))
		return TLOG_INFO;
	if (!strcmp(name, "debug"))
		return TLOG_DBG;
	return -EINVAL;
}

int tlog_set_target(const char *spec)
{
	if (!strcmp(spec, "syslog")) {
		tlog.target = TLOG_TO_SYSLOG;
	} else if (!strcmp(spec, "stderr")) {
		tlog.target = TLOG_TO_STDERR;
	} else if (!strncmp(spec, "file:", 5) && spec[5] == '/' &&
		   strlen(spec + 5) < sizeof(tlog.file)) {
		tlog.target = TLOG_TO_FILE;
		strcpy(tlog.file, spec + 5);
	} else {
		return -EINVAL;
	}
	return 0;
}

int tlog_target(void)
{
	return tlog.target;
}

const char *tlog_file(void)
{
	return tlog.file;
}

/* The syslog socket: $TAPDISK_SYSLOG_SOCKET lets a test stand in for /dev/log. */
static const char *tlog_syslog_path(void)
{
	const char *path = getenv("TAPDISK_SYSLOG_SOCKET");

	return path && path[0] ? path : _PATH_LOG;
}

/* Called with syslog_lock held. */
static int tlog_syslog_connect(void)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	const char *path = tlog_syslog_path();
	int fd;

	if (tlog.syslog_fd >= 0)
		return 0;
	if (strlen(path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun))) {
		int err = -errno;

		close(fd);
		return err;
	}
	tlog.syslog_fd = fd;
	return 0;
}

/* Whether journald reads our stderr: JOURNAL_STREAM is "device:inode" of that stream. */
static int tlog_stderr_is_journal(void)
{
	const char *env = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (!env || sscanf(env, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st))
		return 0;
	return st.st_dev == dev && st.st_ino == ino;
}

int tlog_open(const char *name, int facility, int level)
{
	snprintf(tlog.ident, sizeof(tlog.ident), "%s[%d]", name, getpid());
	tlog.facility = facility;
	tlog.level = level;
	tlog.journal = tlog_stderr_is_journal();
	tlog.opened = 1;
	if (tlog.target == TLOG_TO_FILE) {
		tlog.file_fd = open(tlog.file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
		if (tlog.file_fd < 0)
			return -errno;
	}
	if (tlog.target == TLOG_TO_SYSLOG) {
		pthread_mutex_lock(&tlog.syslog_lock);
		tlog.syslog_missed = tlog_syslog_connect() < 0;
		pthread_mutex_unlock(&tlog.syslog_lock);
	}
	return 0;
}

int tlog_uses_stderr(void)
{
	return tlog.stderr_usable && tlog.target != TLOG_TO_FILE;
}

void tlog_set_stderr_usable(int usable)
{
	tlog.stderr_usable = usable;
}

void tlog_close(void)
{
	tlog.opened = 0;
	if (tlog.file_fd >= 0)
		close(tlog.file_fd);
	tlog.file_fd = -1;
	if (tlog.syslog_fd >= 0)
		close(tlog.syslog_fd);
	tlog.syslog_fd = -1;
}

void tlog_set_stderr(int on)
{
	tlog.also_stderr = on;
}

static void tlog_write(int fd, const char *line, int len)
{
	/* One write per line, so that lines of several threads never interleave. */
	while (len > 0) {
		ssize_t n = write(fd, line, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		line += n;
		len -= n;
	}
}

static void tlog_to_stderr(int prio, const char *body)
{
	char line[1200];
	int len;

	if (tlog.journal)
		len = snprintf(line, sizeof(line), "<%d>%s: %s\n", prio, tlog.ident, body);
	else
		len = snprintf(line, sizeof(line), "%s: %s\n", tlog.ident, body);
	tlog_write(STDERR_FILENO, line, len < (int)sizeof(line) ? len : (int)sizeof(line) - 1);
}

static void tlog_to_file(const char *body)
{
	char line[1200], stamp[40];
	struct timespec ts;
	struct tm tm;
	int len;

	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	len = snprintf(line, sizeof(line), "%s.%03ld %s: %s\n", stamp, ts.tv_nsec / 1000000,
		       tlog.ident, body);
	tlog_write(tlog.file_fd, line, len < (int)sizeof(line) ? len : (int)sizeof(line) - 1);
}

/* Returns 0 once a syslog daemon took the line, -1 when none did. */
static int tlog_to_syslog(int prio, const char *body)
{
	char line[1200], stamp[32];
	time_t now = time(NULL);
	struct tm tm;
	int len, tries, sent = -1;

	localtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%b %e %H:%M:%S", &tm);
	len = snprintf(line, sizeof(line), "<%d>%s %s: %s", tlog.facility | prio, stamp, tlog.ident,
		       body);
	if (len >= (int)sizeof(line))
		len = sizeof(line) - 1;
	pthread_mutex_lock(&tlog.syslog_lock);
	/* A syslog daemon that restarted left our socket dead: connect again, once. */
	for (tries = 0; tries < 2 && sent < 0; tries++) {
		if (tlog_syslog_connect())
			break;
		if (send(tlog.syslog_fd, line, len, MSG_NOSIGNAL) == len) {
			sent = 0;
		} else {
			close(tlog.syslog_fd);
			tlog.syslog_fd = -1;
		}
	}
	tlog.syslog_missed = sent < 0;
	pthread_mutex_unlock(&tlog.syslog_lock);
	return sent;
}

static void tlog_vlog(int level, const char *fmt, va_list ap)
{
	static const int prio[] = {LOG_WARNING, LOG_INFO, LOG_DEBUG};
	int p = prio[level < 0 ? 0 : level > 2 ? 2 : level];
	char msg[1024], body[1100];
	int on_stderr = 0;

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
	if (!tlog.ident[0])
		snprintf(tlog.ident, sizeof(tlog.ident), "tapdisk");
	if (tlog_minor >= 0)
		snprintf(body, sizeof(body), "minor %d: %s", tlog_minor, msg);
	else
		snprintf(body, sizeof(body), "%s", msg);

	switch (tlog.opened ? tlog.target : -1) {
	case -1:
		break; /* a unit test, or after tlog_close: the stderr copy only */
	case TLOG_TO_FILE:
		tlog_to_file(body);
		break;
	case TLOG_TO_SYSLOG:
		/* A line no syslog daemon takes is never lost: stderr has it. */
		on_stderr = tlog_to_syslog(p, body) < 0;
		break;
	default:
		on_stderr = 1;
	}
	if ((on_stderr || tlog.also_stderr) && tlog.stderr_usable)
		tlog_to_stderr(p, body);
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
	int prev;

	if (drv && !tapdisk_loglimit_pass(&drv->loglimit))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* A driver's completion runs outside any request of its VBD: the handle knows it. */
	prev = tlog_set_vbd(drv && drv->log_minor >= 0 ? drv->log_minor : tlog_minor);
	tlog_syslog(TLOG_WARN, "%s: %s: %s", drv && drv->name ? drv->name : "driver", msg,
		    strerror(err < 0 ? -err : err));
	tlog_set_vbd(prev);
}

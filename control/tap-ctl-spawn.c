/*
 * spawn: start a tapdisk and learn its pid.  tapdisk runs with its stdout on a pipe,
 * daemonises, and prints "<control dir>/ctl<pid>"; the parent process then exits 0 (or
 * non-zero when start-up failed).  We read that line and check the socket answers.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "blktap.h"
#include "tap-ctl-internal.h"
#include "tap-ctl.h"

#ifndef TAPDISK_EXEC
#define TAPDISK_EXEC "tapdisk"
#endif
#ifndef TAPDISK_EXECDIR
#define TAPDISK_EXECDIR "/usr/libexec"
#endif

/* $TAPDISK, for tests and side-by-side builds, else the installed one. */
static const char *spawn_tapdisk_path(void)
{
	const char *path = getenv("TAPDISK");

	return path && path[0] ? path : TAPDISK_EXECDIR "/" TAPDISK_EXEC;
}

static pid_t spawn_child(const char *tapdisk, int *readfd)
{
	int channel[2];
	pid_t child;
	int err;

	if (pipe2(channel, O_CLOEXEC)) {
		err = -errno;
		tap_ctl_error("spawn: pipe: %s", strerror(errno));
		return err;
	}
	child = fork();
	if (child < 0) {
		err = -errno;
		tap_ctl_error("spawn: fork: %s", strerror(errno));
		close(channel[0]);
		close(channel[1]);
		return err;
	}
	if (child) {
		close(channel[1]);
		*readfd = channel[0];
		return child;
	}

	/* Child.  stderr stays ours, so tapdisk's start-up errors reach the user. */
	if (dup2(channel[1], STDOUT_FILENO) < 0)
		_exit(127);
	/*
	 * Nothing else of ours lives on in tapdisk: a hotplug script's lock file held open
	 * across "tap-ctl spawn" would otherwise stay locked as long as the tapdisk runs.
	 */
	close_range(3, ~0U, 0);
	signal(SIGPIPE, SIG_DFL);
	if (strchr(tapdisk, '/'))
		execl(tapdisk, tapdisk, (char *)NULL);
	else
		execlp(tapdisk, tapdisk, (char *)NULL);
	/* The parent reports it: one line, from the process the user ran. */
	_exit(127);
}

/*
 * Reads tapdisk's stdout until a line ending in "/ctl<n>" arrives (returns n), EOF (-ENOENT)
 * or the deadline (-ETIMEDOUT).
 */
static int spawn_read_id(int fd)
{
	struct timeval timeout = { .tv_sec = TAP_CTL_SPAWN_TIMEOUT };
	char buf[1024];
	size_t len = 0;
	char *line, *nl, *name, *end;
	long id;
	int err;

	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;

		/* One byte at a time is fine for one short line, and never reads past it. */
		err = poll(&pfd, 1, timeout.tv_sec * 1000);
		if (err < 0 && errno == EINTR)
			continue;
		if (err == 0)
			return -ETIMEDOUT;
		if (err < 0)
			return -errno;
		n = read(fd, buf + len, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ENOENT;
		len += n;
		if (buf[len - 1] != '\n' && len < sizeof(buf) - 1)
			continue;

		buf[len - (buf[len - 1] == '\n')] = '\0';
		line = buf;
		len = 0;
		nl = strrchr(line, '/');
		name = nl ? nl + 1 : line;
		if (strncmp(name, BLKTAP2_CONTROL_SOCKET, strlen(BLKTAP2_CONTROL_SOCKET)))
			continue;
		name += strlen(BLKTAP2_CONTROL_SOCKET);
		if (*name < '0' || *name > '9')
			continue;
		id = strtol(name, &end, 10);
		if (*end || id <= 0 || id > INT32_MAX)
			continue;
		return id;
	}
}

/*
 * Reaps the launcher process, waiting up to @wait_ms (-1: forever).  Returns 0, or -errno
 * when tapdisk reported failure.
 */
static int spawn_wait(pid_t child, const char *tapdisk, int wait_ms)
{
	struct timespec nap = { .tv_nsec = 10 * 1000 * 1000 };
	int status;
	pid_t pid;

	for (;;) {
		pid = waitpid(child, &status, wait_ms < 0 ? 0 : WNOHANG);
		if (pid < 0 && errno == EINTR)
			continue;
		if (pid != 0 || wait_ms <= 0)
			break;
		nanosleep(&nap, NULL);
		wait_ms -= 10;
	}
	if (pid <= 0)
		return 0; /* it did not daemonise (tapdisk -D) and still runs */
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
		if (strchr(tapdisk, '/') && access(tapdisk, X_OK))
			tap_ctl_error("spawn: cannot execute %s: %s", tapdisk, strerror(errno));
		else
			tap_ctl_error("spawn: cannot execute %s", tapdisk);
		return -ENOEXEC;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status)) {
		tap_ctl_error("spawn: %s failed to start (exit status %d)", tapdisk,
			      WEXITSTATUS(status));
		return -EIO;
	}
	if (WIFSIGNALED(status)) {
		tap_ctl_error("spawn: %s killed by signal %d (%s)", tapdisk, WTERMSIG(status),
			      strsignal(WTERMSIG(status)));
		return -EINTR;
	}
	return 0;
}

int tap_ctl_spawn(void)
{
	const char *tapdisk = spawn_tapdisk_path();
	int readfd = -1, id, err;
	pid_t child, pid;

	child = spawn_child(tapdisk, &readfd);
	if (child < 0)
		return child;

	id = spawn_read_id(readfd);
	close(readfd);

	if (id < 0) {
		/* EOF: the launcher exited; its status says why. */
		err = id == -ENOENT ? spawn_wait(child, tapdisk, -1) : 0;
		if (err)
			return err;
		if (id == -ETIMEDOUT) {
			kill(child, SIGTERM);
			spawn_wait(child, tapdisk, -1);
			tap_ctl_error("spawn: %s did not report its control socket within %d s",
				      tapdisk, TAP_CTL_SPAWN_TIMEOUT);
		} else {
			tap_ctl_error("spawn: %s exited without reporting its control socket",
				      tapdisk);
		}
		return id == -ETIMEDOUT ? -ETIMEDOUT : -EPROTO;
	}

	/* The launcher exits right after the daemon printed: reap it, so no zombie is left. */
	err = spawn_wait(child, tapdisk, 2000);
	if (err)
		return err;

	pid = __tap_ctl_get_pid(id);
	if (pid < 0) {
		tap_ctl_error("spawn: tapdisk %d does not answer on its control socket: %s", id,
			      strerror(-pid));
		return pid;
	}
	tap_ctl_dbg("spawned tapdisk %d", pid);
	return id;
}

/*
 * tapdisk: serves the VBDs that tap-ctl attaches to it.
 *
 * Started by `tap-ctl spawn`: it daemonises, opens its control socket and prints the
 * socket's path on stdout, which is how tap-ctl learns its pid.  -D keeps it in the
 * foreground with logs on stderr.  -l and -L (or $TAPDISK_LOG and $TAPDISK_LOG_LEVEL, which
 * reach a tapdisk that tap-ctl spawns) choose where it logs and how much.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "blktap.h"
#include "tapdisk-control.h"
#include "tapdisk-log.h"
#include "tapdisk-server.h"

static void usage(FILE *out, const char *prog)
{
	fprintf(out,
		"usage: %s [-D] [-c control-dir] [-l syslog|stderr|file:PATH]\n"
		"       [-L warning|info|debug] [-h]\n"
		"Serves the VBDs that tap-ctl attaches to it; prints its control socket's path.\n"
		"  -D, --foreground   stay in the foreground and log to stderr too\n"
		"  -c, --control-dir  control directory, an absolute path (default $%s or %s)\n"
		"  -l, --log          where to log (default $TAPDISK_LOG or syslog)\n"
		"  -L, --log-level    the least important lines logged (default $TAPDISK_LOG_LEVEL\n"
		"                     or info)\n"
		"  -h, --help         print this and exit\n",
		prog, BLKTAP_CONTROL_DIR_ENV, BLKTAP2_CONTROL_DIR);
}

static const struct option long_options[] = {
	{ "foreground", no_argument, NULL, 'D' },
	{ "control-dir", required_argument, NULL, 'c' },
	{ "log", required_argument, NULL, 'l' },
	{ "log-level", required_argument, NULL, 'L' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static void redirect(int fd, int flags)
{
	int null = open("/dev/null", flags);

	if (null >= 0) {
		dup2(null, fd);
		if (null != fd)
			close(null);
	}
}

/* Forks; the parent exits at once, and tap-ctl reads the child's line from the pipe. */
static int daemonize(void)
{
	pid_t pid = fork();

	if (pid < 0) {
		fprintf(stderr, "tapdisk: fork: %s\n", strerror(errno));
		return -1;
	}
	if (pid > 0)
		_exit(0);
	setsid();
	if (chdir("/"))
		return -1;
	redirect(STDIN_FILENO, O_RDONLY);
	return 0;
}

/* -l and -L, or the environment that tap-ctl passes on; returns 0 or 2 (usage error). */
static int log_options(const char *target, const char *level, int *tlevel)
{
	if (!target)
		target = getenv("TAPDISK_LOG");
	if (!level)
		level = getenv("TAPDISK_LOG_LEVEL");
	if (target && target[0] && tlog_set_target(target)) {
		fprintf(stderr, "tapdisk: log target '%s' is not syslog, stderr or file:/path\n",
			target);
		return 2;
	}
	*tlevel = TLOG_INFO;
	if (level && level[0] && (*tlevel = tlog_parse_level(level)) < 0) {
		fprintf(stderr, "tapdisk: log level '%s' is not warning, info or debug\n", level);
		return 2;
	}
	return 0;
}

/*
 * A daemon's stderr is still its spawner's.  It keeps it when lines may go there (-l stderr,
 * or -l syslog, for the lines no syslog daemon takes), unless it is a pipe: whoever reads a
 * pipe (a shell's $(tap-ctl create 2>&1)) waits for its end, and would wait as long as the
 * tapdisk runs, and would get our lines mixed with tap-ctl's one line of error.
 */
static int stderr_is_pipe(void)
{
	struct stat st;

	return !fstat(STDERR_FILENO, &st) && S_ISFIFO(st.st_mode);
}

int main(int argc, char **argv)
{
	int foreground = 0, c, err, level;
	const char *log_target = NULL, *log_level = NULL;
	char *control = NULL, why[PATH_MAX + 64];

	/*
	 * Request-sized buffers (up to 32 MiB: forwarded writes, received frames) come and go
	 * at disk speed: keep them in the heap for reuse instead of an mmap, page faults and a
	 * munmap each.  Large long-lived memory (the colo buffer's chunks) is mmapped directly.
	 */
	mallopt(M_MMAP_THRESHOLD, 32 << 20);
	mallopt(M_TRIM_THRESHOLD, 256 << 20);

	while ((c = getopt_long(argc, argv, "Dc:l:L:h", long_options, NULL)) != -1) {
		switch (c) {
		case 'D':
			foreground = 1;
			break;
		case 'c':
			if (optarg[0] != '/') {
				fprintf(stderr, "tapdisk: -c needs an absolute path\n");
				return 2;
			}
			setenv(BLKTAP_CONTROL_DIR_ENV, optarg, 1);
			break;
		case 'l':
			log_target = optarg;
			break;
		case 'L':
			log_level = optarg;
			break;
		case 'h':
			usage(stdout, argv[0]);
			return 0;
		default:
			usage(stderr, argv[0]);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr, argv[0]);
		return 2;
	}
	if (blktap_control_dir_check(why, sizeof(why))) {
		fprintf(stderr, "tapdisk: %s\n", why);
		return 2;
	}
	if (log_options(log_target, log_level, &level))
		return 2;

	if (!foreground && daemonize())
		return 1;

	err = tlog_open("tapdisk", LOG_DAEMON, level);
	if (err) {
		/* Only a file can fail to open. */
		fprintf(stderr, "tapdisk: %s: cannot open the log: %s\n", tlog_file(),
			strerror(-err));
		return 1;
	}
	/* A daemon's stderr is still tap-ctl's until it detaches: no copy there. */
	tlog_set_stderr(foreground);
	if (!foreground && stderr_is_pipe())
		tlog_set_stderr_usable(0);
	err = tapdisk_server_init();
	if (!err)
		err = tapdisk_control_open(&control);
	if (err) {
		fprintf(stderr, "tapdisk: cannot start: %s\n", strerror(-err));
		return 1;
	}

	printf("%s\n", control);
	fflush(stdout);
	if (!foreground) {
		redirect(STDOUT_FILENO, O_WRONLY);
		if (!tlog_uses_stderr())
			redirect(STDERR_FILENO, O_WRONLY);
	}

	err = tapdisk_server_run();
	tapdisk_control_close();
	free(control);
	tlog_close();
	return err ? 1 : 0;
}

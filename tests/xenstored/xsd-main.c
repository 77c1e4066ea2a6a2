/*
 * colo-test-xenstored: options, the listening socket, signals and the poll loop.
 *
 * Each round reads what clients sent, handles every complete request, saves the tree if it
 * changed, and only then sends the replies: a client that saw "OK" finds its write after a
 * kill -9 and restart.
 */
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "xsd.h"

#define PROG "colo-test-xenstored"

static FILE *trace_fp;
static volatile sig_atomic_t stop_signal;

bool xsd_tracing(void)
{
	return trace_fp != NULL;
}

void xsd_trace(const char *fmt, ...)
{
	va_list ap;

	if (!trace_fp)
		return;
	va_start(ap, fmt);
	vfprintf(trace_fp, fmt, ap);
	va_end(ap);
}

void xsd_log(const char *fmt, ...)
{
	va_list ap;
	int saved = errno;

	fputs(PROG ": ", stderr);
	va_start(ap, fmt);
	errno = saved;
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (trace_fp) {
		fputs("LOG ", trace_fp);
		va_start(ap, fmt);
		errno = saved;
		vfprintf(trace_fp, fmt, ap);
		va_end(ap);
		fputc('\n', trace_fp);
	}
}

struct options {
	const char *socket;
	const char *pid_file;
	const char *state;
	const char *trace;
};

static void usage(FILE *f)
{
	fprintf(f, "usage: " PROG " --socket PATH [--state FILE] [--pid-file FILE] "
		   "[--trace FILE] [-F]\n");
}

static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "pid-file", required_argument, NULL, 'p' },
		{ "state", required_argument, NULL, 'S' },
		{ "trace", required_argument, NULL, 'T' },
		{ "foreground", no_argument, NULL, 'F' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":s:Fh", longopts, NULL)) != -1) {
		switch (opt) {
		case 's':
			o->socket = optarg;
			break;
		case 'p':
			o->pid_file = optarg;
			break;
		case 'S':
			o->state = optarg;
			break;
		case 'T':
			o->trace = optarg;
			break;
		case 'F':
			/* Always in the foreground: tests start it with &. */
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case ':':
			fprintf(stderr, PROG ": option %s needs an argument\n", argv[optind - 1]);
			return -1;
		default:
			fprintf(stderr, PROG ": unknown option %s\n", argv[optind - 1]);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, PROG ": unexpected argument %s\n", argv[optind]);
		return -1;
	}
	if (!o->socket) {
		fprintf(stderr, PROG ": --socket PATH is required\n");
		return -1;
	}
	return 0;
}

static int listen_socket(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char tmp[sizeof(sa.sun_path)];
	struct stat st;
	mode_t old;
	int fd, probe;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		xsd_log("socket path too long: %s", path);
		return -1;
	}
	strcpy(sa.sun_path, path);
	/* A socket left by a killed daemon is replaced; one that answers is not. */
	if (!lstat(path, &st) && S_ISSOCK(st.st_mode)) {
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe >= 0 && !connect(probe, (struct sockaddr *)&sa, sizeof(sa))) {
			close(probe);
			xsd_log("%s: a daemon already listens there", path);
			return -1;
		}
		if (probe >= 0)
			close(probe);
		unlink(path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		xsd_log("socket: %m");
		return -1;
	}
	/*
	 * Bound under a temporary name and renamed once listening: a client that sees the
	 * socket can connect to it (between bind and listen it would be refused).
	 */
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(sa.sun_path)) {
		xsd_log("%s: path too long", path);
		close(fd);
		return -1;
	}
	unlink(tmp);
	strcpy(sa.sun_path, tmp);
	old = umask(0177);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 128) ||
	    chmod(tmp, 0600) || rename(tmp, path)) {
		umask(old);
		xsd_log("%s: %m", path);
		unlink(tmp);
		close(fd);
		return -1;
	}
	umask(old);
	return fd;
}

static void on_signal(int sig)
{
	stop_signal = sig;
}

static void accept_all(int lfd)
{
	int fd;

	while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		if (!xsd_conn_new(fd))
			close(fd);
	}
}

/* A complete request waits in c's buffer and may be handled now. */
static bool has_request(const struct xsd_conn *c)
{
	struct xsd_sockmsg h;

	if (!xsd_conn_wants_input(c) || c->in_used < XSD_HDR_SIZE)
		return false;
	memcpy(&h, c->in, XSD_HDR_SIZE);
	return h.len > XENSTORE_PAYLOAD_MAX || c->in_used >= XSD_HDR_SIZE + h.len;
}

static int run(int lfd, const sigset_t *waitmask)
{
	struct pollfd *fds = NULL;
	struct xsd_conn **conns = NULL, *c, *next;
	size_t cap = 0, n, i;
	int timeout = -1;
	struct timespec ts, *tsp;

	while (!stop_signal) {
		n = 1;
		for (c = xsd_conns; c; c = c->next)
			n++;
		if (n > cap) {
			cap = n * 2;
			fds = realloc(fds, cap * sizeof(*fds));
			conns = realloc(conns, cap * sizeof(*conns));
			if (!fds || !conns) {
				xsd_log("out of memory");
				return -1;
			}
		}
		fds[0] = (struct pollfd){ .fd = lfd, .events = POLLIN };
		for (i = 1, c = xsd_conns; c; c = c->next, i++) {
			conns[i] = c;
			fds[i] = (struct pollfd){ .fd = c->fd };
			if (xsd_conn_wants_input(c))
				fds[i].events |= POLLIN;
			if (c->out_head)
				fds[i].events |= POLLOUT;
		}
		ts = (struct timespec){ 0, 0 };
		tsp = timeout ? NULL : &ts;
		if (ppoll(fds, n, tsp, waitmask) < 0) {
			if (errno == EINTR)
				continue;
			xsd_log("poll: %m");
			return -1;
		}
		if (fds[0].revents & POLLIN)
			accept_all(lfd);
		for (i = 1; i < n; i++)
			if (fds[i].revents & (POLLIN | POLLHUP | POLLERR))
				xsd_conn_input(conns[i]);
		for (c = xsd_conns; c; c = c->next)
			xsd_conn_process(c);
		/* On disk before any reply of this round goes out. */
		xsd_state_sync();
		timeout = -1;
		for (c = xsd_conns; c; c = next) {
			next = c->next;
			xsd_conn_flush(c);
			if (c->closing)
				xsd_conn_free(c);
			else if (has_request(c))
				timeout = 0;
		}
	}
	free(fds);
	free(conns);
	return 0;
}

static int write_pid_file(const char *path)
{
	FILE *f = fopen(path, "w");

	if (!f || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f)) {
		xsd_log("cannot write the pid file %s: %m", path);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct options o = { 0 };
	struct sigaction sa = { .sa_handler = on_signal };
	sigset_t block, waitmask;
	int lfd, rc = 1;

	if (parse_options(argc, argv, &o))
		return 2;
	if (o.trace) {
		trace_fp = fopen(o.trace, "a");
		if (!trace_fp) {
			fprintf(stderr, PROG ": cannot open the trace %s: %m\n", o.trace);
			return 1;
		}
		setvbuf(trace_fp, NULL, _IOLBF, 0);
	}

	/* Signals are only taken inside ppoll, so none is lost between checks. */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGHUP);
	sigprocmask(SIG_BLOCK, &block, &waitmask);
	sigdelset(&waitmask, SIGTERM);
	sigdelset(&waitmask, SIGINT);
	sigdelset(&waitmask, SIGHUP);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* The socket first: a second daemon on the same socket must not touch the state. */
	lfd = listen_socket(o.socket);
	if (lfd < 0)
		goto out_trace;
	if (o.state) {
		if (xsd_state_open(o.state))
			goto out_tree;
	} else {
		xsd_tree_init_default();
	}
	if (o.pid_file && write_pid_file(o.pid_file))
		goto out_tree;

	if (!run(lfd, &waitmask))
		rc = 0;
	while (xsd_conns)
		xsd_conn_free(xsd_conns);
	if (o.pid_file)
		unlink(o.pid_file);
out_tree:
	xsd_state_close();
	xsd_tree_free();
	close(lfd);
	unlink(o.socket);
out_trace:
	if (trace_fp)
		fclose(trace_fp);
	return rc;
}

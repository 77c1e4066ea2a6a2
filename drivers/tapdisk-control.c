/*
 * The control socket <control dir>/ctl<pid>.
 *
 * A client sends one fixed-size tapdisk_message_t and reads one or more replies; it may then
 * send another request on the same connection.  Everything runs in the event loop, so
 * nothing here may block: sockets are non-blocking, a request must arrive within
 * CONTROL_REQUEST_TIMEOUT, and replies are buffered and flushed on WRITE_FD events.
 *
 * The handler (tapdisk_control_handle_message) knows nothing of sockets: it writes to a reply
 * sink, which is how the fuzzer drives it.  docs/control-protocol.md describes the messages.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "blktap.h"
#include "tapdisk-control-internal.h"
#include "tapdisk-log.h"
#include "tapdisk-server.h"
#include "timeout-math.h"

/* A client has this long to send a whole request, and to read a reply once it is queued. */
#define CONTROL_REQUEST_TIMEOUT 10
#define CONTROL_REPLY_TIMEOUT 30

/* More clients than this at once is a runaway script, not a toolstack. */
#define CONTROL_MAX_CONNECTIONS 64

/* STATS text plus a few messages; anything bigger is a bug, and the client is dropped. */
#define CONTROL_MAX_OUTPUT (TAPDISK_MESSAGE_STATS_MAX + 64 * sizeof(tapdisk_message_t))


/* -------------------------------------------------------------------------------------- */
/* Connections                                                                            */

struct control_conn {
	struct tapdisk_control_reply reply;
	int fd;
	event_id_t in_event;
	event_id_t out_event;
	event_id_t hup_event; /* watches for a hangup while a request is handled */
	struct timespec deadline; /* of the request being read, or of the reply being written */

	tapdisk_message_t req;
	size_t req_len;

	char *out;
	size_t out_head, out_len, out_cap;

	int busy; /* a request is being handled: its complete() has not run */
	/*
	 * The request's handler is running: a complete() or close from inside it (a reply that
	 * cannot be sent) leaves the freeing to the reader, which looks at @conn afterwards.
	 */
	int dispatching, dead;
	int after;
	struct list_head entry;
};

static struct {
	int fd;
	char *path;
	event_id_t event;
	struct list_head conns;
	int n_conns;
} td_control = {
	.fd = -1,
	.conns = LIST_HEAD_INIT(td_control.conns),
};

static void control_deadline_set(struct timespec *ts, int secs)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += secs;
}

static int control_deadline_passed(const struct timespec *ts)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > ts->tv_sec || (now.tv_sec == ts->tv_sec && now.tv_nsec >= ts->tv_nsec);
}

static void control_conn_free(struct control_conn *conn)
{
	if (conn->dispatching) {
		conn->dead = 1;
		return;
	}
	free(conn->out);
	free(conn);
}

/* Drops the client.  A request still being handled keeps @conn alive until it completes. */
static void control_conn_close(struct control_conn *conn)
{
	if (conn->in_event > 0)
		tapdisk_server_unregister_event(conn->in_event);
	if (conn->out_event > 0)
		tapdisk_server_unregister_event(conn->out_event);
	if (conn->hup_event > 0)
		tapdisk_server_unregister_event(conn->hup_event);
	conn->in_event = conn->out_event = conn->hup_event = 0;
	if (conn->fd >= 0) {
		close(conn->fd);
		conn->fd = -1;
		list_del(&conn->entry);
		td_control.n_conns--;
	}
	if (!conn->busy)
		control_conn_free(conn);
}

static void control_conn_read_event(event_id_t id, char mode, void *private);

/* Waits for the next request. */
static int control_conn_read_start(struct control_conn *conn)
{
	event_id_t id;

	conn->req_len = 0;
	control_deadline_set(&conn->deadline, CONTROL_REQUEST_TIMEOUT);
	id = tapdisk_server_register_event(SCHEDULER_POLL_READ_FD | SCHEDULER_POLL_TIMEOUT,
					   conn->fd, TV_SECS(CONTROL_REQUEST_TIMEOUT),
					   control_conn_read_event, conn);
	if (id < 0) {
		EPRINTF("cannot register control connection: %s", strerror(-id));
		return id;
	}
	conn->in_event = id;
	return 0;
}

/* The request's replies are all out: do what it asked for afterwards, then read the next. */
static void control_conn_request_done(struct control_conn *conn)
{
	int after = conn->after;

	conn->after = 0;
	if (after & TAPDISK_CONTROL_AFTER_SHUTDOWN)
		tapdisk_server_request_shutdown();
	else if ((after & TAPDISK_CONTROL_AFTER_SHUTDOWN_IF_IDLE) &&
		 list_empty(tapdisk_server_get_all_vbds()))
		tapdisk_server_request_shutdown();

	if ((after & TAPDISK_CONTROL_AFTER_CLOSE) || control_conn_read_start(conn))
		control_conn_close(conn);
}

static void control_conn_write_event(event_id_t id, char mode, void *private);

/* Writes what the socket takes.  Returns 0 or -errno (then the caller closes). */
static int control_conn_flush(struct control_conn *conn)
{
	ssize_t n;

	while (conn->out_head < conn->out_len) {
		n = send(conn->fd, conn->out + conn->out_head, conn->out_len - conn->out_head,
			 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			EPRINTF("control client gone while replying: %s", strerror(errno));
			return -errno;
		}
		conn->out_head += n;
	}

	if (conn->out_head < conn->out_len) {
		if (conn->out_event <= 0) {
			event_id_t id = tapdisk_server_register_event(
				SCHEDULER_POLL_WRITE_FD | SCHEDULER_POLL_TIMEOUT, conn->fd,
				TV_SECS(CONTROL_REPLY_TIMEOUT), control_conn_write_event, conn);
			if (id < 0) {
				EPRINTF("cannot register control reply: %s", strerror(-id));
				return id;
			}
			conn->out_event = id;
			control_deadline_set(&conn->deadline, CONTROL_REPLY_TIMEOUT);
		}
		return 0;
	}

	conn->out_head = conn->out_len = 0;
	if (conn->out_event > 0) {
		tapdisk_server_unregister_event(conn->out_event);
		conn->out_event = 0;
	}
	return 0;
}

static void control_conn_write_event(event_id_t id, char mode, void *private)
{
	struct control_conn *conn = private;
	size_t before = conn->out_head;

	if (control_conn_flush(conn)) {
		control_conn_close(conn);
		return;
	}
	if (conn->out_head > before)
		control_deadline_set(&conn->deadline, CONTROL_REPLY_TIMEOUT);
	else if ((mode & SCHEDULER_POLL_TIMEOUT) && control_deadline_passed(&conn->deadline)) {
		EPRINTF("control client does not read its reply: dropped");
		control_conn_close(conn);
		return;
	}
	if (!conn->out_len && !conn->busy)
		control_conn_request_done(conn);
}

static int control_conn_send(struct tapdisk_control_reply *reply, const void *buf, size_t len)
{
	struct control_conn *conn = container_of_list(reply, struct control_conn, reply);
	size_t need;
	char *out;

	if (conn->fd < 0)
		return -EPIPE;

	need = conn->out_len + len;
	if (need > CONTROL_MAX_OUTPUT) {
		EPRINTF("control reply of %zu bytes exceeds %zu: client dropped", need,
			(size_t)CONTROL_MAX_OUTPUT);
		control_conn_close(conn);
		return -ENOBUFS;
	}
	if (need > conn->out_cap) {
		out = realloc(conn->out, need);
		if (!out) {
			EPRINTF("out of memory for a control reply: client dropped");
			control_conn_close(conn);
			return -ENOMEM;
		}
		conn->out = out;
		conn->out_cap = need;
	}
	memcpy(conn->out + conn->out_len, buf, len);
	conn->out_len += len;

	if (control_conn_flush(conn)) {
		control_conn_close(conn);
		return -EPIPE;
	}
	return 0;
}

static void control_conn_complete(struct tapdisk_control_reply *reply, int after)
{
	struct control_conn *conn = container_of_list(reply, struct control_conn, reply);

	conn->busy = 0;
	conn->reply.hangup = NULL;
	if (conn->hup_event > 0)
		tapdisk_server_unregister_event(conn->hup_event);
	conn->hup_event = 0;
	if (conn->fd < 0) {
		/* The client left while we waited for the VBD. */
		control_conn_free(conn);
		return;
	}
	conn->after |= after;
	if (!conn->out_len)
		control_conn_request_done(conn);
}

/*
 * The client of a waiting request hung up (tap-ctl interrupted, a toolstack that gave up):
 * the request is withdrawn, so that it does not act later for nobody.
 */
static void control_conn_hangup_event(event_id_t id, char mode, void *private)
{
	struct control_conn *conn = private;
	void (*hangup)(struct tapdisk_control_reply *, void *) = conn->reply.hangup;
	void *arg = conn->reply.hangup_arg;
	char byte;
	ssize_t n;

	n = recv(conn->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	if (n > 0) {
		/* The next request came early: it waits, and so does the hangup check. */
		tapdisk_server_unregister_event(conn->hup_event);
		conn->hup_event = 0;
		return;
	}
	DPRINTF("control client hung up before its reply: the request is withdrawn");
	conn->reply.hangup = NULL;
	/* @conn lives until complete(), which the withdrawn request still calls. */
	control_conn_close(conn);
	if (hangup)
		hangup(&conn->reply, arg);
}

static void control_conn_watch_hangup(struct control_conn *conn)
{
	event_id_t id = tapdisk_server_register_event(SCHEDULER_POLL_READ_FD, conn->fd, TV_ZERO,
						      control_conn_hangup_event, conn);

	if (id < 0)
		EPRINTF("cannot watch the control client for a hangup: %s", strerror(-id));
	else
		conn->hup_event = id;
}

static void control_conn_read_event(event_id_t id, char mode, void *private)
{
	struct control_conn *conn = private;
	ssize_t n;

	if (control_deadline_passed(&conn->deadline)) {
		EPRINTF("no complete control request within %d s (%zu of %zu bytes): dropped",
			CONTROL_REQUEST_TIMEOUT, conn->req_len, sizeof(conn->req));
		control_conn_close(conn);
		return;
	}
	if (!(mode & SCHEDULER_POLL_READ_FD))
		return;

	n = recv(conn->fd, (char *)&conn->req + conn->req_len, sizeof(conn->req) - conn->req_len,
		 MSG_DONTWAIT);
	if (n < 0) {
		if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		EPRINTF("control connection read failed: %s", strerror(errno));
		control_conn_close(conn);
		return;
	}
	if (n == 0) {
		/* Hanging up between requests is how a client says goodbye. */
		if (conn->req_len)
			EPRINTF("control client hung up after %zu of %zu bytes of a request",
				conn->req_len, sizeof(conn->req));
		control_conn_close(conn);
		return;
	}
	conn->req_len += n;
	if (conn->req_len < sizeof(conn->req))
		return;

	/* One request at a time per connection: stop reading until it completes. */
	tapdisk_server_unregister_event(conn->in_event);
	conn->in_event = 0;
	conn->busy = 1;
	conn->dispatching = 1;
	tapdisk_control_handle_message(&conn->req, &conn->reply);
	conn->dispatching = 0;
	if (conn->dead) {
		control_conn_free(conn);
		return;
	}
	if (conn->busy && conn->reply.hangup)
		control_conn_watch_hangup(conn);
}

/* Only root and our own user may drive tapdisk. */
static int control_peer_allowed(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len)) {
		EPRINTF("cannot get control client credentials: %s", strerror(errno));
		return 0;
	}
	if (cred.uid != 0 && cred.uid != geteuid()) {
		EPRINTF("refused control client pid %d uid %u: not root or uid %u", cred.pid,
			cred.uid, geteuid());
		return 0;
	}
	return 1;
}

static void control_accept_one(int fd)
{
	struct control_conn *conn;

	if (!control_peer_allowed(fd))
		goto fail;
	if (td_control.n_conns >= CONTROL_MAX_CONNECTIONS) {
		EPRINTF("more than %d control clients: connection refused",
			CONTROL_MAX_CONNECTIONS);
		goto fail;
	}
	conn = calloc(1, sizeof(*conn));
	if (!conn) {
		EPRINTF("out of memory for a control connection");
		goto fail;
	}
	conn->fd = fd;
	conn->reply.send = control_conn_send;
	conn->reply.complete = control_conn_complete;
	list_add_tail(&conn->entry, &td_control.conns);
	td_control.n_conns++;
	if (control_conn_read_start(conn))
		control_conn_close(conn);
	return;

fail:
	close(fd);
}

static void control_accept_event(event_id_t id, char mode, void *private)
{
	int fd;

	for (;;) {
		fd = accept4(td_control.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				EPRINTF("accept on %s failed: %s", td_control.path,
					strerror(errno));
			return;
		}
		control_accept_one(fd);
	}
}

/* -------------------------------------------------------------------------------------- */
/* The listening socket                                                                   */

/* mkdir -p; directories we create are 0700, since the sockets in them control disks. */
static int control_mkdir_p(const char *dir)
{
	char path[PATH_MAX];
	struct stat st;
	char *p;

	if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path)) {
		EPRINTF("control directory %s: name too long", dir);
		return -ENAMETOOLONG;
	}
	for (p = path + 1;; p++) {
		if (*p != '/' && *p)
			continue;
		char c = *p;

		*p = '\0';
		if (mkdir(path, 0700) && errno != EEXIST) {
			int err = -errno;

			EPRINTF("cannot create %s: %s", path, strerror(errno));
			return err;
		}
		*p = c;
		if (!c)
			break;
	}
	if (stat(path, &st) || !S_ISDIR(st.st_mode)) {
		EPRINTF("control directory %s is not a directory", path);
		return -ENOTDIR;
	}
	return 0;
}

int tapdisk_control_open(char **path)
{
	const char *dir = blktap_control_dir();
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	mode_t mask;
	char why[PATH_MAX + 64];
	int fd, err;
	event_id_t id;

	if (td_control.fd >= 0)
		return -EALREADY;
	err = blktap_control_dir_check(why, sizeof(why));
	if (err) {
		EPRINTF("%s", why);
		return err;
	}

	err = control_mkdir_p(dir);
	if (err)
		return err;

	if (snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/%s%d", dir,
		     BLKTAP2_CONTROL_SOCKET, getpid()) >= (int)sizeof(addr.sun_path)) {
		EPRINTF("control socket path %s/%s%d is too long for a Unix socket", dir,
			BLKTAP2_CONTROL_SOCKET, getpid());
		return -ENAMETOOLONG;
	}

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		err = -errno;
		EPRINTF("cannot create control socket: %s", strerror(errno));
		return err;
	}

	/* A file with our pid in its name can only be left over from a dead process. */
	unlink(addr.sun_path);

	/* Created 0600 from the start, so no other user can connect in between. */
	mask = umask(0177);
	err = bind(fd, (struct sockaddr *)&addr, sizeof(addr));
	umask(mask);
	if (err) {
		err = -errno;
		EPRINTF("cannot bind control socket %s: %s", addr.sun_path, strerror(errno));
		goto fail;
	}
	if (listen(fd, 32)) {
		err = -errno;
		EPRINTF("cannot listen on control socket %s: %s", addr.sun_path, strerror(errno));
		goto fail_unlink;
	}

	td_control.path = strdup(addr.sun_path);
	*path = strdup(addr.sun_path);
	if (!td_control.path || !*path) {
		err = -ENOMEM;
		EPRINTF("out of memory");
		goto fail_free;
	}

	td_control.fd = fd;
	id = tapdisk_server_register_event(SCHEDULER_POLL_READ_FD, fd, TV_ZERO,
					   control_accept_event, NULL);
	if (id < 0) {
		err = id;
		td_control.fd = -1;
		EPRINTF("cannot register control socket: %s", strerror(-id));
		goto fail_free;
	}
	td_control.event = id;
	DPRINTF("control socket %s", addr.sun_path);
	return 0;

fail_free:
	free(td_control.path);
	td_control.path = NULL;
	free(*path);
	*path = NULL;
fail_unlink:
	unlink(addr.sun_path);
fail:
	close(fd);
	return err;
}

void tapdisk_control_close(void)
{
	struct control_conn *conn, *next;

	list_for_each_entry_safe(conn, next, &td_control.conns, entry)
		control_conn_close(conn);

	if (td_control.event > 0)
		tapdisk_server_unregister_event(td_control.event);
	td_control.event = 0;
	if (td_control.fd >= 0) {
		close(td_control.fd);
		td_control.fd = -1;
	}
	if (td_control.path) {
		unlink(td_control.path);
		free(td_control.path);
		td_control.path = NULL;
	}
}

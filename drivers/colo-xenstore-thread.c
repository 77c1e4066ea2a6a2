/*
 * The one thread of tapdisk that talks to xenstore (see colo-xenstore.h).
 *
 * libxenstore's calls block until xenstored answers.  A stopped or restarting xenstored must
 * not stall guest I/O or the replication link, so all of them run here, and tapdisk's loop
 * only queues work and reads events.  The thread connects (retrying every second), registers
 * two watches per bound VBD, reads the nodes whose watches fire, and writes node values; a
 * lost connection is logged once, then the thread reconnects, watches again and rewrites
 * every value it was given.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <xenstore.h>
#include <xenstore_lib.h>

#include "colo-command.h"
#include "colo-xenstore.h"
#include "tapdisk-log.h"

#define COLO_XS_RETRY_MS 1000
/* How often an idle connection is checked: libxenstore does not wake us when it drops. */
#define COLO_XS_PROBE_MS 500
#define COLO_XS_PROBE_PATH "/local/domain/0"

enum colo_xs_op_type { COLO_XS_OP_BIND, COLO_XS_OP_UNBIND };

struct colo_xs_op {
	struct list_head next;
	enum colo_xs_op_type type;
	unsigned int binding;
	char *dom_dir, *disk_dir;
};

/* A bound VBD as the thread knows it. */
struct colo_xs_watched {
	struct list_head next;
	unsigned int binding;
	char *dom_dir, *disk_dir;
	char *request_path, *threshold_path;
};

/* The latest value given for a node; @dirty until xenstore has it. */
struct colo_xs_node {
	struct list_head next;
	char *path, *value;
	bool dirty;
};

static struct {
	pthread_mutex_t lock;
	bool started;
	int wake_fd;  /* tapdisk's loop -> thread */
	int event_fd; /* thread -> tapdisk's loop */
	/* Under @lock: */
	struct list_head ops, events, nodes;
	bool nodes_dirty;
	/* The thread's alone: */
	struct xs_handle *xs;
	struct list_head watched;
	bool ever_connected, reported_down;
} colo_xs = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.wake_fd = -1,
	.event_fd = -1,
};

static void colo_xs_kick(int fd)
{
	uint64_t one = 1;

	/* A full counter is still readable: nothing is lost if this fails. */
	if (write(fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		EPRINTF("colo xenstore: eventfd write: %s", strerror(errno));
}

static void colo_xs_drain(int fd)
{
	uint64_t n;

	while (read(fd, &n, sizeof(n)) > 0)
		;
}

/* ---- events, for tapdisk's loop ---- */

static void colo_xs_post(enum colo_xs_event_type type, unsigned int binding, int err, bool present,
			 uint64_t baseline, const char *text, size_t len)
{
	struct colo_xs_event *ev = calloc(1, sizeof(*ev));

	if (ev)
		ev->text = malloc(len + 1);
	if (!ev || !ev->text) {
		/* The next watch event or reconnection brings the node again. */
		EPRINTF("colo xenstore: out of memory for an event");
		free(ev);
		return;
	}
	memcpy(ev->text, text, len);
	ev->text[len] = '\0';
	ev->type = type;
	ev->binding = binding;
	ev->err = err;
	ev->present = present;
	ev->baseline = baseline;
	pthread_mutex_lock(&colo_xs.lock);
	list_add_tail(&ev->next, &colo_xs.events);
	pthread_mutex_unlock(&colo_xs.lock);
	colo_xs_kick(colo_xs.event_fd);
}

struct colo_xs_event *colo_xs_thread_next_event(void)
{
	struct colo_xs_event *ev = NULL;

	colo_xs_drain(colo_xs.event_fd);
	pthread_mutex_lock(&colo_xs.lock);
	if (!list_empty(&colo_xs.events)) {
		ev = list_first_entry(&colo_xs.events, struct colo_xs_event, next);
		list_del(&ev->next);
	}
	pthread_mutex_unlock(&colo_xs.lock);
	return ev;
}

void colo_xs_event_free(struct colo_xs_event *ev)
{
	if (ev) {
		free(ev->text);
		free(ev);
	}
}

/* ---- work from tapdisk's loop ---- */

static void colo_xs_queue_op(enum colo_xs_op_type type, unsigned int binding, const char *dom_dir,
			     const char *disk_dir)
{
	struct colo_xs_op *op = calloc(1, sizeof(*op));

	if (op && dom_dir) {
		op->dom_dir = strdup(dom_dir);
		op->disk_dir = strdup(disk_dir);
	}
	if (!op || (dom_dir && (!op->dom_dir || !op->disk_dir))) {
		EPRINTF("colo xenstore: out of memory; binding %u not %s", binding,
			type == COLO_XS_OP_BIND ? "bound" : "unbound");
		if (op) {
			free(op->dom_dir);
			free(op->disk_dir);
		}
		free(op);
		if (type == COLO_XS_OP_BIND)
			colo_xs_post(COLO_XS_EV_BOUND, binding, -ENOMEM, false, 0, "out of memory",
				     13);
		return;
	}
	op->type = type;
	op->binding = binding;
	pthread_mutex_lock(&colo_xs.lock);
	list_add_tail(&op->next, &colo_xs.ops);
	pthread_mutex_unlock(&colo_xs.lock);
	colo_xs_kick(colo_xs.wake_fd);
}

void colo_xs_thread_bind(unsigned int binding, const char *dom_dir, const char *disk_dir)
{
	colo_xs_queue_op(COLO_XS_OP_BIND, binding, dom_dir, disk_dir);
}

void colo_xs_thread_unbind(unsigned int binding)
{
	colo_xs_queue_op(COLO_XS_OP_UNBIND, binding, NULL, NULL);
}

void colo_xs_thread_write(const char *path, const char *value)
{
	struct colo_xs_node *n;
	char *v;

	pthread_mutex_lock(&colo_xs.lock);
	list_for_each_entry(n, &colo_xs.nodes, next) {
		if (strcmp(n->path, path))
			continue;
		if (!strcmp(n->value, value))
			goto out;
		v = strdup(value);
		if (!v)
			goto oom;
		free(n->value);
		n->value = v;
		goto dirty;
	}
	n = calloc(1, sizeof(*n));
	if (!n)
		goto oom;
	n->path = strdup(path);
	n->value = strdup(value);
	if (!n->path || !n->value) {
		free(n->path);
		free(n->value);
		free(n);
		goto oom;
	}
	list_add_tail(&n->next, &colo_xs.nodes);
dirty:
	n->dirty = true;
	colo_xs.nodes_dirty = true;
	pthread_mutex_unlock(&colo_xs.lock);
	colo_xs_kick(colo_xs.wake_fd);
	return;
oom:
	EPRINTF("colo xenstore: out of memory; %s not updated", path);
out:
	pthread_mutex_unlock(&colo_xs.lock);
}

void colo_xs_thread_forget(const char *dir)
{
	struct colo_xs_node *n, *tmp;
	size_t len = strlen(dir);

	pthread_mutex_lock(&colo_xs.lock);
	list_for_each_entry_safe(n, tmp, &colo_xs.nodes, next) {
		if (strncmp(n->path, dir, len) || (n->path[len] && n->path[len] != '/'))
			continue;
		list_del(&n->next);
		free(n->path);
		free(n->value);
		free(n);
	}
	pthread_mutex_unlock(&colo_xs.lock);
}

/* ---- the thread ---- */

static const char *colo_xs_socket(void)
{
	const char *path = getenv("XENSTORED_PATH");

	return path && path[0] ? path : xs_daemon_socket();
}

static void colo_xs_disconnect(const char *what)
{
	int err = errno;

	if (!colo_xs.xs)
		return;
	EPRINTF("colo xenstore: lost the connection to %s (%s: %s); retrying every %d ms",
		colo_xs_socket(), what, strerror(err), COLO_XS_RETRY_MS);
	xs_close(colo_xs.xs);
	colo_xs.xs = NULL;
	colo_xs.reported_down = true;
}

/* Watch tokens say which VBD and which node: "r<binding>" or "t<binding>". */
static bool colo_xs_watch_one(struct colo_xs_watched *w)
{
	char token[2][16];

	snprintf(token[0], sizeof(token[0]), "r%u", w->binding);
	snprintf(token[1], sizeof(token[1]), "t%u", w->binding);
	if (!xs_watch(colo_xs.xs, w->request_path, token[0]) ||
	    !xs_watch(colo_xs.xs, w->threshold_path, token[1])) {
		colo_xs_disconnect("watch");
		return false;
	}
	return true;
}

static void colo_xs_unwatch_one(struct colo_xs_watched *w)
{
	char token[2][16];

	if (!colo_xs.xs)
		return;
	snprintf(token[0], sizeof(token[0]), "r%u", w->binding);
	snprintf(token[1], sizeof(token[1]), "t%u", w->binding);
	/* A watch already gone (xenstored restarted) is no error. */
	if ((!xs_unwatch(colo_xs.xs, w->request_path, token[0]) && errno != ENOENT) ||
	    (!xs_unwatch(colo_xs.xs, w->threshold_path, token[1]) && errno != ENOENT))
		colo_xs_disconnect("unwatch");
}

static void colo_xs_mark_all_dirty(void)
{
	struct colo_xs_node *n;

	pthread_mutex_lock(&colo_xs.lock);
	list_for_each_entry(n, &colo_xs.nodes, next)
		n->dirty = true;
	colo_xs.nodes_dirty = true;
	pthread_mutex_unlock(&colo_xs.lock);
}

static bool colo_xs_connect(void)
{
	struct colo_xs_watched *w;

	if (colo_xs.xs)
		return true;
	colo_xs.xs = xs_open(0);
	if (!colo_xs.xs) {
		int err = errno;

		if (!colo_xs.reported_down)
			EPRINTF("colo xenstore: cannot connect to %s: %s; retrying every %d ms",
				colo_xs_socket(), strerror(err), COLO_XS_RETRY_MS);
		colo_xs.reported_down = true;
		errno = err;
		return false;
	}
	DPRINTF("colo xenstore: %s %s", colo_xs.ever_connected ? "reconnected to" : "connected to",
		colo_xs_socket());
	colo_xs.ever_connected = true;
	colo_xs.reported_down = false;
	/* Registering fires each watch once: a request written meanwhile is seen now. */
	list_for_each_entry(w, &colo_xs.watched, next)
		if (!colo_xs_watch_one(w))
			return false;
	colo_xs_mark_all_dirty();
	return true;
}

/* Reads @path: 1 and @val (malloc'd) if present, 0 if absent, -1 if the connection failed. */
static int colo_xs_read(const char *path, char **val, unsigned int *len)
{
	*val = xs_read(colo_xs.xs, XBT_NULL, path, len);
	if (*val)
		return 1;
	if (errno == ENOENT)
		return 0;
	colo_xs_disconnect(path);
	return -1;
}

static void colo_xs_post_node(enum colo_xs_event_type type, struct colo_xs_watched *w,
			      const char *path)
{
	unsigned int len = 0;
	char *val;
	int rc;

	rc = colo_xs_read(path, &val, &len);
	if (rc < 0)
		return; /* the watch fires again on reconnection */
	colo_xs_post(type, w->binding, 0, rc > 0, 0, rc > 0 ? val : "", rc > 0 ? len : 0);
	free(val);
}

/* The highest request id in the domain's request node and in the VBD's own result. */
static int colo_xs_baseline(struct colo_xs_watched *w, uint64_t *baseline)
{
	const char *paths[2] = { w->request_path, NULL };
	char result_path[600];
	unsigned int len, i;
	uint64_t id;
	char *val;
	int rc;

	snprintf(result_path, sizeof(result_path), "%s/result", w->disk_dir);
	paths[1] = result_path;
	*baseline = 0;
	for (i = 0; i < 2; i++) {
		rc = colo_xs_read(paths[i], &val, &len);
		if (rc < 0)
			return -1;
		if (!rc)
			continue;
		if (!colo_parse_u63(val, strcspn(val, " "), &id) && id > *baseline)
			*baseline = id;
		free(val);
	}
	return 0;
}

static void colo_xs_do_bind(struct colo_xs_op *op)
{
	struct colo_xs_watched *w;
	char why[300];
	uint64_t baseline;
	int tries, err = errno = 0;

	w = calloc(1, sizeof(*w));
	if (!w || asprintf(&w->request_path, "%s/request", op->dom_dir) < 0 ||
	    asprintf(&w->threshold_path, "%s/checkpoint-threshold", op->dom_dir) < 0) {
		if (w) {
			free(w->request_path);
			free(w);
		}
		colo_xs_post(COLO_XS_EV_BOUND, op->binding, -ENOMEM, false, 0, "out of memory", 13);
		return;
	}
	w->binding = op->binding;
	w->dom_dir = op->dom_dir;
	w->disk_dir = op->disk_dir;
	op->dom_dir = op->disk_dir = NULL;

	/* A connection that died unnoticed fails the first try; a fresh one gets a second. */
	for (tries = 0;; tries++) {
		if (!colo_xs_connect()) {
			err = errno ? -errno : -EIO;
			snprintf(why, sizeof(why), "cannot connect to xenstore at %s: %s",
				 colo_xs_socket(), strerror(-err));
			goto fail;
		}
		/* Requests already in xenstore are history for this VBD: read them first. */
		if (!colo_xs_baseline(w, &baseline) && colo_xs_watch_one(w))
			break;
		if (tries) {
			err = -EIO;
			snprintf(why, sizeof(why), "xenstore at %s failed while binding %s",
				 colo_xs_socket(), w->disk_dir);
			goto fail;
		}
	}
	list_add_tail(&w->next, &colo_xs.watched);
	colo_xs_post(COLO_XS_EV_BOUND, w->binding, 0, true, baseline, "", 0);
	return;
fail:
	colo_xs_post(COLO_XS_EV_BOUND, w->binding, err, false, 0, why, strlen(why));
	free(w->request_path);
	free(w->threshold_path);
	free(w->dom_dir);
	free(w->disk_dir);
	free(w);
}

static void colo_xs_do_unbind(unsigned int binding)
{
	struct colo_xs_watched *w, *tmp;

	list_for_each_entry_safe(w, tmp, &colo_xs.watched, next) {
		if (w->binding != binding)
			continue;
		list_del(&w->next);
		colo_xs_unwatch_one(w);
		free(w->request_path);
		free(w->threshold_path);
		free(w->dom_dir);
		free(w->disk_dir);
		free(w);
	}
}

static void colo_xs_run_ops(void)
{
	struct colo_xs_op *op, *tmp;
	LIST_HEAD(ops);

	pthread_mutex_lock(&colo_xs.lock);
	list_splice_tail_init(&colo_xs.ops, &ops);
	pthread_mutex_unlock(&colo_xs.lock);

	list_for_each_entry_safe(op, tmp, &ops, next) {
		list_del(&op->next);
		if (op->type == COLO_XS_OP_BIND)
			colo_xs_do_bind(op);
		else
			colo_xs_do_unbind(op->binding);
		free(op->dom_dir);
		free(op->disk_dir);
		free(op);
	}
}

static bool colo_xs_node_is_result(const struct colo_xs_node *n)
{
	size_t len = strlen(n->path);

	return len >= 7 && !strcmp(n->path + len - 7, "/result");
}

/*
 * The dirty node to write next: a result only once no other node is dirty, so that the state
 * nodes the loop set before a result are in xenstore before it (docs/xenstore.md).
 */
static struct colo_xs_node *colo_xs_next_dirty(void)
{
	struct colo_xs_node *n, *result = NULL;

	list_for_each_entry(n, &colo_xs.nodes, next) {
		if (!n->dirty)
			continue;
		if (!colo_xs_node_is_result(n))
			return n;
		if (!result)
			result = n;
	}
	return result;
}

/* Writes every dirty node; values are copied out so that the lock is not held meanwhile. */
static void colo_xs_write_nodes(void)
{
	struct colo_xs_node *n;
	char *path, *value;
	bool ok;

	for (;;) {
		path = value = NULL;
		pthread_mutex_lock(&colo_xs.lock);
		if (colo_xs.nodes_dirty) {
			n = colo_xs_next_dirty();
			if (n) {
				path = strdup(n->path);
				value = strdup(n->value);
				n->dirty = false;
			}
			if (!path && !value)
				colo_xs.nodes_dirty = false;
		}
		pthread_mutex_unlock(&colo_xs.lock);
		if (!path && !value)
			return;
		ok = path && value && xs_write(colo_xs.xs, XBT_NULL, path, value, strlen(value));
		if (!ok) {
			/* Dirty again, unless a newer value already replaced it. */
			pthread_mutex_lock(&colo_xs.lock);
			list_for_each_entry(n, &colo_xs.nodes, next)
				if (path && !strcmp(n->path, path))
					n->dirty = true;
			colo_xs.nodes_dirty = true;
			pthread_mutex_unlock(&colo_xs.lock);
			if (path && value)
				colo_xs_disconnect(path);
			else
				EPRINTF("colo xenstore: out of memory writing nodes");
			free(path);
			free(value);
			return;
		}
		free(path);
		free(value);
	}
}

static void colo_xs_run_watches(void)
{
	struct colo_xs_watched *w;
	unsigned int binding;
	char **vec, kind;

	while (colo_xs.xs && (vec = xs_check_watch(colo_xs.xs))) {
		kind = vec[XS_WATCH_TOKEN][0];
		binding = strtoul(vec[XS_WATCH_TOKEN] + 1, NULL, 10);
		free(vec);
		list_for_each_entry(w, &colo_xs.watched, next) {
			if (w->binding != binding)
				continue;
			if (kind == 'r')
				colo_xs_post_node(COLO_XS_EV_REQUEST, w, w->request_path);
			else if (kind == 't')
				colo_xs_post_node(COLO_XS_EV_THRESHOLD, w, w->threshold_path);
			break;
		}
	}
	if (colo_xs.xs && errno != EAGAIN)
		colo_xs_disconnect("reading watch events");
}

static void colo_xs_probe(void)
{
	unsigned int len;
	char *val;

	if (colo_xs_read(COLO_XS_PROBE_PATH, &val, &len) > 0)
		free(val);
}

static void *colo_xs_thread(void *arg)
{
	struct pollfd pfd[2];
	int n, rc;

	(void)arg;
	for (;;) {
		if (!list_empty(&colo_xs.watched))
			colo_xs_connect();
		colo_xs_run_ops();
		if (colo_xs.xs)
			colo_xs_write_nodes();

		pfd[0].fd = colo_xs.wake_fd;
		pfd[0].events = POLLIN;
		n = 1;
		if (colo_xs.xs) {
			pfd[1].fd = xs_fileno(colo_xs.xs);
			pfd[1].events = POLLIN;
			n = pfd[1].fd >= 0 ? 2 : 1;
		}
		rc = poll(pfd, n, colo_xs.xs ? COLO_XS_PROBE_MS : COLO_XS_RETRY_MS);
		if (rc < 0 && errno != EINTR) {
			EPRINTF("colo xenstore: poll: %s", strerror(errno));
			sleep(1);
			continue;
		}
		if (rc > 0 && (pfd[0].revents & POLLIN))
			colo_xs_drain(colo_xs.wake_fd);
		if (rc > 0 && n == 2 && pfd[1].revents)
			colo_xs_run_watches();
		if (rc == 0 && colo_xs.xs)
			colo_xs_probe();
	}
	return NULL;
}

int colo_xs_thread_start(void)
{
	pthread_t tid;
	sigset_t all, old;
	int err;

	if (colo_xs.started)
		return colo_xs.event_fd;
	INIT_LIST_HEAD(&colo_xs.ops);
	INIT_LIST_HEAD(&colo_xs.events);
	INIT_LIST_HEAD(&colo_xs.nodes);
	INIT_LIST_HEAD(&colo_xs.watched);
	colo_xs.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	colo_xs.event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (colo_xs.wake_fd < 0 || colo_xs.event_fd < 0) {
		err = -errno;
		EPRINTF("colo xenstore: eventfd: %s", strerror(errno));
		goto fail;
	}
	/*
	 * Never libxenstore's fallback to /dev/xen/xenbus: with xenstored gone, a request
	 * there blocks in the kernel for good (seen in a real dom0), and not even kill -9
	 * ends the process.  libxenstore 4.17 ignores XS_OPEN_SOCKETONLY, but falls back to
	 * XENSTORED_PATH itself when that is set: so it is pinned to the socket, once, before
	 * the thread exists.  XENSTORED_PATH=/dev/xen/xenbus still opens the device on purpose.
	 */
	if (!getenv("XENSTORED_PATH") && setenv("XENSTORED_PATH", xs_daemon_socket(), 1)) {
		err = -errno;
		EPRINTF("colo xenstore: setenv: %s", strerror(errno));
		goto fail;
	}
	/* Signals stay with tapdisk's loop. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = -pthread_create(&tid, NULL, colo_xs_thread, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		EPRINTF("colo xenstore: cannot start its thread: %s", strerror(-err));
		goto fail;
	}
	pthread_detach(tid);
	colo_xs.started = true;
	return colo_xs.event_fd;
fail:
	if (colo_xs.wake_fd >= 0)
		close(colo_xs.wake_fd);
	if (colo_xs.event_fd >= 0)
		close(colo_xs.event_fd);
	colo_xs.wake_fd = colo_xs.event_fd = -1;
	return err;
}

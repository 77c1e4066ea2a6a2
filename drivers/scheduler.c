/*
 * The tapdisk event loop: fd events through epoll, plus periodic timers.
 *
 * Several events may watch the same fd (a reader and a writer, say); epoll allows one
 * registration per fd, so each fd carries the union of its live, unmasked events' modes.
 * Events unregistered during a dispatch are only marked dead, and freed once no dispatch
 * is running, so a callback may unregister any event, including its own.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "tapdisk-scheduler.h"
#include "tapdisk-log.h"
#include "timeout-math.h"

struct event {
	event_id_t id;
	char mode;
	char pending;
	int masked;
	int dead;
	int fd;
	struct timeval timeout;
	long long deadline; /* usecs, CLOCK_MONOTONIC; LLONG_MAX for none */
	event_cb_t cb;
	void *private;
	int log_minor; /* the VBD its callbacks work for, in their log lines (tlog_set_vbd) */

	struct list_head next;       /* in scheduler.events */
	struct list_head timer_next; /* in scheduler.timers, or self */
	struct list_head fd_next;    /* in scheduler_fd.events, or self */
};

struct scheduler_fd {
	struct list_head events;
	uint32_t registered; /* epoll mask in force, 0: not in the epoll set */
};

static long long now_usecs(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

static void event_arm(struct event *ev)
{
	if (!(ev->mode & SCHEDULER_POLL_TIMEOUT) || TV_IS_INF(ev->timeout))
		ev->deadline = LLONG_MAX;
	else
		ev->deadline = now_usecs() + tv_to_usecs(ev->timeout);
}

static int scheduler_fd_grow(scheduler_t *s, int fd)
{
	int n = s->nfds ? s->nfds : 64;
	struct scheduler_fd **fds;

	while (n <= fd)
		n *= 2;
	/* An array of pointers, so the list heads never move when it grows. */
	fds = realloc(s->fds, n * sizeof(*fds));
	if (!fds)
		return -ENOMEM;
	memset(fds + s->nfds, 0, (n - s->nfds) * sizeof(*fds));
	s->fds = fds;
	s->nfds = n;
	return 0;
}

static struct scheduler_fd *scheduler_fd_get(scheduler_t *s, int fd)
{
	if (fd >= s->nfds && scheduler_fd_grow(s, fd))
		return NULL;
	if (!s->fds[fd]) {
		s->fds[fd] = calloc(1, sizeof(*s->fds[fd]));
		if (!s->fds[fd])
			return NULL;
		INIT_LIST_HEAD(&s->fds[fd]->events);
	}
	return s->fds[fd];
}

/* Brings the epoll registration of @fd in line with its live, unmasked events. */
static void scheduler_fd_update(scheduler_t *s, int fd)
{
	struct scheduler_fd *sfd = s->fds[fd];
	struct epoll_event ee = { 0 };
	struct event *ev;
	uint32_t want = 0;
	int op, err;

	list_for_each_entry(ev, &sfd->events, fd_next) {
		if (ev->dead || ev->masked)
			continue;
		if (ev->mode & SCHEDULER_POLL_READ_FD)
			want |= EPOLLIN | EPOLLRDHUP;
		if (ev->mode & SCHEDULER_POLL_WRITE_FD)
			want |= EPOLLOUT;
		if (ev->mode & SCHEDULER_POLL_EXCEPT_FD)
			want |= EPOLLPRI;
	}
	if (want == sfd->registered)
		return;

	ee.events = want;
	ee.data.fd = fd;
	if (!want)
		op = EPOLL_CTL_DEL;
	else
		op = sfd->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;

	err = epoll_ctl(s->epfd, op, fd, &ee);
	if (err && errno == EEXIST)
		err = epoll_ctl(s->epfd, EPOLL_CTL_MOD, fd, &ee);
	else if (err && errno == ENOENT && op == EPOLL_CTL_MOD)
		err = epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ee);
	if (err && op != EPOLL_CTL_DEL)
		EPRINTF("epoll_ctl(fd %d, mask %#x): %s", fd, want, strerror(errno));
	sfd->registered = err && op != EPOLL_CTL_DEL ? 0 : want;
}

int scheduler_initialize(scheduler_t *s)
{
	memset(s, 0, sizeof(*s));
	INIT_LIST_HEAD(&s->events);
	INIT_LIST_HEAD(&s->timers);
	s->max_timeout = SCHEDULER_MAX_TIMEOUT;
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (s->epfd < 0) {
		int err = -errno;

		EPRINTF("epoll_create1: %s", strerror(errno));
		return err;
	}
	return 0;
}

static void event_free(scheduler_t *s, struct event *ev)
{
	list_del(&ev->next);
	list_del(&ev->timer_next);
	list_del(&ev->fd_next);
	free(ev);
}

void scheduler_destroy(scheduler_t *s)
{
	struct event *ev, *tmp;

	list_for_each_entry_safe(ev, tmp, &s->events, next)
		event_free(s, ev);
	for (int i = 0; i < s->nfds; i++)
		free(s->fds[i]);
	free(s->fds);
	s->fds = NULL;
	s->nfds = 0;
	if (s->epfd >= 0)
		close(s->epfd);
	s->epfd = -1;
}

static struct event *scheduler_find(scheduler_t *s, event_id_t id)
{
	struct event *ev;

	list_for_each_entry(ev, &s->events, next)
		if (ev->id == id && !ev->dead)
			return ev;
	return NULL;
}

event_id_t scheduler_register_event(scheduler_t *s, char mode, int fd, struct timeval timeout,
				    event_cb_t cb, void *private)
{
	struct event *ev;

	if (!cb)
		return -EINVAL;
	if (!(mode & (SCHEDULER_POLL_TIMEOUT | SCHEDULER_POLL_FD)))
		return -EINVAL;
	if ((mode & SCHEDULER_POLL_FD) && fd < 0)
		return -EBADF;
	if ((mode & SCHEDULER_POLL_FD) && !scheduler_fd_get(s, fd))
		return -ENOMEM;

	ev = calloc(1, sizeof(*ev));
	if (!ev)
		return -ENOMEM;

	/* Ids stay positive and are not reused while an old one could still be alive. */
	do {
		s->uuid = s->uuid == INT32_MAX ? 1 : s->uuid + 1;
	} while (scheduler_find(s, s->uuid));

	ev->id = s->uuid;
	ev->mode = mode;
	ev->fd = (mode & SCHEDULER_POLL_FD) ? fd : -1;
	ev->timeout = timeout;
	ev->cb = cb;
	ev->private = private;
	ev->log_minor = tlog_vbd();
	INIT_LIST_HEAD(&ev->timer_next);
	INIT_LIST_HEAD(&ev->fd_next);
	list_add_tail(&ev->next, &s->events);
	event_arm(ev);
	if (ev->deadline != LLONG_MAX)
		list_add_tail(&ev->timer_next, &s->timers);
	if (ev->fd >= 0) {
		list_add_tail(&ev->fd_next, &s->fds[fd]->events);
		scheduler_fd_update(s, fd);
	}
	return ev->id;
}

void scheduler_unregister_event(scheduler_t *s, event_id_t id)
{
	struct event *ev;

	if (!id)
		return;
	ev = scheduler_find(s, id);
	if (!ev)
		return;
	ev->dead = 1;
	s->dead++;
	/* Leave the epoll set now: the caller may close the fd right after this. */
	if (ev->fd >= 0)
		scheduler_fd_update(s, ev->fd);
}

void scheduler_mask_event(scheduler_t *s, event_id_t id, int masked)
{
	struct event *ev = scheduler_find(s, id);

	if (!ev || ev->masked == !!masked)
		return;
	ev->masked = !!masked;
	if (!masked)
		event_arm(ev);
	if (ev->fd >= 0)
		scheduler_fd_update(s, ev->fd);
}

int scheduler_event_set_timeout(scheduler_t *s, event_id_t id, struct timeval timeout)
{
	struct event *ev = scheduler_find(s, id);

	if (!ev)
		return -ENOENT;
	if (!(ev->mode & SCHEDULER_POLL_TIMEOUT))
		return -EINVAL;
	ev->timeout = timeout;
	event_arm(ev);
	list_del(&ev->timer_next);
	if (ev->deadline != LLONG_MAX)
		list_add_tail(&ev->timer_next, &s->timers);
	return 0;
}

void scheduler_set_max_timeout(scheduler_t *s, int seconds)
{
	if (seconds > 0 && seconds < s->max_timeout)
		s->max_timeout = seconds;
}

int scheduler_event_count(const scheduler_t *s)
{
	const struct event *ev;
	int n = 0;

	list_for_each_entry(ev, &s->events, next)
		n += !ev->dead;
	return n;
}

static void scheduler_gc(scheduler_t *s)
{
	struct event *ev, *tmp;

	if (s->depth || !s->dead)
		return;
	list_for_each_entry_safe(ev, tmp, &s->events, next)
		if (ev->dead)
			event_free(s, ev);
	s->dead = 0;
}

/* Milliseconds until the first timer is due, bounded by the max timeout and @cap_ms. */
static int scheduler_next_wait(scheduler_t *s, int cap_ms)
{
	long long first = LLONG_MAX, now, wait;
	struct event *ev;
	int ms = s->max_timeout * 1000;

	if (cap_ms >= 0 && cap_ms < ms)
		ms = cap_ms;
	list_for_each_entry(ev, &s->timers, timer_next)
		if (!ev->dead && !ev->masked && ev->deadline < first)
			first = ev->deadline;
	if (first == LLONG_MAX)
		return ms;
	now = now_usecs();
	wait = first <= now ? 0 : (first - now + 999) / 1000;
	return wait < ms ? (int)wait : ms;
}

static int scheduler_run_pending(scheduler_t *s)
{
	struct event *ev;
	int ran = 0, minor = tlog_vbd();

	/* New events go to the tail and start with no pending bits, so this walk is safe. */
	list_for_each_entry(ev, &s->events, next) {
		char mode = ev->pending;

		if (!mode)
			continue;
		ev->pending = 0;
		if (ev->dead || ev->masked)
			continue;
		event_arm(ev);
		tlog_set_vbd(ev->log_minor);
		ev->cb(ev->id, mode, ev->private);
		ran++;
	}
	tlog_set_vbd(minor);
	return ran;
}

int scheduler_wait_for_events(scheduler_t *s, int max_wait_ms)
{
	struct epoll_event ees[128];
	struct event *ev;
	long long now;
	int n, ran;

	n = epoll_wait(s->epfd, ees, sizeof(ees) / sizeof(ees[0]), scheduler_next_wait(s, max_wait_ms));
	if (n < 0) {
		if (errno == EINTR)
			return 0;
		EPRINTF("epoll_wait: %s", strerror(errno));
		return -errno;
	}

	for (int i = 0; i < n; i++) {
		int fd = ees[i].data.fd;
		uint32_t got = ees[i].events;

		if (fd < 0 || fd >= s->nfds || !s->fds[fd])
			continue;
		list_for_each_entry(ev, &s->fds[fd]->events, fd_next) {
			if (ev->dead || ev->masked)
				continue;
			/* Errors and hangups wake readers and writers alike, so they see them. */
			if ((ev->mode & SCHEDULER_POLL_READ_FD) &&
			    (got & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
				ev->pending |= SCHEDULER_POLL_READ_FD;
			if ((ev->mode & SCHEDULER_POLL_WRITE_FD) && (got & (EPOLLOUT | EPOLLHUP | EPOLLERR)))
				ev->pending |= SCHEDULER_POLL_WRITE_FD;
			if ((ev->mode & SCHEDULER_POLL_EXCEPT_FD) && (got & EPOLLPRI))
				ev->pending |= SCHEDULER_POLL_EXCEPT_FD;
		}
	}

	now = now_usecs();
	list_for_each_entry(ev, &s->timers, timer_next)
		if (!ev->dead && !ev->masked && ev->deadline <= now)
			ev->pending |= SCHEDULER_POLL_TIMEOUT;

	s->depth++;
	ran = scheduler_run_pending(s);
	s->depth--;
	scheduler_gc(s);
	return ran;
}

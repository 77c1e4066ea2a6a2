/*
 * colo-controller: one side's xenstore.  A side is one guest domain's COLO directory D on one
 * host; docs/xenstore.md is the contract.  Every request takes its id in one transaction,
 * results are waited for with a watch on D/disks, and a lost connection is reopened without
 * ever issuing a request twice.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "colo-controller.h"

#define CTL_TOKEN "colo-controller"
#define RECONNECT_MS 100
/* libxenstore does not wake xs_fileno when the connection dies: look at least this often. */
#define LIVENESS_MS 100
#define TXN_TRIES 100

enum xs_rc { XS_OK, XS_ABSENT, XS_DEAD, XS_ERR };

static const char *side_socket(struct ctl *c, struct ctl_side *sd)
{
	if (sd->xs_path)
		return sd->xs_path;
	if (c->env_xs_path)
		return c->env_xs_path;
	return "the default socket";
}

/* Strict unsigned decimal: at least one digit, no sign, no overflow past max. */
static const char *parse_u64(const char *s, uint64_t max, uint64_t *v)
{
	uint64_t n = 0;

	if (*s < '0' || *s > '9')
		return NULL;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (n > (max - (uint64_t)(*s - '0')) / 10)
			return NULL;
		n = n * 10 + (uint64_t)(*s - '0');
	}
	*v = n;
	return s;
}

/* "<id> <errno> <text>", text one non-empty line. */
static void result_parse(struct ctl_result *r)
{
	const char *p = r->raw;
	uint64_t err;

	r->valid = false;
	if (!p)
		return;
	p = parse_u64(p, CTL_ID_MAX, &r->id);
	if (!p || *p++ != ' ')
		return;
	p = parse_u64(p, 4095, &err);
	if (!p || *p++ != ' ' || !*p || strpbrk(p, "\n\r"))
		return;
	r->err = (int)err;
	r->text = p;
	r->valid = true;
}

/* The n of a text "epoch=<n>", else 0. */
static uint64_t result_epoch(const struct ctl_result *r)
{
	const char *end;
	uint64_t e;

	if (!r->valid || r->err || strncmp(r->text, "epoch=", 6))
		return 0;
	end = parse_u64(r->text + 6, UINT64_MAX, &e);
	return end && !*end ? e : 0;
}

/* The id of a request "<id> <verb>...", or 0 when it has none. */
static uint64_t request_id(const char *req)
{
	const char *end;
	uint64_t id;

	if (!req)
		return 0;
	end = parse_u64(req, CTL_ID_MAX, &id);
	return end && (*end == ' ' || !*end) ? id : 0;
}

/* The first word of a request's verb ("start" of "5 start primary"), or "". */
static void request_verb(const char *req, char *verb, size_t size)
{
	const char *p = request_id(req) ? strchr(req, ' ') : NULL;
	size_t n = p ? strcspn(++p, " ") : 0;

	snprintf(verb, size, "%.*s", (int)n, p ? p : "");
}

static struct ctl_disk *side_find_disk(struct ctl_side *sd, const char *name, size_t len)
{
	unsigned int i;

	for (i = 0; i < sd->n_disks; i++)
		if (sd->disks[i].name && strlen(sd->disks[i].name) == len &&
		    !memcmp(sd->disks[i].name, name, len))
			return &sd->disks[i];
	return NULL;
}

/*
 * Decides what an event on PATH may have changed.  The nodes a tapdisk rewrites every second
 * (state, sent-bytes...) change nothing we wait for, so they cost no read.
 */
static void side_note_event(struct ctl_side *sd, const char *path)
{
	static const char *const state_nodes[] = {
		"params", "pid",   "minor",	 "backend",	 "role",       "state",
		"link",	  "epoch", "sent-bytes", "buffer-bytes", "last-error",
	};
	size_t n = strlen(sd->disks_path);
	const char *name, *slash, *leaf;
	unsigned int i;

	if (strncmp(path, sd->disks_path, n) || !path[n] || path[n] != '/') {
		/* D/disks itself, or the event of the watch's registration */
		sd->list_stale = sd->results_stale = sd->wanted_stale = true;
		return;
	}
	name = path + n + 1;
	slash = strchr(name, '/');
	if (!slash || !side_find_disk(sd, name, (size_t)(slash - name))) {
		/* a disk came or went */
		sd->list_stale = sd->results_stale = sd->wanted_stale = true;
		return;
	}
	leaf = slash + 1;
	if (strchr(leaf, '/'))
		return;
	if (!strcmp(leaf, "result")) {
		sd->results_stale = true;
		return;
	}
	if (!strcmp(leaf, "checkpoint-wanted")) {
		sd->wanted_stale = true;
		return;
	}
	for (i = 0; i < sizeof(state_nodes) / sizeof(state_nodes[0]); i++)
		if (!strcmp(leaf, state_nodes[i]))
			return;
	sd->results_stale = sd->wanted_stale = true;
}

/*
 * Moves pending watch events into the stale flags.  libxenstore's reader thread closes a
 * dead connection without waking xs_fileno; xs_check_watch then fails with EINVAL instead of
 * EAGAIN.  Returns 0 while the connection lives, -1 once it is gone.
 */
int side_drain_events(struct ctl *c, struct ctl_side *sd)
{
	char **ev;

	(void)c;
	if (!sd->xsh)
		return -1;
	while ((ev = xs_check_watch(sd->xsh))) {
		side_note_event(sd, ev[XS_WATCH_PATH]);
		free(ev);
	}
	return errno == EAGAIN ? 0 : -1;
}

void side_close(struct ctl_side *sd)
{
	xs_close(sd->xsh);
	sd->xsh = NULL;
}

/* One attempt; errno tells why it failed. */
static int side_open(struct ctl *c, struct ctl_side *sd)
{
	const char *path = sd->xs_path ? sd->xs_path : c->env_xs_path;
	int e;

	/*
	 * libxenstore takes its socket from XENSTORED_PATH when it opens a handle.  Without
	 * one it would fall back to /dev/xen/xenbus when the socket fails, and with xenstored
	 * gone a request there blocks in the kernel so that not even kill -9 ends the
	 * controller (seen in a real dom0; 4.17 ignores XS_OPEN_SOCKETONLY).  With
	 * XENSTORED_PATH set, the fallback tries that path again: so it is always set, to the
	 * default socket when nothing else is named.  Naming /dev/xen/xenbus still opens it.
	 */
	setenv("XENSTORED_PATH", path ? path : xs_daemon_socket(), 1);
	sd->xsh = xs_open(0);
	if (!sd->xsh)
		return -1;
	if (xs_fileno(sd->xsh) < 0 || !xs_watch(sd->xsh, sd->disks_path, CTL_TOKEN)) {
		e = errno;
		side_close(sd);
		errno = e;
		return -1;
	}
	sd->list_stale = sd->results_stale = sd->wanted_stale = true;
	return 0;
}

int side_connect(struct ctl *c, struct ctl_side *sd)
{
	if (side_open(c, sd) == 0)
		return 0;
	ctl_err("%s %u: cannot connect to xenstore at %s: %s", sd->name, sd->domid,
		side_socket(c, sd), strerror(errno));
	return -1;
}

/* Reopens the connection, every RECONNECT_MS up to --timeout. */
int side_reconnect(struct ctl *c, struct ctl_side *sd)
{
	int64_t deadline = ctl_now_ns() + (int64_t)c->timeout_ms * 1000000;
	int e;

	side_close(sd);
	for (;;) {
		if (side_open(c, sd) == 0) {
			if (c->verbose)
				ctl_info("%s %u: reconnected to xenstore at %s", sd->name,
					 sd->domid, side_socket(c, sd));
			return 0;
		}
		e = errno;
		if (ctl_now_ns() >= deadline) {
			ctl_err("%s %u: lost xenstore at %s and could not reconnect within %d ms: "
				"%s",
				sd->name, sd->domid, side_socket(c, sd), c->timeout_ms,
				strerror(e));
			return -1;
		}
		side_sleep(c, RECONNECT_MS);
		/* the Primary's host may be dead: a failover must not wait for it */
		if (c->failover_asked && sd == &c->p)
			return -1;
	}
}

/* After a failed call: XS_DEAD if the connection is gone (closed then), else XS_ERR, reported. */
static int side_failed(struct ctl *c, struct ctl_side *sd, const char *op, const char *path)
{
	int e = errno;

	if (side_drain_events(c, sd)) {
		side_close(sd);
		return XS_DEAD;
	}
	ctl_err("%s %u: xenstore %s %s: %s", sd->name, sd->domid, op, path, strerror(e));
	return XS_ERR;
}

static int side_get(struct ctl *c, struct ctl_side *sd, xs_transaction_t t, const char *path,
		    char **val)
{
	unsigned int len;

	*val = xs_read(sd->xsh, t, path, &len);
	if (*val)
		return XS_OK;
	if (errno == ENOENT)
		return XS_ABSENT;
	return side_failed(c, sd, "read", path);
}

/* Reads D/disks/<disk>/<node>; absent is not an error (*val NULL). */
static int disk_get(struct ctl *c, struct ctl_side *sd, xs_transaction_t t,
		    const struct ctl_disk *d, const char *node, char **val)
{
	char path[160];
	int rc;

	snprintf(path, sizeof(path), "%s/%s/%s", sd->disks_path, d->name, node);
	rc = side_get(c, sd, t, path, val);
	return rc == XS_ABSENT ? XS_OK : rc;
}

static int disk_name_cmp(const void *a, const void *b)
{
	const struct ctl_disk *x = a, *y = b;
	size_t lx = strlen(x->name), ly = strlen(y->name);

	/* devids are numbers: shorter first, then by digits */
	if (lx != ly)
		return lx < ly ? -1 : 1;
	return strcmp(x->name, y->name);
}

static void disks_free(struct ctl_disk *disks, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		free(disks[i].name);
		free(disks[i].res.raw);
	}
	free(disks);
}

/* Lists D/disks again; a disk that stays keeps what we know of it. */
static int side_read_list(struct ctl *c, struct ctl_side *sd, xs_transaction_t t)
{
	struct ctl_disk *disks, *old;
	unsigned int n = 0, i;
	char **names;

	names = xs_directory(sd->xsh, t, sd->disks_path, &n);
	if (!names) {
		if (errno != ENOENT)
			return side_failed(c, sd, "directory", sd->disks_path);
		n = 0;
	}
	disks = calloc(n ? n : 1, sizeof(*disks));
	if (!disks) {
		free(names);
		ctl_err("out of memory");
		return XS_ERR;
	}
	for (i = 0; i < n; i++) {
		old = side_find_disk(sd, names[i], strlen(names[i]));
		if (old) {
			disks[i] = *old;
			old->name = NULL;
			old->res.raw = NULL;
		} else {
			disks[i].name = strdup(names[i]);
			if (!disks[i].name) {
				free(names);
				disks_free(disks, i);
				ctl_err("out of memory");
				return XS_ERR;
			}
		}
	}
	free(names);
	qsort(disks, n, sizeof(*disks), disk_name_cmp);
	disks_free(sd->disks, sd->n_disks);
	sd->disks = disks;
	sd->n_disks = n;
	sd->list_stale = false;
	return XS_OK;
}

static int side_read_results(struct ctl *c, struct ctl_side *sd, xs_transaction_t t)
{
	struct ctl_disk *d;
	uint64_t e;
	unsigned int i;
	int rc;

	for (i = 0; i < sd->n_disks; i++) {
		d = &sd->disks[i];
		free(d->res.raw);
		d->res.raw = NULL;
		rc = disk_get(c, sd, t, d, "result", &d->res.raw);
		if (rc != XS_OK)
			return rc;
		d->res.present = d->res.raw != NULL;
		result_parse(&d->res);
		e = result_epoch(&d->res);
		if (e > d->epoch)
			d->epoch = e;
	}
	sd->results_stale = false;
	return XS_OK;
}

/* The highest id among D/request and the results just read. */
static uint64_t side_max_id(struct ctl_side *sd, const char *request)
{
	uint64_t max = request_id(request);
	unsigned int i;

	for (i = 0; i < sd->n_disks; i++)
		if (sd->disks[i].res.valid && sd->disks[i].res.id > max)
			max = sd->disks[i].res.id;
	return max;
}

static int side_no_disks(struct ctl_side *sd)
{
	ctl_err("%s %u: no colo disks under %s", sd->name, sd->domid, sd->disks_path);
	return CTL_ESETUP;
}

/* Reads the highest id of D outside a transaction: a floor for the other side's next id. */
int side_read_max(struct ctl *c, struct ctl_side *sd)
{
	char path[96], *req = NULL;
	int rc;

	snprintf(path, sizeof(path), "%s/request", sd->dir);
	for (;;) {
		if (!sd->xsh && side_reconnect(c, sd))
			return CTL_EFAIL;
		rc = side_get(c, sd, XBT_NULL, path, &req);
		if (rc == XS_OK || rc == XS_ABSENT)
			rc = side_read_list(c, sd, XBT_NULL);
		if (rc == XS_OK)
			rc = side_read_results(c, sd, XBT_NULL);
		if (rc == XS_OK)
			break;
		free(req);
		req = NULL;
		if (rc != XS_DEAD)
			return CTL_EFAIL;
	}
	sd->max_id = side_max_id(sd, req);
	sd->max_known = true;
	sd->req_id = request_id(req);
	request_verb(req, sd->req_verb, sizeof(sd->req_verb));
	free(req);
	return CTL_OK;
}

/* Whether a disk has yet to answer the request side_read_max found. */
bool side_pending(const struct ctl_side *sd)
{
	unsigned int i;

	for (i = 0; i < sd->n_disks; i++)
		if (!sd->disks[i].res.valid || sd->disks[i].res.id < sd->req_id)
			return true;
	return false;
}

/* Whether every disk answered that request with success, as side_read_max found them. */
bool side_succeeded(const struct ctl_side *sd)
{
	unsigned int i;

	for (i = 0; i < sd->n_disks; i++)
		if (!sd->disks[i].res.valid || sd->disks[i].res.id != sd->req_id ||
		    sd->disks[i].res.err)
			return false;
	return true;
}

/* Whether D/request holds ID now; after a reconnection, that says whether a commit went in. */
static int side_request_is(struct ctl *c, struct ctl_side *sd, uint64_t id)
{
	char path[96], *req;
	int rc;

	snprintf(path, sizeof(path), "%s/request", sd->dir);
	rc = side_get(c, sd, XBT_NULL, path, &req);
	if (rc == XS_ABSENT)
		return 0;
	if (rc != XS_OK)
		return -rc;
	rc = request_id(req) == id;
	free(req);
	return rc;
}

/*
 * Writes "<id> <verb>" to D/request in one transaction that reads D/request and every
 * result: the id is one above all of them and above FLOOR, or *IDP itself when it is not 0
 * (the Secondary's checkpoint shares the Primary's id).  THRESHOLD, when given, goes into
 * D/checkpoint-threshold in the same transaction.
 */
int side_issue(struct ctl *c, struct ctl_side *sd, uint64_t floor, uint64_t *idp, const char *verb,
	       const char *threshold)
{
	bool fixed = *idp != 0;
	uint64_t id = *idp, max;
	char path[96], tpath[96], req[4096], *cur;
	xs_transaction_t t;
	int tries, rc;

	snprintf(path, sizeof(path), "%s/request", sd->dir);
	snprintf(tpath, sizeof(tpath), "%s/checkpoint-threshold", sd->dir);
	for (tries = 0; tries < TXN_TRIES; tries++) {
		if (!sd->xsh && side_reconnect(c, sd))
			return CTL_EFAIL;
		t = xs_transaction_start(sd->xsh);
		if (t == XBT_NULL) {
			rc = side_failed(c, sd, "transaction_start", sd->dir);
			if (rc == XS_DEAD)
				continue;
			return CTL_EFAIL;
		}
		cur = NULL;
		rc = side_get(c, sd, t, path, &cur);
		if (rc == XS_OK || rc == XS_ABSENT)
			rc = side_read_list(c, sd, t);
		if (rc == XS_OK)
			rc = side_read_results(c, sd, t);
		if (rc != XS_OK) {
			free(cur);
			if (rc == XS_DEAD)
				continue;
			xs_transaction_end(sd->xsh, t, true);
			return CTL_EFAIL;
		}
		max = side_max_id(sd, cur);
		free(cur);
		if (!sd->n_disks) {
			xs_transaction_end(sd->xsh, t, true);
			return side_no_disks(sd);
		}
		if (!fixed) {
			if (floor > max)
				max = floor;
			if (max >= CTL_ID_MAX) {
				xs_transaction_end(sd->xsh, t, true);
				ctl_err("%s %u: no id left above %" PRIu64, sd->name, sd->domid,
					max);
				return CTL_EFAIL;
			}
			id = max + 1;
		} else if (max >= id) {
			xs_transaction_end(sd->xsh, t, true);
			ctl_err("%s %u: cannot send request %" PRIu64
				" (%s): %s already has id %" PRIu64 " (another controller?)",
				sd->name, sd->domid, id, verb, sd->dir, max);
			return CTL_EFAIL;
		}
		snprintf(req, sizeof(req), "%" PRIu64 " %s", id, verb);
		if (!xs_write(sd->xsh, t, path, req, (unsigned int)strlen(req)) ||
		    (threshold &&
		     !xs_write(sd->xsh, t, tpath, threshold, (unsigned int)strlen(threshold)))) {
			rc = side_failed(c, sd, "write", path);
			if (rc == XS_DEAD)
				continue;
			xs_transaction_end(sd->xsh, t, true);
			return CTL_EFAIL;
		}
		if (xs_transaction_end(sd->xsh, t, false))
			goto committed;
		if (errno == EAGAIN) {
			/* someone wrote in D meanwhile: take the id again */
			continue;
		}
		rc = side_failed(c, sd, "commit", path);
		if (rc != XS_DEAD)
			return CTL_EFAIL;
		/* The commit may or may not have gone in: read it back, never write twice. */
		for (;;) {
			if (side_reconnect(c, sd))
				return CTL_EFAIL;
			rc = side_request_is(c, sd, id);
			if (rc >= 0)
				break;
			if (rc != -XS_DEAD)
				return CTL_EFAIL;
		}
		if (rc == 1)
			goto committed;
		fixed = true;
	}
	ctl_err("%s %u: could not write request (%s): %d transactions conflicted", sd->name,
		sd->domid, verb, TXN_TRIES);
	return CTL_EFAIL;

committed:
	if (c->verbose > 1)
		ctl_info("%s %u: request %s", sd->name, sd->domid, req);
	sd->max_id = id;
	sd->max_known = true;
	*idp = id;
	return CTL_OK;
}

static void disk_report_lost(struct ctl *c, struct ctl_side *sd, struct ctl_disk *d, uint64_t id,
			     const char *verb)
{
	char *pid = NULL;

	if (sd->xsh && disk_get(c, sd, XBT_NULL, d, "pid", &pid) != XS_OK)
		pid = NULL;
	ctl_err("%s %u disk %s: request %" PRIu64 " (%s) lost: no result within %d ms (pid %s)",
		sd->name, sd->domid, d->name, id, verb, c->timeout_ms, pid ? pid : "unknown");
	free(pid);
}

/* Counts the answers to request ID; reports the failed ones when FINAL. */
static void side_tally(struct ctl *c, struct ctl_side *sd, uint64_t id, const char *verb,
		       struct ctl_outcome *out, bool final)
{
	struct ctl_disk *d;
	struct ctl_result *r;
	unsigned int i;
	uint64_t e;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < sd->n_disks; i++) {
		d = &sd->disks[i];
		r = &d->res;
		if (r->present && !r->valid) {
			out->bad++;
			if (final)
				ctl_err("%s %u disk %s: request %" PRIu64
					" (%s): malformed result '%s'",
					sd->name, sd->domid, d->name, id, verb, r->raw);
		} else if (!r->present || r->id < id) {
			out->lost++;
			if (final)
				disk_report_lost(c, sd, d, id, verb);
		} else if (r->id > id) {
			out->bad++;
			if (final)
				ctl_err("%s %u disk %s: request %" PRIu64
					" (%s) superseded by request %" PRIu64,
					sd->name, sd->domid, d->name, id, verb, r->id);
		} else if (r->err) {
			out->failed++;
			if (final)
				ctl_err("%s %u disk %s: request %" PRIu64
					" (%s) failed: error %d: %s",
					sd->name, sd->domid, d->name, id, verb, r->err, r->text);
		} else {
			out->ok++;
			e = result_epoch(r);
			if (e > out->epoch)
				out->epoch = e;
		}
	}
}

/* Waits for whatever comes first: an event of SD, a signal, or MS. */
static void side_poll(struct ctl *c, struct ctl_side *sd, int ms)
{
	struct pollfd fds[2];
	nfds_t n = 0;

	fds[n].fd = xs_fileno(sd->xsh);
	fds[n++].events = POLLIN;
	if (c->sigfd >= 0) {
		fds[n].fd = c->sigfd;
		fds[n++].events = POLLIN;
	}
	if (poll(fds, n, ms) > 0 && n > 1 && (fds[1].revents & POLLIN))
		ctl_handle_signals(c);
}

/*
 * protect: whether a disk's copy moved since the last look (its sync-progress changed), so
 * that a start with a long sync waits another --timeout rather than give up.
 */
static bool side_sync_progressed(struct ctl *c, struct ctl_side *sd)
{
	bool moved = false;
	char *val = NULL;

	for (unsigned int i = 0; sd->xsh && i < sd->n_disks; i++) {
		struct ctl_disk *d = &sd->disks[i];

		if (disk_get(c, sd, XBT_NULL, d, "sync-progress", &val) != XS_OK || !val)
			continue;
		if (strcmp(val, d->sync_progress)) {
			moved = true;
			if (c->verbose)
				ctl_info("%s %u disk %s: sync-progress %s", sd->name, sd->domid,
					 d->name, val);
			snprintf(d->sync_progress, sizeof(d->sync_progress), "%s", val);
		}
		free(val);
		val = NULL;
	}
	return moved;
}

/*
 * Waits until every disk listed under D/disks has a result for request ID, or --timeout
 * (with c->wait_sync, --timeout without progress of a disk's sync).
 * Every event makes us read all results again: watches coalesce and fire for old values.
 * After a reconnection the request is written again only if D/request does not hold it.
 */
int side_wait(struct ctl *c, struct ctl_side *sd, uint64_t id, const char *verb,
	      struct ctl_outcome *out)
{
	int64_t timeout_ns = (int64_t)c->timeout_ms * 1000000;
	int64_t deadline = ctl_now_ns() + timeout_ns, now;
	int64_t ms;
	int rc;

	memset(out, 0, sizeof(*out));
	for (;;) {
		if (c->failover_asked && sd == &c->p) {
			out->aborted = true;
			return CTL_EFAIL;
		}
		if (!sd->xsh) {
			if (side_reconnect(c, sd)) {
				out->aborted = c->failover_asked;
				out->lost = sd->n_disks;
				return CTL_EFAIL;
			}
			rc = side_request_is(c, sd, id);
			if (rc == -XS_DEAD)
				continue;
			if (rc < 0)
				return CTL_EFAIL;
			if (rc == 0 && side_issue(c, sd, 0, &id, verb, NULL))
				return CTL_EFAIL;
			/* the disks lost xenstore too: give them a whole --timeout again */
			now = ctl_now_ns();
			if (deadline < now + timeout_ns)
				deadline = now + timeout_ns;
		}
		if (sd->list_stale || sd->results_stale) {
			rc = sd->list_stale ? side_read_list(c, sd, XBT_NULL) : XS_OK;
			if (rc == XS_OK)
				rc = side_read_results(c, sd, XBT_NULL);
			if (rc == XS_DEAD)
				continue;
			if (rc != XS_OK)
				return CTL_EFAIL;
			if (!sd->n_disks) {
				side_no_disks(sd);
				return CTL_EFAIL;
			}
			side_tally(c, sd, id, verb, out, false);
			if (!out->lost) {
				side_tally(c, sd, id, verb, out, true);
				return out->ok == sd->n_disks ? CTL_OK : CTL_EFAIL;
			}
		}
		now = ctl_now_ns();
		if (now >= deadline && c->wait_sync && side_sync_progressed(c, sd))
			deadline = now + timeout_ns;
		if (now >= deadline) {
			side_tally(c, sd, id, verb, out, true);
			return CTL_EFAIL;
		}
		ms = (deadline - now + 999999) / 1000000;
		side_poll(c, sd, ms < LIVENESS_MS ? (int)ms : LIVENESS_MS);
		if (side_drain_events(c, sd))
			side_close(sd);
	}
}

/* side_issue, then side_wait. */
int side_request(struct ctl *c, struct ctl_side *sd, uint64_t floor, uint64_t *idp,
		 const char *verb, const char *threshold, struct ctl_outcome *out)
{
	int rc;

	memset(out, 0, sizeof(*out));
	rc = side_issue(c, sd, floor, idp, verb, threshold);
	if (rc)
		return rc;
	return side_wait(c, sd, *idp, verb, out);
}

/*
 * Whether a disk asks for a checkpoint: its checkpoint-wanted "<epoch> <sent-bytes>" names
 * the epoch it is writing now (an older epoch has ended already).  1 yes, 0 no, -1 on a
 * connection that is gone or an error (reported).
 */
int side_checkpoint_wanted(struct ctl *c, struct ctl_side *sd)
{
	char *w = NULL, *ep = NULL;
	uint64_t we, bytes, e;
	const char *end;
	struct ctl_disk *d;
	unsigned int i;
	int rc = XS_OK, want = 0;

	sd->wanted_stale = false;
	if (sd->list_stale)
		rc = side_read_list(c, sd, XBT_NULL);
	for (i = 0; rc == XS_OK && i < sd->n_disks && !want; i++) {
		d = &sd->disks[i];
		rc = disk_get(c, sd, XBT_NULL, d, "checkpoint-wanted", &w);
		if (rc != XS_OK || !w)
			continue;
		end = parse_u64(w, UINT64_MAX, &we);
		if (!end || *end++ != ' ' || !(end = parse_u64(end, UINT64_MAX, &bytes)) || *end) {
			if (c->verbose)
				ctl_info("%s %u disk %s: ignored malformed checkpoint-wanted '%s'",
					 sd->name, sd->domid, d->name, w);
			free(w);
			w = NULL;
			continue;
		}
		free(w);
		w = NULL;
		rc = disk_get(c, sd, XBT_NULL, d, "epoch", &ep);
		if (rc != XS_OK)
			break;
		if (ep && (end = parse_u64(ep, UINT64_MAX, &e)) && !*end && e > d->epoch)
			d->epoch = e;
		free(ep);
		ep = NULL;
		if (we >= d->epoch) {
			want = 1;
			if (c->verbose)
				ctl_info("%s %u disk %s: checkpoint wanted in epoch %" PRIu64
					 " after %" PRIu64 " bytes",
					 sd->name, sd->domid, d->name, we, bytes);
		}
	}
	if (rc != XS_OK) {
		sd->wanted_stale = true;
		return -1;
	}
	return want;
}

static void status_field(struct ctl *c, struct ctl_side *sd, struct ctl_disk *d, const char *node,
			 bool quote, int *rc)
{
	char *v = NULL;

	if (*rc == XS_OK)
		*rc = disk_get(c, sd, XBT_NULL, d, node, &v);
	if (!v)
		printf(" %s=-", node);
	else if (quote)
		printf(" %s=\"%s\"", node, v);
	else
		printf(" %s=%s", node, v);
	free(v);
}

/* Whether the disk's tapdisk runs; its pid in @pid (NULL when absent), which the caller frees. */
static enum ctl_alive status_alive(struct ctl *c, struct ctl_side *sd, struct ctl_disk *d,
				   char **pid, int *rc)
{
	char *boot_id = NULL;
	enum ctl_alive alive;

	*pid = NULL;
	if (*rc == XS_OK)
		*rc = disk_get(c, sd, XBT_NULL, d, "pid", pid);
	if (*rc == XS_OK)
		*rc = disk_get(c, sd, XBT_NULL, d, "boot-id", &boot_id);
	alive = *rc == XS_OK ? ctl_tapdisk_alive(*pid, boot_id) : CTL_ALIVE_UNKNOWN;
	free(boot_id);
	return alive;
}

/*
 * One line for D, then one per disk; absent nodes print as '-'.  A disk whose tapdisk is dead
 * shows state=dead link=- (its nodes are its last words) and fails the status.
 */
int side_status(struct ctl *c, struct ctl_side *sd)
{
	char path[96], *req = NULL, *thr = NULL, *pid;
	struct ctl_disk *d;
	enum ctl_alive alive;
	unsigned int i, dead = 0;
	int rc;

	snprintf(path, sizeof(path), "%s/request", sd->dir);
	rc = side_get(c, sd, XBT_NULL, path, &req);
	if (rc == XS_OK || rc == XS_ABSENT) {
		snprintf(path, sizeof(path), "%s/checkpoint-threshold", sd->dir);
		rc = side_get(c, sd, XBT_NULL, path, &thr);
	}
	if (rc == XS_OK || rc == XS_ABSENT)
		rc = side_read_list(c, sd, XBT_NULL);
	if (rc != XS_OK) {
		free(req);
		free(thr);
		if (rc == XS_DEAD)
			ctl_err("%s %u: lost xenstore at %s", sd->name, sd->domid,
				side_socket(c, sd));
		return CTL_EFAIL;
	}
	if (!sd->n_disks) {
		free(req);
		free(thr);
		return side_no_disks(sd);
	}
	if (req)
		printf("%s %u: request=\"%s\"", sd->name, sd->domid, req);
	else
		printf("%s %u: request=-", sd->name, sd->domid);
	printf(thr ? " checkpoint-threshold=%s\n" : " checkpoint-threshold=-\n", thr);
	free(req);
	free(thr);
	for (i = 0; i < sd->n_disks && rc == XS_OK; i++) {
		d = &sd->disks[i];
		printf("%s %u disk %s:", sd->name, sd->domid, d->name);
		status_field(c, sd, d, "result", true, &rc);
		alive = status_alive(c, sd, d, &pid, &rc);
		printf(" alive=%s", ctl_alive_name(alive));
		status_field(c, sd, d, "role", false, &rc);
		if (alive == CTL_ALIVE_NO) {
			printf(" state=dead link=-");
		} else {
			status_field(c, sd, d, "state", false, &rc);
			status_field(c, sd, d, "link", false, &rc);
		}
		status_field(c, sd, d, "epoch", false, &rc);
		status_field(c, sd, d, "sent-bytes", false, &rc);
		status_field(c, sd, d, "buffer-bytes", false, &rc);
		status_field(c, sd, d, "last-error", true, &rc);
		putchar('\n');
		if (alive == CTL_ALIVE_NO) {
			fflush(stdout);
			ctl_err("%s %u disk %s: tapdisk %s is not running: its state nodes are stale",
				sd->name, sd->domid, d->name, pid);
			dead++;
		}
		free(pid);
	}
	fflush(stdout);
	if (rc == XS_DEAD)
		ctl_err("%s %u: lost xenstore at %s", sd->name, sd->domid, side_socket(c, sd));
	return rc == XS_OK && !dead ? CTL_OK : CTL_EFAIL;
}

/* Reads the list of D/disks again (metrics). */
int side_refresh_disks(struct ctl *c, struct ctl_side *sd)
{
	return side_read_list(c, sd, XBT_NULL) == XS_OK ? CTL_OK : CTL_EFAIL;
}

/* D/disks/<disk>/<node> in *VAL, NULL when absent. */
int side_disk_node(struct ctl *c, struct ctl_side *sd, const struct ctl_disk *d, const char *node,
		   char **val)
{
	*val = NULL;
	return disk_get(c, sd, XBT_NULL, d, node, val) == XS_OK ? CTL_OK : CTL_EFAIL;
}

/* Sleeps MS, or less when a signal comes (in run). */
void side_sleep(struct ctl *c, int ms)
{
	struct pollfd pfd = {.fd = c->sigfd, .events = POLLIN};

	if (poll(&pfd, c->sigfd >= 0 ? 1 : 0, ms) > 0)
		ctl_handle_signals(c);
}

/* Writes D/NODE; a write is idempotent, so it is simply done again after a reconnection. */
int side_write(struct ctl *c, struct ctl_side *sd, const char *node, const char *val)
{
	char path[96];

	snprintf(path, sizeof(path), "%s/%s", sd->dir, node);
	for (;;) {
		if (!sd->xsh && side_reconnect(c, sd))
			return CTL_EFAIL;
		if (xs_write(sd->xsh, XBT_NULL, path, val, (unsigned int)strlen(val)))
			return CTL_OK;
		if (side_failed(c, sd, "write", path) != XS_DEAD)
			return CTL_EFAIL;
	}
}

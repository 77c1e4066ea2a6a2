/*
 * colo VBDs bound to xenstore, in tapdisk's loop (see colo-xenstore.h, docs/xenstore.md).
 *
 * A binding ties one VBD (by minor) to its directory D/disks/NAME.  Requests come from the
 * xenstore thread as the text of D/request each time its watch fires; a request runs only if
 * its id is above every id this binding has seen, so coalesced and replayed watch events
 * never run one twice.  Results, state nodes and checkpoint-wanted go back through the
 * thread, which keeps only the latest value of each node.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "colo-command.h"
#include "colo-xenstore.h"
#include "tapdisk-log.h"
#include "tapdisk-server.h"

/* Threshold and state checks; the byte counts are refreshed every COLO_XSB_PUBLISH_TICKS. */
#define COLO_XSB_TICK_MS 10
#define COLO_XSB_PUBLISH_TICKS 20

enum colo_xsb_node {
	COLO_XSB_ROLE,
	COLO_XSB_STATE,
	COLO_XSB_LINK,
	COLO_XSB_EPOCH,
	COLO_XSB_SENT,
	COLO_XSB_BUFFER,
	COLO_XSB_DIRTY,
	COLO_XSB_ERROR,
	COLO_XSB_ERROR_AT,
	COLO_XSB_N_NODES,
};

static const char *const colo_xsb_node_names[COLO_XSB_N_NODES] = {
	[COLO_XSB_ROLE] = "role",	    [COLO_XSB_STATE] = "state",
	[COLO_XSB_LINK] = "link",	    [COLO_XSB_EPOCH] = "epoch",
	[COLO_XSB_SENT] = "sent-bytes",	    [COLO_XSB_BUFFER] = "buffer-bytes",
	[COLO_XSB_DIRTY] = "dirty-blocks",  [COLO_XSB_ERROR] = "last-error",
	[COLO_XSB_ERROR_AT] = "last-error-at",
};

struct colo_xsb {
	struct list_head next;
	unsigned int id;
	td_uuid_t minor;
	char *disk_dir, *dom_dir;
	bool bound;
	colo_xs_bound_t bound_done; /* the control request waiting for the bind */
	void *bound_arg;
	uint64_t last_id;   /* the highest request id seen */
	uint64_t threshold; /* 0: the Primary never asks */
	uint64_t wanted_epoch; /* epoch + 1 of the last checkpoint-wanted written; 0: none */
	bool sync_announced;   /* sync-done written for the Primary's last sync */
};

/* A request handed to the driver; it finds its binding again by id, which may be gone. */
struct colo_xsb_pending {
	struct colo *colo; /* outlives its callbacks, even when the VBD closes meanwhile */
	unsigned int binding;
	uint64_t req_id;
	enum colo_command_verb verb;
};

static struct {
	struct list_head bindings;
	unsigned int next_id;
	event_id_t event, tick;
	unsigned int ticks;
} colo_xsb = {
	.bindings = LIST_HEAD_INIT(colo_xsb.bindings),
	.event = -1,
	.tick = -1,
};

static struct colo_xsb *colo_xsb_find(unsigned int id)
{
	struct colo_xsb *b;

	list_for_each_entry(b, &colo_xsb.bindings, next)
		if (b->id == id)
			return b;
	return NULL;
}

static struct colo_xsb *colo_xsb_find_vbd(td_uuid_t minor)
{
	struct colo_xsb *b;

	list_for_each_entry(b, &colo_xsb.bindings, next)
		if (b->minor == minor)
			return b;
	return NULL;
}

static void colo_xsb_write(struct colo_xsb *b, const char *node, const char *value)
{
	char path[COLO_COMMAND_PATH_MAX + 32];

	snprintf(path, sizeof(path), "%s/%s", b->disk_dir, node);
	colo_xs_thread_write(path, value);
}

static void colo_xsb_free(struct colo_xsb *b)
{
	list_del(&b->next);
	colo_xs_thread_forget(b->disk_dir);
	free(b->disk_dir);
	free(b->dom_dir);
	free(b);
	if (list_empty(&colo_xsb.bindings) && colo_xsb.tick >= 0) {
		tapdisk_server_unregister_event(colo_xsb.tick);
		colo_xsb.tick = -1;
	}
}

/* The VBD of @b if it is still there; a VBD closed for good ends its binding. */
static td_vbd_t *colo_xsb_vbd(struct colo_xsb *b)
{
	td_vbd_t *vbd = tapdisk_server_get_vbd(b->minor);

	if (!vbd) {
		DPRINTF("colo xenstore: VBD %u is gone; %s unbound", b->minor, b->disk_dir);
		colo_xs_thread_unbind(b->id);
		colo_xsb_free(b);
	}
	return vbd;
}

/* ---- state nodes and the Primary's checkpoint-wanted ---- */

/*
 * A Primary's start sync: sync-progress "<done> <total> <sent> <rate>" while it runs (with the
 * counters) and at its end, then sync-done "<sent> <total>" once it ended with the pair
 * running: the event a toolstack waits on before the first checkpoint (it is "" while a sync
 * runs).  A VBD that never synced writes neither.
 */
static void colo_xsb_publish_sync(struct colo_xsb *b, const struct colo_status *st,
				  bool counters)
{
	bool ended = st->state == COLO_STATE_RUNNING && st->sync_done_bytes == st->sync_total_bytes;
	char val[128];

	if (st->role != COLO_ROLE_PRIMARY || !st->sync_total_bytes) {
		b->sync_announced = false;
		return;
	}
	if (st->state == COLO_STATE_SYNCING && b->sync_announced) {
		b->sync_announced = false;
		colo_xsb_write(b, "sync-done", "");
	}
	if (counters || (ended && !b->sync_announced)) {
		snprintf(val, sizeof(val), "%" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64,
			 st->sync_done_bytes, st->sync_total_bytes, st->sync_sent_bytes,
			 st->sync_rate);
		colo_xsb_write(b, "sync-progress", val);
	}
	if (ended && !b->sync_announced) {
		b->sync_announced = true;
		snprintf(val, sizeof(val), "%" PRIu64 " %" PRIu64, st->sync_sent_bytes,
			 st->sync_total_bytes);
		DPRINTF("colo xenstore: %s: sync done: %s", b->disk_dir, val);
		colo_xsb_write(b, "sync-done", val);
	}
}

/*
 * Writes the state nodes that changed.  Role, state, link, epoch and last-error change
 * rarely and matter at once; the byte counts move with every write, so @counters says
 * whether to write them too (every COLO_XSB_PUBLISH_TICKS ticks, and after a request).
 */
static void colo_xsb_publish(struct colo_xsb *b, struct colo *c, bool counters)
{
	char val[COLO_XSB_N_NODES][256];
	struct colo_status st;
	int i;

	colo_get_status(c, &st);
	snprintf(val[COLO_XSB_ROLE], sizeof(val[0]), "%s", colo_role_name(st.role));
	snprintf(val[COLO_XSB_STATE], sizeof(val[0]), "%s", colo_state_name(st.state));
	snprintf(val[COLO_XSB_LINK], sizeof(val[0]), "%s", colo_link_name(st.link));
	snprintf(val[COLO_XSB_EPOCH], sizeof(val[0]), "%" PRIu64, st.epoch);
	snprintf(val[COLO_XSB_SENT], sizeof(val[0]), "%" PRIu64, st.sent_bytes);
	snprintf(val[COLO_XSB_BUFFER], sizeof(val[0]), "%" PRIu64, st.buffer_bytes);
	snprintf(val[COLO_XSB_DIRTY], sizeof(val[0]), "%" PRIu64, st.dirty_blocks);
	snprintf(val[COLO_XSB_ERROR], sizeof(val[0]), "%s", st.last_error ? st.last_error : "");
	colo_format_time(st.last_error_at, val[COLO_XSB_ERROR_AT], sizeof(val[0]));
	for (i = 0; i < COLO_XSB_N_NODES; i++) {
		if (!counters &&
		    (i == COLO_XSB_SENT || i == COLO_XSB_BUFFER || i == COLO_XSB_DIRTY))
			continue;
		colo_xsb_write(b, colo_xsb_node_names[i], val[i]);
	}
	colo_xsb_publish_sync(b, &st, counters);
}

static void colo_xsb_check_threshold(struct colo_xsb *b, struct colo *c)
{
	struct colo_status st;
	char val[64];

	if (!b->threshold)
		return;
	colo_get_status(c, &st);
	if (st.role != COLO_ROLE_PRIMARY || st.state != COLO_STATE_RUNNING ||
	    st.sent_bytes < b->threshold || b->wanted_epoch == st.epoch + 1)
		return;
	b->wanted_epoch = st.epoch + 1;
	snprintf(val, sizeof(val), "%" PRIu64 " %" PRIu64, st.epoch, st.sent_bytes);
	DPRINTF("colo xenstore: %s: %" PRIu64 " bytes sent in epoch %" PRIu64
		" (threshold %" PRIu64 "): asking for a checkpoint",
		b->disk_dir, st.sent_bytes, st.epoch, b->threshold);
	colo_xsb_write(b, "checkpoint-wanted", val);
}

static void colo_xsb_tick(event_id_t id, char mode, void *arg)
{
	struct colo_xsb *b, *tmp;
	bool publish = ++colo_xsb.ticks % COLO_XSB_PUBLISH_TICKS == 0;
	td_vbd_t *vbd;
	struct colo *c;

	(void)id, (void)mode, (void)arg;
	list_for_each_entry_safe(b, tmp, &colo_xsb.bindings, next) {
		if (!b->bound || !(vbd = colo_xsb_vbd(b)))
			continue;
		c = tapdisk_vbd_is_open(vbd) ? colo_from_vbd(vbd) : NULL;
		if (!c)
			continue;
		colo_xsb_check_threshold(b, c);
		colo_xsb_publish(b, c, publish);
	}
}

/* ---- requests ---- */

/* Writes "<id> <errno> <text>" to result; @logged: the failure was logged where it happened. */
static void __attribute__((format(printf, 5, 6)))
colo_xsb_result(struct colo_xsb *b, uint64_t req_id, int err, bool logged, const char *fmt, ...)
{
	char text[512], val[600];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	snprintf(val, sizeof(val), "%" PRIu64 " %d %s", req_id, err < 0 ? -err : err, text);
	if (err && !logged)
		EPRINTF("colo xenstore: %s: request %" PRIu64 " failed: %s", b->disk_dir, req_id,
			text);
	else if (!err)
		DPRINTF("colo xenstore: %s: request %" PRIu64 ": %s", b->disk_dir, req_id, text);
	colo_xsb_write(b, "result", val);
}

/* A failure of the driver, with its sentence, which colo_fail logged already. */
static void colo_xsb_result_driver(struct colo_xsb *b, uint64_t req_id, enum colo_command_verb verb,
				   struct colo *c, int err)
{
	const char *why = colo_command_error(c, verb);

	if (err >= 0)
		err = -EIO; /* the API promises a negative errno */
	if (why[0])
		colo_xsb_result(b, req_id, err, true, "%s: %s", colo_command_verb_name(verb), why);
	else
		colo_xsb_result(b, req_id, err, false, "%s: %s", colo_command_verb_name(verb),
				strerror(-err));
}

static void colo_xsb_request_done(void *arg, int err, uint64_t value)
{
	struct colo_xsb_pending *p = arg;
	struct colo_xsb *b = colo_xsb_find(p->binding);
	struct colo *c = p->colo;

	if (!b) {
		free(p); /* unbound meanwhile: nobody to tell */
		return;
	}
	/* The state first: a reader of the result must not find the state behind it. */
	colo_xsb_publish(b, c, true);
	if (!err && p->verb == COLO_COMMAND_CHECKPOINT)
		colo_xsb_result(b, p->req_id, 0, false, "epoch=%" PRIu64, value);
	else if (!err)
		colo_xsb_result(b, p->req_id, 0, false, "ok");
	else
		colo_xsb_result_driver(b, p->req_id, p->verb, c, err);
	free(p);
}

static void colo_xsb_request(struct colo_xsb *b, const char *text)
{
	struct colo_xsb_pending *p;
	struct colo_command cmd;
	uint64_t req_id;
	char why[300];
	td_vbd_t *vbd;
	struct colo *c;
	int err;

	err = colo_request_parse(text, &req_id, &cmd, why, sizeof(why));
	if (!req_id) {
		colo_xsb_result(b, 0, err, false, "%s", why);
		return;
	}
	if (req_id <= b->last_id)
		return; /* carried out already, or history from before the bind */
	b->last_id = req_id;
	if (err) {
		colo_xsb_result(b, req_id, err, false, "%s", why);
		return;
	}
	vbd = colo_xsb_vbd(b);
	if (!vbd)
		return;
	if (!tapdisk_vbd_is_open(vbd)) {
		colo_xsb_result(b, req_id, -EINVAL, false, "%s: VBD %u is %s",
				colo_command_verb_name(cmd.verb), b->minor,
				vbd->state & TD_VBD_PAUSED ? "paused" : "not open");
		return;
	}
	c = colo_from_vbd(vbd);
	if (!c) {
		colo_xsb_result(b, req_id, -EINVAL, false, "%s: VBD %u is not a colo disk",
				colo_command_verb_name(cmd.verb), b->minor);
		return;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		colo_xsb_result(b, req_id, -ENOMEM, false, "out of memory");
		return;
	}
	p->colo = c;
	p->binding = b->id;
	p->req_id = req_id;
	p->verb = cmd.verb;
	DPRINTF("colo xenstore: %s: request %s", b->disk_dir, text);
	err = colo_command_run(c, &cmd, colo_xsb_request_done, p);
	if (err) {
		free(p);
		colo_xsb_publish(b, c, true);
		colo_xsb_result_driver(b, req_id, cmd.verb, c, err);
	}
}

static void colo_xsb_threshold(struct colo_xsb *b, const struct colo_xs_event *ev)
{
	uint64_t v = 0;

	if (ev->present && colo_parse_u63(ev->text, strlen(ev->text), &v)) {
		EPRINTF("colo xenstore: %s/checkpoint-threshold '%.64s' is not a number of bytes; "
			"the Primary will not ask for checkpoints", b->dom_dir, ev->text);
		v = 0;
	}
	if (v != b->threshold)
		DPRINTF("colo xenstore: %s: checkpoint threshold %" PRIu64 " bytes", b->dom_dir, v);
	b->threshold = v;
}

/* Which host (and boot) the tapdisk runs on, so that a controller can look for its pid. */
static void colo_xsb_write_boot_id(struct colo_xsb *b)
{
	char id[64] = "";
	FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");

	if (f) {
		if (!fgets(id, sizeof(id), f))
			id[0] = '\0';
		fclose(f);
	}
	id[strcspn(id, "\n")] = '\0';
	if (id[0])
		colo_xsb_write(b, "boot-id", id);
	else
		EPRINTF("colo xenstore: %s: cannot read this host's boot id; a controller will "
			"not know whether this tapdisk runs", b->disk_dir);
}

static void colo_xsb_bound(struct colo_xsb *b, const struct colo_xs_event *ev)
{
	colo_xs_bound_t done = b->bound_done;
	void *arg = b->bound_arg;
	td_vbd_t *vbd;
	struct colo *c;

	b->bound_done = NULL;
	if (ev->err) {
		EPRINTF("colo xenstore: binding VBD %u to %s failed: %s", b->minor, b->disk_dir,
			ev->text);
		colo_xsb_free(b);
		if (done)
			done(arg, ev->err, ev->text);
		return;
	}
	b->bound = true;
	b->last_id = ev->baseline;
	colo_xsb_write_boot_id(b);
	DPRINTF("colo xenstore: VBD %u bound to %s (requests above %" PRIu64 ")", b->minor,
		b->disk_dir, b->last_id);
	vbd = tapdisk_server_get_vbd(b->minor);
	c = vbd && tapdisk_vbd_is_open(vbd) ? colo_from_vbd(vbd) : NULL;
	if (c)
		colo_xsb_publish(b, c, true);
	if (done)
		done(arg, 0, "");
}

static void colo_xsb_events(event_id_t id, char mode, void *arg)
{
	struct colo_xs_event *ev;
	struct colo_xsb *b;

	(void)id, (void)mode, (void)arg;
	while ((ev = colo_xs_thread_next_event())) {
		b = colo_xsb_find(ev->binding);
		if (b && ev->type == COLO_XS_EV_BOUND)
			colo_xsb_bound(b, ev);
		else if (b && b->bound && ev->type == COLO_XS_EV_THRESHOLD)
			colo_xsb_threshold(b, ev);
		else if (b && b->bound && ev->type == COLO_XS_EV_REQUEST && ev->present)
			colo_xsb_request(b, ev->text);
		colo_xs_event_free(ev);
	}
}

/* ---- binding ---- */

int colo_xenstore_bind(td_vbd_t *vbd, const char *disk_dir, colo_xs_bound_t done, void *arg,
		       char *why, size_t why_size)
{
	struct timeval tv = { 0, COLO_XSB_TICK_MS * 1000 };
	struct colo_xsb *b;
	int fd;

	if (colo_xsb_find_vbd(vbd->uuid)) {
		snprintf(why, why_size, "VBD %u is already bound; unbind it first (xenstore off)",
			 vbd->uuid);
		return -EBUSY;
	}
	fd = colo_xs_thread_start();
	if (fd < 0) {
		snprintf(why, why_size, "cannot start the xenstore thread: %s", strerror(-fd));
		return fd;
	}
	if (colo_xsb.event < 0) {
		colo_xsb.event = tapdisk_server_register_event(SCHEDULER_POLL_READ_FD, fd,
							       (struct timeval){ 0, 0 },
							       colo_xsb_events, NULL);
		if (colo_xsb.event < 0) {
			snprintf(why, why_size, "cannot watch the xenstore thread: %s",
				 strerror(-colo_xsb.event));
			return colo_xsb.event;
		}
	}
	if (colo_xsb.tick < 0) {
		colo_xsb.tick = tapdisk_server_register_event(SCHEDULER_POLL_TIMEOUT, -1, tv,
							      colo_xsb_tick, NULL);
		if (colo_xsb.tick < 0) {
			snprintf(why, why_size, "cannot register a timer: %s",
				 strerror(-colo_xsb.tick));
			return colo_xsb.tick;
		}
	}
	b = calloc(1, sizeof(*b));
	if (b) {
		b->disk_dir = strdup(disk_dir);
		b->dom_dir = strdup(disk_dir);
	}
	if (!b || !b->disk_dir || !b->dom_dir) {
		if (b) {
			free(b->disk_dir);
			free(b->dom_dir);
		}
		free(b);
		snprintf(why, why_size, "out of memory");
		return -ENOMEM;
	}
	/* colo_command_parse checked the shape: D/disks/NAME. */
	*strrchr(b->dom_dir, '/') = '\0';
	*strrchr(b->dom_dir, '/') = '\0';
	b->id = ++colo_xsb.next_id;
	b->minor = vbd->uuid;
	b->bound_done = done;
	b->bound_arg = arg;
	list_add_tail(&b->next, &colo_xsb.bindings);
	DPRINTF("colo xenstore: binding VBD %u to %s", b->minor, b->disk_dir);
	colo_xs_thread_bind(b->id, b->dom_dir, b->disk_dir);
	return 0;
}

int colo_xenstore_unbind(td_vbd_t *vbd, char *why, size_t why_size)
{
	struct colo_xsb *b = colo_xsb_find_vbd(vbd->uuid);

	if (!b) {
		snprintf(why, why_size, "VBD %u is not bound to xenstore", vbd->uuid);
		return -ENOENT;
	}
	if (b->bound_done) {
		snprintf(why, why_size, "VBD %u is still binding to %s", vbd->uuid, b->disk_dir);
		return -EBUSY;
	}
	DPRINTF("colo xenstore: VBD %u unbound from %s", b->minor, b->disk_dir);
	colo_xs_thread_unbind(b->id);
	colo_xsb_free(b);
	return 0;
}

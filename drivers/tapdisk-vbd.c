/*
 * VBDs: the image chain and the life of a request.
 *
 * A request moves new -> pending -> (failed -> pending ...) -> completed.  It is split into
 * one td_request per iovec, all sent to the leaf image; the sectors still outstanding act
 * as its reference count.  -EBUSY, -EAGAIN and -EINTR are retried, with backoff, until the
 * request is TD_VBD_REQUEST_TIMEOUT seconds old.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blktap.h"
#include "tapdisk-disktype.h"
#include "tapdisk-driver.h"
#include "tapdisk-image.h"
#include "tapdisk-interface.h"
#include "tapdisk-log.h"
#include "tapdisk-marker.h"
#include "tapdisk-nbdserver.h"
#include "tapdisk-server.h"
#include "tapdisk-stats.h"
#include "tapdisk-vbd.h"

/* Chains deeper than this are refused: a loop in parent ids must not hang tapdisk. */
#define TD_VBD_MAX_CHAIN 32

static long long tv_ms(const struct timeval *tv)
{
	return (long long)tv->tv_sec * 1000LL + tv->tv_usec / 1000;
}

static long long now_ms(void)
{
	struct timeval now;

	gettimeofday(&now, NULL);
	return tv_ms(&now);
}

td_vbd_t *tapdisk_vbd_create(td_uuid_t uuid)
{
	td_vbd_t *vbd = calloc(1, sizeof(*vbd));

	if (!vbd) {
		EPRINTF("vbd %u: out of memory", uuid);
		return NULL;
	}
	vbd->uuid = uuid;
	vbd->state = TD_VBD_CLOSED;
	vbd->marker_fd = -1;
	INIT_LIST_HEAD(&vbd->images);
	INIT_LIST_HEAD(&vbd->new_requests);
	INIT_LIST_HEAD(&vbd->pending_requests);
	INIT_LIST_HEAD(&vbd->failed_requests);
	INIT_LIST_HEAD(&vbd->completed_requests);
	INIT_LIST_HEAD(&vbd->next);
	gettimeofday(&vbd->ts, NULL);
	return vbd;
}

void tapdisk_vbd_free(td_vbd_t *vbd)
{
	if (!vbd)
		return;
	list_del(&vbd->next);
	if (vbd->marker_fd >= 0)
		tapdisk_marker_release(vbd->marker_fd);
	free(vbd->name);
	free(vbd);
}

static void tapdisk_vbd_close_chain(td_vbd_t *vbd)
{
	td_image_t *image, *tmp;

	tapdisk_for_each_image_safe(image, tmp, &vbd->images) {
		td_close(image);
		tapdisk_image_free(image);
	}
}

static int tapdisk_vbd_open_image(td_vbd_t *vbd, const char *path, int type, td_flag_t flags,
				  td_image_t **out)
{
	td_image_t *image = tapdisk_image_allocate(path, type, flags);
	int err;

	if (!image) {
		EPRINTF("%s: out of memory", path);
		return -ENOMEM;
	}
	err = td_open(image, NULL);
	if (err) {
		tapdisk_image_free(image);
		return err;
	}
	list_add_tail(&image->next, &vbd->images);
	*out = image;
	return 0;
}

static int disktype_is_filter(int type)
{
	const disk_info_t *info = type >= 0 && type < DISK_TYPE_MAX ? tapdisk_disk_types[type] : NULL;

	return info && (info->flags & DISK_TYPE_FILTER);
}

/* Opens the leaf named by @params, then each parent its driver names, up to the root. */
static int tapdisk_vbd_open_chain(td_vbd_t *vbd, const char *params, td_flag_t flags)
{
	td_image_t *image, *child = NULL;
	const char *path;
	char *name = NULL;
	int type, err, depth;

	err = tapdisk_parse_disk_type(params, &path, &type);
	if (err == -ENOENT || err == -ENOSYS) {
		EPRINTF("%s: unknown disk type (try aio:/path/to/image)", params);
		return -ENOENT; /* as blktap3 */
	}
	if (err) {
		EPRINTF("%s: malformed image name, expected type:/path", params);
		return err;
	}
	name = strdup(path);
	if (!name)
		return -ENOMEM;

	for (depth = 0;; depth++) {
		td_disk_id_t id = { 0 };

		if (depth == TD_VBD_MAX_CHAIN) {
			EPRINTF("%s: image chain deeper than %d", params, TD_VBD_MAX_CHAIN);
			err = -ELOOP;
			goto fail;
		}
		err = tapdisk_vbd_open_image(vbd, name, type, flags, &image);
		if (err)
			goto fail;
		if (child) {
			err = td_validate_parent(child, image);
			if (err) {
				EPRINTF("%s: not a valid parent of %s", image->name, child->name);
				goto fail;
			}
		}
		err = td_get_parent_id(image, &id);
		if (err == TD_NO_PARENT)
			break;
		if (err < 0) {
			EPRINTF("%s: cannot name its parent: %s", image->name, strerror(-err));
			goto fail;
		}
		free(name);
		name = id.name;
		/* A filter's parent is the same disk, written through it; others' parents are read-only. */
		if (!disktype_is_filter(type))
			td_flag_set(flags, TD_OPEN_RDONLY);
		flags |= (td_flag_t)id.flags;
		type = id.type;
		child = image;
	}
	free(name);

	/* A filter sees the disk of its parent: copy sizes from the root up. */
	list_for_each_entry_reverse(image, &vbd->images, next) {
		if (image->next.next == &vbd->images || !disktype_is_filter(image->type))
			continue;
		td_image_t *parent = list_entry(image->next.next, td_image_t, next);

		image->info = parent->info;
		image->driver->info = parent->info;
	}
	image = list_first_entry(&vbd->images, td_image_t, next);
	vbd->disk_info = image->info;
	return 0;

fail:
	free(name);
	tapdisk_vbd_close_chain(vbd);
	return err;
}

static int tapdisk_vbd_start_nbdserver(td_vbd_t *vbd)
{
	char path[256];
	int err;

	vbd->nbdserver = tapdisk_nbdserver_alloc(vbd);
	if (!vbd->nbdserver)
		return -ENOMEM;
	snprintf(path, sizeof(path), "%s/%s%d.%d", blktap_control_dir(), BLKTAP2_NBD_PREFIX,
		 getpid(), vbd->uuid);
	err = tapdisk_nbdserver_listen_unix(vbd->nbdserver, path);
	if (err) {
		tapdisk_nbdserver_free(vbd->nbdserver);
		vbd->nbdserver = NULL;
	}
	return err;
}

int tapdisk_vbd_open_vdi(td_vbd_t *vbd, const char *params, td_flag_t flags, int prt_devnum)
{
	int err;

	if (!(vbd->state & TD_VBD_CLOSED)) {
		EPRINTF("vbd %u: already open as %s", vbd->uuid, vbd->name);
		return -EBUSY;
	}
	if (prt_devnum >= 0) {
		EPRINTF("vbd %u: sharing a parent with another VBD is not supported", vbd->uuid);
		return -EOPNOTSUPP;
	}
	err = tapdisk_vbd_open_chain(vbd, params, flags);
	if (err)
		return err;
	free(vbd->name);
	vbd->name = strdup(params);
	if (!vbd->name) {
		err = -ENOMEM;
		goto fail;
	}
	vbd->flags = flags;
	err = tapdisk_vbd_start_nbdserver(vbd);
	if (err)
		goto fail;
	vbd->state = 0;
	DPRINTF("vbd %u: opened %s, %llu sectors%s", vbd->uuid, params,
		(unsigned long long)vbd->disk_info.size,
		td_flag_test(flags, TD_OPEN_RDONLY) ? ", read-only" : "");
	return 0;

fail:
	tapdisk_vbd_close_chain(vbd);
	return err;
}

int tapdisk_vbd_idle(const td_vbd_t *vbd)
{
	return list_empty(&vbd->new_requests) && list_empty(&vbd->pending_requests) &&
	       list_empty(&vbd->failed_requests);
}

static int tapdisk_vbd_quiesce(td_vbd_t *vbd, int close, td_vbd_done_t done, void *arg)
{
	if (vbd->state & (TD_VBD_PAUSE_REQUESTED | TD_VBD_QUIESCE_REQUESTED)) {
		EPRINTF("vbd %u: a pause or close is already in progress", vbd->uuid);
		return -EBUSY;
	}
	if (vbd->state & TD_VBD_CLOSED) {
		/* Nothing to drain.  A closed VBD may be paused, as in blktap3; a close unpauses it. */
		if (close)
			vbd->state &= ~(TD_VBD_PAUSED | TD_VBD_RESUME_FAILED);
		else
			vbd->state |= TD_VBD_PAUSED;
		if (done)
			done(vbd, 0, arg);
		return 0;
	}
	if (!close && (vbd->state & TD_VBD_PAUSED)) {
		if (done)
			done(vbd, 0, arg);
		return 0;
	}
	vbd->quiesce_done = done;
	vbd->quiesce_arg = arg;
	vbd->quiesce_close = close;
	vbd->state |= close ? TD_VBD_QUIESCE_REQUESTED : TD_VBD_PAUSE_REQUESTED;
	if (close && vbd->nbdserver)
		tapdisk_nbdserver_pause(vbd->nbdserver);
	DPRINTF("vbd %u: %s requested", vbd->uuid, close ? "close" : "pause");
	tapdisk_vbd_check_state(vbd);
	return 0;
}

int tapdisk_vbd_pause(td_vbd_t *vbd, td_vbd_done_t done, void *arg)
{
	return tapdisk_vbd_quiesce(vbd, 0, done, arg);
}

int tapdisk_vbd_close(td_vbd_t *vbd, td_vbd_done_t done, void *arg)
{
	return tapdisk_vbd_quiesce(vbd, 1, done, arg);
}

/*
 * The guest sees the disk through the pause: a chain reopened with another size or sector
 * size would change it under the guest's feet (blktap3 refuses it the same way).
 */
static int tapdisk_vbd_check_same_disk(td_vbd_t *vbd, const char *params,
				       const td_disk_info_t *was)
{
	const td_disk_info_t *now = &vbd->disk_info;

	if (now->size != was->size || now->sector_size != was->sector_size) {
		EPRINTF("%s: %llu sectors of %ld bytes, but the VBD had %llu of %ld: a resume may "
			"not change the disk size", params, (unsigned long long)now->size,
			now->sector_size, (unsigned long long)was->size, was->sector_size);
		return -EMEDIUMTYPE;
	}
	if (now->info != was->info) {
		EPRINTF("%s: disk info %#x, but the VBD had %#x: a resume may not change it",
			params, now->info, was->info);
		return -EMEDIUMTYPE;
	}
	return 0;
}

int tapdisk_vbd_resume(td_vbd_t *vbd, const char *params)
{
	td_disk_info_t was = vbd->disk_info;
	int err;

	if (!(vbd->state & TD_VBD_PAUSED)) {
		EPRINTF("vbd %u: resume of a VBD that is not paused", vbd->uuid);
		return -EINVAL;
	}
	if (vbd->state & TD_VBD_CLOSED) {
		/* Paused while closed: there is no chain to reopen, nor a disk to switch. */
		if (params && *params) {
			EPRINTF("VBD %u was paused while closed: unpause it without a new image, "
				"then open it", vbd->uuid);
			return -EINVAL;
		}
		vbd->state &= ~(TD_VBD_PAUSED | TD_VBD_RESUME_FAILED);
		return 0;
	}
	if (!params || !*params)
		params = vbd->name;
	err = tapdisk_vbd_open_chain(vbd, params, vbd->flags);
	if (!err) {
		err = tapdisk_vbd_check_same_disk(vbd, params, &was);
		if (err)
			tapdisk_vbd_close_chain(vbd);
	}
	if (err) {
		vbd->disk_info = was;
		vbd->state |= TD_VBD_RESUME_FAILED;
		return err;
	}
	if (params != vbd->name) {
		char *name = strdup(params);

		if (name) {
			free(vbd->name);
			vbd->name = name;
		}
	}
	vbd->state &= ~(TD_VBD_PAUSED | TD_VBD_RESUME_FAILED);
	DPRINTF("vbd %u: resumed on %s", vbd->uuid, vbd->name);
	return 0;
}

static void tapdisk_vbd_complete_vreq(td_vbd_request_t *vreq);

/*
 * The image stats of blktap3, in sectors, on the image that completed them: "hits" every
 * sector that came back, failed or not, except -EBUSY (to be retried); "fail" those failed.
 */
static void tapdisk_vbd_count_image(td_request_t treq, int err)
{
	td_image_t *image = treq.image;
	int write = treq.op == TD_OP_WRITE;

	if (!image || (treq.op != TD_OP_READ && !write) || err == -EBUSY)
		return;
	if (write)
		image->stats.hits.wr += treq.secs;
	else
		image->stats.hits.rd += treq.secs;
	if (err && write)
		image->stats.fail.wr += treq.secs;
	else if (err)
		image->stats.fail.rd += treq.secs;
}

static void tapdisk_vbd_complete_td_request(td_request_t treq, int err)
{
	td_vbd_request_t *vreq = treq.vreq;
	td_vbd_t *vbd = vreq->vbd;

	tapdisk_vbd_count_image(treq, err);

	if (err && !vreq->error)
		vreq->error = err;
	if (treq.op == TD_OP_FLUSH) {
		vreq->secs_pending--;
	} else {
		vreq->secs_pending -= treq.secs;
		if (!err)
			vbd->secs[treq.op == TD_OP_WRITE] += treq.secs;
	}
	if (vreq->secs_pending < 0) {
		EPRINTF("vbd %u: a driver completed more sectors than it was given", vbd->uuid);
		td_panic();
	}
	if (!vreq->secs_pending && !vreq->submitting)
		tapdisk_vbd_complete_vreq(vreq);
}

/* A driver's "not now": retried until TD_VBD_REQUEST_TIMEOUT, and not logged by the driver. */
static int tapdisk_vbd_is_retryable(int err)
{
	return err == -EBUSY || err == -EAGAIN || err == -EINTR;
}

static int tapdisk_vbd_should_retry(td_vbd_request_t *vreq)
{
	struct timeval now;

	if (!tapdisk_vbd_is_retryable(vreq->error))
		return 0;
	if (vreq->num_retries >= TD_VBD_MAX_RETRIES)
		return 0;
	gettimeofday(&now, NULL);
	return now.tv_sec - vreq->ts.tv_sec < TD_VBD_REQUEST_TIMEOUT;
}

static void tapdisk_vbd_complete_vreq(td_vbd_request_t *vreq)
{
	td_vbd_t *vbd = vreq->vbd;
	int err = vreq->error;

	if (err && tapdisk_vbd_should_retry(vreq)) {
		vreq->prev_error = err;
		vreq->num_retries++;
		vbd->retries++;
		list_move_tail(&vreq->next, &vbd->failed_requests);
		vreq->list_head = &vbd->failed_requests;
		return;
	}
	list_del(&vreq->next);
	vreq->list_head = NULL;
	vbd->returned++;
	if (err)
		vbd->errors++;
	/*
	 * The driver that failed a request logged why (tlog_drv_error).  Only giving up on a
	 * busy driver is this layer's own failure.
	 */
	if (err && tapdisk_vbd_is_retryable(err))
		EPRINTF("vbd %u: %s of %d iovecs at sector %llu failed after %d retries: %s",
			vbd->uuid,
			vreq->op == TD_OP_READ	  ? "read"
			: vreq->op == TD_OP_WRITE ? "write"
						  : "flush",
			vreq->iovcnt, (unsigned long long)vreq->sec, vreq->num_retries,
			strerror(-err));
	/* The callback may free the request: nothing touches it after this. */
	vreq->cb(vreq, err, vreq->token, 1);
}

static void tapdisk_vbd_issue_request(td_vbd_t *vbd, td_vbd_request_t *vreq)
{
	td_image_t *image = list_first_entry(&vbd->images, td_image_t, next);
	td_sector_t sec = vreq->sec;

	list_move_tail(&vreq->next, &vbd->pending_requests);
	vreq->list_head = &vbd->pending_requests;
	gettimeofday(&vreq->last_try, NULL);
	vreq->error = 0;
	vreq->secs_pending = 0;
	vreq->submitting = 1;

	if (vreq->op == TD_OP_FLUSH) {
		td_request_t treq = { .op = TD_OP_FLUSH, .image = image, .vreq = vreq,
				      .cb = tapdisk_vbd_complete_td_request };

		vreq->secs_pending = 1;
		td_queue_flush(image, treq);
	}
	for (int i = 0; vreq->op != TD_OP_FLUSH && i < vreq->iovcnt; i++) {
		td_request_t treq = { .op = vreq->op, .buf = vreq->iov[i].base, .sec = sec,
				      .secs = (int)vreq->iov[i].secs, .image = image, .sidx = i,
				      .vreq = vreq, .cb = tapdisk_vbd_complete_td_request };

		vreq->secs_pending += treq.secs;
		sec += treq.secs;
		if (treq.op == TD_OP_WRITE)
			td_queue_write(image, treq);
		else
			td_queue_read(image, treq);
	}
	vreq->submitting = 0;
	if (!vreq->secs_pending)
		tapdisk_vbd_complete_vreq(vreq);
}

static long long tapdisk_vbd_retry_due_ms(const td_vbd_request_t *vreq)
{
	int shift = vreq->num_retries > 10 ? 10 : vreq->num_retries;
	long long backoff = 1LL << shift; /* 2 ms, 4 ms, ... about 1 s */

	return tv_ms(&vreq->last_try) + backoff;
}

int tapdisk_vbd_retry_wait_ms(const td_vbd_t *vbd)
{
	const td_vbd_request_t *vreq;
	long long first = -1, now;

	if (vbd->state & (TD_VBD_PAUSED | TD_VBD_PAUSE_REQUESTED))
		return -1;
	list_for_each_entry(vreq, &vbd->failed_requests, next) {
		long long due = tapdisk_vbd_retry_due_ms(vreq);

		if (first < 0 || due < first)
			first = due;
	}
	if (first < 0)
		return -1;
	now = now_ms();
	return first <= now ? 0 : (int)(first - now);
}

/* Fails requests that can no longer be served (the VBD is closing while paused). */
static void tapdisk_vbd_fail_held(td_vbd_t *vbd, int err)
{
	td_vbd_request_t *vreq, *tmp;
	int n = 0;

	list_splice_tail_init(&vbd->failed_requests, &vbd->new_requests);
	list_for_each_entry_safe(vreq, tmp, &vbd->new_requests, next) {
		vreq->error = err;
		vreq->num_retries = TD_VBD_MAX_RETRIES;
		tapdisk_vbd_complete_vreq(vreq);
		n++;
	}
	if (n)
		EPRINTF("vbd %u: closed with %d requests held: they failed with %s", vbd->uuid, n,
			strerror(-err));
}

static void tapdisk_vbd_finish_quiesce(td_vbd_t *vbd)
{
	td_vbd_done_t done = vbd->quiesce_done;
	void *arg = vbd->quiesce_arg;

	vbd->quiesce_done = NULL;
	vbd->quiesce_arg = NULL;
	tapdisk_vbd_close_chain(vbd);
	if (vbd->quiesce_close) {
		if (vbd->nbdserver)
			tapdisk_nbdserver_free(vbd->nbdserver);
		vbd->nbdserver = NULL;
		vbd->state = TD_VBD_CLOSED;
		DPRINTF("vbd %u: closed %s", vbd->uuid, vbd->name);
	} else {
		vbd->state &= ~TD_VBD_PAUSE_REQUESTED;
		vbd->state |= TD_VBD_PAUSED;
		DPRINTF("vbd %u: paused", vbd->uuid);
	}
	vbd->quiesce_close = 0;
	if (done)
		done(vbd, 0, arg);
}

int tapdisk_vbd_check_state(td_vbd_t *vbd)
{
	td_vbd_request_t *vreq, *tmp;
	int issued = 0;

	if (vbd->state & TD_VBD_CLOSED)
		return 0;

	if (vbd->state & TD_VBD_PAUSED) {
		if (!(vbd->state & TD_VBD_QUIESCE_REQUESTED))
			return 0;
		/* Closing a paused VBD: its images are gone, so held requests cannot be served. */
		tapdisk_vbd_fail_held(vbd, -EIO);
		tapdisk_vbd_finish_quiesce(vbd);
		return 0;
	}

	if (vbd->state & TD_VBD_PAUSE_REQUESTED) {
		/* Hold everything not yet in the drivers; it is issued again after resume. */
		list_for_each_entry_safe(vreq, tmp, &vbd->failed_requests, next) {
			list_move_tail(&vreq->next, &vbd->new_requests);
			vreq->list_head = &vbd->new_requests;
		}
	} else {
		long long now = now_ms();

		list_for_each_entry_safe(vreq, tmp, &vbd->failed_requests, next) {
			if (tapdisk_vbd_retry_due_ms(vreq) > now)
				continue;
			tapdisk_vbd_issue_request(vbd, vreq);
			issued++;
		}
		/* Requests queued by completions during this walk wait for the next round. */
		if (!list_empty(&vbd->new_requests)) {
			LIST_HEAD(batch);

			list_splice_tail_init(&vbd->new_requests, &batch);
			list_for_each_entry_safe(vreq, tmp, &batch, next) {
				tapdisk_vbd_issue_request(vbd, vreq);
				issued++;
			}
		}
	}

	if (vbd->state & TD_VBD_PAUSE_REQUESTED && list_empty(&vbd->pending_requests))
		tapdisk_vbd_finish_quiesce(vbd);
	else if (vbd->state & TD_VBD_QUIESCE_REQUESTED && tapdisk_vbd_idle(vbd))
		tapdisk_vbd_finish_quiesce(vbd);
	return issued;
}

int tapdisk_vbd_queue_request(td_vbd_t *vbd, td_vbd_request_t *vreq)
{
	td_sector_t secs = 0;

	if (vbd->state & (TD_VBD_CLOSED | TD_VBD_DEAD))
		return -ENODEV;
	switch (vreq->op) {
	case TD_OP_FLUSH:
		if (vreq->iovcnt)
			return -EINVAL;
		break;
	case TD_OP_WRITE:
		if (td_flag_test(vbd->flags, TD_OPEN_RDONLY))
			return -EPERM;
		/* fall through */
	case TD_OP_READ:
		if (vreq->iovcnt <= 0 || !vreq->iov)
			return -EINVAL;
		for (int i = 0; i < vreq->iovcnt; i++) {
			if (!vreq->iov[i].secs || !vreq->iov[i].base ||
			    vreq->iov[i].secs > TD_VBD_MAX_REQUEST_BYTES >> SECTOR_SHIFT)
				return -EINVAL;
			secs += vreq->iov[i].secs;
		}
		if (vreq->sec > vbd->disk_info.size || secs > vbd->disk_info.size - vreq->sec)
			return -EINVAL;
		break;
	default:
		return -EOPNOTSUPP;
	}
	vreq->vbd = vbd;
	vreq->error = 0;
	vreq->prev_error = 0;
	vreq->secs_pending = 0;
	vreq->num_retries = 0;
	vreq->submitting = 0;
	gettimeofday(&vreq->ts, NULL);
	vreq->last_try = vreq->ts;
	list_add_tail(&vreq->next, &vbd->new_requests);
	vreq->list_head = &vbd->new_requests;
	vbd->received++;
	return 0;
}

/* Sends @treq on to the image below treq.image, as filters do with what they pass through. */
void tapdisk_vbd_forward_request(td_request_t treq)
{
	td_vbd_t *vbd = treq.vreq->vbd;
	td_image_t *image = treq.image, *parent;

	if (list_is_last(&image->next, &vbd->images)) {
		/* Below the root there is nothing: reads see zeros, flushes have nothing to do. */
		if (treq.op == TD_OP_READ)
			memset(treq.buf, 0, (size_t)treq.secs << SECTOR_SHIFT);
		td_complete_request(treq, treq.op == TD_OP_WRITE ? -EIO : 0);
		return;
	}
	parent = list_entry(image->next.next, td_image_t, next);

	if (treq.op == TD_OP_FLUSH) {
		td_queue_flush(parent, treq);
		return;
	}
	if (treq.sec + (td_sector_t)treq.secs > parent->info.size) {
		td_sector_t inside = treq.sec < parent->info.size ? parent->info.size - treq.sec : 0;
		td_request_t tail = treq;

		if (treq.op != TD_OP_READ) {
			td_complete_request(treq, -ENOSPC);
			return;
		}
		/* The part of a read past the parent's end reads as zeros. */
		tail.sec = treq.sec + inside;
		tail.secs = treq.secs - (int)inside;
		tail.buf = (char *)treq.buf + (inside << SECTOR_SHIFT);
		memset(tail.buf, 0, (size_t)tail.secs << SECTOR_SHIFT);
		td_complete_request(tail, 0);
		if (!inside)
			return;
		treq.secs = (int)inside;
	}
	if (treq.op == TD_OP_WRITE)
		td_queue_write(parent, treq);
	else
		td_queue_read(parent, treq);
}

int tapdisk_vbd_reported_state(const td_vbd_t *vbd)
{
	int state = vbd->state;

	/* vbd->name is set by the first successful open. */
	if (!vbd->name)
		state &= ~TD_VBD_CLOSED;
	if (state & TD_VBD_PAUSED)
		state |= TD_VBD_QUIESCED | TD_VBD_CLOSED;
	return state;
}

void tapdisk_vbd_stats(td_vbd_t *vbd, td_stats_t *st)
{
	td_vbd_request_t *vreq;
	td_image_t *image;
	int outstanding = 0;

	list_for_each_entry(vreq, &vbd->pending_requests, next)
		outstanding++;
	list_for_each_entry(vreq, &vbd->new_requests, next)
		outstanding++;
	list_for_each_entry(vreq, &vbd->failed_requests, next)
		outstanding++;

	tapdisk_stats_enter(st, '{');
	tapdisk_stats_field(st, "name", "s", vbd->name ? vbd->name : "");
	tapdisk_stats_field(st, "minor", "d", vbd->uuid);
	tapdisk_stats_field(st, "state", "d", tapdisk_vbd_reported_state(vbd));
	tapdisk_stats_field(st, "secs", "[");
	tapdisk_stats_val(st, "llu", vbd->secs[0]);
	tapdisk_stats_val(st, "llu", vbd->secs[1]);
	tapdisk_stats_leave(st, ']');
	tapdisk_stats_field(st, "images", "[");
	tapdisk_for_each_image(image, &vbd->images)
		tapdisk_image_stats(image, st);
	tapdisk_stats_leave(st, ']');
	tapdisk_stats_field(st, "FIXME_enospc_redirect_count", "d", 0);
	tapdisk_stats_field(st, "nbd_mirror_failed", "d", 0);
	tapdisk_stats_field(st, "reqs_outstanding", "d", outstanding);
	tapdisk_stats_field(st, "read_caching", "s", "false");
	tapdisk_stats_field(st, "requests", "{");
	tapdisk_stats_field(st, "received", "llu", vbd->received);
	tapdisk_stats_field(st, "returned", "llu", vbd->returned);
	tapdisk_stats_field(st, "errors", "llu", vbd->errors);
	tapdisk_stats_field(st, "retries", "llu", vbd->retries);
	tapdisk_stats_leave(st, '}');
	tapdisk_stats_leave(st, '}');
}

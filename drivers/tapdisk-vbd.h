/*
 * A virtual block device: an image chain plus the queues of requests in its life.
 * Private to tapdisk.  Clients (the NBD server, the control plane) use only the functions.
 */
#ifndef _TAPDISK_VBD_H_
#define _TAPDISK_VBD_H_

#include <stdint.h>
#include <sys/time.h>

#include "list.h"
#include "scheduler.h"
#include "tapdisk.h"

#define TD_VBD_DEAD 0x0001
#define TD_VBD_CLOSED 0x0002
#define TD_VBD_QUIESCE_REQUESTED 0x0004
#define TD_VBD_QUIESCED 0x0008
#define TD_VBD_PAUSE_REQUESTED 0x0010
#define TD_VBD_PAUSED 0x0020
#define TD_VBD_SHUTDOWN_REQUESTED 0x0040
#define TD_VBD_LOCKING 0x0080
#define TD_VBD_LOG_DROPPED 0x0100
#define TD_VBD_RESUME_FAILED 0x0200

#define TD_VBD_REQUEST_TIMEOUT 120
#define TD_VBD_MAX_RETRIES 100
#define TD_VBD_RETRY_INTERVAL 1

/* The largest request a client may queue, in bytes (blktap3's NBD MAX_REQUEST_SIZE). */
#define TD_VBD_MAX_REQUEST_BYTES (64u << 20)

struct td_nbdserver;

typedef void (*td_vbd_done_t)(td_vbd_t *vbd, int err, void *arg);

struct td_vbd_handle {
	char *name; /* "type:/path" as opened */
	td_uuid_t uuid;
	td_flag_t flags;
	int state;

	struct list_head images; /* leaf first, root last */

	struct list_head new_requests;
	struct list_head pending_requests;
	struct list_head failed_requests;
	struct list_head completed_requests;

	struct list_head next; /* in the server's list */

	td_disk_info_t disk_info;

	struct td_nbdserver *nbdserver;

	int marker_fd; /* the minor's marker, held while attached (tapdisk-marker.h); -1: none */

	/* A pause or close waits for the queues to drain, then calls this once. */
	td_vbd_done_t quiesce_done;
	void *quiesce_arg;
	int quiesce_close; /* close (1) or pause (0) once quiesced */

	struct timeval ts;
	unsigned long long received;
	unsigned long long returned;
	unsigned long long errors;
	unsigned long long retries;
	unsigned long long secs[2]; /* read, written */
};

td_vbd_t *tapdisk_vbd_create(td_uuid_t uuid);
/* Frees a closed VBD. */
void tapdisk_vbd_free(td_vbd_t *vbd);

/*
 * Opens the image chain named by @params ("type:/path"), fills disk_info and starts the
 * VBD's NBD export.  Returns 0 or a negative errno, logged once with the reason.
 */
int tapdisk_vbd_open_vdi(td_vbd_t *vbd, const char *params, td_flag_t flags, int prt_devnum);

/*
 * Pause: hold new requests, wait for in-flight ones, then close the chain.  @done runs
 * once (possibly before this returns).  Returns -EBUSY while another pause/close waits.
 */
int tapdisk_vbd_pause(td_vbd_t *vbd, td_vbd_done_t done, void *arg);
/* Reopens the chain (@params NULL: the same one) and issues the held requests. */
int tapdisk_vbd_resume(td_vbd_t *vbd, const char *params);
/* Close: like pause, then also ends the NBD export.  The VBD can be opened again. */
int tapdisk_vbd_close(td_vbd_t *vbd, td_vbd_done_t done, void *arg);

/*
 * Queues a request.  Returns 0, after which vreq->cb runs exactly once with final=1, or a
 * negative errno (bad range, VBD closed) and then the callback never runs.
 */
int tapdisk_vbd_queue_request(td_vbd_t *vbd, td_vbd_request_t *vreq);

/*
 * Issues new and retried requests and finishes a pending quiesce.  Run by the server loop.
 * Returns how many requests it issued.
 */
int tapdisk_vbd_check_state(td_vbd_t *vbd);
/* Milliseconds until a failed request is due for retry, -1 when none waits. */
int tapdisk_vbd_retry_wait_ms(const td_vbd_t *vbd);
/* True when the VBD has no requests in any queue. */
int tapdisk_vbd_idle(const td_vbd_t *vbd);

static inline int tapdisk_vbd_is_open(const td_vbd_t *vbd)
{
	return !(vbd->state & (TD_VBD_CLOSED | TD_VBD_DEAD)) && !list_empty(&vbd->images);
}

static inline uint64_t tapdisk_vbd_size_bytes(const td_vbd_t *vbd)
{
	return (uint64_t)vbd->disk_info.size << SECTOR_SHIFT;
}

/*
 * The state as blktap3's tapdisk reports it in LIST and STATS: 0 for a VBD attached and never
 * opened, CLOSED (0x2) after a close, and a paused VBD also QUIESCED and CLOSED (0x2a, 0x22a
 * after a failed resume).  Internally a VBD is CLOSED until opened, and a pause sets PAUSED.
 */
int tapdisk_vbd_reported_state(const td_vbd_t *vbd);

void tapdisk_vbd_stats(td_vbd_t *vbd, td_stats_t *st);
void tapdisk_vbd_forward_request(td_request_t treq);

#endif

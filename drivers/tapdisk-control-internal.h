/*
 * The control request handler without the socket, for tapdisk-control.c and the fuzzer.
 * A reply sink receives the bytes of every reply and learns when the request is complete.
 */
#ifndef _TAPDISK_CONTROL_INTERNAL_H_
#define _TAPDISK_CONTROL_INTERNAL_H_

#include <stddef.h>

#include "tapdisk-message.h"

/* What the connection does once the request's replies are flushed. */
#define TAPDISK_CONTROL_AFTER_CLOSE 0x1 /* drop the connection: its stream cannot be resynced */
#define TAPDISK_CONTROL_AFTER_SHUTDOWN 0x2 /* tapdisk_server_request_shutdown() */
#define TAPDISK_CONTROL_AFTER_SHUTDOWN_IF_IDLE 0x4 /* the same, if no VBD is left */

struct tapdisk_control_reply {
	/* Queues @len bytes for the client.  Returns 0 or -errno (the client is gone). */
	int (*send)(struct tapdisk_control_reply *reply, const void *buf, size_t len);
	/* Every reply of the request was sent; @after holds TAPDISK_CONTROL_AFTER_* bits. */
	void (*complete)(struct tapdisk_control_reply *reply, int after);
	/*
	 * Set by a handler whose reply waits (NULL otherwise): the connection calls it if the
	 * client hangs up first, so that the request can be withdrawn.  complete() still runs
	 * exactly once, from it or later.
	 */
	void (*hangup)(struct tapdisk_control_reply *reply, void *arg);
	void *hangup_arg;
};

/*
 * Checks and handles one request.  Replies go to @reply, some of them later (PAUSE and CLOSE
 * wait for the VBD to drain), so @reply must stay valid until its complete() has run.
 * complete() runs exactly once per request.
 */
void tapdisk_control_handle_message(const tapdisk_message_t *req,
				    struct tapdisk_control_reply *reply);

/* What a handler returns when a callback of its own replies and completes later. */
#define CONTROL_PENDING 1

struct td_vbd_handle;

/* COLO (tapdisk-control-colo.c): returns 0 once replied, or CONTROL_PENDING. */
int tapdisk_control_handle_colo(const tapdisk_message_t *req, struct td_vbd_handle *vbd,
				struct tapdisk_control_reply *reply);

#endif

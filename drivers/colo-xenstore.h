/*
 * The colo driver's xenstore side, private header: one section per file.
 *
 *   colo-xenstore.c         in tapdisk's loop: which VBD is bound to which xenstore directory,
 *                           requests carried out once, results, state nodes, and the
 *                           Primary's checkpoint-wanted
 *   colo-xenstore-thread.c  the one thread that talks to xenstore through libxenstore, so that
 *                           a slow or dead xenstored never stalls guest I/O
 *
 * docs/xenstore.md is the layout and the rules.  The two sides share only the queues below,
 * under one mutex; everything else of colo-xenstore.c runs in tapdisk's loop alone.
 */
#ifndef _COLO_XENSTORE_H_
#define _COLO_XENSTORE_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "list.h"
#include "tapdisk-vbd.h"

/* ---- colo-xenstore.c: for the COLO control message ---- */

typedef void (*colo_xs_bound_t)(void *arg, int err, const char *why);

/*
 * Binds @vbd to its directory @disk_dir (".../disks/NAME").  Returns 0 and calls @done once,
 * from tapdisk's loop, when the watches are in place (or binding failed); or returns a
 * negative errno with the reason in @why.
 */
int colo_xenstore_bind(td_vbd_t *vbd, const char *disk_dir, colo_xs_bound_t done, void *arg,
		       char *why, size_t why_size);
int colo_xenstore_unbind(td_vbd_t *vbd, char *why, size_t why_size);

/* ---- colo-xenstore-thread.c ---- */

enum colo_xs_event_type {
	COLO_XS_EV_BOUND,     /* a bind finished: err, text = why, baseline, threshold */
	COLO_XS_EV_REQUEST,   /* D/request fired: present, text */
	COLO_XS_EV_THRESHOLD, /* D/checkpoint-threshold fired: present, text */
};

struct colo_xs_event {
	struct list_head next;
	enum colo_xs_event_type type;
	unsigned int binding;
	int err;	   /* BOUND: 0 or a negative errno */
	bool present;	   /* the node exists */
	uint64_t baseline; /* BOUND: the highest request id already in xenstore */
	char *text;
};

/*
 * Starts the thread once; returns the fd that becomes readable when events wait, or a
 * negative errno.
 */
int colo_xs_thread_start(void);
void colo_xs_thread_bind(unsigned int binding, const char *dom_dir, const char *disk_dir);
void colo_xs_thread_unbind(unsigned int binding);
/*
 * Sets node @path to @value.  Only the latest value of a node is kept until it is written,
 * and every value is written again after a reconnection.
 */
void colo_xs_thread_write(const char *path, const char *value);
/* Forgets the values of every node below @dir (the VBD is unbound). */
void colo_xs_thread_forget(const char *dir);
/* The next event, or NULL; the caller frees it with colo_xs_event_free. */
struct colo_xs_event *colo_xs_thread_next_event(void);
void colo_xs_event_free(struct colo_xs_event *ev);

#endif

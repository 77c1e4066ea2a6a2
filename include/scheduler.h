/* Event modes and callback type of the tapdisk event loop (blktap3 drivers/scheduler.h). */
#ifndef _TAPDISK_SCHEDULER_H_
#define _TAPDISK_SCHEDULER_H_

#include <stdint.h>
#include <sys/time.h>

#define SCHEDULER_POLL_READ_FD   0x1
#define SCHEDULER_POLL_WRITE_FD  0x2
#define SCHEDULER_POLL_EXCEPT_FD 0x4
#define SCHEDULER_POLL_TIMEOUT   0x8

#define SCHEDULER_POLL_FD (SCHEDULER_POLL_READ_FD | SCHEDULER_POLL_WRITE_FD | SCHEDULER_POLL_EXCEPT_FD)

/* The longest the loop sleeps when no timer is due, in seconds. */
#define SCHEDULER_MAX_TIMEOUT 600

typedef int32_t event_id_t;

/* @mode holds the bits that are pending for this call. */
typedef void (*event_cb_t)(event_id_t id, char mode, void *private);

#endif

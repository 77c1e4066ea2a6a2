/*
 * The tapdisk driver API: the types a disk driver sees.
 *
 * Names, field order and signatures follow blktap3 (v3.55 to v4.0), so that a driver
 * written against blktap3 compiles here unchanged, and ours compile there.  The few
 * extensions (flush) are marked, and a driver tests TD_HAVE_QUEUE_FLUSH before it uses them.
 */
#ifndef _TAPDISK_H_
#define _TAPDISK_H_

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/time.h>
#include <sys/uio.h>

/* blktap3's drivers log and report stats with only tapdisk.h included: so can ours. */
#include "list.h"
#include "tapdisk-log.h"
#include "tapdisk-stats.h"

extern unsigned int PAGE_SIZE;
extern unsigned int PAGE_MASK;
extern unsigned int PAGE_SHIFT;

#define MAX_SEGMENTS_PER_REQ 11
#define SECTOR_SHIFT 9
#define DEFAULT_SECTOR_SIZE 512

#ifndef BLKIF_MAX_SEGMENTS_PER_REQUEST
#define BLKIF_MAX_SEGMENTS_PER_REQUEST 11
#endif
#define MAX_REQUESTS 32U
#define TAPDISK_DATA_REQUESTS (MAX_REQUESTS * BLKIF_MAX_SEGMENTS_PER_REQUEST)

/* Returned by td_get_parent_id: the image has no parent (not an error). */
#define TD_NO_PARENT 1

#define MAX_NAME_LEN 1000
#define MAX_RAMDISK_SIZE 1024000

typedef uint16_t td_uuid_t;
typedef uint32_t td_flag_t;
typedef uint64_t td_sector_t;

typedef struct td_disk_id td_disk_id_t;
typedef struct td_disk_info td_disk_info_t;
typedef struct td_request td_request_t;
typedef struct td_driver_handle td_driver_t;
typedef struct td_image_handle td_image_t;
typedef struct td_vbd_handle td_vbd_t;
typedef struct td_vbd_request td_vbd_request_t;
typedef struct tapdisk_stats_ctx td_stats_t;

enum TD_OPS {
	TD_OP_READ = 0,
	TD_OP_WRITE,
	TD_OP_BLOCK_STATUS,
	TD_OPS_END
};

/*
 * Extension: make every write this image completed before the flush was queued
 * durable.  Delivered through tap_disk.td_queue_flush with sec = secs = 0.
 */
#define TD_OP_FLUSH 0x10
#define TD_HAVE_QUEUE_FLUSH 1

#define TD_BLOCK_STATE_NONE 0
#define TD_BLOCK_STATE_HOLE 1
#define TD_BLOCK_STATE_ZERO 2

#define TD_OPEN_QUIET 0x00001
#define TD_OPEN_QUERY 0x00002
#define TD_OPEN_RDONLY 0x00004
#define TD_OPEN_STRICT 0x00008
#define TD_OPEN_SHAREABLE 0x00010
#define TD_OPEN_ADD_CACHE 0x00020
#define TD_OPEN_VHD_INDEX 0x00040
#define TD_OPEN_ADD_LOG 0x00080
#define TD_OPEN_LOCAL_CACHE 0x00100
#define TD_OPEN_REUSE_PARENT 0x00200
#define TD_OPEN_SECONDARY 0x00400
#define TD_OPEN_STANDBY 0x00800
#define TD_IGNORE_ENOSPC 0x01000
#define TD_OPEN_NO_O_DIRECT 0x02000

#define TD_CREATE_SPARSE 0x00001
#define TD_CREATE_MULTITYPE 0x00002

#define td_flag_set(word, flag) ((word) |= (flag))
#define td_flag_clear(word, flag) ((word) &= ~(flag))
#define td_flag_test(word, flag) ((word) & (flag))

struct td_disk_id {
	char *name;
	int type;
	int flags;
};

struct td_disk_info {
	td_sector_t size; /* in sectors */
	long sector_size;
	uint32_t info;
};

struct td_iovec {
	void *base;
	unsigned int secs;
};

struct td_vbd_encryption {
	uint8_t key_size;
	uint8_t *encryption_key;
};

typedef void (*td_vreq_callback_t)(td_vbd_request_t *vreq, int error, void *token, int final);

/* One request from a client of the VBD (the NBD server or a ring). */
struct td_vbd_request {
	int op;
	td_sector_t sec;
	struct td_iovec *iov;
	int iovcnt;

	td_vreq_callback_t cb;
	void *token;
	const char *name;

	int error;
	int prev_error;

	int submitting;
	int secs_pending;
	int num_retries;
	struct timeval ts;
	struct timeval last_try;

	bool skip_mirror;

	td_vbd_t *vbd;
	struct list_head next;
	struct list_head *list_head;
};

typedef void (*td_callback_t)(td_request_t treq, int error);

/* One piece of a vbd request, passed to drivers by value. */
struct td_request {
	int op;
	void *buf;
	int status;

	td_sector_t sec;
	int secs;

	td_image_t *image;

	td_callback_t cb;
	void *cb_data;

	int sidx;
	td_vbd_request_t *vreq;
};

/* A driver's operations.  queue_read/write/block_status, debug, stats and rrd may be NULL. */
struct tap_disk {
	const char *disk_type;
	td_flag_t flags;
	int private_data_size;
	int (*td_open)(td_driver_t *driver, const char *name, struct td_vbd_encryption *encryption,
		       td_flag_t flags);
	int (*td_close)(td_driver_t *driver);
	int (*td_get_parent_id)(td_driver_t *driver, td_disk_id_t *id);
	int (*td_validate_parent)(td_driver_t *driver, td_driver_t *parent, td_flag_t flags);
	void (*td_queue_read)(td_driver_t *driver, td_request_t treq);
	void (*td_queue_block_status)(td_driver_t *driver, td_request_t treq);
	void (*td_queue_write)(td_driver_t *driver, td_request_t treq);
	void (*td_debug)(td_driver_t *driver);
	void (*td_stats)(td_driver_t *driver, td_stats_t *st);
	int (*td_rrd)(td_driver_t *driver, char *buf, int *const off, int *const size);

	/* Extension (TD_HAVE_QUEUE_FLUSH): NULL passes the flush to the parent image. */
	void (*td_queue_flush)(td_driver_t *driver, td_request_t treq);
};

#endif

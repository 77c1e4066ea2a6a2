/*
 * The tapdisk control protocol: one fixed-size message each way on the ctl<pid> socket,
 * in host byte order.  Layout and ids are blktap3 v4.0's (544 bytes on x86_64), so that
 * blktap3's tools can drive this tapdisk.  Ids from TAPDISK_MESSAGE_EXT_BASE on are ours.
 * docs/control-protocol.md describes every message.
 */
#ifndef _TAPDISK_MESSAGE_H_
#define _TAPDISK_MESSAGE_H_

#include <inttypes.h>
#include <sys/types.h>

#define TAPDISK_MESSAGE_MAX_PATH_LENGTH 256
#define TAPDISK_MESSAGE_STRING_LENGTH 256

#define TAPDISK_MESSAGE_MAX_MINORS ((TAPDISK_MESSAGE_MAX_PATH_LENGTH / sizeof(int)) - 1)

#define TAPDISK_MESSAGE_FLAG_SHARED 0x001
#define TAPDISK_MESSAGE_FLAG_RDONLY 0x002
#define TAPDISK_MESSAGE_FLAG_ADD_CACHE 0x004
#define TAPDISK_MESSAGE_FLAG_VHD_INDEX 0x008
#define TAPDISK_MESSAGE_FLAG_ADD_LOG 0x010
#define TAPDISK_MESSAGE_FLAG_ADD_LCACHE 0x020
#define TAPDISK_MESSAGE_FLAG_REUSE_PRT 0x040
#define TAPDISK_MESSAGE_FLAG_SECONDARY 0x080
#define TAPDISK_MESSAGE_FLAG_STANDBY 0x100
#define TAPDISK_MESSAGE_FLAG_NO_O_DIRECT 0x200
#define TAPDISK_MESSAGE_FLAG_OPEN_ENCRYPTED 0x400

typedef struct tapdisk_message tapdisk_message_t;
typedef uint32_t tapdisk_message_flag_t;
typedef struct tapdisk_message_image tapdisk_message_image_t;
typedef struct tapdisk_message_params tapdisk_message_params_t;
typedef struct tapdisk_message_string tapdisk_message_string_t;
typedef struct tapdisk_message_response tapdisk_message_response_t;
typedef struct tapdisk_message_minors tapdisk_message_minors_t;
typedef struct tapdisk_message_list tapdisk_message_list_t;
typedef struct tapdisk_message_stat tapdisk_message_stat_t;
typedef struct tapdisk_message_blkif tapdisk_message_blkif_t;
typedef struct tapdisk_message_resume tapdisk_message_resume_t;

struct tapdisk_message_params {
	tapdisk_message_flag_t flags;
	uint32_t devnum;
	uint32_t domid;
	char path[TAPDISK_MESSAGE_MAX_PATH_LENGTH];
	uint32_t prt_devnum;
	uint16_t req_timeout;
	char secondary[TAPDISK_MESSAGE_MAX_PATH_LENGTH];
};

struct tapdisk_message_image {
	uint64_t sectors;
	uint32_t sector_size;
	uint32_t info;
};

struct tapdisk_message_string {
	char text[TAPDISK_MESSAGE_STRING_LENGTH];
};

struct tapdisk_message_response {
	int error;
	char message[TAPDISK_MESSAGE_STRING_LENGTH];
};

struct tapdisk_message_minors {
	int count;
	int list[TAPDISK_MESSAGE_MAX_MINORS];
};

struct tapdisk_message_list {
	int count;
	int minor;
	int state;
	char path[TAPDISK_MESSAGE_MAX_PATH_LENGTH];
};

struct tapdisk_message_stat {
	uint16_t type;
	uint16_t cookie;
	size_t length;
};

struct tapdisk_message_blkif {
	uint32_t domid;
	uint32_t devid;
	uint32_t gref[8];
	uint32_t order;
	uint32_t proto;
	char pool[TAPDISK_MESSAGE_STRING_LENGTH];
	uint32_t port;
	uint32_t poll_duration;
	uint32_t poll_idle_threshold;
};

/*
 * Declared by blktap3 but used by none of its tools: RESUME carries its new image in
 * u.params (flags, path, secondary), as blktap3's tap-ctl sends it and its tapdisk reads
 * it.  So do ours; this layout is kept only so that code written against it compiles.
 */
struct tapdisk_message_resume {
	tapdisk_message_flag_t flags;
	char new_params[TAPDISK_MESSAGE_MAX_PATH_LENGTH];
	char secondary[TAPDISK_MESSAGE_MAX_PATH_LENGTH];
};

struct tapdisk_message {
	uint16_t type;
	uint16_t cookie; /* the VBD minor */

	union {
		pid_t tapdisk_pid;
		tapdisk_message_image_t image;
		tapdisk_message_params_t params;
		tapdisk_message_string_t string;
		tapdisk_message_minors_t minors;
		tapdisk_message_response_t response;
		tapdisk_message_list_t list;
		tapdisk_message_stat_t info;
		tapdisk_message_blkif_t blkif;
		tapdisk_message_resume_t resume;
	} u;
};

enum tapdisk_message_id {
	TAPDISK_MESSAGE_ERROR = 1,
	TAPDISK_MESSAGE_RUNTIME_ERROR,
	TAPDISK_MESSAGE_PID,
	TAPDISK_MESSAGE_PID_RSP,
	TAPDISK_MESSAGE_ATTACH,
	TAPDISK_MESSAGE_ATTACH_RSP,
	TAPDISK_MESSAGE_OPEN,
	TAPDISK_MESSAGE_OPEN_RSP,
	TAPDISK_MESSAGE_PAUSE,
	TAPDISK_MESSAGE_PAUSE_RSP,
	TAPDISK_MESSAGE_RESUME,
	TAPDISK_MESSAGE_RESUME_RSP,
	TAPDISK_MESSAGE_CLOSE,
	TAPDISK_MESSAGE_CLOSE_RSP,
	TAPDISK_MESSAGE_DETACH,
	TAPDISK_MESSAGE_DETACH_RSP,
	TAPDISK_MESSAGE_LIST_MINORS,
	TAPDISK_MESSAGE_LIST_MINORS_RSP,
	TAPDISK_MESSAGE_LIST,
	TAPDISK_MESSAGE_LIST_RSP,
	TAPDISK_MESSAGE_STATS,
	TAPDISK_MESSAGE_STATS_RSP,
	TAPDISK_MESSAGE_FORCE_SHUTDOWN,
	TAPDISK_MESSAGE_XENBLKIF_CONNECT,
	TAPDISK_MESSAGE_XENBLKIF_CONNECT_RSP,
	TAPDISK_MESSAGE_XENBLKIF_DISCONNECT,
	TAPDISK_MESSAGE_XENBLKIF_DISCONNECT_RSP,
	TAPDISK_MESSAGE_DISK_INFO,
	TAPDISK_MESSAGE_DISK_INFO_RSP,
	TAPDISK_MESSAGE_EXIT,

	/* Our own messages start here, well clear of blktap3's. */
	TAPDISK_MESSAGE_EXT_BASE = 64,
	TAPDISK_MESSAGE_NBD_TCP = TAPDISK_MESSAGE_EXT_BASE, /* string: "host:port"; reply string */
	TAPDISK_MESSAGE_NBD_TCP_RSP,
	TAPDISK_MESSAGE_COLO, /* string: "start primary", "checkpoint"...; reply info + text */
	TAPDISK_MESSAGE_COLO_RSP,
	TAPDISK_MESSAGE_EXT_END,
};

#define TAPDISK_MESSAGE_MAX TAPDISK_MESSAGE_EXT_END

/* A LIST_RSP with this minor ends the listing. */
#define TAPDISK_MESSAGE_LIST_END_MINOR (-1)

/* STATS cookie that asks for every VBD. */
#define TAPDISK_MESSAGE_STATS_ALL 0xffff

/* Upper bound of the text after a STATS_RSP, so a reader never allocates more. */
#define TAPDISK_MESSAGE_STATS_MAX (1 << 20)

/* The same for the text after a COLO_RSP: "epoch=N" or the status JSON. */
#define TAPDISK_MESSAGE_COLO_MAX (64 << 10)

const char *tapdisk_message_name(int id);

#endif

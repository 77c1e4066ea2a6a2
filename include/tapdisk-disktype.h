/* The table of disk types and their drivers (blktap3 drivers/tapdisk-disktype.h). */
#ifndef _TAPDISK_DISKTYPE_H_
#define _TAPDISK_DISKTYPE_H_

#define DISK_TYPE_AIO 0
#define DISK_TYPE_SYNC 1
#define DISK_TYPE_VMDK 2
#define DISK_TYPE_VHDSYNC 3
#define DISK_TYPE_VHD 4
#define DISK_TYPE_RAM 5
#define DISK_TYPE_QCOW 6
#define DISK_TYPE_BLOCK_CACHE 7
#define DISK_TYPE_VINDEX 8
#define DISK_TYPE_LOG 9
#define DISK_TYPE_REMUS 10
#define DISK_TYPE_LCACHE 11
#define DISK_TYPE_LLECACHE 12
#define DISK_TYPE_LLPCACHE 13
#define DISK_TYPE_VALVE 14
#define DISK_TYPE_NBD 15
/* 16 was NTNX in blktap3, deprecated there; our replication filter takes the next free id. */
#define DISK_TYPE_COLO 17
#define DISK_TYPE_MAX 18

#define DISK_TYPE_NAME_MAX 32

#define DISK_TYPE_SINGLE_CONTROLLER (1 << 0)
#define DISK_TYPE_FILTER (1 << 1)

typedef struct disk_info {
	const char *name;
	const char *desc;
	unsigned int flags;
} disk_info_t;

extern const disk_info_t *tapdisk_disk_types[];
extern const struct tap_disk *tapdisk_disk_drivers[];

/* Returns the type id, -ENOENT for an unknown name, -ENOSYS for a type without a driver. */
int tapdisk_disktype_find(const char *name);
/* Splits "type:path" into its type id and path; returns a negative errno for a bad name. */
int tapdisk_parse_disk_type(const char *params, const char **path, int *type);

#endif

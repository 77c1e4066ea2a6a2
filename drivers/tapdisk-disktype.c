/* The disk type table: names as blktap3 has them, and the drivers this runtime carries. */
#include <errno.h>
#include <string.h>

#include "tapdisk-disktype.h"
#include "tapdisk.h"

static const disk_info_t aio_disk = { "aio", "raw image (aio)", 0 };
static const disk_info_t sync_disk = { "sync", "raw image (sync)", 0 };
static const disk_info_t vmdk_disk = { "vmdk", "vmware image (vmdk)", 1 };
static const disk_info_t vhdsync_disk = { "vhdsync", "virtual server image (vhd) - synchronous", 1 };
static const disk_info_t vhd_disk = { "vhd", "virtual server image (vhd)", 0 };
static const disk_info_t ram_disk = { "ram", "ramdisk image (ram)", DISK_TYPE_SINGLE_CONTROLLER };
static const disk_info_t qcow_disk = { "qcow", "qcow disk (qcow)", 0 };
static const disk_info_t block_cache_disk = { "bc", "block cache image (bc)", DISK_TYPE_FILTER };
static const disk_info_t vhd_index_disk = { "vhdi", "vhd index image (vhdi)", 1 };
static const disk_info_t log_disk = { "log", "write logger (log)", DISK_TYPE_FILTER };
static const disk_info_t remus_disk = { "remus", "remus disk replicator (remus)", 0 };
static const disk_info_t lcache_disk = { "lc", "local parent cache (lc)", DISK_TYPE_FILTER };
static const disk_info_t llpcache_disk = { "llp", "local leaf cache, persistent (llp)", 0 };
static const disk_info_t llecache_disk = { "lle", "local leaf cache, ephemeral (lle)", 0 };
static const disk_info_t valve_disk = { "valve", "group rate limiting (valve)", DISK_TYPE_FILTER };
static const disk_info_t nbd_disk = { "nbd", "export to a NBD server", 0 };
static const disk_info_t colo_disk = { "colo", "COLO disk replication (colo)", DISK_TYPE_FILTER };

const disk_info_t *tapdisk_disk_types[] = {
	[DISK_TYPE_AIO] = &aio_disk,
	[DISK_TYPE_SYNC] = &sync_disk,
	[DISK_TYPE_VMDK] = &vmdk_disk,
	[DISK_TYPE_VHDSYNC] = &vhdsync_disk,
	[DISK_TYPE_VHD] = &vhd_disk,
	[DISK_TYPE_RAM] = &ram_disk,
	[DISK_TYPE_QCOW] = &qcow_disk,
	[DISK_TYPE_BLOCK_CACHE] = &block_cache_disk,
	[DISK_TYPE_VINDEX] = &vhd_index_disk,
	[DISK_TYPE_LOG] = &log_disk,
	[DISK_TYPE_REMUS] = &remus_disk,
	[DISK_TYPE_LCACHE] = &lcache_disk,
	[DISK_TYPE_LLECACHE] = &llecache_disk,
	[DISK_TYPE_LLPCACHE] = &llpcache_disk,
	[DISK_TYPE_VALVE] = &valve_disk,
	[DISK_TYPE_NBD] = &nbd_disk,
	[DISK_TYPE_COLO] = &colo_disk,
	[DISK_TYPE_MAX] = NULL,
};

extern struct tap_disk tapdisk_aio;
extern struct tap_disk tapdisk_colo;

const struct tap_disk *tapdisk_disk_drivers[] = {
	[DISK_TYPE_AIO] = &tapdisk_aio,
	[DISK_TYPE_COLO] = &tapdisk_colo,
	[DISK_TYPE_MAX] = NULL,
};

int tapdisk_disktype_find(const char *name)
{
	for (int i = 0; i < DISK_TYPE_MAX; i++) {
		const disk_info_t *info = tapdisk_disk_types[i];

		if (!info || strcmp(name, info->name))
			continue;
		return tapdisk_disk_drivers[i] ? i : -ENOSYS;
	}
	return -ENOENT;
}

int tapdisk_parse_disk_type(const char *params, const char **path, int *type)
{
	char name[DISK_TYPE_NAME_MAX];
	const char *colon;
	size_t len;
	int id;

	if (!params)
		return -EINVAL;
	colon = strchr(params, ':');
	if (!colon)
		return -EINVAL;
	len = colon - params;
	if (!len || len >= sizeof(name))
		return -EINVAL;
	memcpy(name, params, len);
	name[len] = '\0';
	id = tapdisk_disktype_find(name);
	if (id < 0)
		return id;
	if (!colon[1])
		return -EINVAL;
	*type = id;
	*path = colon + 1;
	return 0;
}

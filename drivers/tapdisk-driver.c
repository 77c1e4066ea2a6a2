/* Driver handles: one per open image, with the driver's private data. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tapdisk-disktype.h"
#include "tapdisk-driver.h"
#include "tapdisk-log.h"
#include "tapdisk-server.h"
#include "tapdisk-stats.h"

td_driver_t *tapdisk_driver_allocate(int type, const char *name, td_flag_t flags)
{
	const struct tap_disk *ops = tapdisk_server_find_driver_interface(type);
	td_driver_t *driver;

	if (!ops)
		return NULL;
	driver = calloc(1, sizeof(*driver));
	if (!driver)
		return NULL;
	driver->name = strdup(name);
	driver->data = calloc(1, ops->private_data_size > 0 ? ops->private_data_size : 1);
	if (!driver->name || !driver->data) {
		tapdisk_driver_free(driver);
		return NULL;
	}
	driver->ops = ops;
	driver->type = type;
	driver->refcnt = 1;
	driver->log_minor = tlog_vbd();
	INIT_LIST_HEAD(&driver->next);
	/* blktap3's rate: 16 messages, then one per 90 s / 16. */
	tapdisk_loglimit_init(&driver->loglimit, 16, 90 * 1000);
	if (td_flag_test(flags, TD_OPEN_RDONLY))
		td_flag_set(driver->state, TD_DRIVER_RDONLY);
	return driver;
}

void tapdisk_driver_free(td_driver_t *driver)
{
	if (!driver)
		return;
	free(driver->name);
	free(driver->data);
	free(driver);
}

void tapdisk_driver_stats(td_driver_t *driver, td_stats_t *st)
{
	const disk_info_t *info = tapdisk_disk_types[driver->type];

	tapdisk_stats_field(st, "type", "d", driver->type);
	tapdisk_stats_field(st, "name", "s", info ? info->name : "unknown");
	if (driver->ops->td_stats) {
		tapdisk_stats_field(st, "status", "{");
		driver->ops->td_stats(driver, st);
		tapdisk_stats_leave(st, '}');
	} else {
		tapdisk_stats_field(st, "status", "s", "null");
	}
}

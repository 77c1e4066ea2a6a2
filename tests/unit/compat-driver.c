/*
 * A filter driver written the way blktap3's drivers are: it includes only the three headers
 * they include and uses only blktap3's API.  That it builds here (test-vbd runs it) is the
 * check that such drivers compile against ours unchanged.
 */
#include <errno.h>
#include <stdlib.h>

#include "tapdisk.h"
#include "tapdisk-driver.h"
#include "tapdisk-interface.h"

struct compat_state {
	unsigned long long forwarded;
};

int compat_forwarded; /* read by the test */

static int compat_open(td_driver_t *driver, const char *name, struct td_vbd_encryption *encryption,
		       td_flag_t flags)
{
	struct compat_state *prv = driver->data;

	memset(prv, 0, sizeof(*prv));
	DPRINTF("compat filter over %s", name);
	return 0;
}

static int compat_close(td_driver_t *driver)
{
	return 0;
}

static void compat_queue(td_driver_t *driver, td_request_t treq)
{
	struct compat_state *prv = driver->data;

	prv->forwarded += (unsigned long long)treq.secs * SECTOR_SIZE;
	compat_forwarded++;
	td_forward_request(treq);
}

static int compat_get_parent_id(td_driver_t *driver, td_disk_id_t *id)
{
	id->name = strdup(driver->name);
	if (!id->name)
		return -ENOMEM;
	id->type = 5; /* DISK_TYPE_RAM: the test's in-memory disk */
	return 0;
}

static int compat_validate_parent(td_driver_t *driver, td_driver_t *parent, td_flag_t flags)
{
	return 0;
}

static void compat_stats(td_driver_t *driver, td_stats_t *st)
{
	struct compat_state *prv = driver->data;

	tapdisk_stats_field(st, "forwarded", "llu", prv->forwarded);
}

struct tap_disk tapdisk_compat_filter = {
	.disk_type = "tapdisk_compat",
	.flags = 0,
	.private_data_size = sizeof(struct compat_state),
	.td_open = compat_open,
	.td_close = compat_close,
	.td_queue_read = compat_queue,
	.td_queue_write = compat_queue,
	.td_get_parent_id = compat_get_parent_id,
	.td_validate_parent = compat_validate_parent,
	.td_debug = NULL,
	.td_stats = compat_stats,
};

/* The per-image driver handle (blktap3 drivers/tapdisk-driver.h). */
#ifndef _TAPDISK_DRIVER_H_
#define _TAPDISK_DRIVER_H_

#include "tapdisk.h"
#include "tapdisk-loglimit.h"

#define SECTOR_SIZE 512

#define TD_DRIVER_OPEN 0x0001
#define TD_DRIVER_RDONLY 0x0002

struct td_driver_handle {
	int type;
	char *name;
	int storage;
	int refcnt;
	td_flag_t state;

	/* Filled in by the driver's td_open. */
	td_disk_info_t info;

	/* private_data_size bytes, zeroed by the runtime. */
	void *data;
	const struct tap_disk *ops;

	td_loglimit_t loglimit;
	int log_minor; /* the VBD it was opened for, which its error lines name; -1: none */
	struct list_head next;
};

td_driver_t *tapdisk_driver_allocate(int type, const char *name, td_flag_t flags);
void tapdisk_driver_free(td_driver_t *driver);
void tapdisk_driver_stats(td_driver_t *driver, td_stats_t *st);

#endif

/* Images of a VBD chain, and the checks every request passes before a driver sees it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tapdisk-driver.h"
#include "tapdisk-image.h"
#include "tapdisk-stats.h"

td_image_t *tapdisk_image_allocate(const char *file, int type, td_flag_t flags)
{
	td_image_t *image = calloc(1, sizeof(*image));

	if (!image)
		return NULL;
	image->name = strdup(file);
	if (!image->name) {
		free(image);
		return NULL;
	}
	image->type = type;
	image->flags = flags;
	INIT_LIST_HEAD(&image->next);
	return image;
}

void tapdisk_image_free(td_image_t *image)
{
	if (!image)
		return;
	list_del(&image->next);
	free(image->name);
	free(image);
}

int tapdisk_image_check_td_request(td_image_t *image, td_request_t treq)
{
	td_driver_t *driver = image->driver;
	int rdonly = td_flag_test(image->flags, TD_OPEN_RDONLY);

	if (!driver || !td_flag_test(driver->state, TD_DRIVER_OPEN))
		return -ENODEV;
	switch (treq.op) {
	case TD_OP_WRITE:
		if (rdonly)
			return -EPERM;
		/* fall through */
	case TD_OP_READ:
	case TD_OP_BLOCK_STATUS:
		if (treq.secs <= 0 || treq.sec + (td_sector_t)treq.secs > image->info.size)
			return -EINVAL;
		return 0;
	case TD_OP_FLUSH:
		return 0;
	default:
		return -EOPNOTSUPP;
	}
}

void tapdisk_image_stats(td_image_t *image, td_stats_t *st)
{
	tapdisk_stats_enter(st, '{');
	tapdisk_stats_field(st, "name", "s", image->name);
	tapdisk_stats_field(st, "hits", "[");
	tapdisk_stats_val(st, "llu", image->stats.hits.rd);
	tapdisk_stats_val(st, "llu", image->stats.hits.wr);
	tapdisk_stats_leave(st, ']');
	tapdisk_stats_field(st, "fail", "[");
	tapdisk_stats_val(st, "llu", image->stats.fail.rd);
	tapdisk_stats_val(st, "llu", image->stats.fail.wr);
	tapdisk_stats_leave(st, ']');
	tapdisk_stats_field(st, "driver", "{");
	if (image->driver)
		tapdisk_driver_stats(image->driver, st);
	tapdisk_stats_leave(st, '}');
	tapdisk_stats_leave(st, '}');
}

/* One image of a VBD's chain (blktap3 drivers/tapdisk-image.h). */
#ifndef _TAPDISK_IMAGE_H_
#define _TAPDISK_IMAGE_H_

#include "tapdisk.h"

struct td_image_handle {
	int type;
	char *name;
	td_flag_t flags;

	td_driver_t *driver;
	td_disk_info_t info;

	struct list_head next;

	struct {
		struct {
			unsigned long long rd;
			unsigned long long wr;
		} hits, fail;
	} stats;
};

#define tapdisk_for_each_image(_image, _head) list_for_each_entry(_image, _head, next)
#define tapdisk_for_each_image_safe(_image, _next, _head) \
	list_for_each_entry_safe(_image, _next, _head, next)

td_image_t *tapdisk_image_allocate(const char *file, int type, td_flag_t flags);
void tapdisk_image_free(td_image_t *image);
int tapdisk_image_check_td_request(td_image_t *image, td_request_t treq);
void tapdisk_image_stats(td_image_t *image, td_stats_t *st);

#endif

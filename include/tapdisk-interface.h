/* Helpers that drivers call (blktap3 drivers/tapdisk-interface.h). */
#ifndef _TAPDISK_INTERFACE_H_
#define _TAPDISK_INTERFACE_H_

#include <stddef.h>

#include "io-backend.h"
#include "tapdisk.h"

int td_open(td_image_t *image, struct td_vbd_encryption *encryption);
int __td_open(td_image_t *image, struct td_vbd_encryption *encryption, td_disk_info_t *preseed);
int td_load(td_image_t *image);
int td_close(td_image_t *image);
int td_get_parent_id(td_image_t *image, td_disk_id_t *id);
int td_validate_parent(td_image_t *image, td_image_t *parent);

void td_queue_write(td_image_t *image, td_request_t treq);
void td_queue_read(td_image_t *image, td_request_t treq);
void td_queue_block_status(td_image_t *image, td_request_t *treq);
void td_queue_flush(td_image_t *image, td_request_t treq);
void td_forward_request(td_request_t treq);
void td_complete_request(td_request_t treq, int res);

void td_debug(td_image_t *image);

void td_queue_tiocb(td_driver_t *driver, struct tiocb *tiocb);
void td_prep_read(td_driver_t *driver, struct tiocb *tiocb, int fd, char *buf, size_t bytes,
		  long long offset, td_queue_callback_t cb, void *arg);
void td_prep_write(td_driver_t *driver, struct tiocb *tiocb, int fd, char *buf, size_t bytes,
		   long long offset, td_queue_callback_t cb, void *arg);
/* Extension: an fdatasync of @fd, completed like a read or write. */
void td_prep_fdatasync(td_driver_t *driver, struct tiocb *tiocb, int fd, td_queue_callback_t cb,
		       void *arg);

void td_panic(void) __attribute__((noreturn));

#endif

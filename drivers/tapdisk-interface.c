/* The calls drivers make: open and close images, queue requests, queue disk I/O. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "libaio-backend.h"
#include "tapdisk-driver.h"
#include "tapdisk-image.h"
#include "tapdisk-interface.h"
#include "tapdisk-log.h"
#include "tapdisk-server.h"
#include "tapdisk-vbd.h"

int __td_open(td_image_t *image, struct td_vbd_encryption *encryption, td_disk_info_t *preseed)
{
	td_driver_t *driver = image->driver;
	int err;

	if (!driver) {
		driver = tapdisk_driver_allocate(image->type, image->name, image->flags);
		if (!driver)
			return -ENOMEM;
		if (preseed)
			driver->info = *preseed;
	}
	if (!td_flag_test(driver->state, TD_DRIVER_OPEN)) {
		err = driver->ops->td_open(driver, image->name, encryption, image->flags);
		if (err) {
			/* The driver said why; we only add which image. */
			if (!image->driver)
				tapdisk_driver_free(driver);
			return err;
		}
		td_flag_set(driver->state, TD_DRIVER_OPEN);
	}
	image->driver = driver;
	image->info = driver->info;
	return 0;
}

int td_open(td_image_t *image, struct td_vbd_encryption *encryption)
{
	return __td_open(image, encryption, NULL);
}

int td_load(td_image_t *image)
{
	/* Drivers are never shared between VBDs here: every image opens its own. */
	return -ENODEV;
}

int td_close(td_image_t *image)
{
	td_driver_t *driver = image->driver;
	int err = 0;

	if (!driver)
		return -ENODEV;
	if (td_flag_test(driver->state, TD_DRIVER_OPEN))
		err = driver->ops->td_close(driver);
	td_flag_clear(driver->state, TD_DRIVER_OPEN);
	tapdisk_driver_free(driver);
	image->driver = NULL;
	return err;
}

int td_get_parent_id(td_image_t *image, td_disk_id_t *id)
{
	td_driver_t *driver = image->driver;

	if (!driver)
		return -ENODEV;
	if (!td_flag_test(driver->state, TD_DRIVER_OPEN))
		return -EBADF;
	if (!driver->ops->td_get_parent_id)
		return TD_NO_PARENT;
	return driver->ops->td_get_parent_id(driver, id);
}

int td_validate_parent(td_image_t *image, td_image_t *parent)
{
	td_driver_t *driver = image->driver, *pdriver = parent->driver;

	if (!driver || !pdriver)
		return -ENODEV;
	if (!driver->ops->td_validate_parent)
		return 0;
	return driver->ops->td_validate_parent(driver, pdriver, 0);
}

static void td_queue(td_image_t *image, td_request_t treq,
		     void (*fn)(td_driver_t *, td_request_t))
{
	int err;

	treq.image = image;
	err = tapdisk_image_check_td_request(image, treq);
	if (!err && !fn)
		err = -EOPNOTSUPP;
	if (err) {
		td_complete_request(treq, err);
		return;
	}
	fn(image->driver, treq);
}

void td_queue_write(td_image_t *image, td_request_t treq)
{
	td_queue(image, treq, image->driver ? image->driver->ops->td_queue_write : NULL);
}

void td_queue_read(td_image_t *image, td_request_t treq)
{
	td_queue(image, treq, image->driver ? image->driver->ops->td_queue_read : NULL);
}

void td_queue_block_status(td_image_t *image, td_request_t *treq)
{
	td_queue(image, *treq, image->driver ? image->driver->ops->td_queue_block_status : NULL);
}

void td_queue_flush(td_image_t *image, td_request_t treq)
{
	td_driver_t *driver = image->driver;

	treq.image = image;
	if (!driver || !td_flag_test(driver->state, TD_DRIVER_OPEN)) {
		td_complete_request(treq, -ENODEV);
		return;
	}
	/* A driver without a flush of its own holds nothing: its parent decides. */
	if (!driver->ops->td_queue_flush) {
		td_forward_request(treq);
		return;
	}
	driver->ops->td_queue_flush(driver, treq);
}

void td_forward_request(td_request_t treq)
{
	tapdisk_vbd_forward_request(treq);
}

void td_complete_request(td_request_t treq, int res)
{
	td_driver_t *driver = treq.image ? treq.image->driver : NULL;
	int prev;

	/* Completions arrive from the aio event that all VBDs share: name this one's minor. */
	prev = tlog_set_vbd(driver && driver->log_minor >= 0 ? driver->log_minor : tlog_vbd());
	treq.cb(treq, res);
	tlog_set_vbd(prev);
}

void td_debug(td_image_t *image)
{
	if (image->driver && image->driver->ops->td_debug)
		image->driver->ops->td_debug(image->driver);
}

void td_queue_tiocb(td_driver_t *driver, struct tiocb *tiocb)
{
	tapdisk_server_queue_tiocb(tiocb);
}

void td_prep_read(td_driver_t *driver, struct tiocb *tiocb, int fd, char *buf, size_t bytes,
		  long long offset, td_queue_callback_t cb, void *arg)
{
	tioq_prep_rw(tiocb, fd, 0, buf, bytes, offset, cb, arg);
}

void td_prep_write(td_driver_t *driver, struct tiocb *tiocb, int fd, char *buf, size_t bytes,
		   long long offset, td_queue_callback_t cb, void *arg)
{
	tioq_prep_rw(tiocb, fd, 1, buf, bytes, offset, cb, arg);
}

void td_prep_fdatasync(td_driver_t *driver, struct tiocb *tiocb, int fd, td_queue_callback_t cb,
		       void *arg)
{
	tioq_prep_fdatasync(tiocb, fd, cb, arg);
}

void td_panic(void)
{
	EPRINTF("tapdisk panic");
	abort();
}

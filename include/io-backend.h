/* Asynchronous disk I/O control blocks (blktap3 drivers/io-backend.h). */
#ifndef _TAPDISK_IO_BACKEND_H_
#define _TAPDISK_IO_BACKEND_H_

#include <libaio.h>

struct tiocb;

/* @err is 0 when every byte moved, a negative errno otherwise (-EIO for a short transfer). */
typedef void (*td_queue_callback_t)(void *arg, struct tiocb *tiocb, int err);

struct tiocb {
	td_queue_callback_t cb;
	void *arg;

	union uioc {
		struct iocb io;
	} uiocb;

	struct tiocb *next;
};

#endif

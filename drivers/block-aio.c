/*
 * The aio driver: a raw image (file or block device) read and written through libaio,
 * with O_DIRECT where the file system allows it.  Flush is an asynchronous fdatasync.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tapdisk-driver.h"
#include "tapdisk-interface.h"
#include "tapdisk-log.h"
#include "tapdisk-stats.h"
#include "tapdisk.h"

/* One slot per request the kernel queue can hold; beyond that requests get -EBUSY and retry. */
#define MAX_AIO_REQS 1024

struct tdaio_state;

struct aio_request {
	td_request_t treq;
	struct tiocb tiocb;
	struct tdaio_state *state;
};

struct tdaio_state {
	int fd;
	int direct;
	td_driver_t *driver;

	int aio_free_count;
	struct aio_request aio_requests[MAX_AIO_REQS];
	struct aio_request *aio_free_list[MAX_AIO_REQS];
};

static int tdaio_get_size(td_driver_t *driver, int fd, const char *name)
{
	struct stat st;
	uint64_t bytes;

	if (fstat(fd, &st)) {
		EPRINTF("%s: stat: %s", name, strerror(errno));
		return -errno;
	}
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, &bytes)) {
			EPRINTF("%s: cannot read the block device's size: %s", name, strerror(errno));
			return -errno;
		}
	} else if (S_ISREG(st.st_mode)) {
		bytes = st.st_size;
	} else {
		EPRINTF("%s: not a regular file or a block device", name);
		return -EINVAL;
	}
	if (bytes < DEFAULT_SECTOR_SIZE) {
		EPRINTF("%s: image too small (%llu bytes): it must hold at least one %d-byte sector",
			name, (unsigned long long)bytes, DEFAULT_SECTOR_SIZE);
		return -EINVAL;
	}
	if (bytes % DEFAULT_SECTOR_SIZE)
		DPRINTF("%s: the last %llu bytes are not a whole sector and are not served", name,
			(unsigned long long)(bytes % DEFAULT_SECTOR_SIZE));
	driver->info.size = bytes >> SECTOR_SHIFT;
	driver->info.sector_size = DEFAULT_SECTOR_SIZE;
	driver->info.info = 0;
	return 0;
}

/* O_DIRECT can open yet refuse 512-byte I/O (4 KiB-sector disks): try one before trusting it. */
static int tdaio_direct_works(int fd)
{
	void *buf;
	int ok;

	if (posix_memalign(&buf, 4096, DEFAULT_SECTOR_SIZE))
		return 0;
	ok = pread(fd, buf, DEFAULT_SECTOR_SIZE, 0) >= 0 || errno != EINVAL;
	free(buf);
	return ok;
}

static int tdaio_open(td_driver_t *driver, const char *name, struct td_vbd_encryption *encryption,
		      td_flag_t flags)
{
	struct tdaio_state *prv = driver->data;
	int rdonly = td_flag_test(flags, TD_OPEN_RDONLY);
	int oflags = (rdonly ? O_RDONLY : O_RDWR) | O_LARGEFILE | O_CLOEXEC;
	int fd, err;

	memset(prv, 0, sizeof(*prv));
	prv->fd = -1;
	prv->driver = driver;

	fd = -1;
	if (!td_flag_test(flags, TD_OPEN_NO_O_DIRECT)) {
		fd = open(name, oflags | O_DIRECT);
		if (fd >= 0 && !tdaio_direct_works(fd)) {
			close(fd);
			fd = -1;
			errno = EINVAL;
		}
		if (fd < 0 && errno != EINVAL) {
			err = -errno;
			EPRINTF("%s: cannot open%s: %s", name, rdonly ? "" : " for writing",
				strerror(errno));
			return err;
		}
		if (fd < 0)
			DPRINTF("%s: O_DIRECT not supported here, using the page cache", name);
	}
	if (fd < 0) {
		fd = open(name, oflags);
		if (fd < 0) {
			err = -errno;
			EPRINTF("%s: cannot open%s: %s", name, rdonly ? "" : " for writing",
				strerror(errno));
			return err;
		}
	} else {
		prv->direct = 1;
	}

	err = tdaio_get_size(driver, fd, name);
	if (err) {
		close(fd);
		return err;
	}
	prv->fd = fd;
	prv->aio_free_count = MAX_AIO_REQS;
	for (int i = 0; i < MAX_AIO_REQS; i++) {
		prv->aio_requests[i].state = prv;
		prv->aio_free_list[i] = &prv->aio_requests[i];
	}
	DPRINTF("%s: opened %s, %llu sectors", name, prv->direct ? "with O_DIRECT" : "buffered",
		(unsigned long long)driver->info.size);
	return 0;
}

static int tdaio_close(td_driver_t *driver)
{
	struct tdaio_state *prv = driver->data;

	if (prv->aio_free_count != MAX_AIO_REQS)
		EPRINTF("%s: closed with %d requests in flight", driver->name,
			MAX_AIO_REQS - prv->aio_free_count);
	if (prv->fd >= 0)
		close(prv->fd);
	prv->fd = -1;
	return 0;
}

static void tdaio_complete(void *arg, struct tiocb *tiocb, int err)
{
	struct aio_request *aio = arg;
	struct tdaio_state *prv = aio->state;
	td_request_t treq = aio->treq;

	prv->aio_free_list[prv->aio_free_count++] = aio;
	if (err)
		tlog_drv_error(prv->driver, err, "%s at sector %llu (%d sectors)",
			       treq.op == TD_OP_READ ? "read" : treq.op == TD_OP_WRITE ? "write" : "flush",
			       (unsigned long long)treq.sec, treq.secs);
	td_complete_request(treq, err);
}

static struct aio_request *tdaio_get(struct tdaio_state *prv, td_request_t treq)
{
	struct aio_request *aio;

	if (!prv->aio_free_count)
		return NULL;
	aio = prv->aio_free_list[--prv->aio_free_count];
	aio->treq = treq;
	return aio;
}

static void tdaio_queue_rw(td_driver_t *driver, td_request_t treq, int write)
{
	struct tdaio_state *prv = driver->data;
	struct aio_request *aio = tdaio_get(prv, treq);
	size_t bytes = (size_t)treq.secs << SECTOR_SHIFT;
	long long offset = (long long)treq.sec << SECTOR_SHIFT;

	if (!aio) {
		td_complete_request(treq, -EBUSY);
		return;
	}
	if (write)
		td_prep_write(driver, &aio->tiocb, prv->fd, treq.buf, bytes, offset, tdaio_complete, aio);
	else
		td_prep_read(driver, &aio->tiocb, prv->fd, treq.buf, bytes, offset, tdaio_complete, aio);
	td_queue_tiocb(driver, &aio->tiocb);
}

static void tdaio_queue_read(td_driver_t *driver, td_request_t treq)
{
	tdaio_queue_rw(driver, treq, 0);
}

static void tdaio_queue_write(td_driver_t *driver, td_request_t treq)
{
	tdaio_queue_rw(driver, treq, 1);
}

static void tdaio_queue_flush(td_driver_t *driver, td_request_t treq)
{
	struct tdaio_state *prv = driver->data;
	struct aio_request *aio = tdaio_get(prv, treq);

	if (!aio) {
		td_complete_request(treq, -EBUSY);
		return;
	}
	td_prep_fdatasync(driver, &aio->tiocb, prv->fd, tdaio_complete, aio);
	td_queue_tiocb(driver, &aio->tiocb);
}

static int tdaio_get_parent_id(td_driver_t *driver, td_disk_id_t *id)
{
	return TD_NO_PARENT;
}

static int tdaio_validate_parent(td_driver_t *driver, td_driver_t *parent, td_flag_t flags)
{
	return -EINVAL;
}

static void tdaio_stats(td_driver_t *driver, td_stats_t *st)
{
	struct tdaio_state *prv = driver->data;

	tapdisk_stats_field(st, "reqs", "{");
	tapdisk_stats_field(st, "max", "d", MAX_AIO_REQS);
	tapdisk_stats_field(st, "pending", "d", MAX_AIO_REQS - prv->aio_free_count);
	tapdisk_stats_leave(st, '}');
	tapdisk_stats_field(st, "direct", "s", prv->direct ? "true" : "false");
}

struct tap_disk tapdisk_aio = {
	.disk_type = "tapdisk_aio",
	.flags = 0,
	.private_data_size = sizeof(struct tdaio_state),
	.td_open = tdaio_open,
	.td_close = tdaio_close,
	.td_queue_read = tdaio_queue_read,
	.td_queue_write = tdaio_queue_write,
	.td_get_parent_id = tdaio_get_parent_id,
	.td_validate_parent = tdaio_validate_parent,
	.td_stats = tdaio_stats,
#ifdef TD_HAVE_QUEUE_FLUSH
	.td_queue_flush = tdaio_queue_flush,
#endif
};

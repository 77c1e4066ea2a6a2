/*
 * list: every tapdisk (a ctl<pid> socket that answers PID) with its VBDs, plus tapdisks
 * without VBDs and allocated minors without a tapdisk: a three-way outer join, as blktap3.
 * What dead tapdisks left is reclaimed first (tap-ctl-stale.c).
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blktap.h"
#include "tap-ctl-internal.h"
#include "tap-ctl.h"

static tap_list_t *list_entry_alloc(void)
{
	tap_list_t *tl = calloc(1, sizeof(*tl));

	if (!tl)
		return NULL;
	tl->id = tl->pid = tl->minor = tl->state = -1;
	INIT_LIST_HEAD(&tl->entry);
	return tl;
}

static void list_entry_free(tap_list_t *tl)
{
	list_del(&tl->entry);
	free(tl->type);
	free(tl->path);
	free(tl);
}

void tap_ctl_list_free(struct list_head *list)
{
	tap_list_t *tl, *n;

	tap_list_for_each_entry_safe(tl, n, list)
		list_entry_free(tl);
}

/* Parses "<prefix><n>" with nothing after the number; returns n or -1. */
static int list_parse_name(const char *name, const char *prefix)
{
	size_t plen = strlen(prefix);
	char *end;
	long n;

	if (strncmp(name, prefix, plen) || name[plen] < '0' || name[plen] > '9')
		return -1;
	n = strtol(name + plen, &end, 10);
	if (*end || n < 0 || n > INT32_MAX)
		return -1;
	return n;
}

static int list_cmp_id(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

/*
 * The numbers in the names "<prefix><n>" in @dir, as a malloc'd array in ascending order, so
 * that a listing comes out the same each time (readdir's order is the filesystem's).  A
 * missing dir is empty.
 */
static int list_scan_dir(const char *dir, const char *prefix, int **ids)
{
	struct dirent *de;
	int n = 0, cap = 0, id, *a = NULL, *na;
	DIR *d;

	*ids = NULL;
	d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d))) {
		id = list_parse_name(de->d_name, prefix);
		if (id < 0)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			na = realloc(a, cap * sizeof(*a));
			if (!na) {
				free(a);
				closedir(d);
				return -ENOMEM;
			}
			a = na;
		}
		a[n++] = id;
	}
	closedir(d);
	if (n > 1)
		qsort(a, n, sizeof(*a), list_cmp_id);
	*ids = a;
	return n;
}

/* Appends the VBDs of tapdisk @pid (socket id @id) to @list. */
static int list_tapdisk(int id, pid_t pid, struct list_head *list)
{
	struct timeval timeout = { .tv_sec = TAP_CTL_TIMEOUT };
	tapdisk_message_t message;
	tap_list_t *tl;
	int fd, err, n = 0;

	memset(&message, 0, sizeof(message));
	message.type = TAPDISK_MESSAGE_LIST;
	message.cookie = (uint16_t)-1;
	err = tap_ctl_request("list", id, &message, TAPDISK_MESSAGE_LIST_RSP, &timeout, &fd);
	if (err)
		return err;

	/* blktap3's tapdisk ends with count 0; ours also sets minor -1. */
	while (message.u.list.count > 0 && message.u.list.minor != TAPDISK_MESSAGE_LIST_END_MINOR) {
		tl = list_entry_alloc();
		if (!tl) {
			err = -ENOMEM;
			tap_ctl_error("list: out of memory");
			goto out;
		}
		tl->id = id;
		tl->pid = pid;
		tl->minor = message.u.list.minor;
		tl->state = message.u.list.state;
		if (message.u.list.path[0] &&
		    tap_ctl_split_params(message.u.list.path, &tl->type, &tl->path) == -ENOMEM) {
			list_entry_free(tl);
			err = -ENOMEM;
			tap_ctl_error("list: out of memory");
			goto out;
		}
		list_add_tail(&tl->entry, list);
		if (++n > MAX_ID) {
			err = -EPROTO;
			tap_ctl_error("list: tapdisk %d lists more than %d VBDs", id, MAX_ID);
			goto out;
		}

		err = __tap_ctl_read_raw(fd, &message, sizeof(message), &timeout);
		if (!err && message.type != TAPDISK_MESSAGE_LIST_RSP)
			err = -EPROTO;
		if (err) {
			tap_ctl_error("list: reading the VBDs of tapdisk %d: %s", id,
				      strerror(-err));
			goto out;
		}
		message.u.list.path[sizeof(message.u.list.path) - 1] = '\0';
	}
	err = 0;
out:
	close(fd);
	return err;
}

/* A tapdisk with no VBD, or a minor with no tapdisk. */
static int list_add_bare(struct list_head *list, int id, pid_t pid, int minor)
{
	tap_list_t *tl = list_entry_alloc();

	if (!tl) {
		tap_ctl_error("list: out of memory");
		return -ENOMEM;
	}
	tl->id = id;
	tl->pid = pid;
	tl->minor = minor;
	list_add_tail(&tl->entry, list);
	return 0;
}

static int list_one_tapdisk(int id, struct list_head *list)
{
	struct list_head vbds = LIST_HEAD_INIT(vbds);
	pid_t pid;
	int err;

	/* A socket that does not answer is left over by a dead tapdisk: skip it. */
	pid = __tap_ctl_get_pid(id);
	if (pid < 0) {
		tap_ctl_dbg("list: ctl%d does not answer: %s", id, strerror(-pid));
		return 0;
	}
	err = list_tapdisk(id, pid, &vbds);
	if (err) {
		tap_ctl_list_free(&vbds);
		return err;
	}
	if (list_empty(&vbds))
		return list_add_bare(list, id, pid, -1);
	list_splice_tail_init(&vbds, list);
	return 0;
}

int tap_ctl_list(struct list_head *list)
{
	char *minor_dir = NULL;
	int *ids = NULL, *minors = NULL;
	int n_ids, n_minors, i, err;
	tap_list_t *tl;

	INIT_LIST_HEAD(list);

	/* A tapdisk that died attached is not listed: its minor is free again. */
	tap_ctl_reclaim_stale(-1);
	n_ids = list_scan_dir(blktap_control_dir(), BLKTAP2_CONTROL_SOCKET, &ids);
	if (n_ids < 0) {
		err = n_ids;
		tap_ctl_error("list: cannot read %s: %s", blktap_control_dir(), strerror(-err));
		return err;
	}
	minor_dir = tap_ctl_minor_dir();
	if (!minor_dir) {
		err = -ENOMEM;
		tap_ctl_error("list: out of memory");
		goto out;
	}
	n_minors = list_scan_dir(minor_dir, BLKTAP2_MINOR_PREFIX, &minors);
	if (n_minors < 0) {
		err = n_minors;
		tap_ctl_error("list: cannot read %s: %s", minor_dir, strerror(-err));
		goto out;
	}

	for (i = 0; i < n_ids; i++) {
		err = list_one_tapdisk(ids[i], list);
		if (err)
			goto out;
	}

	/* Orphaned minors: allocated, but served by no tapdisk. */
	for (i = 0; i < n_minors; i++) {
		int served = 0;

		tap_list_for_each_entry(tl, list)
			if (tl->minor == minors[i])
				served = 1;
		if (!served) {
			err = list_add_bare(list, -1, -1, minors[i]);
			if (err)
				goto out;
		}
	}
	err = 0;
out:
	if (err)
		tap_ctl_list_free(list);
	free(ids);
	free(minors);
	free(minor_dir);
	return err;
}

int tap_ctl_list_pid(pid_t pid, struct list_head *list)
{
	int err;

	INIT_LIST_HEAD(list);
	err = list_one_tapdisk(pid, list);
	if (err)
		tap_ctl_list_free(list);
	return err;
}

int tap_ctl_find_minor(const char *type, const char *path)
{
	struct list_head list;
	tap_list_t *tl;
	int minor = -ENOENT, err;

	err = tap_ctl_list(&list);
	if (err)
		return err;
	tap_list_for_each_entry(tl, &list) {
		if (type && (!tl->type || strcmp(tl->type, type)))
			continue;
		if (path && (!tl->path || strcmp(tl->path, path)))
			continue;
		if (tl->minor >= 0) {
			minor = tl->minor;
			break;
		}
	}
	tap_ctl_list_free(&list);
	return minor;
}

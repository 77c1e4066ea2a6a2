/*
 * stats: the JSON text of one VBD, or a list of every VBD's.  The list is made here, one
 * STATS request per minor, since blktap3's tapdisk has no request for all of them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap-ctl-internal.h"
#include "tap-ctl.h"

/* Sends STATS; returns the socket and the text length that follows, or -errno. */
static int stats_request(pid_t pid, int minor, size_t *length, struct timeval *timeout)
{
	tapdisk_message_t message;
	int fd, err;

	memset(&message, 0, sizeof(message));
	message.type = TAPDISK_MESSAGE_STATS;
	message.cookie = minor;
	err = tap_ctl_request("stats", pid, &message, TAPDISK_MESSAGE_STATS_RSP, timeout, &fd);
	if (err)
		return err;
	*length = message.u.info.length; /* bounded by tapdisk_message_check_reply */
	return fd;
}

/* Returns the length of the text, of which at most @size - 1 bytes are in @buf. */
int tap_ctl_stats(pid_t pid, int minor, char *buf, size_t size)
{
	struct timeval timeout = { .tv_sec = TAP_CTL_TIMEOUT };
	size_t length, keep;
	char *text;
	int fd, err;

	fd = stats_request(pid, minor, &length, &timeout);
	if (fd < 0)
		return fd;

	text = malloc(length + 1);
	if (!text) {
		close(fd);
		tap_ctl_error("stats: out of memory for %zu bytes", length);
		return -ENOMEM;
	}
	err = __tap_ctl_read_raw(fd, text, length, &timeout);
	close(fd);
	if (err) {
		free(text);
		tap_ctl_error("stats: reading %zu bytes of stats from tapdisk %d: %s", length, pid,
			      strerror(-err));
		return err;
	}
	if (size) {
		keep = length < size - 1 ? length : size - 1;
		memcpy(buf, text, keep);
		buf[keep] = '\0';
	}
	free(text);
	return length;
}

static int stats_fwrite_one(pid_t pid, int minor, FILE *out)
{
	struct timeval timeout = { .tv_sec = TAP_CTL_TIMEOUT };
	size_t length = 0, n;
	char buf[4096];
	int fd, err = 0;

	fd = stats_request(pid, minor, &length, &timeout);
	if (fd < 0)
		return fd;

	while (length) {
		n = length < sizeof(buf) ? length : sizeof(buf);
		err = __tap_ctl_read_raw(fd, buf, n, &timeout);
		if (err) {
			tap_ctl_error("stats: reading stats from tapdisk %d: %s", pid,
				      strerror(-err));
			break;
		}
		if (fwrite(buf, 1, n, out) != n) {
			err = -errno;
			tap_ctl_error("stats: writing: %s", strerror(errno));
			break;
		}
		length -= n;
	}
	close(fd);
	return err;
}

/* "[" the objects of each VBD that LIST names, "," between them, "]". */
static int stats_fwrite_all(pid_t pid, FILE *out)
{
	struct list_head list;
	const char *sep = "";
	tap_list_t *tl;
	int err;

	err = tap_ctl_list_pid(pid, &list);
	if (err)
		return err;
	if (list_empty(&list)) {
		/* The tapdisk did not answer PID, which list keeps quiet about: ask again, aloud. */
		struct timeval timeout = { .tv_sec = TAP_CTL_TIMEOUT };
		tapdisk_message_t message;

		memset(&message, 0, sizeof(message));
		message.type = TAPDISK_MESSAGE_PID;
		err = tap_ctl_request("stats", pid, &message, TAPDISK_MESSAGE_PID_RSP, &timeout,
				      NULL);
		return err ? err : -ESRCH;
	}
	fputc('[', out);
	tap_list_for_each_entry(tl, &list) {
		if (tl->minor < 0)
			continue;
		fputs(sep, out);
		err = stats_fwrite_one(pid, tl->minor, out);
		if (err)
			break;
		sep = ",";
	}
	tap_ctl_list_free(&list);
	if (err)
		return err;
	fputc(']', out);
	return 0;
}

int tap_ctl_stats_fwrite(pid_t pid, int minor, FILE *out)
{
	if (minor < 0)
		return stats_fwrite_all(pid, out);
	return stats_fwrite_one(pid, minor, out);
}

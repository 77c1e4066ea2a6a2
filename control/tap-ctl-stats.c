/* stats: the JSON text of one VBD (or of all, minor TAPDISK_MESSAGE_STATS_ALL). */
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

int tap_ctl_stats_fwrite(pid_t pid, int minor, FILE *out)
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

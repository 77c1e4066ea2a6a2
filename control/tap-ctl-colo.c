/* colo (extension): one replication command to the colo VBD @minor, and the text it answers. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap-ctl-internal.h"
#include "tap-ctl.h"

int tap_ctl_colo(pid_t pid, int minor, const char *command, char **text)
{
	struct timeval timeout = { .tv_sec = TAP_CTL_TIMEOUT }, *tp = NULL;
	size_t cmdlen = strlen(command), length;
	tapdisk_message_t message;
	char verb[32], *buf;
	int fd, err;

	if (text)
		*text = NULL;
	/* "colo checkpoint": errors name the command, as the other subcommands name theirs. */
	snprintf(verb, sizeof(verb), "colo %.*s", (int)strcspn(command, " \t"), command);
	if (!cmdlen || cmdlen >= sizeof(message.u.string.text)) {
		tap_ctl_error("colo: the command must be 1 to %zu bytes long, not %zu",
			      sizeof(message.u.string.text) - 1, cmdlen);
		return -EINVAL;
	}

	/*
	 * status answers at once.  The others end when the driver is done: a Primary's start
	 * waits for the connection (connect_timeout), a checkpoint for the Secondary's
	 * acknowledgement.  The driver bounds both with its own timeouts and always answers,
	 * and a tapdisk that dies closes the socket, so there is no deadline of ours to guess.
	 */
	if (!strcmp(verb, "colo status"))
		tp = &timeout;

	memset(&message, 0, sizeof(message));
	message.type = TAPDISK_MESSAGE_COLO;
	message.cookie = minor;
	memcpy(message.u.string.text, command, cmdlen + 1);
	err = tap_ctl_request(verb, pid, &message, TAPDISK_MESSAGE_COLO_RSP, tp, &fd);
	if (err)
		return err;

	length = message.u.info.length; /* bounded by tapdisk_message_check_reply */
	buf = malloc(length + 1);
	if (!buf) {
		close(fd);
		tap_ctl_error("%s: out of memory for %zu bytes", verb, length);
		return -ENOMEM;
	}
	/* The text follows the reply at once, whatever the command waited for. */
	timeout = (struct timeval){ .tv_sec = TAP_CTL_TIMEOUT };
	err = __tap_ctl_read_raw(fd, buf, length, &timeout);
	close(fd);
	if (err) {
		free(buf);
		tap_ctl_error("%s: reading %zu bytes of text from tapdisk %d: %s", verb, length,
			      pid, err == -ECONNRESET ? "tapdisk closed the connection"
						      : strerror(-err));
		return err;
	}
	buf[length] = '\0';
	if (text)
		*text = buf;
	else
		free(buf);
	return 0;
}

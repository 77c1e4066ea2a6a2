/* Sockets to tapdisk: connect, and whole messages each way within a timeout. */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "blktap.h"
#include "tap-ctl-internal.h"
#include "tap-ctl.h"
#include "tapdisk-message-codec.h"

int tap_ctl_debug;

void tap_ctl_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", program_invocation_short_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void tap_ctl_dbg(const char *fmt, ...)
{
	va_list ap;

	if (!tap_ctl_debug)
		return;
	fprintf(stderr, "%s: debug: ", program_invocation_short_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

char *tap_ctl_socket_name(int id)
{
	char *name;

	if (asprintf(&name, "%s/%s%d", blktap_control_dir(), BLKTAP2_CONTROL_SOCKET, id) < 0)
		return NULL;
	return name;
}

int __tap_ctl_connect(const char *path, int *fd)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int s, err;

	if (strlen(path) >= sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	strcpy(addr.sun_path, path);

	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	if (connect(s, (struct sockaddr *)&addr, sizeof(addr))) {
		err = -errno;
		close(s);
		return err;
	}
	*fd = s;
	return 0;
}

int tap_ctl_connect(const char *path, int *fd)
{
	int err = __tap_ctl_connect(path, fd);

	if (err)
		tap_ctl_error("cannot connect to %s: %s", path, strerror(-err));
	return err;
}

int tap_ctl_connect_id(int id, int *fd)
{
	char *path = tap_ctl_socket_name(id);
	int err;

	if (!path) {
		tap_ctl_error("out of memory");
		return -ENOMEM;
	}
	err = __tap_ctl_connect(path, fd);
	if (err)
		tap_ctl_error("cannot connect to tapdisk %d (%s): %s", id, path, strerror(-err));
	free(path);
	return err;
}

static long long ipc_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Waits for @events on @fd within what is left of @timeout, and charges the time to it. */
static int ipc_wait(int fd, short events, struct timeval *timeout)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	long long start, left_us = -1, spent;
	int n, ms;

	if (timeout) {
		left_us = (long long)timeout->tv_sec * 1000000 + timeout->tv_usec;
		if (left_us < 0)
			left_us = 0;
	}
	for (;;) {
		start = ipc_now_us();
		ms = left_us < 0 ? -1 : (int)((left_us + 999) / 1000);
		n = poll(&pfd, 1, ms);
		spent = ipc_now_us() - start;
		if (left_us >= 0) {
			left_us = left_us > spent ? left_us - spent : 0;
			timeout->tv_sec = left_us / 1000000;
			timeout->tv_usec = left_us % 1000000;
		}
		if (n > 0)
			return 0;
		if (n == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

int __tap_ctl_read_raw(int fd, void *buf, size_t size, struct timeval *timeout)
{
	size_t done = 0;
	ssize_t n;
	int err;

	while (done < size) {
		err = ipc_wait(fd, POLLIN, timeout);
		if (err)
			return err;
		n = read(fd, (char *)buf + done, size - done);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		if (n == 0)
			return -ECONNRESET;
		done += n;
	}
	return 0;
}

int __tap_ctl_write_raw(int fd, const void *buf, size_t size, struct timeval *timeout)
{
	size_t done = 0;
	ssize_t n;
	int err;

	while (done < size) {
		err = ipc_wait(fd, POLLOUT, timeout);
		if (err)
			return err;
		n = send(fd, (const char *)buf + done, size - done, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		done += n;
	}
	return 0;
}

int tap_ctl_read_raw(int fd, void *buf, size_t size, struct timeval *timeout)
{
	int err = __tap_ctl_read_raw(fd, buf, size, timeout);

	if (err)
		tap_ctl_error("reading from tapdisk: %s", strerror(-err));
	return err;
}

int tap_ctl_read_message(int fd, tapdisk_message_t *message, struct timeval *timeout)
{
	char why[TAPDISK_MESSAGE_STRING_LENGTH];
	int err;

	err = __tap_ctl_read_raw(fd, message, sizeof(*message), timeout);
	if (err) {
		tap_ctl_error("reading a reply from tapdisk: %s", strerror(-err));
		return err;
	}
	err = tapdisk_message_check_reply(message, why, sizeof(why));
	if (err) {
		tap_ctl_error("bad reply from tapdisk: %s", why);
		return err;
	}
	tap_ctl_dbg("received '%s' message (cookie %u)", tapdisk_message_name(message->type),
		    message->cookie);
	return 0;
}

int tap_ctl_write_message(int fd, tapdisk_message_t *message, struct timeval *timeout)
{
	int err;

	tap_ctl_dbg("sending '%s' message (cookie %u)", tapdisk_message_name(message->type),
		    message->cookie);
	err = __tap_ctl_write_raw(fd, message, sizeof(*message), timeout);
	if (err)
		tap_ctl_error("sending '%s' to tapdisk: %s",
			      tapdisk_message_name(message->type), strerror(-err));
	return err;
}

int tap_ctl_send_and_receive(int fd, tapdisk_message_t *message, struct timeval *timeout)
{
	int err;

	err = tap_ctl_write_message(fd, message, timeout);
	if (err)
		return err;
	return tap_ctl_read_message(fd, message, timeout);
}

int tap_ctl_connect_send_and_receive(int id, tapdisk_message_t *message, struct timeval *timeout)
{
	int fd, err;

	err = tap_ctl_connect_id(id, &fd);
	if (err)
		return err;
	err = tap_ctl_send_and_receive(fd, message, timeout);
	close(fd);
	return err;
}

int tap_ctl_request(const char *verb, int id, tapdisk_message_t *message, int rsp_type,
		    struct timeval *timeout, int *fdp)
{
	char why[TAPDISK_MESSAGE_STRING_LENGTH];
	const char *stage;
	char *path;
	int fd = -1, err;

	path = tap_ctl_socket_name(id);
	if (!path) {
		tap_ctl_error("%s: out of memory", verb);
		return -ENOMEM;
	}
	err = __tap_ctl_connect(path, &fd);
	if (err) {
		tap_ctl_error("%s: cannot connect to tapdisk %d (%s): %s", verb, id, path,
			      strerror(-err));
		free(path);
		return err;
	}
	free(path);

	tap_ctl_dbg("%s: sending '%s' (cookie %u) to tapdisk %d", verb,
		    tapdisk_message_name(message->type), message->cookie, id);
	stage = "sending the request to";
	err = __tap_ctl_write_raw(fd, message, sizeof(*message), timeout);
	if (!err) {
		stage = "waiting for the reply of";
		err = __tap_ctl_read_raw(fd, message, sizeof(*message), timeout);
	}
	if (err) {
		tap_ctl_error("%s: %s tapdisk %d: %s", verb, stage, id,
			      err == -ECONNRESET ? "tapdisk closed the connection"
						 : strerror(-err));
		goto fail;
	}

	err = tapdisk_message_check_reply(message, why, sizeof(why));
	if (err) {
		tap_ctl_error("%s: bad reply from tapdisk %d: %s", verb, id, why);
		goto fail;
	}
	if (message->type == TAPDISK_MESSAGE_ERROR) {
		err = message->u.response.error > 0 ? -message->u.response.error : -EIO;
		tap_ctl_error("%s: %s", verb,
			      message->u.response.message[0] ? message->u.response.message
							     : strerror(-err));
		goto fail;
	}
	if (message->type != rsp_type) {
		tap_ctl_error("%s: tapdisk %d sent '%s' instead of '%s'", verb, id,
			      tapdisk_message_name(message->type), tapdisk_message_name(rsp_type));
		err = -EPROTO;
		goto fail;
	}

	if (fdp)
		*fdp = fd;
	else
		close(fd);
	return 0;

fail:
	close(fd);
	return err;
}

pid_t __tap_ctl_get_pid(int id)
{
	struct timeval timeout = { .tv_sec = TAP_CTL_TIMEOUT };
	tapdisk_message_t message;
	char *path;
	int fd, err;

	path = tap_ctl_socket_name(id);
	if (!path)
		return -ENOMEM;
	err = __tap_ctl_connect(path, &fd);
	free(path);
	if (err)
		return err;

	memset(&message, 0, sizeof(message));
	message.type = TAPDISK_MESSAGE_PID;
	err = __tap_ctl_write_raw(fd, &message, sizeof(message), &timeout);
	if (!err)
		err = __tap_ctl_read_raw(fd, &message, sizeof(message), &timeout);
	close(fd);
	if (err)
		return err;
	if (message.type != TAPDISK_MESSAGE_PID_RSP || message.u.tapdisk_pid <= 0)
		return -EPROTO;
	return message.u.tapdisk_pid;
}

pid_t tap_ctl_get_pid(const int id)
{
	struct timeval timeout = { .tv_sec = TAP_CTL_TIMEOUT };
	tapdisk_message_t message;
	int err;

	memset(&message, 0, sizeof(message));
	message.type = TAPDISK_MESSAGE_PID;
	err = tap_ctl_request("pid", id, &message, TAPDISK_MESSAGE_PID_RSP, &timeout, NULL);
	if (err)
		return err;
	return message.u.tapdisk_pid;
}

int tap_ctl_split_params(const char *params, char **type, char **path)
{
	const char *colon = strchr(params, ':');

	*type = *path = NULL;
	if (!colon)
		return -EINVAL;
	*type = strndup(params, colon - params);
	*path = strdup(colon + 1);
	if (!*type || !*path) {
		free(*type);
		free(*path);
		*type = *path = NULL;
		return -ENOMEM;
	}
	return 0;
}

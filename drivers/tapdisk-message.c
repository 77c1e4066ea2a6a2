/* Names and checks of control messages, linked into both tapdisk and libblktapctl. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tapdisk-message-codec.h"
#include "tapdisk-message.h"

/*
 * Every message: its name and, for a request, the type of its reply and whether its cookie
 * must name an existing VBD.  FORCE_SHUTDOWN is blktap3's forced close of one VBD: its client waits for
 * a CLOSE_RSP.
 */
static const struct message_info {
	const char *name;
	int reply; /* 0: not a request */
	int needs_vbd;
} messages[] = {
	[TAPDISK_MESSAGE_ERROR] = { "error" },
	[TAPDISK_MESSAGE_RUNTIME_ERROR] = { "runtime error" },
	[TAPDISK_MESSAGE_PID] = { "pid", TAPDISK_MESSAGE_PID_RSP, 0 },
	[TAPDISK_MESSAGE_PID_RSP] = { "pid response" },
	[TAPDISK_MESSAGE_ATTACH] = { "attach", TAPDISK_MESSAGE_ATTACH_RSP, 0 },
	[TAPDISK_MESSAGE_ATTACH_RSP] = { "attach response" },
	[TAPDISK_MESSAGE_OPEN] = { "open", TAPDISK_MESSAGE_OPEN_RSP, 1 },
	[TAPDISK_MESSAGE_OPEN_RSP] = { "open response" },
	[TAPDISK_MESSAGE_PAUSE] = { "pause", TAPDISK_MESSAGE_PAUSE_RSP, 1 },
	[TAPDISK_MESSAGE_PAUSE_RSP] = { "pause response" },
	[TAPDISK_MESSAGE_RESUME] = { "resume", TAPDISK_MESSAGE_RESUME_RSP, 1 },
	[TAPDISK_MESSAGE_RESUME_RSP] = { "resume response" },
	[TAPDISK_MESSAGE_CLOSE] = { "close", TAPDISK_MESSAGE_CLOSE_RSP, 1 },
	[TAPDISK_MESSAGE_CLOSE_RSP] = { "close response" },
	[TAPDISK_MESSAGE_DETACH] = { "detach", TAPDISK_MESSAGE_DETACH_RSP, 1 },
	[TAPDISK_MESSAGE_DETACH_RSP] = { "detach response" },
	[TAPDISK_MESSAGE_LIST_MINORS] = { "list minors", TAPDISK_MESSAGE_LIST_MINORS_RSP, 0 },
	[TAPDISK_MESSAGE_LIST_MINORS_RSP] = { "list minors response" },
	[TAPDISK_MESSAGE_LIST] = { "list", TAPDISK_MESSAGE_LIST_RSP, 0 },
	[TAPDISK_MESSAGE_LIST_RSP] = { "list response" },
	[TAPDISK_MESSAGE_STATS] = { "stats", TAPDISK_MESSAGE_STATS_RSP, 0 },
	[TAPDISK_MESSAGE_STATS_RSP] = { "stats response" },
	[TAPDISK_MESSAGE_FORCE_SHUTDOWN] = { "force shutdown", TAPDISK_MESSAGE_CLOSE_RSP, 1 },
	[TAPDISK_MESSAGE_XENBLKIF_CONNECT] = { "blkif connect", TAPDISK_MESSAGE_XENBLKIF_CONNECT_RSP, 0 },
	[TAPDISK_MESSAGE_XENBLKIF_CONNECT_RSP] = { "blkif connect response" },
	[TAPDISK_MESSAGE_XENBLKIF_DISCONNECT] = { "blkif disconnect", TAPDISK_MESSAGE_XENBLKIF_DISCONNECT_RSP, 0 },
	[TAPDISK_MESSAGE_XENBLKIF_DISCONNECT_RSP] = { "blkif disconnect response" },
	[TAPDISK_MESSAGE_DISK_INFO] = { "disk info", TAPDISK_MESSAGE_DISK_INFO_RSP, 1 },
	[TAPDISK_MESSAGE_DISK_INFO_RSP] = { "disk info response" },
	[TAPDISK_MESSAGE_EXIT] = { "exit", TAPDISK_MESSAGE_EXIT, 0 },
	[TAPDISK_MESSAGE_NBD_TCP] = { "nbd tcp", TAPDISK_MESSAGE_NBD_TCP_RSP, 1 },
	[TAPDISK_MESSAGE_NBD_TCP_RSP] = { "nbd tcp response" },
	[TAPDISK_MESSAGE_COLO] = { "colo", TAPDISK_MESSAGE_COLO_RSP, 1 },
	[TAPDISK_MESSAGE_COLO_RSP] = { "colo response" },
};

static const struct message_info *message_info(int type)
{
	if (type < 0 || (size_t)type >= sizeof(messages) / sizeof(messages[0]) || !messages[type].name)
		return NULL;
	return &messages[type];
}

const char *tapdisk_message_name(int id)
{
	const struct message_info *info = message_info(id);

	return info ? info->name : "unknown";
}

int tapdisk_message_str_terminated(const char *s, size_t size)
{
	return memchr(s, '\0', size) != NULL;
}

int tapdisk_message_is_request(int type)
{
	const struct message_info *info = message_info(type);

	return info && info->reply;
}

int tapdisk_message_needs_vbd(int type)
{
	const struct message_info *info = message_info(type);

	return info && info->needs_vbd;
}

int tapdisk_message_reply_type(int type)
{
	const struct message_info *info = message_info(type);

	return info && info->reply ? info->reply : -1;
}

static int __attribute__((format(printf, 4, 5)))
message_reject(char *why, size_t why_size, int err, const char *fmt, ...)
{
	va_list ap;

	if (why && why_size) {
		va_start(ap, fmt);
		vsnprintf(why, why_size, fmt, ap);
		va_end(ap);
	}
	return err;
}

/* A string field of a request: must end within its array and, if @required, not be empty. */
static int message_check_str(const char *s, size_t size, const char *field, int required,
			     char *why, size_t why_size)
{
	if (!tapdisk_message_str_terminated(s, size))
		return message_reject(why, why_size, -EINVAL, "%s is not NUL-terminated", field);
	if (required && !s[0])
		return message_reject(why, why_size, -EINVAL, "%s is empty", field);
	return 0;
}

static int message_check_flags(uint32_t flags, char *why, size_t why_size)
{
	if (flags & ~TAPDISK_MESSAGE_FLAG_ALL)
		return message_reject(why, why_size, -EINVAL, "unknown flags %#x",
				      flags & ~TAPDISK_MESSAGE_FLAG_ALL);
	return 0;
}

int tapdisk_message_check_request(const tapdisk_message_t *msg, char *why, size_t why_size)
{
	int err;

	if (why && why_size)
		why[0] = '\0';

	if (!tapdisk_message_is_request(msg->type))
		return message_reject(why, why_size, -EINVAL, "message type %u (%s) is not a request",
				      msg->type, tapdisk_message_name(msg->type));

	switch (msg->type) {
	case TAPDISK_MESSAGE_OPEN:
		err = message_check_flags(msg->u.params.flags, why, why_size);
		if (err)
			return err;
		err = message_check_str(msg->u.params.path, sizeof(msg->u.params.path), "path", 1,
					why, why_size);
		if (err)
			return err;
		if (msg->u.params.flags & TAPDISK_MESSAGE_FLAG_SECONDARY)
			return message_check_str(msg->u.params.secondary,
						 sizeof(msg->u.params.secondary), "secondary", 1,
						 why, why_size);
		return 0;

	case TAPDISK_MESSAGE_RESUME:
		/* As OPEN, but the path may be empty: resume on the same image. */
		err = message_check_flags(msg->u.params.flags, why, why_size);
		if (err)
			return err;
		err = message_check_str(msg->u.params.path, sizeof(msg->u.params.path), "path", 0,
					why, why_size);
		if (err)
			return err;
		if (msg->u.params.flags & TAPDISK_MESSAGE_FLAG_SECONDARY)
			return message_check_str(msg->u.params.secondary,
						 sizeof(msg->u.params.secondary), "secondary", 1,
						 why, why_size);
		return 0;

	case TAPDISK_MESSAGE_NBD_TCP:
		return message_check_str(msg->u.string.text, sizeof(msg->u.string.text), "address",
					 1, why, why_size);

	case TAPDISK_MESSAGE_COLO:
		return message_check_str(msg->u.string.text, sizeof(msg->u.string.text), "command",
					 1, why, why_size);

	default:
		/* The other requests carry nothing but the cookie. */
		return 0;
	}
}

int tapdisk_message_check_reply(const tapdisk_message_t *msg, char *why, size_t why_size)
{
	if (why && why_size)
		why[0] = '\0';

	switch (msg->type) {
	case TAPDISK_MESSAGE_ERROR:
	case TAPDISK_MESSAGE_RUNTIME_ERROR:
		if (!tapdisk_message_str_terminated(msg->u.response.message,
						    sizeof(msg->u.response.message)))
			return message_reject(why, why_size, -EPROTO,
					      "error message is not NUL-terminated");
		return 0;

	case TAPDISK_MESSAGE_LIST_RSP:
		if (msg->u.list.count < 0)
			return message_reject(why, why_size, -EPROTO, "negative list count %d",
					      msg->u.list.count);
		if (!tapdisk_message_str_terminated(msg->u.list.path, sizeof(msg->u.list.path)))
			return message_reject(why, why_size, -EPROTO,
					      "list path is not NUL-terminated");
		return 0;

	case TAPDISK_MESSAGE_LIST_MINORS_RSP:
		if (msg->u.minors.count < 0 ||
		    (size_t)msg->u.minors.count > TAPDISK_MESSAGE_MAX_MINORS)
			return message_reject(why, why_size, -EPROTO, "minor count %d out of range",
					      msg->u.minors.count);
		return 0;

	case TAPDISK_MESSAGE_STATS_RSP:
		if (msg->u.info.length > TAPDISK_MESSAGE_STATS_MAX)
			return message_reject(why, why_size, -EPROTO,
					      "stats length %zu exceeds %d bytes",
					      msg->u.info.length, TAPDISK_MESSAGE_STATS_MAX);
		return 0;

	case TAPDISK_MESSAGE_COLO_RSP:
		if (msg->u.info.length > TAPDISK_MESSAGE_COLO_MAX)
			return message_reject(why, why_size, -EPROTO,
					      "colo text length %zu exceeds %d bytes",
					      msg->u.info.length, TAPDISK_MESSAGE_COLO_MAX);
		return 0;

	case TAPDISK_MESSAGE_NBD_TCP_RSP:
		if (!tapdisk_message_str_terminated(msg->u.string.text,
						    sizeof(msg->u.string.text)))
			return message_reject(why, why_size, -EPROTO,
					      "address is not NUL-terminated");
		return 0;

	case TAPDISK_MESSAGE_PID_RSP:
	case TAPDISK_MESSAGE_ATTACH_RSP:
	case TAPDISK_MESSAGE_OPEN_RSP:
	case TAPDISK_MESSAGE_PAUSE_RSP:
	case TAPDISK_MESSAGE_RESUME_RSP:
	case TAPDISK_MESSAGE_CLOSE_RSP:
	case TAPDISK_MESSAGE_DETACH_RSP:
	case TAPDISK_MESSAGE_XENBLKIF_CONNECT_RSP:
	case TAPDISK_MESSAGE_XENBLKIF_DISCONNECT_RSP:
	case TAPDISK_MESSAGE_DISK_INFO_RSP:
	case TAPDISK_MESSAGE_EXIT:
		return 0;

	default:
		return message_reject(why, why_size, -EPROTO, "message type %u is not a reply",
				      msg->type);
	}
}

int tapdisk_message_split_params(const char *params, char *type, size_t type_size,
				 const char **path)
{
	const char *colon = strchr(params, ':');
	size_t len;

	if (!colon)
		return -EINVAL;
	len = colon - params;
	if (!len || len >= type_size || !colon[1])
		return -EINVAL;
	memcpy(type, params, len);
	type[len] = '\0';
	*path = colon + 1;
	return 0;
}

int tapdisk_message_split_hostport(const char *addr, char *host, size_t host_size, char *port,
				   size_t port_size)
{
	const char *colon = strrchr(addr, ':');
	const char *h = addr;
	size_t hlen, plen;
	unsigned long n;
	char *end;

	if (!colon)
		return -EINVAL;
	hlen = colon - addr;
	/* "[::1]:10809": the brackets only delimit an IPv6 literal. */
	if (hlen >= 2 && addr[0] == '[' && addr[hlen - 1] == ']') {
		h = addr + 1;
		hlen -= 2;
	} else if (memchr(addr, ':', hlen)) {
		return -EINVAL; /* an IPv6 literal needs brackets */
	}
	plen = strlen(colon + 1);
	if (!hlen || hlen >= host_size || !plen || plen >= port_size)
		return -EINVAL;

	errno = 0;
	n = strtoul(colon + 1, &end, 10);
	if (errno || *end || n > 65535 || colon[1] < '0' || colon[1] > '9')
		return -EINVAL;

	memcpy(host, h, hlen);
	host[hlen] = '\0';
	memcpy(port, colon + 1, plen + 1);
	return 0;
}

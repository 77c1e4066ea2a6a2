/*
 * One client connection: framing of xsd_sockmsg requests, and the queue of replies and watch
 * events, which go out in the order they were queued.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "xsd.h"

struct xsd_conn *xsd_conns;
static unsigned int conn_serial;

static const char *const type_names[XS_TYPE_COUNT] = {
	[XS_CONTROL] = "CONTROL",
	[XS_DIRECTORY] = "DIRECTORY",
	[XS_READ] = "READ",
	[XS_GET_PERMS] = "GET_PERMS",
	[XS_WATCH] = "WATCH",
	[XS_UNWATCH] = "UNWATCH",
	[XS_TRANSACTION_START] = "TRANSACTION_START",
	[XS_TRANSACTION_END] = "TRANSACTION_END",
	[XS_INTRODUCE] = "INTRODUCE",
	[XS_RELEASE] = "RELEASE",
	[XS_GET_DOMAIN_PATH] = "GET_DOMAIN_PATH",
	[XS_WRITE] = "WRITE",
	[XS_MKDIR] = "MKDIR",
	[XS_RM] = "RM",
	[XS_SET_PERMS] = "SET_PERMS",
	[XS_WATCH_EVENT] = "WATCH_EVENT",
	[XS_ERROR] = "ERROR",
	[XS_IS_DOMAIN_INTRODUCED] = "IS_DOMAIN_INTRODUCED",
	[XS_RESUME] = "RESUME",
	[XS_SET_TARGET] = "SET_TARGET",
	[XS_RESET_WATCHES] = "RESET_WATCHES",
	[XS_DIRECTORY_PART] = "DIRECTORY_PART",
};

const char *xsd_type_name(uint32_t type)
{
	if (type < XS_TYPE_COUNT && type_names[type])
		return type_names[type];
	return "UNKNOWN";
}

struct xsd_conn *xsd_conn_new(int fd)
{
	struct xsd_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->fd = fd;
	c->id = ++conn_serial;
	c->next_txn_id = 1;
	c->next = xsd_conns;
	xsd_conns = c;
	xsd_trace("CONN c%u open\n", c->id);
	return c;
}

void xsd_conn_free(struct xsd_conn *c)
{
	struct xsd_conn **pp;
	struct xsd_out *o;

	for (pp = &xsd_conns; *pp != c; pp = &(*pp)->next)
		;
	*pp = c->next;
	xsd_trace("CONN c%u close\n", c->id);
	close(c->fd);
	while ((o = c->out_head)) {
		c->out_head = o->next;
		free(o);
	}
	xsd_watch_free_all(c);
	xsd_txn_free_all(c);
	free(c);
}

static void trace_msg(const char *dir, const struct xsd_conn *c, const struct xsd_sockmsg *h,
		      const unsigned char *payload)
{
	char text[XENSTORE_PAYLOAD_MAX + 1];
	uint32_t i, len = h->len < XENSTORE_PAYLOAD_MAX ? h->len : XENSTORE_PAYLOAD_MAX;

	if (!xsd_tracing())
		return;
	/* One line per message: NULs and line breaks shown as spaces, like xenstored's trace. */
	for (i = 0; i < len; i++)
		text[i] = (payload[i] >= 0x20 && payload[i] < 0x7f) ? (char)payload[i] : ' ';
	text[len] = '\0';
	xsd_trace("%s c%u %s req=%u tx=%u len=%u (%s)\n", dir, c->id, xsd_type_name(h->type),
		  h->req_id, h->tx_id, h->len, text);
}

static void queue(struct xsd_conn *c, const struct xsd_sockmsg *h, const void *data, bool is_event)
{
	struct xsd_out *o;

	if (c->closing)
		return;
	if (c->out_bytes + XSD_HDR_SIZE + h->len > XSD_OUT_LIMIT) {
		xsd_log("connection c%u does not read its replies: dropped", c->id);
		c->closing = true;
		return;
	}
	o = malloc(sizeof(*o) + XSD_HDR_SIZE + h->len);
	if (!o) {
		c->closing = true;
		return;
	}
	o->next = NULL;
	o->is_event = is_event;
	o->len = XSD_HDR_SIZE + h->len;
	memcpy(o->data, h, XSD_HDR_SIZE);
	if (h->len)
		memcpy(o->data + XSD_HDR_SIZE, data, h->len);
	if (c->out_tail)
		c->out_tail->next = o;
	else
		c->out_head = o;
	c->out_tail = o;
	c->out_bytes += o->len;
	trace_msg("OUT", c, h, o->data + XSD_HDR_SIZE);
}

void xsd_reply(struct xsd_conn *c, const struct xsd_sockmsg *req, uint32_t type, const void *data,
	       size_t len)
{
	struct xsd_sockmsg h = *req;

	/* As xenstored's send_reply(): what does not fit one message is E2BIG. */
	if (len > XENSTORE_PAYLOAD_MAX) {
		xsd_reply_error(c, req, E2BIG);
		return;
	}
	h.type = type;
	h.len = len;
	queue(c, &h, data, false);
}

void xsd_reply_ok(struct xsd_conn *c, const struct xsd_sockmsg *req)
{
	xsd_reply(c, req, req->type, "OK", sizeof("OK"));
}

void xsd_reply_error(struct xsd_conn *c, const struct xsd_sockmsg *req, int err)
{
	size_t i;

	/* Untranslatable errors become EINVAL, the table's first entry, as in xenstored. */
	for (i = 0; i < sizeof(xsd_errors) / sizeof(xsd_errors[0]); i++)
		if (xsd_errors[i].errnum == err)
			break;
	if (i == sizeof(xsd_errors) / sizeof(xsd_errors[0]))
		i = 0;
	xsd_reply(c, req, XS_ERROR, xsd_errors[i].errstring, strlen(xsd_errors[i].errstring) + 1);
}

void xsd_send_event(struct xsd_conn *c, const char *path, const char *token)
{
	struct xsd_sockmsg h = { .type = XS_WATCH_EVENT };
	size_t pl = strlen(path) + 1, tl = strlen(token) + 1;
	char buf[2 * XENSTORE_PAYLOAD_MAX];
	struct xsd_out *o;

	if (pl + tl > XENSTORE_PAYLOAD_MAX)
		return;
	memcpy(buf, path, pl);
	memcpy(buf + pl, token, tl);
	h.len = pl + tl;
	/* xenstored drops an event identical to one still waiting in the queue. */
	for (o = c->out_head; o; o = o->next) {
		if (o == c->out_head && c->out_sent)
			continue;
		if (o->is_event && o->len == XSD_HDR_SIZE + h.len &&
		    !memcmp(o->data + XSD_HDR_SIZE, buf, h.len))
			return;
	}
	queue(c, &h, buf, true);
}

bool xsd_conn_wants_input(const struct xsd_conn *c)
{
	return !c->closing && c->out_bytes < XSD_OUT_PAUSE;
}

void xsd_conn_input(struct xsd_conn *c)
{
	ssize_t n;

	n = recv(c->fd, c->in + c->in_used, sizeof(c->in) - c->in_used, MSG_DONTWAIT);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		c->closing = true;
		return;
	}
	if (n > 0)
		c->in_used += n;
}

/* Handles every complete request in the input buffer (while the client reads its replies). */
void xsd_conn_process(struct xsd_conn *c)
{
	struct xsd_sockmsg h;
	char payload[XENSTORE_PAYLOAD_MAX + 1];
	size_t off = 0;

	while (xsd_conn_wants_input(c) && c->in_used - off >= XSD_HDR_SIZE) {
		memcpy(&h, c->in + off, XSD_HDR_SIZE);
		/* Like xenstored: an over-long message ends the connection. */
		if (h.len > XENSTORE_PAYLOAD_MAX) {
			xsd_log("connection c%u sent a message of %u bytes: dropped", c->id, h.len);
			c->closing = true;
			break;
		}
		if (c->in_used - off < XSD_HDR_SIZE + h.len)
			break;
		memcpy(payload, c->in + off + XSD_HDR_SIZE, h.len);
		/* A terminator past the end makes string scans safe; lengths still rule. */
		payload[h.len] = '\0';
		trace_msg("IN ", c, &h, (const unsigned char *)payload);
		xsd_ops_handle(c, &h, payload);
		off += XSD_HDR_SIZE + h.len;
	}
	if (off) {
		memmove(c->in, c->in + off, c->in_used - off);
		c->in_used -= off;
	}
}

void xsd_conn_flush(struct xsd_conn *c)
{
	struct xsd_out *o;
	ssize_t n;

	while ((o = c->out_head)) {
		n = send(c->fd, o->data + c->out_sent, o->len - c->out_sent,
			 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				c->closing = true;
			return;
		}
		c->out_sent += n;
		if (c->out_sent < o->len)
			return;
		c->out_head = o->next;
		if (!c->out_head)
			c->out_tail = NULL;
		c->out_bytes -= o->len;
		c->out_sent = 0;
		free(o);
	}
}

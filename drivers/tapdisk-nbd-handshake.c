/* The NBD fixed newstyle handshake: options and their replies.  docs/nbd-export.md */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tapdisk-log.h"
#include "tapdisk-vbd.h"
#include "tapdisk-nbdserver-internal.h"

/* ---- handshake ---- */

/* Option replies of one option, gathered so they go out in one send. */
void nbd_opt_reply_add(struct nbd_opt_reply *r, const void *data, size_t len)
{
	if (r->failed)
		return;
	if (r->len + len > r->cap) {
		size_t cap = (r->cap ? r->cap * 2 : 256) + len;
		uint8_t *buf = realloc(r->buf, cap);

		if (!buf) {
			r->failed = 1;
			return;
		}
		r->buf = buf;
		r->cap = cap;
	}
	memcpy(r->buf + r->len, data, len);
	r->len += len;
}

void nbd_opt_reply_header(struct nbd_opt_reply *r, uint32_t option, uint32_t type,
				 uint32_t len)
{
	struct nbd_fixed_new_option_reply rep = { .magic = htobe64(NBD_REP_MAGIC),
						  .option = htobe32(option),
						  .reply = htobe32(type),
						  .replylen = htobe32(len) };

	nbd_opt_reply_add(r, &rep, sizeof(rep));
}

void nbd_opt_reply_error(struct nbd_opt_reply *r, uint32_t option, uint32_t type,
				const char *msg)
{
	nbd_opt_reply_header(r, option, type, strlen(msg));
	nbd_opt_reply_add(r, msg, strlen(msg));
}

/* Sends the gathered replies; returns -1 if the connection is gone. */
int nbd_conn_send_opt_reply(struct nbd_conn *conn, struct nbd_opt_reply *r)
{
	struct nbd_out *out;

	if (r->failed || !(out = calloc(1, sizeof(*out)))) {
		free(r->buf);
		nbd_conn_fail(conn, "out of memory in the handshake");
		return -1;
	}
	out->owned = r->buf;
	out->iov[0].iov_base = r->buf;
	out->iov[0].iov_len = r->len;
	out->iovcnt = 1;
	r->buf = NULL;
	nbd_conn_send(conn, out);
	return conn->state == NBD_CONN_DEAD ? -1 : 0;
}

static uint16_t nbd_conn_tflags(const struct nbd_conn *conn)
{
	uint16_t flags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA |
			 NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES |
			 /* Flush is an fdatasync of the image: it covers every connection. */
			 NBD_FLAG_CAN_MULTI_CONN;

	if (conn->structured)
		flags |= NBD_FLAG_SEND_DF;
	if (conn->server->vbd->flags & TD_OPEN_RDONLY)
		flags |= NBD_FLAG_READ_ONLY;
	return flags;
}

static void nbd_conn_start_tx(struct nbd_conn *conn)
{
	if (conn->timer_event > 0) {
		tapdisk_server_unregister_event(conn->timer_event);
		conn->timer_event = 0;
	}
	conn->state = NBD_CONN_TX;
	DPRINTF("nbd %s: transmission (%s replies, size %llu, flags %#x)", conn->peer,
		conn->structured ? "structured" : "simple",
		(unsigned long long)tapdisk_vbd_size_bytes(conn->server->vbd),
		nbd_conn_tflags(conn));
}

static int nbd_conn_opt_export_name(struct nbd_conn *conn)
{
	struct nbd_export_name_reply rep = {
		.exportsize = htobe64(tapdisk_vbd_size_bytes(conn->server->vbd)),
		.eflags = htobe16(nbd_conn_tflags(conn)),
	};
	static const uint8_t zeroes[124];
	struct nbd_opt_reply r = { 0 };

	nbd_opt_reply_add(&r, &rep, sizeof(rep));
	if (!(conn->client_flags & NBD_FLAG_C_NO_ZEROES))
		nbd_opt_reply_add(&r, zeroes, sizeof(zeroes));
	if (nbd_conn_send_opt_reply(conn, &r))
		return -1;
	nbd_conn_start_tx(conn);
	return 0;
}

static int nbd_conn_opt_info(struct nbd_conn *conn, const uint8_t *data)
{
	uint32_t option = conn->opt.option;
	struct nbd_opt_reply r = { 0 };
	struct nbd_info_payload info;
	const char *desc = conn->server->vbd->name ? conn->server->vbd->name : "tapdisk";

	if (nbd_parse_info_payload(data, conn->opt.length, &info)) {
		EPRINTF("nbd %s: %s: malformed request", conn->peer, nbd_opt_name(option));
		nbd_opt_reply_error(&r, option, NBD_REP_ERR_INVALID, "malformed request");
		return nbd_conn_send_opt_reply(conn, &r);
	}

	{
		struct nbd_info_export ie = {
			.info = htobe16(NBD_INFO_EXPORT),
			.exportsize = htobe64(tapdisk_vbd_size_bytes(conn->server->vbd)),
			.eflags = htobe16(nbd_conn_tflags(conn)),
		};

		nbd_opt_reply_header(&r, option, NBD_REP_INFO, sizeof(ie));
		nbd_opt_reply_add(&r, &ie, sizeof(ie));
	}
	{
		/* Always sent: clients that did not ask may still use it, and it is true. */
		struct nbd_info_block_size bs = {
			.info = htobe16(NBD_INFO_BLOCK_SIZE),
			.minimum = htobe32(NBD_MIN_BLOCK),
			.preferred = htobe32(NBD_PREF_BLOCK),
			.maximum = htobe32(NBD_MAX_PAYLOAD),
		};

		nbd_opt_reply_header(&r, option, NBD_REP_INFO, sizeof(bs));
		nbd_opt_reply_add(&r, &bs, sizeof(bs));
	}
	if (info.want_name) {
		uint16_t type = htobe16(NBD_INFO_NAME);

		nbd_opt_reply_header(&r, option, NBD_REP_INFO, 2 + strlen(NBD_EXPORT_NAME));
		nbd_opt_reply_add(&r, &type, 2);
		nbd_opt_reply_add(&r, NBD_EXPORT_NAME, strlen(NBD_EXPORT_NAME));
	}
	if (info.want_description) {
		uint16_t type = htobe16(NBD_INFO_DESCRIPTION);
		/* Strings are limited to 4096 bytes by the spec. */
		size_t len = strnlen(desc, 4096);

		nbd_opt_reply_header(&r, option, NBD_REP_INFO, 2 + len);
		nbd_opt_reply_add(&r, &type, 2);
		nbd_opt_reply_add(&r, desc, len);
	}
	nbd_opt_reply_header(&r, option, NBD_REP_ACK, 0);
	if (nbd_conn_send_opt_reply(conn, &r))
		return -1;

	if (option == NBD_OPT_GO)
		nbd_conn_start_tx(conn);
	return 0;
}

static int nbd_conn_opt_list(struct nbd_conn *conn)
{
	struct nbd_opt_reply r = { 0 };
	uint32_t len = htobe32(strlen(NBD_EXPORT_NAME));

	if (conn->opt.length) {
		nbd_opt_reply_error(&r, NBD_OPT_LIST, NBD_REP_ERR_INVALID, "LIST takes no data");
		return nbd_conn_send_opt_reply(conn, &r);
	}
	nbd_opt_reply_header(&r, NBD_OPT_LIST, NBD_REP_SERVER, 4 + strlen(NBD_EXPORT_NAME));
	nbd_opt_reply_add(&r, &len, sizeof(len));
	nbd_opt_reply_add(&r, NBD_EXPORT_NAME, strlen(NBD_EXPORT_NAME));
	nbd_opt_reply_header(&r, NBD_OPT_LIST, NBD_REP_ACK, 0);
	return nbd_conn_send_opt_reply(conn, &r);
}

/* Handles one complete option (header in conn->opt, data at @data); -1 to stop parsing. */
static int nbd_conn_handle_option(struct nbd_conn *conn, const uint8_t *data)
{
	uint32_t option = conn->opt.option;
	struct nbd_opt_reply r = { 0 };
	int gate;

	gate = nbd_conn_tls_gate(conn, option);
	if (gate)
		return gate < 0 ? -1 : 0;

	switch (option) {
	case NBD_OPT_STARTTLS:
		if (!conn->tls)
			goto unsupported;
		return nbd_conn_opt_starttls(conn);
	case NBD_OPT_EXPORT_NAME:
		/* Any name is our single export. */
		return nbd_conn_opt_export_name(conn);
	case NBD_OPT_INFO:
	case NBD_OPT_GO:
		return nbd_conn_opt_info(conn, data);
	case NBD_OPT_LIST:
		return nbd_conn_opt_list(conn);
	case NBD_OPT_ABORT:
		nbd_opt_reply_header(&r, option, NBD_REP_ACK, 0);
		if (nbd_conn_send_opt_reply(conn, &r))
			return -1;
		nbd_conn_start_closing(conn);
		return -1;
	case NBD_OPT_STRUCTURED_REPLY:
		if (conn->opt.length) {
			nbd_opt_reply_error(&r, option, NBD_REP_ERR_INVALID,
					    "STRUCTURED_REPLY takes no data");
			break;
		}
		conn->structured = 1;
		nbd_opt_reply_header(&r, option, NBD_REP_ACK, 0);
		break;
	default:
	unsupported:
		/* STARTTLS without TLS options, meta contexts, extended headers and anything newer. */
		DPRINTF("nbd %s: option %u (%s) not supported", conn->peer, option,
			nbd_opt_name(option));
		nbd_opt_reply_error(&r, option, NBD_REP_ERR_UNSUP, "option not supported");
		break;
	}
	return nbd_conn_send_opt_reply(conn, &r);
}

void nbd_conn_process_handshake(struct nbd_conn *conn)
{
	while (!conn->server->paused) {
		size_t avail = conn->in_end - conn->in_start;
		uint8_t *p = conn->in_buf + conn->in_start;
		uint32_t flags;
		int err;

		switch (conn->state) {
		case NBD_CONN_HS_FLAGS:
			if (avail < 4)
				return;
			memcpy(&flags, p, 4);
			conn->client_flags = be32toh(flags);
			conn->in_start += 4;
			if (nbd_check_client_flags(conn->client_flags)) {
				nbd_conn_fail(conn, "unknown client flags %#x",
					      conn->client_flags);
				return;
			}
			conn->state = NBD_CONN_HS_OPTION;
			break;

		case NBD_CONN_HS_OPTION:
			err = nbd_parse_option(p, avail, &conn->opt);
			if (err == -EAGAIN)
				return;
			if (err) {
				nbd_conn_fail(conn, "bad option magic");
				return;
			}
			if (conn->opt.length > NBD_MAX_OPTION_LEN) {
				/* EXPORT_NAME cannot be answered with an error. */
				if (conn->opt.option == NBD_OPT_EXPORT_NAME ||
				    conn->opt.length > NBD_MAX_OPTION_DISCARD) {
					nbd_conn_fail(conn, "%s with %u bytes of data",
						      nbd_opt_name(conn->opt.option), conn->opt.length);
					return;
				}
				EPRINTF("nbd %s: %s: %u bytes of data, more than %u: refused",
					conn->peer, nbd_opt_name(conn->opt.option),
					conn->opt.length, NBD_MAX_OPTION_LEN);
				conn->in_start += NBD_OPTION_HEADER_SIZE;
				conn->discard = conn->opt.length;
				conn->state = NBD_CONN_HS_DISCARD;
				break;
			}
			if (avail < NBD_OPTION_HEADER_SIZE + conn->opt.length)
				return;
			conn->in_start += NBD_OPTION_HEADER_SIZE + conn->opt.length;
			if (nbd_conn_handle_option(conn, p + NBD_OPTION_HEADER_SIZE))
				return;
			break;

		case NBD_CONN_HS_DISCARD:
			if (!avail)
				return;
			nbd_conn_take_discard(conn);
			if (!conn->discard) {
				struct nbd_opt_reply r = { 0 };

				conn->state = NBD_CONN_HS_OPTION;
				nbd_opt_reply_error(&r, conn->opt.option, NBD_REP_ERR_TOO_BIG,
						    "option data too long");
				if (nbd_conn_send_opt_reply(conn, &r))
					return;
			}
			break;

		default:
			return;
		}
	}
}

/* NBD over TLS: STARTTLS, TLS required before any other option, the handshake.  docs/nbd-export.md */
#include <errno.h>

#include "tapdisk-log.h"
#include "tapdisk-vbd.h"
#include "tapdisk-nbdserver-internal.h"

int nbd_conn_tls_gate(struct nbd_conn *conn, uint32_t option)
{
	struct nbd_opt_reply r = { 0 };

	if (!conn->tls)
		return 0;
	if (tls_session_is_tls(conn->ts)) {
		if (option != NBD_OPT_STARTTLS)
			return 0;
		nbd_opt_reply_error(&r, option, NBD_REP_ERR_INVALID, "TLS is on already");
		return nbd_conn_send_opt_reply(conn, &r) ? -1 : 1;
	}
	switch (option) {
	case NBD_OPT_STARTTLS:
	case NBD_OPT_ABORT:
		return 0;
	case NBD_OPT_EXPORT_NAME:
		/* It cannot be answered with an error. */
		nbd_conn_fail(conn, "EXPORT_NAME without TLS: TLS is required");
		return -1;
	default:
		DPRINTF("nbd %s: %s before STARTTLS: TLS is required", conn->peer,
			nbd_opt_name(option));
		nbd_opt_reply_error(&r, option, NBD_REP_ERR_TLS_REQD,
				    "TLS is required: send STARTTLS first");
		return nbd_conn_send_opt_reply(conn, &r) ? -1 : 1;
	}
}

int nbd_conn_opt_starttls(struct nbd_conn *conn)
{
	struct nbd_opt_reply r = { 0 };
	char why[512];
	int err;

	if (conn->opt.length) {
		nbd_opt_reply_error(&r, NBD_OPT_STARTTLS, NBD_REP_ERR_INVALID,
				    "STARTTLS takes no data");
		return nbd_conn_send_opt_reply(conn, &r);
	}
	/* Plain-text bytes sent ahead of the handshake would pass for TLS-protected ones. */
	if (conn->in_start != conn->in_end) {
		nbd_conn_fail(conn, "data after STARTTLS, before the TLS handshake");
		return -1;
	}
	/* Read anew for every connection: renewed keys and certificates apply at once. */
	err = tls_creds_load(conn->tls, TLS_SIDE_SERVER, &conn->tls_creds, why, sizeof(why));
	if (err) {
		EPRINTF("nbd %s: STARTTLS refused: %s", conn->peer, why);
		nbd_opt_reply_error(&r, NBD_OPT_STARTTLS, NBD_REP_ERR_POLICY,
				    "the server cannot load its TLS credentials");
		return nbd_conn_send_opt_reply(conn, &r);
	}
	nbd_opt_reply_header(&r, NBD_OPT_STARTTLS, NBD_REP_ACK, 0);
	if (nbd_conn_send_opt_reply(conn, &r))
		return -1;
	conn->state = NBD_CONN_HS_TLS;
	nbd_conn_tls_step(conn);
	/* Input is TLS records from here on: no more parsing of plain text. */
	return -1;
}

/* Runs on every event of the connection until the handshake is done. */
void nbd_conn_tls_step(struct nbd_conn *conn)
{
	int err;

	if (conn->state != NBD_CONN_HS_TLS)
		return;
	if (!tls_session_is_tls(conn->ts)) {
		/* The ACK must leave in plain text before TLS takes over the socket. */
		if (!list_empty(&conn->out_queue))
			return;
		err = tls_session_starttls(conn->ts, conn->tls_creds, TLS_SIDE_SERVER);
		tls_creds_put(conn->tls_creds);
		conn->tls_creds = NULL;
		if (err) {
			nbd_conn_fail(conn, "%s", tls_session_error(conn->ts));
			return;
		}
	}
	err = tls_session_handshake(conn->ts);
	if (err == -EAGAIN) {
		nbd_conn_arm_write(conn, tls_session_wants_write(conn->ts));
		return;
	}
	if (err) {
		nbd_conn_fail(conn, "%s", tls_session_error(conn->ts));
		return;
	}
	nbd_conn_arm_write(conn, 0);
	/* The spec: nothing negotiated in plain text carries over. */
	conn->structured = 0;
	conn->state = NBD_CONN_HS_OPTION;
	DPRINTF("nbd %s: %s", conn->peer, tls_session_describe(conn->ts));
	/* The client's next option may be decrypted already, with no event to come. */
	tapdisk_server_defer(&conn->kick);
}

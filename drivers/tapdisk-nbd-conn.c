/* The life of one NBD connection: reading input, the output queue, closing.  docs/nbd-export.md */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tapdisk-log.h"
#include "tapdisk-vbd.h"
#include "timeout-math.h"
#include "tapdisk-nbdserver-internal.h"

/* ---- connection life ---- */

void nbd_conn_update_read(struct nbd_conn *conn)
{
	int masked;

	if (conn->read_event <= 0)
		return;
	/* Input stays bounded by the input buffer: stop reading only once it cannot drain. */
	masked = conn->server->paused || conn->stalled;
	if (masked != conn->read_masked) {
		tapdisk_server_mask_event(conn->read_event, masked);
		conn->read_masked = masked;
	}
	/* TLS may hold input the socket no longer signals. */
	if (!masked && conn->ts && tls_session_pending(conn->ts))
		tapdisk_server_defer(&conn->kick);
}

static void nbd_req_free(struct nbd_req *req)
{
	free(req->buf);
	free(req);
}

void nbd_conn_release_req(struct nbd_conn *conn, struct nbd_req *req)
{
	conn->nreqs--;
	conn->payload_bytes -= req->charged;
	req->charged = 0;
	/*
	 * Large buffers are kept up to a budget: allocating one costs an mmap and a page
	 * fault per page, which halved 1 MiB write throughput.  Past the budget they go
	 * back to the allocator, so an idle connection stays small.
	 */
	if (req->buf_cap > NBD_KEEP_BUF_SIZE) {
		if (conn->cached_bytes + req->buf_cap <= NBD_BUF_CACHE_BYTES) {
			conn->cached_bytes += req->buf_cap;
		} else {
			free(req->buf);
			req->buf = NULL;
			req->buf_cap = 0;
		}
	}
	/* Requests with the largest buffers are found first. */
	if (req->buf_cap > NBD_KEEP_BUF_SIZE)
		list_add(&req->free_next, &conn->free_reqs);
	else
		list_add_tail(&req->free_next, &conn->free_reqs);
}

/* Not inlined: GCC 12 then mistakes the free of a stand-alone reply for one inside a request. */
static __attribute__((noinline)) void nbd_out_done(struct nbd_conn *conn, struct nbd_out *out)
{
	if (out->req)
		nbd_conn_release_req(conn, out->req);
	else {
		free(out->owned);
		free(out);
	}
}

/*
 * Ends a connection now; in-flight requests complete later into the void.  @error: the
 * client broke the protocol or something failed (logged as an error), else a normal close.
 */
static void nbd_conn_vclose(struct nbd_conn *conn, int error, const char *fmt, va_list ap)
{
	struct nbd_out *out, *tmp;
	char why[256];

	if (conn->state == NBD_CONN_DEAD)
		return;

	vsnprintf(why, sizeof(why), fmt, ap);
	if (error)
		EPRINTF("nbd %s: closed: %s (%llu requests served, %d in flight)", conn->peer, why,
			conn->served, conn->inflight);
	else
		DPRINTF("nbd %s: closed: %s (%llu requests served, %d in flight)", conn->peer, why,
			conn->served, conn->inflight);

	conn->state = NBD_CONN_DEAD;
	if (conn->read_event > 0)
		tapdisk_server_unregister_event(conn->read_event);
	if (conn->write_event > 0)
		tapdisk_server_unregister_event(conn->write_event);
	if (conn->timer_event > 0)
		tapdisk_server_unregister_event(conn->timer_event);
	conn->read_event = conn->write_event = conn->timer_event = 0;
	tapdisk_server_cancel_deferred(&conn->flush);
	tapdisk_server_cancel_deferred(&conn->kick);
	tls_session_close(conn->ts);
	conn->ts = NULL;
	conn->fd = -1;
	tls_creds_put(conn->tls_creds);
	conn->tls_creds = NULL;

	list_for_each_entry_safe(out, tmp, &conn->out_queue, next) {
		list_del(&out->next);
		nbd_out_done(conn, out);
	}
	if (conn->cur) {
		nbd_conn_release_req(conn, conn->cur);
		conn->cur = NULL;
	}
}

void nbd_conn_drop(struct nbd_conn *conn, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	nbd_conn_vclose(conn, 0, fmt, ap);
	va_end(ap);
}

void nbd_conn_fail(struct nbd_conn *conn, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	nbd_conn_vclose(conn, 1, fmt, ap);
	va_end(ap);
}

void nbd_conn_free(struct nbd_conn *conn)
{
	struct nbd_req *req, *tmp;

	list_for_each_entry_safe(req, tmp, &conn->free_reqs, free_next)
		nbd_req_free(req);
	list_del(&conn->next);
	conn->server->nconns--;
	free(conn->in_buf);
	free(conn);
}

/* Run at the end of every entry point, never deeper: see the comment at the top. */
void nbd_conn_put(struct nbd_conn *conn)
{
	struct td_nbdserver *server = conn->server;

	if (conn->state != NBD_CONN_DEAD || conn->inflight)
		return;
	nbd_conn_free(conn);
	if (server->freeing && list_empty(&server->conns))
		nbd_server_destroy(server);
}

/* After DISC, ABORT or a clean EOF: close once every reply is out. */
static void nbd_conn_check_closing(struct nbd_conn *conn)
{
	if (conn->state == NBD_CONN_CLOSING && !conn->nreqs && list_empty(&conn->out_queue))
		nbd_conn_drop(conn, "disconnected");
}

void nbd_conn_start_closing(struct nbd_conn *conn)
{
	conn->state = NBD_CONN_CLOSING;
	if (conn->read_event > 0) {
		tapdisk_server_unregister_event(conn->read_event);
		conn->read_event = 0;
	}
	nbd_conn_check_closing(conn);
}

/* ---- output ---- */

static void nbd_conn_write_cb(event_id_t id, char mode, void *priv);

void nbd_conn_arm_write(struct nbd_conn *conn, int on)
{
	if (conn->write_event <= 0) {
		if (!on)
			return;
		conn->write_event = tapdisk_server_register_event(SCHEDULER_POLL_WRITE_FD, conn->fd,
								  TV_ZERO, nbd_conn_write_cb, conn);
		if (conn->write_event < 0) {
			int err = conn->write_event;

			conn->write_event = 0;
			nbd_conn_fail(conn, "cannot register the write event: %s", strerror(-err));
			return;
		}
		conn->write_masked = 0;
		return;
	}
	if (conn->write_masked == on) {
		tapdisk_server_mask_event(conn->write_event, !on);
		conn->write_masked = !on;
	}
}

/* Sends what it can of the queue; a partial unit stays at the head with its offset. */
static void nbd_conn_flush_output(struct nbd_conn *conn)
{
	struct iovec iov[NBD_SEND_IOVS];
	struct nbd_out *out, *tmp;
	size_t skip;
	ssize_t n;
	int i, cnt;

	while (!list_empty(&conn->out_queue)) {
		cnt = 0;
		list_for_each_entry(out, &conn->out_queue, next) {
			if (cnt + out->iovcnt > NBD_SEND_IOVS)
				break;
			skip = out->sent;
			for (i = 0; i < out->iovcnt; i++) {
				if (skip >= out->iov[i].iov_len) {
					skip -= out->iov[i].iov_len;
					continue;
				}
				iov[cnt].iov_base = (uint8_t *)out->iov[i].iov_base + skip;
				iov[cnt].iov_len = out->iov[i].iov_len - skip;
				skip = 0;
				cnt++;
			}
		}
		n = tls_session_sendv(conn->ts, iov, cnt);
		if (n == -EAGAIN)
			break;
		if (n < 0) {
			nbd_conn_fail(conn, "%s", tls_session_error(conn->ts));
			return;
		}
		list_for_each_entry_safe(out, tmp, &conn->out_queue, next) {
			if ((size_t)n < out->total - out->sent) {
				out->sent += n;
				break;
			}
			n -= out->total - out->sent;
			list_del(&out->next);
			nbd_out_done(conn, out);
		}
	}

	nbd_conn_arm_write(conn, !list_empty(&conn->out_queue));
	if (conn->state != NBD_CONN_DEAD)
		nbd_conn_check_closing(conn);
}

void nbd_conn_send(struct nbd_conn *conn, struct nbd_out *out)
{
	int i, idle;

	if (conn->state == NBD_CONN_DEAD) {
		nbd_out_done(conn, out);
		return;
	}
	out->sent = 0;
	out->total = 0;
	for (i = 0; i < out->iovcnt; i++)
		out->total += out->iov[i].iov_len;
	idle = list_empty(&conn->out_queue);
	list_add_tail(&out->next, &conn->out_queue);
	/* Behind a blocked reply, the write event is armed already. */
	if (!idle)
		return;
	/*
	 * More completions are due (the disk completes in batches): send them all with one
	 * sendmsg at the end of this loop iteration instead of one call per reply.
	 */
	if (conn->inflight) {
		tapdisk_server_defer(&conn->flush);
		return;
	}
	nbd_conn_flush_output(conn);
}

/* The end of the loop iteration: the replies of its completions go out together. */
void nbd_conn_deferred_flush(void *arg)
{
	struct nbd_conn *conn = arg;

	if (conn->state == NBD_CONN_DEAD)
		return;
	nbd_conn_flush_output(conn);
	/* Sent replies free their requests: parse what waited for that room. */
	if (conn->stalled && conn->state != NBD_CONN_DEAD)
		nbd_conn_process_input(conn);
	nbd_conn_put(conn);
}

static void nbd_conn_write_cb(event_id_t id, char mode, void *priv)
{
	struct nbd_conn *conn = priv;

	nbd_conn_flush_output(conn);
	if (conn->state == NBD_CONN_HS_TLS)
		nbd_conn_tls_step(conn);
	/* Sent replies free their requests: parse what waited for that room. */
	if (conn->stalled && conn->state != NBD_CONN_DEAD)
		nbd_conn_process_input(conn);
	nbd_conn_put(conn);
}

void nbd_conn_process_input(struct nbd_conn *conn)
{
	conn->in_busy = 1;
	conn->stalled = 0;
	if (conn->state <= NBD_CONN_HS_DISCARD)
		nbd_conn_process_handshake(conn);
	if (conn->state >= NBD_CONN_TX && conn->state <= NBD_CONN_TX_DISCARD)
		nbd_conn_process_tx(conn);
	conn->in_busy = 0;

	if (conn->state == NBD_CONN_DEAD)
		return;
	if (conn->in_start == conn->in_end)
		conn->in_start = conn->in_end = 0;
	nbd_conn_update_read(conn);

	/* EOF: at a message boundary, finish what is in flight; inside one, give up. */
	if (conn->eof && conn->state != NBD_CONN_CLOSING) {
		if (conn->in_start != conn->in_end || conn->state == NBD_CONN_TX_PAYLOAD ||
		    conn->state == NBD_CONN_TX_DISCARD || conn->state == NBD_CONN_HS_DISCARD) {
			if (conn->stalled || conn->server->paused)
				return; /* requests still to parse once there is room */
			nbd_conn_fail(conn, "end of stream inside a message");
		} else if (conn->state < NBD_CONN_TX) {
			nbd_conn_fail(conn, "end of stream during the handshake");
		} else {
			nbd_conn_start_closing(conn);
		}
	}
}

void nbd_conn_read_cb(event_id_t id, char mode, void *priv)
{
	struct nbd_conn *conn = priv;
	struct iovec iov[2];
	int cnt = 0, direct = 0;
	ssize_t n;

	if (conn->state == NBD_CONN_HS_TLS) {
		nbd_conn_tls_step(conn);
		nbd_conn_put(conn);
		return;
	}

	/* Keep the tail of a partial message and make room after it. */
	if (conn->in_start && conn->in_end == NBD_IN_BUF_SIZE) {
		memmove(conn->in_buf, conn->in_buf + conn->in_start, conn->in_end - conn->in_start);
		conn->in_end -= conn->in_start;
		conn->in_start = 0;
	}

	/*
	 * A WRITE payload goes straight into its request buffer, and whatever follows it
	 * into the input buffer in the same call.
	 */
	if (conn->state == NBD_CONN_TX_PAYLOAD && conn->in_start == conn->in_end) {
		struct nbd_req *req = conn->cur;

		iov[cnt].iov_base = (uint8_t *)req->buf + req->got;
		iov[cnt].iov_len = req->hdr.length - req->got;
		cnt++;
		direct = 1;
		conn->in_start = conn->in_end = 0;
	}
	if (conn->in_end < NBD_IN_BUF_SIZE) {
		iov[cnt].iov_base = conn->in_buf + conn->in_end;
		iov[cnt].iov_len = NBD_IN_BUF_SIZE - conn->in_end;
		cnt++;
	}
	if (!cnt) {
		/* Full of requests we cannot take yet: wait for completions to make room. */
		conn->stalled = 1;
		nbd_conn_update_read(conn);
		return;
	}

	n = tls_session_recvv(conn->ts, iov, cnt);
	if (n < 0) {
		if (n != -EAGAIN)
			nbd_conn_fail(conn, "%s", tls_session_error(conn->ts));
		nbd_conn_put(conn);
		return;
	}
	if (n == 0) {
		conn->eof = 1;
		if (conn->read_event > 0) {
			tapdisk_server_unregister_event(conn->read_event);
			conn->read_event = 0;
		}
	} else if (direct) {
		struct nbd_req *req = conn->cur;
		size_t direct = iov[0].iov_len < (size_t)n ? iov[0].iov_len : (size_t)n;

		req->got += direct;
		conn->in_end += n - direct;
		if (req->got == req->hdr.length) {
			conn->cur = NULL;
			conn->state = NBD_CONN_TX;
			nbd_req_start_rw(req);
		}
	} else {
		conn->in_end += n;
	}

	if (conn->state != NBD_CONN_DEAD)
		nbd_conn_process_input(conn);
	nbd_conn_put(conn);
}

/* Deferred: input TLS decrypted ahead, which no socket event will announce. */
void nbd_conn_kick(void *arg)
{
	struct nbd_conn *conn = arg;

	if (conn->state == NBD_CONN_DEAD || conn->read_event <= 0 || conn->read_masked)
		return;
	nbd_conn_read_cb(conn->read_event, SCHEDULER_POLL_READ_FD, conn);
}

void nbd_conn_timeout_cb(event_id_t id, char mode, void *priv)
{
	struct nbd_conn *conn = priv;

	/* A paused export does not read, so the client is not the one stalling. */
	if (conn->server->paused)
		return;
	nbd_conn_fail(conn, "handshake not finished after %d s", NBD_HANDSHAKE_TIMEOUT);
	nbd_conn_put(conn);
}

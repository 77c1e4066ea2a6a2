/* NBD transmission: requests to the VBD and their replies.  docs/nbd-export.md */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "tapdisk-log.h"
#include "tapdisk-vbd.h"
#include "tapdisk-nbdserver-internal.h"

/* ---- transmission replies ---- */

/* Error chunk: u32 error, u16 length, then a short message for the client's log. */
static size_t nbd_req_build_error_chunk(struct nbd_req *req)
{
	struct nbd_structured_reply sr = { .magic = htobe32(NBD_STRUCTURED_REPLY_MAGIC),
					   .flags = htobe16(NBD_REPLY_FLAG_DONE),
					   .type = htobe16(NBD_REPLY_TYPE_ERROR),
					   .cookie = htobe64(req->hdr.cookie) };
	struct nbd_structured_reply_error err = { .error = htobe32(req->error) };
	char msg[sizeof(req->reply_hdr) - sizeof(sr) - sizeof(err)];
	int mlen;

	mlen = snprintf(msg, sizeof(msg), "%s: %s", nbd_cmd_name(req->hdr.type),
			nbd_error_name(req->error));
	if (mlen < 0)
		mlen = 0;
	if ((size_t)mlen >= sizeof(msg))
		mlen = sizeof(msg) - 1;
	err.len = htobe16(mlen);
	sr.length = htobe32(sizeof(err) + mlen);
	memcpy(req->reply_hdr, &sr, sizeof(sr));
	memcpy(req->reply_hdr + sizeof(sr), &err, sizeof(err));
	memcpy(req->reply_hdr + sizeof(sr) + sizeof(err), msg, mlen);
	return sizeof(sr) + sizeof(err) + mlen;
}

/* A successful READ with structured replies: one OFFSET_DATA chunk, never fragmented. */
static size_t nbd_req_build_read_chunk(struct nbd_req *req)
{
	struct nbd_structured_reply sr = { .magic = htobe32(NBD_STRUCTURED_REPLY_MAGIC),
					   .flags = htobe16(NBD_REPLY_FLAG_DONE),
					   .cookie = htobe64(req->hdr.cookie) };
	struct nbd_structured_reply_offset_data od = { .offset = htobe64(req->hdr.offset) };

	if (!req->hdr.length) {
		/* An OFFSET_DATA chunk must carry data: an empty read is just DONE. */
		sr.type = htobe16(NBD_REPLY_TYPE_NONE);
		memcpy(req->reply_hdr, &sr, sizeof(sr));
		return sizeof(sr);
	}
	sr.type = htobe16(NBD_REPLY_TYPE_OFFSET_DATA);
	sr.length = htobe32(sizeof(od) + req->hdr.length);
	memcpy(req->reply_hdr, &sr, sizeof(sr));
	memcpy(req->reply_hdr + sizeof(sr), &od, sizeof(od));
	return sizeof(sr) + sizeof(od);
}

static size_t nbd_req_build_simple(struct nbd_req *req)
{
	struct nbd_simple_reply rep = { .magic = htobe32(NBD_SIMPLE_REPLY_MAGIC),
					.error = htobe32(req->error),
					.cookie = htobe64(req->hdr.cookie) };

	memcpy(req->reply_hdr, &rep, sizeof(rep));
	return sizeof(rep);
}

/* Sends the reply of @req (req->error set), header and data in one unit. */
static void nbd_req_reply(struct nbd_req *req)
{
	struct nbd_conn *conn = req->conn;
	struct nbd_out *out = &req->out;
	int is_read = req->hdr.type == NBD_CMD_READ;

	memset(out, 0, sizeof(*out));
	out->req = req;
	out->iov[0].iov_base = req->reply_hdr;
	out->iovcnt = 1;

	if (req->error && conn->structured)
		out->iov[0].iov_len = nbd_req_build_error_chunk(req);
	else if (is_read && conn->structured)
		out->iov[0].iov_len = nbd_req_build_read_chunk(req);
	else
		out->iov[0].iov_len = nbd_req_build_simple(req);

	if (is_read && !req->error && req->hdr.length) {
		out->iov[1].iov_base = req->buf;
		out->iov[1].iov_len = req->hdr.length;
		out->iovcnt = 2;
	}
	conn->served++;
	nbd_conn_send(conn, out);
}

static void nbd_req_fail(struct nbd_req *req, uint32_t error)
{
	req->error = error;
	nbd_req_reply(req);
}

/* ---- requests to the VBD ---- */

static void nbd_req_complete(td_vbd_request_t *vreq, int err, void *token, int final);

static int nbd_req_queue(struct nbd_req *req, int op, uint64_t offset, int iovcnt)
{
	struct nbd_conn *conn = req->conn;
	td_vbd_request_t *vreq = &req->vreq;
	int err;

	memset(vreq, 0, sizeof(*vreq));
	vreq->op = op;
	vreq->sec = offset >> SECTOR_SHIFT;
	vreq->iov = iovcnt ? req->iov : NULL;
	vreq->iovcnt = iovcnt;
	vreq->cb = nbd_req_complete;
	vreq->token = req;
	vreq->name = "nbd";

	err = tapdisk_vbd_queue_request(conn->server->vbd, vreq);
	if (err)
		return err;
	conn->inflight++;
	conn->server->inflight++;
	return 0;
}

/* Queues the next piece of a WRITE_ZEROES, at most 64 MiB of the shared zero buffer. */
static int nbd_req_queue_zeroes(struct nbd_req *req)
{
	struct td_nbdserver *server = req->conn->server;
	uint64_t left = req->hdr.length - req->zeroed;
	uint64_t offset = req->hdr.offset + req->zeroed;
	uint32_t chunk;
	int n = 0, err;

	while (left && n < (int)NBD_ZERO_IOVS) {
		chunk = left < NBD_ZERO_BUF_SIZE ? left : NBD_ZERO_BUF_SIZE;
		req->iov[n].base = server->zero_buf;
		req->iov[n].secs = chunk >> SECTOR_SHIFT;
		req->zeroed += chunk;
		left -= chunk;
		n++;
	}
	err = nbd_req_queue(req, TD_OP_WRITE, offset, n);
	return err;
}

/* What to do after the VBD finished a step; returns 1 if another step was queued. */
static int nbd_req_next_step(struct nbd_req *req)
{
	const struct nbd_request *hdr = &req->hdr;
	int err;

	if (req->phase != NBD_REQ_IO)
		return 0;

	if (hdr->type == NBD_CMD_WRITE_ZEROES && req->zeroed < hdr->length)
		err = nbd_req_queue_zeroes(req);
	else if ((hdr->type == NBD_CMD_WRITE || hdr->type == NBD_CMD_WRITE_ZEROES) &&
		 hdr->flags & NBD_CMD_FLAG_FUA) {
		/* FUA: the reply waits until the data is durable. */
		req->phase = NBD_REQ_FLUSH;
		err = nbd_req_queue(req, TD_OP_FLUSH, 0, 0);
	} else
		return 0;

	if (err) {
		EPRINTF("nbd %s: %s: cannot queue the next step: %s", req->conn->peer,
			nbd_cmd_name(hdr->type), strerror(-err));
		req->error = nbd_error_from_errno(err);
		return 0;
	}
	return 1;
}

static void nbd_req_complete(td_vbd_request_t *vreq, int err, void *token, int final)
{
	struct nbd_req *req = token;
	struct nbd_conn *conn = req->conn;
	struct td_nbdserver *server = conn->server;

	conn->inflight--;
	server->inflight--;

	if (conn->state == NBD_CONN_DEAD) {
		nbd_conn_release_req(conn, req);
		nbd_conn_put(conn);
		return;
	}

	/* The disk driver has logged the failure; the client just gets the error. */
	if (err)
		req->error = nbd_error_from_errno(err);
	else if (!server->freeing && nbd_req_next_step(req))
		return;

	nbd_req_reply(req);
	/* Room freed by this reply may let us parse requests already buffered. */
	if (conn->state != NBD_CONN_DEAD && !conn->in_busy)
		nbd_conn_process_input(conn);
	nbd_conn_put(conn);
}

static struct nbd_req *nbd_conn_get_req(struct nbd_conn *conn, const struct nbd_request *hdr)
{
	struct nbd_req *req;

	if (!list_empty(&conn->free_reqs)) {
		/* Small requests take from the tail, so the large buffers wait for large ones. */
		if (hdr->length > NBD_KEEP_BUF_SIZE)
			req = list_first_entry(&conn->free_reqs, struct nbd_req, free_next);
		else
			req = list_last_entry(&conn->free_reqs, struct nbd_req, free_next);
		list_del(&req->free_next);
		if (req->buf_cap > NBD_KEEP_BUF_SIZE)
			conn->cached_bytes -= req->buf_cap;
	} else {
		req = calloc(1, sizeof(*req));
		if (!req) {
			return NULL;
		}
		req->conn = conn;
		INIT_LIST_HEAD(&req->free_next);
	}
	req->hdr = *hdr;
	req->phase = NBD_REQ_IO;
	req->zeroed = 0;
	req->got = 0;
	req->error = 0;
	req->charged = 0;
	conn->nreqs++;
	return req;
}

/* An O_DIRECT-aligned buffer of @len bytes for @req; false if memory is short. */
static int nbd_req_alloc_buf(struct nbd_req *req, uint32_t len)
{
	size_t cap = ((size_t)len + 4095) & ~(size_t)4095;
	void *buf;
	int err;

	if (req->buf_cap < cap) {
		err = posix_memalign(&buf, 4096, cap);
		if (err) {
			EPRINTF("nbd %s: %s: cannot allocate %u bytes", req->conn->peer,
				nbd_cmd_name(req->hdr.type), len);
			return 0;
		}
		free(req->buf);
		req->buf = buf;
		req->buf_cap = cap;
	}
	req->charged = len;
	req->conn->payload_bytes += len;
	return 1;
}

/* Queues a READ or a fully received WRITE. */
void nbd_req_start_rw(struct nbd_req *req)
{
	int err;

	req->iov[0].base = req->buf;
	req->iov[0].secs = req->hdr.length >> SECTOR_SHIFT;
	err = nbd_req_queue(req, req->hdr.type == NBD_CMD_READ ? TD_OP_READ : TD_OP_WRITE,
			    req->hdr.offset, 1);
	if (err)
		nbd_req_fail(req, nbd_error_from_errno(err));
}

static int nbd_server_map_zero_buf(struct td_nbdserver *server)
{
	void *zero;

	if (server->zero_buf)
		return 0;
	/* Untouched private anonymous pages read as zeros and cost no memory. */
	zero = mmap(NULL, NBD_ZERO_BUF_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		    -1, 0);
	if (zero == MAP_FAILED) {
		int err = -errno;

		EPRINTF("nbd: cannot map the zero buffer: %s", strerror(errno));
		return err;
	}
	server->zero_buf = zero;
	return 0;
}

/* Starts a valid request other than WRITE. */
static void nbd_req_start(struct nbd_req *req)
{
	int err;

	switch (req->hdr.type) {
	case NBD_CMD_READ:
		if (!req->hdr.length)
			break;
		if (!nbd_req_alloc_buf(req, req->hdr.length)) {
			nbd_req_fail(req, NBD_ENOMEM);
			return;
		}
		nbd_req_start_rw(req);
		return;
	case NBD_CMD_FLUSH:
		err = nbd_req_queue(req, TD_OP_FLUSH, 0, 0);
		if (err)
			nbd_req_fail(req, nbd_error_from_errno(err));
		return;
	case NBD_CMD_WRITE_ZEROES:
		/* NO_HOLE needs nothing: we always write the zeros. */
		if (!req->hdr.length)
			break;
		err = nbd_server_map_zero_buf(req->conn->server);
		if (!err)
			err = nbd_req_queue_zeroes(req);
		if (err)
			nbd_req_fail(req, nbd_error_from_errno(err));
		return;
	case NBD_CMD_TRIM:
		/*
		 * Advisory, so a no-op is correct: the data stays readable as it was, and a
		 * replicated disk stays identical on both sides without shipping discards.
		 */
		break;
	case NBD_CMD_CACHE:
		/* Advisory prefetch: there is no cache to warm, the disk is opened O_DIRECT. */
		break;
	}
	nbd_req_reply(req);
}

/* ---- transmission input ---- */

static void nbd_conn_limits(const struct nbd_conn *conn, struct nbd_export_limits *lim)
{
	const td_vbd_t *vbd = conn->server->vbd;

	lim->size = tapdisk_vbd_size_bytes(vbd);
	lim->read_only = !!(vbd->flags & TD_OPEN_RDONLY);
	lim->structured = conn->structured;
	lim->max_payload = NBD_MAX_PAYLOAD;
}

static int nbd_conn_throttled(const struct nbd_conn *conn, const struct nbd_request *hdr)
{
	uint64_t need = 0;

	if (hdr->type == NBD_CMD_READ || hdr->type == NBD_CMD_WRITE)
		need = hdr->length <= NBD_MAX_PAYLOAD ? hdr->length : 0;
	if (conn->nreqs >= NBD_MAX_REQS)
		return 1;
	/* A request larger than the room left waits, unless nothing else holds memory. */
	return conn->payload_bytes && conn->payload_bytes + need > NBD_MAX_PAYLOAD_BYTES;
}

/* A client may send bad requests in a loop: log the first few of each connection only. */
static void nbd_conn_log_refusal(struct nbd_conn *conn, const struct nbd_request *hdr,
				 uint32_t error)
{
	if (conn->refused++ >= NBD_LOGGED_REFUSALS)
		return;
	EPRINTF("nbd %s: %s (%u) flags %#x offset %llu length %u: refused with %s%s", conn->peer,
		nbd_cmd_name(hdr->type), hdr->type, hdr->flags, (unsigned long long)hdr->offset,
		hdr->length, nbd_error_name(error),
		conn->refused == NBD_LOGGED_REFUSALS ? " (further refusals not logged)" : "");
}

/* Handles one request header; returns 0 to go on parsing, -1 to stop. */
static int nbd_conn_handle_request(struct nbd_conn *conn, const struct nbd_request *hdr)
{
	struct nbd_export_limits lim;
	struct nbd_req *req;
	uint32_t error;

	nbd_conn_limits(conn, &lim);
	error = nbd_check_request(hdr, &lim);

	if (hdr->type == NBD_CMD_DISC) {
		if (error)
			EPRINTF("nbd %s: DISC with flags %#x offset %llu length %u: disconnecting "
				"anyway", conn->peer, hdr->flags, (unsigned long long)hdr->offset,
				hdr->length);
		nbd_conn_start_closing(conn);
		return -1;
	}

	req = nbd_conn_get_req(conn, hdr);
	if (!req) {
		nbd_conn_fail(conn, "out of memory for a request");
		return -1;
	}

	if (error) {
		nbd_conn_log_refusal(conn, hdr, error);
		if (hdr->type == NBD_CMD_WRITE && hdr->length) {
			/* The payload is on the wire anyway: skip it, then answer. */
			req->error = error;
			conn->cur = req;
			conn->discard = hdr->length;
			conn->state = NBD_CONN_TX_DISCARD;
			return 0;
		}
		nbd_req_fail(req, error);
		return 0;
	}

	if (hdr->type != NBD_CMD_WRITE) {
		nbd_req_start(req);
		return 0;
	}

	if (!hdr->length) {
		nbd_req_reply(req);
		return 0;
	}
	if (!nbd_req_alloc_buf(req, hdr->length)) {
		req->error = NBD_ENOMEM;
		conn->cur = req;
		conn->discard = hdr->length;
		conn->state = NBD_CONN_TX_DISCARD;
		return 0;
	}
	conn->cur = req;
	conn->state = NBD_CONN_TX_PAYLOAD;
	return 0;
}

/* Moves buffered payload bytes of the current WRITE into its buffer. */
static void nbd_conn_take_payload(struct nbd_conn *conn)
{
	struct nbd_req *req = conn->cur;
	size_t avail = conn->in_end - conn->in_start;
	size_t want = req->hdr.length - req->got;
	size_t n = avail < want ? avail : want;

	memcpy((uint8_t *)req->buf + req->got, conn->in_buf + conn->in_start, n);
	conn->in_start += n;
	req->got += n;
	if (req->got == req->hdr.length) {
		conn->cur = NULL;
		conn->state = NBD_CONN_TX;
		nbd_req_start_rw(req);
	}
}

void nbd_conn_take_discard(struct nbd_conn *conn)
{
	size_t avail = conn->in_end - conn->in_start;
	size_t n = avail < conn->discard ? avail : conn->discard;

	conn->in_start += n;
	conn->discard -= n;
	if (conn->discard)
		return;

	if (conn->state == NBD_CONN_TX_DISCARD) {
		struct nbd_req *req = conn->cur;

		conn->cur = NULL;
		conn->state = NBD_CONN_TX;
		nbd_req_reply(req);
	}
}

void nbd_conn_process_tx(struct nbd_conn *conn)
{
	struct nbd_request hdr;
	int err;

	while (conn->state != NBD_CONN_DEAD && !conn->server->paused) {
		size_t avail = conn->in_end - conn->in_start;

		if (conn->state == NBD_CONN_TX_PAYLOAD) {
			if (!avail)
				return;
			nbd_conn_take_payload(conn);
			continue;
		}
		if (conn->state == NBD_CONN_TX_DISCARD) {
			if (!avail)
				return;
			nbd_conn_take_discard(conn);
			continue;
		}
		if (conn->state != NBD_CONN_TX)
			return;

		err = nbd_parse_request(conn->in_buf + conn->in_start, avail, &hdr);
		if (err == -EAGAIN)
			return;
		if (err) {
			nbd_conn_fail(conn, "bad request magic");
			return;
		}
		if (nbd_conn_throttled(conn, &hdr)) {
			conn->stalled = 1;
			return;
		}
		conn->in_start += NBD_REQUEST_SIZE;
		if (nbd_conn_handle_request(conn, &hdr))
			return;
	}
}

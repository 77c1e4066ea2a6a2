/*
 * The NBD export of a VBD (docs/nbd-export.md).
 *
 * One server per VBD, with listeners on a Unix socket and optionally TCP.  Everything runs on
 * the tapdisk event loop: sockets are non-blocking, input is read greedily into a buffer per
 * connection and parsed there, each request becomes a td_vbd_request_t, and its reply goes out
 * when the VBD completes it (so replies are out of order).
 *
 * Lifetimes:
 * - A request (struct nbd_req) lives from its header until its reply is sent or dropped.
 *   While the VBD holds it, it is "in flight" (conn->inflight, server->inflight).
 * - A connection that fails or ends is "dead" at once: fd closed, events gone, queued replies
 *   dropped.  Its struct stays until its in-flight requests have called back, because those
 *   callbacks point at it.  Only the top of each entry point (event and VBD callbacks) frees
 *   a dead connection, so no function ever runs on freed memory.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "list.h"
#include "nbd-protocol.h"
#include "scheduler.h"
#include "tapdisk-log.h"
#include "tapdisk-nbd-parse.h"
#include "tapdisk-nbdserver.h"
#include "tapdisk-server.h"
#include "tapdisk-vbd.h"
#include "tapdisk.h"
#include "timeout-math.h"

#define NBD_EXPORT_NAME "tapdisk_client"

#define NBD_MIN_BLOCK 512u
#define NBD_PREF_BLOCK 4096u
#define NBD_MAX_PAYLOAD TD_VBD_MAX_REQUEST_BYTES

#define NBD_IN_BUF_SIZE (256u << 10)
/* Option data we are willing to hold; longer options are discarded and refused. */
#define NBD_MAX_OPTION_LEN (64u << 10)
/* No client sends options this long: waiting to discard them would only serve an attacker. */
#define NBD_MAX_OPTION_DISCARD (16u << 20)
#define NBD_HANDSHAKE_TIMEOUT 30
#define NBD_MAX_CONNS 64

/* Per-connection bounds; when one is hit we stop reading until completions free room. */
#define NBD_MAX_REQS 128
#define NBD_MAX_PAYLOAD_BYTES (256ull << 20)
/* Request buffers up to this size are kept on the free list for reuse. */
#define NBD_KEEP_BUF_SIZE (128u << 10)
/* Larger buffers kept per connection for reuse. */
#define NBD_BUF_CACHE_BYTES (32u << 20)

/* WRITE_ZEROES goes to the VBD in pieces of at most 64 MiB, each iovec one zero buffer. */
#define NBD_ZERO_BUF_SIZE (1u << 20)
#define NBD_ZERO_IOVS (NBD_MAX_PAYLOAD / NBD_ZERO_BUF_SIZE)

#define NBD_SEND_IOVS 64
#define NBD_LOGGED_REFUSALS 16

enum nbd_conn_state {
	NBD_CONN_HS_FLAGS, /* waiting for the client flags */
	NBD_CONN_HS_OPTION, /* waiting for an option */
	NBD_CONN_HS_DISCARD, /* discarding the data of an oversized option */
	NBD_CONN_TX, /* waiting for a request header */
	NBD_CONN_TX_PAYLOAD, /* reading a WRITE payload into its request */
	NBD_CONN_TX_DISCARD, /* discarding the payload of a refused WRITE */
	NBD_CONN_CLOSING, /* no more input; close once replies are out */
	NBD_CONN_DEAD,
};

/* What a request does next when the VBD calls back. */
enum nbd_req_phase {
	NBD_REQ_IO,
	NBD_REQ_FLUSH, /* the FUA flush after a write */
};

struct nbd_conn;

/* Bytes to send as one unit: replies are never interleaved. */
struct nbd_out {
	struct list_head next;
	struct iovec iov[2];
	int iovcnt;
	size_t sent;
	size_t total;
	struct nbd_req *req; /* released once sent */
	void *owned; /* freed once sent (handshake replies) */
};

struct nbd_req {
	td_vbd_request_t vreq;
	struct td_iovec iov[NBD_ZERO_IOVS];
	struct nbd_conn *conn;
	struct list_head free_next;

	struct nbd_request hdr;
	enum nbd_req_phase phase;
	uint64_t zeroed; /* WRITE_ZEROES: bytes done so far */
	uint32_t got; /* WRITE: payload bytes received so far */
	uint32_t error; /* NBD error to reply with */
	int charged; /* payload bytes counted against the connection */

	void *buf;
	size_t buf_cap;

	struct nbd_out out;
	uint8_t reply_hdr[64];
};

struct nbd_listener {
	struct td_nbdserver *server;
	struct list_head next;
	int fd;
	event_id_t event;
	event_id_t retry_event; /* re-enables accept after EMFILE */
	char name[128];
	const char *short_name; /* for connection names: the socket's file name */
};

struct nbd_conn {
	struct td_nbdserver *server;
	struct list_head next;
	int fd;
	char peer[192];
	enum nbd_conn_state state;

	event_id_t read_event;
	event_id_t write_event;
	event_id_t timer_event;
	int read_masked;
	int write_masked;

	uint8_t *in_buf;
	size_t in_start;
	size_t in_end;
	int in_busy; /* parsing; stops re-entry from completions */
	int stalled; /* a parsed request waits for room (NBD_MAX_REQS, payload bytes) */
	int eof;

	uint32_t client_flags;
	int structured;
	struct nbd_option opt; /* the option being read */
	uint64_t discard; /* bytes left to discard */

	struct nbd_req *cur; /* WRITE whose payload is being read or discarded */

	struct list_head out_queue;
	struct list_head free_reqs;
	int nreqs; /* allocated, not on the free list */
	int inflight; /* held by the VBD */
	unsigned long long payload_bytes;
	size_t cached_bytes; /* in large buffers kept on free requests */
	unsigned long long served;
	unsigned int refused;
};

struct td_nbdserver {
	td_vbd_t *vbd;
	struct list_head listeners;
	struct list_head conns;
	int nconns;
	int inflight;
	int paused;
	int freeing; /* freed when the last in-flight request calls back */
	unsigned int conn_serial;
	char *unix_path;
	void *zero_buf;
};

static void nbd_conn_process_input(struct nbd_conn *conn);
static void nbd_conn_read_cb(event_id_t id, char mode, void *priv);
static void nbd_server_destroy(struct td_nbdserver *server);

/* ---- connection life ---- */

static void nbd_conn_update_read(struct nbd_conn *conn)
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
}

static void nbd_req_free(struct nbd_req *req)
{
	free(req->buf);
	free(req);
}

static void nbd_conn_release_req(struct nbd_conn *conn, struct nbd_req *req)
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
	close(conn->fd);
	conn->fd = -1;

	list_for_each_entry_safe(out, tmp, &conn->out_queue, next) {
		list_del(&out->next);
		nbd_out_done(conn, out);
	}
	if (conn->cur) {
		nbd_conn_release_req(conn, conn->cur);
		conn->cur = NULL;
	}
}

static void nbd_conn_drop(struct nbd_conn *conn, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void nbd_conn_fail(struct nbd_conn *conn, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void nbd_conn_drop(struct nbd_conn *conn, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	nbd_conn_vclose(conn, 0, fmt, ap);
	va_end(ap);
}

static void nbd_conn_fail(struct nbd_conn *conn, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	nbd_conn_vclose(conn, 1, fmt, ap);
	va_end(ap);
}

static void nbd_conn_free(struct nbd_conn *conn)
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
static void nbd_conn_put(struct nbd_conn *conn)
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

static void nbd_conn_start_closing(struct nbd_conn *conn)
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

static void nbd_conn_arm_write(struct nbd_conn *conn, int on)
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
	struct msghdr msg = { .msg_iov = iov };
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
		msg.msg_iovlen = cnt;
		/* MSG_NOSIGNAL: a vanished client must be an error here, not a SIGPIPE. */
		n = sendmsg(conn->fd, &msg, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			nbd_conn_fail(conn, "send: %s", strerror(errno));
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

static void nbd_conn_send(struct nbd_conn *conn, struct nbd_out *out)
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
	 * More completions are due (the disk completes in batches): let the write event send
	 * them all with one sendmsg in the next loop round instead of one call per reply.
	 */
	if (conn->inflight) {
		nbd_conn_arm_write(conn, 1);
		return;
	}
	nbd_conn_flush_output(conn);
}

static void nbd_conn_write_cb(event_id_t id, char mode, void *priv)
{
	struct nbd_conn *conn = priv;

	nbd_conn_flush_output(conn);
	/* Sent replies free their requests: parse what waited for that room. */
	if (conn->stalled && conn->state != NBD_CONN_DEAD)
		nbd_conn_process_input(conn);
	nbd_conn_put(conn);
}

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
static void nbd_req_start_rw(struct nbd_req *req)
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

static void nbd_conn_take_discard(struct nbd_conn *conn)
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

static void nbd_conn_process_tx(struct nbd_conn *conn)
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

/* ---- handshake ---- */

/* Option replies of one option, gathered so they go out in one send. */
struct nbd_opt_reply {
	uint8_t *buf;
	size_t len;
	size_t cap;
	int failed;
};

static void nbd_opt_reply_add(struct nbd_opt_reply *r, const void *data, size_t len)
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

static void nbd_opt_reply_header(struct nbd_opt_reply *r, uint32_t option, uint32_t type,
				 uint32_t len)
{
	struct nbd_fixed_new_option_reply rep = { .magic = htobe64(NBD_REP_MAGIC),
						  .option = htobe32(option),
						  .reply = htobe32(type),
						  .replylen = htobe32(len) };

	nbd_opt_reply_add(r, &rep, sizeof(rep));
}

static void nbd_opt_reply_error(struct nbd_opt_reply *r, uint32_t option, uint32_t type,
				const char *msg)
{
	nbd_opt_reply_header(r, option, type, strlen(msg));
	nbd_opt_reply_add(r, msg, strlen(msg));
}

/* Sends the gathered replies; returns -1 if the connection is gone. */
static int nbd_conn_send_opt_reply(struct nbd_conn *conn, struct nbd_opt_reply *r)
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

	switch (option) {
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
		/* STARTTLS, meta contexts, extended headers and anything newer. */
		DPRINTF("nbd %s: option %u (%s) not supported", conn->peer, option,
			nbd_opt_name(option));
		nbd_opt_reply_error(&r, option, NBD_REP_ERR_UNSUP, "option not supported");
		break;
	}
	return nbd_conn_send_opt_reply(conn, &r);
}

static void nbd_conn_process_handshake(struct nbd_conn *conn)
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

static void nbd_conn_process_input(struct nbd_conn *conn)
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

static void nbd_conn_read_cb(event_id_t id, char mode, void *priv)
{
	struct nbd_conn *conn = priv;
	struct iovec iov[2];
	int cnt = 0, direct = 0;
	ssize_t n;

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

	n = readv(conn->fd, iov, cnt);
	if (n < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			nbd_conn_fail(conn, "recv: %s", strerror(errno));
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

static void nbd_conn_timeout_cb(event_id_t id, char mode, void *priv)
{
	struct nbd_conn *conn = priv;

	/* A paused export does not read, so the client is not the one stalling. */
	if (conn->server->paused)
		return;
	nbd_conn_fail(conn, "handshake not finished after %d s", NBD_HANDSHAKE_TIMEOUT);
	nbd_conn_put(conn);
}

/* ---- listening ---- */

/* "nbd123.4#7 pid 999" or "127.0.0.1:10809#7 from 127.0.0.1:40000": export, serial, peer. */
static void nbd_conn_name_peer(struct nbd_conn *conn, const struct nbd_listener *l,
			       const struct sockaddr_storage *ss, socklen_t len)
{
	char host[NI_MAXHOST], port[NI_MAXSERV];
	unsigned int serial = ++l->server->conn_serial;
	struct ucred cred;
	socklen_t clen = sizeof(cred);

	if (ss->ss_family == AF_UNIX) {
		if (getsockopt(conn->fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen))
			cred.pid = 0;
		snprintf(conn->peer, sizeof(conn->peer), "%.64s#%u pid %d", l->short_name, serial,
			 cred.pid);
	} else if (!getnameinfo((const struct sockaddr *)ss, len, host, sizeof(host), port,
				sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV)) {
		snprintf(conn->peer, sizeof(conn->peer), "%.64s#%u from %.64s:%.8s", l->short_name,
			 serial, host, port);
	} else {
		snprintf(conn->peer, sizeof(conn->peer), "%.64s#%u", l->short_name, serial);
	}
}

static void nbd_server_accept_one(struct nbd_listener *l, int fd, struct sockaddr_storage *ss,
				  socklen_t len)
{
	struct td_nbdserver *server = l->server;
	struct nbd_new_handshake hs = {
		.nbdmagic = htobe64(NBD_MAGIC),
		.version = htobe64(NBD_IHAVEOPT),
		.gflags = htobe16(NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES),
	};
	struct nbd_opt_reply r = { 0 };
	struct nbd_conn *conn;
	int one = 1;

	if (server->nconns >= NBD_MAX_CONNS) {
		EPRINTF("nbd %s: refusing a connection: %d already open", l->name,
			server->nconns);
		close(fd);
		return;
	}
	if (ss->ss_family != AF_UNIX)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

	conn = calloc(1, sizeof(*conn));
	if (!conn || !(conn->in_buf = malloc(NBD_IN_BUF_SIZE))) {
		EPRINTF("nbd %s: out of memory for a connection", l->name);
		free(conn);
		close(fd);
		return;
	}
	conn->server = server;
	conn->fd = fd;
	conn->state = NBD_CONN_HS_FLAGS;
	INIT_LIST_HEAD(&conn->out_queue);
	INIT_LIST_HEAD(&conn->free_reqs);
	list_add_tail(&conn->next, &server->conns);
	server->nconns++;
	nbd_conn_name_peer(conn, l, ss, len);

	conn->read_event = tapdisk_server_register_event(SCHEDULER_POLL_READ_FD, fd, TV_ZERO,
							 nbd_conn_read_cb, conn);
	conn->timer_event = tapdisk_server_register_event(SCHEDULER_POLL_TIMEOUT, -1,
							  TV_SECS(NBD_HANDSHAKE_TIMEOUT),
							  nbd_conn_timeout_cb, conn);
	if (conn->read_event < 0 || conn->timer_event < 0) {
		int err = conn->read_event < 0 ? conn->read_event : conn->timer_event;

		if (conn->read_event < 0)
			conn->read_event = 0;
		if (conn->timer_event < 0)
			conn->timer_event = 0;
		nbd_conn_fail(conn, "cannot register events: %s", strerror(-err));
		nbd_conn_put(conn);
		return;
	}
	DPRINTF("nbd %s: connected", conn->peer);
	nbd_conn_update_read(conn);

	nbd_opt_reply_add(&r, &hs, sizeof(hs));
	nbd_conn_send_opt_reply(conn, &r);
	nbd_conn_put(conn);
}

static void nbd_listener_retry_cb(event_id_t id, char mode, void *priv)
{
	struct nbd_listener *l = priv;

	tapdisk_server_unregister_event(l->retry_event);
	l->retry_event = 0;
	if (!l->server->paused)
		tapdisk_server_mask_event(l->event, 0);
}

static void nbd_listener_accept_cb(event_id_t id, char mode, void *priv)
{
	struct nbd_listener *l = priv;
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, i;

	/* A few per wakeup, so a connect storm cannot starve the disk's completions. */
	for (i = 0; i < 16; i++) {
		len = sizeof(ss);
		fd = accept4(l->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			nbd_server_accept_one(l, fd, &ss, len);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		EPRINTF("nbd %s: accept: %s", l->name, strerror(errno));
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
			/* Level-triggered: without a pause we would spin on the pending connection. */
			tapdisk_server_mask_event(l->event, 1);
			if (!l->retry_event) {
				l->retry_event = tapdisk_server_register_event(
					SCHEDULER_POLL_TIMEOUT, -1, TV_SECS(1),
					nbd_listener_retry_cb, l);
				if (l->retry_event < 0)
					l->retry_event = 0;
			}
		}
		return;
	}
}

static int nbd_server_add_listener(struct td_nbdserver *server, int fd, const char *name)
{
	struct nbd_listener *l;

	l = calloc(1, sizeof(*l));
	if (!l) {
		EPRINTF("nbd %s: out of memory", name);
		return -ENOMEM;
	}
	l->server = server;
	l->fd = fd;
	snprintf(l->name, sizeof(l->name), "%s", name);
	l->short_name = strrchr(l->name, '/') ? strrchr(l->name, '/') + 1 : l->name;
	l->event = tapdisk_server_register_event(SCHEDULER_POLL_READ_FD, fd, TV_ZERO,
						 nbd_listener_accept_cb, l);
	if (l->event < 0) {
		int err = l->event;

		EPRINTF("nbd %s: cannot register the listener: %s", name, strerror(-err));
		free(l);
		return err;
	}
	if (server->paused)
		tapdisk_server_mask_event(l->event, 1);
	list_add_tail(&l->next, &server->listeners);
	DPRINTF("nbd %s: listening", name);
	return 0;
}

static void nbd_listener_free(struct nbd_listener *l)
{
	if (l->event > 0)
		tapdisk_server_unregister_event(l->event);
	if (l->retry_event > 0)
		tapdisk_server_unregister_event(l->retry_event);
	close(l->fd);
	list_del(&l->next);
	free(l);
}

/* ---- API ---- */

struct td_nbdserver *tapdisk_nbdserver_alloc(td_vbd_t *vbd)
{
	struct td_nbdserver *server;

	server = calloc(1, sizeof(*server));
	if (!server) {
		EPRINTF("nbd: out of memory for the server of %s", vbd->name ? vbd->name : "?");
		return NULL;
	}
	server->vbd = vbd;
	INIT_LIST_HEAD(&server->listeners);
	INIT_LIST_HEAD(&server->conns);
	return server;
}

int tapdisk_nbdserver_listen_unix(struct td_nbdserver *server, const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	mode_t old_mask;
	int fd, err;
	char *copy;

	if (strlen(path) >= sizeof(addr.sun_path)) {
		EPRINTF("nbd %s: socket path too long", path);
		return -ENAMETOOLONG;
	}
	if (server->unix_path) {
		EPRINTF("nbd %s: already listening on %s", path, server->unix_path);
		return -EBUSY;
	}
	copy = strdup(path);
	if (!copy) {
		EPRINTF("nbd %s: out of memory", path);
		return -ENOMEM;
	}
	strcpy(addr.sun_path, path);

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		err = -errno;
		EPRINTF("nbd %s: socket: %s", path, strerror(errno));
		free(copy);
		return err;
	}

	/* A stale socket of a dead tapdisk with our pid and minor would make bind fail. */
	if (unlink(path) && errno != ENOENT) {
		err = -errno;
		EPRINTF("nbd %s: unlink stale socket: %s", path, strerror(errno));
		goto fail;
	}
	/* 0600 from birth: no window where another user could connect. */
	old_mask = umask(0177);
	err = bind(fd, (struct sockaddr *)&addr, sizeof(addr));
	umask(old_mask);
	if (err) {
		err = -errno;
		EPRINTF("nbd %s: bind: %s", path, strerror(errno));
		goto fail;
	}
	if (listen(fd, SOMAXCONN)) {
		err = -errno;
		EPRINTF("nbd %s: listen: %s", path, strerror(errno));
		unlink(path);
		goto fail;
	}

	err = nbd_server_add_listener(server, fd, path);
	if (err) {
		unlink(path);
		goto fail;
	}
	server->unix_path = copy;
	return 0;

fail:
	close(fd);
	free(copy);
	return err;
}

int tapdisk_nbdserver_listen_tcp(struct td_nbdserver *server, const char *host, const char *port,
				 char *bound, size_t bound_size)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
				  .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *res, *ai;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char h[NI_MAXHOST], p[NI_MAXSERV], name[NI_MAXHOST + NI_MAXSERV + 8];
	int fd = -1, err, one = 1;

	if (host && !*host)
		host = NULL;
	err = getaddrinfo(host, port, &hints, &res);
	if (err) {
		EPRINTF("nbd %s:%s: getaddrinfo: %s", host ? host : "*", port, gai_strerror(err));
		return -EINVAL;
	}

	err = -EADDRNOTAVAIL;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			    ai->ai_protocol);
		if (fd < 0) {
			err = -errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (!bind(fd, ai->ai_addr, ai->ai_addrlen) && !listen(fd, SOMAXCONN))
			break;
		err = -errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		EPRINTF("nbd %s:%s: cannot listen: %s", host ? host : "*", port, strerror(-err));
		return err;
	}

	if (getsockname(fd, (struct sockaddr *)&ss, &len) ||
	    getnameinfo((struct sockaddr *)&ss, len, h, sizeof(h), p, sizeof(p),
			NI_NUMERICHOST | NI_NUMERICSERV)) {
		err = -EINVAL;
		EPRINTF("nbd %s:%s: cannot name the bound address", host ? host : "*", port);
		close(fd);
		return err;
	}
	if (ss.ss_family == AF_INET6)
		snprintf(name, sizeof(name), "[%s]:%s", h, p);
	else
		snprintf(name, sizeof(name), "%s:%s", h, p);

	err = nbd_server_add_listener(server, fd, name);
	if (err) {
		close(fd);
		return err;
	}
	if (bound && bound_size)
		snprintf(bound, bound_size, "%s", name);
	return 0;
}

void tapdisk_nbdserver_pause(struct td_nbdserver *server)
{
	struct nbd_listener *l;
	struct nbd_conn *conn;

	if (server->paused)
		return;
	server->paused = 1;
	list_for_each_entry(l, &server->listeners, next)
		tapdisk_server_mask_event(l->event, 1);
	list_for_each_entry(conn, &server->conns, next)
		nbd_conn_update_read(conn);
}

void tapdisk_nbdserver_unpause(struct td_nbdserver *server)
{
	struct nbd_listener *l;
	struct nbd_conn *conn, *tmp;

	if (!server->paused)
		return;
	server->paused = 0;
	list_for_each_entry(l, &server->listeners, next)
		if (!l->retry_event)
			tapdisk_server_mask_event(l->event, 0);
	list_for_each_entry_safe(conn, tmp, &server->conns, next) {
		if (conn->state == NBD_CONN_DEAD)
			continue;
		nbd_conn_update_read(conn);
		/* Requests buffered before the pause would otherwise wait for more input. */
		nbd_conn_process_input(conn);
		nbd_conn_put(conn);
	}
}

int tapdisk_nbdserver_inflight(const struct td_nbdserver *server)
{
	return server ? server->inflight : 0;
}

static void nbd_server_destroy(struct td_nbdserver *server)
{
	if (server->zero_buf)
		munmap(server->zero_buf, NBD_ZERO_BUF_SIZE);
	free(server->unix_path);
	free(server);
}

void tapdisk_nbdserver_free(struct td_nbdserver *server)
{
	struct nbd_listener *l, *ltmp;
	struct nbd_conn *conn, *tmp;

	if (!server)
		return;

	list_for_each_entry_safe(l, ltmp, &server->listeners, next)
		nbd_listener_free(l);
	if (server->unix_path)
		unlink(server->unix_path);

	list_for_each_entry_safe(conn, tmp, &server->conns, next) {
		nbd_conn_drop(conn, "export closed");
		if (!conn->inflight)
			nbd_conn_free(conn);
	}

	if (!list_empty(&server->conns)) {
		/* The VBD should have drained; keep what completions still point at. */
		EPRINTF("nbd: export freed with %d requests in flight", server->inflight);
		server->freeing = 1;
		return;
	}
	nbd_server_destroy(server);
}

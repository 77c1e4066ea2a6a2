/*
 * The replication link (docs/colo-protocol.md): one connection between Primary and Secondary
 * after the handshake (colo-handshake.c), plain TCP or TLS behind tls-session.h: nothing here
 * knows which.  Frames go out through a queue flushed once per loop
 * iteration (many frames per sendmsg); frames come in through colo_reader, which names where
 * the next bytes go so that payloads land in their final buffer.  Heartbeats keep an idle link
 * provably alive; a link silent for the timeout is declared lost.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "colo-internal.h"
#include "crc32c.h"
#include "timeout-math.h"

#define COLO_IOV_MAX 256
/* Small frames are received through a staging buffer, payloads this large directly. */
#define COLO_RX_STAGE (256U << 10)
#define COLO_RX_DIRECT (64U << 10)
/* Bytes read per wakeup, so one busy link cannot starve the rest of the loop. */
#define COLO_READ_BUDGET (8U << 20)

static void colo_socket_tune(int fd)
{
	int one = 1, size = 4 << 20;

	/* Acks and heartbeats are tiny and latency-bound; writes are batched by the queue. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
}

static void colo_link_read_cb(event_id_t id, char mode, void *priv);
/* Why a send or receive failed: the system's word, or TLS's. */
static const char *colo_link_error(const struct colo_conn *l, int err)
{
	return tls_session_is_tls(l->ts) ? tls_session_error(l->ts) : strerror(-err);
}
static void colo_link_write_cb(event_id_t id, char mode, void *priv);
static void colo_link_timer_cb(event_id_t id, char mode, void *priv);
static void colo_link_flush(void *arg);
static void colo_link_rd_kick(void *arg);

void colo_link_flush_now(struct colo *c)
{
	colo_link_flush(c);
}

static uint32_t colo_heartbeat_ms(const struct colo *c)
{
	uint32_t ms = c->opts.timeout_ms / 4;

	return ms < 25 ? 25 : ms;
}

int colo_link_up(struct colo *c, struct tls_session *ts, int fd)
{
	struct colo_conn *l = &c->link;
	int err;

	l->ts = ts;
	l->fd = fd;
	colo_socket_tune(fd);
	l->limits.disk_size = c->disk_size;
	colo_reader_init(&l->reader, &l->limits);
	tapdisk_deferred_init(&l->flush, colo_link_flush, c);
	tapdisk_deferred_init(&l->rd_kick, colo_link_rd_kick, c);
	l->rx_have = l->rx_off = 0;
	if (!l->rx)
		l->rx = malloc(COLO_RX_STAGE);
	if (!l->rx) {
		tls_session_close(ts);
		l->ts = NULL;
		l->fd = -1;
		return colo_fail(c, -ENOMEM, "out of memory for the replication link");
	}
	l->head_sent = 0;
	l->rd_masked = l->wr_masked = false;
	l->last_rx_ms = l->last_tx_ms = colo_now_ms();
	l->rd_event = tapdisk_server_register_event(SCHEDULER_POLL_READ_FD, fd, TV_ZERO,
						    colo_link_read_cb, c);
	l->timer_event = tapdisk_server_register_event(
		SCHEDULER_POLL_TIMEOUT, -1, TV_MSECS(colo_heartbeat_ms(c)), colo_link_timer_cb, c);
	if (l->rd_event < 0 || l->timer_event < 0) {
		err = l->rd_event < 0 ? l->rd_event : l->timer_event;
		if (l->rd_event < 0)
			l->rd_event = 0;
		if (l->timer_event < 0)
			l->timer_event = 0;
		colo_link_close(c);
		return colo_fail(c, err, "cannot watch the replication link: %s", strerror(-err));
	}
	c->link_state = COLO_LINK_UP;
	/* The handshake's last read may have brought frames along already (TLS buffers). */
	tapdisk_server_defer(&l->rd_kick);
	return 0;
}

void colo_link_close(struct colo *c)
{
	struct colo_conn *l = &c->link;
	struct colo_msg *m, *tmp;

	if (l->fd < 0)
		return;
	colo_primary_link_flushed(c); /* before the queue goes: what is in it gets a copy */
	if (l->rd_event > 0)
		tapdisk_server_unregister_event(l->rd_event);
	if (l->wr_event > 0)
		tapdisk_server_unregister_event(l->wr_event);
	if (l->timer_event > 0)
		tapdisk_server_unregister_event(l->timer_event);
	l->rd_event = l->wr_event = l->timer_event = 0;
	tapdisk_server_cancel_deferred(&l->flush);
	list_for_each_entry_safe(m, tmp, &l->sendq, next) {
		list_del_init(&m->next);
		if (!m->sent)
			free(m);
	}
	tapdisk_server_cancel_deferred(&l->rd_kick);
	colo_reader_free(&l->reader);
	tls_session_close(l->ts);
	l->ts = NULL;
	l->fd = -1;
}

void colo_link_lost(struct colo *c, int err, const char *fmt, ...)
{
	char msg[COLO_ERR_LEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	colo_fail(c, err, "replication link to %s lost: %s", c->link.peer, msg);
	colo_link_close(c);
	c->link_state = COLO_LINK_LOST;
	if (c->role == COLO_ROLE_PRIMARY)
		colo_primary_link_lost(c, err);
	else
		colo_secondary_link_lost(c);
}

void colo_link_send(struct colo *c, struct colo_msg *m, const struct colo_frame *f)
{
	colo_frame_encode(f, &m->hdr);
	list_add_tail(&m->next, &c->link.sendq);
	tapdisk_server_defer(&c->link.flush);
}

void colo_link_send_simple(struct colo *c, uint16_t type, uint64_t seq, uint64_t epoch)
{
	struct colo_frame f = {.type = type, .seq = seq, .epoch = epoch};
	struct colo_msg *m;

	if (c->link.fd < 0)
		return;
	m = calloc(1, sizeof(*m));
	if (!m) {
		colo_link_lost(c, -ENOMEM, "out of memory for a %s frame",
			       colo_frame_type_name(type));
		return;
	}
	colo_link_send(c, m, &f);
}

void colo_link_send_error(struct colo *c, int err, const char *msg)
{
	struct colo_frame f = {.type = COLO_FRAME_ERROR,
			       .offset = (uint64_t)(err < 0 ? -err : err)};
	size_t len = strnlen(msg, COLO_ERROR_MAX);
	struct colo_msg *m;

	if (c->link.fd < 0)
		return;
	m = calloc(1, sizeof(*m) + len);
	if (m) {
		memcpy(m + 1, msg, len);
		m->data = m + 1;
		m->len = (uint32_t)len;
		f.length = (uint32_t)len;
		f.data_crc = crc32c(0, m->data, len);
		colo_link_send(c, m, &f);
		/* Best effort: the peer should learn why before the connection closes. */
		colo_link_flush(c);
	}
}

void colo_link_pause_reading(struct colo *c, bool pause)
{
	struct colo_conn *l = &c->link;

	if (l->fd < 0 || l->rd_masked == pause)
		return;
	l->rd_masked = pause;
	tapdisk_server_mask_event(l->rd_event, pause);
	/* Silence while we do not read is ours, not the peer's. */
	if (!pause) {
		l->last_rx_ms = colo_now_ms();
		if (l->rx_off < l->rx_have || tls_session_pending(l->ts))
			tapdisk_server_defer(&l->rd_kick);
	}
}

static void colo_link_arm_write(struct colo *c, bool on)
{
	struct colo_conn *l = &c->link;

	if (!l->wr_event) {
		if (!on)
			return;
		l->wr_event = tapdisk_server_register_event(SCHEDULER_POLL_WRITE_FD, l->fd, TV_ZERO,
							    colo_link_write_cb, c);
		if (l->wr_event < 0) {
			int err = l->wr_event;

			l->wr_event = 0;
			colo_link_lost(c, err, "cannot watch the socket: %s", strerror(-err));
			return;
		}
		l->wr_masked = false;
		return;
	}
	if (l->wr_masked == on) {
		tapdisk_server_mask_event(l->wr_event, !on);
		l->wr_masked = !on;
	}
}

/* Sends what the socket takes; a partly sent message stays at the head with its offset. */
static void colo_link_send_queued(struct colo *c)
{
	struct colo_conn *l = &c->link;

	while (l->fd >= 0 && !list_empty(&l->sendq)) {
		struct iovec iov[COLO_IOV_MAX];
		size_t skip = l->head_sent;
		struct colo_msg *m, *tmp;
		int n = 0;
		ssize_t done;

		list_for_each_entry(m, &l->sendq, next) {
			const char *hdr = (const char *)&m->hdr;

			if (n + 2 > COLO_IOV_MAX)
				break;
			if (skip < COLO_WIRE_FRAME_SIZE) {
				iov[n].iov_base = (void *)(hdr + skip);
				iov[n++].iov_len = COLO_WIRE_FRAME_SIZE - skip;
				skip = 0;
			} else {
				skip -= COLO_WIRE_FRAME_SIZE;
			}
			if (m->len) {
				iov[n].iov_base = (char *)m->data + skip;
				iov[n++].iov_len = m->len - skip;
			}
			skip = 0;
		}
		/* A short send leaves the rest at the head: the next call starts with it. */
		done = tls_session_sendv(l->ts, iov, n);
		if (done == -EAGAIN) {
			colo_link_arm_write(c, true);
			return;
		}
		if (done < 0) {
			colo_link_lost(c, (int)done, "send: %s", colo_link_error(l, (int)done));
			return;
		}
		l->last_tx_ms = colo_now_ms();
		done += l->head_sent;
		list_for_each_entry_safe(m, tmp, &l->sendq, next) {
			size_t size = COLO_WIRE_FRAME_SIZE + m->len;

			if ((size_t)done < size)
				break;
			done -= size;
			list_del_init(&m->next);
			if (m->sent)
				m->sent(c, m);
			else
				free(m);
		}
		l->head_sent = done;
	}
	if (l->fd >= 0)
		colo_link_arm_write(c, false);
}

static void colo_link_flush(void *arg)
{
	struct colo *c = arg;

	colo_link_send_queued(c);
	/* The Primary's frames sent from guest buffers: those writes complete now. */
	colo_primary_link_flushed(c);
}

static void colo_link_write_cb(event_id_t id, char mode, void *priv)
{
	colo_link_flush(priv);
}

void colo_link_goodbye(struct colo *c)
{
	char sink[4096];
	struct iovec iov = {.iov_base = sink, .iov_len = sizeof(sink)};

	if (c->link.fd < 0)
		return;
	colo_link_send_simple(c, COLO_FRAME_GOODBYE, 0, c->epoch);
	colo_link_flush_now(c);
	/* Unread bytes would make close() reset the connection, and the peer might miss it. */
	while (c->link.ts && tls_session_recvv(c->link.ts, &iov, 1) > 0)
		;
	colo_link_close(c);
}

/* The peer ended replication in order: the link is closed, and that is no error of ours. */
static void colo_link_peer_goodbye(struct colo *c)
{
	const char *peer = c->role == COLO_ROLE_PRIMARY ? "Secondary" : "Primary";

	DPRINTF("colo %s:%s: the %s at %s ended replication; link closed", c->host, c->port, peer,
		c->link.peer);
	colo_link_close(c);
	c->link_state = COLO_LINK_CLOSED;
	/* A start or checkpoint waiting on the peer fails, and needs a reason. */
	if (c->start_call.done || c->ckpt_call.done)
		colo_fail(c, -ENOTCONN, "the %s ended replication", peer);
	if (c->role == COLO_ROLE_PRIMARY)
		colo_primary_link_lost(c, -ENOTCONN);
	else
		colo_secondary_link_lost(c);
}

static void colo_link_heartbeat(struct colo *c, struct colo_frame *f, void *payload)
{
	free(payload);
}

static void colo_link_goodbye_rx(struct colo *c, struct colo_frame *f, void *payload)
{
	free(payload);
	colo_link_peer_goodbye(c);
}

static void colo_link_error_rx(struct colo *c, struct colo_frame *f, void *payload)
{
	char msg[COLO_ERROR_MAX + 1];

	memcpy(msg, payload ? payload : "", f->length);
	msg[f->length] = '\0';
	for (char *p = msg; *p; p++)
		if (*p < ' ' || *p > '~')
			*p = '?';
	free(payload);
	colo_link_lost(c, -(int)f->offset, "the %s reported: %s (%s)",
		       c->role == COLO_ROLE_PRIMARY ? "Secondary" : "Primary", msg,
		       strerror((int)f->offset));
}

/* The link's own frames, either role. */
static const struct colo_frame_handler colo_link_frames[] = {
	{ COLO_FRAME_HEARTBEAT, colo_link_heartbeat },
	{ COLO_FRAME_GOODBYE, colo_link_goodbye_rx },
	{ COLO_FRAME_ERROR, colo_link_error_rx },
	{ 0, NULL },
};

static colo_frame_fn colo_frame_find(const struct colo_frame_handler *h, uint16_t type)
{
	for (; h->type; h++)
		if (h->type == type)
			return h->fn;
	return NULL;
}

static void colo_link_frame(struct colo *c, struct colo_frame *f, void *payload)
{
	const char *peer = c->role == COLO_ROLE_PRIMARY ? "Secondary" : "Primary";
	colo_frame_fn fn = colo_frame_find(colo_link_frames, f->type);

	if (!fn)
		fn = colo_frame_find(c->role == COLO_ROLE_PRIMARY ? colo_primary_frames
								  : colo_secondary_frames,
				     f->type);
	if (fn) {
		fn(c, f, payload);
		return;
	}
	free(payload);
	colo_fail(c, -EPROTO, "unexpected %s frame from the %s", colo_frame_type_name(f->type),
		  peer);
	colo_link_send_error(c, -EPROTO, c->last_error);
	colo_link_lost(c, -EPROTO, "unexpected %s frame from the %s",
		       colo_frame_type_name(f->type), peer);
}

/*
 * Fills what the reader asks for: from the staging buffer while it holds bytes, straight from
 * the socket for a large payload, else through the staging buffer, so that a stream of small
 * frames costs one recv for many of them.  Returns bytes stored, 0 for "nothing now", or -1
 * once the link is lost.
 */
static ssize_t colo_link_fill(struct colo *c, void *buf, size_t len)
{
	struct colo_conn *l = &c->link;
	struct iovec iov;
	ssize_t n;

	for (;;) {
		if (l->rx_off < l->rx_have) {
			n = (ssize_t)(len < l->rx_have - l->rx_off ? len : l->rx_have - l->rx_off);
			memcpy(buf, l->rx + l->rx_off, n);
			l->rx_off += n;
			return n;
		}
		if (len >= COLO_RX_DIRECT)
			iov = (struct iovec){.iov_base = buf, .iov_len = len};
		else
			iov = (struct iovec){.iov_base = l->rx, .iov_len = COLO_RX_STAGE};
		n = tls_session_recvv(l->ts, &iov, 1);
		if (n == -EAGAIN)
			return 0;
		if (n < 0) {
			colo_link_lost(c, (int)n, "receive: %s", colo_link_error(l, (int)n));
			return -1;
		}
		if (n == 0) {
			colo_link_lost(c, -ECONNRESET, "the %s closed the connection",
				       c->role == COLO_ROLE_PRIMARY ? "Secondary" : "Primary");
			return -1;
		}
		l->last_rx_ms = colo_now_ms();
		if (len >= COLO_RX_DIRECT)
			return n;
		l->rx_have = (size_t)n;
		l->rx_off = 0;
	}
}

static void colo_link_receive(struct colo *c)
{
	struct colo_conn *l = &c->link;
	size_t budget = COLO_READ_BUDGET;
	char err[COLO_ERR_LEN];

	while (l->fd >= 0 && !l->rd_masked && budget) {
		struct colo_frame f;
		void *buf, *payload;
		size_t len;
		ssize_t n;
		int rc;

		colo_reader_next(&l->reader, &buf, &len);
		n = colo_link_fill(c, buf, len);
		if (n <= 0)
			return;
		budget = (size_t)n < budget ? budget - n : 0;
		rc = colo_reader_advance(&l->reader, n, err, sizeof(err));
		if (rc < 0) {
			colo_link_send_error(c, rc, err);
			colo_link_lost(c, rc, "bad frame: %s", err);
			return;
		}
		if (rc == 1) {
			colo_reader_take(&l->reader, &f, &payload);
			colo_link_frame(c, &f, payload);
		}
	}
	/* Staged bytes, and what TLS decrypted or read ahead, do not wake epoll: come back. */
	if (l->fd >= 0 && !l->rd_masked &&
	    (l->rx_off < l->rx_have || tls_session_pending(l->ts)))
		tapdisk_server_defer(&l->rd_kick);
}

static void colo_link_read_cb(event_id_t id, char mode, void *priv)
{
	colo_link_receive(priv);
}

static void colo_link_rd_kick(void *arg)
{
	colo_link_receive(arg);
}

static void colo_link_timer_cb(event_id_t id, char mode, void *priv)
{
	struct colo *c = priv;
	struct colo_conn *l = &c->link;
	long long now = colo_now_ms();

	if (l->fd < 0)
		return;
	if (!l->rd_masked && now - l->last_rx_ms > (long long)c->opts.timeout_ms) {
		colo_link_lost(c, -ETIMEDOUT, "nothing heard for %lld ms (timeout %u ms)",
			       now - l->last_rx_ms, c->opts.timeout_ms);
		return;
	}
	if (c->role == COLO_ROLE_PRIMARY && colo_primary_stalled(c, now))
		return;
	if (now - l->last_tx_ms >= (long long)colo_heartbeat_ms(c) && list_empty(&l->sendq))
		colo_link_send_simple(c, COLO_FRAME_HEARTBEAT, 0, c->epoch);
}

/*
 * The Secondary's start: listen on HOST:PORT, accept one Primary (from peer= only, if set),
 * check its hello against our disk and block size, answer, and hand the connection to the
 * replication link (colo-net.c).  A refused or silent peer is closed and we keep listening.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "colo-internal.h"
#include "timeout-math.h"

/* ---- start: listen, handshake ---- */

static void colo_secondary_hs_cb(event_id_t id, char mode, void *priv);

static void colo_secondary_hs_close(struct colo *c)
{
	if (c->s.hs_event > 0)
		tapdisk_server_unregister_event(c->s.hs_event);
	c->s.hs_event = 0;
	if (c->s.hs_fd >= 0)
		close(c->s.hs_fd);
	c->s.hs_fd = -1;
}

/* peer=ADDR: the only address a Primary may connect from (IPv4 also as ::ffff:a.b.c.d). */
static bool colo_peer_allowed(const struct colo *c, const struct sockaddr_storage *ss)
{
	unsigned char want[16], got[16];
	int family;

	if (!c->opts.peer[0])
		return true;
	family = inet_pton(AF_INET, c->opts.peer, want) == 1 ? AF_INET : AF_INET6;
	if (family == AF_INET6 && inet_pton(AF_INET6, c->opts.peer, want) != 1)
		return false;
	if (ss->ss_family == AF_INET) {
		memcpy(got, &((const struct sockaddr_in *)ss)->sin_addr, 4);
		return family == AF_INET && !memcmp(got, want, 4);
	}
	if (ss->ss_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;

		if (family == AF_INET)
			return IN6_IS_ADDR_V4MAPPED(a) && !memcmp(&a->s6_addr[12], want, 4);
		return !memcmp(a->s6_addr, want, 16);
	}
	return false;
}

static void colo_secondary_accept_cb(event_id_t id, char mode, void *priv)
{
	struct colo *c = priv;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[NI_MAXHOST] = "?", serv[NI_MAXSERV] = "?";
	int fd;

	fd = accept4(c->s.listen_fd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), serv, sizeof(serv),
		    NI_NUMERICHOST | NI_NUMERICSERV);
	/* The peer is checked before a byte of it is read. */
	if (!colo_peer_allowed(c, &ss)) {
		struct colo_hello_reply r = {.version = COLO_PROTO_VERSION, .status = EACCES};
		struct colo_wire_hello_reply w;

		colo_fail(c, -EACCES, "refused a connection from %s: only %s may be the Primary",
			  host, c->opts.peer);
		snprintf(r.message, sizeof(r.message),
			 "address %.46s is not this Secondary's "
			 "Primary",
			 host);
		colo_hello_reply_encode(&r, &w);
		if (send(fd, &w, sizeof(w), MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
			DPRINTF("colo: could not tell %s why: %s", host, strerror(errno));
		close(fd);
		return;
	}
	if (c->s.hs_fd >= 0 || c->link.fd >= 0 || c->state != COLO_STATE_CONNECTING) {
		EPRINTF("colo %s:%s: refused a connection from %s:%s: a Primary is already being "
			"served",
			c->host, c->port, host, serv);
		close(fd);
		return;
	}
	c->s.hs_fd = fd;
	c->s.hs_have = 0;
	snprintf(c->link.peer, sizeof(c->link.peer), "%s:%s", host, serv);
	c->s.hs_event = tapdisk_server_register_event(
		SCHEDULER_POLL_READ_FD | SCHEDULER_POLL_TIMEOUT, fd, TV_MSECS(c->opts.timeout_ms),
		colo_secondary_hs_cb, c);
	if (c->s.hs_event < 0) {
		c->s.hs_event = 0;
		colo_secondary_hs_close(c);
	}
}

/* Checks the Primary's hello against our disk; 0, or a positive errno with the reason. */
static int colo_secondary_check_hello(struct colo *c, struct colo_hello *h, char *msg, size_t len)
{
	int rc = colo_hello_decode(&c->s.hs_hello, h, msg, len);

	if (rc)
		return -rc;
	if (h->disk_size != c->disk_size) {
		snprintf(msg, len,
			 "disk size mismatch: the Primary's disk is %llu bytes, the "
			 "Secondary's %llu",
			 (unsigned long long)h->disk_size, (unsigned long long)c->disk_size);
		return EINVAL;
	}
	if (h->block_size != c->opts.block_size) {
		snprintf(msg, len,
			 "block size mismatch: the Primary uses %u bytes, the Secondary "
			 "%u",
			 h->block_size, c->opts.block_size);
		return EINVAL;
	}
	return 0;
}

static void colo_secondary_hs_cb(event_id_t id, char mode, void *priv)
{
	struct colo *c = priv;
	struct colo_wire_hello_reply w;
	struct colo_hello_reply r = {.version = COLO_PROTO_VERSION};
	struct colo_hello h;
	ssize_t n;
	int fd;

	if (!(mode & SCHEDULER_POLL_READ_FD)) {
		EPRINTF("colo %s:%s: %s sent no hello within %u ms", c->host, c->port, c->link.peer,
			c->opts.timeout_ms);
		colo_secondary_hs_close(c);
		return;
	}
	n = recv(c->s.hs_fd, (char *)&c->s.hs_hello + c->s.hs_have,
		 sizeof(c->s.hs_hello) - c->s.hs_have, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		EPRINTF("colo %s:%s: %s closed the connection during the handshake", c->host,
			c->port, c->link.peer);
		colo_secondary_hs_close(c);
		return;
	}
	c->s.hs_have += n;
	if (c->s.hs_have < sizeof(c->s.hs_hello))
		return;
	r.status = colo_secondary_check_hello(c, &h, r.message, sizeof(r.message));
	memcpy(r.session_id, h.session_id, sizeof(r.session_id));
	colo_hello_reply_encode(&r, &w);
	if (send(c->s.hs_fd, &w, sizeof(w), MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)sizeof(w) ||
	    r.status) {
		if (r.status)
			colo_fail(c, -r.status, "refused the Primary at %s: %s", c->link.peer,
				  r.message);
		colo_secondary_hs_close(c);
		return;
	}
	fd = c->s.hs_fd;
	c->s.hs_fd = -1;
	colo_secondary_hs_close(c);
	/* One Primary per replication run: nobody else may connect now. */
	if (c->s.listen_event > 0)
		tapdisk_server_unregister_event(c->s.listen_event);
	c->s.listen_event = 0;
	close(c->s.listen_fd);
	c->s.listen_fd = -1;
	memcpy(c->session_id, h.session_id, sizeof(c->session_id));
	for (size_t i = 0; colo_start_steps[i]; i++)
		if (h.flags & colo_start_steps[i]->hello_flag)
			colo_start_steps[i]->begin(c);
	if (colo_link_up(c, fd)) {
		c->link_state = COLO_LINK_LOST;
		colo_secondary_link_lost(c);
		return;
	}
	colo_clear_error(c); /* refused Primaries before this one are history */
	colo_set_state(c, COLO_STATE_RUNNING);
	DPRINTF("colo %s:%s: replicating from the Primary at %s", c->host, c->port, c->link.peer);
}

static int colo_secondary_listen(struct colo *c)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res;
	int fd, one = 1, rc;

	rc = getaddrinfo(c->host, c->port, &hints, &res);
	if (rc)
		return colo_fail(c, -EADDRNOTAVAIL, "start: cannot resolve %s: %s", c->host,
				 gai_strerror(rc));
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		rc = -errno;
		freeaddrinfo(res);
		return colo_fail(c, rc, "start: socket: %s", strerror(-rc));
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, res->ai_addr, res->ai_addrlen) || listen(fd, 4)) {
		rc = -errno;
		freeaddrinfo(res);
		close(fd);
		return colo_fail(c, rc, "start: cannot listen on %s:%s: %s", c->host, c->port,
				 strerror(-rc));
	}
	freeaddrinfo(res);
	c->s.listen_fd = fd;
	c->s.listen_event = tapdisk_server_register_event(SCHEDULER_POLL_READ_FD, fd, TV_ZERO,
							  colo_secondary_accept_cb, c);
	if (c->s.listen_event < 0) {
		rc = c->s.listen_event;
		c->s.listen_event = 0;
		close(fd);
		c->s.listen_fd = -1;
		return colo_fail(c, rc, "start: cannot watch the socket: %s", strerror(-rc));
	}
	return 0;
}

int colo_secondary_start(struct colo *c)
{
	char why[COLO_ERR_LEN] = "";
	struct colo_buffer_config cfg = {
		.block_size = c->opts.block_size,
		.ram_limit = c->opts.ram_limit,
		.spill_path = c->opts.spill_path,
		.spill_limit = c->opts.spill_limit,
		.why = why,
		.why_len = sizeof(why),
	};
	int err;

	err = colo_buffer_create(&cfg, &c->s.buf);
	if (err && why[0])
		return colo_fail(c, err, "start: %s", why);
	if (err)
		return colo_fail(c, err, "start: cannot create the disk buffer: %s",
				 strerror(-err));
	err = colo_secondary_listen(c);
	if (err) {
		colo_buffer_destroy(c->s.buf);
		c->s.buf = NULL;
		return err;
	}
	tapdisk_deferred_init(&c->s.ack, colo_secondary_send_ack, c);
	c->s.expect_seq = 1;
	c->s.applied_seq = c->s.acked_seq = 0;
	c->s.marker_epoch = 0;
	c->s.last_rx_marker = 0;
	colo_set_state(c, COLO_STATE_CONNECTING);
	c->link_state = COLO_LINK_LISTENING;
	DPRINTF("colo %s:%s: waiting for the Primary", c->host, c->port);
	colo_call_done(&c->start_call, 0, 0);
	return 0;
}

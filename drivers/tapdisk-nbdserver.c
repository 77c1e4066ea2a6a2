/* The NBD export of a VBD: listeners, accepting clients, and the public API.  docs/nbd-export.md */
#include <errno.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "tapdisk-log.h"
#include "tapdisk-vbd.h"
#include "timeout-math.h"
#include "tapdisk-nbdserver-internal.h"

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
	if (!conn || !(conn->in_buf = malloc(NBD_IN_BUF_SIZE)) || !(conn->ts = tls_session_new(fd))) {
		EPRINTF("nbd %s: out of memory for a connection", l->name);
		if (conn)
			free(conn->in_buf);
		free(conn);
		close(fd);
		return;
	}
	conn->server = server;
	conn->fd = fd;
	conn->tls = l->tls;
	conn->state = NBD_CONN_HS_FLAGS;
	INIT_LIST_HEAD(&conn->out_queue);
	tapdisk_deferred_init(&conn->flush, nbd_conn_deferred_flush, conn);
	tapdisk_deferred_init(&conn->kick, nbd_conn_kick, conn);
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

static int nbd_server_add_listener(struct td_nbdserver *server, int fd, const char *name,
				   const struct tls_config *tls)
{
	struct nbd_listener *l;

	l = calloc(1, sizeof(*l));
	if (l && tls && !(l->tls = malloc(sizeof(*tls)))) {
		free(l);
		l = NULL;
	}
	if (!l) {
		EPRINTF("nbd %s: out of memory", name);
		return -ENOMEM;
	}
	if (tls)
		*l->tls = *tls;
	l->server = server;
	l->fd = fd;
	snprintf(l->name, sizeof(l->name), "%s", name);
	l->short_name = strrchr(l->name, '/') ? strrchr(l->name, '/') + 1 : l->name;
	l->event = tapdisk_server_register_event(SCHEDULER_POLL_READ_FD, fd, TV_ZERO,
						 nbd_listener_accept_cb, l);
	if (l->event < 0) {
		int err = l->event;

		EPRINTF("nbd %s: cannot register the listener: %s", name, strerror(-err));
		free(l->tls);
		free(l);
		return err;
	}
	if (server->paused)
		tapdisk_server_mask_event(l->event, 1);
	list_add_tail(&l->next, &server->listeners);
	DPRINTF("nbd %s: listening (tls=%s)", name, tls ? tls_mode_name(tls->mode) : "none");
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
	free(l->tls);
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

	err = nbd_server_add_listener(server, fd, path, NULL);
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

/* Loads the credentials once, so that a mistake is reported to whoever asked for the listener. */
static int nbd_server_check_tls(const struct tls_config *tls, const char *host, const char *port)
{
	struct tls_creds *creds;
	char why[512];
	int err;

	if (!tls) {
		EPRINTF("nbd %s:%s: no TLS options", host ? host : "*", port);
		return -EINVAL;
	}
	err = tls_config_check(tls, TLS_SIDE_SERVER, why, sizeof(why));
	if (!err && tls->mode != TLS_MODE_NONE)
		err = tls_creds_load(tls, TLS_SIDE_SERVER, &creds, why, sizeof(why));
	if (err) {
		EPRINTF("nbd %s:%s: %s", host ? host : "*", port, why);
		return err;
	}
	if (tls->mode != TLS_MODE_NONE)
		tls_creds_put(creds);
	return 0;
}

int tapdisk_nbdserver_listen_tcp(struct td_nbdserver *server, const char *host, const char *port,
				 const struct tls_config *tls, char *bound, size_t bound_size)
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
	err = nbd_server_check_tls(tls, host, port);
	if (err)
		return err;
	if (tls->mode == TLS_MODE_NONE)
		tls = NULL;
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

	err = nbd_server_add_listener(server, fd, name, tls);
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

void nbd_server_destroy(struct td_nbdserver *server)
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

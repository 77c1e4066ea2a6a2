/*
 * The handshake of the replication link, both sides (docs/colo-protocol.md "Handshake"):
 *
 *   Primary:   connect (retried until connect_timeout) -> [TLS] -> send hello -> read reply
 *   Secondary: accept (peer= checked) -> [TLS] -> read hello -> check -> send reply
 *
 * A connection is a tls_session (tls-session.h), plain or TLS; once the handshake is done it
 * goes to the link (colo-net.c), which does not know which one it has.  With tls=x509 or
 * tls=psk, TLS starts right after the TCP connection, and the hello inside it carries the
 * mode in auth_type.  The first byte a side reads tells TLS (a handshake record, 0x16) from
 * our plain protocol (the magic's "B"), so that a Primary and a Secondary whose modes differ
 * still exchange a plain hello and hello_reply, and both learn why they cannot talk.
 *
 * A refused or silent Primary is closed and the Secondary keeps listening; a Primary whose
 * handshake fails after the TCP connection fails its start.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "colo-internal.h"
#include "timeout-math.h"

#define COLO_CONNECT_RETRY_MS 200
#define COLO_TLS_RECORD_HANDSHAKE 0x16
#define COLO_MAGIC_FIRST_BYTE 0x42 /* "B" of "BLKCOLO1", big-endian */

enum {
	COLO_HS_NONE,
	COLO_HS_RETRY,	    /* Primary: waiting to connect again */
	COLO_HS_CONNECTING, /* Primary: TCP connect in progress */
	COLO_HS_SNIFF,	    /* Secondary: the Primary's first byte tells TLS from plain */
	COLO_HS_TLS,	    /* the TLS handshake */
	COLO_HS_SEND,	    /* sending the hello (Primary) or the hello_reply (Secondary) */
	COLO_HS_RECV,	    /* reading the hello_reply (Primary) or the hello (Secondary) */
};

static bool colo_hs_primary(const struct colo *c)
{
	return c->role == COLO_ROLE_PRIMARY;
}

/* colo.h's COLO_TLS_* are tls-session.h's modes, without including it. */
_Static_assert(COLO_TLS_UNSET == (int)TLS_MODE_UNSET && COLO_TLS_NONE == (int)TLS_MODE_NONE &&
		       COLO_TLS_X509 == (int)TLS_MODE_X509 && COLO_TLS_PSK == (int)TLS_MODE_PSK,
	       "COLO_TLS_* and enum tls_mode differ");

/* The link's TLS options as tls-session.h takes them. */
static void colo_hs_tls_config(const struct colo_options *opts, struct tls_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->mode = (enum tls_mode)opts->tls;
	snprintf(cfg->dir, sizeof(cfg->dir), "%s", opts->tls_dir);
	snprintf(cfg->psk_file, sizeof(cfg->psk_file), "%s", opts->tls_psk);
	snprintf(cfg->user, sizeof(cfg->user), "%s", opts->tls_user);
	snprintf(cfg->name, sizeof(cfg->name), "%s", opts->tls_name);
	/* The Secondary writes its disk for the Primary: it must know who that is. */
	cfg->verify_peer = 1;
}

int colo_handshake_check(struct colo *c, enum colo_role role, const struct colo_options *opts)
{
	enum tls_side side = role == COLO_ROLE_PRIMARY ? TLS_SIDE_CLIENT : TLS_SIDE_SERVER;
	struct tls_creds *creds;
	struct tls_config cfg;
	char why[COLO_ERR_LEN];
	int err;

	colo_hs_tls_config(opts, &cfg);
	err = tls_config_check(&cfg, side, why, sizeof(why));
	if (err)
		return colo_fail(c, err, "start: %s", why);
	if (cfg.mode == TLS_MODE_NONE)
		return 0;
	/* Loaded here to refuse a start that could never connect; again per connection. */
	err = tls_creds_load(&cfg, side, &creds, why, sizeof(why));
	if (err)
		return colo_fail(c, err, "start: TLS credentials: %s", why);
	tls_creds_put(creds);
	return 0;
}

static enum tls_mode colo_hs_mode(const struct colo *c)
{
	return (enum tls_mode)c->opts.tls;
}

/* The hello's auth_type for a TLS mode, and the option that names a type. */
static uint32_t colo_hs_auth_type(enum tls_mode mode)
{
	return mode == TLS_MODE_X509 ? COLO_AUTH_X509
	       : mode == TLS_MODE_PSK ? COLO_AUTH_PSK
				      : COLO_AUTH_NONE;
}

static const char *colo_hs_auth_name(uint32_t auth_type)
{
	return auth_type == COLO_AUTH_X509  ? "tls=x509"
	       : auth_type == COLO_AUTH_PSK ? "tls=psk"
					    : "tls=none";
}

static void colo_hs_cb(event_id_t id, char mode, void *priv);

static void colo_hs_unwatch(struct colo *c)
{
	if (c->hs.event > 0)
		tapdisk_server_unregister_event(c->hs.event);
	c->hs.event = 0;
}

/* Drops the connection in its handshake, if any. */
static void colo_hs_drop(struct colo *c)
{
	colo_hs_unwatch(c);
	if (c->hs.ts)
		tls_session_close(c->hs.ts);
	else if (c->hs.fd >= 0)
		close(c->hs.fd);
	c->hs.ts = NULL;
	c->hs.fd = -1;
	c->hs.phase = COLO_HS_NONE;
	c->hs.tls = c->hs.plain_reply = c->hs.refused = c->hs.heard = false;
}

static void colo_hs_stop_listening(struct colo *c)
{
	if (c->s.listen_event > 0)
		tapdisk_server_unregister_event(c->s.listen_event);
	c->s.listen_event = 0;
	if (c->s.listen_fd >= 0)
		close(c->s.listen_fd);
	c->s.listen_fd = -1;
}

void colo_handshake_close(struct colo *c)
{
	colo_hs_drop(c);
	colo_hs_stop_listening(c);
}

/* Waits for the socket (@mode 0: only the timer) for at most @ms. */
static int colo_hs_wait(struct colo *c, char mode, int ms)
{
	/*
	 * The Secondary's wait ends at the handshake's deadline however the peer paces its
	 * bytes: one that drips them must not hold the only handshake slot.
	 */
	if (!colo_hs_primary(c) && c->hs.deadline) {
		long long left = c->hs.deadline - colo_now_ms();

		if (left < ms)
			ms = left > 0 ? (int)left : 1;
	}
	colo_hs_unwatch(c);
	c->hs.event = tapdisk_server_register_event(mode | SCHEDULER_POLL_TIMEOUT,
						    mode ? c->hs.fd : -1, TV_MSECS(ms > 0 ? ms : 1),
						    colo_hs_cb, c);
	if (c->hs.event < 0) {
		int err = c->hs.event;

		c->hs.event = 0;
		return colo_fail(c, err, "start: cannot watch the connection: %s", strerror(-err));
	}
	return 0;
}

/* The Primary's start failed, or the Secondary drops this Primary and listens on. */
static void colo_hs_failed(struct colo *c, int err)
{
	colo_hs_drop(c);
	if (colo_hs_primary(c))
		colo_primary_start_failed(c, err);
}

/*
 * A failure after the TCP connection, logged with the reason.  The Primary's start fails with
 * it; the Secondary records it (status shows it) and listens on.
 */
static int __attribute__((format(printf, 3, 4)))
colo_hs_refuse(struct colo *c, int err, const char *fmt, ...)
{
	char msg[COLO_ERR_LEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (colo_hs_primary(c))
		return colo_fail(c, err, "start: %s", msg);
	return colo_fail(c, err, "refused the Primary at %s: %s", c->link.peer, msg);
}

/* ---- messages: the hello and the hello_reply, plain or inside TLS ---- */

static void colo_hs_start_send(struct colo *c, void *buf, size_t len)
{
	c->hs.buf = buf;
	c->hs.len = len;
	c->hs.done = 0;
	c->hs.phase = COLO_HS_SEND;
}

static void colo_hs_start_recv(struct colo *c, void *buf, size_t len)
{
	c->hs.buf = buf;
	c->hs.len = len;
	c->hs.done = 0;
	c->hs.phase = COLO_HS_RECV;
}

static void colo_hs_send_hello(struct colo *c)
{
	struct colo_hello h = {
		.version = COLO_PROTO_VERSION,
		.flags = colo_start_steps_flags(c),
		.disk_size = c->disk_size,
		.block_size = c->opts.block_size,
		.auth_type = colo_hs_auth_type(colo_hs_mode(c)),
	};

	memcpy(h.session_id, c->session_id, sizeof(h.session_id));
	colo_primary_hello(c, &h);
	colo_hello_encode(&h, &c->hs.hello);
	colo_hs_start_send(c, &c->hs.hello, sizeof(c->hs.hello));
}

/* Secondary: answers @status (0 or a positive errno) with @msg. */
static void colo_hs_send_reply(struct colo *c, int status, const uint8_t *session_id,
			       const char *msg)
{
	struct colo_hello_reply r = {.version = COLO_PROTO_VERSION, .status = status};

	if (session_id)
		memcpy(r.session_id, session_id, sizeof(r.session_id));
	if (!status && c->s.resume_ok) {
		r.flags = COLO_REPLY_RESUMED;
		r.epoch = c->s.resume_at;
	}
	snprintf(r.message, sizeof(r.message), "%s", msg);
	colo_hello_reply_encode(&r, &c->hs.reply);
	c->hs.refused = status != 0;
	colo_hs_start_send(c, &c->hs.reply, sizeof(c->hs.reply));
}

/* Checks the Primary's hello against our disk and mode; 0, or a positive errno and @msg. */
static int colo_hs_check_hello(struct colo *c, struct colo_hello *h, char *msg, size_t len)
{
	uint32_t want = colo_hs_auth_type(colo_hs_mode(c));
	int rc = colo_hello_decode(&c->hs.hello, h, msg, len);

	if (rc)
		return -rc;
	/* Whatever else the hello says, a Primary of another mode must not write. */
	if (h->auth_type != want || c->hs.tls != (want != COLO_AUTH_NONE)) {
		snprintf(msg, len, "the Primary uses %s, this Secondary %s",
			 c->hs.tls && h->auth_type == COLO_AUTH_NONE
				 ? "TLS with auth_type none"
				 : colo_hs_auth_name(h->auth_type),
			 colo_hs_auth_name(want));
		return EACCES;
	}
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
	colo_secondary_check_resume(c, h);
	return 0;
}

/* Primary: the reply arrived; 0 once the link is up, else -errno with the reason. */
static int colo_hs_got_reply(struct colo *c)
{
	struct colo_hello_reply r;
	char err[COLO_ERR_LEN];
	int rc, fd;
	struct tls_session *ts;

	rc = colo_hello_reply_decode(&c->hs.reply, &r, err, sizeof(err));
	if (rc)
		return colo_fail(c, rc, "start: bad handshake reply from %s:%s: %s", c->host,
				 c->port, err);
	if (r.status)
		return colo_fail(c, -r.status, "start: the Secondary refused: %s", r.message);
	if (c->hs.plain_reply)
		return colo_fail(c, -EPROTO, "start: the Secondary answered TLS in plain text");
	if (memcmp(r.session_id, c->session_id, sizeof(r.session_id)))
		return colo_fail(c, -EPROTO, "start: the Secondary answered another session");
	rc = colo_primary_resume_reply(c, &r);
	if (rc)
		return rc;
	ts = c->hs.ts;
	fd = c->hs.fd;
	c->hs.ts = NULL;
	c->hs.fd = -1;
	colo_hs_drop(c);
	snprintf(c->link.peer, sizeof(c->link.peer), "%s:%s", c->host, c->port);
	rc = colo_link_up(c, ts, fd);
	if (rc)
		return rc;
	if (tls_session_is_tls(ts))
		DPRINTF("colo %s:%s: link to the Secondary: %s", c->host, c->port,
			tls_session_describe(ts));
	return colo_primary_link_ready(c);
}

/* Secondary: the reply went out; a refused Primary is closed, an accepted one replicates. */
static void colo_hs_reply_sent(struct colo *c)
{
	struct tls_session *ts;
	struct colo_hello h;
	char msg[8];
	int fd;

	if (c->hs.refused) {
		colo_hs_drop(c);
		return;
	}
	colo_hello_decode(&c->hs.hello, &h, msg, sizeof(msg)); /* checked already */
	ts = c->hs.ts;
	fd = c->hs.fd;
	c->hs.ts = NULL;
	c->hs.fd = -1;
	colo_hs_drop(c);
	/* One Primary per replication run: nobody else may connect now. */
	colo_hs_stop_listening(c);
	if (colo_link_up(c, ts, fd)) {
		c->link_state = COLO_LINK_LOST;
		colo_secondary_link_lost(c);
		return;
	}
	if (tls_session_is_tls(ts))
		DPRINTF("colo %s:%s: link to the Primary at %s: %s", c->host, c->port,
			c->link.peer, tls_session_describe(ts));
	colo_secondary_link_ready(c, &h);
}

static int colo_hs_io(struct colo *c);

/* A whole message was received. */
static int colo_hs_received(struct colo *c)
{
	struct colo_hello h;
	char msg[sizeof(((struct colo_hello_reply *)0)->message)];
	int status;

	if (colo_hs_primary(c))
		return colo_hs_got_reply(c);
	status = colo_hs_check_hello(c, &h, msg, sizeof(msg));
	if (status)
		colo_fail(c, -status, "refused the Primary at %s: %s", c->link.peer, msg);
	colo_hs_send_reply(c, status, h.session_id, status ? msg : "");
	return colo_hs_io(c);
}

/* ---- the steps ---- */

/*
 * A connection that went quiet or away during the handshake.  The Primary's start fails with
 * it; the Secondary only logs it: nobody it knows has spoken yet.
 */
static int colo_hs_gone(struct colo *c, int err, const char *what)
{
	if (colo_hs_primary(c))
		return colo_fail(c, err, "start: the Secondary at %s:%s %s", c->host, c->port,
				 what);
	EPRINTF("colo %s:%s: %s %s", c->host, c->port, c->link.peer, what);
	return err;
}

static int colo_hs_step(struct colo *c, char mode);

/* Sends or receives what the socket takes now; 0 with the next wait armed, or -errno. */
static int colo_hs_io(struct colo *c)
{
	struct iovec iov = {.iov_base = c->hs.buf + c->hs.done, .iov_len = c->hs.len - c->hs.done};
	bool send = c->hs.phase == COLO_HS_SEND;
	char why[COLO_ERR_LEN];
	ssize_t n;

	if (send) {
		n = tls_session_sendv(c->hs.ts, &iov, 1);
	} else if (c->hs.plain_reply) {
		/* A plain reply to our ClientHello: TLS is out of the way. */
		n = recv(c->hs.fd, iov.iov_base, iov.iov_len, MSG_DONTWAIT);
		if (n < 0)
			n = -errno;
	} else {
		n = tls_session_recvv(c->hs.ts, &iov, 1);
	}
	if (n == -EAGAIN || n == -EWOULDBLOCK || n == -EINTR)
		return colo_hs_wait(c, send ? SCHEDULER_POLL_WRITE_FD : SCHEDULER_POLL_READ_FD,
				    (int)c->opts.timeout_ms);
	if (n < 0 && c->hs.plain_reply)
		snprintf(why, sizeof(why), "%s", strerror((int)-n));
	else if (n < 0)
		snprintf(why, sizeof(why), "%s", tls_session_error(c->hs.ts));
	/* An alert, or records that do not decrypt: the peer's TLS refused ours. */
	if (n < 0 && !send && c->hs.tls && !c->hs.plain_reply)
		return colo_hs_refuse(c, (int)n, "the %s ended the TLS session: %s",
				      colo_hs_primary(c) ? "Secondary" : "Primary", why);
	if (n <= 0 && !send) {
		char what[COLO_ERR_LEN + 64];

		snprintf(what, sizeof(what), "closed the connection during the handshake%s%s",
			 n < 0 ? ": " : "", n < 0 ? why : "");
		return colo_hs_gone(c, n < 0 ? (int)n : -ECONNRESET, what);
	}
	if (n < 0)
		return colo_hs_refuse(c, (int)n, "sending the %s to %s: %s",
				      colo_hs_primary(c) ? "hello" : "hello_reply",
				      colo_hs_primary(c) ? "the Secondary" : "it", why);
	c->hs.done += (size_t)n;
	if (c->hs.done < c->hs.len)
		return colo_hs_io(c);
	if (!send)
		return colo_hs_received(c);
	if (colo_hs_primary(c)) {
		colo_hs_start_recv(c, &c->hs.reply, sizeof(c->hs.reply));
		return colo_hs_wait(c, SCHEDULER_POLL_READ_FD, (int)c->opts.timeout_ms);
	}
	colo_hs_reply_sent(c);
	return 0;
}

/* The TCP connection is up: TLS, or the first message at once. */
static int colo_hs_connected(struct colo *c, bool tls)
{
	enum tls_side side = colo_hs_primary(c) ? TLS_SIDE_CLIENT : TLS_SIDE_SERVER;
	struct tls_creds *creds;
	struct tls_config cfg;
	char why[COLO_ERR_LEN];
	int err;

	if (!c->hs.ts) {
		c->hs.ts = tls_session_new(c->hs.fd);
		if (!c->hs.ts)
			return colo_hs_refuse(c, -ENOMEM, "out of memory for the connection");
	}
	if (!tls) {
		if (colo_hs_primary(c))
			colo_hs_send_hello(c);
		else
			colo_hs_start_recv(c, &c->hs.hello, sizeof(c->hs.hello));
		return colo_hs_io(c);
	}
	/* Read anew for every connection: renewed keys and certificates apply at once. */
	colo_hs_tls_config(&c->opts, &cfg);
	err = tls_creds_load(&cfg, side, &creds, why, sizeof(why));
	if (err)
		return colo_hs_refuse(c, err, "TLS credentials: %s", why);
	err = tls_session_starttls(c->hs.ts, creds, side);
	tls_creds_put(creds);
	if (err)
		return colo_hs_refuse(c, err, "%s", tls_session_error(c->hs.ts));
	c->hs.tls = true;
	c->hs.phase = COLO_HS_TLS;
	return colo_hs_step(c, 0);
}

/* Peeks at the first byte the peer sent: 1 with it in @b, 0 if none yet, or -errno. */
static int colo_hs_peek(struct colo *c, unsigned char *b)
{
	ssize_t n = recv(c->hs.fd, b, 1, MSG_PEEK | MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return 0;
	if (n <= 0) {
		char what[COLO_ERR_LEN];

		snprintf(what, sizeof(what), "closed the connection during the handshake%s%s",
			 n < 0 ? ": " : "", n < 0 ? strerror(errno) : "");
		return colo_hs_gone(c, n < 0 ? -errno : -ECONNRESET, what);
	}
	return 1;
}

/*
 * Secondary: what the Primary speaks.  A TLS Secondary takes a ClientHello, or a plain hello
 * (to refuse it with the reason in plain text); a plain one refuses a ClientHello the same way.
 */
static int colo_hs_sniff(struct colo *c)
{
	bool tls = colo_hs_mode(c) != TLS_MODE_NONE;
	unsigned char b;
	int rc = colo_hs_peek(c, &b);

	if (rc <= 0)
		return rc ? rc : colo_hs_wait(c, SCHEDULER_POLL_READ_FD, (int)c->opts.timeout_ms);
	if (b == COLO_TLS_RECORD_HANDSHAKE && !tls) {
		c->hs.ts = tls_session_new(c->hs.fd);
		if (!c->hs.ts)
			return colo_hs_refuse(c, -ENOMEM, "out of memory for the connection");
		colo_fail(c, -EACCES, "refused the Primary at %s: the Primary uses TLS, this "
			  "Secondary tls=none", c->link.peer);
		colo_hs_send_reply(c, EACCES, NULL,
				   "the Primary uses TLS, this Secondary tls=none");
		return colo_hs_io(c);
	}
	if (tls && b != COLO_TLS_RECORD_HANDSHAKE && b != COLO_MAGIC_FIRST_BYTE)
		return colo_hs_refuse(c, -EPROTO, "not a TLS ClientHello (first byte 0x%02x)", b);
	return colo_hs_connected(c, tls && b == COLO_TLS_RECORD_HANDSHAKE);
}

static int colo_hs_tls(struct colo *c, char mode)
{
	int err;

	/*
	 * Primary: a plain Secondary answers our ClientHello with a plain hello_reply.  Looked
	 * for before every step until the Secondary's first byte is in: GnuTLS would take it.
	 */
	if (colo_hs_primary(c) && !c->hs.heard) {
		unsigned char b;
		int rc = colo_hs_peek(c, &b);

		if (rc < 0)
			return rc;
		c->hs.heard = rc;
		if (rc && b == COLO_MAGIC_FIRST_BYTE) {
			c->hs.plain_reply = true;
			colo_hs_start_recv(c, &c->hs.reply, sizeof(c->hs.reply));
			return colo_hs_io(c);
		}
	}
	err = tls_session_handshake(c->hs.ts);
	if (err && err != -EAGAIN && colo_hs_primary(c)) {
		size_t n;
		const unsigned char *b = tls_session_first_bytes(c->hs.ts, &n);

		/* The plain reply came before the look above, and TLS took it: take it back. */
		if (n && b[0] == COLO_MAGIC_FIRST_BYTE) {
			c->hs.plain_reply = true;
			colo_hs_start_recv(c, &c->hs.reply, sizeof(c->hs.reply));
			c->hs.done = n < sizeof(c->hs.reply) ? n : sizeof(c->hs.reply);
			memcpy(c->hs.buf, b, c->hs.done);
			return c->hs.done == c->hs.len ? colo_hs_received(c) : colo_hs_io(c);
		}
	}
	if (err == -EAGAIN)
		return colo_hs_wait(c,
				    tls_session_wants_write(c->hs.ts) ? SCHEDULER_POLL_WRITE_FD
								      : SCHEDULER_POLL_READ_FD,
				    (int)c->opts.timeout_ms);
	if (err)
		/* A wrong key looks like any broken handshake: say what to check. */
		return colo_hs_refuse(c, err, "%s%s", tls_session_error(c->hs.ts),
				      colo_hs_mode(c) == TLS_MODE_PSK
					      ? " (is the PSK the same on both sides?)"
					      : "");
	if (colo_hs_primary(c))
		colo_hs_send_hello(c);
	else
		colo_hs_start_recv(c, &c->hs.hello, sizeof(c->hs.hello));
	return colo_hs_io(c);
}

/* ---- Primary: connect ---- */

static int colo_hs_remaining_ms(const struct colo *c)
{
	long long left = c->hs.deadline - colo_now_ms();

	return left < 0 ? 0 : (int)left;
}

/* Starts one connection attempt; 0 with an event armed, or -errno. */
static int colo_hs_try_connect(struct colo *c)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
	int fd, rc;

	rc = getaddrinfo(c->host, c->port, &hints, &res);
	if (rc)
		return colo_fail(c, -EHOSTUNREACH, "start: cannot resolve %s: %s", c->host,
				 gai_strerror(rc));
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		freeaddrinfo(res);
		return colo_fail(c, -errno, "start: socket: %s", strerror(errno));
	}
	rc = connect(fd, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	if (rc && errno != EINPROGRESS) {
		rc = -errno;
		close(fd);
		/* Refused now: try again shortly, the Secondary may not listen yet. */
		colo_note(c, "connect to %s:%s: %s", c->host, c->port, strerror(-rc));
		c->hs.phase = COLO_HS_RETRY;
		return colo_hs_wait(c, 0, COLO_CONNECT_RETRY_MS);
	}
	c->hs.fd = fd;
	c->hs.phase = COLO_HS_CONNECTING;
	return colo_hs_wait(c, SCHEDULER_POLL_WRITE_FD, colo_hs_remaining_ms(c));
}

static int colo_hs_connect_done(struct colo *c, char mode)
{
	socklen_t len = sizeof(int);
	int soerr = 0;

	if (!(mode & SCHEDULER_POLL_WRITE_FD))
		soerr = ETIMEDOUT;
	else
		getsockopt(c->hs.fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
	if (soerr) {
		colo_note(c, "connect to %s:%s: %s", c->host, c->port, strerror(soerr));
		close(c->hs.fd);
		c->hs.fd = -1;
		c->hs.phase = COLO_HS_RETRY;
		return colo_hs_wait(c, 0, COLO_CONNECT_RETRY_MS);
	}
	return colo_handshake_begin(c, c->hs.fd);
}

static int colo_hs_retry(struct colo *c)
{
	char why[COLO_ERR_LEN];

	if (colo_hs_remaining_ms(c))
		return colo_hs_try_connect(c);
	snprintf(why, sizeof(why), "%s", c->last_error);
	return colo_fail(c, -ETIMEDOUT, "start: no Secondary at %s:%s within %u ms (%s)", c->host,
			 c->port, c->opts.connect_timeout_ms, why);
}

int colo_handshake_connect(struct colo *c)
{
	int err;

	c->hs.deadline = colo_now_ms() + c->opts.connect_timeout_ms;
	c->hs.phase = COLO_HS_RETRY;
	err = colo_hs_try_connect(c);
	if (!err)
		DPRINTF("colo %s:%s: connecting to the Secondary", c->host, c->port);
	else
		colo_hs_drop(c);
	return err;
}

/* ---- Secondary: listen, accept ---- */

/* peer=ADDR: the only address a Primary may connect from (IPv4 also as ::ffff:a.b.c.d). */
static bool colo_hs_peer_allowed(const struct colo *c, const struct sockaddr_storage *ss)
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

static void colo_hs_accept_cb(event_id_t id, char mode, void *priv)
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
	/* The peer is checked before a byte of it is read, in plain text whatever the mode. */
	if (!colo_hs_peer_allowed(c, &ss)) {
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
	if (c->hs.fd >= 0 || c->link.fd >= 0 || c->state != COLO_STATE_CONNECTING) {
		EPRINTF("colo %s:%s: refused a connection from %s:%s: a Primary is already being "
			"served",
			c->host, c->port, host, serv);
		close(fd);
		return;
	}
	snprintf(c->link.peer, sizeof(c->link.peer), "%s:%s", host, serv);
	if (colo_handshake_begin(c, fd))
		colo_hs_drop(c);
}

int colo_handshake_listen(struct colo *c)
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
							  colo_hs_accept_cb, c);
	if (c->s.listen_event < 0) {
		rc = c->s.listen_event;
		c->s.listen_event = 0;
		close(fd);
		c->s.listen_fd = -1;
		return colo_fail(c, rc, "start: cannot watch the socket: %s", strerror(-rc));
	}
	return 0;
}

/* ---- the event ---- */

int colo_handshake_begin(struct colo *c, int fd)
{
	c->hs.fd = fd;
	if (colo_hs_primary(c))
		return colo_hs_connected(c, colo_hs_mode(c) != TLS_MODE_NONE);
	c->hs.phase = COLO_HS_SNIFF;
	c->hs.deadline = colo_now_ms() + c->opts.timeout_ms;
	return colo_hs_wait(c, SCHEDULER_POLL_READ_FD, (int)c->opts.timeout_ms);
}

static int colo_hs_step(struct colo *c, char mode)
{
	switch (c->hs.phase) {
	case COLO_HS_RETRY:
		return colo_hs_retry(c);
	case COLO_HS_CONNECTING:
		return colo_hs_connect_done(c, mode);
	case COLO_HS_SNIFF:
		return colo_hs_sniff(c);
	case COLO_HS_TLS:
		return colo_hs_tls(c, mode);
	default:
		return colo_hs_io(c);
	}
}

static void colo_hs_cb(event_id_t id, char mode, void *priv)
{
	struct colo *c = priv;
	int err;

	if (c->hs.phase != COLO_HS_RETRY && c->hs.phase != COLO_HS_CONNECTING &&
	    !(mode & (SCHEDULER_POLL_READ_FD | SCHEDULER_POLL_WRITE_FD))) {
		/* The timer fired first: the peer said nothing for timeout. */
		if (colo_hs_primary(c))
			err = colo_fail(c, -ETIMEDOUT,
					"start: %s:%s did not answer the handshake within %u ms",
					c->host, c->port, c->opts.timeout_ms);
		else
		{
			char what[64];

			snprintf(what, sizeof(what), "did not complete its handshake within %u ms",
				 c->opts.timeout_ms);
			err = colo_hs_gone(c, -ETIMEDOUT, what);
		}
	} else {
		err = colo_hs_step(c, mode);
	}
	if (err)
		colo_hs_failed(c, err);
}

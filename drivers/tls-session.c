/* A non-blocking byte stream, plain or TLS 1.3 with GnuTLS.  tls-session.h */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gnutls/x509.h>

#include "tls-internal.h"

/*
 * TLS 1.3 only; PSK also takes the (EC)DHE-PSK exchanges, for forward secrecy.  The server's
 * order wins, so AES-GCM (AES-NI) is chosen over ChaCha20 that some clients list first.  An
 * external PSK hashes with SHA-256, which rules out AES-256-GCM-SHA384: ChaCha20 goes behind
 * AES-128-GCM there.
 */
#define TLS_PRIORITY_X509 "NORMAL:-VERS-ALL:+VERS-TLS1.3:%SERVER_PRECEDENCE"
#define TLS_PRIORITY_PSK "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CHACHA20-POLY1305:+CHACHA20-POLY1305:+ECDHE-PSK:+DHE-PSK:+PSK:%SERVER_PRECEDENCE"

/* The most record payload a send gathers from several iovecs by copying. */
#define TLS_STAGE_SIZE 16384
/* Ciphertext read per recv: several records, where GnuTLS alone makes two calls per record. */
#define TLS_RBUF_SIZE (64u << 10)

struct tls_session {
	int fd;
	gnutls_session_t gs; /* NULL: plain */
	struct tls_creds *creds;
	enum tls_side side;
	int handshaken;
	/*
	 * A record GnuTLS encrypted but could not send: its length in the caller's bytes.  The
	 * next send flushes it first and counts it as sent then.
	 */
	size_t unsent;
	uint8_t *stage;
	uint8_t *rbuf; /* ciphertext read from the socket, not yet taken by GnuTLS */
	size_t rbuf_start;
	size_t rbuf_end;
	char desc[192];
	char error[256];
	int io_errno; /* why the socket call under GnuTLS last failed (not EAGAIN) */
	uint8_t first[256]; /* the first bytes read from the peer, as they came */
	size_t first_len;
};

struct tls_session *tls_session_new(int fd)
{
	struct tls_session *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->fd = fd;
	s->handshaken = 1;
	snprintf(s->desc, sizeof(s->desc), "plain");
	return s;
}

static int tls_session_fail(struct tls_session *s, int ret, const char *what)
{
	if (ret == GNUTLS_E_FATAL_ALERT_RECEIVED || ret == GNUTLS_E_WARNING_ALERT_RECEIVED)
		snprintf(s->error, sizeof(s->error), "%s: %s (%s)", what, gnutls_strerror(ret),
			 gnutls_alert_get_name(gnutls_alert_get(s->gs)));
	else
		snprintf(s->error, sizeof(s->error), "%s: %s", what, gnutls_strerror(ret));
	return ret == GNUTLS_E_MEMORY_ERROR ? -ENOMEM : -EPROTO;
}

/*
 * A socket call under GnuTLS failed: said as the plain session says it ("recv: Connection
 * reset by peer").
 */
static int tls_session_sys_error(struct tls_session *s, const char *call)
{
	snprintf(s->error, sizeof(s->error), "%s: %s", call, strerror(s->io_errno));
	return -s->io_errno;
}

/* Hands @err to GnuTLS, and keeps it: GnuTLS itself says only "Error in the pull function". */
static void tls_session_io_error(struct tls_session *s, int err)
{
	if (err != EAGAIN && err != EWOULDBLOCK && err != EINTR)
		s->io_errno = err;
	gnutls_transport_set_errno(s->gs, err);
}

/* GnuTLS's own push would raise SIGPIPE on a peer that went away. */
static ssize_t tls_session_push(gnutls_transport_ptr_t ptr, const giovec_t *iov, int iovcnt)
{
	struct tls_session *s = ptr;
	struct msghdr msg = { .msg_iov = (struct iovec *)iov, .msg_iovlen = iovcnt };
	ssize_t n = sendmsg(s->fd, &msg, MSG_NOSIGNAL);

	if (n < 0)
		tls_session_io_error(s, errno);
	return n;
}

/* Serves GnuTLS's small reads (a header, then a record) from one large recv. */
static ssize_t tls_session_pull(gnutls_transport_ptr_t ptr, void *data, size_t len)
{
	struct tls_session *s = ptr;
	size_t avail = s->rbuf_end - s->rbuf_start;
	ssize_t n;

	if (!avail) {
		n = recv(s->fd, s->rbuf, TLS_RBUF_SIZE, 0);
		if (n <= 0) {
			if (n < 0)
				tls_session_io_error(s, errno);
			return n;
		}
		s->rbuf_start = 0;
		s->rbuf_end = avail = n;
		if (!s->first_len) {
			s->first_len = (size_t)n < sizeof(s->first) ? (size_t)n : sizeof(s->first);
			memcpy(s->first, s->rbuf, s->first_len);
		}
	}
	if (len > avail)
		len = avail;
	memcpy(data, s->rbuf + s->rbuf_start, len);
	s->rbuf_start += len;
	return len;
}

/* Never waits in practice (no timeouts are set); here so GnuTLS never polls a pointer as an fd. */
static int tls_session_pull_timeout(gnutls_transport_ptr_t ptr, unsigned int ms)
{
	struct tls_session *s = ptr;
	struct pollfd pfd = { .fd = s->fd, .events = POLLIN };

	if (s->rbuf_end > s->rbuf_start)
		return 1;
	return poll(&pfd, 1, ms == GNUTLS_INDEFINITE_TIMEOUT ? -1 : (int)ms);
}

int tls_session_starttls(struct tls_session *s, struct tls_creds *creds, enum tls_side side)
{
	unsigned int flags = (side == TLS_SIDE_SERVER ? GNUTLS_SERVER : GNUTLS_CLIENT) |
			     GNUTLS_NONBLOCK;
	int ret;

	if (s->gs) {
		snprintf(s->error, sizeof(s->error), "TLS is on already");
		return -EINVAL;
	}
	if (!s->rbuf && !(s->rbuf = malloc(TLS_RBUF_SIZE))) {
		snprintf(s->error, sizeof(s->error), "TLS: out of memory");
		return -ENOMEM;
	}
	ret = gnutls_init(&s->gs, flags);
	if (ret < 0) {
		s->gs = NULL;
		return tls_session_fail(s, ret, "gnutls_init");
	}
	s->side = side;
	s->creds = creds;
	creds->refs++;
	s->handshaken = 0;
	gnutls_session_set_ptr(s->gs, creds);
	ret = gnutls_priority_set_direct(
		s->gs, creds->mode == TLS_MODE_PSK ? TLS_PRIORITY_PSK : TLS_PRIORITY_X509, NULL);
	if (ret < 0)
		return tls_session_fail(s, ret, "TLS priority");
	if (creds->mode == TLS_MODE_X509) {
		ret = gnutls_credentials_set(s->gs, GNUTLS_CRD_CERTIFICATE, creds->x509);
		if (side == TLS_SIDE_SERVER) {
			gnutls_certificate_server_set_request(
				s->gs, creds->verify_peer ? GNUTLS_CERT_REQUIRE : GNUTLS_CERT_REQUEST);
			/*
			 * Without our CA's name in the request, a client sends whatever
			 * certificate it has, and one from another CA is refused rather than
			 * silently left out.
			 */
			gnutls_certificate_send_x509_rdn_sequence(s->gs, 1);
		}
		else if (ret >= 0 && creds->name[0])
			ret = gnutls_server_name_set(s->gs, GNUTLS_NAME_DNS, creds->name,
						     strlen(creds->name));
	} else {
		ret = gnutls_credentials_set(s->gs, GNUTLS_CRD_PSK,
					     side == TLS_SIDE_SERVER ? (void *)creds->psk_server
								     : (void *)creds->psk_client);
	}
	if (ret < 0)
		return tls_session_fail(s, ret, "TLS credentials");
	gnutls_transport_set_ptr(s->gs, s);
	gnutls_transport_set_vec_push_function(s->gs, tls_session_push);
	gnutls_transport_set_pull_function(s->gs, tls_session_pull);
	gnutls_transport_set_pull_timeout_function(s->gs, tls_session_pull_timeout);
	gnutls_handshake_set_timeout(s->gs, 0); /* the caller has its own clock */
	return 0;
}

/*
 * Tells the peer why we end the session (best effort, never waits): without it, a peer whose
 * own handshake already finished sees only a closed connection.
 */
static void tls_session_alert(struct tls_session *s, gnutls_alert_description_t what)
{
	gnutls_alert_send(s->gs, GNUTLS_AL_FATAL, what);
}

/* The peer's certificate, if it sent one, must chain to our CA (and match tls_name). */
static int tls_session_verify(struct tls_session *s)
{
	const char *name = s->side == TLS_SIDE_CLIENT && s->creds->name[0] ? s->creds->name : NULL;
	unsigned int status = 0, n = 0;
	gnutls_datum_t text;
	int ret;

	if (s->creds->mode != TLS_MODE_X509)
		return 0;
	if (!gnutls_certificate_get_peers(s->gs, &n) || !n) {
		/* A server only gets here without a certificate when it did not require one. */
		if (s->side == TLS_SIDE_SERVER && !s->creds->verify_peer)
			return 0;
		snprintf(s->error, sizeof(s->error), "the peer sent no certificate");
		tls_session_alert(s, GNUTLS_A_CERTIFICATE_REQUIRED);
		return -EACCES;
	}
	ret = gnutls_certificate_verify_peers3(s->gs, name, &status);
	if (ret < 0)
		return tls_session_fail(s, ret, "certificate verification");
	if (!status)
		return 0;
	ret = gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &text, 0);
	snprintf(s->error, sizeof(s->error), "the peer's certificate is refused: %s",
		 ret < 0 ? "not trusted" : (const char *)text.data);
	if (ret >= 0)
		gnutls_free(text.data);
	tls_session_alert(s, status & GNUTLS_CERT_EXPIRED		? GNUTLS_A_CERTIFICATE_EXPIRED
			     : status & GNUTLS_CERT_SIGNER_NOT_FOUND ? GNUTLS_A_UNKNOWN_CA
								     : GNUTLS_A_BAD_CERTIFICATE);
	/* GnuTLS ends its sentences with a space. */
	for (n = strlen(s->error); n && s->error[n - 1] == ' '; n--)
		s->error[n - 1] = 0;
	return -EACCES;
}

/* "TLS1.3 AES-256-GCM, PSK user alice" or "..., certificate CN=client". */
static void tls_session_describe_peer(struct tls_session *s)
{
	const char *cipher = gnutls_cipher_get_name(gnutls_cipher_get(s->gs));
	const char *version = gnutls_protocol_get_name(gnutls_protocol_get_version(s->gs));
	char who[128] = "no certificate";

	if (s->creds->mode == TLS_MODE_PSK) {
		const char *user = s->side == TLS_SIDE_SERVER ? gnutls_psk_server_get_username(s->gs)
							     : NULL;

		snprintf(who, sizeof(who), "PSK user %s", user ? user : "(ours)");
	} else {
		const gnutls_datum_t *certs;
		gnutls_x509_crt_t crt;
		gnutls_datum_t dn;
		unsigned int n = 0;

		certs = gnutls_certificate_get_peers(s->gs, &n);
		if (certs && n && !gnutls_x509_crt_init(&crt)) {
			if (!gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) &&
			    !gnutls_x509_crt_get_dn3(crt, &dn, 0)) {
				snprintf(who, sizeof(who), "certificate %s", (const char *)dn.data);
				gnutls_free(dn.data);
			}
			gnutls_x509_crt_deinit(crt);
		}
	}
	snprintf(s->desc, sizeof(s->desc), "%s %s, %s", version ? version : "TLS",
		 cipher ? cipher : "?", who);
}

int tls_session_handshake(struct tls_session *s)
{
	int ret, err;

	if (s->handshaken)
		return 0;
	for (;;) {
		ret = gnutls_handshake(s->gs);
		if (ret == GNUTLS_E_AGAIN)
			return -EAGAIN;
		if (ret == GNUTLS_E_INTERRUPTED ||
		    (ret < 0 && !gnutls_error_is_fatal(ret) &&
		     ret != GNUTLS_E_WARNING_ALERT_RECEIVED))
			continue;
		if (ret < 0) {
			/* The peer learns why, unless the error was its own alert. */
			if (ret != GNUTLS_E_FATAL_ALERT_RECEIVED)
				gnutls_alert_send_appropriate(s->gs, ret);
			return tls_session_fail(s, ret, "TLS handshake");
		}
		break;
	}
	err = tls_session_verify(s);
	if (err)
		return err;
	tls_session_describe_peer(s);
	s->handshaken = 1;
	return 0;
}

int tls_session_wants_write(const struct tls_session *s)
{
	return s->gs && gnutls_record_get_direction(s->gs) == 1;
}

size_t tls_session_pending(const struct tls_session *s)
{
	if (!s->gs || !s->handshaken)
		return 0;
	return gnutls_record_check_pending(s->gs) + (s->rbuf_end - s->rbuf_start);
}

static ssize_t tls_session_recv_tls(struct tls_session *s, const struct iovec *iov, int iovcnt)
{
	size_t total = 0, off = 0;
	int i = 0;
	ssize_t n;

	/* One record per call: read until the vector is full or nothing is left. */
	while (i < iovcnt) {
		if (off == iov[i].iov_len) {
			i++;
			off = 0;
			continue;
		}
		n = gnutls_record_recv(s->gs, (uint8_t *)iov[i].iov_base + off,
				       iov[i].iov_len - off);
		if (n > 0) {
			off += n;
			total += n;
			continue;
		}
		if (n == GNUTLS_E_INTERRUPTED)
			continue;
		if (total)
			break; /* the error or the end comes again on the next call */
		if (n == GNUTLS_E_AGAIN)
			return -EAGAIN;
		/* A peer that closes without close_notify ends the stream all the same. */
		if (n == 0 || n == GNUTLS_E_PREMATURE_TERMINATION)
			return 0;
		if (!gnutls_error_is_fatal(n))
			return -EAGAIN;
		if (n == GNUTLS_E_PULL_ERROR && s->io_errno)
			return tls_session_sys_error(s, "recv");
		return tls_session_fail(s, n, "TLS receive");
	}
	return total;
}

ssize_t tls_session_recvv(struct tls_session *s, const struct iovec *iov, int iovcnt)
{
	ssize_t n;

	if (s->gs)
		return tls_session_recv_tls(s, iov, iovcnt);
	do
		n = readv(s->fd, iov, iovcnt);
	while (n < 0 && errno == EINTR);
	if (n >= 0)
		return n;
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return -EAGAIN;
	snprintf(s->error, sizeof(s->error), "recv: %s", strerror(errno));
	return -errno;
}

/*
 * The next record's bytes starting at @iov[*i] + *off: a pointer into the vector when they lie
 * in one iovec, else a copy of up to TLS_STAGE_SIZE bytes gathered from several.
 */
static const void *tls_session_next_record(struct tls_session *s, const struct iovec *iov,
					   int iovcnt, int i, size_t off, size_t max, size_t *len)
{
	size_t rem = iov[i].iov_len - off, got = 0;

	if (max > TLS_STAGE_SIZE)
		max = TLS_STAGE_SIZE;
	if (rem >= max || i + 1 == iovcnt || !s->stage) {
		*len = rem < max ? rem : max;
		return (const uint8_t *)iov[i].iov_base + off;
	}
	while (i < iovcnt && got < max) {
		size_t take = iov[i].iov_len - off;

		if (take > max - got)
			take = max - got;
		memcpy(s->stage + got, (const uint8_t *)iov[i].iov_base + off, take);
		got += take;
		i++;
		off = 0;
	}
	*len = got;
	return s->stage;
}

static ssize_t tls_session_send_tls(struct tls_session *s, const struct iovec *iov, int iovcnt)
{
	size_t total = 0, off = 0, len, max = gnutls_record_get_max_size(s->gs);
	const void *data;
	ssize_t n;
	int i = 0;

	if (!s->stage)
		s->stage = malloc(TLS_STAGE_SIZE); /* without it, records stop at iovec ends */
	for (;;) {
		while (i < iovcnt && off == iov[i].iov_len) {
			i++;
			off = 0;
		}
		if (i == iovcnt && !s->unsent)
			break;
		if (s->unsent) {
			/* GnuTLS sends the record it holds; the bytes are the caller's same ones. */
			len = s->unsent;
			n = gnutls_record_send(s->gs, NULL, 0);
		} else {
			data = tls_session_next_record(s, iov, iovcnt, i, off, max, &len);
			n = gnutls_record_send(s->gs, data, len);
		}
		if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
			s->unsent = len;
			if (n == GNUTLS_E_INTERRUPTED)
				continue;
			return total ? (ssize_t)total : -EAGAIN;
		}
		/* GnuTLS takes a reset or a broken pipe for a premature end. */
		if ((n == GNUTLS_E_PUSH_ERROR || n == GNUTLS_E_PREMATURE_TERMINATION) && s->io_errno)
			return tls_session_sys_error(s, "send");
		if (n < 0)
			return tls_session_fail(s, n, "TLS send");
		s->unsent = 0;
		total += n;
		/* Step over the bytes sent, which may span iovecs. */
		while (n > 0 && i < iovcnt) {
			size_t take = iov[i].iov_len - off;

			if ((size_t)n < take) {
				off += n;
				break;
			}
			n -= take;
			i++;
			off = 0;
		}
	}
	return total;
}

ssize_t tls_session_sendv(struct tls_session *s, const struct iovec *iov, int iovcnt)
{
	struct msghdr msg = { .msg_iov = (struct iovec *)iov, .msg_iovlen = iovcnt };
	ssize_t n;

	if (s->gs)
		return tls_session_send_tls(s, iov, iovcnt);
	/* MSG_NOSIGNAL: a vanished peer must be an error here, not a SIGPIPE. */
	do
		n = sendmsg(s->fd, &msg, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n >= 0)
		return n;
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return -EAGAIN;
	snprintf(s->error, sizeof(s->error), "send: %s", strerror(errno));
	return -errno;
}

int tls_session_is_tls(const struct tls_session *s)
{
	return s->gs != NULL;
}

const char *tls_session_describe(const struct tls_session *s)
{
	return s->desc;
}

const char *tls_session_error(const struct tls_session *s)
{
	return s->error;
}

const void *tls_session_first_bytes(const struct tls_session *s, size_t *len)
{
	*len = s->first_len;
	return s->first;
}

void tls_session_close(struct tls_session *s)
{
	if (!s)
		return;
	if (s->gs) {
		/* Best effort: never wait for the peer. */
		if (s->handshaken)
			gnutls_bye(s->gs, GNUTLS_SHUT_WR);
		gnutls_deinit(s->gs);
	}
	tls_creds_put(s->creds);
	if (s->fd >= 0)
		close(s->fd);
	free(s->stage);
	free(s->rbuf);
	free(s);
}

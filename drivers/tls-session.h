/*
 * A byte stream over a connected socket, plain or TLS 1.3 (GnuTLS), for the event loop.
 *
 * Everything is non-blocking: calls that cannot progress return -EAGAIN, and the caller waits
 * for the socket (tls_session_wants_write() says which way during a handshake).  A session
 * starts plain; tls_session_starttls() turns it into TLS in place (NBD's STARTTLS), or a
 * caller creates it and calls starttls at once (a link that is TLS from its first byte).
 *
 * Credentials use the layouts of QEMU and nbdkit: an X.509 directory (ca-cert.pem,
 * server-cert.pem, server-key.pem, client-cert.pem, client-key.pem, optional ca-crl.pem) or a
 * psktool file of "username:hexkey" lines.  They are read anew by every tls_creds_load(), so
 * a caller that loads them per connection picks up renewed keys without a restart.  A key
 * file that group or others may access is refused.
 */
#ifndef _TLS_SESSION_H_
#define _TLS_SESSION_H_

#include <limits.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

enum tls_mode {
	TLS_MODE_UNSET, /* not asked for: callers refuse it where TLS is the default */
	TLS_MODE_NONE,
	TLS_MODE_X509,
	TLS_MODE_PSK,
};

enum tls_side {
	TLS_SIDE_SERVER,
	TLS_SIDE_CLIENT,
};

/* The options of a TLS endpoint, as given by the user (key=value words). */
struct tls_config {
	enum tls_mode mode;
	char dir[PATH_MAX]; /* tls_dir=: the X.509 directory */
	char psk_file[PATH_MAX]; /* tls_psk=: the psktool file */
	char user[128]; /* tls_user=: the PSK identity a client sends */
	char name[256]; /* tls_name=: the name a client expects in the server's certificate */
	int verify_peer; /* tls_verify_peer=1: a server requires a client certificate */
};

/*
 * Takes one option: tls=none|x509|psk, tls_dir=, tls_psk=, tls_user=, tls_name=,
 * tls_verify_peer=0|1.  Returns 1 if @key is not a TLS option, -EINVAL with @why if its value
 * is bad, 0 when taken.
 */
int tls_config_set(struct tls_config *cfg, const char *key, const char *value, char *why,
		   size_t why_size);
/* -EINVAL with @why unless the options make a complete configuration for @side. */
int tls_config_check(const struct tls_config *cfg, enum tls_side side, char *why, size_t why_size);
const char *tls_mode_name(enum tls_mode mode);

struct tls_creds;

/* Reads the credentials of @cfg from disk; -errno with @why (a message naming the file). */
int tls_creds_load(const struct tls_config *cfg, enum tls_side side, struct tls_creds **creds,
		   char *why, size_t why_size);
void tls_creds_put(struct tls_creds *creds);

struct tls_session;

/* A plain session on @fd, which it owns from now on (closed by tls_session_close). */
struct tls_session *tls_session_new(int fd);
/* Turns @s into a TLS session with @creds (it takes a reference); then call handshake. */
int tls_session_starttls(struct tls_session *s, struct tls_creds *creds, enum tls_side side);
/* 0 once the handshake is done (at once for plain), -EAGAIN to wait, else -errno. */
int tls_session_handshake(struct tls_session *s);
/* During a handshake that returned -EAGAIN: wait for writable (1) or readable (0). */
int tls_session_wants_write(const struct tls_session *s);
/*
 * Reads into @iov up to its size: bytes read, 0 at end of stream, -EAGAIN, or -errno.  TLS
 * may hold decrypted bytes the socket no longer shows: read again while tls_session_pending().
 */
ssize_t tls_session_recvv(struct tls_session *s, const struct iovec *iov, int iovcnt);
size_t tls_session_pending(const struct tls_session *s);
/*
 * Sends from @iov: bytes sent (possibly fewer than given), -EAGAIN, or -errno.  After a short
 * count or -EAGAIN, the next call must start with the bytes that were not counted as sent: TLS
 * may have encrypted a record of them already and sends that one first.
 */
ssize_t tls_session_sendv(struct tls_session *s, const struct iovec *iov, int iovcnt);
int tls_session_is_tls(const struct tls_session *s);
/* "TLS1.3 AES-256-GCM, PSK user alice" once the handshake is done, "plain" for plain. */
const char *tls_session_describe(const struct tls_session *s);
/* Why the last call failed. */
const char *tls_session_error(const struct tls_session *s);
/*
 * The first bytes (up to 256) TLS read from the peer, as they came: after a failed handshake,
 * they tell a peer that answered in plain text (with its own protocol's refusal, say).
 */
const void *tls_session_first_bytes(const struct tls_session *s, size_t *len);
/* Sends a TLS close_notify if it can without waiting, closes the socket and frees @s. */
void tls_session_close(struct tls_session *s);

#endif

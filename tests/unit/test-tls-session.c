/*
 * drivers/tls-session: both ends over a socket pair with tiny socket buffers, so that every
 * send and receive meets -EAGAIN and short counts: the handshake driven step by step, 4 MiB
 * each way from vectors of odd pieces compared byte for byte, a wrong PSK, and the option and
 * key-file errors with their exact sentences.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tls-session.h"

static char dir[] = "/tmp/test-tls-session.XXXXXX";
static char why[512];

static void write_file(const char *name, const char *text, mode_t mode, char *path,
		       size_t size)
{
	int fd;

	snprintf(path, size, "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	ck_assert_int_eq(fchmod(fd, mode), 0);
	close(fd);
}

static void psk_config(struct tls_config *cfg, const char *file_text, mode_t mode)
{
	memset(cfg, 0, sizeof(*cfg));
	ck_assert_int_eq(tls_config_set(cfg, "tls", "psk", why, sizeof(why)), 0);
	ck_assert_int_eq(tls_config_set(cfg, "tls_user", "alice", why, sizeof(why)), 0);
	write_file(mode == 0600 ? "keys.psk" : "open.psk", file_text, mode, cfg->psk_file,
		   sizeof(cfg->psk_file));
}

/* A socket pair whose buffers hold a few KiB: TLS records of 16 KiB cannot pass at once. */
static void small_pair(int sv[2])
{
	int size = 4096, i;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	for (i = 0; i < 2; i++) {
		setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
		setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	}
}

/* Drives both handshakes until done or one fails; returns the server's result. */
static int handshake(struct tls_session *srv, struct tls_session *cli, int *cli_err)
{
	int s = -EAGAIN, c = -EAGAIN, rounds;

	for (rounds = 0; rounds < 10000 && (s == -EAGAIN || c == -EAGAIN); rounds++) {
		if (s == -EAGAIN)
			s = tls_session_handshake(srv);
		if (c == -EAGAIN)
			c = tls_session_handshake(cli);
		/* One side failed: the other sees the alert or the close next. */
		if (s < 0 && s != -EAGAIN && c == -EAGAIN)
			break;
		if (c < 0 && c != -EAGAIN && s == -EAGAIN) {
			s = tls_session_handshake(srv);
			break;
		}
	}
	*cli_err = c;
	return s;
}

static struct tls_session *session(int fd, struct tls_creds *creds, enum tls_side side)
{
	struct tls_session *s = tls_session_new(fd);

	ck_assert_ptr_nonnull(s);
	if (creds)
		ck_assert_int_eq(tls_session_starttls(s, creds, side), 0);
	return s;
}

#define XFER (4u << 20)

/*
 * @from sends XFER bytes as vectors of pieces of 1 to 40000 bytes, re-sending what was not
 * counted as sent (the contract of tls_session_sendv); @to reads them into a buffer.
 */
static void transfer(struct tls_session *from, struct tls_session *to)
{
	uint8_t *src = malloc(XFER), *dst = malloc(XFER);
	size_t sent = 0, got = 0, i;
	unsigned int seed = 7;
	int again = 0;

	ck_assert_ptr_nonnull(src);
	ck_assert_ptr_nonnull(dst);
	for (i = 0; i < XFER; i++)
		src[i] = rand_r(&seed);
	while (got < XFER) {
		if (sent < XFER) {
			struct iovec iov[8];
			size_t off = sent;
			int cnt = 0;
			ssize_t n;

			while (cnt < 8 && off < XFER) {
				size_t len = 1 + rand_r(&seed) % 40000;

				if (len > XFER - off)
					len = XFER - off;
				iov[cnt].iov_base = src + off;
				iov[cnt].iov_len = len;
				off += len;
				cnt++;
			}
			n = tls_session_sendv(from, iov, cnt);
			ck_assert_msg(n > 0 || n == -EAGAIN, "sendv: %zd %s", n,
				      tls_session_error(from));
			if (n > 0)
				sent += n;
			again += n == -EAGAIN || (n > 0 && sent < off);
		}
		do {
			size_t left = XFER - got, half = left / 2;
			struct iovec iov[2] = { { dst + got, half ? half : left },
						{ dst + got + half, left - half } };
			ssize_t n = tls_session_recvv(to, iov, half ? 2 : 1);

			ck_assert_msg(n > 0 || n == -EAGAIN, "recvv: %zd %s", n,
				      tls_session_error(to));
			if (n > 0)
				got += n;
		} while (got < XFER && tls_session_pending(to));
		/* Read more than was counted as sent is impossible. */
		ck_assert_uint_le(got, sent);
	}
	ck_assert_int_eq(memcmp(src, dst, XFER), 0);
	/* The point of the small buffers: the resend paths ran. */
	ck_assert_int_gt(again, 100);
	free(src);
	free(dst);
}

static void pair(struct tls_creds *screds, struct tls_creds *ccreds, struct tls_session **srv,
		 struct tls_session **cli)
{
	int sv[2];

	small_pair(sv);
	*srv = session(sv[0], screds, TLS_SIDE_SERVER);
	*cli = session(sv[1], ccreds, TLS_SIDE_CLIENT);
}

START_TEST(test_plain)
{
	struct tls_session *srv, *cli;
	int cerr;

	pair(NULL, NULL, &srv, &cli);
	ck_assert_int_eq(handshake(srv, cli, &cerr), 0);
	ck_assert_int_eq(cerr, 0);
	ck_assert_str_eq(tls_session_describe(srv), "plain");
	transfer(cli, srv);
	transfer(srv, cli);
	tls_session_close(srv);
	tls_session_close(cli);
}
END_TEST

START_TEST(test_psk)
{
	struct tls_creds *screds, *ccreds;
	struct tls_session *srv, *cli;
	struct tls_config cfg;
	int cerr;

	psk_config(&cfg, "bob:00112233\nalice:000102030405060708090a0b0c0d0e0f\n", 0600);
	ck_assert_int_eq(tls_creds_load(&cfg, TLS_SIDE_SERVER, &screds, why, sizeof(why)), 0);
	ck_assert_int_eq(tls_creds_load(&cfg, TLS_SIDE_CLIENT, &ccreds, why, sizeof(why)), 0);
	pair(screds, ccreds, &srv, &cli);
	/* The sessions hold their own references. */
	tls_creds_put(screds);
	tls_creds_put(ccreds);
	ck_assert_int_eq(handshake(srv, cli, &cerr), 0);
	ck_assert_int_eq(cerr, 0);
	ck_assert_str_eq(tls_session_describe(srv), "TLS1.3 AES-128-GCM, PSK user alice");
	transfer(cli, srv);
	transfer(srv, cli);
	tls_session_close(srv);
	tls_session_close(cli);
}
END_TEST

START_TEST(test_wrong_psk)
{
	struct tls_creds *screds, *ccreds;
	struct tls_session *srv, *cli;
	struct tls_config cfg;
	int cerr, serr;

	psk_config(&cfg, "alice:000102030405060708090a0b0c0d0e0f\n", 0600);
	ck_assert_int_eq(tls_creds_load(&cfg, TLS_SIDE_SERVER, &screds, why, sizeof(why)), 0);
	psk_config(&cfg, "alice:ff0102030405060708090a0b0c0d0e0f\n", 0600);
	ck_assert_int_eq(tls_creds_load(&cfg, TLS_SIDE_CLIENT, &ccreds, why, sizeof(why)), 0);
	pair(screds, ccreds, &srv, &cli);
	tls_creds_put(screds);
	tls_creds_put(ccreds);
	serr = handshake(srv, cli, &cerr);
	ck_assert_int_eq(serr, -EPROTO);
	ck_assert_str_eq(tls_session_error(srv),
			 "TLS handshake: An illegal parameter has been received.");
	tls_session_close(srv);
	tls_session_close(cli);
}
END_TEST

/* A connected TCP pair on 127.0.0.1, non-blocking: a reset is TCP's, not a Unix socket's. */
static void tcp_pair(int sv[2])
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_ge(l, 0);
	ck_assert_int_eq(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(l, 1), 0);
	ck_assert_int_eq(getsockname(l, (struct sockaddr *)&a, &len), 0);
	sv[1] = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_eq(connect(sv[1], (struct sockaddr *)&a, sizeof(a)), 0);
	sv[0] = accept(l, NULL, NULL);
	ck_assert_int_ge(sv[0], 0);
	close(l);
	for (int i = 0, one = 1; i < 2; i++) {
		ck_assert_int_eq(fcntl(sv[i], F_SETFL, O_NONBLOCK), 0);
		/* The handshake's steps run back to back: no Nagle wait for a delayed ack. */
		ck_assert_int_eq(setsockopt(sv[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)), 0);
	}
}

/*
 * A peer that goes away with bytes unread (a killed process) resets the connection: the
 * error says so, as a plain session's would, not GnuTLS's "Error in the pull function" (or
 * push).  Loop 0 receives after the reset, loop 1 sends.
 */
START_TEST(test_peer_reset)
{
	struct tls_creds *screds, *ccreds;
	struct tls_session *srv, *cli;
	struct tls_config cfg;
	uint8_t buf[4096] = { 0 };
	struct iovec iov = { buf, sizeof(buf) };
	struct linger lg = { 1, 0 };
	int sv[2], cerr, i;
	ssize_t n = -EAGAIN;

	psk_config(&cfg, "alice:000102030405060708090a0b0c0d0e0f\n", 0600);
	ck_assert_int_eq(tls_creds_load(&cfg, TLS_SIDE_SERVER, &screds, why, sizeof(why)), 0);
	ck_assert_int_eq(tls_creds_load(&cfg, TLS_SIDE_CLIENT, &ccreds, why, sizeof(why)), 0);
	tcp_pair(sv);
	srv = session(sv[0], screds, TLS_SIDE_SERVER);
	cli = session(sv[1], ccreds, TLS_SIDE_CLIENT);
	tls_creds_put(screds);
	tls_creds_put(ccreds);
	ck_assert_int_eq(handshake(srv, cli, &cerr), 0);
	ck_assert_int_eq(cerr, 0);
	/*
	 * The client's process dies: its socket closes with a record unread and SO_LINGER 0, a
	 * reset, and no close_notify.  Its session is freed after (its close_notify and close
	 * then fail on the closed descriptor; no descriptor is opened in between).
	 */
	ck_assert_int_eq(tls_session_sendv(srv, &iov, 1), (ssize_t)sizeof(buf));
	ck_assert_int_eq(setsockopt(sv[1], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
	close(sv[1]);
	tls_session_close(cli);
	if (_i == 0) { /* the next receive meets the reset */
		for (i = 0; i < 1000 && n == -EAGAIN; i++) {
			n = tls_session_recvv(srv, &iov, 1);
			if (n == -EAGAIN)
				usleep(1000);
		}
		ck_assert_int_eq(n, -ECONNRESET);
		ck_assert_str_eq(tls_session_error(srv), "recv: Connection reset by peer");
	} else { /* the next send does: once the reset is in, ECONNRESET, EPIPE after */
		for (i = 0, n = 0; i < 1000 && n >= 0; i++) {
			n = tls_session_sendv(srv, &iov, 1);
			if (n >= 0)
				usleep(1000);
		}
		ck_assert_msg(n == -EPIPE || n == -ECONNRESET, "send after the reset: %zd %s", n,
			      tls_session_error(srv));
		ck_assert_str_eq(tls_session_error(srv), n == -EPIPE ? "send: Broken pipe"
								      : "send: Connection reset by peer");
	}
	tls_session_close(srv);
}
END_TEST

/* Garbage instead of a ClientHello fails the server's handshake; nothing is read as data. */
START_TEST(test_garbage)
{
	struct tls_creds *screds;
	struct tls_session *srv;
	struct tls_config cfg;
	int sv[2], err = -EAGAIN, i;
	static const char junk[] = "GET / HTTP/1.0\r\n\r\n";

	psk_config(&cfg, "alice:000102030405060708090a0b0c0d0e0f\n", 0600);
	ck_assert_int_eq(tls_creds_load(&cfg, TLS_SIDE_SERVER, &screds, why, sizeof(why)), 0);
	small_pair(sv);
	srv = session(sv[0], screds, TLS_SIDE_SERVER);
	tls_creds_put(screds);
	ck_assert_int_eq(write(sv[1], junk, sizeof(junk) - 1), (ssize_t)sizeof(junk) - 1);
	for (i = 0; i < 100 && err == -EAGAIN; i++)
		err = tls_session_handshake(srv);
	ck_assert_int_eq(err, -EPROTO);
	ck_assert_str_eq(tls_session_error(srv),
			 "TLS handshake: An unexpected TLS packet was received.");
	tls_session_close(srv);
	close(sv[1]);
}
END_TEST

/* certtool into @sub of the test directory: a CA, a server (localhost) and a client. */
static int make_x509(const char *sub)
{
	char cmd[4096];

	snprintf(cmd, sizeof(cmd),
		 "set -e; d=%s/%s; mkdir -p $d; cd $d; exec >certtool.log 2>&1\n"
		 "certtool --generate-privkey --key-type=ecdsa --outfile ca-key.pem\n"
		 "printf 'cn = CA\\nca\\ncert_signing_key\\nexpiration_days = 2\\n' >ca.info\n"
		 "certtool --generate-self-signed --load-privkey ca-key.pem --template ca.info "
		 "--outfile ca-cert.pem\n"
		 "for r in server client; do\n"
		 "  certtool --generate-privkey --key-type=ecdsa --outfile $r-key.pem\n"
		 "  chmod 600 $r-key.pem\n"
		 "  printf 'cn = %%s\\ndns_name = %%s\\ntls_www_%%s\\nsigning_key\\n"
		 "expiration_days = 2\\n' $r-of-$r localhost $r >$r.info\n"
		 "  certtool --generate-certificate --load-privkey $r-key.pem "
		 "--load-ca-certificate ca-cert.pem --load-ca-privkey ca-key.pem "
		 "--template $r.info --outfile $r-cert.pem\n"
		 "done\n",
		 dir, sub);
	return system(cmd);
}

static void x509_config(struct tls_config *cfg, const char *sub, const char *name,
			int verify_peer)
{
	memset(cfg, 0, sizeof(*cfg));
	tls_config_set(cfg, "tls", "x509", why, sizeof(why));
	snprintf(cfg->dir, sizeof(cfg->dir), "%s/%s", dir, sub);
	if (name)
		snprintf(cfg->name, sizeof(cfg->name), "%s", name);
	cfg->verify_peer = verify_peer;
}

/* Both ends with certificates, as the replication link will have them. */
START_TEST(test_x509)
{
	struct tls_creds *screds, *ccreds;
	struct tls_session *srv, *cli;
	struct tls_config cfg;
	int cerr;

	if (system("command -v certtool >/dev/null")) {
		fprintf(stderr, "test_x509: certtool is not installed: skipped\n");
		return;
	}
	ck_assert_int_eq(make_x509("pki"), 0);
	x509_config(&cfg, "pki", NULL, 1);
	ck_assert_int_eq(tls_creds_load(&cfg, TLS_SIDE_SERVER, &screds, why, sizeof(why)), 0);
	x509_config(&cfg, "pki", "localhost", 0);
	ck_assert_int_eq(tls_creds_load(&cfg, TLS_SIDE_CLIENT, &ccreds, why, sizeof(why)), 0);
	pair(screds, ccreds, &srv, &cli);
	ck_assert_int_eq(handshake(srv, cli, &cerr), 0);
	ck_assert_int_eq(cerr, 0);
	ck_assert_str_eq(tls_session_describe(srv),
			 "TLS1.3 AES-256-GCM, certificate CN=client-of-client");
	ck_assert_str_eq(tls_session_describe(cli),
			 "TLS1.3 AES-256-GCM, certificate CN=server-of-server");
	transfer(cli, srv);
	transfer(srv, cli);
	tls_session_close(srv);
	tls_session_close(cli);
	tls_creds_put(ccreds);

	/* A client that expects another name refuses the server. */
	x509_config(&cfg, "pki", "other.example", 0);
	ck_assert_int_eq(tls_creds_load(&cfg, TLS_SIDE_CLIENT, &ccreds, why, sizeof(why)), 0);
	pair(screds, ccreds, &srv, &cli);
	handshake(srv, cli, &cerr);
	ck_assert_int_eq(cerr, -EACCES);
	ck_assert_str_eq(tls_session_error(cli),
			 "the peer's certificate is refused: The certificate is NOT trusted. The "
			 "name in the certificate does not match the expected.");
	tls_session_close(srv);
	tls_session_close(cli);
	tls_creds_put(ccreds);
	tls_creds_put(screds);
}
END_TEST

START_TEST(test_config_errors)
{
	struct tls_config cfg = { 0 };
	struct tls_creds *creds;

	ck_assert_int_eq(tls_config_check(&cfg, TLS_SIDE_SERVER, why, sizeof(why)), -EINVAL);
	ck_assert_str_eq(why, "TLS is required: give tls=x509 tls_dir=DIR, tls=psk tls_psk=FILE, "
			      "or tls=none for plain text");
	ck_assert_int_eq(tls_config_set(&cfg, "tls", "ssl", why, sizeof(why)), -EINVAL);
	ck_assert_str_eq(why, "tls=ssl: expected none, x509 or psk");
	ck_assert_int_eq(tls_config_set(&cfg, "peer", "x", why, sizeof(why)), 1);
	ck_assert_int_eq(tls_config_set(&cfg, "tls_verify_peer", "yes", why, sizeof(why)),
			 -EINVAL);
	ck_assert_str_eq(why, "tls_verify_peer=yes: expected 0 or 1");
	ck_assert_int_eq(tls_config_set(&cfg, "tls", "psk", why, sizeof(why)), 0);
	ck_assert_int_eq(tls_config_check(&cfg, TLS_SIDE_SERVER, why, sizeof(why)), -EINVAL);
	ck_assert_str_eq(why, "tls=psk needs tls_psk=FILE");

	psk_config(&cfg, "alice:0001\n", 0644);
	ck_assert_int_eq(tls_creds_load(&cfg, TLS_SIDE_SERVER, &creds, why, sizeof(why)), -EACCES);
	ck_assert_ptr_null(creds);
	snprintf(cfg.user, sizeof(cfg.user), "%s/open.psk: mode 0644 lets other users read the "
		 "key: make it 0600 or 0400", dir);
	ck_assert_str_eq(why, cfg.user);

	psk_config(&cfg, "alice:00zz\n", 0600);
	ck_assert_int_eq(tls_creds_load(&cfg, TLS_SIDE_SERVER, &creds, why, sizeof(why)), -EINVAL);
	snprintf(cfg.user, sizeof(cfg.user), "%s/keys.psk:1: the key is not hex", dir);
	ck_assert_str_eq(why, cfg.user);

	/* A blank line counts: the error names the line an editor shows. */
	psk_config(&cfg, "alice:0001\n\r\n\nbob:00zz\n", 0600);
	ck_assert_int_eq(tls_creds_load(&cfg, TLS_SIDE_SERVER, &creds, why, sizeof(why)), -EINVAL);
	snprintf(cfg.user, sizeof(cfg.user), "%s/keys.psk:4: the key is not hex", dir);
	ck_assert_str_eq(why, cfg.user);

	psk_config(&cfg, "alice:0001\n", 0600);
	snprintf(cfg.user, sizeof(cfg.user), "carol");
	ck_assert_int_eq(tls_creds_load(&cfg, TLS_SIDE_CLIENT, &creds, why, sizeof(why)), -ENOENT);
	snprintf(cfg.name, sizeof(cfg.name), "%s/keys.psk: no key for user carol", dir);
	ck_assert_str_eq(why, cfg.name);

	memset(&cfg, 0, sizeof(cfg));
	tls_config_set(&cfg, "tls", "x509", why, sizeof(why));
	tls_config_set(&cfg, "tls_dir", dir, why, sizeof(why));
	ck_assert_int_eq(tls_creds_load(&cfg, TLS_SIDE_SERVER, &creds, why, sizeof(why)), -ENOENT);
	snprintf(cfg.name, sizeof(cfg.name), "%s/ca-cert.pem: No such file or directory", dir);
	ck_assert_str_eq(why, cfg.name);
}
END_TEST

static Suite *tls_suite(void)
{
	Suite *s = suite_create("tls-session");
	TCase *tc = tcase_create("session");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_plain);
	tcase_add_test(tc, test_psk);
	tcase_add_test(tc, test_wrong_psk);
	tcase_add_test(tc, test_garbage);
	tcase_add_loop_test(tc, test_peer_reset, 0, 2);
	tcase_add_test(tc, test_x509);
	tcase_add_test(tc, test_config_errors);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(tls_suite());
	char cmd[64];
	int failed;

	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return EXIT_FAILURE;
	}
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd))
		fprintf(stderr, "cannot remove %s\n", dir);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

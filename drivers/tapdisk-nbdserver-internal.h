#ifndef _TAPDISK_NBDSERVER_INTERNAL_H_
#define _TAPDISK_NBDSERVER_INTERNAL_H_

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
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "list.h"
#include "nbd-protocol.h"
#include "scheduler.h"
#include "tapdisk-nbd-parse.h"
#include "tapdisk-server.h"
#include "tapdisk.h"
#include "tls-session.h"

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
	NBD_CONN_HS_TLS, /* STARTTLS answered: TLS handshake */
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
	struct tls_config *tls; /* NULL: plain (Unix, or TCP with tls=none) */
};

struct nbd_conn {
	struct td_nbdserver *server;
	struct list_head next;
	int fd; /* for events; owned by ts */
	struct tls_session *ts; /* plain until STARTTLS */
	/* The listener's TLS options, or NULL; dead connections never read it. */
	const struct tls_config *tls;
	struct tls_creds *tls_creds; /* loaded at STARTTLS, until the session takes them */
	char peer[192];
	enum nbd_conn_state state;

	event_id_t read_event;
	event_id_t write_event;
	struct td_deferred flush; /* sends the replies queued during a loop iteration */
	struct td_deferred kick; /* reads what TLS decrypted but the socket no longer shows */
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

/* A handshake reply being built. */
struct nbd_opt_reply {
	uint8_t *buf;
	size_t len;
	size_t cap;
	int failed;
};

/* tapdisk-nbd-conn.c */
void nbd_conn_update_read(struct nbd_conn *conn);
void nbd_conn_release_req(struct nbd_conn *conn, struct nbd_req *req);
/* Ends a connection: drop for a normal end, fail for a broken protocol (logged as an error). */
void nbd_conn_drop(struct nbd_conn *conn, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void nbd_conn_fail(struct nbd_conn *conn, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void nbd_conn_free(struct nbd_conn *conn);
void nbd_conn_put(struct nbd_conn *conn);
void nbd_conn_start_closing(struct nbd_conn *conn);
void nbd_conn_send(struct nbd_conn *conn, struct nbd_out *out);
void nbd_conn_deferred_flush(void *arg);
void nbd_conn_process_input(struct nbd_conn *conn);
void nbd_conn_read_cb(event_id_t id, char mode, void *priv);
void nbd_conn_kick(void *arg);
void nbd_conn_arm_write(struct nbd_conn *conn, int on);
void nbd_conn_timeout_cb(event_id_t id, char mode, void *priv);

/* tapdisk-nbd-transmission.c */
void nbd_req_start_rw(struct nbd_req *req);
void nbd_conn_take_discard(struct nbd_conn *conn);
void nbd_conn_process_tx(struct nbd_conn *conn);

/* tapdisk-nbd-handshake.c */
void nbd_opt_reply_add(struct nbd_opt_reply *r, const void *data, size_t len);
void nbd_opt_reply_header(struct nbd_opt_reply *r, uint32_t option, uint32_t type, uint32_t len);
void nbd_opt_reply_error(struct nbd_opt_reply *r, uint32_t option, uint32_t type, const char *msg);
int nbd_conn_send_opt_reply(struct nbd_conn *conn, struct nbd_opt_reply *r);
void nbd_conn_process_handshake(struct nbd_conn *conn);

/* tapdisk-nbd-tls.c */
/* Where TLS is required: 0 lets @option through, 1 answered it, -1 stops parsing. */
int nbd_conn_tls_gate(struct nbd_conn *conn, uint32_t option);
int nbd_conn_opt_starttls(struct nbd_conn *conn);
void nbd_conn_tls_step(struct nbd_conn *conn);

/* tapdisk-nbdserver.c */
void nbd_server_destroy(struct td_nbdserver *server);

#endif

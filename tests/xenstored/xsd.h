/*
 * colo-test-xenstored: a xenstore daemon for tests, speaking the socket protocol of
 * xen/io/xs_wire.h so that libxenstore and the xenstore-* tools work against it without a
 * hypervisor.  It follows the C xenstored (tools/xenstored in the Xen tree) in error codes,
 * path rules, watch and transaction semantics; every client is dom0.
 *
 * Single threaded: one poll loop (xsd-main.c) owns everything, so there are no locks.
 */
#ifndef XSD_H
#define XSD_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <xen/io/xs_wire.h>

#define XSD_HDR_SIZE sizeof(struct xsd_sockmsg)
#define XSD_DOM0_PATH "/local/domain/0"
#define XSD_NO_GEN UINT64_MAX
#define XSD_DOMID_SELF 0x7FF0U

/* ---- xsd-main.c: options, listening socket, event loop ---- */

void xsd_trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
bool xsd_tracing(void);
void xsd_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- xsd-conn.c: framing of one client connection, reply queue ---- */

struct xsd_watch;
struct xsd_txn;

struct xsd_out {
	struct xsd_out *next;
	bool is_event;
	size_t len; /* header + payload */
	unsigned char data[];
};

struct xsd_conn {
	struct xsd_conn *next;
	int fd;
	unsigned int id; /* for the trace */
	bool closing;	 /* protocol violation or hang-up: freed by the loop */

	/* Room for two maximal messages, so a whole one always fits after a partial one. */
	unsigned char in[2 * (XSD_HDR_SIZE + XENSTORE_PAYLOAD_MAX)];
	size_t in_used;

	struct xsd_out *out_head, *out_tail;
	size_t out_sent; /* bytes of out_head already sent */
	size_t out_bytes;

	struct xsd_watch *watches;
	struct xsd_txn *txns;
	uint32_t next_txn_id;
};

/* All live connections; the loop walks it. */
extern struct xsd_conn *xsd_conns;

/* Above this much queued output a connection's requests wait; above the limit it is dropped. */
#define XSD_OUT_PAUSE (1U << 20)
#define XSD_OUT_LIMIT (16U << 20)

struct xsd_conn *xsd_conn_new(int fd);
void xsd_conn_free(struct xsd_conn *c);
void xsd_conn_input(struct xsd_conn *c);
void xsd_conn_process(struct xsd_conn *c);
void xsd_conn_flush(struct xsd_conn *c);
bool xsd_conn_wants_input(const struct xsd_conn *c);

void xsd_reply(struct xsd_conn *c, const struct xsd_sockmsg *req, uint32_t type, const void *data,
	       size_t len);
void xsd_reply_ok(struct xsd_conn *c, const struct xsd_sockmsg *req);
void xsd_reply_error(struct xsd_conn *c, const struct xsd_sockmsg *req, int err);
void xsd_send_event(struct xsd_conn *c, const char *path, const char *token);
const char *xsd_type_name(uint32_t type);

/* ---- xsd-tree.c: nodes, path rules, the global tree and transaction views ---- */

struct xsd_node {
	char *path;
	struct xsd_node *hnext;
	uint32_t hash;
	char *value;
	uint32_t vlen;
	char *perms; /* wire form, "n0\0r5\0" */
	uint32_t permlen;
	char *children; /* names, each NUL terminated, in creation order as xenstored keeps them */
	uint32_t childlen;
	uint64_t gen; /* bumped on every change, for transactions and DIRECTORY_PART */

	/* Only for nodes held by a transaction. */
	bool deleted;  /* absent in this transaction's view */
	bool modified; /* to be written back at commit */
	bool fire;     /* a watch event is due at commit */
	bool fire_exact;
	uint64_t orig_gen; /* global generation at first access, XSD_NO_GEN if absent */
	struct xsd_node *order_next;
};

struct xsd_map {
	struct xsd_node **buckets;
	size_t nbuckets;
	size_t count;
};

extern struct xsd_map xsd_tree;
extern uint64_t xsd_generation;

struct xsd_node *xsd_map_find(const struct xsd_map *m, const char *path);
void xsd_map_insert(struct xsd_map *m, struct xsd_node *n);
void xsd_map_remove(struct xsd_map *m, struct xsd_node *n);
void xsd_map_clear(struct xsd_map *m);

struct xsd_node *xsd_node_new(const char *path);
void xsd_node_free(struct xsd_node *n);
void xsd_node_set_value(struct xsd_node *n, const void *v, size_t len);
void xsd_node_set_perms(struct xsd_node *n, const char *p, size_t len);
void xsd_node_child_add(struct xsd_node *n, const char *name);
void xsd_node_child_del(struct xsd_node *n, const char *name);
void xsd_node_copy_contents(struct xsd_node *dst, const struct xsd_node *src);

int xsd_canonicalize(const char *in, bool allow_special, char **out);
char *xsd_parent_path(const char *path);
const char *xsd_basename(const char *path);
char *xsd_child_path(const char *parent, const char *name);
bool xsd_is_child(const char *child, const char *parent);

/* Access through the view of transaction t (NULL: the global tree). */
struct xsd_node *xsd_get(struct xsd_txn *t, const char *path);
void xsd_changed(struct xsd_txn *t, struct xsd_node *n);
struct xsd_node *xsd_create(struct xsd_txn *t, const char *path, struct xsd_node *parent);
void xsd_delete(struct xsd_txn *t, struct xsd_node *n);
void xsd_fire(struct xsd_txn *t, const char *path, bool exact);

void xsd_tree_init_default(void);
void xsd_tree_free(void);

/* ---- xsd-watch.c ---- */

struct xsd_watch {
	struct xsd_watch *next;
	char *path; /* canonical */
	char *token;
	size_t prefix_len; /* stripped from event paths of relative watches */
};

int xsd_watch_add(struct xsd_conn *c, const char *path, const char *token, bool relative);
int xsd_watch_del(struct xsd_conn *c, const char *path, const char *token);
void xsd_watch_fire(const char *path, bool exact);
void xsd_watch_free_all(struct xsd_conn *c);

/* ---- xsd-txn.c ---- */

struct xsd_txn {
	struct xsd_txn *next;
	uint32_t id;
	struct xsd_map nodes;
	struct xsd_node *order_head, *order_tail; /* in order of first access */
};

struct xsd_txn *xsd_txn_find(struct xsd_conn *c, uint32_t id);
uint32_t xsd_txn_start(struct xsd_conn *c);
int xsd_txn_end(struct xsd_conn *c, struct xsd_txn *t, bool commit);
void xsd_txn_free_all(struct xsd_conn *c);

/* ---- xsd-ops.c ---- */

void xsd_ops_handle(struct xsd_conn *c, const struct xsd_sockmsg *req, const char *payload);

/* ---- xsd-state.c ---- */

int xsd_state_open(const char *file);
void xsd_state_touch(const char *path);
int xsd_state_sync(void);
void xsd_state_close(void);

#endif /* XSD_H */

/*
 * The tree on disk, so that a restart, even after kill -9, finds every change a client was
 * told about.  Rewriting the whole tree with a rename after each change costs milliseconds
 * on ext4 (rename flushes), too slow for 100+ checkpoints/s, so the tree is kept as
 *
 *   FILE      a snapshot, always replaced atomically (write FILE.tmp, rename);
 *   FILE.log  a journal of the nodes changed since the snapshot, appended with one write()
 *             per round of the loop, before any reply of that round is sent.
 *
 * Both carry an epoch; the journal counts only with the snapshot of its epoch, so a crash
 * between writing a new snapshot and emptying the journal replays nothing stale.  At start
 * and at exit, and when the journal outgrows the snapshot, the two are compacted into a new
 * snapshot.  A truncated last journal record (a crash inside write()) is ignored: its reply
 * was never sent.
 *
 * Snapshot: the line "colo-test-xenstored state 2 <epoch>\n", then one record per node,
 * parents first and children in order: u32 path length (with NUL), u32 value length, u32
 * perms length, path, value, perms.  Special "@" nodes come last.
 * Journal: the same first line, then records: 'P' u32 path, value, perms and children
 * lengths, then the four (the node as it is now), or 'D' u32 path length, path (gone).
 * Integers are little endian.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xsd.h"

#define MAGIC "colo-test-xenstored state 2 "

static char *state_file, *log_file;
static int log_fd = -1;
static uint64_t epoch;
static size_t log_bytes, snapshot_bytes;
static char **touched;
static size_t ntouched, touched_cap;

struct buf {
	unsigned char *p;
	size_t len, cap;
};

static void buf_put(struct buf *b, const void *data, size_t len)
{
	if (b->len + len > b->cap) {
		b->cap = (b->len + len) * 2;
		b->p = realloc(b->p, b->cap);
		if (!b->p) {
			xsd_log("out of memory");
			abort();
		}
	}
	if (len)
		memcpy(b->p + b->len, data, len);
	b->len += len;
}

static void buf_u32(struct buf *b, uint32_t v)
{
	unsigned char x[4] = { v, v >> 8, v >> 16, v >> 24 };

	buf_put(b, x, 4);
}

static uint32_t get_u32(const unsigned char *b)
{
	return b[0] | b[1] << 8 | b[2] << 16 | (uint32_t)b[3] << 24;
}

static void buf_header(struct buf *b)
{
	char line[64];

	buf_put(b, line, snprintf(line, sizeof(line), MAGIC "%llu\n", (unsigned long long)epoch));
}

/* Writes all of b to fd. */
static int write_all(int fd, const struct buf *b)
{
	size_t off = 0;
	ssize_t n;

	while (off < b->len) {
		n = write(fd, b->p + off, b->len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		off += n;
	}
	return 0;
}

/* ---- snapshot ---- */

static void snap_node(struct buf *b, const struct xsd_node *n)
{
	uint32_t pl = strlen(n->path) + 1;

	buf_u32(b, pl);
	buf_u32(b, n->vlen);
	buf_u32(b, n->permlen);
	buf_put(b, n->path, pl);
	buf_put(b, n->value, n->vlen);
	buf_put(b, n->perms, n->permlen);
}

static void snap_tree(struct buf *b, const struct xsd_node *n)
{
	uint32_t off;
	const struct xsd_node *child;
	char *cpath;

	snap_node(b, n);
	for (off = 0; off < n->childlen; off += strlen(n->children + off) + 1) {
		cpath = xsd_child_path(n->path, n->children + off);
		child = xsd_map_find(&xsd_tree, cpath);
		free(cpath);
		if (child)
			snap_tree(b, child);
	}
}

/* A new snapshot of the next epoch, then an empty journal of that epoch. */
static int compact(void)
{
	struct buf b = { 0 };
	size_t len = strlen(state_file), i;
	char *tmp = malloc(len + 5);
	const struct xsd_node *n;
	int fd, ret = -1;

	if (!tmp)
		return -1;
	sprintf(tmp, "%s.tmp", state_file);
	epoch++;
	buf_header(&b);
	snap_tree(&b, xsd_map_find(&xsd_tree, "/"));
	for (i = 0; i < xsd_tree.nbuckets; i++)
		for (n = xsd_tree.buckets[i]; n; n = n->hnext)
			if (n->path[0] == '@')
				snap_node(&b, n);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write_all(fd, &b) || close(fd) || rename(tmp, state_file)) {
		xsd_log("cannot write the state %s: %m", state_file);
		if (fd >= 0)
			unlink(tmp);
		goto out;
	}
	snapshot_bytes = b.len;
	b.len = 0;
	buf_header(&b);
	if (log_fd >= 0)
		close(log_fd);
	log_fd = open(log_file, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
	if (log_fd < 0 || write_all(log_fd, &b)) {
		xsd_log("cannot write the journal %s: %m", log_file);
		goto out;
	}
	log_bytes = b.len;
	ret = 0;
out:
	free(b.p);
	free(tmp);
	return ret;
}

/* ---- loading ---- */

static unsigned char *read_file(const char *file, size_t *len)
{
	FILE *f = fopen(file, "r");
	unsigned char *buf = NULL, *nb;
	size_t cap = 0, n;

	*len = 0;
	if (!f)
		return NULL;
	do {
		if (*len == cap) {
			nb = realloc(buf, cap = cap ? cap * 2 : 65536);
			if (!nb) {
				free(buf);
				fclose(f);
				errno = ENOMEM;
				return NULL;
			}
			buf = nb;
		}
		n = fread(buf + *len, 1, cap - *len, f);
		*len += n;
	} while (n);
	fclose(f);
	return buf;
}

/* The epoch in the first line, and the offset after it; -1 if there is no such line. */
static long parse_header(const unsigned char *buf, size_t len, uint64_t *ep)
{
	const unsigned char *nl = memchr(buf, '\n', len < 64 ? len : 64);
	unsigned long long e;
	char line[64];

	if (!nl || (size_t)(nl - buf) < sizeof(MAGIC) - 1 || memcmp(buf, MAGIC, sizeof(MAGIC) - 1))
		return -1;
	memcpy(line, buf, nl - buf);
	line[nl - buf] = '\0';
	if (sscanf(line + sizeof(MAGIC) - 1, "%llu", &e) != 1)
		return -1;
	*ep = e;
	return nl - buf + 1;
}

static bool valid_path(const char *p, size_t len)
{
	return len && len <= XENSTORE_ABS_PATH_MAX + 1 && memchr(p, '\0', len) == p + len - 1 &&
	       (p[0] == '/' || p[0] == '@');
}

static int snap_record(const unsigned char *b, size_t left, size_t *used)
{
	uint32_t pl, vl, ml;
	const char *path, *perms;
	struct xsd_node *n, *parent;
	char *pname;

	if (left < 12)
		return -1;
	pl = get_u32(b);
	vl = get_u32(b + 4);
	ml = get_u32(b + 8);
	if (vl > XENSTORE_PAYLOAD_MAX || !ml || ml > 16 * XENSTORE_PAYLOAD_MAX ||
	    left - 12 < (size_t)pl + vl + ml)
		return -1;
	path = (const char *)b + 12;
	perms = path + pl + vl;
	if (!valid_path(path, pl) || perms[ml - 1] || xsd_map_find(&xsd_tree, path))
		return -1;
	if (path[0] == '/' && path[1]) {
		pname = xsd_parent_path(path);
		parent = xsd_map_find(&xsd_tree, pname);
		free(pname);
		if (!parent)
			return -1;
		xsd_node_child_add(parent, xsd_basename(path));
	} else if (!xsd_map_find(&xsd_tree, "/") && strcmp(path, "/")) {
		return -1;
	}
	n = xsd_node_new(path);
	xsd_node_set_value(n, path + pl, vl);
	xsd_node_set_perms(n, perms, ml);
	n->gen = ++xsd_generation;
	xsd_map_insert(&xsd_tree, n);
	*used = 12 + pl + vl + ml;
	return 0;
}

/* One journal record; 1 for a truncated last one. */
static int log_record(const unsigned char *b, size_t left, size_t *used)
{
	uint32_t pl, vl = 0, ml = 0, cl = 0;
	size_t hdr = b[0] == 'P' ? 17 : 5;
	struct xsd_node *n;
	const char *path;

	if (left < 5 || left < hdr)
		return 1;
	pl = get_u32(b + 1);
	if (b[0] == 'P') {
		vl = get_u32(b + 5);
		ml = get_u32(b + 9);
		cl = get_u32(b + 13);
	} else if (b[0] != 'D') {
		return -1;
	}
	if (left - hdr < (size_t)pl + vl + ml + cl)
		return 1;
	path = (const char *)b + hdr;
	if (!valid_path(path, pl) || (b[0] == 'P' && (!ml || path[pl + vl + ml - 1])))
		return -1;
	n = xsd_map_find(&xsd_tree, path);
	if (b[0] == 'D') {
		if (n) {
			xsd_map_remove(&xsd_tree, n);
			xsd_node_free(n);
		}
	} else {
		if (!n) {
			n = xsd_node_new(path);
			xsd_map_insert(&xsd_tree, n);
		}
		xsd_node_set_value(n, path + pl, vl);
		xsd_node_set_perms(n, path + pl + vl, ml);
		free(n->children);
		n->children = malloc(cl ? cl : 1);
		if (!n->children)
			return -1;
		memcpy(n->children, path + pl + vl + ml, cl);
		n->childlen = cl;
		n->gen = ++xsd_generation;
	}
	*used = hdr + pl + vl + ml + cl;
	return 0;
}

/* After a replay every node hangs below its parent and every child exists. */
static bool tree_consistent(void)
{
	const struct xsd_node *n, *p;
	size_t i, off;
	char *pname, *cpath;
	bool ok = xsd_map_find(&xsd_tree, "/") != NULL;

	for (i = 0; ok && i < xsd_tree.nbuckets; i++) {
		for (n = xsd_tree.buckets[i]; ok && n; n = n->hnext) {
			for (off = 0; ok && off < n->childlen;
			     off += strlen(n->children + off) + 1) {
				cpath = xsd_child_path(n->path, n->children + off);
				ok = n->path[0] == '/' && xsd_map_find(&xsd_tree, cpath);
				free(cpath);
			}
			if (!ok || n->path[0] != '/' || !n->path[1])
				continue;
			pname = xsd_parent_path(n->path);
			p = xsd_map_find(&xsd_tree, pname);
			free(pname);
			ok = false;
			for (off = 0; p && !ok && off < p->childlen;
			     off += strlen(p->children + off) + 1)
				ok = !strcmp(p->children + off, xsd_basename(n->path));
		}
	}
	return ok;
}

static int load(void)
{
	unsigned char *buf;
	size_t len, off, used = 0;
	uint64_t log_epoch;
	long start;
	int ret;

	buf = read_file(state_file, &len);
	if (!buf) {
		if (errno != ENOENT) {
			xsd_log("cannot read the state %s: %m", state_file);
			return -1;
		}
		return 1;
	}
	start = parse_header(buf, len, &epoch);
	for (off = start; start >= 0 && off < len; off += used)
		if (snap_record(buf + off, len - off, &used))
			break;
	free(buf);
	if (start < 0 || off < len || !xsd_map_find(&xsd_tree, "/")) {
		xsd_log("the state %s is corrupt", state_file);
		return -1;
	}
	buf = read_file(log_file, &len);
	if (!buf)
		return 0;
	start = parse_header(buf, len, &log_epoch);
	ret = 0;
	if (start >= 0 && log_epoch == epoch) {
		for (off = start; off < len && !ret; off += used)
			ret = log_record(buf + off, len - off, &used);
	}
	free(buf);
	if (ret < 0 || !tree_consistent()) {
		xsd_log("the journal %s is corrupt", log_file);
		return -1;
	}
	return 0;
}

/* 0: loaded from FILE (and its journal) or, when there is none, the default tree. */
int xsd_state_open(const char *file)
{
	int ret;

	state_file = strdup(file);
	log_file = malloc(strlen(file) + 5);
	if (!state_file || !log_file)
		return -1;
	sprintf(log_file, "%s.log", file);
	ret = load();
	if (ret < 0) {
		xsd_tree_free();
		return -1;
	}
	if (ret > 0)
		xsd_tree_init_default();
	return compact();
}

void xsd_state_touch(const char *path)
{
	char **t;

	if (log_fd < 0)
		return;
	if (ntouched == touched_cap) {
		touched_cap = touched_cap ? touched_cap * 2 : 64;
		t = realloc(touched, touched_cap * sizeof(*t));
		if (!t) {
			xsd_log("out of memory");
			abort();
		}
		touched = t;
	}
	touched[ntouched] = strdup(path);
	if (!touched[ntouched]) {
		xsd_log("out of memory");
		abort();
	}
	ntouched++;
}

/* Journals the nodes touched since the last call: what they are now, or that they are gone. */
int xsd_state_sync(void)
{
	struct buf b = { 0 };
	const struct xsd_node *n;
	uint32_t pl;
	size_t i;
	int ret = 0;

	if (!ntouched)
		return 0;
	for (i = 0; i < ntouched; i++) {
		n = xsd_map_find(&xsd_tree, touched[i]);
		pl = strlen(touched[i]) + 1;
		buf_put(&b, n ? "P" : "D", 1);
		buf_u32(&b, pl);
		if (n) {
			buf_u32(&b, n->vlen);
			buf_u32(&b, n->permlen);
			buf_u32(&b, n->childlen);
		}
		buf_put(&b, touched[i], pl);
		if (n) {
			buf_put(&b, n->value, n->vlen);
			buf_put(&b, n->perms, n->permlen);
			buf_put(&b, n->children, n->childlen);
		}
		free(touched[i]);
	}
	ntouched = 0;
	if (write_all(log_fd, &b)) {
		xsd_log("cannot write the journal %s: %m", log_file);
		ret = -1;
	}
	log_bytes += b.len;
	free(b.p);
	if (log_bytes > (1U << 20) && log_bytes > 4 * snapshot_bytes)
		ret = compact();
	return ret;
}

void xsd_state_close(void)
{
	size_t i;

	if (log_fd >= 0) {
		compact();
		close(log_fd);
		log_fd = -1;
	}
	for (i = 0; i < ntouched; i++)
		free(touched[i]);
	free(touched);
	touched = NULL;
	ntouched = touched_cap = 0;
	free(state_file);
	free(log_file);
	state_file = log_file = NULL;
}

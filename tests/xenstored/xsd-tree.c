/*
 * The node tree: a hash map from full path to node, xenstored's path rules, and the view of
 * the tree through a transaction (a copy-on-first-access overlay, as xenstored keeps one).
 */
#include <stdlib.h>
#include <string.h>

#include "xsd.h"

struct xsd_map xsd_tree;
uint64_t xsd_generation;

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p) {
		xsd_log("out of memory");
		abort();
	}
	return p;
}

static void *xmemdup(const void *src, size_t n)
{
	void *p = xmalloc(n);

	if (n)
		memcpy(p, src, n);
	return p;
}

static uint32_t path_hash(const char *s)
{
	uint32_t h = 2166136261u;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h;
}

struct xsd_node *xsd_map_find(const struct xsd_map *m, const char *path)
{
	uint32_t h;
	struct xsd_node *n;

	if (!m->nbuckets)
		return NULL;
	h = path_hash(path);
	for (n = m->buckets[h & (m->nbuckets - 1)]; n; n = n->hnext)
		if (n->hash == h && !strcmp(n->path, path))
			return n;
	return NULL;
}

static void map_grow(struct xsd_map *m)
{
	size_t nb = m->nbuckets ? m->nbuckets * 2 : 64, i;
	struct xsd_node **b = calloc(nb, sizeof(*b));
	struct xsd_node *n, *next;

	if (!b) {
		xsd_log("out of memory");
		abort();
	}
	for (i = 0; i < m->nbuckets; i++) {
		for (n = m->buckets[i]; n; n = next) {
			next = n->hnext;
			n->hnext = b[n->hash & (nb - 1)];
			b[n->hash & (nb - 1)] = n;
		}
	}
	free(m->buckets);
	m->buckets = b;
	m->nbuckets = nb;
}

void xsd_map_insert(struct xsd_map *m, struct xsd_node *n)
{
	size_t i;

	if (m->count + 1 > m->nbuckets)
		map_grow(m);
	n->hash = path_hash(n->path);
	i = n->hash & (m->nbuckets - 1);
	n->hnext = m->buckets[i];
	m->buckets[i] = n;
	m->count++;
}

void xsd_map_remove(struct xsd_map *m, struct xsd_node *n)
{
	struct xsd_node **pp = &m->buckets[n->hash & (m->nbuckets - 1)];

	while (*pp != n)
		pp = &(*pp)->hnext;
	*pp = n->hnext;
	m->count--;
}

void xsd_map_clear(struct xsd_map *m)
{
	size_t i;
	struct xsd_node *n, *next;

	for (i = 0; i < m->nbuckets; i++) {
		for (n = m->buckets[i]; n; n = next) {
			next = n->hnext;
			xsd_node_free(n);
		}
	}
	free(m->buckets);
	memset(m, 0, sizeof(*m));
}

struct xsd_node *xsd_node_new(const char *path)
{
	struct xsd_node *n = calloc(1, sizeof(*n));

	if (!n) {
		xsd_log("out of memory");
		abort();
	}
	n->path = xmemdup(path, strlen(path) + 1);
	return n;
}

void xsd_node_free(struct xsd_node *n)
{
	if (!n)
		return;
	free(n->path);
	free(n->value);
	free(n->perms);
	free(n->children);
	free(n);
}

void xsd_node_set_value(struct xsd_node *n, const void *v, size_t len)
{
	free(n->value);
	n->value = xmemdup(v, len);
	n->vlen = len;
}

void xsd_node_set_perms(struct xsd_node *n, const char *p, size_t len)
{
	free(n->perms);
	n->perms = xmemdup(p, len);
	n->permlen = len;
}

void xsd_node_child_add(struct xsd_node *n, const char *name)
{
	size_t len = strlen(name) + 1;
	char *c = xmalloc(n->childlen + len);

	if (n->childlen)
		memcpy(c, n->children, n->childlen);
	memcpy(c + n->childlen, name, len);
	free(n->children);
	n->children = c;
	n->childlen += len;
}

void xsd_node_child_del(struct xsd_node *n, const char *name)
{
	size_t off, len;

	for (off = 0; off < n->childlen; off += len) {
		len = strlen(n->children + off) + 1;
		if (!strcmp(n->children + off, name)) {
			memmove(n->children + off, n->children + off + len,
				n->childlen - off - len);
			n->childlen -= len;
			return;
		}
	}
}

void xsd_node_copy_contents(struct xsd_node *dst, const struct xsd_node *src)
{
	xsd_node_set_value(dst, src->value, src->vlen);
	xsd_node_set_perms(dst, src->perms, src->permlen);
	free(dst->children);
	dst->children = xmemdup(src->children, src->childlen);
	dst->childlen = src->childlen;
	dst->gen = src->gen;
}

/* ---- path rules ---- */

static bool valid_chars(const char *s)
{
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-/_@") ==
	       strlen(s);
}

/*
 * xenstored's canonicalize() plus its path length rule: relative paths are below the
 * connection's home (/local/domain/0 for every socket client), and the part below
 * /local/domain/N/ may not exceed XENSTORE_REL_PATH_MAX.  EINVAL otherwise.
 */
int xsd_canonicalize(const char *in, bool allow_special, char **out)
{
	size_t len;
	unsigned int domid;
	int local_off = 0;
	char *name;

	*out = NULL;
	if (!in || !valid_chars(in) || (in[0] == '@' && !allow_special))
		return EINVAL;
	len = strlen(in);
	if (len > XENSTORE_ABS_PATH_MAX)
		return EINVAL;
	if (in[0] != '/' && in[0] != '@') {
		name = xmalloc(sizeof(XSD_DOM0_PATH) + 1 + len);
		memcpy(name, XSD_DOM0_PATH "/", sizeof(XSD_DOM0_PATH));
		memcpy(name + sizeof(XSD_DOM0_PATH), in, len + 1);
	} else {
		name = xmemdup(in, len + 1);
	}
	len = strlen(name);
	if (sscanf(name, "/local/domain/%5u/%n", &domid, &local_off) != 1)
		local_off = 0;
	if ((len > 1 && name[len - 1] == '/') || strstr(name, "//") ||
	    len > XENSTORE_ABS_PATH_MAX || len - local_off > XENSTORE_REL_PATH_MAX) {
		free(name);
		return EINVAL;
	}
	*out = name;
	return 0;
}

char *xsd_parent_path(const char *path)
{
	const char *slash = strrchr(path + 1, '/');
	size_t len = slash ? (size_t)(slash - path) : 1;
	char *p = xmalloc(len + 1);

	memcpy(p, path, len);
	p[len] = '\0';
	return p;
}

const char *xsd_basename(const char *path)
{
	return strrchr(path, '/') + 1;
}

char *xsd_child_path(const char *parent, const char *name)
{
	size_t pl = strcmp(parent, "/") ? strlen(parent) : 0, nl = strlen(name);
	char *p = xmalloc(pl + 1 + nl + 1);

	memcpy(p, parent, pl);
	p[pl] = '/';
	memcpy(p + pl + 1, name, nl + 1);
	return p;
}

/* Is child equal to parent or below it?  "/" is above everything. */
bool xsd_is_child(const char *child, const char *parent)
{
	size_t len = strlen(parent);

	if (!strcmp(parent, "/"))
		return true;
	return !strncmp(child, parent, len) && (child[len] == '/' || child[len] == '\0');
}

/* ---- views ---- */

static void txn_append(struct xsd_txn *t, struct xsd_node *e)
{
	if (t->order_tail)
		t->order_tail->order_next = e;
	else
		t->order_head = e;
	t->order_tail = e;
	xsd_map_insert(&t->nodes, e);
}

/*
 * The first access of a transaction to a node records the node's global generation (or its
 * absence) for the conflict check at commit, and keeps a private copy to work on.
 */
static struct xsd_node *txn_entry(struct xsd_txn *t, const char *path)
{
	struct xsd_node *e = xsd_map_find(&t->nodes, path), *g;

	if (e)
		return e;
	e = xsd_node_new(path);
	g = xsd_map_find(&xsd_tree, path);
	if (g) {
		xsd_node_copy_contents(e, g);
		e->orig_gen = g->gen;
	} else {
		e->deleted = true;
		e->orig_gen = XSD_NO_GEN;
	}
	txn_append(t, e);
	return e;
}

struct xsd_node *xsd_get(struct xsd_txn *t, const char *path)
{
	struct xsd_node *e;

	if (!t)
		return xsd_map_find(&xsd_tree, path);
	e = txn_entry(t, path);
	return e->deleted ? NULL : e;
}

void xsd_changed(struct xsd_txn *t, struct xsd_node *n)
{
	n->gen = ++xsd_generation;
	if (t)
		n->modified = true;
	else
		xsd_state_touch(n->path);
}

/* A new empty node that inherits the parent's permissions, added to the parent's children. */
struct xsd_node *xsd_create(struct xsd_txn *t, const char *path, struct xsd_node *parent)
{
	struct xsd_node *n;

	if (t) {
		n = txn_entry(t, path);
		n->deleted = false;
		free(n->children);
		n->children = NULL;
		n->childlen = 0;
	} else {
		n = xsd_node_new(path);
		xsd_map_insert(&xsd_tree, n);
	}
	xsd_node_set_value(n, NULL, 0);
	xsd_node_set_perms(n, parent->perms, parent->permlen);
	xsd_changed(t, n);
	xsd_node_child_add(parent, xsd_basename(path));
	xsd_changed(t, parent);
	return n;
}

void xsd_delete(struct xsd_txn *t, struct xsd_node *n)
{
	if (!t) {
		xsd_state_touch(n->path);
		xsd_map_remove(&xsd_tree, n);
		xsd_node_free(n);
		return;
	}
	n->deleted = true;
	n->modified = true;
	n->gen = ++xsd_generation;
	xsd_node_set_value(n, NULL, 0);
	free(n->children);
	n->children = NULL;
	n->childlen = 0;
}

/*
 * A transaction queues one event per node and fires them at commit; a recursive (non exact)
 * event replaces an exact one, as in xenstored's queue_watches().
 */
void xsd_fire(struct xsd_txn *t, const char *path, bool exact)
{
	struct xsd_node *e;

	if (!t) {
		xsd_watch_fire(path, exact);
		return;
	}
	e = txn_entry(t, path);
	if (!e->fire) {
		e->fire = true;
		e->fire_exact = exact;
	} else if (!exact) {
		e->fire_exact = false;
	}
}

static struct xsd_node *add_default(const char *path)
{
	struct xsd_node *n = xsd_node_new(path);
	char *parent;
	struct xsd_node *p;

	xsd_node_set_value(n, NULL, 0);
	xsd_node_set_perms(n, "n0", 3);
	n->gen = ++xsd_generation;
	xsd_map_insert(&xsd_tree, n);
	if (path[0] == '/' && path[1]) {
		parent = xsd_parent_path(path);
		p = xsd_map_find(&xsd_tree, parent);
		free(parent);
		xsd_node_child_add(p, xsd_basename(path));
	}
	return n;
}

/* What a freshly booted dom0 has: xenstored's own nodes, then dom0's home. */
void xsd_tree_init_default(void)
{
	add_default("/");
	add_default("/tool");
	add_default("/tool/xenstored");
	add_default("@releaseDomain");
	add_default("@introduceDomain");
	add_default("/local");
	add_default("/local/domain");
	add_default("/local/domain/0");
}

void xsd_tree_free(void)
{
	xsd_map_clear(&xsd_tree);
}

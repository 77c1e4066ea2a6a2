/*
 * The tree on disk, so that a restart (even after kill -9) finds what clients were told was
 * written.  Saved as a whole (write a temporary file, then rename) after each change.
 *
 * Format: the line "colo-test-xenstored state 1\n", then one record per node, parents before
 * children and children in their order: three little-endian u32 (path length with its NUL,
 * value length, perms length), the path, the value, the perms in wire form.  The special
 * "@" nodes come last.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xsd.h"

static const char magic[] = "colo-test-xenstored state 1\n";

static void put_u32(unsigned char *b, uint32_t v)
{
	b[0] = v;
	b[1] = v >> 8;
	b[2] = v >> 16;
	b[3] = v >> 24;
}

static uint32_t get_u32(const unsigned char *b)
{
	return b[0] | b[1] << 8 | b[2] << 16 | (uint32_t)b[3] << 24;
}

static int save_node(FILE *f, const struct xsd_node *n)
{
	unsigned char h[12];
	uint32_t pl = strlen(n->path) + 1;

	put_u32(h, pl);
	put_u32(h + 4, n->vlen);
	put_u32(h + 8, n->permlen);
	if (fwrite(h, sizeof(h), 1, f) != 1 || fwrite(n->path, pl, 1, f) != 1 ||
	    (n->vlen && fwrite(n->value, n->vlen, 1, f) != 1) ||
	    fwrite(n->perms, n->permlen, 1, f) != 1)
		return -1;
	return 0;
}

static int save_tree(FILE *f, const struct xsd_node *n)
{
	uint32_t off;
	const struct xsd_node *child;
	char *cpath;
	int ret = save_node(f, n);

	for (off = 0; !ret && off < n->childlen; off += strlen(n->children + off) + 1) {
		cpath = xsd_child_path(n->path, n->children + off);
		child = xsd_map_find(&xsd_tree, cpath);
		free(cpath);
		if (child)
			ret = save_tree(f, child);
	}
	return ret;
}

int xsd_state_save(const char *file)
{
	size_t len = strlen(file), i;
	char *tmp = malloc(len + 5);
	const struct xsd_node *n;
	FILE *f;
	int ret;

	if (!tmp)
		return -1;
	memcpy(tmp, file, len);
	memcpy(tmp + len, ".tmp", 5);
	f = fopen(tmp, "w");
	if (!f) {
		xsd_log("cannot write the state %s: %m", tmp);
		free(tmp);
		return -1;
	}
	ret = fputs(magic, f) < 0 ? -1 : save_tree(f, xsd_map_find(&xsd_tree, "/"));
	for (i = 0; !ret && i < xsd_tree.nbuckets; i++)
		for (n = xsd_tree.buckets[i]; !ret && n; n = n->hnext)
			if (n->path[0] == '@')
				ret = save_node(f, n);
	if (fclose(f) || ret || rename(tmp, file)) {
		xsd_log("cannot write the state %s: %m", file);
		unlink(tmp);
		ret = -1;
	}
	free(tmp);
	return ret;
}

static int load_record(const unsigned char *b, size_t left, size_t *used)
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
	if (!pl || pl > XENSTORE_ABS_PATH_MAX + 1 || vl > XENSTORE_PAYLOAD_MAX || !ml ||
	    ml > 16 * XENSTORE_PAYLOAD_MAX || left - 12 < (size_t)pl + vl + ml)
		return -1;
	path = (const char *)b + 12;
	perms = path + pl + vl;
	if (memchr(path, '\0', pl) != path + pl - 1 || perms[ml - 1] || xsd_map_find(&xsd_tree, path))
		return -1;
	if (path[0] == '/' && path[1]) {
		pname = xsd_parent_path(path);
		parent = xsd_map_find(&xsd_tree, pname);
		free(pname);
		if (!parent)
			return -1;
		xsd_node_child_add(parent, xsd_basename(path));
	} else if (strcmp(path, "/") && path[0] != '@') {
		return -1;
	} else if (path[0] == '@' && !xsd_map_find(&xsd_tree, "/")) {
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

/* 0: loaded; 1: no such file; -1: unreadable or corrupt (reported). */
int xsd_state_load(const char *file)
{
	FILE *f = fopen(file, "r");
	unsigned char *buf = NULL;
	size_t len = 0, cap = 0, off = 0, used;
	size_t n;

	if (!f) {
		if (errno == ENOENT)
			return 1;
		xsd_log("cannot read the state %s: %m", file);
		return -1;
	}
	do {
		if (len == cap) {
			unsigned char *nb = realloc(buf, cap = cap ? cap * 2 : 65536);

			if (!nb) {
				fclose(f);
				free(buf);
				return -1;
			}
			buf = nb;
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
	} while (n);
	fclose(f);
	if (len < sizeof(magic) - 1 || memcmp(buf, magic, sizeof(magic) - 1))
		goto corrupt;
	for (off = sizeof(magic) - 1; off < len; off += used)
		if (load_record(buf + off, len - off, &used))
			goto corrupt;
	if (!xsd_map_find(&xsd_tree, "/"))
		goto corrupt;
	free(buf);
	return 0;

corrupt:
	xsd_log("the state %s is corrupt (at record byte %zu)", file, off);
	xsd_tree_free();
	free(buf);
	return -1;
}

/*
 * The operations.  Each handler either queues its reply and returns 0, or returns an errno
 * that goes back as XS_ERROR, as xenstored's wire_funcs do.  Argument checks, their order
 * and the error each gives follow xenstored (core.c, watch.c, transaction.c, domain.c).
 */
#include <stdlib.h>
#include <string.h>

#include "xsd.h"

struct req {
	struct xsd_conn *c;
	struct xsd_txn *t;
	const struct xsd_sockmsg *h;
	const char *p; /* payload, with a NUL after it */
	uint32_t len;
};

/* The number of NUL-terminated strings (xenstore_count_strings). */
static unsigned int count_strings(const struct req *r)
{
	unsigned int n = 0;
	uint32_t i;

	for (i = 0; i < r->len; i++)
		n += !r->p[i];
	return n;
}

/* The payload must be exactly one string, NUL at its end. */
static const char *onearg(const struct req *r)
{
	if (!r->len || memchr(r->p, '\0', r->len) != r->p + r->len - 1)
		return NULL;
	return r->p;
}

/* Canonical name of a node argument, and the node in r's view (NULL: see *err). */
static struct xsd_node *get_node(const struct req *r, const char *arg, bool allow_special,
				 char **name, int *err)
{
	struct xsd_node *n;

	*err = xsd_canonicalize(arg, allow_special, name);
	if (*err)
		return NULL;
	n = xsd_get(r->t, *name);
	if (!n)
		*err = ENOENT;
	return n;
}

/* READ, DIRECTORY and GET_PERMS: one field of one node, as it stands in r's view. */
static int reply_node_field(const struct req *r, uint32_t type)
{
	struct xsd_node *n;
	char *name;
	int err;

	/* Only permissions may be asked of @introduceDomain and friends. */
	n = get_node(r, onearg(r), type == XS_GET_PERMS, &name, &err);
	if (n && type == XS_READ)
		xsd_reply(r->c, r->h, type, n->value, n->vlen);
	else if (n && type == XS_DIRECTORY)
		xsd_reply(r->c, r->h, type, n->children, n->childlen);
	else if (n)
		xsd_reply(r->c, r->h, type, n->perms, n->permlen);
	free(name);
	return err;
}

static int do_read(const struct req *r)
{
	return reply_node_field(r, XS_READ);
}

static int do_directory(const struct req *r)
{
	return reply_node_field(r, XS_DIRECTORY);
}

/* path, offset: "<generation>\0" then as many whole names as fit, "\0" after the last one. */
static int do_directory_part(const struct req *r)
{
	char gen[24], *data;
	struct xsd_node *n;
	uint32_t off, len, genlen, maxlen;
	const char *child;
	char *name;
	int err;

	if (count_strings(r) != 2)
		return EINVAL;
	n = get_node(r, r->p, false, &name, &err);
	free(name);
	if (!n)
		return err;
	off = (uint32_t)atoi(r->p + strlen(r->p) + 1);
	genlen = snprintf(gen, sizeof(gen), "%llu", (unsigned long long)n->gen) + 1;
	if (off >= n->childlen) {
		gen[genlen] = '\0';
		xsd_reply(r->c, r->h, XS_DIRECTORY_PART, gen, genlen + 1);
		return 0;
	}
	len = 0;
	maxlen = XENSTORE_PAYLOAD_MAX - genlen - 1;
	child = n->children + off;
	while (len + strlen(child) < maxlen) {
		len += strlen(child) + 1;
		child += strlen(child) + 1;
		if (off + len == n->childlen)
			break;
	}
	data = malloc(genlen + len + 1);
	if (!data)
		return ENOMEM;
	memcpy(data, gen, genlen);
	memcpy(data + genlen, n->children + off, len);
	if (off + len == n->childlen)
		data[genlen + len++] = '\0';
	xsd_reply(r->c, r->h, XS_DIRECTORY_PART, data, genlen + len);
	free(data);
	return 0;
}

/* Creates name and its missing ancestors, as xenstored's construct_node(). */
static struct xsd_node *create_node(const struct req *r, const char *name)
{
	struct xsd_node *parent = NULL, *n = NULL;
	char **names = NULL, **tmp;
	unsigned int levels = 0;
	char *pname = strdup(name);

	while (pname && !parent) {
		tmp = realloc(names, (levels + 1) * sizeof(*names));
		if (!tmp)
			break;
		names = tmp;
		names[levels++] = pname;
		pname = xsd_parent_path(pname);
		parent = xsd_get(r->t, pname);
	}
	free(pname);
	for (; parent && levels > 0; levels--) {
		n = xsd_create(r->t, names[levels - 1], parent);
		parent = n;
		free(names[levels - 1]);
	}
	while (levels > 0)
		free(names[--levels]);
	free(names);
	return n;
}

static int do_write(const struct req *r)
{
	struct xsd_node *n;
	size_t off;
	char *name;
	int err;

	/* Binary data after the path may hold NULs of its own. */
	if (count_strings(r) < 1)
		return EINVAL;
	off = strlen(r->p) + 1;
	n = get_node(r, r->p, false, &name, &err);
	if (!n && err == ENOENT)
		n = create_node(r, name);
	if (n) {
		xsd_node_set_value(n, r->p + off, r->len - off);
		xsd_changed(r->t, n);
		xsd_fire(r->t, name, false);
		xsd_reply_ok(r->c, r->h);
		err = 0;
	} else if (!err) {
		err = ENOMEM;
	}
	free(name);
	return err;
}

static int do_mkdir(const struct req *r)
{
	struct xsd_node *n;
	char *name;
	int err;

	n = get_node(r, onearg(r), false, &name, &err);
	/* An existing node is fine, and no change. */
	if (!n && err == ENOENT) {
		n = create_node(r, name);
		if (n)
			xsd_fire(r->t, name, false);
	}
	if (n) {
		xsd_reply_ok(r->c, r->h);
		err = 0;
	} else if (!err) {
		err = ENOMEM;
	}
	free(name);
	return err;
}

/* Post-order, as xenstored's walk: each node fires its exact watches, the root recursively. */
static void rm_subtree(const struct req *r, struct xsd_node *n, const char *root)
{
	uint32_t off;
	struct xsd_node *child;
	char *cpath;

	for (off = 0; off < n->childlen; off += strlen(n->children + off) + 1) {
		cpath = xsd_child_path(n->path, n->children + off);
		child = xsd_get(r->t, cpath);
		if (child)
			rm_subtree(r, child, root);
		free(cpath);
	}
	xsd_fire(r->t, n->path, strcmp(n->path, root) != 0);
	xsd_delete(r->t, n);
}

static int do_rm(const struct req *r)
{
	struct xsd_node *n, *parent;
	char *name, *pname;
	int err;

	n = get_node(r, onearg(r), false, &name, &err);
	if (!n && err != ENOENT) {
		free(name);
		return err;
	}
	if (!strcmp(name, "/")) {
		free(name);
		return EINVAL;
	}
	pname = xsd_parent_path(name);
	parent = xsd_get(r->t, pname);
	free(pname);
	/* A missing node is fine if its parent exists. */
	if (!n) {
		free(name);
		if (!parent)
			return ENOENT;
		xsd_reply_ok(r->c, r->h);
		return 0;
	}
	if (!parent) {
		free(name);
		return EINVAL;
	}
	rm_subtree(r, n, name);
	xsd_node_child_del(parent, xsd_basename(name));
	xsd_changed(r->t, parent);
	xsd_reply_ok(r->c, r->h);
	free(name);
	return 0;
}

static int do_get_perms(const struct req *r)
{
	return reply_node_field(r, XS_GET_PERMS);
}

/* "r5\0w0\0..." to its canonical form, as xenstore_strings_to_perms() reads it. */
static int parse_perms(const char *s, unsigned int num, char *out, size_t *outlen)
{
	unsigned int i;
	unsigned long id;
	char *end;
	size_t n = 0;

	for (i = 0; i < num; i++) {
		if (!strchr("rwbn", *s) || !*s)
			return EINVAL;
		id = strtol(s + 1, &end, 0);
		if (*end || !s[1])
			return EINVAL;
		n += sprintf(out + n, "%c%u", *s, (unsigned int)id) + 1;
		s = end + 1;
	}
	*outlen = n;
	return 0;
}

static int do_set_perms(const struct req *r)
{
	unsigned int num = count_strings(r);
	struct xsd_node *n;
	char *perms, *name;
	size_t plen;
	int err;

	if (num < 2)
		return EINVAL;
	num--;
	/* A canonical perm is a letter, at most 10 digits and a NUL. */
	perms = malloc(num * 12);
	if (!perms)
		return ENOMEM;
	err = parse_perms(r->p + strlen(r->p) + 1, num, perms, &plen);
	if (err) {
		free(perms);
		return err;
	}
	n = get_node(r, r->p, true, &name, &err);
	if (n) {
		xsd_node_set_perms(n, perms, plen);
		xsd_changed(r->t, n);
		xsd_fire(r->t, name, false);
		xsd_reply_ok(r->c, r->h);
	}
	free(perms);
	free(name);
	return err;
}

static int do_watch(const struct req *r)
{
	const char *path = r->p, *token;
	char *name;
	int err;
	bool relative;

	if (count_strings(r) != 2)
		return EINVAL;
	token = path + strlen(path) + 1;
	relative = path[0] != '/' && path[0] != '@';
	err = xsd_canonicalize(path, true, &name);
	if (!err)
		err = xsd_watch_add(r->c, name, token, relative);
	if (!err) {
		xsd_reply_ok(r->c, r->h);
		xsd_send_event(r->c, relative ? path : name, token);
	}
	free(name);
	return err;
}

static int do_unwatch(const struct req *r)
{
	char *name;
	int err;

	if (count_strings(r) != 2)
		return EINVAL;
	err = xsd_canonicalize(r->p, true, &name);
	if (!err)
		err = xsd_watch_del(r->c, name, r->p + strlen(r->p) + 1);
	if (!err)
		xsd_reply_ok(r->c, r->h);
	free(name);
	return err;
}

static int do_transaction_start(const struct req *r)
{
	char id[16];
	uint32_t tid;

	/* No nesting. */
	if (r->t)
		return EBUSY;
	tid = xsd_txn_start(r->c);
	if (!tid)
		return ENOMEM;
	snprintf(id, sizeof(id), "%u", tid);
	xsd_reply(r->c, r->h, XS_TRANSACTION_START, id, strlen(id) + 1);
	return 0;
}

static int do_transaction_end(const struct req *r)
{
	const char *arg = onearg(r);
	int err;

	if (!arg || (strcmp(arg, "T") && strcmp(arg, "F")))
		return EINVAL;
	if (!r->t)
		return ENOENT;
	err = xsd_txn_end(r->c, r->t, !strcmp(arg, "T"));
	if (!err)
		xsd_reply_ok(r->c, r->h);
	return err;
}

static int do_get_domain_path(const struct req *r)
{
	const char *arg = onearg(r);
	char path[32];

	if (!arg)
		return EINVAL;
	snprintf(path, sizeof(path), "/local/domain/%u", (unsigned int)atoi(arg));
	xsd_reply(r->c, r->h, XS_GET_DOMAIN_PATH, path, strlen(path) + 1);
	return 0;
}

/* Only dom0 exists here (and DOMID_SELF means the caller). */
static int do_is_domain_introduced(const struct req *r)
{
	const char *arg = onearg(r);
	unsigned int domid;

	if (!arg)
		return EINVAL;
	domid = (unsigned int)atoi(arg);
	xsd_reply(r->c, r->h, XS_IS_DOMAIN_INTRODUCED,
		  domid == 0 || domid == XSD_DOMID_SELF ? "T" : "F", 2);
	return 0;
}

static int do_reset_watches(const struct req *r)
{
	xsd_watch_free_all(r->c);
	xsd_txn_free_all(r->c);
	xsd_reply_ok(r->c, r->h);
	return 0;
}

/* The commands of xenstored's control.c that mean something without a hypervisor. */
static int do_control(const struct req *r)
{
	static const char help[] = "check           \n"
				   "print           <string>\n"
				   "help            \n";
	unsigned int num = count_strings(r);
	const char *arg;

	if (!num)
		return EINVAL;
	arg = r->p + strlen(r->p) + 1;
	if (!strcmp(r->p, "check") && num == 1) {
		xsd_reply_ok(r->c, r->h);
	} else if (!strcmp(r->p, "print") && num == 2) {
		xsd_log("control: %s", arg);
		xsd_reply_ok(r->c, r->h);
	} else if (!strcmp(r->p, "help") && num == 1) {
		xsd_reply(r->c, r->h, XS_CONTROL, help, sizeof(help));
	} else {
		return EINVAL;
	}
	return 0;
}

static const struct {
	int (*fn)(const struct req *r);
	bool no_tid; /* the transaction id is ignored */
} ops[XS_TYPE_COUNT] = {
	[XS_CONTROL] = { do_control, false },
	[XS_DIRECTORY] = { do_directory, false },
	[XS_READ] = { do_read, false },
	[XS_GET_PERMS] = { do_get_perms, false },
	[XS_WATCH] = { do_watch, true },
	[XS_UNWATCH] = { do_unwatch, true },
	[XS_TRANSACTION_START] = { do_transaction_start, false },
	[XS_TRANSACTION_END] = { do_transaction_end, false },
	[XS_GET_DOMAIN_PATH] = { do_get_domain_path, false },
	[XS_WRITE] = { do_write, false },
	[XS_MKDIR] = { do_mkdir, false },
	[XS_RM] = { do_rm, false },
	[XS_SET_PERMS] = { do_set_perms, false },
	[XS_IS_DOMAIN_INTRODUCED] = { do_is_domain_introduced, false },
	[XS_RESET_WATCHES] = { do_reset_watches, false },
	[XS_DIRECTORY_PART] = { do_directory_part, false },
};

void xsd_ops_handle(struct xsd_conn *c, const struct xsd_sockmsg *h, const char *payload)
{
	struct req r = { .c = c, .h = h, .p = payload, .len = h->len };
	int err;

	if (h->type >= XS_TYPE_COUNT || !ops[h->type].fn) {
		xsd_reply_error(c, h, ENOSYS);
		return;
	}
	if (!ops[h->type].no_tid && h->tx_id) {
		r.t = xsd_txn_find(c, h->tx_id);
		if (!r.t) {
			xsd_reply_error(c, h, ENOENT);
			return;
		}
	}
	err = ops[h->type].fn(&r);
	if (err)
		xsd_reply_error(c, h, err);
}

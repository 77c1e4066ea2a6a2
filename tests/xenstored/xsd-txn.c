/*
 * Transactions, as xenstored does them: every node a transaction touches is copied at first
 * access with the generation it had then.  Commit fails with EAGAIN when any of them changed
 * (or appeared, or went) in the global tree meanwhile; otherwise the modified copies replace
 * the global nodes and the queued watch events fire, in order of first access.
 */
#include <stdlib.h>
#include <string.h>

#include "xsd.h"

struct xsd_txn *xsd_txn_find(struct xsd_conn *c, uint32_t id)
{
	struct xsd_txn *t;

	for (t = c->txns; t; t = t->next)
		if (t->id == id)
			return t;
	return NULL;
}

uint32_t xsd_txn_start(struct xsd_conn *c)
{
	struct xsd_txn *t = calloc(1, sizeof(*t));

	if (!t)
		return 0;
	/* Ids are per connection, never 0, never one in use. */
	do {
		t->id = c->next_txn_id++;
	} while (!t->id || xsd_txn_find(c, t->id));
	t->next = c->txns;
	c->txns = t;
	return t->id;
}

static bool txn_conflicts(const struct xsd_txn *t)
{
	const struct xsd_node *e, *g;
	uint64_t gen;

	for (e = t->order_head; e; e = e->order_next) {
		g = xsd_map_find(&xsd_tree, e->path);
		gen = g ? g->gen : XSD_NO_GEN;
		if (gen != e->orig_gen)
			return true;
	}
	return false;
}

static void txn_apply(struct xsd_txn *t)
{
	struct xsd_node *e, *g;

	for (e = t->order_head; e; e = e->order_next) {
		if (!e->modified)
			continue;
		xsd_state_touch(e->path);
		g = xsd_map_find(&xsd_tree, e->path);
		if (e->deleted) {
			if (g) {
				xsd_map_remove(&xsd_tree, g);
				xsd_node_free(g);
			}
			continue;
		}
		if (!g) {
			g = xsd_node_new(e->path);
			xsd_map_insert(&xsd_tree, g);
		}
		xsd_node_copy_contents(g, e);
		g->gen = ++xsd_generation;
	}
	for (e = t->order_head; e; e = e->order_next)
		if (e->fire)
			xsd_watch_fire(e->path, e->fire_exact);
}

static void txn_free(struct xsd_txn *t)
{
	xsd_map_clear(&t->nodes);
	free(t);
}

/* Ends t (removing it from c) and returns 0 or EAGAIN. */
int xsd_txn_end(struct xsd_conn *c, struct xsd_txn *t, bool commit)
{
	struct xsd_txn **pp;
	int err = 0;

	for (pp = &c->txns; *pp != t; pp = &(*pp)->next)
		;
	*pp = t->next;
	if (commit) {
		if (txn_conflicts(t))
			err = EAGAIN;
		else
			txn_apply(t);
	}
	txn_free(t);
	return err;
}

void xsd_txn_free_all(struct xsd_conn *c)
{
	struct xsd_txn *t;

	while ((t = c->txns)) {
		c->txns = t->next;
		txn_free(t);
	}
}

/*
 * Watches, with xenstored's matching: a change of P fires the watches on P and above it
 * (recursive); a removal fires, for each removed node below the removed root, the watches
 * on exactly that node (exact).  Relative watches get event paths relative to the home.
 */
#include <stdlib.h>
#include <string.h>

#include "xsd.h"

int xsd_watch_add(struct xsd_conn *c, const char *path, const char *token, bool relative)
{
	struct xsd_watch *w, **pp;

	for (pp = &c->watches; *pp; pp = &(*pp)->next)
		if (!strcmp((*pp)->path, path) && !strcmp((*pp)->token, token))
			return EEXIST;
	w = calloc(1, sizeof(*w));
	if (!w)
		return ENOMEM;
	w->path = strdup(path);
	w->token = strdup(token);
	if (!w->path || !w->token) {
		free(w->path);
		free(w->token);
		free(w);
		return ENOMEM;
	}
	w->prefix_len = relative ? strlen(XSD_DOM0_PATH) + 1 : 0;
	*pp = w;

	/* xenstored acks first, then fires once up front. */
	return 0;
}

static void watch_free(struct xsd_watch *w)
{
	free(w->path);
	free(w->token);
	free(w);
}

int xsd_watch_del(struct xsd_conn *c, const char *path, const char *token)
{
	struct xsd_watch **pp, *w;

	for (pp = &c->watches; *pp; pp = &(*pp)->next) {
		w = *pp;
		if (!strcmp(w->path, path) && !strcmp(w->token, token)) {
			*pp = w->next;
			watch_free(w);
			return 0;
		}
	}
	return ENOENT;
}

void xsd_watch_fire(const char *path, bool exact)
{
	struct xsd_conn *c;
	struct xsd_watch *w;
	bool match;

	for (c = xsd_conns; c; c = c->next) {
		if (c->closing)
			continue;
		for (w = c->watches; w; w = w->next) {
			match = exact ? !strcmp(path, w->path) : xsd_is_child(path, w->path);
			/* A relative watch on "x" never sees paths outside the home. */
			if (match && strlen(path) >= w->prefix_len)
				xsd_send_event(c, path + w->prefix_len, w->token);
		}
	}
}

void xsd_watch_free_all(struct xsd_conn *c)
{
	struct xsd_watch *w;

	while ((w = c->watches)) {
		c->watches = w->next;
		watch_free(w);
	}
}

/* A JSON writer into a fixed buffer; overflow is remembered, never written past. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "tapdisk-stats.h"

void tapdisk_stats_init(struct tapdisk_stats_ctx *st, char *buf, size_t size)
{
	memset(st, 0, sizeof(*st));
	st->buf = buf;
	st->size = size;
	if (size)
		buf[0] = '\0';
}

static void stats_vprintf(struct tapdisk_stats_ctx *st, const char *fmt, va_list ap)
{
	size_t room = st->pos < st->size ? st->size - st->pos : 0;
	int n = vsnprintf(room ? st->buf + st->pos : NULL, room, fmt, ap);

	if (n < 0 || (size_t)n >= room) {
		st->overflow = 1;
		st->pos = st->size;
		if (st->size)
			st->buf[st->size - 1] = '\0';
		return;
	}
	st->pos += n;
}

static void stats_printf(struct tapdisk_stats_ctx *st, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	stats_vprintf(st, fmt, ap);
	va_end(ap);
}

static void stats_separator(struct tapdisk_stats_ctx *st)
{
	if (st->n_elem[st->depth]++)
		stats_printf(st, ", ");
}

/* Strings are written quoted, with the characters JSON forbids escaped. */
static void stats_string(struct tapdisk_stats_ctx *st, const char *s)
{
	stats_printf(st, "\"");
	for (; s && *s; s++) {
		unsigned char c = *s;

		if (c == '"' || c == '\\')
			stats_printf(st, "\\%c", c);
		else if (c < 0x20)
			stats_printf(st, "\\u%04x", c);
		else
			stats_printf(st, "%c", c);
	}
	stats_printf(st, "\"");
}

static void stats_open(struct tapdisk_stats_ctx *st, char t)
{
	stats_printf(st, "%c ", t);
	if (st->depth < TD_STATS_MAX_DEPTH - 1)
		st->depth++;
	st->n_elem[st->depth] = 0;
}

/* A value of its own in a list: separated from the one before it. */
void tapdisk_stats_enter(struct tapdisk_stats_ctx *st, char t)
{
	stats_separator(st);
	stats_open(st, t);
}

void tapdisk_stats_leave(struct tapdisk_stats_ctx *st, char t)
{
	if (st->depth > 0)
		st->depth--;
	stats_printf(st, " %c", t == '{' || t == '}' ? '}' : ']');
}

static void stats_vval(struct tapdisk_stats_ctx *st, const char *conv, va_list ap)
{
	char fmt[16];

	if (!strcmp(conv, "{") || !strcmp(conv, "[")) {
		stats_open(st, conv[0]);
		return;
	}
	if (!strcmp(conv, "s")) {
		stats_string(st, va_arg(ap, const char *));
		return;
	}
	snprintf(fmt, sizeof(fmt), "%%%s", conv);
	stats_vprintf(st, fmt, ap);
}

void tapdisk_stats_val(struct tapdisk_stats_ctx *st, const char *conv, ...)
{
	va_list ap;

	stats_separator(st);
	va_start(ap, conv);
	stats_vval(st, conv, ap);
	va_end(ap);
}

void tapdisk_stats_field(struct tapdisk_stats_ctx *st, const char *key, const char *conv, ...)
{
	va_list ap;

	stats_separator(st);
	stats_string(st, key);
	stats_printf(st, ": ");
	va_start(ap, conv);
	stats_vval(st, conv, ap);
	va_end(ap);
}

int tapdisk_stats_length(const struct tapdisk_stats_ctx *st)
{
	return st->overflow ? -ENOBUFS : (int)st->pos;
}

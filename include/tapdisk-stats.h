/* A small JSON writer for tap-ctl stats (blktap3 drivers/tapdisk-stats.h). */
#ifndef _TAPDISK_STATS_H_
#define _TAPDISK_STATS_H_

#include <stddef.h>

#define TD_STATS_MAX_DEPTH 8

struct tapdisk_stats_ctx {
	char *buf;
	size_t size; /* capacity */
	size_t pos;
	int n_elem[TD_STATS_MAX_DEPTH];
	int depth;
	int overflow;
};

void tapdisk_stats_init(struct tapdisk_stats_ctx *st, char *buf, size_t size);
/* Opens a nested value: '{' or '['. */
void tapdisk_stats_enter(struct tapdisk_stats_ctx *st, char t);
void tapdisk_stats_leave(struct tapdisk_stats_ctx *st, char t);
/*
 * Writes "key": value.  @conv is a printf conversion without '%' ("d", "llu", "s" for a
 * quoted string), or "{" / "[" to open a nested value, which tapdisk_stats_leave closes.
 */
void tapdisk_stats_field(struct tapdisk_stats_ctx *st, const char *key, const char *conv, ...);
void tapdisk_stats_val(struct tapdisk_stats_ctx *st, const char *conv, ...);
/* Length written, or -ENOBUFS when the buffer was too small. */
int tapdisk_stats_length(const struct tapdisk_stats_ctx *st);

#endif

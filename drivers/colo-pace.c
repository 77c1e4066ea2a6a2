/*
 * The Primary's backlog bound for a checkpoint pause target (pause_target=MS; docs/colo.md,
 * "Pacing the checkpoint pause").
 *
 * A checkpoint's prepare waits until the Secondary acknowledged every write forwarded before
 * it: the backlog over the Secondary's apply rate.  queue_limit bounds the backlog in bytes,
 * so a Secondary slower than the guest makes every pause queue_limit / rate long (64M at
 * 50 MiB/s: 1.3 s).  With a target, the bound is rate x target instead, between 1M and
 * queue_limit.  The rate is measured from the acknowledgements while forwarded writes wait on
 * the Secondary (or guest writes wait for the bound): what it acknowledges while it always
 * has work is what it can do.  While it keeps up, nothing waits on it, no window closes, and
 * the bound stays where it was.
 *
 * Until a first window closes the bound is the floor, 1M: a guest faster than the Secondary
 * never builds a long backlog, and the first windows, full of waiting writes, measure at
 * once.  The bound counts the writes in flight on the local disk too (as queue_limit does),
 * so a target shorter than a write's round trip to the Secondary keeps the bound at the floor.
 */
#include "colo-internal.h"

/* Shorter windows measure the Secondary's bursts of acknowledgements, not its rate. */
#define COLO_PACE_WINDOW_MS 100
#define COLO_PACE_MIN (1ULL << 20)

void colo_pace_reset(struct colo *c)
{
	memset(&c->p.pace, 0, sizeof(c->p.pace));
}

void colo_pace_acked(struct colo *c, uint64_t bytes)
{
	struct colo_pace *pc = &c->p.pace;
	/* Writes forwarded and not acknowledged, or guest writes the bound holds back. */
	bool waiting = !list_empty(&c->p.unacked) || !list_empty(&c->p.waiting);
	long long now, span;
	uint64_t rate;

	if (!c->opts.pause_target_ms)
		return;
	now = colo_now_ms();
	if (!pc->busy_since) {
		/* A window opens when acknowledgements leave writes still waiting. */
		if (waiting) {
			pc->busy_since = now;
			pc->busy_bytes = 0;
		}
		return;
	}
	if (!waiting) {
		/* The Secondary caught up: this window measured the guest, not the Secondary. */
		pc->busy_since = 0;
		return;
	}
	pc->busy_bytes += bytes;
	span = now - pc->busy_since;
	if (span < COLO_PACE_WINDOW_MS)
		return;
	rate = pc->busy_bytes * 1000 / (uint64_t)span;
	pc->rate = pc->rate ? (pc->rate + rate) / 2 : rate;
	pc->busy_since = now;
	pc->busy_bytes = 0;
}

uint64_t colo_pace_limit(const struct colo *c)
{
	uint64_t limit, max = c->opts.queue_limit;

	/*
	 * No checkpoint is taken while a start's copy runs, so no pause to bound; and the copy,
	 * bounded by queue_limit, would keep a smaller bound full and hold the guest back.
	 */
	if (!c->opts.pause_target_ms || c->p.sync)
		return max;
	/* Not measured yet (a new connection): the floor, which the first windows raise. */
	limit = c->p.pace.rate / 1000 * c->opts.pause_target_ms;
	if (limit < COLO_PACE_MIN)
		limit = COLO_PACE_MIN;
	return limit < max ? limit : max;
}

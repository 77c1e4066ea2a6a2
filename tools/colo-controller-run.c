/*
 * colo-controller run: a checkpoint every --interval ms, and at once when a Primary disk
 * writes a checkpoint-wanted of its current epoch; until a signal, --count or --duration.
 * SIGINT and SIGTERM end the run after the checkpoint under way, SIGUSR1 fails over.
 */
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "colo-controller.h"

#define LIVENESS_MS 100

/*
 * Latencies go into a histogram, so that a run of days needs no more memory than one of
 * seconds: 10 us buckets up to 100 ms, 1 ms buckets up to 10 s, then one more.
 */
#define HIST_FINE 10000
#define HIST_COARSE 9900
#define HIST_N (HIST_FINE + HIST_COARSE + 1)

struct run_stats {
	uint64_t done, failures;
	double sum_s;
	uint32_t hist[HIST_N];
};

/* How often at most a run rewrites its --metrics-file. */
#define METRICS_EVERY_NS 1000000000LL

static void stats_add(struct run_stats *st, int64_t ns)
{
	int64_t b;

	if (ns < 100000000)
		b = ns / 10000;
	else if (ns < 10000000000LL)
		b = HIST_FINE + (ns - 100000000) / 1000000;
	else
		b = HIST_N - 1;
	if (b < 0)
		b = 0;
	st->hist[b]++;
	st->done++;
	st->sum_s += (double)ns / 1e9;
}

/* The upper edge of bucket B, in ns (the last one has none). */
static int64_t bucket_upper_ns(unsigned int b)
{
	if (b < HIST_FINE)
		return (int64_t)(b + 1) * 10000;
	return 100000000 + (int64_t)(b - HIST_FINE + 1) * 1000000;
}

/* The run so far, as --metrics-file has it; the le bounds are bucket edges, so counts are exact. */
static void run_metrics(struct ctl *c, const struct run_stats *st, int64_t *last, bool now)
{
	struct ctl_run_metrics m = {
		.count = st->done, .failures = st->failures, .sum_s = st->sum_s};
	uint64_t seen = 0;
	unsigned int b, i = 0;
	int64_t t = ctl_now_ns();

	if (!c->metrics_file || (!now && *last && t - *last < METRICS_EVERY_NS))
		return;
	*last = t;
	for (b = 0; b < HIST_N - 1 && i < CTL_METRIC_BUCKETS; b++) {
		seen += st->hist[b];
		while (i < CTL_METRIC_BUCKETS &&
		       bucket_upper_ns(b) >= (int64_t)(ctl_metric_le[i] * 1e9 + 0.5))
			m.le[i++] = seen;
	}
	while (i < CTL_METRIC_BUCKETS)
		m.le[i++] = seen;
	ctl_metrics_write(c, c->metrics_file, &m);
}

/* The middle of bucket B, in ms. */
static double bucket_ms(unsigned int b)
{
	if (b < HIST_FINE)
		return (b + 0.5) * 0.01;
	if (b < HIST_N - 1)
		return 100.0 + (b - HIST_FINE) + 0.5;
	return 10000.0;
}

/* The latency that Q of the checkpoints did not exceed (nearest rank). */
static double stats_quantile(const struct run_stats *st, double q)
{
	uint64_t rank, seen = 0;
	unsigned int b;

	if (!st->done)
		return 0.0;
	rank = (uint64_t)(q * (double)st->done);
	if ((double)rank < q * (double)st->done)
		rank++;
	if (rank < 1)
		rank = 1;
	for (b = 0; b < HIST_N; b++) {
		seen += st->hist[b];
		if (seen >= rank)
			return bucket_ms(b);
	}
	return bucket_ms(HIST_N - 1);
}

/*
 * Waits until UNTIL, a checkpoint-wanted of the current epoch, or a signal.  Events of the
 * Secondary are drained too, so that its queue stays short and a dead connection is seen.
 */
static int run_idle(struct ctl *c, int64_t until)
{
	struct pollfd fds[3];
	int64_t now, ms;
	int r;

	for (;;) {
		if (c->stop_asked || c->failover_asked)
			return CTL_OK;
		if (!c->p.xsh && side_reconnect(c, &c->p))
			return c->failover_asked ? CTL_OK : CTL_EFAIL;
		if (c->p.wanted_stale) {
			r = side_checkpoint_wanted(c, &c->p);
			if (r > 0)
				return CTL_OK;
			if (r < 0 && c->p.xsh)
				return CTL_EFAIL;
			if (r < 0)
				continue;
		}
		now = ctl_now_ns();
		if (now >= until)
			return CTL_OK;
		ms = (until - now + 999999) / 1000000;
		fds[0].fd = xs_fileno(c->p.xsh);
		fds[0].events = POLLIN;
		fds[1].fd = c->s.xsh ? xs_fileno(c->s.xsh) : -1;
		fds[1].events = POLLIN;
		fds[2].fd = c->sigfd;
		fds[2].events = POLLIN;
		if (poll(fds, 3, ms < LIVENESS_MS ? (int)ms : LIVENESS_MS) > 0 &&
		    (fds[2].revents & POLLIN))
			ctl_handle_signals(c);
		if (side_drain_events(c, &c->p))
			side_close(&c->p);
		/* the Secondary reconnects when its next request needs it */
		if (c->s.xsh && side_drain_events(c, &c->s))
			side_close(&c->s);
	}
}

int ctl_run(struct ctl *c)
{
	static struct run_stats st;
	int64_t t0, now, next, end = 0, start, metrics_at = 0;
	uint64_t id = 0, epoch = 0;
	bool consistent = true;
	double secs;
	int rc;

	if (c->threshold && side_write(c, &c->p, "checkpoint-threshold", c->threshold))
		return CTL_EFAIL;
	t0 = ctl_now_ns();
	rc = ctl_resume(c, &consistent);
	if (rc) {
		st.failures++;
		goto failed;
	}
	next = t0;
	if (c->duration_ms)
		end = t0 + c->duration_ms * 1000000;
	for (;;) {
		if (c->count && st.done >= c->count)
			break;
		rc = run_idle(c, end && end < next ? end : next);
		if (rc) {
			st.failures++;
			goto failed;
		}
		if (c->failover_asked)
			goto failover;
		now = ctl_now_ns();
		if (c->stop_asked || (end && now >= end))
			break;
		start = now;
		next = start + (int64_t)c->interval_ms * 1000000;
		rc = ctl_checkpoint(c, &id, &epoch, &consistent);
		if (!rc) {
			stats_add(&st, ctl_now_ns() - start);
			if (c->verbose)
				printf("checkpoint %" PRIu64 " epoch=%" PRIu64 "\n", id, epoch);
			run_metrics(c, &st, &metrics_at, false);
			continue;
		}
		/* a checkpoint that SIGUSR1 cut short is no failure */
		if (c->failover_asked && consistent)
			goto failover;
		st.failures++;
		goto failed;
	}
	rc = CTL_OK;
	goto out;

failed:
	rc = CTL_EFAIL;
	if (!c->failover_on_error)
		goto out;
	if (!consistent) {
		ctl_err("not failing over: the secondary's disks may be at different checkpoints: "
			"stop and resync");
		goto out;
	}
	if (!ctl_failover(c))
		rc = CTL_EFAILOVER;
	goto out;

failover:
	rc = ctl_failover(c) ? CTL_EFAIL : CTL_OK;

out:
	run_metrics(c, &st, &metrics_at, true);
	secs = (double)(ctl_now_ns() - t0) / 1e9;
	printf("run: %" PRIu64 " checkpoints, %" PRIu64
	       " failures, %.1f checkpoints/s, median %.2f ms, p99 %.2f ms\n",
	       st.done, st.failures, secs > 0 ? (double)st.done / secs : 0.0,
	       stats_quantile(&st, 0.5), stats_quantile(&st, 0.99));
	return rc;
}

/*
 * colo-controller metrics: the Prometheus text format (exposition format 0.0.4), for
 * node_exporter's textfile collector.  Per disk, what it writes into xenstore
 * (docs/xenstore.md); for a run, its checkpoints as counters and a latency histogram.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "colo-controller.h"

/* The le bounds, in seconds: each one a bucket edge of the run's histogram. */
const double ctl_metric_le[CTL_METRIC_BUCKETS] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

/* The values docs/xenstore.md gives the role and state nodes: one series each. */
static const char *const roles[] = {"none", "primary", "secondary", NULL};
static const char *const states[] = {"idle",	     "connecting",  "running", "broken",
				     "failing-over", "failed-over", "stopped", NULL};

/* A label value as the format wants it: backslash, double quote and newline escaped. */
static void put_label(FILE *f, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			fprintf(f, "\\%c", *v);
		else if (*v == '\n')
			fputs("\\n", f);
		else
			fputc(*v, f);
	}
}

static void put_disk_labels(FILE *f, const struct ctl_side *sd, const struct ctl_disk *d)
{
	fprintf(f, "{side=\"%s\",domid=\"%u\",disk=\"", sd->name, sd->domid);
	put_label(f, d->name);
	fputc('"', f);
}

/* A decimal node as a sample; an absent or garbled one has none. */
static void put_number(FILE *f, const struct ctl_side *sd, const struct ctl_disk *d,
		       const char *metric, const char *v)
{
	char *end;

	if (!v || *v < '0' || *v > '9')
		return;
	errno = 0;
	strtoull(v, &end, 10);
	if (*end || errno)
		return;
	fprintf(f, "%s", metric);
	put_disk_labels(f, sd, d);
	fprintf(f, "} %s\n", v);
}

static void put_set(FILE *f, const struct ctl_side *sd, const struct ctl_disk *d,
		    const char *metric, const char *label, const char *const *values, const char *v)
{
	unsigned int i;

	for (i = 0; values[i]; i++) {
		fprintf(f, "%s", metric);
		put_disk_labels(f, sd, d);
		fprintf(f, ",%s=\"%s\"} %d\n", label, values[i], v && !strcmp(v, values[i]));
	}
}

struct metric {
	const char *name, *type, *help;
	const char *node; /* NULL: made from other nodes */
};

static const struct metric disk_metrics[] = {
	{"blktap_colo_role", "gauge", "The disk's role: 1 for the one it has.", "role"},
	{"blktap_colo_state", "gauge", "The disk's replication state: 1 for the one it is in.",
	 "state"},
	{"blktap_colo_link_up", "gauge", "1 while the replication link is up.", "link"},
	{"blktap_colo_epoch", "gauge", "The epoch being written now.", "epoch"},
	{"blktap_colo_sent_bytes", "gauge",
	 "Primary: write bytes forwarded since the last checkpoint.", "sent-bytes"},
	{"blktap_colo_buffer_bytes", "gauge", "Secondary: bytes of block data in the disk buffer.",
	 "buffer-bytes"},
	{"blktap_colo_dirty_blocks", "gauge",
	 "Primary: blocks written in this epoch and the one before.", "dirty-blocks"},
};
#define N_DISK_METRICS (sizeof(disk_metrics) / sizeof(disk_metrics[0]))

/*
 * Every disk of each side named, metric by metric (a metric's samples must be together).
 * CONNECT: open a side's connection if it has none (a run reconnects by itself).
 */
static int put_disks(struct ctl *c, FILE *f, bool connect)
{
	struct ctl_side *sides[2] = {&c->p, &c->s}, *sd;
	const struct metric *m;
	unsigned int i, s, k;
	int rc = CTL_OK;
	bool up[2];
	char *v;

	fputs("# HELP blktap_colo_xenstore_up 1 if the side's xenstore answered.\n"
	      "# TYPE blktap_colo_xenstore_up gauge\n",
	      f);
	for (s = 0; s < 2; s++) {
		sd = sides[s];
		up[s] = false;
		if (!sd->set)
			continue;
		if (!sd->xsh && connect)
			side_connect(c, sd);
		up[s] = sd->xsh && !side_refresh_disks(c, sd);
		if (!up[s])
			rc = CTL_EFAIL;
		fprintf(f, "blktap_colo_xenstore_up{side=\"%s\",domid=\"%u\"} %d\n", sd->name,
			sd->domid, up[s]);
	}
	for (k = 0; k < N_DISK_METRICS; k++) {
		m = &disk_metrics[k];
		fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name, m->type);
		for (s = 0; s < 2; s++) {
			sd = sides[s];
			for (i = 0; up[s] && i < sd->n_disks; i++) {
				if (side_disk_node(c, sd, &sd->disks[i], m->node, &v)) {
					up[s] = false;
					rc = CTL_EFAIL;
					break;
				}
				if (!strcmp(m->node, "role"))
					put_set(f, sd, &sd->disks[i], m->name, "role", roles, v);
				else if (!strcmp(m->node, "state"))
					put_set(f, sd, &sd->disks[i], m->name, "state", states, v);
				else if (!strcmp(m->node, "link"))
					put_number(f, sd, &sd->disks[i], m->name,
						   v ? (strcmp(v, "up") ? "0" : "1") : NULL);
				else
					put_number(f, sd, &sd->disks[i], m->name, v);
				free(v);
			}
		}
	}
	return rc;
}

static void put_run(const struct ctl *c, FILE *f, const struct ctl_run_metrics *r)
{
	char labels[64];
	unsigned int i;

	snprintf(labels, sizeof(labels), "primary=\"%u\",secondary=\"%u\"", c->p.domid, c->s.domid);
	fprintf(f,
		"# HELP blktap_colo_checkpoints_total Checkpoints this run took.\n"
		"# TYPE blktap_colo_checkpoints_total counter\n"
		"blktap_colo_checkpoints_total{%s} %" PRIu64 "\n"
		"# HELP blktap_colo_checkpoint_failures_total Checkpoints of this run that "
		"failed.\n"
		"# TYPE blktap_colo_checkpoint_failures_total counter\n"
		"blktap_colo_checkpoint_failures_total{%s} %" PRIu64 "\n"
		"# HELP blktap_colo_checkpoint_duration_seconds From the Primary's request to the "
		"last Secondary result.\n"
		"# TYPE blktap_colo_checkpoint_duration_seconds histogram\n",
		labels, r->count, labels, r->failures);
	for (i = 0; i < CTL_METRIC_BUCKETS; i++)
		fprintf(f,
			"blktap_colo_checkpoint_duration_seconds_bucket{%s,le=\"%g\"} %" PRIu64
			"\n",
			labels, ctl_metric_le[i], r->le[i]);
	fprintf(f,
		"blktap_colo_checkpoint_duration_seconds_bucket{%s,le=\"+Inf\"} %" PRIu64 "\n"
		"blktap_colo_checkpoint_duration_seconds_sum{%s} %.9f\n"
		"blktap_colo_checkpoint_duration_seconds_count{%s} %" PRIu64 "\n",
		labels, r->count, labels, r->sum_s, labels, r->count);
}

/* The disks of each side named, and RUN's checkpoints when given. */
int ctl_metrics_print(struct ctl *c, FILE *f, const struct ctl_run_metrics *run)
{
	int rc = put_disks(c, f, !run);

	if (run)
		put_run(c, f, run);
	return rc;
}

/*
 * Writes the metrics to PATH through PATH.tmp and a rename, so that the textfile collector
 * never reads half a file.  A failure is reported once, not at every checkpoint.
 */
void ctl_metrics_write(struct ctl *c, const char *path, const struct ctl_run_metrics *run)
{
	static bool reported;
	char tmp[4096];
	FILE *f;
	int err = 0;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f) {
		err = errno;
	} else {
		ctl_metrics_print(c, f, run);
		if (ferror(f))
			err = EIO;
		if (fclose(f) && !err)
			err = errno;
		if (!err && rename(tmp, path))
			err = errno;
	}
	if (err && !reported)
		ctl_err("metrics: cannot write %s: %s", path, strerror(err));
	reported = err != 0;
}

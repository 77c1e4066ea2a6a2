/*
 * colo-controller: the reference checkpoint controller.  Private header; the contract it
 * implements is docs/xenstore.md, its manual docs/colo-controller.md.
 *
 *   colo-controller.c       options, the one-shot commands (start, checkpoint, failover,
 *                           stop, status)
 *   colo-controller-xs.c    one side's xenstore: connection and reconnection, taking an id
 *                           and writing a request, waiting for every disk's result
 *   colo-controller-run.c   the checkpoint loop: interval, checkpoint-wanted, signals,
 *                           statistics
 *   colo-controller-metrics.c  the Prometheus text format: each disk's state, a run's
 *                           checkpoints
 *   colo-controller-alive.c whether a disk's tapdisk still runs, for status
 */
#ifndef COLO_CONTROLLER_H
#define COLO_CONTROLLER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <xenstore.h>
#include <xenstore_lib.h>

/* Exit statuses. */
#define CTL_OK 0
#define CTL_ESETUP 1	/* usage or setup error: nothing was asked of the disks */
#define CTL_EFAIL 2	/* a request failed, was lost or superseded */
#define CTL_EFAILOVER 3 /* failed over after an error */

#define CTL_ID_MAX INT64_MAX

void ctl_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void ctl_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int64_t ctl_now_ns(void);

/* ---- colo-controller-xs.c ---- */

/* A result node, "<id> <errno> <text>". */
struct ctl_result {
	bool present; /* the node exists */
	bool valid;   /* and parses */
	uint64_t id;
	int err;
	char *raw;	  /* the node's value (NULL when absent) */
	const char *text; /* within raw */
};

struct ctl_disk {
	char *name; /* <devid> */
	struct ctl_result res;
	uint64_t epoch; /* highest epoch seen: its epoch node or an "epoch=<n>" result */
	char sync_progress[96]; /* its sync-progress when last looked at (protect) */
};

/* One guest domain's COLO directory on one host: the Primary or the Secondary. */
struct ctl_side {
	const char *name; /* "primary" or "secondary" */
	bool set;	  /* --primary / --secondary given */
	unsigned int domid;
	const char *xs_path; /* xenstored socket; NULL: XENSTORED_PATH or the default */
	struct xs_handle *xsh;
	char dir[64];	     /* D */
	char disks_path[80]; /* D/disks */
	struct ctl_disk *disks;
	unsigned int n_disks;
	bool list_stale;    /* D/disks may have gained or lost a disk */
	bool results_stale; /* a result may have changed */
	bool wanted_stale;  /* a checkpoint-wanted may have changed */
	uint64_t max_id;    /* the highest id known in D */
	bool max_known;
	/* D/request as side_read_max found it: its id (0: none) and first word */
	uint64_t req_id;
	char req_verb[16];
};

/* How the disks of a side answered one request. */
struct ctl_outcome {
	unsigned int ok, failed, lost, bad; /* bad: malformed or superseded */
	uint64_t epoch;			    /* the highest "epoch=<n>" among the answers */
	bool aborted;			    /* a SIGUSR1 came: fail over now */
};

struct ctl;

int side_connect(struct ctl *c, struct ctl_side *sd);
void side_close(struct ctl_side *sd);
int side_reconnect(struct ctl *c, struct ctl_side *sd);
int side_drain_events(struct ctl *c, struct ctl_side *sd);
int side_read_max(struct ctl *c, struct ctl_side *sd);
bool side_pending(const struct ctl_side *sd);
bool side_succeeded(const struct ctl_side *sd);
int side_issue(struct ctl *c, struct ctl_side *sd, uint64_t floor, uint64_t *idp, const char *verb,
	       const char *threshold);
int side_wait(struct ctl *c, struct ctl_side *sd, uint64_t id, const char *verb,
	      struct ctl_outcome *out);
int side_request(struct ctl *c, struct ctl_side *sd, uint64_t floor, uint64_t *idp,
		 const char *verb, const char *threshold, struct ctl_outcome *out);
int side_checkpoint_wanted(struct ctl *c, struct ctl_side *sd);
int side_write(struct ctl *c, struct ctl_side *sd, const char *node, const char *val);
int side_status(struct ctl *c, struct ctl_side *sd);
void side_sleep(struct ctl *c, int ms);
int side_refresh_disks(struct ctl *c, struct ctl_side *sd);
int side_disk_node(struct ctl *c, struct ctl_side *sd, const struct ctl_disk *d, const char *node,
		   char **val);

/* ---- colo-controller-alive.c ---- */

enum ctl_alive { CTL_ALIVE_UNKNOWN, CTL_ALIVE_YES, CTL_ALIVE_NO };

/* From a disk's `pid` and `boot-id` nodes (NULL when absent). */
enum ctl_alive ctl_tapdisk_alive(const char *pid_node, const char *boot_id_node);
const char *ctl_alive_name(enum ctl_alive alive); /* "yes", "no", "?" */

/* ---- colo-controller-run.c ---- */

int ctl_run(struct ctl *c);

/* ---- colo-controller-metrics.c ---- */

#define CTL_METRIC_BUCKETS 14
extern const double ctl_metric_le[CTL_METRIC_BUCKETS]; /* seconds, each a histogram edge */

/* A run's checkpoints for the histogram: le[i] counts those that took ctl_metric_le[i] or less. */
struct ctl_run_metrics {
	uint64_t le[CTL_METRIC_BUCKETS];
	uint64_t count, failures;
	double sum_s;
};

int ctl_metrics_print(struct ctl *c, FILE *f, const struct ctl_run_metrics *run);
void ctl_metrics_write(struct ctl *c, const char *path, const struct ctl_run_metrics *run);

/* ---- colo-controller.c ---- */

struct ctl {
	struct ctl_side p, s;
	const char *p_args, *s_args;
	const char *threshold; /* decimal, or NULL */
	int timeout_ms;
	bool wait_sync; /* protect: a start waits as long as its sync makes progress */
	int interval_ms;
	uint64_t count;	     /* 0: no limit */
	int64_t duration_ms; /* 0: no limit */
	bool failover_on_error;
	const char *metrics_file; /* run: where to keep the metrics, or NULL */
	int verbose;
	char *env_xs_path;   /* XENSTORED_PATH as we found it */
	int sigfd;	     /* run: SIGINT, SIGTERM and SIGUSR1; else -1 */
	bool stop_asked;     /* SIGINT or SIGTERM */
	bool failover_asked; /* SIGUSR1 */
};

int ctl_checkpoint(struct ctl *c, uint64_t *idp, uint64_t *epochp, bool *consistent);
int ctl_resume(struct ctl *c, bool *consistent);
int ctl_failover(struct ctl *c);
void ctl_handle_signals(struct ctl *c);

#endif

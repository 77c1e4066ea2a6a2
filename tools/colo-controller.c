/*
 * colo-controller: the reference checkpoint controller.  It plays the disk part of a
 * Remus/COLO toolstack through xenstore (docs/xenstore.md): one request per domain and side,
 * every colo disk of the domain answers it.  docs/colo-controller.md is its manual.
 *
 * The Primary and the Secondary may live on different hosts, so each side has its own
 * xenstore connection.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "colo-controller.h"
#include "colo-start-options.h"

static void usage(FILE *out)
{
	fputs("usage: colo-controller [OPTIONS] "
	      "start|protect|reprotect|checkpoint|run|failover|stop|status|metrics\n"
	      "The disk part of a COLO toolstack, through each side's xenstore.\n"
	      "\ncommands:\n"
	      "  start       start secondary on the Secondary, then start primary on the Primary\n"
	      "  protect     start (with the Primary's sync), wait until in sync, checkpoint\n"
	      "  reprotect   after a failover, protect in the other direction on the same disks:\n"
	      "              --primary the failed-over domain, --secondary the old Primary's;\n"
	      "              both --*-args name address=HOST:PORT (where the Secondary listens)\n"
	      "  checkpoint  one checkpoint: the Primary's disks, then the Secondary's\n"
	      "  run         checkpoints in a loop (--interval, --threshold, --count, --duration)\n"
	      "  failover    fail over the Secondary (--secondary only)\n"
	      "  stop        stop each side named, the Primary first\n"
	      "  status      each side's request and threshold, and each disk's state\n"
	      "  metrics     each disk's state in the Prometheus text format\n"
	      "\noptions:\n"
	      "  --primary DOMID, --secondary DOMID   the domains, 1 to 32751\n"
	      "  --primary-xs SOCKET, --secondary-xs SOCKET\n"
	      "                        each side's xenstored socket (default $XENSTORED_PATH or\n"
	      "                        /run/xenstored/socket)\n"
	      "  --primary-args 'KEY=VALUE ...', --secondary-args 'KEY=VALUE ...'\n"
	      "                        start options of each side (below)\n"
	      "  --threshold BYTES     the Primary's checkpoint-threshold (K, M, G suffixes)\n"
	      "  --timeout MS          for all disks of a side to answer a request (10000)\n"
	      "  --interval MS         run: from one checkpoint's start to the next (100)\n"
	      "  --count N             run: end after N checkpoints\n"
	      "  --duration MS         run: start no checkpoint after MS\n"
	      "  --failover-on-error   run: fail over after a failed checkpoint, when safe\n"
	      "  --metrics-file PATH   run: keep the Prometheus metrics, checkpoint latency\n"
	      "                        included, in PATH (rewritten at most once a second)\n"
	      "  -v, --verbose         report each request and reconnection\n"
	      "  -h, --help            print this and exit\n"
	      "\nstart options (SIZE: bytes, with an optional K, M or G suffix; MS: milliseconds):\n",
	      out);
	colo_start_options_print(out, "  ");
	fputs("\nSee docs/colo-controller.md.\n", out);
}

/* One line on stderr, after whatever stdout holds, so that the two interleave in order. */
static void ctl_vline(const char *fmt, va_list ap)
{
	fflush(stdout);
	fputs("colo-controller: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void ctl_err(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ctl_vline(fmt, ap);
	va_end(ap);
}

/* Not an error: what -v tells.  The same line, so that logs read alike. */
void ctl_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ctl_vline(fmt, ap);
	va_end(ap);
}

int64_t ctl_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Reads what the signalfd holds: SIGINT/SIGTERM end run after this checkpoint, SIGUSR1
 * fails over. */
void ctl_handle_signals(struct ctl *c)
{
	struct signalfd_siginfo si;

	while (read(c->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGUSR1)
			c->failover_asked = true;
		else
			c->stop_asked = true;
	}
}

/* The Secondary's half of checkpoint ID, with the Primary's id: issued unless ISSUED. */
static int checkpoint_secondary(struct ctl *c, uint64_t id, bool issued, uint64_t *epochp,
				bool *consistent)
{
	struct ctl_outcome out;
	int rc;

	rc = issued ? side_wait(c, &c->s, id, "checkpoint", &out)
		    : side_request(c, &c->s, 0, &id, "checkpoint", NULL, &out);
	if (rc) {
		*consistent = !out.ok && !out.lost && !out.bad;
		ctl_err("checkpoint %" PRIu64 " failed on the secondary: %s", id,
			*consistent ? "every disk kept the previous checkpoint"
				    : "its disks may be at different checkpoints");
		return rc;
	}
	*epochp = out.epoch;
	return CTL_OK;
}

/*
 * One checkpoint: the Primary's (a barrier that changes no disk), and only if every Primary
 * disk succeeded, the Secondary's with the same id.  *CONSISTENT says on failure whether
 * every Secondary disk still holds one and the same checkpoint, so that a failover is safe.
 */
int ctl_checkpoint(struct ctl *c, uint64_t *idp, uint64_t *epochp, bool *consistent)
{
	struct ctl_outcome out;
	uint64_t id = 0;
	int rc;

	*consistent = true;
	if (!c->s.max_known && side_read_max(c, &c->s))
		return CTL_EFAIL;
	rc = side_request(c, &c->p, c->s.max_id, &id, "checkpoint", NULL, &out);
	*idp = id;
	if (rc) {
		if (id && !out.aborted)
			ctl_err("checkpoint %" PRIu64
				" failed on the primary: the secondary was not asked",
				id);
		return rc;
	}
	return checkpoint_secondary(c, id, false, epochp, consistent);
}

/*
 * Before its first request, a controller that follows one that ended in the middle of a
 * checkpoint (killed, or restarted by systemd) lets the request it left finish, and finishes
 * that checkpoint rather than take another: the Primary's half has sent its disks' epoch
 * markers, and a Secondary not asked for that checkpoint would take the next one at the old
 * marker, one checkpoint behind its Primary from then on.  A failure is reported as the
 * controller that ended would have reported it.
 */
int ctl_resume(struct ctl *c, bool *consistent)
{
	struct ctl_outcome out;
	uint64_t id, epoch;
	bool pending;
	int rc;

	*consistent = true;
	if (side_read_max(c, &c->p) || side_read_max(c, &c->s))
		return CTL_EFAIL;
	if (side_pending(&c->s)) {
		if (strcmp(c->s.req_verb, "checkpoint")) {
			side_wait(c, &c->s, c->s.req_id, c->s.req_verb, &out);
			return CTL_OK;
		}
		return checkpoint_secondary(c, c->s.req_id, true, &epoch, consistent);
	}
	id = c->p.req_id;
	pending = side_pending(&c->p);
	/* the Secondary has moved on (failover, stop) or has this checkpoint already */
	if (strcmp(c->p.req_verb, "checkpoint") || id <= c->s.max_id ||
	    (strcmp(c->s.req_verb, "checkpoint") && strcmp(c->s.req_verb, "start"))) {
		if (pending)
			side_wait(c, &c->p, id, c->p.req_verb, &out);
		return CTL_OK;
	}
	/* a half that failed was reported by the controller that saw it fail */
	if (!pending && !side_succeeded(&c->p))
		return CTL_OK;
	rc = side_wait(c, &c->p, id, "checkpoint", &out);
	if (rc) {
		if (!out.aborted)
			ctl_err("checkpoint %" PRIu64
				" failed on the primary: the secondary was not asked",
				id);
		return rc;
	}
	ctl_info("checkpoint %" PRIu64 ": the primary's half was done before this controller "
		 "started: finishing it on the secondary",
		 id);
	rc = checkpoint_secondary(c, id, false, &epoch, consistent);
	if (!rc && c->verbose)
		printf("checkpoint %" PRIu64 " epoch=%" PRIu64 "\n", id, epoch);
	return rc;
}

int ctl_failover(struct ctl *c)
{
	struct ctl_outcome out;
	uint64_t id = 0;
	int rc;

	rc = side_request(c, &c->s, 0, &id, "failover", NULL, &out);
	if (!rc && c->verbose)
		printf("%s %u: request %" PRIu64 " (failover) ok\n", c->s.name, c->s.domid, id);
	return rc;
}

/* The start, failover or stop of one side. */
static int ctl_simple(struct ctl *c, struct ctl_side *sd, const char *verb, const char *thr)
{
	struct ctl_outcome out;
	uint64_t id = 0;
	int rc;

	rc = side_request(c, sd, 0, &id, verb, thr, &out);
	if (!rc && c->verbose)
		printf("%s %u: request %" PRIu64 " (%s) ok\n", sd->name, sd->domid, id, verb);
	return rc;
}

static int cmd_start(struct ctl *c)
{
	char verb[4096];
	int rc;

	snprintf(verb, sizeof(verb), "start secondary%s%s", c->s_args ? " " : "",
		 c->s_args ? c->s_args : "");
	rc = ctl_simple(c, &c->s, verb, NULL);
	if (rc) {
		ctl_err("start: the secondary did not start: the primary was not asked");
		return rc;
	}
	snprintf(verb, sizeof(verb), "start primary%s%s", c->p_args ? " " : "",
		 c->p_args ? c->p_args : "");
	/* Its answer waits for the sync: as long as some disk's sync moves within --timeout. */
	c->wait_sync = true;
	rc = ctl_simple(c, &c->p, verb, c->threshold);
	c->wait_sync = false;
	return rc;
}

/*
 * protect: start with the sync (the Primary's start returns once every disk is in sync),
 * then the first checkpoint, which makes the Secondary's disks consistent.
 */
static int cmd_protect(struct ctl *c)
{
	uint64_t id, epoch;
	bool consistent;
	int rc;

	rc = cmd_start(c);
	if (rc) {
		ctl_err("protect: the start failed: no checkpoint taken");
		return rc;
	}
	rc = ctl_checkpoint(c, &id, &epoch, &consistent);
	if (rc) {
		ctl_err("protect: the first checkpoint failed: the Secondary's disks are not "
			"consistent yet");
		return rc;
	}
	printf("protected: checkpoint %" PRIu64 " epoch=%" PRIu64 "\n", id, epoch);
	return CTL_OK;
}

/* Whether the start options ARGS name address=. */
static bool args_have_address(const char *args)
{
	const char *p = args;

	while (p && (p = strstr(p, "address=")))
		if (p == args || p[-1] == ' ')
			return true;
		else
			p++;
	return false;
}

/*
 * reprotect: after a failover the roles swap but the VBDs and their names stay, so both
 * sides must say where the new Secondary listens (address=).  The failed-over Secondary's
 * start primary copies exactly what both sides wrote since their last common checkpoint
 * (docs/colo.md, "Re-protect and failback"); then the first checkpoint.
 */
static int cmd_reprotect(struct ctl *c)
{
	uint64_t id, epoch;
	bool consistent;
	int rc;

	if (!args_have_address(c->p_args) || !args_have_address(c->s_args)) {
		ctl_err("reprotect: --primary-args and --secondary-args must both name "
			"address=HOST:PORT, where the new Secondary listens: the roles swapped, the "
			"disks' names did not");
		return CTL_ESETUP;
	}
	rc = cmd_start(c);
	if (rc) {
		ctl_err("reprotect: the start failed: no checkpoint taken");
		return rc;
	}
	rc = ctl_checkpoint(c, &id, &epoch, &consistent);
	if (rc) {
		ctl_err("reprotect: the first checkpoint failed: the Secondary's disks are not "
			"consistent yet");
		return rc;
	}
	printf("re-protected: checkpoint %" PRIu64 " epoch=%" PRIu64 "\n", id, epoch);
	return CTL_OK;
}

static int cmd_checkpoint(struct ctl *c)
{
	uint64_t id, epoch;
	bool consistent;
	int rc;

	rc = ctl_resume(c, &consistent);
	if (!rc)
		rc = ctl_checkpoint(c, &id, &epoch, &consistent);
	if (!rc)
		printf("checkpoint %" PRIu64 " epoch=%" PRIu64 "\n", id, epoch);
	return rc;
}

static int side_stop(struct ctl *c, struct ctl_side *sd)
{
	return ctl_simple(c, sd, "stop", NULL);
}

/*
 * @fn on each side that was named, the Primary first; one that cannot be reached is reported
 * and the other is still done.  Returns the worst result.
 */
static int ctl_each_side(struct ctl *c, int (*fn)(struct ctl *c, struct ctl_side *sd))
{
	struct ctl_side *sides[2] = {&c->p, &c->s};
	int i, r, rc = CTL_OK;

	for (i = 0; i < 2; i++) {
		if (!sides[i]->set)
			continue;
		r = side_connect(c, sides[i]) ? CTL_EFAIL : fn(c, sides[i]);
		if (r > rc)
			rc = r;
	}
	return rc;
}

static int cmd_stop(struct ctl *c)
{
	return ctl_each_side(c, side_stop);
}

static int cmd_status(struct ctl *c)
{
	return ctl_each_side(c, side_status);
}

/* What a side that cannot be reached has is still printed, with blktap_colo_xenstore_up 0. */
static int cmd_metrics(struct ctl *c)
{
	return ctl_metrics_print(c, stdout, NULL);
}

static int usage_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_err(const char *fmt, ...)
{
	va_list ap;

	fputs("colo-controller: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see colo-controller --help)\n", stderr);
	return CTL_ESETUP;
}

/* Strict decimal in [min, max], with an optional K, M or G when SUFFIX. */
static int parse_num(const char *opt, const char *s, uint64_t min, uint64_t max, bool suffix,
		     uint64_t *v)
{
	uint64_t n = 0, mult = 1;
	const char *p = s;

	if (*p < '0' || *p > '9')
		goto bad;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (n > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			goto bad;
		n = n * 10 + (uint64_t)(*p - '0');
	}
	if (suffix && *p && !p[1]) {
		mult = *p == 'K' ? 1ULL << 10 : *p == 'M' ? 1ULL << 20 : *p == 'G' ? 1ULL << 30 : 0;
		if (mult)
			p++;
	}
	if (*p || !mult || n > max / mult || n * mult < min)
		goto bad;
	*v = n * mult;
	return 0;
bad:
	usage_err("bad value '%s' for %s (expected %" PRIu64 "..%" PRIu64 "%s)", s, opt, min, max,
		  suffix ? ", K, M or G suffix allowed" : "");
	return -1;
}

/* Options go into one request line: printable ASCII only. */
static int check_args(const char *opt, const char *s)
{
	const char *p;

	for (p = s; *p; p++)
		if (*p < 0x20 || *p > 0x7e) {
			usage_err("%s: only printable characters on one line", opt);
			return -1;
		}
	return 0;
}

static void side_init(struct ctl_side *sd, const char *name, unsigned int domid)
{
	sd->name = name;
	sd->set = true;
	sd->domid = domid;
	snprintf(sd->dir, sizeof(sd->dir), "/local/domain/0/colo/%u", domid);
	snprintf(sd->disks_path, sizeof(sd->disks_path), "%s/disks", sd->dir);
}

enum {
	OPT_PRIMARY = 256,
	OPT_SECONDARY,
	OPT_PRIMARY_XS,
	OPT_SECONDARY_XS,
	OPT_PRIMARY_ARGS,
	OPT_SECONDARY_ARGS,
	OPT_THRESHOLD,
	OPT_TIMEOUT,
	OPT_INTERVAL,
	OPT_COUNT,
	OPT_DURATION,
	OPT_FAILOVER_ON_ERROR,
	OPT_METRICS_FILE,
};

static const struct option options[] = {
	{"primary", required_argument, NULL, OPT_PRIMARY},
	{"secondary", required_argument, NULL, OPT_SECONDARY},
	{"primary-xs", required_argument, NULL, OPT_PRIMARY_XS},
	{"secondary-xs", required_argument, NULL, OPT_SECONDARY_XS},
	{"primary-args", required_argument, NULL, OPT_PRIMARY_ARGS},
	{"secondary-args", required_argument, NULL, OPT_SECONDARY_ARGS},
	{"threshold", required_argument, NULL, OPT_THRESHOLD},
	{"timeout", required_argument, NULL, OPT_TIMEOUT},
	{"interval", required_argument, NULL, OPT_INTERVAL},
	{"count", required_argument, NULL, OPT_COUNT},
	{"duration", required_argument, NULL, OPT_DURATION},
	{"failover-on-error", no_argument, NULL, OPT_FAILOVER_ON_ERROR},
	{"metrics-file", required_argument, NULL, OPT_METRICS_FILE},
	{"verbose", no_argument, NULL, 'v'},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

/* Which options each command takes, beyond the sides and -v. */
#define O_XS (1U << 0)
#define O_ARGS (1U << 1)
#define O_THRESHOLD (1U << 2)
#define O_TIMEOUT (1U << 3)
#define O_RUN (1U << 4)

struct command {
	const char *name;
	int (*fn)(struct ctl *c);
	bool primary, secondary; /* needed */
	unsigned int opts;
};

static const struct command commands[] = {
	{"start", cmd_start, true, true, O_XS | O_ARGS | O_THRESHOLD | O_TIMEOUT},
	{"checkpoint", cmd_checkpoint, true, true, O_XS | O_TIMEOUT},
	{"protect", cmd_protect, true, true, O_XS | O_ARGS | O_THRESHOLD | O_TIMEOUT},
	{"reprotect", cmd_reprotect, true, true, O_XS | O_ARGS | O_THRESHOLD | O_TIMEOUT},
	{"run", ctl_run, true, true, O_XS | O_THRESHOLD | O_TIMEOUT | O_RUN},
	{"failover", ctl_failover, false, true, O_XS | O_TIMEOUT},
	{"stop", cmd_stop, false, false, O_XS | O_TIMEOUT},
	{"status", cmd_status, false, false, O_XS},
	{"metrics", cmd_metrics, false, false, O_XS},
};

struct parsed {
	struct ctl c;
	unsigned int given; /* O_* of the options given */
	const char *given_name[5];
};

static void note_given(struct parsed *ps, unsigned int o, const char *name)
{
	unsigned int i;

	ps->given |= o;
	for (i = 0; i < 5; i++)
		if (o == 1U << i)
			ps->given_name[i] = name;
}

static int parse_options(int argc, char **argv, struct parsed *ps)
{
	struct ctl *c = &ps->c;
	char name[32];
	uint64_t v;
	int opt, idx;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+vh", options, &idx)) != -1) {
		if (opt >= OPT_PRIMARY)
			snprintf(name, sizeof(name), "--%s", options[idx].name);
		switch (opt) {
		case OPT_PRIMARY:
		case OPT_SECONDARY:
			/* DOMID_FIRST_RESERVED is 0x7ff0 */
			if (parse_num(name, optarg, 1, 0x7fef, false, &v))
				return -1;
			side_init(opt == OPT_PRIMARY ? &c->p : &c->s,
				  opt == OPT_PRIMARY ? "primary" : "secondary", (unsigned int)v);
			break;
		case OPT_PRIMARY_XS:
			c->p.xs_path = optarg;
			break;
		case OPT_SECONDARY_XS:
			c->s.xs_path = optarg;
			break;
		case OPT_PRIMARY_ARGS:
		case OPT_SECONDARY_ARGS:
			if (check_args(name, optarg))
				return -1;
			*(opt == OPT_PRIMARY_ARGS ? &c->p_args : &c->s_args) = optarg;
			note_given(ps, O_ARGS,
				   opt == OPT_PRIMARY_ARGS ? "--primary-args" : "--secondary-args");
			break;
		case OPT_THRESHOLD:
			if (parse_num("--threshold", optarg, 0, UINT64_MAX, true, &v))
				return -1;
			c->threshold = optarg;
			note_given(ps, O_THRESHOLD, "--threshold");
			break;
		case OPT_TIMEOUT:
			if (parse_num("--timeout", optarg, 1, 3600000, false, &v))
				return -1;
			c->timeout_ms = (int)v;
			note_given(ps, O_TIMEOUT, "--timeout");
			break;
		case OPT_INTERVAL:
			if (parse_num("--interval", optarg, 0, 3600000, false, &v))
				return -1;
			c->interval_ms = (int)v;
			note_given(ps, O_RUN, "--interval");
			break;
		case OPT_COUNT:
			if (parse_num("--count", optarg, 1, UINT64_MAX, false, &v))
				return -1;
			c->count = v;
			note_given(ps, O_RUN, "--count");
			break;
		case OPT_DURATION:
			if (parse_num("--duration", optarg, 1, INT64_MAX / 1000000, false, &v))
				return -1;
			c->duration_ms = (int64_t)v;
			note_given(ps, O_RUN, "--duration");
			break;
		case OPT_FAILOVER_ON_ERROR:
			c->failover_on_error = true;
			note_given(ps, O_RUN, "--failover-on-error");
			break;
		case OPT_METRICS_FILE:
			c->metrics_file = optarg;
			note_given(ps, O_RUN, "--metrics-file");
			break;
		case 'v':
			c->verbose++;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			if (optopt >= OPT_PRIMARY)
				usage_err("%s needs a value", argv[optind - 1]);
			else if (optopt)
				usage_err("unknown option '-%c'", optopt);
			else
				usage_err("unknown option '%s'", argv[optind - 1]);
			return -1;
		}
	}
	return 0;
}

/* The threshold as the decimal the disks read. */
static char threshold_buf[24];

int main(int argc, char **argv)
{
	static struct parsed ps;
	struct ctl *c = &ps.c;
	const struct command *cmd = NULL;
	unsigned int i, extra;
	const char *env;
	uint64_t thr;
	sigset_t set;
	int rc;

	c->timeout_ms = 10000;
	c->interval_ms = 100;
	c->sigfd = -1;
	if (parse_options(argc, argv, &ps))
		return CTL_ESETUP;
	if (optind >= argc)
		return usage_err("no command");
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[optind], commands[i].name))
			cmd = &commands[i];
	if (!cmd)
		return usage_err("unknown command '%s'", argv[optind]);
	if (optind + 1 < argc)
		return usage_err("%s: unexpected argument '%s'", cmd->name, argv[optind + 1]);
	extra = ps.given & ~cmd->opts;
	for (i = 0; i < 5; i++)
		if (extra & (1U << i))
			return usage_err("%s does not apply to %s", ps.given_name[i], cmd->name);
	if ((cmd->primary && !c->p.set) || (cmd->secondary && !c->s.set))
		return usage_err("%s needs %s", cmd->name,
				 cmd->primary && cmd->secondary ? "--primary and --secondary"
								: "--secondary");
	if (!c->p.set && !c->s.set)
		return usage_err("%s needs --primary or --secondary (or both)", cmd->name);
	/* failover never touches the Primary: its host may be dead */
	if (cmd->fn == ctl_failover)
		c->p.set = false;
	if (c->threshold) {
		parse_num("--threshold", c->threshold, 0, UINT64_MAX, true, &thr);
		snprintf(threshold_buf, sizeof(threshold_buf), "%" PRIu64, thr);
		c->threshold = threshold_buf;
	}

	env = getenv("XENSTORED_PATH");
	if (env) {
		c->env_xs_path = strdup(env);
		if (!c->env_xs_path) {
			ctl_err("out of memory");
			return CTL_ESETUP;
		}
	}
	if (cmd->fn == ctl_run) {
		/* Blocked before libxenstore starts its threads, so only the signalfd sees them. */
		sigemptyset(&set);
		sigaddset(&set, SIGINT);
		sigaddset(&set, SIGTERM);
		sigaddset(&set, SIGUSR1);
		/*
		 * A shell starts background jobs with SIGINT ignored, and an ignored signal
		 * never reaches a signalfd: take them back first.
		 */
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGUSR1, SIG_DFL);
		if (sigprocmask(SIG_BLOCK, &set, NULL) ||
		    (c->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
			ctl_err("signalfd: %s", strerror(errno));
			return CTL_ESETUP;
		}
	}

	rc = CTL_OK;
	if (cmd->primary && side_connect(c, &c->p))
		rc = CTL_ESETUP;
	else if (cmd->secondary && side_connect(c, &c->s))
		rc = CTL_ESETUP;
	if (!rc)
		rc = cmd->fn(c);

	side_close(&c->p);
	side_close(&c->s);
	for (i = 0; i < c->p.n_disks; i++) {
		free(c->p.disks[i].name);
		free(c->p.disks[i].res.raw);
	}
	for (i = 0; i < c->s.n_disks; i++) {
		free(c->s.disks[i].name);
		free(c->s.disks[i].res.raw);
	}
	free(c->p.disks);
	free(c->s.disks);
	free(c->env_xs_path);
	if (c->sigfd >= 0)
		close(c->sigfd);
	if (fflush(stdout)) {
		ctl_err("stdout: %s", strerror(errno));
		if (!rc)
			rc = CTL_ESETUP;
	}
	return rc;
}

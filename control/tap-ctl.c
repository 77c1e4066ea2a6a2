/*
 * tap-ctl: drive tapdisk processes from the command line (blktap3's subcommands, flags and
 * output).  Each subcommand parses its flags and calls libblktapctl, which prints the one
 * error line; the exit status is the errno of the failure (0 on success).
 * docs/tap-ctl.md describes every subcommand.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "blktap.h"
#include "colo-start-options.h"
#include "tap-ctl.h"

struct command {
	const char *name;
	int (*func)(int argc, char **argv);
	const char *usage;
	void (*details)(FILE *out); /* more that -h prints, or NULL */
};

static const struct command *current;

/* Every subcommand takes --help as well as -h. */
static const struct option help_option[] = {
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int cli_getopt(int argc, char **argv, const char *optstring)
{
	return getopt_long(argc, argv, optstring, help_option, NULL);
}

/* Usage errors exit with EINVAL, as blktap3's tap-ctl does. */
static int usage_error(void)
{
	fprintf(stderr, "usage: %s %s\n", current->name, current->usage);
	return EINVAL;
}

static int usage_help(void)
{
	printf("usage: %s %s\n", current->name, current->usage);
	if (current->details)
		current->details(stdout);
	return 0;
}

/* Strict number parsing: "12x" or "" is a usage error, not 12 or 0. */
static int parse_int(const char *flag, const char *s, int min, int max, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max) {
		fprintf(stderr, "%s: %s: bad value '%s' for %s (expected %d..%d)\n",
			program_invocation_short_name, current->name, s, flag, min, max);
		return -1;
	}
	*out = v;
	return 0;
}

static struct timeval *parse_timeout(const char *s, struct timeval *tv)
{
	int secs;

	if (parse_int("-t", s, 0, INT_MAX, &secs))
		return NULL;
	tv->tv_sec = secs;
	tv->tv_usec = 0;
	return tv;
}

#define PID_MAX_ARG INT_MAX
#define MINOR_MAX_ARG (MAX_ID - 1)

/* -p pid and -m minor, both required: attach, detach, pause, stats... */
static int parse_pid_minor(int c, int *pid, int *minor)
{
	if (c == 'p')
		return parse_int("-p", optarg, 1, PID_MAX_ARG, pid);
	return parse_int("-m", optarg, 0, MINOR_MAX_ARG, minor);
}

/* The flags most subcommands share. */
struct cli_opts {
	int pid, minor;
	int force;
	const char *args;
	struct timeval tv, *timeout;
};

#define CLI_HELP 1

/*
 * Parses the flags of @optstring among -p -m -a -f -t -h; those named in @required ("pm")
 * must be given.  Returns 0, CLI_HELP after -h, or -1 after a usage error.
 */
static int cli_parse(int argc, char **argv, const char *optstring, const char *required,
		     struct cli_opts *o)
{
	int c;

	*o = (struct cli_opts){ .pid = -1, .minor = -1 };
	while ((c = cli_getopt(argc, argv, optstring)) != -1) {
		switch (c) {
		case 'p':
		case 'm':
			if (parse_pid_minor(c, &o->pid, &o->minor))
				return -1;
			break;
		case 'a':
			o->args = optarg;
			break;
		case 'f':
			o->force = 1;
			break;
		case 't':
			o->timeout = parse_timeout(optarg, &o->tv);
			if (!o->timeout)
				return -1;
			break;
		case 'h':
			return CLI_HELP;
		default:
			return -1;
		}
	}
	if ((strchr(required, 'p') && o->pid == -1) || (strchr(required, 'm') && o->minor == -1))
		return -1;
	return 0;
}

/* What tap-ctl answers when cli_parse did not return 0. */
static int cli_usage(int r)
{
	return r == CLI_HELP ? usage_help() : usage_error();
}

static void list_print_row(const tap_list_t *e)
{
	char pid[16] = "-", minor[16] = "-", state[16] = "-";

	if (e->pid != -1)
		snprintf(pid, sizeof(pid), "%d", e->pid);
	if (e->minor != -1)
		snprintf(minor, sizeof(minor), "%d", e->minor);
	if (e->state != -1)
		snprintf(state, sizeof(state), "%#x", e->state);
	printf("%8s %4s %4s %10s %s\n", pid, minor, state, e->type ? e->type : "-",
	       e->path ? e->path : "-");
}

/* key=value pairs, separated by one space, that Xen's block-tap script parses. */
static void list_print_dict(const tap_list_t *e)
{
	const char *sep = "";

	if (e->pid != -1) {
		printf("%spid=%d", sep, e->pid);
		sep = " ";
	}
	if (e->minor != -1) {
		printf("%sminor=%d", sep, e->minor);
		sep = " ";
	}
	if (e->state != -1) {
		printf("%sstate=%#x", sep, e->state);
		sep = " ";
	}
	if (e->type && e->path)
		printf("%sargs=%s:%s", sep, e->type, e->path);
	putchar('\n');
}

static int cli_list(int argc, char **argv)
{
	struct list_head list;
	const char *type = NULL, *file = NULL;
	int c, pid = -1, minor = -1, tty, err;
	tap_list_t *e;

	while ((c = cli_getopt(argc, argv, "p:m:t:f:h")) != -1) {
		switch (c) {
		case 'p':
			if (parse_int("-p", optarg, 1, PID_MAX_ARG, &pid))
				return usage_error();
			break;
		case 'm':
			if (parse_int("-m", optarg, 0, MINOR_MAX_ARG, &minor))
				return usage_error();
			break;
		case 't':
			type = optarg;
			break;
		case 'f':
			file = optarg;
			break;
		case 'h':
			return usage_help();
		default:
			return usage_error();
		}
	}

	err = pid != -1 ? tap_ctl_list_pid(pid, &list) : tap_ctl_list(&list);
	if (err)
		return err;

	/* A table on a terminal, without a header: blktap3 v4.0.8 prints none. */
	tty = isatty(STDOUT_FILENO);
	tap_list_for_each_entry(e, &list) {
		if (minor >= 0 && e->minor != minor)
			continue;
		if (pid >= 0 && e->pid != pid)
			continue;
		if (type && (!e->type || strcmp(e->type, type)))
			continue;
		if (file && (!e->path || strcmp(e->path, file)))
			continue;
		if (tty)
			list_print_row(e);
		else
			list_print_dict(e);
	}
	tap_ctl_list_free(&list);
	return 0;
}

/* Prints the device name that allocate or create made, freeing it unless it was -d's. */
static int print_devname(char *devname, const char *given)
{
	printf("%s\n", devname);
	if (devname != given)
		free(devname);
	return 0;
}

static int cli_allocate(int argc, char **argv)
{
	char *devname = NULL;
	int c, minor, err;

	while ((c = cli_getopt(argc, argv, "d:h")) != -1) {
		switch (c) {
		case 'd':
			devname = optarg;
			break;
		case 'h':
			return usage_help();
		default:
			return usage_error();
		}
	}
	const char *given = devname;

	err = tap_ctl_allocate(&minor, &devname);
	if (err)
		return err;
	return print_devname(devname, given);
}

static int cli_free(int argc, char **argv)
{
	struct cli_opts o;
	int r;

	r = cli_parse(argc, argv, "m:h", "m", &o);
	if (r)
		return cli_usage(r);
	return tap_ctl_free(o.minor);
}

static int cli_spawn(int argc, char **argv)
{
	int c, id;

	while ((c = cli_getopt(argc, argv, "h")) != -1) {
		switch (c) {
		case 'h':
			return usage_help();
		default:
			return usage_error();
		}
	}
	id = tap_ctl_spawn();
	if (id < 0)
		return id;
	if (isatty(STDOUT_FILENO))
		printf("tapdisk spawned with pid %d\n", id);
	else
		printf("%d\n", id);
	return 0;
}

static int cli_attach(int argc, char **argv)
{
	struct cli_opts o;
	int r;

	r = cli_parse(argc, argv, "p:m:h", "pm", &o);
	if (r)
		return cli_usage(r);
	return tap_ctl_attach(o.pid, o.minor);
}

static int cli_detach(int argc, char **argv)
{
	struct cli_opts o;
	int r;

	r = cli_parse(argc, argv, "p:m:h", "pm", &o);
	if (r)
		return cli_usage(r);
	return tap_ctl_detach(o.pid, o.minor);
}

/* The image flags shared by open and create.  Returns 1 if @c was one of them, -1 if bad. */
static int parse_open_flag(int c, int *flags, int *prt_minor, char **secondary, int *timeout)
{
	switch (c) {
	case 'R':
		*flags |= TAPDISK_MESSAGE_FLAG_RDONLY;
		return 1;
	case 'D':
		*flags |= TAPDISK_MESSAGE_FLAG_NO_O_DIRECT;
		return 1;
	case 'r':
		*flags |= TAPDISK_MESSAGE_FLAG_ADD_LCACHE;
		return 1;
	case 'e':
		*flags |= TAPDISK_MESSAGE_FLAG_REUSE_PRT;
		return parse_int("-e", optarg, 0, MINOR_MAX_ARG, prt_minor) ? -1 : 1;
	case '2':
		*flags |= TAPDISK_MESSAGE_FLAG_SECONDARY;
		*secondary = optarg;
		return 1;
	case 's':
		*flags |= TAPDISK_MESSAGE_FLAG_STANDBY;
		return 1;
	case 't':
		return parse_int("-t", optarg, 0, UINT16_MAX, timeout) ? -1 : 1;
	default:
		return 0;
	}
}

static int cli_open(int argc, char **argv)
{
	int c, r, pid = -1, minor = -1, flags = 0, prt_minor = -1, timeout = 0;
	char *args = NULL, *secondary = NULL;

	while ((c = cli_getopt(argc, argv, "p:m:a:RDre:2:st:h")) != -1) {
		r = parse_open_flag(c, &flags, &prt_minor, &secondary, &timeout);
		if (r < 0)
			return usage_error();
		if (r)
			continue;
		switch (c) {
		case 'p':
		case 'm':
			if (parse_pid_minor(c, &pid, &minor))
				return usage_error();
			break;
		case 'a':
			args = optarg;
			break;
		case 'h':
			return usage_help();
		default:
			return usage_error();
		}
	}
	if (pid == -1 || minor == -1 || !args)
		return usage_error();
	return tap_ctl_open(pid, minor, args, flags, prt_minor, secondary, timeout);
}

static int cli_close(int argc, char **argv)
{
	struct cli_opts o;
	int r;

	r = cli_parse(argc, argv, "p:m:ft:h", "pm", &o);
	if (r)
		return cli_usage(r);
	return tap_ctl_close(o.pid, o.minor, o.force, o.timeout);
}

static int cli_pause(int argc, char **argv)
{
	struct cli_opts o;
	int r;

	r = cli_parse(argc, argv, "p:m:t:h", "pm", &o);
	if (r)
		return cli_usage(r);
	return tap_ctl_pause(o.pid, o.minor, o.timeout);
}

static int cli_unpause(int argc, char **argv)
{
	int c, pid = -1, minor = -1, flags = 0;
	char *args = NULL, *secondary = NULL, *logpath = NULL;

	while ((c = cli_getopt(argc, argv, "p:m:a:2:c:h")) != -1) {
		switch (c) {
		case 'p':
		case 'm':
			if (parse_pid_minor(c, &pid, &minor))
				return usage_error();
			break;
		case 'a':
			args = optarg;
			break;
		case '2':
			flags |= TAPDISK_MESSAGE_FLAG_SECONDARY;
			secondary = optarg;
			break;
		case 'c':
			logpath = optarg;
			break;
		case 'h':
			return usage_help();
		default:
			return usage_error();
		}
	}
	if (pid == -1 || minor == -1)
		return usage_error();
	return tap_ctl_unpause(pid, minor, args, flags, secondary, logpath);
}

static int cli_stats(int argc, char **argv)
{
	struct cli_opts o;
	int r, err;

	/* Without -m: every VBD of the tapdisk. */
	r = cli_parse(argc, argv, "p:m:h", "p", &o);
	if (r)
		return cli_usage(r);
	err = tap_ctl_stats_fwrite(o.pid, o.minor, stdout);
	if (err)
		return err;
	putchar('\n');
	return 0;
}

static int cli_create(int argc, char **argv)
{
	int c, r, flags = 0, prt_minor = -1, timeout = 0, err;
	char *args = NULL, *devname = NULL, *secondary = NULL;

	while ((c = cli_getopt(argc, argv, "a:d:RDre:2:st:h")) != -1) {
		r = parse_open_flag(c, &flags, &prt_minor, &secondary, &timeout);
		if (r < 0)
			return usage_error();
		if (r)
			continue;
		switch (c) {
		case 'a':
			args = optarg;
			break;
		case 'd':
			devname = optarg;
			break;
		case 'h':
			return usage_help();
		default:
			return usage_error();
		}
	}
	if (!args)
		return usage_error();
	const char *given = devname;

	err = tap_ctl_create(args, &devname, flags, prt_minor, secondary, timeout);
	if (err)
		return err;
	return print_devname(devname, given);
}

static int cli_destroy(int argc, char **argv)
{
	struct cli_opts o;
	int r;

	r = cli_parse(argc, argv, "p:m:t:h", "pm", &o);
	if (r)
		return cli_usage(r);
	return tap_ctl_destroy(o.pid, o.minor, 0, o.timeout);
}

/* The words after the flags are the TLS options: "tls=x509 tls_dir=DIR"... */
static int cli_nbd_tcp(int argc, char **argv)
{
	char bound[TAPDISK_MESSAGE_STRING_LENGTH], opts[TAPDISK_MESSAGE_STRING_LENGTH] = "";
	struct cli_opts o;
	size_t len = 0, n;
	int i, r, err;

	r = cli_parse(argc, argv, "p:m:a:h", "pm", &o);
	if (r)
		return cli_usage(r);
	if (!o.args)
		return usage_error();
	for (i = optind; i < argc; i++) {
		n = strlen(argv[i]);
		if (len + !!len + n >= sizeof(opts)) {
			fprintf(stderr, "%s: nbd-tcp: the options are too long\n",
				program_invocation_short_name);
			return usage_error();
		}
		if (len)
			opts[len++] = ' ';
		memcpy(opts + len, argv[i], n + 1);
		len += n;
	}
	err = tap_ctl_nbd_tcp(o.pid, o.minor, o.args, opts, bound, sizeof(bound));
	if (err)
		return err;
	printf("%s\n", bound);
	return 0;
}

/* The words after the flags, joined by single spaces, are the command sent to tapdisk. */
static int cli_colo(int argc, char **argv)
{
	char command[TAPDISK_MESSAGE_STRING_LENGTH], *text;
	size_t len = 0, n;
	struct cli_opts o;
	int i, r, err;

	/* '+': "start primary" and its key=value options are not ours to permute. */
	r = cli_parse(argc, argv, "+p:m:h", "pm", &o);
	if (r)
		return cli_usage(r);
	if (optind >= argc)
		return usage_error();
	for (i = optind; i < argc; i++) {
		n = strlen(argv[i]);
		if (len + !!len + n >= sizeof(command)) {
			fprintf(stderr, "%s: colo: the command is too long (at most %zu bytes)\n",
				program_invocation_short_name, sizeof(command) - 1);
			return usage_error();
		}
		if (len)
			command[len++] = ' ';
		memcpy(command + len, argv[i], n + 1);
		len += n;
	}

	err = tap_ctl_colo(o.pid, o.minor, command, &text);
	if (err)
		return err;
	if (text[0])
		printf("%s\n", text);
	free(text);
	return 0;
}

static void colo_details(FILE *out)
{
	fputs("\ncommands:\n"
	      "  start primary [KEY=VALUE ...]    connect to the Secondary and start replicating\n"
	      "  start secondary [KEY=VALUE ...]  listen for the Primary\n"
	      "  checkpoint                       end the epoch; prints epoch=N\n"
	      "  failover [force]                 end replication; the Secondary keeps its buffer\n"
	      "                                   (force: also while its disk is inconsistent)\n"
	      "  stop                             end replication; the Secondary drops its buffer\n"
	      "  status                           print the state as one JSON line\n"
	      "  xenstore PATH|off                bind the VBD to its xenstore directory PATH, or "
	      "unbind it\n"
	      "\nstart options (SIZE: bytes, with an optional K, M or G suffix; MS: milliseconds):\n",
	      out);
	colo_start_options_print(out, "  ");
}

static const struct command commands[] = {
	{ "list", cli_list, "[-h] [-p pid] [-m minor] [-t type] [-f file]" },
	{ "allocate", cli_allocate, "[-h] [-d devname]" },
	{ "free", cli_free, "[-h] <-m minor>" },
	{ "create", cli_create,
	  "[-h] <-a type:/path/to/file> [-d devname] [-R readonly] [-D no O_DIRECT] "
	  "[-e parent-minor] [-r] [-2 secondary] [-s] [-t request-timeout]" },
	{ "destroy", cli_destroy, "[-h] <-p pid> <-m minor> [-t seconds]" },
	{ "spawn", cli_spawn, "[-h]" },
	{ "attach", cli_attach, "[-h] <-p pid> <-m minor>" },
	{ "detach", cli_detach, "[-h] <-p pid> <-m minor>" },
	{ "open", cli_open,
	  "[-h] <-p pid> <-m minor> <-a type:/path/to/file> [-R readonly] [-D no O_DIRECT] "
	  "[-e parent-minor] [-r] [-2 secondary] [-s] [-t request-timeout]" },
	{ "close", cli_close, "[-h] <-p pid> <-m minor> [-f force] [-t seconds]" },
	{ "pause", cli_pause, "[-h] <-p pid> <-m minor> [-t seconds]" },
	{ "unpause", cli_unpause,
	  "[-h] <-p pid> <-m minor> [-a type:/path/to/file] [-2 secondary] [-c logpath]" },
	{ "stats", cli_stats, "[-h] <-p pid> [-m minor]" },
	{ "nbd-tcp", cli_nbd_tcp,
	  "[-h] <-p pid> <-m minor> <-a host:port> <tls=x509 tls_dir=DIR | tls=psk tls_psk=FILE | "
	  "tls=none> [tls_verify_peer=1]" },
	{ "colo", cli_colo,
	  "[-h] <-p pid> <-m minor> <start primary|secondary [key=value ...] | checkpoint | "
	  "failover [force] | stop | status | xenstore PATH|off>",
	  colo_details },
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *out)
{
	size_t i;

	fprintf(out, "usage: %s <command> [options]\n\ncommands:\n",
		program_invocation_short_name);
	for (i = 0; i < N_COMMANDS; i++)
		fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].usage);
	fprintf(out, "\n'%s <command> -h' prints the command's usage.\n"
		"The control directory is $%s, or %s.\n", program_invocation_short_name,
		BLKTAP_CONTROL_DIR_ENV, BLKTAP2_CONTROL_DIR);
}

int main(int argc, char **argv)
{
	char why[PATH_MAX + 64];
	size_t i;
	int ret;

	if (argc < 2) {
		usage(stderr);
		return 1;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (getenv("TAP_CTL_DEBUG"))
		tap_ctl_debug = 1;
	if (blktap_control_dir_check(why, sizeof(why))) {
		fprintf(stderr, "%s: %s\n", program_invocation_short_name, why);
		return EINVAL;
	}

	for (i = 0; i < N_COMMANDS; i++) {
		if (strcmp(argv[1], commands[i].name))
			continue;
		current = &commands[i];
		optind = 1;
		ret = current->func(argc - 1, argv + 1);
		if (ret < 0)
			ret = -ret;
		return ret > 255 ? 1 : ret;
	}

	fprintf(stderr, "%s: unknown command '%s'\n", program_invocation_short_name, argv[1]);
	usage(stderr);
	return 1;
}

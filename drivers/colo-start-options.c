/*
 * The options of colo start (include/colo-start-options.h).  Plain data and text, with no
 * dependency: tapdisk, libblktapctl and colo-controller all link it.  Ranges are checked
 * in colo-options.c; the sentences here must say the same.
 */
#include <stdio.h>
#include <string.h>

#include "colo-start-options.h"

const struct colo_start_option colo_start_options[] = {
	{ "block_size", COLO_OPTION_BOTH, "SIZE", "4096",
	  "buffer and dirty-map granularity, a power of two, 512 to 1M; alike on both sides" },
	{ "queue_limit", COLO_OPTION_BOTH, "SIZE", "64M",
	  "bytes unacknowledged (Primary) or received and not applied (Secondary), 1M to 64G" },
	{ "ram_limit", COLO_OPTION_SECONDARY, "SIZE", "1G",
	  "buffer bytes held in RAM, at least 1M" },
	{ "spill", COLO_OPTION_SECONDARY, "PATH", "none",
	  "file for the buffer beyond ram_limit, absolute, shorter than 256 bytes" },
	{ "spill_limit", COLO_OPTION_SECONDARY, "SIZE", "0",
	  "bytes in the spill file; 0: until the disk is full" },
	{ "timeout", COLO_OPTION_BOTH, "MS", "5000",
	  "a silent link is dead after this long, 100 to 600000" },
	{ "connect_timeout", COLO_OPTION_PRIMARY, "MS", "30000",
	  "how long to keep retrying the connection, 0 to 3600000" },
	{ "verify", COLO_OPTION_BOTH, "0|1", "0",
	  "1: compare both disks by checksums at start; refuse if they differ" },
	{ "sync", COLO_OPTION_PRIMARY, "full|diff|none", "diff",
	  "copy at start: every extent, those that differ (XXH3-128), none; verify=1: none" },
	{ "sync_rate", COLO_OPTION_PRIMARY, "SIZE", "0",
	  "bytes per second the start's copy reads at most, 0: no bound" },
	{ "pause_target", COLO_OPTION_PRIMARY, "MS", "0",
	  "bound the backlog to this long a checkpoint pause at the measured rate, 0 to 60000; 0: off" },
	{ "peer", COLO_OPTION_SECONDARY, "ADDRESS", "any",
	  "the only address (numeric IPv4 or IPv6) a Primary may connect from" },
	{ "address", COLO_OPTION_BOTH, "HOST:PORT", "name's",
	  "where the Secondary listens (Primary: connects to), [v6]:port; default the VBD name's" },
	{ "dirty_log", COLO_OPTION_BOTH, "PATH", "none",
	  "file (0600) of the extents the Secondary may lack; a Secondary reads its old one" },
	{ "tls", COLO_OPTION_BOTH, "MODE", "-",
	  "x509, psk or none (plain text): required, alike on both sides" },
	{ "tls_dir", COLO_OPTION_BOTH, "PATH", "none",
	  "tls=x509: directory of ca-cert.pem, server-/client-cert.pem and -key.pem" },
	{ "tls_psk", COLO_OPTION_BOTH, "PATH", "none",
	  "tls=psk: psktool file of user:hexkey lines (mode 0600)" },
	{ "tls_user", COLO_OPTION_PRIMARY, "NAME", "none",
	  "tls=psk: the Primary's identity in the tls_psk file" },
	{ "tls_name", COLO_OPTION_PRIMARY, "NAME", "any",
	  "tls=x509: the name the Secondary's certificate must bear" },
	{ "reconnect", COLO_OPTION_BOTH, "0|1", "0",
	  "1: after a lost link, start again by itself: listen, or connect and resync" },
};

const size_t colo_start_options_count =
	sizeof(colo_start_options) / sizeof(colo_start_options[0]);

const struct colo_start_option *colo_start_option_find(const char *name, size_t len)
{
	for (size_t i = 0; i < colo_start_options_count; i++)
		if (strlen(colo_start_options[i].name) == len &&
		    !strncmp(colo_start_options[i].name, name, len))
			return &colo_start_options[i];
	return NULL;
}

const char *colo_start_option_roles(const struct colo_start_option *o)
{
	switch (o->roles) {
	case COLO_OPTION_PRIMARY:
		return "primary";
	case COLO_OPTION_SECONDARY:
		return "secondary";
	default:
		return "both";
	}
}

void colo_start_options_print(FILE *out, const char *indent)
{
	const struct colo_start_option *o;
	char key[32];

	fprintf(out, "%s%-20s %-9s %-7s %s\n", indent, "KEY=VALUE", "ROLE", "DEFAULT", "MEANING");
	for (o = colo_start_options; o < colo_start_options + colo_start_options_count; o++) {
		snprintf(key, sizeof(key), "%s=%s", o->name, o->value);
		fprintf(out, "%s%-20s %-9s %-7s %s\n", indent, key, colo_start_option_roles(o),
			o->deflt, o->meaning);
	}
}

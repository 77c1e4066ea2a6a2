/* nbd-tcp (extension): serve VBD @minor over NBD on a TCP address too. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "tap-ctl-internal.h"
#include "tap-ctl.h"
#include "tapdisk-message-codec.h"

int tap_ctl_nbd_tcp(pid_t pid, int minor, const char *addr, const char *opts, char *bound,
		    size_t bound_size)
{
	char host[TAPDISK_MESSAGE_HOST_MAX], port[TAPDISK_MESSAGE_PORT_MAX];
	struct timeval timeout = { .tv_sec = TAP_CTL_TIMEOUT };
	tapdisk_message_t message;
	int err;

	/* Checked here too, for a clearer message than the round trip would give. */
	if (!opts)
		opts = "";
	if (strlen(addr) >= sizeof(message.u.string.text) || strchr(addr, ' ') ||
	    tapdisk_message_split_hostport(addr, host, sizeof(host), port, sizeof(port))) {
		tap_ctl_error("nbd-tcp: bad address '%s': expected host:port or [v6addr]:port",
			      addr);
		return -EINVAL;
	}

	memset(&message, 0, sizeof(message));
	message.type = TAPDISK_MESSAGE_NBD_TCP;
	message.cookie = minor;
	if (snprintf(message.u.string.text, sizeof(message.u.string.text), "%s%s%s", addr,
		     *opts ? " " : "", opts) >= (int)sizeof(message.u.string.text)) {
		tap_ctl_error("nbd-tcp: the address and options are longer than %zu bytes",
			      sizeof(message.u.string.text) - 1);
		return -ENAMETOOLONG;
	}
	err = tap_ctl_request("nbd-tcp", pid, &message, TAPDISK_MESSAGE_NBD_TCP_RSP, &timeout,
			      NULL);
	if (err)
		return err;
	if (bound && bound_size)
		snprintf(bound, bound_size, "%s", message.u.string.text);
	return 0;
}

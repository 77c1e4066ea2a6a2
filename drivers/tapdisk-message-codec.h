/*
 * Checks of control messages, shared by tapdisk and libblktapctl.  Pure functions: no I/O,
 * no allocation, so that both sides and the fuzzer agree on what a well-formed message is.
 */
#ifndef _TAPDISK_MESSAGE_CODEC_H_
#define _TAPDISK_MESSAGE_CODEC_H_

#include <stddef.h>

#include "tapdisk-message.h"

/* Every flag a client may set in params.flags or resume.flags. */
#define TAPDISK_MESSAGE_FLAG_ALL 0x7ff

/* Flags that ask for a feature this tapdisk does not have. */
#define TAPDISK_MESSAGE_FLAG_UNSUPPORTED                                                      \
	(TAPDISK_MESSAGE_FLAG_ADD_CACHE | TAPDISK_MESSAGE_FLAG_VHD_INDEX |                    \
	 TAPDISK_MESSAGE_FLAG_ADD_LOG | TAPDISK_MESSAGE_FLAG_ADD_LCACHE |                     \
	 TAPDISK_MESSAGE_FLAG_SECONDARY | TAPDISK_MESSAGE_FLAG_STANDBY |                      \
	 TAPDISK_MESSAGE_FLAG_OPEN_ENCRYPTED)

/* Longest host accepted in "host:port" (an IPv6 literal in brackets fits). */
#define TAPDISK_MESSAGE_HOST_MAX 128
#define TAPDISK_MESSAGE_PORT_MAX 32

/* True when @s has a NUL within its @size bytes. */
int tapdisk_message_str_terminated(const char *s, size_t size);

/* True for the ids a client sends (PID, OPEN, ...), false for replies and unknown ids. */
int tapdisk_message_is_request(int type);

/* True when the request names a VBD in its cookie (OPEN, PAUSE, ...). */
int tapdisk_message_needs_vbd(int type);

/*
 * Checks a request as received, before any field is used: known request type, strings
 * terminated within their arrays and non-empty where required, no unknown flag bits.
 * Returns 0, or -EINVAL and a one-sentence reason in @why.
 */
int tapdisk_message_check_request(const tapdisk_message_t *msg, char *why, size_t why_size);

/*
 * Checks a reply as received by a client: a known type, counts and lengths in range,
 * strings terminated.  Returns 0 or -EPROTO with the reason in @why.
 */
int tapdisk_message_check_reply(const tapdisk_message_t *msg, char *why, size_t why_size);

/* The reply id expected for a request id (OPEN -> OPEN_RSP), or -1 for none. */
int tapdisk_message_reply_type(int type);

/*
 * Splits "type:/path" at the first ':'.  Copies the type into @type and points @path into
 * @params.  Returns 0, or -EINVAL when there is no ':', the type is empty or too long, or the
 * path is empty.
 */
int tapdisk_message_split_params(const char *params, char *type, size_t type_size,
				 const char **path);

/*
 * Splits "host:port" at the last ':'; "[v6addr]:port" loses its brackets.  Returns 0, or
 * -EINVAL when a part is missing or too long, or the port is not a number in 0..65535.
 */
int tapdisk_message_split_hostport(const char *addr, char *host, size_t host_size, char *port,
				   size_t port_size);

#endif

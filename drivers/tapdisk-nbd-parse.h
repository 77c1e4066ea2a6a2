/*
 * Pure parsing and checking of NBD client messages: no I/O, no globals, no allocation.
 * The server calls these on bytes straight from the socket, so every function bounds-checks
 * its input and is fuzzed (tests/fuzz/fuzz-nbd-request.c).
 */
#ifndef _TAPDISK_NBD_PARSE_H_
#define _TAPDISK_NBD_PARSE_H_

#include <stddef.h>
#include <stdint.h>

#include "nbd-protocol.h"

#define NBD_REQUEST_SIZE 28u
#define NBD_OPTION_HEADER_SIZE 16u

/* A transmission request header in host order. */
struct nbd_request {
	uint16_t flags;
	uint16_t type;
	uint64_t cookie;
	uint64_t offset;
	uint32_t length;
};

/* What a request is checked against. */
struct nbd_export_limits {
	uint64_t size; /* bytes */
	int read_only;
	int structured; /* structured replies negotiated (DF is only offered then) */
	uint32_t max_payload; /* largest READ/WRITE, bytes */
};

/* An option header in host order. */
struct nbd_option {
	uint32_t option;
	uint32_t length;
};

/* Payload of NBD_OPT_INFO / NBD_OPT_GO.  @name points into the parsed buffer, unterminated. */
struct nbd_info_payload {
	const char *name;
	uint32_t name_len;
	uint16_t n_requests;
	unsigned int want_name : 1;
	unsigned int want_description : 1;
	unsigned int want_block_size : 1;
};

/*
 * Parses the 28-byte request at @buf (@len bytes available) into @req.  Returns 0, -EAGAIN
 * when fewer than 28 bytes are available, or -EBADMSG on a bad magic.
 */
int nbd_parse_request(const void *buf, size_t len, struct nbd_request *req);

/*
 * Checks @req against @lim.  Returns the NBD error to reply with, NBD_SUCCESS if the request
 * may be served.  The payload of a WRITE must be consumed whatever this returns.
 */
uint32_t nbd_check_request(const struct nbd_request *req, const struct nbd_export_limits *lim);

/* Bytes of payload that follow the header of @req on the wire. */
static inline uint32_t nbd_request_payload_len(const struct nbd_request *req)
{
	return req->type == NBD_CMD_WRITE ? req->length : 0;
}

/* Parses a 16-byte option header.  Returns 0, -EAGAIN if short, -EBADMSG on a bad magic. */
int nbd_parse_option(const void *buf, size_t len, struct nbd_option *opt);

/*
 * Checks the 4-byte client flags of the handshake.  Returns 0, or -EINVAL if a bit we do
 * not know is set (the spec then requires us to drop the connection).
 */
int nbd_check_client_flags(uint32_t flags);

/* Parses the data of NBD_OPT_INFO/GO.  Returns 0 or -EINVAL if malformed. */
int nbd_parse_info_payload(const void *buf, size_t len, struct nbd_info_payload *info);

/*
 * Maps an errno (negative or positive) of a failed request to the NBD error value that the
 * client gets.  0 maps to NBD_SUCCESS, anything unknown to NBD_EIO.
 */
uint32_t nbd_error_from_errno(int err);

/* Names for the log; never NULL. */
const char *nbd_opt_name(uint32_t option);
const char *nbd_cmd_name(uint16_t type);
const char *nbd_error_name(uint32_t error);

#endif

/*
 * libFuzzer target for the NBD parsers: the bytes a client can send us.
 *
 * The first byte picks the export the request is checked against (size, read-only,
 * structured replies); the rest is a stream parsed the way the server walks its input
 * buffer: request headers back to back, skipping WRITE payloads, and the same bytes again
 * as option headers and INFO/GO payloads.  Every outcome is checked for consistency, so a
 * wrong answer aborts like a crash does.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tapdisk-nbd-parse.h"

static const uint64_t fuzz_sizes[] = { 0, 512, 1ull << 30, UINT64_MAX - 511, 4095 };

static volatile unsigned int fuzz_sink;

static void fuzz_assert(int cond)
{
	if (!cond)
		abort();
}

static void fuzz_requests(const uint8_t *data, size_t size, const struct nbd_export_limits *lim)
{
	struct nbd_request req;
	uint32_t error;

	while (size) {
		int err = nbd_parse_request(data, size, &req);

		if (err) {
			fuzz_assert(err == -EAGAIN ? size < NBD_REQUEST_SIZE : err == -EBADMSG);
			return;
		}
		error = nbd_check_request(&req, lim);
		if (!error && req.type != NBD_CMD_DISC && req.type != NBD_CMD_FLUSH) {
			/* Whatever passes is in range, aligned and within the payload limit. */
			fuzz_assert(req.offset <= lim->size && req.length <= lim->size - req.offset);
			fuzz_assert(!(req.offset % 512) && !(req.length % 512));
			fuzz_assert(req.type != NBD_CMD_READ || req.length <= lim->max_payload);
			fuzz_assert(req.type != NBD_CMD_WRITE || req.length <= lim->max_payload);
			fuzz_assert(!lim->read_only || req.type == NBD_CMD_READ ||
				    req.type == NBD_CMD_CACHE);
		}
		(void)nbd_cmd_name(req.type);
		(void)nbd_error_name(error);
		data += NBD_REQUEST_SIZE;
		size -= NBD_REQUEST_SIZE;
		/* Skip the payload like the server does, however absurd its length. */
		if (nbd_request_payload_len(&req) >= size)
			return;
		data += nbd_request_payload_len(&req);
		size -= nbd_request_payload_len(&req);
	}
}

static void fuzz_options(const uint8_t *data, size_t size)
{
	struct nbd_info_payload info;
	struct nbd_option opt;

	(void)nbd_check_client_flags(size >= 4 ? (uint32_t)data[0] << 24 | data[3] : 0);
	while (nbd_parse_option(data, size, &opt) == 0) {
		size_t len;

		data += NBD_OPTION_HEADER_SIZE;
		size -= NBD_OPTION_HEADER_SIZE;
		len = opt.length < size ? opt.length : size;
		(void)nbd_opt_name(opt.option);
		if (nbd_parse_info_payload(data, len, &info) == 0) {
			/* The name lies inside the payload, and the requests fill the rest. */
			fuzz_assert((const uint8_t *)info.name == data + 4);
			fuzz_assert(6 + (size_t)info.name_len + 2 * (size_t)info.n_requests == len);
			/* Read the whole name so ASan sees any overrun. */
			for (size_t i = 0; i < info.name_len; i++)
				fuzz_sink += (uint8_t)info.name[i];
		}
		data += len;
		size -= len;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct nbd_export_limits lim;
	uint8_t *copy;

	if (!size)
		return 0;
	lim.size = fuzz_sizes[data[0] % (sizeof(fuzz_sizes) / sizeof(fuzz_sizes[0]))];
	lim.read_only = !!(data[0] & 0x10);
	lim.structured = !!(data[0] & 0x20);
	lim.max_payload = data[0] & 0x40 ? 64u << 20 : 4096;
	data++;
	size--;

	/* An exact-size heap copy, so reading one byte past the input is caught. */
	copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	fuzz_requests(copy, size, &lim);
	fuzz_options(copy, size);
	(void)nbd_parse_info_payload(copy, size, &(struct nbd_info_payload){ 0 });
	(void)nbd_error_from_errno(size >= 4 ? (int)((uint32_t)copy[0] << 24 | copy[1] << 16 |
						      copy[2] << 8 | copy[3]) : 0);
	free(copy);
	return 0;
}

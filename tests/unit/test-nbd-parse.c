/* Unit tests of the NBD request/option parsers and the request checks (tapdisk-nbd-parse.c). */
#include <check.h>
#include <endian.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tapdisk-nbd-parse.h"

#define MiB (1024u * 1024u)
#define EXPORT_SIZE (1ull << 30)

/* ---- helpers building wire messages ---- */

static void put16(uint8_t *p, uint16_t v)
{
	v = htobe16(v);
	memcpy(p, &v, 2);
}

static void put32(uint8_t *p, uint32_t v)
{
	v = htobe32(v);
	memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
	v = htobe64(v);
	memcpy(p, &v, 8);
}

static void wire_request(uint8_t *buf, uint32_t magic, uint16_t flags, uint16_t type,
			 uint64_t cookie, uint64_t offset, uint32_t length)
{
	put32(buf, magic);
	put16(buf + 4, flags);
	put16(buf + 6, type);
	put64(buf + 8, cookie);
	put64(buf + 16, offset);
	put32(buf + 24, length);
}

static struct nbd_request req(uint16_t type, uint16_t flags, uint64_t offset, uint32_t length)
{
	struct nbd_request r = {
		.flags = flags, .type = type, .cookie = 1, .offset = offset, .length = length
	};

	return r;
}

static const struct nbd_export_limits rw_sr = {
	.size = EXPORT_SIZE, .read_only = 0, .structured = 1, .max_payload = 64 * MiB
};
static const struct nbd_export_limits rw_simple = {
	.size = EXPORT_SIZE, .read_only = 0, .structured = 0, .max_payload = 64 * MiB
};
static const struct nbd_export_limits ro_sr = {
	.size = EXPORT_SIZE, .read_only = 1, .structured = 1, .max_payload = 64 * MiB
};

static uint32_t check(uint16_t type, uint16_t flags, uint64_t offset, uint32_t length,
		      const struct nbd_export_limits *lim)
{
	struct nbd_request r = req(type, flags, offset, length);

	return nbd_check_request(&r, lim);
}

/* ---- nbd_parse_request ---- */

START_TEST(test_request_fields)
{
	uint8_t buf[NBD_REQUEST_SIZE];
	struct nbd_request r;

	wire_request(buf, NBD_REQUEST_MAGIC, 0xa5c3, 0x1234, 0x0102030405060708ull,
		     0xfffffffffffffe00ull, 0x89abcdef);
	ck_assert_int_eq(nbd_parse_request(buf, sizeof(buf), &r), 0);
	ck_assert_uint_eq(r.flags, 0xa5c3);
	ck_assert_uint_eq(r.type, 0x1234);
	ck_assert_uint_eq(r.cookie, 0x0102030405060708ull);
	ck_assert_uint_eq(r.offset, 0xfffffffffffffe00ull);
	ck_assert_uint_eq(r.length, 0x89abcdef);
}
END_TEST

START_TEST(test_request_unaligned_buffer)
{
	uint8_t raw[NBD_REQUEST_SIZE + 3];
	struct nbd_request r;

	/* Headers sit anywhere in the input buffer: the parser must not assume alignment. */
	wire_request(raw + 3, NBD_REQUEST_MAGIC, 1, NBD_CMD_WRITE, 42, 4096, 512);
	ck_assert_int_eq(nbd_parse_request(raw + 3, NBD_REQUEST_SIZE, &r), 0);
	ck_assert_uint_eq(r.type, NBD_CMD_WRITE);
	ck_assert_uint_eq(r.flags, NBD_CMD_FLAG_FUA);
	ck_assert_uint_eq(r.cookie, 42);
	ck_assert_uint_eq(r.offset, 4096);
	ck_assert_uint_eq(r.length, 512);
}
END_TEST

START_TEST(test_request_truncated)
{
	uint8_t buf[NBD_REQUEST_SIZE];
	struct nbd_request r;
	size_t len;

	wire_request(buf, NBD_REQUEST_MAGIC, 0, NBD_CMD_READ, 1, 0, 512);
	for (len = 0; len < NBD_REQUEST_SIZE; len++)
		ck_assert_int_eq(nbd_parse_request(buf, len, &r), -EAGAIN);
	/* Extra bytes after the header belong to the next message. */
	ck_assert_int_eq(nbd_parse_request(buf, NBD_REQUEST_SIZE, &r), 0);
}
END_TEST

START_TEST(test_request_bad_magic)
{
	uint8_t buf[NBD_REQUEST_SIZE];
	struct nbd_request r;

	wire_request(buf, NBD_SIMPLE_REPLY_MAGIC, 0, NBD_CMD_READ, 1, 0, 512);
	ck_assert_int_eq(nbd_parse_request(buf, sizeof(buf), &r), -EBADMSG);
	/* Byte-swapped magic: a client with the wrong endianness. */
	wire_request(buf, 0x13956025, 0, NBD_CMD_READ, 1, 0, 512);
	ck_assert_int_eq(nbd_parse_request(buf, sizeof(buf), &r), -EBADMSG);
	/* The extended-header magic is not ours either. */
	wire_request(buf, 0x21e41c71, 0, NBD_CMD_READ, 1, 0, 512);
	ck_assert_int_eq(nbd_parse_request(buf, sizeof(buf), &r), -EBADMSG);
}
END_TEST

/* ---- nbd_check_request ---- */

START_TEST(test_check_valid)
{
	ck_assert_uint_eq(check(NBD_CMD_READ, 0, 0, 4096, &rw_sr), NBD_SUCCESS);
	ck_assert_uint_eq(check(NBD_CMD_WRITE, 0, 4096, 4096, &rw_sr), NBD_SUCCESS);
	ck_assert_uint_eq(check(NBD_CMD_DISC, 0, 0, 0, &rw_sr), NBD_SUCCESS);
	ck_assert_uint_eq(check(NBD_CMD_FLUSH, 0, 0, 0, &rw_sr), NBD_SUCCESS);
	ck_assert_uint_eq(check(NBD_CMD_TRIM, 0, 0, 1 * MiB, &rw_sr), NBD_SUCCESS);
	ck_assert_uint_eq(check(NBD_CMD_CACHE, 0, 0, 1 * MiB, &rw_sr), NBD_SUCCESS);
	ck_assert_uint_eq(check(NBD_CMD_WRITE_ZEROES, 0, 0, 1 * MiB, &rw_sr), NBD_SUCCESS);
	/* The whole export, and the last sector. */
	ck_assert_uint_eq(check(NBD_CMD_TRIM, 0, 0, 1u << 30, &rw_sr), NBD_SUCCESS);
	ck_assert_uint_eq(check(NBD_CMD_READ, 0, EXPORT_SIZE - 512, 512, &rw_sr), NBD_SUCCESS);
	ck_assert_uint_eq(check(NBD_CMD_WRITE, 0, EXPORT_SIZE - 512, 512, &rw_sr), NBD_SUCCESS);
}
END_TEST

START_TEST(test_check_unknown_command)
{
	ck_assert_uint_eq(check(NBD_CMD_BLOCK_STATUS, 0, 0, 4096, &rw_sr), NBD_EINVAL);
	ck_assert_uint_eq(check(NBD_CMD_RESIZE, 0, 0, 0, &rw_sr), NBD_EINVAL);
	ck_assert_uint_eq(check(9, 0, 0, 0, &rw_sr), NBD_EINVAL);
	ck_assert_uint_eq(check(0xffff, 0, 0, 0, &rw_sr), NBD_EINVAL);
}
END_TEST

START_TEST(test_check_flags)
{
	/* FUA is accepted on every command. */
	ck_assert_uint_eq(check(NBD_CMD_READ, NBD_CMD_FLAG_FUA, 0, 512, &rw_sr), NBD_SUCCESS);
	ck_assert_uint_eq(check(NBD_CMD_WRITE, NBD_CMD_FLAG_FUA, 0, 512, &rw_sr), NBD_SUCCESS);
	ck_assert_uint_eq(check(NBD_CMD_FLUSH, NBD_CMD_FLAG_FUA, 0, 0, &rw_sr), NBD_SUCCESS);
	ck_assert_uint_eq(check(NBD_CMD_TRIM, NBD_CMD_FLAG_FUA, 0, 512, &rw_sr), NBD_SUCCESS);
	ck_assert_uint_eq(check(NBD_CMD_CACHE, NBD_CMD_FLAG_FUA, 0, 512, &rw_sr), NBD_SUCCESS);
	ck_assert_uint_eq(check(NBD_CMD_WRITE_ZEROES, NBD_CMD_FLAG_FUA, 0, 512, &rw_sr),
			  NBD_SUCCESS);
	/* NO_HOLE only on WRITE_ZEROES. */
	ck_assert_uint_eq(check(NBD_CMD_WRITE_ZEROES, NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_FUA, 0,
				512, &rw_sr), NBD_SUCCESS);
	ck_assert_uint_eq(check(NBD_CMD_WRITE, NBD_CMD_FLAG_NO_HOLE, 0, 512, &rw_sr), NBD_EINVAL);
	ck_assert_uint_eq(check(NBD_CMD_TRIM, NBD_CMD_FLAG_NO_HOLE, 0, 512, &rw_sr), NBD_EINVAL);
	/* DF only on READ, and only once structured replies are on. */
	ck_assert_uint_eq(check(NBD_CMD_READ, NBD_CMD_FLAG_DF, 0, 512, &rw_sr), NBD_SUCCESS);
	ck_assert_uint_eq(check(NBD_CMD_READ, NBD_CMD_FLAG_DF, 0, 512, &rw_simple), NBD_EINVAL);
	ck_assert_uint_eq(check(NBD_CMD_WRITE, NBD_CMD_FLAG_DF, 0, 512, &rw_sr), NBD_EINVAL);
	/* FAST_ZERO is not offered, REQ_ONE belongs to BLOCK_STATUS, the rest is unknown. */
	ck_assert_uint_eq(check(NBD_CMD_WRITE_ZEROES, NBD_CMD_FLAG_FAST_ZERO, 0, 512, &rw_sr),
			  NBD_EINVAL);
	ck_assert_uint_eq(check(NBD_CMD_READ, NBD_CMD_FLAG_REQ_ONE, 0, 512, &rw_sr), NBD_EINVAL);
	ck_assert_uint_eq(check(NBD_CMD_WRITE, NBD_CMD_FLAG_PAYLOAD_LEN, 0, 512, &rw_sr),
			  NBD_EINVAL);
	ck_assert_uint_eq(check(NBD_CMD_READ, 0x8000, 0, 512, &rw_sr), NBD_EINVAL);
	ck_assert_uint_eq(check(NBD_CMD_DISC, 0x0100, 0, 0, &rw_sr), NBD_EINVAL);
}
END_TEST

START_TEST(test_check_flush_disc_fields)
{
	ck_assert_uint_eq(check(NBD_CMD_FLUSH, 0, 512, 0, &rw_sr), NBD_EINVAL);
	ck_assert_uint_eq(check(NBD_CMD_FLUSH, 0, 0, 512, &rw_sr), NBD_EINVAL);
	ck_assert_uint_eq(check(NBD_CMD_DISC, 0, 1, 0, &rw_sr), NBD_EINVAL);
	ck_assert_uint_eq(check(NBD_CMD_DISC, 0, 0, 1, &rw_sr), NBD_EINVAL);
	/* Flush needs no write permission. */
	ck_assert_uint_eq(check(NBD_CMD_FLUSH, 0, 0, 0, &ro_sr), NBD_SUCCESS);
}
END_TEST

START_TEST(test_check_alignment)
{
	ck_assert_uint_eq(check(NBD_CMD_READ, 0, 1, 512, &rw_sr), NBD_EINVAL);
	ck_assert_uint_eq(check(NBD_CMD_READ, 0, 0, 511, &rw_sr), NBD_EINVAL);
	ck_assert_uint_eq(check(NBD_CMD_READ, 0, 0, 1, &rw_sr), NBD_EINVAL);
	ck_assert_uint_eq(check(NBD_CMD_WRITE, 0, 256, 512, &rw_sr), NBD_EINVAL);
	ck_assert_uint_eq(check(NBD_CMD_WRITE, 0, 0, 4097, &rw_sr), NBD_EINVAL);
	ck_assert_uint_eq(check(NBD_CMD_TRIM, 0, 511, 512, &rw_sr), NBD_EINVAL);
	ck_assert_uint_eq(check(NBD_CMD_CACHE, 0, 0, 100, &rw_sr), NBD_EINVAL);
	ck_assert_uint_eq(check(NBD_CMD_WRITE_ZEROES, 0, 0, 513, &rw_sr), NBD_EINVAL);
	/* Misalignment is reported before a range error. */
	ck_assert_uint_eq(check(NBD_CMD_WRITE, 0, EXPORT_SIZE + 1, 512, &rw_sr), NBD_EINVAL);
}
END_TEST

START_TEST(test_check_range)
{
	/* Past the end: EINVAL for reads, trims and cache; ENOSPC for writes. */
	ck_assert_uint_eq(check(NBD_CMD_READ, 0, EXPORT_SIZE, 512, &rw_sr), NBD_EINVAL);
	ck_assert_uint_eq(check(NBD_CMD_TRIM, 0, EXPORT_SIZE - 512, 1024, &rw_sr), NBD_EINVAL);
	ck_assert_uint_eq(check(NBD_CMD_CACHE, 0, EXPORT_SIZE, 512, &rw_sr), NBD_EINVAL);
	ck_assert_uint_eq(check(NBD_CMD_TRIM, 0, 0, 0xfffffe00u, &rw_sr), NBD_EINVAL);
	ck_assert_uint_eq(check(NBD_CMD_WRITE, 0, EXPORT_SIZE, 512, &rw_sr), NBD_ENOSPC);
	ck_assert_uint_eq(check(NBD_CMD_WRITE, 0, EXPORT_SIZE - 512, 1024, &rw_sr), NBD_ENOSPC);
	ck_assert_uint_eq(check(NBD_CMD_WRITE_ZEROES, 0, EXPORT_SIZE - 512, 1024, &rw_sr),
			  NBD_ENOSPC);
	ck_assert_uint_eq(check(NBD_CMD_WRITE_ZEROES, 0, 0, 0xfffffe00u, &rw_sr), NBD_ENOSPC);
	/* Far past the end. */
	ck_assert_uint_eq(check(NBD_CMD_READ, 0, 1ull << 62, 512, &rw_sr), NBD_EINVAL);
	ck_assert_uint_eq(check(NBD_CMD_WRITE, 0, 1ull << 62, 512, &rw_sr), NBD_ENOSPC);
}
END_TEST

START_TEST(test_check_overflow)
{
	struct nbd_export_limits huge = rw_sr;
	uint64_t top = UINT64_MAX - 511; /* aligned, and offset + 512 wraps to 0 */

	ck_assert_uint_eq(check(NBD_CMD_READ, 0, top, 512, &rw_sr), NBD_EINVAL);
	ck_assert_uint_eq(check(NBD_CMD_WRITE, 0, top, 512, &rw_sr), NBD_ENOSPC);
	ck_assert_uint_eq(check(NBD_CMD_TRIM, 0, top, 0xfffffe00u, &rw_sr), NBD_EINVAL);
	/* Even against an export as large as can be, the sum must not wrap into range. */
	huge.size = UINT64_MAX - 511;
	ck_assert_uint_eq(check(NBD_CMD_READ, 0, top, 512, &huge), NBD_EINVAL);
	ck_assert_uint_eq(check(NBD_CMD_WRITE_ZEROES, 0, top - 512, 1024, &huge), NBD_ENOSPC);
	ck_assert_uint_eq(check(NBD_CMD_READ, 0, top - 512, 512, &huge), NBD_SUCCESS);
}
END_TEST

START_TEST(test_check_zero_length)
{
	ck_assert_uint_eq(check(NBD_CMD_READ, 0, 0, 0, &rw_sr), NBD_SUCCESS);
	ck_assert_uint_eq(check(NBD_CMD_WRITE, 0, 0, 0, &rw_sr), NBD_SUCCESS);
	ck_assert_uint_eq(check(NBD_CMD_TRIM, 0, 0, 0, &rw_sr), NBD_SUCCESS);
	ck_assert_uint_eq(check(NBD_CMD_WRITE_ZEROES, 0, 0, 0, &rw_sr), NBD_SUCCESS);
	/* At the very end is fine; beyond it is not. */
	ck_assert_uint_eq(check(NBD_CMD_READ, 0, EXPORT_SIZE, 0, &rw_sr), NBD_SUCCESS);
	ck_assert_uint_eq(check(NBD_CMD_READ, 0, EXPORT_SIZE + 512, 0, &rw_sr), NBD_EINVAL);
	ck_assert_uint_eq(check(NBD_CMD_WRITE, 0, EXPORT_SIZE + 512, 0, &rw_sr), NBD_ENOSPC);
}
END_TEST

START_TEST(test_check_max_payload)
{
	ck_assert_uint_eq(check(NBD_CMD_READ, 0, 0, 64 * MiB, &rw_sr), NBD_SUCCESS);
	ck_assert_uint_eq(check(NBD_CMD_WRITE, 0, 0, 64 * MiB, &rw_sr), NBD_SUCCESS);
	ck_assert_uint_eq(check(NBD_CMD_READ, 0, 0, 64 * MiB + 512, &rw_sr), NBD_EINVAL);
	ck_assert_uint_eq(check(NBD_CMD_READ, NBD_CMD_FLAG_DF, 0, 64 * MiB + 512, &rw_sr),
			  NBD_EOVERFLOW);
	ck_assert_uint_eq(check(NBD_CMD_WRITE, 0, 0, 64 * MiB + 512, &rw_sr), NBD_EINVAL);
	ck_assert_uint_eq(check(NBD_CMD_WRITE, 0, 0, 0xfffffe00u, &rw_sr), NBD_EINVAL);
	/* Commands without a payload are not bound by it. */
	ck_assert_uint_eq(check(NBD_CMD_TRIM, 0, 0, 512 * MiB, &rw_sr), NBD_SUCCESS);
	ck_assert_uint_eq(check(NBD_CMD_WRITE_ZEROES, 0, 0, 512 * MiB, &rw_sr), NBD_SUCCESS);
	ck_assert_uint_eq(check(NBD_CMD_CACHE, 0, 0, 512 * MiB, &rw_sr), NBD_SUCCESS);
}
END_TEST

START_TEST(test_check_read_only)
{
	ck_assert_uint_eq(check(NBD_CMD_READ, 0, 0, 4096, &ro_sr), NBD_SUCCESS);
	ck_assert_uint_eq(check(NBD_CMD_CACHE, 0, 0, 4096, &ro_sr), NBD_SUCCESS);
	ck_assert_uint_eq(check(NBD_CMD_WRITE, 0, 0, 4096, &ro_sr), NBD_EPERM);
	ck_assert_uint_eq(check(NBD_CMD_WRITE_ZEROES, 0, 0, 4096, &ro_sr), NBD_EPERM);
	ck_assert_uint_eq(check(NBD_CMD_TRIM, 0, 0, 4096, &ro_sr), NBD_EPERM);
	/* EPERM wins over range errors: the client learns the real reason. */
	ck_assert_uint_eq(check(NBD_CMD_WRITE, 0, EXPORT_SIZE, 4096, &ro_sr), NBD_EPERM);
}
END_TEST

START_TEST(test_payload_len)
{
	struct nbd_request r = req(NBD_CMD_WRITE, 0, 0, 12345);

	ck_assert_uint_eq(nbd_request_payload_len(&r), 12345);
	r.type = NBD_CMD_WRITE_ZEROES;
	ck_assert_uint_eq(nbd_request_payload_len(&r), 0);
	r.type = NBD_CMD_READ;
	ck_assert_uint_eq(nbd_request_payload_len(&r), 0);
	r.type = 0x77;
	ck_assert_uint_eq(nbd_request_payload_len(&r), 0);
}
END_TEST

/* ---- options ---- */

START_TEST(test_option_header)
{
	uint8_t buf[NBD_OPTION_HEADER_SIZE];
	struct nbd_option opt;
	size_t len;

	put64(buf, NBD_IHAVEOPT);
	put32(buf + 8, NBD_OPT_GO);
	put32(buf + 12, 0xdeadbeef);
	ck_assert_int_eq(nbd_parse_option(buf, sizeof(buf), &opt), 0);
	ck_assert_uint_eq(opt.option, NBD_OPT_GO);
	ck_assert_uint_eq(opt.length, 0xdeadbeef);
	for (len = 0; len < sizeof(buf); len++)
		ck_assert_int_eq(nbd_parse_option(buf, len, &opt), -EAGAIN);
	put64(buf, NBD_MAGIC);
	ck_assert_int_eq(nbd_parse_option(buf, sizeof(buf), &opt), -EBADMSG);
}
END_TEST

START_TEST(test_client_flags)
{
	ck_assert_int_eq(nbd_check_client_flags(0), 0);
	ck_assert_int_eq(nbd_check_client_flags(NBD_FLAG_C_FIXED_NEWSTYLE), 0);
	ck_assert_int_eq(nbd_check_client_flags(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES),
			 0);
	ck_assert_int_eq(nbd_check_client_flags(1u << 2), -EINVAL);
	ck_assert_int_eq(nbd_check_client_flags(1u << 31), -EINVAL);
	ck_assert_int_eq(nbd_check_client_flags(0xffffffffu), -EINVAL);
}
END_TEST

/* Builds an INFO/GO payload; returns its length. */
static size_t info_payload(uint8_t *buf, const char *name, uint16_t n, const uint16_t *infos)
{
	size_t len = strlen(name), i;

	put32(buf, len);
	memcpy(buf + 4, name, len);
	put16(buf + 4 + len, n);
	for (i = 0; i < n; i++)
		put16(buf + 6 + len + 2 * i, infos[i]);
	return 6 + len + 2 * (size_t)n;
}

START_TEST(test_info_valid)
{
	const uint16_t infos[] = { NBD_INFO_BLOCK_SIZE, NBD_INFO_NAME, 0x4242,
				   NBD_INFO_DESCRIPTION, NBD_INFO_EXPORT };
	struct nbd_info_payload info;
	uint8_t buf[64];
	size_t len;

	len = info_payload(buf, "tapdisk_client", 5, infos);
	ck_assert_int_eq(nbd_parse_info_payload(buf, len, &info), 0);
	ck_assert_uint_eq(info.name_len, 14);
	ck_assert(info.name == (const char *)buf + 4);
	ck_assert_int_eq(memcmp(info.name, "tapdisk_client", 14), 0);
	ck_assert_uint_eq(info.n_requests, 5);
	ck_assert_uint_eq(info.want_name, 1);
	ck_assert_uint_eq(info.want_description, 1);
	ck_assert_uint_eq(info.want_block_size, 1);
}
END_TEST

START_TEST(test_info_empty)
{
	struct nbd_info_payload info;
	uint8_t buf[8];
	size_t len;

	/* Default export, no information requests: the smallest valid payload. */
	len = info_payload(buf, "", 0, NULL);
	ck_assert_uint_eq(len, 6);
	ck_assert_int_eq(nbd_parse_info_payload(buf, len, &info), 0);
	ck_assert_uint_eq(info.name_len, 0);
	ck_assert_uint_eq(info.n_requests, 0);
	ck_assert_uint_eq(info.want_name, 0);
	ck_assert_uint_eq(info.want_description, 0);
	ck_assert_uint_eq(info.want_block_size, 0);
}
END_TEST

START_TEST(test_info_truncated)
{
	const uint16_t infos[] = { NBD_INFO_NAME, NBD_INFO_BLOCK_SIZE };
	struct nbd_info_payload info;
	uint8_t buf[64];
	size_t len, cut;

	len = info_payload(buf, "disk", 2, infos);
	/* Every strict prefix is malformed, including the empty one. */
	for (cut = 0; cut < len; cut++)
		ck_assert_int_eq(nbd_parse_info_payload(buf, cut, &info), -EINVAL);
	ck_assert_int_eq(nbd_parse_info_payload(buf, len, &info), 0);
	/* A trailing byte is malformed too. */
	buf[len] = 0;
	ck_assert_int_eq(nbd_parse_info_payload(buf, len + 1, &info), -EINVAL);
}
END_TEST

START_TEST(test_info_huge_lengths)
{
	struct nbd_info_payload info;
	uint8_t buf[16] = { 0 };

	/* A name length that would wrap a 32-bit sum, and one just past the buffer. */
	put32(buf, 0xffffffffu);
	ck_assert_int_eq(nbd_parse_info_payload(buf, sizeof(buf), &info), -EINVAL);
	put32(buf, 0xfffffffcu);
	ck_assert_int_eq(nbd_parse_info_payload(buf, sizeof(buf), &info), -EINVAL);
	put32(buf, sizeof(buf) - 5);
	ck_assert_int_eq(nbd_parse_info_payload(buf, sizeof(buf), &info), -EINVAL);
	/* Name fits exactly but the count does not. */
	put32(buf, sizeof(buf) - 4);
	ck_assert_int_eq(nbd_parse_info_payload(buf, sizeof(buf), &info), -EINVAL);
	/* Name fits, the count claims more requests than there are bytes. */
	put32(buf, 4);
	put16(buf + 8, 0xffff);
	ck_assert_int_eq(nbd_parse_info_payload(buf, sizeof(buf), &info), -EINVAL);
	/* ... or fewer. */
	put16(buf + 8, 1);
	ck_assert_int_eq(nbd_parse_info_payload(buf, sizeof(buf), &info), -EINVAL);
	/* 16 = 4 + 4 + 2 + 3 * 2: exactly three requests. */
	put16(buf + 8, 3);
	ck_assert_int_eq(nbd_parse_info_payload(buf, sizeof(buf), &info), 0);
	ck_assert_uint_eq(info.n_requests, 3);
}
END_TEST

/* ---- errors and names ---- */

START_TEST(test_errno_map)
{
	ck_assert_uint_eq(nbd_error_from_errno(0), NBD_SUCCESS);
	ck_assert_uint_eq(nbd_error_from_errno(-EPERM), NBD_EPERM);
	ck_assert_uint_eq(nbd_error_from_errno(-EROFS), NBD_EPERM);
	ck_assert_uint_eq(nbd_error_from_errno(-EACCES), NBD_EPERM);
	ck_assert_uint_eq(nbd_error_from_errno(-EIO), NBD_EIO);
	ck_assert_uint_eq(nbd_error_from_errno(-ENOMEM), NBD_ENOMEM);
	ck_assert_uint_eq(nbd_error_from_errno(-EINVAL), NBD_EINVAL);
	ck_assert_uint_eq(nbd_error_from_errno(-ENOSPC), NBD_ENOSPC);
	ck_assert_uint_eq(nbd_error_from_errno(-EDQUOT), NBD_ENOSPC);
	ck_assert_uint_eq(nbd_error_from_errno(-EFBIG), NBD_ENOSPC);
	ck_assert_uint_eq(nbd_error_from_errno(-EOVERFLOW), NBD_EOVERFLOW);
	ck_assert_uint_eq(nbd_error_from_errno(-ENOTSUP), NBD_ENOTSUP);
	ck_assert_uint_eq(nbd_error_from_errno(-EOPNOTSUPP), NBD_ENOTSUP);
	ck_assert_uint_eq(nbd_error_from_errno(-ESHUTDOWN), NBD_ESHUTDOWN);
	/* Unknown errors are I/O errors; positive values work the same. */
	ck_assert_uint_eq(nbd_error_from_errno(-ENODEV), NBD_EIO);
	ck_assert_uint_eq(nbd_error_from_errno(-ETIMEDOUT), NBD_EIO);
	ck_assert_uint_eq(nbd_error_from_errno(EIO), NBD_EIO);
	ck_assert_uint_eq(nbd_error_from_errno(ENOSPC), NBD_ENOSPC);
	ck_assert_uint_eq(nbd_error_from_errno(-100000), NBD_EIO);
	ck_assert_uint_eq(nbd_error_from_errno(-2147483647), NBD_EIO);
	ck_assert_uint_eq(nbd_error_from_errno(INT32_MIN), NBD_EIO);
}
END_TEST

START_TEST(test_names)
{
	ck_assert_str_eq(nbd_cmd_name(NBD_CMD_WRITE_ZEROES), "WRITE_ZEROES");
	ck_assert_str_eq(nbd_cmd_name(0x7777), "unknown command");
	ck_assert_str_eq(nbd_opt_name(NBD_OPT_GO), "GO");
	ck_assert_str_eq(nbd_opt_name(NBD_OPT_EXTENDED_HEADERS), "EXTENDED_HEADERS");
	ck_assert_str_eq(nbd_opt_name(0), "unknown option");
	ck_assert_str_eq(nbd_error_name(NBD_ENOSPC), "ENOSPC");
	ck_assert_str_eq(nbd_error_name(12345), "unknown error");
}
END_TEST

static Suite *nbd_parse_suite(void)
{
	Suite *s = suite_create("nbd-parse");
	TCase *tc;

	tc = tcase_create("request");
	tcase_add_test(tc, test_request_fields);
	tcase_add_test(tc, test_request_unaligned_buffer);
	tcase_add_test(tc, test_request_truncated);
	tcase_add_test(tc, test_request_bad_magic);
	suite_add_tcase(s, tc);

	tc = tcase_create("check");
	tcase_add_test(tc, test_check_valid);
	tcase_add_test(tc, test_check_unknown_command);
	tcase_add_test(tc, test_check_flags);
	tcase_add_test(tc, test_check_flush_disc_fields);
	tcase_add_test(tc, test_check_alignment);
	tcase_add_test(tc, test_check_range);
	tcase_add_test(tc, test_check_overflow);
	tcase_add_test(tc, test_check_zero_length);
	tcase_add_test(tc, test_check_max_payload);
	tcase_add_test(tc, test_check_read_only);
	tcase_add_test(tc, test_payload_len);
	suite_add_tcase(s, tc);

	tc = tcase_create("option");
	tcase_add_test(tc, test_option_header);
	tcase_add_test(tc, test_client_flags);
	tcase_add_test(tc, test_info_valid);
	tcase_add_test(tc, test_info_empty);
	tcase_add_test(tc, test_info_truncated);
	tcase_add_test(tc, test_info_huge_lengths);
	suite_add_tcase(s, tc);

	tc = tcase_create("errors");
	tcase_add_test(tc, test_errno_map);
	tcase_add_test(tc, test_names);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(nbd_parse_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

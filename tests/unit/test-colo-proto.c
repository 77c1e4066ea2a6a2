/* Unit tests of CRC-32C (crc32c.c) and the replication link's codec (colo-proto.c). */
#include <check.h>
#include <endian.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "colo-proto.h"
#include "crc32c.h"

#define MiB (1024u * 1024u)
#define DISK_SIZE (1ull << 30)

static const struct colo_frame_limits lim = {.disk_size = DISK_SIZE};

/* A fixed-seed generator: a failure reproduces exactly. */
static uint64_t rng_state;

static void rng_seed(uint64_t seed)
{
	rng_state = seed * 0x9e3779b97f4a7c15ull + 1;
}

static uint32_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state >> 16);
}

static void rng_fill(void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len--)
		*p++ = (uint8_t)rng();
}

/* ---- CRC-32C ---- */

START_TEST(test_crc_vectors)
{
	uint8_t buf[32];
	int i;

	ck_assert_uint_eq(crc32c(0, "123456789", 9), 0xe3069283);
	ck_assert_uint_eq(crc32c_sw(0, "123456789", 9), 0xe3069283);
	/* RFC 3720, appendix B.4 (iSCSI). */
	memset(buf, 0, sizeof(buf));
	ck_assert_uint_eq(crc32c(0, buf, sizeof(buf)), 0x8a9136aa);
	ck_assert_uint_eq(crc32c_sw(0, buf, sizeof(buf)), 0x8a9136aa);
	memset(buf, 0xff, sizeof(buf));
	ck_assert_uint_eq(crc32c(0, buf, sizeof(buf)), 0x62a8ab43);
	ck_assert_uint_eq(crc32c_sw(0, buf, sizeof(buf)), 0x62a8ab43);
	for (i = 0; i < 32; i++)
		buf[i] = (uint8_t)i;
	ck_assert_uint_eq(crc32c(0, buf, sizeof(buf)), 0x46dd794e);
	ck_assert_uint_eq(crc32c_sw(0, buf, sizeof(buf)), 0x46dd794e);
	for (i = 0; i < 32; i++)
		buf[i] = (uint8_t)(31 - i);
	ck_assert_uint_eq(crc32c(0, buf, sizeof(buf)), 0x113fdb5c);
	ck_assert_uint_eq(crc32c_sw(0, buf, sizeof(buf)), 0x113fdb5c);
}
END_TEST

START_TEST(test_crc_empty)
{
	ck_assert_uint_eq(crc32c(0, NULL, 0), 0);
	ck_assert_uint_eq(crc32c_sw(0, NULL, 0), 0);
	/* An empty piece leaves a running value as it is. */
	ck_assert_uint_eq(crc32c(0x12345678, "", 0), 0x12345678);
	ck_assert_uint_eq(crc32c_sw(0xdeadbeef, "", 0), 0xdeadbeef);
}
END_TEST

START_TEST(test_crc_chaining)
{
	static uint8_t buf[100000];
	size_t cut, len;
	uint32_t whole;
	int i;

	rng_seed(1);
	rng_fill(buf, sizeof(buf));
	for (i = 0; i < 200; i++) {
		len = rng() % sizeof(buf);
		cut = len ? rng() % len : 0;
		whole = crc32c(0, buf, len);
		ck_assert_uint_eq(crc32c(crc32c(0, buf, cut), buf + cut, len - cut), whole);
		ck_assert_uint_eq(crc32c_sw(crc32c_sw(0, buf, cut), buf + cut, len - cut), whole);
		/* Mixed: both keep the same running value. */
		ck_assert_uint_eq(crc32c_sw(crc32c(0, buf, cut), buf + cut, len - cut), whole);
	}
}
END_TEST

START_TEST(test_crc_hw_matches_sw)
{
	static uint8_t buf[200000 + 8];
	size_t len, off;
	int i;

	rng_seed(2);
	rng_fill(buf, sizeof(buf));
	/* Every length that reaches the one-, three-way short and tail paths, off alignment. */
	for (len = 0; len <= 10000; len++) {
		off = 1 + len % 7;
		ck_assert_uint_eq(crc32c(0, buf + off, len), crc32c_sw(0, buf + off, len));
		ck_assert_uint_eq(crc32c(len, buf + 8 - off, len),
				  crc32c_sw(len, buf + 8 - off, len));
	}
	/* Long enough for the three-way long blocks (3 x 8192 bytes) and the paths after it. */
	for (i = 0; i < 300; i++) {
		len = rng() % 200000;
		off = rng() % 8;
		ck_assert_uint_eq(crc32c(i, buf + off, len), crc32c_sw(i, buf + off, len));
	}
}
END_TEST

/* ---- hello ---- */

static struct colo_hello good_hello(void)
{
	struct colo_hello h = {
		.version = COLO_PROTO_VERSION,
		.flags = COLO_HELLO_VERIFY,
		.disk_size = DISK_SIZE,
		.block_size = 4096,
		.auth_type = COLO_AUTH_NONE,
		.auth_len = 0,
	};
	int i;

	for (i = 0; i < 16; i++) {
		h.session_id[i] = (uint8_t)(0xa0 + i);
		h.pair_id[i] = (uint8_t)(0x10 + i);
	}
	return h;
}

static int hello_decode(const struct colo_hello *in, char *err)
{
	struct colo_wire_hello w;
	struct colo_hello h;

	colo_hello_encode(in, &w);
	return colo_hello_decode(&w, &h, err, 128);
}

#define ck_hello_rejects(h, errno_, msg)                                                           \
	do {                                                                                       \
		char err_[128] = "";                                                               \
		ck_assert_int_eq(hello_decode(&(h), err_), errno_);                                \
		ck_assert_str_eq(err_, msg);                                                       \
	} while (0)

START_TEST(test_hello_round_trip)
{
	struct colo_hello in = good_hello(), out;
	struct colo_wire_hello w;
	const uint8_t *b = (const uint8_t *)&w;
	char err[128] = "";

	colo_hello_encode(&in, &w);
	/* The layout of docs/colo-protocol.md, big-endian. */
	ck_assert_int_eq(memcmp(b, "BLKCOLO1", 8), 0);
	ck_assert_int_eq(memcmp(b + 8, "\0\0\0\5", 4), 0);
	ck_assert_int_eq(memcmp(b + 12, "\0\0\0\1", 4), 0);
	ck_assert_int_eq(memcmp(b + 16, "\0\0\0\0\x40\0\0\0", 8), 0);
	ck_assert_int_eq(memcmp(b + 24, "\0\0\x10\0", 4), 0);
	ck_assert_int_eq(memcmp(b + 32, in.session_id, 16), 0);
	ck_assert_int_eq(memcmp(b + 48, "\0\0\0\0", 4), 0);
	ck_assert_int_eq(memcmp(b + 52, in.pair_id, 16), 0);
	ck_assert_int_eq(memcmp(b + 68, "\0\0\0\0\0\0\0\0\0\0\0\0", 12), 0);

	memset(&out, 0x55, sizeof(out));
	ck_assert_int_eq(colo_hello_decode(&w, &out, err, sizeof(err)), 0);
	ck_assert_str_eq(err, "");
	ck_assert_int_eq(memcmp(&in, &out, sizeof(in)), 0);

	/* RESUME (with SYNC) and its checkpoint, at offset 68. */
	in.flags = COLO_HELLO_SYNC | COLO_HELLO_SYNC_DIFF | COLO_HELLO_RESUME;
	in.resume_epoch = 0x0102030405060708ull;
	colo_hello_encode(&in, &w);
	ck_assert_int_eq(memcmp(b + 12, "\0\0\0\x0e", 4), 0);
	ck_assert_int_eq(memcmp(b + 68, "\1\2\3\4\5\6\7\x08", 8), 0);
	ck_assert_int_eq(colo_hello_decode(&w, &out, err, sizeof(err)), 0);
	ck_assert_int_eq(memcmp(&in, &out, sizeof(in)), 0);

	/* The edges of the accepted ranges. */
	in.resume_epoch = 0;
	in.flags = 0;
	in.block_size = 512;
	in.disk_size = 512;
	ck_assert_int_eq(hello_decode(&in, err), 0);
	in.block_size = MiB;
	in.disk_size = UINT64_MAX - 511;
	ck_assert_int_eq(hello_decode(&in, err), 0);
}
END_TEST

START_TEST(test_hello_rejects)
{
	struct colo_hello h = good_hello();
	struct colo_wire_hello w;
	struct colo_hello out;
	char err[128];
	int i;

	colo_hello_encode(&h, &w);
	w.magic = htobe64(0x424c4b434f4c4f32ull);
	ck_assert_int_eq(colo_hello_decode(&w, &out, err, sizeof(err)), -EPROTO);
	ck_assert_str_eq(err, "bad hello magic 0x424c4b434f4c4f32");

	for (i = 0; i < 4; i++) {
		colo_hello_encode(&h, &w);
		w.reserved = htobe32(1u << (i * 8));
		ck_assert_int_eq(colo_hello_decode(&w, &out, err, sizeof(err)), -EPROTO);
		ck_assert_str_eq(err, "hello reserved bytes not zero");
	}

	h = good_hello();
	h.version = 6;
	ck_hello_rejects(h, -EPROTONOSUPPORT, "protocol version 6, expected 5");
	h.version = 4; /* before the pair and the resync */
	ck_hello_rejects(h, -EPROTONOSUPPORT, "protocol version 4, expected 5");
	h.version = 3; /* before re-protect: no DIRTY frames */
	ck_hello_rejects(h, -EPROTONOSUPPORT, "protocol version 3, expected 5");
	h.version = 2; /* before TLS: auth_type did not say the mode */
	ck_hello_rejects(h, -EPROTONOSUPPORT, "protocol version 2, expected 5");
	h.version = 1;
	ck_hello_rejects(h, -EPROTONOSUPPORT, "protocol version 1, expected 5");
	h.version = 0;
	ck_hello_rejects(h, -EPROTONOSUPPORT, "protocol version 0, expected 5");

	h = good_hello();
	h.flags = 0x20;
	ck_hello_rejects(h, -EPROTO, "unknown hello flags 0x20");
	h.flags = COLO_HELLO_SYNC_DIFF;
	ck_hello_rejects(h, -EPROTO, "hello flag SYNC_DIFF without SYNC");
	h.flags = COLO_HELLO_RESUME;
	ck_hello_rejects(h, -EPROTO, "hello flag RESUME without SYNC");
	h.flags = COLO_HELLO_SYNC;
	h.resume_epoch = 7;
	ck_hello_rejects(h, -EPROTO, "hello resume_epoch without RESUME");
	h.resume_epoch = 0;
	h.flags = COLO_HELLO_SYNC | COLO_HELLO_SYNC_DIFF;
	{
		char err[128] = "";

		ck_assert_int_eq(hello_decode(&h, err), 0);
	}
	h.flags = COLO_HELLO_VERIFY | COLO_HELLO_SYNC;
	ck_hello_rejects(h, -EPROTO, "hello flags 0x3: VERIFY, SYNC and REPROTECT exclude each other");
	h.flags = COLO_HELLO_VERIFY | COLO_HELLO_SYNC | COLO_HELLO_SYNC_DIFF | COLO_HELLO_RESUME;
	ck_hello_rejects(h, -EPROTO, "hello flags 0xf: VERIFY, SYNC and REPROTECT exclude each other");
	h.flags = COLO_HELLO_REPROTECT | COLO_HELLO_SYNC | COLO_HELLO_SYNC_DIFF;
	ck_hello_rejects(h, -EPROTO,
			 "hello flags 0x16: VERIFY, SYNC and REPROTECT exclude each other");
	h.flags = COLO_HELLO_VERIFY | COLO_HELLO_REPROTECT;
	ck_hello_rejects(h, -EPROTO,
			 "hello flags 0x11: VERIFY, SYNC and REPROTECT exclude each other");
	{
		static const uint32_t ok[] = {0, COLO_HELLO_VERIFY, COLO_HELLO_REPROTECT,
					      COLO_HELLO_SYNC | COLO_HELLO_SYNC_DIFF |
						      COLO_HELLO_RESUME};
		char err[128] = "";

		for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
			h.flags = ok[i];
			h.resume_epoch = ok[i] & COLO_HELLO_RESUME ? 3 : 0;
			ck_assert_int_eq(hello_decode(&h, err), 0);
		}
		h.resume_epoch = 0;
	}
	h.flags = 0x80000001;
	ck_hello_rejects(h, -EPROTO, "unknown hello flags 0x80000000");

	h = good_hello();
	h.auth_type = 3;
	ck_hello_rejects(h, -EOPNOTSUPP, "authentication type 3 not supported");
	h.auth_type = COLO_AUTH_PSK;
	h.auth_len = 16;
	ck_hello_rejects(h, -EPROTO, "16 bytes of authentication data after the hello");

	h = good_hello();
	h.block_size = 0;
	ck_hello_rejects(h, -EINVAL, "block size 0: not a power of two in [512, 1048576]");
	h.block_size = 256;
	ck_hello_rejects(h, -EINVAL, "block size 256: not a power of two in [512, 1048576]");
	h.block_size = 1000;
	ck_hello_rejects(h, -EINVAL, "block size 1000: not a power of two in [512, 1048576]");
	h.block_size = 4097;
	ck_hello_rejects(h, -EINVAL, "block size 4097: not a power of two in [512, 1048576]");
	h.block_size = 2 * MiB;
	ck_hello_rejects(h, -EINVAL, "block size 2097152: not a power of two in [512, 1048576]");

	h = good_hello();
	h.disk_size = 0;
	ck_hello_rejects(h, -EINVAL, "disk size 0: not a non-zero multiple of 512");
	h.disk_size = DISK_SIZE + 1000;
	ck_hello_rejects(h, -EINVAL, "disk size 1073742824: not a non-zero multiple of 512");

	/* Verifying needs a CRC list no longer than COLO_VERIFY_MAX: 16 TiB of disk. */
	h = good_hello();
	h.disk_size = 16ull << 40;
	ck_assert_int_eq(hello_decode(&h, err), 0);
	h.disk_size += 512;
	ck_hello_rejects(h, -EINVAL,
			 "disk size 17592186044928: too big to verify (at most 17592186044416)");
	h.flags = 0;
	ck_assert_int_eq(hello_decode(&h, err), 0);

	/* The decoded values stay for the refusal's message. */
	h = good_hello();
	h.version = 7;
	colo_hello_encode(&h, &w);
	ck_assert_int_eq(colo_hello_decode(&w, &out, err, sizeof(err)), -EPROTONOSUPPORT);
	ck_assert_uint_eq(out.version, 7);
	ck_assert_uint_eq(out.disk_size, DISK_SIZE);
}
END_TEST

START_TEST(test_hello_reply_round_trip)
{
	struct colo_hello_reply in = {.version = COLO_PROTO_VERSION, .status = 0}, out;
	struct colo_wire_hello_reply w;
	const uint8_t *b = (const uint8_t *)&w;
	char err[128] = "";
	int i;

	for (i = 0; i < 16; i++)
		in.session_id[i] = (uint8_t)i;
	strcpy(in.message, "welcome");
	colo_hello_reply_encode(&in, &w);
	ck_assert_int_eq(memcmp(b, "BLKCOLO1\0\0\0\5\0\0\0\0", 16), 0);
	ck_assert_int_eq(memcmp(b + 16, in.session_id, 16), 0);
	ck_assert_str_eq((const char *)b + 48, "welcome");
	/* No stack garbage after the message; flags, reserved and epoch 0. */
	for (i = 32; i < 48; i++)
		ck_assert_uint_eq(b[i], 0);
	for (i = 48 + 7; i < 160; i++)
		ck_assert_uint_eq(b[i], 0);
	memset(&out, 0x55, sizeof(out));
	ck_assert_int_eq(colo_hello_reply_decode(&w, &out, err, sizeof(err)), 0);
	ck_assert_int_eq(out.status, 0);
	ck_assert_uint_eq(out.version, COLO_PROTO_VERSION);
	ck_assert_int_eq(memcmp(out.session_id, in.session_id, 16), 0);
	ck_assert_str_eq(out.message, "welcome");
	ck_assert_uint_eq(out.flags, 0);
	ck_assert_uint_eq(out.epoch, 0);

	/* RESUMED: the Secondary's checkpoint, at offset 40. */
	in.flags = COLO_REPLY_RESUMED;
	in.epoch = 0x1112131415161718ull;
	colo_hello_reply_encode(&in, &w);
	ck_assert_int_eq(memcmp(b + 32, "\0\0\0\1\0\0\0\0\x11\x12\x13\x14\x15\x16\x17\x18", 16), 0);
	ck_assert_int_eq(colo_hello_reply_decode(&w, &out, err, sizeof(err)), 0);
	ck_assert_uint_eq(out.flags, COLO_REPLY_RESUMED);
	ck_assert_uint_eq(out.epoch, 0x1112131415161718ull);
	in.flags = 0;
	in.epoch = 0;

	/* A refusal carries a positive errno. */
	in.status = EINVAL;
	strcpy(in.message, "disk size 1073741824, mine is 2147483648");
	colo_hello_reply_encode(&in, &w);
	ck_assert_int_eq(memcmp(b + 12, "\0\0\0\x16", 4), 0);
	ck_assert_int_eq(colo_hello_reply_decode(&w, &out, err, sizeof(err)), 0);
	ck_assert_int_eq(out.status, EINVAL);
	ck_assert_str_eq(out.message, "disk size 1073741824, mine is 2147483648");

	/* A message that fills the field is cut to 111 bytes and stays terminated. */
	memset(in.message, 'x', sizeof(in.message));
	colo_hello_reply_encode(&in, &w);
	ck_assert_int_eq(colo_hello_reply_decode(&w, &out, err, sizeof(err)), 0);
	ck_assert_uint_eq(strlen(out.message), 111);
}
END_TEST

START_TEST(test_hello_reply_rejects)
{
	struct colo_hello_reply in = {.version = COLO_PROTO_VERSION, .status = 0}, out;
	struct colo_wire_hello_reply w;
	char err[128];

	colo_hello_reply_encode(&in, &w);
	w.magic = htobe64(0x1122334455667788ull);
	ck_assert_int_eq(colo_hello_reply_decode(&w, &out, err, sizeof(err)), -EPROTO);
	ck_assert_str_eq(err, "bad hello reply magic 0x1122334455667788");

	in.version = 6;
	colo_hello_reply_encode(&in, &w);
	ck_assert_int_eq(colo_hello_reply_decode(&w, &out, err, sizeof(err)), -EPROTONOSUPPORT);
	ck_assert_str_eq(err, "protocol version 6, expected 5");

	in.version = COLO_PROTO_VERSION;
	colo_hello_reply_encode(&in, &w);
	w.reserved = htobe32(1);
	ck_assert_int_eq(colo_hello_reply_decode(&w, &out, err, sizeof(err)), -EPROTO);
	ck_assert_str_eq(err, "hello reply reserved bytes not zero");
	in.flags = 2;
	colo_hello_reply_encode(&in, &w);
	ck_assert_int_eq(colo_hello_reply_decode(&w, &out, err, sizeof(err)), -EPROTO);
	ck_assert_str_eq(err, "unknown hello reply flags 0x2");
	in.flags = 0;
	in.epoch = 3;
	colo_hello_reply_encode(&in, &w);
	ck_assert_int_eq(colo_hello_reply_decode(&w, &out, err, sizeof(err)), -EPROTO);
	ck_assert_str_eq(err, "hello reply epoch without RESUMED");
	in.epoch = 0;

	in.version = COLO_PROTO_VERSION;
	colo_hello_reply_encode(&in, &w);
	memset(w.message, 'a', sizeof(w.message));
	ck_assert_int_eq(colo_hello_reply_decode(&w, &out, err, sizeof(err)), -EPROTO);
	ck_assert_str_eq(err, "hello reply message not NUL-terminated");
	/* The last byte may be the NUL. */
	w.message[111] = 0;
	ck_assert_int_eq(colo_hello_reply_decode(&w, &out, err, sizeof(err)), 0);

	in.status = -1;
	colo_hello_reply_encode(&in, &w);
	ck_assert_int_eq(colo_hello_reply_decode(&w, &out, err, sizeof(err)), -EPROTO);
	ck_assert_str_eq(err, "hello reply status -1 is negative");
	in.status = INT32_MIN;
	colo_hello_reply_encode(&in, &w);
	ck_assert_int_eq(colo_hello_reply_decode(&w, &out, err, sizeof(err)), -EPROTO);
	ck_assert_str_eq(err, "hello reply status -2147483648 is negative");
}
END_TEST

/* ---- frames ---- */

static struct colo_frame frame(uint16_t type, uint64_t seq, uint64_t offset, uint32_t length)
{
	struct colo_frame f = {
		.type = type, .seq = seq, .epoch = 7, .offset = offset, .length = length};

	return f;
}

static int frame_decode(const struct colo_frame *in, const struct colo_frame_limits *l, char *err)
{
	struct colo_wire_frame w;
	struct colo_frame f;

	colo_frame_encode(in, &w);
	return colo_frame_decode(&w, l, &f, err, 128);
}

#define ck_frame_rejects(f, l, errno_, msg)                                                        \
	do {                                                                                       \
		struct colo_frame f_ = (f);                                                        \
		char err_[128] = "";                                                               \
		ck_assert_int_eq(frame_decode(&f_, (l), err_), errno_);                            \
		ck_assert_str_eq(err_, msg);                                                       \
	} while (0)

#define ck_frame_accepts(f, l)                                                                     \
	do {                                                                                       \
		struct colo_frame f_ = (f);                                                        \
		char err_[128] = "";                                                               \
		ck_assert_int_eq(frame_decode(&f_, (l), err_), 0);                                 \
	} while (0)

/* Recomputes hdr_crc after a test changed a covered field. */
static void reseal(struct colo_wire_frame *w)
{
	w->hdr_crc = htobe32(crc32c(0, w, 40));
}

START_TEST(test_frame_layout)
{
	struct colo_frame f = frame(COLO_FRAME_WRITE, 0x0102030405060708ull, 0x1000, 0x200);
	struct colo_wire_frame w;
	const uint8_t *b = (const uint8_t *)&w;
	/* clang-format off */
	static const uint8_t want[40] = {
		'C', 'O', 'L', 'F', 0, 1, 0, 0,
		1, 2, 3, 4, 5, 6, 7, 8,
		0, 0, 0, 0, 0, 0, 0, 7,
		0, 0, 0, 0, 0, 0, 0x10, 0,
		0, 0, 2, 0, 0xca, 0xfe, 0xba, 0xbe,
	};
	/* clang-format on */
	uint32_t crc;

	f.data_crc = 0xcafebabe;
	colo_frame_encode(&f, &w);
	ck_assert_uint_eq(sizeof(w), COLO_WIRE_FRAME_SIZE);
	ck_assert_int_eq(memcmp(b, want, sizeof(want)), 0);
	crc = crc32c(0, want, sizeof(want));
	ck_assert_uint_eq(b[40], crc >> 24);
	ck_assert_uint_eq(b[41], (crc >> 16) & 0xff);
	ck_assert_uint_eq(b[42], (crc >> 8) & 0xff);
	ck_assert_uint_eq(b[43], crc & 0xff);
	ck_assert_int_eq(memcmp(b + 44, "\0\0\0\0", 4), 0);
}
END_TEST

/* The example of docs/colo-protocol.md, byte for byte. */
START_TEST(test_frame_doc_example)
{
	/* clang-format off */
	static const uint8_t want[48] = {
		0x43, 0x4f, 0x4c, 0x46, 0x00, 0x01, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00,
		0x00, 0x00, 0x10, 0x00, 0x94, 0x37, 0x41, 0x93,
		0x60, 0x24, 0xbb, 0x67, 0x00, 0x00, 0x00, 0x00,
	};
	/* clang-format on */
	struct colo_frame f = frame(COLO_FRAME_WRITE, 1, MiB, 4096), out;
	struct colo_wire_frame w;
	uint8_t data[4096];
	char err[128];

	memset(data, 0xab, sizeof(data));
	f.epoch = 1;
	f.data_crc = crc32c(0, data, sizeof(data));
	ck_assert_uint_eq(f.data_crc, 0x94374193);
	colo_frame_encode(&f, &w);
	ck_assert_int_eq(memcmp(&w, want, sizeof(want)), 0);
	memcpy(&w, want, sizeof(w));
	ck_assert_int_eq(colo_frame_decode(&w, &lim, &out, err, sizeof(err)), 0);
	ck_assert_int_eq(colo_frame_check_payload(&out, data, err, sizeof(err)), 0);
}
END_TEST

START_TEST(test_frame_round_trip)
{
	const struct colo_frame in[] = {
		frame(COLO_FRAME_WRITE, 1, 0, 512),
		frame(COLO_FRAME_WRITE, UINT64_MAX, DISK_SIZE - COLO_WRITE_MAX, COLO_WRITE_MAX),
		frame(COLO_FRAME_EPOCH, 2, 0, 0),
		frame(COLO_FRAME_ACK, 0, 0, 0),
		frame(COLO_FRAME_ACK, 2, 0, 0),
		frame(COLO_FRAME_HEARTBEAT, 0, 0, 0),
		frame(COLO_FRAME_ERROR, 0, EIO, 0),
		frame(COLO_FRAME_ERROR, 9, 4095, COLO_ERROR_MAX),
		frame(COLO_FRAME_VERIFY, 1, 0, 4 * 1024),
	};
	struct colo_wire_frame w;
	struct colo_frame out;
	char err[128] = "";
	size_t i;

	for (i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		struct colo_frame f = in[i];

		f.data_crc = 0x01020304 * (uint32_t)i;
		f.epoch = 0x1122334455667788ull + i;
		colo_frame_encode(&f, &w);
		memset(&out, 0x55, sizeof(out));
		ck_assert_msg(colo_frame_decode(&w, &lim, &out, err, sizeof(err)) == 0, "%zu: %s",
			      i, err);
		ck_assert_uint_eq(out.type, f.type);
		ck_assert_uint_eq(out.seq, f.seq);
		ck_assert_uint_eq(out.epoch, f.epoch);
		ck_assert_uint_eq(out.offset, f.offset);
		ck_assert_uint_eq(out.length, f.length);
		ck_assert_uint_eq(out.data_crc, f.data_crc);
	}
}
END_TEST

START_TEST(test_frame_header_rejects)
{
	struct colo_frame f = frame(COLO_FRAME_ACK, 1, 0, 0), out;
	struct colo_wire_frame w;
	char err[128];

	colo_frame_encode(&f, &w);
	w.magic = htobe32(0x434f4c47);
	reseal(&w);
	ck_assert_int_eq(colo_frame_decode(&w, &lim, &out, err, sizeof(err)), -EPROTO);
	ck_assert_str_eq(err, "bad frame magic 0x434f4c47");

	colo_frame_encode(&f, &w);
	w.seq = htobe64(2);
	ck_assert_int_eq(colo_frame_decode(&w, &lim, &out, err, sizeof(err)), -EBADMSG);
	ck_assert_str_eq(err, "header checksum mismatch");
	/* The decoded frame is cleared, so a caller ignoring the error acts on nothing. */
	ck_assert_uint_eq(out.type, 0);
	ck_assert_uint_eq(out.seq, 0);

	colo_frame_encode(&f, &w);
	w.flags = htobe16(1);
	reseal(&w);
	ck_assert_int_eq(colo_frame_decode(&w, &lim, &out, err, sizeof(err)), -EPROTO);
	ck_assert_str_eq(err, "frame flags 0x0001 not zero");

	colo_frame_encode(&f, &w);
	w.reserved = htobe32(0x80);
	ck_assert_int_eq(colo_frame_decode(&w, &lim, &out, err, sizeof(err)), -EPROTO);
	ck_assert_str_eq(err, "frame reserved field 0x00000080 not zero");

	ck_frame_rejects(frame(0, 1, 0, 0), &lim, -EPROTO, "unknown frame type 0");
	ck_frame_rejects(frame(13, 1, 0, 0), &lim, -EPROTO, "unknown frame type 13");
	ck_frame_rejects(frame(0xffff, 1, 0, 0), &lim, -EPROTO, "unknown frame type 65535");

	/* A NULL or empty err buffer is allowed. */
	colo_frame_encode(&f, &w);
	w.seq = htobe64(2);
	ck_assert_int_eq(colo_frame_decode(&w, &lim, &out, NULL, 0), -EBADMSG);
	ck_assert_int_eq(colo_frame_decode(&w, &lim, &out, err, 0), -EBADMSG);
}
END_TEST

START_TEST(test_frame_byte_flips)
{
	struct colo_frame f = frame(COLO_FRAME_WRITE, 42, 8192, 4096), out;
	struct colo_wire_frame good, w;
	uint8_t *b = (uint8_t *)&w;
	char err[128];
	int byte, bit, i, rc;

	f.data_crc = 0x12345678;
	colo_frame_encode(&f, &good);
	/* CRC32C catches every single-bit error; the magic is checked first. */
	for (byte = 0; byte < COLO_WIRE_FRAME_SIZE; byte++) {
		for (bit = 0; bit < 8; bit++) {
			w = good;
			b[byte] ^= (uint8_t)(1 << bit);
			rc = colo_frame_decode(&w, &lim, &out, err, sizeof(err));
			if (byte < 4 || byte >= 44)
				ck_assert_int_eq(rc, -EPROTO);
			else
				ck_assert_int_eq(rc, -EBADMSG);
		}
	}
	/* And bursts of up to 24 bits in the covered bytes, which CRC32C always catches too. */
	rng_seed(3);
	for (i = 0; i < 10000; i++) {
		uint32_t burst = rng() | 1, at = 4 + rng() % (40 - 2 - 4);

		w = good;
		b[at] ^= (uint8_t)burst;
		b[at + 1] ^= (uint8_t)(burst >> 8);
		b[at + 2] ^= (uint8_t)(burst >> 16);
		ck_assert_int_eq(colo_frame_decode(&w, &lim, &out, err, sizeof(err)), -EBADMSG);
	}
}
END_TEST

START_TEST(test_frame_write_rejects)
{
	ck_frame_rejects(frame(COLO_FRAME_WRITE, 0, 4096, 512), &lim, -EPROTO, "WRITE with seq 0");
	ck_frame_rejects(frame(COLO_FRAME_WRITE, 1, 4096, 0), &lim, -EINVAL,
			 "WRITE of 0 bytes at 4096");
	ck_frame_rejects(frame(COLO_FRAME_WRITE, 1, 4096, 1000), &lim, -EINVAL,
			 "WRITE of 1000 bytes at 4096: not a multiple of 512");
	ck_frame_rejects(frame(COLO_FRAME_WRITE, 1, 4096, 256), &lim, -EINVAL,
			 "WRITE of 256 bytes at 4096: not a multiple of 512");
	ck_frame_rejects(frame(COLO_FRAME_WRITE, 1, 100, 512), &lim, -EINVAL,
			 "WRITE of 512 bytes at 100: not a multiple of 512");
	ck_frame_rejects(frame(COLO_FRAME_WRITE, 1, 0, COLO_WRITE_MAX + 512), &lim, -E2BIG,
			 "WRITE of 67109376 bytes at 0: longer than 67108864");
	ck_frame_rejects(frame(COLO_FRAME_WRITE, 1, 0, 0xfffffe00), &lim, -E2BIG,
			 "WRITE of 4294966784 bytes at 0: longer than 67108864");
	ck_frame_rejects(frame(COLO_FRAME_WRITE, 1, DISK_SIZE - 512, 1024), &lim, -ERANGE,
			 "WRITE of 1024 bytes at 1073741312: past the end of the 1073741824-byte "
			 "disk");
	ck_frame_rejects(frame(COLO_FRAME_WRITE, 1, DISK_SIZE, 512), &lim, -ERANGE,
			 "WRITE of 512 bytes at 1073741824: past the end of the 1073741824-byte "
			 "disk");
	ck_frame_accepts(frame(COLO_FRAME_WRITE, 1, DISK_SIZE - 512, 512), &lim);
	ck_frame_accepts(frame(COLO_FRAME_WRITE, 1, 0, COLO_WRITE_MAX), &lim);
}
END_TEST

START_TEST(test_frame_write_overflow)
{
	const struct colo_frame_limits huge = {.disk_size = UINT64_MAX - 511};

	/* offset + length wraps to a small number: must not pass as in range. */
	ck_frame_rejects(frame(COLO_FRAME_WRITE, 1, UINT64_MAX - 511, 1024), &lim, -ERANGE,
			 "WRITE of 1024 bytes at 18446744073709551104: past the end of the "
			 "1073741824-byte disk");
	ck_frame_rejects(frame(COLO_FRAME_WRITE, 1, UINT64_MAX - 1023, 1024), &huge, -ERANGE,
			 "WRITE of 1024 bytes at 18446744073709550592: past the end of the "
			 "18446744073709551104-byte disk");
	ck_frame_rejects(frame(COLO_FRAME_WRITE, 1, UINT64_MAX - 511, COLO_WRITE_MAX), &huge,
			 -ERANGE,
			 "WRITE of 67108864 bytes at 18446744073709551104: past the end of the "
			 "18446744073709551104-byte disk");
	ck_frame_accepts(frame(COLO_FRAME_WRITE, 1, UINT64_MAX - 1023, 512), &huge);
}
END_TEST

START_TEST(test_frame_small_rejects)
{
	ck_frame_rejects(frame(COLO_FRAME_EPOCH, 0, 0, 0), &lim, -EPROTO, "EPOCH with seq 0");
	ck_frame_rejects(frame(COLO_FRAME_EPOCH, 1, 0, 512), &lim, -EPROTO,
			 "EPOCH with a payload of 512 bytes");
	ck_frame_rejects(frame(COLO_FRAME_EPOCH, 1, 4096, 0), &lim, -EPROTO,
			 "EPOCH with offset 4096");
	ck_frame_rejects(frame(COLO_FRAME_ACK, 1, 0, 4), &lim, -EPROTO,
			 "ACK with a payload of 4 bytes");
	ck_frame_rejects(frame(COLO_FRAME_ACK, 1, 1, 0), &lim, -EPROTO, "ACK with offset 1");
	ck_frame_rejects(frame(COLO_FRAME_HEARTBEAT, 0, 0, 0xffffffff), &lim, -EPROTO,
			 "HEARTBEAT with a payload of 4294967295 bytes");
	ck_frame_rejects(frame(COLO_FRAME_HEARTBEAT, 0, UINT64_MAX, 0), &lim, -EPROTO,
			 "HEARTBEAT with offset 18446744073709551615");
	ck_frame_rejects(frame(COLO_FRAME_GOODBYE, 0, 0, 1), &lim, -EPROTO,
			 "GOODBYE with a payload of 1 bytes");
	ck_frame_rejects(frame(COLO_FRAME_GOODBYE, 0, 512, 0), &lim, -EPROTO,
			 "GOODBYE with offset 512");

	ck_frame_rejects(frame(COLO_FRAME_ERROR, 1, EIO, COLO_ERROR_MAX + 1), &lim, -E2BIG,
			 "ERROR message of 1025 bytes: longer than 1024");
	ck_frame_rejects(frame(COLO_FRAME_ERROR, 1, 0, 10), &lim, -EINVAL,
			 "ERROR with errno 0: not in 1..4095");
	ck_frame_rejects(frame(COLO_FRAME_ERROR, 1, 4096, 10), &lim, -EINVAL,
			 "ERROR with errno 4096: not in 1..4095");
	ck_frame_rejects(frame(COLO_FRAME_ERROR, 1, (uint64_t)-EIO, 10), &lim, -EINVAL,
			 "ERROR with errno 18446744073709551611: not in 1..4095");
	ck_frame_accepts(frame(COLO_FRAME_ERROR, 0, 1, 0), &lim);
}
END_TEST

START_TEST(test_frame_verify_rejects)
{
	const struct colo_frame_limits odd = {.disk_size = DISK_SIZE + 512};
	const struct colo_frame_limits big = {.disk_size = 1ull << 60};
	const struct colo_frame_limits max = {.disk_size = 16ull << 40};

	ck_frame_accepts(frame(COLO_FRAME_VERIFY, 1, 0, 4096), &lim);
	/* The last chunk is short but has its CRC. */
	ck_frame_accepts(frame(COLO_FRAME_VERIFY, 1, 0, 4100), &odd);
	ck_frame_rejects(frame(COLO_FRAME_VERIFY, 1, 0, 4096), &odd, -EINVAL,
			 "VERIFY of 4096 bytes: expected 4100 for a 1073742336-byte disk");
	ck_frame_rejects(frame(COLO_FRAME_VERIFY, 1, 0, 4100), &lim, -EINVAL,
			 "VERIFY of 4100 bytes: expected 4096 for a 1073741824-byte disk");
	ck_frame_rejects(frame(COLO_FRAME_VERIFY, 0, 0, 4096), &lim, -EPROTO, "VERIFY with seq 0");
	ck_frame_rejects(frame(COLO_FRAME_VERIFY, 1, 512, 4096), &lim, -EPROTO,
			 "VERIFY with offset 512");
	ck_frame_accepts(frame(COLO_FRAME_VERIFY, 1, 0, COLO_VERIFY_MAX), &max);
	ck_frame_rejects(frame(COLO_FRAME_VERIFY, 1, 0, 0xfffffffc), &big, -E2BIG,
			 "VERIFY of 4294967292 bytes: longer than 67108864");
	ck_frame_rejects(frame(COLO_FRAME_VERIFY, 1, 0, COLO_VERIFY_MAX + 4), &big, -E2BIG,
			 "VERIFY of 67108868 bytes: longer than 67108864");
}
END_TEST

/* SYNC is checked as a WRITE; HASHES is bounded by its maximum and by the disk's extents. */
START_TEST(test_frame_sync_rejects)
{
	const struct colo_frame_limits odd = {.disk_size = DISK_SIZE + 512}; /* 1025 extents */

	ck_frame_accepts(frame(COLO_FRAME_SYNC, 3, 1 << 20, 1 << 20), &lim);
	ck_frame_rejects(frame(COLO_FRAME_SYNC, 3, DISK_SIZE, 1 << 20), &lim, -ERANGE,
			 "SYNC of 1048576 bytes at 1073741824: past the end of the 1073741824-byte "
			 "disk");
	ck_frame_rejects(frame(COLO_FRAME_SYNC, 0, 0, 512), &lim, -EPROTO, "SYNC with seq 0");
	ck_frame_accepts(frame(COLO_FRAME_SYNC_END, 9, 0, 0), &lim);
	ck_frame_rejects(frame(COLO_FRAME_SYNC_END, 9, 0, 16), &lim, -EPROTO,
			 "SYNC_END with a payload of 16 bytes");

	ck_frame_accepts(frame(COLO_FRAME_HASHES, 0, 0, 1024 * 16), &lim);
	ck_frame_accepts(frame(COLO_FRAME_HASHES, 0, 1024, 16), &odd);
	ck_frame_rejects(frame(COLO_FRAME_HASHES, 0, 1024, 16), &lim, -ERANGE,
			 "HASHES of 1 extents from 1024: past the 1024 extents of the disk");
	ck_frame_rejects(frame(COLO_FRAME_HASHES, 0, 0xffffffffffffffffull, 16), &lim, -ERANGE,
			 "HASHES of 1 extents from 18446744073709551615: past the 1024 extents of "
			 "the disk");
	ck_frame_rejects(frame(COLO_FRAME_HASHES, 0, 0, 0), &lim, -EINVAL,
			 "HASHES of 0 bytes: not a non-zero multiple of 16");
	ck_frame_rejects(frame(COLO_FRAME_HASHES, 0, 0, 24), &lim, -EINVAL,
			 "HASHES of 24 bytes: not a non-zero multiple of 16");
	ck_frame_rejects(frame(COLO_FRAME_HASHES, 0, 0, COLO_HASHES_MAX + 16), &lim, -E2BIG,
			 "HASHES of 65552 bytes: longer than 65536");
	ck_frame_rejects(frame(COLO_FRAME_HASHES, 1, 0, 16), &lim, -EPROTO, "HASHES with seq 1");
}
END_TEST

/* DIRTY: a bitmap within the disk's extents (rounded up to a byte); DIRTY_END: offset 0 or 1. */
START_TEST(test_frame_dirty_rejects)
{
	const struct colo_frame_limits odd = {.disk_size = DISK_SIZE + 512}; /* 1025 extents */

	ck_frame_accepts(frame(COLO_FRAME_DIRTY, 0, 0, 128), &lim);
	ck_frame_accepts(frame(COLO_FRAME_DIRTY, 0, 1016, 1), &lim);
	ck_frame_accepts(frame(COLO_FRAME_DIRTY, 0, 1024, 1), &odd);
	ck_frame_rejects(frame(COLO_FRAME_DIRTY, 0, 0, 129), &lim, -ERANGE,
			 "DIRTY of 129 bytes from extent 0: not a byte's start or past the 1024 "
			 "extents of the disk");
	ck_frame_rejects(frame(COLO_FRAME_DIRTY, 0, 4, 1), &lim, -ERANGE,
			 "DIRTY of 1 bytes from extent 4: not a byte's start or past the 1024 "
			 "extents of the disk");
	ck_frame_rejects(frame(COLO_FRAME_DIRTY, 0, 0xfffffffffffffff8ull, 1), &lim, -ERANGE,
			 "DIRTY of 1 bytes from extent 18446744073709551608: not a byte's start or "
			 "past the 1024 extents of the disk");
	ck_frame_rejects(frame(COLO_FRAME_DIRTY, 0, 0, 0), &lim, -E2BIG,
			 "DIRTY of 0 bytes: not 1 to 65536");
	ck_frame_rejects(frame(COLO_FRAME_DIRTY, 0, 0, COLO_DIRTY_MAX + 1), &lim, -E2BIG,
			 "DIRTY of 65537 bytes: not 1 to 65536");
	ck_frame_rejects(frame(COLO_FRAME_DIRTY, 2, 0, 1), &lim, -EPROTO, "DIRTY with seq 2");
	ck_frame_accepts(frame(COLO_FRAME_DIRTY_END, 0, 0, 0), &lim);
	ck_frame_accepts(frame(COLO_FRAME_DIRTY_END, 0, 1, 0), &lim);
	ck_frame_rejects(frame(COLO_FRAME_DIRTY_END, 0, 2, 0), &lim, -EPROTO,
			 "DIRTY_END with seq 0 and offset 2 (expected 0 and 0 or 1)");
	ck_frame_rejects(frame(COLO_FRAME_DIRTY_END, 0, 1, 8), &lim, -EPROTO,
			 "DIRTY_END with a payload of 8 bytes");
}
END_TEST

START_TEST(test_frame_payload_crc)
{
	struct colo_frame f = frame(COLO_FRAME_WRITE, 1, 0, 512);
	uint8_t data[512];
	char err[128];

	rng_seed(4);
	rng_fill(data, sizeof(data));
	f.data_crc = crc32c(0, data, sizeof(data));
	ck_assert_int_eq(colo_frame_check_payload(&f, data, err, sizeof(err)), 0);
	data[100] ^= 0x10;
	ck_assert_int_eq(colo_frame_check_payload(&f, data, err, sizeof(err)), -EBADMSG);
	ck_assert_str_eq(err, "WRITE of 512 bytes at 0: payload checksum mismatch");

	f = frame(COLO_FRAME_HEARTBEAT, 0, 0, 0);
	ck_assert_int_eq(colo_frame_check_payload(&f, NULL, err, sizeof(err)), 0);
	f.data_crc = 1;
	ck_assert_int_eq(colo_frame_check_payload(&f, NULL, err, sizeof(err)), -EBADMSG);
	ck_assert_str_eq(err, "HEARTBEAT of 0 bytes at 0: payload checksum mismatch");
}
END_TEST

START_TEST(test_frame_type_names)
{
	ck_assert_str_eq(colo_frame_type_name(COLO_FRAME_WRITE), "WRITE");
	ck_assert_str_eq(colo_frame_type_name(COLO_FRAME_EPOCH), "EPOCH");
	ck_assert_str_eq(colo_frame_type_name(COLO_FRAME_ACK), "ACK");
	ck_assert_str_eq(colo_frame_type_name(COLO_FRAME_HEARTBEAT), "HEARTBEAT");
	ck_assert_str_eq(colo_frame_type_name(COLO_FRAME_ERROR), "ERROR");
	ck_assert_str_eq(colo_frame_type_name(COLO_FRAME_VERIFY), "VERIFY");
	ck_assert_str_eq(colo_frame_type_name(0), "UNKNOWN");
	ck_assert_str_eq(colo_frame_type_name(COLO_FRAME_GOODBYE), "GOODBYE");
	ck_assert_str_eq(colo_frame_type_name(COLO_FRAME_SYNC), "SYNC");
	ck_assert_str_eq(colo_frame_type_name(COLO_FRAME_SYNC_END), "SYNC_END");
	ck_assert_str_eq(colo_frame_type_name(COLO_FRAME_HASHES), "HASHES");
	ck_assert_str_eq(colo_frame_type_name(COLO_FRAME_DIRTY), "DIRTY");
	ck_assert_str_eq(colo_frame_type_name(COLO_FRAME_DIRTY_END), "DIRTY_END");
	ck_assert_str_eq(colo_frame_type_name(13), "UNKNOWN");
}
END_TEST

/* ---- reader ---- */

#define STREAM_FRAMES 40
#define STREAM_DISK (4ull << 30)

static const struct colo_frame_limits stream_lim = {.disk_size = STREAM_DISK};
static char feed_err[128];

struct stream {
	uint8_t *bytes;
	size_t len;
	size_t at[STREAM_FRAMES + 1]; /* where each frame starts; at[n] == len */
	struct colo_frame frames[STREAM_FRAMES];
	uint8_t *payloads[STREAM_FRAMES];
	int n;
};

static void stream_add(struct stream *s, struct colo_frame f, const void *payload)
{
	struct colo_wire_frame w;

	ck_assert_int_lt(s->n, STREAM_FRAMES);
	f.data_crc = crc32c(0, payload, f.length);
	colo_frame_encode(&f, &w);
	s->at[s->n] = s->len;
	s->bytes = realloc(s->bytes, s->len + sizeof(w) + f.length);
	ck_assert_ptr_nonnull(s->bytes);
	memcpy(s->bytes + s->len, &w, sizeof(w));
	if (f.length)
		memcpy(s->bytes + s->len + sizeof(w), payload, f.length);
	s->len += sizeof(w) + f.length;
	s->at[s->n + 1] = s->len;
	s->frames[s->n] = f;
	s->payloads[s->n] = NULL;
	if (f.length) {
		s->payloads[s->n] = malloc(f.length);
		memcpy(s->payloads[s->n], payload, f.length);
	}
	s->n++;
}

/* Every frame type, WRITEs from one sector to COLO_WRITE_MAX. */
static void stream_build(struct stream *s)
{
	static const uint32_t lengths[] = {512, 4096, 4608, 65536, 1 * MiB + 512, COLO_WRITE_MAX};
	uint8_t *data = malloc(COLO_WRITE_MAX + 16);
	uint64_t seq = 1;
	size_t i;

	ck_assert_ptr_nonnull(data);
	memset(s, 0, sizeof(*s));
	rng_seed(5);
	rng_fill(data, COLO_WRITE_MAX + 16);
	rng_fill(data, 4 * 4096); /* a VERIFY payload differs from a WRITE's */
	stream_add(s, frame(COLO_FRAME_VERIFY, seq++, 0, 4 * (STREAM_DISK / COLO_VERIFY_CHUNK)),
		   data);
	stream_add(s, frame(COLO_FRAME_HEARTBEAT, 0, 0, 0), NULL);
	for (i = 0; i < sizeof(lengths) / sizeof(lengths[0]); i++) {
		stream_add(s, frame(COLO_FRAME_WRITE, seq++, 512 * (uint64_t)i, lengths[i]),
			   data + i);
		stream_add(s, frame(COLO_FRAME_ACK, seq - 1, 0, 0), NULL);
	}
	stream_add(s, frame(COLO_FRAME_EPOCH, seq++, 0, 0), NULL);
	stream_add(s, frame(COLO_FRAME_ERROR, 0, ENOSPC, 13), "no space left");
	stream_add(s, frame(COLO_FRAME_GOODBYE, 0, 0, 0), NULL);
	free(data);
}

static void stream_free(struct stream *s)
{
	int i;

	for (i = 0; i < s->n; i++)
		free(s->payloads[i]);
	free(s->bytes);
}

static void ck_frame_eq(const struct colo_frame *a, const struct colo_frame *b)
{
	ck_assert_uint_eq(a->type, b->type);
	ck_assert_uint_eq(a->seq, b->seq);
	ck_assert_uint_eq(a->epoch, b->epoch);
	ck_assert_uint_eq(a->offset, b->offset);
	ck_assert_uint_eq(a->length, b->length);
	ck_assert_uint_eq(a->data_crc, b->data_crc);
}

/*
 * Feeds @len bytes of @bytes into @r in pieces of at most @chunk(bytes) and checks every
 * frame that comes out against @s.  Returns the reader's error, or 0 at the end.
 */
static int feed(struct colo_reader *r, const uint8_t *bytes, size_t len, size_t (*chunk)(void),
		const struct stream *s, int *got)
{
	size_t done = 0, want, n;
	struct colo_frame f;
	void *buf, *payload;
	int rc;

	while (done < len) {
		colo_reader_next(r, &buf, &want);
		ck_assert_uint_gt(want, 0);
		n = chunk();
		n = n < want ? n : want;
		n = n < len - done ? n : len - done;
		memcpy(buf, bytes + done, n);
		done += n;
		rc = colo_reader_advance(r, n, feed_err, sizeof(feed_err));
		if (rc < 0)
			return rc;
		if (!rc)
			continue;
		colo_reader_take(r, &f, &payload);
		ck_assert_int_lt(*got, s->n);
		ck_frame_eq(&f, &s->frames[*got]);
		if (f.length) {
			ck_assert_ptr_nonnull(payload);
			ck_assert_uint_eq((uintptr_t)payload % 4096, 0);
			ck_assert_int_eq(memcmp(payload, s->payloads[*got], f.length), 0);
		} else {
			ck_assert_ptr_null(payload);
		}
		free(payload);
		(*got)++;
	}
	return 0;
}

static size_t chunk_one(void)
{
	return 1;
}

static size_t chunk_random(void)
{
	/* Mostly small pieces, sometimes whole frames: both edges of every boundary. */
	switch (rng() % 4) {
	case 0:
		return 1 + rng() % 7;
	case 1:
		return 1 + rng() % 100;
	case 2:
		return 1 + rng() % 70000;
	}
	return SIZE_MAX;
}

static size_t chunk_all(void)
{
	return SIZE_MAX;
}

START_TEST(test_reader_byte_by_byte)
{
	struct colo_reader r;
	struct stream s;
	int got = 0;

	int i;

	stream_build(&s);
	colo_reader_init(&r, &stream_lim);
	for (i = 0; i < s.n; i++) {
		/* The 64 MiB WRITE at once: byte by byte it is slow and adds no path. */
		size_t (*chunk)(void) =
			s.frames[i].length == COLO_WRITE_MAX ? chunk_all : chunk_one;

		ck_assert_msg(!feed(&r, s.bytes + s.at[i], s.at[i + 1] - s.at[i], chunk, &s, &got),
			      "frame %d: %s", i, feed_err);
		ck_assert_int_eq(got, i + 1);
	}
	colo_reader_free(&r);
	stream_free(&s);
}
END_TEST

START_TEST(test_reader_random_splits)
{
	struct colo_reader r;
	struct stream s;
	int seed, got;

	stream_build(&s);
	for (seed = 0; seed < 20; seed++) {
		rng_seed(100 + seed);
		got = 0;
		colo_reader_init(&r, &stream_lim);
		ck_assert_msg(!feed(&r, s.bytes, s.len, chunk_random, &s, &got), "seed %d: %s",
			      seed, feed_err);
		ck_assert_int_eq(got, s.n);
		colo_reader_free(&r);
	}
	stream_free(&s);
}
END_TEST

START_TEST(test_reader_error_payload_terminated)
{
	struct colo_frame f = frame(COLO_FRAME_ERROR, 0, EIO, 5), out;
	struct colo_wire_frame w;
	struct colo_reader r;
	char err[128];
	void *buf, *payload;
	size_t len;

	f.data_crc = crc32c(0, "abcde", 5);
	colo_frame_encode(&f, &w);
	colo_reader_init(&r, &lim);
	colo_reader_next(&r, &buf, &len);
	ck_assert_uint_eq(len, sizeof(w));
	memcpy(buf, &w, sizeof(w));
	ck_assert_int_eq(colo_reader_advance(&r, sizeof(w), err, sizeof(err)), 0);
	colo_reader_next(&r, &buf, &len);
	ck_assert_uint_eq(len, 5);
	memcpy(buf, "abcde", 5);
	ck_assert_int_eq(colo_reader_advance(&r, 5, err, sizeof(err)), 1);
	/* Ready: nothing more is asked for until the frame is taken. */
	colo_reader_next(&r, &buf, &len);
	ck_assert_uint_eq(len, 0);
	ck_assert_int_eq(colo_reader_advance(&r, 0, err, sizeof(err)), 1);
	ck_assert_int_eq(colo_reader_advance(&r, 1, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "bytes before the ready frame was taken");
	colo_reader_take(&r, &out, &payload);
	ck_assert_uint_eq(out.offset, EIO);
	ck_assert_str_eq(payload, "abcde");
	free(payload);
	/* Taken: nothing is ready any more. */
	colo_reader_take(&r, &out, &payload);
	ck_assert_ptr_null(payload);
	ck_assert_uint_eq(out.type, 0);
	colo_reader_next(&r, &buf, &len);
	ck_assert_uint_eq(len, sizeof(w));
	colo_reader_free(&r);
}
END_TEST

START_TEST(test_reader_bad_payload_crc)
{
	struct colo_frame f = frame(COLO_FRAME_WRITE, 1, 4096, 1024);
	struct colo_wire_frame w;
	struct colo_reader r;
	uint8_t data[1024];
	char err[128];
	void *buf;
	size_t len;

	rng_seed(6);
	rng_fill(data, sizeof(data));
	f.data_crc = crc32c(0, data, sizeof(data)) ^ 1;
	colo_frame_encode(&f, &w);
	colo_reader_init(&r, &lim);
	colo_reader_next(&r, &buf, &len);
	memcpy(buf, &w, sizeof(w));
	ck_assert_int_eq(colo_reader_advance(&r, sizeof(w), err, sizeof(err)), 0);
	colo_reader_next(&r, &buf, &len);
	memcpy(buf, data, 1000);
	ck_assert_int_eq(colo_reader_advance(&r, 1000, err, sizeof(err)), 0);
	colo_reader_next(&r, &buf, &len);
	ck_assert_uint_eq(len, 24);
	memcpy(buf, data + 1000, 24);
	ck_assert_int_eq(colo_reader_advance(&r, 24, err, sizeof(err)), -EBADMSG);
	ck_assert_str_eq(err, "WRITE of 1024 bytes at 4096: payload checksum mismatch");
	/* The payload is gone (ASan checks no leak) and the error sticks. */
	ck_assert_ptr_null(r.payload);
	colo_reader_next(&r, &buf, &len);
	ck_assert_uint_eq(len, 0);
	ck_assert_int_eq(colo_reader_advance(&r, 0, err, sizeof(err)), -EBADMSG);
	ck_assert_str_eq(err, "the reader failed on an earlier frame");
	colo_reader_free(&r);
}
END_TEST

START_TEST(test_reader_bad_header_allocates_nothing)
{
	struct colo_frame f = frame(COLO_FRAME_WRITE, 1, 0, 0xfffffe00);
	struct colo_wire_frame w;
	struct colo_reader r;
	char err[128];
	void *buf;
	size_t len;

	/* A hostile peer announces 4 GiB: refused at the header, before any allocation. */
	colo_frame_encode(&f, &w);
	colo_reader_init(&r, &lim);
	colo_reader_next(&r, &buf, &len);
	memcpy(buf, &w, sizeof(w));
	ck_assert_int_eq(colo_reader_advance(&r, sizeof(w), err, sizeof(err)), -E2BIG);
	ck_assert_str_eq(err, "WRITE of 4294966784 bytes at 0: longer than 67108864");
	ck_assert_ptr_null(r.payload);

	/* Same for a checksum failure. */
	colo_reader_init(&r, &lim);
	colo_frame_encode(&f, &w);
	w.length = htobe32(512);
	colo_reader_next(&r, &buf, &len);
	memcpy(buf, &w, sizeof(w));
	ck_assert_int_eq(colo_reader_advance(&r, sizeof(w), err, sizeof(err)), -EBADMSG);
	ck_assert_str_eq(err, "header checksum mismatch");
	ck_assert_ptr_null(r.payload);
	colo_reader_free(&r);
}
END_TEST

START_TEST(test_reader_free_partial)
{
	struct colo_frame f = frame(COLO_FRAME_WRITE, 1, 0, 8192), out;
	struct colo_wire_frame w;
	struct colo_reader r;
	char err[128];
	void *buf, *payload;
	size_t len;

	colo_frame_encode(&f, &w);
	colo_reader_init(&r, &lim);
	colo_reader_next(&r, &buf, &len);
	memcpy(buf, &w, sizeof(w));
	ck_assert_int_eq(colo_reader_advance(&r, sizeof(w), err, sizeof(err)), 0);
	colo_reader_next(&r, &buf, &len);
	ck_assert_uint_eq(len, 8192);
	ck_assert_int_eq(colo_reader_advance(&r, 100, err, sizeof(err)), 0);
	/* More than asked for is a caller bug, refused without harm. */
	colo_reader_next(&r, &buf, &len);
	ck_assert_int_eq(colo_reader_advance(&r, len + 1, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "8093 bytes arrived where 8092 were asked for");
	/* The link drops mid-payload: free releases it (ASan checks) and resets the reader. */
	colo_reader_free(&r);
	ck_assert_ptr_null(r.payload);
	colo_reader_next(&r, &buf, &len);
	ck_assert_uint_eq(len, sizeof(w));
	f = frame(COLO_FRAME_HEARTBEAT, 0, 0, 0);
	colo_frame_encode(&f, &w);
	memcpy(buf, &w, sizeof(w));
	ck_assert_int_eq(colo_reader_advance(&r, sizeof(w), err, sizeof(err)), 1);
	colo_reader_take(&r, &out, &payload);
	ck_assert_uint_eq(out.type, COLO_FRAME_HEARTBEAT);
	ck_assert_ptr_null(payload);
	colo_reader_free(&r);
}
END_TEST

static Suite *colo_proto_suite(void)
{
	Suite *s = suite_create("colo-proto");
	TCase *tc;

	tc = tcase_create("crc32c");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_crc_vectors);
	tcase_add_test(tc, test_crc_empty);
	tcase_add_test(tc, test_crc_chaining);
	tcase_add_test(tc, test_crc_hw_matches_sw);
	suite_add_tcase(s, tc);

	tc = tcase_create("hello");
	tcase_add_test(tc, test_hello_round_trip);
	tcase_add_test(tc, test_hello_rejects);
	tcase_add_test(tc, test_hello_reply_round_trip);
	tcase_add_test(tc, test_hello_reply_rejects);
	suite_add_tcase(s, tc);

	tc = tcase_create("frame");
	tcase_add_test(tc, test_frame_layout);
	tcase_add_test(tc, test_frame_doc_example);
	tcase_add_test(tc, test_frame_round_trip);
	tcase_add_test(tc, test_frame_header_rejects);
	tcase_add_test(tc, test_frame_byte_flips);
	tcase_add_test(tc, test_frame_write_rejects);
	tcase_add_test(tc, test_frame_write_overflow);
	tcase_add_test(tc, test_frame_small_rejects);
	tcase_add_test(tc, test_frame_verify_rejects);
	tcase_add_test(tc, test_frame_sync_rejects);
	tcase_add_test(tc, test_frame_dirty_rejects);
	tcase_add_test(tc, test_frame_payload_crc);
	tcase_add_test(tc, test_frame_type_names);
	suite_add_tcase(s, tc);

	tc = tcase_create("reader");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_reader_byte_by_byte);
	tcase_add_test(tc, test_reader_random_splits);
	tcase_add_test(tc, test_reader_error_payload_terminated);
	tcase_add_test(tc, test_reader_bad_payload_crc);
	tcase_add_test(tc, test_reader_bad_header_allocates_nothing);
	tcase_add_test(tc, test_reader_free_partial);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(colo_proto_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

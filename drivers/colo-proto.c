/*
 * The replication link's codec (colo-proto.h, docs/colo-protocol.md).  The wire structs are
 * packed, so the compiler reads their members safely from any address; they are converted
 * with be*toh/htobe* here and nowhere else.
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "colo-proto.h"
#include "crc32c.h"

_Static_assert(sizeof(struct colo_wire_hello) == 80, "hello is 80 bytes on the wire");
_Static_assert(sizeof(struct colo_wire_hello_reply) == 160, "hello_reply is 160 bytes");
_Static_assert(sizeof(struct colo_wire_frame) == COLO_WIRE_FRAME_SIZE, "frame header size");
_Static_assert(offsetof(struct colo_wire_frame, hdr_crc) == 40, "hdr_crc covers 40 bytes");

#define COLO_SECTOR 512U
#define COLO_BLOCK_MIN 512U
#define COLO_BLOCK_MAX (1U << 20)
#define COLO_ERRNO_MAX 4095U
#define COLO_PAYLOAD_ALIGN 4096U
#define COLO_HELLO_KNOWN_FLAGS                                                                     \
	(COLO_HELLO_VERIFY | COLO_HELLO_SYNC | COLO_HELLO_SYNC_DIFF | COLO_HELLO_RESUME |           \
	 COLO_HELLO_REPROTECT)
#define COLO_HELLO_STEP_FLAGS (COLO_HELLO_VERIFY | COLO_HELLO_SYNC | COLO_HELLO_REPROTECT)

__attribute__((format(printf, 4, 5))) static int colo_fail(char *err, size_t errlen, int rc,
							   const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

/* VERIFY carries one CRC32C per COLO_VERIFY_CHUNK of the disk, the last chunk short. */
static uint64_t colo_verify_length(uint64_t disk_size)
{
	return 4 * (disk_size / COLO_VERIFY_CHUNK + !!(disk_size % COLO_VERIFY_CHUNK));
}

/* ---- hello ---- */

void colo_hello_encode(const struct colo_hello *h, struct colo_wire_hello *w)
{
	memset(w, 0, sizeof(*w));
	w->magic = htobe64(COLO_PROTO_MAGIC);
	w->version = htobe32(h->version);
	w->flags = htobe32(h->flags);
	w->disk_size = htobe64(h->disk_size);
	w->block_size = htobe32(h->block_size);
	w->auth_type = htobe32(h->auth_type);
	memcpy(w->session_id, h->session_id, sizeof(w->session_id));
	w->auth_len = htobe32(h->auth_len);
	memcpy(w->pair_id, h->pair_id, sizeof(w->pair_id));
	w->resume_epoch = htobe64(h->resume_epoch);
}

int colo_hello_decode(const struct colo_wire_hello *w, struct colo_hello *h, char *err,
		      size_t errlen)
{
	uint64_t magic = be64toh(w->magic);

	memset(h, 0, sizeof(*h));
	if (magic != COLO_PROTO_MAGIC)
		return colo_fail(err, errlen, -EPROTO, "bad hello magic 0x%016" PRIx64, magic);
	h->version = be32toh(w->version);
	h->flags = be32toh(w->flags);
	h->disk_size = be64toh(w->disk_size);
	h->block_size = be32toh(w->block_size);
	h->auth_type = be32toh(w->auth_type);
	h->auth_len = be32toh(w->auth_len);
	memcpy(h->session_id, w->session_id, sizeof(h->session_id));
	memcpy(h->pair_id, w->pair_id, sizeof(h->pair_id));
	h->resume_epoch = be64toh(w->resume_epoch);

	/* Version first: a later version may give the reserved bytes a meaning. */
	if (h->version != COLO_PROTO_VERSION)
		return colo_fail(err, errlen, -EPROTONOSUPPORT,
				 "protocol version %" PRIu32 ", expected %d", h->version,
				 COLO_PROTO_VERSION);
	if (w->reserved)
		return colo_fail(err, errlen, -EPROTO, "hello reserved bytes not zero");
	if (h->flags & ~(uint32_t)COLO_HELLO_KNOWN_FLAGS)
		return colo_fail(err, errlen, -EPROTO, "unknown hello flags 0x%" PRIx32,
				 h->flags & ~(uint32_t)COLO_HELLO_KNOWN_FLAGS);
	if ((h->flags & COLO_HELLO_SYNC_DIFF) && !(h->flags & COLO_HELLO_SYNC))
		return colo_fail(err, errlen, -EPROTO, "hello flag SYNC_DIFF without SYNC");
	if ((h->flags & COLO_HELLO_RESUME) && !(h->flags & COLO_HELLO_SYNC))
		return colo_fail(err, errlen, -EPROTO, "hello flag RESUME without SYNC");
	if (!(h->flags & COLO_HELLO_RESUME) && h->resume_epoch)
		return colo_fail(err, errlen, -EPROTO, "hello resume_epoch without RESUME");
	/* One start step: a verify of equal disks, a copy, or a re-protect (which copies too). */
	if (__builtin_popcount(h->flags & COLO_HELLO_STEP_FLAGS) > 1)
		return colo_fail(err, errlen, -EPROTO,
				 "hello flags 0x%" PRIx32 ": VERIFY, SYNC and REPROTECT exclude each other",
				 h->flags);
	if (h->auth_type > COLO_AUTH_PSK)
		return colo_fail(err, errlen, -EOPNOTSUPP,
				 "authentication type %" PRIu32 " not supported", h->auth_type);
	/* TLS authenticates both ends; no type sends data of its own after the hello. */
	if (h->auth_len)
		return colo_fail(err, errlen, -EPROTO,
				 "%" PRIu32 " bytes of authentication data after the hello",
				 h->auth_len);
	if (h->block_size < COLO_BLOCK_MIN || h->block_size > COLO_BLOCK_MAX ||
	    (h->block_size & (h->block_size - 1)))
		return colo_fail(err, errlen, -EINVAL,
				 "block size %" PRIu32 ": not a power of two in [512, 1048576]",
				 h->block_size);
	if (!h->disk_size || h->disk_size % COLO_SECTOR)
		return colo_fail(err, errlen, -EINVAL,
				 "disk size %" PRIu64 ": not a non-zero multiple of 512",
				 h->disk_size);
	/* Refused here rather than by the VERIFY frame that could never pass. */
	if ((h->flags & COLO_HELLO_VERIFY) && colo_verify_length(h->disk_size) > COLO_VERIFY_MAX)
		return colo_fail(err, errlen, -EINVAL,
				 "disk size %" PRIu64 ": too big to verify (at most %" PRIu64 ")",
				 h->disk_size, (uint64_t)COLO_VERIFY_MAX / 4 * COLO_VERIFY_CHUNK);
	return 0;
}

/* ---- hello reply ---- */

void colo_hello_reply_encode(const struct colo_hello_reply *r, struct colo_wire_hello_reply *w)
{
	/* Zeroing first sends no stack garbage after the message and terminates a long one. */
	memset(w, 0, sizeof(*w));
	w->magic = htobe64(COLO_PROTO_MAGIC);
	w->version = htobe32(r->version);
	w->status = (int32_t)htobe32((uint32_t)r->status);
	memcpy(w->session_id, r->session_id, sizeof(w->session_id));
	w->flags = htobe32(r->flags);
	w->epoch = htobe64(r->epoch);
	memcpy(w->message, r->message, strnlen(r->message, sizeof(w->message) - 1));
}

int colo_hello_reply_decode(const struct colo_wire_hello_reply *w, struct colo_hello_reply *r,
			    char *err, size_t errlen)
{
	uint64_t magic = be64toh(w->magic);

	memset(r, 0, sizeof(*r));
	if (magic != COLO_PROTO_MAGIC)
		return colo_fail(err, errlen, -EPROTO, "bad hello reply magic 0x%016" PRIx64,
				 magic);
	r->version = be32toh(w->version);
	r->status = (int32_t)be32toh((uint32_t)w->status);
	memcpy(r->session_id, w->session_id, sizeof(r->session_id));
	r->flags = be32toh(w->flags);
	r->epoch = be64toh(w->epoch);
	if (r->version != COLO_PROTO_VERSION)
		return colo_fail(err, errlen, -EPROTONOSUPPORT,
				 "protocol version %" PRIu32 ", expected %d", r->version,
				 COLO_PROTO_VERSION);
	if (w->reserved)
		return colo_fail(err, errlen, -EPROTO, "hello reply reserved bytes not zero");
	if (r->flags & ~(uint32_t)COLO_REPLY_RESUMED)
		return colo_fail(err, errlen, -EPROTO, "unknown hello reply flags 0x%" PRIx32,
				 r->flags & ~(uint32_t)COLO_REPLY_RESUMED);
	if (!(r->flags & COLO_REPLY_RESUMED) && r->epoch)
		return colo_fail(err, errlen, -EPROTO, "hello reply epoch without RESUMED");
	if (!memchr(w->message, 0, sizeof(w->message)))
		return colo_fail(err, errlen, -EPROTO, "hello reply message not NUL-terminated");
	memcpy(r->message, w->message, sizeof(r->message));
	if (r->status < 0)
		return colo_fail(err, errlen, -EPROTO, "hello reply status %" PRId32 " is negative",
				 r->status);
	return 0;
}

/* ---- frames ---- */

const char *colo_frame_type_name(uint16_t type)
{
	switch (type) {
	case COLO_FRAME_WRITE:
		return "WRITE";
	case COLO_FRAME_EPOCH:
		return "EPOCH";
	case COLO_FRAME_ACK:
		return "ACK";
	case COLO_FRAME_HEARTBEAT:
		return "HEARTBEAT";
	case COLO_FRAME_ERROR:
		return "ERROR";
	case COLO_FRAME_VERIFY:
		return "VERIFY";
	case COLO_FRAME_GOODBYE:
		return "GOODBYE";
	case COLO_FRAME_SYNC:
		return "SYNC";
	case COLO_FRAME_SYNC_END:
		return "SYNC_END";
	case COLO_FRAME_HASHES:
		return "HASHES";
	case COLO_FRAME_DIRTY:
		return "DIRTY";
	case COLO_FRAME_DIRTY_END:
		return "DIRTY_END";
	}
	return "UNKNOWN";
}

static uint32_t colo_frame_hdr_crc(const struct colo_wire_frame *w)
{
	return crc32c(0, w, offsetof(struct colo_wire_frame, hdr_crc));
}

void colo_frame_encode(const struct colo_frame *f, struct colo_wire_frame *w)
{
	memset(w, 0, sizeof(*w));
	w->magic = htobe32(COLO_FRAME_MAGIC);
	w->type = htobe16(f->type);
	w->seq = htobe64(f->seq);
	w->epoch = htobe64(f->epoch);
	w->offset = htobe64(f->offset);
	w->length = htobe32(f->length);
	w->data_crc = htobe32(f->data_crc);
	w->hdr_crc = htobe32(colo_frame_hdr_crc(w));
}

static int colo_check_no_payload(const struct colo_frame *f, char *err, size_t errlen)
{
	const char *name = colo_frame_type_name(f->type);

	if (f->length)
		return colo_fail(err, errlen, -EPROTO, "%s with a payload of %" PRIu32 " bytes",
				 name, f->length);
	if (f->offset)
		return colo_fail(err, errlen, -EPROTO, "%s with offset %" PRIu64, name, f->offset);
	return 0;
}

static int colo_check_seq(const struct colo_frame *f, char *err, size_t errlen)
{
	if (!f->seq)
		return colo_fail(err, errlen, -EPROTO, "%s with seq 0",
				 colo_frame_type_name(f->type));
	return 0;
}

static int colo_check_write(const struct colo_frame *f, const struct colo_frame_limits *lim,
			    char *err, size_t errlen)
{
	const char *name = colo_frame_type_name(f->type);
	int rc = colo_check_seq(f, err, errlen);

	if (rc)
		return rc;
	if (!f->length)
		return colo_fail(err, errlen, -EINVAL, "%s of 0 bytes at %" PRIu64, name, f->offset);
	if (f->length % COLO_SECTOR || f->offset % COLO_SECTOR)
		return colo_fail(err, errlen, -EINVAL,
				 "%s of %" PRIu32 " bytes at %" PRIu64 ": not a multiple of 512",
				 name, f->length, f->offset);
	if (f->length > COLO_WRITE_MAX)
		return colo_fail(err, errlen, -E2BIG,
				 "%s of %" PRIu32 " bytes at %" PRIu64 ": longer than %u",
				 name, f->length, f->offset, COLO_WRITE_MAX);
	/* Written so that offset + length cannot wrap. */
	if (f->offset > lim->disk_size || f->length > lim->disk_size - f->offset)
		return colo_fail(err, errlen, -ERANGE,
				 "%s of %" PRIu32 " bytes at %" PRIu64
				 ": past the end of the %" PRIu64 "-byte disk",
				 name, f->length, f->offset, lim->disk_size);
	return 0;
}

/* HASHES: 1 to COLO_HASHES_MAX / 16 entries from extent @offset, all within the disk. */
static int colo_check_hashes(const struct colo_frame *f, const struct colo_frame_limits *lim,
			     char *err, size_t errlen)
{
	uint64_t extents = lim->disk_size / COLO_SYNC_EXTENT + !!(lim->disk_size % COLO_SYNC_EXTENT);

	if (f->seq)
		return colo_fail(err, errlen, -EPROTO, "HASHES with seq %" PRIu64, f->seq);
	if (f->length > COLO_HASHES_MAX)
		return colo_fail(err, errlen, -E2BIG, "HASHES of %" PRIu32 " bytes: longer than %u",
				 f->length, COLO_HASHES_MAX);
	if (!f->length || f->length % COLO_HASH_SIZE)
		return colo_fail(err, errlen, -EINVAL,
				 "HASHES of %" PRIu32 " bytes: not a non-zero multiple of %u",
				 f->length, COLO_HASH_SIZE);
	if (f->offset > extents || f->length / COLO_HASH_SIZE > extents - f->offset)
		return colo_fail(err, errlen, -ERANGE,
				 "HASHES of %" PRIu32 " extents from %" PRIu64
				 ": past the %" PRIu64 " extents of the disk",
				 f->length / COLO_HASH_SIZE, f->offset, extents);
	return 0;
}

/*
 * DIRTY: a bitmap of 1 to COLO_DIRTY_MAX bytes for extents @offset, @offset + 1, ...: @offset
 * a multiple of 8, the bytes within the disk's extents rounded up to a byte.
 */
static int colo_check_dirty(const struct colo_frame *f, const struct colo_frame_limits *lim,
			    char *err, size_t errlen)
{
	uint64_t extents = lim->disk_size / COLO_SYNC_EXTENT + !!(lim->disk_size % COLO_SYNC_EXTENT);
	uint64_t bytes = (extents + 7) / 8;

	if (f->seq)
		return colo_fail(err, errlen, -EPROTO, "DIRTY with seq %" PRIu64, f->seq);
	if (!f->length || f->length > COLO_DIRTY_MAX)
		return colo_fail(err, errlen, -E2BIG, "DIRTY of %" PRIu32 " bytes: not 1 to %u",
				 f->length, COLO_DIRTY_MAX);
	if (f->offset % 8 || f->offset / 8 > bytes || f->length > bytes - f->offset / 8)
		return colo_fail(err, errlen, -ERANGE,
				 "DIRTY of %" PRIu32 " bytes from extent %" PRIu64
				 ": not a byte's start or past the %" PRIu64 " extents of the disk",
				 f->length, f->offset, extents);
	return 0;
}

static int colo_check_dirty_end(const struct colo_frame *f, char *err, size_t errlen)
{
	if (f->seq || f->offset > 1)
		return colo_fail(err, errlen, -EPROTO,
				 "DIRTY_END with seq %" PRIu64 " and offset %" PRIu64
				 " (expected 0 and 0 or 1)",
				 f->seq, f->offset);
	if (f->length)
		return colo_fail(err, errlen, -EPROTO, "DIRTY_END with a payload of %" PRIu32 " bytes",
				 f->length);
	return 0;
}

static int colo_check_error(const struct colo_frame *f, char *err, size_t errlen)
{
	if (f->length > COLO_ERROR_MAX)
		return colo_fail(err, errlen, -E2BIG,
				 "ERROR message of %" PRIu32 " bytes: longer than %u", f->length,
				 COLO_ERROR_MAX);
	if (f->offset < 1 || f->offset > COLO_ERRNO_MAX)
		return colo_fail(err, errlen, -EINVAL, "ERROR with errno %" PRIu64 ": not in 1..%u",
				 f->offset, COLO_ERRNO_MAX);
	return 0;
}

static int colo_check_verify(const struct colo_frame *f, const struct colo_frame_limits *lim,
			     char *err, size_t errlen)
{
	uint64_t want = colo_verify_length(lim->disk_size);
	int rc = colo_check_seq(f, err, errlen);

	if (rc)
		return rc;
	if (f->offset)
		return colo_fail(err, errlen, -EPROTO, "VERIFY with offset %" PRIu64, f->offset);
	if (f->length > COLO_VERIFY_MAX)
		return colo_fail(err, errlen, -E2BIG, "VERIFY of %" PRIu32 " bytes: longer than %u",
				 f->length, COLO_VERIFY_MAX);
	if (f->length != want)
		return colo_fail(err, errlen, -EINVAL,
				 "VERIFY of %" PRIu32 " bytes: expected %" PRIu64 " for a %" PRIu64
				 "-byte disk",
				 f->length, want, lim->disk_size);
	return 0;
}

int colo_frame_decode(const struct colo_wire_frame *w, const struct colo_frame_limits *lim,
		      struct colo_frame *f, char *err, size_t errlen)
{
	uint32_t magic = be32toh(w->magic), hdr_crc = be32toh(w->hdr_crc);
	uint16_t flags = be16toh(w->flags);
	uint32_t reserved = be32toh(w->reserved);
	int rc;

	memset(f, 0, sizeof(*f));
	if (magic != COLO_FRAME_MAGIC)
		return colo_fail(err, errlen, -EPROTO, "bad frame magic 0x%08" PRIx32, magic);
	/* The checksum before any field: a flipped bit must not pass as a strange value. */
	if (hdr_crc != colo_frame_hdr_crc(w))
		return colo_fail(err, errlen, -EBADMSG, "header checksum mismatch");
	if (flags)
		return colo_fail(err, errlen, -EPROTO, "frame flags 0x%04" PRIx16 " not zero",
				 flags);
	if (reserved)
		return colo_fail(err, errlen, -EPROTO,
				 "frame reserved field 0x%08" PRIx32 " not zero", reserved);
	f->type = be16toh(w->type);
	f->seq = be64toh(w->seq);
	f->epoch = be64toh(w->epoch);
	f->offset = be64toh(w->offset);
	f->length = be32toh(w->length);
	f->data_crc = be32toh(w->data_crc);

	switch (f->type) {
	case COLO_FRAME_WRITE:
	case COLO_FRAME_SYNC:
		rc = colo_check_write(f, lim, err, errlen);
		break;
	case COLO_FRAME_EPOCH:
	case COLO_FRAME_SYNC_END:
		rc = colo_check_seq(f, err, errlen);
		if (!rc)
			rc = colo_check_no_payload(f, err, errlen);
		break;
	case COLO_FRAME_ACK:
	case COLO_FRAME_HEARTBEAT:
	case COLO_FRAME_GOODBYE:
		rc = colo_check_no_payload(f, err, errlen);
		break;
	case COLO_FRAME_ERROR:
		rc = colo_check_error(f, err, errlen);
		break;
	case COLO_FRAME_VERIFY:
		rc = colo_check_verify(f, lim, err, errlen);
		break;
	case COLO_FRAME_HASHES:
		rc = colo_check_hashes(f, lim, err, errlen);
		break;
	case COLO_FRAME_DIRTY:
		rc = colo_check_dirty(f, lim, err, errlen);
		break;
	case COLO_FRAME_DIRTY_END:
		rc = colo_check_dirty_end(f, err, errlen);
		break;
	default:
		rc = colo_fail(err, errlen, -EPROTO, "unknown frame type %" PRIu16, f->type);
		break;
	}
	if (rc)
		memset(f, 0, sizeof(*f));
	return rc;
}

int colo_frame_check_payload(const struct colo_frame *f, const void *payload, char *err,
			     size_t errlen)
{
	uint32_t crc = f->length ? crc32c(0, payload, f->length) : 0;

	if (crc != f->data_crc)
		return colo_fail(err, errlen, -EBADMSG,
				 "%s of %" PRIu32 " bytes at %" PRIu64
				 ": payload checksum mismatch",
				 colo_frame_type_name(f->type), f->length, f->offset);
	return 0;
}

/* ---- reader ---- */

void colo_reader_init(struct colo_reader *r, const struct colo_frame_limits *lim)
{
	struct colo_frame_limits l = *lim; /* @lim may point into @r (colo_reader_free) */

	memset(r, 0, sizeof(*r));
	r->state = COLO_READER_HEADER;
	r->lim = l;
}

void colo_reader_free(struct colo_reader *r)
{
	free(r->payload);
	colo_reader_init(r, &r->lim);
}

void colo_reader_next(struct colo_reader *r, void **buf, size_t *len)
{
	switch (r->state) {
	case COLO_READER_HEADER:
		*buf = (uint8_t *)&r->hdr + r->have;
		*len = sizeof(r->hdr) - r->have;
		return;
	case COLO_READER_PAYLOAD:
		*buf = (uint8_t *)r->payload + r->have;
		*len = r->frame.length - r->have;
		return;
	case COLO_READER_READY:
	case COLO_READER_FAILED:
		break;
	}
	*buf = NULL;
	*len = 0;
}

static int colo_reader_fail(struct colo_reader *r, int rc)
{
	colo_reader_free(r);
	r->state = COLO_READER_FAILED;
	r->error = rc;
	return rc;
}

/* The payload is complete: check it. */
static int colo_reader_finish(struct colo_reader *r, char *err, size_t errlen)
{
	int rc = colo_frame_check_payload(&r->frame, r->payload, err, errlen);

	if (rc)
		return colo_reader_fail(r, rc);
	r->state = COLO_READER_READY;
	return 1;
}

/* The header is complete: check it, and only then allocate its payload. */
static int colo_reader_start_payload(struct colo_reader *r, char *err, size_t errlen)
{
	size_t size;
	int rc;

	rc = colo_frame_decode(&r->hdr, &r->lim, &r->frame, err, errlen);
	if (rc)
		return colo_reader_fail(r, rc);
	r->have = 0;
	if (!r->frame.length)
		return colo_reader_finish(r, err, errlen);

	/* Rounded up so that O_DIRECT writes and page-granular buffers can use it as it is. */
	size = ((size_t)r->frame.length + COLO_PAYLOAD_ALIGN - 1) / COLO_PAYLOAD_ALIGN;
	size *= COLO_PAYLOAD_ALIGN;
	if (posix_memalign(&r->payload, COLO_PAYLOAD_ALIGN, size)) {
		r->payload = NULL;
		rc = colo_fail(err, errlen, -ENOMEM, "no memory for a %s of %" PRIu32 " bytes",
			       colo_frame_type_name(r->frame.type), r->frame.length);
		return colo_reader_fail(r, rc);
	}
	memset((uint8_t *)r->payload + r->frame.length, 0, size - r->frame.length);
	r->state = COLO_READER_PAYLOAD;
	return 0;
}

int colo_reader_advance(struct colo_reader *r, size_t n, char *err, size_t errlen)
{
	void *buf;
	size_t len;

	colo_reader_next(r, &buf, &len);
	switch (r->state) {
	case COLO_READER_READY:
		return n ? colo_fail(err, errlen, -EINVAL, "bytes before the ready frame was taken")
			 : 1;
	case COLO_READER_FAILED:
		return colo_fail(err, errlen, r->error, "the reader failed on an earlier frame");
	case COLO_READER_HEADER:
	case COLO_READER_PAYLOAD:
		break;
	}
	if (n > len)
		return colo_fail(err, errlen, -EINVAL, "%zu bytes arrived where %zu were asked for",
				 n, len);
	r->have += n;
	if (n < len)
		return 0;
	if (r->state == COLO_READER_HEADER)
		return colo_reader_start_payload(r, err, errlen);
	return colo_reader_finish(r, err, errlen);
}

void colo_reader_take(struct colo_reader *r, struct colo_frame *f, void **payload)
{
	if (r->state != COLO_READER_READY) {
		memset(f, 0, sizeof(*f));
		*payload = NULL;
		return;
	}
	*f = r->frame;
	*payload = r->payload;
	r->payload = NULL;
	r->have = 0;
	r->state = COLO_READER_HEADER;
}

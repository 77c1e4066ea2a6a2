/*
 * The replication link's codec (docs/colo-protocol.md): host-order messages, pure encode and
 * decode, and a streaming frame reader.  This is the only code that touches the wire structs
 * of colo-protocol.h; it does no I/O and keeps no globals, so it is unit-tested
 * (tests/unit/test-colo-proto.c) and fuzzed (tests/fuzz/fuzz-colo-frame.c) on its own.
 *
 * Every decoder checks everything that can be checked without state (magic, checksum,
 * version, field ranges against the disk size) and returns 0 or a negative errno with one
 * line in @err.  What needs state (seq order, which side may send which frame, whether the
 * hello matches our own disk) is the caller's.
 */
#ifndef _COLO_PROTO_H_
#define _COLO_PROTO_H_

#include <stddef.h>
#include <stdint.h>

#include "colo-protocol.h"

struct colo_hello {
	uint32_t version;
	uint32_t flags; /* COLO_HELLO_* */
	uint64_t disk_size;
	uint32_t block_size;
	uint32_t auth_type;
	uint32_t auth_len;
	uint8_t session_id[16];
	uint8_t pair_id[16];
	uint64_t resume_epoch;
};

struct colo_hello_reply {
	uint32_t version;
	int32_t status; /* 0, or a positive errno */
	uint8_t session_id[16];
	uint32_t flags;	   /* COLO_REPLY_* */
	uint64_t epoch;	   /* RESUMED: the Secondary's last completed checkpoint */
	char message[112]; /* NUL-terminated */
};

struct colo_frame {
	uint16_t type; /* enum colo_frame_type */
	uint64_t seq;
	uint64_t epoch;
	uint64_t offset;
	uint32_t length;
	uint32_t data_crc;
};

/* What a frame is checked against. */
struct colo_frame_limits {
	uint64_t disk_size; /* bytes */
};

/*
 * Errors of the decoders:
 *   -EPROTO           wrong magic, non-zero reserved bytes or flags, unknown hello flags or
 *                     frame type, more than one of the hello flags VERIFY, SYNC, REPROTECT, a field that must be 0 for this type is not, seq 0, an
 *                     auth_len without authentication, a hello_reply message without NUL or
 *                     a negative status
 *   -EPROTONOSUPPORT  another protocol version
 *   -EOPNOTSUPP       an authentication type we do not know
 *   -EBADMSG          header or payload checksum mismatch
 *   -EINVAL           a size or offset out of its range (block and disk size, a disk over
 *                     16 TiB with COLO_HELLO_VERIFY, WRITE alignment and length, VERIFY
 *                     length, ERROR errno)
 *   -E2BIG            a payload over its maximum (COLO_WRITE_MAX, COLO_ERROR_MAX,
 *                     COLO_VERIFY_MAX)
 *   -ERANGE           a WRITE past the end of the disk
 *   -ENOMEM           (reader) no memory for a payload that passed the checks
 */

/*
 * Encoders write every byte of @w: reserved bytes and the message's tail are zero.  The hello
 * decoders leave what they decoded in @h / @r even on error (but for a bad magic), so that the
 * refusal can quote it.
 */
void colo_hello_encode(const struct colo_hello *h, struct colo_wire_hello *w);
int colo_hello_decode(const struct colo_wire_hello *w, struct colo_hello *h, char *err,
		      size_t errlen);
/* Truncates a message too long for the wire (111 bytes and the NUL). */
void colo_hello_reply_encode(const struct colo_hello_reply *r, struct colo_wire_hello_reply *w);
int colo_hello_reply_decode(const struct colo_wire_hello_reply *w, struct colo_hello_reply *r,
			    char *err, size_t errlen);

/* Fills magic, flags, reserved and hdr_crc; data_crc is @f's: crc32c(0, payload, length). */
void colo_frame_encode(const struct colo_frame *f, struct colo_wire_frame *w);
/* Checks the header only, the payload not being read yet.  On error @f is zeroed. */
int colo_frame_decode(const struct colo_wire_frame *w, const struct colo_frame_limits *lim,
		      struct colo_frame *f, char *err, size_t errlen);
/* Checks @payload (@f->length bytes; may be NULL when 0) against data_crc: 0 or -EBADMSG. */
int colo_frame_check_payload(const struct colo_frame *f, const void *payload, char *err,
			     size_t errlen);
/* "WRITE", "EPOCH", ... or "UNKNOWN". */
const char *colo_frame_type_name(uint16_t type);

/*
 * A streaming frame reader, zero-copy: the caller reads from its socket straight into the
 * place colo_reader_next names, then reports how many bytes arrived.  A payload is allocated
 * only once its header passed every check, so a peer cannot make us allocate more than
 * COLO_WRITE_MAX.  Fields are private to colo-proto.c.
 */
enum colo_reader_state {
	COLO_READER_HEADER,  /* reading the 48-byte header */
	COLO_READER_PAYLOAD, /* reading frame.length bytes into payload */
	COLO_READER_READY,   /* a checked frame waits for colo_reader_take */
	COLO_READER_FAILED,  /* a bad frame: the link must be closed */
};

struct colo_reader {
	enum colo_reader_state state;
	struct colo_frame_limits lim;
	struct colo_wire_frame hdr;
	struct colo_frame frame; /* decoded from hdr */
	void *payload;
	size_t have; /* bytes of the header, then of the payload, received */
	int error;   /* in FAILED */
};

void colo_reader_init(struct colo_reader *r, const struct colo_frame_limits *lim);
/* Frees a partial or untaken payload and forgets the partial frame, as for a new connection. */
void colo_reader_free(struct colo_reader *r);
/* Where the next bytes go, at most @len of them; @len is 0 when READY or FAILED. */
void colo_reader_next(struct colo_reader *r, void **buf, size_t *len);
/*
 * Reports that @n bytes (at most the last colo_reader_next's @len) arrived.  Returns 1 when a
 * whole frame with a checked payload is ready, 0 when more is needed, or a negative errno on a
 * bad frame (see above; again on every later call).  More than was asked for, or bytes while
 * a frame waits to be taken, are the caller's bug: -EINVAL, and the reader is unchanged.
 */
int colo_reader_advance(struct colo_reader *r, size_t n, char *err, size_t errlen);
/*
 * Hands over the ready frame; the reader then starts on the next one.  @payload is NULL when
 * the length is 0, else from posix_memalign (4096-aligned, the size rounded up to 4096 with
 * the bytes past the length zero, so an ERROR message is NUL-terminated), for the caller to
 * free().  Not READY: @f is zeroed and @payload NULL.
 */
void colo_reader_take(struct colo_reader *r, struct colo_frame *f, void **payload);

#endif

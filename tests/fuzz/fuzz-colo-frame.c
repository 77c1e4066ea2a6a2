/*
 * libFuzzer target for the replication link's codec (colo-proto.c): the bytes a peer can
 * send us.
 *
 * Input: 8 bytes of disk size (big-endian, rounded down to a multiple of 512, 512 if that
 * is 0: any size a hello can announce, so the overflow edges near 2^64 are reached), one
 * byte k, k & 15 bytes of chunk sizes used in turn (0: all that the reader asks for), then
 * the stream, fed through a colo_reader in those chunks the way the socket code does.  When
 * k & 0x80, each header's data_crc and hdr_crc are fixed up before it is fed: random bytes
 * almost never carry a valid CRC32C, and the checks behind them need fuzzing too.  Every
 * frame the reader hands over is checked against the rules of docs/colo-protocol.md and
 * re-encoded to the exact header bytes it came from, with abort() on any violation; the
 * first error ends the input.  The input's first bytes are also decoded as a hello and a
 * hello_reply.  ASan and UBSan check the rest (overruns, leaks, unaligned loads).
 */
#include <endian.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "colo-proto.h"
#include "crc32c.h"

static void fuzz_assert(int cond)
{
	if (!cond)
		abort();
}

static void fuzz_check_error(int rc, const char *err)
{
	fuzz_assert(rc == -EPROTO || rc == -EPROTONOSUPPORT || rc == -EOPNOTSUPP ||
		    rc == -EBADMSG || rc == -EINVAL || rc == -E2BIG || rc == -ERANGE ||
		    rc == -ENOMEM);
	fuzz_assert(err[0] != '\0' && strlen(err) < 128);
}

static void fuzz_hello(const uint8_t *data, size_t size)
{
	struct colo_wire_hello w, w2;
	struct colo_wire_hello_reply rw, rw2;
	struct colo_hello h;
	struct colo_hello_reply r;
	char err[128] = "";
	int rc;

	memset(&w, 0, sizeof(w));
	memcpy(&w, data, size < sizeof(w) ? size : sizeof(w));
	rc = colo_hello_decode(&w, &h, err, sizeof(err));
	if (rc) {
		fuzz_check_error(rc, err);
	} else {
		fuzz_assert(h.version == COLO_PROTO_VERSION && h.auth_type <= COLO_AUTH_PSK);
		fuzz_assert(!(h.flags & ~(uint32_t)(COLO_HELLO_VERIFY | COLO_HELLO_SYNC |
						    COLO_HELLO_SYNC_DIFF | COLO_HELLO_RESUME |
						    COLO_HELLO_REPROTECT)) &&
			    !h.auth_len);
		fuzz_assert(!(h.flags & COLO_HELLO_SYNC_DIFF) || (h.flags & COLO_HELLO_SYNC));
		fuzz_assert(!(h.flags & COLO_HELLO_RESUME) || (h.flags & COLO_HELLO_SYNC));
		fuzz_assert((h.flags & COLO_HELLO_RESUME) || !h.resume_epoch);
		/* At most one start step. */
		fuzz_assert(__builtin_popcount(h.flags & (COLO_HELLO_VERIFY | COLO_HELLO_SYNC |
							  COLO_HELLO_REPROTECT)) <= 1);
		fuzz_assert(h.block_size >= 512 && h.block_size <= (1u << 20));
		fuzz_assert(!(h.block_size & (h.block_size - 1)));
		fuzz_assert(h.disk_size && !(h.disk_size % 512));
		fuzz_assert(!(h.flags & COLO_HELLO_VERIFY) || h.disk_size <= (16ull << 40));
		/* Whatever is accepted has exactly one encoding. */
		colo_hello_encode(&h, &w2);
		fuzz_assert(!memcmp(&w, &w2, sizeof(w)));
	}

	err[0] = '\0';
	memset(&rw, 0, sizeof(rw));
	memcpy(&rw, data, size < sizeof(rw) ? size : sizeof(rw));
	rc = colo_hello_reply_decode(&rw, &r, err, sizeof(err));
	if (rc) {
		fuzz_check_error(rc, err);
	} else {
		fuzz_assert(r.version == COLO_PROTO_VERSION && r.status >= 0);
		fuzz_assert(memchr(r.message, 0, sizeof(r.message)) != NULL);
		/* Equal up to the message's NUL: the encoder zeroes what follows it. */
		colo_hello_reply_encode(&r, &rw2);
		fuzz_assert(!memcmp(&rw, &rw2, offsetof(struct colo_wire_hello_reply, message)));
		fuzz_assert(!strcmp(rw.message, rw2.message));
	}
}

/* A header colo_frame_decode accepted: the rules of docs/colo-protocol.md hold. */
static void fuzz_check_header(const struct colo_frame *f, const uint8_t *hdr,
			      const struct colo_frame_limits *lim)
{
	struct colo_wire_frame w;
	uint64_t chunks =
		lim->disk_size / COLO_VERIFY_CHUNK + !!(lim->disk_size % COLO_VERIFY_CHUNK);

	/* Whatever is accepted has exactly one encoding. */
	colo_frame_encode(f, &w);
	fuzz_assert(!memcmp(&w, hdr, sizeof(w)));

	switch (f->type) {
	case COLO_FRAME_WRITE:
	case COLO_FRAME_SYNC:
		fuzz_assert(f->seq >= 1);
		fuzz_assert(f->length >= 512 && f->length <= COLO_WRITE_MAX);
		fuzz_assert(!(f->length % 512) && !(f->offset % 512));
		fuzz_assert(f->offset < lim->disk_size && f->length <= lim->disk_size - f->offset);
		break;
	case COLO_FRAME_EPOCH:
	case COLO_FRAME_SYNC_END:
		fuzz_assert(f->seq >= 1);
		/* fall through */
	case COLO_FRAME_ACK:
	case COLO_FRAME_HEARTBEAT:
	case COLO_FRAME_GOODBYE:
		fuzz_assert(!f->length && !f->offset);
		break;
	case COLO_FRAME_ERROR:
		fuzz_assert(f->length <= COLO_ERROR_MAX);
		fuzz_assert(f->offset >= 1 && f->offset <= 4095);
		break;
	case COLO_FRAME_VERIFY:
		fuzz_assert(f->seq >= 1 && !f->offset);
		fuzz_assert(f->length <= COLO_VERIFY_MAX && f->length == 4 * chunks);
		break;
	case COLO_FRAME_HASHES:
		fuzz_assert(!f->seq && f->length && f->length <= COLO_HASHES_MAX);
		fuzz_assert(!(f->length % COLO_HASH_SIZE));
		fuzz_assert(f->offset <= chunks && f->length / COLO_HASH_SIZE <= chunks - f->offset);
		break;
	case COLO_FRAME_DIRTY:
		fuzz_assert(!f->seq && f->length && f->length <= COLO_DIRTY_MAX);
		fuzz_assert(!(f->offset % 8) && f->offset / 8 <= (chunks + 7) / 8);
		fuzz_assert(f->length <= (chunks + 7) / 8 - f->offset / 8);
		break;
	case COLO_FRAME_DIRTY_END:
		fuzz_assert(!f->seq && !f->length && f->offset <= 1);
		break;
	default:
		abort();
	}
}

/* A frame the reader handed over: the header it decoded, and a checked, padded payload. */
static void fuzz_check_frame(const struct colo_frame *f, const uint8_t *payload,
			     const struct colo_frame *direct)
{
	uint32_t rounded, i;

	fuzz_assert(f->type == direct->type && f->seq == direct->seq && f->epoch == direct->epoch &&
		    f->offset == direct->offset && f->length == direct->length &&
		    f->data_crc == direct->data_crc);
	fuzz_assert(!f->length == !payload);
	if (!f->length) {
		fuzz_assert(!f->data_crc);
		return;
	}
	/* Both implementations agree on what the peer sent. */
	fuzz_assert(crc32c(0, payload, f->length) == f->data_crc);
	fuzz_assert(crc32c_sw(0, payload, f->length) == f->data_crc);
	fuzz_assert(!((uintptr_t)payload % 4096));
	rounded = (f->length + 4095) / 4096 * 4096;
	for (i = f->length; i < rounded; i++)
		fuzz_assert(!payload[i]);
}

/* Gives the frame starting at @p (@len bytes left) a valid data_crc and hdr_crc. */
static void fuzz_fix_crcs(uint8_t *p, size_t len)
{
	struct colo_wire_frame w;
	uint32_t crc;

	if (len < sizeof(w))
		return;
	memcpy(&w, p, sizeof(w));
	if (be32toh(w.length) <= len - sizeof(w)) {
		crc = crc32c(0, p + sizeof(w), be32toh(w.length));
		w.data_crc = htobe32(crc);
	}
	w.hdr_crc = htobe32(crc32c(0, &w, offsetof(struct colo_wire_frame, hdr_crc)));
	memcpy(p, &w, sizeof(w));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct colo_frame_limits lim;
	struct colo_reader r;
	const uint8_t *chunks;
	uint8_t *stream;
	size_t nchunks, len, pos = 0, start = 0, want, n, step = 0;
	int fix;
	struct colo_wire_frame hdr;
	struct colo_frame f, direct;
	void *buf, *payload;
	char err[128], direct_err[128];
	uint64_t raw;
	int rc, direct_rc = 0;

	fuzz_hello(data, size);
	if (size < 9)
		return 0;
	memcpy(&raw, data, 8);
	lim.disk_size = be64toh(raw) & ~511ull;
	if (!lim.disk_size)
		lim.disk_size = 512;
	nchunks = data[8] & 15;
	fix = data[8] & 0x80;
	if (size < 9 + nchunks)
		return 0;
	chunks = data + 9;
	len = size - 9 - nchunks;
	/* A copy: the fix-ups write to it, and ASan sees reads past the end of the input. */
	stream = malloc(len ? len : 1);
	fuzz_assert(stream != NULL);
	memcpy(stream, chunks + nchunks, len);

	colo_reader_init(&r, &lim);
	while (pos < len) {
		colo_reader_next(&r, &buf, &want);
		fuzz_assert(buf && want);
		if (pos == start) {
			if (fix)
				fuzz_fix_crcs(stream + pos, len - pos);
			/*
			 * The header alone, decoded here: its rules are checked even when the
			 * input is too short for the payload, and the reader must agree.
			 */
			direct_rc = 1;
			if (len - pos >= sizeof(hdr)) {
				memcpy(&hdr, stream + pos, sizeof(hdr));
				direct_rc = colo_frame_decode(&hdr, &lim, &direct, direct_err,
							      sizeof(direct_err));
				if (direct_rc)
					fuzz_check_error(direct_rc, direct_err);
				else
					fuzz_check_header(&direct, stream + pos, &lim);
			}
		}
		n = nchunks ? chunks[step++ % nchunks] : 0;
		n = n && n < want ? n : want;
		n = n < len - pos ? n : len - pos;
		memcpy(buf, stream + pos, n);
		pos += n;
		err[0] = '\0';
		rc = colo_reader_advance(&r, n, err, sizeof(err));
		if (rc < 0) {
			fuzz_check_error(rc, err);
			/* A bad header fails alike; a good one only by its payload or memory. */
			if (direct_rc)
				fuzz_assert(rc == direct_rc && !strcmp(err, direct_err));
			else
				fuzz_assert(rc == -EBADMSG || rc == -ENOMEM);
			break;
		}
		if (!rc)
			continue;
		colo_reader_take(&r, &f, &payload);
		fuzz_assert(!direct_rc && pos - start == sizeof(hdr) + f.length);
		fuzz_check_frame(&f, payload, &direct);
		free(payload);
		start = pos;
	}
	colo_reader_free(&r);
	free(stream);
	return 0;
}

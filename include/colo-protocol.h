/*
 * The replication link's wire format (docs/colo-protocol.md).  All integers are big-endian on
 * the wire; these structs are the wire layout and are converted only by colo-proto.c.
 */
#ifndef _COLO_PROTOCOL_H_
#define _COLO_PROTOCOL_H_

#include <stddef.h>
#include <stdint.h>

#define COLO_PROTO_MAGIC 0x424c4b434f4c4f31ULL /* "BLKCOLO1" */
/* 2: the sync start step (SYNC, SYNC_END, HASHES); 3: auth_type carries the TLS mode;
 * 4: re-protect (REPROTECT, DIRTY, DIRTY_END); 5: the pair identity and the resync */
#define COLO_PROTO_VERSION 5
#define COLO_FRAME_MAGIC 0x434f4c46U /* "COLF" */

#define COLO_AUTH_NONE 0 /* plain text (tls=none) */
#define COLO_AUTH_X509 1 /* inside TLS with X.509 certificates (tls=x509) */
#define COLO_AUTH_PSK 2	 /* inside TLS with a pre-shared key (tls=psk) */

/* Handshake: the Primary sends a hello, the Secondary answers with a hello_reply. */
struct colo_wire_hello {
	uint64_t magic;
	uint32_t version;
	uint32_t flags;       /* COLO_HELLO_* */
	uint64_t disk_size;   /* bytes */
	uint32_t block_size;  /* bytes */
	uint32_t auth_type;   /* COLO_AUTH_*: the mode of the TLS session around the hello */
	uint8_t session_id[16];
	uint32_t auth_len;    /* 0: no authentication data after the hello (TLS authenticates) */
	uint8_t pair_id[16];  /* the replication pair's identity, chosen by its first Primary */
	uint64_t resume_epoch; /* RESUME: the Primary knows what changed since this checkpoint */
	uint32_t reserved;    /* zero */
} __attribute__((packed));

#define COLO_HELLO_VERIFY 0x1	 /* the Primary sends a VERIFY frame first */
#define COLO_HELLO_SYNC 0x2	 /* the Primary copies its disk: SYNC frames, then SYNC_END */
#define COLO_HELLO_SYNC_DIFF 0x4 /* with SYNC: the Secondary first sends HASHES of its disk */
#define COLO_HELLO_RESUME 0x8	 /* with SYNC: resync since a common checkpoint if there is one */
/* A failed-over Secondary re-protects: the Secondary (its old Primary) first sends DIRTY
 * frames and DIRTY_END, the extents it wrote that the new Primary may lack; then SYNC frames
 * and SYNC_END follow as for a sync. */
#define COLO_HELLO_REPROTECT 0x10

struct colo_wire_hello_reply {
	uint64_t magic;
	uint32_t version;
	int32_t status;       /* 0, or a positive errno: the Secondary refused */
	uint8_t session_id[16];
	uint32_t flags;       /* COLO_REPLY_* */
	uint32_t reserved;    /* zero */
	uint64_t epoch;       /* RESUMED: the last checkpoint the Secondary completed */
	char message[112];    /* why it refused, NUL-terminated */
} __attribute__((packed));

#define COLO_REPLY_RESUMED 0x1 /* the Primary sends what changed since epoch (SYNC frames) */

enum colo_frame_type {
	COLO_FRAME_WRITE = 1,     /* Primary → Secondary: data to apply */
	COLO_FRAME_EPOCH = 2,     /* Primary → Secondary: the epoch ends here */
	COLO_FRAME_ACK = 3,       /* Secondary → Primary: everything up to seq is applied */
	COLO_FRAME_HEARTBEAT = 4, /* both ways, on an idle link */
	COLO_FRAME_ERROR = 5,     /* both ways: the sender gives up; payload is a message */
	COLO_FRAME_VERIFY = 6,    /* Primary → Secondary: CRC32C per 1 MiB chunk of the disk */
	COLO_FRAME_GOODBYE = 7,   /* both ways: the sender ends replication in order, closes */
	COLO_FRAME_SYNC = 8,	  /* Primary → Secondary: a copied extent, applied as a WRITE */
	COLO_FRAME_SYNC_END = 9,  /* Primary → Secondary: the copy is complete */
	COLO_FRAME_HASHES = 10,	  /* Secondary → Primary: XXH3-128 of extents offset, offset+1... */
	COLO_FRAME_DIRTY = 11,	  /* Secondary → Primary: bitmap of extents it wrote in epoch */
	COLO_FRAME_DIRTY_END = 12, /* Secondary → Primary: offset 1: DIRTY complete, 0: unknown */
};

struct colo_wire_frame {
	uint32_t magic;
	uint16_t type;
	uint16_t flags;    /* zero */
	uint64_t seq;      /* WRITE, EPOCH, VERIFY: 1, 2, 3 ...; ACK: the last applied */
	uint64_t epoch;
	uint64_t offset;   /* WRITE: byte offset; ERROR: errno */
	uint32_t length;   /* payload bytes after the header */
	uint32_t data_crc; /* CRC32C of the payload */
	uint32_t hdr_crc;  /* CRC32C of the header up to here */
	uint32_t reserved; /* zero */
} __attribute__((packed));

#define COLO_WIRE_FRAME_SIZE 48
#define COLO_WRITE_MAX (64U << 20)
#define COLO_ERROR_MAX 1024U
#define COLO_VERIFY_CHUNK (1U << 20)
#define COLO_VERIFY_MAX (64U << 20) /* the CRC list of a disk up to 16 TiB */
#define COLO_SYNC_EXTENT (1U << 20)  /* the sync's unit: SYNC frames and HASHES entries */
#define COLO_HASH_SIZE 16	     /* one XXH3-128 in HASHES, big-endian high then low */
#define COLO_HASHES_MAX (64U << 10)  /* payload of one HASHES frame: 4096 extents */
#define COLO_DIRTY_MAX (64U << 10)   /* payload of one DIRTY frame: 512 Ki extents */

#endif

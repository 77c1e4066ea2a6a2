/*
 * The colo driver's private header: one section per file.
 *
 *   block-colo.c      the tapdisk driver (open, close, read, write), the API entry points,
 *                     errors and the driver's own I/O to the disk below it
 *   colo-net.c        the replication link: send queue, frame reader, heartbeats, over a
 *                     connection (tls-session.h: plain or TLS, the link cannot tell)
 *   colo-handshake.c  both sides' handshake: connect or listen and accept, TLS, hello
 *   colo-primary.c    Primary: forward queue, backpressure, checkpoints, dirty blocks
 *                     (the map and its log: colo-dirty.h)
 *   colo-secondary.c  Secondary: applying forwarded writes, checkpoints, failover, stop
 *   colo-secondary-vm.c         the Secondary VM's reads and writes (buffer over disk)
 *   colo-start.c      the start steps (below) in their order, run by either side
 *   colo-verify.c     the verify start step: checksums of the whole disk compared
 *   colo-sync.c       the sync start step: copying extents under guest writes
 *   colo-reprotect.c  the re-protect start step: the exact set after a failover, copied
 *
 * Everything runs in tapdisk's one event loop: there are no locks.
 */
#ifndef _COLO_INTERNAL_H_
#define _COLO_INTERNAL_H_

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "colo-buffer.h"
#include "colo-dirty.h"
#include "colo-proto.h"
#include "colo.h"
#include "list.h"
#include "scheduler.h"
#include "tapdisk-server.h"
#include "tapdisk.h"
#include "tls-session.h"

#define COLO_ERR_LEN 256

/* ---- colo-net.c ---- */

struct colo_msg;
typedef void (*colo_msg_sent_t)(struct colo *c, struct colo_msg *m);

/* One frame to send: the encoded header, then @len bytes at @data. */
struct colo_msg {
	struct list_head next;
	struct colo_wire_frame hdr;
	const void *data;
	uint32_t len;
	colo_msg_sent_t sent; /* NULL: free(m) once sent */
};

struct colo_conn {
	struct tls_session *ts; /* the connection, plain or TLS: NULL when none */
	int fd;			/* its socket, for the event loop only; -1 when none */
	event_id_t rd_event, wr_event, timer_event;
	bool wr_masked, rd_masked;
	struct colo_reader reader;
	struct colo_frame_limits limits;
	struct list_head sendq;
	size_t head_sent; /* bytes of the first message already written */
	struct td_deferred flush;
	struct td_deferred rd_kick; /* staged bytes left to decode */
	char *rx;		    /* staging buffer for small frames */
	size_t rx_have, rx_off;
	long long last_rx_ms, last_tx_ms;
	char peer[300];
};

long long colo_now_ms(void);
/* Takes over a connection whose handshake is done (@fd is its socket, which @ts owns) and
 * starts reading frames and sending heartbeats. */
int colo_link_up(struct colo *c, struct tls_session *ts, int fd);
/* Sends what the socket takes now, without waiting for the end of the loop iteration. */
void colo_link_flush_now(struct colo *c);
/* Closes the link; queued messages are dropped (their sent callbacks do not run). */
void colo_link_close(struct colo *c);
/* Queues @m (header encoded here from @f) and sends it at the end of this loop iteration. */
void colo_link_send(struct colo *c, struct colo_msg *m, const struct colo_frame *f);
/* A header-only frame (ACK, HEARTBEAT). */
void colo_link_send_simple(struct colo *c, uint16_t type, uint64_t seq, uint64_t epoch);
/* Tells the peer that replication ends in order (best effort), then closes the link. */
void colo_link_goodbye(struct colo *c);
/* Sends ERROR with @err and the message, then closes the link. */
void colo_link_send_error(struct colo *c, int err, const char *msg);
/* Stops (or resumes) reading: the receiver's backpressure. */
void colo_link_pause_reading(struct colo *c, bool pause);
/* Closes the link after a failure: records why, then tells the role. */
void colo_link_lost(struct colo *c, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/*
 * The frames a side accepts: each type has one handler, which owns @payload.  colo-net.c
 * handles the link's own frames (HEARTBEAT, GOODBYE, ERROR), then looks the type up in the
 * role's table (colo_primary_frames, colo_secondary_frames); a type in neither is a protocol
 * error that ends the link.  Tables end with a zero type.
 */
typedef void (*colo_frame_fn)(struct colo *c, struct colo_frame *f, void *payload);
struct colo_frame_handler {
	uint16_t type;
	colo_frame_fn fn;
};
extern const struct colo_frame_handler colo_primary_frames[];
extern const struct colo_frame_handler colo_secondary_frames[];

/* ---- colo-handshake.c ---- */

/* A connection in its handshake (docs/colo-protocol.md): at most one at a time. */
struct colo_hs {
	int fd;			/* -1: none */
	struct tls_session *ts; /* owns fd once the TCP connection is up */
	event_id_t event;
	int phase;		/* COLO_HS_* */
	bool tls;		/* TLS was started on it */
	bool heard;		/* Primary: the Secondary's first byte was seen */
	bool plain_reply;	/* Primary: the Secondary answered our ClientHello in plain text */
	char *buf;		/* the hello or hello_reply being sent or received */
	size_t len, done;
	bool refused;		/* Secondary: the reply being sent refuses */
	struct colo_wire_hello hello;
	struct colo_wire_hello_reply reply;
	long long deadline; /* Primary: the end of connect_timeout; Secondary: of the handshake */
};

/* Primary: connects (retrying until connect_timeout), then TLS and the hello; ends with
 * colo_primary_link_ready() or colo_primary_start_failed(). */
int colo_handshake_connect(struct colo *c);
/* Secondary: listens; a Primary that passes the handshake goes to colo_secondary_link_ready(),
 * a refused one is closed and the listening goes on. */
int colo_handshake_listen(struct colo *c);
/* Drops a handshake in progress, and (Secondary) stops listening. */
void colo_handshake_close(struct colo *c);
/*
 * Runs the handshake on @fd, a connected non-blocking socket (the Primary's, or one the
 * Secondary accepted from an allowed peer): 0 with it going on in the loop, or -errno with
 * the reason recorded (the Primary's start fails; the Secondary drops it).  The fuzzer's way
 * in too (tests/fuzz/fuzz-colo-handshake.c).
 */
int colo_handshake_begin(struct colo *c, int fd);
/*
 * start: the TLS options @opts of a start in @role make a whole configuration and its
 * credentials load; 0 or -errno (last_error set).  Before the start changes anything.
 */
int colo_handshake_check(struct colo *c, enum colo_role role, const struct colo_options *opts);

/* ---- block-colo.c ---- */

struct colo_call {
	colo_done_t done;
	void *arg;
};

struct colo_fwd;
struct colo_apply;

/*
 * pause_target= (colo-pace.c): the Secondary's apply rate, measured from acknowledgements
 * while a backlog waits on it, and the backlog bound it gives.
 */
struct colo_pace {
	uint64_t rate;	      /* bytes/s, 0: not measured yet */
	long long busy_since; /* ms: the measuring window's start, 0: none open */
	uint64_t busy_bytes;  /* acknowledged in that window */
};

struct colo {
	td_driver_t *driver;
	td_image_t *image; /* known once started */
	td_vbd_t *vbd;
	/* The address in use: address= of the last start, else the name's (name_host/port). */
	char host[sizeof(((struct colo_name *)0)->host)];
	char port[sizeof(((struct colo_name *)0)->port)];
	char name_host[sizeof(((struct colo_name *)0)->host)];
	char name_port[sizeof(((struct colo_name *)0)->port)];
	char path[sizeof(((struct colo_name *)0)->path)];
	uint64_t disk_size; /* bytes */

	enum colo_role role;
	enum colo_state state;
	enum colo_link link_state;
	struct colo_options opts;
	uint64_t epoch;
	char last_error[COLO_ERR_LEN];
	uint64_t last_error_at; /* wall clock, ms; 0 with last_error "" */
	uint8_t session_id[16];

	struct colo_conn link;
	struct colo_hs hs;

	/* Pending API calls. */
	struct colo_call start_call, ckpt_call, stop_call;
	event_id_t reconnect_timer; /* reconnect=1: a broken side starts again (block-colo.c) */
	bool auto_start; /* the start under way is reconnect=1's: failed, it is broken again */
	bool stop_failover;
	bool stop_force; /* a failover of an inconsistent Secondary, asked for anyway */
	/* What the accepted failover forced (colo_failover_forced): "" when it forced nothing. */
	char stop_forced[COLO_ERR_LEN];
	char pending[32]; /* their names, for status */

	/* Primary */
	struct {
		uint64_t next_seq;
		uint64_t acked_seq;
		uint64_t reserved; /* bytes of writes queued, in flight locally or unacknowledged */
		uint64_t sent_bytes; /* since the last prepare_checkpoint */
		uint64_t ckpt_seq;   /* the epoch marker being waited for, 0 if none */
		event_id_t ckpt_timer;	 /* bounds that wait while nothing is acknowledged */
		uint64_t ckpt_progress;	 /* acked_seq when the timer last looked */
		/* acked_seq when guest writes began to wait for queue space, and since when */
		uint64_t stall_seq;
		long long stall_since_ms;
		int step;	       /* index in colo_start_steps of the step running, or -1 */
		uint64_t verify_seq;   /* the VERIFY frame's, until acknowledged */
		uint32_t *verify_crcs; /* made before connecting, sent once connected */
		uint32_t verify_n;
		struct list_head waiting; /* guest writes held by backpressure or an overlap */
		struct list_head holds;	  /* struct colo_hold: ranges guest writes must not enter */
		struct list_head local;	  /* struct colo_fwd whose local write is in flight */
		struct list_head unacked; /* struct colo_fwd, in seq order */
		/* struct colo_fwd sent from the guest's buffer, until the link's next flush */
		struct list_head borrowed;
		uint64_t ckpt_epoch;	  /* the epoch whose marker ckpt_seq is */
		struct colo_dirty *dirty; /* from the first start to close (colo-dirty.h) */
		struct list_head logwait; /* struct colo_logwait: writes held for a log flush */
		struct td_deferred log_flush;
		event_id_t log_event; /* the log's flush thread finished a flush */
		/*
		 * Re-protect (colo-reprotect.c): a failed-over Secondary starting as Primary;
		 * the last checkpoint it completed as Secondary; status "reprotect": "" (none),
		 * "waiting" (for the old Primary's set), "exact" (the union of both sets is
		 * copied) or "diff" (the old Primary knew none); the step's state meanwhile.
		 */
		bool reprotect;
		const char *reprotect_kind;
		uint64_t reprotect_since;
		struct colo_reprotect *rp;
		/*
		 * The pair (docs/colo-protocol.md, "Resync"): its identity, the last checkpoint
		 * known complete on both sides, whether the map holds all that changed since it
		 * (a run replicated, or a log was read), and this start's resync.
		 */
		uint8_t pair_id[16];
		bool pair_set, history;
		/*
		 * A guest write reached the disk with no dirty map to record it (before any
		 * start): no set of ours is complete, so the next start copies by diff.
		 */
		bool untracked;
		uint64_t committed;
		uint64_t last_epoch; /* the epoch a broken run ended in, kept for its resync */
		bool resuming, resumed;
		uint64_t resume_at;
		struct colo_sync *sync; /* the copy running, if any (colo-sync.c) */
		/* The last sync's progress, kept after it ended for status. */
		uint64_t sync_done, sync_total, sync_sent, sync_rate;
		struct colo_pace pace; /* pause_target=: the backlog's bound (colo-pace.c) */
	} p;

	/* Secondary */
	struct {
		struct colo_buffer *buf;
		int listen_fd;
		event_id_t listen_event;
		uint64_t expect_seq;	 /* the next WRITE/EPOCH/VERIFY seq */
		uint64_t applied_seq;	 /* everything up to here is applied */
		uint64_t acked_seq;	 /* last ACK sent */
		uint64_t marker_epoch;	 /* the last epoch whose marker was applied, 0 = none */
		uint64_t last_rx_marker; /* the last epoch whose marker was received */
		uint64_t rx_bytes;	 /* payload bytes received and not yet applied */
		struct list_head rxq;	 /* struct colo_apply: received, in seq order */
		int inflight;		 /* applies with I/O in flight */
		struct td_deferred ack;
		event_id_t trim_timer; /* gives dropped buffer memory back, a little at a time */
		event_id_t ckpt_timer; /* bounds a checkpoint's wait once a failover or stop waits
					  on it */
		uint32_t *verify_crcs; /* our checksums, once made; NULL before */
		int verify_err;	       /* why they could not be made */
		bool verifying; /* the Primary's start waits for our verify: not replicating yet */
		/*
		 * The pair this Secondary serves, the last checkpoint it completed, and whether its
		 * disk is that checkpoint plus only writes its Primary knows (a resync may start
		 * from it); @resume_ok and @resume_at: the hello being answered asks for one.
		 */
		uint8_t pair_id[16];
		bool pair_known, resumable, resume_ok;
		uint64_t ckpt_done, resume_at;
		bool syncing;	  /* the Primary copies its disk: frames go straight to the disk */
		bool inconsistent; /* from a sync until the first checkpoint: no failover */
		/*
		 * The disk was a checkpoint (a checkpoint completed, or a Primary without a copy
		 * vouched for it) since this VBD became a Secondary: a VBD made again after a
		 * crash or kill -9 has none, its disk may hold part of an epoch or of a copy.
		 * Without it, no failover.  Kept, like @inconsistent, while a broken or failed
		 * start's Secondary is started again in its role: its disk is the same.
		 */
		bool checkpointed;
		uint64_t sync_rx;  /* bytes of SYNC frames applied */
		/*
		 * The Secondary VM's I/O against the buffer: @gen counts the buffer's drops, so
		 * that a disk read begun before a drop is not trusted after it; @svm_writes
		 * counts its writes still filling blocks, which a stop or failover waits for.
		 */
		uint64_t gen;
		int svm_writes;
		/* failover write-back */
		uint64_t *wb_blocks;
		size_t wb_n, wb_next;
		int wb_inflight;
		int wb_err;
		bool wb_flushing;
	} s;

	struct list_head ios;	  /* struct colo_io the VBD has not completed */
	struct colo_crc_job *crc; /* the verify step's checksum run, if one is going */
};

/* Records the reason of a failure (logged once here) and returns @err. */
int colo_fail(struct colo *c, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Records a reason without logging it: a retry may still succeed. */
void colo_note(struct colo *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Forgets the last error: a new replication run starts, or starts afresh. */
void colo_clear_error(struct colo *c);
void colo_set_state(struct colo *c, enum colo_state state);
void colo_call_done(struct colo_call *call, int err, uint64_t value);
bool colo_ended(const struct colo *c);

/* The driver's own I/O to the disk below it, through the VBD, so pause and close wait for it. */
struct colo_io;
typedef void (*colo_io_done_t)(struct colo *c, struct colo_io *io, int err);
struct colo_io {
	td_vbd_request_t vreq;
	struct td_iovec iov;
	struct colo *c;
	colo_io_done_t done;
	void *priv;
	struct list_head next; /* in c->ios while queued */
};
int colo_io_submit(struct colo *c, struct colo_io *io, int op, uint64_t offset, void *buf,
		   uint64_t len, colo_io_done_t done, void *priv);

/* ---- colo-primary.c ---- */

int colo_primary_start(struct colo *c);
/* The caller of start went away: the start fails with ECANCELED and the VBD is idle again. */
void colo_primary_cancel_start(struct colo *c);
void colo_primary_queue_write(struct colo *c, td_request_t treq);
/*
 * The link's flush ended, or the link closes: the guest writes whose frames were queued from
 * their own buffers complete (a frame the socket did not take whole keeps a copy).
 */
void colo_primary_link_flushed(struct colo *c);
int colo_primary_prepare(struct colo *c);
int colo_primary_stop(struct colo *c, bool failover);
/*
 * For start steps: queues a frame of @type with a copy of @len bytes at @data in the ordered
 * stream (@first: ahead of the writes queued while connecting) and sends it once the link is
 * up; *@seq gets its sequence number.  Its bytes count in queue_limit, not in sent_bytes.
 */
int colo_primary_queue_frame(struct colo *c, uint16_t type, uint64_t offset, const void *data,
			     uint32_t len, bool first, uint64_t *seq);
/*
 * A range a start step reads from the disk (colo-sync.c): guest writes that overlap it wait
 * (like writes that overlap a local write in flight) until it is released.
 */
struct colo_hold {
	struct list_head next; /* in p.holds */
	uint64_t offset, length;
};
/* Whether a guest write to the range is in flight on the local disk (it must finish first). */
bool colo_primary_writing(const struct colo *c, uint64_t offset, uint64_t length);
void colo_primary_hold(struct colo *c, struct colo_hold *h);
/* Lets the writes that waited for @h go, in their order. */
void colo_primary_release_hold(struct colo *c, struct colo_hold *h);
/* The running step's prepare (before connecting) ended: connect, or fail the start. */
void colo_primary_step_prepared(struct colo *c, int err);
/* The running step ended: the next one runs; after the last the start is done. */
void colo_primary_step_done(struct colo *c, int err);
void colo_primary_link_lost(struct colo *c, int err);
/*
 * The link's timer: guest writes that waited for queue space while nothing was acknowledged
 * for timeout end the link (returns true); the Secondary may hold them for ever.
 */
bool colo_primary_stalled(struct colo *c, long long now_ms);
void colo_primary_close(struct colo *c);
/* The handshake succeeded and the link is up: forwarding starts. */
int colo_primary_link_ready(struct colo *c);
/* The pair's part of the hello: its identity, and RESUME with the checkpoint to resync from. */
void colo_primary_hello(struct colo *c, struct colo_hello *h);
/* The Secondary's answer to RESUME: 0, or -errno (the start fails) with the reason. */
int colo_primary_resume_reply(struct colo *c, const struct colo_hello_reply *r);
/* The start fails with @err (its reason recorded already). */
void colo_primary_start_failed(struct colo *c, int err);
uint64_t colo_primary_dirty_blocks(const struct colo *c);
/* The dirty map's status fields (st->dirty_*). */
void colo_primary_dirty_status(const struct colo *c, struct colo_status *st);
/* The deferred that flushes the dirty log and issues the writes that waited for it. */
void colo_primary_log_flush(void *arg);
/* At close: issues what waits for the log, closes it, frees the map. */
void colo_primary_dirty_close(struct colo *c);

/*
 * A zeroed struct colo made ready: no descriptors, empty lists, the default options (the
 * driver's open, and the fuzzers, which must not miss a list a later change adds).
 */
void colo_init(struct colo *c);

/* colo-pace.c: the Primary's backlog bound, queue_limit or, with pause_target=, less. */
void colo_pace_reset(struct colo *c);
void colo_pace_acked(struct colo *c, uint64_t bytes);
uint64_t colo_pace_limit(const struct colo *c);

/* ---- colo-secondary.c ---- */

int colo_secondary_start(struct colo *c);
void colo_secondary_queue_read(struct colo *c, td_request_t treq);
void colo_secondary_queue_write(struct colo *c, td_request_t treq);
int colo_secondary_checkpoint(struct colo *c);
/* The caller of a waiting do_checkpoint went away: it ends with ECANCELED, nothing dropped. */
void colo_secondary_cancel_checkpoint(struct colo *c);
int colo_secondary_stop(struct colo *c, bool failover);
/* Checks @f's place in the stream and queues it for the pump (step frames included). */
void colo_secondary_enqueue(struct colo *c, struct colo_frame *f, void *payload);
/* The Secondary cannot keep its invariant: tells the Primary (last_error) and stops applying. */
void colo_secondary_fatal(struct colo *c, int err);
void colo_secondary_link_lost(struct colo *c);
void colo_secondary_close(struct colo *c);
/* The Primary's hello @h was accepted and the link is up: replication runs. */
void colo_secondary_link_ready(struct colo *c, const struct colo_hello *h);
/* Decides whether the hello's RESUME can be granted (s.resume_ok, s.resume_at). */
void colo_secondary_check_resume(struct colo *c, const struct colo_hello *h);
void colo_secondary_writeback_sync(struct colo *c);
/* Starts what may start, retires what finished, and moves a pending stop or failover on. */
void colo_secondary_pump(struct colo *c);
/* Sends an ACK for what is applied (a deferred: once per loop iteration). */
void colo_secondary_send_ack(void *arg);

static inline uint64_t colo_bs(const struct colo *c)
{
	return c->opts.block_size;
}

/* 4096-aligned, for O_DIRECT I/O; free() releases it. */
static inline void *colo_alloc_aligned(size_t len)
{
	void *p;

	if (posix_memalign(&p, 4096, len ? (len + 4095) & ~(size_t)4095 : 4096))
		return NULL;
	return p;
}

/* ---- colo-start.c: start steps ---- */

/*
 * What a start runs between the handshake and plain replication, in the order of
 * colo_start_steps, each only when the Primary's options ask for it: verify (compare both
 * disks, refuse if they differ); later ones copy.  The Primary announces the steps it runs in
 * its hello (@hello_flag); their frames travel in the ordered stream with the forwarded
 * writes, and the Secondary applies them at their place in it.  A step's code lives in a file
 * of its own; the sides know steps only through this table.
 */
struct colo_start_step {
	const char *name;
	uint32_t hello_flag;
	uint16_t frame_type; /* the step's frame in the stream, applied by the Secondary */
	/* Primary: do the options ask for the step? */
	bool (*wanted)(const struct colo *c);
	/* Primary, before connecting (NULL: nothing); ends with colo_primary_step_prepared. */
	int (*prepare)(struct colo *c);
	/* Primary, the link up: sends the step's frames; ends with colo_primary_step_done. */
	int (*run)(struct colo *c);
	/* Primary: the Secondary acknowledged everything up to @seq. */
	void (*acked)(struct colo *c, uint64_t seq);
	/* Primary: the hello flags it sets (NULL: hello_flag). */
	uint32_t (*flags)(const struct colo *c);
	/* Secondary: the hello (@flags) announced the step. */
	void (*begin)(struct colo *c, uint32_t flags);
	/* Secondary: the step's frame arrived; checks it and passes it to colo_secondary_enqueue. */
	colo_frame_fn rx;
	/* Secondary: the frame is first in the apply queue: 1 applied, 0 not yet (the step calls
	 * colo_secondary_pump once it may be), or -errno (last_error set). */
	int (*apply)(struct colo *c, const struct colo_frame *f, const void *payload);
	/* Either side: the start, the link or replication ended: drop what the step holds. */
	void (*cancel)(struct colo *c);
};

/* NULL-terminated, in the order they run. */
extern const struct colo_start_step *const colo_start_steps[];
/* The step whose frame is @type, or NULL. */
const struct colo_start_step *colo_start_step_of_frame(uint16_t type);
/* Primary: the hello flags of the steps the options ask for. */
uint32_t colo_start_steps_flags(const struct colo *c);
void colo_start_steps_cancel(struct colo *c);

/* ---- colo-sync.c ---- */

extern const struct colo_start_step colo_sync_step;

/* Extents of COLO_SYNC_EXTENT bytes in @c's disk, the last one maybe short. */
uint64_t colo_sync_extents(const struct colo *c);
/*
 * The copy, for the sync start step and for a resync (the dirty map's): Primary, link up,
 * called from the running start step's run().  Copies to the Secondary every extent whose bit
 * is set in @extents (colo_sync_extents(c) bits, bit i in word i / 64; the map is copied),
 * each read from the local disk and queued as a SYNC frame on the same ordered link as the
 * forwarded writes, under the ordering guard (docs/colo-protocol.md, "SYNC": a copy never
 * overtakes or undoes a later guest write).  @diff: an extent goes only if its XXH3-128
 * differs from the one the Secondary sent in HASHES (its hello must have had
 * COLO_HELLO_SYNC_DIFF).  Bounded by sync_rate (bytes read per second) and by queue_limit.
 * The state is syncing until the SYNC_END after the last copy is acknowledged; then
 * colo_primary_step_done(c, 0) ends the step.  Returns 0 or -errno (last_error set).
 */
int colo_sync_start(struct colo *c, const uint64_t *extents, bool diff);
/* Primary: an extent's range may have become free, or queue room: copy on. */
void colo_sync_kick(struct colo *c);
/*
 * Whether the start under way copies, once connected, every block written before (a resync,
 * sync=full or diff): the guest's writes meanwhile need not be queued for the link.
 */
bool colo_sync_covers_connecting(const struct colo *c);
/* Primary: HASHES.  Secondary: SYNC and SYNC_END (checked, then queued in the stream). */
void colo_sync_hashes_rx(struct colo *c, struct colo_frame *f, void *payload);
void colo_sync_rx(struct colo *c, struct colo_frame *f, void *payload);
/* The sync= the start runs: the default resolved (diff; none with verify=1). */
enum colo_sync_mode colo_sync_mode(const struct colo *c);

/* ---- colo-reprotect.c ---- */

extern const struct colo_start_step colo_reprotect_step;

/* Primary: DIRTY and DIRTY_END from the old Primary (checked by the codec). */
void colo_reprotect_dirty_rx(struct colo *c, struct colo_frame *f, void *payload);
void colo_reprotect_dirty_end_rx(struct colo *c, struct colo_frame *f, void *payload);
/*
 * Secondary, a failover begins: a new dirty map records the @n buffered blocks the write-back
 * writes (@blocks), and from then on every write (block-colo.c sends them through the
 * Primary's plain path), for a later re-protect.  0 or -ENOMEM.
 */
int colo_reprotect_failover(struct colo *c, const uint64_t *blocks, size_t n);
/* Secondary start with dirty_log= and no map: the log's extents are what we wrote. */
int colo_reprotect_open_log(struct colo *c);
/* Secondary, a checkpoint completed: the disks are equal, our old set (and log) is cleared. */
void colo_reprotect_checkpoint(struct colo *c);

/* ---- colo-verify.c ---- */

extern const struct colo_start_step colo_verify_step;

/*
 * A checksum run over the whole disk, in the background (c->crc, one at a time): @fn writes
 * the @size-byte digest of each @chunk (the last one short) at its place in @sums.
 * @progress (may be NULL) gets the @n digests made in each tick, from chunk @first on, and may
 * cancel the run.  @done runs once unless cancelled, with @sums (malloc'd, @n digests, the
 * callee frees) or NULL and the error (last_error set, prefixed by @what).
 */
typedef void (*colo_sum_fn_t)(const void *buf, size_t len, void *out);
typedef void (*colo_sum_progress_t)(struct colo *c, const void *sums, uint32_t first,
				    uint32_t n);
typedef void (*colo_sum_done_t)(struct colo *c, int err, void *sums, uint32_t n);
int colo_disk_sum_start(struct colo *c, const char *what, uint32_t chunk, size_t size,
			colo_sum_fn_t fn, colo_sum_progress_t progress, colo_sum_done_t done);
void colo_disk_sum_cancel(struct colo *c);

#endif

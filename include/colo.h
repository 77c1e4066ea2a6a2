/*
 * The replication API of the colo driver: what a toolstack (tap-ctl, the xenstore watcher)
 * asks of one colo VBD.  The operations follow the blkcolo design: start, prepare_checkpoint
 * (Primary), do_checkpoint (Secondary), get_sent_data_size and stop_replication.
 *
 * Every call runs in tapdisk's event loop.  A call that returns a negative errno was refused
 * and changed nothing; colo_last_error() then says why in one line.  A call that returns 0 was
 * accepted: its callback runs exactly once, possibly before the call returns.
 */
#ifndef _COLO_H_
#define _COLO_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tapdisk.h"

struct colo;

enum colo_role {
	COLO_ROLE_NONE = 0, /* not started: a plain pass-through disk */
	COLO_ROLE_PRIMARY,
	COLO_ROLE_SECONDARY,
};

enum colo_state {
	COLO_STATE_IDLE = 0,	 /* never started */
	COLO_STATE_CONNECTING,	 /* Primary: connecting; Secondary: waiting for the Primary */
	COLO_STATE_RUNNING,	 /* replicating */
	COLO_STATE_BROKEN,	 /* the link failed (Secondary: the buffer is kept) */
	COLO_STATE_FAILING_OVER, /* Secondary: writing the buffer back */
	COLO_STATE_FAILED_OVER,	 /* replication ended by failover: a plain disk */
	COLO_STATE_STOPPED,	 /* replication ended by stop: a plain disk */
	COLO_STATE_SYNCING,	 /* the start copies the Primary's disk to the Secondary */
};

/* What the start copies (sync=). */
enum colo_sync_mode {
	COLO_SYNC_DEFAULT = 0, /* diff, or none with verify=1 (which vouches for identical disks) */
	COLO_SYNC_NONE,	       /* nothing: the operator vouches that both disks are identical */
	COLO_SYNC_FULL,	       /* every extent */
	COLO_SYNC_DIFF,	       /* the extents whose XXH3-128 differs between the two disks */
};

enum colo_link {
	COLO_LINK_NONE = 0,
	COLO_LINK_CONNECTING, /* Primary */
	COLO_LINK_LISTENING,  /* Secondary */
	COLO_LINK_UP,
	COLO_LINK_LOST,
	COLO_LINK_CLOSED, /* the peer ended replication in order (its stop, failover or close) */
};

/* Options of start; colo_options_init gives the defaults. */
struct colo_options {
	uint32_t block_size;  /* buffer and dirty-tracking granularity, bytes (4096) */
	uint64_t queue_limit; /* Primary: bytes queued or unacknowledged (64 MiB) */
	uint64_t ram_limit;   /* Secondary: buffer bytes held in RAM (1 GiB) */
	char spill_path[256]; /* Secondary: file for the buffer beyond ram_limit ("" = none) */
	uint64_t spill_limit; /* Secondary: bytes in the spill file (0 = until the disk is full) */
	uint32_t timeout_ms;  /* a silent link is dead after this long (5000) */
	uint32_t connect_timeout_ms; /* Primary: keep retrying the connection this long (30000) */
	bool verify;		     /* compare both disks by checksums at start */
	bool reconnect;		     /* after a lost link, start again by itself (resync) */
	char peer[64];		     /* Secondary: accept the Primary only from this address */
	char dirty_log[256];	     /* Primary: the persistent dirty log ("" = none) */
	enum colo_sync_mode sync;    /* Primary: what the start copies (diff) */
	uint64_t sync_rate;	     /* Primary: bytes/s the copy reads at most (0: no bound) */
	uint32_t pause_target_ms;    /* Primary: bound the backlog to this long a pause (0: off) */
	/* address=: where the Secondary listens ("" = the VBD name's HOST:PORT) */
	char address_host[256];
	char address_port[16];
	/*
	 * The link's TLS (docs/colo.md "Securing the link").  @tls is COLO_TLS_UNSET until a tls=
	 * option sets it, and start refuses that: plain text must be asked for with tls=none.
	 */
	int tls;		/* COLO_TLS_*, the values of tls-session.h's enum tls_mode */
	char tls_dir[256];	/* tls=x509: the directory of ca-cert.pem, server-*.pem ... */
	char tls_psk[256];	/* tls=psk: the psktool file of "user:hexkey" lines */
	char tls_user[128];	/* tls=psk, Primary: its identity in that file */
	char tls_name[256];	/* tls=x509, Primary: the name the Secondary's certificate bears */
};

enum {
	COLO_TLS_UNSET = 0,
	COLO_TLS_NONE,
	COLO_TLS_X509,
	COLO_TLS_PSK,
};

struct colo_status {
	enum colo_role role;
	enum colo_state state;
	enum colo_link link;
	uint64_t epoch;		 /* the epoch being written now; a checkpoint ends it */
	uint64_t sent_bytes;	 /* Primary: write bytes forwarded since the last checkpoint */
	uint64_t inflight_bytes; /* Primary: write bytes queued or sent and not yet acknowledged */
	uint64_t inflight_limit; /* Primary: the bound on them now (queue_limit, or pause_target's) */
	uint64_t apply_rate;	 /* Primary, pause_target=: the Secondary's measured bytes/s, or 0 */
	uint64_t buffer_blocks;	 /* Secondary: blocks in the disk buffer */
	uint64_t buffer_bytes;	 /* Secondary: bytes of block data in the disk buffer */
	uint64_t dirty_blocks;	 /* Primary: blocks written since the checkpoint before the last */
	uint64_t dirty_bytes;	 /* Primary: the bytes of the disk in those blocks */
	const char *dirty_log;	 /* Primary: its dirty_log= path, "" or NULL: none */
	uint64_t dirty_log_extents; /* Primary: extents the log records as dirty */
	uint64_t dirty_log_flushes; /* Primary: syncs of the log so far */
	uint32_t block_size;
	/* Primary, once a sync started: bytes of extents examined (read) out of the total, bytes
	 * sent (diff sends only extents that differ), and the measured copy rate, bytes/s. */
	uint64_t sync_done_bytes, sync_total_bytes, sync_sent_bytes, sync_rate;
	/* Primary: "" (no re-protect), "waiting" (for the old Primary's set), "exact" (the
	 * sync copies both sides' sets), "diff" (the old Primary knew none: whole-disk diff). */
	const char *reprotect;
	const char *last_error;	  /* "" when none */
	uint64_t last_error_at;	  /* when it happened: wall clock, ms since 1970 (0: none) */
	const char *pending;	/* the accepted operations not yet done, e.g. "checkpoint"; "" */
};

/* The part of a disk's name after "colo:": HOST:PORT:/path/img, HOST may be "[v6addr]". */
struct colo_name {
	char host[256];
	char port[16]; /* decimal, 1 ... 65535 */
	char path[1024];
};

/*
 * "HOST:PORT" (HOST may be "[v6addr]") into @host and @port (sizes as in struct colo_name).
 * Returns 0, or -EINVAL with the reason (without the value) in @why.
 */
int colo_address_parse(const char *s, char *host, size_t host_size, char *port,
		       size_t port_size, char *why, size_t why_len);
/* Splits @name into @out.  Returns 0, or -EINVAL if it is not HOST:PORT:/absolute/path. */
int colo_name_parse(const char *name, struct colo_name *out);

/* Called once when an accepted operation ends: 0, or a negative errno (see colo_last_error). */
typedef void (*colo_done_t)(void *arg, int err, uint64_t value);

void colo_options_init(struct colo_options *opts);
/* Parses "key=value" (block_size, queue_limit, ram_limit, spill, spill_limit, timeout,
 * connect_timeout, verify, peer, dirty_log, sync, sync_rate, pause_target, tls, tls_dir, tls_psk,
 * tls_user, tls_name); sizes take K, M and G suffixes.  0 or -EINVAL. */
int colo_options_parse(struct colo_options *opts, const char *kv, char *err, size_t errlen);
/* -EINVAL, with a sentence in @err, if "key=value" is an option of the other role only
 * (ram_limit, spill, spill_limit and peer are the Secondary's; connect_timeout, dirty_log,
 * tls_user, tls_name and pause_target the Primary's).
 * colo_start itself ignores the fields of the other role. */
int colo_options_check_role(const char *kv, enum colo_role role, char *err, size_t errlen);

/* The colo driver of @vbd's chain, or NULL if @vbd has none (or is not open). */
struct colo *colo_from_vbd(td_vbd_t *vbd);

/* Secondary: done once listening (value 0).  Primary: done once the handshake succeeded and
 * the start steps ended: with a sync, once the Secondary has every extent (state syncing
 * meanwhile, then running; the first checkpoint makes the Secondary consistent). */
int colo_start(struct colo *c, enum colo_role role, const struct colo_options *opts,
	       colo_done_t done, void *arg);
/* Primary: done, with the new epoch as value, once every write completed before the call is
 * applied on the Secondary and acknowledged; -ETIMEDOUT once the Secondary acknowledged
 * nothing for the link timeout (the marker stays sent). */
int colo_prepare_checkpoint(struct colo *c, colo_done_t done, void *arg);
/* Secondary: done, with the new epoch as value, once the buffer is dropped; waits for the
 * Primary's epoch marker first, at most the link timeout unless the marker has arrived
 * (-ETIMEDOUT, nothing changed).  A failover asked for meanwhile runs after it. */
int colo_do_checkpoint(struct colo *c, colo_done_t done, void *arg);
/* Primary: bytes forwarded since the last checkpoint and bytes not yet acknowledged. */
int colo_get_sent_data_size(struct colo *c, uint64_t *sent, uint64_t *inflight);
/* failover: Secondary writes its buffer back durably; Primary keeps serving and tracks dirty
 * blocks.  !failover (stop): the Secondary drops its buffer.  Either way replication ends. */
int colo_stop_replication(struct colo *c, bool failover, colo_done_t done, void *arg);
/* A Secondary refuses a failover (-EBUSY) while its disk is inconsistent: from a start with a
 * sync until its first checkpoint, and from becoming a Secondary (a VBD made again after a
 * crash) until a checkpoint or a Primary without a copy.  This one fails over anyway and says
 * so in last_error and the log: the disk then holds whatever the copy had reached. */
int colo_failover_force(struct colo *c, colo_done_t done, void *arg);
/*
 * What the last accepted failover forced, as colo_failover_force said it in last_error
 * ("failover forced: the disk is inconsistent: ..."), or "" when it forced nothing (a
 * consistent Secondary, a Primary): a later error in last_error is not mistaken for it.
 */
const char *colo_failover_forced(struct colo *c);
/*
 * The caller of the operation accepted with @arg went away.  A start that has not finished
 * (Primary) or a do_checkpoint still waiting for its marker is undone: it changed nothing, and
 * its callback runs now with -ECANCELED.  Returns 0 then, or -EBUSY for an operation that goes
 * on (a failover or stop cannot be undone half-way; a Primary's marker is already in the
 * stream): its callback runs when it is done, as usual.
 */
int colo_cancel(struct colo *c, void *arg);
void colo_get_status(struct colo *c, struct colo_status *st);
const char *colo_last_error(struct colo *c);
/* @ms (wall clock, ms since 1970) as "2026-01-02T03:04:05.678Z", or "" for 0. */
void colo_format_time(uint64_t ms, char *buf, size_t size);

const char *colo_role_name(enum colo_role role);
const char *colo_state_name(enum colo_state state);
const char *colo_sync_mode_name(enum colo_sync_mode mode);
const char *colo_link_name(enum colo_link link);
/* Writes @st as one JSON object; returns the length as snprintf does. */
int colo_status_json(const struct colo_status *st, char *buf, size_t size);

#endif

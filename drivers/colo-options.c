/*
 * The options of colo start, the names of roles, states and links, and the status JSON: the
 * text side of the replication API (include/colo.h), kept apart from the driver so that the
 * control plane and the unit tests use it without a colo disk.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "colo.h"
#include "colo-start-options.h"

#define COLO_BLOCK_SIZE_MIN 512
#define COLO_BLOCK_SIZE_MAX (1 << 20)
#define COLO_QUEUE_LIMIT_MIN (1ULL << 20)
#define COLO_PAUSE_TARGET_MAX_MS 60000
#define COLO_QUEUE_LIMIT_MAX (64ULL << 30)
#define COLO_RAM_LIMIT_MIN (1ULL << 20)
#define COLO_TIMEOUT_MIN_MS 100
#define COLO_TIMEOUT_MAX_MS 600000
#define COLO_CONNECT_TIMEOUT_MAX_MS 3600000

void colo_options_init(struct colo_options *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->block_size = 4096;
	opts->queue_limit = 64ULL << 20;
	opts->ram_limit = 1ULL << 30;
	opts->spill_path[0] = '\0';
	opts->spill_limit = 0;
	opts->timeout_ms = 5000;
	opts->connect_timeout_ms = 30000;
	opts->verify = false;
}

static int __attribute__((format(printf, 3, 4)))
options_reject(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/*
 * Decimal digits only: strtoull would take a sign, blanks and hex, and wrap "-1" to 2^64-1,
 * which a limit must never silently become.
 */
static int options_parse_u64(const char *s, uint64_t *out, const char **end)
{
	uint64_t v = 0;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (v > (UINT64_MAX - (*s - '0')) / 10)
			return -ERANGE;
		v = v * 10 + (*s - '0');
	}
	*out = v;
	*end = s;
	return 0;
}

/* "4096", "64K", "1M", "2G" (powers of 1024). */
static int options_parse_size(const char *s, uint64_t *out)
{
	const char *end;
	unsigned int shift;
	uint64_t v;
	int err;

	err = options_parse_u64(s, &v, &end);
	if (err)
		return err;
	switch (*end) {
	case '\0':
		shift = 0;
		break;
	case 'K':
	case 'k':
		shift = 10;
		break;
	case 'M':
	case 'm':
		shift = 20;
		break;
	case 'G':
	case 'g':
		shift = 30;
		break;
	default:
		return -EINVAL;
	}
	if (shift && end[1])
		return -EINVAL;
	if (v > (UINT64_MAX >> shift))
		return -ERANGE;
	*out = v << shift;
	return 0;
}

/* Milliseconds, as a plain number: a unit suffix would invite "5s" meaning 5 ms. */
static int options_parse_ms(const char *s, uint64_t *out)
{
	const char *end;
	int err;

	err = options_parse_u64(s, out, &end);
	if (err)
		return err;
	return *end ? -EINVAL : 0;
}

int colo_options_check_role(const char *kv, enum colo_role role, char *err, size_t errlen)
{
	static const char *const secondary_only[] = {"ram_limit", "spill", "spill_limit", "peer"};
	static const char *const primary_only[] = {"connect_timeout", "sync", "sync_rate",
						   "tls_user", "tls_name", "pause_target"};
	size_t klen = strcspn(kv, "=");
	const char *const *other = role == COLO_ROLE_PRIMARY ? secondary_only : primary_only;
	size_t n = role == COLO_ROLE_PRIMARY ? sizeof(secondary_only) / sizeof(secondary_only[0])
					     : sizeof(primary_only) / sizeof(primary_only[0]);

	for (size_t i = 0; i < n; i++)
		if (klen == strlen(other[i]) && !strncmp(kv, other[i], klen))
			return options_reject(err, errlen,
					      "%s is an option of the %s, not of the %s", other[i],
					      role == COLO_ROLE_PRIMARY ? "Secondary" : "Primary",
					      role == COLO_ROLE_PRIMARY ? "Primary" : "Secondary");
	return 0;
}

int colo_options_parse(struct colo_options *opts, const char *kv, char *err, size_t errlen)
{
	const char *eq = strchr(kv, '=');
	const char *val;
	size_t klen;
	uint64_t v;
	int r;

	if (err && errlen)
		err[0] = '\0';

	klen = eq ? (size_t)(eq - kv) : strlen(kv);
#define KEY_IS(name) (klen == strlen(name) && !strncmp(kv, name, klen))
	/* The table is what tap-ctl colo -h lists: a key it lacks is unknown here too. */
	if (!colo_start_option_find(kv, klen))
		return options_reject(err, errlen, "unknown option '%.*s'", (int)klen, kv);
	if (!eq || !eq[1])
		return options_reject(err, errlen, "%.*s: missing value (expected %.*s=VALUE)",
				      (int)klen, kv, (int)klen, kv);
	val = eq + 1;

	if (KEY_IS("spill") || KEY_IS("dirty_log")) {
		char *dst = KEY_IS("spill") ? opts->spill_path : opts->dirty_log;

		if (val[0] != '/')
			return options_reject(err, errlen, "%s: must be an absolute path", kv);
		if (strlen(val) >= sizeof(opts->spill_path))
			return options_reject(err, errlen,
					      "%.*s=...: path must be shorter than %zu bytes",
					      (int)klen, kv, sizeof(opts->spill_path));
		strcpy(dst, val);
		return 0;
	}

	if (KEY_IS("sync")) {
		if (!strcmp(val, "full"))
			opts->sync = COLO_SYNC_FULL;
		else if (!strcmp(val, "diff"))
			opts->sync = COLO_SYNC_DIFF;
		else if (!strcmp(val, "none"))
			opts->sync = COLO_SYNC_NONE;
		else
			return options_reject(err, errlen, "%s: must be full, diff or none", kv);
		return 0;
	}

	if (KEY_IS("address")) {
		char why[96];

		if (colo_address_parse(val, opts->address_host, sizeof(opts->address_host),
				       opts->address_port, sizeof(opts->address_port), why,
				       sizeof(why)))
			return options_reject(err, errlen, "%s: %s", kv, why);
		return 0;
	}

	if (KEY_IS("peer")) {
		unsigned char addr[sizeof(struct in6_addr)];

		if (strlen(val) >= sizeof(opts->peer) || (inet_pton(AF_INET, val, addr) != 1 &&
							   inet_pton(AF_INET6, val, addr) != 1))
			return options_reject(err, errlen, "%s: not a numeric IPv4 or IPv6 address",
					      kv);
		strcpy(opts->peer, val);
		return 0;
	}

	if (KEY_IS("tls")) {
		if (!strcmp(val, "none"))
			opts->tls = COLO_TLS_NONE;
		else if (!strcmp(val, "x509"))
			opts->tls = COLO_TLS_X509;
		else if (!strcmp(val, "psk"))
			opts->tls = COLO_TLS_PSK;
		else
			return options_reject(err, errlen, "%s: expected none, x509 or psk", kv);
		return 0;
	}
	if (KEY_IS("tls_dir") || KEY_IS("tls_psk")) {
		char *dst = KEY_IS("tls_dir") ? opts->tls_dir : opts->tls_psk;

		if (val[0] != '/')
			return options_reject(err, errlen, "%s: must be an absolute path", kv);
		if (strlen(val) >= sizeof(opts->tls_dir))
			return options_reject(err, errlen,
					      "%.*s=...: path must be shorter than %zu bytes",
					      (int)klen, kv, sizeof(opts->tls_dir));
		strcpy(dst, val);
		return 0;
	}
	if (KEY_IS("tls_user") || KEY_IS("tls_name")) {
		char *dst = KEY_IS("tls_user") ? opts->tls_user : opts->tls_name;
		size_t size = KEY_IS("tls_user") ? sizeof(opts->tls_user) : sizeof(opts->tls_name);

		/* A psktool identity ends at ':'; either goes into a one-line request. */
		if (strlen(val) >= size || strpbrk(val, ": \t\n"))
			return options_reject(err, errlen,
					      "%.*s=...: at most %zu bytes, without ':' or blanks",
					      (int)klen, kv, size - 1);
		strcpy(dst, val);
		return 0;
	}

	if (KEY_IS("timeout") || KEY_IS("connect_timeout") || KEY_IS("verify") ||
	    KEY_IS("reconnect") || KEY_IS("pause_target")) {
		r = options_parse_ms(val, &v);
		if (r)
			return options_reject(err, errlen, "%s: not a number", kv);
		if (KEY_IS("verify") || KEY_IS("reconnect")) {
			if (v > 1)
				return options_reject(err, errlen, "%s: must be 0 or 1", kv);
			if (KEY_IS("verify"))
				opts->verify = v;
			else
				opts->reconnect = v;
		} else if (KEY_IS("pause_target")) {
			if (v > COLO_PAUSE_TARGET_MAX_MS)
				return options_reject(err, errlen, "%s: must be from 0 to %d ms",
						      kv, COLO_PAUSE_TARGET_MAX_MS);
			opts->pause_target_ms = v;
		} else if (KEY_IS("timeout")) {
			if (v < COLO_TIMEOUT_MIN_MS || v > COLO_TIMEOUT_MAX_MS)
				return options_reject(err, errlen, "%s: must be from %d to %d ms",
						      kv, COLO_TIMEOUT_MIN_MS, COLO_TIMEOUT_MAX_MS);
			opts->timeout_ms = v;
		} else {
			if (v > COLO_CONNECT_TIMEOUT_MAX_MS)
				return options_reject(err, errlen, "%s: must be from 0 to %d ms",
						      kv, COLO_CONNECT_TIMEOUT_MAX_MS);
			opts->connect_timeout_ms = v;
		}
		return 0;
	}

	r = options_parse_size(val, &v);
	if (r == -ERANGE)
		return options_reject(err, errlen, "%s: too large", kv);
	if (r)
		return options_reject(err, errlen,
				      "%s: not a size (a number with an optional K, M or G suffix)",
				      kv);

	if (KEY_IS("block_size")) {
		if (v < COLO_BLOCK_SIZE_MIN || v > COLO_BLOCK_SIZE_MAX || (v & (v - 1)))
			return options_reject(err, errlen,
					      "%s: must be a power of two from %d to %d", kv,
					      COLO_BLOCK_SIZE_MIN, COLO_BLOCK_SIZE_MAX);
		opts->block_size = v;
	} else if (KEY_IS("queue_limit")) {
		if (v < COLO_QUEUE_LIMIT_MIN || v > COLO_QUEUE_LIMIT_MAX)
			return options_reject(err, errlen,
					      "%s: must be from 1M (%llu) to 64G (%llu) bytes", kv,
					      COLO_QUEUE_LIMIT_MIN, COLO_QUEUE_LIMIT_MAX);
		opts->queue_limit = v;
	} else if (KEY_IS("ram_limit")) {
		if (v < COLO_RAM_LIMIT_MIN)
			return options_reject(err, errlen, "%s: must be at least 1M (%llu) bytes",
					      kv, COLO_RAM_LIMIT_MIN);
		opts->ram_limit = v;
	} else if (KEY_IS("spill_limit")) {
		opts->spill_limit = v;
	} else if (KEY_IS("sync_rate")) {
		opts->sync_rate = v;
	} else {
		/* In the table but not handled: tests/unit/test-colo-options.c catches it. */
		return options_reject(err, errlen, "%.*s: not implemented", (int)klen, kv);
	}
	return 0;
#undef KEY_IS
}

const char *colo_role_name(enum colo_role role)
{
	switch (role) {
	case COLO_ROLE_NONE:
		return "none";
	case COLO_ROLE_PRIMARY:
		return "primary";
	case COLO_ROLE_SECONDARY:
		return "secondary";
	}
	return "unknown";
}

const char *colo_state_name(enum colo_state state)
{
	switch (state) {
	case COLO_STATE_IDLE:
		return "idle";
	case COLO_STATE_CONNECTING:
		return "connecting";
	case COLO_STATE_RUNNING:
		return "running";
	case COLO_STATE_BROKEN:
		return "broken";
	case COLO_STATE_FAILING_OVER:
		return "failing-over";
	case COLO_STATE_FAILED_OVER:
		return "failed-over";
	case COLO_STATE_STOPPED:
		return "stopped";
	case COLO_STATE_SYNCING:
		return "syncing";
	}
	return "unknown";
}

const char *colo_sync_mode_name(enum colo_sync_mode mode)
{
	switch (mode) {
	case COLO_SYNC_DEFAULT:
		return "default";
	case COLO_SYNC_NONE:
		return "none";
	case COLO_SYNC_FULL:
		return "full";
	case COLO_SYNC_DIFF:
		return "diff";
	}
	return "unknown";
}

const char *colo_link_name(enum colo_link link)
{
	switch (link) {
	case COLO_LINK_NONE:
		return "none";
	case COLO_LINK_CONNECTING:
		return "connecting";
	case COLO_LINK_LISTENING:
		return "listening";
	case COLO_LINK_UP:
		return "up";
	case COLO_LINK_LOST:
		return "lost";
	case COLO_LINK_CLOSED:
		return "closed";
	}
	return "unknown";
}

/* Appends to a buffer that may be too small, counting every byte as snprintf does. */
struct json_out {
	char *buf;
	size_t size;
	size_t len;
};

static void __attribute__((format(printf, 2, 3)))
json_printf(struct json_out *o, const char *fmt, ...)
{
	size_t room = o->len < o->size ? o->size - o->len : 0;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(room ? o->buf + o->len : NULL, room, fmt, ap);
	va_end(ap);
	if (n > 0)
		o->len += n;
}

/* last_error is free text from the driver: it may hold quotes, backslashes or newlines. */
static void json_string(struct json_out *o, const char *s)
{
	const unsigned char *p;

	json_printf(o, "\"");
	for (p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			json_printf(o, "\\%c", *p);
		else if (*p < 0x20)
			json_printf(o, "\\u%04x", *p);
		else
			json_printf(o, "%c", *p);
	}
	json_printf(o, "\"");
}

void colo_format_time(uint64_t ms, char *buf, size_t size)
{
	time_t secs = (time_t)(ms / 1000);
	struct tm tm;
	char day[32];

	if (!ms || !gmtime_r(&secs, &tm) || !strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm)) {
		snprintf(buf, size, "%s", "");
		return;
	}
	snprintf(buf, size, "%s.%03uZ", day, (unsigned int)(ms % 1000));
}

int colo_status_json(const struct colo_status *st, char *buf, size_t size)
{
	struct json_out o = { buf, size, 0 };
	char when[40];

	if (size)
		buf[0] = '\0';
	json_printf(&o, "{\"role\":\"%s\",\"state\":\"%s\",\"epoch\":%" PRIu64,
		    colo_role_name(st->role), colo_state_name(st->state), st->epoch);
	json_printf(&o, ",\"sent_bytes\":%" PRIu64 ",\"inflight_bytes\":%" PRIu64, st->sent_bytes,
		    st->inflight_bytes);
	json_printf(&o, ",\"inflight_limit\":%" PRIu64 ",\"apply_rate\":%" PRIu64,
		    st->inflight_limit, st->apply_rate);
	json_printf(&o, ",\"buffer_blocks\":%" PRIu64 ",\"buffer_bytes\":%" PRIu64,
		    st->buffer_blocks, st->buffer_bytes);
	json_printf(&o, ",\"dirty_blocks\":%" PRIu64 ",\"block_size\":%" PRIu32, st->dirty_blocks,
		    st->block_size);
	json_printf(&o, ",\"dirty_bytes\":%" PRIu64 ",\"dirty_log\":", st->dirty_bytes);
	json_string(&o, st->dirty_log ? st->dirty_log : "");
	json_printf(&o, ",\"dirty_log_extents\":%" PRIu64 ",\"dirty_log_flushes\":%" PRIu64,
		    st->dirty_log_extents, st->dirty_log_flushes);
	json_printf(&o,
		    ",\"sync_done_bytes\":%" PRIu64 ",\"sync_total_bytes\":%" PRIu64
		    ",\"sync_sent_bytes\":%" PRIu64 ",\"sync_rate\":%" PRIu64,
		    st->sync_done_bytes, st->sync_total_bytes, st->sync_sent_bytes, st->sync_rate);
	json_printf(&o, ",\"reprotect\":");
	json_string(&o, st->reprotect ? st->reprotect : "");
	json_printf(&o, ",\"link\":\"%s\",\"last_error\":", colo_link_name(st->link));
	json_string(&o, st->last_error ? st->last_error : "");
	colo_format_time(st->last_error ? st->last_error_at : 0, when, sizeof(when));
	json_printf(&o, ",\"last_error_at\":\"%s\",\"pending\":", when);
	json_string(&o, st->pending ? st->pending : "");
	json_printf(&o, "}");
	return o.len > INT32_MAX ? -1 : (int)o.len;
}

int colo_address_parse(const char *s, char *host, size_t host_size, char *port,
		       size_t port_size, char *why, size_t why_len)
{
	const char *colon, *h = s;
	size_t n;

	if (*s == '[') {
		const char *end = strchr(s, ']');

		if (!end || end[1] != ':') {
			snprintf(why, why_len, "not [IPv6]:PORT (a ']' then ':' must follow)");
			return -EINVAL;
		}
		h = s + 1;
		n = end - h;
		colon = end + 1;
		if (memchr(h, '[', n)) {
			snprintf(why, why_len, "not HOST:PORT");
			return -EINVAL;
		}
	} else {
		colon = strchr(s, ':');
		if (!colon || strchr(colon + 1, ':')) {
			snprintf(why, why_len, "not HOST:PORT (an IPv6 HOST goes in brackets: [::1]:PORT)");
			return -EINVAL;
		}
		n = colon - s;
	}
	if (!n) {
		snprintf(why, why_len, "the HOST is empty");
		return -EINVAL;
	}
	if (n >= host_size) {
		snprintf(why, why_len, "the HOST must be shorter than %zu bytes", host_size);
		return -EINVAL;
	}
	if (!colon[1] || strlen(colon + 1) > 5 || strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
	    atoi(colon + 1) < 1 || atoi(colon + 1) > 65535 || port_size < 6) {
		snprintf(why, why_len, "the PORT must be a number from 1 to 65535");
		return -EINVAL;
	}
	memcpy(host, h, n);
	host[n] = '\0';
	snprintf(port, port_size, "%d", atoi(colon + 1));
	return 0;
}

int colo_name_parse(const char *name, struct colo_name *out)
{
	const char *p = name, *end;
	size_t n;

	if (*p == '[') {
		end = strchr(p, ']');
		if (!end || end[1] != ':')
			return -EINVAL;
		n = end - p - 1;
		p++;
		end++;
	} else {
		end = strchr(p, ':');
		if (!end)
			return -EINVAL;
		n = end - p;
	}
	if (!n || n >= sizeof(out->host))
		return -EINVAL;
	memcpy(out->host, p, n);
	out->host[n] = '\0';
	p = end + 1;
	end = strchr(p, ':');
	if (!end || end == p || (size_t)(end - p) >= sizeof(out->port))
		return -EINVAL;
	memcpy(out->port, p, end - p);
	out->port[end - p] = '\0';
	for (const char *q = out->port; *q; q++)
		if (*q < '0' || *q > '9')
			return -EINVAL;
	if (atoi(out->port) < 1 || atoi(out->port) > 65535)
		return -EINVAL;
	p = end + 1;
	if (*p != '/' || strlen(p) >= sizeof(out->path))
		return -EINVAL;
	strcpy(out->path, p);
	return 0;
}

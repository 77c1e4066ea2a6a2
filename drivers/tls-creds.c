/* TLS options and credentials: X.509 directories and psktool files, read per load.  tls-session.h */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tls-internal.h"

/* A key or certificate file is never larger; anything bigger is not one. */
#define TLS_FILE_MAX (1u << 20)

const char *tls_mode_name(enum tls_mode mode)
{
	switch (mode) {
	case TLS_MODE_NONE:
		return "none";
	case TLS_MODE_X509:
		return "x509";
	case TLS_MODE_PSK:
		return "psk";
	default:
		return "unset";
	}
}

static int tls_copy(char *dst, size_t size, const char *key, const char *value, char *why,
		    size_t why_size)
{
	if (!*value || strlen(value) >= size) {
		snprintf(why, why_size, "%s: %s value", key, *value ? "too long a" : "empty");
		return -EINVAL;
	}
	strcpy(dst, value);
	return 0;
}

int tls_config_set(struct tls_config *cfg, const char *key, const char *value, char *why,
		   size_t why_size)
{
	if (!strcmp(key, "tls")) {
		if (!strcmp(value, "none"))
			cfg->mode = TLS_MODE_NONE;
		else if (!strcmp(value, "x509"))
			cfg->mode = TLS_MODE_X509;
		else if (!strcmp(value, "psk"))
			cfg->mode = TLS_MODE_PSK;
		else {
			snprintf(why, why_size, "tls=%s: expected none, x509 or psk", value);
			return -EINVAL;
		}
		return 0;
	}
	if (!strcmp(key, "tls_dir"))
		return tls_copy(cfg->dir, sizeof(cfg->dir), key, value, why, why_size);
	if (!strcmp(key, "tls_psk"))
		return tls_copy(cfg->psk_file, sizeof(cfg->psk_file), key, value, why, why_size);
	if (!strcmp(key, "tls_user"))
		return tls_copy(cfg->user, sizeof(cfg->user), key, value, why, why_size);
	if (!strcmp(key, "tls_name"))
		return tls_copy(cfg->name, sizeof(cfg->name), key, value, why, why_size);
	if (!strcmp(key, "tls_verify_peer")) {
		if (strcmp(value, "0") && strcmp(value, "1")) {
			snprintf(why, why_size, "tls_verify_peer=%s: expected 0 or 1", value);
			return -EINVAL;
		}
		cfg->verify_peer = value[0] == '1';
		return 0;
	}
	return 1;
}

int tls_config_check(const struct tls_config *cfg, enum tls_side side, char *why, size_t why_size)
{
	switch (cfg->mode) {
	case TLS_MODE_UNSET:
		snprintf(why, why_size,
			 "TLS is required: give tls=x509 tls_dir=DIR, tls=psk tls_psk=FILE, "
			 "or tls=none for plain text");
		return -EINVAL;
	case TLS_MODE_NONE:
		if (cfg->dir[0] || cfg->psk_file[0]) {
			snprintf(why, why_size, "tls=none takes no tls_dir or tls_psk");
			return -EINVAL;
		}
		return 0;
	case TLS_MODE_X509:
		if (!cfg->dir[0]) {
			snprintf(why, why_size, "tls=x509 needs tls_dir=DIR");
			return -EINVAL;
		}
		if (cfg->psk_file[0]) {
			snprintf(why, why_size, "tls=x509 takes no tls_psk");
			return -EINVAL;
		}
		return 0;
	case TLS_MODE_PSK:
		if (!cfg->psk_file[0]) {
			snprintf(why, why_size, "tls=psk needs tls_psk=FILE");
			return -EINVAL;
		}
		if (cfg->dir[0]) {
			snprintf(why, why_size, "tls=psk takes no tls_dir");
			return -EINVAL;
		}
		if (side == TLS_SIDE_CLIENT && !cfg->user[0]) {
			snprintf(why, why_size, "tls=psk needs tls_user=NAME on the client");
			return -EINVAL;
		}
		return 0;
	}
	snprintf(why, why_size, "bad TLS mode");
	return -EINVAL;
}

/*
 * Reads a whole file.  @secret: a key, refused if group or others may access it (checked on
 * the open file, so a chmod between check and read cannot slip through).  @optional: a
 * missing file is 1.
 */
static int tls_read_file(const char *path, int secret, int optional, gnutls_datum_t *out,
			 char *why, size_t why_size)
{
	struct stat st;
	size_t got = 0;
	ssize_t n;
	int fd, err;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		err = -errno;
		if (optional && errno == ENOENT)
			return 1;
		snprintf(why, why_size, "%s: %s", path, strerror(errno));
		return err;
	}
	if (fstat(fd, &st)) {
		err = -errno;
		snprintf(why, why_size, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > TLS_FILE_MAX) {
		err = -EINVAL;
		snprintf(why, why_size, "%s: not a regular file of at most %u bytes", path,
			 TLS_FILE_MAX);
		goto out;
	}
	if (secret && (st.st_mode & 077)) {
		err = -EACCES;
		snprintf(why, why_size,
			 "%s: mode %04o lets other users read the key: make it 0600 or 0400", path,
			 (unsigned int)(st.st_mode & 07777));
		goto out;
	}
	out->data = gnutls_malloc(st.st_size + 1);
	if (!out->data) {
		err = -ENOMEM;
		snprintf(why, why_size, "%s: out of memory", path);
		goto out;
	}
	while (got < (size_t)st.st_size) {
		n = read(fd, out->data + got, st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			err = n ? -errno : -EIO;
			snprintf(why, why_size, "%s: %s", path, n ? strerror(errno) : "truncated");
			gnutls_free(out->data);
			out->data = NULL;
			goto out;
		}
		got += n;
	}
	out->data[got] = 0;
	out->size = got;
	err = 0;
out:
	close(fd);
	return err;
}

static void tls_datum_wipe(gnutls_datum_t *d)
{
	if (d->data) {
		gnutls_memset(d->data, 0, d->size);
		gnutls_free(d->data);
	}
	d->data = NULL;
	d->size = 0;
}

static int tls_gnutls_error(int ret, const char *what, char *why, size_t why_size)
{
	snprintf(why, why_size, "%s: %s", what, gnutls_strerror(ret));
	return ret == GNUTLS_E_MEMORY_ERROR ? -ENOMEM : -EINVAL;
}

/* ca-cert.pem, optional ca-crl.pem, and our certificate and key: server- or client-. */
static int tls_load_x509(struct tls_creds *c, const struct tls_config *cfg, char *why,
			 size_t why_size)
{
	const char *who = c->side == TLS_SIDE_SERVER ? "server" : "client";
	char path[PATH_MAX + 32], kpath[PATH_MAX + 32];
	gnutls_datum_t cert = { 0 }, key = { 0 }, data = { 0 };
	int ret, err;

	ret = gnutls_certificate_allocate_credentials(&c->x509);
	if (ret < 0)
		return tls_gnutls_error(ret, "certificate credentials", why, why_size);

	snprintf(path, sizeof(path), "%s/ca-cert.pem", cfg->dir);
	err = tls_read_file(path, 0, 0, &data, why, why_size);
	if (err)
		return err;
	ret = gnutls_certificate_set_x509_trust_mem(c->x509, &data, GNUTLS_X509_FMT_PEM);
	tls_datum_wipe(&data);
	if (ret <= 0)
		return tls_gnutls_error(ret ? ret : GNUTLS_E_NO_CERTIFICATE_FOUND, path, why,
					why_size);

	snprintf(path, sizeof(path), "%s/ca-crl.pem", cfg->dir);
	err = tls_read_file(path, 0, 1, &data, why, why_size);
	if (err < 0)
		return err;
	if (!err) {
		ret = gnutls_certificate_set_x509_crl_mem(c->x509, &data, GNUTLS_X509_FMT_PEM);
		tls_datum_wipe(&data);
		if (ret < 0)
			return tls_gnutls_error(ret, path, why, why_size);
	}

	snprintf(path, sizeof(path), "%s/%s-cert.pem", cfg->dir, who);
	snprintf(kpath, sizeof(kpath), "%s/%s-key.pem", cfg->dir, who);
	/* A client without a certificate may still talk to a server that does not ask for one. */
	err = tls_read_file(path, 0, c->side == TLS_SIDE_CLIENT, &cert, why, why_size);
	if (err > 0)
		return 0;
	if (err)
		return err;
	err = tls_read_file(kpath, 1, 0, &key, why, why_size);
	if (err) {
		tls_datum_wipe(&cert);
		return err;
	}
	ret = gnutls_certificate_set_x509_key_mem(c->x509, &cert, &key, GNUTLS_X509_FMT_PEM);
	tls_datum_wipe(&cert);
	tls_datum_wipe(&key);
	if (ret < 0) {
		snprintf(path + strlen(path), sizeof(path) - strlen(path), " and %s-key.pem", who);
		return tls_gnutls_error(ret, path, why, why_size);
	}
	return 0;
}

static int tls_hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* psktool's format: one "username:hexkey" per line. */
static int tls_parse_psk(struct tls_creds *c, const struct tls_config *cfg, char *text,
			 char *why, size_t why_size)
{
	char *line, *next = text;
	int lineno = 0;

	/* strsep, not strtok: a blank line is a line too, so that errors name the right one. */
	while ((line = strsep(&next, "\n"))) {
		char *colon = strchr(line, ':'), *hex;
		size_t len, i;
		struct tls_psk_entry *e, *grown;

		lineno++;
		len = strlen(line);
		if (len && line[len - 1] == '\r')
			line[--len] = 0;
		if (!len)
			continue;
		if (!colon || colon == line) {
			snprintf(why, why_size, "%s:%d: expected username:hexkey", cfg->psk_file,
				 lineno);
			return -EINVAL;
		}
		*colon = 0;
		hex = colon + 1;
		len = strlen(hex);
		if (!len || len % 2) {
			snprintf(why, why_size, "%s:%d: the key is not an even number of hex digits",
				 cfg->psk_file, lineno);
			return -EINVAL;
		}
		grown = realloc(c->psk, (c->npsk + 1) * sizeof(*c->psk));
		if (!grown) {
			snprintf(why, why_size, "%s: out of memory", cfg->psk_file);
			return -ENOMEM;
		}
		c->psk = grown;
		e = &c->psk[c->npsk];
		e->user = strdup(line);
		e->key.size = len / 2;
		e->key.data = gnutls_malloc(len / 2);
		if (!e->user || !e->key.data) {
			free(e->user);
			gnutls_free(e->key.data);
			snprintf(why, why_size, "%s: out of memory", cfg->psk_file);
			return -ENOMEM;
		}
		c->npsk++;
		for (i = 0; i < len / 2; i++) {
			int hi = tls_hex_value(hex[2 * i]), lo = tls_hex_value(hex[2 * i + 1]);

			if (hi < 0 || lo < 0) {
				snprintf(why, why_size, "%s:%d: the key is not hex", cfg->psk_file,
					 lineno);
				return -EINVAL;
			}
			e->key.data[i] = hi << 4 | lo;
		}
	}
	if (!c->npsk) {
		snprintf(why, why_size, "%s: no username:hexkey line", cfg->psk_file);
		return -EINVAL;
	}
	return 0;
}

static int tls_creds_psk_lookup(const struct tls_creds *creds, const char *user, gnutls_datum_t *key)
{
	int i;

	for (i = 0; i < creds->npsk; i++) {
		if (strcmp(creds->psk[i].user, user))
			continue;
		key->data = gnutls_malloc(creds->psk[i].key.size);
		if (!key->data)
			return -1;
		memcpy(key->data, creds->psk[i].key.data, creds->psk[i].key.size);
		key->size = creds->psk[i].key.size;
		return 0;
	}
	return -1;
}

/* The session's pointer is its credentials (tls-session.c). */
static int tls_server_psk_cb(gnutls_session_t gs, const char *user, gnutls_datum_t *key)
{
	const struct tls_creds *creds = gnutls_session_get_ptr(gs);

	return creds ? tls_creds_psk_lookup(creds, user, key) : -1;
}

static int tls_load_psk(struct tls_creds *c, const struct tls_config *cfg, char *why,
			size_t why_size)
{
	gnutls_datum_t data = { 0 };
	int err, ret, i;

	err = tls_read_file(cfg->psk_file, 1, 0, &data, why, why_size);
	if (err)
		return err;
	err = tls_parse_psk(c, cfg, (char *)data.data, why, why_size);
	tls_datum_wipe(&data);
	if (err)
		return err;

	if (c->side == TLS_SIDE_SERVER) {
		ret = gnutls_psk_allocate_server_credentials(&c->psk_server);
		if (ret < 0)
			return tls_gnutls_error(ret, "PSK credentials", why, why_size);
		gnutls_psk_set_server_credentials_function(c->psk_server, tls_server_psk_cb);
		return 0;
	}
	for (i = 0; i < c->npsk; i++)
		if (!strcmp(c->psk[i].user, cfg->user))
			break;
	if (i == c->npsk) {
		snprintf(why, why_size, "%s: no key for user %s", cfg->psk_file, cfg->user);
		return -ENOENT;
	}
	ret = gnutls_psk_allocate_client_credentials(&c->psk_client);
	if (ret >= 0)
		ret = gnutls_psk_set_client_credentials(c->psk_client, cfg->user, &c->psk[i].key,
							GNUTLS_PSK_KEY_RAW);
	if (ret < 0)
		return tls_gnutls_error(ret, "PSK credentials", why, why_size);
	return 0;
}

int tls_creds_load(const struct tls_config *cfg, enum tls_side side, struct tls_creds **out,
		   char *why, size_t why_size)
{
	struct tls_creds *c;
	int err;

	*out = NULL;
	err = tls_config_check(cfg, side, why, why_size);
	if (err)
		return err;
	if (cfg->mode == TLS_MODE_NONE) {
		snprintf(why, why_size, "tls=none has no credentials");
		return -EINVAL;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(why, why_size, "out of memory");
		return -ENOMEM;
	}
	c->refs = 1;
	c->mode = cfg->mode;
	c->side = side;
	c->verify_peer = cfg->verify_peer;
	snprintf(c->name, sizeof(c->name), "%s", cfg->name);
	err = cfg->mode == TLS_MODE_X509 ? tls_load_x509(c, cfg, why, why_size)
					 : tls_load_psk(c, cfg, why, why_size);
	if (err) {
		tls_creds_put(c);
		return err;
	}
	*out = c;
	return 0;
}

void tls_creds_put(struct tls_creds *c)
{
	int i;

	if (!c || --c->refs)
		return;
	if (c->x509)
		gnutls_certificate_free_credentials(c->x509);
	if (c->psk_server)
		gnutls_psk_free_server_credentials(c->psk_server);
	if (c->psk_client)
		gnutls_psk_free_client_credentials(c->psk_client);
	for (i = 0; i < c->npsk; i++) {
		free(c->psk[i].user);
		tls_datum_wipe(&c->psk[i].key);
	}
	free(c->psk);
	free(c);
}

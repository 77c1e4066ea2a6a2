/* Shared by tls-creds.c and tls-session.c only: the loaded credentials. */
#ifndef _TLS_INTERNAL_H_
#define _TLS_INTERNAL_H_

#include <gnutls/gnutls.h>

#include "tls-session.h"

struct tls_psk_entry {
	char *user;
	gnutls_datum_t key;
};

struct tls_creds {
	int refs;
	enum tls_mode mode;
	enum tls_side side;
	int verify_peer; /* server: a client certificate is required */
	char name[256]; /* client: the server certificate's expected name, or "" */
	gnutls_certificate_credentials_t x509;
	gnutls_psk_server_credentials_t psk_server;
	gnutls_psk_client_credentials_t psk_client;
	struct tls_psk_entry *psk; /* server: the file's users and keys */
	int npsk;
};
/* A session's gnutls pointer (gnutls_session_get_ptr) is its struct tls_creds. */

#endif

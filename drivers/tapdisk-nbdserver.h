/* The NBD export of one VBD: listeners on a Unix socket and optionally TCP. */
#ifndef _TAPDISK_NBDSERVER_H_
#define _TAPDISK_NBDSERVER_H_

#include <stddef.h>

#include "tapdisk.h"
#include "tls-session.h"

struct td_nbdserver;

struct td_nbdserver *tapdisk_nbdserver_alloc(td_vbd_t *vbd);
/* Listens on @path (mode 0600), replacing a stale socket there. */
int tapdisk_nbdserver_listen_unix(struct td_nbdserver *server, const char *path);
/*
 * Listens on @host:@port (port "0": any); writes "host:port" actually bound into @bound.
 * @tls: x509 or psk (clients must STARTTLS; credentials are checked now and reloaded for each
 * connection) or none; TLS_MODE_UNSET is refused.
 */
int tapdisk_nbdserver_listen_tcp(struct td_nbdserver *server, const char *host, const char *port,
				 const struct tls_config *tls, char *bound, size_t bound_size);
/* Stops reading requests from clients (replies still go out). */
void tapdisk_nbdserver_pause(struct td_nbdserver *server);
void tapdisk_nbdserver_unpause(struct td_nbdserver *server);
/* Requests of the export's clients that have not yet completed. */
int tapdisk_nbdserver_inflight(const struct td_nbdserver *server);
/* Closes listeners and connections and removes the Unix socket.  No request may be in flight. */
void tapdisk_nbdserver_free(struct td_nbdserver *server);

#endif

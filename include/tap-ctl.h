/* libblktapctl: talk to tapdisk processes over their control sockets (blktap3 include/tap-ctl.h). */
#ifndef _TAP_CTL_H_
#define _TAP_CTL_H_

#include <stdio.h>
#include <sys/time.h>
#include <sys/types.h>

#include "list.h"
#include "tapdisk-message.h"

extern int tap_ctl_debug;

/* Every call returns 0 or a negative errno, and prints one line on stderr when it fails. */
int tap_ctl_connect(const char *path, int *socket);
int tap_ctl_connect_id(int id, int *socket);
int tap_ctl_read_raw(int fd, void *buf, size_t size, struct timeval *timeout);
int tap_ctl_read_message(int fd, tapdisk_message_t *message, struct timeval *timeout);
int tap_ctl_write_message(int fd, tapdisk_message_t *message, struct timeval *timeout);
int tap_ctl_send_and_receive(int fd, tapdisk_message_t *message, struct timeval *timeout);
int tap_ctl_connect_send_and_receive(int id, tapdisk_message_t *message, struct timeval *timeout);
char *tap_ctl_socket_name(int id);

typedef struct {
	int id;
	pid_t pid;
	int minor;
	int state;
	char *type;
	char *path;

	struct list_head entry;
} tap_list_t;

#define tap_list_for_each_entry(_pos, _head) list_for_each_entry(_pos, _head, entry)
#define tap_list_for_each_entry_safe(_pos, _n, _head) list_for_each_entry_safe(_pos, _n, _head, entry)

int tap_ctl_list(struct list_head *list);
int tap_ctl_list_pid(pid_t pid, struct list_head *list);
void tap_ctl_list_free(struct list_head *list);
int tap_ctl_find_minor(const char *type, const char *path);

int tap_ctl_allocate(int *minor, char **devname);
int tap_ctl_free(const int minor);

int tap_ctl_create(const char *params, char **devname, int flags, int prt_minor, char *secondary,
		   int timeout);
int tap_ctl_destroy(const int id, const int minor, int force, struct timeval *timeout);

int tap_ctl_spawn(void);
pid_t tap_ctl_get_pid(const int id);

int tap_ctl_attach(const int id, const int minor);
int tap_ctl_detach(const int id, const int minor);

int tap_ctl_open(const int id, const int minor, const char *params, int flags, const int prt_minor,
		 const char *secondary, int timeout);
int tap_ctl_close(const int id, const int minor, const int force, struct timeval *timeout);

int tap_ctl_pause(const int id, const int minor, struct timeval *timeout);
int tap_ctl_unpause(const int id, const int minor, const char *params, int flags, char *secondary,
		    const char *logpath);

int tap_ctl_stats(pid_t pid, int minor, char *buf, size_t size);
/* @minor -1: a JSON list of every VBD's stats, asked one minor at a time. */
int tap_ctl_stats_fwrite(pid_t pid, int minor, FILE *out);

int tap_ctl_info(pid_t pid, int minor, unsigned long long *sectors, unsigned int *sector_size,
		 unsigned int *info);

/* Extension: serve the VBD over NBD on TCP too.  @addr is "host:port". */
/* @opts: "tls=x509 tls_dir=DIR", "tls=psk tls_psk=FILE" or "tls=none" (docs/tap-ctl.md). */
int tap_ctl_nbd_tcp(pid_t pid, int minor, const char *addr, const char *opts, char *bound,
		    size_t bound_size);

/*
 * Extension: one replication command to a colo VBD ("start primary timeout=2000",
 * "checkpoint", "failover", "stop", "status"; at most 255 bytes).  On success *@text is the
 * malloc'd answer ("" for most, "epoch=N" for checkpoint, JSON for status).
 */
int tap_ctl_colo(pid_t pid, int minor, const char *command, char **text);

#endif

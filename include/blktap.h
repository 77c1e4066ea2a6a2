/* Filesystem layout shared by tapdisk and tap-ctl (blktap3 include/blktap.h). */
#ifndef _BLKTAP_H_
#define _BLKTAP_H_

#include <stddef.h>

#define BLKTAP2_CONTROL_NAME "blktap-control"
/* configure --with-control-dir sets it for the programs; this is the default. */
#ifndef BLKTAP2_CONTROL_DIR
#define BLKTAP2_CONTROL_DIR "/run/" BLKTAP2_CONTROL_NAME
#endif
#define BLKTAP2_CONTROL_SOCKET "ctl"
#define BLKTAP2_NP_RUN_DIR BLKTAP2_CONTROL_DIR "/tapdisk"
#define BLKTAP2_ENOSPC_SIGNAL_FILE BLKTAP2_CONTROL_DIR "/nospc"

/* Moves the control directory, for tests and side-by-side instances. */
#define BLKTAP_CONTROL_DIR_ENV "BLKTAP_CONTROL_DIR"

#define BLKTAP2_MINOR_PREFIX "tapdisk-"
#define BLKTAP2_NBD_PREFIX "nbd"
#define MAX_ID 16384

/*
 * 0 if $BLKTAP_CONTROL_DIR is unset, empty or absolute; else -EINVAL with the sentence
 * "BLKTAP_CONTROL_DIR='x' is not an absolute path" in @why.  Every tool calls it first.
 */
int blktap_control_dir_check(char *why, size_t len);
/* The control directory in force: $BLKTAP_CONTROL_DIR, or BLKTAP2_CONTROL_DIR if unset. */
const char *blktap_control_dir(void);

#endif

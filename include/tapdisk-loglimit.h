/* A token bucket that limits how often one source may log (blktap3 tapdisk-loglimit.h). */
#ifndef _TAPDISK_LOGLIMIT_H_
#define _TAPDISK_LOGLIMIT_H_

#include <sys/time.h>

typedef struct td_loglimit {
	int burst;
	int interval; /* milliseconds */
	int count;
	int dropped;
	struct timeval ts;
} td_loglimit_t;

void tapdisk_loglimit_init(td_loglimit_t *rl, int burst, int interval_ms);
/* Returns 1 when the caller may log now, 0 when the message is dropped. */
int tapdisk_loglimit_pass(td_loglimit_t *rl);

#endif

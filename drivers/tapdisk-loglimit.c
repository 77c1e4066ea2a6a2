/* A token bucket: @burst messages, then one more per @interval. */
#include <string.h>
#include <sys/time.h>

#include "tapdisk-loglimit.h"

void tapdisk_loglimit_init(td_loglimit_t *rl, int burst, int interval_ms)
{
	memset(rl, 0, sizeof(*rl));
	rl->burst = burst;
	rl->interval = interval_ms;
	rl->count = burst;
}

int tapdisk_loglimit_pass(td_loglimit_t *rl)
{
	struct timeval now;
	long long ms;

	if (!rl->burst)
		return 1;
	gettimeofday(&now, NULL);
	ms = (now.tv_sec - rl->ts.tv_sec) * 1000LL + (now.tv_usec - rl->ts.tv_usec) / 1000;
	if (ms >= rl->interval) {
		rl->count = rl->burst;
		rl->ts = now;
	}
	if (rl->count > 0) {
		rl->count--;
		return 1;
	}
	rl->dropped++;
	return 0;
}

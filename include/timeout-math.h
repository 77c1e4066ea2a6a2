/* struct timeval helpers used with the event API (blktap3 timeout-math.h). */
#ifndef _TAPDISK_TIMEOUT_MATH_H_
#define _TAPDISK_TIMEOUT_MATH_H_

#include <sys/time.h>

/* A timeout that never fires. */
#define TV_INF ((struct timeval){ .tv_sec = -1, .tv_usec = 0 })
#define TV_ZERO ((struct timeval){ .tv_sec = 0, .tv_usec = 0 })
#define TV_SECS(s) ((struct timeval){ .tv_sec = (s), .tv_usec = 0 })
#define TV_USECS(u) ((struct timeval){ .tv_sec = (u) / 1000000, .tv_usec = (u) % 1000000 })
#define TV_MSECS(m) TV_USECS((m) * 1000)

#define TV_IS_INF(tv) ((tv).tv_sec < 0)

static inline long long tv_to_usecs(struct timeval tv)
{
	return (long long)tv.tv_sec * 1000000LL + tv.tv_usec;
}

#endif

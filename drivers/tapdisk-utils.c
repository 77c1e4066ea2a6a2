/* Small helpers shared by tapdisk and libblktapctl. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>

#include "blktap.h"

/*
 * Only absolute paths: sockets are named relative to it and handed to other tools.  A
 * relative one is refused, not replaced by the default: that would be the production
 * directory, which a test or a side-by-side instance must never touch.
 */
int blktap_control_dir_check(char *why, size_t len)
{
	const char *dir = getenv(BLKTAP_CONTROL_DIR_ENV);

	if (!dir || !dir[0] || dir[0] == '/')
		return 0;
	snprintf(why, len, "%s='%s' is not an absolute path", BLKTAP_CONTROL_DIR_ENV, dir);
	return -EINVAL;
}

const char *blktap_control_dir(void)
{
	static char norm[PATH_MAX];
	const char *dir = getenv(BLKTAP_CONTROL_DIR_ENV);
	size_t len;

	/* Unset or empty: the default.  A relative one is returned as given (see above). */
	if (!dir || !dir[0])
		return BLKTAP2_CONTROL_DIR;
	/* "/run/x/" names sockets "/run/x//ctl1", which block-tap's prefix matching misses. */
	len = strlen(dir);
	while (len > 1 && dir[len - 1] == '/')
		len--;
	if (len >= sizeof(norm))
		return dir;
	memcpy(norm, dir, len);
	norm[len] = '\0';
	return norm;
}

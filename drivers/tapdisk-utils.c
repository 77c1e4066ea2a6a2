/* Small helpers shared by tapdisk and libblktapctl. */
#include <limits.h>
#include <string.h>
#include <stdlib.h>

#include "blktap.h"

const char *blktap_control_dir(void)
{
	static char norm[PATH_MAX];
	const char *dir = getenv(BLKTAP_CONTROL_DIR_ENV);
	size_t len;

	/* Only absolute paths: sockets are named relative to it and handed to other tools. */
	if (!dir || dir[0] != '/')
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

/* Small helpers shared by tapdisk and libblktapctl. */
#include <stdlib.h>

#include "blktap.h"

const char *blktap_control_dir(void)
{
	const char *dir = getenv(BLKTAP_CONTROL_DIR_ENV);

	/* Only absolute paths: sockets are named relative to it and handed to other tools. */
	if (dir && dir[0] == '/')
		return dir;
	return BLKTAP2_CONTROL_DIR;
}

/*
 * The start steps (colo-internal.h): the list both sides walk between the handshake and plain
 * replication.  A new step is a file of its own and one line here.
 */
#include <stddef.h>

#include "colo-internal.h"

const struct colo_start_step *const colo_start_steps[] = {
	&colo_verify_step,
	&colo_reprotect_step,
	&colo_sync_step,
	NULL,
};

const struct colo_start_step *colo_start_step_of_frame(uint16_t type)
{
	for (size_t i = 0; colo_start_steps[i]; i++)
		if (colo_start_steps[i]->frame_type == type)
			return colo_start_steps[i];
	return NULL;
}

uint32_t colo_start_steps_flags(const struct colo *c)
{
	uint32_t flags = 0;

	for (size_t i = 0; colo_start_steps[i]; i++)
		if (colo_start_steps[i]->wanted(c))
			flags |= colo_start_steps[i]->flags ? colo_start_steps[i]->flags(c)
							    : colo_start_steps[i]->hello_flag;
	return flags;
}

void colo_start_steps_cancel(struct colo *c)
{
	for (size_t i = 0; colo_start_steps[i]; i++)
		colo_start_steps[i]->cancel(c);
}

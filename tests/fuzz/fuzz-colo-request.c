/*
 * libFuzzer target for what a toolstack writes into a domain's xenstore request node
 * (docs/xenstore.md): colo_request_parse, the parser every bound colo VBD runs on
 * "<id> <verb> [args]", and through it colo_command_parse and every option of start.
 *
 * The input is the node's value as libxenstore hands it over: any bytes, NUL-terminated by
 * the reader (xenstore values may hold NULs; the first one ends the text, as for tapdisk).
 * Checked: the parse returns 0 or -EINVAL and nothing else; on -EINVAL the sentence is
 * non-empty, printable and NUL-terminated within its buffer; the id is 0 exactly when the
 * text does not start with a number 1 ... 2^63-1 followed by a blank or the end; on success
 * the verb is one a request may carry and start has a role; and nothing overruns (ASan/UBSan).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "colo-command.h"

/* xenstore's own limit on a value (XENSTORE_PAYLOAD_MAX). */
#define FUZZ_MAX_VALUE 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char text[FUZZ_MAX_VALUE + 1];
	struct colo_command cmd;
	char why[300];
	uint64_t id, want;
	size_t id_len, i;
	int rc;

	if (size > FUZZ_MAX_VALUE)
		size = FUZZ_MAX_VALUE;
	memcpy(text, data, size);
	text[size] = '\0';
	memset(why, 0x5a, sizeof(why));

	rc = colo_request_parse(text, &id, &cmd, why, sizeof(why));
	if (rc != 0 && rc != -EINVAL)
		abort();

	id_len = strcspn(text, " \t\n");
	if (colo_parse_u63(text, id_len, &want) || want == 0)
		want = 0;
	if (id != want)
		abort();

	if (rc) {
		if (!memchr(why, '\0', sizeof(why)) || !why[0])
			abort();
		for (i = 0; why[i]; i++)
			if (why[i] == '\n')
				abort(); /* a result node holds one line */
		return 0;
	}
	if (!id)
		abort();
	switch (cmd.verb) {
	case COLO_COMMAND_START:
		if (cmd.role != COLO_ROLE_PRIMARY && cmd.role != COLO_ROLE_SECONDARY)
			abort();
		break;
	case COLO_COMMAND_CHECKPOINT:
	case COLO_COMMAND_FAILOVER:
	case COLO_COMMAND_STOP:
		break;
	default:
		abort();
	}
	return 0;
}

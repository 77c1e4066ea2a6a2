/*
 * The options of `colo start`, as one table: the driver's parser (drivers/colo-options.c)
 * knows no other keys, and tap-ctl's and colo-controller's usage print it, so the three
 * cannot drift apart.
 */
#ifndef _COLO_START_OPTIONS_H_
#define _COLO_START_OPTIONS_H_

#include <stddef.h>
#include <stdio.h>

/* Which roles an option applies to. */
#define COLO_OPTION_PRIMARY (1U << 0)
#define COLO_OPTION_SECONDARY (1U << 1)
#define COLO_OPTION_BOTH (COLO_OPTION_PRIMARY | COLO_OPTION_SECONDARY)

struct colo_start_option {
	const char *name;
	unsigned int roles;  /* COLO_OPTION_* */
	const char *value;   /* what follows '=': SIZE, MS, 0|1, PATH, ADDRESS */
	const char *deflt;   /* the default, as text */
	const char *meaning; /* one line, with the range */
};

extern const struct colo_start_option colo_start_options[];
extern const size_t colo_start_options_count;

/* The entry named by the @len bytes at @name, or NULL. */
const struct colo_start_option *colo_start_option_find(const char *name, size_t len);
/* "primary", "secondary" or "both". */
const char *colo_start_option_roles(const struct colo_start_option *o);
/* Prints the table, one option a line, each line starting with @indent. */
void colo_start_options_print(FILE *out, const char *indent);

#endif

/*
 * The xl configurations of xl-config-examples/, read by Xen's own parser (libxlutil): every disk
 * of every example must give exactly the libxl_device_disk we document, and its target must be
 * a name the colo driver opens. Needs XL_CONFIG_EXAMPLES=<dir>; without it the test skips (77).
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxl.h>
#include <libxlutil.h>

#include "colo.h"

#define MAX_DISKS 4

struct expect_disk {
	libxl_disk_backend backend;
	libxl_disk_format format;
	const char *script;
	const char *target; /* pdev_path */
	const char *vdev;
	int readwrite;
	int is_cdrom;
	/* The target as the colo driver splits it. */
	const char *host;
	unsigned int port;
	const char *image;
};

struct expect_file {
	const char *file;
	const char *name;
	int ndisks;
	struct expect_disk disks[MAX_DISKS];
};

/* UNKNOWN backend: the "tapdisk:" prefix is stripped and ignored; libxl chooses at create. */
#define COLO_SHORT(port_, img, dev)                                                                \
	{                                                                                          \
		.backend = LIBXL_DISK_BACKEND_UNKNOWN, .format = LIBXL_DISK_FORMAT_RAW,            \
		.script = "block-colo", .target = "colo:192.0.2.2:" #port_ ":" img, .vdev = dev,   \
		.readwrite = 1, .host = "192.0.2.2", .port = port_, .image = img,                  \
	}

#define FT_DISK(backend_, port_, img, dev)                                                         \
	{                                                                                          \
		.backend = backend_, .format = LIBXL_DISK_FORMAT_RAW, .script = "block-colo",      \
		.target = "colo:[2001:db8::2]:" #port_ ":" img, .vdev = dev, .readwrite = 1,       \
		.host = "2001:db8::2", .port = port_, .image = img,                                \
	}

static const struct expect_file examples[] = {
	{
		.file = "colo-primary.cfg",
		.name = "vm1",
		.ndisks = 2,
		.disks = {COLO_SHORT(9000, "/srv/xen/vm1-root.img", "xvda"),
			  COLO_SHORT(9001, "/srv/xen/vm1-data.img", "xvdb")},
	},
	{
		.file = "colo-secondary.cfg",
		.name = "vm1",
		.ndisks = 2,
		.disks = {COLO_SHORT(9000, "/srv/xen/vm1-root.img", "xvda"),
			  COLO_SHORT(9001, "/srv/xen/vm1-data.img", "xvdb")},
	},
	{
		.file = "ft-primary.cfg",
		.name = "vm2",
		.ndisks = 2,
		.disks = {FT_DISK(LIBXL_DISK_BACKEND_PHY, 9100, "/srv/xen/vm2-root.img", "xvda"),
			  FT_DISK(LIBXL_DISK_BACKEND_UNKNOWN, 9101, "/srv/xen/vm2-data.img",
				  "xvdb")},
	},
	{
		.file = "ft-secondary.cfg",
		.name = "vm2",
		.ndisks = 2,
		.disks = {FT_DISK(LIBXL_DISK_BACKEND_PHY, 9100, "/srv/xen/vm2-root.img", "xvda"),
			  FT_DISK(LIBXL_DISK_BACKEND_UNKNOWN, 9101, "/srv/xen/vm2-data.img",
				  "xvdb")},
	},
};

#define NR_EXAMPLES ((int)(sizeof(examples) / sizeof(examples[0])))

static const char *dir;

/* xlu reports parse errors to a FILE; keep them to compare them exactly. */
struct parser {
	FILE *report;
	char *text;
	size_t len;
	XLU_Config *cfg;
};

static void parser_open(struct parser *p, const char *source)
{
	p->text = NULL;
	p->report = open_memstream(&p->text, &p->len);
	ck_assert_ptr_nonnull(p->report);
	p->cfg = xlu_cfg_init(p->report, source);
	ck_assert_ptr_nonnull(p->cfg);
}

static const char *parser_report(struct parser *p)
{
	fflush(p->report);
	return p->text ? p->text : "";
}

static void parser_close(struct parser *p)
{
	xlu_cfg_destroy(p->cfg);
	fclose(p->report);
	free(p->text);
}

static int parse_disk(struct parser *p, const char *spec, libxl_device_disk *disk)
{
	libxl_device_disk_init(disk);
	return xlu_disk_parse(p->cfg, 1, &spec, disk);
}

static void check_disk(const char *where, const libxl_device_disk *d, const struct expect_disk *e)
{
	ck_assert_msg(d->backend == e->backend, "%s: backend %s, expected %s", where,
		      libxl_disk_backend_to_string(d->backend),
		      libxl_disk_backend_to_string(e->backend));
	ck_assert_msg(d->format == e->format, "%s: format %s, expected %s", where,
		      libxl_disk_format_to_string(d->format),
		      libxl_disk_format_to_string(e->format));
	ck_assert_pstr_eq(d->script, e->script);
	ck_assert_pstr_eq(d->pdev_path, e->target);
	ck_assert_pstr_eq(d->vdev, e->vdev);
	ck_assert_int_eq(d->readwrite, e->readwrite);
	ck_assert_int_eq(d->is_cdrom, e->is_cdrom);
	ck_assert_int_eq(d->removable, 0);
	ck_assert_pstr_eq(d->backend_domname, NULL);
	/* Xen's own COLO disk (qdisk + QEMU block replication) must stay off: ours needs none
	 * of colo-host, colo-port, colo-export, active-disk, hidden-disk. */
	ck_assert(libxl_defbool_is_default(d->colo_enable));
	ck_assert_pstr_eq(d->colo_host, NULL);
	ck_assert_int_eq(d->colo_port, 0);
	ck_assert_pstr_eq(d->colo_export, NULL);
	ck_assert_pstr_eq(d->active_disk, NULL);
	ck_assert_pstr_eq(d->hidden_disk, NULL);
}

/* Reads @ex with xl's reader and parses each of its disks into @disks (initialised). */
static void load_example(const struct expect_file *ex, libxl_device_disk *disks)
{
	XLU_ConfigList *list;
	struct parser p;
	const char *value;
	char path[4096];
	int n, i;

	snprintf(path, sizeof(path), "%s/%s", dir, ex->file);
	parser_open(&p, path);
	ck_assert_msg(xlu_cfg_readfile(p.cfg, path) == 0, "%s: %s", path, parser_report(&p));
	ck_assert_int_eq(xlu_cfg_get_string(p.cfg, "name", &value, 0), 0);
	ck_assert_str_eq(value, ex->name);
	ck_assert_int_eq(xlu_cfg_get_string(p.cfg, "type", &value, 0), 0);
	ck_assert_str_eq(value, "pv");
	ck_assert_int_eq(xlu_cfg_get_list(p.cfg, "disk", &list, &n, 0), 0);
	ck_assert_int_eq(n, ex->ndisks);
	for (i = 0; i < n; i++) {
		const char *spec = xlu_cfg_get_listitem(list, i);

		ck_assert_ptr_nonnull(spec);
		ck_assert_msg(parse_disk(&p, spec, &disks[i]) == 0, "%s disk %d '%s': %s", ex->file,
			      i, spec, parser_report(&p));
	}
	ck_assert_ptr_null(xlu_cfg_get_listitem(list, n));
	ck_assert_str_eq(parser_report(&p), "");
	parser_close(&p);
}

static void dispose_disks(libxl_device_disk *disks, int n)
{
	while (n--)
		libxl_device_disk_dispose(&disks[n]);
}

/* Every disk of one example file gives exactly the documented libxl_device_disk. */
START_TEST(test_example)
{
	const struct expect_file *ex = &examples[_i];
	libxl_device_disk disks[MAX_DISKS];
	char where[256];
	int i;

	load_example(ex, disks);
	for (i = 0; i < ex->ndisks; i++) {
		snprintf(where, sizeof(where), "%s disk %d", ex->file, i);
		check_disk(where, &disks[i], &ex->disks[i]);
	}
	dispose_disks(disks, ex->ndisks);
}
END_TEST

/* A new example must be added to the table above, so that nothing goes untested. */
START_TEST(test_no_untested_example)
{
	struct dirent *de;
	int found = 0, i;
	DIR *d = opendir(dir);

	ck_assert_msg(d != NULL, "%s: %s", dir, strerror(errno));
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);

		if (len < 4 || strcmp(de->d_name + len - 4, ".cfg"))
			continue;
		for (i = 0; i < NR_EXAMPLES; i++)
			if (!strcmp(de->d_name, examples[i].file))
				break;
		ck_assert_msg(i < NR_EXAMPLES, "%s/%s is not checked by this test", dir,
			      de->d_name);
		found++;
	}
	closedir(d);
	ck_assert_int_eq(found, NR_EXAMPLES);
}
END_TEST

/* tap-ctl create -a TYPE:NAME splits at the first colon; the rest is the driver's name. */
static int target_split(const char *target, struct colo_name *n)
{
	if (strncmp(target, "colo:", 5))
		return -EINVAL;
	return colo_name_parse(target + 5, n);
}

/* Every target xl hands to the hotplug script (params) is a name the colo driver opens. */
START_TEST(test_targets_split)
{
	const struct expect_file *ex = &examples[_i];
	libxl_device_disk disks[MAX_DISKS];
	int i;

	load_example(ex, disks);
	for (i = 0; i < ex->ndisks; i++) {
		const struct expect_disk *e = &ex->disks[i];
		const char *target = disks[i].pdev_path;
		struct colo_name n;

		ck_assert_ptr_nonnull(target);
		ck_assert_msg(target_split(target, &n) == 0,
			      "%s disk %d: '%s' is not a colo name", ex->file, i, target);
		ck_assert_str_eq(n.host, e->host);
		ck_assert_uint_eq(atoi(n.port), e->port);
		ck_assert_str_eq(n.path, e->image);
	}
	dispose_disks(disks, ex->ndisks);
}
END_TEST

/* The driver's parser refuses these, so the check above means something. */
START_TEST(test_split_refuses)
{
	static const char *const bad[] = {
		"colo:192.0.2.2:9000:img",     /* relative image */
		"colo:192.0.2.2:0:/img",       /* port 0 */
		"colo:192.0.2.2:65536:/img",   /* port too big */
		"colo:192.0.2.2:90x0:/img",    /* port not a number */
		"colo::9000:/img",	       /* no host */
		"colo:2001:db8::2:9000:/img",  /* IPv6 without brackets */
		"colo:[2001:db8::2:9000:/img", /* no closing bracket */
		"colo:192.0.2.2:9000",	       /* no image */
		"aio:/srv/xen/vm1-root.img",   /* not a colo disk */
	};
	struct colo_name n;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(target_split(bad[i], &n) == -EINVAL,
			      "'%s' was accepted", bad[i]);
}
END_TEST

/* One spec parsed as xl would: @rc and the exact diagnostic (empty when none). */
static void parse_one(const char *spec, int rc, const char *report, libxl_device_disk *disk)
{
	struct parser p;

	parser_open(&p, "test.cfg");
	ck_assert_int_eq(parse_disk(&p, spec, disk), rc);
	ck_assert_str_eq(parser_report(&p), report);
	parser_close(&p);
}

#define DIAG(msg, spec)                                                                            \
	"test.cfg: config parsing error in disk specification: " msg " in `" spec "'\n"

START_TEST(test_short_form_without_script)
{
	libxl_device_disk d;
	const struct expect_disk e = {
		.backend = LIBXL_DISK_BACKEND_UNKNOWN,
		.format = LIBXL_DISK_FORMAT_RAW,
		.target = "colo:192.0.2.2:9000:/srv/img",
		.vdev = "xvda",
		.readwrite = 1,
	};

	/* Parses, but without script= libxl 4.17 stat()s the target at create and fails. */
	parse_one("tapdisk:colo:192.0.2.2:9000:/srv/img,xvda,w", 0, "", &d);
	check_disk("tapdisk:", &d, &e);
	libxl_device_disk_dispose(&d);
	/* Every deprecated prefix is dropped, even several; none selects a backend. */
	parse_one("tap:colo:192.0.2.2:9000:/srv/img,xvda,w", 0, "", &d);
	check_disk("tap:", &d, &e);
	libxl_device_disk_dispose(&d);
	parse_one("tap2:tapdisk:aio:colo:192.0.2.2:9000:/srv/img,xvda,w", 0, "", &d);
	check_disk("tap2:tapdisk:aio:", &d, &e);
	libxl_device_disk_dispose(&d);
	/* A host name (a letter after "colo:") is still a plain positional target. */
	parse_one("tapdisk:colo:hostb.example.net:9000:/srv/img,xvda,w", 0, "", &d);
	ck_assert_pstr_eq(d.pdev_path, "colo:hostb.example.net:9000:/srv/img");
	ck_assert_pstr_eq(d.vdev, "xvda");
	libxl_device_disk_dispose(&d);
	/* Without a prefix the second field is the format, so "raw" must be spelt out. */
	parse_one("colo:192.0.2.2:9000:/srv/img,raw,xvda,w", 0, "", &d);
	check_disk("no prefix, raw", &d, &e);
	libxl_device_disk_dispose(&d);
}
END_TEST

START_TEST(test_backendtype_tap)
{
	libxl_device_disk d;
	const struct expect_disk e = {
		.backend = LIBXL_DISK_BACKEND_TAP,
		.format = LIBXL_DISK_FORMAT_RAW,
		.script = "block-colo",
		.target = "colo:192.0.2.2:9000:/srv/img",
		.vdev = "xvda",
		.readwrite = 1,
	};

	/* Parses to TAP; libxl 4.17 then refuses it at create ("blktap not available"). */
	parse_one("vdev=xvda,access=rw,backendtype=tap,script=block-colo,"
		  "target=colo:192.0.2.2:9000:/srv/img",
		  0, "", &d);
	check_disk("backendtype=tap", &d, &e);
	libxl_device_disk_dispose(&d);
}
END_TEST

START_TEST(test_wrong_forms)
{
	libxl_device_disk d;

	/* target= not last swallows the rest, commas included, and the backend is lost. */
	parse_one("vdev=xvda,target=colo:192.0.2.2:9000:/srv/img,backendtype=tap", 0, "", &d);
	ck_assert_pstr_eq(d.pdev_path, "colo:192.0.2.2:9000:/srv/img,backendtype=tap");
	ck_assert_int_eq(d.backend, LIBXL_DISK_BACKEND_UNKNOWN);
	ck_assert_pstr_eq(d.vdev, "xvda");
	libxl_device_disk_dispose(&d);

	/* No prefix: "xvda" is taken for the format. */
	parse_one("colo:192.0.2.2:9000:/srv/img,xvda,w", EINVAL,
		  DIAG("unknown value for format: near `xvda'",
		       "colo:192.0.2.2:9000:/srv/img,xvda,w"),
		  &d);
	libxl_device_disk_dispose(&d);

	/* An IPv6 host after "colo:" looks like an unknown prefix "colo:" to xl. */
	parse_one("tapdisk:colo:[2001:db8::2]:9000:/srv/img,xvda,w", EINVAL,
		  DIAG("unknown deprecated disk prefix: near `colo:'",
		       "tapdisk:colo:[2001:db8::2]:9000:/srv/img,xvda,w"),
		  &d);
	libxl_device_disk_dispose(&d);

	/* The short form needs the vdev. */
	parse_one("tapdisk:colo:192.0.2.2:9000:/srv/img", EINVAL,
		  DIAG("no vdev specified", "tapdisk:colo:192.0.2.2:9000:/srv/img"), &d);
	libxl_device_disk_dispose(&d);

	/* "colo" alone is xl's own flag for qdisk COLO, not our target. */
	parse_one("colo,vdev=xvda,target=/srv/img", 0, "", &d);
	ck_assert(!libxl_defbool_is_default(d.colo_enable) && libxl_defbool_val(d.colo_enable));
	ck_assert_pstr_eq(d.pdev_path, "/srv/img");
	libxl_device_disk_dispose(&d);

	/* The keyword form takes IPv6 in brackets. */
	parse_one("vdev=xvda,script=block-colo,target=colo:[2001:db8::2]:9000:/srv/img", 0, "", &d);
	ck_assert_pstr_eq(d.pdev_path, "colo:[2001:db8::2]:9000:/srv/img");
	libxl_device_disk_dispose(&d);
}
END_TEST

static Suite *xl_config_suite(void)
{
	Suite *s = suite_create("xl-config");
	TCase *tc;

	tc = tcase_create("examples");
	tcase_add_loop_test(tc, test_example, 0, NR_EXAMPLES);
	tcase_add_test(tc, test_no_untested_example);
	tcase_add_loop_test(tc, test_targets_split, 0, NR_EXAMPLES);
	tcase_add_test(tc, test_split_refuses);
	suite_add_tcase(s, tc);

	tc = tcase_create("forms");
	tcase_add_test(tc, test_short_form_without_script);
	tcase_add_test(tc, test_backendtype_tap);
	tcase_add_test(tc, test_wrong_forms);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	dir = getenv("XL_CONFIG_EXAMPLES");
	if (!dir || !*dir) {
		fprintf(stderr, "XL_CONFIG_EXAMPLES is not set: SKIP\n");
		return 77;
	}
	sr = srunner_create(xl_config_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

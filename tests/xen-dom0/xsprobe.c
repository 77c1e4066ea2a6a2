/*
 * xsprobe: libxenstore calls whose errno and watch events may differ between Xen's C xenstored
 * and the project's test daemon (tests/xenstored).  Built by tests/xen-dom0/run.sh on the
 * host, run in dom0 against the real xenstored and on the host against colo-test-xenstored;
 * run.sh diffs the outputs.  Prints "XSPROBE <name>: <result>" lines; results are "ok",
 * "ok <value>" or the errno's name.  Uses /local/domain/0/xsprobe; needs no other domain.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xenstore.h>

#define B "/local/domain/0/xsprobe"

static const char *ename(int e)
{
	switch (e) {
	case ENOENT: return "ENOENT";
	case EINVAL: return "EINVAL";
	case EACCES: return "EACCES";
	case EEXIST: return "EEXIST";
	case EISDIR: return "EISDIR";
	case ENOSPC: return "ENOSPC";
	case EIO: return "EIO";
	case ENOTEMPTY: return "ENOTEMPTY";
	case ENOSYS: return "ENOSYS";
	case EROFS: return "EROFS";
	case EBUSY: return "EBUSY";
	case EAGAIN: return "EAGAIN";
	case EISCONN: return "EISCONN";
	case E2BIG: return "E2BIG";
	case ENOMEM: return "ENOMEM";
	case EPERM: return "EPERM";
	case EBADF: return "EBADF";
	case ENOTCONN: return "ENOTCONN";
	case EDQUOT: return "EDQUOT";
	case ENOTDIR: return "ENOTDIR";
	default: {
		static char buf[32];
		snprintf(buf, sizeof(buf), "errno %d", e);
		return buf;
	}
	}
}

static void res(const char *name, bool ok, const char *fmt, ...)
{
	va_list ap;
	int e = errno;

	printf("XSPROBE %s: ", name);
	if (!ok) {
		printf("%s\n", ename(e));
		return;
	}
	printf("ok");
	if (fmt) {
		putchar(' ');
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
	}
	putchar('\n');
}

static void rd(struct xs_handle *h, xs_transaction_t t, const char *name, const char *path)
{
	unsigned int len = 0;
	char *v = xs_read(h, t, path, &len);

	res(name, v != NULL, "'%.40s' len=%u", v ? v : "", len);
	free(v);
}

static void wr(struct xs_handle *h, xs_transaction_t t, const char *name, const char *path,
	       const char *val)
{
	res(name, xs_write(h, t, path, val, strlen(val)), NULL);
}

static void dir(struct xs_handle *h, xs_transaction_t t, const char *name, const char *path)
{
	unsigned int n = 0;
	char **d = xs_directory(h, t, path, &n);

	res(name, d != NULL, "%u entries", n);
	free(d);
}

/* Prints the watch events that arrive within MS milliseconds, in order. */
static void events_q(struct xs_handle *h, const char *name, int ms, bool quiet)
{
	struct pollfd pfd = { .fd = xs_fileno(h), .events = POLLIN };
	unsigned int n;
	char **ev;
	int count = 0;

	while (poll(&pfd, 1, ms) > 0) {
		ev = xs_read_watch(h, &n);
		if (!ev)
			break;
		if (!quiet)
			printf("XSPROBE %s: event %s token %s\n", name, ev[XS_WATCH_PATH],
			       ev[XS_WATCH_TOKEN]);
		free(ev);
		count++;
		ms = 300;
	}
	printf("XSPROBE %s: %d events\n", name, count);
}

static void events(struct xs_handle *h, const char *name, int ms)
{
	events_q(h, name, ms, false);
}

int main(void)
{
	struct xs_handle *h = xs_open(0), *h2 = xs_open(0);
	xs_transaction_t t, t2, ts[300];
	struct xs_permissions perms[2], *gp;
	unsigned int n, i;
	char path[4200], *big, *s;
	bool ok;

	if (!h || !h2) {
		perror("xs_open");
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	xs_rm(h, XBT_NULL, B);
	res("mkdir", xs_mkdir(h, XBT_NULL, B), NULL);
	res("mkdir-again", xs_mkdir(h, XBT_NULL, B), NULL);

	/* reads, writes, paths */
	rd(h, XBT_NULL, "read-missing", B "/nope");
	rd(h, XBT_NULL, "read-missing-parent", B "/nope/deeper");
	rd(h, XBT_NULL, "read-dir", B);
	rd(h, XBT_NULL, "read-relative-missing", "xsprobe/nope");
	wr(h, XBT_NULL, "write-relative", "xsprobe/rel", "r");
	rd(h, XBT_NULL, "read-absolute-of-relative", B "/rel");
	wr(h, XBT_NULL, "write-bad-char", B "/bad path", "x");
	wr(h, XBT_NULL, "write-trailing-slash", B "/x/", "x");
	wr(h, XBT_NULL, "write-double-slash", B "//x", "x");
	wr(h, XBT_NULL, "write-no-slash-root", "/", "x");
	wr(h, XBT_NULL, "write-at-path", "@foo", "x");
	snprintf(path, sizeof(path), B "/%0*d", 3072 - (int)strlen(B "/"), 0);
	wr(h, XBT_NULL, "write-path-3072", path, "x");
	snprintf(path, sizeof(path), B "/%0*d", 3073 - (int)strlen(B "/"), 0);
	wr(h, XBT_NULL, "write-path-3073", path, "x");
	snprintf(path, sizeof(path), "xsprobe/%0*d", 2048 - (int)strlen("xsprobe/"), 0);
	wr(h, XBT_NULL, "write-relative-2048", path, "x");
	res("rm-missing-leaf", xs_rm(h, XBT_NULL, B "/nope"), NULL);
	res("rm-missing-parent", xs_rm(h, XBT_NULL, B "/nope/deeper"), NULL);
	dir(h, XBT_NULL, "dir-of-value", B "/rel");
	dir(h, XBT_NULL, "dir-missing", B "/nope");

	/* a directory too large for one reply: DIRECTORY_PART */
	t = xs_transaction_start(h);
	for (i = 0; i < 300; i++) {
		snprintf(path, sizeof(path), B "/big/child-with-a-rather-long-name-number-%u", i);
		if (!xs_write(h, t, path, "x", 1))
			break;
	}
	res("write-300-in-txn", i == 300, "%u", i);
	res("commit-300", xs_transaction_end(h, t, false), NULL);
	dir(h, XBT_NULL, "dir-300", B "/big");
	t = xs_transaction_start(h);
	dir(h, t, "dir-300-in-txn", B "/big");
	xs_transaction_end(h, t, true);

	/* permissions */
	perms[0].id = 0;
	perms[0].perms = XS_PERM_NONE;
	perms[1].id = 7;
	perms[1].perms = XS_PERM_READ;
	res("set-perms-n0", xs_set_permissions(h, XBT_NULL, B, perms, 1), NULL);
	res("set-perms-absent-dom", xs_set_permissions(h, XBT_NULL, B "/rel", perms, 2), NULL);
	gp = xs_get_permissions(h, XBT_NULL, B "/rel", &n);
	res("get-perms-absent-dom", gp != NULL, "%u perms%s", n,
	    gp && n == 2 && gp[1].id == 7 ? ", dom 7 kept" : "");
	free(gp);
	wr(h, XBT_NULL, "write-child-of-n0", B "/child", "c");
	gp = xs_get_permissions(h, XBT_NULL, B "/child", &n);
	res("get-perms-child", gp != NULL, "%u perms, owner %u, perm %d", n, gp ? gp[0].id : 0,
	    gp ? (int)gp[0].perms : -1);
	free(gp);
	gp = xs_get_permissions(h, XBT_NULL, B "/nope", &n);
	res("get-perms-missing", gp != NULL, NULL);
	free(gp);
	res("set-perms-missing", xs_set_permissions(h, XBT_NULL, B "/nope", perms, 1), NULL);
	s = xs_get_domain_path(h, 7);
	res("domain-path-7", s != NULL, "%s", s ? s : "");
	free(s);
	res("introduced-7", true, "%d", (int)xs_is_domain_introduced(h, 7));
	res("introduced-0", true, "%d", (int)xs_is_domain_introduced(h, 0));

	/* transactions */
	wr(h, XBT_NULL, "txn-setup", B "/t/x", "0");
	wr(h, XBT_NULL, "txn-setup-z", B "/t/z", "0");
	t = xs_transaction_start(h);
	rd(h, t, "txn-read-x", B "/t/x");
	wr(h2, XBT_NULL, "txn-other-writes-x", B "/t/x", "1");
	wr(h, t, "txn-write-y", B "/t/y", "1");
	res("txn-commit-after-read-node-changed", xs_transaction_end(h, t, false), NULL);
	t = xs_transaction_start(h);
	rd(h, t, "txn-read-x2", B "/t/x");
	wr(h2, XBT_NULL, "txn-other-writes-z", B "/t/z", "1");
	wr(h, t, "txn-write-y2", B "/t/y", "2");
	res("txn-commit-after-unrelated-change", xs_transaction_end(h, t, false), NULL);
	t = xs_transaction_start(h);
	rd(h, t, "txn-read-missing", B "/t/m");
	wr(h2, XBT_NULL, "txn-other-creates-m", B "/t/m", "1");
	wr(h, t, "txn-write-y3", B "/t/y", "3");
	res("txn-commit-after-missing-read-created", xs_transaction_end(h, t, false), NULL);
	t = xs_transaction_start(h);
	wr(h, t, "txn-create-c1", B "/t/c1", "1");
	wr(h2, XBT_NULL, "txn-other-creates-sibling", B "/t/c2", "1");
	res("txn-commit-after-sibling-created", xs_transaction_end(h, t, false), NULL);
	t = xs_transaction_start(h);
	dir(h, t, "txn-dir", B "/t");
	wr(h2, XBT_NULL, "txn-other-creates-sibling2", B "/t/c3", "1");
	wr(h, t, "txn-write-y4", B "/t/y", "4");
	res("txn-commit-after-listed-dir-changed", xs_transaction_end(h, t, false), NULL);
	t = xs_transaction_start(h);
	t2 = xs_transaction_start(h2);
	rd(h, t, "txn2-read-x", B "/t/x");
	rd(h2, t2, "txn2-read-x-other", B "/t/x");
	wr(h, t, "txn2-write-x", B "/t/x", "a");
	wr(h2, t2, "txn2-write-x-other", B "/t/x", "b");
	res("txn2-commit-first", xs_transaction_end(h, t, false), NULL);
	res("txn2-commit-second", xs_transaction_end(h2, t2, false), NULL);
	rd(h, XBT_NULL, "txn2-result", B "/t/x");
	t = xs_transaction_start(h);
	wr(h, t, "txn-own-write", B "/t/own", "o");
	rd(h, t, "txn-read-own-write", B "/t/own");
	rd(h2, XBT_NULL, "txn-other-sees-uncommitted", B "/t/own");
	xs_transaction_end(h, t, true);
	rd(h, XBT_NULL, "txn-aborted-write", B "/t/own");
	res("txn-end-bogus", xs_transaction_end(h, (xs_transaction_t)123456, false), NULL);
	rd(h, (xs_transaction_t)123456, "txn-read-bogus", B "/t/x");
	for (i = 0; i < 300; i++) {
		ts[i] = xs_transaction_start(h);
		if (ts[i] == XBT_NULL)
			break;
	}
	res("txn-open-300", i == 300, "%u", i);
	if (i < 300)
		res("txn-open-300-limit", false, NULL);
	n = i;
	for (i = 0; i < n; i++)
		xs_transaction_end(h, ts[i], true);

	/* watches */
	res("watch", xs_watch(h, B "/w", "tok"), NULL);
	events(h, "watch-registered-absent", 500);
	res("watch-dup", xs_watch(h, B "/w", "tok"), NULL);
	events(h, "watch-dup-events", 300);
	res("watch-dup-other-token", xs_watch(h, B "/w", "tok2"), NULL);
	events(h, "watch-other-token-events", 300);
	res("unwatch-tok2", xs_unwatch(h, B "/w", "tok2"), NULL);
	wr(h2, XBT_NULL, "watch-write-child", B "/w/a/b", "1");
	events(h, "watch-child-created", 500);
	wr(h2, XBT_NULL, "watch-same-value", B "/w/a/b", "1");
	events(h, "watch-same-value", 500);
	t = xs_transaction_start(h2);
	wr(h2, t, "watch-txn-write", B "/w/a/b", "2");
	events(h, "watch-before-commit", 300);
	xs_transaction_end(h2, t, false);
	events(h, "watch-after-commit", 500);
	t = xs_transaction_start(h2);
	wr(h2, t, "watch-txn-write-abort", B "/w/a/b", "3");
	xs_transaction_end(h2, t, true);
	events(h, "watch-after-abort", 300);
	res("watch-rm-parent", xs_rm(h2, XBT_NULL, B "/w"), NULL);
	events(h, "watch-parent-removed", 500);
	res("watch-rm-missing-under-watch", xs_rm(h2, XBT_NULL, B "/w/zz"), NULL);
	events(h, "watch-rm-missing", 300);
	wr(h2, XBT_NULL, "watch-write-parent-of-watched", B "/x", "1");
	events(h, "watch-write-unrelated", 300);
	res("set-perms-watched", xs_set_permissions(h2, XBT_NULL, B, perms, 1), NULL);
	events(h, "watch-perms-of-parent", 300);
	res("unwatch", xs_unwatch(h, B "/w", "tok"), NULL);
	res("unwatch-again", xs_unwatch(h, B "/w", "tok"), NULL);
	res("unwatch-never", xs_unwatch(h, B "/never", "t"), NULL);
	res("watch-relative", xs_watch(h, "xsprobe/rw", "rtok"), NULL);
	events(h, "watch-relative-registered", 500);
	wr(h2, XBT_NULL, "watch-relative-write", B "/rw", "1");
	events(h, "watch-relative-event", 500);
	xs_unwatch(h, "xsprobe/rw", "rtok");
	res("watch-release-domain", xs_watch(h, "@releaseDomain", "rel"), NULL);
	events(h, "watch-release-domain-registered", 500);
	xs_unwatch(h, "@releaseDomain", "rel");
	res("watch-bad-path", xs_watch(h, B "/bad path", "b"), NULL);
	for (i = 0, ok = true; i < 300 && ok; i++) {
		snprintf(path, sizeof(path), B "/many/%u", i);
		ok = xs_watch(h2, path, "m");
	}
	res("watch-300", ok, "%u", i);
	if (!ok)
		res("watch-300-limit", false, NULL);
	events_q(h2, "watch-300-events", 500, true);

	/*
	 * Values at the payload limit last: through /dev/xen/xenbus a rejected write leaves the
	 * handle unusable (EBADF afterwards), so the cleanup uses a new one.
	 */
	big = malloc(5000);
	memset(big, 'a', 5000);
	big[4096 - strlen(B "/v") - 1] = '\0';
	wr(h, XBT_NULL, "write-value-fills-payload", B "/v", big);
	memset(big, 'a', 5000);
	big[4096 - strlen(B "/v")] = '\0';
	wr(h, XBT_NULL, "write-value-1-over-payload", B "/v", big);
	memset(big, 'a', 5000);
	big[4999] = '\0';
	wr(h, XBT_NULL, "write-value-5000", B "/v", big);
	xs_close(h);
	h = xs_open(0);
	res("reopen-after-big-values", h != NULL, NULL);
	if (!h)
		return 0;
	rd(h, XBT_NULL, "read-after-big-values", B "/rel");
	res("rm-all", xs_rm(h, XBT_NULL, B), NULL);
	xs_close(h2);
	xs_close(h);
	return 0;
}

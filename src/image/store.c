/* The store's root, its lock, and the file helpers every change uses (atomic writes, the undo list). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>

#include "image/internal.h"
#include "lib/util.h"

const char *img_default_root(const char *cli_root)
{
	if (cli_root && *cli_root)
		return cli_root;
	const char *env = getenv("VIRTUS_ROOT");
	return env && *env ? env : IMG_DEFAULT_ROOT;
}

char *img_path(const struct img_store *s, const char *fmt, ...)
{
	char *rel = NULL, *out = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&rel, fmt, ap);
	va_end(ap);
	if (n < 0)
		return NULL;
	if (asprintf(&out, "%s/%s", s->root, rel) < 0)
		out = NULL;
	free(rel);
	return out;
}

static int mkdir_p(const char *path, vt_err *err)
{
	cleanup_free char *copy = strdup(path);
	if (!copy)
		return vt_fail_errno(err, ENOMEM, "creating %s", path);
	for (char *p = copy + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(copy, 0755) < 0 && errno != EEXIST)
			return vt_fail_errno(err, errno, "cannot create %s", copy);
		*p = '/';
	}
	if (mkdir(copy, 0755) < 0 && errno != EEXIST)
		return vt_fail_errno(err, errno, "cannot create %s", copy);
	return 0;
}

static int make_layout(struct img_store *s, vt_err *err)
{
	static const char *const dirs[] = { "image/blobs/sha256", "layers/l", "containers", "tmp" };
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
		cleanup_free char *p = img_path(s, "%s", dirs[i]);
		if (!p || mkdir_p(p, err) < 0)
			return p ? -1 : vt_fail_errno(err, ENOMEM, "store paths");
	}
	cleanup_free char *layout = img_path(s, "image/oci-layout");
	cleanup_free char *index = img_path(s, "image/index.json");
	if (!layout || !index)
		return vt_fail_errno(err, ENOMEM, "store paths");
	static const char layout_json[] = "{\"imageLayoutVersion\":\"1.0.0\"}";
	static const char index_json[] = "{\"schemaVersion\":2,\"mediaType\":\"" MT_OCI_INDEX "\",\"manifests\":[]}";
	if (access(layout, F_OK) < 0 && img_write_atomic(layout, layout_json, strlen(layout_json), err) < 0)
		return -1;
	if (access(index, F_OK) < 0 && img_write_atomic(index, index_json, strlen(index_json), err) < 0)
		return -1;
	return 0;
}

/* tmp/ holds what loads extract and saves compress, outside the exclusive lock: only a day-old entry is
 * surely abandoned. */
static void remove_old_tmp(struct img_store *s)
{
	cleanup_free char *pattern = img_path(s, "tmp/*");
	glob_t g;
	if (!pattern || glob(pattern, GLOB_NOSORT, NULL, &g) != 0)
		return;
	time_t day_ago = time(NULL) - 86400;
	for (size_t k = 0; k < g.gl_pathc; k++) {
		struct stat st;
		if (lstat(g.gl_pathv[k], &st) == 0 && st.st_mtime < day_ago)
			img_rm_rf(g.gl_pathv[k]);
	}
	globfree(&g);
}

/* Temp files of a command that died (a crash or a kill) under the exclusive lock: nobody else can be
 * writing them now. (tmp/load-* is written before the lock is taken, so it is left alone.) */
static void remove_stale(struct img_store *s)
{
	static const char *const globs[] = { "layers/.tmp-*", "layers/.rm-*", "image/blobs/.tmp-*",
					     "image/index.json.tmp-*" };
	for (size_t i = 0; i < ARRAY_SIZE(globs); i++) {
		cleanup_free char *pattern = img_path(s, "%s", globs[i]);
		glob_t g;
		if (!pattern || glob(pattern, GLOB_NOSORT, NULL, &g) != 0)
			continue;
		for (size_t k = 0; k < g.gl_pathc; k++)
			img_rm_rf(g.gl_pathv[k]);
		globfree(&g);
	}
	remove_old_tmp(s);
}

/* Create the layout (a change: exclusive lock) and clear what a dead command left, when nobody holds the
 * lock; when somebody does, the layout is there already unless its creator is still at it, so wait then. */
static int tidy(struct img_store *s, vt_err *err)
{
	cleanup_free char *index = img_path(s, "image/index.json");
	if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		if (index && access(index, F_OK) == 0)
			return 0;
		if (img_store_lock(s, true, err) < 0)
			return -1;
	} else {
		s->lock_depth = 1;
		s->lock_exclusive = true;
	}
	remove_stale(s);
	int rc = make_layout(s, err);
	img_store_unlock(s);
	return rc;
}

int img_store_open(const char *root, struct img_store **out, vt_err *err)
{
	if (mkdir_p(root, err) < 0)
		return vt_err_prefix(err, "image store");
	struct img_store *s = calloc(1, sizeof(*s));
	if (!s)
		return vt_fail_errno(err, ENOMEM, "image store");
	s->lock_fd = -1;
	s->root = realpath(root, NULL);
	if (!s->root) {
		vt_fail_errno(err, errno, "image store %s", root);
		img_store_close(s);
		return -1;
	}
	cleanup_free char *lock = img_path(s, "lock");
	s->lock_fd = lock ? open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600) : -1;
	if (s->lock_fd < 0) {
		vt_fail_errno(err, errno, "cannot open the store lock %s", lock ? lock : root);
		img_store_close(s);
		return -1;
	}
	if (tidy(s, err) < 0) {
		vt_err_prefix(err, "image store %s", s->root);
		img_store_close(s);
		return -1;
	}
	*out = s;
	return 0;
}

void img_store_close(struct img_store *s)
{
	if (!s)
		return;
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	free(s->root);
	free(s);
}

const char *img_store_root(const struct img_store *s)
{
	return s->root;
}

int img_store_lock(struct img_store *s, bool exclusive, vt_err *err)
{
	if (s->lock_depth > 0 && (s->lock_exclusive || !exclusive)) {
		s->lock_depth++;
		return 0;
	}
	while (flock(s->lock_fd, exclusive ? LOCK_EX : LOCK_SH) < 0)
		if (errno != EINTR)
			return vt_fail_errno(err, errno, "cannot lock the image store");
	s->lock_exclusive = exclusive;
	s->lock_depth++;
	return 0;
}

void img_store_unlock(struct img_store *s)
{
	if (s->lock_depth > 0 && --s->lock_depth == 0)
		flock(s->lock_fd, LOCK_UN);
}

/* --- undo list --- */

int img_txn_add(struct img_txn *t, const char *path)
{
	if (!t)
		return 0;
	if (t->n == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 16;
		char **p = realloc(t->paths, cap * sizeof(*p));
		if (!p)
			return -1;
		t->paths = p;
		t->cap = cap;
	}
	t->paths[t->n] = strdup(path);
	if (!t->paths[t->n])
		return -1;
	t->n++;
	return 0;
}

void img_txn_rollback(struct img_txn *t)
{
	for (size_t i = t->n; i-- > 0;)
		img_rm_rf(t->paths[i]);
	img_txn_done(t);
}

void img_txn_done(struct img_txn *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->paths[i]);
	free(t->paths);
	t->paths = NULL;
	t->n = t->cap = 0;
}

/* --- file helpers --- */

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st, (void)ftw;
	if (type == FTW_DP)
		return rmdir(path) < 0 && errno != ENOENT ? 0 : 0;
	unlink(path);
	return 0;
}

int img_rm_rf(const char *path)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISDIR(st.st_mode))
		return unlink(path);
	return nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

int img_write_atomic(const char *path, const void *data, size_t len, vt_err *err)
{
	cleanup_free char *tmp = NULL;
	if (asprintf(&tmp, "%s.tmp-XXXXXX", path) < 0)
		return vt_fail_errno(err, ENOMEM, "writing %s", path);
	cleanup_close int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return vt_fail_errno(err, errno, "cannot create %s", tmp);
	if (fchmod(fd, 0644) < 0 || write_all(fd, data, len) < 0 || fsync(fd) < 0) {
		int e = errno;
		unlink(tmp);
		return vt_fail_errno(err, e, "cannot write %s", path);
	}
	if (rename(tmp, path) < 0) {
		int e = errno;
		unlink(tmp);
		return vt_fail_errno(err, e, "cannot rename %s", tmp);
	}
	return 0;
}

int img_copy_fd(int in, int out, vt_err *err)
{
	char buf[128 * 1024];
	for (;;) {
		ssize_t n = read(in, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return vt_fail_errno(err, errno, "read");
		if (n == 0)
			return 0;
		if (write_all(out, buf, (size_t)n) < 0)
			return vt_fail_errno(err, errno, "write");
	}
}

const char *img_host_arch(void)
{
	struct utsname u;
	if (uname(&u) < 0)
		return "amd64";
	if (!strcmp(u.machine, "x86_64"))
		return "amd64";
	if (!strcmp(u.machine, "aarch64"))
		return "arm64";
	if (!strcmp(u.machine, "i686") || !strcmp(u.machine, "i386"))
		return "386";
	return "amd64";
}

void img_now_rfc3339(char out[40])
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char base[32];
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, 40, "%.19s.%09uZ", base, (unsigned)(ts.tv_nsec % 1000000000));
}

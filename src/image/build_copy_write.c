/* COPY and ADD, the writing side: a child process chroots into the mounted image and writes there, so every
 * destination path (and every symlink the image has on the way to it) resolves inside the image, never on
 * the host. The context stays reachable through a directory fd opened before the chroot.
 *
 * As docker: a directory source brings its contents; a file goes to DEST/NAME when DEST ends with '/' or is
 * a directory, else to DEST; missing parents are created (0755, root). Owners are 0:0 unless --chown, modes
 * come from the source unless --chmod, mtimes are kept. ADD unpacks a source that is a tar archive
 * (uncompressed, gzip, bzip2, xz or zstd) into DEST with libarchive. */
#include "image/archive_api.h"
#include "image/build_copy.h"
#include "lib/util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>

struct writer {
	const struct build_copy *c;
	int ctxfd;
	char target[PATH_MAX];  /* where the current source's "" goes */
	char buf[128 * 1024];
};

int build_mkdir_p(const char *path, vt_err *err)
{
	char p[PATH_MAX];
	if (snprintf(p, sizeof(p), "%s", path) >= (int)sizeof(p))
		return vt_fail(err, "%s: path too long", path);
	for (char *s = p + 1;; s++) {
		bool end = !*s;
		if (*s != '/' && !end)
			continue;
		*s = 0;
		if (mkdir(p, 0755) && errno != EEXIST)
			return vt_fail_errno(err, errno, "cannot create %s in the image", p);
		if (end)
			return 0;
		*s = '/';
	}
}

static int mkdir_parent(const char *path, vt_err *err)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s", path);
	char *slash = strrchr(p, '/');
	if (!slash || slash == p)
		return 0;
	*slash = 0;
	return build_mkdir_p(p, err);
}

static bool is_dir(const char *path)
{
	struct stat st;
	return !stat(path, &st) && S_ISDIR(st.st_mode);
}

static uid_t owner_uid(const struct writer *w) { return w->c->chown ? w->c->uid : 0; }
static gid_t owner_gid(const struct writer *w) { return w->c->chown ? w->c->gid : 0; }
static mode_t mode_of(const struct writer *w, const struct stat *st)
{
	return w->c->chmod ? w->c->mode : st->st_mode & 07777;
}

static int set_attrs(const struct writer *w, const char *path, const struct copy_entry *e, vt_err *err)
{
	if (lchown(path, owner_uid(w), owner_gid(w)))
		return vt_fail_errno(err, errno, "cannot chown %s", path);
	if (!S_ISLNK(e->st.st_mode) && chmod(path, mode_of(w, &e->st)))
		return vt_fail_errno(err, errno, "cannot chmod %s", path);
	struct timespec t[2] = { e->st.st_atim, e->st.st_mtim };
	if (utimensat(AT_FDCWD, path, t, AT_SYMLINK_NOFOLLOW))
		return vt_fail_errno(err, errno, "cannot set the times of %s", path);
	return 0;
}

static int copy_bytes(struct writer *w, int in, int out, const char *path, vt_err *err)
{
	for (;;) {
		ssize_t n = copy_file_range(in, NULL, out, NULL, 1 << 30, 0);
		if (n == 0)
			return 0;
		if (n > 0)
			continue;
		if (errno == EINTR)
			continue;
		if (errno != EXDEV && errno != EINVAL && errno != EOPNOTSUPP && errno != ENOSYS)
			return vt_fail_errno(err, errno, "cannot write %s", path);
		break; /* not between these file systems: plain read/write from where it stopped */
	}
	ssize_t n;
	while ((n = read(in, w->buf, sizeof(w->buf))) > 0)
		if (write_all(out, w->buf, (size_t)n))
			return vt_fail_errno(err, errno, "cannot write %s", path);
	return n < 0 ? vt_fail_errno(err, errno, "cannot read %s", path) : 0;
}

/* Make room for a non-directory at path: what is there (not a directory) goes. */
static int clear_path(const char *path, vt_err *err)
{
	struct stat st;
	if (lstat(path, &st))
		return errno == ENOENT ? 0 : vt_fail_errno(err, errno, "cannot stat %s", path);
	if (S_ISDIR(st.st_mode))
		return vt_fail(err, "cannot replace the directory %s with a file", path);
	if (unlink(path))
		return vt_fail_errno(err, errno, "cannot replace %s", path);
	return 0;
}

static int write_node(struct writer *w, const char *path, const struct copy_entry *e, vt_err *err)
{
	mode_t type = e->st.st_mode & S_IFMT;
	if (type == S_IFREG) {
		cleanup_close int in = copy_entry_open(e, err);
		if (in < 0)
			return -1;
		cleanup_close int out = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (out < 0)
			return vt_fail_errno(err, errno, "cannot create %s in the image", path);
		return copy_bytes(w, in, out, path, err);
	}
	if (type == S_IFLNK) {
		if (copy_entry_readlink(e, w->buf, sizeof(w->buf), err))
			return -1;
		if (symlink(w->buf, path))
			return vt_fail_errno(err, errno, "cannot create the symlink %s in the image", path);
		return 0;
	}
	if (mknod(path, e->st.st_mode & (S_IFMT | 07777), e->st.st_rdev))
		return vt_fail_errno(err, errno, "cannot create %s in the image", path);
	return 0;
}

static int make_dir(const char *path, vt_err *err)
{
	if (!mkdir(path, 0700))
		return 0;
	int e = errno;
	if (e == EEXIST && is_dir(path))
		return 0;
	if ((e == ENOENT && mkdir_parent(path, err)) || (e == EEXIST && clear_path(path, err)))
		return -1;
	if ((e == ENOENT || e == EEXIST) && !mkdir(path, 0700))
		return 0;
	return vt_fail_errno(err, errno, "cannot create %s in the image", path);
}

static int write_dir(struct writer *w, const char *path, const struct copy_entry *e, vt_err *err)
{
	if (!*e->sub) {
		/* The destination of a directory source: created if missing, its metadata kept if it exists. */
		bool existed = is_dir(path);
		if (build_mkdir_p(path, err))
			return -1;
		if (!existed && w->c->chown && chown(path, owner_uid(w), owner_gid(w)))
			return vt_fail_errno(err, errno, "cannot chown %s", path);
		return 0;
	}
	if (make_dir(path, err))
		return -1;
	if (lchown(path, owner_uid(w), owner_gid(w)) || chmod(path, mode_of(w, &e->st)))
		return vt_fail_errno(err, errno, "cannot set the owner and mode of %s", path);
	return 0;
}

/* ---- ADD of an archive ---- */

static struct archive *open_archive(int fd)
{
	struct archive *a = archive_read_new();
	if (!a)
		return NULL;
	archive_read_support_filter_gzip(a);
	archive_read_support_filter_bzip2(a);
	archive_read_support_filter_xz(a);
	archive_read_support_filter_zstd(a);
	archive_read_support_format_tar(a);
	if (archive_read_open_fd(a, fd, 64 * 1024) != ARCHIVE_OK) {
		archive_read_free(a);
		return NULL;
	}
	return a;
}

/* "/a/./b" or "./a" -> "a/b" under dir. False for the archive's "." itself. */
static bool rebase(const char *dir, const char *name, char *out, size_t size)
{
	while (*name == '/' || (name[0] == '.' && name[1] == '/'))
		name += name[0] == '/' ? 1 : 2;
	if (!*name || !strcmp(name, "."))
		return false;
	return snprintf(out, size, "%s/%s", strcmp(dir, "/") ? dir : "", name) < (int)size;
}

static int extract_entry(struct writer *w, struct archive *in, struct archive *out, struct archive_entry *ae,
			 vt_err *err)
{
	char path[PATH_MAX];
	if (!rebase(w->target, archive_entry_pathname(ae), path, sizeof(path)))
		return archive_read_data_skip(in) == ARCHIVE_OK ? 0 : vt_fail(err, "%s", archive_error_string(in));
	archive_entry_set_pathname(ae, path);
	const char *link = archive_entry_hardlink(ae);
	char link_path[PATH_MAX];
	if (link && rebase(w->target, link, link_path, sizeof(link_path)))
		archive_entry_set_hardlink(ae, link_path);
	if (w->c->chown) {
		archive_entry_set_uid(ae, w->c->uid);
		archive_entry_set_gid(ae, w->c->gid);
	}
	if (w->c->chmod)
		archive_entry_set_perm(ae, w->c->mode);
	if (archive_write_header(out, ae) < ARCHIVE_WARN)
		return vt_fail(err, "%s", archive_error_string(out));
	const void *buf;
	size_t len;
	la_int64_t off;
	int r;
	while ((r = archive_read_data_block(in, &buf, &len, &off)) == ARCHIVE_OK)
		if (archive_write_data_block(out, buf, len, off) < ARCHIVE_WARN)
			return vt_fail(err, "%s", archive_error_string(out));
	if (r != ARCHIVE_EOF)
		return vt_fail(err, "%s", archive_error_string(in));
	return archive_write_finish_entry(out) < ARCHIVE_WARN ? vt_fail(err, "%s", archive_error_string(out)) : 0;
}

static int extract_rest(struct writer *w, struct archive *in, struct archive_entry *first, vt_err *err)
{
	struct archive *out = archive_write_disk_new();
	if (!out)
		return vt_fail_errno(err, ENOMEM, "ADD");
	archive_write_disk_set_options(out, ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_OWNER |
						    ARCHIVE_EXTRACT_XATTR | ARCHIVE_EXTRACT_SECURE_NODOTDOT |
						    ARCHIVE_EXTRACT_UNLINK);
	struct archive_entry *ae = first;
	int rc = 0, r = ARCHIVE_OK;
	while (!rc && r == ARCHIVE_OK) {
		rc = extract_entry(w, in, out, ae, err);
		r = rc ? ARCHIVE_OK : archive_read_next_header(in, &ae);
	}
	if (!rc && r != ARCHIVE_EOF)
		rc = vt_fail(err, "%s", archive_error_string(in));
	if (archive_write_close(out) != ARCHIVE_OK && !rc)
		rc = vt_fail(err, "%s", archive_error_string(out));
	archive_write_free(out);
	return rc;
}

/* ADD of a regular file: unpacked if it is a tar archive. *done false: not an archive, copy it as a file. */
static int try_unpack(struct writer *w, const struct copy_entry *e, bool *done, vt_err *err)
{
	*done = false;
	cleanup_close int fd = copy_entry_open(e, err);
	if (fd < 0)
		return -1;
	struct archive *in = open_archive(fd);
	struct archive_entry *first;
	if (!in || archive_read_next_header(in, &first) != ARCHIVE_OK) {
		if (in)
			archive_read_free(in);
		/* The fd shares its offset with the entry's: rewind for the plain copy. */
		if (lseek(fd, 0, SEEK_SET) < 0)
			return vt_fail_errno(err, errno, "cannot read %s", e->rel);
		return 0;
	}
	*done = true;
	int rc = build_mkdir_p(w->target, err) ?: extract_rest(w, in, first, err);
	archive_read_free(in);
	return rc ? vt_err_prefix(err, "ADD: unpacking %s", e->rel) : 0;
}

/* ---- visiting ---- */

/* Where the source's "" goes: a directory's contents or an archive's go to dest itself; a file goes to
 * DEST/NAME when dest ends with '/' or is a directory, else to dest. */
static int choose_target(struct writer *w, const struct copy_entry *e, bool into_dest, vt_err *err)
{
	const char *dest = w->c->dest;
	bool into = !into_dest && (w->c->dest_is_dir || is_dir(dest));
	int n = into ? snprintf(w->target, sizeof(w->target), "%s%s%s", dest, dest[strlen(dest) - 1] == '/' ? "" : "/",
				e->name)
		     : snprintf(w->target, sizeof(w->target), "%s", dest);
	if (n < 0 || (size_t)n >= sizeof(w->target))
		return vt_fail(err, "%s: path too long", dest);
	size_t len = strlen(w->target);
	while (len > 1 && w->target[len - 1] == '/')
		w->target[--len] = 0;
	return 0;
}

/* The source itself: ADD unpacks an archive (done: nothing more to write), else the target is chosen. */
static int start_source(struct writer *w, const struct copy_entry *e, bool *done, vt_err *err)
{
	*done = false;
	bool is_dir = S_ISDIR(e->st.st_mode);
	if (w->c->unpack_archives && S_ISREG(e->st.st_mode)) {
		if (choose_target(w, e, true, err) || try_unpack(w, e, done, err))
			return -1;
		if (*done)
			return 0;
	}
	return choose_target(w, e, is_dir, err);
}

static int write_entry(void *arg, const struct copy_entry *e, vt_err *err)
{
	struct writer *w = arg;
	bool done = false;
	if (!*e->sub && !e->post && start_source(w, e, &done, err))
		return -1;
	if (done)
		return 0;
	char path[PATH_MAX];
	if (snprintf(path, sizeof(path), "%s%s%s", strcmp(w->target, "/") ? w->target : "", *e->sub ? "/" : "",
		     e->sub) >= (int)sizeof(path))
		return vt_fail(err, "%s/%s: path too long", w->target, e->sub);
	if (!*path)
		strcpy(path, "/");
	if (S_ISDIR(e->st.st_mode) && e->post)
		return *e->sub ? set_attrs(w, path, e, err) : 0;
	if (S_ISDIR(e->st.st_mode))
		return write_dir(w, path, e, err);
	if (S_ISSOCK(e->st.st_mode))
		return 0;
	if ((!*e->sub && mkdir_parent(path, err)) || clear_path(path, err))
		return -1;
	if (write_node(w, path, e, err) && !(err->errnum == ENOENT && !mkdir_parent(path, err) &&
					      !write_node(w, path, e, err)))
		return -1;
	return set_attrs(w, path, e, err);
}

struct copy_job {
	struct writer *w;
	const struct copy_sources *srcs;
};

static int copy_all(void *arg, vt_err *err)
{
	struct copy_job *job = arg;
	umask(0);
	for (size_t i = 0; i < job->srcs->n; i++)
		if (build_copy_walk(job->w->ctxfd, &job->srcs->v[i], job->w->c->ignore, write_entry, job->w, err))
			return -1;
	return 0;
}

static int reap(pid_t pid)
{
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return status;
}

static __attribute__((noreturn)) void chroot_child(const char *root_dir, int (*fn)(void *arg, vt_err *err),
						    void *arg, int report)
{
	vt_err err = { 0 };
	if (chroot(root_dir) || chdir("/"))
		vt_fail_errno(&err, errno, "cannot enter the image at %s", root_dir);
	else if (!fn(arg, &err))
		_exit(0);
	write_all(report, err.msg, strlen(err.msg));
	_exit(1);
}

int build_in_chroot(const char *root_dir, int (*fn)(void *arg, vt_err *err), void *arg, vt_err *err)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC))
		return vt_fail_errno(err, errno, "pipe");
	pid_t pid = fork();
	if (pid == 0)
		chroot_child(root_dir, fn, arg, p[1]);
	close(p[1]);
	char msg[VT_ERR_MSG_MAX] = "";
	ssize_t n = pid > 0 ? read(p[0], msg, sizeof(msg) - 1) : -1;
	close(p[0]);
	if (pid < 0)
		return vt_fail_errno(err, errno, "fork");
	if (reap(pid) == 0)
		return 0;
	return vt_fail(err, "%s", n > 0 ? msg : "the process working in the image died");
}

int build_copy_run(const struct build_copy *c, const char *root_dir, vt_err *err)
{
	struct writer *w = calloc(1, sizeof(*w));
	if (!w)
		return vt_fail_errno(err, ENOMEM, "COPY");
	w->c = c;
	w->ctxfd = open(c->context_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	struct copy_sources srcs = { 0 };
	int rc = -1;
	if (w->ctxfd < 0) {
		vt_fail_errno(err, errno, "cannot open the build context %s", c->context_dir);
	} else if (!build_copy_resolve(c, w->ctxfd, &srcs, err)) {
		struct copy_job job = { w, &srcs };
		rc = build_in_chroot(root_dir, copy_all, &job, err);
	}
	if (w->ctxfd >= 0)
		close(w->ctxfd);
	build_copy_sources_free(&srcs);
	free(w);
	return rc;
}

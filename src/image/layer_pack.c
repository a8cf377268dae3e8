/* Packing a layer: an overlayfs upper directory becomes an OCI layer tar. A whiteout (0/0 character device)
 * becomes `.wh.NAME`; an opaque directory (trusted.overlay.opaque=y) gets a `.wh..wh..opq` entry right after
 * its own, before its contents; later paths of an inode with several links become hard-link entries. Entries
 * are sorted by name and carry no access or change times, so the same tree always gives the same bytes. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include "image/archive_api.h"
#include "image/internal.h"
#include "lib/util.h"

struct seen_inode {
	dev_t dev;
	ino_t ino;
	char *path;
};

struct pack {
	struct archive *a;
	struct archive_entry *e;
	int fd;
	const char *upper;
	struct seen_inode *seen;
	size_t n_seen;
	char buf[128 * 1024];
};

static ssize_t pack_write(struct archive *a, void *opaque, const void *buf, size_t len)
{
	struct pack *p = opaque;
	if (write_all(p->fd, buf, len) < 0) {
		archive_set_error(a, errno, "cannot write the layer");
		return -1;
	}
	return (ssize_t)len;
}

static bool is_whiteout(const struct stat *st)
{
	return S_ISCHR(st->st_mode) && st->st_rdev == makedev(0, 0);
}

static bool is_opaque(const char *path)
{
	char v[2];
	return lgetxattr(path, "trusted.overlay.opaque", v, sizeof(v)) == 1 && v[0] == 'y';
}

static int add_xattrs(struct archive_entry *e, const char *path, vt_err *err)
{
	char names[8192];
	ssize_t n = llistxattr(path, names, sizeof(names));
	if (n < 0 && (errno == ENOTSUP || errno == ENODATA))
		return 0;
	if (n < 0)
		return vt_fail_errno(err, errno, "cannot list the xattrs of %s", path);
	for (char *name = names; name < names + n; name += strlen(name) + 1) {
		if (!strncmp(name, "trusted.overlay.", 16))
			continue;
		char value[65536];
		ssize_t len = lgetxattr(path, name, value, sizeof(value));
		if (len < 0)
			return vt_fail_errno(err, errno, "cannot read xattr %s of %s", name, path);
		archive_entry_xattr_add_entry(e, name, value, (size_t)len);
	}
	return 0;
}

static void fill_entry(struct archive_entry *e, const char *name, const struct stat *st)
{
	archive_entry_clear(e);
	archive_entry_set_pathname(e, name);
	archive_entry_set_mode(e, st->st_mode);
	archive_entry_set_uid(e, st->st_uid);
	archive_entry_set_gid(e, st->st_gid);
	archive_entry_set_mtime(e, st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
	if (S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode))
		archive_entry_set_rdev(e, st->st_rdev);
	if (S_ISREG(st->st_mode))
		archive_entry_set_size(e, st->st_size);
}

static int write_header(struct pack *p, const char *name, vt_err *err)
{
	if (archive_write_header(p->a, p->e) < ARCHIVE_WARN)
		return vt_fail(err, "cannot pack '%s': %s", name, archive_error_string(p->a));
	return 0;
}

/* An empty regular file entry: a whiteout or the opaque marker. */
static int write_marker(struct pack *p, const char *name, const struct stat *like, vt_err *err)
{
	struct stat st = *like;
	st.st_mode = S_IFREG | 0000;
	st.st_size = 0;
	st.st_uid = st.st_gid = 0;
	fill_entry(p->e, name, &st);
	return write_header(p, name, err);
}

static int write_file_data(struct pack *p, const char *path, vt_err *err)
{
	cleanup_close int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return vt_fail_errno(err, errno, "cannot open %s", path);
	for (;;) {
		ssize_t n = read(fd, p->buf, sizeof(p->buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return vt_fail_errno(err, errno, "cannot read %s", path);
		if (n == 0)
			return 0;
		if (archive_write_data(p->a, p->buf, (size_t)n) < 0)
			return vt_fail(err, "cannot pack %s: %s", path, archive_error_string(p->a));
	}
}

/* The first path of a multiply linked inode, or NULL (and it is remembered as name). */
static const char *seen_link(struct pack *p, const struct stat *st, const char *name)
{
	for (size_t i = 0; i < p->n_seen; i++)
		if (p->seen[i].dev == st->st_dev && p->seen[i].ino == st->st_ino)
			return p->seen[i].path;
	struct seen_inode *s = realloc(p->seen, (p->n_seen + 1) * sizeof(*s));
	if (s) {
		p->seen = s;
		s[p->n_seen] = (struct seen_inode){ st->st_dev, st->st_ino, strdup(name) };
		if (s[p->n_seen].path)
			p->n_seen++;
	}
	return NULL;
}

static int pack_dir(struct pack *p, const char *rel, vt_err *err);

static int pack_node(struct pack *p, const char *name, const char *path, const struct stat *st, vt_err *err)
{
	if (S_ISSOCK(st->st_mode))
		return 0;
	fill_entry(p->e, name, st);
	const char *first = S_ISREG(st->st_mode) && st->st_nlink > 1 ? seen_link(p, st, name) : NULL;
	if (first) {
		archive_entry_set_hardlink(p->e, first);
		archive_entry_set_size(p->e, 0);
	}
	if (S_ISLNK(st->st_mode)) {
		char target[4096];
		ssize_t n = readlink(path, target, sizeof(target) - 1);
		if (n < 0)
			return vt_fail_errno(err, errno, "cannot read link %s", path);
		target[n] = '\0';
		archive_entry_set_symlink(p->e, target);
	}
	if (add_xattrs(p->e, path, err) < 0 || write_header(p, name, err) < 0)
		return -1;
	if (S_ISREG(st->st_mode) && !first && st->st_size > 0 && write_file_data(p, path, err) < 0)
		return -1;
	if (S_ISDIR(st->st_mode))
		return pack_dir(p, name, err);
	return 0;
}

static int pack_child(struct pack *p, const char *rel, const char *child, vt_err *err)
{
	cleanup_free char *name = NULL, *path = NULL;
	if (asprintf(&name, "%s%s%s", rel, *rel ? "/" : "", child) < 0 || asprintf(&path, "%s/%s", p->upper, name) < 0)
		return vt_fail_errno(err, ENOMEM, "packing");
	struct stat st;
	if (lstat(path, &st) < 0)
		return vt_fail_errno(err, errno, "cannot stat %s", path);
	if (is_whiteout(&st)) {
		cleanup_free char *wh = NULL;
		if (asprintf(&wh, "%s%s.wh.%s", rel, *rel ? "/" : "", child) < 0)
			return vt_fail_errno(err, ENOMEM, "packing");
		return write_marker(p, wh, &st, err);
	}
	return pack_node(p, name, path, &st, err);
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static int skip_dots(const struct dirent *d)
{
	return strcmp(d->d_name, ".") && strcmp(d->d_name, "..");
}

/* The contents of directory rel ("" = the upper dir), after its opaque marker if it has one. */
static int pack_dir(struct pack *p, const char *rel, vt_err *err)
{
	cleanup_free char *path = NULL;
	if (asprintf(&path, "%s%s%s", p->upper, *rel ? "/" : "", rel) < 0)
		return vt_fail_errno(err, ENOMEM, "packing");
	struct stat st;
	if (*rel && is_opaque(path) && lstat(path, &st) == 0) {
		cleanup_free char *marker = NULL;
		if (asprintf(&marker, "%s/.wh..wh..opq", rel) < 0 || write_marker(p, marker, &st, err) < 0)
			return marker ? -1 : vt_fail_errno(err, ENOMEM, "packing");
	}
	struct dirent **list;
	int n = scandir(path, &list, skip_dots, by_name);
	if (n < 0)
		return vt_fail_errno(err, errno, "cannot read %s", path);
	int rc = 0;
	for (int i = 0; i < n; i++) {
		if (rc == 0)
			rc = pack_child(p, rel, list[i]->d_name, err);
		free(list[i]);
	}
	free(list);
	return rc;
}

int img_layer_pack(const char *upper_dir, int fd, vt_err *err)
{
	struct pack *p = calloc(1, sizeof(*p));
	if (!p)
		return vt_fail_errno(err, ENOMEM, "packing");
	p->fd = fd;
	p->upper = upper_dir;
	p->a = archive_write_new();
	p->e = archive_entry_new();
	int rc = -1;
	if (!p->a || !p->e)
		vt_fail_errno(err, ENOMEM, "packing");
	else if (archive_write_set_format_pax_restricted(p->a) != ARCHIVE_OK ||
		 archive_write_open(p->a, p, NULL, pack_write, NULL) != ARCHIVE_OK)
		vt_fail(err, "packing: %s", archive_error_string(p->a));
	else
		rc = pack_dir(p, "", err);
	if (rc == 0 && archive_write_close(p->a) != ARCHIVE_OK)
		rc = vt_fail(err, "packing: %s", archive_error_string(p->a));
	if (p->a)
		archive_write_free(p->a);
	if (p->e)
		archive_entry_free(p->e);
	for (size_t i = 0; i < p->n_seen; i++)
		free(p->seen[i].path);
	free(p->seen);
	free(p);
	return rc;
}

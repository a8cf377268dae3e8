/* Unpacking a layer: a (gzip/zstd/plain) tar stream becomes layers/<diffid>/ in overlayfs form.
 *
 * Two libarchive readers are chained: `raw` decompresses the input (filters auto-detected), `tar` parses the
 * uncompressed bytes that raw hands it; on the way they are hashed (the diff id) and written to a blob, so one
 * pass over the input does everything. Entries are written by archive_write_disk relative to the temporary
 * layer directory (the process's cwd while unpacking), except whiteouts, opaque markers and hard links to lower
 * layers, which are made here with *at calls that never follow a symbolic link. The directory is renamed into
 * place only when the whole stream was good. */
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

#define WH_PREFIX ".wh."
#define WH_OPAQUE ".wh..wh..opq"

struct unpack {
	int src_fd, blob_fd, layer_fd;
	struct img_hash *compressed, *uncompressed;
	struct archive *raw, *tar, *disk;
	char *const *lowers;
	size_t n_lowers;
	bool write_failed;
	char buf[256 * 1024];
};

static ssize_t raw_read(struct archive *a, void *opaque, const void **out)
{
	struct unpack *u = opaque;
	ssize_t n;
	do
		n = read(u->src_fd, u->buf, sizeof(u->buf));
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		archive_set_error(a, errno, "read error");
		return -1;
	}
	img_hash_update(u->compressed, u->buf, (size_t)n);
	*out = u->buf;
	return n;
}

/* Uncompressed bytes for the tar reader: hashed and kept as the layer's blob on their way. */
static ssize_t tar_read(struct archive *a, void *opaque, const void **out)
{
	struct unpack *u = opaque;
	const void *block;
	size_t size;
	la_int64_t offset;
	int r = archive_read_data_block(u->raw, &block, &size, &offset);
	if (r == ARCHIVE_EOF)
		return 0;
	if (r < ARCHIVE_OK) {
		archive_set_error(a, archive_errno(u->raw), "%s", archive_error_string(u->raw));
		return -1;
	}
	img_hash_update(u->uncompressed, block, size);
	if (write_all(u->blob_fd, block, size) < 0) {
		u->write_failed = true;
		archive_set_error(a, errno, "cannot write the layer blob");
		return -1;
	}
	*out = block;
	return (ssize_t)size;
}

/* "./a//b/" -> "a/b", "/etc/x" -> "etc/x"; a ".." component is refused. "" is the layer's root. */
int img_clean_path(const char *in, char **out, vt_err *err)
{
	size_t len = strlen(in);
	char *o = malloc(len + 1);
	if (!o)
		return vt_fail_errno(err, ENOMEM, "layer path");
	size_t n = 0;
	for (const char *p = in; *p;) {
		while (*p == '/')
			p++;
		const char *end = strchrnul(p, '/');
		size_t clen = (size_t)(end - p);
		if (clen == 2 && !strncmp(p, "..", 2)) {
			free(o);
			return vt_fail(err, "layer entry '%s' escapes the layer with '..'", in);
		}
		if (clen && !(clen == 1 && *p == '.')) {
			if (n)
				o[n++] = '/';
			memcpy(o + n, p, clen);
			n += clen;
		}
		p = end;
	}
	o[n] = '\0';
	*out = o;
	return 0;
}

/* Open directory rel (already clean) under dirfd without following any symbolic link; create missing ones. */
static int open_beneath(int dirfd, const char *rel, bool create, vt_err *err)
{
	int fd = dup(dirfd);
	cleanup_free char *copy = strdup(rel);
	if (fd < 0 || !copy) {
		if (fd >= 0)
			close(fd);
		return vt_fail_errno(err, ENOMEM, "layer path");
	}
	char *save = NULL;
	for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		int next = openat(fd, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0 && errno == ENOENT && create && mkdirat(fd, c, 0755) == 0)
			next = openat(fd, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int e = errno;
		close(fd);
		if (next < 0)
			return vt_fail_errno(err, e == ELOOP ? EXDEV : e, "layer path '%s'%s", rel,
					     e == ELOOP || e == ENOTDIR ? " goes through a symbolic link or file" : "");
		fd = next;
	}
	return fd;
}

/* Split "a/b/c" into parent "a/b" (or "") and base "c", in place. */
static const char *split_base(char *path)
{
	char *slash = strrchr(path, '/');
	if (!slash) {
		memmove(path + 1, path, strlen(path) + 1);
		path[0] = '\0';
		return path + 1;
	}
	*slash = '\0';
	return slash + 1;
}

static int apply_whiteout(struct unpack *u, const char *rel, vt_err *err)
{
	cleanup_free char *copy = malloc(strlen(rel) + 2);
	if (!copy)
		return vt_fail_errno(err, ENOMEM, "whiteout");
	strcpy(copy, rel);
	const char *base = split_base(copy);
	cleanup_close int dir = open_beneath(u->layer_fd, copy, true, err);
	if (dir < 0)
		return -1;
	if (!strcmp(base, WH_OPAQUE)) {
		if (fsetxattr(dir, "trusted.overlay.opaque", "y", 1, 0) < 0)
			return vt_fail_errno(err, errno, "cannot mark '%s' opaque", copy);
		return 0;
	}
	const char *name = base + strlen(WH_PREFIX);
	if (!*name || !strcmp(name, ".") || !strcmp(name, ".."))
		return vt_fail(err, "bad whiteout '%s'", rel);
	if (unlinkat(dir, name, 0) < 0 && errno == EISDIR) {
		cleanup_free char *full = NULL;
		if (asprintf(&full, "/proc/self/fd/%d/%s", dir, name) > 0)
			img_rm_rf(full);
	}
	if (mknodat(dir, name, S_IFCHR | 0000, makedev(0, 0)) < 0)
		return vt_fail_errno(err, errno, "cannot make the whiteout for '%s'", rel);
	return 0;
}

static int copy_file_at(int from_dir, const char *from, int to_dir, const char *to, vt_err *err)
{
	cleanup_close int in = openat(from_dir, from, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (in < 0 || fstat(in, &st) < 0)
		return vt_fail_errno(err, errno, "cannot copy '%s' from a lower layer", from);
	cleanup_close int out = openat(to_dir, to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, st.st_mode & 07777);
	if (out < 0 || img_copy_fd(in, out, err) < 0)
		return out < 0 ? vt_fail_errno(err, errno, "cannot create '%s'", to) : -1;
	if (fchown(out, st.st_uid, st.st_gid) < 0 || fchmod(out, st.st_mode & 07777) < 0)
		return vt_fail_errno(err, errno, "cannot set the owner of '%s'", to);
	return 0;
}

/* A hard link whose target is not in this layer: link (or copy) the lower layer's file into this one. */
static int link_from_lower(struct unpack *u, const char *target, const char *path, vt_err *err)
{
	cleanup_free char *tparent = malloc(strlen(target) + 2), *pparent = malloc(strlen(path) + 2);
	if (!tparent || !pparent)
		return vt_fail_errno(err, ENOMEM, "hard link");
	strcpy(tparent, target);
	strcpy(pparent, path);
	const char *tbase = split_base(tparent), *pbase = split_base(pparent);
	for (size_t i = u->n_lowers; i-- > 0;) {
		cleanup_close int lower = open(u->lowers[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		vt_err ignore;
		cleanup_close int dir = lower < 0 ? -1 : open_beneath(lower, tparent, false, &ignore);
		struct stat st;
		if (dir < 0 || fstatat(dir, tbase, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0))
			break; /* whited out below */
		cleanup_close int to = open_beneath(u->layer_fd, pparent, true, err);
		if (to < 0)
			return -1;
		unlinkat(to, pbase, 0);
		if (linkat(dir, tbase, to, pbase, 0) == 0)
			return 0;
		if (errno != EXDEV && errno != EMLINK)
			return vt_fail_errno(err, errno, "cannot link '%s' to '%s'", path, target);
		return copy_file_at(dir, tbase, to, pbase, err);
	}
	return vt_fail(err, "hard link '%s' points to '%s', which no layer has", path, target);
}

/* Does target (clean) exist in this layer, reached without symbolic links? */
static int target_in_layer(struct unpack *u, const char *target, bool *found, vt_err *err)
{
	cleanup_free char *parent = malloc(strlen(target) + 2);
	if (!parent)
		return vt_fail_errno(err, ENOMEM, "hard link");
	strcpy(parent, target);
	const char *base = split_base(parent);
	vt_err ignore;
	cleanup_close int dir = open_beneath(u->layer_fd, parent, false, &ignore);
	struct stat st;
	*found = dir >= 0 && fstatat(dir, base, &st, AT_SYMLINK_NOFOLLOW) == 0;
	if (dir < 0 && (ignore.errnum == EXDEV || ignore.errnum == ENOTDIR))
		return vt_fail(err, "hard link target '%s' goes through a symbolic link", target);
	return 0;
}

/* Overlay's own xattrs come only from whiteout entries, never from the archive. */
static void drop_overlay_xattrs(struct archive_entry *e)
{
	if (archive_entry_xattr_reset(e) == 0)
		return;
	struct kept {
		char *name;
		void *value;
		size_t size;
	} kept[64];
	size_t n = 0;
	bool dropped = false;
	const char *name;
	const void *value;
	size_t size;
	while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
		if (!strncmp(name, "trusted.overlay.", 16)) {
			dropped = true;
			continue;
		}
		if (n < ARRAY_SIZE(kept) && (kept[n].value = malloc(size ? size : 1))) {
			kept[n].name = strdup(name);
			memcpy(kept[n].value, value, size);
			kept[n++].size = size;
		}
	}
	if (dropped) {
		archive_entry_xattr_clear(e);
		for (size_t i = 0; i < n; i++)
			archive_entry_xattr_add_entry(e, kept[i].name, kept[i].value, kept[i].size);
	}
	for (size_t i = 0; i < n; i++) {
		free(kept[i].name);
		free(kept[i].value);
	}
}

static int copy_data(struct unpack *u, const char *path, vt_err *err)
{
	const void *block;
	size_t size;
	la_int64_t offset;
	for (;;) {
		int r = archive_read_data_block(u->tar, &block, &size, &offset);
		if (r == ARCHIVE_EOF)
			return 0;
		if (r < ARCHIVE_WARN)
			return vt_fail(err, "reading '%s': %s", path, archive_error_string(u->tar));
		if (archive_write_data_block(u->disk, block, size, offset) < ARCHIVE_WARN)
			return vt_fail(err, "writing '%s': %s", path, archive_error_string(u->disk));
	}
}

static int write_entry(struct unpack *u, struct archive_entry *e, const char *path, vt_err *err)
{
	const char *link = archive_entry_hardlink(e);
	if (link) {
		cleanup_free char *target = NULL;
		bool found;
		if (img_clean_path(link, &target, err) < 0 || target_in_layer(u, target, &found, err) < 0)
			return -1;
		if (!found)
			return link_from_lower(u, target, path, err);
		archive_entry_set_hardlink(e, target);
	}
	archive_entry_set_pathname(e, path);
	drop_overlay_xattrs(e);
	if (archive_write_header(u->disk, e) < ARCHIVE_WARN)
		return vt_fail(err, "cannot unpack '%s': %s", path, archive_error_string(u->disk));
	if (!link && archive_entry_size(e) > 0 && copy_data(u, path, err) < 0)
		return -1;
	if (archive_write_finish_entry(u->disk) < ARCHIVE_WARN)
		return vt_fail(err, "cannot finish '%s': %s", path, archive_error_string(u->disk));
	return 0;
}

static int unpack_entry(struct unpack *u, struct archive_entry *e, vt_err *err)
{
	cleanup_free char *path = NULL;
	if (img_clean_path(archive_entry_pathname(e), &path, err) < 0)
		return -1;
	if (!*path)
		return 0; /* the layer's root: overlay takes the root's attributes from the upper dir */
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	if (!strncmp(base, WH_PREFIX, strlen(WH_PREFIX)))
		return apply_whiteout(u, path, err);
	return write_entry(u, e, path, err);
}

static int open_readers(struct unpack *u, vt_err *err)
{
	u->raw = archive_read_new();
	u->tar = archive_read_new();
	u->disk = archive_write_disk_new();
	if (!u->raw || !u->tar || !u->disk)
		return vt_fail_errno(err, ENOMEM, "libarchive");
	archive_read_support_filter_all(u->raw);
	archive_read_support_format_raw(u->raw);
	archive_read_support_format_tar(u->tar);
	archive_read_support_format_empty(u->tar);
	struct archive_entry *raw_entry;
	if (archive_read_open(u->raw, u, NULL, raw_read, NULL) != ARCHIVE_OK ||
	    archive_read_next_header(u->raw, &raw_entry) != ARCHIVE_OK)
		return vt_fail(err, "cannot read the layer: %s", archive_error_string(u->raw));
	if (archive_read_open(u->tar, u, NULL, tar_read, NULL) != ARCHIVE_OK)
		return vt_fail(err, "the layer is not a tar archive: %s", archive_error_string(u->tar));
	archive_write_disk_set_options(u->disk, ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME |
							ARCHIVE_EXTRACT_XATTR | ARCHIVE_EXTRACT_ACL |
							ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NODOTDOT |
							ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS);
	return 0;
}

/* Hash (and keep) whatever follows the tar's end, then whatever follows the compressed stream. */
static int drain(struct unpack *u, vt_err *err)
{
	const void *out;
	ssize_t n;
	while ((n = tar_read(u->tar, u, &out)) > 0)
		;
	if (n < 0)
		return vt_fail(err, "reading the layer: %s", archive_error_string(u->tar));
	while ((n = raw_read(u->raw, u, &out)) > 0)
		;
	return n < 0 ? vt_fail_errno(err, errno, "reading the layer") : 0;
}

static int unpack_stream(struct unpack *u, vt_err *err)
{
	if (open_readers(u, err) < 0)
		return -1;
	struct archive_entry *e;
	int r;
	while ((r = archive_read_next_header(u->tar, &e)) == ARCHIVE_OK || r == ARCHIVE_WARN)
		if (unpack_entry(u, e, err) < 0)
			return -1;
	if (r != ARCHIVE_EOF)
		return vt_fail(err, "the layer is damaged or truncated: %s",
			       u->write_failed ? "cannot write the blob" : archive_error_string(u->tar));
	if (drain(u, err) < 0)
		return -1;
	if (archive_write_close(u->disk) < ARCHIVE_WARN)
		return vt_fail(err, "finishing the layer: %s", archive_error_string(u->disk));
	return 0;
}

static void unpack_free(struct unpack *u)
{
	if (u->raw)
		archive_read_free(u->raw);
	if (u->tar)
		archive_read_free(u->tar);
	if (u->disk)
		archive_write_free(u->disk);
	img_hash_free(u->compressed);
	img_hash_free(u->uncompressed);
	if (u->layer_fd >= 0)
		close(u->layer_fd);
	if (u->blob_fd >= 0)
		close(u->blob_fd);
	free(u);
}

/* Run the unpacking with the temporary layer dir as cwd (archive_write_disk works relative to it). */
static int unpack_in(struct unpack *u, const char *tmp_dir, vt_err *err)
{
	cleanup_close int old_cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	u->layer_fd = open(tmp_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (old_cwd < 0 || u->layer_fd < 0 || fchmod(u->layer_fd, 0755) < 0 || fchdir(u->layer_fd) < 0)
		return vt_fail_errno(err, errno, "cannot enter %s", tmp_dir);
	int rc = unpack_stream(u, err);
	if (fchdir(old_cwd) < 0 && rc == 0)
		rc = vt_fail_errno(err, errno, "cannot return to the working directory");
	return rc;
}

/* Move the finished directory and blob into place (a layer already there is kept as is). */
static int publish(struct img_store *s, const char *tmp_dir, const char *blob_tmp, const char *diff_id,
		   struct img_txn *txn, vt_err *err)
{
	cleanup_free char *dir = img_layer_dir(s, diff_id);
	if (!dir)
		return vt_fail_errno(err, ENOMEM, "layer");
	if (rename(tmp_dir, dir) < 0) {
		if (errno != EEXIST && errno != ENOTEMPTY)
			return vt_fail_errno(err, errno, "cannot store layer %s", diff_id);
		img_rm_rf(tmp_dir);
	} else if (img_txn_add(txn, dir) < 0) {
		return vt_fail_errno(err, ENOMEM, "layer");
	}
	if (img_blob_adopt(s, blob_tmp, diff_id, txn, err) < 0)
		return -1;
	return img_layer_link(s, diff_id, txn, err);
}

int img_layer_unpack(struct img_store *s, int fd, char *const *lowers, size_t n_lowers,
		     char diff_id[IMG_ID_LEN + 1], char compressed_digest[IMG_ID_LEN + 1], struct img_txn *txn,
		     vt_err *err)
{
	struct unpack *u = calloc(1, sizeof(*u));
	cleanup_free char *tmp_dir = img_path(s, "layers/.tmp-XXXXXX");
	cleanup_free char *blob_tmp = NULL;
	if (!u || !tmp_dir) {
		free(u);
		return vt_fail_errno(err, ENOMEM, "layer");
	}
	*u = (struct unpack){ .src_fd = fd, .blob_fd = -1, .layer_fd = -1, .lowers = lowers, .n_lowers = n_lowers };
	u->compressed = img_hash_new();
	u->uncompressed = img_hash_new();
	int rc = -1;
	if (!u->compressed || !u->uncompressed || !mkdtemp(tmp_dir)) {
		vt_fail_errno(err, errno ? errno : ENOMEM, "cannot create a temporary layer directory");
		unpack_free(u);
		return -1;
	}
	u->blob_fd = img_blob_tmpfile(s, &blob_tmp, err);
	if (u->blob_fd >= 0 && unpack_in(u, tmp_dir, err) == 0) {
		if (fsync(u->blob_fd) < 0) {
			vt_fail_errno(err, errno, "cannot write the layer blob");
		} else {
			img_hash_final(steal_ptr(u->compressed), compressed_digest);
			img_hash_final(steal_ptr(u->uncompressed), diff_id);
			rc = publish(s, tmp_dir, blob_tmp, diff_id, txn, err);
		}
	}
	unpack_free(u);
	if (rc < 0) {
		img_rm_rf(tmp_dir);
		if (blob_tmp)
			unlink(blob_tmp);
	}
	return rc;
}

char *img_layer_dir(const struct img_store *s, const char *diff_id)
{
	const char *hex = img_digest_hex(diff_id);
	return hex ? img_path(s, "layers/%s", hex) : NULL;
}

int img_layer_link(struct img_store *s, const char *diff_id, struct img_txn *txn, vt_err *err)
{
	const char *hex = img_digest_hex(diff_id);
	cleanup_free char *link = hex ? img_path(s, "layers/l/%.16s", hex) : NULL;
	char target[IMG_HEX_LEN + 8];
	snprintf(target, sizeof(target), "../%s", hex ? hex : "");
	if (!link)
		return vt_fail_errno(err, ENOMEM, "layer link");
	if (symlink(target, link) == 0)
		return img_txn_add(txn, link) < 0 ? vt_fail_errno(err, ENOMEM, "layer link") : 0;
	if (errno != EEXIST)
		return vt_fail_errno(err, errno, "cannot create %s", link);
	return 0;
}

int img_layer_ensure(struct img_store *s, const char *diff_id, char *const *lowers, size_t n_lowers, vt_err *err)
{
	cleanup_free char *dir = img_layer_dir(s, diff_id);
	cleanup_free char *blob = img_blob_path(s, diff_id);
	if (!dir || !blob)
		return vt_fail(err, "bad diff id '%s'", diff_id);
	if (access(dir, F_OK) == 0)
		return img_layer_link(s, diff_id, NULL, err);
	cleanup_close int fd = open(blob, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return vt_fail_errno(err, errno, "layer %s is missing from the store", diff_id);
	char got[IMG_ID_LEN + 1], compressed[IMG_ID_LEN + 1];
	struct img_txn txn = { 0 };
	if (img_layer_unpack(s, fd, lowers, n_lowers, got, compressed, &txn, err) < 0)
		return -1;
	if (strcmp(got, diff_id)) {
		img_txn_rollback(&txn);
		return vt_fail(err, "layer blob %s is corrupt (it hashes to %s)", diff_id, got);
	}
	img_txn_done(&txn);
	return 0;
}

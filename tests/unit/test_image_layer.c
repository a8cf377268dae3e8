/* Image layers (image/layer_unpack.c, layer_pack.c) and the store's mount: tars made here with libarchive are
 * unpacked into a private store, and the results are checked on disk (whiteouts, opaque dirs, hard links to a
 * lower layer, refused escapes, devices, xattrs, mtimes), an upper dir round-trips through pack and unpack, a
 * broken gzip leaves nothing, and a 64-layer image mounts. Needs root (mknod, trusted.* xattrs, mount). */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <cmocka.h>

#include "image/internal.h"

struct ent {
	const char *path;
	mode_t mode; /* with type bits */
	const char *data;  /* file content, symlink or hard link target */
	bool hardlink;
	dev_t rdev;
	const char *xattr; /* "name=value" */
	time_t mtime;
};

struct fixture {
	char dir[64];
	struct img_store *s;
};

static void make_tar(const char *path, const struct ent *ents, size_t n, bool gzip)
{
	struct archive *a = archive_write_new();
	archive_write_set_format_pax_restricted(a);
	if (gzip)
		archive_write_add_filter_gzip(a);
	assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
	struct archive_entry *e = archive_entry_new();
	for (size_t i = 0; i < n; i++) {
		archive_entry_clear(e);
		archive_entry_set_pathname(e, ents[i].path);
		archive_entry_set_mode(e, ents[i].mode);
		archive_entry_set_mtime(e, ents[i].mtime ? ents[i].mtime : 1000000000, 0);
		size_t len = 0;
		if (ents[i].hardlink)
			archive_entry_set_hardlink(e, ents[i].data);
		else if (S_ISLNK(ents[i].mode))
			archive_entry_set_symlink(e, ents[i].data);
		else if (S_ISREG(ents[i].mode) && ents[i].data)
			len = strlen(ents[i].data);
		archive_entry_set_size(e, (la_int64_t)len);
		archive_entry_set_rdev(e, ents[i].rdev);
		if (ents[i].xattr) {
			const char *eq = strchr(ents[i].xattr, '=');
			char name[128];
			snprintf(name, sizeof(name), "%.*s", (int)(eq - ents[i].xattr), ents[i].xattr);
			archive_entry_xattr_add_entry(e, name, eq + 1, strlen(eq + 1));
		}
		assert_true(archive_write_header(a, e) >= ARCHIVE_WARN);
		if (len)
			assert_int_equal(archive_write_data(a, ents[i].data, len), (la_ssize_t)len);
	}
	archive_entry_free(e);
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
}

static int setup(void **state)
{
	if (geteuid() != 0)
		return 0;
	struct fixture *f = calloc(1, sizeof(*f));
	strcpy(f->dir, "/tmp/virtus-test-layer.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	char root[128];
	snprintf(root, sizeof(root), "%s/store", f->dir);
	vt_err err = { 0 };
	assert_int_equal(img_store_open(root, &f->s, &err), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	if (!f)
		return 0;
	img_store_close(f->s);
	img_rm_rf(f->dir);
	free(f);
	return 0;
}

#define NEED_ROOT()                                   \
	do {                                          \
		if (geteuid() != 0)                   \
			skip();                       \
	} while (0)

/* Unpack tar ents into the store; returns 0 or -1 and the layer dir path. */
static int unpack(struct fixture *f, const struct ent *ents, size_t n, bool gzip, char *const *lowers,
		  size_t n_lowers, char *layer_dir, vt_err *err)
{
	char tar[128];
	snprintf(tar, sizeof(tar), "%s/layer.tar", f->dir);
	make_tar(tar, ents, n, gzip);
	int fd = open(tar, O_RDONLY);
	assert_true(fd >= 0);
	char diff[IMG_ID_LEN + 1], comp[IMG_ID_LEN + 1];
	struct img_txn txn = { 0 };
	int rc = img_layer_unpack(f->s, fd, lowers, n_lowers, diff, comp, &txn, err);
	close(fd);
	img_txn_done(&txn);
	if (rc == 0)
		snprintf(layer_dir, 256, "%s/layers/%s", img_store_root(f->s), diff + 7);
	return rc;
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	int n = 0;
	for (struct dirent *e; (e = readdir(d));)
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	return n;
}

static void assert_store_has_no_layer(struct fixture *f)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/layers", img_store_root(f->s));
	assert_int_equal(count_entries(p), 1); /* only l/ */
	snprintf(p, sizeof(p), "%s/image/blobs/sha256", img_store_root(f->s));
	assert_int_equal(count_entries(p), 0);
	snprintf(p, sizeof(p), "%s/image/blobs", img_store_root(f->s));
	assert_int_equal(count_entries(p), 1); /* no temp blob left */
}

static void file_is(const char *dir, const char *rel, const char *content)
{
	char p[512], buf[256] = { 0 };
	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	int fd = open(p, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, buf, sizeof(buf) - 1), (ssize_t)strlen(content));
	close(fd);
	assert_string_equal(buf, content);
}

static struct stat lstat_of(const char *dir, const char *rel)
{
	char p[512];
	struct stat st;
	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	assert_int_equal(lstat(p, &st), 0);
	return st;
}

static void whiteouts_opaque_devices_xattrs_mtimes(void **state)
{
	NEED_ROOT();
	struct fixture *f = *state;
	const struct ent ents[] = {
		{ "./etc/", S_IFDIR | 0755, NULL, false, 0, NULL, 1234567 },
		{ "./etc/.wh..wh..opq", S_IFREG | 0644, NULL, false, 0, NULL, 0 },
		{ "./etc/conf", S_IFREG | 0640, "hello", false, 0, "user.note=kept", 1111111 },
		{ "./etc/.wh.gone", S_IFREG | 0644, NULL, false, 0, NULL, 0 },
		{ "./dev/", S_IFDIR | 0755, NULL, false, 0, NULL, 0 },
		{ "./dev/null", S_IFCHR | 0666, NULL, false, makedev(1, 3), NULL, 0 },
		{ "./sneaky", S_IFREG | 0644, "x", false, 0, "trusted.overlay.opaque=y", 0 },
		{ "/abs/file", S_IFREG | 0600, "abs", false, 0, NULL, 0 },
		{ "./link", S_IFLNK | 0777, "etc/conf", false, 0, NULL, 0 },
	};
	char layer[256];
	vt_err err = { 0 };
	assert_int_equal(unpack(f, ents, sizeof(ents) / sizeof(ents[0]), true, NULL, 0, layer, &err), 0);
	char v[8] = { 0 }, p[512];
	snprintf(p, sizeof(p), "%s/etc", layer);
	assert_int_equal(getxattr(p, "trusted.overlay.opaque", v, sizeof(v)), 1);
	assert_int_equal(v[0], 'y');
	struct stat st = lstat_of(layer, "etc/gone");
	assert_true(S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0));
	st = lstat_of(layer, "dev/null");
	assert_true(S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3));
	st = lstat_of(layer, "etc/conf");
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(st.st_mtime, 1111111);
	assert_int_equal(lstat_of(layer, "etc").st_mtime, 1234567);
	file_is(layer, "etc/conf", "hello");
	snprintf(p, sizeof(p), "%s/etc/conf", layer);
	assert_int_equal(getxattr(p, "user.note", v, sizeof(v)), 4);
	snprintf(p, sizeof(p), "%s/sneaky", layer);
	assert_true(getxattr(p, "trusted.overlay.opaque", v, sizeof(v)) < 0);
	file_is(layer, "abs/file", "abs");
	assert_true(S_ISLNK(lstat_of(layer, "link").st_mode));
	snprintf(p, sizeof(p), "%s/etc/.wh.gone", layer);
	assert_true(access(p, F_OK) < 0);
}

static void hard_link_to_a_lower_layer(void **state)
{
	NEED_ROOT();
	struct fixture *f = *state;
	const struct ent lower[] = { { "bin/", S_IFDIR | 0755, NULL, false, 0, NULL, 0 },
				     { "bin/tool", S_IFREG | 0755, "tool-bytes", false, 0, NULL, 0 } };
	const struct ent upper[] = { { "bin/", S_IFDIR | 0755, NULL, false, 0, NULL, 0 },
				     { "bin/alias", S_IFREG | 0755, "bin/tool", true, 0, NULL, 0 },
				     { "bin/own", S_IFREG | 0644, "own", false, 0, NULL, 0 },
				     { "bin/own2", S_IFREG | 0644, "bin/own", true, 0, NULL, 0 } };
	char low[256], up[256];
	vt_err err = { 0 };
	assert_int_equal(unpack(f, lower, 2, false, NULL, 0, low, &err), 0);
	char *lowers[] = { low };
	assert_int_equal(unpack(f, upper, 4, false, lowers, 1, up, &err), 0);
	file_is(up, "bin/alias", "tool-bytes");
	assert_int_equal(lstat_of(up, "bin/own").st_ino, lstat_of(up, "bin/own2").st_ino);
	/* a hard link to something no layer has is refused */
	const struct ent dangling[] = { { "x", S_IFREG | 0644, "nowhere", true, 0, NULL, 0 } };
	assert_int_equal(unpack(f, dangling, 1, false, lowers, 1, up, &err), -1);
	assert_non_null(strstr(err.msg, "nowhere"));
}

static void escapes_are_refused(void **state)
{
	NEED_ROOT();
	struct fixture *f = *state;
	char outside[256], layer[256];
	snprintf(outside, sizeof(outside), "%s/outside", f->dir);
	mkdir(outside, 0755);
	const struct ent dotdot[] = { { "a/../../evil", S_IFREG | 0644, "x", false, 0, NULL, 0 } };
	const struct ent via_symlink[] = { { "out", S_IFLNK | 0777, outside, false, 0, NULL, 0 },
					   { "out/evil", S_IFREG | 0644, "x", false, 0, NULL, 0 } };
	const struct ent wh_via_symlink[] = { { "out", S_IFLNK | 0777, outside, false, 0, NULL, 0 },
					      { "out/.wh.victim", S_IFREG | 0644, NULL, false, 0, NULL, 0 } };
	const struct ent link_via_symlink[] = { { "out", S_IFLNK | 0777, "/etc", false, 0, NULL, 0 },
						{ "pw", S_IFREG | 0644, "out/passwd", true, 0, NULL, 0 } };
	vt_err err = { 0 };
	assert_int_equal(unpack(f, dotdot, 1, false, NULL, 0, layer, &err), -1);
	assert_non_null(strstr(err.msg, ".."));
	assert_int_equal(unpack(f, via_symlink, 2, false, NULL, 0, layer, &err), -1);
	assert_int_equal(unpack(f, wh_via_symlink, 2, false, NULL, 0, layer, &err), -1);
	assert_int_equal(unpack(f, link_via_symlink, 2, false, NULL, 0, layer, &err), -1);
	assert_int_equal(count_entries(outside), 0);
	assert_store_has_no_layer(f);
}

static void broken_gzip_leaves_nothing(void **state)
{
	NEED_ROOT();
	struct fixture *f = *state;
	char tar[128];
	snprintf(tar, sizeof(tar), "%s/big.tar.gz", f->dir);
	static char content[200000];
	for (size_t i = 0; i < sizeof(content) - 1; i++)
		content[i] = (char)('a' + (i * 7919) % 26);
	const struct ent ents[] = { { "f", S_IFREG | 0644, content, false, 0, NULL, 0 } };
	make_tar(tar, ents, 1, true);
	struct stat st;
	assert_int_equal(stat(tar, &st), 0);
	char diff[IMG_ID_LEN + 1], comp[IMG_ID_LEN + 1];
	vt_err err = { 0 };
	for (int corrupt = 0; corrupt < 2; corrupt++) {
		int fd = open(tar, O_RDWR);
		if (corrupt) { /* flip bytes in the middle of the deflate stream */
			char junk[64];
			memset(junk, 0x5a, sizeof(junk));
			assert_int_equal(pwrite(fd, junk, sizeof(junk), st.st_size / 2), (ssize_t)sizeof(junk));
		} else {
			assert_int_equal(ftruncate(fd, st.st_size / 2), 0);
		}
		lseek(fd, 0, SEEK_SET);
		struct img_txn txn = { 0 };
		assert_int_equal(img_layer_unpack(f->s, fd, NULL, 0, diff, comp, &txn, &err), -1);
		close(fd);
		assert_int_equal(txn.n, 0);
		assert_store_has_no_layer(f);
		make_tar(tar, ents, 1, true);
	}
}

static void upper_dir_round_trip(void **state)
{
	NEED_ROOT();
	struct fixture *f = *state;
	char up[256], p[512];
	snprintf(up, sizeof(up), "%s/upper", f->dir);
	mkdir(up, 0755);
	snprintf(p, sizeof(p), "%s/etc", up);
	mkdir(p, 0750);
	assert_int_equal(setxattr(p, "trusted.overlay.opaque", "y", 1, 0), 0);
	snprintf(p, sizeof(p), "%s/etc/a", up);
	FILE *fp = fopen(p, "w");
	fputs("A", fp);
	fclose(fp);
	assert_int_equal(setxattr(p, "user.k", "v", 1, 0), 0);
	char p2[512];
	snprintf(p2, sizeof(p2), "%s/etc/b", up);
	assert_int_equal(link(p, p2), 0);
	snprintf(p, sizeof(p), "%s/gone", up);
	assert_int_equal(mknod(p, S_IFCHR | 0, makedev(0, 0)), 0);
	snprintf(p, sizeof(p), "%s/sl", up);
	assert_int_equal(symlink("etc/a", p), 0);

	char tar[128];
	snprintf(tar, sizeof(tar), "%s/packed.tar", f->dir);
	int fd = open(tar, O_RDWR | O_CREAT | O_TRUNC, 0644);
	vt_err err = { 0 };
	assert_int_equal(img_layer_pack(up, fd, &err), 0);
	/* packing again gives the same bytes */
	char tar2[128];
	snprintf(tar2, sizeof(tar2), "%s/packed2.tar", f->dir);
	int fd2 = open(tar2, O_RDWR | O_CREAT | O_TRUNC, 0644);
	assert_int_equal(img_layer_pack(up, fd2, &err), 0);
	assert_int_equal(lseek(fd, 0, SEEK_END), lseek(fd2, 0, SEEK_END));
	close(fd2);

	/* the opaque marker comes right after its directory, before the contents */
	struct archive *a = archive_read_new();
	archive_read_support_format_tar(a);
	assert_int_equal(archive_read_open_filename(a, tar, 10240), ARCHIVE_OK);
	struct archive_entry *e;
	const char *order[] = { "etc", "etc/.wh..wh..opq", "etc/a", "etc/b", ".wh.gone", "sl" };
	for (size_t i = 0; i < 6; i++) {
		assert_int_equal(archive_read_next_header(a, &e), ARCHIVE_OK);
		char name[64];
		snprintf(name, sizeof(name), "%s", archive_entry_pathname(e));
		if (name[strlen(name) - 1] == '/')
			name[strlen(name) - 1] = '\0';
		assert_string_equal(name, order[i]);
	}
	archive_read_free(a);

	lseek(fd, 0, SEEK_SET);
	char diff[IMG_ID_LEN + 1], comp[IMG_ID_LEN + 1];
	struct img_txn txn = { 0 };
	assert_int_equal(img_layer_unpack(f->s, fd, NULL, 0, diff, comp, &txn, &err), 0);
	img_txn_done(&txn);
	close(fd);
	assert_string_equal(diff, comp); /* uncompressed input: both digests are the same */
	char layer[256];
	snprintf(layer, sizeof(layer), "%s/layers/%s", img_store_root(f->s), diff + 7);
	char v[4] = { 0 };
	snprintf(p, sizeof(p), "%s/etc", layer);
	assert_int_equal(getxattr(p, "trusted.overlay.opaque", v, sizeof(v)), 1);
	assert_int_equal(lstat_of(layer, "etc").st_mode & 07777, 0750);
	file_is(layer, "etc/b", "A");
	assert_int_equal(lstat_of(layer, "etc/a").st_ino, lstat_of(layer, "etc/b").st_ino);
	snprintf(p, sizeof(p), "%s/etc/a", layer);
	assert_int_equal(getxattr(p, "user.k", v, sizeof(v)), 1);
	struct stat st = lstat_of(layer, "gone");
	assert_true(S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0));
	assert_true(S_ISLNK(lstat_of(layer, "sl").st_mode));
}

static void mount_of_64_layers(void **state)
{
	NEED_ROOT();
	struct fixture *f = *state;
	enum { N = 64 };
	char *ids[N];
	vt_err err = { 0 };
	for (int i = 0; i < N; i++) {
		char name[32], layer[256];
		snprintf(name, sizeof(name), "f%02d", i);
		const struct ent ents[] = { { name, S_IFREG | 0644, name, false, 0, NULL, 0 },
					    { "top", S_IFREG | 0644, name, false, 0, NULL, 0 } };
		assert_int_equal(unpack(f, ents, 2, false, NULL, 0, layer, &err), 0);
		ids[i] = malloc(IMG_ID_LEN + 1);
		snprintf(ids[i], IMG_ID_LEN + 1, "sha256:%s", strrchr(layer, '/') + 1);
	}
	json_object *config = json_object_new_object(), *rootfs = json_object_new_object(), *d = json_object_new_array();
	for (int i = 0; i < N; i++)
		json_object_array_add(d, json_object_new_string(ids[i]));
	json_object_object_add(rootfs, "type", json_object_new_string("layers"));
	json_object_object_add(rootfs, "diff_ids", d);
	json_object_object_add(config, "rootfs", rootfs);
	char id[IMG_ID_LEN + 1];
	assert_int_equal(img_store_image(f->s, config, NULL, 0, ids, N, "localhost/tall:latest", id, NULL, &err), 0);
	json_object_put(config);
	struct img_image *img;
	assert_int_equal(img_resolve(f->s, "tall", &img, &err), 0);
	assert_int_equal(img->n_layers, N);
	assert_string_equal(img->name, "localhost/tall:latest");
	struct img_image *by_id;
	char short_id[13];
	snprintf(short_id, sizeof(short_id), "%.12s", id + 7);
	assert_int_equal(img_resolve(f->s, short_id, &by_id, &err), 0);
	assert_string_equal(by_id->id, id);
	img_image_free(by_id);
	assert_int_equal(img_resolve(f->s, "nosuch", &by_id, &err), -1);
	assert_non_null(strstr(err.msg, "nosuch"));

	char upper[256], work[256], target[256];
	snprintf(upper, sizeof(upper), "%s/u", f->dir);
	snprintf(work, sizeof(work), "%s/w", f->dir);
	snprintf(target, sizeof(target), "%s/m", f->dir);
	mkdir(upper, 0755), mkdir(work, 0755), mkdir(target, 0755);
	int rc = img_mount(f->s, img, upper, work, target, false, &err);
	if (rc < 0)
		print_message("mount: %s\n", err.msg);
	assert_int_equal(rc, 0);
	file_is(target, "f00", "f00");
	file_is(target, "f63", "f63");
	file_is(target, "top", "f63"); /* the last layer is on top */
	umount2(target, MNT_DETACH);
	img_image_free(img);
	for (int i = 0; i < N; i++)
		free(ids[i]);
}

static void commit_adds_a_layer(void **state)
{
	NEED_ROOT();
	struct fixture *f = *state;
	const struct ent base_ents[] = { { "keep", S_IFREG | 0644, "k", false, 0, NULL, 0 },
					 { "drop", S_IFREG | 0644, "d", false, 0, NULL, 0 } };
	char layer[256], p[512];
	vt_err err = { 0 };
	assert_int_equal(unpack(f, base_ents, 2, false, NULL, 0, layer, &err), 0);
	char diff[IMG_ID_LEN + 1], id[IMG_ID_LEN + 1];
	snprintf(diff, sizeof(diff), "sha256:%s", strrchr(layer, '/') + 1);
	char text[256];
	snprintf(text, sizeof(text), "{\"config\":{\"Env\":[\"A=1\"]},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"%s\"]}}",
		 diff);
	json_object *config = json_tokener_parse(text);
	char *ids[] = { diff };
	assert_int_equal(img_store_image(f->s, config, NULL, 0, ids, 1, "localhost/base:latest", id, NULL, &err), 0);
	json_object_put(config);
	struct img_image *base, *derived;
	assert_int_equal(img_resolve(f->s, "base", &base, &err), 0);

	char upper[256];
	snprintf(upper, sizeof(upper), "%s/up", f->dir);
	mkdir(upper, 0755);
	snprintf(p, sizeof(p), "%s/new", upper);
	FILE *fp = fopen(p, "w");
	fputs("n", fp);
	fclose(fp);
	snprintf(p, sizeof(p), "%s/drop", upper);
	assert_int_equal(mknod(p, S_IFCHR, makedev(0, 0)), 0);
	json_object *newcfg = NULL;
	assert_int_equal(json_object_deep_copy(base->config, &newcfg, NULL), 0);
	json_object_object_del(newcfg, "history");
	assert_int_equal(img_commit(f->s, base, upper, newcfg, "RUN make", "derived:1", id, &err), 0);
	json_object_put(newcfg);
	assert_int_equal(img_resolve(f->s, "derived:1", &derived, &err), 0);
	assert_string_equal(derived->id, id);
	assert_int_equal(derived->n_layers, 2);
	assert_string_equal(derived->diff_ids[0], diff);
	json_object *h = json_object_object_get(derived->config, "history");
	assert_int_equal(json_object_array_length(h), 1);
	assert_string_equal(json_object_get_string(json_object_object_get(json_object_array_get_idx(h, 0), "created_by")),
			    "RUN make");
	assert_non_null(strstr(json_object_to_json_string(derived->config), "A=1"));
	file_is(derived->layer_dirs[1], "new", "n");
	struct stat st = lstat_of(derived->layer_dirs[1], "drop");
	assert_true(S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0));

	/* a commit without an upper dir adds an empty-layer history entry and no layer */
	json_object *again = NULL;
	assert_int_equal(json_object_deep_copy(derived->config, &again, NULL), 0);
	assert_int_equal(img_commit(f->s, derived, NULL, again, "ENV B=2", NULL, id, &err), 0);
	json_object_put(again);
	struct img_image *third;
	assert_int_equal(img_resolve(f->s, id, &third, &err), 0);
	assert_int_equal(third->n_layers, 2);
	assert_int_equal(json_object_array_length(json_object_object_get(third->config, "history")), 2);
	img_image_free(third);
	img_image_free(derived);
	img_image_free(base);
}

static void names_are_normalised(void **state)
{
	(void)state;
	static const char *const cases[][2] = {
		{ "site", "localhost/site:latest" },
		{ "site:2", "localhost/site:2" },
		{ "docker.io/library/x", "docker.io/library/x:latest" },
		{ "localhost:5000/a/b:c", "localhost:5000/a/b:c" },
		{ "library/busybox", "localhost/library/busybox:latest" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *out;
		vt_err err = { 0 };
		assert_int_equal(img_normalize_name(cases[i][0], &out, &err), 0);
		assert_string_equal(out, cases[i][1]);
		free(out);
	}
	char *out;
	vt_err err = { 0 };
	assert_int_equal(img_normalize_name("Bad", &out, &err), -1);
	assert_int_equal(img_normalize_name("a b", &out, &err), -1);
	assert_int_equal(img_normalize_name("", &out, &err), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(whiteouts_opaque_devices_xattrs_mtimes, setup, teardown),
		cmocka_unit_test_setup_teardown(hard_link_to_a_lower_layer, setup, teardown),
		cmocka_unit_test_setup_teardown(escapes_are_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(broken_gzip_leaves_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(upper_dir_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(mount_of_64_layers, setup, teardown),
		cmocka_unit_test_setup_teardown(commit_adds_a_layer, setup, teardown),
		cmocka_unit_test(names_are_normalised),
	};
	return cmocka_run_group_tests_name("image_layer", tests, NULL, NULL);
}

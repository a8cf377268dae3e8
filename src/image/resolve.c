/* Using an image: import a root file system tarball, resolve a reference, mount the layers as an overlay. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/internal.h"
#include "lib/util.h"
#include "runtime/rt.h"

/* What podman import writes: the platform, the layer, a history entry, and an empty run config. */
static json_object *import_config(const char *diff_id, const char *source)
{
	char now[40];
	img_now_rfc3339(now);
	json_object *c = json_object_new_object();
	json_object_object_add(c, "created", json_object_new_string(now));
	json_object_object_add(c, "architecture", json_object_new_string(img_host_arch()));
	json_object_object_add(c, "os", json_object_new_string("linux"));
	json_object_object_add(c, "config", json_object_new_object());
	json_object *rootfs = json_object_new_object(), *ids = json_object_new_array();
	json_object_object_add(rootfs, "type", json_object_new_string("layers"));
	json_object_array_add(ids, json_object_new_string(diff_id));
	json_object_object_add(rootfs, "diff_ids", ids);
	json_object_object_add(c, "rootfs", rootfs);
	json_object *h = json_object_new_object(), *history = json_object_new_array();
	json_object_object_add(h, "created", json_object_new_string(now));
	char by[PATH_MAX + 64];
	snprintf(by, sizeof(by), "virtus image import %s", source);
	json_object_object_add(h, "created_by", json_object_new_string(by));
	json_object_object_add(h, "comment", json_object_new_string("imported from tarball"));
	json_object_array_add(history, h);
	json_object_object_add(c, "history", history);
	return c;
}

static int import_locked(struct img_store *s, int fd, const char *tar_path, const char *name,
			 char out_id[IMG_ID_LEN + 1], vt_err *err)
{
	struct img_txn txn = { 0 };
	char diff_id[IMG_ID_LEN + 1], compressed[IMG_ID_LEN + 1];
	if (img_layer_unpack(s, fd, NULL, 0, diff_id, compressed, &txn, err) < 0)
		return vt_err_prefix(err, "importing %s", tar_path);
	json_object *config = import_config(diff_id, tar_path);
	char *ids[] = { diff_id };
	int rc = img_store_image(s, config, NULL, 0, ids, 1, name, out_id, &txn, err);
	json_object_put(config);
	if (rc < 0)
		img_txn_rollback(&txn);
	else
		img_txn_done(&txn);
	return rc;
}

int img_import(struct img_store *s, const char *tar_path, const char *name, char out_id[IMG_ID_LEN + 1],
	       vt_err *err)
{
	cleanup_free char *norm = NULL;
	if (name && img_normalize_name(name, &norm, err) < 0)
		return -1;
	cleanup_close int fd = open(tar_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return vt_fail_errno(err, errno, "cannot open %s", tar_path);
	if (img_store_lock(s, true, err) < 0)
		return -1;
	int rc = import_locked(s, fd, tar_path, norm, out_id, err);
	img_store_unlock(s);
	return rc;
}

/* --- resolving --- */

void img_image_free(struct img_image *img)
{
	if (!img)
		return;
	free(img->name);
	json_object_put(img->config);
	img_strv_free(img->layer_dirs, img->n_layers);
	img_strv_free(img->diff_ids, img->n_layers);
	free(img);
}

int img_record_to_image(struct img_store *s, const struct img_record *r, const char *name, struct img_image **out,
			vt_err *err)
{
	struct img_image *img = calloc(1, sizeof(*img));
	if (!img)
		return vt_fail_errno(err, ENOMEM, "image");
	snprintf(img->id, sizeof(img->id), "%s", r->id);
	img->config = json_object_get(r->config);
	if (img_record_diff_ids(r, &img->diff_ids, &img->n_layers, err) < 0) {
		img_image_free(img);
		return -1;
	}
	if ((name && !(img->name = strdup(name))) || !(img->layer_dirs = calloc(img->n_layers + 1, sizeof(char *)))) {
		img_image_free(img);
		return vt_fail_errno(err, ENOMEM, "image");
	}
	for (size_t i = 0; i < img->n_layers; i++) {
		img->layer_dirs[i] = img_layer_dir(s, img->diff_ids[i]);
		if (!img->layer_dirs[i] || img_layer_ensure(s, img->diff_ids[i], img->layer_dirs, i, err) < 0) {
			img_image_free(img);
			return -1;
		}
	}
	*out = img;
	return 0;
}

int img_resolve(struct img_store *s, const char *ref, struct img_image **out, vt_err *err)
{
	/* Exclusive: a layer that went missing is unpacked again here. */
	if (img_store_lock(s, true, err) < 0)
		return -1;
	struct img_catalog c;
	int rc = img_catalog_load(s, &c, err);
	if (rc == 0) {
		const char *matched = NULL;
		struct img_record *r = img_catalog_find(&c, ref, &matched, err);
		rc = r ? img_record_to_image(s, r, matched, out, err) : -1;
		img_catalog_free(&c);
	}
	img_store_unlock(s);
	return rc;
}

/* --- mounting --- */

#define MOUNT_POINTS_DIR ".mountpoints"

/* Does the same layer come again higher up? overlayfs refuses a directory listed twice (ELOOP), and the lower
 * copy changes nothing: every entry it has (files, whiteouts, opaque markers) the higher copy has too, and the
 * higher one wins. So an image with `COPY x; RUN rm x; COPY x` mounts without it. */
static bool layer_is_repeated_above(const struct img_image *img, size_t i)
{
	for (size_t j = i + 1; j < img->n_layers; j++)
		if (!strcmp(img->diff_ids[j], img->diff_ids[i]))
			return true;
	return false;
}

/* The lower dirs as short links relative to <root>/layers, top first, the mount points last:
 * "l/<16 hex>:l/<16 hex>:.mountpoints". */
static char *lowerdir_option(struct img_store *s, const struct img_image *img, vt_err *err)
{
	size_t cap = img->n_layers * 20 + sizeof(MOUNT_POINTS_DIR), len = 0;
	char *o = malloc(cap);
	if (!o) {
		vt_fail_errno(err, ENOMEM, "mount options");
		return NULL;
	}
	for (size_t i = img->n_layers; i-- > 0;) {
		if (layer_is_repeated_above(img, i))
			continue;
		if (img_layer_link(s, img->diff_ids[i], NULL, err) < 0) {
			free(o);
			return NULL;
		}
		len += (size_t)snprintf(o + len, cap - len, "l/%.16s:", img_digest_hex(img->diff_ids[i]));
	}
	snprintf(o + len, cap - len, "%s", MOUNT_POINTS_DIR);
	return o;
}

/* The bottom layer of every mount: the empty directories and files that a container's mounts cover (its
 * /proc, /dev, /sys and /etc files), for an image that lacks them. The image's own entries win over them;
 * without this layer the runtime would make them at each start in the container's upper dir, on disk, where
 * each costs an inode made and freed again (a quarter of a millisecond on a disk that has just freed some). */
static const struct {
	const char *path;
	bool dir;
} mount_points[] = {
	{ "proc", true }, { "dev", true }, { "sys", true }, { "etc", true },
	{ "etc/hosts", false }, { "etc/resolv.conf", false }, { "etc/hostname", false },
};

static int fill_mount_points(const char *dir)
{
	if (mkdir(dir, 0755))
		return -1;
	for (size_t i = 0; i < ARRAY_SIZE(mount_points); i++) {
		char p[PATH_MAX];
		snprintf(p, sizeof(p), "%s/%s", dir, mount_points[i].path);
		if (mount_points[i].dir) {
			if (mkdir(p, 0755))
				return -1;
			continue;
		}
		int fd = open(p, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
		if (fd < 0)
			return -1;
		close(fd);
	}
	return 0;
}

/* Made once per store, whole or not at all: built aside, then renamed into place (a concurrent maker's
 * rename loses harmlessly). */
static int ensure_mount_points(struct img_store *s, vt_err *err)
{
	cleanup_free char *path = img_path(s, "layers/" MOUNT_POINTS_DIR);
	cleanup_free char *tmp = NULL;
	if (!path)
		return vt_fail_errno(err, ENOMEM, "mount points");
	if (!access(path, F_OK))
		return 0;
	if (asprintf(&tmp, "%s.tmp-%d", path, (int)getpid()) < 0)
		return vt_fail_errno(err, ENOMEM, "mount points");
	rt_remove_tree(tmp);
	int rc = 0;
	if (fill_mount_points(tmp))
		rc = vt_fail_errno(err, errno, "cannot make %s", tmp);
	else if (rename(tmp, path) && errno != EEXIST && errno != ENOTEMPTY)
		rc = vt_fail_errno(err, errno, "cannot make %s", path);
	rt_remove_tree(tmp);
	return rc;
}

/* overlayfs's "volatile" (Linux 5.10): no sync of the upper dir, ever, not even at umount, where overlayfs
 * would otherwise sync the whole upper file system. Only for an upper dir that is thrown away after use; a
 * kernel without the option mounts without it. */
int img_mount_overlay(const char *data, bool scratch, const char *target)
{
	char with[4200];
	if (scratch && (size_t)snprintf(with, sizeof(with), "%s,volatile", data) < sizeof(with) &&
	    mount("overlay", target, "overlay", 0, with) == 0)
		return 0;
	if (scratch && errno != EINVAL)
		return -1;
	return mount("overlay", target, "overlay", 0, data);
}

static int mount_in_layers(struct img_store *s, const char *data, bool scratch, const char *target, vt_err *err)
{
	cleanup_free char *layers = img_path(s, "layers");
	cleanup_close int old_cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (!layers || old_cwd < 0)
		return vt_fail_errno(err, errno ? errno : ENOMEM, "mount");
	if (ensure_mount_points(s, err))
		return -1;
	if (chdir(layers) < 0)
		return vt_fail_errno(err, errno, "cannot enter %s", layers);
	int rc = 0;
	if (img_mount_overlay(data, scratch, target) < 0)
		rc = vt_fail_errno(err, errno, "cannot mount the image's layers on %s", target);
	if (fchdir(old_cwd) < 0 && rc == 0)
		rc = vt_fail_errno(err, errno, "cannot return to the working directory");
	return rc;
}

int img_mount(struct img_store *s, const struct img_image *img, const char *upper_dir, const char *work_dir,
	      const char *target, bool scratch, vt_err *err)
{
	cleanup_free char *upper = realpath(upper_dir, NULL);
	cleanup_free char *work = realpath(work_dir, NULL);
	cleanup_free char *tgt = realpath(target, NULL);
	if (!upper || !work || !tgt)
		return vt_fail_errno(err, errno, "overlay directories (%s, %s, %s)", upper_dir, work_dir, target);
	cleanup_free char *lower = lowerdir_option(s, img, err);
	cleanup_free char *data = NULL;
	if (!lower)
		return -1;
	if (asprintf(&data, "lowerdir=%s,upperdir=%s,workdir=%s", lower, upper, work) < 0)
		return vt_fail_errno(err, ENOMEM, "mount options");
	if (strlen(data) >= 4096)
		return vt_fail(err, "image %s has too many layers to mount (%zu)", img->id, img->n_layers);
	return mount_in_layers(s, data, scratch, tgt, err);
}

/* A new image from a parent plus one layer packed from an overlayfs upper dir (container commit, build steps).
 * The layer is kept uncompressed: packing once and hashing once is all a commit costs. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "image/internal.h"
#include "lib/util.h"

/* Pack upper_dir into a temporary tar, then unpack that into the store (blob + layer dir). */
static int add_layer(struct img_store *s, const struct img_image *parent, const char *upper_dir,
		     char diff_id[IMG_ID_LEN + 1], struct img_txn *txn, vt_err *err)
{
	cleanup_free char *tmp = img_path(s, "tmp/commit-XXXXXX");
	if (!tmp)
		return vt_fail_errno(err, ENOMEM, "commit");
	cleanup_close int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return vt_fail_errno(err, errno, "cannot create %s", tmp);
	unlink(tmp);
	if (img_layer_pack(upper_dir, fd, err) < 0)
		return vt_err_prefix(err, "packing %s", upper_dir);
	if (lseek(fd, 0, SEEK_SET) < 0)
		return vt_fail_errno(err, errno, "commit");
	char compressed[IMG_ID_LEN + 1];
	return img_layer_unpack(s, fd, parent ? parent->layer_dirs : NULL, parent ? parent->n_layers : 0, diff_id,
				compressed, txn, err);
}

static void set_rootfs(json_object *config, const struct img_image *parent, const char *new_diff_id)
{
	json_object *rootfs = json_object_new_object(), *ids = json_object_new_array();
	json_object_object_add(rootfs, "type", json_object_new_string("layers"));
	for (size_t i = 0; parent && i < parent->n_layers; i++)
		json_object_array_add(ids, json_object_new_string(parent->diff_ids[i]));
	if (new_diff_id)
		json_object_array_add(ids, json_object_new_string(new_diff_id));
	json_object_object_add(rootfs, "diff_ids", ids);
	json_object_object_add(config, "rootfs", rootfs);
}

static void add_history(json_object *config, const struct img_image *parent, const char *created,
			const char *created_by, bool empty_layer)
{
	json_object *history;
	if (!json_object_object_get_ex(config, "history", &history) || !json_object_is_type(history, json_type_array)) {
		json_object *from;
		history = NULL;
		if (parent && json_object_object_get_ex(parent->config, "history", &from))
			json_object_deep_copy(from, &history, NULL);
		if (!history)
			history = json_object_new_array();
		json_object_object_add(config, "history", history);
	}
	json_object *h = json_object_new_object();
	json_object_object_add(h, "created", json_object_new_string(created));
	if (created_by)
		json_object_object_add(h, "created_by", json_object_new_string(created_by));
	if (empty_layer)
		json_object_object_add(h, "empty_layer", json_object_new_boolean(true));
	json_object_array_add(history, h);
}

static void set_platform(json_object *config)
{
	if (!json_object_object_get_ex(config, "architecture", NULL))
		json_object_object_add(config, "architecture", json_object_new_string(img_host_arch()));
	if (!json_object_object_get_ex(config, "os", NULL))
		json_object_object_add(config, "os", json_object_new_string("linux"));
}

static int commit_locked(struct img_store *s, const struct img_image *parent, const char *upper_dir,
			 json_object *config, const char *created_by, const char *name, char out_id[IMG_ID_LEN + 1],
			 vt_err *err)
{
	struct img_txn txn = { 0 };
	char diff_id[IMG_ID_LEN + 1];
	if (upper_dir && add_layer(s, parent, upper_dir, diff_id, &txn, err) < 0)
		return -1;
	char now[40];
	img_now_rfc3339(now);
	json_object_object_add(config, "created", json_object_new_string(now));
	set_platform(config);
	set_rootfs(config, parent, upper_dir ? diff_id : NULL);
	add_history(config, parent, now, created_by, !upper_dir);
	size_t n = (parent ? parent->n_layers : 0) + (upper_dir ? 1 : 0);
	char **ids = calloc(n + 1, sizeof(*ids));
	if (!ids) {
		img_txn_rollback(&txn);
		return vt_fail_errno(err, ENOMEM, "commit");
	}
	for (size_t i = 0; parent && i < parent->n_layers; i++)
		ids[i] = parent->diff_ids[i];
	if (upper_dir)
		ids[n - 1] = diff_id;
	int rc = img_store_image(s, config, NULL, 0, ids, n, name, out_id, &txn, err);
	free(ids);
	if (rc < 0)
		img_txn_rollback(&txn);
	else
		img_txn_done(&txn);
	return rc;
}

int img_commit(struct img_store *s, const struct img_image *parent, const char *upper_dir, json_object *config,
	       const char *history_created_by, const char *name, char out_id[IMG_ID_LEN + 1], vt_err *err)
{
	cleanup_free char *norm = NULL;
	if (name && img_normalize_name(name, &norm, err) < 0)
		return -1;
	if (!config || !json_object_is_type(config, json_type_object))
		return vt_fail(err, "commit needs an image config object");
	if (img_store_lock(s, true, err) < 0)
		return -1;
	int rc = commit_locked(s, parent, upper_dir, config, history_created_by, norm, out_id, err);
	img_store_unlock(s);
	return rc;
}

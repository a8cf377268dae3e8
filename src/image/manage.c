/* Listing, tagging, removing and describing images. */
#include <dirent.h>
#include <unistd.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "image/internal.h"
#include "lib/util.h"

void img_strings_free(char **v, size_t n)
{
	img_strv_free(v, n);
}

static long long parse_created(json_object *config)
{
	json_object *c;
	if (!json_object_object_get_ex(config, "created", &c))
		return 0;
	struct tm tm = { 0 };
	const char *end = strptime(json_object_get_string(c), "%Y-%m-%dT%H:%M:%S", &tm);
	return end ? (long long)timegm(&tm) : 0;
}

static unsigned long long layers_size(json_object *manifest)
{
	json_object *layers;
	unsigned long long total = 0;
	if (!json_object_object_get_ex(manifest, "layers", &layers))
		return 0;
	for (size_t i = 0; i < json_object_array_length(layers); i++) {
		json_object *size;
		if (json_object_object_get_ex(json_object_array_get_idx(layers, i), "size", &size))
			total += (unsigned long long)json_object_get_int64(size);
	}
	return total;
}

static char **strv_dup(char *const *v, size_t n)
{
	char **o = calloc(n + 1, sizeof(*o));
	for (size_t i = 0; o && i < n; i++)
		if (!(o[i] = strdup(v[i]))) {
			img_strv_free(o, n);
			return NULL;
		}
	return o;
}

int img_list(struct img_store *s, struct img_summary **out, size_t *n, vt_err *err)
{
	if (img_store_lock(s, false, err) < 0)
		return -1;
	struct img_catalog c;
	int rc = img_catalog_load(s, &c, err);
	img_store_unlock(s);
	if (rc < 0)
		return -1;
	struct img_summary *l = calloc(c.n + 1, sizeof(*l));
	for (size_t i = 0; l && i < c.n; i++) {
		struct img_record *r = &c.images[i];
		snprintf(l[i].id, sizeof(l[i].id), "%s", r->id);
		l[i].names = strv_dup(r->names, r->n_names);
		l[i].n_names = r->n_names;
		l[i].created = parse_created(r->config);
		l[i].size = layers_size(r->manifest);
	}
	*n = c.n;
	img_catalog_free(&c);
	if (!l)
		return vt_fail_errno(err, ENOMEM, "image list");
	*out = l;
	return 0;
}

void img_list_free(struct img_summary *l, size_t n)
{
	for (size_t i = 0; l && i < n; i++)
		img_strv_free(l[i].names, l[i].n_names);
	free(l);
}

int img_tag(struct img_store *s, const char *ref, const char *new_name, vt_err *err)
{
	cleanup_free char *norm = NULL;
	if (img_normalize_name(new_name, &norm, err) < 0)
		return -1;
	if (img_store_lock(s, true, err) < 0)
		return -1;
	struct img_catalog c;
	int rc = img_catalog_load(s, &c, err);
	if (rc == 0) {
		struct img_record *r = img_catalog_find(&c, ref, NULL, err);
		size_t size;
		rc = -1;
		if (r && img_blob_size(s, r->manifest_digest, &size, err) == 0) {
			img_index_set_name(c.index, r->manifest_digest, size, norm);
			rc = img_index_save(s, c.index, err);
		}
		img_catalog_free(&c);
	}
	img_store_unlock(s);
	return rc;
}

/* --- removal --- */

/* The name of a container whose record pins image id, or NULL. */
static char *container_using(struct img_store *s, const char *id)
{
	cleanup_free char *dir = img_path(s, "containers");
	DIR *d = dir ? opendir(dir) : NULL;
	if (!d)
		return NULL;
	char *user = NULL;
	for (struct dirent *e; !user && (e = readdir(d));) {
		if (e->d_name[0] == '.')
			continue;
		cleanup_free char *path = NULL;
		if (asprintf(&path, "%s/%s/container.json", dir, e->d_name) < 0)
			break;
		json_object *c = json_object_from_file(path), *v;
		if (c && json_object_object_get_ex(c, "image_id", &v) && !strcmp(json_object_get_string(v), id)) {
			const char *name = json_object_object_get_ex(c, "name", &v) ? json_object_get_string(v) : e->d_name;
			user = strdup(name ? name : e->d_name);
		}
		json_object_put(c);
	}
	closedir(d);
	return user;
}

static bool manifest_has_layer(json_object *manifest, const char *digest)
{
	json_object *layers;
	if (!json_object_object_get_ex(manifest, "layers", &layers))
		return false;
	for (size_t i = 0; i < json_object_array_length(layers); i++) {
		json_object *d;
		if (json_object_object_get_ex(json_object_array_get_idx(layers, i), "digest", &d) &&
		    !strcmp(json_object_get_string(d), digest))
			return true;
	}
	return false;
}

/* Is digest (a manifest, config or layer) used by an image of c other than skip? */
static bool used_elsewhere(const struct img_catalog *c, const struct img_record *skip, const char *digest)
{
	for (size_t i = 0; i < c->n; i++) {
		const struct img_record *r = &c->images[i];
		if (r == skip)
			continue;
		if (!strcmp(r->manifest_digest, digest) || !strcmp(r->id, digest) || manifest_has_layer(r->manifest, digest))
			return true;
	}
	return false;
}

/* A layer goes in two steps: renamed away (so no half layer keeps its name), then deleted. */
static void remove_layer(struct img_store *s, const char *diff_id)
{
	const char *hex = img_digest_hex(diff_id);
	cleanup_free char *dir = img_layer_dir(s, diff_id), *link = img_path(s, "layers/l/%.16s", hex);
	cleanup_free char *doomed = img_path(s, "layers/.rm-%s", hex);
	char target[IMG_HEX_LEN + 8] = { 0 };
	if (link && readlink(link, target, sizeof(target) - 1) > 0 && !strcmp(target + 3, hex))
		unlink(link);
	if (dir && doomed && rename(dir, doomed) == 0)
		img_rm_rf(doomed);
	cleanup_free char *blob = img_blob_path(s, diff_id);
	if (blob)
		unlink(blob);
}

static void remove_unused(struct img_store *s, const struct img_catalog *c, const struct img_record *r)
{
	json_object *layers;
	if (json_object_object_get_ex(r->manifest, "layers", &layers))
		for (size_t i = 0; i < json_object_array_length(layers); i++) {
			const char *d = json_object_get_string(json_object_object_get(json_object_array_get_idx(layers, i),
										       "digest"));
			if (d && !used_elsewhere(c, r, d))
				remove_layer(s, d);
		}
	const char *blobs[] = { r->manifest_digest, r->id };
	for (size_t i = 0; i < ARRAY_SIZE(blobs); i++) {
		cleanup_free char *p = img_blob_path(s, blobs[i]);
		if (p && !used_elsewhere(c, r, blobs[i]))
			unlink(p);
	}
}

static int remove_locked(struct img_store *s, struct img_catalog *c, const char *ref, bool *untagged,
			 char removed_id[IMG_ID_LEN + 1], vt_err *err)
{
	const char *matched = NULL;
	struct img_record *r = img_catalog_find(c, ref, &matched, err);
	if (!r)
		return -1;
	snprintf(removed_id, IMG_ID_LEN + 1, "%s", r->id);
	*untagged = matched && r->n_names > 1;
	if (*untagged) {
		img_index_remove(c->index, r->manifest_digest, matched, true);
		return img_index_save(s, c->index, err);
	}
	cleanup_free char *user = container_using(s, r->id);
	if (user)
		return vt_fail(err, "image '%s' is used by container '%s' (remove the container first)", ref, user);
	img_index_remove(c->index, r->manifest_digest, NULL, false);
	if (img_index_save(s, c->index, err) < 0)
		return -1;
	remove_unused(s, c, r);
	return 0;
}

int img_remove(struct img_store *s, const char *ref, bool *untagged, char removed_id[IMG_ID_LEN + 1], vt_err *err)
{
	if (img_store_lock(s, true, err) < 0)
		return -1;
	struct img_catalog c;
	int rc = img_catalog_load(s, &c, err);
	if (rc == 0) {
		rc = remove_locked(s, &c, ref, untagged, removed_id, err);
		img_catalog_free(&c);
	}
	img_store_unlock(s);
	return rc;
}

/* --- inspect --- */

static json_object *copy_field(json_object *from, const char *key)
{
	json_object *v, *out = NULL;
	if (!json_object_object_get_ex(from, key, &v) || json_object_deep_copy(v, &out, NULL) < 0)
		return NULL;
	return out;
}

static void add_if_set(json_object *o, const char *key, json_object *v)
{
	if (v)
		json_object_object_add(o, key, v);
}

static json_object *string_array(char *const *v, size_t n)
{
	json_object *a = json_object_new_array();
	for (size_t i = 0; i < n; i++)
		json_object_array_add(a, json_object_new_string(v[i]));
	return a;
}

static json_object *inspect_of(const struct img_record *r)
{
	json_object *o = json_object_new_object(), *cfg = r->config, *run = NULL, *labels = NULL;
	json_object_object_add(o, "Id", json_object_new_string(r->id + 7));
	json_object_object_add(o, "Digest", json_object_new_string(r->manifest_digest));
	json_object_object_add(o, "RepoTags", string_array(r->names, r->n_names));
	json_object_object_add(o, "RepoDigests", json_object_new_array());
	add_if_set(o, "Created", copy_field(cfg, "created"));
	run = copy_field(cfg, "config");
	json_object_object_add(o, "Config", run ? run : json_object_new_object());
	add_if_set(o, "Author", copy_field(cfg, "author"));
	add_if_set(o, "Architecture", copy_field(cfg, "architecture"));
	add_if_set(o, "Os", copy_field(cfg, "os"));
	json_object_object_add(o, "Size", json_object_new_int64((int64_t)layers_size(r->manifest)));
	json_object_object_add(o, "VirtualSize", json_object_new_int64((int64_t)layers_size(r->manifest)));
	if (run && json_object_object_get_ex(run, "Labels", &labels))
		json_object_object_add(o, "Labels", json_object_get(labels));
	json_object *rootfs = json_object_new_object(), *from;
	json_object_object_add(rootfs, "Type", json_object_new_string("layers"));
	json_object_object_add(rootfs, "Layers",
			       json_object_object_get_ex(cfg, "rootfs", &from) ? copy_field(from, "diff_ids") : NULL);
	json_object_object_add(o, "RootFS", rootfs);
	json_object *history = copy_field(cfg, "history");
	json_object_object_add(o, "History", history ? history : json_object_new_array());
	json_object_object_add(o, "ManifestType", json_object_new_string(MT_OCI_MANIFEST));
	return o;
}

int img_inspect_json(struct img_store *s, const char *ref, json_object **out, vt_err *err)
{
	if (img_store_lock(s, false, err) < 0)
		return -1;
	struct img_catalog c;
	int rc = img_catalog_load(s, &c, err);
	img_store_unlock(s);
	if (rc < 0)
		return -1;
	struct img_record *r = img_catalog_find(&c, ref, NULL, err);
	if (r)
		*out = inspect_of(r);
	img_catalog_free(&c);
	return r ? 0 : -1;
}

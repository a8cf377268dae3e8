/* The index (image/index.json): which manifests the store holds and their names; name normalisation and
 * lookup by name or (short) id. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "image/internal.h"
#include "lib/util.h"

static bool valid_name_chars(const char *s)
{
	if (!*s)
		return false;
	for (const char *p = s; *p; p++)
		if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || strchr("._-/:", *p)))
			return false;
	return true;
}

/* Does the first path component name a registry ("example.com", "host:5000", "localhost")? */
static bool has_domain(const char *ref)
{
	const char *slash = strchr(ref, '/');
	if (!slash)
		return false;
	size_t n = (size_t)(slash - ref);
	return memchr(ref, '.', n) || memchr(ref, ':', n) || (n == 9 && !strncmp(ref, "localhost", 9));
}

int img_normalize_name(const char *ref, char **out, vt_err *err)
{
	if (!ref || !valid_name_chars(ref) || strstr(ref, "//") || ref[0] == '/' || ref[strlen(ref) - 1] == '/' ||
	    ref[strlen(ref) - 1] == ':')
		return vt_fail(err, "invalid image name '%s' (lower-case letters, digits, '.', '_', '-', '/', ':TAG')",
			       ref ? ref : "");
	const char *last = strrchr(ref, '/');
	const char *tag = strchr(last ? last : ref, ':');
	int n = asprintf(out, "%s%s%s", has_domain(ref) ? "" : "localhost/", ref, tag ? "" : ":latest");
	if (n < 0)
		return vt_fail_errno(err, ENOMEM, "image name");
	return 0;
}

int img_index_load(struct img_store *s, json_object **out, vt_err *err)
{
	cleanup_free char *path = img_path(s, "image/index.json");
	cleanup_free void *data = NULL;
	size_t size;
	if (!path || read_file(path, IMG_JSON_MAX, &data, &size, err) < 0)
		return path ? -1 : vt_fail_errno(err, ENOMEM, "index");
	json_object *idx = img_json_parse(data, size);
	json_object *m;
	if (!idx || !json_object_object_get_ex(idx, "manifests", &m) || !json_object_is_type(m, json_type_array)) {
		json_object_put(idx);
		return vt_fail(err, "%s is damaged (not an OCI index)", path);
	}
	*out = idx;
	return 0;
}

int img_index_save(struct img_store *s, json_object *index, vt_err *err)
{
	cleanup_free char *path = img_path(s, "image/index.json");
	size_t len;
	const char *text = json_object_to_json_string_length(index, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
							     &len);
	if (!path || !text)
		return vt_fail_errno(err, ENOMEM, "index");
	return img_write_atomic(path, text, len, err);
}

static const char *entry_digest(json_object *e)
{
	json_object *d;
	return json_object_object_get_ex(e, "digest", &d) ? json_object_get_string(d) : NULL;
}

static const char *entry_name(json_object *e)
{
	json_object *a, *n;
	if (!json_object_object_get_ex(e, "annotations", &a) || !json_object_object_get_ex(a, IMG_REF_NAME, &n))
		return NULL;
	return json_object_get_string(n);
}

static json_object *new_entry(const char *digest, size_t size, const char *name)
{
	json_object *e = json_object_new_object();
	json_object_object_add(e, "mediaType", json_object_new_string(MT_OCI_MANIFEST));
	json_object_object_add(e, "digest", json_object_new_string(digest));
	json_object_object_add(e, "size", json_object_new_int64((int64_t)size));
	if (name) {
		json_object *a = json_object_new_object();
		json_object_object_add(a, IMG_REF_NAME, json_object_new_string(name));
		json_object_object_add(e, "annotations", a);
	}
	return e;
}

/* Drop entries matching (digest or any when NULL) and (name, or unnamed when name is NULL). */
static void index_drop(json_object *m, const char *digest, const char *name, bool match_unnamed)
{
	for (size_t i = json_object_array_length(m); i-- > 0;) {
		json_object *e = json_object_array_get_idx(m, i);
		const char *d = entry_digest(e), *n = entry_name(e);
		if (digest && (!d || strcmp(d, digest)))
			continue;
		if (match_unnamed ? n != NULL : (!n || !name || strcmp(n, name)))
			continue;
		json_object_array_del_idx(m, i, 1);
	}
}

static bool index_has_digest(json_object *m, const char *digest)
{
	for (size_t i = 0; i < json_object_array_length(m); i++) {
		const char *d = entry_digest(json_object_array_get_idx(m, i));
		if (d && !strcmp(d, digest))
			return true;
	}
	return false;
}

/* The entry naming name, moved to manifest_digest; the image that loses it stays, unnamed, if that was its
 * last name (podman shows it as <none>). */
static void move_name(json_object *m, const char *manifest_digest, const char *name)
{
	for (size_t i = 0; i < json_object_array_length(m); i++) {
		json_object *e = json_object_array_get_idx(m, i);
		const char *n = entry_name(e);
		if (!n || strcmp(n, name))
			continue;
		cleanup_free char *old = strdup(entry_digest(e) ? entry_digest(e) : "");
		json_object *size = json_object_object_get(e, "size");
		int64_t old_size = size ? json_object_get_int64(size) : 0;
		json_object_array_del_idx(m, i, 1);
		i--;
		if (old && strcmp(old, manifest_digest) && img_digest_hex(old) && !index_has_digest(m, old))
			json_object_array_add(m, new_entry(old, (size_t)old_size, NULL));
	}
}

void img_index_set_name(json_object *index, const char *manifest_digest, size_t manifest_size, const char *name)
{
	json_object *m = json_object_object_get(index, "manifests");
	if (!name) {
		if (!index_has_digest(m, manifest_digest))
			json_object_array_add(m, new_entry(manifest_digest, manifest_size, NULL));
		return;
	}
	move_name(m, manifest_digest, name);
	index_drop(m, manifest_digest, NULL, true);
	json_object_array_add(m, new_entry(manifest_digest, manifest_size, name));
}

/* Remove one name; the image stays unnamed when it was its last one (keep_image), else goes from the index. */
void img_index_remove(json_object *index, const char *manifest_digest, const char *name, bool keep_image)
{
	json_object *m = json_object_object_get(index, "manifests");
	json_object *size = NULL;
	int64_t sz = 0;
	for (size_t i = 0; i < json_object_array_length(m); i++) {
		json_object *e = json_object_array_get_idx(m, i);
		const char *d = entry_digest(e);
		if (d && !strcmp(d, manifest_digest) && (size = json_object_object_get(e, "size")))
			sz = json_object_get_int64(size);
	}
	if (name)
		index_drop(m, manifest_digest, name, false);
	else
		for (size_t i = json_object_array_length(m); i-- > 0;) {
			const char *d = entry_digest(json_object_array_get_idx(m, i));
			if (d && !strcmp(d, manifest_digest))
				json_object_array_del_idx(m, i, 1);
		}
	if (keep_image && !index_has_digest(m, manifest_digest))
		json_object_array_add(m, new_entry(manifest_digest, (size_t)sz, NULL));
}

/* --- the catalog: the index read with each image's manifest and config --- */

static struct img_record *catalog_record(struct img_catalog *c, const char *digest)
{
	for (size_t i = 0; i < c->n; i++)
		if (!strcmp(c->images[i].manifest_digest, digest))
			return &c->images[i];
	struct img_record *grown = realloc(c->images, (c->n + 1) * sizeof(*grown));
	if (!grown)
		return NULL;
	c->images = grown;
	struct img_record *r = &c->images[c->n++];
	memset(r, 0, sizeof(*r));
	snprintf(r->manifest_digest, sizeof(r->manifest_digest), "%s", digest);
	return r;
}

static int record_add_name(struct img_record *r, const char *name)
{
	char **v = realloc(r->names, (r->n_names + 1) * sizeof(*v));
	if (!v)
		return -1;
	r->names = v;
	if (!(v[r->n_names] = strdup(name)))
		return -1;
	r->n_names++;
	return 0;
}

static int record_read(struct img_store *s, struct img_record *r, vt_err *err)
{
	if (img_blob_get_json(s, r->manifest_digest, &r->manifest, err) < 0)
		return -1;
	json_object *cfg, *d;
	if (!json_object_object_get_ex(r->manifest, "config", &cfg) || !json_object_object_get_ex(cfg, "digest", &d) ||
	    !img_digest_hex(json_object_get_string(d)))
		return vt_fail(err, "manifest %s has no config digest", r->manifest_digest);
	snprintf(r->id, sizeof(r->id), "%s", json_object_get_string(d));
	return img_blob_get_json(s, r->id, &r->config, err);
}

int img_catalog_load(struct img_store *s, struct img_catalog *c, vt_err *err)
{
	memset(c, 0, sizeof(*c));
	if (img_index_load(s, &c->index, err) < 0)
		return -1;
	json_object *m = json_object_object_get(c->index, "manifests");
	for (size_t i = 0; i < json_object_array_length(m); i++) {
		json_object *e = json_object_array_get_idx(m, i);
		const char *digest = entry_digest(e), *name = entry_name(e);
		if (!img_digest_hex(digest))
			continue;
		struct img_record *r = catalog_record(c, digest);
		if (!r || (name && record_add_name(r, name) < 0)) {
			img_catalog_free(c);
			return vt_fail_errno(err, ENOMEM, "index");
		}
	}
	for (size_t i = 0; i < c->n; i++)
		if (record_read(s, &c->images[i], err) < 0) {
			img_catalog_free(c);
			return vt_err_prefix(err, "image store");
		}
	return 0;
}

void img_strv_free(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

void img_catalog_free(struct img_catalog *c)
{
	for (size_t i = 0; i < c->n; i++) {
		json_object_put(c->images[i].manifest);
		json_object_put(c->images[i].config);
		img_strv_free(c->images[i].names, c->images[i].n_names);
	}
	free(c->images);
	json_object_put(c->index);
	memset(c, 0, sizeof(*c));
}

static struct img_record *find_by_name(struct img_catalog *c, const char *name, const char **matched)
{
	for (size_t i = 0; i < c->n; i++)
		for (size_t j = 0; j < c->images[i].n_names; j++)
			if (!strcmp(c->images[i].names[j], name)) {
				*matched = c->images[i].names[j];
				return &c->images[i];
			}
	return NULL;
}

/* A short name ("busybox", "library/busybox:1") also finds "docker.io/library/busybox:latest" etc. */
static struct img_record *find_by_short_name(struct img_catalog *c, const char *normalized, const char **matched)
{
	const char *path = normalized + strlen("localhost/");
	for (size_t i = 0; i < c->n; i++)
		for (size_t j = 0; j < c->images[i].n_names; j++) {
			const char *n = c->images[i].names[j];
			const char *slash = strchr(n, '/');
			if (!slash)
				continue;
			const char *rest = slash + 1;
			if (!strcmp(rest, path) || (!strncmp(rest, "library/", 8) && !strcmp(rest + 8, path))) {
				*matched = n;
				return &c->images[i];
			}
		}
	return NULL;
}

static struct img_record *find_by_id(struct img_catalog *c, const char *ref, vt_err *err)
{
	const char *hex = strncmp(ref, "sha256:", 7) ? ref : ref + 7;
	size_t len = strlen(hex);
	if (len < 12 || len > IMG_HEX_LEN || strspn(hex, "0123456789abcdef") != len)
		return NULL;
	struct img_record *found = NULL;
	for (size_t i = 0; i < c->n; i++) {
		if (strncmp(c->images[i].id + 7, hex, len))
			continue;
		if (found) {
			vt_fail(err, "image id '%s' is ambiguous (give more of it)", ref);
			return NULL;
		}
		found = &c->images[i];
	}
	return found;
}

struct img_record *img_catalog_find(struct img_catalog *c, const char *ref, const char **matched_name, vt_err *err)
{
	const char *matched = NULL;
	struct img_record *r = NULL;
	cleanup_free char *norm = NULL;
	vt_err name_err = { 0 };
	if (img_normalize_name(ref, &norm, &name_err) == 0) {
		r = find_by_name(c, norm, &matched);
		if (!r && !has_domain(ref))
			r = find_by_short_name(c, norm, &matched);
	}
	if (!r) {
		vt_fail(err, "image '%s' not found in the store", ref);
		r = find_by_id(c, ref, err);
	}
	if (matched_name)
		*matched_name = matched;
	return r;
}

int img_record_diff_ids(const struct img_record *r, char ***ids, size_t *n, vt_err *err)
{
	json_object *rootfs, *arr;
	if (!json_object_object_get_ex(r->config, "rootfs", &rootfs) ||
	    !json_object_object_get_ex(rootfs, "diff_ids", &arr) || !json_object_is_type(arr, json_type_array))
		return vt_fail(err, "image %s: its config has no rootfs.diff_ids", r->id);
	size_t len = json_object_array_length(arr);
	char **v = calloc(len + 1, sizeof(*v));
	if (!v)
		return vt_fail_errno(err, ENOMEM, "image");
	for (size_t i = 0; i < len; i++) {
		const char *d = json_object_get_string(json_object_array_get_idx(arr, i));
		if (!img_digest_hex(d) || !(v[i] = strdup(d))) {
			img_strv_free(v, len);
			return vt_fail(err, "image %s: bad diff id '%s'", r->id, d ? d : "");
		}
	}
	*ids = v;
	*n = len;
	return 0;
}

/* --- writing an image --- */

static json_object *descriptor(const char *media_type, const char *digest, size_t size)
{
	json_object *d = json_object_new_object();
	json_object_object_add(d, "mediaType", json_object_new_string(media_type));
	json_object_object_add(d, "digest", json_object_new_string(digest));
	json_object_object_add(d, "size", json_object_new_int64((int64_t)size));
	return d;
}

int img_blob_size(struct img_store *s, const char *digest, size_t *size, vt_err *err)
{
	cleanup_free char *p = img_blob_path(s, digest);
	struct stat st;
	if (!p || stat(p, &st) < 0)
		return vt_fail_errno(err, p ? errno : EINVAL, "layer blob %s", digest);
	*size = (size_t)st.st_size;
	return 0;
}

static json_object *build_manifest(struct img_store *s, const char *config_digest, size_t config_len,
				   char *const *diff_ids, size_t n, vt_err *err)
{
	json_object *m = json_object_new_object();
	json_object_object_add(m, "schemaVersion", json_object_new_int(2));
	json_object_object_add(m, "mediaType", json_object_new_string(MT_OCI_MANIFEST));
	json_object_object_add(m, "config", descriptor(MT_OCI_CONFIG, config_digest, config_len));
	json_object *layers = json_object_new_array();
	json_object_object_add(m, "layers", layers);
	for (size_t i = 0; i < n; i++) {
		size_t size;
		if (img_blob_size(s, diff_ids[i], &size, err) < 0) {
			json_object_put(m);
			return NULL;
		}
		json_object_array_add(layers, descriptor(MT_OCI_LAYER, diff_ids[i], size));
	}
	return m;
}

int img_store_image(struct img_store *s, json_object *config_obj, const void *config_raw, size_t config_len,
		    char *const *diff_ids, size_t n_layers, const char *name, char out_id[IMG_ID_LEN + 1],
		    struct img_txn *txn, vt_err *err)
{
	char cfg_digest[IMG_ID_LEN + 1], man_digest[IMG_ID_LEN + 1];
	int rc = config_raw ? img_blob_put(s, config_raw, config_len, cfg_digest, txn, err)
			    : img_blob_put_json(s, config_obj, cfg_digest, &config_len, txn, err);
	if (rc < 0)
		return -1;
	json_object *manifest = build_manifest(s, cfg_digest, config_len, diff_ids, n_layers, err);
	size_t man_len;
	if (!manifest)
		return -1;
	rc = img_blob_put_json(s, manifest, man_digest, &man_len, txn, err);
	json_object_put(manifest);
	json_object *index = NULL;
	if (rc < 0 || img_index_load(s, &index, err) < 0)
		return -1;
	img_index_set_name(index, man_digest, man_len, name);
	rc = img_index_save(s, index, err);
	json_object_put(index);
	if (rc == 0)
		snprintf(out_id, IMG_ID_LEN + 1, "%s", cfg_digest);
	return rc;
}

/* `image save`: the shape Docker 25+ writes, which both podman and docker load: an OCI image layout
 * (oci-layout, index.json, blobs/sha256/...) that also carries Docker's manifest.json and repositories, pointing
 * at the same blobs. Layers are stored uncompressed and gzip-compressed here, on export only (into temp files
 * under <root>/tmp, since the tar header needs each blob's size and the manifest its digest). The archive is
 * written to FILE.tmp-* and renamed, so a failed save leaves no half file. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "image/archive_api.h"
#include "image/internal.h"
#include "lib/util.h"

struct gz_layer {
	char digest[IMG_ID_LEN + 1];
	char *path; /* temp file */
	size_t size;
};

struct save {
	struct img_store *s;
	struct archive *out;
	const struct img_record *r;
	char **names;
	size_t n_names;
	struct gz_layer *layers;
	size_t n_layers;
	enum img_archive_format fmt;
	char buf[256 * 1024];
};

/* --- compressing one layer --- */

struct gz_sink {
	int fd;
	struct img_hash *h;
	size_t size;
};

static ssize_t gz_write(struct archive *a, void *opaque, const void *buf, size_t len)
{
	struct gz_sink *g = opaque;
	if (write_all(g->fd, buf, len) < 0) {
		archive_set_error(a, errno, "cannot write a compressed layer");
		return -1;
	}
	img_hash_update(g->h, buf, len);
	g->size += len;
	return (ssize_t)len;
}

static int gzip_blob(struct save *sv, const char *diff_id, int out_fd, struct gz_layer *l, vt_err *err)
{
	cleanup_free char *src = img_blob_path(sv->s, diff_id);
	cleanup_close int in = src ? open(src, O_RDONLY | O_CLOEXEC) : -1;
	if (in < 0)
		return vt_fail_errno(err, errno, "layer %s is missing from the store", diff_id);
	struct gz_sink g = { .fd = out_fd, .h = img_hash_new() };
	struct archive *a = archive_write_new();
	struct archive_entry *e = archive_entry_new();
	int rc = -1;
	if (!g.h || !a || !e) {
		vt_fail_errno(err, ENOMEM, "gzip");
		goto out;
	}
	archive_write_add_filter_gzip(a);
	archive_write_set_format_raw(a);
	archive_write_set_bytes_in_last_block(a, 1); /* no zero padding after the gzip stream */
	/* level 1: export speed matters more than the last percent of size; no time stamp: same bytes each time */
	archive_write_set_filter_option(a, "gzip", "compression-level", "1");
	archive_write_set_filter_option(a, "gzip", "timestamp", NULL);
	archive_entry_set_filetype(e, AE_IFREG);
	if (archive_write_open(a, &g, NULL, gz_write, NULL) != ARCHIVE_OK || archive_write_header(a, e) != ARCHIVE_OK) {
		vt_fail(err, "gzip: %s", archive_error_string(a));
		goto out;
	}
	for (;;) {
		ssize_t n = read(in, sv->buf, sizeof(sv->buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? vt_fail_errno(err, errno, "reading layer %s", diff_id) : 0;
			break;
		}
		if (archive_write_data(a, sv->buf, (size_t)n) < 0) {
			vt_fail(err, "gzip: %s", archive_error_string(a));
			break;
		}
	}
	if (rc == 0 && archive_write_close(a) != ARCHIVE_OK)
		rc = vt_fail(err, "gzip: %s", archive_error_string(a));
	if (rc == 0) {
		img_hash_final(steal_ptr(g.h), l->digest);
		l->size = g.size;
	}
out:
	if (a)
		archive_write_free(a);
	if (e)
		archive_entry_free(e);
	img_hash_free(g.h);
	return rc;
}

static int compress_layers(struct save *sv, char *const *diff_ids, size_t n, vt_err *err)
{
	sv->layers = calloc(n + 1, sizeof(*sv->layers));
	if (!sv->layers)
		return vt_fail_errno(err, ENOMEM, "save");
	sv->n_layers = n;
	for (size_t i = 0; i < n; i++) {
		struct gz_layer *l = &sv->layers[i];
		l->path = img_path(sv->s, "tmp/save-XXXXXX");
		int fd = l->path ? mkostemp(l->path, O_CLOEXEC) : -1;
		if (fd < 0) {
			free(l->path);
			l->path = NULL;
			return vt_fail_errno(err, errno, "cannot create a temporary file in the store");
		}
		int rc = gzip_blob(sv, diff_ids[i], fd, l, err);
		close(fd);
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* --- writing the archive --- */

static int add_header(struct save *sv, const char *name, size_t size, vt_err *err)
{
	struct archive_entry *e = archive_entry_new();
	if (!e)
		return vt_fail_errno(err, ENOMEM, "save");
	archive_entry_set_pathname(e, name);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0644);
	archive_entry_set_size(e, (la_int64_t)size);
	archive_entry_set_mtime(e, 0, 0);
	int r = archive_write_header(sv->out, e);
	archive_entry_free(e);
	return r == ARCHIVE_OK ? 0 : vt_fail(err, "writing %s: %s", name, archive_error_string(sv->out));
}

static int add_bytes(struct save *sv, const char *name, const void *data, size_t len, vt_err *err)
{
	if (add_header(sv, name, len, err) < 0)
		return -1;
	if (len && archive_write_data(sv->out, data, len) != (la_ssize_t)len)
		return vt_fail(err, "writing %s: %s", name, archive_error_string(sv->out));
	return 0;
}

static int add_json(struct save *sv, const char *name, json_object *o, vt_err *err)
{
	size_t len;
	const char *t = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	return t ? add_bytes(sv, name, t, len, err) : vt_fail_errno(err, ENOMEM, "save");
}

static int add_file(struct save *sv, const char *name, const char *path, size_t size, vt_err *err)
{
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return vt_fail_errno(err, errno, "cannot open %s", path);
	if (add_header(sv, name, size, err) < 0)
		return -1;
	for (;;) {
		ssize_t n = read(fd, sv->buf, sizeof(sv->buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return vt_fail_errno(err, errno, "reading %s", path);
		if (n == 0)
			return 0;
		if (archive_write_data(sv->out, sv->buf, (size_t)n) != n)
			return vt_fail(err, "writing %s: %s", name, archive_error_string(sv->out));
	}
}

static json_object *descriptor(const char *media_type, const char *digest, size_t size)
{
	json_object *d = json_object_new_object();
	json_object_object_add(d, "mediaType", json_object_new_string(media_type));
	json_object_object_add(d, "digest", json_object_new_string(digest));
	json_object_object_add(d, "size", json_object_new_int64((int64_t)size));
	return d;
}

static json_object *export_manifest(struct save *sv, size_t config_size)
{
	json_object *m = json_object_new_object(), *layers = json_object_new_array();
	json_object_object_add(m, "schemaVersion", json_object_new_int(2));
	json_object_object_add(m, "mediaType", json_object_new_string(MT_OCI_MANIFEST));
	json_object_object_add(m, "config", descriptor(MT_OCI_CONFIG, sv->r->id, config_size));
	for (size_t i = 0; i < sv->n_layers; i++)
		json_object_array_add(layers, descriptor(MT_OCI_LAYER_GZ, sv->layers[i].digest, sv->layers[i].size));
	json_object_object_add(m, "layers", layers);
	return m;
}

static json_object *export_index(struct save *sv, const char *manifest_digest, size_t manifest_size)
{
	json_object *idx = json_object_new_object(), *list = json_object_new_array();
	json_object_object_add(idx, "schemaVersion", json_object_new_int(2));
	json_object_object_add(idx, "mediaType", json_object_new_string(MT_OCI_INDEX));
	for (size_t i = 0; i < (sv->n_names ? sv->n_names : 1); i++) {
		json_object *d = descriptor(MT_OCI_MANIFEST, manifest_digest, manifest_size);
		if (sv->n_names) {
			json_object *a = json_object_new_object();
			json_object_object_add(a, "io.containerd.image.name", json_object_new_string(sv->names[i]));
			json_object_object_add(a, IMG_REF_NAME, json_object_new_string(sv->names[i]));
			json_object_object_add(d, "annotations", a);
		}
		json_object_array_add(list, d);
	}
	json_object_object_add(idx, "manifests", list);
	return idx;
}

static char *blob_name(const char *digest)
{
	char *n = NULL;
	return asprintf(&n, "blobs/sha256/%s", digest + 7) < 0 ? NULL : n;
}

/* manifest.json and repositories: what docker-archive readers look for. */
static json_object *docker_manifest(struct save *sv)
{
	json_object *e = json_object_new_object(), *tags = json_object_new_array(), *layers = json_object_new_array();
	char *cfg = blob_name(sv->r->id);
	json_object_object_add(e, "Config", json_object_new_string(cfg ? cfg : ""));
	free(cfg);
	for (size_t i = 0; i < sv->n_names; i++)
		json_object_array_add(tags, json_object_new_string(sv->names[i]));
	json_object_object_add(e, "RepoTags", tags);
	for (size_t i = 0; i < sv->n_layers; i++) {
		char *n = blob_name(sv->layers[i].digest);
		json_object_array_add(layers, json_object_new_string(n ? n : ""));
		free(n);
	}
	json_object_object_add(e, "Layers", layers);
	json_object *m = json_object_new_array();
	json_object_array_add(m, e);
	return m;
}

static json_object *docker_repositories(struct save *sv)
{
	json_object *repos = json_object_new_object();
	for (size_t i = 0; i < sv->n_names; i++) {
		cleanup_free char *repo = strdup(sv->names[i]);
		char *colon = repo ? strrchr(repo, ':') : NULL;
		if (!colon)
			continue;
		*colon = '\0';
		json_object *tags;
		if (!json_object_object_get_ex(repos, repo, &tags)) {
			tags = json_object_new_object();
			json_object_object_add(repos, repo, tags);
		}
		json_object_object_add(tags, colon + 1, json_object_new_string(sv->r->id + 7));
	}
	return repos;
}

static int write_metadata(struct save *sv, const char *man_digest, size_t man_len, vt_err *err)
{
	json_object *index = export_index(sv, man_digest, man_len);
	json_object *dm = docker_manifest(sv), *repos = docker_repositories(sv);
	static const char layout[] = "{\"imageLayoutVersion\":\"1.0.0\"}";
	int rc;
	/* the primary format's own files come first */
	if (sv->fmt == IMG_FORMAT_DOCKER_ARCHIVE)
		rc = add_json(sv, "manifest.json", dm, err) || add_json(sv, "repositories", repos, err) ||
		     add_bytes(sv, "oci-layout", layout, strlen(layout), err) || add_json(sv, "index.json", index, err);
	else
		rc = add_bytes(sv, "oci-layout", layout, strlen(layout), err) || add_json(sv, "index.json", index, err) ||
		     add_json(sv, "manifest.json", dm, err) || add_json(sv, "repositories", repos, err);
	json_object_put(index);
	json_object_put(dm);
	json_object_put(repos);
	return rc ? -1 : 0;
}

static int write_archive(struct save *sv, vt_err *err)
{
	cleanup_free void *config = NULL;
	size_t config_len;
	if (img_blob_get(sv->s, sv->r->id, &config, &config_len, err) < 0)
		return -1;
	json_object *manifest = export_manifest(sv, config_len);
	size_t man_len;
	const char *man_text = json_object_to_json_string_length(
		manifest, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &man_len);
	char man_digest[IMG_ID_LEN + 1];
	img_sha256(man_text, man_len, man_digest);
	cleanup_free char *man_name = blob_name(man_digest), *cfg_name = blob_name(sv->r->id);
	int rc = write_metadata(sv, man_digest, man_len, err);
	if (rc == 0)
		rc = add_bytes(sv, man_name, man_text, man_len, err);
	if (rc == 0)
		rc = add_bytes(sv, cfg_name, config, config_len, err);
	json_object_put(manifest);
	for (size_t i = 0; rc == 0 && i < sv->n_layers; i++) {
		cleanup_free char *name = blob_name(sv->layers[i].digest);
		rc = add_file(sv, name, sv->layers[i].path, sv->layers[i].size, err);
	}
	return rc;
}

static int save_to(struct save *sv, const char *tmp_path, vt_err *err)
{
	sv->out = archive_write_new();
	if (!sv->out)
		return vt_fail_errno(err, ENOMEM, "save");
	archive_write_set_format_pax_restricted(sv->out);
	int rc = archive_write_open_filename(sv->out, tmp_path) == ARCHIVE_OK
			 ? 0
			 : vt_fail(err, "cannot write %s: %s", tmp_path, archive_error_string(sv->out));
	if (rc == 0)
		rc = write_archive(sv, err);
	if (rc == 0 && archive_write_close(sv->out) != ARCHIVE_OK)
		rc = vt_fail(err, "cannot write %s: %s", tmp_path, archive_error_string(sv->out));
	archive_write_free(sv->out);
	return rc;
}

static int save_locked(struct save *sv, const char *ref, const char *out_path, vt_err *err)
{
	struct img_catalog c;
	if (img_catalog_load(sv->s, &c, err) < 0)
		return -1;
	const char *matched = NULL;
	int rc = -1;
	char **ids = NULL;
	size_t n = 0;
	sv->r = img_catalog_find(&c, ref, &matched, err);
	if (sv->r && img_record_diff_ids(sv->r, &ids, &n, err) == 0) {
		/* by name: that name; by id: all of the image's names */
		sv->names = matched ? (char **)&matched : sv->r->names;
		sv->n_names = matched ? 1 : sv->r->n_names;
		cleanup_free char *tmp = NULL;
		if (asprintf(&tmp, "%s.tmp-XXXXXX", out_path) < 0 || (rc = compress_layers(sv, ids, n, err)) < 0) {
			rc = -1;
		} else {
			int fd = mkostemp(tmp, O_CLOEXEC);
			rc = fd < 0 ? vt_fail_errno(err, errno, "cannot create %s", tmp) : save_to(sv, tmp, err);
			if (fd >= 0)
				close(fd);
			if (rc == 0 && rename(tmp, out_path) < 0)
				rc = vt_fail_errno(err, errno, "cannot rename %s to %s", tmp, out_path);
			if (rc < 0 && fd >= 0)
				unlink(tmp);
		}
	}
	img_strv_free(ids, n);
	img_catalog_free(&c);
	return rc;
}

int img_save(struct img_store *s, const char *ref, const char *out_path, enum img_archive_format fmt, vt_err *err)
{
	struct save *sv = calloc(1, sizeof(*sv));
	if (!sv)
		return vt_fail_errno(err, ENOMEM, "save");
	sv->s = s;
	sv->fmt = fmt;
	int rc = img_store_lock(s, false, err);
	if (rc == 0) {
		rc = save_locked(sv, ref, out_path, err);
		img_store_unlock(s);
	}
	for (size_t i = 0; i < sv->n_layers; i++)
		if (sv->layers[i].path) {
			unlink(sv->layers[i].path);
			free(sv->layers[i].path);
		}
	free(sv->layers);
	free(sv);
	return rc;
}

/* `image load`: an oci-archive (index.json + blobs) or docker-archive (manifest.json + layer tars + config) as
 * `podman save` or Docker writes them (Docker 25+ writes both in one). The archive is first extracted into
 * <root>/tmp/load-*, outside the lock; then, under the exclusive lock, every manifest, config and layer is
 * checked against its digest while it is stored. Any failure rolls back what this load added: the blobs, the
 * layer dirs and the index. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "image/archive_api.h"
#include "image/internal.h"
#include "lib/util.h"

struct load {
	struct img_store *s;
	const char *dir; /* the extracted archive */
	struct img_txn txn;
	char **names;    /* what was loaded, for the caller */
	size_t n_names;
};

/* --- extraction --- */

static int make_parents(int dirfd, const char *rel, vt_err *err)
{
	cleanup_free char *copy = strdup(rel);
	if (!copy)
		return vt_fail_errno(err, ENOMEM, "load");
	for (char *p = strchr(copy, '/'); p; p = strchr(p + 1, '/')) {
		*p = '\0';
		if (mkdirat(dirfd, copy, 0700) < 0 && errno != EEXIST)
			return vt_fail_errno(err, errno, "cannot create %s", copy);
		*p = '/';
	}
	return 0;
}

/* Symbolic links of the archive ("<id>/layer.tar -> ../<hex>.tar", how docker-archive writers share a
 * layer), made once every file is out: as hard links to the file they name inside the archive. */
struct archive_links {
	char **from, **to;
	size_t n;
};

/* Join the link's directory and its target, resolving "." and ".."; NULL if it leaves the archive. */
static char *resolve_link(const char *path, const char *target)
{
	cleanup_free char *joined = NULL;
	const char *slash = strrchr(path, '/');
	if (target[0] == '/' ||
	    asprintf(&joined, "%.*s%s%s", slash ? (int)(slash - path) : 0, path, slash ? "/" : "", target) < 0)
		return NULL;
	char *out = calloc(1, strlen(joined) + 1);
	size_t n = 0;
	char *save = NULL;
	for (char *c = out ? strtok_r(joined, "/", &save) : NULL; c; c = strtok_r(NULL, "/", &save)) {
		if (!strcmp(c, "."))
			continue;
		if (!strcmp(c, "..")) {
			char *up = n ? memrchr(out, '/', n) : NULL;
			if (!n) {
				free(out);
				return NULL;
			}
			n = up ? (size_t)(up - out) : 0;
			out[n] = '\0';
			continue;
		}
		n += (size_t)sprintf(out + n, "%s%s", n ? "/" : "", c);
	}
	return out;
}

static int remember_link(struct archive_links *l, const char *rel, const char *target)
{
	char *to = target ? resolve_link(rel, target) : NULL;
	char **f = realloc(l->from, (l->n + 1) * sizeof(*f));
	if (f)
		l->from = f;
	char **t = realloc(l->to, (l->n + 1) * sizeof(*t));
	if (t)
		l->to = t;
	if (!to || !f || !t || !(l->from[l->n] = strdup(rel))) {
		free(to);
		return 0; /* a link we cannot follow is simply not there */
	}
	l->to[l->n++] = to;
	return 0;
}

static void make_links(struct archive_links *l, int dirfd)
{
	vt_err ignore;
	for (size_t i = 0; i < l->n; i++) {
		if (make_parents(dirfd, l->from[i], &ignore) == 0)
			linkat(dirfd, l->to[i], dirfd, l->from[i], 0);
		free(l->from[i]);
		free(l->to[i]);
	}
	free(l->from);
	free(l->to);
}

static int extract_entry(struct archive *a, struct archive_entry *e, int dirfd, struct archive_links *links,
			 vt_err *err)
{
	cleanup_free char *rel = NULL;
	if (img_clean_path(archive_entry_pathname(e), &rel, err) < 0)
		return -1;
	if (*rel && archive_entry_filetype(e) == AE_IFLNK)
		return remember_link(links, rel, archive_entry_symlink(e));
	if (*rel && archive_entry_hardlink(e)) {
		/* a hard link names its target from the archive's root: make it relative to rel's directory */
		cleanup_free char *target = NULL, *up = NULL;
		if (img_clean_path(archive_entry_hardlink(e), &target, err) < 0)
			return -1;
		size_t depth = 0;
		for (const char *p = rel; (p = strchr(p, '/')); p++)
			depth++;
		up = calloc(1, depth * 3 + strlen(target) + 1);
		if (!up)
			return vt_fail_errno(err, ENOMEM, "load");
		for (size_t i = 0; i < depth; i++)
			strcat(up, "../");
		strcat(up, target);
		return remember_link(links, rel, up);
	}
	if (!*rel || archive_entry_filetype(e) != AE_IFREG)
		return 0; /* directories come with their files; nothing else belongs in an image archive */
	if (make_parents(dirfd, rel, err) < 0)
		return -1;
	cleanup_close int fd = openat(dirfd, rel, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return vt_fail_errno(err, errno, "cannot create %s", rel);
	if (archive_read_data_into_fd(a, fd) < ARCHIVE_WARN)
		return vt_fail(err, "the archive is damaged or truncated (at %s): %s", rel, archive_error_string(a));
	return 0;
}

static int extract(const char *archive_path, const char *dir, vt_err *err)
{
	cleanup_close int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct archive *a = archive_read_new();
	if (dirfd < 0 || !a) {
		if (a)
			archive_read_free(a);
		return vt_fail_errno(err, errno ? errno : ENOMEM, "cannot open %s", dir);
	}
	archive_read_support_filter_all(a);
	archive_read_support_format_tar(a);
	int rc = 0;
	if (archive_read_open_filename(a, archive_path, 256 * 1024) != ARCHIVE_OK) {
		rc = vt_fail(err, "cannot read %s: %s", archive_path, archive_error_string(a));
	} else {
		struct archive_entry *e;
		struct archive_links links = { 0 };
		int r;
		while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK || r == ARCHIVE_WARN)
			if ((rc = extract_entry(a, e, dirfd, &links, err)) < 0)
				break;
		make_links(&links, dirfd);
		if (rc == 0 && r != ARCHIVE_EOF)
			rc = vt_fail(err, "%s is not an image archive or is damaged: %s", archive_path,
				     archive_error_string(a));
	}
	archive_read_free(a);
	return rc;
}

/* --- reading the extracted files --- */

static int read_json(struct load *l, const char *rel, const char *want_digest, json_object **out, void **raw,
		     size_t *raw_len, vt_err *err)
{
	cleanup_free char *path = NULL;
	cleanup_free char *clean = NULL;
	if (img_clean_path(rel, &clean, err) < 0 || asprintf(&path, "%s/%s", l->dir, clean) < 0)
		return -1;
	void *data;
	size_t size;
	if (read_file(path, IMG_JSON_MAX, &data, &size, err) < 0)
		return vt_fail(err, "the archive has no %s", rel);
	if (want_digest) {
		char got[IMG_ID_LEN + 1];
		img_sha256(data, size, got);
		if (strcmp(got, want_digest)) {
			free(data);
			return vt_fail(err, "%s is corrupt: its digest is %s, not %s", rel, got, want_digest);
		}
	}
	*out = img_json_parse(data, size);
	if (!*out) {
		free(data);
		return vt_fail(err, "%s is not valid JSON", rel);
	}
	if (raw) {
		*raw = data;
		*raw_len = size;
	} else {
		free(data);
	}
	return 0;
}

static const char *str_field(json_object *o, const char *key)
{
	json_object *v;
	return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string) ? json_object_get_string(v)
												 : NULL;
}

static bool layer_present(struct img_store *s, const char *diff_id)
{
	cleanup_free char *dir = img_layer_dir(s, diff_id), *blob = img_blob_path(s, diff_id);
	return dir && blob && access(dir, F_OK) == 0 && access(blob, F_OK) == 0;
}

/* One layer file: unpack it (unless the store has it already) and check both of its digests.
 * want_compressed may be NULL (a docker-archive layer named <id>/layer.tar carries no digest). */
static int load_layer(struct load *l, const char *rel, const char *want_compressed, const char *want_diff_id,
		      char *const *lowers, size_t n_lowers, vt_err *err)
{
	if (!img_digest_hex(want_diff_id))
		return vt_fail(err, "bad diff id '%s' in the image config", want_diff_id ? want_diff_id : "");
	if (layer_present(l->s, want_diff_id))
		return 0;
	cleanup_free char *clean = NULL, *path = NULL;
	if (img_clean_path(rel, &clean, err) < 0 || asprintf(&path, "%s/%s", l->dir, clean) < 0)
		return -1;
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return vt_fail_errno(err, errno, "the archive has no layer %s", rel);
	char diff_id[IMG_ID_LEN + 1], compressed[IMG_ID_LEN + 1];
	if (img_layer_unpack(l->s, fd, lowers, n_lowers, diff_id, compressed, &l->txn, err) < 0)
		return vt_err_prefix(err, "layer %s", rel);
	if (want_compressed && strcmp(compressed, want_compressed))
		return vt_fail(err, "layer %s is corrupt: its digest is %s, not %s", rel, compressed, want_compressed);
	if (strcmp(diff_id, want_diff_id))
		return vt_fail(err, "layer %s is corrupt: its content hashes to %s, the config says %s", rel, diff_id,
			       want_diff_id);
	return 0;
}

static int diff_ids_of(json_object *config, char ***ids, size_t *n, vt_err *err)
{
	struct img_record r = { .config = config };
	snprintf(r.id, sizeof(r.id), "(in the archive)");
	return img_record_diff_ids(&r, ids, n, err);
}

/* Store one image: layers (rel paths and their compressed digests, or NULL), then config and index entries. */
static int store_one(struct load *l, json_object *config, const void *config_raw, size_t config_len,
		     char *const *layer_paths, char *const *layer_digests, size_t n_layers, char *const *names,
		     size_t n_names, vt_err *err)
{
	char **ids, **dirs;
	size_t n_ids;
	if (diff_ids_of(config, &ids, &n_ids, err) < 0)
		return -1;
	int rc = 0;
	if (n_ids != n_layers)
		rc = vt_fail(err, "the manifest lists %zu layers, the config %zu", n_layers, n_ids);
	dirs = calloc(n_ids + 1, sizeof(*dirs));
	if (!dirs && rc == 0)
		rc = vt_fail_errno(err, ENOMEM, "load");
	for (size_t i = 0; rc == 0 && i < n_ids; i++) {
		dirs[i] = img_layer_dir(l->s, ids[i]);
		rc = load_layer(l, layer_paths[i], layer_digests ? layer_digests[i] : NULL, ids[i], dirs, i, err);
	}
	char id[IMG_ID_LEN + 1];
	for (size_t i = 0; rc == 0 && i < (n_names ? n_names : 1); i++)
		rc = img_store_image(l->s, config, config_raw, config_len, ids, n_ids, n_names ? names[i] : NULL, id,
				     &l->txn, err);
	for (size_t i = 0; rc == 0 && i < (n_names ? n_names : 1); i++) {
		char **v = realloc(l->names, (l->n_names + 1) * sizeof(*v));
		if (!v || !(v[l->n_names] = strdup(n_names ? names[i] : id)))
			rc = vt_fail_errno(err, ENOMEM, "load");
		else
			l->n_names++;
		if (v)
			l->names = v;
	}
	img_strv_free(dirs, n_ids);
	img_strv_free(ids, n_ids);
	return rc;
}

/* --- names --- */

/* A docker-archive RepoTag ("busybox:latest") names a Docker Hub image unless it has a registry. */
static char *docker_name(const char *tag)
{
	char *out = NULL;
	vt_err ignore;
	const char *slash = strchr(tag, '/');
	bool domain = slash && (memchr(tag, '.', (size_t)(slash - tag)) || memchr(tag, ':', (size_t)(slash - tag)) ||
				!strncmp(tag, "localhost/", 10));
	if (domain)
		return img_normalize_name(tag, &out, &ignore) == 0 ? out : NULL;
	cleanup_free char *full = NULL;
	if (asprintf(&full, "docker.io/%s%s", slash ? "" : "library/", tag) < 0)
		return NULL;
	return img_normalize_name(full, &out, &ignore) == 0 ? out : NULL;
}

static int add_name(char ***v, size_t *n, char *name)
{
	if (!name)
		return 0;
	for (size_t i = 0; i < *n; i++)
		if (!strcmp((*v)[i], name)) {
			free(name);
			return 0;
		}
	char **g = realloc(*v, (*n + 1) * sizeof(*g));
	if (!g) {
		free(name);
		return -1;
	}
	*v = g;
	g[(*n)++] = name;
	return 0;
}

/* The names of config `config_rel` in manifest.json (if the archive has one). */
static void docker_names_for(struct load *l, const char *config_hex, char ***names, size_t *n)
{
	json_object *m;
	vt_err ignore;
	if (read_json(l, "manifest.json", NULL, &m, NULL, NULL, &ignore) < 0)
		return;
	for (size_t i = 0; json_object_is_type(m, json_type_array) && i < json_object_array_length(m); i++) {
		json_object *e = json_object_array_get_idx(m, i), *tags;
		const char *cfg = str_field(e, "Config");
		if (!cfg || !strstr(cfg, config_hex) || !json_object_object_get_ex(e, "RepoTags", &tags))
			continue;
		for (size_t j = 0; j < json_object_array_length(tags); j++)
			add_name(names, n, docker_name(json_object_get_string(json_object_array_get_idx(tags, j))));
	}
	json_object_put(m);
}

static char *oci_name(json_object *desc)
{
	json_object *a;
	if (!json_object_object_get_ex(desc, "annotations", &a))
		return NULL;
	const char *full = str_field(a, "io.containerd.image.name");
	if (full)
		return docker_name(full);
	const char *ref = str_field(a, IMG_REF_NAME);
	/* a bare tag ("latest") names nothing by itself */
	if (!ref || (!strchr(ref, '/') && !strchr(ref, ':')))
		return NULL;
	return docker_name(ref);
}

/* --- the two formats --- */

static int load_oci_manifest(struct load *l, json_object *desc, vt_err *err)
{
	const char *digest = str_field(desc, "digest");
	const char *hex = img_digest_hex(digest);
	if (!hex)
		return vt_fail(err, "index.json has a bad digest '%s'", digest ? digest : "");
	char rel[IMG_HEX_LEN + 32];
	snprintf(rel, sizeof(rel), "blobs/sha256/%s", hex);
	json_object *manifest, *config, *layers, *cfg_desc;
	if (read_json(l, rel, digest, &manifest, NULL, NULL, err) < 0)
		return -1;
	int rc = -1;
	void *raw = NULL;
	size_t raw_len = 0;
	const char *cfg_digest = json_object_object_get_ex(manifest, "config", &cfg_desc) ? str_field(cfg_desc, "digest")
											  : NULL;
	char cfg_rel[IMG_HEX_LEN + 32];
	snprintf(cfg_rel, sizeof(cfg_rel), "blobs/sha256/%s", img_digest_hex(cfg_digest) ? cfg_digest + 7 : "?");
	if (!json_object_object_get_ex(manifest, "layers", &layers) || !img_digest_hex(cfg_digest)) {
		vt_fail(err, "manifest %s has no config or layers", digest);
	} else if (read_json(l, cfg_rel, cfg_digest, &config, &raw, &raw_len, err) == 0) {
		size_t n = json_object_array_length(layers);
		char **paths = calloc(n + 1, sizeof(char *)), **digests = calloc(n + 1, sizeof(char *));
		rc = paths && digests ? 0 : vt_fail_errno(err, ENOMEM, "load");
		for (size_t i = 0; rc == 0 && i < n; i++) {
			const char *d = str_field(json_object_array_get_idx(layers, i), "digest");
			if (!img_digest_hex(d) || asprintf(&paths[i], "blobs/sha256/%s", d + 7) < 0 ||
			    !(digests[i] = strdup(d)))
				rc = vt_fail(err, "manifest %s: bad layer digest", digest);
		}
		char **names = NULL;
		size_t n_names = 0;
		add_name(&names, &n_names, oci_name(desc));
		docker_names_for(l, cfg_digest + 7, &names, &n_names);
		if (rc == 0)
			rc = store_one(l, config, raw, raw_len, paths, digests, n, names, n_names, err);
		img_strv_free(names, n_names);
		img_strv_free(paths, n);
		img_strv_free(digests, n);
		json_object_put(config);
		free(raw);
	}
	json_object_put(manifest);
	return rc;
}

static int load_oci(struct load *l, vt_err *err)
{
	json_object *index, *m;
	if (read_json(l, "index.json", NULL, &index, NULL, NULL, err) < 0)
		return -1;
	int rc = 0;
	if (!json_object_object_get_ex(index, "manifests", &m) || !json_object_array_length(m))
		rc = vt_fail(err, "index.json lists no image");
	for (size_t i = 0; rc == 0 && i < json_object_array_length(m); i++)
		rc = load_oci_manifest(l, json_object_array_get_idx(m, i), err);
	json_object_put(index);
	return rc;
}

/* "blobs/sha256/<hex>" names its own digest; "<id>/layer.tar" does not. */
static char *digest_from_path(const char *rel)
{
	const char *p = strstr(rel, "sha256/");
	char *out = NULL;
	if (p && strlen(p + 7) == IMG_HEX_LEN && asprintf(&out, "sha256:%s", p + 7) > 0 && !img_digest_hex(out)) {
		free(out);
		out = NULL;
	}
	return out;
}

static int load_docker_entry(struct load *l, json_object *e, vt_err *err)
{
	const char *cfg = str_field(e, "Config");
	json_object *layers, *tags, *config;
	if (!cfg || !json_object_object_get_ex(e, "Layers", &layers))
		return vt_fail(err, "manifest.json: an entry has no Config or Layers");
	/* the config file is named by its digest ("<hex>.json" or "blobs/sha256/<hex>") */
	const char *base = strrchr(cfg, '/') ? strrchr(cfg, '/') + 1 : cfg;
	char want[IMG_ID_LEN + 1];
	snprintf(want, sizeof(want), "sha256:%.64s", base);
	void *raw;
	size_t raw_len;
	if (read_json(l, cfg, img_digest_hex(want) ? want : NULL, &config, &raw, &raw_len, err) < 0)
		return -1;
	size_t n = json_object_array_length(layers);
	char **paths = calloc(n + 1, sizeof(char *)), **digests = calloc(n + 1, sizeof(char *));
	int rc = paths && digests ? 0 : vt_fail_errno(err, ENOMEM, "load");
	for (size_t i = 0; rc == 0 && i < n; i++) {
		const char *p = json_object_get_string(json_object_array_get_idx(layers, i));
		if (!p || !(paths[i] = strdup(p)))
			rc = vt_fail(err, "manifest.json: bad layer entry");
		else
			digests[i] = digest_from_path(p);
	}
	char **names = NULL;
	size_t n_names = 0;
	for (size_t i = 0; json_object_object_get_ex(e, "RepoTags", &tags) && i < json_object_array_length(tags); i++)
		add_name(&names, &n_names, docker_name(json_object_get_string(json_object_array_get_idx(tags, i))));
	/* digests: NULL entries mean "not named by digest"; store_one takes the array as optional per entry */
	if (rc == 0)
		rc = store_one(l, config, raw, raw_len, paths, digests, n, names, n_names, err);
	img_strv_free(names, n_names);
	img_strv_free(paths, n);
	img_strv_free(digests, n);
	json_object_put(config);
	free(raw);
	return rc;
}

static int load_docker(struct load *l, vt_err *err)
{
	json_object *m;
	if (read_json(l, "manifest.json", NULL, &m, NULL, NULL, err) < 0)
		return -1;
	int rc = 0;
	if (!json_object_is_type(m, json_type_array) || !json_object_array_length(m))
		rc = vt_fail(err, "manifest.json lists no image");
	for (size_t i = 0; rc == 0 && i < json_object_array_length(m); i++)
		rc = load_docker_entry(l, json_object_array_get_idx(m, i), err);
	json_object_put(m);
	return rc;
}

/* --- the whole load --- */

static int load_locked(struct load *l, vt_err *err)
{
	cleanup_free char *index_path = img_path(l->s, "image/index.json");
	cleanup_free char *oci = NULL;
	void *saved = NULL;
	size_t saved_len = 0;
	if (!index_path || asprintf(&oci, "%s/index.json", l->dir) < 0 ||
	    read_file(index_path, IMG_JSON_MAX, &saved, &saved_len, err) < 0)
		return -1;
	int rc = access(oci, F_OK) == 0 ? load_oci(l, err) : load_docker(l, err);
	if (rc < 0) {
		vt_err ignore;
		img_write_atomic(index_path, saved, saved_len, &ignore);
		img_txn_rollback(&l->txn);
	} else {
		img_txn_done(&l->txn);
	}
	free(saved);
	return rc;
}

int img_load(struct img_store *s, const char *archive_path, char ***names, size_t *n_names, vt_err *err)
{
	struct load l = { .s = s };
	cleanup_free char *dir = img_path(s, "tmp/load-XXXXXX");
	if (!dir || !mkdtemp(dir))
		return vt_fail_errno(err, dir ? errno : ENOMEM, "cannot create a temporary directory in the store");
	l.dir = dir;
	int rc = extract(archive_path, dir, err);
	if (rc == 0 && (rc = img_store_lock(s, true, err)) == 0) {
		rc = load_locked(&l, err);
		img_store_unlock(s);
	}
	img_rm_rf(dir);
	if (rc < 0) {
		img_strv_free(l.names, l.n_names);
		return vt_err_prefix(err, "loading %s", archive_path);
	}
	*names = l.names;
	*n_names = l.n_names;
	return 0;
}

/* Listing, tagging, removing and describing images. */
#include <dirent.h>
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

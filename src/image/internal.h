/* What the image store's files share: paths, the lock, sha256, blobs, the index, layers, and the undo list
 * that makes a failed change leave nothing behind. Only the files of src/image include this. */
#ifndef VIRTUS_IMAGE_INTERNAL_H
#define VIRTUS_IMAGE_INTERNAL_H

#include <stdint.h>
#include <sys/types.h>

#include "image/image.h"

#define IMG_HEX_LEN 64
#define IMG_REF_NAME "org.opencontainers.image.ref.name"
#define MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define MT_OCI_CONFIG "application/vnd.oci.image.config.v1+json"
#define MT_OCI_LAYER "application/vnd.oci.image.layer.v1.tar"
#define MT_OCI_LAYER_GZ "application/vnd.oci.image.layer.v1.tar+gzip"
#define MT_OCI_LAYER_ZSTD "application/vnd.oci.image.layer.v1.tar+zstd"
#define IMG_JSON_MAX (64 * 1024 * 1024)

struct img_store {
	char *root;     /* absolute */
	int lock_fd;
	int lock_depth; /* nested img_store_lock calls */
	bool lock_exclusive;
};

/* Paths under the root, malloc'd (abort-free: NULL only on ENOMEM). */
char *img_path(const struct img_store *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* --- sha256 (nettle) --- */
struct img_hash;
struct img_hash *img_hash_new(void);
void img_hash_update(struct img_hash *h, const void *data, size_t len);
/* "sha256:<hex>" into out; frees h. */
void img_hash_final(struct img_hash *h, char out[IMG_ID_LEN + 1]);
void img_hash_free(struct img_hash *h);
void img_sha256(const void *data, size_t len, char out[IMG_ID_LEN + 1]);
/* A digest string "sha256:<64 lower-case hex>"? Returns the hex part or NULL. */
const char *img_digest_hex(const char *digest);

/* --- undo list: what a change created, removed again if it fails --- */
struct img_txn {
	char **paths;
	size_t n, cap;
};
int img_txn_add(struct img_txn *t, const char *path);
void img_txn_rollback(struct img_txn *t); /* removes everything added (files or trees) */
void img_txn_done(struct img_txn *t);     /* keeps them, frees the list */

/* --- file helpers --- */
int img_rm_rf(const char *path);
/* Write data to path atomically (temp file in the same dir, fsync, rename). */
int img_write_atomic(const char *path, const void *data, size_t len, vt_err *err);
int img_copy_fd(int in, int out, vt_err *err);

/* --- blobs --- */
/* Store data as a blob; digest receives "sha256:<hex>". Adds to txn when the blob is new (txn may be NULL). */
int img_blob_put(struct img_store *s, const void *data, size_t len, char digest[IMG_ID_LEN + 1],
		 struct img_txn *txn, vt_err *err);
int img_blob_put_json(struct img_store *s, json_object *obj, char digest[IMG_ID_LEN + 1], size_t *size,
		      struct img_txn *txn, vt_err *err);
/* Parse len bytes of JSON (not NUL-terminated); NULL if they are not one valid JSON text. */
json_object *img_json_parse(const void *data, size_t len);
/* Read a blob (checked against its digest) and parse it. */
int img_blob_get_json(struct img_store *s, const char *digest, json_object **out, vt_err *err);
int img_blob_get(struct img_store *s, const char *digest, void **data, size_t *size, vt_err *err);
int img_blob_size(struct img_store *s, const char *digest, size_t *size, vt_err *err);
char *img_blob_path(const struct img_store *s, const char *digest);
/* Move a finished temp file into the blob store under digest (adds to txn when new, unlinks tmp when the
 * blob was already there). */
int img_blob_adopt(struct img_store *s, const char *tmp_path, const char *digest, struct img_txn *txn,
		   vt_err *err);
/* A temp file under image/blobs (for blobs being streamed); path is malloc'd into *tmp_path. */
int img_blob_tmpfile(struct img_store *s, char **tmp_path, vt_err *err);

/* --- the index and the images it names --- */
struct img_record {
	char manifest_digest[IMG_ID_LEN + 1];
	char id[IMG_ID_LEN + 1]; /* config digest */
	json_object *manifest;
	json_object *config;
	char **names;
	size_t n_names;
};
struct img_catalog {
	json_object *index;
	struct img_record *images;
	size_t n;
};
int img_catalog_load(struct img_store *s, struct img_catalog *c, vt_err *err);
void img_catalog_free(struct img_catalog *c);
/* The image ref names (name or id); NULL if none. matched_name receives the normalised name matched, if any. */
struct img_record *img_catalog_find(struct img_catalog *c, const char *ref, const char **matched_name,
				    vt_err *err);
int img_index_load(struct img_store *s, json_object **out, vt_err *err);
/* Remove name (NULL: every entry) of the image; keep_image leaves it unnamed instead of gone. */
void img_index_remove(json_object *index, const char *manifest_digest, const char *name, bool keep_image);
int img_index_save(struct img_store *s, json_object *index, vt_err *err);
/* Add an index entry naming manifest (name NULL: unnamed). A name moves from any other image to this one. */
void img_index_set_name(json_object *index, const char *manifest_digest, size_t manifest_size, const char *name);
/* Normalise a name: "site" -> "localhost/site:latest"; docker.io names keep their domain. */
int img_normalize_name(const char *ref, char **out, vt_err *err);

/* Write config + manifest for layers (diff ids, uncompressed blobs already stored) and name the image in the
 * index. config is consumed only in the sense that it is serialised as is. */
int img_store_image(struct img_store *s, json_object *config_obj, const void *config_raw, size_t config_len,
		    char *const *diff_ids, size_t n_layers, const char *name, char out_id[IMG_ID_LEN + 1],
		    struct img_txn *txn, vt_err *err);

/* --- layers --- */
/* Unpack an (optionally gzip/zstd compressed) tar stream from fd into layers/<diffid>/, storing the
 * uncompressed stream as a blob too. lowers: the unpacked lower layers (lowest first), for hard links to
 * their files. diff_id: the sha256 of the uncompressed stream; compressed_digest: of the bytes read from fd. */
int img_layer_unpack(struct img_store *s, int fd, char *const *lowers, size_t n_lowers,
		     char diff_id[IMG_ID_LEN + 1], char compressed_digest[IMG_ID_LEN + 1], struct img_txn *txn,
		     vt_err *err);
/* Unpack an already stored uncompressed layer blob (when layers/<hex> went missing). */
int img_layer_ensure(struct img_store *s, const char *diff_id, char *const *lowers, size_t n_lowers, vt_err *err);
/* Pack an overlayfs upper dir into a tar written to fd (uncompressed, deterministic). */
int img_layer_pack(const char *upper_dir, int fd, vt_err *err);
/* "./a//b/" -> "a/b", "/etc/x" -> "etc/x"; a ".." component is refused; "" is the root. */
int img_clean_path(const char *in, char **out, vt_err *err);
char *img_layer_dir(const struct img_store *s, const char *diff_id);
/* Short link layers/l/<16 hex> -> ../<hex> (for mount option strings). */
int img_layer_link(struct img_store *s, const char *diff_id, struct img_txn *txn, vt_err *err);

/* Image record helpers */
int img_record_diff_ids(const struct img_record *r, char ***ids, size_t *n, vt_err *err);
void img_strv_free(char **v, size_t n);
/* Resolve a record into an img_image (layers unpacked as needed; store locked exclusively by caller). */
int img_record_to_image(struct img_store *s, const struct img_record *r, const char *name, struct img_image **out,
			vt_err *err);
/* The host's OCI architecture name (amd64, arm64, ...). */
const char *img_host_arch(void);
/* RFC 3339 UTC time stamp of now. */
void img_now_rfc3339(char out[40]);

#endif

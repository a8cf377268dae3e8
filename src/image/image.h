/* The image store: OCI image layout on disk, layers unpacked once and shared.
 *
 * Layout under the store root (default /var/lib/virtus; `virtus --root DIR` or VIRTUS_ROOT moves it):
 *   image/oci-layout, image/index.json   OCI image layout; index entries carry the names
 *                                        ("org.opencontainers.image.ref.name" = "localhost/site:2")
 *   image/blobs/sha256/<hex>             manifests, configs, layers (layers uncompressed)
 *   layers/<diffid-hex>/                 each layer unpacked once, in overlayfs form (a whiteout is a 0/0
 *                                        character device, an opaque directory has trusted.overlay.opaque=y),
 *                                        read-only lower dir for every container that uses it
 *   containers/<id>/container.json       a container's record (container/); its "image_id" pins the image
 *   lock                                 flock: exclusive for index and layer changes, shared for readers
 * Every blob and index update is a temp file + rename, so a crash or a concurrent command never sees half.
 *
 * Callers: cli/ (image commands), container/ (run, commit), image/build.c. Nothing here prints or exits. */
#ifndef VIRTUS_IMAGE_H
#define VIRTUS_IMAGE_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "lib/err.h"

#define IMG_DEFAULT_ROOT "/var/lib/virtus"
#define IMG_ID_LEN 71 /* "sha256:" + 64 hex */

struct img_store;

/* Open (creating what is missing) the store at root. */
int img_store_open(const char *root, struct img_store **out, vt_err *err);
void img_store_close(struct img_store *s);
const char *img_store_root(const struct img_store *s);
/* Hold the store's lock across several calls (e.g. resolve, then record a container that pins the image):
 * exclusive for changes, shared for readers. Calls nest; every call below takes what it needs itself. */
int img_store_lock(struct img_store *s, bool exclusive, vt_err *err);
void img_store_unlock(struct img_store *s);
/* The root a command uses: the --root value if given, else $VIRTUS_ROOT, else IMG_DEFAULT_ROOT. */
const char *img_default_root(const char *cli_root);

/* An image resolved for use: its layers are unpacked (done now if they were not). */
struct img_image {
	char id[IMG_ID_LEN + 1];   /* "sha256:<hex>" of the config blob (the image id podman shows) */
	char *name;                /* the reference it was found by, normalised ("localhost/site:2"), or NULL */
	json_object *config;       /* the image config blob (OCI/Docker "config" object inside is config.config) */
	char **layer_dirs;         /* absolute paths of the unpacked layers, lowest first */
	char **diff_ids;           /* "sha256:<hex>" of each uncompressed layer, same order */
	size_t n_layers;
};

/* ref: a name ("site", "site:2", "localhost/site:2"), a full or short (>= 12 hex) id. */
int img_resolve(struct img_store *s, const char *ref, struct img_image **out, vt_err *err);
void img_image_free(struct img_image *img);

/* A new image from parent (NULL = scratch) plus, when upper_dir is not NULL, one layer made from an overlayfs
 * upper directory (whiteout devices and opaque xattrs become .wh. entries). config is the new image config
 * (the caller's object; the store adds rootfs.diff_ids and the history entry from history_created_by).
 * name may be NULL (an unnamed image). *out_id receives the new image id. */
int img_commit(struct img_store *s, const struct img_image *parent, const char *upper_dir, json_object *config,
	       const char *history_created_by, const char *name, char out_id[IMG_ID_LEN + 1], vt_err *err);

/* Mount the image's layers (read-only lower dirs) with upper_dir and work_dir (empty directories on the same
 * file system) as an overlayfs at target. Long layer lists must still fit the kernel's mount data limit:
 * the lower dirs are named relative to <root>/layers, which is the process's working directory during the
 * mount(2) call (restored after; so not to be called while another thread depends on the cwd).
 * scratch: the upper dir is thrown away after use (a --rm container, a build step): nothing of it is ever
 * synced to disk (overlayfs's volatile). */
int img_mount(struct img_store *s, const struct img_image *img, const char *upper_dir, const char *work_dir,
	      const char *target, bool scratch, vt_err *err);

/* mount(2) of an overlayfs with the given options (lowerdir=...,upperdir=...,workdir=...); scratch as above
 * (volatile where the kernel has it). Returns 0 or -1 with errno. */
int img_mount_overlay(const char *data, bool scratch, const char *target);

/* `virtus image inspect` / `virtus inspect IMAGE`: a JSON description (Id, RepoTags, Created, Config,
 * RootFS, History, Size) in the shape podman prints. */
int img_inspect_json(struct img_store *s, const char *ref, json_object **out, vt_err *err);

/* "name", "uid", "name:group", "uid:gid" -> numbers, looked up in root_dir's own /etc/passwd and /etc/group
 * (opened with RESOLVE_IN_ROOT: never the host's files, never NSS). A user without a group gets its primary
 * group, or 0 when a numeric uid has no entry. Used by `run -u`, `exec -u`, and build's USER and --chown. */
int img_resolve_user(const char *root_dir, const char *spec, uid_t *uid, gid_t *gid, vt_err *err);

/* Give an image one more name. */
int img_tag(struct img_store *s, const char *ref, const char *new_name, vt_err *err);

/* `virtus image import`: a root file system tarball (plain, gzip or zstd) becomes a one-layer image with the
 * config podman import writes (platform, history, empty run config). name may be NULL. */
int img_import(struct img_store *s, const char *tar_path, const char *name, char out_id[IMG_ID_LEN + 1],
	       vt_err *err);

/* `virtus image load`: an archive `podman save` (or `virtus image save`) wrote, oci-archive or docker-archive.
 * Every digest is checked; on failure the store is unchanged. *names receives each loaded image's name (its
 * id when it has none); free with img_strings_free. */
int img_load(struct img_store *s, const char *archive_path, char ***names, size_t *n_names, vt_err *err);
void img_strings_free(char **v, size_t n);

enum img_archive_format { IMG_FORMAT_DOCKER_ARCHIVE, IMG_FORMAT_OCI_ARCHIVE };
/* `virtus image save`: the image as an archive both podman and docker load (OCI layout + manifest.json);
 * layers gzip-compressed. fmt picks whose metadata is primary. */
int img_save(struct img_store *s, const char *ref, const char *out_path, enum img_archive_format fmt, vt_err *err);

/* `virtus image ls`. */
struct img_summary {
	char id[IMG_ID_LEN + 1];
	char **names; /* normalised names, may be none */
	size_t n_names;
	long long created; /* seconds since the epoch, 0 if unknown */
	unsigned long long size; /* bytes of the uncompressed layers */
};
int img_list(struct img_store *s, struct img_summary **out, size_t *n, vt_err *err);
void img_list_free(struct img_summary *l, size_t n);

/* `virtus image rm`: a name of an image with several names is removed alone (untag); otherwise the image goes,
 * refused while a container (containers/<id>/container.json "image_id") uses it, with layers no other image
 * uses. *untagged tells which happened; removed_id receives the image's id. */
int img_remove(struct img_store *s, const char *ref, bool *untagged, char removed_id[IMG_ID_LEN + 1], vt_err *err);

#endif

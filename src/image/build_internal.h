/* Shared by the build files only (recipe*.c, build*.c): a growable string, and the helpers one step of the
 * executor hands to another. Not a contract for anything outside src/image/build*. */
#ifndef VIRTUS_IMAGE_BUILD_INTERNAL_H
#define VIRTUS_IMAGE_BUILD_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "image/build.h"
#include "lib/err.h"

/* A growable NUL-terminated string; .failed is set (and stays) after an allocation failure. */
struct sbuf {
	char *s;
	size_t len, cap;
	bool failed;
};
void sbuf_addn(struct sbuf *b, const char *s, size_t n);
void sbuf_add(struct sbuf *b, const char *s);
void sbuf_addc(struct sbuf *b, char c);
void sbuf_addf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The string (the caller owns it; "" for an empty buffer), or NULL after an allocation failure. */
char *sbuf_take(struct sbuf *b);
void sbuf_free(struct sbuf *b);

/* ---- build_user.c: names -> ids in the image's own /etc/passwd and /etc/group ---- */

/* "USER[:GROUP]" (names or numbers) resolved inside root_dir (the mounted image; symlinks cannot leave it).
 * A user without a group takes the user's primary group. A number needs no entry; a name that is missing
 * is an error naming it. */

/* ---- build_copy.c ---- */

struct build_copy {
	const char *context_dir;
	const char *from;             /* COPY --from=: the stage or image context_dir holds (for messages), or NULL */
	const struct build_ignore *ignore;
	const char *const *sources;   /* expanded, relative to the context (wildcards allowed) */
	size_t n_sources;
	const char *dest;             /* expanded, absolute (WORKDIR already applied) */
	bool dest_is_dir;             /* dest ended with '/', or several sources/wildcards */
	bool unpack_archives;         /* ADD: local tar archives are unpacked into dest */
	bool chown;                   /* apply uid/gid (COPY gives 0:0 otherwise, as docker) */
	uid_t uid;
	gid_t gid;
	bool chmod;
	mode_t mode;
};

/* The sha256 (hex) of what the copy brings in: for each source, each path below it (sorted), its type,
 * mode, owner, mtime, link target and bytes. Fails on a missing source or one outside the context. */
int build_copy_digest(const struct build_copy *c, char hex[65], vt_err *err);
/* Copy (or unpack) into root_dir, the mounted image, from a child process chrooted there. */
int build_copy_run(const struct build_copy *c, const char *root_dir, vt_err *err);

/* ---- build_run.c ---- */

struct build_run {
	const char *rootfs;        /* the mounted image */
	const char *work_dir;      /* a private directory for the bundle and the runtime's state */
	const char *const *args;   /* NULL-terminated */
	const char *const *env;    /* NULL-terminated */
	const char *cwd;
	uid_t uid;
	gid_t gid;
	int stop_fd;               /* signalfd that interrupts the run, or -1 */
	struct stat etc_before;    /* out: the image's /etc before the run (if etc_existed) */
	bool etc_existed;
};

/* Run one RUN step to its end. *status: its exit status (128+n after a signal); *stopped: interrupted by
 * stop_fd (the container is killed then). */
int build_run_step(struct build_run *r, int *status, bool *stopped, vt_err *err);
/* After the overlay is unmounted: an /etc that is in upper_dir only because the mount points of
 * /etc/resolv.conf and /etc/hosts made overlayfs copy it up (now empty, not opaque, same mode and owner)
 * is dropped, so that a RUN that changed nothing there adds nothing there. */
void build_run_tidy_upper(const struct build_run *r, const char *upper_dir);

/* Run fn(arg) in a child process chrooted at root_dir; its error message comes back to err. */
int build_in_chroot(const char *root_dir, int (*fn)(void *arg, vt_err *err), void *arg, vt_err *err);
/* mkdir -p with 0755 for what is missing (in the current root). */
int build_mkdir_p(const char *path, vt_err *err);

/* ---- the executor's state (build.c, build_steps.c) ---- */

struct build_arg {
	char *key, *value; /* --build-arg K=V (value NULL: K was given alone and is not in our environment) */
	bool used;
};

/* A finished stage of a multi-stage recipe: what FROM NAME and COPY --from=NAME|N take. */
struct build_stage {
	char *name;                /* its AS name, or NULL */
	char id[IMG_ID_LEN + 1];   /* its image, or "" when it made none (FROM scratch alone) */
};

struct builder {
	struct img_store *s;
	const struct build_opts *o;
	vt_err *err;
	struct recipe *recipe;
	struct build_ignore *ignore;
	const char *file;          /* the recipe's name in messages */
	char *work;                /* <store root>/build/<pid>-<time>: everything temporary */
	unsigned seq;              /* numbers the per-step directories under work */
	struct img_image *cur;     /* the image so far; NULL after FROM scratch */
	json_object *config;       /* its config blob (our own copy) */
	bool cmd_set;              /* CMD was given in this recipe (ENTRYPOINT then keeps it) */
	struct build_arg *bargs;
	size_t n_bargs;
	char **args;               /* ARGs in force after FROM, "K=V" */
	size_t n_args;
	char **meta;               /* ARGs before FROM, "K=V" (for FROM and for ARG NAME without a default) */
	size_t n_meta;
	struct build_stage *stages; /* the stages before the current one */
	size_t n_stages;
	char *stage_name;          /* the current stage's AS name, or NULL */
};

/* The image of an earlier stage named ref (its AS name, any case, or its number from 0): *found says whether
 * there is one; *img is NULL for a stage that made no image. */
int build_stage_image(struct builder *b, const char *ref, bool *found, struct img_image **img);

struct step_fs;

/* A step's words after substitution, and the text that identifies it (cache key and history). */
struct step_plan {
	char **words;              /* FROM, COPY/ADD (sources then dest), EXPOSE, VOLUME */
	size_t n_words;
	char **keys, **values;     /* ENV, LABEL, ARG (value NULL: an ARG without a value) */
	size_t n_kv;
	char *value;               /* WORKDIR, USER, STOPSIGNAL */
	char *chown, *chmod;
	char digest[65];           /* COPY/ADD: what the sources bring in */
	char *from;                /* COPY --from: "stage NAME" or "image REF", for messages */
	struct step_fs *from_fs;   /* COPY --from: that stage or image, mounted */
	char *text;                /* "COPY --chown=1:1 a /app/" with the values substituted */
};

/* Substitute the step's words (and for COPY/ADD, digest the sources). Updates b's ARGs for ARG. */
int build_plan_step(struct builder *b, const struct recipe_step *st, struct step_plan *p);
/* Do a step that the cache did not have: the new image's id in id. */
int build_exec_step(struct builder *b, const struct recipe_step *st, const struct step_plan *p,
		    char id[IMG_ID_LEN + 1]);
void build_plan_free(struct step_plan *p);
/* FROM scratch: an empty config (architecture and os of this machine). */
json_object *build_scratch_config(void);

/* ---- small helpers (build.c) ---- */
/* snprintf into a path buffer; a path that does not fit is an error. */
int build_path(char *out, size_t size, vt_err *err, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
int build_mkdirs(const char *path, mode_t mode, vt_err *err);
/* sha256 of data as 64 hex digits. */
int build_sha256_hex(const void *data, size_t len, char hex[65], vt_err *err);

#endif

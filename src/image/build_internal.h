/* Shared by the build files only (recipe*.c, build*.c): a growable string, and the helpers one step of the
 * executor hands to another. Not a contract for anything outside src/image/build*. */
#ifndef VIRTUS_IMAGE_BUILD_INTERNAL_H
#define VIRTUS_IMAGE_BUILD_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
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
int build_resolve_user(const char *root_dir, const char *spec, uid_t *uid, gid_t *gid, vt_err *err);

/* ---- build_copy.c ---- */

struct build_copy {
	const char *context_dir;
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
};

/* Run one RUN step to its end. *status: its exit status (128+n after a signal); *stopped: interrupted by
 * stop_fd (the container is killed then). */
int build_run_step(const struct build_run *r, int *status, bool *stopped, vt_err *err);

/* ---- small file helpers (build.c) ---- */
int build_mkdirs(const char *path, mode_t mode, vt_err *err);
/* sha256 of data as 64 hex digits. */
int build_sha256_hex(const void *data, size_t len, char hex[65], vt_err *err);

#endif

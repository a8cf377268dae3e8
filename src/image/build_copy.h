/* Between the two halves of COPY/ADD: build_copy.c (naming and walking the sources, the digest) and
 * build_copy_write.c (writing them into the mounted image). */
#ifndef VIRTUS_IMAGE_BUILD_COPY_H
#define VIRTUS_IMAGE_BUILD_COPY_H

#include <sys/stat.h>

#include "image/build_internal.h"

struct copy_source {
	char *rel;   /* cleaned, relative to the context ("" = the context itself) */
	char *name;  /* its last segment: the name it gets in a destination directory */
};

struct copy_sources {
	struct copy_source *v;
	size_t n;
};

/* Every source of c, wildcards matched, checked to exist in the context (ctxfd) and not be excluded. */
int build_copy_resolve(const struct build_copy *c, int ctxfd, struct copy_sources *out, vt_err *err);
void build_copy_sources_free(struct copy_sources *s);

/* One thing a source brings in. */
struct copy_entry {
	const char *rel;  /* relative to the context */
	const char *sub;  /* relative to the source ("" = the source itself) */
	struct stat st;   /* lstat, except for the source itself (followed) */
	int dirfd;        /* the directory holding it (name is its name there), or -1 for the source itself */
	const char *name;
	int fd;           /* the source itself when a regular file: open for reading; else -1 */
	bool post;        /* a directory, visited again after its contents */
};
typedef int (*copy_visit)(void *arg, const struct copy_entry *e, vt_err *err);

/* Visit the source and, for a directory, everything below it not excluded (sorted by name, depth first;
 * directories before and after their contents). */
int build_copy_walk(int ctxfd, const struct copy_source *src, const struct build_ignore *ig, copy_visit fn,
		    void *arg, vt_err *err);
/* A readable fd of a regular file entry. */
int copy_entry_open(const struct copy_entry *e, vt_err *err);
int copy_entry_readlink(const struct copy_entry *e, char *buf, size_t size, vt_err *err);

/* openat2(root, path, flags, RESOLVE_IN_ROOT): path cannot leave root, even through symlinks. */
int build_openat_in_root(int root, const char *path, int flags, vt_err *err);
/* The names in a directory, sorted with strcmp. */
int build_list_dir(int dirfd, char ***names, size_t *n, vt_err *err);
void build_names_free(char **names, size_t n);

#endif

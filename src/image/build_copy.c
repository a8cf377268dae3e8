/* COPY and ADD, the reading side: which files of the context a source names, a deterministic walk over them,
 * and the digest of what they bring in (the cache key's part for COPY/ADD).
 *
 * Sources are relative to the context ('/' at the start means the context too) and may not leave it: ".."
 * is refused lexically, and every lookup resolves with RESOLVE_IN_ROOT under the context, so a symlink in the
 * context cannot reach other host files. A source itself is followed if it is a symlink (as docker does);
 * below a directory, symlinks are copied as symlinks. Wildcards are matched one path segment at a time with
 * fnmatch(3). Files excluded by .containerignore are never read. */
#include "image/build_copy.h"
#include "image/internal.h"
#include "lib/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <linux/openat2.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>

int build_openat_in_root(int root, const char *path, int flags, vt_err *err)
{
	struct open_how how = { .flags = (uint64_t)flags | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
	int fd = (int)syscall(SYS_openat2, root, *path ? path : ".", &how, sizeof(how));
	if (fd < 0)
		return vt_fail_errno(err, errno, "'%s'", *path ? path : ".");
	return fd;
}

/* ---- naming the sources ---- */

/* "a/./b//c/" -> "a/b/c"; "/x" -> "x"; "." -> ""; a ".." that climbs out of the context is refused. */
static int clean_source(const char *in, char **out, vt_err *err)
{
	struct sbuf b = { 0 };
	cleanup_free char *copy = strdup(in);
	if (!copy)
		return vt_fail_errno(err, ENOMEM, "COPY");
	char *save = NULL;
	for (char *s = strtok_r(copy, "/", &save); s; s = strtok_r(NULL, "/", &save)) {
		if (!strcmp(s, "."))
			continue;
		if (!strcmp(s, "..")) {
			char *slash = b.len ? strrchr(b.s, '/') : NULL;
			if (!b.len) {
				sbuf_free(&b);
				return vt_fail(err, "'%s' is outside the build context", in);
			}
			b.len = slash ? (size_t)(slash - b.s) : 0;
			b.s[b.len] = 0;
			continue;
		}
		if (b.len)
			sbuf_addc(&b, '/');
		sbuf_add(&b, s);
	}
	*out = sbuf_take(&b);
	return *out ? 0 : vt_fail_errno(err, ENOMEM, "COPY");
}

static int add_source(struct copy_sources *out, const char *rel, vt_err *err)
{
	struct copy_source *grown = realloc(out->v, (out->n + 1) * sizeof(*grown));
	if (!grown)
		return vt_fail_errno(err, ENOMEM, "COPY");
	out->v = grown;
	const char *slash = strrchr(rel, '/');
	grown[out->n].rel = strdup(rel);
	grown[out->n].name = strdup(slash ? slash + 1 : rel);
	if (!grown[out->n].rel || !grown[out->n].name) {
		free(grown[out->n].rel);
		free(grown[out->n].name);
		return vt_fail_errno(err, ENOMEM, "COPY");
	}
	out->n++;
	return 0;
}

void build_copy_sources_free(struct copy_sources *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->v[i].rel);
		free(s->v[i].name);
	}
	free(s->v);
	*s = (struct copy_sources){ 0 };
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in a directory (not "." or ".."), sorted by strcmp: every walk is in the same order. */
int build_list_dir(int dirfd, char ***names, size_t *n, vt_err *err)
{
	*names = NULL;
	*n = 0;
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return vt_fail_errno(err, errno, "cannot list a directory");
	}
	struct dirent *de;
	int rc = 0;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char **grown = realloc(*names, (*n + 1) * sizeof(char *));
		if (!grown || !(grown[*n] = strdup(de->d_name))) {
			*names = grown ? grown : *names;
			rc = vt_fail_errno(err, ENOMEM, "listing a directory");
			break;
		}
		*names = grown;
		(*n)++;
	}
	closedir(d);
	if (!rc && *n > 1)
		qsort(*names, *n, sizeof(char *), cmp_names);
	return rc;
}

void build_names_free(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

static bool has_wildcard(const char *s)
{
	return strpbrk(s, "*?[") != NULL;
}

static char *join_rel(const char *rel, const char *name)
{
	char *out;
	if (asprintf(&out, "%s%s%s", rel, *rel ? "/" : "", name) < 0)
		return NULL;
	return out;
}

/* Match the remaining pattern segments (segs) under directory dirfd, whose context path is rel. */
static int glob_level(int dirfd, const char *rel, char **segs, size_t n_segs, const struct build_ignore *ig,
		      struct copy_sources *out, vt_err *err)
{
	char **names;
	size_t n;
	if (build_list_dir(dirfd, &names, &n, err))
		return -1;
	int rc = 0;
	for (size_t i = 0; !rc && i < n; i++) {
		if (fnmatch(segs[0], names[i], 0))
			continue;
		cleanup_free char *path = join_rel(rel, names[i]);
		if (!path) {
			rc = vt_fail_errno(err, ENOMEM, "COPY");
			break;
		}
		if (build_ignore_excluded(ig, path) && !build_ignore_has_exceptions(ig))
			continue;
		if (n_segs == 1) {
			if (!build_ignore_excluded(ig, path))
				rc = add_source(out, path, err);
			continue;
		}
		cleanup_close int sub = openat(dirfd, names[i], O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub >= 0)
			rc = glob_level(sub, path, segs + 1, n_segs - 1, ig, out, err);
	}
	build_names_free(names, n);
	return rc;
}

/* A pattern: the leading segments without wildcards name a directory, the rest are matched level by level. */
static int glob_sources(int ctxfd, const char *pattern, const struct build_ignore *ig, struct copy_sources *out,
			vt_err *err)
{
	char **segs = NULL;
	size_t n_segs = 0;
	struct sbuf prefix = { 0 };
	cleanup_free char *copy = strdup(pattern);
	char *save = NULL;
	int rc = copy ? 0 : vt_fail_errno(err, ENOMEM, "COPY");
	for (char *s = copy ? strtok_r(copy, "/", &save) : NULL; !rc && s; s = strtok_r(NULL, "/", &save)) {
		if (!n_segs && !has_wildcard(s)) {
			sbuf_addf(&prefix, "%s%s", prefix.len ? "/" : "", s);
			continue;
		}
		char **grown = realloc(segs, (n_segs + 1) * sizeof(char *));
		if (!grown)
			rc = vt_fail_errno(err, ENOMEM, "COPY");
		else
			(segs = grown)[n_segs++] = s;
	}
	size_t before = out->n;
	if (!rc) {
		const char *base = prefix.s ? prefix.s : "";
		int dirfd = build_openat_in_root(ctxfd, base, O_PATH | O_DIRECTORY, err);
		rc = dirfd < 0 ? -1 : glob_level(dirfd, base, segs, n_segs, ig, out, err);
		if (dirfd >= 0)
			close(dirfd);
	}
	free(segs);
	sbuf_free(&prefix);
	if (!rc && out->n == before)
		rc = vt_fail(err, "'%s' matches no file in the build context", pattern);
	return rc;
}

int build_copy_resolve(const struct build_copy *c, int ctxfd, struct copy_sources *out, vt_err *err)
{
	*out = (struct copy_sources){ 0 };
	for (size_t i = 0; i < c->n_sources; i++) {
		const char *s = c->sources[i];
		cleanup_free char *rel = NULL;
		if (strstr(s, "://") || !strncmp(s, "git@", 4)) {
			build_copy_sources_free(out);
			return vt_fail(err, "'%s': URL sources are not supported (put the file in the build context)", s);
		}
		int rc = clean_source(s, &rel, err);
		if (!rc && has_wildcard(rel)) {
			rc = glob_sources(ctxfd, rel, c->ignore, out, err);
		} else if (!rc && *rel && build_ignore_excluded(c->ignore, rel)) {
			rc = vt_fail(err, "'%s' is excluded by the context's ignore file", s);
		} else if (!rc) {
			int fd = build_openat_in_root(ctxfd, rel, O_PATH, err);
			if (fd < 0 && err && err->errnum == ENOENT)
				rc = c->from ? vt_fail(err, "'%s' is not in %s", s, c->from)
					     : vt_fail(err, "'%s' is not in the build context %s", s, c->context_dir);
			else
				rc = fd < 0 ? -1 : add_source(out, rel, err);
			if (fd >= 0)
				close(fd);
		}
		if (rc) {
			build_copy_sources_free(out);
			return -1;
		}
	}
	if (out->n > 1 && !c->dest_is_dir) {
		build_copy_sources_free(out);
		return vt_fail(err, "the sources are several files: the destination '%s' must end with '/'", c->dest);
	}
	return 0;
}

/* ---- walking what a source brings in ---- */

int copy_entry_open(const struct copy_entry *e, vt_err *err)
{
	if (e->fd >= 0)
		return fcntl(e->fd, F_DUPFD_CLOEXEC, 0);
	int fd = openat(e->dirfd, e->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return vt_fail_errno(err, errno, "cannot open %s in the build context", e->rel);
	return fd;
}

int copy_entry_readlink(const struct copy_entry *e, char *buf, size_t size, vt_err *err)
{
	ssize_t n = readlinkat(e->dirfd, e->name, buf, size - 1);
	if (n < 0)
		return vt_fail_errno(err, errno, "cannot read the symlink %s in the build context", e->rel);
	buf[n] = 0;
	return 0;
}

struct walker {
	const struct build_ignore *ig;
	copy_visit fn;
	void *arg;
	vt_err *err;
};

static int walk_dir(struct walker *w, int dirfd, const char *rel, const char *sub);

static int walk_child(struct walker *w, int dirfd, const char *name, const char *rel, const char *sub)
{
	struct copy_entry e = { .rel = rel, .sub = sub, .dirfd = dirfd, .name = name, .fd = -1 };
	if (fstatat(dirfd, name, &e.st, AT_SYMLINK_NOFOLLOW))
		return vt_fail_errno(w->err, errno, "cannot stat %s in the build context", rel);
	bool excluded = build_ignore_excluded(w->ig, rel);
	bool is_dir = S_ISDIR(e.st.st_mode);
	if (excluded && !(is_dir && build_ignore_has_exceptions(w->ig)))
		return 0;
	if (!excluded && w->fn(w->arg, &e, w->err))
		return -1;
	if (!is_dir)
		return 0;
	cleanup_close int sub_fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sub_fd < 0)
		return vt_fail_errno(w->err, errno, "cannot open %s in the build context", rel);
	if (walk_dir(w, sub_fd, rel, sub))
		return -1;
	e.post = true;
	return excluded ? 0 : w->fn(w->arg, &e, w->err);
}

static int walk_dir(struct walker *w, int dirfd, const char *rel, const char *sub)
{
	char **names;
	size_t n;
	if (build_list_dir(dirfd, &names, &n, w->err))
		return vt_err_prefix(w->err, "%s", *rel ? rel : ".");
	int rc = 0;
	for (size_t i = 0; !rc && i < n; i++) {
		cleanup_free char *child_rel = join_rel(rel, names[i]);
		cleanup_free char *child_sub = join_rel(sub, names[i]);
		rc = child_rel && child_sub ? walk_child(w, dirfd, names[i], child_rel, child_sub)
					    : vt_fail_errno(w->err, ENOMEM, "COPY");
	}
	build_names_free(names, n);
	return rc;
}

int build_copy_walk(int ctxfd, const struct copy_source *src, const struct build_ignore *ig, copy_visit fn,
		    void *arg, vt_err *err)
{
	struct walker w = { .ig = ig, .fn = fn, .arg = arg, .err = err };
	cleanup_close int fd = build_openat_in_root(ctxfd, src->rel, O_PATH, err);
	if (fd < 0)
		return vt_err_prefix(err, "COPY source not in the build context");
	struct copy_entry e = { .rel = src->rel, .sub = "", .dirfd = -1, .name = src->name, .fd = -1 };
	if (fstatat(fd, "", &e.st, AT_EMPTY_PATH))
		return vt_fail_errno(err, errno, "cannot stat %s", src->rel);
	if (S_ISDIR(e.st.st_mode)) {
		cleanup_close int dir = build_openat_in_root(ctxfd, src->rel, O_RDONLY | O_DIRECTORY, err);
		if (dir < 0 || fn(arg, &e, err) || walk_dir(&w, dir, src->rel, ""))
			return -1;
		e.post = true;
		return fn(arg, &e, err);
	}
	cleanup_close int data = -1;
	if (S_ISREG(e.st.st_mode) && (data = build_openat_in_root(ctxfd, src->rel, O_RDONLY | O_NOFOLLOW, err)) < 0)
		return -1;
	e.fd = data;
	return fn(arg, &e, err);
}

/* ---- the digest ---- */

struct digester {
	struct sha256_ctx md;
	char buf[64 * 1024];
};

static int digest_entry(void *arg, const struct copy_entry *e, vt_err *err)
{
	struct digester *d = arg;
	if (e->post || (!*e->sub && S_ISDIR(e->st.st_mode)))
		return 0; /* a directory source brings its contents, not itself */
	char head[256];
	int n = snprintf(head, sizeof(head), "%o %u %u %lld", (unsigned)e->st.st_mode, (unsigned)e->st.st_uid,
			 (unsigned)e->st.st_gid, S_ISREG(e->st.st_mode) ? (long long)e->st.st_size : 0LL);
	sha256_update(&d->md, strlen(e->sub) + 1, (const uint8_t *)e->sub);
	sha256_update(&d->md, (size_t)n + 1, (const uint8_t *)head);
	if (S_ISLNK(e->st.st_mode)) {
		if (copy_entry_readlink(e, d->buf, sizeof(d->buf), err))
			return -1;
		sha256_update(&d->md, strlen(d->buf) + 1, (const uint8_t *)d->buf);
	}
	if (S_ISCHR(e->st.st_mode) || S_ISBLK(e->st.st_mode)) {
		n = snprintf(head, sizeof(head), "%llu", (unsigned long long)e->st.st_rdev);
		sha256_update(&d->md, (size_t)n + 1, (const uint8_t *)head);
	}
	if (!S_ISREG(e->st.st_mode))
		return 0;
	cleanup_close int fd = copy_entry_open(e, err);
	if (fd < 0)
		return -1;
	ssize_t r;
	while ((r = read(fd, d->buf, sizeof(d->buf))) > 0)
		sha256_update(&d->md, (size_t)r, (const uint8_t *)d->buf);
	if (r < 0)
		return vt_fail_errno(err, errno, "cannot read %s in the build context", e->rel);
	return 0;
}

int build_copy_digest(const struct build_copy *c, char hex[65], vt_err *err)
{
	cleanup_close int ctxfd = open(c->context_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (ctxfd < 0)
		return vt_fail_errno(err, errno, "cannot open the build context %s", c->context_dir);
	struct copy_sources srcs;
	if (build_copy_resolve(c, ctxfd, &srcs, err))
		return -1;
	struct digester *d = malloc(sizeof(*d));
	int rc = d ? 0 : vt_fail_errno(err, ENOMEM, "COPY digest");
	if (!rc)
		sha256_init(&d->md);
	for (size_t i = 0; !rc && i < srcs.n; i++) {
		sha256_update(&d->md, strlen(srcs.v[i].rel) + 1, (const uint8_t *)srcs.v[i].rel);
		rc = build_copy_walk(ctxfd, &srcs.v[i], c->ignore, digest_entry, d, err);
	}
	uint8_t sum[SHA256_DIGEST_SIZE];
	if (!rc)
		sha256_digest(&d->md, sizeof(sum), sum);
	for (unsigned i = 0; !rc && i < sizeof(sum); i++)
		sprintf(hex + 2 * i, "%02x", sum[i]);
	free(d);
	build_copy_sources_free(&srcs);
	return rc;
}

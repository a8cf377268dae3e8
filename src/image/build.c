/* `virtus build`: the driver. It reads the recipe and the ignore file, then for each step substitutes its
 * words, looks its key up in the cache, and runs it only on a miss (build_steps.c). The final image gets the
 * name only when every step succeeded.
 *
 * A step's cache key is sha256(parent image id, the step's text after substitution, and for COPY/ADD the
 * digest of what the sources bring in); <store root>/build-cache/<key> holds the image id the step made,
 * written atomically. A hit whose image is gone is a miss.
 *
 * The build runs in a private mount namespace of its own (the calling process is moved into it): the overlay
 * mounts of the steps vanish with the process even if it is killed, and never show in the host's mount
 * table. The temporary directory <store root>/build/<pid>-<time>/ is removed at the end; one left by a
 * build that was killed (its pid is gone) is removed, with any RUN container still in it, by the next build. */
#include "image/build_internal.h"
#include "image/internal.h"
#include "lib/util.h"
#include "runtime/rt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <nettle/sha2.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/signalfd.h>
#include <sys/stat.h>

/* ---- small helpers ---- */

int build_path(char *out, size_t size, vt_err *err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(out, size, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= size)
		return vt_fail(err, "path too long: %s...", out);
	return 0;
}

int build_mkdirs(const char *path, mode_t mode, vt_err *err)
{
	char p[PATH_MAX];
	if (build_path(p, sizeof(p), err, "%s", path))
		return -1;
	for (char *s = p + 1;; s++) {
		bool end = !*s;
		if (*s != '/' && !end)
			continue;
		*s = 0;
		if (mkdir(p, end ? mode : 0755) && errno != EEXIST)
			return vt_fail_errno(err, errno, "cannot create %s", p);
		if (end)
			return 0;
		*s = '/';
	}
}

int build_sha256_hex(const void *data, size_t len, char hex[65], vt_err *err)
{
	(void)err; /* nettle's sha256 cannot fail */
	uint8_t sum[SHA256_DIGEST_SIZE];
	struct sha256_ctx ctx;
	sha256_init(&ctx);
	sha256_update(&ctx, len, data);
	sha256_digest(&ctx, sizeof(sum), sum);
	for (unsigned i = 0; i < sizeof(sum); i++)
		snprintf(hex + 2 * i, 3, "%02x", sum[i]);
	return 0;
}

static const char *short_id(const char *id)
{
	static const char prefix[] = "sha256:";
	return !strncmp(id, prefix, sizeof(prefix) - 1) ? id + sizeof(prefix) - 1 : id;
}

static void say(const struct builder *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const struct builder *b, const char *fmt, ...)
{
	if (!b->o->out)
		return;
	va_list ap;
	va_start(ap, fmt);
	vfprintf(b->o->out, fmt, ap);
	va_end(ap);
	fflush(b->o->out); /* before a RUN's own output on fds 1 and 2 */
}

/* ---- the current image ---- */

static int set_current(struct builder *b, struct img_image *img)
{
	json_object *config = NULL;
	if (img && json_object_deep_copy(img->config, &config, NULL))
		return vt_fail_errno(b->err, ENOMEM, "image config");
	if (!img)
		config = build_scratch_config();
	img_image_free(b->cur);
	json_object_put(b->config);
	b->cur = img;
	b->config = config;
	return 0;
}

static int resolve_current(struct builder *b, const char *ref)
{
	struct img_image *img;
	if (img_resolve(b->s, ref, &img, b->err))
		return -1;
	return set_current(b, img);
}

/* ---- stages ---- */

static bool is_number(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

int build_stage_image(struct builder *b, const char *ref, bool *found, struct img_image **img)
{
	const struct build_stage *st = NULL;
	*img = NULL;
	for (size_t i = 0; !st && i < b->n_stages; i++)
		if (b->stages[i].name && !strcasecmp(b->stages[i].name, ref))
			st = &b->stages[i];
	if (!st && is_number(ref) && strlen(ref) < 6 && (size_t)atoi(ref) < b->n_stages)
		st = &b->stages[atoi(ref)];
	*found = st != NULL;
	if (!st || !*st->id)
		return 0;
	return img_resolve(b->s, st->id, img, b->err);
}

/* FROM: the stage before (if any) is done and named; ARGs and CMD start afresh (as docker's do); the base
 * is an earlier stage, scratch, or an image. */
static int start_stage(struct builder *b, const struct recipe_step *st, const char *base)
{
	if (b->config) {
		struct build_stage *v = realloc(b->stages, (b->n_stages + 1) * sizeof(*v));
		if (!v)
			return vt_fail_errno(b->err, ENOMEM, "build stages");
		b->stages = v;
		v[b->n_stages] = (struct build_stage){ .name = b->stage_name };
		snprintf(v[b->n_stages].id, sizeof(v[b->n_stages].id), "%s", b->cur ? b->cur->id : "");
		b->n_stages++;
		b->stage_name = NULL;
	}
	if (st->n_words == 3 && !(b->stage_name = strdup(st->words[2])))
		return vt_fail_errno(b->err, ENOMEM, "build stages");
	for (size_t i = 0; i < b->n_args; i++)
		free(b->args[i]);
	b->n_args = 0;
	b->cmd_set = false;
	bool found;
	struct img_image *img;
	if (build_stage_image(b, base, &found, &img))
		return -1;
	if (found)
		return set_current(b, img);
	return strcmp(base, "scratch") ? resolve_current(b, base) : set_current(b, NULL);
}

/* ---- the cache ---- */

static int cache_path(const struct builder *b, const char *key, char *out, size_t size)
{
	return build_path(out, size, b->err, "%s/build-cache/%s", img_store_root(b->s), key);
}

static int cache_key(const struct builder *b, const struct step_plan *p, char key[65])
{
	struct sbuf in = { 0 };
	sbuf_addf(&in, "%s\n%s\n%s", b->cur ? b->cur->id : "scratch", p->text, p->digest);
	cleanup_free char *s = sbuf_take(&in);
	if (!s)
		return vt_fail_errno(b->err, ENOMEM, "cache key");
	return build_sha256_hex(s, strlen(s), key, b->err);
}

/* The image a cached step made, if the cache has the key and the store still has the image. */
static struct img_image *cache_get(const struct builder *b, const char *key)
{
	char path[PATH_MAX], id[IMG_ID_LEN + 2] = "";
	vt_err ignored;
	struct img_image *img = NULL;
	if (cache_path(b, key, path, sizeof(path)))
		return NULL;
	FILE *f = fopen(path, "re");
	if (!f)
		return NULL;
	if (fgets(id, sizeof(id), f))
		id[strcspn(id, "\n")] = 0;
	fclose(f);
	if (*id && img_resolve(b->s, id, &img, &ignored))
		img = NULL;
	return img;
}

/* Remember key -> id (temp file + rename). A cache that cannot be written only costs the next build time. */
static void cache_put(const struct builder *b, const char *key, const char *id)
{
	char path[PATH_MAX], tmp[PATH_MAX], dir[PATH_MAX];
	vt_err ignored;
	if (build_path(dir, sizeof(dir), &ignored, "%s/build-cache", img_store_root(b->s)) ||
	    build_mkdirs(dir, 0700, &ignored) || cache_path(b, key, path, sizeof(path)) ||
	    build_path(tmp, sizeof(tmp), &ignored, "%s.%d.tmp", path, (int)getpid()))
		return;
	cleanup_close int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	char line[IMG_ID_LEN + 2];
	snprintf(line, sizeof(line), "%s\n", id);
	if (fd < 0 || write_all(fd, line, strlen(line)) || fsync(fd) || rename(tmp, path))
		unlink(tmp);
}

/* ---- setup ---- */

static int read_recipe(struct builder *b, char *path, size_t size)
{
	const struct build_opts *o = b->o;
	if (o->recipe_path) {
		if (build_path(path, size, b->err, "%s", o->recipe_path))
			return -1;
	} else {
		if (build_path(path, size, b->err, "%s/Containerfile", o->context_dir))
			return -1;
		if (access(path, F_OK) &&
		    build_path(path, size, b->err, "%s/Dockerfile", o->context_dir) == 0 && access(path, F_OK))
			return vt_fail(b->err, "%s has no Containerfile or Dockerfile (use -f FILE)", o->context_dir);
	}
	cleanup_free void *text = NULL;
	size_t len;
	if (read_file(path, 16 * MiB, &text, &len, b->err))
		return -1;
	b->file = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	return recipe_parse(text, len, b->file, &b->recipe, b->err);
}

static int parse_build_args(struct builder *b)
{
	const struct build_opts *o = b->o;
	b->bargs = calloc(o->n_build_args + 1, sizeof(*b->bargs));
	if (!b->bargs)
		return vt_fail_errno(b->err, ENOMEM, "--build-arg");
	for (size_t i = 0; i < o->n_build_args; i++, b->n_bargs++) {
		const char *a = o->build_args[i], *eq = strchr(a, '=');
		size_t klen = eq ? (size_t)(eq - a) : strlen(a);
		if (!klen)
			return vt_fail(b->err, "--build-arg '%s': a name is needed (NAME=VALUE)", a);
		struct build_arg *ba = &b->bargs[i];
		ba->key = strndup(a, klen);
		const char *v = eq ? eq + 1 : (ba->key ? getenv(ba->key) : NULL);
		ba->value = v ? strdup(v) : NULL;
		if (!ba->key || (v && !ba->value))
			return vt_fail_errno(b->err, ENOMEM, "--build-arg");
	}
	return 0;
}

/* Remove the directory of a build whose process is gone: its RUN containers first, then the files. */
static void remove_stale_work(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		char run[PATH_MAX];
		json_object *list = NULL;
		vt_err ignored;
		if (strncmp(de->d_name, "step", 4) ||
		    build_path(run, sizeof(run), &ignored, "%s/%s/run", dir, de->d_name) || access(run, F_OK))
			continue;
		struct rt_globals g = { .root = run };
		if (rt_cmd_list(&g, &list, &ignored))
			continue;
		for (size_t i = 0; i < json_object_array_length(list); i++) {
			json_object *c = json_object_array_get_idx(list, i);
			rt_cmd_delete(&g, json_object_get_string(json_object_object_get(c, "id")), true, &ignored);
		}
		json_object_put(list);
	}
	if (d)
		closedir(d);
	rt_remove_tree(dir);
}

static void collect_stale_work(const char *build_dir)
{
	DIR *d = opendir(build_dir);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		char path[PATH_MAX];
		vt_err ignored;
		if (pid <= 0 || *end != '-')
			continue;
		bool alive = !kill((pid_t)pid, 0) || errno != ESRCH;
		if (alive)
			continue;
		if (!build_path(path, sizeof(path), &ignored, "%s/%s", build_dir, de->d_name))
			remove_stale_work(path);
	}
	if (d)
		closedir(d);
}

static int make_work_dir(struct builder *b)
{
	char dir[PATH_MAX], work[PATH_MAX];
	if (build_path(dir, sizeof(dir), b->err, "%s/build", img_store_root(b->s)) ||
	    build_mkdirs(dir, 0700, b->err))
		return -1;
	collect_stale_work(dir);
	if (build_path(work, sizeof(work), b->err, "%s/%d-%llx", dir, (int)getpid(), (unsigned long long)now_ns()) ||
	    build_mkdirs(work, 0700, b->err))
		return -1;
	b->work = strdup(work);
	return b->work ? 0 : vt_fail_errno(b->err, ENOMEM, "build");
}

/* Our own mount namespace, with nothing propagating back to the host's. */
static int private_mounts(vt_err *err)
{
	if (unshare(CLONE_NEWNS))
		return vt_fail_errno(err, errno, "cannot create a mount namespace for the build");
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))
		return vt_fail_errno(err, errno, "cannot make the build's mounts private");
	return 0;
}

static int setup(struct builder *b, char *recipe_path, size_t size)
{
	struct stat st;
	if (stat(b->o->context_dir, &st) || !S_ISDIR(st.st_mode))
		return vt_fail(b->err, "the build context %s is not a directory", b->o->context_dir);
	cleanup_free char *name = NULL; /* a bad -t is refused before any step runs */
	if (b->o->name && img_normalize_name(b->o->name, &name, b->err))
		return vt_err_prefix(b->err, "-t");
	if (read_recipe(b, recipe_path, size) || parse_build_args(b))
		return -1;
	if (build_ignore_load(b->o->context_dir, &b->ignore, b->err))
		return -1;
	return private_mounts(b->err) ?: make_work_dir(b);
}

static void teardown(struct builder *b)
{
	if (b->work)
		rt_remove_tree(b->work);
	free(b->work);
	recipe_free(b->recipe);
	build_ignore_free(b->ignore);
	img_image_free(b->cur);
	json_object_put(b->config);
	for (size_t i = 0; i < b->n_bargs; i++) {
		free(b->bargs[i].key);
		free(b->bargs[i].value);
	}
	free(b->bargs);
	for (size_t i = 0; i < b->n_args; i++)
		free(b->args[i]);
	free(b->args);
	for (size_t i = 0; i < b->n_meta; i++)
		free(b->meta[i]);
	free(b->meta);
	for (size_t i = 0; i < b->n_stages; i++)
		free(b->stages[i].name);
	free(b->stages);
	free(b->stage_name);
}

/* ---- the steps ---- */

static bool stop_requested(const struct builder *b)
{
	struct pollfd p = { .fd = b->o->stop_fd, .events = POLLIN };
	return b->o->stop_fd >= 0 && poll(&p, 1, 0) == 1;
}

/* One step: plan it, then take it from the cache or do it. */
static int run_step(struct builder *b, const struct recipe_step *st)
{
	struct step_plan p;
	int rc = build_plan_step(b, st, &p);
	if (rc || st->op == RECIPE_FROM || (st->op == RECIPE_ARG && !b->config)) {
		if (!rc && st->op == RECIPE_FROM)
			rc = start_stage(b, st, p.words[0]);
		build_plan_free(&p);
		return rc;
	}
	char key[65];
	struct img_image *cached = NULL;
	rc = cache_key(b, &p, key);
	if (!rc && !b->o->no_cache && (cached = cache_get(b, key)))
		say(b, "--> Using cache %.12s\n", short_id(cached->id));
	if (!rc && cached) {
		rc = set_current(b, cached);
	} else if (!rc) {
		char id[IMG_ID_LEN + 1];
		rc = build_exec_step(b, st, &p, id) ?: resolve_current(b, id);
		if (!rc)
			cache_put(b, key, id);
	}
	if (st->op == RECIPE_CMD)
		b->cmd_set = true;
	build_plan_free(&p);
	return rc;
}

static int run_steps(struct builder *b)
{
	const struct recipe *r = b->recipe;
	for (size_t i = 0; i < r->n_steps; i++) {
		const struct recipe_step *st = &r->steps[i];
		say(b, "STEP %zu/%zu: %s\n", i + 1, r->n_steps, st->text);
		uint64_t t0 = now_ns();
		int rc = stop_requested(b) ? vt_fail(b->err, "interrupted") : run_step(b, st);
		if (rc)
			return vt_err_prefix(b->err, "step %zu/%zu (%s line %u): %s", i + 1, r->n_steps, b->file,
					     st->line, st->text);
		double secs = (double)(now_ns() - t0) / 1e9;
		if (b->config)
			say(b, "--> %.12s (%.2f s)\n", b->cur ? short_id(b->cur->id) : "scratch", secs);
	}
	return 0;
}

static void warn_unused_args(const struct builder *b)
{
	for (size_t i = 0; i < b->n_bargs; i++)
		if (!b->bargs[i].used)
			say(b, "virtus build: warning: --build-arg %s was not used by an ARG of the recipe\n",
			    b->bargs[i].key);
}

int build_image(struct img_store *s, const struct build_opts *o, char image_id[IMG_ID_LEN + 1], vt_err *err)
{
	struct builder b = { .s = s, .o = o, .err = err };
	char recipe_path[PATH_MAX];
	int rc = setup(&b, recipe_path, sizeof(recipe_path)) ?: run_steps(&b);
	if (!rc && !b.cur)
		rc = vt_fail(err, "the recipe makes no image (FROM scratch with no step after it)");
	if (!rc) {
		warn_unused_args(&b);
		snprintf(image_id, IMG_ID_LEN + 1, "%s", b.cur->id);
		if (o->name) {
			say(&b, "COMMIT %s\n", o->name);
			rc = img_tag(s, b.cur->id, o->name, err);
		}
	}
	teardown(&b);
	return rc;
}

/* The steps of a build: substitution and the text that identifies each step (build_plan_step), then what a
 * step does when the cache does not have it (build_exec_step). build.c drives them and owns the cache. */
#include "image/build_copy.h"
#include "lib/util.h"
#include "runtime/rt.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#define DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* ---- the image config ---- */

/* config.config, created if missing. */
static json_object *inner_config(json_object *config)
{
	json_object *cc;
	if (json_object_object_get_ex(config, "config", &cc) && json_object_is_type(cc, json_type_object))
		return cc;
	cc = json_object_new_object();
	json_object_object_add(config, "config", cc);
	return cc;
}

static const char *config_string(json_object *config, const char *key)
{
	json_object *v;
	if (!json_object_object_get_ex(inner_config(config), key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static json_object *config_env(json_object *config)
{
	json_object *env;
	if (!json_object_object_get_ex(inner_config(config), "Env", &env) || !json_object_is_type(env, json_type_array))
		return NULL;
	return env;
}

/* Set K=V in Env, replacing an entry for K. */
static void env_set(json_object *config, const char *key, const char *value)
{
	json_object *env = config_env(config);
	if (!env) {
		env = json_object_new_array();
		json_object_object_add(inner_config(config), "Env", env);
	}
	char *kv;
	if (asprintf(&kv, "%s=%s", key, value) < 0)
		return;
	size_t klen = strlen(key);
	for (size_t i = 0; i < json_object_array_length(env); i++) {
		const char *e = json_object_get_string(json_object_array_get_idx(env, i));
		if (e && !strncmp(e, key, klen) && e[klen] == '=') {
			json_object_array_put_idx(env, i, json_object_new_string(kv));
			free(kv);
			return;
		}
	}
	json_object_array_add(env, json_object_new_string(kv));
	free(kv);
}

/* Set an entry of a map-valued field (Labels, ExposedPorts, Volumes). */
static void map_set(json_object *config, const char *field, const char *key, json_object *value)
{
	json_object *cc = inner_config(config), *m;
	if (!json_object_object_get_ex(cc, field, &m) || !json_object_is_type(m, json_type_object)) {
		m = json_object_new_object();
		json_object_object_add(cc, field, m);
	}
	json_object_object_add(m, key, value);
}

static json_object *string_array(char *const *v, size_t n)
{
	json_object *a = json_object_new_array();
	for (size_t i = 0; i < n; i++)
		json_object_array_add(a, json_object_new_string(v[i]));
	return a;
}

static json_object *copy_config(const struct builder *b)
{
	json_object *c = NULL;
	if (json_object_deep_copy(b->config, &c, NULL))
		return NULL;
	return c;
}

/* ---- a step's file system: an image's layers + a fresh upper dir (defined below) ---- */

struct step_fs {
	char dir[PATH_MAX], upper[PATH_MAX], work[PATH_MAX], merged[PATH_MAX];
	const char *rootfs;   /* merged, or upper itself when the image has no layer (scratch) */
	bool mounted;
};
static int fs_open_image(struct builder *b, const struct img_image *img, struct step_fs *fs);
static void fs_close(struct step_fs *fs);

/* ---- substitution ---- */

/* The variables a step sees: the image's Env first (ENV wins over ARG, as docker), then the ARGs. */
static const char **step_vars(const struct builder *b, bool before_from, struct recipe_vars *v)
{
	json_object *env = b->config && !before_from ? config_env(b->config) : NULL;
	size_t n_env = env ? json_object_array_length(env) : 0;
	char **args = before_from ? b->meta : b->args;
	size_t n_args = before_from ? b->n_meta : b->n_args;
	const char **list = calloc(n_env + n_args + 1, sizeof(char *));
	if (!list)
		return NULL;
	size_t n = 0;
	for (size_t i = 0; i < n_env; i++) {
		const char *e = json_object_get_string(json_object_array_get_idx(env, i));
		if (e)
			list[n++] = e;
	}
	for (size_t i = 0; i < n_args; i++)
		list[n++] = args[i];
	*v = (struct recipe_vars){ list, n };
	return list;
}

static int expand_all(char *const *raw, size_t n, const struct recipe_vars *v, char ***out, vt_err *err)
{
	*out = calloc(n + 1, sizeof(char *));
	if (!*out)
		return vt_fail_errno(err, ENOMEM, "substitution");
	for (size_t i = 0; i < n; i++)
		if (recipe_expand(raw[i], v, &(*out)[i], err))
			return -1;
	return 0;
}

/* Lexically clean an absolute path ("/a/./b/../c/" -> "/a/c"); keep_slash keeps a trailing '/'. */
static char *clean_abs(const char *base, const char *path, bool keep_slash)
{
	struct sbuf joined = { 0 }, out = { 0 };
	if (path[0] != '/')
		sbuf_addf(&joined, "%s/", base && *base ? base : "/");
	sbuf_add(&joined, path);
	cleanup_free char *j = sbuf_take(&joined);
	if (!j)
		return NULL;
	char *save = NULL;
	for (char *s = strtok_r(j, "/", &save); s; s = strtok_r(NULL, "/", &save)) {
		if (!strcmp(s, "."))
			continue;
		if (!strcmp(s, "..")) {
			char *slash = out.len ? strrchr(out.s, '/') : NULL;
			out.len = slash ? (size_t)(slash - out.s) : 0;
			if (out.s)
				out.s[out.len] = 0;
			continue;
		}
		sbuf_addf(&out, "/%s", s);
	}
	size_t plen = strlen(path);
	if (!out.len || (keep_slash && plen && path[plen - 1] == '/'))
		sbuf_addc(&out, '/');
	if (out.len == 2 && out.s[0] == '/' && out.s[1] == '/')
		out.s[--out.len] = 0;
	return sbuf_take(&out);
}

/* ---- ARG ---- */

static int set_var(char ***list, size_t *n, const char *key, const char *value, vt_err *err)
{
	char *kv;
	if (asprintf(&kv, "%s=%s", key, value) < 0)
		return vt_fail_errno(err, ENOMEM, "ARG");
	size_t klen = strlen(key);
	for (size_t i = 0; i < *n; i++)
		if (!strncmp((*list)[i], key, klen) && (*list)[i][klen] == '=') {
			free((*list)[i]);
			(*list)[i] = kv;
			return 0;
		}
	char **grown = realloc(*list, (*n + 1) * sizeof(char *));
	if (!grown) {
		free(kv);
		return vt_fail_errno(err, ENOMEM, "ARG");
	}
	grown[(*n)++] = kv;
	*list = grown;
	return 0;
}

static const char *find_var(char *const *list, size_t n, const char *key)
{
	size_t klen = strlen(key);
	for (size_t i = 0; i < n; i++)
		if (!strncmp(list[i], key, klen) && list[i][klen] == '=')
			return list[i] + klen + 1;
	return NULL;
}

/* ARG NAME[=default]: --build-arg wins, then the default, then (after FROM) a global ARG of that name. */
static int plan_arg(struct builder *b, const struct recipe_step *st, struct step_plan *p,
		    const struct recipe_vars *v, bool before_from, struct sbuf *text)
{
	p->keys = calloc(st->n_kv + 1, sizeof(char *));
	p->values = calloc(st->n_kv + 1, sizeof(char *));
	if (!p->keys || !p->values)
		return vt_fail_errno(b->err, ENOMEM, "ARG");
	for (size_t i = 0; i < st->n_kv; i++, p->n_kv++) {
		const char *name = st->kv[i].key;
		struct build_arg *given = NULL;
		for (size_t k = 0; k < b->n_bargs; k++)
			if (!strcmp(b->bargs[k].key, name))
				given = &b->bargs[k];
		if (given)
			given->used = true;
		p->keys[i] = strdup(name);
		if (given && given->value)
			p->values[i] = strdup(given->value);
		else if (st->kv[i].value && recipe_expand(st->kv[i].value, v, &p->values[i], b->err))
			return -1;
		else if (!st->kv[i].value && !before_from && find_var(b->meta, b->n_meta, name))
			p->values[i] = strdup(find_var(b->meta, b->n_meta, name));
		sbuf_addf(text, " %s%s%s", name, p->values[i] ? "=" : "", p->values[i] ? p->values[i] : "");
		if (p->values[i] && set_var(before_from ? &b->meta : &b->args, before_from ? &b->n_meta : &b->n_args,
					    name, p->values[i], b->err))
			return -1;
	}
	return 0;
}

/* ---- planning ---- */

static int plan_pairs(struct builder *b, const struct recipe_step *st, struct step_plan *p,
		      const struct recipe_vars *v, struct sbuf *text)
{
	p->keys = calloc(st->n_kv + 1, sizeof(char *));
	p->values = calloc(st->n_kv + 1, sizeof(char *));
	if (!p->keys || !p->values)
		return vt_fail_errno(b->err, ENOMEM, "substitution");
	for (size_t i = 0; i < st->n_kv; i++, p->n_kv++) {
		if (recipe_expand(st->kv[i].key, v, &p->keys[i], b->err) ||
		    recipe_expand(st->kv[i].value, v, &p->values[i], b->err))
			return -1;
		if (!*p->keys[i])
			return vt_fail(b->err, "%s: an empty name", recipe_op_name(st->op));
		sbuf_addf(text, " %s=%s", p->keys[i], p->values[i]);
	}
	return 0;
}

/* EXPOSE 80, 80/tcp, 53/udp, 8000-8010/tcp -> "80/tcp"... */
static int check_port(const char *w, char **out, vt_err *err)
{
	const char *slash = strchr(w, '/');
	const char *proto = slash ? slash + 1 : "tcp";
	size_t plen = slash ? (size_t)(slash - w) : strlen(w);
	bool ok = plen > 0 && plen < 12 && (!strcmp(proto, "tcp") || !strcmp(proto, "udp") || !strcmp(proto, "sctp"));
	char ports[16] = "";
	if (ok)
		memcpy(ports, w, plen);
	char *dash = strchr(ports, '-');
	if (dash)
		*dash = 0;
	uint64_t lo = 0, hi = 0;
	ok = ok && !parse_uint(ports, 1, 65535, &lo) && (!dash || (!parse_uint(dash + 1, 1, 65535, &hi) && hi >= lo));
	if (!ok)
		return vt_fail(err, "EXPOSE: '%s' is not PORT[/tcp|udp|sctp]", w);
	if (asprintf(out, "%.*s/%s", (int)plen, w, proto) < 0)
		return vt_fail_errno(err, ENOMEM, "EXPOSE");
	return 0;
}

static int plan_words(struct builder *b, const struct recipe_step *st, struct step_plan *p,
		      const struct recipe_vars *v, struct sbuf *text)
{
	if (expand_all(st->words, st->n_words, v, &p->words, b->err))
		return -1;
	p->n_words = st->n_words;
	for (size_t i = 0; st->op == RECIPE_EXPOSE && i < p->n_words; i++) {
		char *norm;
		if (check_port(p->words[i], &norm, b->err))
			return -1;
		free(p->words[i]);
		p->words[i] = norm;
	}
	for (size_t i = 0; i < p->n_words; i++)
		sbuf_addf(text, " %s", p->words[i]);
	return 0;
}

/* COPY --from=REF: an earlier stage (by name or number) or an image, mounted for the step. */
static int mount_copy_source(struct builder *b, const char *ref, struct step_plan *p)
{
	bool found;
	struct img_image *img = NULL;
	if (build_stage_image(b, ref, &found, &img))
		return -1;
	if (!found && img_resolve(b->s, ref, &img, b->err))
		return vt_fail(b->err, "COPY --from=%s: no earlier stage and no image of that name", ref);
	if (asprintf(&p->from, "%s %s", found ? "stage" : "image", ref) < 0) {
		p->from = NULL;
		img_image_free(img);
		return vt_fail_errno(b->err, ENOMEM, "COPY --from");
	}
	int rc = (p->from_fs = calloc(1, sizeof(*p->from_fs))) ? fs_open_image(b, img, p->from_fs)
							       : vt_fail_errno(b->err, ENOMEM, "COPY --from");
	img_image_free(img);
	return rc;
}

static int plan_copy(struct builder *b, const struct recipe_step *st, struct step_plan *p,
		     const struct recipe_vars *v, struct sbuf *text)
{
	cleanup_free char *from = NULL;
	if ((st->chown && recipe_expand(st->chown, v, &p->chown, b->err)) ||
	    (st->chmod && recipe_expand(st->chmod, v, &p->chmod, b->err)) ||
	    (st->from && recipe_expand(st->from, v, &from, b->err)))
		return -1;
	if (from) {
		sbuf_addf(text, " --from=%s", from);
		if (mount_copy_source(b, from, p))
			return -1;
	}
	if (p->chown)
		sbuf_addf(text, " --chown=%s", p->chown);
	if (p->chmod)
		sbuf_addf(text, " --chmod=%s", p->chmod);
	if (plan_words(b, st, p, v, text))
		return -1;
	/* The destination, absolute: a relative one is below WORKDIR. */
	char *dest = clean_abs(config_string(b->config, "WorkingDir"), p->words[p->n_words - 1], true);
	if (!dest)
		return vt_fail_errno(b->err, ENOMEM, "COPY");
	free(p->words[p->n_words - 1]);
	p->words[p->n_words - 1] = dest; /* the text keeps it as written: the parent's WorkingDir is in the key */
	struct build_copy c = {
		.context_dir = p->from_fs ? p->from_fs->rootfs : b->o->context_dir,
		.from = p->from, .ignore = p->from_fs ? NULL : b->ignore, .sources = (const char *const *)p->words,
		.n_sources = p->n_words - 1, .dest = dest, .dest_is_dir = dest[strlen(dest) - 1] == '/',
	};
	return build_copy_digest(&c, p->digest, b->err);
}

/* RUN's text carries the ARGs in force (they are in its environment), as docker's history does. */
static void plan_run_text(const struct builder *b, const struct recipe_step *st, struct sbuf *text)
{
	if (b->n_args) {
		sbuf_addf(text, " |%zu", b->n_args);
		for (size_t i = 0; i < b->n_args; i++)
			sbuf_addf(text, " %s", b->args[i]);
	}
	if (!st->exec_form) {
		sbuf_addf(text, " %s", st->args);
		return;
	}
	json_object *a = string_array(st->words, st->n_words);
	sbuf_addf(text, " %s", json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN));
	json_object_put(a);
}

static int plan_by_op(struct builder *b, const struct recipe_step *st, struct step_plan *p,
		      const struct recipe_vars *v, bool before_from, struct sbuf *text)
{
	switch (st->op) {
	case RECIPE_FROM:
		if (expand_all(st->words, 1, v, &p->words, b->err))
			return -1;
		p->n_words = 1;
		sbuf_addf(text, " %s", p->words[0]);
		return 0;
	case RECIPE_ARG:
		return plan_arg(b, st, p, v, before_from, text);
	case RECIPE_ENV:
	case RECIPE_LABEL:
		return plan_pairs(b, st, p, v, text);
	case RECIPE_COPY:
	case RECIPE_ADD:
		return plan_copy(b, st, p, v, text);
	case RECIPE_EXPOSE:
	case RECIPE_VOLUME:
		return plan_words(b, st, p, v, text);
	case RECIPE_WORKDIR:
	case RECIPE_USER:
	case RECIPE_STOPSIGNAL:
		if (recipe_expand(st->args, v, &p->value, b->err))
			return -1;
		if (st->op == RECIPE_WORKDIR) {
			char *abs = clean_abs(config_string(b->config, "WorkingDir"), p->value, false);
			free(p->value);
			if (!(p->value = abs))
				return vt_fail_errno(b->err, ENOMEM, "WORKDIR");
		}
		sbuf_addf(text, " %s", p->value);
		return 0;
	case RECIPE_RUN:
		plan_run_text(b, st, text);
		return 0;
	case RECIPE_CMD:
	case RECIPE_ENTRYPOINT:
		if (st->exec_form) {
			json_object *a = string_array(st->words, st->n_words);
			sbuf_addf(text, " %s", json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN));
			json_object_put(a);
		} else {
			sbuf_addf(text, " %s", st->args);
		}
		return 0;
	}
	return 0;
}

int build_plan_step(struct builder *b, const struct recipe_step *st, struct step_plan *p)
{
	*p = (struct step_plan){ 0 };
	bool before_from = !b->config || st->op == RECIPE_FROM; /* a FROM sees the ARGs before the first */
	struct recipe_vars v;
	cleanup_free const char **list = step_vars(b, before_from, &v);
	if (!list)
		return vt_fail_errno(b->err, ENOMEM, "substitution");
	struct sbuf text = { 0 };
	sbuf_add(&text, recipe_op_name(st->op));
	int rc = plan_by_op(b, st, p, &v, before_from, &text);
	p->text = sbuf_take(&text);
	if (!rc && !p->text)
		rc = vt_fail_errno(b->err, ENOMEM, "build");
	return rc;
}

void build_plan_free(struct step_plan *p)
{
	for (size_t i = 0; p->words && i < p->n_words; i++)
		free(p->words[i]);
	free(p->words);
	for (size_t i = 0; i < p->n_kv; i++) {
		free(p->keys[i]);
		free(p->values[i]);
	}
	free(p->keys);
	free(p->values);
	free(p->value);
	free(p->chown);
	free(p->chmod);
	free(p->text);
	free(p->from);
	if (p->from_fs) {
		fs_close(p->from_fs);
		free(p->from_fs);
	}
	*p = (struct step_plan){ 0 };
}

/* ---- a step's file system ---- */

static void fs_close(struct step_fs *fs)
{
	if (fs->mounted && umount2(fs->merged, 0))
		umount2(fs->merged, MNT_DETACH);
	fs->mounted = false;
	if (fs->dir[0])
		rt_remove_tree(fs->dir);
}

static int fs_open_image(struct builder *b, const struct img_image *img, struct step_fs *fs)
{
	if (build_path(fs->dir, sizeof(fs->dir), b->err, "%s/step%u", b->work, ++b->seq) ||
	    build_path(fs->upper, sizeof(fs->upper), b->err, "%s/upper", fs->dir) ||
	    build_path(fs->work, sizeof(fs->work), b->err, "%s/work", fs->dir) ||
	    build_path(fs->merged, sizeof(fs->merged), b->err, "%s/merged", fs->dir) || build_mkdirs(fs->upper, 0755, b->err) || build_mkdirs(fs->work, 0700, b->err) ||
	    build_mkdirs(fs->merged, 0755, b->err))
		return -1;
	/* The upper dir's own mode becomes the image root's: 0755 whatever our umask. */
	if (chmod(fs->upper, 0755))
		return vt_fail_errno(b->err, errno, "chmod %s", fs->upper);
	fs->rootfs = fs->upper;
	if (!img || !img->n_layers)
		return 0;
	if (img_mount(b->s, img, fs->upper, fs->work, fs->merged, true, b->err))
		return -1;
	fs->mounted = true;
	fs->rootfs = fs->merged;
	return 0;
}

/* The current image's file system, to change. */
static int fs_open(struct builder *b, struct step_fs *fs)
{
	return fs_open_image(b, b->cur, fs);
}

static int fs_unmount(struct builder *b, struct step_fs *fs)
{
	if (fs->mounted && umount2(fs->merged, 0))
		return vt_fail_errno(b->err, errno, "cannot unmount %s", fs->merged);
	fs->mounted = false;
	return 0;
}

/* Commit the step: a layer from fs's upper dir (NULL: config only), the new config, the step's text. */
static int commit(struct builder *b, struct step_fs *fs, json_object *config, const struct step_plan *p,
		  char id[IMG_ID_LEN + 1])
{
	if (fs && fs_unmount(b, fs))
		return -1;
	return img_commit(b->s, b->cur, fs ? fs->upper : NULL, config, p->text, NULL, id, b->err);
}

/* ---- the steps ---- */

static int mkdir_in_image(void *arg, vt_err *err)
{
	return build_mkdir_p(arg, err);
}

static int exec_workdir(struct builder *b, json_object *config, const struct step_plan *p,
			char id[IMG_ID_LEN + 1])
{
	json_object_object_add(inner_config(config), "WorkingDir", json_object_new_string(p->value));
	struct step_fs fs = { 0 };
	int rc = fs_open(b, &fs) ?: build_in_chroot(fs.rootfs, mkdir_in_image, p->value, b->err);
	if (!rc) {
		/* A layer only if the directory was not there. */
		bool created = !dir_is_empty(fs.upper);
		rc = commit(b, created ? &fs : NULL, config, p, id);
	}
	fs_close(&fs);
	return rc;
}

static int parse_chown(const char *rootfs, const char *spec, struct build_copy *c, vt_err *err)
{
	if (img_resolve_user(rootfs, spec, &c->uid, &c->gid, err))
		return vt_err_prefix(err, "--chown");
	/* "--chown=USER" alone: docker uses the uid as the gid too. */
	if (!strchr(spec, ':'))
		c->gid = (gid_t)c->uid;
	c->chown = true;
	return 0;
}

static int exec_copy(struct builder *b, const struct recipe_step *st, json_object *config,
		     const struct step_plan *p, char id[IMG_ID_LEN + 1])
{
	const char *dest = p->words[p->n_words - 1];
	struct build_copy c = {
		.context_dir = p->from_fs ? p->from_fs->rootfs : b->o->context_dir,
		.from = p->from, .ignore = p->from_fs ? NULL : b->ignore, .sources = (const char *const *)p->words,
		.n_sources = p->n_words - 1, .dest = dest, .dest_is_dir = dest[strlen(dest) - 1] == '/',
		.unpack_archives = st->op == RECIPE_ADD,
	};
	if (p->chmod) {
		char *end;
		unsigned long m = strtoul(p->chmod, &end, 8);
		if (!*p->chmod || *end || m > 07777)
			return vt_fail(b->err, "--chmod=%s: not an octal mode", p->chmod);
		c.chmod = true;
		c.mode = (mode_t)m;
	}
	struct step_fs fs = { 0 };
	int rc = fs_open(b, &fs);
	if (!rc && p->chown)
		rc = parse_chown(fs.rootfs, p->chown, &c, b->err);
	if (!rc)
		rc = build_copy_run(&c, fs.rootfs, b->err) ?: commit(b, &fs, config, p, id);
	fs_close(&fs);
	return rc;
}

/* The RUN process's environment: the image's Env, then the ARGs that Env does not set, and a PATH. */
static const char **run_env(const struct builder *b)
{
	struct recipe_vars v;
	const char **list = step_vars(b, false, &v);
	if (!list)
		return NULL;
	const char **env = calloc(v.n + 2, sizeof(char *));
	size_t n = 0;
	for (size_t i = 0; env && i < v.n; i++) {
		size_t klen = strcspn(v.list[i], "=");
		bool dup = false;
		for (size_t k = 0; k < n && !dup; k++)
			dup = !strncmp(env[k], v.list[i], klen + 1);
		if (!dup)
			env[n++] = v.list[i];
	}
	if (env && !recipe_vars_get(&(struct recipe_vars){ env, n }, "PATH", 4))
		env[n++] = DEFAULT_PATH;
	free(list);
	return env;
}

static int exec_run(struct builder *b, const struct recipe_step *st, json_object *config,
		    const struct step_plan *p, char id[IMG_ID_LEN + 1])
{
	const char *shell[] = { "/bin/sh", "-c", st->args, NULL };
	cleanup_free const char **env = run_env(b);
	const char *user = config_string(config, "User");
	const char *cwd = config_string(config, "WorkingDir");
	struct step_fs fs = { 0 };
	struct build_run r = {
		.args = st->exec_form ? (const char *const *)st->words : shell, .env = env,
		.cwd = cwd && *cwd ? cwd : "/", .stop_fd = b->o->stop_fd, .work_dir = fs.dir,
	};
	if (st->exec_form && !st->n_words)
		return vt_fail(b->err, "RUN []: no command");
	if (!env)
		return vt_fail_errno(b->err, ENOMEM, "RUN");
	int rc = fs_open(b, &fs), status = 0;
	bool stopped = false;
	r.rootfs = fs.rootfs;
	if (!rc && user && *user)
		rc = img_resolve_user(fs.rootfs, user, &r.uid, &r.gid, b->err) ? vt_err_prefix(b->err, "USER") : 0;
	if (!rc)
		rc = build_run_step(&r, &status, &stopped, b->err);
	if (!rc && stopped)
		rc = vt_fail(b->err, "interrupted");
	else if (!rc && status)
		rc = vt_fail(b->err, "exit status %d", status);
	if (!rc && !(rc = fs_unmount(b, &fs))) {
		/* A step that changed no file adds no layer (an empty one would only cost a mount level). */
		build_run_tidy_upper(&r, fs.upper);
		rc = commit(b, dir_is_empty(fs.upper) ? NULL : &fs, config, p, id);
	}
	fs_close(&fs);
	return rc;
}

/* CMD and ENTRYPOINT: the exec form as written, the shell form through /bin/sh -c. */
static json_object *command_array(const struct recipe_step *st)
{
	if (st->exec_form)
		return string_array(st->words, st->n_words);
	char *shell[] = { "/bin/sh", "-c", st->args };
	return string_array(shell, 3);
}

/* The steps that change only the config. */
static void apply_config(struct builder *b, const struct recipe_step *st, const struct step_plan *p,
			 json_object *config)
{
	json_object *cc = inner_config(config);
	switch (st->op) {
	case RECIPE_ENV:
		for (size_t i = 0; i < p->n_kv; i++)
			env_set(config, p->keys[i], p->values[i]);
		break;
	case RECIPE_LABEL:
		for (size_t i = 0; i < p->n_kv; i++)
			map_set(config, "Labels", p->keys[i], json_object_new_string(p->values[i]));
		break;
	case RECIPE_EXPOSE:
	case RECIPE_VOLUME:
		for (size_t i = 0; i < p->n_words; i++)
			map_set(config, st->op == RECIPE_EXPOSE ? "ExposedPorts" : "Volumes", p->words[i],
				json_object_new_object());
		break;
	case RECIPE_USER:
		json_object_object_add(cc, "User", json_object_new_string(p->value));
		break;
	case RECIPE_STOPSIGNAL:
		json_object_object_add(cc, "StopSignal", json_object_new_string(p->value));
		break;
	case RECIPE_CMD:
		json_object_object_add(cc, "Cmd", command_array(st));
		break;
	case RECIPE_ENTRYPOINT:
		json_object_object_add(cc, "Entrypoint", command_array(st));
		/* docker: an ENTRYPOINT drops the base image's CMD; one given in this recipe stays. */
		if (!b->cmd_set)
			json_object_object_del(cc, "Cmd");
		break;
	default:
		break;
	}
}

int build_exec_step(struct builder *b, const struct recipe_step *st, const struct step_plan *p,
		    char id[IMG_ID_LEN + 1])
{
	json_object *config = copy_config(b);
	if (!config)
		return vt_fail_errno(b->err, ENOMEM, "image config");
	int rc;
	switch (st->op) {
	case RECIPE_RUN:
		rc = exec_run(b, st, config, p, id);
		break;
	case RECIPE_COPY:
	case RECIPE_ADD:
		rc = exec_copy(b, st, config, p, id);
		break;
	case RECIPE_WORKDIR:
		rc = exec_workdir(b, config, p, id);
		break;
	default:
		apply_config(b, st, p, config);
		rc = commit(b, NULL, config, p, id);
	}
	json_object_put(config);
	return rc;
}

/* FROM scratch: an empty config for this machine. */
json_object *build_scratch_config(void)
{
	struct utsname u;
	const char *arch = "amd64";
	if (!uname(&u) && !strcmp(u.machine, "aarch64"))
		arch = "arm64";
	json_object *c = json_object_new_object();
	json_object_object_add(c, "architecture", json_object_new_string(arch));
	json_object_object_add(c, "os", json_object_new_string("linux"));
	json_object_object_add(c, "config", json_object_new_object());
	return c;
}

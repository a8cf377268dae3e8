/* What a container is and what it changed: inspect, diff, commit. */
#include <errno.h>
#include <fts.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "container/ctr_int.h"
#include "image/image.h"
#include "lib/util.h"
#include "runtime/rt.h"



static json_object *field(json_object *o, const char *key)
{
	json_object *v = NULL;
	return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static json_object *copy(json_object *v)
{
	return v ? json_object_get(v) : json_object_new_array();
}

static json_object *state_json(json_object *rec)
{
	const char *st = ctr_status(rec);
	bool active = !strcmp(st, "running") || !strcmp(st, "paused");
	json_object *s = json_object_new_object();
	json_object_object_add(s, "Status", json_object_new_string(st));
	json_object_object_add(s, "Running", json_object_new_boolean(active));
	json_object_object_add(s, "Paused", json_object_new_boolean(!strcmp(st, "paused")));
	json_object_object_add(s, "Pid", json_object_new_int64(active ? ctr_rec_int(rec, "Pid") : 0));
	json_object_object_add(s, "ExitCode", json_object_new_int64(ctr_rec_int(rec, "ExitCode")));
	json_object_object_add(s, "StartedAt", json_object_new_string(ctr_rec_str(rec, "StartedAt")));
	json_object_object_add(s, "FinishedAt", json_object_new_string(ctr_rec_str(rec, "FinishedAt")));
	return s;
}

static json_object *config_json(json_object *rec, json_object *proc, const char *id)
{
	json_object *c = json_object_new_object();
	char host[CTR_SHORT_ID_LEN + 1];
	snprintf(host, sizeof(host), "%.12s", id);
	json_object_object_add(c, "Hostname", json_object_new_string(host));
	json_object_object_add(c, "Env", copy(field(proc, "env")));
	json_object_object_add(c, "Cmd", copy(field(rec, "Cmd")));
	json_object_object_add(c, "Entrypoint", copy(field(rec, "Entrypoint")));
	json_object *cwd = field(proc, "cwd");
	json_object_object_add(c, "WorkingDir", json_object_new_string(cwd ? json_object_get_string(cwd) : "/"));
	json_object_object_add(c, "User", json_object_new_string(ctr_rec_str(rec, "User")));
	json_object_object_add(c, "Tty", json_object_new_boolean(json_object_get_boolean(field(rec, "Tty"))));
	json_object_object_add(c, "Image", json_object_new_string(ctr_rec_str(rec, "ImageName")));
	return c;
}

/* "8080:80/udp" -> "80/udp": [{"HostIp": "", "HostPort": "8080"}], as podman shows published ports. */
static json_object *ports_json(json_object *rec)
{
	json_object *out = json_object_new_object(), *ports = field(rec, "Ports");
	for (size_t i = 0; ports && i < json_object_array_length(ports); i++) {
		struct cnet_port p;
		vt_err ignored;
		if (cnet_parse_port(json_object_get_string(json_object_array_get_idx(ports, i)), &p, &ignored))
			continue;
		char key[32], hp[8];
		snprintf(key, sizeof(key), "%u/%s", p.ctr_port, p.udp ? "udp" : "tcp");
		snprintf(hp, sizeof(hp), "%u", p.host_port);
		json_object *b = json_object_new_object();
		json_object_object_add(b, "HostIp", json_object_new_string(p.host_addr));
		json_object_object_add(b, "HostPort", json_object_new_string(hp));
		json_object *list = field(out, key);
		if (!list) {
			list = json_object_new_array();
			json_object_object_add(out, key, list);
		}
		json_object_array_add(list, b);
	}
	return out;
}

static json_object *host_config_json(json_object *rec)
{
	json_object *h = json_object_new_object();
	json_object_object_add(h, "NetworkMode", json_object_new_string(ctr_rec_str(rec, "Network")));
	json_object_object_add(h, "AutoRemove", json_object_new_boolean(json_object_get_boolean(field(rec, "AutoRemove"))));
	json_object_object_add(h, "Memory", json_object_new_int64(ctr_rec_int(rec, "Memory")));
	json_object_object_add(h, "NanoCpus", json_object_new_int64(ctr_rec_int(rec, "CpuQuota") * 10000));
	json_object_object_add(h, "CpuQuota", json_object_new_int64(ctr_rec_int(rec, "CpuQuota")));
	json_object_object_add(h, "CpuPeriod", json_object_new_int64(ctr_rec_int(rec, "CpuQuota") ? 100000 : 0));
	json_object_object_add(h, "PidsLimit", json_object_new_int64(ctr_rec_int(rec, "PidsLimit")));
	json_object_object_add(h, "PortBindings", ports_json(rec));
	json_object *binds = json_object_new_array(), *vols = field(rec, "Volumes");
	for (size_t i = 0; vols && i < json_object_array_length(vols); i++) {
		json_object *v = json_object_array_get_idx(vols, i);
		char b[8192];
		snprintf(b, sizeof(b), "%s:%s%s", json_object_get_string(field(v, "Source")),
			 json_object_get_string(field(v, "Destination")),
			 json_object_get_boolean(field(v, "RW")) ? "" : ":ro");
		json_object_array_add(binds, json_object_new_string(b));
	}
	json_object_object_add(h, "Binds", binds);
	return h;
}

static json_object *mounts_json(json_object *rec)
{
	json_object *out = json_object_new_array(), *vols = field(rec, "Volumes");
	for (size_t i = 0; vols && i < json_object_array_length(vols); i++) {
		json_object *v = json_object_array_get_idx(vols, i), *m = json_object_new_object();
		json_object_object_add(m, "Type", json_object_new_string("bind"));
		json_object_object_add(m, "Source", copy(field(v, "Source")));
		json_object_object_add(m, "Destination", copy(field(v, "Destination")));
		json_object_object_add(m, "RW", copy(field(v, "RW")));
		json_object_array_add(out, m);
	}
	return out;
}

static json_object *bundle_spec(const struct ctr_store *s, const char *id);

static json_object *container_json(const struct ctr_store *s, const char *id, json_object *rec)
{
	json_object *spec = bundle_spec(s, id);
	json_object *proc = field(spec, "process"), *args = field(proc, "args");
	json_object *o = json_object_new_object();
	json_object_object_add(o, "Id", json_object_new_string(id));
	json_object_object_add(o, "Name", json_object_new_string(ctr_rec_str(rec, "Name")));
	json_object_object_add(o, "Created", json_object_new_string(ctr_rec_str(rec, "Created")));
	json_object_object_add(o, "Path", json_object_new_string(args && json_object_array_length(args)
		? json_object_get_string(json_object_array_get_idx(args, 0)) : ""));
	json_object_object_add(o, "Args", copy(args));
	json_object_object_add(o, "State", state_json(rec));
	json_object_object_add(o, "Image", json_object_new_string(ctr_rec_str(rec, "ImageId")));
	json_object_object_add(o, "ImageName", json_object_new_string(ctr_rec_str(rec, "ImageName")));
	json_object_object_add(o, "Rootfs", json_object_new_string(ctr_rec_str(rec, "Rootfs")));
	json_object_object_add(o, "Config", config_json(rec, proc, id));
	json_object_object_add(o, "HostConfig", host_config_json(rec));
	json_object *net = json_object_new_object();
	json_object_object_add(net, "IPAddress", json_object_new_string(ctr_rec_str(rec, "IPAddress")));
	json_object_object_add(net, "Ports", ports_json(rec));
	json_object_object_add(o, "NetworkSettings", net);
	json_object_object_add(o, "Mounts", mounts_json(rec));
	json_object_put(spec);
	return o;
}

/* 0: *out describes the image; 1: no such image; -1: the store could not be opened (err says why). */
static int inspect_image(const char *root, const char *ref, json_object **out, vt_err *err)
{
	struct img_store *is;
	if (img_store_open(root, &is, err))
		return -1;
	vt_err ignored;
	int rc = img_inspect_json(is, ref, out, &ignored) ? 1 : 0;
	img_store_close(is);
	return rc;
}

int ctr_inspect_json(const char *root, const char *ref, json_object **out, vt_err *err)
{
	struct ctr_store s;
	char id[CTR_ID_LEN + 1];
	vt_err cerr;
	if (ctr_store_init(&s, root, err))
		return -1;
	json_object *rec;
	bool exact = false;
	bool is_container = !ctr_lookup_exact(&s, ref, id, &exact, &cerr);
	/* A container's name or id, then an image; a mere prefix of a container's id comes after an image's
	 * name, so that `inspect bb` describes the image bb even when some container's id starts with "bb". */
	int rc = 1;
	if (!is_container || !exact)
		rc = inspect_image(root, ref, out, err);
	if (rc > 0 && is_container && !ctr_record_load(&s, id, &rec, &cerr)) {
		*out = container_json(&s, id, rec);
		json_object_put(rec);
		rc = 0;
	}
	if (rc > 0)
		rc = vt_fail(err, "no such container or image: %s", ref);
	ctr_store_clear(&s);
	return rc;
}

/* ---------------- diff ---------------- */

struct change {
	char kind;
	char *path;
};

struct diff_walk {
	const char *upper;
	size_t upper_len;
	const char *const *lowers; /* highest first */
	size_t n_lowers;
	json_object *mounts;       /* the bundle's mounts: their empty mount points are the runtime's, not changes */
	struct change *changes;
	size_t n, cap;
};

static bool is_whiteout(const struct stat *st)
{
	return S_ISCHR(st->st_mode) && st->st_rdev == makedev(0, 0);
}

/* Does path exist below the upper dir? The highest lower dir that has it decides (a whiteout hides it). */
static bool in_lowers(const struct diff_walk *w, const char *path)
{
	for (size_t i = 0; i < w->n_lowers; i++) {
		cleanup_free char *p = rt_path_join(w->lowers[i], path);
		struct stat st;
		if (p && !lstat(p, &st))
			return !is_whiteout(&st);
	}
	return false;
}

static bool is_mount_point(const struct diff_walk *w, const char *path)
{
	for (size_t i = 0; w->mounts && i < json_object_array_length(w->mounts); i++)
		if (!strcmp(json_object_get_string(field(json_object_array_get_idx(w->mounts, i), "destination")), path))
			return true;
	return false;
}

static int add_change(struct diff_walk *w, char kind, const char *path)
{
	if (w->n == w->cap) {
		size_t cap = w->cap ? 2 * w->cap : 64;
		struct change *c = realloc(w->changes, cap * sizeof(*c));
		if (!c)
			return -1;
		w->changes = c;
		w->cap = cap;
	}
	w->changes[w->n].kind = kind;
	w->changes[w->n].path = strdup(path);
	return w->changes[w->n++].path ? 0 : -1;
}

static int visit(struct diff_walk *w, const FTSENT *e)
{
	const char *rel = e->fts_path + w->upper_len;
	bool lower = in_lowers(w, rel);
	if (is_whiteout(e->fts_statp))
		return lower ? add_change(w, 'D', rel) : 0; /* a whiteout of nothing hides nothing */
	if (!lower && S_ISDIR(e->fts_statp->st_mode) && is_mount_point(w, rel))
		return 0;
	return add_change(w, lower ? 'C' : 'A', rel);
}

static int by_path(const void *a, const void *b)
{
	return strcmp(((const struct change *)a)->path, ((const struct change *)b)->path);
}

static int collect(struct diff_walk *w, vt_err *err)
{
	char *paths[] = { (char *)w->upper, NULL };
	FTS *fts = fts_open(paths, FTS_PHYSICAL | FTS_XDEV | FTS_NOCHDIR, NULL);
	if (!fts)
		return vt_fail_errno(err, errno, "cannot read %s", w->upper);
	FTSENT *e;
	int rc = 0;
	while (!rc && (e = fts_read(fts))) {
		if (e->fts_info == FTS_DP || e->fts_level == 0)
			continue;
		if (e->fts_info == FTS_ERR || e->fts_info == FTS_DNR || e->fts_info == FTS_NS)
			rc = vt_fail_errno(err, e->fts_errno, "cannot read %s", e->fts_path);
		else if (visit(w, e))
			rc = vt_fail_errno(err, ENOMEM, "diff");
	}
	fts_close(fts);
	return rc;
}

static int walk_upper(struct diff_walk *w, void (*line)(char, const char *, void *), void *arg, vt_err *err)
{
	int rc = collect(w, err);
	if (!rc && w->n)
		qsort(w->changes, w->n, sizeof(*w->changes), by_path);
	for (size_t i = 0; i < w->n; i++) {
		if (!rc)
			line(w->changes[i].kind, w->changes[i].path, arg);
		free(w->changes[i].path);
	}
	free(w->changes);
	return rc;
}

static json_object *bundle_spec(const struct ctr_store *s, const char *id)
{
	cleanup_free char *path = ctr_path(s, id, "bundle/config.json");
	cleanup_free char *text = NULL;
	size_t len = 0;
	return path && !read_file(path, 4 * MiB, (void **)&text, &len, NULL) ? rt_json_parse(text, len) : NULL;
}

/* The lower dirs of a container, highest first: its image's layers, or its --rootfs dir. */
static int lower_dirs(const char *root, json_object *rec, struct img_store **is, struct img_image **img,
		      const char ***out, size_t *n, vt_err *err)
{
	const char *rootfs = ctr_rec_str(rec, "Rootfs");
	if (*rootfs) {
		*out = malloc(sizeof(char *));
		if (!*out)
			return vt_fail_errno(err, ENOMEM, "diff");
		(*out)[0] = rootfs;
		*n = 1;
		return 0;
	}
	if (img_store_open(root, is, err) || img_resolve(*is, ctr_rec_str(rec, "ImageId"), img, err))
		return vt_err_prefix(err, "the container's image");
	*n = (*img)->n_layers;
	*out = calloc(*n + 1, sizeof(char *));
	if (!*out)
		return vt_fail_errno(err, ENOMEM, "diff");
	for (size_t i = 0; i < *n; i++)
		(*out)[i] = (*img)->layer_dirs[*n - 1 - i];
	return 0;
}

int ctr_diff(const char *root, const char *ref, void (*line)(char kind, const char *path, void *arg), void *arg,
	     vt_err *err)
{
	struct ctr_store s;
	char id[CTR_ID_LEN + 1];
	json_object *rec = NULL;
	struct img_store *is = NULL;
	struct img_image *img = NULL;
	const char **lowers = NULL;
	size_t n = 0;
	if (ctr_store_init(&s, root, err))
		return -1;
	int rc = ctr_lookup(&s, ref, id, err) || ctr_record_load(&s, id, &rec, err) ||
		 lower_dirs(root, rec, &is, &img, &lowers, &n, err) ? -1 : 0;
	cleanup_free char *upper = rc ? NULL : ctr_path(&s, id, "upper");
	if (!rc && upper) {
		json_object *spec = bundle_spec(&s, id);
		struct diff_walk w = { .upper = upper, .upper_len = strlen(upper), .lowers = lowers, .n_lowers = n,
				       .mounts = field(spec, "mounts") };
		rc = walk_upper(&w, line, arg, err);
		json_object_put(spec);
	}
	free(lowers);
	if (img)
		img_image_free(img);
	if (is)
		img_store_close(is);
	json_object_put(rec);
	ctr_store_clear(&s);
	return rc;
}

/* ---------------- commit ---------------- */

/* The new image's config: the parent's, with what the container runs (Env, Entrypoint, Cmd, WorkingDir,
 * User) from its record and bundle. */
static json_object *commit_config(const struct ctr_store *s, const char *id, json_object *rec,
				  const struct img_image *parent)
{
	json_object *cfg = NULL;
	if (parent)
		json_object_deep_copy(parent->config, &cfg, NULL);
	if (!cfg) {
		cfg = json_object_new_object();
		json_object_object_add(cfg, "architecture", json_object_new_string("amd64"));
		json_object_object_add(cfg, "os", json_object_new_string("linux"));
	}
	json_object *inner = field(cfg, "config");
	if (!inner) {
		inner = json_object_new_object();
		json_object_object_add(cfg, "config", inner);
	}
	json_object *c = container_json(s, id, rec), *cc = field(c, "Config");
	static const char *const keys[] = { "Env", "Entrypoint", "Cmd", "WorkingDir", "User" };
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
		json_object_object_add(inner, keys[i], json_object_get(field(cc, keys[i])));
	json_object_put(c);
	return cfg;
}

struct commit_job {
	const struct ctr_store *s;
	const char *id;
	json_object *rec;
	struct img_store *is;
	const char *name;
	char *out_id;
	size_t out_len;
};

static int commit_layers(struct commit_job *j, vt_err *err)
{
	struct img_image *parent = NULL;
	const char *rootfs = ctr_rec_str(j->rec, "Rootfs");
	char base_id[IMG_ID_LEN + 1], new_id[IMG_ID_LEN + 1];
	/* A --rootfs container has no image below it: its directory becomes the first layer. */
	if (*rootfs) {
		json_object *base = commit_config(j->s, j->id, j->rec, NULL);
		int rc = img_commit(j->is, NULL, rootfs, base, "virtus commit (the --rootfs directory)", NULL,
				    base_id, err);
		json_object_put(base);
		if (rc || img_resolve(j->is, base_id, &parent, err))
			return -1;
	} else if (img_resolve(j->is, ctr_rec_str(j->rec, "ImageId"), &parent, err)) {
		return vt_err_prefix(err, "the container's image");
	}
	cleanup_free char *upper = ctr_path(j->s, j->id, "upper");
	json_object *cfg = commit_config(j->s, j->id, j->rec, parent);
	int rc = img_commit(j->is, parent, upper, cfg, "virtus commit", j->name, new_id, err);
	json_object_put(cfg);
	img_image_free(parent);
	if (!rc)
		snprintf(j->out_id, j->out_len, "%s", new_id);
	return rc;
}

/* A running container is paused meanwhile, so the layer is one moment of its file system. */
static int commit_found(struct commit_job *j, vt_err *err)
{
	struct rt_globals rt = { .root = j->s->run };
	bool paused = false;
	vt_err ignored;
	if (!strcmp(ctr_status(j->rec), "running")) {
		if (rt_cmd_pause(&rt, j->id, true, err))
			return vt_err_prefix(err, "pausing the container for the commit");
		paused = true;
	}
	int rc = commit_layers(j, err);
	if (paused)
		rt_cmd_pause(&rt, j->id, false, &ignored);
	return rc;
}

int ctr_commit(const char *root, const char *ref, const char *name, char *out_id, size_t out_len, vt_err *err)
{
	struct ctr_store s;
	char id[CTR_ID_LEN + 1];
	if (ctr_store_init(&s, root, err))
		return -1;
	struct commit_job j = { .s = &s, .id = id, .name = name, .out_id = out_id, .out_len = out_len };
	int rc = ctr_lookup(&s, ref, id, err) || ctr_record_load(&s, id, &j.rec, err) ||
		 img_store_open(root, &j.is, err) ? -1 : commit_found(&j, err);
	if (j.is)
		img_store_close(j.is);
	json_object_put(j.rec);
	ctr_store_clear(&s);
	return rc;
}

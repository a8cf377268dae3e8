/* config.json: load, validate every field we use, and turn it into plain C values.
 * Every error names the field ("process.args", "mounts[3].destination") so the user can fix the file. */
#include "runtime/rt.h"

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/stat.h>

#define CONFIG_MAX (4 * MiB)

/* ---- typed field access ---- */

static bool is_type(json_object *o, json_type t)
{
	return o && json_object_get_type(o) == t;
}

/* Look up key in obj; absent or null gives *out = NULL and 0. A wrong type is an error. */
static int get_field(json_object *obj, const char *key, json_type t, const char *field, json_object **out,
		     vt_err *err)
{
	json_object *v = NULL;
	*out = NULL;
	if (!obj || !json_object_object_get_ex(obj, key, &v) || is_type(v, json_type_null))
		return 0;
	if (t == json_type_double && is_type(v, json_type_int))
		t = json_type_int;
	if (!is_type(v, t))
		return vt_fail(err, "%s%s%s: expected %s, got %s", field, *field ? "." : "", key,
			       json_type_to_name(t), json_type_to_name(json_object_get_type(v)));
	*out = v;
	return 0;
}

static int get_string(json_object *obj, const char *key, const char *field, const char **out, vt_err *err)
{
	json_object *v;
	if (get_field(obj, key, json_type_string, field, &v, err))
		return -1;
	*out = v ? json_object_get_string(v) : NULL;
	return 0;
}

static int get_bool(json_object *obj, const char *key, const char *field, bool *out, vt_err *err)
{
	json_object *v;
	if (get_field(obj, key, json_type_boolean, field, &v, err))
		return -1;
	*out = v ? json_object_get_boolean(v) : false;
	return 0;
}

/* Integer within [min, max]; *present says whether it was there. */
static int get_int(json_object *obj, const char *key, const char *field, int64_t min, int64_t max,
		   int64_t *out, bool *present, vt_err *err)
{
	json_object *v;
	if (get_field(obj, key, json_type_int, field, &v, err))
		return -1;
	if (present)
		*present = v != NULL;
	if (!v)
		return 0;
	errno = 0;
	int64_t n = json_object_get_int64(v);
	if (errno || n < min || n > max)
		return vt_fail(err, "%s.%s: %s is out of range [%lld, %lld]", field, key,
			       json_object_get_string(v), (long long)min, (long long)max);
	*out = n;
	return 0;
}

static int get_uint64(json_object *obj, const char *key, const char *field, uint64_t *out, vt_err *err)
{
	json_object *v;
	if (get_field(obj, key, json_type_int, field, &v, err))
		return -1;
	if (!v)
		return vt_fail(err, "%s.%s is required", field, key);
	if (json_object_get_int64(v) < 0 && json_object_get_uint64(v) == 0)
		return vt_fail(err, "%s.%s must not be negative", field, key);
	*out = json_object_get_uint64(v);
	return 0;
}

/* A JSON array of strings as a NULL-terminated vector (strings stay in the tree). */
static int get_string_vec(json_object *obj, const char *key, const char *field, const char ***out, size_t *n,
			  vt_err *err)
{
	json_object *a;
	*out = NULL;
	if (n)
		*n = 0;
	if (get_field(obj, key, json_type_array, field, &a, err))
		return -1;
	size_t len = a ? json_object_array_length(a) : 0;
	const char **vec = calloc(len + 1, sizeof(*vec));
	if (!vec)
		return vt_fail_errno(err, ENOMEM, "%s.%s", field, key);
	for (size_t i = 0; i < len; i++) {
		json_object *s = json_object_array_get_idx(a, i);
		if (!is_type(s, json_type_string)) {
			free(vec);
			return vt_fail(err, "%s.%s[%zu]: expected a string", field, key, i);
		}
		vec[i] = json_object_get_string(s);
	}
	*out = vec;
	if (n)
		*n = len;
	return 0;
}

/* ---- process ---- */

static const char *const cap_set_keys[RT_CAP_SETS] = {
	[RT_CAP_BOUNDING] = "bounding", [RT_CAP_EFFECTIVE] = "effective",
	[RT_CAP_INHERITABLE] = "inheritable", [RT_CAP_PERMITTED] = "permitted", [RT_CAP_AMBIENT] = "ambient",
};

static int parse_caps(json_object *caps, const char *field, struct rt_process *p, vt_err *err)
{
	p->has_caps = true;
	for (int s = 0; s < RT_CAP_SETS; s++) {
		cleanup_free const char **names = NULL;
		size_t n;
		char sub[128];
		snprintf(sub, sizeof(sub), "%s.capabilities", field);
		if (get_string_vec(caps, cap_set_keys[s], sub, &names, &n, err))
			return -1;
		for (size_t i = 0; i < n; i++) {
			int c = rt_cap_from_name(names[i]);
			if (c < 0)
				return vt_fail(err, "%s.%s[%zu]: unknown capability '%s'", sub, cap_set_keys[s], i,
					       names[i]);
			p->caps[s] |= 1ULL << c;
		}
	}
	return 0;
}

static int parse_rlimits(json_object *a, const char *field, struct rt_process *p, vt_err *err)
{
	size_t n = json_object_array_length(a);
	p->rlimits = calloc(n ? n : 1, sizeof(*p->rlimits));
	if (!p->rlimits)
		return vt_fail_errno(err, ENOMEM, "%s.rlimits", field);
	for (size_t i = 0; i < n; i++) {
		json_object *r = json_object_array_get_idx(a, i);
		char sub[128];
		snprintf(sub, sizeof(sub), "%s.rlimits[%zu]", field, i);
		const char *type;
		if (!is_type(r, json_type_object))
			return vt_fail(err, "%s: expected an object", sub);
		if (get_string(r, "type", sub, &type, err))
			return -1;
		if (!type)
			return vt_fail(err, "%s.type is required", sub);
		struct rt_rlimit *rl = &p->rlimits[i];
		rl->resource = rt_rlimit_from_name(type);
		if (rl->resource < 0)
			return vt_fail(err, "%s.type: unknown rlimit '%s'", sub, type);
		if (get_uint64(r, "soft", sub, &rl->soft, err) || get_uint64(r, "hard", sub, &rl->hard, err))
			return -1;
		if (rl->soft > rl->hard)
			return vt_fail(err, "%s: soft limit %llu exceeds hard limit %llu", sub,
				       (unsigned long long)rl->soft, (unsigned long long)rl->hard);
		p->n_rlimits++;
	}
	return 0;
}

static int parse_user(json_object *user, const char *field, struct rt_process *p, vt_err *err)
{
	char sub[128];
	snprintf(sub, sizeof(sub), "%s.user", field);
	int64_t v = 0;
	bool present;
	if (get_int(user, "uid", sub, 0, UINT32_MAX - 1, &v, NULL, err))
		return -1;
	p->uid = (uid_t)v;
	v = 0;
	if (get_int(user, "gid", sub, 0, UINT32_MAX - 1, &v, NULL, err))
		return -1;
	p->gid = (gid_t)v;
	if (get_int(user, "umask", sub, 0, 0777, &v, &present, err))
		return -1;
	p->has_umask = present;
	p->umask = (mode_t)v;
	json_object *gids;
	if (get_field(user, "additionalGids", json_type_array, sub, &gids, err))
		return -1;
	size_t n = gids ? json_object_array_length(gids) : 0;
	p->additional_gids = calloc(n ? n : 1, sizeof(gid_t));
	if (!p->additional_gids)
		return vt_fail_errno(err, ENOMEM, "%s", sub);
	for (size_t i = 0; i < n; i++) {
		json_object *g = json_object_array_get_idx(gids, i);
		if (!is_type(g, json_type_int) || json_object_get_int64(g) < 0 ||
		    json_object_get_int64(g) >= UINT32_MAX)
			return vt_fail(err, "%s.additionalGids[%zu]: expected a gid", sub, i);
		p->additional_gids[i] = (gid_t)json_object_get_int64(g);
	}
	p->n_additional_gids = n;
	return 0;
}

void rt_process_clear(struct rt_process *p)
{
	free(p->args);
	free(p->env);
	free(p->additional_gids);
	free(p->rlimits);
	memset(p, 0, sizeof(*p));
}

/* process.consoleSize {height, width}: the pty's size before the process runs (no race with a later resize). */
static int parse_console_size(json_object *o, const char *field, struct rt_process *p, vt_err *err)
{
	int64_t h = 0, w = 0;
	bool has;
	if (get_int(o, "height", field, 0, 65535, &h, &has, err) || get_int(o, "width", field, 0, 65535, &w, &has, err))
		return -1;
	p->console_rows = (unsigned short)h;
	p->console_cols = (unsigned short)w;
	return 0;
}

int rt_spec_parse_process(json_object *proc, const char *field, struct rt_process *p, vt_err *err)
{
	memset(p, 0, sizeof(*p));
	if (!is_type(proc, json_type_object))
		return vt_fail(err, "%s is required and must be an object", field);
	json_object *o;
	int64_t oom = 0;
	if (get_bool(proc, "terminal", field, &p->terminal, err) ||
	    get_string_vec(proc, "args", field, &p->args, NULL, err) ||
	    get_string_vec(proc, "env", field, &p->env, NULL, err) || get_string(proc, "cwd", field, &p->cwd, err) ||
	    get_bool(proc, "noNewPrivileges", field, &p->no_new_privileges, err) ||
	    get_int(proc, "oomScoreAdj", field, -1000, 1000, &oom, &p->has_oom_score_adj, err) ||
	    get_string(proc, "apparmorProfile", field, &p->apparmor_profile, err) ||
	    get_string(proc, "selinuxLabel", field, &p->selinux_label, err))
		goto fail;
	if (p->apparmor_profile && !*p->apparmor_profile)
		p->apparmor_profile = NULL; /* "" means none, as in runc */
	if (p->selinux_label && !*p->selinux_label)
		p->selinux_label = NULL;
	p->oom_score_adj = (int)oom;
	if (!p->args || !p->args[0]) {
		vt_fail(err, "%s.args must name the program to run", field);
		goto fail;
	}
	if (!p->cwd)
		p->cwd = "/";
	if (p->cwd[0] != '/') {
		vt_fail(err, "%s.cwd '%s' must be an absolute path", field, p->cwd);
		goto fail;
	}
	if (get_field(proc, "user", json_type_object, field, &o, err) || parse_user(o, field, p, err))
		goto fail;
	if (get_field(proc, "capabilities", json_type_object, field, &o, err) || (o && parse_caps(o, field, p, err)))
		goto fail;
	if (get_field(proc, "rlimits", json_type_array, field, &o, err) || (o && parse_rlimits(o, field, p, err)))
		goto fail;
	if (get_field(proc, "consoleSize", json_type_object, field, &o, err) || (o && parse_console_size(o, field, p, err)))
		goto fail;
	return 0;
fail:
	rt_process_clear(p);
	return -1;
}

/* ---- mounts ---- */

struct mount_opt {
	const char *name;
	bool clear;
	unsigned long flag;
};

static const struct mount_opt mount_flags[] = {
	{ "ro", false, MS_RDONLY }, { "rw", true, MS_RDONLY }, { "nosuid", false, MS_NOSUID },
	{ "suid", true, MS_NOSUID }, { "nodev", false, MS_NODEV }, { "dev", true, MS_NODEV },
	{ "noexec", false, MS_NOEXEC }, { "exec", true, MS_NOEXEC }, { "sync", false, MS_SYNCHRONOUS },
	{ "async", true, MS_SYNCHRONOUS }, { "dirsync", false, MS_DIRSYNC }, { "remount", false, MS_REMOUNT },
	{ "mand", false, MS_MANDLOCK }, { "nomand", true, MS_MANDLOCK }, { "noatime", false, MS_NOATIME },
	{ "atime", true, MS_NOATIME }, { "nodiratime", false, MS_NODIRATIME }, { "diratime", true, MS_NODIRATIME },
	{ "relatime", false, MS_RELATIME }, { "norelatime", true, MS_RELATIME },
	{ "strictatime", false, MS_STRICTATIME }, { "nostrictatime", true, MS_STRICTATIME },
	{ "defaults", false, 0 },
};

static const struct mount_opt propagation_flags[] = {
	{ "private", false, MS_PRIVATE }, { "rprivate", false, MS_PRIVATE | MS_REC },
	{ "shared", false, MS_SHARED }, { "rshared", false, MS_SHARED | MS_REC },
	{ "slave", false, MS_SLAVE }, { "rslave", false, MS_SLAVE | MS_REC },
	{ "unbindable", false, MS_UNBINDABLE }, { "runbindable", false, MS_UNBINDABLE | MS_REC },
};

static const struct mount_opt *find_opt(const struct mount_opt *t, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(t[i].name, name))
			return &t[i];
	return NULL;
}

static int append_data(char **data, const char *opt)
{
	size_t old = *data ? strlen(*data) : 0;
	char *n = realloc(*data, old + strlen(opt) + 2);
	if (!n)
		return -1;
	if (old)
		n[old++] = ',';
	strcpy(n + old, opt);
	*data = n;
	return 0;
}

static int parse_mount_option(struct rt_mount *m, const char *opt, const char *field, vt_err *err)
{
	const struct mount_opt *f = find_opt(mount_flags, ARRAY_SIZE(mount_flags), opt);
	if (f) {
		m->flags = f->clear ? m->flags & ~f->flag : m->flags | f->flag;
		return 0;
	}
	f = find_opt(propagation_flags, ARRAY_SIZE(propagation_flags), opt);
	if (f) {
		m->propagation = f->flag;
		return 0;
	}
	if (!strcmp(opt, "bind") || !strcmp(opt, "rbind")) {
		m->bind = true;
		m->recursive = opt[0] == 'r';
		return 0;
	}
	if (!strcmp(opt, "tmpcopyup")) {
		m->tmpcopyup = true;
		return 0;
	}
	if (!strncmp(opt, "idmap", 5) || !strncmp(opt, "ridmap", 6))
		return vt_fail(err, "%s: mount option '%s' is not supported", field, opt);
	if (append_data(&m->data, opt))
		return vt_fail_errno(err, ENOMEM, "%s", field);
	return 0;
}

static const char *const mount_types[] = { "bind", "none", "proc", "sysfs", "tmpfs", "devpts", "mqueue",
					   "cgroup", "cgroup2", "overlay", "ramfs", "securityfs", "fusectl" };

static int parse_mount(json_object *mo, size_t i, struct rt_mount *m, vt_err *err)
{
	char field[64];
	snprintf(field, sizeof(field), "mounts[%zu]", i);
	if (!is_type(mo, json_type_object))
		return vt_fail(err, "%s: expected an object", field);
	cleanup_free const char **opts = NULL;
	size_t n_opts;
	if (get_string(mo, "destination", field, &m->destination, err) ||
	    get_string(mo, "type", field, &m->type, err) || get_string(mo, "source", field, &m->source, err) ||
	    get_string_vec(mo, "options", field, &opts, &n_opts, err))
		return -1;
	if (!m->destination || m->destination[0] != '/')
		return vt_fail(err, "%s.destination must be an absolute path", field);
	for (size_t k = 0; k < n_opts; k++) {
		char sub[96];
		snprintf(sub, sizeof(sub), "%s.options[%zu]", field, k);
		if (parse_mount_option(m, opts[k], sub, err))
			return -1;
	}
	if (!m->type)
		m->type = m->bind ? "bind" : "none";
	if (!strcmp(m->type, "bind"))
		m->bind = true;
	bool known = false;
	for (size_t k = 0; k < ARRAY_SIZE(mount_types); k++)
		known |= !strcmp(m->type, mount_types[k]);
	if (!known)
		return vt_fail(err, "%s.type: unsupported mount type '%s'", field, m->type);
	if (m->tmpcopyup && strcmp(m->type, "tmpfs"))
		return vt_fail(err, "%s: 'tmpcopyup' only applies to tmpfs mounts", field);
	if (m->bind && !m->source)
		return vt_fail(err, "%s.source is required for a bind mount", field);
	if (!strcmp(m->type, "none") && !m->bind)
		return vt_fail(err, "%s: type 'none' needs the 'bind' or 'rbind' option", field);
	if (!m->source)
		m->source = m->type;
	return 0;
}

static int parse_mounts(json_object *root, struct rt_spec *s, vt_err *err)
{
	json_object *a;
	if (get_field(root, "mounts", json_type_array, "", &a, err))
		return -1;
	size_t n = a ? json_object_array_length(a) : 0;
	s->mounts = calloc(n ? n : 1, sizeof(*s->mounts));
	if (!s->mounts)
		return vt_fail_errno(err, ENOMEM, "mounts");
	for (size_t i = 0; i < n; i++) {
		s->n_mounts++;
		if (parse_mount(json_object_array_get_idx(a, i), i, &s->mounts[i], err))
			return -1;
	}
	return 0;
}

/* ---- linux ---- */

static int parse_namespaces(json_object *lx, struct rt_spec *s, vt_err *err)
{
	json_object *a;
	if (get_field(lx, "namespaces", json_type_array, "linux", &a, err))
		return -1;
	size_t n = a ? json_object_array_length(a) : 0;
	s->namespaces = calloc(n ? n : 1, sizeof(*s->namespaces));
	if (!s->namespaces)
		return vt_fail_errno(err, ENOMEM, "linux.namespaces");
	int seen = 0;
	for (size_t i = 0; i < n; i++) {
		json_object *o = json_object_array_get_idx(a, i);
		char field[64];
		snprintf(field, sizeof(field), "linux.namespaces[%zu]", i);
		const char *type, *path;
		if (!is_type(o, json_type_object))
			return vt_fail(err, "%s: expected an object", field);
		if (get_string(o, "type", field, &type, err) || get_string(o, "path", field, &path, err))
			return -1;
		int flag = type ? rt_namespace_from_name(type) : 0;
		if (!flag)
			return vt_fail(err, "%s.type: unknown namespace type '%s'", field, type ? type : "(missing)");
		if (seen & flag)
			return vt_fail(err, "%s.type: namespace '%s' is listed twice", field, type);
		if (path && path[0] != '/')
			return vt_fail(err, "%s.path '%s' must be absolute", field, path);
		if (path && access(path, F_OK))
			return vt_fail_errno(err, errno, "%s.path '%s'", field, path);
		seen |= flag;
		s->namespaces[s->n_namespaces++] = (struct rt_namespace){ flag, path };
	}
	/* No 'mount' entry: the container shares the runtime's mount namespace (the spec's inheritance rule). */
	if (!(seen & CLONE_NEWNS) && (seen & CLONE_NEWUSER))
		return vt_fail(err, "linux.namespaces: a new 'user' namespace needs a 'mount' namespace too (the "
			       "container could not mount its root file system in the runtime's mount namespace)");
	return 0;
}

static int parse_idmaps(json_object *lx, const char *key, struct rt_idmap **out, size_t *n_out, vt_err *err)
{
	json_object *a;
	if (get_field(lx, key, json_type_array, "linux", &a, err))
		return -1;
	size_t n = a ? json_object_array_length(a) : 0;
	*out = calloc(n ? n : 1, sizeof(**out));
	if (!*out)
		return vt_fail_errno(err, ENOMEM, "linux.%s", key);
	for (size_t i = 0; i < n; i++) {
		json_object *o = json_object_array_get_idx(a, i);
		char field[64];
		snprintf(field, sizeof(field), "linux.%s[%zu]", key, i);
		int64_t c = -1, h = -1, sz = -1;
		if (!is_type(o, json_type_object))
			return vt_fail(err, "%s: expected an object", field);
		if (get_int(o, "containerID", field, 0, UINT32_MAX - 1, &c, NULL, err) ||
		    get_int(o, "hostID", field, 0, UINT32_MAX - 1, &h, NULL, err) ||
		    get_int(o, "size", field, 1, UINT32_MAX, &sz, NULL, err))
			return -1;
		if (c < 0 || h < 0 || sz < 0)
			return vt_fail(err, "%s needs containerID, hostID and size", field);
		(*out)[i] = (struct rt_idmap){ (uint32_t)c, (uint32_t)h, (uint32_t)sz };
	}
	*n_out = n;
	return 0;
}

static int parse_sysctls(json_object *lx, struct rt_spec *s, vt_err *err)
{
	json_object *o;
	if (get_field(lx, "sysctl", json_type_object, "linux", &o, err))
		return -1;
	size_t n = o ? (size_t)json_object_object_length(o) : 0;
	s->sysctls = calloc(n ? n : 1, sizeof(*s->sysctls));
	if (!s->sysctls)
		return vt_fail_errno(err, ENOMEM, "linux.sysctl");
	if (!o)
		return 0;
	json_object_object_foreach(o, key, val)
	{
		if (!is_type(val, json_type_string))
			return vt_fail(err, "linux.sysctl.%s: expected a string", key);
		if (!*key || strstr(key, "..") || strchr(key, '/'))
			return vt_fail(err, "linux.sysctl: invalid key '%s'", key);
		s->sysctls[s->n_sysctls++] = (struct rt_sysctl){ key, json_object_get_string(val) };
	}
	return 0;
}

static int parse_device(json_object *o, const char *field, struct rt_device *d, vt_err *err)
{
	const char *type;
	int64_t major = 0, minor = 0, mode = 0666, uid = 0, gid = 0;
	bool has_major, has_minor;
	if (!is_type(o, json_type_object))
		return vt_fail(err, "%s: expected an object", field);
	if (get_string(o, "path", field, &d->path, err) || get_string(o, "type", field, &type, err) ||
	    get_int(o, "major", field, 0, 0xfff, &major, &has_major, err) ||
	    get_int(o, "minor", field, 0, 0xfffff, &minor, &has_minor, err) ||
	    get_int(o, "fileMode", field, 0, 07777, &mode, NULL, err) ||
	    get_int(o, "uid", field, 0, UINT32_MAX - 1, &uid, NULL, err) ||
	    get_int(o, "gid", field, 0, UINT32_MAX - 1, &gid, NULL, err))
		return -1;
	if (!d->path || strncmp(d->path, "/dev/", 5) || strstr(d->path, ".."))
		return vt_fail(err, "%s.path must be a path under /dev", field);
	if (!type || strlen(type) != 1 || !strchr("cubp", type[0]))
		return vt_fail(err, "%s.type must be one of c, u, b, p", field);
	d->type = type[0] == 'b' ? S_IFBLK : type[0] == 'p' ? S_IFIFO : S_IFCHR;
	if (type[0] != 'p' && (!has_major || !has_minor))
		return vt_fail(err, "%s: major and minor are required for a '%s' device", field, type);
	*d = (struct rt_device){ d->path, d->type, (unsigned)major, (unsigned)minor, (mode_t)mode, (uid_t)uid,
				 (gid_t)gid };
	return 0;
}

static int parse_devices(json_object *lx, struct rt_spec *s, vt_err *err)
{
	json_object *a;
	if (get_field(lx, "devices", json_type_array, "linux", &a, err))
		return -1;
	size_t n = a ? json_object_array_length(a) : 0;
	s->devices = calloc(n ? n : 1, sizeof(*s->devices));
	if (!s->devices)
		return vt_fail_errno(err, ENOMEM, "linux.devices");
	for (size_t i = 0; i < n; i++) {
		char field[64];
		snprintf(field, sizeof(field), "linux.devices[%zu]", i);
		if (parse_device(json_object_array_get_idx(a, i), field, &s->devices[i], err))
			return -1;
		s->n_devices++;
	}
	return 0;
}

static int parse_personality(json_object *lx, struct rt_spec *s, vt_err *err)
{
	json_object *o;
	const char *domain;
	if (get_field(lx, "personality", json_type_object, "linux", &o, err) || !o)
		return o ? -1 : 0;
	if (get_string(o, "domain", "linux.personality", &domain, err))
		return -1;
	s->has_personality = true;
	if (domain && !strcmp(domain, "LINUX"))
		s->personality = PER_LINUX;
	else if (domain && !strcmp(domain, "LINUX32"))
		s->personality = PER_LINUX32;
	else
		return vt_fail(err, "linux.personality.domain: unknown domain '%s' (LINUX or LINUX32)",
			       domain ? domain : "");
	return 0;
}

static int parse_rootfs_propagation(json_object *lx, struct rt_spec *s, vt_err *err)
{
	const char *p;
	if (get_string(lx, "rootfsPropagation", "linux", &p, err))
		return -1;
	if (!p)
		return 0;
	const struct mount_opt *f = find_opt(propagation_flags, ARRAY_SIZE(propagation_flags), p);
	if (!f)
		return vt_fail(err, "linux.rootfsPropagation: unknown propagation '%s'", p);
	s->rootfs_propagation = f->flag;
	return 0;
}

static int parse_linux(json_object *root, struct rt_spec *s, vt_err *err)
{
	json_object *lx;
	if (get_field(root, "linux", json_type_object, "", &lx, err))
		return -1;
	if (!lx)
		return vt_fail(err, "linux: the 'linux' section is required on this platform");
	s->linux_obj = lx;
	if (parse_namespaces(lx, s, err) || parse_idmaps(lx, "uidMappings", &s->uid_maps, &s->n_uid_maps, err) ||
	    parse_idmaps(lx, "gidMappings", &s->gid_maps, &s->n_gid_maps, err) || parse_sysctls(lx, s, err) ||
	    parse_personality(lx, s, err) || parse_rootfs_propagation(lx, s, err) || parse_devices(lx, s, err) ||
	    get_string_vec(lx, "maskedPaths", "linux", &s->masked_paths, &s->n_masked_paths, err) ||
	    get_string_vec(lx, "readonlyPaths", "linux", &s->readonly_paths, &s->n_readonly_paths, err) ||
	    get_field(lx, "seccomp", json_type_object, "linux", &s->seccomp, err))
		return -1;
	const char *userns_path;
	bool userns = rt_spec_has_namespace(s, CLONE_NEWUSER, &userns_path);
	if (userns && !userns_path && (!s->n_uid_maps || !s->n_gid_maps))
		return vt_fail(err, "linux.uidMappings and linux.gidMappings are required with a new user namespace");
	if (s->rootfs_propagation && !rt_spec_has_namespace(s, CLONE_NEWNS, NULL))
		return vt_fail(err, "linux.rootfsPropagation: needs a 'mount' namespace (without one it would change the "
			       "host's mounts)");
	if (!userns && (s->n_uid_maps || s->n_gid_maps))
		return vt_fail(err, "linux.uidMappings: id mappings need a 'user' namespace in linux.namespaces");
	return 0;
}

/* ---- hooks ---- */

static const char *const hook_keys[RT_HOOK_KINDS] = {
	[RT_HOOK_PRESTART] = "prestart", [RT_HOOK_CREATE_RUNTIME] = "createRuntime",
	[RT_HOOK_CREATE_CONTAINER] = "createContainer", [RT_HOOK_START_CONTAINER] = "startContainer",
	[RT_HOOK_POSTSTART] = "poststart", [RT_HOOK_POSTSTOP] = "poststop",
};

void rt_hooks_clear(struct rt_hooks *h)
{
	for (int k = 0; k < RT_HOOK_KINDS; k++) {
		for (size_t i = 0; i < h->n[k]; i++) {
			free(h->list[k][i].args);
			free(h->list[k][i].env);
		}
		free(h->list[k]);
	}
	memset(h, 0, sizeof(*h));
}

static int parse_hook(json_object *o, const char *field, struct rt_hook *h, vt_err *err)
{
	int64_t t = 0;
	if (!is_type(o, json_type_object))
		return vt_fail(err, "%s: expected an object", field);
	if (get_string(o, "path", field, &h->path, err) || get_string_vec(o, "args", field, &h->args, NULL, err) ||
	    get_string_vec(o, "env", field, &h->env, NULL, err) ||
	    get_int(o, "timeout", field, 1, 86400, &t, NULL, err))
		return -1;
	if (!h->path || h->path[0] != '/')
		return vt_fail(err, "%s.path must be an absolute path", field);
	h->timeout = (int)t;
	return 0;
}

int rt_spec_parse_hooks(json_object *hooks, struct rt_hooks *out, vt_err *err)
{
	memset(out, 0, sizeof(*out));
	if (!hooks)
		return 0;
	if (!is_type(hooks, json_type_object))
		return vt_fail(err, "hooks: expected an object");
	for (int k = 0; k < RT_HOOK_KINDS; k++) {
		json_object *a;
		if (get_field(hooks, hook_keys[k], json_type_array, "hooks", &a, err))
			goto fail;
		size_t n = a ? json_object_array_length(a) : 0;
		out->list[k] = calloc(n ? n : 1, sizeof(struct rt_hook));
		if (!out->list[k]) {
			vt_fail_errno(err, ENOMEM, "hooks");
			goto fail;
		}
		for (size_t i = 0; i < n; i++) {
			char field[64];
			snprintf(field, sizeof(field), "hooks.%s[%zu]", hook_keys[k], i);
			out->n[k]++;
			if (parse_hook(json_object_array_get_idx(a, i), field, &out->list[k][i], err))
				goto fail;
		}
	}
	return 0;
fail:
	rt_hooks_clear(out);
	return -1;
}

/* ---- root ---- */

static int parse_root(json_object *root, struct rt_spec *s, vt_err *err)
{
	json_object *r;
	const char *path;
	if (get_field(root, "root", json_type_object, "", &r, err))
		return -1;
	if (!r)
		return vt_fail(err, "root: the 'root' section is required");
	if (get_string(r, "path", "root", &path, err) || get_bool(r, "readonly", "root", &s->rootfs_readonly, err))
		return -1;
	if (!path || !*path)
		return vt_fail(err, "root.path is required");
	cleanup_free char *joined = path[0] == '/' ? strdup(path) : rt_path_join(s->bundle, path);
	if (!joined)
		return vt_fail_errno(err, ENOMEM, "root.path");
	s->rootfs = realpath(joined, NULL);
	if (!s->rootfs)
		return vt_fail_errno(err, errno, "root.path: rootfs '%s' is not usable", joined);
	struct stat st;
	if (stat(s->rootfs, &st) || !S_ISDIR(st.st_mode))
		return vt_fail(err, "root.path: rootfs '%s' is not a directory", s->rootfs);
	return 0;
}

static int check_version(json_object *root, vt_err *err)
{
	const char *v;
	if (get_string(root, "ociVersion", "", &v, err))
		return -1;
	if (!v)
		return vt_fail(err, "ociVersion is required");
	if (strncmp(v, "1.", 2))
		return vt_fail(err, "ociVersion: unsupported version '%s' (this runtime implements 1.x)", v);
	return 0;
}

static int parse_all(struct rt_spec *s, vt_err *err)
{
	json_object *root = s->json, *o;
	if (!is_type(root, json_type_object))
		return vt_fail(err, "config.json: the top level must be an object");
	if (check_version(root, err) || parse_root(root, s, err))
		return -1;
	if (get_field(root, "process", json_type_object, "", &o, err))
		return -1;
	if (rt_spec_parse_process(o, "process", &s->process, err))
		return -1;
	if (get_string(root, "hostname", "", &s->hostname, err) ||
	    get_string(root, "domainname", "", &s->domainname, err) || parse_mounts(root, s, err) ||
	    parse_linux(root, s, err) || get_field(root, "annotations", json_type_object, "", &s->annotations, err))
		return -1;
	if ((s->hostname || s->domainname) && !rt_spec_has_namespace(s, CLONE_NEWUTS, NULL))
		return vt_fail(err, "hostname: setting a hostname needs a 'uts' namespace");
	if (get_field(root, "hooks", json_type_object, "", &o, err) || rt_spec_parse_hooks(o, &s->hooks, err))
		return -1;
	return 0;
}

static int parse_text(struct rt_spec *s, const char *name, const char *text, size_t len, vt_err *err)
{
	if (len > CONFIG_MAX)
		return vt_fail(err, "%s is too large", name);
	json_tokener *tok = json_tokener_new();
	if (!tok)
		return vt_fail_errno(err, ENOMEM, "parsing %s", name);
	s->json = json_tokener_parse_ex(tok, text, (int)len);
	enum json_tokener_error jerr = json_tokener_get_error(tok);
	size_t offset = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (!s->json || jerr != json_tokener_success || offset != len)
		return vt_fail(err, "%s: invalid JSON near byte %zu: %s", name, offset,
			       jerr == json_tokener_continue  ? "unexpected end of file"
			       : jerr != json_tokener_success ? json_tokener_error_desc(jerr)
							      : "trailing data after the object");
	return parse_all(s, err);
}

static int parse_named(const char *bundle, const char *name, const char *text, size_t len, struct rt_spec **out,
		       vt_err *err)
{
	struct rt_spec *s = calloc(1, sizeof(*s));
	if (!s)
		return vt_fail_errno(err, ENOMEM, "loading config");
	s->bundle = realpath(bundle, NULL);
	if (!s->bundle)
		vt_fail_errno(err, errno, "bundle '%s'", bundle);
	if (!s->bundle || parse_text(s, name, text, len, err)) {
		rt_spec_free(s);
		return -1;
	}
	*out = s;
	return 0;
}

int rt_spec_parse(const char *bundle, const char *text, size_t len, struct rt_spec **out, vt_err *err)
{
	return parse_named(bundle, "config.json", text, len, out, err);
}

int rt_spec_load(const char *bundle, struct rt_spec **out, vt_err *err)
{
	cleanup_free char *path = rt_path_join(bundle, "config.json");
	cleanup_free char *text = NULL;
	size_t len;
	if (!path)
		return vt_fail_errno(err, ENOMEM, "loading config");
	if (read_file(path, CONFIG_MAX, (void **)&text, &len, err))
		return -1;
	return parse_named(bundle, path, text, len, out, err);
}

void rt_spec_free(struct rt_spec *s)
{
	if (!s)
		return;
	rt_process_clear(&s->process);
	for (size_t i = 0; i < s->n_mounts; i++)
		free(s->mounts[i].data);
	free(s->mounts);
	free(s->namespaces);
	free(s->uid_maps);
	free(s->gid_maps);
	free(s->masked_paths);
	free(s->readonly_paths);
	free(s->sysctls);
	free(s->devices);
	rt_hooks_clear(&s->hooks);
	free(s->bundle);
	free(s->rootfs);
	json_object_put(s->json);
	free(s);
}

bool rt_spec_has_namespace(const struct rt_spec *s, int flag, const char **path)
{
	for (size_t i = 0; i < s->n_namespaces; i++) {
		if (s->namespaces[i].flag == flag) {
			if (path)
				*path = s->namespaces[i].path;
			return true;
		}
	}
	return false;
}

int rt_spec_isolation_vm(const struct rt_spec *s, bool *vm, vt_err *err)
{
	json_object *v;
	*vm = false;
	if (!s->annotations || !json_object_object_get_ex(s->annotations, RT_ANNOTATION_ISOLATION, &v))
		return 0;
	const char *value = json_object_get_string(v);
	if (value && !strcmp(value, "vm"))
		*vm = true;
	else if (!value || strcmp(value, "container"))
		return vt_fail(err, "annotations: %s is '%s': use vm or container", RT_ANNOTATION_ISOLATION,
			       value ? value : "");
	return 0;
}

/* The OCI config.json of a container: the runtime's default spec, the image config (Env, Entrypoint, Cmd,
 * WorkingDir, User), then the command line's flags, which win. */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>

#include "container/container.h"
#include "image/image.h"
#include "lib/util.h"
#include "runtime/rt.h"

#define DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* What a container may do by default: podman's set (enough to chown, setuid to a service user, bind low
 * ports), not runc's three. */
static const char *const default_caps[] = {
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_NET_BIND_SERVICE",
	"CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID", "CAP_SYS_CHROOT", NULL,
};

static json_object *get(json_object *o, const char *key)
{
	json_object *v = NULL;
	return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static json_object *strings_array(const char *const *v, size_t n)
{
	json_object *a = json_object_new_array();
	for (size_t i = 0; i < n; i++)
		json_object_array_add(a, json_object_new_string(v[i]));
	return a;
}

/* ---------------- user lookup ---------------- */

/* ---------------- flags ---------------- */

int ctr_parse_cpus(const char *s, uint64_t *quota, vt_err *err)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !(v > 0) || v > 1024)
		return vt_fail(err, "--cpus '%s': expected a number of CPUs such as 0.5 or 2", s);
	*quota = (uint64_t)(v * 100000 + 0.5);
	if (*quota < 1000)
		return vt_fail(err, "--cpus '%s': at least 0.01", s);
	return 0;
}

int ctr_parse_volume(const char *spec, struct ctr_volume *out, char **buf, vt_err *err)
{
	char *copy = strdup(spec);
	if (!copy)
		return vt_fail_errno(err, ENOMEM, "-v");
	*buf = copy;
	char *ctr = strchr(copy, ':');
	char *mode = ctr ? strchr(ctr + 1, ':') : NULL;
	if (ctr)
		*ctr++ = 0;
	if (mode)
		*mode++ = 0;
	*out = (struct ctr_volume){ .host = copy, .ctr = ctr };
	if (!ctr || !*ctr)
		return vt_fail(err, "-v '%s': expected HOSTDIR:CTRDIR[:ro|rw]", spec);
	if (copy[0] != '/')
		return vt_fail(err, "-v '%s': the host directory must be an absolute path (named volumes are not "
			       "supported)", spec);
	if (ctr[0] != '/')
		return vt_fail(err, "-v '%s': the container directory must be an absolute path", spec);
	if (mode && strcmp(mode, "ro") && strcmp(mode, "rw"))
		return vt_fail(err, "-v '%s': unknown option '%s' (ro or rw)", spec, mode);
	out->ro = mode && !strcmp(mode, "ro");
	return 0;
}

/* ---------------- process ---------------- */

static size_t key_len(const char *kv)
{
	return strcspn(kv, "=");
}

/* Add or replace KEY=VALUE in an env array. */
static void env_set(json_object *env, const char *kv)
{
	size_t n = key_len(kv);
	for (size_t i = 0; i < json_object_array_length(env); i++) {
		const char *e = json_object_get_string(json_object_array_get_idx(env, i));
		if (key_len(e) == n && !strncmp(e, kv, n)) {
			json_object_array_put_idx(env, i, json_object_new_string(kv));
			return;
		}
	}
	json_object_array_add(env, json_object_new_string(kv));
}

static int build_env(const struct ctr_run_opts *o, json_object *img, const char *hostname, json_object **out,
		     vt_err *err)
{
	json_object *env = json_object_new_array();
	env_set(env, DEFAULT_PATH);
	if (o->tty)
		env_set(env, "TERM=xterm");
	json_object *ienv = get(img, "Env");
	for (size_t i = 0; ienv && i < json_object_array_length(ienv); i++)
		env_set(env, json_object_get_string(json_object_array_get_idx(ienv, i)));
	char host[128];
	snprintf(host, sizeof(host), "HOSTNAME=%s", hostname);
	env_set(env, host);
	env_set(env, "container=virtus");
	for (size_t i = 0; i < o->n_env; i++) {
		const char *e = o->env[i];
		if (!*e || *e == '=') {
			json_object_put(env);
			return vt_fail(err, "-e '%s': expected KEY=VALUE", e);
		}
		if (strchr(e, '=')) {
			env_set(env, e);
			continue;
		}
		const char *v = getenv(e); /* -e KEY: the caller's value, skipped when unset (as podman) */
		cleanup_free char *kv = NULL;
		if (v && asprintf(&kv, "%s=%s", e, v) > 0)
			env_set(env, kv);
	}
	*out = env;
	return 0;
}

static void append_strings(json_object *dst, json_object *src)
{
	for (size_t i = 0; src && json_object_is_type(src, json_type_array) && i < json_object_array_length(src); i++)
		json_object_array_add(dst, json_object_get(json_object_array_get_idx(src, i)));
}

void ctr_command_parts(const struct ctr_run_opts *o, json_object *img, json_object **entrypoint, json_object **cmd)
{
	*entrypoint = json_object_new_array();
	*cmd = json_object_new_array();
	if (o->entrypoint) {
		if (*o->entrypoint)
			json_object_array_add(*entrypoint, json_object_new_string(o->entrypoint));
	} else {
		append_strings(*entrypoint, get(img, "Entrypoint"));
	}
	if (o->n_cmd) {
		for (size_t i = 0; i < o->n_cmd; i++)
			json_object_array_add(*cmd, json_object_new_string(o->cmd[i]));
	} else if (!o->entrypoint) {
		append_strings(*cmd, get(img, "Cmd"));
	}
}

/* Entrypoint + Cmd (see ctr_command_parts). */
static int build_args(const struct ctr_run_opts *o, json_object *img, json_object **out, vt_err *err)
{
	json_object *entrypoint, *cmd;
	ctr_command_parts(o, img, &entrypoint, &cmd);
	json_object *args = entrypoint;
	append_strings(args, cmd);
	json_object_put(cmd);
	if (!json_object_array_length(args)) {
		json_object_put(args);
		return vt_fail(err, "no command given and the image has no Cmd or Entrypoint");
	}
	*out = args;
	return 0;
}

static int build_user(const struct ctr_run_opts *o, json_object *img, const char *rootfs, json_object *proc,
		      vt_err *err)
{
	const char *u = o->user;
	json_object *iu = get(img, "User");
	if (!u && iu && json_object_get_string(iu)[0])
		u = json_object_get_string(iu);
	if (!u)
		return 0;
	uid_t uid;
	gid_t gid;
	if (img_resolve_user(rootfs, u, &uid, &gid, err))
		return -1;
	json_object *user = json_object_new_object();
	json_object_object_add(user, "uid", json_object_new_int64(uid));
	json_object_object_add(user, "gid", json_object_new_int64(gid));
	json_object_object_add(proc, "user", user);
	return 0;
}

static void set_caps(json_object *proc)
{
	json_object *c = json_object_new_object();
	static const char *const sets[] = { "bounding", "effective", "permitted" };
	size_t n = ARRAY_SIZE(default_caps) - 1;
	for (size_t i = 0; i < ARRAY_SIZE(sets); i++)
		json_object_object_add(c, sets[i], strings_array(default_caps, n));
	json_object_object_add(proc, "capabilities", c);
}

static int build_process(const struct ctr_run_opts *o, json_object *img, const char *rootfs,
			 const char *hostname, json_object *proc, vt_err *err)
{
	json_object *args = NULL, *env = NULL;
	if (build_args(o, img, &args, err))
		return -1;
	json_object_object_add(proc, "args", args);
	if (build_env(o, img, hostname, &env, err))
		return -1;
	json_object_object_add(proc, "env", env);
	json_object *wd = get(img, "WorkingDir");
	const char *cwd = o->workdir ? o->workdir : wd && json_object_get_string(wd)[0] ? json_object_get_string(wd) : "/";
	if (cwd[0] != '/')
		return vt_fail(err, "working directory '%s' must be an absolute path", cwd);
	json_object_object_add(proc, "cwd", json_object_new_string(cwd));
	json_object_object_add(proc, "terminal", json_object_new_boolean(o->tty));
	json_object_object_add(proc, "noNewPrivileges", json_object_new_boolean(0));
	set_caps(proc);
	return build_user(o, img, rootfs, proc, err);
}

/* ---------------- mounts, resources, namespaces ---------------- */

static void add_volumes(const struct ctr_run_opts *o, json_object *spec)
{
	json_object *mounts = get(spec, "mounts");
	for (size_t i = 0; i < o->n_volumes; i++) {
		const struct ctr_volume *v = &o->volumes[i];
		json_object *m = json_object_new_object();
		json_object_object_add(m, "destination", json_object_new_string(v->ctr));
		json_object_object_add(m, "type", json_object_new_string("bind"));
		json_object_object_add(m, "source", json_object_new_string(v->host));
		json_object *opts = json_object_new_array();
		json_object_array_add(opts, json_object_new_string("rbind"));
		json_object_array_add(opts, json_object_new_string(v->ro ? "ro" : "rw"));
		json_object_object_add(m, "options", opts);
		json_object_array_add(mounts, m);
	}
}

static void add_resources(const struct ctr_run_opts *o, json_object *lnx)
{
	if (!o->memory && !o->cpu_quota && !o->pids_limit)
		return;
	json_object *r = json_object_new_object();
	if (o->memory) {
		json_object *m = json_object_new_object();
		json_object_object_add(m, "limit", json_object_new_int64((int64_t)o->memory));
		json_object_object_add(r, "memory", m);
	}
	if (o->cpu_quota) {
		json_object *c = json_object_new_object();
		json_object_object_add(c, "quota", json_object_new_int64((int64_t)o->cpu_quota));
		json_object_object_add(c, "period", json_object_new_int64(100000));
		json_object_object_add(r, "cpu", c);
	}
	if (o->pids_limit) {
		json_object *p = json_object_new_object();
		json_object_object_add(p, "limit", json_object_new_int64(o->pids_limit));
		json_object_object_add(r, "pids", p);
	}
	json_object_object_add(lnx, "resources", r);
}

/* host: the host's network namespace, so no "network" entry; every other mode gets a new one. */
static void set_network_namespace(const struct ctr_run_opts *o, json_object *lnx)
{
	if (o->net.mode != CNET_HOST)
		return;
	json_object *ns = get(lnx, "namespaces"), *kept = json_object_new_array();
	for (size_t i = 0; i < json_object_array_length(ns); i++) {
		json_object *e = json_object_array_get_idx(ns, i);
		if (strcmp(json_object_get_string(get(e, "type")), "network"))
			json_object_array_add(kept, json_object_get(e));
	}
	json_object_object_add(lnx, "namespaces", kept);
}

int ctr_build_spec(const struct ctr_run_opts *o, json_object *image_config, const char *rootfs,
		   const char *hostname, json_object **out, vt_err *err)
{
	json_object *spec = rt_spec_default();
	json_object *root = get(spec, "root"), *lnx = get(spec, "linux");
	json_object_object_add(root, "path", json_object_new_string(rootfs)); /* (in the run dir, not the bundle) */
	json_object_object_add(root, "readonly", json_object_new_boolean(0));
	json_object_object_add(spec, "hostname", json_object_new_string(hostname));
	if (build_process(o, image_config, rootfs, hostname, get(spec, "process"), err)) {
		json_object_put(spec);
		return -1;
	}
	add_volumes(o, spec);
	add_resources(o, lnx);
	set_network_namespace(o, lnx);
	*out = spec;
	return 0;
}

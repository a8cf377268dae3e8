/* The public cgroup interface: host layout detection (v1, v2, hybrid), path computation, and dispatch
 * to the v1 / v2 backends. The layout is found from statfs and /proc/self/mountinfo, never from the distro. */
#include "runtime/cgroup_internal.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "lib/util.h"

#define CGROUP_ROOT "/sys/fs/cgroup"

/* ---- path ---- */

static int append_component(char *out, size_t len, size_t *used, const char *comp, size_t clen, vt_err *err)
{
	if (clen == 2 && comp[0] == '.' && comp[1] == '.')
		return vt_fail(err, "linux.cgroupsPath: '..' is not allowed");
	if (clen == 0 || (clen == 1 && comp[0] == '.'))
		return 0;
	if (*used + 1 + clen + 1 > len)
		return vt_fail(err, "linux.cgroupsPath: too long");
	out[(*used)++] = '/';
	memcpy(out + *used, comp, clen);
	*used += clen;
	out[*used] = '\0';
	return 0;
}

static int append_path(char *out, size_t len, size_t *used, const char *path, vt_err *err)
{
	for (const char *p = path; *p;) {
		const char *end = strchrnul(p, '/');
		if (append_component(out, len, used, p, (size_t)(end - p), err) < 0)
			return -1;
		p = *end ? end + 1 : end;
	}
	return 0;
}

int rt_cg_compute_path(const char *id, const char *cgroups_path, char **out, vt_err *err)
{
	char buf[4096] = "";
	size_t used = 0;
	if (!id || !*id || strchr(id, '/') || strcmp(id, "..") == 0 || strcmp(id, ".") == 0)
		return vt_fail(err, "container id '%s' cannot name a cgroup", id ? id : "");
	if (cgroups_path && *cgroups_path && cgroups_path[0] != '/' && strchr(cgroups_path, ':'))
		return vt_fail(err, "linux.cgroupsPath: '%s' is systemd slice syntax; virtus-runtime manages "
			       "cgroupfs paths only (use an absolute path such as /virtus/%s)", cgroups_path, id);
	if (!cgroups_path || !*cgroups_path) {
		if (append_path(buf, sizeof(buf), &used, RT_CG_DEFAULT_PARENT, err) < 0 ||
		    append_component(buf, sizeof(buf), &used, id, strlen(id), err) < 0)
			return -1;
	} else {
		/* Relative paths live under our default parent; absolute ones under each hierarchy root. */
		if (cgroups_path[0] != '/' && append_path(buf, sizeof(buf), &used, RT_CG_DEFAULT_PARENT, err) < 0)
			return -1;
		if (append_path(buf, sizeof(buf), &used, cgroups_path, err) < 0)
			return -1;
	}
	if (used == 0)
		return vt_fail(err, "linux.cgroupsPath: '%s' names the root cgroup", cgroups_path);
	*out = strdup(buf);
	return *out ? 0 : vt_fail_errno(err, ENOMEM, "linux.cgroupsPath");
}

/* ---- layout ---- */

static bool is_v1_controller(const char *opt)
{
	static const char *const known[] = { "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "net_cls",
		"net_prio", "blkio", "perf_event", "hugetlb", "pids", "rdma", "misc" };
	if (strncmp(opt, "name=", 5) == 0)
		return true;
	for (size_t i = 0; i < ARRAY_SIZE(known); i++)
		if (strcmp(opt, known[i]) == 0)
			return true;
	return false;
}

/* Super options "rw,cpu,cpuacct" -> "cpu,cpuacct". */
static char *v1_controllers(const char *superopts)
{
	char *copy = strdup(superopts), *out = calloc(1, strlen(superopts) + 1), *save = NULL;
	if (!copy || !out) {
		free(copy);
		free(out);
		return NULL;
	}
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (!is_v1_controller(tok))
			continue;
		if (*out)
			strcat(out, ",");
		strcat(out, tok);
	}
	free(copy);
	return out;
}

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape_octal(char *s)
{
	char *w = s;
	for (char *r = s; *r; r++) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '7' && r[2] >= '0' && r[2] <= '7' && r[3] >= '0' && r[3] <= '7') {
			*w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
			r += 3;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
}

static bool layout_has(const struct rt_cg_layout *l, bool v2, const char *controllers)
{
	for (size_t i = 0; i < l->nhier; i++)
		if (l->hier[i].v2 == v2 && (v2 || strcmp(l->hier[i].controllers, controllers) == 0))
			return true;
	return false;
}

static int layout_add(struct rt_cg_layout *l, const char *mount, bool v2, char *controllers, vt_err *err)
{
	if (layout_has(l, v2, controllers)) { /* bind mounts of a hierarchy we already know */
		free(controllers);
		return 0;
	}
	struct rt_cg_hier *grown = realloc(l->hier, (l->nhier + 1) * sizeof(*grown));
	if (!grown) {
		free(controllers);
		return vt_fail_errno(err, ENOMEM, "reading the cgroup mounts");
	}
	l->hier = grown;
	grown[l->nhier] = (struct rt_cg_hier){ .mount = strdup(mount), .controllers = controllers, .v2 = v2 };
	if (!grown[l->nhier].mount) {
		free(controllers);
		return vt_fail_errno(err, ENOMEM, "reading the cgroup mounts");
	}
	l->nhier++;
	return 0;
}

/* One mountinfo line: "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS". */
static int layout_add_line(struct rt_cg_layout *l, char *line, vt_err *err)
{
	char *fields[6] = { 0 }, *save = NULL;
	int n = 0;
	for (char *p = line; n < 6; n++) {
		fields[n] = strsep(&p, " ");
		if (!p)
			return 0;
		save = p;
	}
	/* optional fields follow until the " - " separator */
	char *rest = strncmp(save, "- ", 2) == 0 ? save - 1 : strstr(save, " - ");
	if (!rest)
		return 0;
	char *fstype = strtok_r(rest + 3, " ", &save), *source = strtok_r(NULL, " ", &save);
	char *superopts = strtok_r(NULL, " \n", &save);
	if (!fstype || !source || !superopts)
		return 0;
	unescape_octal(fields[4]);
	if (strcmp(fstype, "cgroup2") == 0)
		return layout_add(l, fields[4], true, strdup(""), err);
	if (strcmp(fstype, "cgroup") != 0)
		return 0;
	char *controllers = v1_controllers(superopts);
	if (!controllers)
		return vt_fail_errno(err, ENOMEM, "reading the cgroup mounts");
	if (!*controllers) {
		free(controllers);
		return 0;
	}
	return layout_add(l, fields[4], false, controllers, err);
}

/* Hybrid hosts keep exactly one cgroup2 mount (for membership); pure v2 hosts have only that. */
static void layout_finish_mode(struct rt_cg_layout *l)
{
	bool v1 = false, v2 = false;
	for (size_t i = 0; i < l->nhier; i++) {
		v1 |= !l->hier[i].v2;
		v2 |= l->hier[i].v2;
	}
	l->mode = v1 && v2 ? RT_CG_HYBRID : v1 ? RT_CG_V1 : RT_CG_V2;
}

int rt_cg_layout_from_mountinfo(const char *text, struct rt_cg_layout *out, vt_err *err)
{
	memset(out, 0, sizeof(*out));
	char *copy = strdup(text), *save = NULL;
	if (!copy)
		return vt_fail_errno(err, ENOMEM, "reading the cgroup mounts");
	int rc = 0;
	for (char *line = strtok_r(copy, "\n", &save); line && rc == 0; line = strtok_r(NULL, "\n", &save))
		rc = layout_add_line(out, line, err);
	free(copy);
	if (rc == 0 && out->nhier == 0)
		rc = vt_fail(err, "no cgroup file system is mounted (looked in /proc/self/mountinfo)");
	if (rc < 0) {
		rt_cg_layout_free(out);
		return -1;
	}
	layout_finish_mode(out);
	return 0;
}

static int read_mountinfo(char **text, vt_err *err)
{
	cleanup_close int fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return vt_fail_errno(err, errno, "cannot open /proc/self/mountinfo");
	size_t cap = 16384, len = 0;
	cleanup_free char *buf = malloc(cap);
	for (;;) {
		if (!buf)
			return vt_fail_errno(err, ENOMEM, "reading /proc/self/mountinfo");
		ssize_t n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return vt_fail_errno(err, errno, "reading /proc/self/mountinfo");
		if (n == 0)
			break;
		len += (size_t)n;
		if (len + 1 == cap) {
			char *grown = realloc(buf, cap *= 2);
			if (!grown)
				return vt_fail_errno(err, ENOMEM, "reading /proc/self/mountinfo");
			buf = grown;
		}
	}
	buf[len] = '\0';
	*text = steal_ptr(buf);
	return 0;
}

int rt_cg_layout_detect(struct rt_cg_layout *out, vt_err *err)
{
	struct statfs st;
	memset(out, 0, sizeof(*out));
	if (statfs(CGROUP_ROOT, &st) == 0 && st.f_type == CGROUP2_SUPER_MAGIC) {
		char *ctrl = strdup("");
		if (!ctrl || layout_add(out, CGROUP_ROOT, true, ctrl, err) < 0)
			return ctrl ? -1 : vt_fail_errno(err, ENOMEM, "cgroup layout");
		out->mode = RT_CG_V2;
		return 0;
	}
	cleanup_free char *text = NULL;
	if (read_mountinfo(&text, err) < 0)
		return -1;
	return rt_cg_layout_from_mountinfo(text, out, err);
}

static void hier_free(struct rt_cg_hier *h)
{
	free(h->dir);
	free(h->mount);
	free(h->controllers);
}

void rt_cg_layout_free(struct rt_cg_layout *l)
{
	for (size_t i = 0; i < l->nhier; i++)
		hier_free(&l->hier[i]);
	free(l->hier);
	memset(l, 0, sizeof(*l));
}

void rt_cgroup_free(struct rt_cgroup *cg)
{
	if (!cg)
		return;
	for (size_t i = 0; i < cg->nhier; i++)
		hier_free(&cg->hier[i]);
	free(cg->hier);
	free(cg->path);
	free(cg);
}

/* ---- create ---- */

static int cgroup_from_layout(struct rt_cg_layout *l, char *path, struct rt_cgroup **out, vt_err *err)
{
	struct rt_cgroup *cg = calloc(1, sizeof(*cg));
	if (!cg) {
		free(path);
		return vt_fail_errno(err, ENOMEM, "cgroup");
	}
	cg->mode = l->mode;
	cg->path = path;
	cg->hier = steal_ptr(l->hier);
	cg->nhier = l->nhier;
	l->nhier = 0;
	for (size_t i = 0; i < cg->nhier; i++) {
		if (asprintf(&cg->hier[i].dir, "%s%s", cg->hier[i].mount, path) < 0) {
			cg->hier[i].dir = NULL;
			rt_cgroup_free(cg);
			return vt_fail_errno(err, ENOMEM, "cgroup");
		}
	}
	*out = cg;
	return 0;
}

struct created_dirs {
	char **dirs;
	size_t n;
};

static void created_rollback(struct created_dirs *c)
{
	/* No task has joined yet, so nothing is busy; a parent another container just used stays (EBUSY). */
	for (size_t i = c->n; i-- > 0;)
		rmdir(c->dirs[i]);
}

static void created_free(struct created_dirs *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->dirs[i]);
	free(c->dirs);
}

static bool is_cpuset_hier(const struct rt_cg_hier *h)
{
	return !h->v2 && strstr(h->controllers, "cpuset") != NULL;
}

static int make_dirs(struct rt_cgroup *cg, struct created_dirs *c, vt_err *err)
{
	for (size_t i = 0; i < cg->nhier; i++) {
		const struct rt_cg_hier *h = &cg->hier[i];
		size_t first_new = c->n;
		if (rt_cg_mkdir_p(h->mount, cg->path, &c->dirs, &c->n, err) < 0)
			return -1;
		/* Top-down, so each new cpuset copies from an already initialized parent. */
		for (size_t k = first_new; is_cpuset_hier(h) && k < c->n; k++)
			if (rt_cg_v1_prepare_cpuset(c->dirs[k], err) < 0)
				return -1;
		if (cg->mode == RT_CG_V2 && rt_cg_v2_enable_controllers(h->mount, cg->path, err) < 0)
			return -1;
	}
	return 0;
}

static int apply_resources(struct rt_cgroup *cg, const struct rt_cg_resources *r, vt_err *err)
{
	if (cg->mode != RT_CG_V2)
		return rt_cg_v1_apply(cg, r, err); /* hybrid: the unified mount has no controllers */
	return rt_cg_v2_apply(cg->hier[0].dir, r, err);
}

static const char *cgroups_path_of(json_object *linux_obj, vt_err *err, int *rc)
{
	json_object *p;
	*rc = 0;
	if (!linux_obj || !json_object_object_get_ex(linux_obj, "cgroupsPath", &p) || json_object_is_type(p, json_type_null))
		return NULL;
	if (!json_object_is_type(p, json_type_string))
		*rc = vt_fail(err, "linux.cgroupsPath: must be a string");
	return json_object_get_string(p);
}

int rt_cgroup_create(const char *id, json_object *linux_obj, struct rt_cgroup **out, vt_err *err)
{
	int rc;
	const char *cgroups_path = cgroups_path_of(linux_obj, err, &rc);
	char *path = NULL;
	struct rt_cg_resources res;
	if (rc < 0 || rt_cg_compute_path(id, cgroups_path, &path, err) < 0)
		return -1;
	if (rt_cg_resources_parse(linux_obj, &res, err) < 0) {
		free(path);
		return -1;
	}
	struct rt_cg_layout layout;
	struct rt_cgroup *cg = NULL;
	if (rt_cg_layout_detect(&layout, err) < 0) {
		free(path);
		rt_cg_resources_free(&res);
		return -1;
	}
	rc = cgroup_from_layout(&layout, path, &cg, err);
	rt_cg_layout_free(&layout);
	struct created_dirs created = { 0 };
	if (rc == 0 && (make_dirs(cg, &created, err) < 0 || apply_resources(cg, &res, err) < 0)) {
		created_rollback(&created);
		rt_cgroup_free(steal_ptr(cg));
		rc = -1;
	}
	created_free(&created);
	rt_cg_resources_free(&res);
	if (rc == 0)
		*out = cg;
	return rc;
}

/* ---- the rest of the lifecycle ---- */

int rt_cgroup_add_pid(struct rt_cgroup *cg, pid_t pid, vt_err *err)
{
	char buf[24];
	snprintf(buf, sizeof(buf), "%d", (int)pid);
	for (size_t i = 0; i < cg->nhier; i++)
		if (rt_cg_write(cg->hier[i].dir, "cgroup.procs", buf, err) < 0)
			return vt_err_prefix(err, "moving pid %d into cgroup %s", (int)pid, cg->path);
	return 0;
}

/* How many threads the calling process has (field 20 of /proc/self/stat); 0 when it cannot be read. */
static long thread_count(void)
{
	char buf[1024];
	cleanup_close int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	char *p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
	long threads = 0;
	if (p && sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %ld",
			&threads) != 1)
		threads = 0;
	return threads;
}

static const struct rt_cg_hier *v2_hier(const struct rt_cgroup *cg)
{
	for (size_t i = 0; i < cg->nhier; i++)
		if (cg->hier[i].v2)
			return &cg->hier[i];
	return NULL;
}

pid_t rt_cgroup_fork(struct rt_cgroup *cg)
{
	const struct rt_cg_hier *h = v2_hier(cg);
	cg->forked_into_v2 = false;
	/* A raw clone3 skips glibc's fork handlers: safe only when no other thread can hold one of its locks. */
	if (h && thread_count() == 1) {
		cleanup_close int dir = open(h->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dir >= 0) {
			struct clone_args a = { .flags = CLONE_INTO_CGROUP, .exit_signal = SIGCHLD,
						.cgroup = (uint64_t)dir };
			cg->forked_into_v2 = true; /* before the call: the child's copy of cg must say so */
			long pid = syscall(SYS_clone3, &a, sizeof(a));
			if (pid >= 0)
				return (pid_t)pid;
			cg->forked_into_v2 = false; /* an older kernel, or a directory it will not take: fork */
		}
	}
	return fork();
}

int rt_cgroup_join_self(const struct rt_cgroup *cg, vt_err *err)
{
	for (size_t i = 0; i < cg->nhier; i++) {
		const struct rt_cg_hier *h = &cg->hier[i];
		if (h->v2 && cg->forked_into_v2)
			continue;
		/* v1 "tasks" with 0 moves only the calling thread, so the kernel skips the global lock; with one
		 * thread that is the whole process. v2 has no such file for a move between domains. */
		if (rt_cg_write(h->dir, h->v2 ? "cgroup.procs" : "tasks", "0", err) < 0)
			return vt_err_prefix(err, "joining cgroup %s", cg->path);
	}
	return 0;
}

static const struct rt_cg_hier *hier_with(const struct rt_cgroup *cg, const char *ctrl)
{
	for (size_t i = 0; i < cg->nhier; i++)
		if (!cg->hier[i].v2 && strstr(cg->hier[i].controllers, ctrl))
			return &cg->hier[i];
	return NULL;
}

/* Where membership is read from: the v2 tree on v2, else a v1 hierarchy every task is in. */
static const struct rt_cg_hier *membership_hier(const struct rt_cgroup *cg)
{
	if (cg->mode == RT_CG_V2)
		return &cg->hier[0];
	const struct rt_cg_hier *h = hier_with(cg, "pids");
	if (!h)
		h = hier_with(cg, "freezer");
	return h ? h : &cg->hier[0];
}

struct pid_list {
	pid_t *v;
	size_t n, cap;
};

static int pid_list_add_text(struct pid_list *l, char *text, vt_err *err)
{
	char *save = NULL;
	for (char *tok = strtok_r(text, "\n", &save); tok; tok = strtok_r(NULL, "\n", &save)) {
		if (l->n == l->cap) {
			size_t cap = l->cap ? l->cap * 2 : 16;
			pid_t *grown = realloc(l->v, cap * sizeof(*grown));
			if (!grown)
				return vt_fail_errno(err, ENOMEM, "listing cgroup pids");
			l->v = grown;
			l->cap = cap;
		}
		l->v[l->n++] = (pid_t)atoi(tok);
	}
	return 0;
}

/* The tasks of dir and of every cgroup the container created below it (a nested systemd, say). */
static int collect_pids(const char *dir, struct pid_list *l, char *buf, size_t cap, int depth, vt_err *err)
{
	if (depth > 32)
		return vt_fail(err, "cgroup %s: nested too deep", dir);
	if (rt_cg_read(dir, "cgroup.procs", buf, cap, err) < 0 || pid_list_add_text(l, buf, err) < 0)
		return -1;
	DIR *d = opendir(dir);
	if (!d)
		return vt_fail_errno(err, errno, "cannot list cgroup %s", dir);
	int rc = 0;
	for (struct dirent *e; rc == 0 && (e = readdir(d));) {
		if (e->d_type != DT_DIR || strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		char sub[4096];
		snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name);
		rc = collect_pids(sub, l, buf, cap, depth + 1, err);
	}
	closedir(d);
	return rc;
}

int rt_cgroup_pids(struct rt_cgroup *cg, pid_t **pids, size_t *n, vt_err *err)
{
	const struct rt_cg_hier *h = membership_hier(cg);
	size_t cap = 1 << 20;
	cleanup_free char *buf = malloc(cap);
	struct pid_list l = { 0 };
	if (!buf)
		return vt_fail_errno(err, ENOMEM, "listing cgroup pids");
	if (collect_pids(h->dir, &l, buf, cap, 0, err) < 0) {
		free(l.v);
		return -1;
	}
	*pids = l.v;
	*n = l.n;
	return 0;
}

int rt_cgroup_freeze(struct rt_cgroup *cg, bool frozen, vt_err *err)
{
	const struct rt_cg_hier *h = hier_with(cg, "freezer");
	if (h)
		return rt_cg_v1_freeze(h->dir, frozen, err);
	for (size_t i = 0; i < cg->nhier; i++) /* v2, or a hybrid without a v1 freezer */
		if (cg->hier[i].v2)
			return rt_cg_v2_freeze(cg->hier[i].dir, frozen, err);
	return vt_fail(err, "cannot %s: the host has neither a v1 freezer nor cgroup v2", frozen ? "pause" : "resume");
}

int rt_cgroup_destroy(struct rt_cgroup *cg, vt_err *err)
{
	int rc = 0;
	vt_err first = { 0 };
	for (size_t i = cg->nhier; i-- > 0;) {
		vt_err e = { 0 };
		if (rt_cg_rmdir_tree(cg->hier[i].dir, &e) < 0 && rc == 0) {
			first = e;
			rc = -1;
		}
	}
	if (rc < 0 && err)
		*err = first;
	return rc;
}

/* "key N" in a flat keyed file such as memory.events; -1 if absent. */
static long long keyed_value(const char *text, const char *key)
{
	size_t len = strlen(key);
	for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (!strncmp(p, key, len) && p[len] == ' ')
			return strtoll(p + len + 1, NULL, 10);
	return -1;
}

static long long file_number(const char *dir, const char *file)
{
	char buf[64];
	if (rt_cg_read(dir, file, buf, sizeof(buf), NULL) < 0 || !strncmp(buf, "max", 3))
		return -1;
	long long v = strtoll(buf, NULL, 10);
	return v >= (1LL << 62) ? -1 : v; /* v1 spells "unlimited" as a huge page-rounded number */
}

int rt_cgroup_oom_info(const struct rt_cgroup *cg, struct rt_cgroup_oom *out)
{
	char buf[1024];
	const struct rt_cg_hier *h = cg ? hier_with(cg, "memory") : NULL;
	bool v2 = cg && cg->mode == RT_CG_V2;
	const char *dir = v2 ? cg->hier[0].dir : h ? h->dir : NULL;
	if (!dir || rt_cg_read(dir, v2 ? "memory.events" : "memory.oom_control", buf, sizeof(buf), NULL) < 0)
		return -1;
	long long kills = keyed_value(buf, "oom_kill");
	out->kills = kills > 0 ? (unsigned long long)kills : 0;
	out->limit = file_number(dir, v2 ? "memory.max" : "memory.limit_in_bytes");
	out->peak = file_number(dir, v2 ? "memory.peak" : "memory.max_usage_in_bytes");
	return 0;
}

int rt_cgroup_views(const struct rt_cgroup *cg, struct rt_cgroup_view **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (!cg || cg->mode == RT_CG_V2)
		return 0;
	*out = calloc(cg->nhier ? cg->nhier : 1, sizeof(**out));
	if (!*out)
		return -1;
	for (size_t i = 0; i < cg->nhier; i++) {
		const char *slash = strrchr(cg->hier[i].mount, '/');
		(*out)[(*n)++] = (struct rt_cgroup_view){ cg->hier[i].dir, slash ? slash + 1 : cg->hier[i].mount,
							 cg->hier[i].controllers };
	}
	return 0;
}

/* ---- persistence ---- */

static const char *mode_name(enum rt_cg_mode m)
{
	return m == RT_CG_V1 ? "v1" : m == RT_CG_V2 ? "v2" : "hybrid";
}

json_object *rt_cgroup_to_json(const struct rt_cgroup *cg)
{
	json_object *j = json_object_new_object(), *arr = json_object_new_array();
	json_object_object_add(j, "mode", json_object_new_string(mode_name(cg->mode)));
	json_object_object_add(j, "path", json_object_new_string(cg->path));
	for (size_t i = 0; i < cg->nhier; i++) {
		json_object *h = json_object_new_object();
		json_object_object_add(h, "dir", json_object_new_string(cg->hier[i].dir));
		json_object_object_add(h, "mount", json_object_new_string(cg->hier[i].mount));
		json_object_object_add(h, "controllers", json_object_new_string(cg->hier[i].controllers));
		json_object_object_add(h, "v2", json_object_new_boolean(cg->hier[i].v2));
		json_object_array_add(arr, h);
	}
	json_object_object_add(j, "hierarchies", arr);
	return j;
}

static int json_str(json_object *o, const char *key, char **out, vt_err *err)
{
	json_object *v;
	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return vt_fail(err, "cgroup state: missing string '%s'", key);
	*out = strdup(json_object_get_string(v));
	return *out ? 0 : vt_fail_errno(err, ENOMEM, "cgroup state");
}

static int hier_from_json(json_object *o, struct rt_cg_hier *h, vt_err *err)
{
	json_object *v2;
	if (!json_object_is_type(o, json_type_object))
		return vt_fail(err, "cgroup state: hierarchy is not an object");
	if (json_str(o, "dir", &h->dir, err) < 0 || json_str(o, "mount", &h->mount, err) < 0 ||
	    json_str(o, "controllers", &h->controllers, err) < 0)
		return -1;
	h->v2 = json_object_object_get_ex(o, "v2", &v2) && json_object_get_boolean(v2);
	return 0;
}

static int mode_from_json(json_object *j, enum rt_cg_mode *mode, vt_err *err)
{
	cleanup_free char *m = NULL;
	if (json_str(j, "mode", &m, err) < 0)
		return -1;
	for (enum rt_cg_mode k = RT_CG_V1; k <= RT_CG_HYBRID; k++)
		if (strcmp(m, mode_name(k)) == 0) {
			*mode = k;
			return 0;
		}
	return vt_fail(err, "cgroup state: unknown mode '%s'", m);
}

int rt_cgroup_from_json(json_object *j, struct rt_cgroup **out, vt_err *err)
{
	json_object *arr;
	if (!j || !json_object_object_get_ex(j, "hierarchies", &arr) || !json_object_is_type(arr, json_type_array) ||
	    json_object_array_length(arr) == 0)
		return vt_fail(err, "cgroup state: missing 'hierarchies'");
	struct rt_cgroup *cg = calloc(1, sizeof(*cg));
	size_t n = json_object_array_length(arr);
	if (!cg || !(cg->hier = calloc(n, sizeof(*cg->hier)))) {
		free(cg);
		return vt_fail_errno(err, ENOMEM, "cgroup state");
	}
	int rc = mode_from_json(j, &cg->mode, err) < 0 || json_str(j, "path", &cg->path, err) < 0 ? -1 : 0;
	for (size_t i = 0; i < n && rc == 0; i++, cg->nhier++)
		rc = hier_from_json(json_object_array_get_idx(arr, i), &cg->hier[i], err);
	if (rc < 0) {
		cg->nhier = n; /* free whatever was filled in, calloc'd NULLs are harmless */
		rt_cgroup_free(cg);
		return -1;
	}
	*out = cg;
	return 0;
}

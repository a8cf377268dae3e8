/* The lifecycle commands after create: start, state, kill, delete, pause/resume, list, ps.
 * Each one works from a fresh process: everything comes from the state directory and /proc. */
#include "runtime/rt.h"

#include "runtime/cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static void state_freep(struct rt_state **st)
{
	rt_state_free(*st);
}
#define cleanup_state __attribute__((cleanup(state_freep)))

static void cgroup_freep(struct rt_cgroup **cg)
{
	rt_cgroup_free(*cg);
}
#define cleanup_cgroup __attribute__((cleanup(cgroup_freep)))

/* Warnings accumulate, one a line: `run` may collect some from start and some from delete. */
static void add_warning(const struct rt_globals *g, const char *id, const char *msg)
{
	if (!g->warning)
		return;
	size_t n = strlen(g->warning->msg);
	snprintf(g->warning->msg + n, sizeof(g->warning->msg) - n, "%scontainer '%s': %s", n ? "\n" : "", id, msg);
}

struct hook_warning {
	const struct rt_globals *g;
	const char *id;
};

static void warn_hook(void *arg, const char *msg)
{
	const struct hook_warning *w = arg;
	add_warning(w->g, w->id, msg);
}

static int wrong_state(const struct rt_state *st, enum rt_status s, const char *cmd, vt_err *err)
{
	return vt_fail(err, "cannot %s container '%s': it is %s", cmd, st->id, rt_status_name(s));
}

static char *oci_state_string(const struct rt_state *st, enum rt_status s)
{
	json_object *o = rt_state_oci_json(st, s);
	char *out = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return out;
}

/* Hooks recorded at create time, of the kinds whose failures are warnings (poststart, poststop): every one
 * runs, each failure is a warning. A broken record is a warning too. */
static void run_recorded_hooks(const struct rt_globals *g, const struct rt_state *st, enum rt_hook_kind kind,
			       enum rt_status s)
{
	struct rt_hooks h;
	vt_err err = { 0 };
	if (!st->hooks)
		return;
	if (rt_spec_parse_hooks(st->hooks, &h, &err)) {
		add_warning(g, st->id, err.msg);
		return;
	}
	cleanup_free char *json = oci_state_string(st, s);
	struct hook_warning w = { g, st->id };
	rt_hooks_run_each(&h, kind, json ? json : "{}", warn_hook, &w);
	rt_hooks_clear(&h);
}

/* Block until init has exec'd the container's program, or died: the fifo's last writer is init's
 * close-on-exec descriptor, so a read returns end-of-file then. */
static void wait_for_exec(const struct rt_state *st, int execed)
{
	for (;;) {
		struct pollfd p = { .fd = execed, .events = POLLIN };
		char b;
		if (poll(&p, 1, 100) < 0 && errno != EINTR)
			return;
		ssize_t n = read(execed, &b, 1);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) || !rt_pid_alive(st->pid, st->start_time))
			return;
	}
}

int rt_cmd_start(const struct rt_globals *g, const char *id, vt_err *err)
{
	cleanup_state struct rt_state *st = NULL;
	if (rt_state_load(g->root, id, &st, err))
		return -1;
	enum rt_status s = rt_state_status(st);
	if (s != RT_CREATED)
		return wrong_state(st, s, "start", err);
	cleanup_free char *fifo = rt_path_join(st->dir, "exec.fifo");
	cleanup_free char *execed_path = rt_path_join(st->dir, RT_EXECED_FIFO);
	cleanup_close int fd = fifo ? open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC) : -1;
	if (fd < 0)
		return vt_fail_errno(err, errno, "container '%s' is not waiting to be started", id);
	/* Opened before the release, while init still holds the write end (a container made by an older
	 * version has no such fifo: then there is nothing to wait for). */
	cleanup_close int execed = execed_path ? open(execed_path, O_RDONLY | O_NONBLOCK | O_CLOEXEC) : -1;
	if (write(fd, "0", 1) != 1)
		return vt_fail_errno(err, errno, "cannot release container '%s'", id);
	/* The spec: start returns once the process runs the user's program; until then a signal could reach
	 * the runtime's code in init (ignored, as init of a pid namespace) instead of the program. */
	if (execed >= 0)
		wait_for_exec(st, execed);
	unlink(fifo);
	if (execed_path)
		unlink(execed_path);
	/* The spec: a failing poststart hook is a warning, the container keeps running. */
	run_recorded_hooks(g, st, RT_HOOK_POSTSTART, RT_RUNNING);
	return 0;
}

int rt_cmd_state(const struct rt_globals *g, const char *id, json_object **out, vt_err *err)
{
	cleanup_state struct rt_state *st = NULL;
	if (rt_state_load(g->root, id, &st, err))
		return -1;
	*out = rt_state_oci_json(st, rt_state_status(st));
	return 0;
}

static int load_cgroup(const struct rt_state *st, struct rt_cgroup **cg, vt_err *err)
{
	*cg = NULL;
	if (!st->cgroup)
		return vt_fail(err, "container '%s' has no cgroup recorded", st->id);
	return rt_cgroup_from_json(st->cgroup, cg, err);
}

static int kill_cgroup(struct rt_cgroup *cg, int sig, vt_err *err)
{
	cleanup_free pid_t *pids = NULL;
	size_t n;
	if (rt_cgroup_pids(cg, &pids, &n, err))
		return -1;
	for (size_t i = 0; i < n; i++)
		kill(pids[i], sig);
	return 0;
}

int rt_cmd_kill(const struct rt_globals *g, const char *id, int sig, bool all, vt_err *err)
{
	cleanup_state struct rt_state *st = NULL;
	if (rt_state_load(g->root, id, &st, err))
		return -1;
	enum rt_status s = rt_state_status(st);
	if (s == RT_STOPPED && !all)
		return vt_fail(err, "cannot kill container '%s': it is not running", id);
	/* The VMM and virtiofsd in a VM container's cgroup are the VM, not processes of the container: only
	 * SIGKILL goes to them all; another signal goes to the shim, which hands it to the container's init. */
	if (all && !(st->vm && sig != SIGKILL)) {
		cleanup_cgroup struct rt_cgroup *cg = NULL;
		if (load_cgroup(st, &cg, err))
			return -1;
		return kill_cgroup(cg, sig, err);
	}
	if (kill(st->pid, sig))
		return vt_fail_errno(err, errno, "cannot send signal %d to container '%s'", sig, id);
	return 0;
}

/* Kill everything in the container and wait until its cgroup can be removed. */
static int destroy(struct rt_state *st, vt_err *err)
{
	cleanup_cgroup struct rt_cgroup *cg = NULL;
	if (st->cgroup && load_cgroup(st, &cg, err))
		return -1;
	if (rt_pid_alive(st->pid, st->start_time))
		kill(st->pid, SIGKILL);
	if (cg && st->paused)
		rt_cgroup_freeze(cg, false, err);
	if (rt_wait_pid_gone(st->pid, st->start_time, 10000))
		return vt_fail(err, "container '%s': init %d did not die after SIGKILL", st->id, st->pid);
	if (!cg)
		return 0;
	vt_err last = { 0 };
	for (int i = 0; i < 200; i++) {
		kill_cgroup(cg, SIGKILL, &last);
		if (!rt_cgroup_destroy(cg, &last))
			return 0;
		usleep(10000);
	}
	return vt_fail(err, "container '%s': cannot remove its cgroup: %s", st->id, last.msg);
}

/* What a VM container's shim leaves when it is killed (its VM's sockets and directories). */
static void release_vm(const struct rt_globals *g, const struct rt_state *st)
{
	vt_err why = { 0 };
	const struct rt_vm_ops *vm = rt_vm_ops(g, "its VM's files are left:", &why);
	if (vm)
		vm->release(st->dir);
	else
		add_warning(g, st->id, why.msg);
}

int rt_cmd_delete(const struct rt_globals *g, const char *id, bool force, vt_err *err)
{
	cleanup_state struct rt_state *st = NULL;
	if (rt_state_load(g->root, id, &st, err)) {
		cleanup_free char *dir = rt_state_dir(g->root, id);
		/* Like runc: forcing the delete of a container that is already gone is not an error. */
		if (force && dir && access(dir, F_OK) && !rt_validate_id(id, NULL))
			return 0;
		/* A state directory without a readable state is debris from a crash: --force clears it. */
		if (force && dir && !rt_validate_id(id, NULL))
			return rt_remove_tree(dir) ? vt_fail_errno(err, errno, "cannot remove %s", dir) : 0;
		return -1;
	}
	enum rt_status s = rt_state_status(st);
	/* The spec: deleting a container that is not stopped MUST fail. A created one too (runc and crun allow
	 * that; podman and containerd either pass --force or kill first). */
	if (s != RT_STOPPED && !force)
		return vt_fail(err, "cannot delete container '%s': it is %s (%s first or use --force)", id,
			       rt_status_name(s), s == RT_CREATED ? "kill it" : "stop it");
	if (destroy(st, err))
		return -1;
	if (st->vm)
		release_vm(g, st);
	rt_rootfs_release_shared(st->shared_rootfs, st->rootfs_mnt_base);
	run_recorded_hooks(g, st, RT_HOOK_POSTSTOP, RT_STOPPED); /* failures are warnings, per the spec */
	if (rt_remove_tree(st->dir))
		return vt_fail_errno(err, errno, "cannot remove %s", st->dir);
	return 0;
}

int rt_cmd_pause(const struct rt_globals *g, const char *id, bool pause, vt_err *err)
{
	cleanup_state struct rt_state *st = NULL;
	cleanup_cgroup struct rt_cgroup *cg = NULL;
	if (rt_state_load(g->root, id, &st, err))
		return -1;
	enum rt_status s = rt_state_status(st);
	if (s != (pause ? RT_RUNNING : RT_PAUSED))
		return wrong_state(st, s, pause ? "pause" : "resume", err);
	if (st->vm) {
		const struct rt_vm_ops *vm = rt_vm_ops(g, "the container runs in a VM, and", err);
		if (!vm || vm->pause(st->dir, pause, err))
			return -1;
	} else if (load_cgroup(st, &cg, err) || rt_cgroup_freeze(cg, pause, err)) {
		return -1;
	}
	st->paused = pause;
	return rt_state_save(st, err);
}

static json_object *list_entry(const struct rt_state *st)
{
	enum rt_status s = rt_state_status(st);
	json_object *o = rt_state_oci_json(st, s);
	struct stat sb;
	struct passwd *pw = !stat(st->dir, &sb) ? getpwuid(sb.st_uid) : NULL;
	json_object_object_add(o, "owner", json_object_new_string(pw ? pw->pw_name : ""));
	return o;
}

static int compare_ids(const void *a, const void *b)
{
	json_object *x = *(json_object *const *)a, *y = *(json_object *const *)b;
	json_object *ix, *iy;
	json_object_object_get_ex(x, "id", &ix);
	json_object_object_get_ex(y, "id", &iy);
	return strcmp(json_object_get_string(ix), json_object_get_string(iy));
}

int rt_cmd_list(const struct rt_globals *g, json_object **out, vt_err *err)
{
	json_object *a = json_object_new_array();
	DIR *d = opendir(g->root);
	if (!d && errno != ENOENT) {
		json_object_put(a);
		return vt_fail_errno(err, errno, "cannot read %s", g->root);
	}
	struct dirent *e;
	while (d && (e = readdir(d))) {
		struct rt_state *st;
		if (e->d_name[0] == '.' || rt_state_load(g->root, e->d_name, &st, NULL))
			continue;
		json_object_array_add(a, list_entry(st));
		rt_state_free(st);
	}
	if (d)
		closedir(d);
	json_object_array_sort(a, compare_ids);
	*out = a;
	return 0;
}

int rt_cmd_ps(const struct rt_globals *g, const char *id, pid_t **pids, size_t *n, vt_err *err)
{
	cleanup_state struct rt_state *st = NULL;
	cleanup_cgroup struct rt_cgroup *cg = NULL;
	if (rt_state_load(g->root, id, &st, err) || load_cgroup(st, &cg, err))
		return -1;
	return rt_cgroup_pids(cg, pids, n, err);
}

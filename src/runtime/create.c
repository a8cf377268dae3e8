/* `create`: build the container and leave its init process waiting for `start`.
 *
 *   runtime ──fork──> intermediate: joins namespaces by path, unshares a user namespace (the runtime
 *   writes its id maps), unshares the rest (pid included), forks ──> init (pid 1 of the new pid ns):
 *   hostname, sysctls, mounts, pivot_root, user/caps/seccomp, then blocks on <state>/exec.fifo.
 *
 * The runtime is a child subreaper, so init becomes its child once the intermediate exits. Any failure
 * kills what was started, removes the cgroup and the state directory: a failed create leaves nothing. */
#include "runtime/rt.h"

#include "runtime/cgroup.h"
#include "runtime/seccomp.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

struct create_ctx {
	const char *id;
	const char *state_dir;
	const struct rt_create_opts *opts;
	struct rt_spec *spec;
	struct rt_seccomp *seccomp;
	struct rt_cgroup *cgroup;
	int sock;          /* our end of the sync pair */
	int child_sock;    /* the children's end */
	int console;       /* connected --console-socket (or our own socketpair end), or -1 */
	int console_peer;  /* own_console: where the pty master arrives, or -1 */
	int fifo;          /* <state>/exec.fifo, opened O_RDWR here: init may not be able to open it itself */
	int execed;        /* <state>/execed.fifo, O_RDWR|O_CLOEXEC: init's execve closes the last writer */
	pid_t intermediate, init;
	char *created;
	bool shared_mount_ns;       /* no 'mount' namespace: our rootfs bind lives in the runtime's namespace */
	const struct rt_vm_ops *vm; /* VM isolation: init is vm->shim */
	uint64_t rootfs_mnt_base;   /* the mount id on the rootfs before we bound it */
};

/* ---------------- child side ---------------- */

static int unshare_flags(const struct rt_spec *s, bool *new_user)
{
	int flags = 0;
	*new_user = false;
	for (size_t i = 0; i < s->n_namespaces; i++) {
		if (s->namespaces[i].path)
			continue;
		if (s->namespaces[i].flag == CLONE_NEWUSER)
			*new_user = true;
		else
			flags |= s->namespaces[i].flag;
	}
	return flags;
}

static int join_paths(const struct rt_spec *s, bool user_pass, vt_err *err)
{
	for (size_t i = 0; i < s->n_namespaces; i++) {
		const struct rt_namespace *ns = &s->namespaces[i];
		if (!ns->path || (ns->flag == CLONE_NEWUSER) != user_pass)
			continue;
		if (rt_join_namespace(ns->path, ns->flag, err))
			return vt_err_prefix(err, "linux.namespaces[%zu]", i);
	}
	return 0;
}

static int become_ns_root(vt_err *err)
{
	if (setresgid(0, 0, 0) || setresuid(0, 0, 0))
		return vt_fail_errno(err, errno, "linux.uidMappings: the container's root (uid/gid 0) must be mapped");
	return 0;
}

static int enter_namespaces(struct create_ctx *c, vt_err *err)
{
	const struct rt_spec *s = c->spec;
	bool new_user;
	int flags = unshare_flags(s, &new_user);
	struct rt_sync_msg m;
	/* First: a namespace joined by path may hide the host's cgroup file system. */
	if (rt_cgroup_join_self(c->cgroup, err) || join_paths(s, true, err) || join_paths(s, false, err))
		return -1;
	if (new_user) {
		if (unshare(CLONE_NEWUSER))
			return vt_fail_errno(err, errno, "cannot create a user namespace");
		if (rt_sync_send(c->child_sock, RT_SYNC_USERNS, 0, NULL) ||
		    rt_sync_expect(c->child_sock, RT_SYNC_USERNS_DONE, &m, err) || become_ns_root(err))
			return -1;
	}
	if (unshare(flags))
		return vt_fail_errno(err, errno, "cannot create namespaces (flags 0x%x)", flags);
	return 0;
}

static int write_sysctl(const struct rt_sysctl *sc, vt_err *err)
{
	char path[512];
	int n = snprintf(path, sizeof(path), "/proc/sys/%s", sc->key);
	if (n < 0 || (size_t)n >= sizeof(path))
		return vt_fail(err, "linux.sysctl: key '%s' is too long", sc->key);
	for (char *p = path + 10; *p; p++)
		if (*p == '.')
			*p = '/';
	cleanup_close int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write_all(fd, sc->value, strlen(sc->value)))
		return vt_fail_errno(err, errno, "linux.sysctl: cannot set %s", sc->key);
	return 0;
}

static int set_identity(const struct rt_spec *s, vt_err *err)
{
	if (s->hostname && sethostname(s->hostname, strlen(s->hostname)))
		return vt_fail_errno(err, errno, "hostname: cannot set '%s'", s->hostname);
	if (s->domainname && setdomainname(s->domainname, strlen(s->domainname)))
		return vt_fail_errno(err, errno, "domainname: cannot set '%s'", s->domainname);
	for (size_t i = 0; i < s->n_sysctls; i++)
		if (write_sysctl(&s->sysctls[i], err))
			return -1;
	if (s->has_personality && personality(s->personality) < 0)
		return vt_fail_errno(err, errno, "linux.personality");
	return 0;
}

static char *state_json_string(const char *id, const char *bundle, pid_t pid, enum rt_status st,
			       json_object *annotations)
{
	struct rt_state s = { .id = (char *)id, .bundle = (char *)bundle, .pid = pid, .annotations = annotations };
	json_object *o = rt_state_oci_json(&s, st);
	char *out = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return out;
}

/* Runs between the mounts and the root switch: the runtime's hooks first, then createContainer. */
static int before_switch(void *arg, vt_err *err)
{
	struct create_ctx *c = arg;
	struct rt_sync_msg m;
	if (rt_sync_send(c->child_sock, RT_SYNC_HOOKS, 0, NULL) ||
	    rt_sync_expect(c->child_sock, RT_SYNC_HOOKS_DONE, &m, err))
		return -1;
	if (!c->spec->hooks.n[RT_HOOK_CREATE_CONTAINER])
		return 0;
	cleanup_free char *json = state_json_string(c->id, c->spec->bundle, m.value, RT_CREATED,
						    c->spec->annotations);
	return rt_hooks_run(&c->spec->hooks, RT_HOOK_CREATE_CONTAINER, json ? json : "{}", err);
}

static int wait_for_start(int fifo, vt_err *err)
{
	char b;
	ssize_t n;
	do
		n = read(fifo, &b, 1);
	while (n < 0 && errno == EINTR);
	if (n != 1)
		return vt_fail_errno(err, errno, "waiting for start");
	return 0;
}

/* Everything init does before it reports ready: identity, file system, terminal, process attributes. */
static int setup_container(struct create_ctx *c, vt_err *err)
{
	const struct rt_spec *s = c->spec;
	struct rt_rootfs_opts ro = {
		.no_pivot = c->opts->no_pivot, .before_switch = before_switch, .arg = c,
		.in_userns = rt_spec_has_namespace(s, CLONE_NEWUSER, NULL), .shared_mount_ns = c->shared_mount_ns,
	};
	cleanup_free struct rt_cgroup_view *views = NULL;
	if (rt_cgroup_views(c->cgroup, &views, &ro.n_cgroup_views))
		return vt_fail_errno(err, ENOMEM, "cgroup views");
	ro.cgroup_views = views;
	if (chdir(s->bundle)) /* relative bind sources are relative to the bundle */
		return vt_fail_errno(err, errno, "cannot enter the bundle %s", s->bundle);
	if (rt_set_oom_score_adj(&s->process, err) || set_identity(s, err) || rt_rootfs_setup(s, &ro, err))
		return -1;
	if (c->console >= 0 && rt_console_setup(c->console, s->process.console_rows, s->process.console_cols, err))
		return -1;
	if (rt_check_executable(&s->process, err) || rt_process_setup(&s->process, c->seccomp, err))
		return -1;
	return 0;
}

static __attribute__((noreturn)) void init_main(struct create_ctx *c)
{
	vt_err err = { 0 };
	struct rt_sync_msg m;
	const struct rt_spec *s = c->spec;
	int fifo = c->fifo;
	if (rt_sync_expect(c->child_sock, RT_SYNC_GO, &m, &err))
		_exit(1);
	if (setup_container(c, &err))
		rt_sync_die(c->child_sock, &err);
	closep(&c->console);
	int keep = 3 + c->opts->preserve_fds;
	syscall(SYS_close_range, keep, ~0U, CLOSE_RANGE_CLOEXEC);
	rt_sync_send(c->child_sock, RT_SYNC_READY, 0, NULL);
	if (wait_for_start(fifo, &err))
		_exit(1);
	close(fifo);
	if (s->hooks.n[RT_HOOK_START_CONTAINER]) {
		cleanup_free char *json = state_json_string(c->id, s->bundle, 1, RT_CREATED, s->annotations);
		if (rt_hooks_run(&s->hooks, RT_HOOK_START_CONTAINER, json ? json : "{}", &err))
			goto fail;
	}
	rt_process_exec(&s->process, &err);
fail:
	/* Nobody is listening on the sync socket any more: stderr is all that is left. */
	dprintf(2, "virtus-runtime: container %s: %s\n", c->id, err.msg);
	_exit(127);
}

static int enter_namespaces_cb(void *ctx, vt_err *err) { return enter_namespaces(ctx, err); }
static void init_main_cb(void *ctx) { init_main(ctx); }

static __attribute__((noreturn)) void intermediate_main(struct create_ctx *c)
{
	close(c->sock);
	rt_sync_middle(c->child_sock, enter_namespaces_cb, init_main_cb, c);
}

/* ---------------- runtime side ---------------- */

static int run_runtime_hooks(struct create_ctx *c, vt_err *err)
{
	const struct rt_hooks *h = &c->spec->hooks;
	if (!h->n[RT_HOOK_PRESTART] && !h->n[RT_HOOK_CREATE_RUNTIME])
		return 0;
	cleanup_free char *json = state_json_string(c->id, c->spec->bundle, c->init, RT_CREATED,
						    c->spec->annotations);
	if (rt_hooks_run(h, RT_HOOK_PRESTART, json ? json : "{}", err) ||
	    rt_hooks_run(h, RT_HOOK_CREATE_RUNTIME, json ? json : "{}", err))
		return -1;
	return 0;
}

/* Drive the children through the protocol until init reports it is ready. */
static int drive_children(struct create_ctx *c, vt_err *err)
{
	struct rt_sync_msg m;
	const struct rt_spec *s = c->spec;
	/* The intermediate joins the cgroup itself (rt_cgroup_join_self) before anything else. */
	if (rt_sync_send(c->sock, RT_SYNC_GO, 0, NULL))
		return vt_fail_errno(err, errno, "container setup: the intermediate process is gone");
	for (;;) {
		if (rt_sync_recv(c->sock, &m, err))
			return -1;
		switch (m.type) {
		case RT_SYNC_USERNS:
			if (rt_write_id_maps(c->intermediate, s->uid_maps, s->n_uid_maps, s->gid_maps, s->n_gid_maps,
					     err))
				return -1;
			rt_sync_send(c->sock, RT_SYNC_USERNS_DONE, 0, NULL);
			break;
		case RT_SYNC_PID:
			c->init = m.value;
			rt_reap(c->intermediate);
			c->intermediate = 0;
			rt_sync_send(c->sock, RT_SYNC_GO, 0, NULL);
			break;
		case RT_SYNC_HOOKS:
			if (run_runtime_hooks(c, err))
				return -1;
			rt_sync_send(c->sock, RT_SYNC_HOOKS_DONE, c->init, NULL);
			break;
		case RT_SYNC_READY:
			return 0;
		case RT_SYNC_ERROR:
			return rt_sync_error(err, &m);
		default:
			return vt_fail(err, "container setup: unexpected message %d", m.type);
		}
	}
}

/* A setup that died because the OOM killer ended a process of the container says so, with the numbers:
 * "exited during setup" alone sends people looking in the wrong place. */
static void explain_oom(const struct create_ctx *c, vt_err *err)
{
	struct rt_cgroup_oom oom;
	if (rt_cgroup_oom_info(c->cgroup, &oom) || !oom.kills)
		return;
	char limit[32] = "no limit", peak[32] = "unknown";
	if (oom.limit >= 0)
		snprintf(limit, sizeof(limit), "%lld bytes", oom.limit);
	if (oom.peak >= 0)
		snprintf(peak, sizeof(peak), "%lld bytes", oom.peak);
	vt_err was = *err;
	vt_fail(err, "the container was killed for lack of memory during setup: the OOM killer ended %llu process(es) "
		"at its cgroup's memory limit (linux.resources.memory.limit: %s; peak usage %s) (%s)", oom.kills, limit,
		peak, was.msg);
}

static int save_state(struct create_ctx *c, vt_err *err)
{
	struct rt_state st = {
		.id = (char *)c->id, .dir = (char *)c->state_dir, .bundle = c->spec->bundle, .pid = c->init,
		.created = c->created, .no_pivot = c->opts->no_pivot, .annotations = c->spec->annotations,
		.shared_rootfs = c->shared_mount_ns ? c->spec->rootfs : NULL, .rootfs_mnt_base = c->rootfs_mnt_base,
		.vm = c->vm != NULL,
	};
	if (rt_proc_start_time(c->init, &st.start_time))
		return vt_fail(err, "the container process %d exited during create", c->init);
	json_object *hooks = NULL;
	json_object_object_get_ex(c->spec->json, "hooks", &hooks);
	st.hooks = hooks;
	st.cgroup = rt_cgroup_to_json(c->cgroup);
	int rc = rt_state_save(&st, err);
	json_object_put(st.cgroup);
	return rc;
}

static void kill_and_reap(pid_t *pid)
{
	if (*pid > 0) {
		kill(*pid, SIGKILL);
		rt_reap(*pid);
		*pid = 0;
	}
}

static void undo_create(struct create_ctx *c)
{
	kill_and_reap(&c->intermediate);
	kill_and_reap(&c->init);
	if (c->shared_mount_ns)
		rt_rootfs_release_shared(c->spec->rootfs, c->rootfs_mnt_base);
	if (c->cgroup) {
		vt_err ignored;
		/* The tasks may take a moment to leave the cgroup after SIGKILL. */
		for (int i = 0; i < 100 && rt_cgroup_destroy(c->cgroup, &ignored); i++)
			usleep(10000);
	}
	if (c->vm)
		c->vm->release(c->state_dir);
	rt_remove_tree(c->state_dir);
}

/* mkdir -p for the state root (--root may name a directory whose parents do not exist yet). */
static int make_dirs(const char *path, vt_err *err)
{
	cleanup_free char *copy = strdup(path);
	if (!copy)
		return vt_fail_errno(err, ENOMEM, "state root");
	for (char *p = copy + 1; ; p++) {
		bool end = !*p;
		if (*p != '/' && !end)
			continue;
		*p = 0;
		if (mkdir(copy, 0711) && errno != EEXIST)
			return vt_fail_errno(err, errno, "cannot create the state root %s", copy);
		if (end)
			return 0;
		*p = '/';
	}
}

/* VM isolation: the code is loaded now; the guest applies seccomp and the namespaces, not the host. */
static int prepare_vm(struct create_ctx *c, const struct rt_globals *g, vt_err *err)
{
	c->vm = rt_vm_ops(g, "annotations: " RT_ANNOTATION_ISOLATION "=vm:", err);
	if (!c->vm)
		return -1;
	for (size_t i = 0; i < c->spec->n_namespaces; i++)
		if (c->spec->namespaces[i].path && c->spec->namespaces[i].flag != CLONE_NEWNET)
			return vt_fail(err, "linux.namespaces[%zu]: a VM-isolated container cannot join the host's "
				       "namespace %s", i, c->spec->namespaces[i].path);
	return 0;
}

static int prepare(struct create_ctx *c, const struct rt_globals *g, vt_err *err)
{
	const struct rt_create_opts *o = c->opts;
	bool vm;
	if (rt_spec_load(o->bundle, &c->spec, err))
		return -1;
	if (c->spec->process.terminal && !o->console_socket && !o->own_console)
		return vt_fail(err, "process.terminal is true: --console-socket is required");
	if (!c->spec->process.terminal && o->console_socket)
		return vt_fail(err, "--console-socket given but process.terminal is false");
	if (rt_spec_isolation_vm(c->spec, &vm, err))
		return -1;
	if (vm)
		return prepare_vm(c, g, err) ?: make_dirs(g->root, err);
	if (c->spec->seccomp && rt_seccomp_prepare(c->spec->seccomp, &c->seccomp, err))
		return -1;
	if (rt_process_check_lsm(&c->spec->process, err))
		return -1;
	c->shared_mount_ns = !rt_spec_has_namespace(c->spec, CLONE_NEWNS, NULL);
	/* Remember what is mounted on the rootfs now, so delete removes only our bind and never the client's. */
	if (c->shared_mount_ns && rt_mount_id(c->spec->rootfs, &c->rootfs_mnt_base))
		return vt_fail_errno(err, errno, "linux.namespaces: without a 'mount' namespace the rootfs bind must be "
				     "tracked, but this kernel cannot report mount ids (statx STATX_MNT_ID)");
	return make_dirs(g->root, err);
}

/* The cgroup of a VM container holds the VMM and virtiofsd. The container's memory limit is the VM's RAM (the
 * guest kernel enforces it; the VMM needs that RAM and its own besides), and its device rules apply in the
 * guest (the VMM needs /dev/kvm and /dev/net/tun): the host's cgroup gets neither. */
static json_object *vm_cgroup_linux(json_object *linux_obj)
{
	json_object *copy = NULL, *res;
	if (linux_obj ? json_object_deep_copy(linux_obj, &copy, NULL) : !(copy = json_object_new_object()))
		return NULL;
	if (!json_object_object_get_ex(copy, "resources", &res)) {
		res = json_object_new_object();
		json_object_object_add(copy, "resources", res);
	}
	json_object_object_del(res, "memory");
	json_object *all = json_object_new_object(), *rules = json_object_new_array();
	json_object_object_add(all, "allow", json_object_new_boolean(true));
	json_object_object_add(all, "access", json_object_new_string("rwm"));
	json_object_array_add(rules, all);
	json_object_object_add(res, "devices", rules);
	return copy;
}

/* VM isolation: init is the shim, in the cgroup before it starts the VM, so that the VMM and virtiofsd it
 * starts are in the container's cgroup too (ps, pause and delete reach them). */
static int start_shim(struct create_ctx *c, vt_err *err)
{
	struct rt_sync_msg m;
	json_object *linux_obj = vm_cgroup_linux(c->spec->linux_obj);
	int rc = rt_cgroup_create(c->id, linux_obj, &c->cgroup, err);
	json_object_put(linux_obj);
	if (rc)
		return -1;
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	c->init = rt_cgroup_fork(c->cgroup);
	if (c->init < 0)
		return vt_fail_errno(err, errno, "fork");
	if (c->init == 0) {
		close(c->sock);
		vt_err jerr = { 0 };
		if (rt_cgroup_join_self(c->cgroup, &jerr))
			rt_sync_die(c->child_sock, &jerr);
		struct rt_vm_shim_args a = { .id = c->id, .state_dir = c->state_dir, .spec = c->spec->json,
					     .rootfs = c->spec->rootfs, .sync = c->child_sock, .start_fifo = c->fifo,
					     .execed = c->execed, .console = c->console };
		c->vm->shim(&a);
		_exit(127);
	}
	closep(&c->child_sock);
	closep(&c->fifo);
	closep(&c->execed);
	/* The shim joined the cgroup itself, first thing; hooks that look at it must not race that join. */
	const struct rt_hooks *h = &c->spec->hooks;
	bool hooks = h->n[RT_HOOK_PRESTART] || h->n[RT_HOOK_CREATE_RUNTIME];
	if ((hooks && rt_cgroup_add_pid(c->cgroup, c->init, err)) || run_runtime_hooks(c, err))
		return -1;
	/* A shim that could not join has sent why and gone: the answer read below is that message. */
	rt_sync_send(c->sock, RT_SYNC_GO, 0, NULL);
	return rt_sync_expect(c->sock, RT_SYNC_READY, &m, err);
}

static int start_children(struct create_ctx *c, vt_err *err)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
		return vt_fail_errno(err, errno, "socketpair");
	c->sock = sv[0];
	c->child_sock = sv[1];
	cleanup_free char *fifo = rt_path_join(c->state_dir, "exec.fifo");
	cleanup_free char *execed = rt_path_join(c->state_dir, RT_EXECED_FIFO);
	if (!fifo || mkfifo(fifo, 0600))
		return vt_fail_errno(err, errno, "cannot create the exec fifo");
	/* `start` waits on this one until init has exec'd (or died): no writer is left once execve closes it. */
	if (!execed || mkfifo(execed, 0600) || (c->execed = open(execed, O_RDWR | O_CLOEXEC)) < 0)
		return vt_fail_errno(err, errno, "cannot create %s", RT_EXECED_FIFO);
	/* O_RDWR: opening never blocks, and `start` writes the byte that lets init go on. */
	c->fifo = open(fifo, O_RDWR | O_CLOEXEC);
	if (c->fifo < 0)
		return vt_fail_errno(err, errno, "cannot open %s", fifo);
	if (c->opts->console_socket && (c->console = rt_console_connect(c->opts->console_socket, err)) < 0)
		return -1;
	if (c->spec->process.terminal && !c->opts->console_socket) {
		int cv[2];
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, cv))
			return vt_fail_errno(err, errno, "console socketpair");
		c->console = cv[1];
		c->console_peer = cv[0];
	}
	if (c->vm)
		return start_shim(c, err);
	if (rt_cgroup_create(c->id, c->spec->linux_obj, &c->cgroup, err))
		return -1;
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	c->intermediate = rt_cgroup_fork(c->cgroup);
	if (c->intermediate < 0)
		return vt_fail_errno(err, errno, "fork");
	if (c->intermediate == 0)
		intermediate_main(c);
	closep(&c->child_sock);
	closep(&c->fifo);
	closep(&c->execed);
	if (drive_children(c, err)) {
		/* The OOM kill may still be on its way: let init's death settle before reading the counters. */
		kill_and_reap(&c->init);
		explain_oom(c, err);
		return -1;
	}
	return 0;
}

static void ctx_free(struct create_ctx *c)
{
	closep(&c->sock);
	closep(&c->child_sock);
	closep(&c->console);
	closep(&c->console_peer);
	closep(&c->fifo);
	closep(&c->execed);
	rt_seccomp_free(c->seccomp);
	rt_cgroup_free(c->cgroup);
	rt_spec_free(c->spec);
	free(c->created);
}

/* Create the container; on success *init_pid is its init process (our child, we are its subreaper). */
static int create_container(const struct rt_globals *g, const char *id, const struct rt_create_opts *o,
			    pid_t *init_pid, int *master, vt_err *err)
{
	if (rt_validate_id(id, err))
		return -1;
	cleanup_free char *dir = rt_state_dir(g->root, id);
	if (!dir)
		return vt_fail_errno(err, ENOMEM, "create");
	struct create_ctx c = { .id = id, .state_dir = dir, .opts = o, .sock = -1, .child_sock = -1, .console = -1,
				  .console_peer = -1, .fifo = -1, .execed = -1 };
	int rc = -1;
	if (prepare(&c, g, err))
		goto out;
	if (mkdir(dir, 0700)) {
		if (errno == EEXIST)
			vt_fail(err, "container '%s' already exists", id);
		else
			vt_fail_errno(err, errno, "cannot create the state directory %s", dir);
		goto out;
	}
	c.created = rt_now_rfc3339();
	if (start_children(&c, err) || save_state(&c, err) || (o->pid_file && rt_write_pid_file(o->pid_file, c.init, err))) {
		undo_create(&c);
		goto out;
	}
	*init_pid = c.init;
	*master = -1;
	/* init sent the master before READY, so it is already queued on our end. */
	if (c.console_peer >= 0 && (*master = rt_console_recv(c.console_peer, err)) < 0) {
		undo_create(&c);
		goto out;
	}
	rc = 0;
out:
	ctx_free(&c);
	return rc;
}

int rt_cmd_create(const struct rt_globals *g, const char *id, const struct rt_create_opts *o, vt_err *err)
{
	pid_t pid;
	int master;
	return create_container(g, id, o, &pid, &master, err);
}

int rt_cmd_create_owned(const struct rt_globals *g, const char *id, const struct rt_create_opts *o, pid_t *init_pid,
			int *master, vt_err *err)
{
	return create_container(g, id, o, init_pid, master, err);
}

int rt_cmd_run(const struct rt_globals *g, const char *id, const struct rt_create_opts *o, int *status,
	       vt_err *err)
{
	pid_t pid;
	struct rt_create_opts own = *o;
	own.own_console = !o->detach;
	cleanup_close int master = -1;
	if (create_container(g, id, &own, &pid, &master, err))
		return -1;
	if (rt_cmd_start(g, id, err)) {
		vt_err ignored;
		rt_cmd_delete(g, id, true, &ignored);
		return -1;
	}
	*status = 0;
	if (o->detach)
		return 0;
	if (master >= 0 ? rt_wait_relaying(pid, master, status) : rt_wait_forwarding(pid, status))
		*status = 255;
	vt_err derr;
	if (o->keep)
		return 0;
	if (rt_cmd_delete(g, id, true, &derr))
		return vt_fail(err, "the container exited with %d, but delete failed: %s", *status, derr.msg);
	return 0;
}

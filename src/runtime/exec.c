/* `exec`: start another process in a running container. The process is described by --process (a
 * process object) or built from the container's own config.json process plus the command-line options.
 *
 *   runtime ──fork──> joiner: setns into the container's namespaces, forks ──> the new process (inside
 *   the pid namespace): root, console, user/caps/seccomp, execve. The sync socket is close-on-exec, so
 *   EOF means execve succeeded and an RT_SYNC_ERROR message carries what went wrong. */
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
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

/* Namespace order: user first (it grants the capabilities the others need), mount last. */
static const int join_order[] = { CLONE_NEWUSER, CLONE_NEWIPC, CLONE_NEWUTS, CLONE_NEWNET,
				  CLONE_NEWPID,  CLONE_NEWCGROUP, CLONE_NEWNS };

struct exec_ctx {
	const struct rt_state *st;
	const struct rt_exec_opts *o;
	struct rt_process proc;
	json_object *process_json;   /* owns proc's strings when --process was given */
	struct rt_spec *spec;        /* the container's config, for defaults and seccomp */
	struct rt_seccomp *seccomp;
	int ns_fds[ARRAY_SIZE(join_order)];
	int root_fd;
	int sock, child_sock, console;
	struct rt_cgroup *cgroup;    /* the container's, which the joiner enters first; NULL: none recorded */
};

static bool same_namespace(pid_t pid, const char *name)
{
	char a[64], b[64];
	struct stat sa, sb;
	snprintf(a, sizeof(a), "/proc/%d/ns/%s", pid, name);
	snprintf(b, sizeof(b), "/proc/self/ns/%s", name);
	return !stat(a, &sa) && !stat(b, &sb) && sa.st_ino == sb.st_ino && sa.st_dev == sb.st_dev;
}

/* Open the namespaces to join now, while /proc/<pid> still names the container's init. */
static int open_namespaces(struct exec_ctx *c, vt_err *err)
{
	for (size_t i = 0; i < ARRAY_SIZE(join_order); i++) {
		const char *name = rt_namespace_proc_name(join_order[i]);
		c->ns_fds[i] = -1;
		if (same_namespace(c->st->pid, name))
			continue;
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/ns/%s", c->st->pid, name);
		c->ns_fds[i] = open(path, O_RDONLY | O_CLOEXEC);
		if (c->ns_fds[i] < 0)
			return vt_fail_errno(err, errno, "cannot open %s", path);
	}
	char root[64];
	snprintf(root, sizeof(root), "/proc/%d/root", c->st->pid);
	c->root_fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (c->root_fd < 0)
		return vt_fail_errno(err, errno, "cannot open %s", root);
	return 0;
}

static int join_namespaces(struct exec_ctx *c, vt_err *err)
{
	/* Before the mount namespace: the host's cgroup file system is where its paths point. */
	if (c->cgroup && rt_cgroup_join_self(c->cgroup, err))
		return -1;
	for (size_t i = 0; i < ARRAY_SIZE(join_order); i++)
		if (c->ns_fds[i] >= 0 && setns(c->ns_fds[i], join_order[i]))
			return vt_fail_errno(err, errno, "cannot join the container's %s namespace",
					     rt_namespace_proc_name(join_order[i]));
	/* With --no-pivot the mount namespace's root is the host's: chroot like the init did. */
	if (fchdir(c->root_fd) || chroot(".") || chdir("/"))
		return vt_fail_errno(err, errno, "cannot enter the container's root");
	return 0;
}

static __attribute__((noreturn)) void exec_child(struct exec_ctx *c)
{
	vt_err err = { 0 };
	struct rt_sync_msg m;
	if (rt_sync_expect(c->child_sock, RT_SYNC_GO, &m, &err))
		_exit(1);
	if (c->console >= 0 && rt_console_setup(c->console, c->proc.console_rows, c->proc.console_cols, &err))
		rt_sync_die(c->child_sock, &err);
	if (c->proc.has_oom_score_adj && rt_set_oom_score_adj(&c->proc, &err))
		rt_sync_die(c->child_sock, &err);
	if (rt_check_executable(&c->proc, &err) || rt_process_setup(&c->proc, c->seccomp, &err))
		rt_sync_die(c->child_sock, &err);
	closep(&c->console);
	syscall(SYS_close_range, 3 + c->o->preserve_fds, ~0U, CLOSE_RANGE_CLOEXEC);
	rt_process_exec(&c->proc, &err);
	rt_sync_die(c->child_sock, &err);
}

static int join_namespaces_cb(void *ctx, vt_err *err) { return join_namespaces(ctx, err); }
static void exec_child_cb(void *ctx) { exec_child(ctx); }

static __attribute__((noreturn)) void joiner_main(struct exec_ctx *c)
{
	close(c->sock);
	rt_sync_middle(c->child_sock, join_namespaces_cb, exec_child_cb, c);
}

static int parse_user(const char *s, struct rt_process *p, vt_err *err)
{
	uint64_t uid, gid;
	cleanup_free char *copy = strdup(s);
	char *colon = copy ? strchr(copy, ':') : NULL;
	if (colon)
		*colon = 0;
	if (!copy || parse_uint(copy, 0, UINT32_MAX - 1, &uid) ||
	    (colon && parse_uint(colon + 1, 0, UINT32_MAX - 1, &gid)))
		return vt_fail(err, "--user '%s': expected UID[:GID] (numbers)", s);
	p->uid = (uid_t)uid;
	p->gid = colon ? (gid_t)gid : p->gid;
	return 0;
}

/* The container's process with args, env, cwd and user replaced from the command line. */
static int process_from_options(struct exec_ctx *c, vt_err *err)
{
	const struct rt_exec_opts *o = c->o;
	if (!o->n_args)
		return vt_fail(err, "exec: give a command or --process FILE");
	json_object *proc = NULL;
	json_object_object_get_ex(c->spec->json, "process", &proc);
	if (rt_spec_parse_process(proc, "process", &c->proc, err))
		return -1;
	free(c->proc.args);
	c->proc.args = calloc(o->n_args + 1, sizeof(char *));
	size_t n_env = 0;
	while (c->proc.env && c->proc.env[n_env])
		n_env++;
	const char **env = calloc(n_env + o->n_env + 1, sizeof(char *));
	if (!c->proc.args || !env) {
		free(env);
		return vt_fail_errno(err, ENOMEM, "exec");
	}
	memcpy(c->proc.args, o->args, o->n_args * sizeof(char *));
	memcpy(env, c->proc.env, n_env * sizeof(char *));
	memcpy(env + n_env, o->env, o->n_env * sizeof(char *));
	free(c->proc.env);
	c->proc.env = env;
	c->proc.terminal = o->tty;
	c->proc.has_oom_score_adj = false;
	if (o->cwd)
		c->proc.cwd = o->cwd;
	if (o->user && parse_user(o->user, &c->proc, err))
		return -1;
	if (o->no_new_privs)
		c->proc.no_new_privileges = true;
	return 0;
}

static int process_from_file(struct exec_ctx *c, vt_err *err)
{
	cleanup_free char *text = NULL;
	size_t len;
	if (read_file(c->o->process_file, 1 * MiB, (void **)&text, &len, err))
		return vt_err_prefix(err, "--process");
	c->process_json = rt_json_parse(text, len);
	if (!c->process_json)
		return vt_fail(err, "--process %s: invalid JSON", c->o->process_file);
	if (rt_spec_parse_process(c->process_json, "process", &c->proc, err))
		return vt_err_prefix(err, "--process %s", c->o->process_file);
	if (c->o->tty)
		c->proc.terminal = true;
	return 0;
}

static int prepare(struct exec_ctx *c, vt_err *err)
{
	if (rt_spec_load(c->st->bundle, &c->spec, err))
		return vt_err_prefix(err, "container '%s': reading its bundle", c->st->id);
	if (c->o->process_file ? process_from_file(c, err) : process_from_options(c, err))
		return -1;
	if (c->o->apparmor)
		c->proc.apparmor_profile = c->o->apparmor;
	if (c->o->process_label)
		c->proc.selinux_label = c->o->process_label;
	if (rt_process_check_lsm(&c->proc, err))
		return vt_err_prefix(err, "exec");
	if (c->proc.terminal && !c->o->console_socket)
		return vt_fail(err, "exec with a terminal needs --console-socket");
	if (c->spec->seccomp && rt_seccomp_prepare(c->spec->seccomp, &c->seccomp, err))
		return -1;
	if (c->o->console_socket && (c->console = rt_console_connect(c->o->console_socket, err)) < 0)
		return -1;
	return open_namespaces(c, err);
}

/* Run the joiner, learn the process's pid, and wait until it has called execve (EOF) or failed. */
static int launch(struct exec_ctx *c, pid_t *pid, vt_err *err)
{
	struct rt_sync_msg m;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
		return vt_fail_errno(err, errno, "socketpair");
	c->sock = sv[0];
	c->child_sock = sv[1];
	if (c->st->cgroup && rt_cgroup_from_json(c->st->cgroup, &c->cgroup, err))
		return -1;
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	pid_t joiner = c->cgroup ? rt_cgroup_fork(c->cgroup) : fork();
	if (joiner < 0)
		return vt_fail_errno(err, errno, "fork");
	if (joiner == 0)
		joiner_main(c);
	close(c->child_sock);
	c->child_sock = -1;
	if (rt_sync_send(c->sock, RT_SYNC_GO, 0, NULL) || rt_sync_expect(c->sock, RT_SYNC_PID, &m, err)) {
		kill(joiner, SIGKILL);
		rt_reap(joiner);
		return -1;
	}
	rt_reap(joiner);
	*pid = m.value;
	rt_sync_send(c->sock, RT_SYNC_GO, 0, NULL);
	vt_err eof;
	if (rt_sync_recv(c->sock, &m, &eof))
		return 0; /* EOF: execve happened */
	rt_reap(*pid);
	return m.type == RT_SYNC_ERROR ? rt_sync_error(err, &m) : vt_fail(err, "exec: unexpected message");
}

static void ctx_free(struct exec_ctx *c)
{
	for (size_t i = 0; i < ARRAY_SIZE(join_order); i++)
		closep(&c->ns_fds[i]);
	closep(&c->root_fd);
	closep(&c->sock);
	closep(&c->child_sock);
	closep(&c->console);
	rt_process_clear(&c->proc);
	json_object_put(c->process_json);
	rt_seccomp_free(c->seccomp);
	rt_cgroup_free(c->cgroup);
	rt_spec_free(c->spec);
}

/* A VM container's process runs in its guest: its shim starts it there and relays its stdio. */
static int exec_in_vm(const struct rt_globals *g, const struct rt_state *st, const struct rt_exec_opts *o,
		      int *status, vt_err *err)
{
	const struct rt_vm_ops *vm = rt_vm_ops(g, "the container runs in a VM, and", err);
	return vm ? vm->exec(st->dir, o, status, err) : -1;
}

int rt_cmd_exec(const struct rt_globals *g, const char *id, const struct rt_exec_opts *o, int *status,
		vt_err *err)
{
	struct rt_state *st = NULL;
	if (rt_state_load(g->root, id, &st, err))
		return -1;
	struct exec_ctx c = { .st = st, .o = o, .root_fd = -1, .sock = -1, .child_sock = -1, .console = -1 };
	for (size_t i = 0; i < ARRAY_SIZE(join_order); i++)
		c.ns_fds[i] = -1;
	int rc = -1;
	pid_t pid = 0;
	enum rt_status s = rt_state_status(st);
	if (s != RT_RUNNING && s != RT_CREATED) {
		vt_fail(err, "cannot exec in container '%s': it is %s", id, rt_status_name(s));
		goto out;
	}
	if (st->vm) {
		rc = exec_in_vm(g, st, o, status, err);
		goto out;
	}
	if (prepare(&c, err) || launch(&c, &pid, err))
		goto out;
	if (o->pid_file && rt_write_pid_file(o->pid_file, pid, err)) {
		kill(pid, SIGKILL);
		goto out;
	}
	rc = 0;
	*status = 0;
	if (!o->detach && rt_wait_forwarding(pid, status))
		*status = 255;
out:
	ctx_free(&c);
	rt_state_free(st);
	return rc;
}

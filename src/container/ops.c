/* Commands on a container that exists: stop, kill, rm, pause/unpause, exec, and the log's path. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "container/ctr_int.h"
#include "container/vm_exec.h"
#include "image/image.h"
#include "lib/util.h"
#include "runtime/rt.h"

/* A container found by reference, with its record; the store stays open while it is used. */
struct found {
	struct ctr_store s;
	char id[CTR_ID_LEN + 1];
	json_object *rec;
	struct rt_globals rt;
};

static void found_clear(struct found *f)
{
	json_object_put(f->rec);
	ctr_store_clear(&f->s);
}

static int find(const char *root, const char *ref, struct found *f, vt_err *err)
{
	*f = (struct found){ 0 };
	if (ctr_store_init(&f->s, root, err))
		return -1;
	f->rt.root = f->s.run;
	if (ctr_lookup(&f->s, ref, f->id, err) || ctr_record_load(&f->s, f->id, &f->rec, err)) {
		found_clear(f);
		return -1;
	}
	return 0;
}

static const char *name_of(const struct found *f)
{
	return ctr_rec_str(f->rec, "Name");
}

static bool is_active(const char *status)
{
	return !strcmp(status, "running") || !strcmp(status, "paused");
}

/* Wait until the monitor has finished its bookkeeping (it exits last). */
static int wait_monitor(const struct found *f, int timeout_ms)
{
	pid_t pid = (pid_t)ctr_rec_int(f->rec, "MonitorPid");
	if (pid <= 0)
		return 0;
	return rt_wait_pid_gone(pid, (unsigned long long)ctr_rec_int(f->rec, "MonitorStartTime"), timeout_ms);
}

static void set_state(json_object *rec, void *arg)
{
	ctr_rec_set_str(rec, "State", arg);
}

/* ---- a VM-isolated container: its VMM (the record's Pid) stands for it; its monitor relays signals ---- */

static bool is_vm(const struct found *f)
{
	return !strcmp(ctr_rec_str(f->rec, "Isolation"), "vm");
}

/* SIGKILL ends the VM (the monitor records 137); any other signal is queued to the monitor, which hands it
 * to the agent for the container's init. */
static int signal_vm(const struct found *f, int sig, vt_err *err)
{
	if (!ctr_monitor_alive(f->rec))
		return vt_fail(err, "container %s: its monitor is gone", name_of(f));
	pid_t vmm = (pid_t)ctr_rec_int(f->rec, "Pid");
	if (sig == SIGKILL || sig == SIGSTOP || sig == SIGCONT)
		return vmm > 0 && !kill(vmm, sig) ? 0 : vt_fail_errno(err, errno, "cannot signal the VM of %s", name_of(f));
	union sigval v = { .sival_int = sig };
	if (sigqueue((pid_t)ctr_rec_int(f->rec, "MonitorPid"), SIGRTMIN, v))
		return vt_fail_errno(err, errno, "cannot signal the monitor of %s", name_of(f));
	return 0;
}

static int signal_container(struct found *f, int sig, bool all, vt_err *err)
{
	if (is_vm(f))
		return signal_vm(f, sig, err);
	return rt_cmd_kill(&f->rt, f->id, sig, all, err);
}

/* Pause: a frozen cgroup, or a stopped VMM (every vCPU with it). */
static int pause_container(struct found *f, bool pause, vt_err *err)
{
	if (is_vm(f))
		return signal_vm(f, pause ? SIGSTOP : SIGCONT, err);
	return rt_cmd_pause(&f->rt, f->id, pause, err);
}

static int thaw(struct found *f, vt_err *err)
{
	if (strcmp(ctr_status(f->rec), "paused"))
		return 0;
	if (pause_container(f, false, err))
		return -1;
	return ctr_record_update(&f->s, f->id, set_state, "running", err);
}

/* SIGKILL to every process of the container, and wait for the monitor to have cleaned up. */
static int kill_all(struct found *f, vt_err *err)
{
	vt_err ignored;
	thaw(f, &ignored); /* a frozen task (cgroup v1) does not die until thawed */
	signal_container(f, SIGKILL, true, &ignored);
	if (wait_monitor(f, 15000))
		return vt_fail(err, "container %s: its monitor did not finish after SIGKILL", name_of(f));
	return 0;
}

static int stop_found(struct found *f, unsigned timeout_s, vt_err *err)
{
	if (!is_active(ctr_status(f->rec)))
		return 0; /* stopping a stopped container is not an error */
	vt_err ignored;
	if (thaw(f, err))
		return -1;
	signal_container(f, SIGTERM, false, &ignored);
	if (!wait_monitor(f, (int)timeout_s * 1000))
		return 0;
	return kill_all(f, err);
}

int ctr_stop(const char *root, const char *ref, unsigned timeout_s, vt_err *err)
{
	struct found f;
	if (find(root, ref, &f, err))
		return -1;
	int rc = stop_found(&f, timeout_s, err);
	found_clear(&f);
	return rc;
}

int ctr_kill(const char *root, const char *ref, int sig, vt_err *err)
{
	struct found f;
	if (find(root, ref, &f, err))
		return -1;
	int rc = 0;
	if (strcmp(ctr_status(f.rec), "running"))
		rc = vt_fail(err, "container %s is %s, not running", name_of(&f), ctr_status(f.rec));
	else if (signal_container(&f, sig, false, err))
		rc = -1;
	found_clear(&f);
	return rc;
}

/* What a monitor that died without cleaning up left: the runtime's container, the network, the mount. */
static void cleanup_leftovers(struct found *f)
{
	vt_err ignored;
	struct ctr_launch l = { .store = &f->s, .id = f->id };
	for (size_t i = 0; i < CNET_MAX_PORTS; i++)
		l.lease.port_fds[i] = -1;
	rt_cmd_delete(&f->rt, f->id, true, &ignored);
	cnet_detach(f->s.root, f->id, &l.lease, &ignored);
	ctr_unmount_rootfs(&f->s, f->id);
	ctr_run_dir_remove(&f->s, f->id);
}

static int remove_found(struct found *f, bool force, vt_err *err)
{
	const char *st = ctr_status(f->rec);
	if (is_active(st) && !force)
		return vt_fail(err, "container %s is %s: stop it first, or use rm -f", name_of(f), st);
	if (is_active(st) && kill_all(f, err))
		return -1;
	cleanup_close int lock = ctr_lock(&f->s, f->id, err);
	if (lock < 0) {
		cleanup_free char *dir = ctr_dir(&f->s, f->id);
		return dir && access(dir, F_OK) ? 0 : -1; /* gone meanwhile: its own --rm removed it */
	}
	cleanup_leftovers(f);
	return ctr_remove_dir(&f->s, f->id, err);
}

int ctr_remove(const char *root, const char *ref, bool force, vt_err *err)
{
	struct found f;
	if (find(root, ref, &f, err))
		return -1;
	int rc = remove_found(&f, force, err);
	found_clear(&f);
	return rc;
}

int ctr_pause(const char *root, const char *ref, bool pause, vt_err *err)
{
	struct found f;
	if (find(root, ref, &f, err))
		return -1;
	const char *want = pause ? "running" : "paused";
	int rc = 0;
	if (strcmp(ctr_status(f.rec), want))
		rc = vt_fail(err, "container %s is %s, not %s", name_of(&f), ctr_status(f.rec), want);
	else if (pause_container(&f, pause, err))
		rc = -1;
	else
		rc = ctr_record_update(&f.s, f.id, set_state, pause ? "paused" : "running", err);
	found_clear(&f);
	return rc;
}

int ctr_log_path(const char *root, const char *ref, char **path, json_object **rec, vt_err *err)
{
	struct found f;
	if (find(root, ref, &f, err))
		return -1;
	*path = ctr_path(&f.s, f.id, "ctr.log");
	*rec = json_object_get(f.rec);
	found_clear(&f);
	return *path ? 0 : vt_fail_errno(err, ENOMEM, "logs");
}

/* ---------------- exec ---------------- */

/* -u NAME: looked up in the running container's own /etc/passwd. */
static int exec_user(const struct found *f, const char *user, char *out, size_t len, vt_err *err)
{
	char root[64];
	snprintf(root, sizeof(root), "/proc/%lld/root", ctr_rec_int(f->rec, "Pid"));
	uid_t uid;
	gid_t gid;
	if (img_resolve_user(root, user, &uid, &gid, err))
		return -1;
	snprintf(out, len, "%u:%u", uid, gid);
	return 0;
}

/* The pty master the runtime sent to our console socket, and the process's pid from its pid file. */
static int relay_exec(int listener, const char *pid_path, int *status, vt_err *err)
{
	cleanup_close int conn = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
	if (conn < 0)
		return vt_fail_errno(err, errno, "console socket");
	cleanup_close int master = rt_console_recv(conn, err);
	cleanup_free char *pid_text = NULL;
	size_t n;
	if (master < 0 || read_file(pid_path, 64, (void **)&pid_text, &n, err))
		return -1;
	struct winsize ws;
	if (!ioctl(0, TIOCGWINSZ, &ws))
		ioctl(master, TIOCSWINSZ, &ws);
	return rt_wait_relaying((pid_t)atoi(pid_text), master, status) ? vt_fail(err, "waiting for the process") : 0;
}

/* With a terminal: the runtime sends the pty master to a socket of ours; we relay it like `run -it`. */
static int exec_tty(struct found *f, struct rt_exec_opts *eo, int *status, vt_err *err)
{
	char dir[] = "/tmp/virtus-exec.XXXXXX";
	if (!mkdtemp(dir))
		return vt_fail_errno(err, errno, "mkdtemp");
	char sock_path[64], pid_path[64];
	snprintf(sock_path, sizeof(sock_path), "%s/console.sock", dir);
	snprintf(pid_path, sizeof(pid_path), "%s/pid", dir);
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", sock_path);
	int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int rc = -1;
	if (ls < 0 || bind(ls, (struct sockaddr *)&addr, sizeof(addr)) || listen(ls, 1)) {
		vt_fail_errno(err, errno, "console socket");
	} else {
		eo->console_socket = sock_path;
		eo->pid_file = pid_path;
		eo->detach = true;
		rc = rt_cmd_exec(&f->rt, f->id, eo, status, err) ? -1 : relay_exec(ls, pid_path, status, err);
	}
	if (ls >= 0)
		close(ls);
	unlink(sock_path);
	unlink(pid_path);
	rmdir(dir);
	return rc;
}

/* The container is in its VM: its monitor runs the process through the agent (vm_exec.h). The user is
 * resolved in the container's root file system, which the host mounts for the VM to share. */
static int exec_in_vm(struct found *f, const struct ctr_exec_opts *o, int *status, vt_err *err)
{
	cleanup_free char *dir = ctr_dir(&f->s, f->id);
	cleanup_free char *rootfs = ctr_rootfs(&f->s, f->id);
	char user[64];
	uid_t uid;
	gid_t gid;
	if (!dir || !rootfs)
		return vt_fail_errno(err, ENOMEM, "exec");
	if (o->user) {
		if (img_resolve_user(rootfs, o->user, &uid, &gid, err))
			return -1;
		snprintf(user, sizeof(user), "%u:%u", uid, gid);
	}
	return vm_exec_run(dir, o, o->user ? user : NULL, status, err);
}

static int exec_found(struct found *f, const struct ctr_exec_opts *o, int *status, vt_err *err)
{
	if (strcmp(ctr_status(f->rec), "running"))
		return vt_fail(err, "container %s is %s: exec needs a running container", name_of(f),
			       ctr_status(f->rec));
	if (is_vm(f))
		return exec_in_vm(f, o, status, err);
	char user[64];
	struct rt_exec_opts eo = {
		.cwd = o->workdir, .env = (const char **)o->env, .n_env = o->n_env, .args = (const char **)o->args,
		.n_args = o->n_args, .tty = o->tty,
	};
	if (o->user) {
		if (exec_user(f, o->user, user, sizeof(user), err))
			return -1;
		eo.user = user;
	}
	if (o->tty)
		return exec_tty(f, &eo, status, err);
	/* Without -i the process reads nothing, as podman does. */
	int saved = -1;
	if (!o->interactive) {
		saved = dup(0);
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
		dup2(null, 0);
		close(null);
	}
	int rc = rt_cmd_exec(&f->rt, f->id, &eo, status, err);
	if (saved >= 0) {
		dup2(saved, 0);
		close(saved);
	}
	return rc;
}

int ctr_exec(const char *root, const char *ref, const struct ctr_exec_opts *o, int *status, vt_err *err)
{
	struct found f;
	*status = CTR_EXIT_ERROR;
	if (find(root, ref, &f, err))
		return -1;
	int rc = exec_found(&f, o, status, err);
	if (rc)
		*status = ctr_error_status(err);
	found_clear(&f);
	return rc;
}

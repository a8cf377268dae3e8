/* VM isolation through the OCI runtime: `virtus-runtime create` on a bundle whose config.json carries the
 * annotation io.virtus.isolation=vm forks this shim as the container's init (runtime/create.c). The runtime
 * keeps the state, the cgroup, the fifos and the hooks as for any container; the shim owns the VM
 * (vm_monitor.h): it boots it on the bundle's rootfs, creates the container in the guest, reports "created",
 * waits for `start`, then relays the container's stdio (the descriptors the runtime's caller gave create, or
 * a pty sent to --console-socket) and forwards the signals it is sent, and exits with the container's status.
 * It stands for the container on the host: the --pid-file pid, what `kill` signals and what conmon or
 * containerd's shim waits for. Its VMM and virtiofsd are in the container's cgroup, so `pause` freezes the VM
 * and `delete` ends it; exec goes to the shim's exec.sock (vm_exec.h). */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "container/ctr_int.h"
#include "container/vm_monitor.h"
#include "lib/util.h"
#include "runtime/rt.h"

struct oci_shim {
	const struct rt_vm_shim_args *a;
	int status;             /* the exit status when the start fails after "created" was reported */
	struct cnet_vm_link link;
};

/* What the shim set up in the caller's network namespace, for delete to undo if the shim was killed. */
static void netns_record(const char *state_dir, char path[PATH_MAX])
{
	snprintf(path, PATH_MAX, "%s/vm-netns", state_dir);
}

/* linux.namespaces' network entry with a path (one the caller made and configured), or NULL. */
static const char *netns_path(json_object *spec)
{
	json_object *linux_, *nss;
	if (!json_object_object_get_ex(spec, "linux", &linux_) || !json_object_object_get_ex(linux_, "namespaces", &nss) ||
	    !json_object_is_type(nss, json_type_array))
		return NULL;
	for (size_t i = 0; i < json_object_array_length(nss); i++) {
		json_object *ns = json_object_array_get_idx(nss, i), *type, *path;
		if (json_object_object_get_ex(ns, "type", &type) && !strcmp(json_object_get_string(type), "network") &&
		    json_object_object_get_ex(ns, "path", &path) && *json_object_get_string(path))
			return json_object_get_string(path);
	}
	return NULL;
}

/* A network namespace of its own (no path) has its loopback only, and so has the VM. One the caller prepared
 * (podman's, with a veth in it) is carried into the guest: the shim enters it, and the guest's NIC takes the
 * place of its link (cnet_vm_netns_attach), with the link's MAC, address and default route. */
static int oci_network(struct vmon *mo, char *spec, size_t len, struct agent_net *n, vt_err *err)
{
	struct oci_shim *sh = mo->owner;
	const char *path = netns_path(sh->a->spec);
	*spec = 0;
	*n = (struct agent_net){ 0 };
	if (!path)
		return 0;
	char record[PATH_MAX];
	netns_record(sh->a->state_dir, record);
	if (cnet_vm_netns_attach(path, record, &sh->link, err) < 0)
		return -1;
	if (!sh->link.tap[0])
		return 0;            /* no link with an address in it: loopback only */
	const uint8_t *m = sh->link.mac;
	snprintf(spec, len, "tap=%s,mac=%02x:%02x:%02x:%02x:%02x:%02x", sh->link.tap, m[0], m[1], m[2], m[3], m[4], m[5]);
	snprintf(n->ifname, sizeof(n->ifname), "eth0");
	n->addr = ntohl(sh->link.addr.s_addr);
	n->prefix = sh->link.prefix;
	n->gateway = ntohl(sh->link.gateway.s_addr);
	return 0;
}

static void oci_release_network(struct vmon *mo)
{
	struct oci_shim *sh = mo->owner;
	char record[PATH_MAX];
	netns_record(sh->a->state_dir, record);
	cnet_vm_netns_detach(&sh->link);
	unlink(record);
}

/* Report "created" to the runtime's create, then wait for `start` (a byte on the exec fifo). A signal meanwhile
 * ends the container as it would a process waiting to exec (128+n); so does the VM's end. */
static int oci_created(struct vmon *mo, vt_err *err)
{
	struct oci_shim *sh = mo->owner;
	if (rt_sync_send(sh->a->sync, RT_SYNC_READY, 0, NULL))
		return vt_fail_errno(err, errno, "cannot report to virtus-runtime create");
	sh->status = 255;
	for (;;) {
		struct pollfd p[3] = { { .fd = sh->a->start_fifo, .events = POLLIN }, { .fd = mo->sfd, .events = POLLIN },
				       { .fd = mo->vmm_pidfd, .events = POLLIN } };
		if (poll(p, 3, -1) < 0 && errno != EINTR)
			return vt_fail_errno(err, errno, "poll");
		char b;
		if (p[0].revents && read(sh->a->start_fifo, &b, 1) == 1)
			return 0;
		struct signalfd_siginfo si;
		while (p[1].revents && read(mo->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
			int sig = si.ssi_signo == (unsigned)SIGRTMIN ? si.ssi_int : (int)si.ssi_signo;
			if (sig != SIGWINCH) {
				sh->status = 128 + sig;
				return vt_fail(err, "signal %d before start", sig);
			}
		}
		if (p[2].revents)
			return vt_fail(err, "the container's VM ended before start");
	}
}

/* The process runs: `start` waits for the execed fifo's last writer to go. */
static int oci_started(struct vmon *mo, vt_err *err)
{
	struct oci_shim *sh = mo->owner;
	(void)err;
	close(sh->a->execed);
	close(sh->a->start_fifo);
	return 0;
}

/* `virtus-runtime pause` pauses the vCPUs through the VMM's API (oci_pause): the agent cannot answer then. */
static bool oci_paused(struct vmon *mo)
{
	return vmbox_paused(&mo->box);
}

static const struct vmon_ops oci_ops = {
	.network = oci_network, .created = oci_created, .started = oci_started, .paused = oci_paused,
	.release = oci_release_network,
};

/* The VM's size from the spec: RAM = linux.resources.memory.limit plus the guest's own overhead (as for
 * `virtus run --memory`), vCPUs = cpu quota / period, rounded up. */
static void vm_size(struct vmon *mo, json_object *spec)
{
	json_object *linux_, *res, *mem, *cpu, *v;
	if (!json_object_object_get_ex(spec, "linux", &linux_) || !json_object_object_get_ex(linux_, "resources", &res))
		return;
	if (json_object_object_get_ex(res, "memory", &mem) && json_object_object_get_ex(mem, "limit", &v) &&
	    json_object_get_int64(v) > 0)
		mo->memory = (uint64_t)json_object_get_int64(v) + VM_RAM_OVERHEAD;
	if (json_object_object_get_ex(res, "cpu", &cpu) && json_object_object_get_ex(cpu, "quota", &v) &&
	    json_object_get_int64(v) > 0) {
		int64_t quota = json_object_get_int64(v), period = 100000;
		if (json_object_object_get_ex(cpu, "period", &v) && json_object_get_int64(v) > 0)
			period = json_object_get_int64(v);
		mo->cpus = (unsigned)((quota + period - 1) / period);
	}
}

/* The VMM is `virtus vm run`: the virtus program installed beside virtus-runtime. */
static int find_vmm(char path[PATH_MAX], vt_err *err)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0)
		return vt_fail_errno(err, errno, "cannot find virtus-runtime's directory");
	self[n] = 0;
	if (snprintf(path, PATH_MAX, "%s/virtus", dirname(self)) >= PATH_MAX || access(path, X_OK))
		return vt_fail(err, "VM isolation needs the virtus program beside virtus-runtime (%s)", path);
	return 0;
}

static bool spec_terminal(json_object *spec)
{
	json_object *process, *t;
	return json_object_object_get_ex(spec, "process", &process) &&
	       json_object_object_get_ex(process, "terminal", &t) && json_object_get_boolean(t);
}

/* A terminal: the pty's master goes to the caller over the console socket, as for any container. */
static int send_master(int console, int master, vt_err *err)
{
	char name[64];
	if (ptsname_r(master, name, sizeof(name)))
		snprintf(name, sizeof(name), "pty");
	return rt_console_send(console, master, name, err);
}

static __attribute__((noreturn)) void oci_shim(const struct rt_vm_shim_args *a)
{
	struct oci_shim sh = { .a = a, .status = CTR_EXIT_ERROR };
	struct vmon mo;
	struct rt_sync_msg m;
	vt_err err = { 0 };
	char vmm[PATH_MAX];
	json_object *spec = NULL;
	int master = -1;
	vmon_init(&mo, &oci_ops, &sh, a->state_dir, a->id);
	if (rt_sync_expect(a->sync, RT_SYNC_GO, &m, &err)) /* (in the cgroup now) */
		_exit(1);
	setsid();
	bool tty = spec_terminal(a->spec);
	vm_size(&mo, a->spec);
	if (find_vmm(vmm, &err) || vmon_prepare(&mo, &err) ||
	    vmon_setup_stdio(&mo, true, tty, true, false, &master, &err) ||
	    (tty && send_master(a->console, master, &err)) ||
	    json_object_deep_copy(a->spec, &spec, NULL) || vmon_guest_spec(&mo, spec, &err) ||
	    vmon_start(&mo, spec, a->rootfs, vmm, &err)) {
		if (!err.msg[0])
			vt_fail(&err, "cannot copy config.json");
		vmon_end(&mo, false);
		if (sh.status != CTR_EXIT_ERROR) /* "created" went out: nobody listens on sync any more */
			_exit(sh.status);
		rt_sync_die(a->sync, &err);
	}
	closep(&master);
	if (a->console >= 0)
		close(a->console);
	close(a->sync);
	vmon_wait(&mo);
	json_object_put(spec);
	vmon_end(&mo, true);
	vmon_drain_output(&mo);
	_exit(mo.status);
}

/* The VM's box is named after the state directory's name, the container's id (vmon_init). */
static void box_name(const char *state_dir, char name[CTR_SHORT_ID_LEN + 1])
{
	char copy[PATH_MAX];
	snprintf(copy, sizeof(copy), "%s", state_dir);
	snprintf(name, CTR_SHORT_ID_LEN + 1, "%.*s", CTR_SHORT_ID_LEN, basename(copy));
}

/* delete after the shim was killed: the VM's directory, and the tap and redirect in the caller's namespace. */
static void oci_release(const char *state_dir)
{
	char name[CTR_SHORT_ID_LEN + 1], record[PATH_MAX];
	box_name(state_dir, name);
	vmbox_forget(name);
	netns_record(state_dir, record);
	cnet_vm_netns_release(record);
}

static int oci_pause(const char *state_dir, bool pause, vt_err *err)
{
	char name[CTR_SHORT_ID_LEN + 1];
	box_name(state_dir, name);
	return vmbox_pause(name, pause, err);
}

/* ---------------- exec ---------------- */

/* The process to run: --process's OCI process object, else the command line's. */
struct oci_exec {
	const char *args[256];
	size_t n_args;
	const char *env[256];
	size_t n_env;
	char user[32];
	const char *cwd;
	bool tty;
	json_object *process;   /* --process's, owning the strings above */
};

static int strings_of(json_object *arr, const char *field, const char **out, size_t max, size_t *n, vt_err *err)
{
	*n = 0;
	if (!arr)
		return 0;
	if (!json_object_is_type(arr, json_type_array) || json_object_array_length(arr) > max)
		return vt_fail(err, "--process: %s must be an array of at most %zu strings", field, max);
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		json_object *s = json_object_array_get_idx(arr, i);
		if (!json_object_is_type(s, json_type_string))
			return vt_fail(err, "--process: %s[%zu] is not a string", field, i);
		out[(*n)++] = json_object_get_string(s);
	}
	return 0;
}

static int from_process_file(struct oci_exec *x, const char *path, vt_err *err)
{
	json_object *v, *user;
	x->process = json_object_from_file(path);
	if (!x->process || !json_object_is_type(x->process, json_type_object))
		return vt_fail(err, "--process %s: not a JSON object", path);
	if (strings_of(json_object_object_get_ex(x->process, "args", &v) ? v : NULL, "args", x->args,
		       ARRAY_SIZE(x->args) - 1, &x->n_args, err) ||
	    strings_of(json_object_object_get_ex(x->process, "env", &v) ? v : NULL, "env", x->env,
		       ARRAY_SIZE(x->env), &x->n_env, err))
		return -1;
	if (json_object_object_get_ex(x->process, "cwd", &v))
		x->cwd = json_object_get_string(v);
	if (json_object_object_get_ex(x->process, "terminal", &v))
		x->tty = json_object_get_boolean(v);
	if (json_object_object_get_ex(x->process, "user", &user)) {
		json_object *uid = NULL, *gid = NULL;
		json_object_object_get_ex(user, "uid", &uid);
		json_object_object_get_ex(user, "gid", &gid);
		snprintf(x->user, sizeof(x->user), "%u:%u", uid ? (unsigned)json_object_get_int64(uid) : 0,
			 gid ? (unsigned)json_object_get_int64(gid) : 0);
	}
	return 0;
}

static int from_options(struct oci_exec *x, const struct rt_exec_opts *o, vt_err *err)
{
	if (o->n_args >= ARRAY_SIZE(x->args) || o->n_env > ARRAY_SIZE(x->env))
		return vt_fail(err, "exec: too many arguments or --env options");
	for (size_t i = 0; i < o->n_args; i++)
		x->args[x->n_args++] = o->args[i];
	for (size_t i = 0; i < o->n_env; i++)
		x->env[x->n_env++] = o->env[i];
	x->cwd = o->cwd;
	x->tty = o->tty;
	if (o->user && snprintf(x->user, sizeof(x->user), "%s", o->user) >= (int)sizeof(x->user))
		return vt_fail(err, "exec --user '%s' is too long", o->user);
	if (o->user && !strchr(x->user, ':'))
		strcat(x->user, ":0");
	return 0;
}

/* --tty: a pty whose master goes to --console-socket; its slave is the process's stdio here. */
static int console_stdio(const char *console_socket, vt_err *err)
{
	cleanup_close int sock = rt_console_connect(console_socket, err);
	if (sock < 0)
		return -1;
	cleanup_close int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master < 0 || grantpt(master) || unlockpt(master))
		return vt_fail_errno(err, errno, "cannot open a pseudo-terminal");
	char name[64];
	if (ptsname_r(master, name, sizeof(name)))
		return vt_fail_errno(err, errno, "ptsname");
	int slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (slave < 0)
		return vt_fail_errno(err, errno, "cannot open %s", name);
	if (rt_console_send(sock, master, name, err)) {
		close(slave);
		return -1;
	}
	for (int i = 0; i < 3; i++)
		dup2(slave, i);
	close(slave);
	return 0;
}

static int oci_exec(const char *state_dir, const struct rt_exec_opts *o, int *status, vt_err *err)
{
	struct oci_exec x = { 0 };
	int rc = -1;
	*status = CTR_EXIT_ERROR;
	if (o->process_file ? from_process_file(&x, o->process_file, err) : from_options(&x, o, err))
		goto out;
	if (!x.n_args) {
		vt_fail(err, "exec: no command to run");
		goto out;
	}
	if (x.tty && o->console_socket && console_stdio(o->console_socket, err))
		goto out;
	struct ctr_exec_opts co = { .args = x.args, .n_args = x.n_args, .env = x.env, .n_env = x.n_env,
				    .workdir = x.cwd, .tty = x.tty, .interactive = true };
	const char *user = x.user[0] ? x.user : NULL;
	/* The client stands for the process on the host (the pid --pid-file gets): --detach runs it apart. */
	pid_t pid = o->detach ? fork() : getpid();
	if (pid < 0) {
		vt_fail_errno(err, errno, "fork");
		goto out;
	}
	if (pid == 0) {
		vt_err ignored;
		int st;
		setsid();
		_exit(vm_exec_run(state_dir, &co, user, &st, &ignored) ? CTR_EXIT_ERROR : st);
	}
	if (o->pid_file && rt_write_pid_file(o->pid_file, pid, err)) {
		if (o->detach)
			kill(pid, SIGKILL);
		goto out;
	}
	rc = o->detach ? (*status = 0) : vm_exec_run(state_dir, &co, user, status, err);
out:
	json_object_put(x.process);
	return rc;
}

static const struct rt_vm_ops ops = {
	.shim = oci_shim, .release = oci_release, .pause = oci_pause, .exec = oci_exec,
};

/* What virtus-runtime looks up (dlsym) when a container asks for VM isolation. */
const struct rt_vm_ops *oci_vm_ops(void);
const struct rt_vm_ops *oci_vm_ops(void)
{
	return &ops;
}

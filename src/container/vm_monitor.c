/* The owner of a VM-isolated container's VM (vm_monitor.h), and the monitor of `virtus run --isolation=vm`:
 * the same job as monitor.c, but the container runs in a microVM of its own. The monitor starts the VM
 * (isolation/vmbox.h: virtiofsd serving the container's rootfs, volumes and /etc files; the VMM booting the
 * agent), hands the agent the container's config.json rewritten for the guest, relays stdio, forwards
 * signals, and records how the container ended. The VMM process stands for the container on the host (the
 * record's Pid). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <termios.h>
#include <unistd.h>

#include "container/vm_monitor.h"
#include "container/ctr_int.h"
#include "lib/util.h"
#include "runtime/rt.h"

#define VM_BOOT_TIMEOUT_MS   120000  /* the nested test bed boots in ~10 s; a real host in well under 1 s */
#define VM_CREATE_TIMEOUT_MS 60000
#define VM_SHUTDOWN_MS       10000
#define AGENT_DEAD_S_DEFAULT 30          /* docs/agent-protocol.md, "Heartbeat" */
#define AGENT_PING_MS_MAX    5000

static const int forwarded[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH };


/* ---------------- the guest's config.json ---------------- */

static bool is_bind(json_object *m)
{
	json_object *type, *opts;
	if (json_object_object_get_ex(m, "type", &type) && !strcmp(json_object_get_string(type), "bind"))
		return true;
	if (!json_object_object_get_ex(m, "options", &opts))
		return false;
	for (size_t i = 0; i < json_object_array_length(opts); i++) {
		const char *o = json_object_get_string(json_object_array_get_idx(opts, i));
		if (o && (!strcmp(o, "bind") || !strcmp(o, "rbind")))
			return true;
	}
	return false;
}

static bool has_option(json_object *m, const char *want)
{
	json_object *opts;
	if (!json_object_object_get_ex(m, "options", &opts))
		return false;
	for (size_t i = 0; i < json_object_array_length(opts); i++) {
		const char *o = json_object_get_string(json_object_array_get_idx(opts, i));
		if (o && !strcmp(o, want))
			return true;
	}
	return false;
}

/* Every bind mount's host source goes into the shared tree as m/N; the guest sees it under the share. */
static int share_binds(struct vmon *mo, json_object *spec, vt_err *err)
{
	json_object *mounts;
	if (!json_object_object_get_ex(spec, "mounts", &mounts))
		return 0;
	for (size_t i = 0; i < json_object_array_length(mounts); i++) {
		json_object *m = json_object_array_get_idx(mounts, i), *src;
		if (!is_bind(m) || !json_object_object_get_ex(m, "source", &src))
			continue;
		if (mo->n_binds == VMBOX_MAX_BINDS)
			return vt_fail(err, "too many bind mounts for a VM (at most %d)", VMBOX_MAX_BINDS - 1);
		struct vmbox_bind *b = &mo->binds[mo->n_binds++];
		b->source = strdup(json_object_get_string(src)); /* the spec's string is replaced below */
		if (!b->source)
			return vt_fail_errno(err, ENOMEM, "mounts");
		b->ro = has_option(m, "ro");
		snprintf(b->target, sizeof(b->target), "m/%zu", i);
		char guest[128];
		snprintf(guest, sizeof(guest), "%s/%s", VMBOX_GUEST_SHARE, b->target);
		json_object_object_add(m, "source", json_object_new_string(guest));
	}
	return 0;
}

/* The VM's network is the container's: no namespace of its own inside the guest. */
static void drop_network_namespace(json_object *spec)
{
	json_object *linux_, *ns;
	if (!json_object_object_get_ex(spec, "linux", &linux_) || !json_object_object_get_ex(linux_, "namespaces", &ns))
		return;
	for (size_t i = json_object_array_length(ns); i-- > 0;) {
		json_object *type;
		if (json_object_object_get_ex(json_object_array_get_idx(ns, i), "type", &type) &&
		    !strcmp(json_object_get_string(type), "network"))
			json_object_array_del_idx(ns, i, 1);
	}
}

int vmon_guest_spec(struct vmon *mo, json_object *spec, vt_err *err)
{
	mo->binds[0] = (struct vmbox_bind){ .source = NULL, .target = "rootfs" };
	mo->n_binds = 1;
	if (share_binds(mo, spec, err))
		return -1;
	json_object *root = json_object_new_object();
	json_object_object_add(root, "path", json_object_new_string(VMBOX_GUEST_SHARE "/rootfs"));
	json_object_object_add(spec, "root", root);
	drop_network_namespace(spec);
	json_object *annotations; /* in the guest it is a container */
	if (json_object_object_get_ex(spec, "annotations", &annotations))
		json_object_object_del(annotations, RT_ANNOTATION_ISOLATION);
	return 0;
}

/* ---------------- network ---------------- */

static int parse_net_addr(const char *addr, const char *gw, unsigned prefix, struct agent_net *n, vt_err *err)
{
	struct in_addr a, g;
	if (inet_pton(AF_INET, addr, &a) != 1 || inet_pton(AF_INET, gw, &g) != 1)
		return vt_fail(err, "container network: bad address %s via %s", addr, gw);
	snprintf(n->ifname, sizeof(n->ifname), "eth0");
	n->addr = ntohl(a.s_addr);
	n->gateway = ntohl(g.s_addr);
	n->prefix = prefix;
	return 0;
}

/* -p for slirp: the VMM's own forwarders (libslirp), to the guest's fixed address. */
static int slirp_spec(const struct cnet_config *c, char *out, size_t len, vt_err *err)
{
	size_t at = (size_t)snprintf(out, len, "user");
	for (size_t i = 0; i < c->n_ports && at < len; i++) {
		const struct cnet_port *p = &c->ports[i];
		at += (size_t)snprintf(out + at, len - at, ",hostfwd=%s:%s%s%u-%s:%u", p->udp ? "udp" : "tcp",
				       p->host_addr, *p->host_addr ? ":" : "0.0.0.0:", p->host_port, CNET_SLIRP_ADDR,
				       p->ctr_port);
	}
	if (at >= len)
		return vt_fail(err, "too many published ports");
	return 0;
}

/* `virtus run`'s network for the VM: the container's --network. */
static int run_network(struct vmon *mo, char *spec, size_t len, struct agent_net *n, vt_err *err)
{
	struct ctr_launch *l = mo->owner;
	*n = (struct agent_net){ 0 };
	*spec = 0;
	switch (l->net.mode) {
	case CNET_NONE:
		return 0;
	case CNET_HOST:
		return vt_fail(err, "--network host cannot be used with --isolation=vm: the VM has its own kernel");
	case CNET_SLIRP:
		cnet_release_ports(&l->lease);
		return slirp_spec(&l->net, spec, len, err) ||
		       parse_net_addr(CNET_SLIRP_ADDR, CNET_SLIRP_GW, 24, n, err);
	case CNET_BRIDGE: {
		char tap[16];
		unsigned prefix;
		if (cnet_attach_tap(l->store->root, l->id, &l->net, &l->lease, tap, &prefix, err))
			return -1;
		snprintf(spec, len, "tap=%s", tap);
		return parse_net_addr(l->lease.addr, l->lease.gateway, prefix, n, err);
	}
	}
	return vt_fail(err, "unknown network mode");
}

/* ---------------- ending ---------------- */

static void teardown(struct vmon *mo)
{
	vm_execs_end(&mo->execs, mo->dir);
	if (mo->agent) {
		agent_close(mo->agent);
		mo->agent = NULL;
	}
	vmbox_stop(&mo->box);
	if (mo->ops->release)
		mo->ops->release(mo);
	if (*mo->share)
		rmdir(mo->share);
	*mo->share = 0;
}

/* ---------------- stdio ---------------- */

static int open_log(struct vmon *mo, vt_err *err)
{
	char path[PATH_MAX + 16];
	snprintf(path, sizeof(path), "%s/ctr.log", mo->dir);
	mo->log = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (mo->log < 0)
		return vt_fail_errno(err, errno, "cannot open the container's log");
	return 0;
}

/* A terminal: a local pty whose master the caller relays (as for a container); its slave is ours, raw (the
 * guest's pty does the line editing), and our controlling terminal, so the caller's resizes reach us as
 * SIGWINCH. */
static int open_local_pty(struct vmon *mo, int *master, vt_err *err)
{
	*master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (*master < 0 || grantpt(*master) || unlockpt(*master))
		return vt_fail_errno(err, errno, "cannot open a pseudo-terminal");
	const char *name = ptsname(*master);
	mo->pty = name ? open(name, O_RDWR | O_CLOEXEC) : -1;
	if (mo->pty < 0)
		return vt_fail_errno(err, errno, "cannot open the pseudo-terminal's slave");
	ioctl(mo->pty, TIOCSCTTY, 0);
	struct termios t;
	if (!tcgetattr(mo->pty, &t)) {
		cfmakeraw(&t);
		tcsetattr(mo->pty, TCSANOW, &t);
	}
	struct winsize ws;
	if (!ioctl(0, TIOCGWINSZ, &ws))
		ioctl(*master, TIOCSWINSZ, &ws);
	return 0;
}

int vmon_setup_stdio(struct vmon *mo, bool attached, bool tty, bool stdin, bool log, int *master, vt_err *err)
{
	*master = -1;
	mo->tty = tty;
	if (log && open_log(mo, err))
		return -1;
	if (!attached) {
		/* the output goes to the log only */
	} else if (tty) {
		if (open_local_pty(mo, master, err))
			return -1;
		mo->in = mo->pty;
		outq_open(&mo->out[0], fcntl(mo->pty, F_DUPFD_CLOEXEC, 3));
	} else {
		outq_open(&mo->out[0], fcntl(1, F_DUPFD_CLOEXEC, 3));
		outq_open(&mo->out[1], fcntl(2, F_DUPFD_CLOEXEC, 3));
		mo->in = stdin ? fcntl(0, F_DUPFD_CLOEXEC, 3) : -1;
	}
	if (mo->in >= 0)
		fcntl(mo->in, F_SETFL, fcntl(mo->in, F_GETFL) | O_NONBLOCK);
	/* Our own stdio no longer goes anywhere: a caller that stops reading must not kill us. */
	signal(SIGPIPE, SIG_IGN);
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		close(null);
	}
	return 0;
}

static size_t queued(const struct vmon *mo)
{
	return mo->out[0].len + mo->out[1].len;
}

/* Init's output: to the log, and to the caller without ever blocking on it (a caller that does not read
 * must not stop the monitor's exec, heartbeat and signal work); past the mark, the agent stops reading init
 * until the caller took most of it, so init waits, as on a full pipe. */
static void output(struct vmon *mo, int stream, const uint8_t *data, size_t len)
{
	vt_err ignored;
	if (mo->log >= 0)
		write_all(mo->log, data, len);
	outq_put(&mo->out[mo->tty ? 0 : stream], data, len);
	if (!mo->held && queued(mo) > VM_EXEC_OUT_HOLD && !agent_send_flow(mo->agent, AGENT_INIT_PROC, true, &ignored))
		mo->held = true;
}

static void flush_output(struct vmon *mo, int stream)
{
	vt_err ignored;
	outq_flush(&mo->out[stream]);
	if (mo->held && queued(mo) <= VM_EXEC_OUT_RESUME && !agent_send_flow(mo->agent, AGENT_INIT_PROC, false, &ignored))
		mo->held = false;
}

/* The container ended: what the caller has not taken yet, for as long as it reads (a signal to the monitor
 * gives up). */
void vmon_drain_output(struct vmon *mo)
{
	while (outq_waiting(&mo->out[0]) || outq_waiting(&mo->out[1])) {
		struct pollfd p[3] = {
			{ .fd = outq_waiting(&mo->out[0]) ? mo->out[0].fd : -1, .events = POLLOUT },
			{ .fd = outq_waiting(&mo->out[1]) ? mo->out[1].fd : -1, .events = POLLOUT },
			{ .fd = mo->sfd, .events = POLLIN },
		};
		if (poll(p, 3, -1) < 0 && errno != EINTR)
			return;
		if (p[2].revents)
			return;
		for (int s = 0; s < 2; s++)
			if (p[s].revents)
				outq_flush(&mo->out[s]);
	}
}

/* ---------------- the agent ---------------- */

/* The last non-empty line of the container's FILE (vmm.log, console.log): what a failed start says. */
static void last_line(const struct vmon *mo, const char *file, char *out, size_t len)
{
	char path[PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/%s", mo->dir, file);
	FILE *f = fopen(path, "re");
	char line[200];
	snprintf(out, len, "(nothing)");
	while (f && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\r\n")] = 0;
		if (*line)
			snprintf(out, len, "%s", line);
	}
	if (f)
		fclose(f);
}

static int vm_ended(const struct vmon *mo, const char *when, vt_err *err)
{
	char vmm[256], console[256]; /* lines are cut at 199 bytes */
	last_line(mo, "vmm.log", vmm, sizeof(vmm));
	last_line(mo, "console.log", console, sizeof(console));
	return vt_fail(err, "the container's VM ended %s; the VMM said: %s; the guest's console: %s", when, vmm, console);
}

static bool vmm_alive(const struct vmon *mo)
{
	struct pollfd p = { .fd = mo->vmm_pidfd, .events = POLLIN };
	return poll(&p, 1, 0) == 0;
}

static int connect_agent(struct vmon *mo, vt_err *err)
{
	uint64_t deadline = now_ns() + (uint64_t)VM_BOOT_TIMEOUT_MS * 1000000ULL;
	for (;;) {
		vt_err why;
		if (!agent_connect_vsock(mo->box.vsock, AGENT_VSOCK_PORT, 1000, &mo->agent, &why))
			return 0;
		if (why.errnum == EPROTO)
			return vt_fail(err, "the container's VM: %s", why.msg);
		if (!vmm_alive(mo))
			return vm_ended(mo, "before its agent answered", err);
		if (now_ns() > deadline)
			return vt_fail(err, "the container's VM did not answer within %d s: %s", VM_BOOT_TIMEOUT_MS / 1000,
				       why.msg);
		usleep(20000);
	}
}

static int flush_agent(struct vmon *mo, vt_err *err)
{
	while (agent_pending(mo->agent)) {
		if (agent_flush(mo->agent, err))
			return -1;
		if (!agent_pending(mo->agent))
			break;
		struct pollfd p = { .fd = agent_fd(mo->agent), .events = POLLOUT };
		if (poll(&p, 1, 1000) < 0 && errno != EINTR)
			return vt_fail_errno(err, errno, "poll");
	}
	return 0;
}

/* The next event from the agent before the deadline; output that arrives meanwhile is relayed. */
static int await(struct vmon *mo, enum agent_event_kind want, int timeout_ms, struct agent_event *ev, vt_err *err)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000ULL;
	for (;;) {
		if (flush_agent(mo, err) || agent_recv(mo->agent, ev, err))
			return -1;
		if (ev->kind == want)
			return 0;
		if (ev->kind == AGENT_EV_ERROR)
			return vt_fail(err, "%s", ev->text);
		if (ev->kind == AGENT_EV_CLOSED)
			return vt_fail(err, "the container's agent closed its connection");
		if (ev->kind == AGENT_EV_STDOUT || ev->kind == AGENT_EV_STDERR)
			output(mo, ev->kind == AGENT_EV_STDERR, ev->data, ev->len);
		if (ev->kind == AGENT_EV_EXIT && want == AGENT_EV_STARTED) {
			mo->exited = true; /* a process that ends at once: started and done */
			mo->status = ev->status;
			return 0;
		}
		if (ev->kind != AGENT_EV_NONE)
			continue;
		int left = (int)(((int64_t)deadline - (int64_t)now_ns()) / 1000000);
		if (left <= 0)
			return vt_fail(err, "the container's agent did not answer within %d s", timeout_ms / 1000);
		struct pollfd p[2] = { { .fd = agent_fd(mo->agent), .events = POLLIN },
				       { .fd = mo->vmm_pidfd, .events = POLLIN } };
		if (poll(p, 2, left) < 0 && errno != EINTR)
			return vt_fail_errno(err, errno, "poll");
		if (p[1].revents && !p[0].revents)
			return vm_ended(mo, "while the container was being created", err);
	}
}

static int create_and_start(struct vmon *mo, json_object *spec, const struct agent_net *net, vt_err *err)
{
	struct agent_event ev;
	struct agent_stdio io = { .tty = mo->tty, .stdin_open = mo->in >= 0, .rows = 24, .cols = 80 };
	struct winsize ws;
	if (mo->pty >= 0 && !ioctl(mo->pty, TIOCGWINSZ, &ws) && ws.ws_row)
		io.rows = ws.ws_row, io.cols = ws.ws_col;
	if (connect_agent(mo, err) || (*net->ifname && agent_send_net(mo->agent, net, err)) ||
	    agent_send_create(mo->agent, spec, &io, err) || await(mo, AGENT_EV_CREATED, VM_CREATE_TIMEOUT_MS, &ev, err) ||
	    (mo->ops->created && mo->ops->created(mo, err)) ||
	    agent_send_start(mo->agent, err) || await(mo, AGENT_EV_STARTED, VM_CREATE_TIMEOUT_MS, &ev, err))
		return -1;
	return mo->ops->started ? mo->ops->started(mo, err) : 0;
}

static int run_started(struct vmon *mo, vt_err *err)
{
	struct ctr_launch *l = mo->owner;
	struct ctr_started s = { .pid = mo->box.vmm, .monitor = getpid(), .addr = l->lease.addr };
	rt_proc_start_time(s.monitor, &s.monitor_start);
	return ctr_record_update(l->store, l->id, ctr_rec_set_running, &s, err);
}

/* ---------------- running ---------------- */

static void on_signal(struct vmon *mo)
{
	struct signalfd_siginfo si;
	vt_err ignored;
	while (read(mo->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		int sig = (int)si.ssi_signo;
		if (sig == SIGWINCH) {
			struct winsize ws;
			if (mo->pty >= 0 && !ioctl(mo->pty, TIOCGWINSZ, &ws))
				agent_send_resize(mo->agent, AGENT_INIT_PROC, ws.ws_row, ws.ws_col, &ignored);
			continue;
		}
		if (sig == SIGRTMIN) /* `virtus kill`: the signal to send is the value queued with it */
			sig = si.ssi_int;
		if (sig > 0 && sig < SIGRTMIN)
			agent_send_signal(mo->agent, AGENT_INIT_PROC, sig, &ignored);
	}
}

static void relay_stdin(struct vmon *mo)
{
	uint8_t buf[16384];
	vt_err ignored;
	ssize_t n = read(mo->in, buf, sizeof(buf));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		if (mo->pty < 0) /* a terminal's reader never sees EOF; a pipe's does */
			agent_send_stdin(mo->agent, AGENT_INIT_PROC, NULL, 0, &ignored);
		mo->in = -1;
		return;
	}
	agent_send_stdin(mo->agent, AGENT_INIT_PROC, buf, (size_t)n, &ignored);
}

/* Events until the agent reports init's end; false when the connection or the VM failed. */
static bool take_events(struct vmon *mo)
{
	struct agent_event ev;
	vt_err err;
	for (;;) {
		if (agent_recv(mo->agent, &ev, &err))
			return false;
		switch (ev.kind) {
		case AGENT_EV_NONE:
			return true;
		case AGENT_EV_STDOUT:
		case AGENT_EV_STDERR:
			if (ev.proc != AGENT_INIT_PROC)
				vm_execs_event(&mo->execs, mo->agent, &ev);
			else
				output(mo, ev.kind == AGENT_EV_STDERR, ev.data, ev.len);
			break;
		case AGENT_EV_EXIT:
			vm_execs_event(&mo->execs, mo->agent, &ev);
			if (ev.proc == AGENT_INIT_PROC) {
				mo->exited = true;
				mo->status = ev.status;
				return true;
			}
			break;
		case AGENT_EV_CLOSED:
			return false;
		default:
			vm_execs_event(&mo->execs, mo->agent, &ev);   /* an exec's start or refusal */
			break;
		}
	}
}

/* How the VM's end reads as the container's status when init's own was never reported: 128+n when the VMM
 * was killed by signal n (kill -9 of it: 137), else 255. The agent's connection can close a moment before the
 * VMM is gone: give it a few seconds, then end it (a guest whose agent stopped answering). */
static int vmm_death_status(struct vmon *mo)
{
	struct pollfd p = { .fd = mo->vmm_pidfd, .events = POLLIN };
	if (poll(&p, 1, VM_SHUTDOWN_MS) == 0)
		kill(mo->box.vmm, SIGKILL), poll(&p, 1, -1);
	siginfo_t si = { 0 };
	if (waitid(P_PID, (id_t)mo->box.vmm, &si, WEXITED | WNOWAIT | WNOHANG) || !si.si_pid)
		return 255;
	return si.si_code == CLD_EXITED ? 255 : 128 + si.si_status;
}

/* `virtus pause` (the VMM stopped, the record says so) or `virtus vm pause` (the vCPUs, through the VM's API):
 * the guest cannot answer, on purpose. A VMM stopped by anyone else is as good as hung. */
static bool run_paused(struct vmon *mo)
{
	struct ctr_launch *l = mo->owner;
	json_object *rec = NULL;
	vt_err ignored;
	bool paused = !ctr_record_load(l->store, l->id, &rec, &ignored) && !strcmp(ctr_status(rec), "paused");
	json_object_put(rec);
	return paused || vmbox_paused(&mo->box);
}

/* Much longer since the last look than the poll's timeout allows: this process did not run (its cgroup was
 * frozen, as `virtus-runtime pause` does to the shim with the VM), so the silence is not the agent's. */
static bool we_were_stopped(struct vmon *mo, unsigned ping_ms)
{
	uint64_t now = now_ns(), last = mo->last_check_ns;
	mo->last_check_ns = now;
	return last && now - last > ((uint64_t)ping_ms + 2000) * 1000000ULL;
}

/* The poll timeout until the heartbeat's next check, or -1 (no timeout); ends the VM when the agent is dead. */
static int check_agent(struct vmon *mo)
{
	if (!mo->agent_dead_ms)
		return -1;
	unsigned ping_ms = mo->agent_dead_ms / 3 < AGENT_PING_MS_MAX ? mo->agent_dead_ms / 3 : AGENT_PING_MS_MAX;
	if (we_were_stopped(mo, ping_ms))
		agent_heartbeat_reset(mo->agent);
	int next = agent_heartbeat(mo->agent, ping_ms ? ping_ms : 1, mo->agent_dead_ms);
	if (next >= 0)
		return next;
	if (mo->ops->paused && mo->ops->paused(mo)) {
		agent_heartbeat_reset(mo->agent);
		return (int)ping_ms;
	}
	char path[PATH_MAX + 16];
	snprintf(path, sizeof(path), "%s/vmm.log", mo->dir);
	int log = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
	if (log >= 0) {
		dprintf(log, "virtus: the container's agent did not answer for %u s: its VM is stopped\n",
			(mo->agent_dead_ms + 999) / 1000);
		close(log);
	}
	kill(mo->box.vmm, SIGKILL);
	mo->exited = true;
	mo->status = 255;
	return -1;
}

static void wait_container(struct vmon *mo)
{
	vt_err ignored;
	while (!mo->exited) {
		struct pollfd p[6 + VM_EXEC_MAX_POLL] = {
			{ .fd = agent_fd(mo->agent), .events = POLLIN | (agent_pending(mo->agent) ? POLLOUT : 0) },
			{ .fd = mo->vmm_pidfd, .events = POLLIN },
			{ .fd = mo->sfd, .events = POLLIN },
			{ .fd = agent_pending(mo->agent) ? -1 : mo->in, .events = POLLIN },
			{ .fd = outq_waiting(&mo->out[0]) ? mo->out[0].fd : -1, .events = POLLOUT },
			{ .fd = outq_waiting(&mo->out[1]) ? mo->out[1].fd : -1, .events = POLLOUT },
		};
		unsigned n = 6 + vm_execs_poll(&mo->execs, p + 6, agent_pending(mo->agent));
		int timeout = check_agent(mo);
		if (mo->exited)
			break;
		if (timeout >= 0 && agent_pending(mo->agent))
			p[0].events |= POLLOUT; /* the ping just queued */
		if (poll(p, n, timeout) < 0 && errno != EINTR)
			break;
		if (p[2].revents)
			on_signal(mo);
		if (p[3].revents)
			relay_stdin(mo);
		for (int s = 0; s < 2; s++)
			if (p[4 + s].revents)
				flush_output(mo, s);
		vm_execs_ready(&mo->execs, mo->agent, p + 6);
		if ((p[0].revents & POLLOUT) && agent_flush(mo->agent, &ignored))
			break;
		if ((p[0].revents & (POLLIN | POLLHUP | POLLERR)) && !take_events(mo))
			break;
		if (p[1].revents && !mo->exited) {
			take_events(mo); /* what the agent said before the VM went */
			break;
		}
	}
	if (!mo->exited)
		mo->status = vmm_death_status(mo);
}

/* The container ended: let the guest power off (its file systems synced), else end it. */
static void shutdown_vm(struct vmon *mo)
{
	vt_err ignored;
	if (vmm_alive(mo) && mo->agent && !agent_send_shutdown(mo->agent, &ignored) && !flush_agent(mo, &ignored)) {
		struct pollfd p = { .fd = mo->vmm_pidfd, .events = POLLIN };
		poll(&p, 1, VM_SHUTDOWN_MS);
	}
}

static int agent_timeout(struct vmon *mo, vt_err *err)
{
	const char *v = getenv("VIRTUS_AGENT_TIMEOUT");
	unsigned long s = AGENT_DEAD_S_DEFAULT;
	char *end = NULL;
	if (v && (errno = 0, s = strtoul(v, &end, 10), !*v || *end || errno || s > 86400))
		return vt_fail(err, "VIRTUS_AGENT_TIMEOUT: '%s' is not a number of seconds (0 to 86400)", v);
	mo->agent_dead_ms = (unsigned)s * 1000;
	return 0;
}

static int block_signals(void)
{
	sigset_t set;
	sigemptyset(&set);
	for (size_t i = 0; i < ARRAY_SIZE(forwarded); i++)
		sigaddset(&set, forwarded[i]);
	sigaddset(&set, SIGRTMIN);
	sigprocmask(SIG_BLOCK, &set, NULL);
	return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

/* ---------------- the owner's entry points ---------------- */

void vmon_init(struct vmon *mo, const struct vmon_ops *ops, void *owner, const char *dir, const char *id)
{
	*mo = (struct vmon){ .ops = ops, .owner = owner, .box = { .vmm = -1, .fsd = -1 }, .vmm_pidfd = -1,
			     .sfd = -1, .log = -1, .out = { OUTQ_NONE, OUTQ_NONE }, .pty = -1, .in = -1,
			     .memory = VM_RAM_DEFAULT, .cpus = 1 };
	snprintf(mo->dir, sizeof(mo->dir), "%s", dir);
	snprintf(mo->name, sizeof(mo->name), "%.*s", CTR_SHORT_ID_LEN, id);
	vm_execs_init(&mo->execs);
}

int vmon_prepare(struct vmon *mo, vt_err *err)
{
	mo->sfd = block_signals();
	if (mo->sfd < 0)
		return vt_fail_errno(err, errno, "signalfd");
	return agent_timeout(mo, err);
}

int vmon_start(struct vmon *mo, json_object *spec, const char *rootfs, const char *vmm, vt_err *err)
{
	char net_spec[2048];
	struct agent_net net;
	json_object *process = NULL;
	if (snprintf(mo->share, sizeof(mo->share), "%s/vm-share", mo->dir) >= (int)sizeof(mo->share)) {
		*mo->share = 0;
		return vt_fail(err, "%s: the path is too long", mo->dir);
	}
	if (mkdir(mo->share, 0700) && errno != EEXIST) {
		vt_fail_errno(err, errno, "cannot create %s", mo->share);
		*mo->share = 0;
		return -1;
	}
	mo->binds[0].source = rootfs;
	if (mo->ops->network(mo, net_spec, sizeof(net_spec), &net, err))
		return -1;
	struct vmbox_config c = { .name = mo->name, .share = mo->share, .binds = mo->binds, .n_binds = mo->n_binds,
				  .log_dir = mo->dir, .cpus = mo->cpus, .memory = mo->memory,
				  .net = *net_spec ? net_spec : NULL, .vmm = vmm };
	if (vmbox_start(&c, &mo->box, err))
		return -1;
	mo->vmm_pidfd = (int)syscall(SYS_pidfd_open, mo->box.vmm, 0);
	if (mo->vmm_pidfd < 0)
		return vt_fail_errno(err, errno, "pidfd_open");
	json_object_object_get_ex(spec, "process", &process);
	return create_and_start(mo, spec, &net, err) || vm_execs_listen(&mo->execs, mo->dir, process, err);
}

void vmon_wait(struct vmon *mo)
{
	wait_container(mo);
}

void vmon_end(struct vmon *mo, bool graceful)
{
	if (graceful)
		shutdown_vm(mo);
	teardown(mo);
}

/* ---------------- `virtus run --isolation=vm` ---------------- */

static void run_release(struct vmon *mo)
{
	struct ctr_launch *l = mo->owner;
	vt_err ignored;
	cnet_detach(l->store->root, l->id, &l->lease, &ignored);
	ctr_unmount_rootfs(l->store, l->id);
	ctr_run_dir_remove(l->store, l->id);
}

static const struct vmon_ops run_ops = {
	.network = run_network, .started = run_started, .paused = run_paused, .release = run_release,
};

static __attribute__((noreturn)) void fail_start(struct vmon *mo, int sock, vt_err *err)
{
	teardown(mo);
	ctr_monitor_send(sock, CTR_MSG_ERROR, ctr_error_status(err), err->msg, -1);
	_exit(CTR_EXIT_ERROR);
}

/* The bundle's config.json as the guest must see it. */
static int load_guest_spec(struct vmon *mo, json_object **out, vt_err *err)
{
	char path[PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/bundle/config.json", mo->dir);
	*out = json_object_from_file(path);
	if (!*out)
		return vt_fail(err, "cannot read the container's config.json");
	return vmon_guest_spec(mo, *out, err);
}

void ctr_vm_monitor_main(struct ctr_launch *l, int sock)
{
	struct vmon mo;
	vt_err err = { 0 };
	json_object *spec = NULL;
	int master = -1;
	cleanup_free char *dir = ctr_dir(l->store, l->id);
	cleanup_free char *rootfs = ctr_rootfs(l->store, l->id);
	vmon_init(&mo, &run_ops, l, dir ? dir : "", l->id);
	if (l->memory)
		mo.memory = l->memory + VM_RAM_OVERHEAD;
	if (l->cpu_quota)
		mo.cpus = (unsigned)((l->cpu_quota + 99999) / 100000);
	setsid();
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	if (!dir || !rootfs)
		vt_fail_errno(&err, ENOMEM, "vm"), fail_start(&mo, sock, &err);
	if (vmon_prepare(&mo, &err) ||
	    vmon_setup_stdio(&mo, !l->detach, l->tty, l->interactive, true, &master, &err) ||
	    load_guest_spec(&mo, &spec, &err) || vmon_start(&mo, spec, rootfs, NULL, &err))
		fail_start(&mo, sock, &err);
	ctr_monitor_send(sock, CTR_MSG_STARTED, mo.box.vmm, NULL, master);
	close(sock);
	if (master >= 0)
		close(master);
	vmon_wait(&mo);
	json_object_put(spec);
	shutdown_vm(&mo);
	if (!l->auto_remove) /* (a --rm container's record goes at once) */
		ctr_record_update(l->store, l->id, ctr_rec_set_exited, &mo.status, &err);
	teardown(&mo);
	if (l->auto_remove)
		ctr_remove_dir(l->store, l->id, &err);
	vmon_drain_output(&mo);
	_exit(mo.status);
}

/* The VMM's seccomp allow-lists, one per thread role (contract in sandbox.h).
 *
 * The lists were derived from the code each thread runs and checked with --seccomp=log against every
 * scenario of tests/nested/suite-job.sh (what glibc really calls: futex, madvise/mmap from malloc,
 * clock_gettime fallbacks, restart_syscall). Everything not listed is refused, including execve, open
 * (except libslirp's read-only resolv.conf), clone (no new processes; new threads only from the main thread,
 * for a disk plugged in while the VM runs), ptrace, mount, and io_uring_setup/register outside the main
 * thread (no new or reconfigured rings where the guest's input is handled).
 *
 * Why SECCOMP_RET_TRAP rather than KILL_PROCESS: the kernel's kill says nothing, and a VMM that vanishes
 * with "Bad system call" leaves the operator guessing which thread wanted what. The trap runs a handler
 * that writes one line (async-signal-safe: precomputed names, write(2)) and re-raises SIGSYS with the
 * default action (SA_RESETHAND), so the process still dies of SIGSYS before the refused call returns. */
#include "vmm/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <linux/filter.h>
#include <linux/if_tun.h>
#include <linux/fs.h>
#include <linux/kvm.h>
#include <linux/seccomp.h>
#include <linux/sockios.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include "lib/util.h"

#define SYSCALL_NAMES 512 /* x86-64 numbers stay below this; others are printed as numbers */

/* ---- The lists ------------------------------------------------------------------------------------ */

/* Every thread: locks, signal return and masks, time, malloc's memory calls, thread and process exit,
 * messages on stderr. mmap/mprotect without PROT_EXEC and tgkill to this process are added below. */
static const char *const common_calls[] = {
	"futex", "rt_sigreturn", "rt_sigprocmask", "restart_syscall", "exit", "exit_group", "getpid", "gettid",
	"clock_gettime", "clock_nanosleep", "nanosleep", "gettimeofday", "sched_yield", "madvise", "munmap",
	"mremap", "brk", "write", "fstat",
	"sigaltstack", /* sanitizer builds set and clear one per thread */
	NULL,
};

/* Positioned I/O on images opened at setup (worker pool, the synchronous engine, a reset draining a disk). */
#define FILE_IO_CALLS "read", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "preadv2", \
	"pwritev2", "fallocate", "fdatasync", "fsync"
/* Calls on sockets (vsock's Unix sockets, libslirp's host sockets). socket() itself is allowed only for
 * AF_UNIX, AF_INET and AF_INET6 (no netlink, no packet sockets). */
#define SOCKET_CALLS "accept", "accept4", "connect", "bind", "listen", "sendto", "recvfrom", "sendmsg", \
	"recvmsg", "shutdown", "setsockopt", "getsockopt", "getsockname", "getpeername", "fcntl"

static const char *const vcpu_calls[] = {
	/* Exits run the port/MMIO handlers: serial output, eventfd signals, the guest's PCI writes setting up
	 * queues (eventfds for ioeventfd/irqfd) and resetting devices (a disk drains its requests). */
	FILE_IO_CALLS, "io_uring_enter", "poll", "ppoll", "eventfd2", "close", "getrandom",
	/* virtio-fs hands its rings to the vhost-user backend at DRIVER_OK and stops them at reset */
	"sendmsg", "recvmsg",
	/* a trapped tx kick runs virtio-net's tx, which sets its interrupt timer (a reset stops it) */
	"timerfd_settime", NULL,
};
static const char *const device_calls[] = {
	"epoll_wait", "epoll_pwait", "epoll_pwait2", "epoll_ctl", FILE_IO_CALLS, "io_uring_enter", "poll", "ppoll",
	"eventfd2", "close", "getrandom", "timerfd_settime", "timerfd_gettime", SOCKET_CALLS, NULL,
};
static const char *const io_worker_calls[] = { FILE_IO_CALLS, NULL };
static const char *const slirp_calls[] = {
	"poll", "ppoll", "read", "readv", "writev", "close", "lseek", "newfstatat", "statx", "getrandom",
	SOCKET_CALLS, NULL,
};
static const char *const main_calls[] = {
	/* control loop (signalfd, stdin, stop eventfd), teardown (closing fds, the vsock socket's path,
	 * libslirp's cleanup closing its sockets) */
	"read", "readv", "writev", "poll", "ppoll", "close", "unlink", "unlinkat", "fcntl", "shutdown",
	"io_uring_enter", "epoll_ctl", "getrandom",
	/* the VM API (libmicrohttpd on its epoll fd) and a detached VM's console socket and log */
	"epoll_wait", "epoll_pwait", "accept", "accept4", "recvfrom", "sendto", "recvmsg", "sendmsg", "setsockopt",
	"getsockopt", "getsockname", "pread64", "pwrite64", "ftruncate",
	/* the VM's directory (its known files by name, then the directory) when the VM ends */
	"rmdir",
	/* a snapshot's files (created new only: see allow_special); its disk checkpoints link each image under
	 * a second name and rename a new overlay over its path (block/checkpoint.c) */
	"fsync", "fdatasync", "fallocate", "linkat", "rename", "renameat", "renameat2",
	/* a migration's connection to its destination (socket: AF_UNIX, AF_INET and AF_INET6 only) */
	"connect",
	/* PATCH /balloon/statistics: the balloon's refresh timer set to its new period */
	"timerfd_settime",
	/* a disk plugged in while the VM runs (PUT /drives/ID): its eventfds, io_uring, and the worker pool's
	 * threads, which confine themselves (prctl, seccomp) to their own role's list on top of this one */
	"eventfd2", "io_uring_setup", "io_uring_register", FILE_IO_CALLS, "set_robust_list", "rseq", "seccomp",
	"flock", "lseek",
	/* a network interface plugged in (PUT /network-interfaces/ID): virtio-net's epoll set of its backend
	 * and its tx interrupt timer */
	"epoll_create1", "timerfd_create",
	"sched_getaffinity", /* AddressSanitizer's pthread_create reads the CPU mask */
	NULL,
};

/* ioctl requests, by role (0 ends a list) */
static const unsigned long vcpu_ioctls[] = {
	KVM_RUN, KVM_IRQ_LINE, KVM_SIGNAL_MSI, KVM_SET_GSI_ROUTING, KVM_IRQFD, KVM_IOEVENTFD,
	KVM_GET_REGS, KVM_GET_SREGS, TUNSETOFFLOAD, 0,
};
static const unsigned long device_ioctls[] = { KVM_IRQ_LINE, KVM_SIGNAL_MSI, TUNSETOFFLOAD, FIONREAD, FIONBIO, 0 };
static const unsigned long slirp_ioctls[] = { FIONREAD, FIONBIO, 0 };
static const unsigned long main_ioctls[] = {
	TCGETS, TCSETS, TCSETSW, TCSETSF, KVM_IRQ_LINE, KVM_SIGNAL_MSI, KVM_IRQFD, KVM_IOEVENTFD,
	KVM_SET_GSI_ROUTING, TUNSETOFFLOAD, FIONREAD,
	/* a snapshot reads the machine's state (vmm/state/) */
	KVM_GET_CLOCK, KVM_GET_PIT2, KVM_GET_IRQCHIP, KVM_GET_REGS, KVM_GET_SREGS, KVM_GET_XSAVE, KVM_GET_XSAVE2,
	KVM_GET_XCRS, KVM_GET_LAPIC, KVM_GET_VCPU_EVENTS, KVM_GET_MP_STATE, KVM_GET_DEBUGREGS, KVM_GET_MSRS,
	KVM_GET_MSR_INDEX_LIST, KVM_CHECK_EXTENSION,
	/* a live migration logs the guest's dirty pages (the slots are set again with the log flag) */
	KVM_SET_USER_MEMORY_REGION, KVM_GET_DIRTY_LOG,
	/* a CD's new disc on a block device: its size (PUT /cdrom/medium) */
	BLKGETSIZE64,
	/* a tap interface plugged in (PUT /network-interfaces/ID): attached and set up as at start; glibc's
	 * if_nametoindex asks a socket whether it exists */
	TUNSETIFF, TUNGETFEATURES, TUNSETVNETHDRSZ, SIOCGIFINDEX, 0,
};

struct role_policy {
	const char *const *calls;
	const unsigned long *ioctls;
	bool inet_sockets;    /* socket() for AF_UNIX, AF_INET, AF_INET6 */
	bool read_only_open;  /* openat() without write/create flags: libslirp reads /etc/resolv.conf */
	bool create_new_open; /* openat() with O_CREAT|O_EXCL only: a snapshot's new files, never an existing one */
	bool existing_open;   /* openat() without O_CREAT or O_TRUNC, and stat: a disk's new image (PATCH /drives) */
	bool new_threads;     /* clone() of threads (not processes), and the prctl calls a thread confining itself makes */
};

static const struct role_policy policies[THREAD_ROLES] = {
	/* The main thread serves the API (a 0600 socket: the VM's owner), never the guest: it may open existing
	 * files, so that a disk can be given a new image while the VM runs. */
	[THREAD_MAIN] = { main_calls, main_ioctls, true, false, true, true, true },
	[THREAD_VCPU] = { vcpu_calls, vcpu_ioctls, false, false },
	/* libslirp's input runs on the device thread: a guest's TCP SYN makes a host socket there */
	[THREAD_DEVICE] = { device_calls, device_ioctls, true, true },
	[THREAD_IO_WORKER] = { io_worker_calls, NULL, false, false },
	[THREAD_SLIRP] = { slirp_calls, slirp_ioctls, true, true },
};

/* ---- Per-process state ----------------------------------------------------------------------------- */

/* Per process, like seccomp itself: the SIGSYS handler has no context pointer, and the threads that apply
 * the filters are started by layers that must not know the VMM (lib/thread_role.h). Written once by
 * sandbox_prepare before any VMM thread exists, read-only afterwards. */
static struct {
	enum sandbox_mode mode;
	struct sock_fprog filter[THREAD_ROLES];
	char *syscall_name[SYSCALL_NAMES];
	int test_violation_role; /* -1: none */
} sandbox = { .mode = SANDBOX_OFF, .test_violation_role = -1 };

int sandbox_parse_mode(const char *s, enum sandbox_mode *mode)
{
	if (!strcmp(s, "on"))
		*mode = SANDBOX_ON;
	else if (!strcmp(s, "off"))
		*mode = SANDBOX_OFF;
	else if (!strcmp(s, "log"))
		*mode = SANDBOX_LOG;
	else
		return -1;
	return 0;
}

/* ---- Building the filters -------------------------------------------------------------------------- */

static int add_rule(scmp_filter_ctx ctx, const char *name, unsigned n, const struct scmp_arg_cmp *cmp, vt_err *err)
{
	int nr = seccomp_syscall_resolve_name(name);
	if (nr == __NR_SCMP_ERROR)
		return vt_fail(err, "sandbox: this libseccomp does not know the system call %s", name);
	int rc = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr, n, cmp);
	if (rc < 0)
		return vt_fail_errno(err, -rc, "sandbox: cannot allow %s", name);
	return 0;
}

static int allow_calls(scmp_filter_ctx ctx, const char *const *names, vt_err *err)
{
	for (; names && *names; names++)
		if (add_rule(ctx, *names, 0, NULL, err) < 0)
			return -1;
	return 0;
}

static int allow_ioctls(scmp_filter_ctx ctx, const unsigned long *req, vt_err *err)
{
	/* the kernel reads the request as 32 bits; compare those only */
	for (; req && *req; req++) {
		struct scmp_arg_cmp cmp = SCMP_A1_64(SCMP_CMP_MASKED_EQ, 0xffffffffUL, *req);
		if (add_rule(ctx, "ioctl", 1, &cmp, err) < 0)
			return -1;
	}
	return 0;
}

/* Memory never becomes executable after setup; signals only to this process's own threads (vCPU kicks,
 * the SIGSYS re-raise); fstat through newfstatat only on an fd (glibc's fstat), not on a path. */
static int allow_common(scmp_filter_ctx ctx, const struct role_policy *p, vt_err *err)
{
	struct scmp_arg_cmp no_exec = SCMP_A2_64(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0);
	struct scmp_arg_cmp own_pid = SCMP_A0_64(SCMP_CMP_EQ, (uint64_t)getpid());
	struct scmp_arg_cmp fd_only = SCMP_A3_64(SCMP_CMP_MASKED_EQ, AT_EMPTY_PATH, AT_EMPTY_PATH);
	if (allow_calls(ctx, common_calls, err) < 0 || add_rule(ctx, "mmap", 1, &no_exec, err) < 0 ||
	    add_rule(ctx, "mprotect", 1, &no_exec, err) < 0 || add_rule(ctx, "tgkill", 1, &own_pid, err) < 0)
		return -1;
	if (p->read_only_open)
		return 0; /* newfstatat is allowed whole there */
	return add_rule(ctx, "newfstatat", 1, &fd_only, err);
}

/* clone() only with CLONE_THREAD (glibc's pthread_create; never a process); clone3 fails with ENOSYS, so that
 * glibc falls back to clone, whose flags a filter can see. prctl only to name a thread and to set no_new_privs
 * (sandbox.c's confine, in each new thread). */
static int allow_new_threads(scmp_filter_ctx ctx, vt_err *err)
{
	struct scmp_arg_cmp thread = SCMP_A0_64(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD);
	struct scmp_arg_cmp name = SCMP_A0_64(SCMP_CMP_EQ, PR_SET_NAME), nnp = SCMP_A0_64(SCMP_CMP_EQ, PR_SET_NO_NEW_PRIVS);
	if (add_rule(ctx, "clone", 1, &thread, err) < 0 || add_rule(ctx, "prctl", 1, &name, err) < 0 ||
	    add_rule(ctx, "prctl", 1, &nnp, err) < 0)
		return -1;
	int rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), seccomp_syscall_resolve_name("clone3"), 0);
	if (rc < 0)
		return vt_fail_errno(err, -rc, "sandbox: cannot refuse clone3");
	return 0;
}

static int allow_special(scmp_filter_ctx ctx, const struct role_policy *p, vt_err *err)
{
	static const int families[] = { AF_UNIX, AF_INET, AF_INET6 };
	for (size_t i = 0; p->inet_sockets && i < ARRAY_SIZE(families); i++) {
		struct scmp_arg_cmp fam = SCMP_A0_64(SCMP_CMP_EQ, (uint64_t)families[i]);
		if (add_rule(ctx, "socket", 1, &fam, err) < 0)
			return -1;
	}
	if (p->create_new_open) {
		struct scmp_arg_cmp excl = SCMP_A2_64(SCMP_CMP_MASKED_EQ, O_CREAT | O_EXCL, O_CREAT | O_EXCL);
		if (add_rule(ctx, "openat", 1, &excl, err) < 0)
			return -1;
	}
	if (p->existing_open) {
		struct scmp_arg_cmp existing = SCMP_A2_64(SCMP_CMP_MASKED_EQ, O_CREAT | O_TRUNC, 0);
		if (add_rule(ctx, "openat", 1, &existing, err) < 0 || add_rule(ctx, "newfstatat", 0, NULL, err) < 0)
			return -1;
	}
	if (p->new_threads && allow_new_threads(ctx, err) < 0)
		return -1;
	if (p->read_only_open) {
		struct scmp_arg_cmp rdonly = SCMP_A2_64(SCMP_CMP_MASKED_EQ, O_ACCMODE | O_CREAT | O_TRUNC | O_APPEND, 0);
		if (add_rule(ctx, "openat", 1, &rdonly, err) < 0 || add_rule(ctx, "newfstatat", 0, NULL, err) < 0)
			return -1;
	}
	return 0;
}

/* libseccomp 2.5 exports BPF only to an fd: a memfd, read back into memory. */
static int export_filter(scmp_filter_ctx ctx, struct sock_fprog *prog, vt_err *err)
{
	cleanup_close int fd = memfd_create("virtus-seccomp", MFD_CLOEXEC);
	if (fd < 0)
		return vt_fail_errno(err, errno, "sandbox: memfd_create");
	int rc = seccomp_export_bpf(ctx, fd);
	if (rc < 0)
		return vt_fail_errno(err, -rc, "sandbox: cannot compile a seccomp filter");
	off_t size = lseek(fd, 0, SEEK_END);
	if (size <= 0 || size % (off_t)sizeof(struct sock_filter) || size / (off_t)sizeof(struct sock_filter) > BPF_MAXINSNS)
		return vt_fail(err, "sandbox: a compiled seccomp filter has an unexpected size (%lld bytes)", (long long)size);
	cleanup_free struct sock_filter *insns = malloc((size_t)size);
	if (!insns)
		return vt_fail_errno(err, ENOMEM, "sandbox: filter");
	if (pread(fd, insns, (size_t)size, 0) != size)
		return vt_fail_errno(err, errno, "sandbox: reading a compiled filter back");
	prog->len = (unsigned short)(size / (off_t)sizeof(struct sock_filter));
	prog->filter = steal_ptr(insns);
	return 0;
}

/* Only the switch to the jail's ids (a no-op once made): see sandbox.h. */
static int allow_id_switch(scmp_filter_ctx ctx, const struct sandbox_ids *ids, vt_err *err)
{
	if (!ids)
		return 0;
	struct scmp_arg_cmp to_uid[] = { SCMP_A0_64(SCMP_CMP_EQ, ids->uid), SCMP_A1_64(SCMP_CMP_EQ, ids->uid),
					 SCMP_A2_64(SCMP_CMP_EQ, ids->uid) };
	struct scmp_arg_cmp to_gid[] = { SCMP_A0_64(SCMP_CMP_EQ, ids->gid), SCMP_A1_64(SCMP_CMP_EQ, ids->gid),
					 SCMP_A2_64(SCMP_CMP_EQ, ids->gid) };
	struct scmp_arg_cmp no_groups = SCMP_A0_64(SCMP_CMP_EQ, 0);
	if (add_rule(ctx, "setresuid", 3, to_uid, err) < 0 || add_rule(ctx, "setresgid", 3, to_gid, err) < 0 ||
	    add_rule(ctx, "setgroups", 1, &no_groups, err) < 0)
		return -1;
	return 0;
}

static int build_filter(enum thread_role role, uint32_t refuse, const struct sandbox_ids *ids,
			struct sock_fprog *prog, vt_err *err)
{
	const struct role_policy *p = &policies[role];
	scmp_filter_ctx ctx = seccomp_init(refuse);
	if (!ctx)
		return vt_fail(err, "sandbox: seccomp_init failed");
	int rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	if (rc < 0)
		rc = vt_fail_errno(err, -rc, "sandbox: seccomp_attr_set");
	else if (allow_common(ctx, p, err) < 0 || allow_calls(ctx, p->calls, err) < 0 ||
		 allow_ioctls(ctx, p->ioctls, err) < 0 || allow_special(ctx, p, err) < 0 ||
		 allow_id_switch(ctx, ids, err) < 0 || export_filter(ctx, prog, err) < 0)
		rc = -1;
	seccomp_release(ctx);
	return rc < 0 ? vt_err_prefix(err, "%s thread", thread_role_name(role)) : 0;
}

/* ---- Reporting a violation ------------------------------------------------------------------------- */

static size_t append(char *buf, size_t n, size_t cap, const char *s)
{
	while (*s && n + 1 < cap)
		buf[n++] = *s++;
	return n;
}

static size_t append_uint(char *buf, size_t n, size_t cap, unsigned long v)
{
	char digits[24];
	size_t d = 0;
	do
		digits[d++] = (char)('0' + v % 10);
	while ((v /= 10) && d < sizeof(digits));
	while (d && n + 1 < cap)
		buf[n++] = digits[--d];
	return n;
}

/* Async-signal-safe: no stdio, no malloc (the thread may have been inside malloc). */
static void report_violation(int sig, siginfo_t *si, void *uc)
{
	(void)sig, (void)uc;
	char buf[320];
	size_t n = 0, cap = sizeof(buf);
	int nr = si->si_syscall;
	const char *name = nr >= 0 && nr < SYSCALL_NAMES ? sandbox.syscall_name[nr] : NULL;
	n = append(buf, n, cap, "virtus: sandbox: the ");
	n = append(buf, n, cap, thread_role_name(thread_role_current()));
	n = append(buf, n, cap, " thread made a forbidden system call: ");
	n = append(buf, n, cap, name ? name : "#");
	n = append(buf, n, cap, " (");
	n = append_uint(buf, n, cap, (unsigned long)(unsigned)nr);
	n = append(buf, n, cap, "); the VMM is stopped (SIGSYS). --seccomp log lets such calls through and "
		   "logs them in the kernel log.\n");
	if (write(STDERR_FILENO, buf, n) < 0) {
		/* nothing left to tell it to */
	}
	/* SA_RESETHAND made SIGSYS's action the default again: it is delivered (and the process dies of it)
	 * as soon as this handler returns, before the refused call's caller runs on. */
	syscall(SYS_tgkill, getpid(), gettid(), SIGSYS);
}

static int install_reporter(vt_err *err)
{
	struct sigaction sa = { .sa_sigaction = report_violation, .sa_flags = SA_SIGINFO | SA_RESETHAND };
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) < 0)
		return vt_fail_errno(err, errno, "sandbox: cannot install the SIGSYS handler");
	return 0;
}

/* The handler cannot ask libseccomp (it allocates): resolve every number once. */
static void load_syscall_names(void)
{
	for (int nr = 0; nr < SYSCALL_NAMES; nr++)
		if (!sandbox.syscall_name[nr])
			sandbox.syscall_name[nr] = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
}

/* ---- Confining threads ----------------------------------------------------------------------------- */

static void name_thread(enum thread_role role)
{
	static const char *const names[THREAD_ROLES] = {
		[THREAD_MAIN] = NULL, [THREAD_VCPU] = "virtus-vcpu", [THREAD_DEVICE] = "virtus-dev",
		[THREAD_IO_WORKER] = "virtus-io", [THREAD_SLIRP] = "virtus-slirp",
	};
	if (names[role]) /* shows in ps, and in the kernel's log of --seccomp log */
		prctl(PR_SET_NAME, names[role], 0, 0, 0);
}

static void provoke_violation(void)
{
	int fd = (int)syscall(SYS_socket, AF_NETLINK, SOCK_RAW, 0);
	if (fd >= 0)
		close(fd);
}

static void confine(enum thread_role role)
{
	name_thread(role);
	if (!sandbox.filter[role].len) {
		fprintf(stderr, "virtus: sandbox: a %s thread started, but no filter was prepared for it\n", thread_role_name(role));
		_exit(1);
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &sandbox.filter[role]) < 0) {
		/* fail closed: this thread must not go on unconfined */
		fprintf(stderr, "virtus: sandbox: cannot confine the %s thread: %s\n", thread_role_name(role), strerror(errno));
		_exit(1);
	}
	if (sandbox.test_violation_role == (int)role)
		provoke_violation();
}

static int test_violation_role(void)
{
	static const char *const keys[THREAD_ROLES] = {
		[THREAD_MAIN] = "main", [THREAD_VCPU] = "vcpu", [THREAD_DEVICE] = "device",
		[THREAD_IO_WORKER] = "io", [THREAD_SLIRP] = "slirp",
	};
	const char *v = getenv(SANDBOX_TEST_ENV);
	for (int r = 0; v && r < THREAD_ROLES; r++)
		if (!strcmp(v, keys[r]))
			return r;
	return -1;
}

int sandbox_prepare(enum sandbox_mode mode, unsigned roles, const struct sandbox_ids *jail_ids, vt_err *err)
{
	if (mode == SANDBOX_OFF)
		return 0;
	if (sandbox.mode != SANDBOX_OFF)
		return vt_fail(err, "sandbox: already prepared in this process");
	uint32_t refuse = mode == SANDBOX_LOG ? SCMP_ACT_LOG : SCMP_ACT_TRAP;
	for (int r = 0; r < THREAD_ROLES; r++)
		if ((roles & SANDBOX_ROLE(r)) && build_filter((enum thread_role)r, refuse, jail_ids, &sandbox.filter[r], err) < 0)
			return -1;
	load_syscall_names();
	if (install_reporter(err) < 0)
		return -1;
	/* glibc gives each new thread an arena of its own; past eight it sizes the limit from the CPU count,
	 * which it reads from /sys (openat) on whichever thread gets there first: a qcow2 disk's I/O worker,
	 * allocating a cluster buffer, was stopped for that. A fixed limit means malloc never opens a file. */
	mallopt(M_ARENA_MAX, 8);
	sandbox.test_violation_role = test_violation_role();
	sandbox.mode = mode;
	thread_role_set_hook(confine);
	return 0;
}

void sandbox_enter_main(void)
{
	thread_role_enter(THREAD_MAIN);
}

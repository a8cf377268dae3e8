/* The VMM's seccomp sandbox (vmm/sandbox.c), without KVM: each thread role's real filter is applied in a
 * forked child; an allowed call must work there and a forbidden one must end the child with SIGSYS and
 * one line naming the call and the thread kind. The child needs no privileges (no_new_privs first). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "block/raw.h"
#include "devices/virtio/net.h"
#include "net/net_opts.h"
#include "lib/thread_role.h"
#include "vmm/eventloop.h"
#include "vmm/sandbox.h"
#include "vmm/vm.h"

struct child_result {
	int status;
	char out[2048];
};

static void say(const char *s)
{
	if (write(STDERR_FILENO, s, strlen(s)) < 0)
		_exit(90);
}

/* Fork; the child sends stderr into a pipe, prepares the sandbox in `mode`, runs body(arg), exits 0. */
static void run_child(enum sandbox_mode mode, void (*body)(void *), void *arg, struct child_result *r)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(p[1], STDERR_FILENO);
		close(p[0]);
		close(p[1]);
		vt_err err;
		if (sandbox_prepare(mode, SANDBOX_ALL_ROLES, NULL, &err) < 0) {
			say(err.msg);
			_exit(91);
		}
		body(arg);
		_exit(0);
	}
	close(p[1]);
	size_t n = 0;
	ssize_t got;
	while ((got = read(p[0], r->out + n, sizeof(r->out) - 1 - n)) > 0)
		n += (size_t)got;
	r->out[n] = '\0';
	close(p[0]);
	assert_int_equal(waitpid(pid, &r->status, 0), pid);
}

static void expect_sigsys(const struct child_result *r, const char *role, const char *call)
{
	char want[160];
	snprintf(want, sizeof(want), "virtus: sandbox: the %s thread made a forbidden system call: %s (", role, call);
	if (!WIFSIGNALED(r->status) || WTERMSIG(r->status) != SIGSYS)
		fail_msg("expected death by SIGSYS, status 0x%x; output: %s", r->status, r->out);
	if (!strstr(r->out, want))
		fail_msg("expected \"%s\" in: %s", want, r->out);
	if (!strstr(r->out, "allowed-ok\n"))
		fail_msg("the allowed calls did not run first: %s", r->out);
}

/* ---- Every role: its own allowed calls work, execve kills ------------------------------------------ */

static void allowed_then_execve(void *arg)
{
	enum thread_role role = *(enum thread_role *)arg;
	thread_role_enter(role);
	void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED || munmap(m, 4096) < 0 || getpid() <= 0)
		_exit(92);
	if (role == THREAD_VCPU && (ioctl(-1, KVM_RUN, 0) != -1 || errno != EBADF))
		_exit(93); /* allowed: reaches the kernel, which finds no such fd */
	if (role == THREAD_DEVICE) {
		int s = socket(AF_INET, SOCK_DGRAM, 0);
		if (s < 0)
			_exit(94);
		close(s);
	}
	say("allowed-ok\n");
	char *argv[] = { "true", NULL };
	execve("/bin/true", argv, NULL);
	_exit(95); /* not reached: the filter traps execve */
}

static void check_role_execve(enum thread_role role)
{
	struct child_result r;
	run_child(SANDBOX_ON, allowed_then_execve, &role, &r);
	expect_sigsys(&r, thread_role_name(role), "execve");
}

static void test_main_execve(void **s) { (void)s; check_role_execve(THREAD_MAIN); }
static void test_vcpu_execve(void **s) { (void)s; check_role_execve(THREAD_VCPU); }
static void test_device_execve(void **s) { (void)s; check_role_execve(THREAD_DEVICE); }
static void test_io_worker_execve(void **s) { (void)s; check_role_execve(THREAD_IO_WORKER); }
static void test_slirp_execve(void **s) { (void)s; check_role_execve(THREAD_SLIRP); }

/* ---- Argument checks ------------------------------------------------------------------------------- */

static void vcpu_socket(void *arg)
{
	(void)arg;
	thread_role_enter(THREAD_VCPU);
	say("allowed-ok\n");
	socket(AF_INET, SOCK_STREAM, 0);
}

static void test_vcpu_socket(void **s)
{
	(void)s;
	struct child_result r;
	run_child(SANDBOX_ON, vcpu_socket, NULL, &r);
	expect_sigsys(&r, "vCPU", "socket");
}

static void vcpu_foreign_ioctl(void *arg)
{
	(void)arg;
	thread_role_enter(THREAD_VCPU);
	say("allowed-ok\n");
	char c = 'x';
	ioctl(STDERR_FILENO, TIOCSTI, &c); /* typing into a terminal: not a vCPU's business */
}

static void test_vcpu_ioctl_by_request(void **s)
{
	(void)s;
	struct child_result r;
	run_child(SANDBOX_ON, vcpu_foreign_ioctl, NULL, &r);
	expect_sigsys(&r, "vCPU", "ioctl");
}

static void device_netlink(void *arg)
{
	(void)arg;
	thread_role_enter(THREAD_DEVICE);
	say("allowed-ok\n");
	socket(AF_NETLINK, SOCK_RAW, 0);
}

static void test_device_socket_family(void **s)
{
	(void)s;
	struct child_result r;
	run_child(SANDBOX_ON, device_netlink, NULL, &r);
	expect_sigsys(&r, "device event loop", "socket");
}

static void worker_exec_mapping(void *arg)
{
	(void)arg;
	thread_role_enter(THREAD_IO_WORKER);
	say("allowed-ok\n");
	mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
}

static void test_no_executable_memory(void **s)
{
	(void)s;
	struct child_result r;
	run_child(SANDBOX_ON, worker_exec_mapping, NULL, &r);
	expect_sigsys(&r, "block I/O worker", "mmap");
}

/* ---- Threads, no_new_privs, the test trigger, log and off modes ------------------------------------ */

struct thread_arg {
	enum thread_role role;
	int ready[2]; /* the thread writes a byte once confined, then waits forever */
};

static void *confined_thread(void *p)
{
	struct thread_arg *a = p;
	thread_role_enter(a->role);
	char c = 1;
	if (write(a->ready[1], &c, 1) != 1)
		_exit(96);
	for (;;)
		poll(NULL, 0, -1); /* never returns: a sanitizer's thread exit may call what the role may not */
}

static int task_status_field(pid_t tid, const char *field)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/self/task/%d/status", (int)tid);
	FILE *f = fopen(path, "r");
	int v = -1;
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, field, strlen(field)))
			v = atoi(line + strlen(field));
	if (f)
		fclose(f);
	return v;
}

/* The unconfined main thread looks at a confined thread: filter mode 2 and no_new_privs. */
static void thread_is_confined(void *arg)
{
	(void)arg;
	struct thread_arg a = { .role = THREAD_DEVICE };
	pthread_t t;
	char c;
	if (pipe(a.ready) < 0 || pthread_create(&t, NULL, confined_thread, &a) || read(a.ready[0], &c, 1) != 1)
		_exit(97);
	/* the thread's tid: the only other task of this process */
	pid_t tid = -1;
	char path[64];
	for (pid_t cand = getpid() + 1; cand < getpid() + 64 && tid < 0; cand++) {
		snprintf(path, sizeof(path), "/proc/self/task/%d", (int)cand);
		if (access(path, F_OK) == 0)
			tid = cand;
	}
	if (tid < 0 || task_status_field(tid, "Seccomp:") != 2 || task_status_field(tid, "NoNewPrivs:") != 1)
		_exit(98);
	if (task_status_field(getpid(), "Seccomp:") != 0)
		_exit(99); /* the main thread is not confined until it says so */
}

static void test_thread_confined_with_no_new_privs(void **s)
{
	(void)s;
	struct child_result r;
	run_child(SANDBOX_ON, thread_is_confined, NULL, &r);
	assert_true(WIFEXITED(r.status));
	assert_int_equal(WEXITSTATUS(r.status), 0);
}

/* VIRTUS_SANDBOX_TEST_VIOLATION=device: the device thread dies right after confining itself. */
static void device_thread_with_trigger(void *arg)
{
	(void)arg;
	say("allowed-ok\n");
	struct thread_arg a = { .role = THREAD_DEVICE };
	pthread_t t;
	char c;
	if (pipe(a.ready) < 0 || pthread_create(&t, NULL, confined_thread, &a))
		_exit(100);
	if (read(a.ready[0], &c, 1) == 1)
		_exit(101); /* it should have died before saying it was ready */
}

static void test_env_trigger_kills_from_device_thread(void **s)
{
	(void)s;
	struct child_result r;
	setenv(SANDBOX_TEST_ENV, "device", 1);
	run_child(SANDBOX_ON, device_thread_with_trigger, NULL, &r);
	unsetenv(SANDBOX_TEST_ENV);
	expect_sigsys(&r, "device event loop", "socket");
}

/* A disk plugged into a running VM starts its worker pool from the confined main thread: the new thread
 * confines itself as an I/O worker and does its job; the main thread still cannot start a process. */
static void *worker_reads(void *p)
{
	int *fds = p;
	thread_role_enter(THREAD_IO_WORKER);
	char c;
	return pread(fds[0], &c, 1, 0) == 1 && c == 'w' ? p : NULL;
}

static void main_starts_a_worker(void *arg)
{
	(void)arg;
	char path[] = "/tmp/virtus-sandbox-XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0 || write(fd, "w", 1) != 1)
		_exit(103);
	unlink(path);
	thread_role_enter(THREAD_MAIN);
	pthread_t t;
	void *ret = NULL;
	int fds[1] = { fd };
	if (pthread_create(&t, NULL, worker_reads, fds) || pthread_join(t, &ret) || ret != fds)
		_exit(104);
	if (task_status_field(getpid(), "Seccomp:") != 2)
		_exit(105);
	say("allowed-ok\n");
	if (fork() == 0)
		_exit(0);
	_exit(106); /* not reached: clone without CLONE_THREAD is trapped */
}

static void test_main_starts_threads_not_processes(void **s)
{
	(void)s;
	struct child_result r;
	run_child(SANDBOX_ON, main_starts_a_worker, NULL, &r);
	expect_sigsys(&r, "main", "clone");
}

/* A network interface plugged into a running VM is built by the confined main thread: a new tap attached
 * and set up, virtio-net's eventfd and epoll set; then torn down again (the tap goes with its fd). */
static void main_builds_a_tap_interface(void *arg)
{
	const struct net_opts *o = arg;
	thread_role_enter(THREAD_MAIN);
	struct virtio_device *dev;
	vt_err err;
	if (virtio_net_create(o, &dev, &err) < 0) {
		say(err.msg);
		_exit(107);
	}
	virtio_net_destroy(dev);
	say("allowed-ok\n");
	_exit(0);
}

static void test_main_plugs_a_tap_interface(void **s)
{
	(void)s;
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0 || geteuid() != 0) {
		if (fd >= 0)
			close(fd);
		skip();                                      /* taps need root and /dev/net/tun */
	}
	close(fd);
	struct net_opts o;
	char spec[32];
	vt_err err;
	snprintf(spec, sizeof(spec), "tap=vtsbx%d", (int)getpid() % 100000);
	assert_int_equal(net_opts_parse(spec, &o, &err), 0);
	net_opts_default_mac(&o, 0);
	struct child_result r;
	run_child(SANDBOX_ON, main_builds_a_tap_interface, &o, &r);
	if (!WIFEXITED(r.status) || WEXITSTATUS(r.status) != 0 || !strstr(r.out, "allowed-ok"))
		fail_msg("status 0x%x, output: %s", r.status, r.out);
}

static void vcpu_netlink_allowed(void *arg)
{
	(void)arg;
	thread_role_enter(THREAD_VCPU);
	int fd = socket(AF_NETLINK, SOCK_RAW, 0);
	if (fd < 0)
		_exit(102);
}

static void test_log_mode_lets_calls_through(void **s)
{
	(void)s;
	struct child_result r;
	run_child(SANDBOX_LOG, vcpu_netlink_allowed, NULL, &r);
	if (!WIFEXITED(r.status) || WEXITSTATUS(r.status) != 0)
		fail_msg("status 0x%x, output: %s", r.status, r.out);
}

static void test_off_mode_confines_nothing(void **s)
{
	(void)s;
	struct child_result r;
	run_child(SANDBOX_OFF, vcpu_netlink_allowed, NULL, &r);
	assert_true(WIFEXITED(r.status));
	assert_int_equal(WEXITSTATUS(r.status), 0);
}

/* ---- The real thread starters announce their roles (else their threads would run unconfined) ------- */

static unsigned roles_seen[THREAD_ROLES];

static void record_role(enum thread_role role)
{
	__atomic_add_fetch(&roles_seen[role], 1, __ATOMIC_SEQ_CST);
}

static void wait_for_role(enum thread_role role, unsigned n)
{
	for (int i = 0; i < 2000 && __atomic_load_n(&roles_seen[role], __ATOMIC_SEQ_CST) < n; i++)
		usleep(1000);
	assert_int_equal(__atomic_load_n(&roles_seen[role], __ATOMIC_SEQ_CST), n);
}

static void test_device_loop_and_io_workers_announce_roles(void **s)
{
	(void)s;
	memset(roles_seen, 0, sizeof(roles_seen));
	thread_role_set_hook(record_role);
	vt_err err;
	struct evloop l;
	assert_int_equal(evloop_init(&l, &err), 0);
	assert_int_equal(evloop_start(&l, &err), 0);
	wait_for_role(THREAD_DEVICE, 1);
	evloop_destroy(&l);

	char path[] = "/tmp/virtus-sandbox-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	close(fd);
	struct blk *b;
	struct blk_opts o = { .engine = BLK_ENGINE_POOL, .pool_threads = 3 };
	assert_int_equal(blk_open_opts(path, &o, &b, &err), 0);
	wait_for_role(THREAD_IO_WORKER, 3);
	blk_close(b);
	unlink(path);
	thread_role_set_hook(NULL);
	assert_int_equal(roles_seen[THREAD_VCPU] + roles_seen[THREAD_MAIN] + roles_seen[THREAD_SLIRP], 0);
}

/* A thread of a role nobody prepared a filter for must not run on unconfined. */
static void test_unprepared_role_fails_closed(void **s)
{
	(void)s;
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(p[1], STDERR_FILENO);
		vt_err err;
		if (sandbox_prepare(SANDBOX_ON, SANDBOX_ROLE(THREAD_MAIN) | SANDBOX_ROLE(THREAD_VCPU), NULL, &err) < 0)
			_exit(91);
		thread_role_enter(THREAD_SLIRP);
		_exit(0);
	}
	close(p[1]);
	char out[512] = { 0 };
	assert_true(read(p[0], out, sizeof(out) - 1) > 0);
	close(p[0]);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 1);
	assert_non_null(strstr(out, "a libslirp thread started, but no filter was prepared for it"));
}

/* Which filters `vm run` prepares: a role a VM runs but does not get a filter for would end it. With a PCI bus,
 * a disk may be plugged in while the VM runs, and its worker pool's threads need theirs. */
static void test_vm_thread_roles(void **s)
{
	(void)s;
	const unsigned base = SANDBOX_ROLE(THREAD_MAIN) | SANDBOX_ROLE(THREAD_VCPU);
	const unsigned dev = SANDBOX_ROLE(THREAD_DEVICE) | SANDBOX_ROLE(THREAD_IO_WORKER);
	struct vm_config c = { 0 };
	assert_int_equal(vm_thread_roles(&c), base);
	c = (struct vm_config){ .rng = true };
	assert_int_equal(vm_thread_roles(&c), base | dev);
	c = (struct vm_config){ .virtio_console = true };
	assert_int_equal(vm_thread_roles(&c), base | dev);
	c = (struct vm_config){ .balloon = true }; /* a balloon with no target yet still has a device thread */
	assert_int_equal(vm_thread_roles(&c), base | dev);
	c = (struct vm_config){ .vsock_cid = 3 };
	assert_int_equal(vm_thread_roles(&c), base | dev);
	c = (struct vm_config){ .ndisks = 1 };
	assert_int_equal(vm_thread_roles(&c), base | dev);
	c = (struct vm_config){ .cdrom = true };  /* a CD drive alone (its VMM died of this once: no filter) */
	assert_int_equal(vm_thread_roles(&c), base | dev);
	c = (struct vm_config){ .nnets = 2, .net = { "tap=tap0", "user,hostfwd=tcp:1-:2" } };
	assert_int_equal(vm_thread_roles(&c), base | dev | SANDBOX_ROLE(THREAD_SLIRP));
	c = (struct vm_config){ .nnets = 1, .net = { "tap=user0" } };
	assert_int_equal(vm_thread_roles(&c), base | dev);
}

static void test_parse_mode(void **s)
{
	(void)s;
	enum sandbox_mode m;
	assert_int_equal(sandbox_parse_mode("on", &m), 0);
	assert_int_equal(m, SANDBOX_ON);
	assert_int_equal(sandbox_parse_mode("off", &m), 0);
	assert_int_equal(m, SANDBOX_OFF);
	assert_int_equal(sandbox_parse_mode("log", &m), 0);
	assert_int_equal(m, SANDBOX_LOG);
	assert_int_equal(sandbox_parse_mode("yes", &m), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_main_execve),
		cmocka_unit_test(test_vcpu_execve),
		cmocka_unit_test(test_device_execve),
		cmocka_unit_test(test_io_worker_execve),
		cmocka_unit_test(test_slirp_execve),
		cmocka_unit_test(test_vcpu_socket),
		cmocka_unit_test(test_vcpu_ioctl_by_request),
		cmocka_unit_test(test_device_socket_family),
		cmocka_unit_test(test_no_executable_memory),
		cmocka_unit_test(test_thread_confined_with_no_new_privs),
		cmocka_unit_test(test_env_trigger_kills_from_device_thread),
		cmocka_unit_test(test_log_mode_lets_calls_through),
		cmocka_unit_test(test_off_mode_confines_nothing),
		cmocka_unit_test(test_device_loop_and_io_workers_announce_roles),
		cmocka_unit_test(test_unprepared_role_fails_closed),
		cmocka_unit_test(test_vm_thread_roles),
		cmocka_unit_test(test_main_starts_threads_not_processes),
		cmocka_unit_test(test_main_plugs_a_tap_interface),
		cmocka_unit_test(test_parse_mode),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

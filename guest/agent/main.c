/* virtus-agent: PID 1 of a VM-isolation guest (mount the basics, load the modules, mount the container's
 * root file system from virtio-fs, serve the host on vsock port 1024), or, for tests, the same protocol on
 * a Unix socket of the host: virtus-agent --listen unix:PATH --rootfs DIR [--state DIR].
 * As PID 1 it must never return (the kernel would panic): anything fatal is one line on the console and
 * a power-off. */
#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent.h"
#include "isolation/vmbox.h"
#include "lib/util.h"

/* The host's shared tree (isolation/vmbox.h): rootfs/ is the container's root, m/N its bind mounts' sources. */
#define GUEST_SHARE  VMBOX_GUEST_SHARE
#define GUEST_ROOTFS VMBOX_GUEST_SHARE "/rootfs"
#define GUEST_STATE  "/run/virtus/agent"

void agent_power_off(void)
{
	sync();
	umount2(GUEST_SHARE, MNT_DETACH);
	reboot(RB_POWER_OFF);
	for (;;)
		pause();
}

void agent_fatal(const struct agent *a, const char *fmt, ...)
{
	char line[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (!a->pid1) {
		fprintf(stderr, "virtus-agent: %s\n", line);
		exit(1);
	}
	int fd = open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC);
	dprintf(fd >= 0 ? fd : 2, "virtus-agent: %s\n", line);
	agent_power_off();
}

/* ---------------- PID 1 setup ---------------- */

/* The initramfs (rootfs) can never be pivot_root()ed away, which the runtime does for every container: move
 * to a tmpfs root first, as switch_root does (the agent needs no file of the initramfs once its modules are
 * loaded; its own text stays mapped). */
static int leave_initramfs(vt_err *err)
{
	mkdir("/.root", 0755);
	if (mount("tmpfs", "/.root", "tmpfs", MS_NOSUID, "mode=0755") || chdir("/.root") ||
	    mount(".", "/", NULL, MS_MOVE, NULL) || chroot(".") || chdir("/"))
		return vt_fail_errno(err, errno, "cannot move to a tmpfs root");
	return 0;
}

static int mount_basics(vt_err *err)
{
	static const struct { const char *src, *dst, *type, *opts; } m[] = {
		{ "proc", "/proc", "proc", NULL },
		{ "sysfs", "/sys", "sysfs", NULL },
		{ "devtmpfs", "/dev", "devtmpfs", NULL },
		{ "devpts", "/dev/pts", "devpts", "newinstance,ptmxmode=0666,mode=0620" },
		{ "tmpfs", "/tmp", "tmpfs", "mode=1777" },
		{ "tmpfs", "/run", "tmpfs", "mode=0755" },
		{ "cgroup2", "/sys/fs/cgroup", "cgroup2", NULL },
	};
	for (size_t i = 0; i < ARRAY_SIZE(m); i++) {
		mkdir(m[i].dst, 0755);
		if (mount(m[i].src, m[i].dst, m[i].type, MS_NOSUID, m[i].opts) && errno != EBUSY)
			return vt_fail_errno(err, errno, "mount %s", m[i].dst);
	}
	return 0;
}

/* Like guest/init: every module of /etc/modules.order, in order, failures ignored (some are built in). */
static void load_modules(void)
{
	FILE *f = fopen("/etc/modules.order", "re");
	char line[512], path[600];
	while (f && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		if (!line[0])
			continue;
		snprintf(path, sizeof(path), "/lib/modules/%s", line);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			syscall(SYS_finit_module, fd, "", 0);
			close(fd);
		}
	}
	if (f)
		fclose(f);
}

/* virtus.rootfs=TAG from the kernel command line. */
static int rootfs_tag(char *tag, size_t cap, vt_err *err)
{
	char cmdline[4096] = "";
	FILE *f = fopen("/proc/cmdline", "re"); /* not read_file: /proc files have no size to go by */
	if (!f)
		return vt_fail_errno(err, errno, "/proc/cmdline");
	if (!fgets(cmdline, sizeof(cmdline), f))
		cmdline[0] = 0;
	fclose(f);
	for (char *save, *w = strtok_r(cmdline, " \n", &save); w; w = strtok_r(NULL, " \n", &save))
		if (!strncmp(w, "virtus.rootfs=", 14) && strlen(w + 14) < cap && w[14]) {
			strcpy(tag, w + 14);
			return 0;
		}
	return vt_fail(err, "no virtus.rootfs=TAG on the kernel command line");
}

static int pid1_setup(struct agent *a, vt_err *err)
{
	char tag[64];
	load_modules(); /* from the initramfs, before leaving it */
	if (leave_initramfs(err) || mount_basics(err))
		return -1;
	int con = open("/dev/console", O_RDWR | O_NOCTTY);
	if (con >= 0) {
		for (int i = 0; i < 3; i++)
			dup2(con, i);
		if (con > 2)
			close(con);
	}
	if (rootfs_tag(tag, sizeof(tag), err))
		return -1;
	mkdir("/run/virtus", 0755);
	mkdir(GUEST_SHARE, 0755);
	mkdir(GUEST_STATE, 0700);
	if (mount(tag, GUEST_SHARE, "virtiofs", 0, NULL))
		return vt_fail_errno(err, errno, "mount -t virtiofs %s", tag);
	net_loopback_up(err); /* best effort: the net message does it again */
	a->rootfs = GUEST_ROOTFS;
	snprintf(a->state, sizeof(a->state), "%s", GUEST_STATE);
	a->listen_fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_vm vm = { .svm_family = AF_VSOCK, .svm_port = AGENT_VSOCK_PORT, .svm_cid = VMADDR_CID_ANY };
	if (a->listen_fd < 0 || bind(a->listen_fd, (struct sockaddr *)&vm, sizeof(vm)) || listen(a->listen_fd, 4))
		return vt_fail_errno(err, errno, "vsock port %d", AGENT_VSOCK_PORT);
	return 0;
}

/* ---------------- test mode ---------------- */

static int listen_unix(struct agent *a, const char *spec, vt_err *err)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	if (strncmp(spec, "unix:", 5) || strlen(spec + 5) >= sizeof(un.sun_path) || !spec[5])
		return vt_fail(err, "--listen takes unix:PATH");
	strcpy(un.sun_path, spec + 5);
	unlink(un.sun_path);
	a->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (a->listen_fd < 0 || bind(a->listen_fd, (struct sockaddr *)&un, sizeof(un)) || listen(a->listen_fd, 4))
		return vt_fail_errno(err, errno, "listening on %s", un.sun_path);
	return 0;
}

static int host_setup(struct agent *a, int argc, char **argv, vt_err *err)
{
	const char *listen_on = NULL, *state = NULL;
	for (int i = 1; i < argc; i++) {
		if (i + 1 < argc && !strcmp(argv[i], "--listen"))
			listen_on = argv[++i];
		else if (i + 1 < argc && !strcmp(argv[i], "--rootfs"))
			a->rootfs = argv[++i];
		else if (i + 1 < argc && !strcmp(argv[i], "--state"))
			state = argv[++i];
		else
			return vt_fail(err, "usage: virtus-agent --listen unix:PATH --rootfs DIR [--state DIR]");
	}
	if (!listen_on || !a->rootfs || a->rootfs[0] != '/')
		return vt_fail(err, "usage: virtus-agent --listen unix:PATH --rootfs /DIR [--state DIR]");
	if (state)
		snprintf(a->state, sizeof(a->state), "%s", state);
	else if (snprintf(a->state, sizeof(a->state), "/tmp/virtus-agent.XXXXXX") && !mkdtemp(a->state))
		return vt_fail_errno(err, errno, "mkdtemp");
	mkdir(a->state, 0700);
	return listen_unix(a, listen_on, err);
}

int main(int argc, char **argv)
{
	static struct agent a;
	vt_err err = { 0 };
	a.pid1 = getpid() == 1;
	a.conn = a.listen_fd = a.sigfd = -1;
	for (unsigned i = 0; i < AGENT_MAX_PROCS; i++)
		a.procs[i].in = a.procs[i].out = a.procs[i].err = -1;
	if (a.pid1 ? pid1_setup(&a, &err) : host_setup(&a, argc, argv, &err))
		agent_fatal(&a, "%s", err.msg);
	snprintf(a.rt_root, sizeof(a.rt_root), "%s/rt", a.state);
	mkdir(a.rt_root, 0700);
	a.rt.root = a.rt_root;
	agent_serve(&a, &err);
	agent_fatal(&a, "%s", err.msg);
}

/* The runtime library's `list` names owners with getpwuid, which a static binary can only do through the
 * host's NSS libraries; the agent never lists, and has no user database of its own: linked with
 * -Wl,--wrap=getpwuid to this. */
struct passwd;
struct passwd *__wrap_getpwuid(uid_t uid);
struct passwd *__wrap_getpwuid(uid_t uid)
{
	(void)uid;
	errno = ENOENT;
	return NULL;
}

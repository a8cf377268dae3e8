/* Start and stop a container's microVM: virtiofsd serving the shared tree, the VMM booting the agent. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "isolation/vmbox.h"
#include "api/http.h"
#include "cli/vm_state.h"
#include "lib/util.h"

#define FS_SOCKET "fs.sock"
#define VSOCK_SOCKET "vsock"
#define BASE_CMDLINE "console=ttyS0 panic=-1 quiet virtus.rootfs=" VMBOX_FS_TAG

static bool readable(char *out, const char *dir, const char *name)
{
	return snprintf(out, PATH_MAX, "%s/%s", dir, name) < PATH_MAX && !access(out, R_OK);
}

static bool guest_in(const char *dir, char kernel[PATH_MAX], char initrd[PATH_MAX])
{
	return (readable(kernel, dir, "vmlinux") || readable(kernel, dir, "bzImage")) &&
	       readable(initrd, dir, VMBOX_AGENT_INITRD);
}

/* The same places as `virtus vm run`'s default guest: $VIRTUS_GUEST_DIR, <bindir>/guest,
 * <bindir>/../lib/virtus/guest. */
int vmbox_find_guest(char kernel[PATH_MAX], char initrd[PATH_MAX], vt_err *err)
{
	const char *env = getenv("VIRTUS_GUEST_DIR");
	if (env && *env) {
		if (guest_in(env, kernel, initrd))
			return 0;
		return vt_fail(err, "no VM-isolation guest in VIRTUS_GUEST_DIR=%s (expected vmlinux or bzImage, and %s): "
			       "build it with guest/build", env, VMBOX_AGENT_INITRD);
	}
	char self[PATH_MAX], dir[PATH_MAX];
	ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (len < 0)
		return vt_fail_errno(err, errno, "cannot find the virtus binary's directory");
	self[len] = 0;
	char *bindir = dirname(self);
	snprintf(dir, sizeof(dir), "%s/guest", bindir);
	if (guest_in(dir, kernel, initrd))
		return 0;
	const char *prefix = dirname(bindir);
	snprintf(dir, sizeof(dir), "%s/lib/virtus/guest", strcmp(prefix, "/") ? prefix : "");
	if (guest_in(dir, kernel, initrd))
		return 0;
	return vt_fail(err, "no VM-isolation guest next to virtus (expected vmlinux or bzImage, and %s, in %s/guest "
		       "or %s): build it with guest/build", VMBOX_AGENT_INITRD, bindir, dir);
}

static int box_names(struct vmbox *b, const char *name);

static int make_dir(struct vmbox *b, const char *name, vt_err *err)
{
	if (mkdir(VMBOX_RUN_DIR, 0700) && errno != EEXIST)
		return vt_fail_errno(err, errno, "cannot create %s", VMBOX_RUN_DIR);
	if (box_names(b, name) || strlen(b->vsock) + 11 >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return vt_fail(err, "VM socket directory name '%s' is too long", name);
	if (mkdir(b->dir, 0700)) {
		vt_fail_errno(err, errno, "cannot create %s", b->dir);
		*b->dir = *b->vm_name = 0; /* (another box's, when it exists: not ours to remove) */
		return -1;
	}
	return 0;
}

/* The socket virtiofsd accepts the VMM on: bound and listening before either starts, so neither waits. */
static int listen_fs(const struct vmbox *b, char path[PATH_MAX], vt_err *err)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	if (snprintf(path, PATH_MAX, "%s/%s", b->dir, FS_SOCKET) >= PATH_MAX ||
	    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path) >= (int)sizeof(a.sun_path))
		return vt_fail(err, "socket path %s/%s is too long", b->dir, FS_SOCKET);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return vt_fail_errno(err, errno, "socket");
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 1)) {
		close(fd);
		return vt_fail_errno(err, errno, "cannot listen on %s", path);
	}
	return fd;
}

/* In the child: stdin from /dev/null, stdout and stderr to log (appended), die with the parent. */
static void child_stdio(const char *log)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	int null = open("/dev/null", O_RDONLY);
	int out = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
	if (null < 0 || out < 0)
		_exit(127);
	dup2(null, 0);
	dup2(out, 1);
	dup2(out, 2);
}

static int make_target(const char *source, const char *target)
{
	struct stat st;
	if (stat(source, &st))
		return -1;
	if (S_ISDIR(st.st_mode))
		return mkdir(target, 0755) && errno != EEXIST ? -1 : 0;
	int fd = open(target, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	return fd < 0 ? -1 : close(fd);
}

/* In virtiofsd's child, before exec: a private mount namespace with the shared tree; any failure is
 * written to report (the parent reads it) and ends the child. */
static void build_share(const struct vmbox_config *c, int report)
{
	if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL)) {
		dprintf(report, "cannot make a mount namespace for virtiofsd: %s", strerror(errno));
		_exit(125);
	}
	if (mount("tmpfs", c->share, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")) {
		dprintf(report, "cannot mount a tmpfs on %s: %s", c->share, strerror(errno));
		_exit(125);
	}
	for (size_t i = 0; i < c->n_binds; i++) {
		const struct vmbox_bind *b = &c->binds[i];
		char target[PATH_MAX + 80];
		snprintf(target, sizeof(target), "%s/%s", c->share, b->target);
		char *slash = strrchr(target, '/');
		*slash = 0;
		mkdir(target, 0755);
		*slash = '/';
		if (make_target(b->source, target) || mount(b->source, target, NULL, MS_BIND | MS_REC, NULL) ||
		    (b->ro && mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL))) {
			dprintf(report, "cannot share %s with the VM: %s", b->source, strerror(errno));
			_exit(125);
		}
	}
}

/* Fork and exec path with stdio on log_dir/log_name and pass_fd as fd 3; c (when given) builds the shared
 * tree first. Returns once the exec happened: a failure before it comes back in err. */
static pid_t spawn(const char *log_dir, const char *log_name, int pass_fd, const struct vmbox_config *c,
		   const char *path, char *const argv[], vt_err *err)
{
	int report[2];
	if (pipe2(report, O_CLOEXEC))
		return vt_fail_errno(err, errno, "pipe");
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		close(report[0]);
		close(report[1]);
		return vt_fail_errno(err, errno, "cannot fork %s", path);
	}
	if (pid == 0) {
		close(report[0]);
		int rep = fcntl(report[1], F_DUPFD_CLOEXEC, 10); /* above the fds set below */
		char log[PATH_MAX + 32];
		snprintf(log, sizeof(log), "%s/%s", log_dir, log_name);
		child_stdio(log);
		if (pass_fd == 3)
			fcntl(3, F_SETFD, 0);
		else if (pass_fd >= 0 && dup2(pass_fd, 3) < 0)
			_exit(127);
		if (c)
			build_share(c, rep);
		execv(path, argv);
		dprintf(rep, "cannot run %s: %s", path, strerror(errno));
		_exit(127);
	}
	close(report[1]);
	char msg[512];
	ssize_t n;
	while ((n = read(report[0], msg, sizeof(msg) - 1)) < 0 && errno == EINTR)
		;
	close(report[0]);
	if (n <= 0)
		return pid;
	msg[n] = 0;
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	return vt_fail(err, "%s", msg);
}

/* virtiofsd's namespace sandbox pivot_root()s into the share, which is impossible while / is the initial
 * ramfs (a host booted from an initramfs, like the nested test bed's L1): chroot there, which the man page
 * says guards against escapes as well. */
static const char *fsd_sandbox(void)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096];
	const char *mode = "sandbox=namespace";
	while (f && fgets(line, sizeof(line), f)) {
		char mnt[256];
		const char *sep = strstr(line, " - ");
		if (sscanf(line, "%*s %*s %*s %*s %255s", mnt) != 1 || strcmp(mnt, "/") || !sep)
			continue;
		if (!strncmp(sep + 3, "rootfs ", 7))
			mode = "sandbox=chroot";
		break;
	}
	if (f)
		fclose(f);
	return mode;
}

static pid_t start_fsd(const struct vmbox_config *c, int listen_fd, vt_err *err)
{
	if (access(VMBOX_VIRTIOFSD, X_OK))
		return vt_fail_errno(err, errno, "%s (package qemu-system-common) is needed for --isolation=vm",
				     VMBOX_VIRTIOFSD);
	cleanup_free char *source = NULL;
	if (asprintf(&source, "source=%s", c->share) < 0)
		return vt_fail_errno(err, ENOMEM, "virtiofsd");
	char *argv[] = { "virtiofsd", "--fd=3", "-o", source, "-o", "cache=auto", "-o", (char *)fsd_sandbox(),
			 "-o", "log_level=warn", NULL };
	return spawn(c->log_dir, "virtiofsd.log", listen_fd, c, VMBOX_VIRTIOFSD, argv, err);
}

static pid_t start_vmm(const struct vmbox_config *c, const struct vmbox *b, const char *fs_path, vt_err *err)
{
	char kernel[PATH_MAX], initrd[PATH_MAX], self[PATH_MAX];
	if (vmbox_find_guest(kernel, initrd, err))
		return -1;
	ssize_t len = c->vmm ? 0 : readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (len < 0)
		return vt_fail_errno(err, errno, "cannot find the virtus binary");
	self[len] = 0;
	if (c->vmm && snprintf(self, sizeof(self), "%s", c->vmm) >= (int)sizeof(self))
		return vt_fail(err, "%s: the path is too long", c->vmm);
	char cpus[16], mem[32], vsock[PATH_MAX + 16], fs[PATH_MAX + 32], cmdline[1024], console[PATH_MAX + 16];
	snprintf(console, sizeof(console), "%s/console.log", c->log_dir);
	snprintf(cpus, sizeof(cpus), "%u", c->cpus ? c->cpus : 1);
	snprintf(mem, sizeof(mem), "%lluM", (unsigned long long)(c->memory / MiB));
	snprintf(vsock, sizeof(vsock), "%d,%s", VMBOX_GUEST_CID, b->vsock);
	snprintf(fs, sizeof(fs), "tag=%s,socket=%s", VMBOX_FS_TAG, fs_path);
	snprintf(cmdline, sizeof(cmdline), "%s%s%s", BASE_CMDLINE, c->cmdline_extra ? " " : "",
		 c->cmdline_extra ? c->cmdline_extra : "");
	char *argv[32] = { "virtus", "vm", "run", "--kernel", kernel, "--initrd", initrd, "--cmdline", cmdline,
			   "--cpus", cpus, "--memory", mem, "--console", console, "--vsock", vsock,
			   "--fs", fs, "--name", (char *)b->vm_name };
	unsigned n = 21;
	if (c->net) {
		argv[n++] = "--net";
		argv[n++] = (char *)c->net;
	}
	argv[n] = NULL;
	return spawn(c->log_dir, "vmm.log", -1, NULL, self, argv, err);
}

int vmbox_start(const struct vmbox_config *c, struct vmbox *b, vt_err *err)
{
	*b = (struct vmbox){ .vmm = -1, .fsd = -1 };
	char fs_path[PATH_MAX];
	if (make_dir(b, c->name, err))
		return -1;
	cleanup_close int lfd = listen_fs(b, fs_path, err);
	if (lfd < 0 || (b->fsd = start_fsd(c, lfd, err)) < 0 || (b->vmm = start_vmm(c, b, fs_path, err)) < 0) {
		vmbox_stop(b);
		return vt_err_prefix(err, "starting the container's VM");
	}
	return 0;
}

bool vmbox_paused(const struct vmbox *b)
{
	struct vm_state st;
	vt_err ignored;
	int status = 0;
	char *reply = NULL;
	if (b->vmm <= 0 || vm_state_load(b->vm_name, &st, &ignored) || st.pid != b->vmm ||
	    api_call(st.api_socket, "GET", "/", NULL, 1000, &status, &reply, &ignored))
		return false;
	bool paused = status == 200 && strstr(reply, "\"Paused\"");
	free(reply);
	return paused;
}

static int end(pid_t *pid)
{
	if (*pid <= 0)
		return -1;
	int ws = -1;
	kill(*pid, SIGKILL);
	while (waitpid(*pid, &ws, 0) < 0 && errno == EINTR)
		;
	*pid = -1;
	return ws;
}

/* The VMM's own directory under the VM run root (`virtus vm ls` shows the container's VM): it removes it at
 * a clean exit, not after SIGKILL. */
static void remove_vm_state(const struct vmbox *b)
{
	struct vm_state st;
	vt_err ignored;
	if (*b->vm_name && vm_state_load(b->vm_name, &st, &ignored) == 0 && !vm_state_alive(&st))
		vm_state_remove(&st);
}

static int box_names(struct vmbox *b, const char *name)
{
	if (snprintf(b->dir, sizeof(b->dir), "%s/%s", VMBOX_RUN_DIR, name) >= (int)sizeof(b->dir) ||
	    snprintf(b->vsock, sizeof(b->vsock), "%s/%s", b->dir, VSOCK_SOCKET) >= (int)sizeof(b->vsock))
		return -1;
	snprintf(b->vm_name, sizeof(b->vm_name), "ctr-%.12s", name);
	return 0;
}

int vmbox_pause(const char *name, bool pause, vt_err *err)
{
	struct vmbox b = { .vmm = -1, .fsd = -1 };
	struct vm_state st;
	int status = 0;
	char *reply = NULL;
	if (box_names(&b, name))
		return vt_fail(err, "VM name '%s' is too long", name);
	if (vm_state_load(b.vm_name, &st, err) ||
	    api_call(st.api_socket, "PATCH", "/vm", pause ? "{\"state\": \"Paused\"}" : "{\"state\": \"Resumed\"}", 10000,
		     &status, &reply, err))
		return vt_err_prefix(err, "cannot %s the container's VM", pause ? "pause" : "resume");
	if (status / 100 != 2)
		vt_fail(err, "cannot %s the container's VM: its VMM answered %d: %.200s", pause ? "pause" : "resume",
			status, reply);
	free(reply);
	return status / 100 == 2 ? 0 : -1;
}

void vmbox_forget(const char *name)
{
	struct vmbox b = { .vmm = -1, .fsd = -1 };
	if (*name && !strchr(name, '/') && strcmp(name, ".") && strcmp(name, "..") && !box_names(&b, name))
		vmbox_stop(&b);
}

int vmbox_stop(struct vmbox *b)
{
	int ws = end(&b->vmm);
	end(&b->fsd);
	remove_vm_state(b);
	if (*b->dir) {
		char path[PATH_MAX + 16];
		snprintf(path, sizeof(path), "%s/%s", b->dir, FS_SOCKET);
		unlink(path);
		unlink(b->vsock); /* the VMM removes it at a clean exit, not after SIGKILL */
		rmdir(b->dir);
		*b->dir = 0;
	}
	return ws;
}

/* The VMM's jail: namespaces, an empty root, a cgroup, unprivileged ids (contract in jail.h). */
#include "vmm/jail.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/magic.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "lib/util.h"

#define JAIL_BASE "/run/virtus"
#define CGROUP_ROOT "/sys/fs/cgroup"

/* ---- The jail directory and the cgroups (supervisor side) ------------------------------------------ */

static int make_jail_dir(struct jail *j, vt_err *err)
{
	if (mkdir(JAIL_BASE, 0711) < 0 && errno != EEXIST)
		return vt_fail_errno(err, errno, "--jail: cannot create %s", JAIL_BASE);
	snprintf(j->root, sizeof(j->root), JAIL_BASE "/%s", j->id);
	if (mkdir(j->root, 0755) < 0) {
		if (errno == EEXIST)
			return vt_fail(err, "--jail: %s already exists (left by a run that was killed?); remove it", j->root);
		return vt_fail_errno(err, errno, "--jail: cannot create %s", j->root);
	}
	return 0;
}

static void remove_jail_dir(struct jail *j)
{
	if (j->root[0] && rmdir(j->root) == 0)
		rmdir(JAIL_BASE); /* only if no other jail lives there */
	j->root[0] = '\0';
}

static int add_cgroup(struct jail *j, const char *hierarchy, vt_err *err)
{
	char parent[PATH_MAX / 4];
	if (j->ncgroups == JAIL_MAX_CGROUPS)
		return vt_fail(err, "--jail: more than %d cgroup hierarchies", JAIL_MAX_CGROUPS);
	if ((size_t)snprintf(parent, sizeof(parent), "%s/virtus", hierarchy) >= sizeof(parent))
		return vt_fail(err, "--jail: cgroup path too long under %s", hierarchy);
	if (mkdir(parent, 0755) < 0 && errno != EEXIST)
		return vt_fail_errno(err, errno, "--jail: cannot create cgroup %s", parent);
	char *path = j->cgroup[j->ncgroups];
	if ((size_t)snprintf(path, sizeof(j->cgroup[0]), "%s/%s", parent, j->id) >= sizeof(j->cgroup[0]))
		return vt_fail(err, "--jail: cgroup path too long under %s", hierarchy);
	if (mkdir(path, 0755) < 0)
		return vt_fail_errno(err, errno, "--jail: cannot create cgroup %s", path);
	j->ncgroups++;
	return 0;
}

static bool is_fs(const char *path, long magic)
{
	struct statfs s;
	return statfs(path, &s) == 0 && s.f_type == magic;
}

/* v2: one tree. v1 or hybrid: every controller hierarchy but cpuset (a new cpuset has no cpus or mems
 * until someone copies them in; the VMM then could not run). Symlinks (cpu -> cpu,cpuacct) are skipped. */
static int make_cgroups(struct jail *j, vt_err *err)
{
	j->cgroup_v2 = is_fs(CGROUP_ROOT, CGROUP2_SUPER_MAGIC);
	if (j->cgroup_v2)
		return add_cgroup(j, CGROUP_ROOT, err);
	DIR *d = opendir(CGROUP_ROOT);
	if (!d)
		return vt_fail_errno(err, errno, "--jail: no cgroup file system at " CGROUP_ROOT);
	int rc = 0;
	char path[PATH_MAX / 8];
	for (struct dirent *e; rc == 0 && (e = readdir(d));) {
		if (e->d_type != DT_DIR || e->d_name[0] == '.' || !strcmp(e->d_name, "cpuset"))
			continue;
		snprintf(path, sizeof(path), CGROUP_ROOT "/%.40s", e->d_name);
		if (is_fs(path, CGROUP_SUPER_MAGIC))
			rc = add_cgroup(j, path, err);
	}
	closedir(d);
	if (rc == 0 && j->ncgroups == 0)
		return vt_fail(err, "--jail: no cgroup hierarchy is mounted under " CGROUP_ROOT);
	return rc;
}

/* After the VMM is gone its cgroups are empty; the kernel may still be releasing them for a moment. */
static void remove_cgroups(struct jail *j)
{
	for (unsigned i = 0; i < j->ncgroups; i++) {
		for (int tries = 0; rmdir(j->cgroup[i]) < 0 && errno == EBUSY && tries < 50; tries++)
			usleep(2000);
		char *slash = strrchr(j->cgroup[i], '/');
		*slash = '\0';
		rmdir(j->cgroup[i]); /* virtus/, if no other VM uses it */
	}
	j->ncgroups = 0;
}

/* How the child's join went, sent to the supervisor: failed < 0 when every cgroup took it. */
struct join_report {
	int failed; /* index into j->cgroup */
	int errnum;
};

/* In the child, before anything else: it moves itself. A v1 hierarchy's "tasks" with 0 moves the calling
 * thread (the whole single-threaded child) without the kernel's global threadgroup lock, which moving
 * another process by pid takes for writing and which waits for an RCU grace period (5-25 ms here). v2 has
 * no such file for a move between cgroups: "0" into cgroup.procs there. */
static struct join_report join_cgroups_self(const struct jail *j)
{
	char path[PATH_MAX / 4 + 16];
	for (unsigned i = 0; i < j->ncgroups; i++) {
		snprintf(path, sizeof(path), "%s/%s", j->cgroup[i], j->cgroup_v2 ? "cgroup.procs" : "tasks");
		cleanup_close int fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, "0", 1) != 1)
			return (struct join_report){ .failed = (int)i, .errnum = errno };
	}
	return (struct join_report){ .failed = -1 };
}

/* In the supervisor: the child's report (EOF: it died before it could send one). */
static int child_joined(const struct jail *j, int fd, vt_err *err)
{
	struct join_report r;
	ssize_t n;
	while ((n = read(fd, &r, sizeof(r))) < 0 && errno == EINTR)
		;
	if (n != sizeof(r))
		return vt_fail(err, "--jail: the VMM's process ended before it joined its cgroups");
	if (r.failed < 0)
		return 0;
	return vt_fail_errno(err, r.errnum, "--jail: the VMM cannot join cgroup %s",
			     (unsigned)r.failed < j->ncgroups ? j->cgroup[r.failed] : "(unknown)");
}

/* ---- The child: namespaces, then the jail ------------------------------------------------------------ */

static int unshare_namespaces(const struct jail *j, vt_err *err)
{
	int flags = CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | (j->cfg->new_netns ? CLONE_NEWNET : 0);
	if (unshare(flags) < 0)
		return vt_fail_errno(err, errno, "--jail: cannot create namespaces (needs root)");
	/* nothing mounted here may reach the host, and the host's later mounts do not reach in */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return vt_fail_errno(err, errno, "--jail: making mounts private");
	if (mount("virtus-jail", j->root, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755,size=64k") < 0)
		return vt_fail_errno(err, errno, "--jail: cannot mount a tmpfs on %s", j->root);
	if (sethostname("virtus", 6) < 0)
		return vt_fail_errno(err, errno, "--jail: sethostname");
	return 0;
}

static int mkdir_parents(char *path, vt_err *err)
{
	for (char *p = strchr(path + 1, '/'); p; p = strchr(p + 1, '/')) {
		*p = '\0';
		int rc = mkdir(path, 0755);
		int e = errno;
		*p = '/';
		if (rc < 0 && e != EEXIST)
			return vt_fail_errno(err, e, "--jail: cannot create %s in the jail", path);
	}
	return 0;
}

/* Host path P appears at <root>P: a directory, or a file (bound read-only where asked). */
static int bind_into(const struct jail *j, const char *host, bool readonly, vt_err *err)
{
	char target[PATH_MAX];
	struct stat st;
	if (host[0] != '/')
		return vt_fail(err, "--jail: %s is not an absolute path", host);
	if (stat(host, &st) < 0)
		return vt_fail_errno(err, errno, "--jail: %s", host);
	if ((size_t)snprintf(target, sizeof(target), "%s%s", j->root, host) >= sizeof(target))
		return vt_fail(err, "--jail: path too long: %s", host);
	if (mkdir_parents(target, err) < 0)
		return -1;
	int made = S_ISDIR(st.st_mode) ? mkdir(target, 0755) : mknod(target, S_IFREG | 0644, 0);
	if (made < 0 && errno != EEXIST)
		return vt_fail_errno(err, errno, "--jail: cannot create %s", target);
	if (mount(host, target, NULL, MS_BIND | MS_REC, NULL) < 0)
		return vt_fail_errno(err, errno, "--jail: cannot bind %s into the jail", host);
	unsigned long ro = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC;
	if (readonly && mount(NULL, target, NULL, ro, NULL) < 0)
		return vt_fail_errno(err, errno, "--jail: cannot make %s read-only", target);
	return 0;
}

/* pivot_root(".", ".") stacks the old root on the jail; detaching it leaves only the jail. An initramfs
 * root cannot be pivoted away from (EINVAL): there the jail is moved over / and chrooted into, which is as
 * tight here because the VMM then has no capabilities and its seccomp lists refuse chroot and mount. */
static int switch_root(const char *root, vt_err *err)
{
	if (chdir(root) < 0)
		return vt_fail_errno(err, errno, "--jail: chdir %s", root);
	if (syscall(SYS_pivot_root, ".", ".") == 0) {
		if (umount2(".", MNT_DETACH) < 0)
			return vt_fail_errno(err, errno, "--jail: detaching the old root");
	} else if (errno != EINVAL) {
		return vt_fail_errno(err, errno, "--jail: pivot_root into %s", root);
	} else if (mount(".", "/", NULL, MS_MOVE, NULL) < 0 || chroot(".") < 0) {
		return vt_fail_errno(err, errno, "--jail: moving into %s", root);
	}
	if (chdir("/") < 0)
		return vt_fail_errno(err, errno, "--jail: chdir /");
	unsigned long ro = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC;
	if (mount(NULL, "/", NULL, ro, NULL) < 0)
		return vt_fail_errno(err, errno, "--jail: making the jail's root read-only");
	return 0;
}

/* Leaving uid 0 for nonzero ids clears every capability (no SECBIT_KEEP_CAPS is set). */
static int drop_ids(uid_t uid, gid_t gid, vt_err *err)
{
	if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
		return vt_fail_errno(err, errno, "--jail: cannot switch to uid %u gid %u", (unsigned)uid, (unsigned)gid);
	if (getuid() != uid || geteuid() != uid || getegid() != gid)
		return vt_fail(err, "--jail: the switch to uid %u gid %u did not take", (unsigned)uid, (unsigned)gid);
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0); /* cleared by the id change: the VM ends with its supervisor */
	return 0;
}

int jail_enter(struct jail *j, vt_err *err)
{
	for (unsigned i = 0; i < j->cfg->nbind; i++)
		if (bind_into(j, j->cfg->bind[i], j->cfg->bind_readonly[i], err) < 0)
			return -1;
	if (switch_root(j->root, err) < 0)
		return -1;
	return drop_ids(j->cfg->uid, j->cfg->gid, err);
}

/* Runs in the child: join the cgroups, tell the supervisor how that went, then namespaces, then body. */
static int jailed_child(struct jail *j, int report_fd, int (*body)(void *, struct jail *), void *arg)
{
	vt_err err;
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	struct join_report r = join_cgroups_self(j);
	if (write(report_fd, &r, sizeof(r)) != sizeof(r) || r.failed >= 0)
		return 1; /* the supervisor says why */
	close(report_fd);
	if (unshare_namespaces(j, &err) < 0) {
		fprintf(stderr, "virtus: %s\n", err.msg);
		return 1;
	}
	return body(arg, j);
}

/* ---- The supervisor ---------------------------------------------------------------------------------- */

/* Per process: a signal handler has no context pointer, and there is one jailed child per supervisor. */
static volatile pid_t forward_to;

static void forward_signal(int sig)
{
	if (forward_to > 0)
		kill(forward_to, sig);
}

static void forward_host_signals(void)
{
	struct sigaction sa = { .sa_handler = forward_signal, .sa_flags = SA_RESTART };
	sigemptyset(&sa.sa_mask);
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
	for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
		sigaction(sigs[i], &sa, NULL);
}

static int wait_child(pid_t pid)
{
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return 1;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	int sig = WTERMSIG(status);
	fprintf(stderr, "virtus: the jailed VMM was killed by signal %d (%s)\n", sig, strsignal(sig));
	return 128 + sig;
}

static void remove_leftover_socket(const char *path)
{
	struct stat st;
	if (path && lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path);
}

static void jail_cleanup(struct jail *j)
{
	remove_cgroups(j);
	remove_jail_dir(j);
	for (unsigned i = 0; i < j->cfg->nremove; i++)
		remove_leftover_socket(j->cfg->remove_at_exit[i]);
}

static int check_ids(const struct jail_config *cfg, vt_err *err)
{
	if (cfg->uid == 0 || cfg->gid == 0)
		return vt_fail(err, "--jail: the VMM must run as an unprivileged user: uid and gid must not be 0");
	if (geteuid() != 0)
		return vt_fail(err, "--jail needs root (it creates namespaces and cgroups, then drops to uid %u)",
			       (unsigned)cfg->uid);
	return 0;
}

/* Fork the jailed child (PID 1 of a new PID namespace); it joins the cgroups itself, first, and reports. */
static int start_child(struct jail *j, int (*body)(void *, struct jail *), void *arg, vt_err *err)
{
	int report[2];
	if (pipe2(report, O_CLOEXEC) < 0)
		return vt_fail_errno(err, errno, "--jail: pipe");
	if (unshare(CLONE_NEWPID) < 0) {
		close(report[0]), close(report[1]);
		return vt_fail_errno(err, errno, "--jail: cannot create a PID namespace");
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		close(report[0]), close(report[1]);
		return vt_fail_errno(err, errno, "--jail: fork");
	}
	if (pid == 0) {
		close(report[0]);
		int status = jailed_child(j, report[1], body, arg);
		/* no atexit handlers: a sanitizer build's leak check would need /proc, which the jail lacks */
		fflush(NULL);
		_exit(status);
	}
	close(report[1]);
	j->child = forward_to = pid;
	int rc = child_joined(j, report[0], err); /* a failed child has ended by itself */
	close(report[0]);
	return rc;
}

int jail_run(const struct jail_config *cfg, int (*body)(void *arg, struct jail *j), void *arg, vt_err *err)
{
	struct jail j = { .cfg = cfg };
	snprintf(j.id, sizeof(j.id), "vm-%d", (int)getpid());
	if (check_ids(cfg, err) < 0 || make_jail_dir(&j, err) < 0)
		return -1;
	struct termios tio;
	bool tty = tcgetattr(STDIN_FILENO, &tio) == 0;
	if (make_cgroups(&j, err) < 0 || start_child(&j, body, arg, err) < 0) {
		if (j.child > 0)
			wait_child(j.child);
		jail_cleanup(&j);
		return -1;
	}
	forward_host_signals();
	int status = wait_child(j.child);
	if (status > 128 && tty)
		tcsetattr(STDIN_FILENO, TCSANOW, &tio); /* a VMM that died cannot restore the terminal itself */
	jail_cleanup(&j);
	return status;
}

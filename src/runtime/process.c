/* The container process's identity and limits, applied in the order the kernel requires:
 * bounding set (needs CAP_SETPCAP) -> user/groups (keeping caps) -> capset -> ambient -> no_new_privs ->
 * seccomp -> execve. Without no_new_privileges the filter is loaded earlier, while CAP_SYS_ADMIN is held. */
#include "runtime/rt.h"

#include "runtime/seccomp.h"

#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>

static int last_cap(void)
{
	char buf[16] = { 0 };
	cleanup_close int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || read(fd, buf, sizeof(buf) - 1) <= 0)
		return CAP_LAST_CAP;
	return atoi(buf);
}

static int drop_bounding(uint64_t keep, int last, vt_err *err)
{
	for (int c = 0; c <= last; c++) {
		if (keep & (1ULL << c))
			continue;
		if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) && errno != EINVAL)
			return vt_fail_errno(err, errno, "cannot drop %s from the bounding set", rt_cap_name(c));
	}
	return 0;
}

static int set_caps(const uint64_t *caps, uint64_t valid, vt_err *err)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct data[2];
	uint64_t e = caps[RT_CAP_EFFECTIVE] & valid, p = caps[RT_CAP_PERMITTED] & valid,
		 i = caps[RT_CAP_INHERITABLE] & valid;
	for (int k = 0; k < 2; k++) {
		data[k].effective = (uint32_t)(e >> (32 * k));
		data[k].permitted = (uint32_t)(p >> (32 * k));
		data[k].inheritable = (uint32_t)(i >> (32 * k));
	}
	if (syscall(SYS_capset, &hdr, data))
		return vt_fail_errno(err, errno, "process.capabilities: capset failed");
	return 0;
}

static int raise_ambient(uint64_t ambient, int last, vt_err *err)
{
	for (int c = 0; c <= last; c++)
		if ((ambient & (1ULL << c)) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0))
			return vt_fail_errno(err, errno,
					     "process.capabilities.ambient: cannot raise %s (it must also be "
					     "permitted and inheritable)",
					     rt_cap_name(c));
	return 0;
}

static int set_user(const struct rt_process *p, vt_err *err)
{
	if (setgroups(p->n_additional_gids, p->additional_gids) && errno != EPERM)
		return vt_fail_errno(err, errno, "process.user.additionalGids: setgroups failed");
	if (setresgid(p->gid, p->gid, p->gid))
		return vt_fail_errno(err, errno, "process.user.gid: cannot switch to gid %u", p->gid);
	if (setresuid(p->uid, p->uid, p->uid))
		return vt_fail_errno(err, errno, "process.user.uid: cannot switch to uid %u", p->uid);
	return 0;
}

int rt_set_rlimits(const struct rt_process *p, vt_err *err)
{
	for (size_t i = 0; i < p->n_rlimits; i++) {
		struct rlimit rl = { p->rlimits[i].soft, p->rlimits[i].hard };
		if (setrlimit(p->rlimits[i].resource, &rl))
			return vt_fail_errno(err, errno, "process.rlimits[%zu]: cannot set %llu/%llu", i,
					     (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max);
	}
	return 0;
}

int rt_set_oom_score_adj(const struct rt_process *p, vt_err *err)
{
	if (!p->has_oom_score_adj)
		return 0;
	char buf[16];
	snprintf(buf, sizeof(buf), "%d", p->oom_score_adj);
	cleanup_close int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write_all(fd, buf, strlen(buf)))
		return vt_fail_errno(err, errno, "process.oomScoreAdj: cannot write %s", buf);
	return 0;
}

static bool apparmor_enabled(void)
{
	char c = 0;
	cleanup_close int fd = open("/sys/module/apparmor/parameters/enabled", O_RDONLY | O_CLOEXEC);
	return fd >= 0 && read(fd, &c, 1) == 1 && c == 'Y';
}

static bool selinux_enabled(void)
{
	return !access("/sys/fs/selinux/enforce", F_OK);
}

int rt_process_check_lsm(const struct rt_process *p, vt_err *err)
{
	if (p->apparmor_profile && !apparmor_enabled())
		return vt_fail(err, "process.apparmorProfile '%s': AppArmor is not enabled on this host "
			       "(/sys/module/apparmor/parameters/enabled is not Y); remove the field to run unconfined",
			       p->apparmor_profile);
	if (p->selinux_label && !selinux_enabled())
		return vt_fail(err, "process.selinuxLabel '%s': SELinux is not enabled on this host (no "
			       "/sys/fs/selinux); remove the field to run without a label", p->selinux_label);
	return 0;
}

/* The LSM attribute the next execve takes: the kernel switches profile/label at exec, not before. */
static int write_exec_attr(const char *const *paths, const char *value, const char *field, vt_err *err)
{
	int e = ENOENT;
	for (; *paths; paths++) {
		cleanup_close int fd = open(*paths, O_WRONLY | O_CLOEXEC);
		if (fd < 0) {
			e = errno;
			continue;
		}
		if (write_all(fd, value, strlen(value)))
			return vt_fail_errno(err, errno, "%s: the kernel refused '%s' in %s", field, value, *paths);
		return 0;
	}
	return vt_fail_errno(err, e, "%s: cannot open /proc/self/attr (is /proc mounted in the container?)", field);
}

static int apply_lsm(const struct rt_process *p, vt_err *err)
{
	static const char *const aa_paths[] = { "/proc/self/attr/apparmor/exec", "/proc/self/attr/exec", NULL };
	static const char *const se_paths[] = { "/proc/self/attr/exec", NULL };
	if (p->apparmor_profile) {
		cleanup_free char *cmd = NULL;
		if (asprintf(&cmd, "exec %s", p->apparmor_profile) < 0)
			return vt_fail_errno(err, ENOMEM, "process.apparmorProfile");
		if (write_exec_attr(aa_paths, cmd, "process.apparmorProfile", err))
			return -1;
	}
	if (p->selinux_label && write_exec_attr(se_paths, p->selinux_label, "process.selinuxLabel", err))
		return -1;
	return 0;
}

int rt_process_setup(const struct rt_process *p, struct rt_seccomp *sc, vt_err *err)
{
	int last = last_cap();
	uint64_t valid = last >= 63 ? ~0ULL : (1ULL << (last + 1)) - 1;
	if (rt_process_check_lsm(p, err) || apply_lsm(p, err))
		return -1;
	if (rt_set_rlimits(p, err))
		return -1;
	if (sc && !p->no_new_privileges && rt_seccomp_apply(sc, err))
		return vt_err_prefix(err, "linux.seccomp");
	if (p->has_caps && drop_bounding(p->caps[RT_CAP_BOUNDING], last, err))
		return -1;
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0))
		return vt_fail_errno(err, errno, "PR_SET_KEEPCAPS");
	if (set_user(p, err))
		return -1;
	if (p->has_umask)
		umask(p->umask);
	if (chdir(p->cwd))
		return vt_fail_errno(err, errno, "process.cwd: cannot enter '%s'", p->cwd);
	uint64_t none[RT_CAP_SETS] = { 0 };
	if (set_caps(p->has_caps ? p->caps : none, valid, err))
		return -1;
	/* Like runc: an ambient capability the kernel cannot hold (not permitted and inheritable) is skipped. */
	uint64_t ambient = p->caps[RT_CAP_AMBIENT] & p->caps[RT_CAP_PERMITTED] & p->caps[RT_CAP_INHERITABLE];
	if (p->has_caps && raise_ambient(ambient & valid, last, err))
		return -1;
	if (p->no_new_privileges && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return vt_fail_errno(err, errno, "process.noNewPrivileges");
	if (sc && p->no_new_privileges && rt_seccomp_apply(sc, err))
		return vt_err_prefix(err, "linux.seccomp");
	return 0;
}

int rt_process_exec(const struct rt_process *p, vt_err *err)
{
	/* execvp searches the PATH of the environment it runs in: make that the container's. */
	if (clearenv())
		return vt_fail(err, "clearenv failed");
	for (size_t i = 0; p->env && p->env[i]; i++)
		if (strchr(p->env[i], '='))
			putenv((char *)p->env[i]);
	if (!getenv("PATH"))
		setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 1);
	/* The mask survives execve: a caller that blocks signals to wait with a signalfd (virtus's container
	 * monitor) must not hand the container a process deaf to SIGTERM. */
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execvp(p->args[0], (char *const *)p->args);
	return vt_fail_errno(err, errno, "cannot execute '%s'", p->args[0]);
}

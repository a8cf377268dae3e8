/* Name tables: capabilities, signals, rlimits, namespaces, and the OCI features document built from them. */
#include "runtime/rt.h"

#include <sched.h>
#include <signal.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>

static const char *const cap_names[] = {
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
	"CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
	"CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
	"CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
	"CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN",
	"CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
};

int rt_cap_from_name(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(cap_names); i++)
		if (!strcasecmp(name, cap_names[i]))
			return (int)i;
	return -1;
}

const char *rt_cap_name(int cap)
{
	return cap >= 0 && (size_t)cap < ARRAY_SIZE(cap_names) ? cap_names[cap] : NULL;
}

struct name_num {
	const char *name;
	int num;
};

static const struct name_num signals[] = {
	{ "HUP", SIGHUP }, { "INT", SIGINT }, { "QUIT", SIGQUIT }, { "ILL", SIGILL }, { "TRAP", SIGTRAP },
	{ "ABRT", SIGABRT }, { "IOT", SIGIOT }, { "BUS", SIGBUS }, { "FPE", SIGFPE }, { "KILL", SIGKILL },
	{ "USR1", SIGUSR1 }, { "SEGV", SIGSEGV }, { "USR2", SIGUSR2 }, { "PIPE", SIGPIPE },
	{ "ALRM", SIGALRM }, { "TERM", SIGTERM }, { "STKFLT", SIGSTKFLT }, { "CHLD", SIGCHLD },
	{ "CONT", SIGCONT }, { "STOP", SIGSTOP }, { "TSTP", SIGTSTP }, { "TTIN", SIGTTIN },
	{ "TTOU", SIGTTOU }, { "URG", SIGURG }, { "XCPU", SIGXCPU }, { "XFSZ", SIGXFSZ },
	{ "VTALRM", SIGVTALRM }, { "PROF", SIGPROF }, { "WINCH", SIGWINCH }, { "IO", SIGIO },
	{ "POLL", SIGPOLL }, { "PWR", SIGPWR }, { "SYS", SIGSYS },
};

int rt_signal_from_name(const char *s)
{
	uint64_t n;
	if (!parse_uint(s, 1, (uint64_t)SIGRTMAX, &n))
		return (int)n;
	if (!strncasecmp(s, "SIG", 3))
		s += 3;
	for (size_t i = 0; i < ARRAY_SIZE(signals); i++)
		if (!strcasecmp(s, signals[i].name))
			return signals[i].num;
	/* RTMIN+n / RTMAX-n */
	if (!strncasecmp(s, "RTMIN", 5) || !strncasecmp(s, "RTMAX", 5)) {
		bool min = !strncasecmp(s, "RTMIN", 5);
		int base = min ? SIGRTMIN : SIGRTMAX;
		if (!s[5])
			return base;
		if ((min && s[5] == '+') || (!min && s[5] == '-')) {
			if (parse_uint(s + 6, 0, (uint64_t)(SIGRTMAX - SIGRTMIN), &n))
				return -1;
			return min ? base + (int)n : base - (int)n;
		}
	}
	return -1;
}

static const struct name_num rlimits[] = {
	{ "RLIMIT_AS", RLIMIT_AS }, { "RLIMIT_CORE", RLIMIT_CORE }, { "RLIMIT_CPU", RLIMIT_CPU },
	{ "RLIMIT_DATA", RLIMIT_DATA }, { "RLIMIT_FSIZE", RLIMIT_FSIZE }, { "RLIMIT_LOCKS", RLIMIT_LOCKS },
	{ "RLIMIT_MEMLOCK", RLIMIT_MEMLOCK }, { "RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE },
	{ "RLIMIT_NICE", RLIMIT_NICE }, { "RLIMIT_NOFILE", RLIMIT_NOFILE }, { "RLIMIT_NPROC", RLIMIT_NPROC },
	{ "RLIMIT_RSS", RLIMIT_RSS }, { "RLIMIT_RTPRIO", RLIMIT_RTPRIO }, { "RLIMIT_RTTIME", RLIMIT_RTTIME },
	{ "RLIMIT_SIGPENDING", RLIMIT_SIGPENDING }, { "RLIMIT_STACK", RLIMIT_STACK },
};

int rt_rlimit_from_name(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(rlimits); i++)
		if (!strcmp(name, rlimits[i].name))
			return rlimits[i].num;
	return -1;
}

struct ns_name {
	const char *oci, *proc;
	int flag;
};

static const struct ns_name namespaces[] = {
	{ "user", "user", CLONE_NEWUSER }, { "pid", "pid", CLONE_NEWPID }, { "network", "net", CLONE_NEWNET },
	{ "ipc", "ipc", CLONE_NEWIPC }, { "uts", "uts", CLONE_NEWUTS }, { "mount", "mnt", CLONE_NEWNS },
	{ "cgroup", "cgroup", CLONE_NEWCGROUP },
};

int rt_namespace_from_name(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(namespaces); i++)
		if (!strcmp(name, namespaces[i].oci))
			return namespaces[i].flag;
	return 0;
}

const char *rt_namespace_proc_name(int flag)
{
	for (size_t i = 0; i < ARRAY_SIZE(namespaces); i++)
		if (namespaces[i].flag == flag)
			return namespaces[i].proc;
	return NULL;
}

static json_object *string_array(const char *const *names, size_t n)
{
	json_object *a = json_object_new_array();
	for (size_t i = 0; i < n; i++)
		json_object_array_add(a, json_object_new_string(names[i]));
	return a;
}

static const char *const mount_options[] = {
	"async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec", "mand", "noatime",
	"nodev", "nodiratime", "noexec", "nomand", "norelatime", "nostrictatime", "nosuid", "private", "rbind",
	"relatime", "remount", "ro", "rprivate", "rshared", "rslave", "runbindable", "rw", "shared", "slave",
	"strictatime", "suid", "sync", "unbindable",
};

static const char *const hook_names[] = {
	"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop",
};

json_object *rt_features_json(void)
{
	json_object *f = json_object_new_object();
	json_object_object_add(f, "ociVersionMin", json_object_new_string("1.0.0"));
	json_object_object_add(f, "ociVersionMax", json_object_new_string(RT_OCI_VERSION));
	json_object_object_add(f, "hooks", string_array(hook_names, ARRAY_SIZE(hook_names)));
	json_object_object_add(f, "mountOptions", string_array(mount_options, ARRAY_SIZE(mount_options)));
	json_object *lx = json_object_new_object();
	json_object *ns = json_object_new_array();
	for (size_t i = 0; i < ARRAY_SIZE(namespaces); i++)
		json_object_array_add(ns, json_object_new_string(namespaces[i].oci));
	json_object_object_add(lx, "namespaces", ns);
	json_object_object_add(lx, "capabilities", string_array(cap_names, ARRAY_SIZE(cap_names)));
	json_object *cg = json_object_new_object();
	json_object_object_add(cg, "v1", json_object_new_boolean(1));
	json_object_object_add(cg, "v2", json_object_new_boolean(1));
	json_object_object_add(cg, "systemd", json_object_new_boolean(0));
	json_object_object_add(cg, "systemdUser", json_object_new_boolean(0));
	json_object_object_add(lx, "cgroup", cg);
	json_object *sc = json_object_new_object();
	json_object_object_add(sc, "enabled", json_object_new_boolean(1));
	json_object_object_add(lx, "seccomp", sc);
	json_object *ap = json_object_new_object();
	json_object_object_add(ap, "enabled", json_object_new_boolean(0));
	json_object_object_add(lx, "apparmor", ap);
	json_object_object_add(f, "linux", lx);
	json_object *ann = json_object_new_object();
	json_object_object_add(ann, "org.opencontainers.runtime-spec.features.runtime",
			       json_object_new_string("virtus-runtime " RT_VERSION));
	json_object_object_add(f, "annotations", ann);
	return f;
}

/* The config.json that `spec` writes: a busybox-style shell in a rootfs/ directory, with the namespaces,
 * mounts, masked paths and capabilities a default container gets. Built with json-c, not a text blob,
 * so it is always valid JSON. */
#include "runtime/rt.h"

static json_object *strings(const char *const *v)
{
	json_object *a = json_object_new_array();
	for (; *v; v++)
		json_object_array_add(a, json_object_new_string(*v));
	return a;
}

static json_object *mount_obj(const char *dest, const char *type, const char *src, const char *const *opts)
{
	json_object *m = json_object_new_object();
	json_object_object_add(m, "destination", json_object_new_string(dest));
	json_object_object_add(m, "type", json_object_new_string(type));
	json_object_object_add(m, "source", json_object_new_string(src));
	if (opts)
		json_object_object_add(m, "options", strings(opts));
	return m;
}

static json_object *default_process(void)
{
	static const char *const args[] = { "sh", NULL };
	static const char *const env[] = { "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
					   "TERM=xterm", NULL };
	static const char *const caps[] = { "CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE", NULL };
	json_object *p = json_object_new_object();
	json_object_object_add(p, "terminal", json_object_new_boolean(1));
	json_object *user = json_object_new_object();
	json_object_object_add(user, "uid", json_object_new_int(0));
	json_object_object_add(user, "gid", json_object_new_int(0));
	json_object_object_add(p, "user", user);
	json_object_object_add(p, "args", strings(args));
	json_object_object_add(p, "env", strings(env));
	json_object_object_add(p, "cwd", json_object_new_string("/"));
	json_object *c = json_object_new_object();
	static const char *const sets[] = { "bounding", "effective", "permitted" };
	for (size_t i = 0; i < ARRAY_SIZE(sets); i++)
		json_object_object_add(c, sets[i], strings(caps));
	json_object_object_add(p, "capabilities", c);
	json_object *rl = json_object_new_object();
	json_object_object_add(rl, "type", json_object_new_string("RLIMIT_NOFILE"));
	json_object_object_add(rl, "hard", json_object_new_int(1024));
	json_object_object_add(rl, "soft", json_object_new_int(1024));
	json_object *rls = json_object_new_array();
	json_object_array_add(rls, rl);
	json_object_object_add(p, "rlimits", rls);
	json_object_object_add(p, "noNewPrivileges", json_object_new_boolean(1));
	return p;
}

static json_object *default_mounts(void)
{
	static const char *const dev[] = { "nosuid", "strictatime", "mode=755", "size=65536k", NULL };
	static const char *const pts[] = { "nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620",
					   "gid=5", NULL };
	static const char *const shm[] = { "nosuid", "noexec", "nodev", "mode=1777", "size=65536k", NULL };
	static const char *const mq[] = { "nosuid", "noexec", "nodev", NULL };
	static const char *const sys[] = { "nosuid", "noexec", "nodev", "ro", NULL };
	static const char *const cg[] = { "nosuid", "noexec", "nodev", "relatime", "ro", NULL };
	json_object *a = json_object_new_array();
	json_object_array_add(a, mount_obj("/proc", "proc", "proc", NULL));
	json_object_array_add(a, mount_obj("/dev", "tmpfs", "tmpfs", dev));
	json_object_array_add(a, mount_obj("/dev/pts", "devpts", "devpts", pts));
	json_object_array_add(a, mount_obj("/dev/shm", "tmpfs", "shm", shm));
	json_object_array_add(a, mount_obj("/dev/mqueue", "mqueue", "mqueue", mq));
	json_object_array_add(a, mount_obj("/sys", "sysfs", "sysfs", sys));
	json_object_array_add(a, mount_obj("/sys/fs/cgroup", "cgroup", "cgroup", cg));
	return a;
}

static json_object *default_linux(void)
{
	static const char *const ns[] = { "pid", "network", "ipc", "uts", "mount", "cgroup", NULL };
	static const char *const masked[] = { "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
					      "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
					      "/proc/sched_debug", "/sys/firmware", "/proc/scsi", NULL };
	static const char *const ro[] = { "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
					  "/proc/sysrq-trigger", NULL };
	json_object *l = json_object_new_object();
	json_object *a = json_object_new_array();
	for (const char *const *n = ns; *n; n++) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "type", json_object_new_string(*n));
		json_object_array_add(a, o);
	}
	json_object_object_add(l, "namespaces", a);
	json_object_object_add(l, "maskedPaths", strings(masked));
	json_object_object_add(l, "readonlyPaths", strings(ro));
	return l;
}

json_object *rt_spec_default(void)
{
	json_object *s = json_object_new_object();
	json_object_object_add(s, "ociVersion", json_object_new_string(RT_OCI_VERSION));
	json_object_object_add(s, "process", default_process());
	json_object *root = json_object_new_object();
	json_object_object_add(root, "path", json_object_new_string("rootfs"));
	json_object_object_add(root, "readonly", json_object_new_boolean(1));
	json_object_object_add(s, "root", root);
	json_object_object_add(s, "hostname", json_object_new_string("virtus"));
	json_object_object_add(s, "mounts", default_mounts());
	json_object_object_add(s, "linux", default_linux());
	return s;
}

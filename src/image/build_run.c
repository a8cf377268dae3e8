/* RUN: the step's command runs as a container over the mounted image, in-process with the runtime library.
 *
 * The bundle is the runtime's default config with the image config's process (args, env, cwd, user), no
 * terminal, a writable root, docker's default build capabilities, and the host's network namespace (RUN
 * apt-get must reach the network; a build has no published ports to isolate). /etc/resolv.conf and /etc/hosts
 * are private copies of the host's, bind-mounted. Mount points the runtime had to create in the image
 * (/proc, /dev, /sys, the two /etc files) are removed again afterwards, so they do not end up in the layer.
 * stdin is whatever the caller gave us (cli/build.c makes it /dev/null); stdout and stderr are ours. */
#include "image/build_internal.h"
#include "lib/util.h"
#include "runtime/rt.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>

/* What docker gives a RUN step (its default capability set). */
static const char *const build_caps[] = {
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
	"CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
	"CAP_AUDIT_WRITE",
};

/* Paths the runtime may create in the rootfs as mount points; deepest last. */
static const char *const mount_points[] = { "/proc", "/dev", "/sys", "/etc", "/etc/resolv.conf", "/etc/hosts" };

static json_object *string_array(const char *const *v)
{
	json_object *a = json_object_new_array();
	for (; v && *v; v++)
		json_object_array_add(a, json_object_new_string(*v));
	return a;
}

static void set_process(json_object *spec, const struct build_run *r)
{
	json_object *p = json_object_object_get(spec, "process");
	json_object_object_add(p, "terminal", json_object_new_boolean(0));
	json_object_object_add(p, "args", string_array(r->args));
	json_object_object_add(p, "env", string_array(r->env));
	json_object_object_add(p, "cwd", json_object_new_string(r->cwd));
	json_object *user = json_object_new_object();
	json_object_object_add(user, "uid", json_object_new_int64(r->uid));
	json_object_object_add(user, "gid", json_object_new_int64(r->gid));
	json_object_object_add(p, "user", user);
	json_object_object_add(p, "noNewPrivileges", json_object_new_boolean(0));
	json_object *caps = json_object_new_object();
	static const char *const sets[] = { "bounding", "effective", "permitted" };
	for (size_t i = 0; i < ARRAY_SIZE(sets); i++) {
		json_object *a = json_object_new_array();
		for (size_t k = 0; k < ARRAY_SIZE(build_caps); k++)
			json_object_array_add(a, json_object_new_string(build_caps[k]));
		json_object_object_add(caps, sets[i], a);
	}
	json_object_object_add(p, "capabilities", caps);
}

/* No network namespace of its own: the host's. */
static void use_host_network(json_object *spec)
{
	json_object *ns = json_object_object_get(json_object_object_get(spec, "linux"), "namespaces");
	json_object *kept = json_object_new_array();
	for (size_t i = 0; i < json_object_array_length(ns); i++) {
		json_object *n = json_object_array_get_idx(ns, i);
		if (strcmp(json_object_get_string(json_object_object_get(n, "type")), "network"))
			json_object_array_add(kept, json_object_get(n));
	}
	json_object_object_add(json_object_object_get(spec, "linux"), "namespaces", kept);
}

static void add_bind(json_object *spec, const char *dest, const char *src)
{
	json_object *m = json_object_new_object();
	json_object_object_add(m, "destination", json_object_new_string(dest));
	json_object_object_add(m, "type", json_object_new_string("bind"));
	json_object_object_add(m, "source", json_object_new_string(src));
	static const char *const opts[] = { "rbind", "rprivate", "nosuid", "nodev", NULL };
	json_object_object_add(m, "options", string_array(opts));
	json_object_array_add(json_object_object_get(spec, "mounts"), m);
}

/* A private copy of a host file in the work dir (an empty one if the host has none). */
static int private_copy(const char *host, const char *copy, vt_err *err)
{
	cleanup_free void *data = NULL;
	size_t len = 0;
	vt_err ignored;
	if (read_file(host, MiB, &data, &len, &ignored))
		len = 0;
	cleanup_close int fd = open(copy, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || (len && write_all(fd, data, len)))
		return vt_fail_errno(err, errno, "cannot write %s", copy);
	return 0;
}

static int write_bundle(const struct build_run *r, const char *bundle, vt_err *err)
{
	char resolv[PATH_MAX], hosts[PATH_MAX], config[PATH_MAX];
	if (build_path(resolv, sizeof(resolv), err, "%s/resolv.conf", bundle) ||
	    build_path(hosts, sizeof(hosts), err, "%s/hosts", bundle) ||
	    build_path(config, sizeof(config), err, "%s/config.json", bundle) || build_mkdirs(bundle, 0700, err) || private_copy("/etc/resolv.conf", resolv, err) ||
	    private_copy("/etc/hosts", hosts, err))
		return -1;
	json_object *spec = rt_spec_default();
	set_process(spec, r);
	json_object *root = json_object_object_get(spec, "root");
	json_object_object_add(root, "path", json_object_new_string(r->rootfs));
	json_object_object_add(root, "readonly", json_object_new_boolean(0));
	json_object_object_add(spec, "hostname", json_object_new_string("virtus-build"));
	use_host_network(spec);
	add_bind(spec, "/etc/resolv.conf", resolv);
	add_bind(spec, "/etc/hosts", hosts);
	int rc = json_object_to_file_ext(config, spec, JSON_C_TO_STRING_PLAIN) ? vt_fail(err, "cannot write %s", config)
									      : 0;
	json_object_put(spec);
	return rc;
}

static void missing_mount_points(const char *rootfs, bool missing[])
{
	for (size_t i = 0; i < ARRAY_SIZE(mount_points); i++) {
		char p[PATH_MAX];
		struct stat st;
		snprintf(p, sizeof(p), "%s%s", rootfs, mount_points[i]);
		missing[i] = lstat(p, &st) && errno == ENOENT;
	}
}

/* Remove the (empty) mount points that were not there before the run, deepest first. */
static void remove_new_mount_points(const char *rootfs, const bool missing[])
{
	for (size_t i = ARRAY_SIZE(mount_points); i-- > 0;) {
		char p[PATH_MAX];
		struct stat st;
		snprintf(p, sizeof(p), "%s%s", rootfs, mount_points[i]);
		if (!missing[i] || lstat(p, &st))
			continue;
		if (S_ISDIR(st.st_mode))
			rmdir(p); /* fails, as it should, if the step put something there */
		else if (S_ISREG(st.st_mode) && st.st_size == 0)
			unlink(p);
	}
}

/* The pid the runtime wrote at create time (the process may already have exited by now). */
static int container_pid(const char *pid_file, pid_t *pid, vt_err *err)
{
	cleanup_free void *data = NULL;
	size_t len;
	uint64_t v;
	if (read_file(pid_file, 64, &data, &len, err))
		return -1;
	char text[32];
	snprintf(text, sizeof(text), "%.*s", (int)MIN(len, sizeof(text) - 1), (char *)data);
	text[strcspn(text, "\n")] = 0;
	if (parse_uint(text, 1, INT32_MAX, &v))
		return vt_fail(err, "%s: not a pid", pid_file);
	*pid = (pid_t)v;
	return 0;
}

/* Wait for init (our child: the runtime made us its subreaper) or a stop signal, which kills the container. */
static int wait_step(const struct rt_globals *g, const char *id, pid_t pid, int stop_fd, int *status,
		     bool *stopped)
{
	cleanup_close int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	while (pfd >= 0 && stop_fd >= 0) {
		struct pollfd p[2] = { { .fd = pfd, .events = POLLIN }, { .fd = stop_fd, .events = POLLIN } };
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[0].revents)
			break;
		if (p[1].revents) {
			struct signalfd_siginfo si;
			if (read(stop_fd, &si, sizeof(si)) > 0)
				*stopped = true;
			vt_err ignored;
			rt_cmd_kill(g, id, SIGKILL, true, &ignored);
		}
	}
	int ws;
	while (waitpid(pid, &ws, 0) < 0)
		if (errno != EINTR)
			return -1;
	*status = WIFSIGNALED(ws) ? 128 + WTERMSIG(ws) : WEXITSTATUS(ws);
	return 0;
}

void build_run_tidy_upper(const struct build_run *r, const char *upper_dir)
{
	char etc[PATH_MAX], opaque[4];
	struct stat st;
	vt_err ignored;
	if (!r->etc_existed || build_path(etc, sizeof(etc), &ignored, "%s/etc", upper_dir) || lstat(etc, &st) ||
	    !S_ISDIR(st.st_mode) || st.st_mode != r->etc_before.st_mode || st.st_uid != r->etc_before.st_uid ||
	    st.st_gid != r->etc_before.st_gid || lgetxattr(etc, "trusted.overlay.opaque", opaque, sizeof(opaque)) >= 0)
		return;
	rmdir(etc); /* fails, as it should, when the step left something in /etc */
}

int build_run_step(struct build_run *r, int *status, bool *stopped, vt_err *err)
{
	char bundle[PATH_MAX], root[PATH_MAX], pid_file[PATH_MAX], id[64];
	if (build_path(bundle, sizeof(bundle), err, "%s/bundle", r->work_dir) ||
	    build_path(root, sizeof(root), err, "%s/run", r->work_dir) ||
	    build_path(pid_file, sizeof(pid_file), err, "%s/pid", r->work_dir))
		return -1;
	snprintf(id, sizeof(id), "virtus-build-%d-%llx", (int)getpid(), (unsigned long long)now_ns());
	*stopped = false;
	bool missing[ARRAY_SIZE(mount_points)];
	missing_mount_points(r->rootfs, missing);
	char etc[PATH_MAX];
	r->etc_existed = !build_path(etc, sizeof(etc), err, "%s/etc", r->rootfs) && !lstat(etc, &r->etc_before) &&
			 S_ISDIR(r->etc_before.st_mode);
	if (write_bundle(r, bundle, err))
		return -1;
	struct rt_globals g = { .root = root };
	struct rt_create_opts o = { .bundle = bundle, .pid_file = pid_file, .detach = true };
	int ignored_status;
	pid_t pid = 0;
	int rc = rt_cmd_run(&g, id, &o, &ignored_status, err);
	if (!rc)
		rc = container_pid(pid_file, &pid, err);
	if (!rc && wait_step(&g, id, pid, r->stop_fd, status, stopped))
		rc = vt_fail_errno(err, errno, "waiting for the RUN container");
	vt_err derr;
	if (rt_cmd_delete(&g, id, true, &derr) && !rc)
		rc = vt_fail(err, "removing the RUN container: %s", derr.msg);
	remove_new_mount_points(r->rootfs, missing);
	return rc;
}

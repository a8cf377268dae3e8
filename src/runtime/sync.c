/* Small protocol between the runtime and the processes it forks: fixed-size messages over a
 * SOCK_SEQPACKET pair, so a child's death shows up as EOF instead of a hang. */
#include "runtime/rt.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

int rt_sync_send(int fd, int type, int value, const char *msg)
{
	struct rt_sync_msg m = { .type = type, .value = value };
	if (msg)
		snprintf(m.msg, sizeof(m.msg), "%s", msg);
	ssize_t n;
	do
		n = send(fd, &m, sizeof(m), MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n == (ssize_t)sizeof(m) ? 0 : -1;
}

int rt_sync_recv(int fd, struct rt_sync_msg *m, vt_err *err)
{
	ssize_t n;
	do
		n = recv(fd, m, sizeof(*m), 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return vt_fail_errno(err, errno, "lost contact with the container process");
	if (n != (ssize_t)sizeof(*m))
		return vt_fail(err, "the container process exited during setup");
	m->msg[sizeof(m->msg) - 1] = 0;
	return 0;
}

int rt_sync_expect(int fd, int type, struct rt_sync_msg *m, vt_err *err)
{
	if (rt_sync_recv(fd, m, err))
		return -1;
	if (m->type == RT_SYNC_ERROR)
		return rt_sync_error(err, m);
	if (m->type != type)
		return vt_fail(err, "container setup: unexpected message %d (wanted %d)", m->type, type);
	return 0;
}

int rt_sync_error(vt_err *err, const struct rt_sync_msg *m)
{
	vt_fail(err, "%s", m->msg);
	if (err)
		err->errnum = m->value;
	return -1;
}

void rt_sync_die(int fd, const vt_err *err)
{
	rt_sync_send(fd, RT_SYNC_ERROR, err->errnum, err->msg);
	_exit(1);
}

void rt_sync_middle(int child_sock, int (*enter)(void *ctx, vt_err *err), void (*child)(void *ctx), void *ctx)
{
	vt_err err = { 0 };
	struct rt_sync_msg m;
	if (rt_sync_expect(child_sock, RT_SYNC_GO, &m, &err))
		_exit(1);
	if (enter(ctx, &err))
		rt_sync_die(child_sock, &err);
	pid_t pid = fork();
	if (pid < 0) {
		vt_fail_errno(&err, errno, "fork");
		rt_sync_die(child_sock, &err);
	}
	if (pid == 0) {
		child(ctx);
		_exit(127); /* child() does not return */
	}
	rt_sync_send(child_sock, RT_SYNC_PID, pid, NULL);
	_exit(0);
}

int rt_join_namespace(const char *path, int flag, vt_err *err)
{
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return vt_fail_errno(err, errno, "cannot open namespace %s", path);
	if (setns(fd, flag))
		return vt_fail_errno(err, errno, "cannot join %s namespace %s", rt_namespace_proc_name(flag), path);
	return 0;
}

static int write_map(pid_t pid, const char *file, const struct rt_idmap *m, size_t n, vt_err *err)
{
	char path[64], buf[4096];
	size_t len = 0;
	for (size_t i = 0; i < n && len < sizeof(buf); i++)
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%u %u %u\n", m[i].container, m[i].host,
					m[i].size);
	if (len >= sizeof(buf))
		return vt_fail(err, "too many id mappings for %s", file);
	snprintf(path, sizeof(path), "/proc/%d/%s", pid, file);
	cleanup_close int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return vt_fail_errno(err, errno, "cannot open %s", path);
	/* The kernel wants the whole map in one write. */
	if (write(fd, buf, len) != (ssize_t)len)
		return vt_fail_errno(err, errno, "linux.%s: the kernel refused the mapping",
				     strcmp(file, "uid_map") ? "gidMappings" : "uidMappings");
	return 0;
}

int rt_write_id_maps(pid_t pid, const struct rt_idmap *uids, size_t n_uids, const struct rt_idmap *gids,
		     size_t n_gids, vt_err *err)
{
	if (geteuid() != 0) {
		/* Without CAP_SETGID in the parent namespace, gid_map is only writable after setgroups is denied. */
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/setgroups", pid);
		cleanup_close int fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write_all(fd, "deny", 4))
			return vt_fail_errno(err, errno, "cannot write %s", path);
	}
	if (write_map(pid, "uid_map", uids, n_uids, err) || write_map(pid, "gid_map", gids, n_gids, err))
		return -1;
	return 0;
}

static bool is_executable(const char *path)
{
	struct stat st;
	return !stat(path, &st) && S_ISREG(st.st_mode) && !access(path, X_OK);
}

int rt_check_executable(const struct rt_process *p, vt_err *err)
{
	const char *name = p->args[0];
	if (strchr(name, '/')) {
		if (is_executable(name))
			return 0;
		/* The errno tells the caller which: not found (ENOENT) or not runnable (EACCES), as a shell does. */
		int e = access(name, F_OK) ? ENOENT : EACCES;
		vt_fail(err, "process.args[0]: '%s' is not an executable file%s", name,
			e == ENOENT ? " (it does not exist)" : "");
		if (err)
			err->errnum = e;
		return -1;
	}
	const char *path = NULL;
	for (size_t i = 0; p->env && p->env[i]; i++)
		if (!strncmp(p->env[i], "PATH=", 5))
			path = p->env[i] + 5;
	if (!path)
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	cleanup_free char *copy = strdup(path);
	char *save = NULL;
	for (char *dir = copy ? strtok_r(copy, ":", &save) : NULL; dir; dir = strtok_r(NULL, ":", &save)) {
		cleanup_free char *full = rt_path_join(dir, name);
		if (full && is_executable(full))
			return 0;
	}
	vt_fail(err, "process.args[0]: executable '%s' not found in PATH %s", name, path);
	if (err)
		err->errnum = ENOENT;
	return -1;
}

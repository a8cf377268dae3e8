/* Container state under --root/<id>/state.json: written by create, read by every later command from a
 * fresh process. The status is derived from the live system (is the init process still the same process?
 * is it still waiting on the exec FIFO?), never trusted from the file alone. */
#include "runtime/rt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>

#define STATE_FILE "state.json"
#define STATE_MAX (1 * MiB)

char *rt_path_join(const char *a, const char *b)
{
	char *out;
	size_t la = strlen(a);
	bool slash = la && a[la - 1] == '/';
	if (asprintf(&out, "%s%s%s", a, slash || b[0] == '/' ? "" : "/", b) < 0)
		return NULL;
	return out;
}

int rt_validate_id(const char *id, vt_err *err)
{
	if (!id || !*id)
		return vt_fail(err, "a container ID is required");
	if (strlen(id) > 1024)
		return vt_fail(err, "container ID is too long (%zu characters)", strlen(id));
	if (!strcmp(id, ".") || !strcmp(id, ".."))
		return vt_fail(err, "invalid container ID '%s'", id);
	for (const char *c = id; *c; c++) {
		bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
			  *c == '_' || *c == '-' || *c == '.' || *c == '+';
		if (!ok)
			return vt_fail(err, "invalid container ID '%s': use letters, digits, '_', '-', '.', '+'", id);
	}
	return 0;
}

char *rt_state_dir(const char *root, const char *id)
{
	return rt_path_join(root, id);
}

char *rt_now_rfc3339(void)
{
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	char buf[64], *out;
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
	if (asprintf(&out, "%s.%09ldZ", buf, ts.tv_nsec) < 0)
		return NULL;
	return out;
}

int rt_write_file_atomic(const char *path, const char *data, bool durable, vt_err *err)
{
	cleanup_free char *tmp = NULL;
	if (asprintf(&tmp, "%s.tmp", path) < 0)
		return vt_fail_errno(err, ENOMEM, "writing %s", path);
	cleanup_close int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return vt_fail_errno(err, errno, "cannot create %s", tmp);
	if (write_all(fd, data, strlen(data)) || (durable && fsync(fd))) {
		int e = errno;
		unlink(tmp);
		return vt_fail_errno(err, e, "cannot write %s", tmp);
	}
	if (rename(tmp, path)) {
		int e = errno;
		unlink(tmp);
		return vt_fail_errno(err, e, "cannot rename %s to %s", tmp, path);
	}
	return 0;
}

json_object *rt_json_parse(const char *text, size_t len)
{
	json_tokener *tok = json_tokener_new();
	if (!tok)
		return NULL;
	json_object *j = json_tokener_parse_ex(tok, text, (int)len);
	if (json_tokener_get_error(tok) != json_tokener_success || json_tokener_get_parse_end(tok) != len) {
		json_object_put(j);
		j = NULL;
	}
	json_tokener_free(tok);
	return j;
}

int rt_write_pid_file(const char *path, pid_t pid, vt_err *err)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "%d", pid);
	cleanup_free char *abs = NULL;
	if (path[0] == '/') {
		abs = strdup(path);
	} else {
		/* Relative to where the command was run (podman passes absolute paths; people may not). */
		cleanup_free char *cwd = getcwd(NULL, 0);
		abs = cwd ? rt_path_join(cwd, path) : NULL;
	}
	if (!abs)
		return vt_fail_errno(err, errno, "--pid-file %s", path);
	return rt_write_file_atomic(abs, buf, false, err) ? vt_err_prefix(err, "--pid-file") : 0;
}

static void add_string(json_object *o, const char *key, const char *v)
{
	if (v)
		json_object_object_add(o, key, json_object_new_string(v));
}

static void add_copy(json_object *o, const char *key, json_object *v)
{
	if (v)
		json_object_object_add(o, key, json_object_get(v));
}

int rt_state_save(const struct rt_state *st, vt_err *err)
{
	json_object *o = json_object_new_object();
	add_string(o, "id", st->id);
	add_string(o, "bundle", st->bundle);
	add_string(o, "created", st->created);
	json_object_object_add(o, "pid", json_object_new_int(st->pid));
	json_object_object_add(o, "startTime", json_object_new_uint64(st->start_time));
	json_object_object_add(o, "paused", json_object_new_boolean(st->paused));
	json_object_object_add(o, "noPivot", json_object_new_boolean(st->no_pivot));
	if (st->vm)
		add_string(o, "isolation", "vm");
	if (st->shared_rootfs) {
		add_string(o, "sharedMountRoot", st->shared_rootfs);
		json_object_object_add(o, "rootfsMountBase", json_object_new_uint64(st->rootfs_mnt_base));
	}
	add_copy(o, "annotations", st->annotations);
	add_copy(o, "cgroup", st->cgroup);
	add_copy(o, "hooks", st->hooks);
	cleanup_free char *path = rt_path_join(st->dir, STATE_FILE);
	int rc = path ? rt_write_file_atomic(path, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN), false, err)
		      : vt_fail_errno(err, ENOMEM, "saving state");
	json_object_put(o);
	return rc;
}

static char *dup_field(json_object *o, const char *key)
{
	json_object *v;
	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return strdup(json_object_get_string(v));
}

static json_object *obj_field(json_object *o, const char *key)
{
	json_object *v;
	return json_object_object_get_ex(o, key, &v) && !json_object_is_type(v, json_type_null) ? v : NULL;
}

int rt_state_load(const char *root, const char *id, struct rt_state **out, vt_err *err)
{
	if (rt_validate_id(id, err))
		return -1;
	cleanup_free char *dir = rt_state_dir(root, id);
	cleanup_free char *path = dir ? rt_path_join(dir, STATE_FILE) : NULL;
	if (!path)
		return vt_fail_errno(err, ENOMEM, "loading state");
	if (access(dir, F_OK))
		return vt_fail(err, "container '%s' does not exist", id);
	cleanup_free char *text = NULL;
	size_t len;
	if (read_file(path, STATE_MAX, (void **)&text, &len, err))
		return vt_err_prefix(err, "container '%s' has no readable state", id);
	json_object *j = rt_json_parse(text, len);
	if (!j || !json_object_is_type(j, json_type_object)) {
		json_object_put(j);
		return vt_fail(err, "container '%s': state file %s is corrupt", id, path);
	}
	struct rt_state *st = calloc(1, sizeof(*st));
	if (!st) {
		json_object_put(j);
		return vt_fail_errno(err, ENOMEM, "loading state");
	}
	st->json = j;
	st->id = strdup(id);
	st->dir = steal_ptr(dir);
	st->bundle = dup_field(j, "bundle");
	st->created = dup_field(j, "created");
	json_object *v = obj_field(j, "pid");
	st->pid = v ? json_object_get_int(v) : 0;
	v = obj_field(j, "startTime");
	st->start_time = v ? json_object_get_uint64(v) : 0;
	v = obj_field(j, "paused");
	st->paused = v && json_object_get_boolean(v);
	v = obj_field(j, "noPivot");
	st->no_pivot = v && json_object_get_boolean(v);
	v = obj_field(j, "isolation");
	st->vm = v && json_object_is_type(v, json_type_string) && !strcmp(json_object_get_string(v), "vm");
	st->shared_rootfs = dup_field(j, "sharedMountRoot");
	v = obj_field(j, "rootfsMountBase");
	st->rootfs_mnt_base = v ? json_object_get_uint64(v) : 0;
	st->annotations = obj_field(j, "annotations");
	st->cgroup = obj_field(j, "cgroup");
	st->hooks = obj_field(j, "hooks");
	*out = st;
	return 0;
}

void rt_state_free(struct rt_state *st)
{
	if (!st)
		return;
	free(st->id);
	free(st->dir);
	free(st->bundle);
	free(st->created);
	free(st->shared_rootfs);
	json_object_put(st->json);
	free(st);
}

int rt_proc_start_time(pid_t pid, unsigned long long *out)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	/* The command name may contain spaces and parentheses: fields start after the last ')'. */
	char *p = strrchr(buf, ')');
	if (!p || p[1] != ' ')
		return -1;
	char state = p[2];
	if (state == 'Z' || state == 'X')
		return -1;
	p += 2;
	for (int field = 3; field < 22; field++) {
		p = strchr(p, ' ');
		if (!p)
			return -1;
		p++;
	}
	*out = strtoull(p, NULL, 10);
	return 0;
}

bool rt_pid_alive(pid_t pid, unsigned long long start_time)
{
	unsigned long long now;
	if (pid <= 0 || rt_proc_start_time(pid, &now))
		return false;
	return now == start_time;
}

enum rt_status rt_state_status(const struct rt_state *st)
{
	if (!rt_pid_alive(st->pid, st->start_time))
		return RT_STOPPED;
	cleanup_free char *fifo = rt_path_join(st->dir, "exec.fifo");
	if (fifo && !access(fifo, F_OK))
		return RT_CREATED;
	return st->paused ? RT_PAUSED : RT_RUNNING;
}

const char *rt_status_name(enum rt_status s)
{
	static const char *const names[] = { "creating", "created", "running", "paused", "stopped" };
	return names[s];
}

json_object *rt_state_oci_json(const struct rt_state *st, enum rt_status status)
{
	json_object *o = json_object_new_object();
	add_string(o, "ociVersion", RT_OCI_VERSION);
	add_string(o, "id", st->id);
	add_string(o, "status", rt_status_name(status));
	json_object_object_add(o, "pid", json_object_new_int(status == RT_STOPPED ? 0 : st->pid));
	add_string(o, "bundle", st->bundle);
	add_string(o, "created", st->created);
	add_copy(o, "annotations", st->annotations);
	return o;
}

int rt_remove_tree(const char *path)
{
	DIR *d = opendir(path);
	if (!d)
		return errno == ENOTDIR ? unlink(path) : (errno == ENOENT ? 0 : -1);
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		cleanup_free char *sub = rt_path_join(path, e->d_name);
		if (!sub)
			continue;
		if (e->d_type == DT_DIR)
			rt_remove_tree(sub);
		else
			unlink(sub);
	}
	closedir(d);
	return rmdir(path);
}

int rt_wait_pid_gone(pid_t pid, unsigned long long start_time, int timeout_ms)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (fd < 0)
		return rt_pid_alive(pid, start_time) ? -1 : 0;
	if (!rt_pid_alive(pid, start_time)) {
		close(fd);
		return 0;
	}
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int rc;
	do
		rc = poll(&p, 1, timeout_ms);
	while (rc < 0 && errno == EINTR);
	close(fd);
	return rc > 0 ? 0 : -1;
}

const struct rt_vm_ops *rt_vm_ops(const struct rt_globals *g, const char *what, vt_err *err)
{
	vt_err why = { 0 };
	const struct rt_vm_ops *ops = g->vm_ops ? g->vm_ops(&why) : NULL;
	if (!ops)
		vt_fail(err, "%s VM isolation is not available here%s%s", what, why.msg[0] ? ": " : "", why.msg);
	return ops;
}

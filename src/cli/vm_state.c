/* The VM directory of each VM on this host (contract in vm_state.h). */
#include "cli/vm_state.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api/handoff.h"
#include "lib/util.h"

#define VM_RUN_DIR_DEFAULT "/run/virtus-vms"
#define STATE_FILE "vm.json"

/* Root's VMs live under /run; another user's under their own runtime directory (XDG_RUNTIME_DIR when it is
 * theirs, else /tmp/virtus-vms-UID, which make_root checks is theirs alone), so that a member of the kvm
 * group runs VMs without root's directory. */
int vm_state_root(char *out, size_t len, vt_err *err)
{
	const char *env = getenv("VIRTUS_VM_RUN_DIR");
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	struct stat sb;
	int n;
	if (env && *env)
		n = snprintf(out, len, "%s", env);
	else if (geteuid() == 0)
		n = snprintf(out, len, "%s", VM_RUN_DIR_DEFAULT);
	else if (xdg && xdg[0] == '/' && stat(xdg, &sb) == 0 && S_ISDIR(sb.st_mode) && sb.st_uid == geteuid())
		n = snprintf(out, len, "%s/virtus-vms", xdg);
	else
		n = snprintf(out, len, "/tmp/virtus-vms-%u", (unsigned)geteuid());
	if (n < 0 || (size_t)n >= len)
		return vt_fail(err, "the VM directory root has too long a path (VIRTUS_VM_RUN_DIR, XDG_RUNTIME_DIR)");
	return 0;
}

int vm_state_check_name(const char *name, vt_err *err)
{
	size_t len = strlen(name);
	if (len == 0 || len > VM_NAME_MAX)
		return vt_fail(err, "a VM name has 1 to %d characters, '%s' has %zu", VM_NAME_MAX, name, len);
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
		if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-')))
			return vt_fail(err, "VM name '%s': use letters, digits, '_', '.' and '-', starting with a letter or digit", name);
	}
	return 0;
}

void vm_state_random_name(char *out, size_t len)
{
	uint8_t r[3] = { 0 };
	if (getrandom(r, sizeof(r), 0) != sizeof(r)) {
		uint64_t t = now_ns();
		memcpy(r, &t, sizeof(r));
	}
	snprintf(out, len, "vm-%02x%02x%02x", r[0], r[1], r[2]);
}

static int dir_of(const char *name, char *out, size_t len, vt_err *err)
{
	char root[PATH_MAX];
	if (vm_state_root(root, sizeof(root), err) < 0)
		return -1;
	if ((size_t)snprintf(out, len, "%s/%s", root, name) >= len)
		return vt_fail(err, "the VM directory of '%s' has too long a path", name);
	return 0;
}

static int path_in(const struct vm_state *st, const char *file, char *out, size_t len, vt_err *err)
{
	if ((size_t)snprintf(out, len, "%s/%s", st->dir, file) >= len)
		return vt_fail(err, "%s/%s: too long for a socket path (at most %d bytes); set VIRTUS_VM_RUN_DIR shorter",
			       st->dir, file, VM_SOCKET_PATH_MAX - 1);
	return 0;
}

bool vm_state_alive(const struct vm_state *st)
{
	return st->pid > 0 && (kill(st->pid, 0) == 0 || errno == EPERM);
}

/* A directory without a live VMM: its vm.json is missing (a VMM that died before publishing, older than
 * a few seconds) or names a dead process. */
static bool stale(const char *name, const char *dir)
{
	struct vm_state st;
	vt_err err;
	if (vm_state_load(name, &st, &err) == 0)
		return !vm_state_alive(&st);
	struct stat sb;
	return stat(dir, &sb) == 0 && time(NULL) - sb.st_mtime > 10;
}

/* The root, made if missing; it must be a directory of this user that no one else may write to (a
 * directory someone else made in /tmp under our name would otherwise hold our sockets). */
static int make_root(vt_err *err)
{
	char root[PATH_MAX];
	struct stat sb;
	if (vm_state_root(root, sizeof(root), err) < 0)
		return -1;
	if (mkdir(root, 0700) < 0 && errno != EEXIST)
		return vt_fail_errno(err, errno, "cannot make the VM directory root %s", root);
	if (lstat(root, &sb) < 0)
		return vt_fail_errno(err, errno, "cannot read the VM directory root %s", root);
	if (!S_ISDIR(sb.st_mode) || sb.st_uid != geteuid() || (sb.st_mode & 022))
		return vt_fail(err, "the VM directory root %s is not a directory of this user that only it may write to; "
			       "remove it, or set VIRTUS_VM_RUN_DIR", root);
	return 0;
}

int vm_state_create(const char *name, const char *api_socket, bool detached, struct vm_state *st, vt_err *err)
{
	*st = (struct vm_state){ .detached = detached };
	snprintf(st->name, sizeof(st->name), "%s", name);
	if (vm_state_check_name(name, err) < 0 || make_root(err) < 0 || dir_of(name, st->dir, sizeof(st->dir), err) < 0)
		return -1;
	if (mkdir(st->dir, 0700) < 0) {
		if (errno != EEXIST)
			return vt_fail_errno(err, errno, "cannot make %s", st->dir);
		if (!stale(name, st->dir))
			return vt_fail(err, "a VM named '%s' is already running (virtus vm ls)", name);
		vm_state_remove(st);
		if (mkdir(st->dir, 0700) < 0)
			return vt_fail_errno(err, errno, "cannot make %s", st->dir);
	}
	if (api_socket) {
		if (strlen(api_socket) >= sizeof(st->api_socket))
			return vm_state_remove(st), vt_fail(err, "--api-socket %s: at most %d bytes", api_socket, VM_SOCKET_PATH_MAX - 1);
		snprintf(st->api_socket, sizeof(st->api_socket), "%s", api_socket);
	} else if (path_in(st, "api.sock", st->api_socket, sizeof(st->api_socket), err) < 0) {
		return vm_state_remove(st), -1;
	}
	if (detached && path_in(st, "console.sock", st->console_socket, sizeof(st->console_socket), err) < 0)
		return vm_state_remove(st), -1;
	return 0;
}

int vm_state_publish(struct vm_state *st, vt_err *err)
{
	st->pid = getpid();
	st->started = (long long)time(NULL);
	json_object *o = json_object_new_object();
	json_object_object_add(o, "name", json_object_new_string(st->name));
	json_object_object_add(o, "pid", json_object_new_int(st->pid));
	json_object_object_add(o, "api_socket", json_object_new_string(st->api_socket));
	json_object_object_add(o, "console_socket", json_object_new_string(st->console_socket));
	json_object_object_add(o, "detached", json_object_new_boolean(st->detached));
	json_object_object_add(o, "started", json_object_new_int64(st->started));
	const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	char tmp[PATH_MAX + 16], final[PATH_MAX + 16];
	snprintf(tmp, sizeof(tmp), "%s/.%s", st->dir, STATE_FILE);
	snprintf(final, sizeof(final), "%s/%s", st->dir, STATE_FILE);
	int rc = 0;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write_all(fd, text, strlen(text)) < 0 || close(fd) < 0 || rename(tmp, final) < 0)
		rc = vt_fail_errno(err, errno, "cannot write %s", final);
	json_object_put(o);
	return rc;
}

static void copy_string(json_object *o, const char *key, char *out, size_t len)
{
	json_object *v;
	out[0] = '\0';
	if (json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string))
		snprintf(out, len, "%s", json_object_get_string(v));
}

int vm_state_load(const char *name, struct vm_state *st, vt_err *err)
{
	*st = (struct vm_state){ 0 };
	snprintf(st->name, sizeof(st->name), "%s", name);
	if (vm_state_check_name(name, err) < 0 || dir_of(name, st->dir, sizeof(st->dir), err) < 0)
		return -1;
	char path[PATH_MAX + 16];
	snprintf(path, sizeof(path), "%s/%s", st->dir, STATE_FILE);
	cleanup_free void *data = NULL;
	size_t size;
	if (read_file(path, 64 * 1024, &data, &size, err) < 0) {
		if (access(st->dir, F_OK) < 0)
			return vt_fail(err, "no VM named '%s' (virtus vm ls lists them)", name);
		return vt_fail(err, "VM '%s' is starting or gone: %s", name, err->msg);
	}
	json_object *o = json_tokener_parse(data);
	if (!o || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return vt_fail(err, "%s is not a VM state file", path);
	}
	json_object *v;
	if (json_object_object_get_ex(o, "pid", &v))
		st->pid = (pid_t)json_object_get_int(v);
	if (json_object_object_get_ex(o, "detached", &v))
		st->detached = json_object_get_boolean(v);
	if (json_object_object_get_ex(o, "started", &v))
		st->started = json_object_get_int64(v);
	copy_string(o, "api_socket", st->api_socket, sizeof(st->api_socket));
	copy_string(o, "console_socket", st->console_socket, sizeof(st->console_socket));
	json_object_put(o);
	return 0;
}

/* Only the files a VM's directory can hold, by name: the VMM removes its own directory from inside its
 * seccomp filter, which allows unlink and rmdir but no opening of directories. */
void vm_state_remove(const struct vm_state *st)
{
	static const char *const files[] = { STATE_FILE, "." STATE_FILE, "api.sock", "console.sock", "console.log",
					     "vmm.log", HANDOFF_SOCKET };
	char path[PATH_MAX + 32];
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", st->dir, files[i]);
		unlink(path);
	}
	rmdir(st->dir);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void vm_state_free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

int vm_state_list(char ***names, size_t *n, vt_err *err)
{
	*names = NULL;
	*n = 0;
	char root[PATH_MAX];
	if (vm_state_root(root, sizeof(root), err) < 0)
		return -1;
	DIR *d = opendir(root);
	if (!d)
		return errno == ENOENT ? 0 : vt_fail_errno(err, errno, "cannot read %s", root);
	size_t cap = 0;
	for (struct dirent *e; (e = readdir(d));) {
		vt_err ignored;
		if (e->d_name[0] == '.' || vm_state_check_name(e->d_name, &ignored) < 0)
			continue;
		if (*n == cap) {
			cap = cap ? 2 * cap : 16;
			char **grown = realloc(*names, cap * sizeof(char *));
			if (!grown)
				break;
			*names = grown;
		}
		if (((*names)[*n] = strdup(e->d_name)))
			(*n)++;
	}
	closedir(d);
	if (*n)
		qsort(*names, *n, sizeof(char *), by_name);
	return 0;
}

/* The page's actions and terminals as `virtus` commands (serve/serve.h), and running them. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/vm_state.h"
#include "container/container.h"
#include "lib/util.h"
#include "serve/serve.h"

/* ---- building a command ------------------------------------------------------------------------------- */

struct cmd {
	char **argv;      /* SERVE_ARGV_MAX slots, NULL-ended */
	size_t n;
	bool full;        /* out of memory or of slots */
};

static void add(struct cmd *c, const char *arg)
{
	if (c->n + 1 >= SERVE_ARGV_MAX || !(c->argv[c->n] = strdup(arg))) {
		c->full = true;
		return;
	}
	c->n++;
}

static int refuse(char **why, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int refuse(char **why, int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(why, fmt, ap) < 0)
		*why = NULL;
	va_end(ap);
	return status;
}

/* The path after prefix split at '/' into at most max parts; the count, or -1 for more, or an empty one. */
static int split_path(const char *path, char parts[][128], int max)
{
	int n = 0;
	for (const char *p = path; *p;) {
		const char *end = strchrnul(p, '/');
		if (n == max || end == p || end - p >= 128)
			return -1;
		memcpy(parts[n], p, (size_t)(end - p));
		parts[n++][end - p] = '\0';
		p = *end ? end + 1 : end;
	}
	return n;
}

/* Each member of body is one of the names in allowed (NULL-ended); else a 400 naming it. */
static int check_members(json_object *body, const char *const allowed[], char **why)
{
	if (!body)
		return 0;
	json_object_object_foreach(body, key, val) {
		(void)val;
		size_t i = 0;
		while (allowed[i] && strcmp(allowed[i], key))
			i++;
		if (!allowed[i])
			return refuse(why, 400, "unknown member \"%s\" in the request", key);
	}
	return 0;
}

/* body's member key as a string (NULL if absent); a 400 if it is there but not a non-empty string, or one
 * that a command would take for an option. */
static int get_string(json_object *body, const char *key, const char **out, char **why)
{
	json_object *v;
	*out = NULL;
	if (!body || !json_object_object_get_ex(body, key, &v) || json_object_is_type(v, json_type_null))
		return 0;
	if (!json_object_is_type(v, json_type_string) || !json_object_get_string_len(v))
		return refuse(why, 400, "\"%s\" must be a non-empty string", key);
	*out = json_object_get_string(v);
	if (**out == '-')
		return refuse(why, 400, "\"%s\" may not start with '-': %s", key, *out);
	if (strlen(*out) != (size_t)json_object_get_string_len(v))
		return refuse(why, 400, "\"%s\" holds a NUL character", key);
	return 0;
}

static int get_bool(json_object *body, const char *key, bool *out, char **why)
{
	json_object *v;
	*out = false;
	if (!body || !json_object_object_get_ex(body, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_boolean))
		return refuse(why, 400, "\"%s\" must be true or false", key);
	*out = json_object_get_boolean(v);
	return 0;
}

static int get_uint(json_object *body, const char *key, int64_t max, int64_t *out, bool *given, char **why)
{
	json_object *v;
	*given = false;
	if (!body || !json_object_object_get_ex(body, key, &v))
		return 0;
	errno = 0;
	int64_t n = json_object_get_int64(v);
	if (!json_object_is_type(v, json_type_int) || errno || n < 0 || n > max)
		return refuse(why, 400, "\"%s\" must be a whole number from 0 to %lld", key, (long long)max);
	*out = n;
	*given = true;
	return 0;
}

/* Each string of body's array member key as one argument after flag (e.g. "-p" for each port). */
static int add_strings(struct cmd *c, json_object *body, const char *key, const char *flag, char **why)
{
	json_object *a;
	if (!body || !json_object_object_get_ex(body, key, &a) || json_object_is_type(a, json_type_null))
		return 0;
	if (!json_object_is_type(a, json_type_array))
		return refuse(why, 400, "\"%s\" must be an array of strings", key);
	for (size_t i = 0; i < json_object_array_length(a); i++) {
		json_object *v = json_object_array_get_idx(a, i);
		const char *s = json_object_get_string(v);
		if (!json_object_is_type(v, json_type_string) || !*s || strlen(s) != (size_t)json_object_get_string_len(v))
			return refuse(why, 400, "\"%s\" must be an array of non-empty strings", key);
		if (flag)
			add(c, flag);
		else if (i == 0 && *s == '-')
			return refuse(why, 400, "the command may not start with '-': %s", s);
		add(c, s);
	}
	return 0;
}

/* ---- what names a VM or a container ------------------------------------------------------------------- */

static int known_vm(const char *name, char **why)
{
	vt_err err;
	struct vm_state st;
	if (vm_state_check_name(name, &err))
		return refuse(why, 400, "%s", err.msg);
	if (vm_state_load(name, &st, &err) || !vm_state_alive(&st))
		return refuse(why, 404, "no VM named '%s'", name);
	return 0;
}

/* The container's full id into id. */
static int known_container(struct serve *s, const char *ref, char id[CTR_ID_LEN + 1], char **why)
{
	struct ctr_store store;
	vt_err err = { 0 };
	if (ctr_store_init(&store, s->root, &err))
		return refuse(why, 500, "%s", err.msg);
	int rc = ctr_lookup(&store, ref, id, &err);
	ctr_store_clear(&store);
	return rc ? refuse(why, 404, "no container '%s'", ref) : 0;
}

/* ---- VM actions ----------------------------------------------------------------------------------------- */

/* An ISO of the ISO directory, by its name there (no path). */
static int iso_path(struct serve *s, const char *iso, char *out, size_t len, char **why)
{
	size_t n = strlen(iso);
	if (strchr(iso, '/') || iso[0] == '.' || n < 5 || strcasecmp(iso + n - 4, ".iso"))
		return refuse(why, 400, "\"iso\" is the name of a .iso file in %s, not '%s'", s->iso_dir, iso);
	if ((size_t)snprintf(out, len, "%s/%s", s->iso_dir, iso) >= len)
		return refuse(why, 400, "ISO name too long");
	if (access(out, R_OK))
		return refuse(why, 404, "no ISO '%s' in %s", iso, s->iso_dir);
	return 0;
}

/* POST /api/vms/NAME/disks {"id", "path", "read_only"}: plug a disk in; DELETE /api/vms/NAME/disks/ID. */
static int vm_disk(const char *method, const char *name, const char *id, json_object *body, struct cmd *c,
		   char **why)
{
	static const char *const add_keys[] = { "id", "path", "read_only", NULL }, *const none[] = { NULL };
	const char *path;
	bool ro;
	int rc = known_vm(name, why);
	if (rc)
		return rc;
	add(c, "vm");
	add(c, "disk");
	add(c, name);
	if (!id && !strcmp(method, "POST")) {
		if ((rc = check_members(body, add_keys, why)) || (rc = get_string(body, "id", &id, why)) ||
		    (rc = get_string(body, "path", &path, why)) || (rc = get_bool(body, "read_only", &ro, why)))
			return rc;
		if (!id || !path || path[0] != '/')
			return refuse(why, 400, "a disk to add needs \"id\" and \"path\" (an absolute path on the host)");
		add(c, "add");
		add(c, id);
		add(c, path);
		if (ro)
			add(c, "--ro");
		return 0;
	}
	if (id && !strcmp(method, "DELETE")) {
		if ((rc = check_members(body, none, why)))
			return rc;
		add(c, "remove");
		add(c, id);
		return 0;
	}
	return refuse(why, 404, "no action %s /api/vms/NAME/disks%s", method, id ? "/ID" : "");
}

/* POST /api/vms {"name", "restore"}: a VM continued from a snapshot's directory. */
static int vm_restore(json_object *body, struct cmd *c, char **why)
{
	static const char *const keys[] = { "name", "restore", NULL };
	const char *name, *dir;
	vt_err err;
	int rc;
	if ((rc = check_members(body, keys, why)) || (rc = get_string(body, "name", &name, why)) ||
	    (rc = get_string(body, "restore", &dir, why)))
		return rc;
	if (!name || !dir || dir[0] != '/')
		return refuse(why, 400, "a VM to restore needs \"name\" and \"restore\" (a snapshot's directory, absolute)");
	if (vm_state_check_name(name, &err))
		return refuse(why, 400, "%s", err.msg);
	add(c, "vm");
	add(c, "run");
	add(c, "-d");
	add(c, "--name");
	add(c, name);
	add(c, "--restore");
	add(c, dir);
	return 0;
}

static int vm_action(struct serve *s, const char *method, const char *name, const char *verb, json_object *body,
		     struct cmd *c, char **why)
{
	int rc = known_vm(name, why);
	if (rc)
		return rc;
	bool post = !strcmp(method, "POST");
	static const char *const none[] = { NULL }, *const stop_keys[] = { "timeout", NULL },
			  *const snap_keys[] = { "dir", NULL }, *const cd_keys[] = { "iso", "force", NULL },
			  *const eject_keys[] = { "force", NULL }, *const balloon_keys[] = { "size_mib", NULL };
	add(c, "vm");
	if (post && (!strcmp(verb, "pause") || !strcmp(verb, "resume") || !strcmp(verb, "kill"))) {
		if ((rc = check_members(body, none, why)))
			return rc;
		add(c, verb);
	} else if (post && !strcmp(verb, "stop")) {
		int64_t t;
		bool given;
		if ((rc = check_members(body, stop_keys, why)) || (rc = get_uint(body, "timeout", 3600, &t, &given, why)))
			return rc;
		add(c, "stop");
		if (given) {
			char num[24];
			snprintf(num, sizeof(num), "%lld", (long long)t);
			add(c, "-t");
			add(c, num);
		}
	} else if (post && !strcmp(verb, "snapshot")) {
		const char *dir;
		if ((rc = check_members(body, snap_keys, why)) || (rc = get_string(body, "dir", &dir, why)))
			return rc;
		if (!dir || dir[0] != '/')
			return refuse(why, 400, "\"dir\": the snapshot's new directory, an absolute path");
		add(c, "snapshot");
		add(c, name);
		add(c, dir);
		return 0;
	} else if (!strcmp(verb, "cdrom") && (post || !strcmp(method, "DELETE"))) {
		const char *iso = NULL;
		bool force;
		char path[PATH_MAX];
		if ((rc = check_members(body, post ? cd_keys : eject_keys, why)) || (rc = get_bool(body, "force", &force, why)) ||
		    (post && (rc = get_string(body, "iso", &iso, why))))
			return rc;
		if (post && !iso)
			return refuse(why, 400, "\"iso\": the name of an ISO in %s", s->iso_dir);
		if (iso && (rc = iso_path(s, iso, path, sizeof(path), why)))
			return rc;
		add(c, "cd");
		add(c, name);
		add(c, post ? "insert" : "eject");
		if (post)
			add(c, path);
		if (force)
			add(c, "--force");
		return 0;
	} else if (post && !strcmp(verb, "balloon")) {
		int64_t mib;
		bool given;
		if ((rc = check_members(body, balloon_keys, why)) ||
		    (rc = get_uint(body, "size_mib", 1 << 24, &mib, &given, why)))
			return rc;
		if (!given)
			return refuse(why, 400, "\"size_mib\": the balloon's target in MiB");
		char size[32];
		snprintf(size, sizeof(size), "%lldM", (long long)mib);
		add(c, "balloon");
		add(c, name);
		add(c, size);
		return 0;
	} else {
		return refuse(why, 404, "no action %s /api/vms/NAME/%s", method, verb);
	}
	add(c, name);
	return 0;
}

/* ---- container actions ------------------------------------------------------------------------------------ */

static int container_run(json_object *body, struct cmd *c, char **why)
{
	static const char *const keys[] = { "image", "name", "command", "ports", "volumes", "isolation", NULL };
	const char *image, *name, *isolation;
	int rc;
	if ((rc = check_members(body, keys, why)) || (rc = get_string(body, "image", &image, why)) ||
	    (rc = get_string(body, "name", &name, why)) || (rc = get_string(body, "isolation", &isolation, why)))
		return rc;
	if (!image)
		return refuse(why, 400, "\"image\": the image to run");
	if (isolation && strcmp(isolation, "container") && strcmp(isolation, "vm"))
		return refuse(why, 400, "\"isolation\" is \"container\" or \"vm\", not '%s'", isolation);
	add(c, "run");
	add(c, "-d");
	if (name) {
		add(c, "--name");
		add(c, name);
	}
	if (isolation) {
		add(c, "--isolation");
		add(c, isolation);
	}
	if ((rc = add_strings(c, body, "ports", "-p", why)) || (rc = add_strings(c, body, "volumes", "-v", why)))
		return rc;
	add(c, "--");
	add(c, image);
	return add_strings(c, body, "command", NULL, why);
}

static int container_action(struct serve *s, const char *method, const char *ref, const char *verb,
			    json_object *body, struct cmd *c, char **why)
{
	char id[CTR_ID_LEN + 1];
	int rc = known_container(s, ref, id, why);
	if (rc)
		return rc;
	static const char *const none[] = { NULL }, *const commit_keys[] = { "image", NULL };
	bool post = !strcmp(method, "POST");
	if (!verb && !strcmp(method, "DELETE")) {
		if ((rc = check_members(body, none, why)))
			return rc;
		add(c, "rm");
		add(c, "-f");
	} else if (verb && post && (!strcmp(verb, "stop") || !strcmp(verb, "start") || !strcmp(verb, "pause") ||
				    !strcmp(verb, "unpause"))) {
		if ((rc = check_members(body, none, why)))
			return rc;
		add(c, verb);
	} else if (verb && post && !strcmp(verb, "commit")) {
		const char *image;
		if ((rc = check_members(body, commit_keys, why)) || (rc = get_string(body, "image", &image, why)))
			return rc;
		if (!image)
			return refuse(why, 400, "\"image\": the new image's name");
		add(c, "commit");
		add(c, id);
		add(c, image);
		return 0;
	} else {
		return refuse(why, 404, "no action %s /api/containers/ID%s%s", method, verb ? "/" : "", verb ? verb : "");
	}
	add(c, id);
	return 0;
}

int serve_action_argv(struct serve *s, const char *method, const char *path, json_object *body,
		      char *argv[SERVE_ARGV_MAX], char **why)
{
	char parts[4][128];
	struct cmd c = { .argv = argv };
	int n = strncmp(path, "/api/", 5) ? -1 : split_path(path + 5, parts, 4);
	int rc;
	if (n == 1 && !strcmp(parts[0], "vms") && !strcmp(method, "POST"))
		rc = vm_restore(body, &c, why);
	else if (n >= 3 && !strcmp(parts[0], "vms") && !strcmp(parts[2], "disks"))
		rc = vm_disk(method, parts[1], n == 4 ? parts[3] : NULL, body, &c, why);
	else if (n == 3 && !strcmp(parts[0], "vms"))
		rc = vm_action(s, method, parts[1], parts[2], body, &c, why);
	else if (n == 1 && !strcmp(parts[0], "containers") && !strcmp(method, "POST"))
		rc = container_run(body, &c, why);
	else if ((n == 2 || n == 3) && !strcmp(parts[0], "containers"))
		rc = container_action(s, method, parts[1], n == 3 ? parts[2] : NULL, body, &c, why);
	else
		rc = refuse(why, 404, "no such API path: %s %s", method, path);
	if (!rc && c.full)
		rc = refuse(why, 400, "too many arguments");
	if (rc)
		serve_argv_free(argv);
	return rc;
}

int serve_term_argv(struct serve *s, const char *path, char *argv[SERVE_ARGV_MAX], char **why)
{
	char parts[3][128], id[CTR_ID_LEN + 1];
	struct cmd c = { .argv = argv };
	int n = strncmp(path, "/api/", 5) ? -1 : split_path(path + 5, parts, 3);
	int rc;
	if (n == 3 && !strcmp(parts[0], "vms") && !strcmp(parts[2], "console")) {
		if ((rc = known_vm(parts[1], why)))
			return rc;
		add(&c, "vm");
		add(&c, "console");
		add(&c, parts[1]);
	} else if (n == 3 && !strcmp(parts[0], "containers") && (!strcmp(parts[2], "shell") || !strcmp(parts[2], "logs"))) {
		if ((rc = known_container(s, parts[1], id, why)))
			return rc;
		bool shell = !strcmp(parts[2], "shell");
		add(&c, shell ? "exec" : "logs");
		add(&c, shell ? "-it" : "-f");
		add(&c, id);
		if (shell)
			add(&c, "sh");
	} else {
		return refuse(why, 404, "no terminal at %s", path);
	}
	if (c.full) {
		serve_argv_free(argv);
		return refuse(why, 500, "out of memory");
	}
	return 0;
}

/* ---- running a command -------------------------------------------------------------------------------- */

/* The full command line: program, --root, then argv. Returns a malloc'd array of borrowed strings. */
static char **full_argv(struct serve *s, char *const argv[])
{
	size_t n = 0;
	while (argv[n])
		n++;
	char **v = calloc(n + 4, sizeof(*v));
	if (!v)
		return NULL;
	v[0] = s->program;
	v[1] = "--root";
	v[2] = s->root;
	memcpy(v + 3, argv, n * sizeof(*v));
	return v;
}

struct capture {
	int fd;
	char *buf;
	size_t len;
};

static void capture_read(struct capture *c)
{
	char chunk[4096];
	ssize_t n = read(c->fd, chunk, sizeof(chunk));
	if (n < 0 && errno == EINTR)
		return;
	if (n <= 0) {
		close(c->fd);
		c->fd = -1;
		return;
	}
	size_t keep = MIN((size_t)n, SERVE_OUTPUT_MAX - c->len);
	if (keep) {
		char *b = realloc(c->buf, c->len + keep + 1);
		if (b) {
			memcpy(b + c->len, chunk, keep);
			c->len += keep;
			b[c->len] = '\0';
			c->buf = b;
		}
	}
}

/* Start the command with stdout and stderr on pipes; its pid, or -1 with errno set. */
static pid_t spawn_captured(char **argv, int out_fd, int err_fd)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, defaults;
	sigemptyset(&none);
	sigemptyset(&defaults);
	sigaddset(&defaults, SIGPIPE);
	sigaddset(&defaults, SIGINT);
	sigaddset(&defaults, SIGTERM);
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&at);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
	posix_spawn_file_actions_adddup2(&fa, err_fd, 2);
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	/* the server's threads block SIGINT and SIGTERM for its sigwait: the command gets them back */
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &defaults);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	pid_t pid;
	int rc = posix_spawn(&pid, argv[0], &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (rc) {
		errno = rc;
		return -1;
	}
	return pid;
}

static int exit_status(int wstatus)
{
	return WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
}

int serve_run_cli(struct serve *s, char *const argv[], int timeout_s, char **out, char **err_out)
{
	*out = *err_out = NULL;
	char **full = full_argv(s, argv);
	int out_pipe[2], err_pipe[2];
	if (!full || pipe2(out_pipe, O_CLOEXEC)) {
		free(full);
		return -1;
	}
	if (pipe2(err_pipe, O_CLOEXEC)) {
		close(out_pipe[0]);
		close(out_pipe[1]);
		free(full);
		return -1;
	}
	pid_t pid = spawn_captured(full, out_pipe[1], err_pipe[1]);
	int spawn_errno = errno;
	free(full);
	close(out_pipe[1]);
	close(err_pipe[1]);
	struct capture cap[2] = { { out_pipe[0], NULL, 0 }, { err_pipe[0], NULL, 0 } };
	uint64_t deadline = now_ns() + (uint64_t)timeout_s * 1000000000ull;
	bool timed_out = false, ended = pid < 0;
	int wstatus = 0;
	/* until the command ends (what it started in the background may keep the pipes: not waited for), then
	 * what it left in them */
	while (!ended) {
		struct pollfd p[2] = { { cap[0].fd, POLLIN, 0 }, { cap[1].fd, POLLIN, 0 } };
		if (now_ns() >= deadline && !timed_out) {
			timed_out = true;
			kill(pid, SIGKILL);
		}
		if (poll(p, 2, cap[0].fd < 0 && cap[1].fd < 0 ? 5 : 100) < 0 && errno != EINTR)
			break;
		for (int i = 0; i < 2; i++)
			if (cap[i].fd >= 0 && p[i].revents)
				capture_read(&cap[i]);
		ended = waitpid(pid, &wstatus, WNOHANG) == pid;
	}
	for (int i = 0; i < 2; i++) {
		if (cap[i].fd >= 0)
			fcntl(cap[i].fd, F_SETFL, O_NONBLOCK);
		while (cap[i].fd >= 0)
			capture_read(&cap[i]); /* to EOF, or EAGAIN: a background child holds the pipe */
	}
	if (pid < 0) {
		free(cap[0].buf);
		free(cap[1].buf);
		if (asprintf(err_out, "cannot run %s: %s", s->program, strerror(spawn_errno)) < 0)
			*err_out = NULL;
		return -1;
	}
	*out = cap[0].buf;
	*err_out = cap[1].buf;
	if (timed_out) {
		free(*err_out);
		if (asprintf(err_out, "the command took longer than %d s and was stopped", timeout_s) < 0)
			*err_out = NULL;
	}
	return exit_status(wstatus);
}

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

/* POST /api/vms {"name", "restore"}: a VM continued from a snapshot's directory; {"name", "incoming"}: a VM
 * waiting for a live migration (tcp:ADDR:PORT or unix:PATH). */
static int vm_create(json_object *body, struct cmd *c, char **why)
{
	static const char *const keys[] = { "name", "restore", "incoming", NULL };
	const char *name, *dir, *incoming;
	vt_err err;
	int rc;
	if ((rc = check_members(body, keys, why)) || (rc = get_string(body, "name", &name, why)) ||
	    (rc = get_string(body, "restore", &dir, why)) || (rc = get_string(body, "incoming", &incoming, why)))
		return rc;
	if (!name || !dir == !incoming || (dir && dir[0] != '/'))
		return refuse(why, 400, "a VM to start needs \"name\" and one of \"restore\" (a snapshot's directory, "
			      "absolute) or \"incoming\" (tcp:ADDR:PORT or unix:PATH, where a migration comes)");
	if (vm_state_check_name(name, &err))
		return refuse(why, 400, "%s", err.msg);
	add(c, "vm");
	add(c, "run");
	add(c, "-d");
	add(c, "--name");
	add(c, name);
	add(c, dir ? "--restore" : "--incoming");
	add(c, dir ? dir : incoming);
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
		rc = vm_create(body, &c, why);
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

/* ---- live migration to another serve ------------------------------------------------------------------- */

/* body's "to" (the destination's URL, perhaps with "#token=" as it printed it), "token", "insecure" into r,
 * and the host the migration stream goes to. */
static int migration_target(json_object *body, struct serve_remote *r, char *host, size_t host_len, char **why)
{
	const char *to, *token;
	int rc;
	if ((rc = get_string(body, "to", &to, why)) || (rc = get_string(body, "token", &token, why)) ||
	    (rc = get_bool(body, "insecure", &r->insecure, why)))
		return rc;
	const char *rest = !to ? NULL : !strncmp(to, "http://", 7) ? to + 7 : !strncmp(to, "https://", 8) ? to + 8 : NULL;
	if (!rest)
		return refuse(why, 400, "\"to\": the destination's URL, http(s)://HOST:PORT as its 'virtus serve' printed it");
	size_t base_len = strcspn(rest, "/#?") + (size_t)(rest - to);
	const char *fragment = strstr(to, "#token=");
	if (!token && fragment)
		token = fragment + 7;
	if (!token || strlen(token) != SERVE_TOKEN_LEN || strspn(token, "0123456789abcdef") != SERVE_TOKEN_LEN)
		return refuse(why, 400, "\"token\": the destination's token (64 hex digits; or give its URL with #token=)");
	if (base_len >= sizeof(r->base))
		return refuse(why, 400, "\"to\" is too long");
	memcpy(r->base, to, base_len);
	r->base[base_len] = '\0';
	memcpy(r->token, token, SERVE_TOKEN_LEN + 1);
	/* the host part of HOST:PORT (an IPv6 address keeps its brackets) */
	const char *hp = r->base + (rest - to), *colon = strrchr(hp, ':');
	size_t hl = colon && colon > strrchr(hp, ']') ? (size_t)(colon - hp) : strlen(hp);
	if (!hl || hl >= host_len || strpbrk(hp, "@ "))
		return refuse(why, 400, "\"to\": no host in '%s'", to);
	memcpy(host, hp, hl);
	host[hl] = '\0';
	return 0;
}

/* The {"error"} of a JSON answer, or the whole answer. */
static const char *remote_message(const char *reply, json_object **parsed)
{
	json_object *m;
	*parsed = json_tokener_parse(reply);
	return *parsed && json_object_object_get_ex(*parsed, "error", &m) ? json_object_get_string(m) : reply;
}

int serve_migrate(struct serve *s, const char *name, json_object *body, char **output, char **why)
{
	static const char *const keys[] = { "to", "token", "port", "insecure", NULL };
	struct serve_remote r = { .timeout_ms = 30000 };
	char host[256], incoming[64], url[320], req[256];
	int64_t port = SERVE_MIGRATE_PORT;
	bool given;
	int rc;
	*output = NULL;
	if ((rc = known_vm(name, why)) || (rc = check_members(body, keys, why)) ||
	    (rc = migration_target(body, &r, host, sizeof(host), why)) ||
	    (rc = get_uint(body, "port", 65535, &port, &given, why)))
		return rc;
	if (given && port == 0)
		return refuse(why, 400, "\"port\": the migration stream's port at the destination, 1 to 65535");
	snprintf(incoming, sizeof(incoming), "tcp:0.0.0.0:%lld", (long long)port);
	snprintf(url, sizeof(url), "tcp:%s:%lld", host, (long long)port);
	snprintf(req, sizeof(req), "{\"name\":\"%s\",\"incoming\":\"%s\"}", name, incoming); /* name: checked */
	int status;
	char *reply;
	vt_err err = { 0 };
	if (serve_remote_call(&r, "POST", "/api/vms", req, &status, &reply, &err))
		return refuse(why, 502, "the destination: %s", err.msg);
	json_object *parsed;
	if (status != 200) {
		rc = refuse(why, 409, "the destination (%s) answered %d: %s", r.base, status, remote_message(reply, &parsed));
		json_object_put(parsed);
		free(reply);
		return rc;
	}
	free(reply);
	char *argv[] = { "vm", "migrate", (char *)name, url, NULL };
	char *errout = NULL;
	rc = serve_run_cli(s, argv, SERVE_MIGRATE_TIMEOUT_S, output, &errout);
	if (rc == 0) {
		free(errout);
		return 200;
	}
	/* the VM goes on here: the one waiting there is not needed */
	char kill_path[128];
	snprintf(kill_path, sizeof(kill_path), "/api/vms/%s/kill", name);
	if (serve_remote_call(&r, "POST", kill_path, NULL, &status, &reply, &err) == 0)
		free(reply);
	rc = refuse(why, 409, "%s", errout && *errout ? errout : "the migration failed");
	free(errout);
	free(*output);
	*output = NULL;
	return rc;
}

/* From a request to its answer (serve/serve.h): the token, the routes, JSON errors. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "image/image.h"

#define VM_NAME_BUF 128
#include "lib/util.h"
#include "serve/serve.h"

/* The page's files: a fixed list, read at start (no path from a request ever reaches the file system). */
static const struct serve_file page_files[] = {
	{ "/", "index.html", "text/html; charset=utf-8", NULL, 0 },
	{ "/index.html", "index.html", "text/html; charset=utf-8", NULL, 0 },
	{ "/app.js", "app.js", "text/javascript; charset=utf-8", NULL, 0 },
	{ "/style.css", "style.css", "text/css; charset=utf-8", NULL, 0 },
	{ "/vendor/xterm.js", "vendor/xterm.js", "text/javascript; charset=utf-8", NULL, 0 },
	{ "/vendor/xterm.css", "vendor/xterm.css", "text/css; charset=utf-8", NULL, 0 },
	{ "/vendor/addon-fit.js", "vendor/addon-fit.js", "text/javascript; charset=utf-8", NULL, 0 },
};

/* ---- set-up ------------------------------------------------------------------------------------------- */

/* The page's directory: next to the program in the build tree (<repo>/build/virtus → <repo>/web), or
 * <prefix>/share/virtus/web for an installed one. */
static int find_web_dir(const char *program, char *out, size_t len, vt_err *err)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", program);
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	static const char *const places[] = { "%s/../web", "%s/../share/virtus/web" };
	for (size_t i = 0; i < ARRAY_SIZE(places); i++) {
		char index[PATH_MAX + 64];
		if ((size_t)snprintf(out, len, places[i], dir) >= len)
			continue;
		snprintf(index, sizeof(index), "%s/index.html", out);
		if (access(index, R_OK) == 0)
			return 0;
	}
	return vt_fail(err, "the browser console's files are missing (%s/../web or %s/../share/virtus/web): "
		       "reinstall virtus", dir, dir);
}

static int read_page_files(struct serve *s, const char *web_dir, vt_err *err)
{
	s->files = calloc(ARRAY_SIZE(page_files), sizeof(*s->files));
	if (!s->files)
		return vt_fail_errno(err, ENOMEM, "serve");
	for (size_t i = 0; i < ARRAY_SIZE(page_files); i++) {
		struct serve_file *f = &s->files[s->n_files++];
		*f = page_files[i];
		char path[PATH_MAX + 64];
		snprintf(path, sizeof(path), "%s/%s", web_dir, f->name);
		void *data;
		if (read_file(path, 16 * MiB, &data, &f->len, err) < 0) {
			if (!strncmp(f->name, "vendor/", 7))
				return vt_fail(err, "%s is missing: the terminal's xterm.js comes from scripts/web-vendor "
					       "(make web fetches it)", path);
			return -1;
		}
		f->data = data;
	}
	return 0;
}

int serve_init(struct serve *s, const struct serve_options *o, vt_err *err)
{
	memset(s, 0, sizeof(*s));
	serve_limiter_init(&s->limiter);
	pthread_mutex_init(&s->usage.lock, NULL);
	if (o->program)
		snprintf(s->program, sizeof(s->program), "%s", o->program);
	else if (readlink("/proc/self/exe", s->program, sizeof(s->program) - 1) < 0)
		return vt_fail_errno(err, errno, "cannot find this program (/proc/self/exe)");
	snprintf(s->root, sizeof(s->root), "%s", img_default_root(o->root));
	if ((size_t)snprintf(s->iso_dir, sizeof(s->iso_dir), o->iso_dir ? "%s" : "%s/isos",
			     o->iso_dir ? o->iso_dir : s->root) >= sizeof(s->iso_dir) ||
	    (size_t)snprintf(s->token_file, sizeof(s->token_file), o->token_file ? "%s" : "%s/serve/token",
			     o->token_file ? o->token_file : s->root) >= sizeof(s->token_file))
		return vt_fail(err, "the store root, --iso-dir or --token-file is too long a path");
	char web_dir[PATH_MAX];
	if (o->web_dir)
		snprintf(web_dir, sizeof(web_dir), "%s", o->web_dir);
	else if (find_web_dir(s->program, web_dir, sizeof(web_dir), err))
		return -1;
	if (read_page_files(s, web_dir, err))
		return -1;
	return serve_token_load(s->token_file, s->token, err);
}

void serve_fini(struct serve *s)
{
	for (size_t i = 0; i < s->n_files; i++)
		free(s->files[i].data);
	free(s->files);
	s->files = NULL;
	s->n_files = 0;
}

void serve_reply_free(struct serve_reply *reply)
{
	free(reply->body);
	reply->body = NULL;
	serve_argv_free(reply->term_argv);
}

void serve_argv_free(char *argv[SERVE_ARGV_MAX])
{
	for (size_t i = 0; i < SERVE_ARGV_MAX && argv[i]; i++) {
		free(argv[i]);
		argv[i] = NULL;
	}
}

/* ---- answers ------------------------------------------------------------------------------------------ */

static void answer_json(struct serve_reply *r, int status, json_object *o)
{
	r->status = status;
	r->body = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	if (!r->body)
		r->status = 500;
}

static void answer_error(struct serve_reply *r, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void answer_error(struct serve_reply *r, int status, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_object *o = json_object_new_object();
	json_object_object_add(o, "error", json_object_new_string(msg));
	answer_json(r, status, o);
}

/* ---- access ------------------------------------------------------------------------------------------- */

/* The token the request carries: "Authorization: Bearer T", else ?token=T. */
static const char *given_token(const struct serve_request *req)
{
	const char *a = req->authorization;
	if (a && !strncasecmp(a, "Bearer ", 7)) {
		a += 7;
		while (*a == ' ')
			a++;
		return a;
	}
	return req->query_token;
}

/* Whether the request may go on; if not, the reply says why. */
static bool admitted(struct serve *s, const struct serve_request *req, struct serve_reply *reply)
{
	time_t now = time(NULL);
	const char *client = req->client ? req->client : "?";
	if (serve_limiter_blocked(&s->limiter, client, now)) {
		answer_error(reply, 429, "too many wrong tokens from %s: wait a minute", client);
		return false;
	}
	const char *token = given_token(req);
	if (!token || !*token) {
		answer_error(reply, 401, "this needs the token (Authorization: Bearer TOKEN, or ?token=): "
			     "'virtus serve' printed the URL with it");
		return false;
	}
	if (!serve_token_matches(s->token, token)) {
		serve_limiter_fail(&s->limiter, client, now);
		answer_error(reply, 401, "wrong token");
		return false;
	}
	return true;
}

/* ---- routes ------------------------------------------------------------------------------------------- */

static void list_route(struct serve *s, const char *what, struct serve_reply *reply)
{
	vt_err err = { 0 };
	json_object *o = NULL;
	if (!strcmp(what, "overview")) {
		o = json_object_new_object();
		json_object_object_add(o, "host", serve_list_host());
		json_object_object_add(o, "vms", serve_list_vms(s));
		json_object *c = serve_list_containers(s, &err), *i = serve_list_images(s, &err);
		json_object_object_add(o, "containers", c ? c : json_object_new_array());
		json_object_object_add(o, "images", i ? i : json_object_new_array());
		if (!c || !i)
			json_object_object_add(o, "warning", json_object_new_string(err.msg));
	} else if (!strcmp(what, "vms")) {
		o = serve_list_vms(s);
	} else if (!strcmp(what, "containers")) {
		o = serve_list_containers(s, &err);
	} else if (!strcmp(what, "images")) {
		o = serve_list_images(s, &err);
	} else if (!strcmp(what, "isos")) {
		o = serve_list_isos(s);
	}
	if (o)
		answer_json(reply, 200, o);
	else
		answer_error(reply, 500, "%s", err.msg[0] ? err.msg : "out of memory");
}

static bool is_list(const char *path, const char **what)
{
	static const char *const lists[] = { "overview", "vms", "containers", "images", "isos" };
	if (strncmp(path, "/api/", 5))
		return false;
	for (size_t i = 0; i < ARRAY_SIZE(lists); i++)
		if (!strcmp(path + 5, lists[i])) {
			*what = lists[i];
			return true;
		}
	return false;
}

/* The last line of a command's error output, without the program's "virtus: " prefix. */
static const char *command_message(char *text)
{
	size_t n = strlen(text);
	while (n && (text[n - 1] == '\n' || text[n - 1] == ' '))
		text[--n] = '\0';
	char *line = strrchr(text, '\n');
	line = line ? line + 1 : text;
	if (!strncmp(line, "virtus: ", 8))
		line += 8;
	return *line ? line : "the command failed without a message";
}

/* POST /api/vms/NAME/migrate: NAME into name. */
static bool is_migration(const struct serve_request *req, char name[VM_NAME_BUF])
{
	if (strcmp(req->method, "POST") || strncmp(req->path, "/api/vms/", 9))
		return false;
	const char *p = req->path + 9, *slash = strchr(p, '/');
	if (!slash || slash == p || slash - p >= VM_NAME_BUF || strcmp(slash, "/migrate"))
		return false;
	memcpy(name, p, (size_t)(slash - p));
	name[slash - p] = '\0';
	return true;
}

static void migration_route(struct serve *s, const char *name, json_object *body, struct serve_reply *reply)
{
	char *output = NULL, *why = NULL;
	int status = serve_migrate(s, name, body, &output, &why);
	if (status == 200) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "output", json_object_new_string(output ? output : ""));
		answer_json(reply, 200, o);
	} else {
		answer_error(reply, status, "%s", why ? command_message(why) : "out of memory");
	}
	free(output);
	free(why);
}

static void action_route(struct serve *s, const struct serve_request *req, struct serve_reply *reply)
{
	json_object *body = NULL;
	if (req->body_len) {
		enum json_tokener_error jerr;
		body = json_tokener_parse_verbose(req->body, &jerr);
		if (!body || !json_object_is_type(body, json_type_object)) {
			json_object_put(body);
			answer_error(reply, 400, "the request body is not a JSON object%s%s", body ? "" : ": ",
				     body ? "" : json_tokener_error_desc(jerr));
			return;
		}
	}
	char vm[VM_NAME_BUF];
	if (is_migration(req, vm)) {
		migration_route(s, vm, body, reply);
		json_object_put(body);
		return;
	}
	char *argv[SERVE_ARGV_MAX] = { 0 }, *why = NULL;
	int status = serve_action_argv(s, req->method, req->path, body, argv, &why);
	json_object_put(body);
	if (status) {
		answer_error(reply, status, "%s", why ? why : "out of memory");
		free(why);
		return;
	}
	char *out = NULL, *errout = NULL;
	int rc = serve_run_cli(s, argv, SERVE_ACTION_TIMEOUT_S, &out, &errout);
	serve_argv_free(argv);
	if (rc == 0) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "output", json_object_new_string(out ? out : ""));
		answer_json(reply, 200, o);
	} else {
		answer_error(reply, rc == 2 ? 400 : rc < 0 ? 500 : 409, "%s", command_message(errout ? errout : ""));
	}
	free(out);
	free(errout);
}

static void page_route(struct serve *s, const struct serve_request *req, struct serve_reply *reply)
{
	if (!strcmp(req->path, "/favicon.ico")) {
		reply->status = 204; /* none: browsers ask anyway */
		return;
	}
	for (size_t i = 0; i < s->n_files; i++)
		if (!strcmp(req->path, s->files[i].url)) {
			if (strcmp(req->method, "GET") && strcmp(req->method, "HEAD")) {
				answer_error(reply, 405, "%s takes GET", req->path);
				return;
			}
			reply->status = 200;
			reply->file = &s->files[i];
			return;
		}
	answer_error(reply, 404, "no such page: %s", req->path);
}

void serve_handle(struct serve *s, const struct serve_request *req, struct serve_reply *reply)
{
	memset(reply, 0, sizeof(*reply));
	reply->status = 500;
	if (strncmp(req->path, "/api/", 5)) {
		page_route(s, req, reply);
		return;
	}
	if (!admitted(s, req, reply))
		return;
	const char *what;
	if (req->websocket) {
		char *why = NULL;
		int status = strcmp(req->method, "GET") ? 405 : serve_term_argv(s, req->path, reply->term_argv, &why);
		if (status)
			answer_error(reply, status, "%s", why ? why : "a WebSocket opens with GET");
		else
			reply->status = 101;
		free(why);
	} else if (!strcmp(req->method, "GET") && is_list(req->path, &what)) {
		list_route(s, what, reply);
	} else {
		action_route(s, req, reply);
	}
}

/* libFuzzer target for `virtus serve`'s request handling (src/serve/handle.c, actions.c, auth.c): any method,
 * path, body and upgrade request, with the token or without, through serve_handle, the routes and every
 * action's body checks down to the command line an action would run. The host-facing ends are replaced here
 * (this harness links no container or image store): lists are empty, no container exists (VM web1 does), a
 * command is not run but checked (NUL-terminated strings, at most SERVE_ARGV_MAX), another server cannot be
 * reached.
 * Input: byte 0 the method (low 3 bits), bit 3 an upgrade request, bit 4 the right token, bit 5 a wrong one;
 * then the path up to a NUL byte, then the body. Checked beyond the sanitizers: the status is one the server
 * gives, a body is JSON, a terminal's command is only given with 101. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/vm_state.h"
#include "container/container.h"
#include "serve/serve.h"

static struct serve server;

/* ---- the ends replaced ---- */
const char *img_default_root(const char *cli_root) { return cli_root ? cli_root : "/nonexistent"; }
json_object *serve_list_host(void) { return json_object_new_object(); }
json_object *serve_list_vms(struct serve *s) { (void)s; return json_object_new_array(); }
json_object *serve_list_containers(struct serve *s, vt_err *err) { (void)s; (void)err; return json_object_new_array(); }
json_object *serve_list_images(struct serve *s, vt_err *err) { (void)s; (void)err; return json_object_new_array(); }
json_object *serve_list_isos(struct serve *s) { (void)s; return json_object_new_object(); }
int ctr_store_init(struct ctr_store *s, const char *root, vt_err *err) { (void)root; (void)err; memset(s, 0, sizeof(*s)); return 0; }
void ctr_store_clear(struct ctr_store *s) { (void)s; }
int ctr_lookup(const struct ctr_store *s, const char *ref, char id[CTR_ID_LEN + 1], vt_err *err)
{
	(void)s; (void)ref; (void)id;
	return vt_fail(err, "no container");
}
int serve_remote_call(const struct serve_remote *r, const char *method, const char *path, const char *body,
		      int *status, char **reply, vt_err *err)
{
	(void)r; (void)method; (void)path; (void)body; (void)status; (void)reply;
	return vt_fail(err, "unreachable");
}
int serve_run_cli(struct serve *s, char *const argv[], int timeout_s, char **out, char **err_out)
{
	(void)s; (void)timeout_s;
	size_t n = 0, len = 0;
	while (argv[n]) {
		if (n >= SERVE_ARGV_MAX)
			abort();
		len += strlen(argv[n++]);
	}
	*out = malloc(len + 1);
	*out[0] = '\0';
	*err_out = NULL;
	return (int)(len % 3); /* success, or a refusal (1), or a usage error (2) */
}
char **serve_full_argv(struct serve *s, char *const argv[]) { (void)s; (void)argv; return NULL; }

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc; (void)argv;
	const char *tmp = getenv("TMPDIR");
	char dir[200], path[256];
	snprintf(dir, sizeof(dir), "%s/fuzz-serve.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir))
		abort();
	static const char *const files[] = { "index.html", "app.js", "style.css", "vendor/xterm.js", "vendor/xterm.css",
					     "vendor/addon-fit.js" };
	snprintf(path, sizeof(path), "%s/vendor", dir);
	mkdir(path, 0700);
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		FILE *f = fopen(path, "w");
		fputs("x", f);
		fclose(f);
	}
	snprintf(path, sizeof(path), "%s/vms", dir);
	setenv("VIRTUS_VM_RUN_DIR", path, 1);
	struct vm_state vm; /* VM web1, whose VMM is this process: VM actions get past their lookup */
	vt_err verr;
	if (vm_state_create("web1", NULL, false, &vm, &verr) || vm_state_publish(&vm, &verr))
		abort();
	struct serve_options o = { .root = dir, .web_dir = dir, .program = "/nonexistent", .iso_dir = dir };
	vt_err err;
	if (serve_init(&server, &o, &err))
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const methods[] = { "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "" };
	if (size < 1)
		return 0;
	uint8_t flags = data[0];
	const char *rest = (const char *)data + 1;
	size_t left = size - 1, path_len = strnlen(rest, left);
	char *path = strndup(rest, path_len);
	size_t body_len = path_len < left ? left - path_len - 1 : 0;
	char *body = malloc(body_len + 1);
	memcpy(body, rest + path_len + (path_len < left), body_len);
	body[body_len] = '\0';
	char bearer[SERVE_TOKEN_LEN + 16];
	snprintf(bearer, sizeof(bearer), "Bearer %s", flags & 0x20 ? "0123" : server.token);
	struct serve_request req = { .method = methods[flags & 7], .path = path, .client = "fuzz", .body = body,
				     .body_len = strlen(body), .websocket = flags & 8,
				     .authorization = flags & 0x30 ? bearer : NULL };
	struct serve_reply reply;
	serve_handle(&server, &req, &reply);
	static const int statuses[] = { 101, 200, 204, 400, 401, 404, 405, 409, 429, 500, 502 };
	bool known = false;
	for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
		known |= reply.status == statuses[i];
	if (!known || (reply.term_argv[0] && reply.status != 101) || (reply.status == 101 && !reply.term_argv[0]))
		abort();
	if (reply.body) {
		json_object *o = json_tokener_parse(reply.body);
		if (!o)
			abort();
		json_object_put(o);
	}
	serve_reply_free(&reply);
	free(path);
	free(body);
	/* the wrong-token limit would end every later input at 429: forget it */
	serve_limiter_init(&server.limiter);
	return 0;
}

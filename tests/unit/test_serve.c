/* src/serve: the login token's file, the wrong-token limit, every answer serve_handle gives (the page's files,
 * 401/429, lists, malformed bodies, unknown VMs and containers, the command each action runs and how its
 * failure is reported) and the terminal over a WebSocket (a socketpair): keys of every size through a real
 * pseudo-terminal and back, resize, the command's end, and a page that disconnects mid-stream.
 *
 * The `virtus` program the server runs is replaced by a script that reports the command it was given (and
 * refuses `vm` commands the way virtus does), so that what is checked is what the server asks for. A VM is a
 * published VM directory whose VMM is this test process. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "cli/vm_state.h"
#include "lib/util.h"
#include "serve/serve.h"
#include "serve/ws.h"

struct fx {
	char dir[64];
	char root[96], web[96], program[96], token_file[128], vm_dir[96], iso_dir[96];
	struct serve s;
	struct vm_state vm;
};

static void write_text(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, text, strlen(text)), 0);
	close(fd);
}

/* The stand-in for virtus: `PROGRAM --root ROOT ARGS`. */
static const char fake_virtus[] =
	"#!/bin/sh\n"
	"[ \"$1\" = --root ] || { echo 'virtus: no --root' >&2; exit 2; }\n"
	"shift 2\n"
	"case \"$1\" in\n"
	"vm) echo \"virtus: refused: $*\" >&2; exit 1 ;;\n"
	"exec-sh) shift; exec /bin/sh -c \"$1\" ;;\n"
	"esac\n"
	"printf '%s|' \"$@\"\n";

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/virtus-serve-test.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->root, sizeof(f->root), "%s/root", f->dir);
	snprintf(f->web, sizeof(f->web), "%s/web", f->dir);
	snprintf(f->program, sizeof(f->program), "%s/virtus", f->dir);
	snprintf(f->token_file, sizeof(f->token_file), "%s/root/serve/token", f->dir);
	snprintf(f->vm_dir, sizeof(f->vm_dir), "%s/vms", f->dir);
	snprintf(f->iso_dir, sizeof(f->iso_dir), "%s/isos", f->dir);
	assert_int_equal(mkdir(f->root, 0700), 0);
	assert_int_equal(mkdir(f->iso_dir, 0700), 0);
	char path[256];
	snprintf(path, sizeof(path), "%s/vendor", f->web);
	assert_int_equal(mkdir(f->web, 0700) | mkdir(path, 0700), 0);
	static const char *const files[] = { "index.html", "app.js", "style.css", "vendor/xterm.js",
					     "vendor/xterm.css", "vendor/addon-fit.js" };
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		snprintf(path, sizeof(path), "%s/%s", f->web, files[i]);
		write_text(path, files[i], 0644);
	}
	snprintf(path, sizeof(path), "%s/disc.iso", f->iso_dir);
	write_text(path, "iso", 0644);
	write_text(f->program, fake_virtus, 0755);
	setenv("VIRTUS_VM_RUN_DIR", f->vm_dir, 1);
	snprintf(path, sizeof(path), "%s/run", f->dir);
	setenv("VIRTUS_RUNROOT", path, 1); /* the store's run state goes with the test's dir */
	struct serve_options o = { .root = f->root, .iso_dir = f->iso_dir, .web_dir = f->web, .program = f->program };
	vt_err err = { 0 };
	int rc = serve_init(&f->s, &o, &err);
	if (rc)
		print_error("serve_init: %s\n", err.msg);
	assert_int_equal(rc, 0);
	/* a VM named web1 whose VMM is this process */
	assert_int_equal(vm_state_create("web1", NULL, false, &f->vm, &err), 0);
	assert_int_equal(vm_state_publish(&f->vm, &err), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	serve_fini(&f->s);
	char cmd[160];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* One request; the reply's status, its body parsed into *body (NULL if none is wanted). */
static int request(struct fx *f, const char *method, const char *path, const char *body, const char *auth,
		   const char *client, json_object **out)
{
	char bearer[SERVE_TOKEN_LEN + 16];
	snprintf(bearer, sizeof(bearer), "Bearer %s", auth ? auth : f->s.token);
	struct serve_request req = { .method = method, .path = path, .authorization = bearer,
				     .client = client ? client : "127.0.0.1", .body = body ? body : "",
				     .body_len = body ? strlen(body) : 0 };
	struct serve_reply reply;
	serve_handle(&f->s, &req, &reply);
	if (out)
		*out = reply.body ? json_tokener_parse(reply.body) : NULL;
	int status = reply.status;
	serve_reply_free(&reply);
	return status;
}

static const char *member(json_object *o, const char *key)
{
	json_object *v;
	return o && json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "";
}

/* ---- the token ------------------------------------------------------------------------------------------ */

static void token_file_made_once_and_checked(void **state)
{
	struct fx *f = *state;
	struct stat st;
	assert_int_equal(stat(f->token_file, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(strlen(f->s.token), SERVE_TOKEN_LEN);
	char again[SERVE_TOKEN_LEN + 1];
	vt_err err = { 0 };
	assert_int_equal(serve_token_load(f->token_file, again, &err), 0);
	assert_string_equal(again, f->s.token);
	/* others may read it: refused, and left as it is */
	chmod(f->token_file, 0644);
	assert_int_equal(serve_token_load(f->token_file, again, &err), -1);
	assert_non_null(strstr(err.msg, "mode 0600"));
	assert_int_equal(stat(f->token_file, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
	/* not 64 hex digits */
	write_text(f->token_file, "0123", 0600);
	chmod(f->token_file, 0600);
	assert_int_equal(serve_token_load(f->token_file, again, &err), -1);
	assert_non_null(strstr(err.msg, "64 hex digits"));
	assert_false(serve_token_matches(f->s.token, NULL));
	assert_false(serve_token_matches(f->s.token, ""));
	char longer[SERVE_TOKEN_LEN + 2];
	snprintf(longer, sizeof(longer), "%s0", f->s.token);
	assert_false(serve_token_matches(f->s.token, longer));
	longer[SERVE_TOKEN_LEN - 1] ^= 1;
	longer[SERVE_TOKEN_LEN] = '\0';
	assert_false(serve_token_matches(f->s.token, longer));
	assert_true(serve_token_matches(f->s.token, f->s.token));
}

static void limiter_windows(void **state)
{
	(void)state;
	struct serve_limiter l;
	serve_limiter_init(&l);
	time_t t = 1000;
	for (int i = 0; i < SERVE_FAILS_ALLOWED; i++) {
		assert_false(serve_limiter_blocked(&l, "10.0.0.1", t));
		serve_limiter_fail(&l, "10.0.0.1", t + i);
	}
	assert_true(serve_limiter_blocked(&l, "10.0.0.1", t + 10));
	assert_false(serve_limiter_blocked(&l, "10.0.0.2", t + 10));
	assert_false(serve_limiter_blocked(&l, "10.0.0.1", t + SERVE_FAIL_WINDOW_S));
	/* more addresses than slots: the oldest are forgotten, the newest kept */
	for (int i = 0; i < SERVE_LIMITER_SLOTS + 10; i++) {
		char a[32];
		snprintf(a, sizeof(a), "192.168.%d.%d", i / 256, i % 256);
		for (int k = 0; k < SERVE_FAILS_ALLOWED; k++)
			serve_limiter_fail(&l, a, t + 100 + i);
	}
	assert_true(serve_limiter_blocked(&l, "192.168.1.9", t + 100 + 265));
	assert_false(serve_limiter_blocked(&l, "192.168.0.0", t + 100 + 265));
}

/* ---- access ----------------------------------------------------------------------------------------------- */

static void page_files_need_no_token(void **state)
{
	struct fx *f = *state;
	struct serve_request req = { .method = "GET", .path = "/", .client = "10.1.1.1", .body = "" };
	struct serve_reply reply;
	serve_handle(&f->s, &req, &reply);
	assert_int_equal(reply.status, 200);
	assert_non_null(reply.file);
	assert_memory_equal(reply.file->data, "index.html", 10);
	assert_string_equal(reply.file->type, "text/html; charset=utf-8");
	serve_reply_free(&reply);
	req.path = "/vendor/xterm.js";
	serve_handle(&f->s, &req, &reply);
	assert_int_equal(reply.status, 200);
	assert_memory_equal(reply.file->data, "vendor/xterm.js", 15);
	serve_reply_free(&reply);
	static const char *const missing[] = { "/../etc/passwd", "/vendor/../../etc/passwd", "/index.htm", "/vendor/" };
	for (size_t i = 0; i < ARRAY_SIZE(missing); i++) {
		req.path = missing[i];
		serve_handle(&f->s, &req, &reply);
		assert_int_equal(reply.status, 404);
		assert_null(reply.file);
		serve_reply_free(&reply);
	}
	req.method = "POST";
	req.path = "/app.js";
	serve_handle(&f->s, &req, &reply);
	assert_int_equal(reply.status, 405);
	serve_reply_free(&reply);
}

static void api_needs_the_token(void **state)
{
	struct fx *f = *state;
	json_object *o;
	struct serve_request req = { .method = "GET", .path = "/api/vms", .client = "10.2.2.2", .body = "" };
	struct serve_reply reply;
	serve_handle(&f->s, &req, &reply);
	assert_int_equal(reply.status, 401);
	assert_non_null(strstr(reply.body, "needs the token"));
	serve_reply_free(&reply);
	/* ?token= works as the header does */
	req.query_token = f->s.token;
	serve_handle(&f->s, &req, &reply);
	assert_int_equal(reply.status, 200);
	serve_reply_free(&reply);
	/* wrong tokens: 401 five times, then 429 even with the right one; another address is not affected */
	for (int i = 0; i < SERVE_FAILS_ALLOWED; i++) {
		assert_int_equal(request(f, "GET", "/api/vms", NULL, "0000", "10.3.3.3", &o), 401);
		assert_string_equal(member(o, "error"), "wrong token");
		json_object_put(o);
	}
	assert_int_equal(request(f, "GET", "/api/vms", NULL, "0000", "10.3.3.3", NULL), 429);
	assert_int_equal(request(f, "GET", "/api/vms", NULL, NULL, "10.3.3.3", &o), 429);
	assert_non_null(strstr(member(o, "error"), "too many wrong tokens"));
	json_object_put(o);
	assert_int_equal(request(f, "GET", "/api/vms", NULL, NULL, "10.4.4.4", NULL), 200);
}

/* ---- lists --------------------------------------------------------------------------------------------------- */

static void lists(void **state)
{
	struct fx *f = *state;
	json_object *o, *v;
	assert_int_equal(request(f, "GET", "/api/overview", NULL, NULL, NULL, &o), 200);
	assert_true(json_object_object_get_ex(o, "host", &v));
	assert_true(json_object_get_int(json_object_object_get(v, "cpus")) >= 1);
	assert_true(json_object_get_int(json_object_object_get(v, "mem_total_mib")) > 0);
	assert_true(json_object_object_get_ex(o, "vms", &v));
	/* the published VM, whose API does not answer (there is no socket): unresponsive */
	assert_int_equal(json_object_array_length(v), 1);
	json_object *vm = json_object_array_get_idx(v, 0);
	assert_string_equal(member(vm, "name"), "web1");
	assert_string_equal(member(vm, "state"), "unresponsive");
	assert_int_equal(json_object_get_int(json_object_object_get(vm, "pid")), getpid());
	assert_true(json_object_object_get_ex(o, "containers", &v));
	assert_int_equal(json_object_array_length(v), 0);
	assert_true(json_object_object_get_ex(o, "images", &v));
	assert_int_equal(json_object_array_length(v), 0);
	json_object_put(o);
	assert_int_equal(request(f, "GET", "/api/isos", NULL, NULL, NULL, &o), 200);
	assert_string_equal(member(o, "dir"), f->iso_dir);
	assert_string_equal(json_object_get_string(json_object_object_get(o, "isos")), "[ \"disc.iso\" ]");
	json_object_put(o);
	assert_int_equal(request(f, "POST", "/api/vms", NULL, NULL, NULL, NULL), 400); /* a restore without its fields */
	assert_int_equal(request(f, "DELETE", "/api/vms", NULL, NULL, NULL, NULL), 404);
	assert_int_equal(request(f, "PUT", "/api/overview", NULL, NULL, NULL, NULL), 404);
}

static void cpu_percent_between_samples(void **state)
{
	struct fx *f = *state;
	assert_null(serve_cpu_percent(&f->s.usage, "vm:x", 1000));
	json_object *p = serve_cpu_percent(&f->s.usage, "vm:x", 1000);
	assert_non_null(p);
	assert_true(json_object_get_double(p) == 0.0);
	json_object_put(p);
	usleep(20000);
	p = serve_cpu_percent(&f->s.usage, "vm:x", 1000 + 10 * 1000000ull); /* 10 ms in about 20 */
	double pct = json_object_get_double(p);
	assert_true(pct > 10 && pct <= 50);
	json_object_put(p);
}

/* ---- actions ------------------------------------------------------------------------------------------------- */

static void bad_requests(void **state)
{
	struct fx *f = *state;
	json_object *o;
	static const struct { const char *method, *path, *body; int status; const char *says; } cases[] = {
		{ "POST", "/api/vms/web1/pause", "{\"x\":", 400, "not a JSON object" },
		{ "POST", "/api/vms/web1/pause", "[1]", 400, "not a JSON object" },
		{ "POST", "/api/vms/web1/pause", "{\"now\":true}", 400, "unknown member \"now\"" },
		{ "POST", "/api/vms/nosuch/pause", NULL, 404, "no VM named 'nosuch'" },
		{ "POST", "/api/vms/-x/pause", NULL, 400, "VM name '-x'" },
		{ "POST", "/api/vms/web1/reboot", NULL, 404, "no action POST /api/vms/NAME/reboot" },
		{ "GET", "/api/vms/web1/pause", NULL, 404, "no action GET" },
		{ "POST", "/api/vms/web1/stop", "{\"timeout\":-1}", 400, "\"timeout\" must be a whole number" },
		{ "POST", "/api/vms/web1/stop", "{\"timeout\":\"5\"}", 400, "\"timeout\" must be a whole number" },
		{ "POST", "/api/vms/web1/snapshot", "{\"dir\":\"rel/dir\"}", 400, "an absolute path" },
		{ "POST", "/api/vms/web1/snapshot", NULL, 400, "an absolute path" },
		{ "POST", "/api/vms/web1/cdrom", "{\"iso\":\"../etc/x.iso\"}", 400, "is the name of a .iso file" },
		{ "POST", "/api/vms/web1/cdrom", "{\"iso\":\"/etc/passwd\"}", 400, "is the name of a .iso file" },
		{ "POST", "/api/vms/web1/cdrom", "{\"iso\":\"other.iso\"}", 404, "no ISO 'other.iso'" },
		{ "POST", "/api/vms/web1/cdrom", "{\"iso\":\"disc.iso\",\"force\":1}", 400, "\"force\" must be true or false" },
		{ "POST", "/api/vms/web1/cdrom", "{}", 400, "\"iso\": the name of an ISO" },
		{ "POST", "/api/vms/web1/balloon", "{}", 400, "\"size_mib\"" },
		{ "POST", "/api/containers", "{}", 400, "\"image\": the image to run" },
		{ "POST", "/api/containers", "{\"image\":\"-v\"}", 400, "may not start with '-'" },
		{ "POST", "/api/containers", "{\"image\":\"bb\",\"command\":[\"--rm\"]}", 400, "may not start with '-'" },
		{ "POST", "/api/containers", "{\"image\":\"bb\",\"command\":\"sh\"}", 400, "must be an array" },
		{ "POST", "/api/containers", "{\"image\":\"bb\",\"ports\":[1]}", 400, "array of non-empty strings" },
		{ "POST", "/api/containers", "{\"image\":\"bb\",\"isolation\":\"jail\"}", 400, "\"container\" or \"vm\"" },
		{ "POST", "/api/containers", "{\"image\":\"bb\",\"privileged\":true}", 400, "unknown member" },
		{ "POST", "/api/containers/nosuch/stop", NULL, 404, "no container 'nosuch'" },
		{ "DELETE", "/api/containers/nosuch", NULL, 404, "no container 'nosuch'" },
		{ "POST", "/api/nothing", NULL, 404, "no such API path" },
		{ "POST", "/api/vms/web1/disks", "{\"id\":\"d\",\"path\":\"rel.img\"}", 400, "an absolute path" },
		{ "POST", "/api/vms/web1/disks", "{\"id\":\"d\"}", 400, "needs \"id\" and \"path\"" },
		{ "PUT", "/api/vms/web1/disks/d", NULL, 404, "no action PUT /api/vms/NAME/disks/ID" },
		{ "DELETE", "/api/vms/nosuch/disks/d", NULL, 404, "no VM named 'nosuch'" },
		{ "POST", "/api/vms", "{\"name\":\"x y\",\"restore\":\"/s\"}", 400, "VM name 'x y'" },
		{ "POST", "/api/vms", "{\"name\":\"x\"}", 400, "needs \"name\" and one of" },
		{ "POST", "/api/containers/a/b/c", NULL, 404, "no such API path" },
		{ "POST", "/api/vms", "{\"name\":\"x\",\"incoming\":\"tcp:0.0.0.0:1\",\"restore\":\"/s\"}", 400, "one of" },
		{ "POST", "/api/vms/web1/migrate", "{}", 400, "\"to\": the destination's URL" },
		{ "POST", "/api/vms/web1/migrate", "{\"to\":\"ftp://h:1\"}", 400, "\"to\": the destination's URL" },
		{ "POST", "/api/vms/web1/migrate", "{\"to\":\"http://127.0.0.1:1\"}", 400, "the destination's token" },
		{ "POST", "/api/vms/web1/migrate", "{\"to\":\"http://127.0.0.1:1/#token=0000000000000000000000000000000000000000000000000000000000000000\",\"port\":0}", 400, "\"port\"" },
		{ "POST", "/api/vms/web1/migrate", "{\"to\":\"http://127.0.0.1:1/#token=0000000000000000000000000000000000000000000000000000000000000000\",\"x\":1}", 400, "unknown member" },
		{ "POST", "/api/vms/web1/migrate", "{\"to\":\"http://127.0.0.1:1/#token=0000000000000000000000000000000000000000000000000000000000000000\"}", 502, "the destination: http://127.0.0.1:1" },
		{ "POST", "/api/vms/nosuch/migrate", "{}", 404, "no VM named 'nosuch'" },
		{ "POST", "/api/vms//pause", NULL, 404, "no such API path" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int status = request(f, cases[i].method, cases[i].path, cases[i].body, NULL, NULL, &o);
		const char *msg = member(o, "error");
		if (status != cases[i].status || !strstr(msg, cases[i].says))
			fail_msg("%s %s %s: %d '%s', expected %d '%s'", cases[i].method, cases[i].path,
				 cases[i].body ? cases[i].body : "", status, msg, cases[i].status, cases[i].says);
		json_object_put(o);
	}
}

/* Each action is the command it should be: the fake virtus echoes it, or refuses `vm` ones. */
static void actions_run_their_commands(void **state)
{
	struct fx *f = *state;
	json_object *o;
	char want[512];
	assert_int_equal(request(f, "POST", "/api/containers",
				 "{\"image\":\"bb\",\"name\":\"web\",\"command\":[\"sh\",\"-c\",\"echo hi\"],"
				 "\"ports\":[\"8080:80\"],\"volumes\":[\"/srv:/data:ro\"],\"isolation\":\"vm\"}",
				 NULL, NULL, &o), 200);
	assert_string_equal(member(o, "output"),
			    "run|-d|--name|web|--isolation|vm|-p|8080:80|-v|/srv:/data:ro|--|bb|sh|-c|echo hi|");
	json_object_put(o);
	/* a refusal: 409 with the command's message, without its "virtus: " */
	assert_int_equal(request(f, "POST", "/api/vms/web1/pause", NULL, NULL, NULL, &o), 409);
	assert_string_equal(member(o, "error"), "refused: vm pause web1");
	json_object_put(o);
	static const struct { const char *method, *path, *body, *command; } cases[] = {
		{ "POST", "/api/vms/web1/resume", "{}", "vm resume web1" },
		{ "POST", "/api/vms/web1/kill", NULL, "vm kill web1" },
		{ "POST", "/api/vms/web1/stop", NULL, "vm stop web1" },
		{ "POST", "/api/vms/web1/stop", "{\"timeout\":30}", "vm stop -t 30 web1" },
		{ "POST", "/api/vms/web1/snapshot", "{\"dir\":\"/srv/snap 1\"}", "vm snapshot web1 /srv/snap 1" },
		{ "POST", "/api/vms/web1/cdrom", "{\"iso\":\"disc.iso\",\"force\":true}", "vm cd web1 insert %s/disc.iso --force" },
		{ "DELETE", "/api/vms/web1/cdrom", NULL, "vm cd web1 eject" },
		{ "POST", "/api/vms/web1/balloon", "{\"size_mib\":256}", "vm balloon web1 256M" },
		{ "POST", "/api/vms/web1/disks", "{\"id\":\"data\",\"path\":\"/srv/d.qcow2\",\"read_only\":true}",
		  "vm disk web1 add data /srv/d.qcow2 --ro" },
		{ "DELETE", "/api/vms/web1/disks/data", NULL, "vm disk web1 remove data" },
		{ "POST", "/api/vms", "{\"name\":\"web2\",\"restore\":\"/srv/snap\"}", "vm run -d --name web2 --restore /srv/snap" },
		{ "POST", "/api/vms", "{\"name\":\"web2\",\"incoming\":\"tcp:0.0.0.0:4466\"}",
		  "vm run -d --name web2 --incoming tcp:0.0.0.0:4466" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		snprintf(want, sizeof(want), cases[i].command, f->iso_dir);
		char expected[600];
		snprintf(expected, sizeof(expected), "refused: %s", want);
		assert_int_equal(request(f, cases[i].method, cases[i].path, cases[i].body, NULL, NULL, &o), 409);
		if (strcmp(member(o, "error"), expected))
			fail_msg("%s %s: ran '%s', expected '%s'", cases[i].method, cases[i].path, member(o, "error"), expected);
		json_object_put(o);
	}
}

static void run_cli_status_output_timeout(void **state)
{
	struct fx *f = *state;
	char *out, *err;
	char *argv[] = { "exec-sh", "echo out; echo err >&2; exit 3", NULL };
	assert_int_equal(serve_run_cli(&f->s, argv, 10, &out, &err), 3);
	assert_string_equal(out, "out\n");
	assert_string_equal(err, "err\n");
	free(out);
	free(err);
	char *slow[] = { "exec-sh", "echo started; exec sleep 30", NULL };
	uint64_t t0 = now_ns();
	assert_int_equal(serve_run_cli(&f->s, slow, 1, &out, &err), 128 + SIGKILL);
	assert_true(now_ns() - t0 < 5000000000ull);
	assert_string_equal(out, "started\n");
	assert_non_null(strstr(err, "longer than 1 s"));
	free(out);
	free(err);
	/* a command that leaves a child in the background holding its output (as a daemon that did not close
	 * it would): its end is what counts */
	char *bg[] = { "exec-sh", "sleep 20 & echo done", NULL };
	t0 = now_ns();
	assert_int_equal(serve_run_cli(&f->s, bg, 10, &out, &err), 0);
	assert_true(now_ns() - t0 < 2000000000ull);
	assert_string_equal(out, "done\n");
	free(out);
	free(err);
	/* output beyond SERVE_OUTPUT_MAX is cut, and the command is not blocked by it */
	char *loud[] = { "exec-sh", "head -c 1000000 /dev/zero | tr '\\0' x", NULL };
	assert_int_equal(serve_run_cli(&f->s, loud, 10, &out, &err), 0);
	assert_int_equal(strlen(out), SERVE_OUTPUT_MAX);
	free(out);
	free(err);
}

/* ---- the terminal ---------------------------------------------------------------------------------------------- */

struct term_run {
	struct serve *s;
	int sock;
	char *argv[4];
};

static void *term_thread(void *arg)
{
	struct term_run *r = arg;
	serve_term_run(r->s, r->sock, r->argv, NULL, 0);
	close(r->sock);
	return NULL;
}

/* A terminal running the shell script on a thread; returns the page's end of its socket. */
static int start_term(struct fx *f, struct term_run *r, const char *script, pthread_t *t)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	*r = (struct term_run){ &f->s, sv[0], { "exec-sh", (char *)script, NULL } };
	assert_int_equal(pthread_create(t, NULL, term_thread, r), 0);
	return sv[1];
}

static void end_term(pthread_t t, int fd)
{
	assert_int_equal(pthread_join(t, NULL), 0);
	close(fd);
}

static void send_masked(int fd, uint8_t op, const void *data, size_t len)
{
	uint8_t h[14] = { (uint8_t)(0x80 | op) }, mask[4] = { 1, 2, 3, 4 };
	size_t hl;
	if (len < 126) {
		h[1] = (uint8_t)(0x80 | len);
		hl = 2;
	} else if (len < 65536) {
		h[1] = 0x80 | 126;
		h[2] = (uint8_t)(len >> 8);
		h[3] = (uint8_t)len;
		hl = 4;
	} else {
		h[1] = 0x80 | 127;
		for (int i = 0; i < 8; i++)
			h[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
		hl = 10;
	}
	memcpy(h + hl, mask, 4);
	uint8_t *p = malloc(len + 1);
	for (size_t i = 0; i < len; i++)
		p[i] = ((const uint8_t *)data)[i] ^ mask[i & 3];
	assert_int_equal(write_all(fd, h, hl + 4), 0);
	assert_int_equal(write_all(fd, p, len), 0);
	free(p);
}

/* Read server frames until `want` bytes of terminal output have come (or a close: *closed gets its code). */
static size_t read_output(int fd, uint8_t *out, size_t want, int *closed)
{
	size_t got = 0;
	*closed = -1;
	while (got < want) {
		uint8_t h[10];
		if (read_all(fd, h, 2))
			break;
		uint64_t len = h[1] & 0x7f;
		if (len == 126) {
			assert_int_equal(read_all(fd, h + 2, 2), 0);
			len = (uint64_t)h[2] << 8 | h[3];
		} else if (len == 127) {
			assert_int_equal(read_all(fd, h + 2, 8), 0);
			len = 0;
			for (int i = 0; i < 8; i++)
				len = len << 8 | h[2 + i];
		}
		uint8_t *p = malloc(len + 1);
		assert_int_equal(read_all(fd, p, len), 0);
		if ((h[0] & 0x0f) == WS_CLOSE) {
			*closed = len >= 2 ? p[0] << 8 | p[1] : 0;
			free(p);
			break;
		}
		size_t take = MIN(len, want - got);
		memcpy(out + got, p, take);
		got += take;
		free(p);
	}
	return got;
}

static void terminal_keys_of_every_size(void **state)
{
	struct fx *f = *state;
	/* raw, no echo: what comes back is exactly what cat read; "stty size" first shows the resize */
	struct term_run r;
	pthread_t t;
	int page = start_term(f, &r, "stty raw -echo; read x; stty size; exec cat", &t);
	static const char resize[] = "{\"resize\":{\"cols\":132,\"rows\":43}}";
	send_masked(page, WS_TEXT, resize, strlen(resize));
	usleep(100000);
	send_masked(page, WS_BINARY, "go\n", 3);
	uint8_t buf[8];
	int closed;
	assert_int_equal(read_output(page, buf, 7, &closed), 7);
	assert_memory_equal(buf, "43 132\n", 7); /* raw: no output processing */
	static const size_t sizes[] = { 1, 125, 126, 4096, 65535, 65536, 200000 };
	for (size_t k = 0; k < ARRAY_SIZE(sizes); k++) {
		size_t n = sizes[k];
		uint8_t *data = malloc(n), *back = malloc(n);
		for (size_t i = 0; i < n; i++)
			data[i] = (uint8_t)('a' + (i + k) % 26); /* letters: no terminal control characters */
		send_masked(page, WS_BINARY, data, n);
		assert_int_equal(read_output(page, back, n, &closed), n);
		assert_memory_equal(back, data, n);
		free(data);
		free(back);
	}
	/* a ping is answered with a pong of its data */
	send_masked(page, WS_PING, "beat", 4);
	uint8_t pong[6];
	assert_int_equal(read_all(page, pong, 6), 0);
	assert_int_equal(pong[0], 0x80 | WS_PONG);
	assert_memory_equal(pong + 2, "beat", 4);
	/* the page closes: the server answers with a close and ends the command */
	send_masked(page, WS_CLOSE, "\x03\xe8", 2);
	assert_int_equal(read_output(page, buf, 1, &closed), 0);
	assert_int_equal(closed, 1000);
	end_term(t, page);
}

static void terminal_command_end_closes(void **state)
{
	struct fx *f = *state;
	struct term_run r;
	pthread_t t;
	int page = start_term(f, &r, "echo bye; exit 4", &t);
	uint8_t buf[64];
	int closed;
	size_t n = read_output(page, buf, sizeof(buf), &closed);
	assert_true(n >= 3 && !memcmp(buf, "bye", 3));
	assert_int_equal(closed, 1000);
	end_term(t, page);
}

/* The page goes mid-stream (no close frame) while the command pours out output: the terminal ends, and the
 * command with it. A protocol violation ends it with its close code. */
static void terminal_page_gone_mid_stream(void **state)
{
	struct fx *f = *state;
	char pidfile[128], cmd[256];
	snprintf(pidfile, sizeof(pidfile), "%s/yes.pid", f->dir);
	snprintf(cmd, sizeof(cmd), "echo $$ > %s; exec yes", pidfile);
	struct term_run r;
	pthread_t t;
	int page = start_term(f, &r, cmd, &t);
	uint8_t buf[4096];
	int closed;
	assert_int_equal(read_output(page, buf, sizeof(buf), &closed), sizeof(buf));
	close(page); /* the page goes, without a close */
	assert_int_equal(pthread_join(t, NULL), 0);
	FILE *pf = fopen(pidfile, "r");
	int pid = 0;
	assert_non_null(pf);
	assert_int_equal(fscanf(pf, "%d", &pid), 1);
	fclose(pf);
	assert_int_equal(kill(pid, 0), -1); /* reaped: gone */
	assert_int_equal(errno, ESRCH);

	struct term_run r2;
	page = start_term(f, &r2, "exec cat", &t);
	uint8_t unmasked[] = { 0x82, 0x01, 'x' };
	assert_int_equal(write_all(page, unmasked, sizeof(unmasked)), 0);
	assert_int_equal(read_output(page, buf, sizeof(buf), &closed), 0);
	assert_int_equal(closed, WS_CLOSE_PROTOCOL);
	end_term(t, page);
}

static void terminal_routes(void **state)
{
	struct fx *f = *state;
	struct serve_request req = { .method = "GET", .path = "/api/vms/web1/console", .query_token = f->s.token,
				     .client = "127.0.0.1", .body = "", .websocket = true };
	struct serve_reply reply;
	serve_handle(&f->s, &req, &reply);
	assert_int_equal(reply.status, 101);
	assert_string_equal(reply.term_argv[0], "vm");
	assert_string_equal(reply.term_argv[1], "console");
	assert_string_equal(reply.term_argv[2], "web1");
	assert_null(reply.term_argv[3]);
	serve_reply_free(&reply);
	static const struct { const char *path; int status; } refused[] = {
		{ "/api/vms/nosuch/console", 404 },
		{ "/api/containers/nosuch/shell", 404 },
		{ "/api/vms/web1/shell", 404 },
		{ "/api/overview", 404 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(refused); i++) {
		req.path = refused[i].path;
		serve_handle(&f->s, &req, &reply);
		assert_int_equal(reply.status, refused[i].status);
		assert_null(reply.term_argv[0]);
		serve_reply_free(&reply);
	}
	req.path = "/api/vms/web1/console";
	req.query_token = "nope";
	serve_handle(&f->s, &req, &reply);
	assert_int_equal(reply.status, 401);
	serve_reply_free(&reply);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		T(token_file_made_once_and_checked),
		T(limiter_windows),
		T(page_files_need_no_token),
		T(api_needs_the_token),
		T(lists),
		T(cpu_percent_between_samples),
		T(bad_requests),
		T(actions_run_their_commands),
		T(run_cli_status_output_timeout),
		T(terminal_keys_of_every_size),
		T(terminal_command_end_closes),
		T(terminal_page_gone_mid_stream),
		T(terminal_routes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

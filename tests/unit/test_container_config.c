/* The OCI config of a container: image config (Env, Entrypoint, Cmd, WorkingDir, User) + run's flags. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "container/container.h"
#include "image/image.h"
#include "runtime/rt.h"

/* A root file system with just /etc/passwd and /etc/group, passwd reached through an absolute symlink. */
static int make_rootfs(void **state)
{
	char *dir = strdup("/tmp/test-ctr-config.XXXXXX");
	assert_non_null(mkdtemp(dir));
	char path[256];
	snprintf(path, sizeof(path), "%s/etc", dir);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/etc/passwd.real", dir);
	FILE *f = fopen(path, "w");
	fputs("root:x:0:0:root:/root:/bin/sh\nwww:x:33:34:web:/var/www:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n", f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/etc/passwd", dir);
	assert_int_equal(symlink("/etc/passwd.real", path), 0);
	snprintf(path, sizeof(path), "%s/etc/group", dir);
	f = fopen(path, "w");
	fputs("root:x:0:\nwww-data:x:34:\nstaff:x:50:\n", f);
	fclose(f);
	*state = dir;
	return 0;
}

static int remove_rootfs(void **state)
{
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", (char *)*state);
	free(*state);
	return system(cmd) == 0 ? 0 : -1;
}

static json_object *image_config(void)
{
	return json_tokener_parse("{\"Env\": [\"PATH=/app/bin:/bin\", \"MODE=prod\"], \"Entrypoint\": [\"/entry\"],"
				  " \"Cmd\": [\"serve\", \"--port\", \"80\"], \"WorkingDir\": \"/app\", \"User\": \"www\"}");
}

static json_object *at(json_object *o, const char *path)
{
	char copy[128], *save = NULL;
	snprintf(copy, sizeof(copy), "%s", path);
	for (char *k = strtok_r(copy, ".", &save); k && o; k = strtok_r(NULL, ".", &save)) {
		if (json_object_is_type(o, json_type_array))
			o = json_object_array_get_idx(o, (size_t)atoi(k));
		else if (!json_object_object_get_ex(o, k, &o))
			return NULL;
	}
	return o;
}

static const char *str(json_object *o, const char *path)
{
	json_object *v = at(o, path);
	return v ? json_object_get_string(v) : NULL;
}

static bool env_has(json_object *spec, const char *kv)
{
	json_object *env = at(spec, "process.env");
	for (size_t i = 0; env && i < json_object_array_length(env); i++)
		if (!strcmp(json_object_get_string(json_object_array_get_idx(env, i)), kv))
			return true;
	return false;
}

static void image_config_applied(void **state)
{
	struct ctr_run_opts o = { .net.mode = CNET_BRIDGE };
	json_object *img = image_config(), *spec;
	vt_err err;
	assert_int_equal(ctr_build_spec(&o, img, *state, "abcdef123456", &spec, &err), 0);
	assert_string_equal(str(spec, "process.args.0"), "/entry");
	assert_string_equal(str(spec, "process.args.1"), "serve");
	assert_int_equal(json_object_array_length(at(spec, "process.args")), 4);
	assert_true(env_has(spec, "PATH=/app/bin:/bin")); /* the image's PATH replaces the default */
	assert_true(env_has(spec, "MODE=prod"));
	assert_true(env_has(spec, "HOSTNAME=abcdef123456"));
	assert_string_equal(str(spec, "process.cwd"), "/app");
	assert_int_equal(json_object_get_int(at(spec, "process.user.uid")), 33);
	assert_int_equal(json_object_get_int(at(spec, "process.user.gid")), 34);
	assert_string_equal(str(spec, "hostname"), "abcdef123456");
	assert_false(json_object_get_boolean(at(spec, "root.readonly")));
	assert_false(json_object_get_boolean(at(spec, "process.terminal")));
	assert_null(at(spec, "linux.resources"));
	json_object_put(spec);
	json_object_put(img);
}

static void flags_win(void **state)
{
	const char *cmd[] = { "sh", "-c", "true" }, *env[] = { "MODE=dev", "EXTRA=1" };
	struct ctr_volume vols[] = { { "/srv/data", "/data", true }, { "/srv/logs", "/logs", false } };
	struct ctr_run_opts o = { .cmd = cmd, .n_cmd = 3, .env = env, .n_env = 2, .workdir = "/tmp", .user = "nobody:staff",
				  .volumes = vols, .n_volumes = 2, .memory = 64 << 20, .cpu_quota = 50000,
				  .pids_limit = 20, .tty = true, .net.mode = CNET_NONE };
	json_object *img = image_config(), *spec;
	vt_err err;
	assert_int_equal(ctr_build_spec(&o, img, *state, "h", &spec, &err), 0);
	/* CMD replaces the image's Cmd, the Entrypoint stays */
	assert_string_equal(str(spec, "process.args.0"), "/entry");
	assert_string_equal(str(spec, "process.args.1"), "sh");
	assert_int_equal(json_object_array_length(at(spec, "process.args")), 4);
	assert_true(env_has(spec, "MODE=dev"));
	assert_false(env_has(spec, "MODE=prod"));
	assert_true(env_has(spec, "EXTRA=1"));
	assert_true(env_has(spec, "TERM=xterm"));
	assert_string_equal(str(spec, "process.cwd"), "/tmp");
	assert_int_equal(json_object_get_int(at(spec, "process.user.uid")), 65534);
	assert_int_equal(json_object_get_int(at(spec, "process.user.gid")), 50);
	assert_true(json_object_get_boolean(at(spec, "process.terminal")));
	assert_int_equal(json_object_get_int64(at(spec, "linux.resources.memory.limit")), 64 << 20);
	assert_int_equal(json_object_get_int64(at(spec, "linux.resources.cpu.quota")), 50000);
	assert_int_equal(json_object_get_int64(at(spec, "linux.resources.cpu.period")), 100000);
	assert_int_equal(json_object_get_int64(at(spec, "linux.resources.pids.limit")), 20);
	json_object *mounts = at(spec, "mounts");
	size_t n = json_object_array_length(mounts);
	assert_string_equal(str(json_object_array_get_idx(mounts, n - 2), "destination"), "/data");
	assert_string_equal(str(json_object_array_get_idx(mounts, n - 2), "source"), "/srv/data");
	assert_string_equal(str(json_object_array_get_idx(mounts, n - 2), "options.1"), "ro");
	assert_string_equal(str(json_object_array_get_idx(mounts, n - 1), "options.1"), "rw");
	/* none: the runtime makes a network namespace */
	bool netns = false;
	json_object *ns = at(spec, "linux.namespaces");
	for (size_t i = 0; i < json_object_array_length(ns); i++)
		netns |= !strcmp(str(json_object_array_get_idx(ns, i), "type"), "network");
	assert_true(netns);
	json_object_put(spec);
	json_object_put(img);
}

static void entrypoint_and_host_network(void **state)
{
	struct ctr_run_opts o = { .entrypoint = "/bin/other", .net.mode = CNET_HOST };
	json_object *img = image_config(), *spec;
	vt_err err;
	assert_int_equal(ctr_build_spec(&o, img, *state, "h", &spec, &err), 0);
	/* --entrypoint drops the image's Cmd too */
	assert_string_equal(str(spec, "process.args.0"), "/bin/other");
	assert_int_equal(json_object_array_length(at(spec, "process.args")), 1);
	json_object *ns = at(spec, "linux.namespaces");
	for (size_t i = 0; i < json_object_array_length(ns); i++)
		assert_string_not_equal(str(json_object_array_get_idx(ns, i), "type"), "network");
	json_object_put(spec);
	json_object_put(img);
}

static void errors(void **state)
{
	json_object *spec, *empty = json_tokener_parse("{}");
	vt_err err;
	struct ctr_run_opts o = { .net.mode = CNET_NONE };
	assert_int_equal(ctr_build_spec(&o, empty, *state, "h", &spec, &err), -1);
	assert_non_null(strstr(err.msg, "no command"));
	const char *cmd[] = { "true" }, *bad_env[] = { "=x" };
	struct ctr_run_opts u = { .cmd = cmd, .n_cmd = 1, .user = "ghost" };
	assert_int_equal(ctr_build_spec(&u, empty, *state, "h", &spec, &err), -1);
	assert_non_null(strstr(err.msg, "user 'ghost' not found"));
	struct ctr_run_opts g = { .cmd = cmd, .n_cmd = 1, .user = "www:nogroup" };
	assert_int_equal(ctr_build_spec(&g, empty, *state, "h", &spec, &err), -1);
	assert_non_null(strstr(err.msg, "group 'nogroup' not found"));
	struct ctr_run_opts e = { .cmd = cmd, .n_cmd = 1, .env = bad_env, .n_env = 1 };
	assert_int_equal(ctr_build_spec(&e, empty, *state, "h", &spec, &err), -1);
	assert_non_null(strstr(err.msg, "KEY=VALUE"));
	struct ctr_run_opts w = { .cmd = cmd, .n_cmd = 1, .workdir = "relative" };
	assert_int_equal(ctr_build_spec(&w, empty, *state, "h", &spec, &err), -1);
	assert_non_null(strstr(err.msg, "absolute"));
	json_object_put(empty);
}

static void users(void **state)
{
	uid_t u;
	gid_t g;
	vt_err err;
	assert_int_equal(img_resolve_user(*state, "1234", &u, &g, &err), 0);
	assert_int_equal(u, 1234);
	assert_int_equal(g, 0);
	assert_int_equal(img_resolve_user(*state, "33", &u, &g, &err), 0); /* a known uid gets its group */
	assert_int_equal(g, 34);
	assert_int_equal(img_resolve_user(*state, "1:2", &u, &g, &err), 0);
	assert_int_equal(u, 1);
	assert_int_equal(g, 2);
	assert_int_equal(img_resolve_user(*state, "root:www-data", &u, &g, &err), 0);
	assert_int_equal(u, 0);
	assert_int_equal(g, 34);
	assert_int_equal(img_resolve_user(NULL, "www", &u, &g, &err), -1);
	assert_int_equal(img_resolve_user(*state, "www:", &u, &g, &err), -1);
	assert_int_equal(img_resolve_user(*state, ":1", &u, &g, &err), -1);
}

static void flag_parsers(void **state)
{
	(void)state;
	uint64_t q;
	vt_err err;
	assert_int_equal(ctr_parse_cpus("1.5", &q, &err), 0);
	assert_int_equal(q, 150000);
	assert_int_equal(ctr_parse_cpus("0.001", &q, &err), -1);
	assert_int_equal(ctr_parse_cpus("two", &q, &err), -1);
	assert_int_equal(ctr_parse_cpus("-1", &q, &err), -1);
	struct ctr_volume v;
	char *buf = NULL;
	assert_int_equal(ctr_parse_volume("/a:/b:ro", &v, &buf, &err), 0);
	assert_string_equal(v.host, "/a");
	assert_string_equal(v.ctr, "/b");
	assert_true(v.ro);
	free(buf);
	assert_int_equal(ctr_parse_volume("/a:/b", &v, &buf, &err), 0);
	assert_false(v.ro);
	free(buf);
	assert_int_equal(ctr_parse_volume("a:/b", &v, &buf, &err), -1);
	free(buf);
	assert_int_equal(ctr_parse_volume("/a:b", &v, &buf, &err), -1);
	free(buf);
	assert_int_equal(ctr_parse_volume("/a:/b:rx", &v, &buf, &err), -1);
	assert_non_null(strstr(err.msg, "'rx'"));
	free(buf);
	assert_int_equal(ctr_parse_volume("/a", &v, &buf, &err), -1);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(image_config_applied, make_rootfs, remove_rootfs),
		cmocka_unit_test_setup_teardown(flags_win, make_rootfs, remove_rootfs),
		cmocka_unit_test_setup_teardown(entrypoint_and_host_network, make_rootfs, remove_rootfs),
		cmocka_unit_test_setup_teardown(errors, make_rootfs, remove_rootfs),
		cmocka_unit_test_setup_teardown(users, make_rootfs, remove_rootfs),
		cmocka_unit_test(flag_parsers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

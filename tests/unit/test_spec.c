/* config.json parsing and the name tables: valid configs become the right C values, and every kind of
 * bad input gives an error that names the field. No root needed: only files in a temp bundle. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "runtime/rt.h"

struct bundle {
	char dir[64];
};

static int bundle_setup(void **state)
{
	struct bundle *b = calloc(1, sizeof(*b));
	strcpy(b->dir, "/tmp/vt-spec-XXXXXX");
	if (!b || !mkdtemp(b->dir))
		return -1;
	char rootfs[128];
	snprintf(rootfs, sizeof(rootfs), "%s/rootfs", b->dir);
	if (mkdir(rootfs, 0755))
		return -1;
	*state = b;
	return 0;
}

static int bundle_teardown(void **state)
{
	struct bundle *b = *state;
	rt_remove_tree(b->dir);
	free(b);
	return 0;
}

static const char *const base_config =
	"{\"ociVersion\":\"1.0.2\",\"root\":{\"path\":\"rootfs\"},"
	"\"process\":{\"args\":[\"sh\"],\"cwd\":\"/\",\"env\":[\"PATH=/bin\"]%s},"
	"\"linux\":{\"namespaces\":[{\"type\":\"mount\"},{\"type\":\"pid\"}%s]%s}%s}";

/* Write a config from base_config with the four insertion points filled. */
static void write_config(struct bundle *b, const char *process_extra, const char *ns_extra,
			 const char *linux_extra, const char *top_extra)
{
	char path[128], text[8192];
	snprintf(path, sizeof(path), "%s/config.json", b->dir);
	snprintf(text, sizeof(text), base_config, process_extra, ns_extra, linux_extra, top_extra);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void write_raw(struct bundle *b, const char *text)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/config.json", b->dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* Load and expect failure with `needle` in the message. */
static void expect_error(struct bundle *b, const char *needle)
{
	struct rt_spec *s = NULL;
	vt_err err = { 0 };
	assert_int_equal(rt_spec_load(b->dir, &s, &err), -1);
	assert_null(s);
	if (!strstr(err.msg, needle))
		fail_msg("error '%s' does not contain '%s'", err.msg, needle);
}

static void test_minimal_config(void **state)
{
	struct bundle *b = *state;
	write_config(b, "", "", "", "");
	struct rt_spec *s = NULL;
	vt_err err = { 0 };
	assert_int_equal(rt_spec_load(b->dir, &s, &err), 0);
	assert_string_equal(s->process.args[0], "sh");
	assert_null(s->process.args[1]);
	assert_string_equal(s->process.cwd, "/");
	assert_true(strstr(s->rootfs, "/rootfs") != NULL);
	assert_int_equal(s->n_namespaces, 2);
	assert_true(rt_spec_has_namespace(s, CLONE_NEWNS, NULL));
	assert_true(rt_spec_has_namespace(s, CLONE_NEWPID, NULL));
	assert_false(rt_spec_has_namespace(s, CLONE_NEWNET, NULL));
	assert_false(s->process.has_caps);
	rt_spec_free(s);
}

static void test_full_process(void **state)
{
	struct bundle *b = *state;
	write_config(b,
		     ",\"user\":{\"uid\":1000,\"gid\":100,\"umask\":18,\"additionalGids\":[5,6]},"
		     "\"capabilities\":{\"bounding\":[\"CAP_KILL\",\"CAP_SYS_ADMIN\"],\"ambient\":[\"cap_kill\"]},"
		     "\"rlimits\":[{\"type\":\"RLIMIT_NOFILE\",\"soft\":10,\"hard\":20}],"
		     "\"noNewPrivileges\":true,\"oomScoreAdj\":-500,\"terminal\":true",
		     "", "", "");
	struct rt_spec *s = NULL;
	vt_err err = { 0 };
	assert_int_equal(rt_spec_load(b->dir, &s, &err), 0);
	const struct rt_process *p = &s->process;
	assert_int_equal(p->uid, 1000);
	assert_int_equal(p->gid, 100);
	assert_true(p->has_umask);
	assert_int_equal(p->umask, 022);
	assert_int_equal(p->n_additional_gids, 2);
	assert_int_equal(p->additional_gids[1], 6);
	assert_true(p->has_caps);
	assert_int_equal(p->caps[RT_CAP_BOUNDING], (1ULL << 5) | (1ULL << 21));
	assert_int_equal(p->caps[RT_CAP_AMBIENT], 1ULL << 5);
	assert_int_equal(p->caps[RT_CAP_EFFECTIVE], 0);
	assert_int_equal(p->n_rlimits, 1);
	assert_int_equal(p->rlimits[0].resource, RLIMIT_NOFILE);
	assert_int_equal(p->rlimits[0].hard, 20);
	assert_true(p->no_new_privileges);
	assert_true(p->has_oom_score_adj);
	assert_int_equal(p->oom_score_adj, -500);
	assert_true(p->terminal);
	rt_spec_free(s);
}

static void test_mount_options(void **state)
{
	struct bundle *b = *state;
	write_config(b, "", "", "",
		     ",\"mounts\":[{\"destination\":\"/data\",\"type\":\"bind\",\"source\":\"/tmp\","
		     "\"options\":[\"rbind\",\"ro\",\"nosuid\",\"rslave\"]},"
		     "{\"destination\":\"/t\",\"type\":\"tmpfs\",\"source\":\"tmpfs\","
		     "\"options\":[\"nodev\",\"size=1m\",\"mode=755\",\"noexec\",\"exec\"]}]");
	struct rt_spec *s = NULL;
	vt_err err = { 0 };
	assert_int_equal(rt_spec_load(b->dir, &s, &err), 0);
	assert_int_equal(s->n_mounts, 2);
	assert_true(s->mounts[0].bind);
	assert_true(s->mounts[0].recursive);
	assert_int_equal(s->mounts[0].flags, MS_RDONLY | MS_NOSUID);
	assert_int_equal(s->mounts[0].propagation, MS_SLAVE | MS_REC);
	assert_false(s->mounts[1].bind);
	assert_int_equal(s->mounts[1].flags, MS_NODEV);
	assert_string_equal(s->mounts[1].data, "size=1m,mode=755");
	rt_spec_free(s);
}

/* A config that lists no mount namespace shares the runtime's (the spec's rule); what cannot work then is
 * refused by name. The process's AppArmor profile and SELinux label are parsed, "" meaning none. */
static void test_no_mount_namespace_and_lsm(void **state)
{
	struct bundle *b = *state;
	write_raw(b, "{\"ociVersion\":\"1.0.2\",\"root\":{\"path\":\"rootfs\"},\"process\":{\"args\":[\"sh\"],"
		     "\"apparmorProfile\":\"docker-default\",\"selinuxLabel\":\"\"},"
		     "\"linux\":{\"namespaces\":[{\"type\":\"pid\"}]}}");
	struct rt_spec *s = NULL;
	vt_err err = { 0 };
	assert_int_equal(rt_spec_load(b->dir, &s, &err), 0);
	assert_false(rt_spec_has_namespace(s, CLONE_NEWNS, NULL));
	assert_string_equal(s->process.apparmor_profile, "docker-default");
	assert_null(s->process.selinux_label);
	rt_spec_free(s);
	write_raw(b, "{\"ociVersion\":\"1.0.2\",\"root\":{\"path\":\"rootfs\"},\"process\":{\"args\":[\"sh\"]},"
		     "\"linux\":{\"namespaces\":[{\"type\":\"user\"}],\"uidMappings\":[{\"containerID\":0,\"hostID\":1000,"
		     "\"size\":1}],\"gidMappings\":[{\"containerID\":0,\"hostID\":1000,\"size\":1}]}}");
	expect_error(b, "a new 'user' namespace needs a 'mount' namespace");
	write_raw(b, "{\"ociVersion\":\"1.0.2\",\"root\":{\"path\":\"rootfs\"},\"process\":{\"args\":[\"sh\"]},"
		     "\"linux\":{\"rootfsPropagation\":\"rshared\"}}");
	expect_error(b, "linux.rootfsPropagation: needs a 'mount' namespace");
	write_raw(b, "{\"ociVersion\":\"1.0.2\",\"root\":{\"path\":\"rootfs\"},\"process\":{\"args\":[\"sh\"],"
		     "\"apparmorProfile\":7},\"linux\":{}}");
	expect_error(b, "process.apparmorProfile");
}

static void test_linux_section(void **state)
{
	struct bundle *b = *state;
	write_config(b, "", ",{\"type\":\"user\"},{\"type\":\"uts\"},{\"type\":\"network\",\"path\":\"/proc/self/ns/net\"}",
		     ",\"uidMappings\":[{\"containerID\":0,\"hostID\":1000,\"size\":1}],"
		     "\"gidMappings\":[{\"containerID\":0,\"hostID\":1000,\"size\":1}],"
		     "\"sysctl\":{\"net.ipv4.ip_forward\":\"1\"},\"maskedPaths\":[\"/proc/kcore\"],"
		     "\"readonlyPaths\":[\"/proc/sys\"],\"rootfsPropagation\":\"rprivate\","
		     "\"devices\":[{\"path\":\"/dev/fuse\",\"type\":\"c\",\"major\":10,\"minor\":229}]",
		     ",\"hostname\":\"h\",\"hooks\":{\"prestart\":[{\"path\":\"/bin/true\",\"timeout\":3}]}");
	struct rt_spec *s = NULL;
	vt_err err = { 0 };
	assert_int_equal(rt_spec_load(b->dir, &s, &err), 0);
	const char *path = NULL;
	assert_true(rt_spec_has_namespace(s, CLONE_NEWNET, &path));
	assert_string_equal(path, "/proc/self/ns/net");
	assert_int_equal(s->n_uid_maps, 1);
	assert_int_equal(s->uid_maps[0].host, 1000);
	assert_int_equal(s->n_sysctls, 1);
	assert_string_equal(s->sysctls[0].value, "1");
	assert_int_equal(s->n_masked_paths, 1);
	assert_int_equal(s->rootfs_propagation, MS_PRIVATE | MS_REC);
	assert_int_equal(s->n_devices, 1);
	assert_int_equal(s->devices[0].minor, 229);
	assert_int_equal(s->devices[0].mode, 0666);
	assert_string_equal(s->hostname, "h");
	assert_int_equal(s->hooks.n[RT_HOOK_PRESTART], 1);
	assert_int_equal(s->hooks.list[RT_HOOK_PRESTART][0].timeout, 3);
	rt_spec_free(s);
}

static void test_errors_name_the_field(void **state)
{
	struct bundle *b = *state;
	write_raw(b, "{\"ociVersion\": ");
	expect_error(b, "invalid JSON");
	write_raw(b, "{} trailing");
	expect_error(b, "invalid JSON");
	write_config(b, ",\"cwd\":5", "", "", "");
	expect_error(b, "process.cwd: expected string");
	write_config(b, ",\"user\":{\"uid\":-1}", "", "", "");
	expect_error(b, "process.user.uid");
	write_config(b, ",\"capabilities\":{\"effective\":[\"CAP_NOPE\"]}", "", "", "");
	expect_error(b, "process.capabilities.effective[0]: unknown capability 'CAP_NOPE'");
	write_config(b, ",\"rlimits\":[{\"type\":\"RLIMIT_NOFILE\",\"soft\":1}]", "", "", "");
	expect_error(b, "process.rlimits[0].hard is required");
	write_config(b, ",\"oomScoreAdj\":5000", "", "", "");
	expect_error(b, "process.oomScoreAdj");
	write_config(b, "", ",{\"type\":\"pid\"}", "", "");
	expect_error(b, "namespace 'pid' is listed twice");
	write_config(b, "", ",{\"type\":\"ipc\",\"path\":\"/nonexistent/ns\"}", "", "");
	expect_error(b, "linux.namespaces[2].path '/nonexistent/ns'");
	write_config(b, "", "", ",\"uidMappings\":[{\"containerID\":0,\"size\":1}]", "");
	expect_error(b, "linux.uidMappings[0] needs containerID, hostID and size");
	write_config(b, "", "", ",\"rootfsPropagation\":\"sideways\"", "");
	expect_error(b, "linux.rootfsPropagation: unknown propagation 'sideways'");
	write_config(b, "", "", ",\"personality\":{\"domain\":\"BSD\"}", "");
	expect_error(b, "linux.personality.domain: unknown domain 'BSD'");
	write_config(b, "", "", ",\"devices\":[{\"path\":\"/etc/passwd\",\"type\":\"c\",\"major\":1,\"minor\":3}]", "");
	expect_error(b, "linux.devices[0].path must be a path under /dev");
	write_config(b, "", "", ",\"sysctl\":{\"../../etc\":\"1\"}", "");
	expect_error(b, "linux.sysctl: invalid key");
	write_config(b, "", "", "", ",\"mounts\":[{\"destination\":\"/x\",\"type\":\"bind\"}]");
	expect_error(b, "mounts[0].source is required for a bind mount");
	write_config(b, "", "", "", ",\"mounts\":[{\"destination\":\"/x\",\"type\":\"tmpfs\",\"options\":[\"idmap\"]}]");
	expect_error(b, "mounts[0].options[0]: mount option 'idmap' is not supported");
	write_config(b, "", "", "", ",\"hooks\":{\"poststop\":[{\"path\":\"relative\"}]}");
	expect_error(b, "hooks.poststop[0].path must be an absolute path");
	write_config(b, "", "", "", ",\"hostname\":\"x\"");
	expect_error(b, "hostname: setting a hostname needs a 'uts' namespace");
	write_raw(b, "{\"ociVersion\":\"1.0.2\",\"root\":{\"path\":\"rootfs\"},\"process\":{\"args\":[\"sh\"]}}");
	expect_error(b, "linux: the 'linux' section is required");
}

static void test_signal_names(void **state)
{
	(void)state;
	assert_int_equal(rt_signal_from_name("TERM"), SIGTERM);
	assert_int_equal(rt_signal_from_name("SIGKILL"), SIGKILL);
	assert_int_equal(rt_signal_from_name("sigusr1"), SIGUSR1);
	assert_int_equal(rt_signal_from_name("9"), 9);
	assert_int_equal(rt_signal_from_name("RTMIN+2"), SIGRTMIN + 2);
	assert_int_equal(rt_signal_from_name("SIGRTMAX-1"), SIGRTMAX - 1);
	assert_int_equal(rt_signal_from_name("0"), -1);
	assert_int_equal(rt_signal_from_name("99"), -1);
	assert_int_equal(rt_signal_from_name("SIGFOO"), -1);
	assert_int_equal(rt_signal_from_name(""), -1);
	assert_int_equal(rt_signal_from_name("RTMIN+99"), -1);
}

static void test_name_tables(void **state)
{
	(void)state;
	assert_int_equal(rt_cap_from_name("CAP_CHOWN"), 0);
	assert_int_equal(rt_cap_from_name("CAP_CHECKPOINT_RESTORE"), 40);
	assert_string_equal(rt_cap_name(21), "CAP_SYS_ADMIN");
	assert_null(rt_cap_name(41));
	assert_int_equal(rt_rlimit_from_name("RLIMIT_NPROC"), RLIMIT_NPROC);
	assert_int_equal(rt_rlimit_from_name("NOFILE"), -1);
	assert_int_equal(rt_namespace_from_name("network"), CLONE_NEWNET);
	assert_int_equal(rt_namespace_from_name("net"), 0);
	assert_string_equal(rt_namespace_proc_name(CLONE_NEWNS), "mnt");
}

static void test_container_ids(void **state)
{
	(void)state;
	vt_err err = { 0 };
	assert_int_equal(rt_validate_id("abc-1.2_3+x", &err), 0);
	assert_int_equal(rt_validate_id("", &err), -1);
	assert_int_equal(rt_validate_id("..", &err), -1);
	assert_int_equal(rt_validate_id("a/b", &err), -1);
	assert_true(strstr(err.msg, "a/b") != NULL);
	assert_int_equal(rt_validate_id("a b", &err), -1);
}

static void test_state_round_trip(void **state)
{
	struct bundle *b = *state;
	char dir[128];
	snprintf(dir, sizeof(dir), "%s/c1", b->dir);
	assert_int_equal(mkdir(dir, 0700), 0);
	struct rt_state st = { .id = "c1", .dir = dir, .bundle = "/b", .pid = 123456789, .start_time = 42,
			       .created = "2020-01-01T00:00:00Z", .paused = true };
	vt_err err = { 0 };
	assert_int_equal(rt_state_save(&st, &err), 0);
	struct rt_state *back = NULL;
	assert_int_equal(rt_state_load(b->dir, "c1", &back, &err), 0);
	assert_string_equal(back->bundle, "/b");
	assert_int_equal(back->pid, 123456789);
	assert_int_equal(back->start_time, 42);
	assert_true(back->paused);
	/* No such process: the container is stopped whatever the file says. */
	assert_int_equal(rt_state_status(back), RT_STOPPED);
	json_object *o = rt_state_oci_json(back, RT_STOPPED);
	json_object *v;
	assert_true(json_object_object_get_ex(o, "status", &v));
	assert_string_equal(json_object_get_string(v), "stopped");
	assert_true(json_object_object_get_ex(o, "pid", &v));
	assert_int_equal(json_object_get_int(v), 0);
	json_object_put(o);
	rt_state_free(back);
	assert_int_equal(rt_state_load(b->dir, "missing", &back, &err), -1);
	assert_true(strstr(err.msg, "container 'missing' does not exist") != NULL);
}

static void test_default_spec_is_loadable(void **state)
{
	struct bundle *b = *state;
	json_object *d = rt_spec_default();
	write_raw(b, json_object_to_json_string(d));
	json_object_put(d);
	struct rt_spec *s = NULL;
	vt_err err = { 0 };
	assert_int_equal(rt_spec_load(b->dir, &s, &err), 0);
	assert_true(s->rootfs_readonly);
	assert_true(s->n_mounts >= 6);
	assert_true(s->process.no_new_privileges);
	rt_spec_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_minimal_config, bundle_setup, bundle_teardown),
		cmocka_unit_test_setup_teardown(test_full_process, bundle_setup, bundle_teardown),
		cmocka_unit_test_setup_teardown(test_mount_options, bundle_setup, bundle_teardown),
		cmocka_unit_test_setup_teardown(test_linux_section, bundle_setup, bundle_teardown),
		cmocka_unit_test_setup_teardown(test_no_mount_namespace_and_lsm, bundle_setup, bundle_teardown),
		cmocka_unit_test_setup_teardown(test_errors_name_the_field, bundle_setup, bundle_teardown),
		cmocka_unit_test(test_signal_names),
		cmocka_unit_test(test_name_tables),
		cmocka_unit_test(test_container_ids),
		cmocka_unit_test_setup_teardown(test_state_round_trip, bundle_setup, bundle_teardown),
		cmocka_unit_test_setup_teardown(test_default_spec_is_loadable, bundle_setup, bundle_teardown),
	};
	return cmocka_run_group_tests_name("runtime spec", tests, NULL, NULL);
}

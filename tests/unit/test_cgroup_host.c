/* The cgroup library against the real kernel (root only; skipped otherwise): limits land in the
 * controller files, a task moved in is listed and confined by the device rules, freeze/thaw reach their
 * state, the JSON state finds everything again, destroy and failed creates leave nothing behind.
 * On a hybrid host the v2 pieces (BPF device program, cgroup.freeze) are exercised on the unified mount. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/cgroup_internal.h"

struct child {
	pid_t pid;
	int go[2];     /* parent -> child: "run the device checks now" */
	int result[2]; /* child -> parent: errno of open(/dev/null), errno of open(/dev/kmsg) */
};

static int open_errno(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

static void child_start(struct child *c)
{
	assert_int_equal(pipe2(c->go, O_CLOEXEC), 0);
	assert_int_equal(pipe2(c->result, O_CLOEXEC), 0);
	c->pid = fork();
	assert_true(c->pid >= 0);
	if (c->pid == 0) {
		char b;
		if (read(c->go[0], &b, 1) != 1)
			_exit(1);
		int res[2] = { open_errno("/dev/null"), open_errno("/dev/kmsg") };
		if (write(c->result[1], res, sizeof(res)) != sizeof(res))
			_exit(1);
		pause();
		_exit(0);
	}
}

static void child_check_devices(struct child *c, int *null_errno, int *kmsg_errno)
{
	int res[2];
	assert_int_equal(write(c->go[1], "x", 1), 1);
	assert_int_equal(read(c->result[0], res, sizeof(res)), sizeof(res));
	*null_errno = res[0];
	*kmsg_errno = res[1];
}

static void child_stop(struct child *c)
{
	kill(c->pid, SIGKILL);
	waitpid(c->pid, NULL, 0);
	close(c->go[0]);
	close(c->go[1]);
	close(c->result[0]);
	close(c->result[1]);
}

static bool dir_exists(const char *dir)
{
	struct stat st;
	return stat(dir, &st) == 0;
}

static void read_file_str(const char *dir, const char *file, char *buf, size_t len)
{
	vt_err err = { 0 };
	if (rt_cg_read(dir, file, buf, len, &err) < 0)
		fail_msg("%s", err.msg);
	buf[strcspn(buf, "\n")] = '\0';
}

/* cmocka 1.1 prints skipped tests as "not ok", so inapplicable tests are not registered at all; main()
 * prints a proper TAP skip line for each instead. */
static bool host_is_v1(void)
{
	return geteuid() == 0 && dir_exists("/sys/fs/cgroup/memory/memory.limit_in_bytes") &&
	       access("/sys/fs/cgroup/memory/tasks", W_OK) == 0;
}

/* Writable, not just present: a CI container may see a read-only cgroup tree. */
static bool host_is_pure_v2(void)
{
	return geteuid() == 0 && dir_exists("/sys/fs/cgroup/cgroup.controllers") &&
	       access("/sys/fs/cgroup/cgroup.procs", W_OK) == 0;
}

static bool host_has_unified(void)
{
	return geteuid() == 0 && access("/sys/fs/cgroup/unified/cgroup.procs", W_OK) == 0;
}

static const char *hier_dir(const struct rt_cgroup *cg, const char *controllers)
{
	for (size_t i = 0; i < cg->nhier; i++)
		if (strcmp(cg->hier[i].controllers, controllers) == 0)
			return cg->hier[i].dir;
	fail_msg("no %s hierarchy", controllers);
	return NULL;
}

static json_object *config(const char *path, const char *resources)
{
	char buf[2048];
	snprintf(buf, sizeof(buf), "{\"cgroupsPath\":\"%s\",\"resources\":%s}", path, resources);
	json_object *j = json_tokener_parse(buf);
	assert_non_null(j);
	return j;
}

static void test_v1_limits_devices_freeze_destroy(void **state)
{
	(void)state;
	char path[64], buf[256];
	snprintf(path, sizeof(path), "/virtus-unit-%d/c1", (int)getpid());
	json_object *linux_obj = config(path, "{\"memory\":{\"limit\":67108864},\"pids\":{\"limit\":16},"
				      "\"cpu\":{\"shares\":512,\"quota\":50000,\"period\":100000},"
				      "\"devices\":[{\"allow\":false,\"access\":\"rwm\"}]}");
	struct rt_cgroup *cg = NULL;
	vt_err err = { 0 };
	if (rt_cgroup_create("c1", linux_obj, &cg, &err) < 0)
		fail_msg("%s", err.msg);
	json_object_put(linux_obj);

	read_file_str(hier_dir(cg, "memory"), "memory.limit_in_bytes", buf, sizeof(buf));
	assert_string_equal(buf, "67108864");
	read_file_str(hier_dir(cg, "pids"), "pids.max", buf, sizeof(buf));
	assert_string_equal(buf, "16");
	read_file_str(hier_dir(cg, "cpu"), "cpu.cfs_quota_us", buf, sizeof(buf));
	assert_string_equal(buf, "50000");
	read_file_str(hier_dir(cg, "cpu"), "cpu.shares", buf, sizeof(buf));
	assert_string_equal(buf, "512");

	struct child c;
	child_start(&c);
	if (rt_cgroup_add_pid(cg, c.pid, &err) < 0)
		fail_msg("%s", err.msg);
	pid_t *pids = NULL;
	size_t n = 0;
	assert_int_equal(rt_cgroup_pids(cg, &pids, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(pids[0], c.pid);
	free(pids);

	int null_errno, kmsg_errno;
	child_check_devices(&c, &null_errno, &kmsg_errno);
	assert_int_equal(null_errno, 0);
	assert_int_equal(kmsg_errno, EPERM);

	/* A cgroup the container made below its own: its tasks still count, destroy removes it too. */
	char sub[4096], pidstr[16];
	snprintf(sub, sizeof(sub), "%s/nested", hier_dir(cg, "pids"));
	snprintf(pidstr, sizeof(pidstr), "%d", (int)c.pid);
	assert_int_equal(mkdir(sub, 0755), 0);
	assert_int_equal(rt_cg_write(sub, "cgroup.procs", pidstr, &err), 0);
	assert_int_equal(rt_cgroup_pids(cg, &pids, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(pids[0], c.pid);
	free(pids);

	assert_int_equal(rt_cgroup_freeze(cg, true, &err), 0);
	read_file_str(hier_dir(cg, "freezer"), "freezer.state", buf, sizeof(buf));
	assert_string_equal(buf, "FROZEN");
	assert_int_equal(rt_cgroup_freeze(cg, false, &err), 0);
	read_file_str(hier_dir(cg, "freezer"), "freezer.state", buf, sizeof(buf));
	assert_string_equal(buf, "THAWED");
	child_stop(&c);

	/* A fresh process only has the JSON state. */
	json_object *saved = rt_cgroup_to_json(cg);
	struct rt_cgroup *again = NULL;
	assert_int_equal(rt_cgroup_from_json(saved, &again, &err), 0);
	json_object_put(saved);
	if (rt_cgroup_destroy(again, &err) < 0)
		fail_msg("%s", err.msg);
	assert_false(dir_exists(sub));
	for (size_t i = 0; i < cg->nhier; i++) {
		assert_false(dir_exists(cg->hier[i].dir));
		char parent[4096];
		snprintf(parent, sizeof(parent), "%s", cg->hier[i].dir);
		*strrchr(parent, '/') = '\0';
		rmdir(parent); /* the per-test parent; the library leaves shared parents alone */
	}
	rt_cgroup_free(again);
	rt_cgroup_free(cg);
}

static void test_failed_create_leaves_nothing(void **state)
{
	(void)state;
	char path[64], dir[128];
	snprintf(path, sizeof(path), "/virtus-unit-fail-%d/c1", (int)getpid());
	snprintf(dir, sizeof(dir), "/sys/fs/cgroup/memory/virtus-unit-fail-%d", (int)getpid());
	struct rt_cgroup *cg = NULL;
	vt_err err = { 0 };

	/* Rejected while parsing: nothing is even created. */
	json_object *bad = config(path, "{\"pids\":{\"limit\":\"many\"}}");
	assert_int_equal(rt_cgroup_create("c1", bad, &cg, &err), -1);
	assert_non_null(strstr(err.msg, "linux.resources.pids.limit"));
	json_object_put(bad);
	assert_false(dir_exists(dir));

	/* Rejected by the kernel after the directories exist: rolled back. CPU 4095 does not exist. */
	bad = config(path, "{\"memory\":{\"limit\":67108864},\"cpu\":{\"cpus\":\"4095\"}}");
	assert_int_equal(rt_cgroup_create("c1", bad, &cg, &err), -1);
	assert_non_null(strstr(err.msg, "linux.resources.cpu.cpus"));
	json_object_put(bad);
	assert_false(dir_exists(dir));
	assert_null(cg);
}

/* The v2 pieces on the hybrid host's unified mount (no controllers there, but BPF device programs and
 * cgroup.freeze are core cgroup2 features). */
static void test_v2_bpf_devices_and_freeze_on_unified(void **state)
{
	(void)state;
	char dir[128];
	snprintf(dir, sizeof(dir), "/sys/fs/cgroup/unified/virtus-unit-v2-%d", (int)getpid());
	assert_int_equal(mkdir(dir, 0755), 0);

	struct rt_cg_resources r;
	vt_err err = { 0 };
	json_object *linux_obj = json_tokener_parse("{\"resources\":{\"devices\":[{\"allow\":false,\"access\":\"rwm\"}]}}");
	assert_int_equal(rt_cg_resources_parse(linux_obj, &r, &err), 0);
	json_object_put(linux_obj);
	if (rt_cg_v2_apply(dir, &r, &err) < 0)
		fail_msg("%s", err.msg);
	rt_cg_resources_free(&r);

	struct child c;
	child_start(&c);
	char pid[16];
	snprintf(pid, sizeof(pid), "%d", (int)c.pid);
	assert_int_equal(rt_cg_write(dir, "cgroup.procs", pid, &err), 0);
	int null_errno, kmsg_errno;
	child_check_devices(&c, &null_errno, &kmsg_errno);
	assert_int_equal(null_errno, 0);
	assert_int_equal(kmsg_errno, EPERM);

	char events[256];
	assert_int_equal(rt_cg_v2_freeze(dir, true, &err), 0);
	read_file_str(dir, "cgroup.events", events, sizeof(events));
	assert_int_equal(rt_cg_read(dir, "cgroup.events", events, sizeof(events), &err), 0);
	assert_non_null(strstr(events, "frozen 1"));
	assert_int_equal(rt_cg_v2_freeze(dir, false, &err), 0);
	assert_int_equal(rt_cg_read(dir, "cgroup.events", events, sizeof(events), &err), 0);
	assert_non_null(strstr(events, "frozen 0"));

	child_stop(&c);
	assert_int_equal(rt_cg_rmdir(dir, &err), 0);
	assert_false(dir_exists(dir));
}

/* A pure cgroup v2 host (CI in a VM, modern distros): the public API end to end. */
static void test_v2_public_api(void **state)
{
	(void)state;
	char path[64], buf[256], parent[128];
	snprintf(path, sizeof(path), "/virtus-unit-%d/c1", (int)getpid());
	snprintf(parent, sizeof(parent), "/sys/fs/cgroup/virtus-unit-%d", (int)getpid());
	json_object *linux_obj = config(path, "{\"memory\":{\"limit\":67108864,\"swap\":134217728},\"pids\":{\"limit\":16},"
				      "\"cpu\":{\"shares\":512,\"quota\":50000,\"period\":100000,\"burst\":1000},"
				      "\"hugepageLimits\":[{\"pageSize\":\"2MB\",\"limit\":4194304}],"
				      "\"devices\":[{\"allow\":false,\"access\":\"rwm\"}]}");
	struct rt_cgroup *cg = NULL;
	vt_err err = { 0 };
	if (rt_cgroup_create("c1", linux_obj, &cg, &err) < 0)
		fail_msg("%s", err.msg);
	json_object_put(linux_obj);
	assert_int_equal(cg->mode, RT_CG_V2);
	const char *dir = cg->hier[0].dir;

	read_file_str(parent, "cgroup.subtree_control", buf, sizeof(buf));
	assert_non_null(strstr(buf, "memory"));
	assert_non_null(strstr(buf, "pids"));
	read_file_str(dir, "memory.max", buf, sizeof(buf));
	assert_string_equal(buf, "67108864");
	if (rt_cg_file_exists(dir, "memory.swap.max")) {
		read_file_str(dir, "memory.swap.max", buf, sizeof(buf));
		assert_string_equal(buf, "67108864"); /* OCI swap is memory+swap */
	}
	read_file_str(dir, "pids.max", buf, sizeof(buf));
	assert_string_equal(buf, "16");
	read_file_str(dir, "cpu.max", buf, sizeof(buf));
	assert_string_equal(buf, "50000 100000");
	read_file_str(dir, "cpu.weight", buf, sizeof(buf));
	assert_string_equal(buf, "20");
	read_file_str(dir, "cpu.max.burst", buf, sizeof(buf));
	assert_string_equal(buf, "1000");
	read_file_str(dir, "hugetlb.2MB.max", buf, sizeof(buf));
	assert_string_equal(buf, "4194304");

	struct child c;
	child_start(&c);
	if (rt_cgroup_add_pid(cg, c.pid, &err) < 0)
		fail_msg("%s", err.msg);
	pid_t *pids = NULL;
	size_t n = 0;
	assert_int_equal(rt_cgroup_pids(cg, &pids, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(pids[0], c.pid);
	free(pids);
	int null_errno, kmsg_errno;
	child_check_devices(&c, &null_errno, &kmsg_errno);
	assert_int_equal(null_errno, 0);
	assert_int_equal(kmsg_errno, EPERM);

	assert_int_equal(rt_cgroup_freeze(cg, true, &err), 0);
	assert_int_equal(rt_cg_read(dir, "cgroup.events", buf, sizeof(buf), &err), 0);
	assert_non_null(strstr(buf, "frozen 1"));
	assert_int_equal(rt_cgroup_freeze(cg, false, &err), 0);
	assert_int_equal(rt_cg_read(dir, "cgroup.events", buf, sizeof(buf), &err), 0);
	assert_non_null(strstr(buf, "frozen 0"));
	child_stop(&c);

	if (rt_cgroup_destroy(cg, &err) < 0)
		fail_msg("%s", err.msg);
	assert_false(dir_exists(dir));
	rmdir(parent);
	rt_cgroup_free(cg);
}

/* Every hierarchy of /proc/PID/cgroup names path. */
static void assert_in_cgroup(pid_t pid, const char *path, size_t nhier)
{
	char file[64], line[512];
	snprintf(file, sizeof(file), "/proc/%d/cgroup", (int)pid);
	FILE *f = fopen(file, "re");
	assert_non_null(f);
	size_t lines = 0;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		const char *colon = strchr(strchr(line, ':') + 1, ':');
		if (strcmp(colon + 1, path))
			fail_msg("pid %d: '%s' is not in %s", (int)pid, line, path);
		lines++;
	}
	fclose(f);
	assert_int_equal(lines, nhier);
}

static void *idle_thread(void *arg)
{
	char b;
	/* Until the test closes the pipe (no pthread_cancel: it needs libgcc_s, which the v2 VM lacks). */
	while (read(*(int *)arg, &b, 1) > 0)
		;
	return NULL;
}

/* rt_cgroup_fork + rt_cgroup_join_self put the child in every hierarchy: through CLONE_INTO_CGROUP for v2
 * when the caller has one thread, through the cgroup.procs fallback when it has more. */
static void fork_and_join(bool extra_thread)
{
	char path[64];
	snprintf(path, sizeof(path), "/virtus-unit-%d/f%d", (int)getpid(), (int)extra_thread);
	json_object *linux_obj = config(path, "{\"pids\":{\"limit\":16}}");
	struct rt_cgroup *cg = NULL;
	vt_err err = { 0 };
	if (rt_cgroup_create("f1", linux_obj, &cg, &err) < 0)
		fail_msg("%s", err.msg);
	json_object_put(linux_obj);
	pthread_t t;
	int hold[2];
	assert_int_equal(pipe2(hold, O_CLOEXEC), 0);
	if (extra_thread)
		assert_int_equal(pthread_create(&t, NULL, idle_thread, &hold[0]), 0);
	int ready[2];
	assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
	pid_t pid = rt_cgroup_fork(cg);
	assert_true(pid >= 0);
	if (pid == 0) {
		vt_err cerr = { 0 };
		char r = rt_cgroup_join_self(cg, &cerr) ? 'E' : 'J';
		if (write(ready[1], &r, 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	char r = 0;
	assert_int_equal(read(ready[0], &r, 1), 1);
	assert_int_equal(r, 'J');
	bool has_v2 = false;
	for (size_t i = 0; i < cg->nhier; i++)
		has_v2 |= cg->hier[i].v2;
	/* A named v1 hierarchy other than systemd's would add a line; hosts here have none. */
	assert_in_cgroup(pid, path, cg->nhier);
	assert_int_equal(cg->forked_into_v2, has_v2 && !extra_thread);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	close(ready[0]);
	close(ready[1]);
	close(hold[1]);
	if (extra_thread)
		pthread_join(t, NULL);
	close(hold[0]);
	if (rt_cgroup_destroy(cg, &err) < 0)
		fail_msg("%s", err.msg);
	for (size_t i = 0; i < cg->nhier; i++) {
		char parent[4096];
		snprintf(parent, sizeof(parent), "%s", cg->hier[i].dir);
		*strrchr(parent, '/') = '\0';
		rmdir(parent); /* the per-test parent */
	}
	rt_cgroup_free(cg);
}

static void test_fork_starts_the_child_in_every_hierarchy(void **state)
{
	(void)state;
	fork_and_join(false);
}

static void test_fork_from_a_threaded_caller_joins_too(void **state)
{
	(void)state;
	fork_and_join(true);
}

static bool host_is_v1_or_v2(void)
{
	return host_is_v1() || host_is_pure_v2();
}

struct host_test {
	struct CMUnitTest test;
	bool (*applies)(void);
	const char *needs;
};

int main(void)
{
	const struct host_test all[] = {
		{ cmocka_unit_test(test_v2_public_api), host_is_pure_v2, "root on a pure cgroup v2 host" },
		{ cmocka_unit_test(test_v1_limits_devices_freeze_destroy), host_is_v1, "root on a cgroup v1/hybrid host" },
		{ cmocka_unit_test(test_failed_create_leaves_nothing), host_is_v1, "root on a cgroup v1/hybrid host" },
		{ cmocka_unit_test(test_v2_bpf_devices_and_freeze_on_unified), host_has_unified, "root and a hybrid unified mount" },
		{ cmocka_unit_test(test_fork_starts_the_child_in_every_hierarchy), host_is_v1_or_v2, "root and a writable cgroup tree" },
		{ cmocka_unit_test(test_fork_from_a_threaded_caller_joins_too), host_is_v1_or_v2, "root and a writable cgroup tree" },
	};
	struct CMUnitTest run[sizeof(all) / sizeof(all[0])];
	size_t n = 0;
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		if (all[i].applies())
			run[n++] = all[i].test;
		else
			printf("ok - %s # skip needs %s\n", all[i].test.name, all[i].needs);
	}
	fflush(stdout);
	if (n == 0)
		return 0;
	return _cmocka_run_group_tests("test_cgroup_host", run, n, NULL, NULL);
}

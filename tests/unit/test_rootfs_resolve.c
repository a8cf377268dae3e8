/* Mount destinations resolve inside the container root, whatever symlinks the image holds: absolute
 * links, "../" chains and dangling links all land under the root, and what is missing is created there.
 * No root or mounts needed: this exercises only the resolution (openat2 RESOLVE_IN_ROOT + creation). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "runtime/rt.h"

struct tree {
	char top[64];      /* holds root/ and outside/ */
	char root[96], outside[96];
	int rootfd;
};

static int tree_setup(void **state)
{
	struct tree *t = calloc(1, sizeof(*t));
	strcpy(t->top, "/tmp/vt-resolve-XXXXXX");
	if (!t || !mkdtemp(t->top))
		return -1;
	snprintf(t->root, sizeof(t->root), "%s/root", t->top);
	snprintf(t->outside, sizeof(t->outside), "%s/outside", t->top);
	if (mkdir(t->root, 0755) || mkdir(t->outside, 0755))
		return -1;
	t->rootfd = open(t->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	*state = t;
	return t->rootfd < 0 ? -1 : 0;
}

static int tree_teardown(void **state)
{
	struct tree *t = *state;
	close(t->rootfd);
	rt_remove_tree(t->top);
	free(t);
	return 0;
}

/* The real path behind an O_PATH fd. */
static void where(int fd, char *buf, size_t size)
{
	char link[64];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, buf, size - 1);
	assert_true(n > 0);
	buf[n] = 0;
}

static void symlink_in(struct tree *t, const char *target, const char *name)
{
	char path[160];
	snprintf(path, sizeof(path), "%s/%s", t->root, name);
	assert_int_equal(symlink(target, path), 0);
}

static void assert_under_root(struct tree *t, int fd, const char *expect_rel)
{
	char got[256], want[256];
	assert_true(fd >= 0);
	where(fd, got, sizeof(got));
	snprintf(want, sizeof(want), "%s/%s", t->root, expect_rel);
	assert_string_equal(got, want);
	close(fd);
}

static void assert_outside_empty(struct tree *t)
{
	char probe[160];
	snprintf(probe, sizeof(probe), "%s/x", t->outside);
	assert_int_not_equal(access(probe, F_OK), 0);
}

static void test_creates_missing_directories(void **state)
{
	struct tree *t = *state;
	vt_err err = { 0 };
	assert_under_root(t, rt_rootfs_ensure(t->rootfd, "/a/b/c", true, &err), "a/b/c");
	assert_under_root(t, rt_rootfs_ensure(t->rootfd, "a/b/file", false, &err), "a/b/file");
	struct stat st;
	char file[160];
	snprintf(file, sizeof(file), "%s/a/b/file", t->root);
	assert_int_equal(stat(file, &st), 0);
	assert_true(S_ISREG(st.st_mode));
}

static void test_absolute_symlink_stays_inside(void **state)
{
	struct tree *t = *state;
	vt_err err = { 0 };
	char target[160];
	snprintf(target, sizeof(target), "%s", t->outside); /* the host's real path, absolute */
	symlink_in(t, target, "escape");
	int fd = rt_rootfs_ensure(t->rootfd, "/escape/x", true, &err);
	/* The link's target is re-read inside the root: root/<top>/outside/x, not the host's outside/x. */
	char rel[200];
	snprintf(rel, sizeof(rel), "%s/x", t->outside + 1);
	assert_under_root(t, fd, rel);
	assert_outside_empty(t);
}

static void test_dotdot_symlink_is_clamped(void **state)
{
	struct tree *t = *state;
	vt_err err = { 0 };
	symlink_in(t, "../../../../../../..", "up");
	assert_under_root(t, rt_rootfs_ensure(t->rootfd, "/up/outside/x", true, &err), "outside/x");
	assert_outside_empty(t);
	assert_under_root(t, rt_rootfs_ensure(t->rootfd, "/../../outside/x", true, &err), "outside/x");
	assert_outside_empty(t);
}

static void test_dangling_symlink_is_created_inside(void **state)
{
	struct tree *t = *state;
	vt_err err = { 0 };
	symlink_in(t, "../../outside/newfile", "dangling");
	assert_under_root(t, rt_rootfs_ensure(t->rootfd, "/dangling", false, &err), "outside/newfile");
	char host[160];
	snprintf(host, sizeof(host), "%s/newfile", t->outside);
	assert_int_not_equal(access(host, F_OK), 0);
}

static void test_symlink_loop_fails(void **state)
{
	struct tree *t = *state;
	vt_err err = { 0 };
	symlink_in(t, "loop2", "loop1");
	symlink_in(t, "loop1", "loop2");
	assert_int_equal(rt_rootfs_ensure(t->rootfd, "/loop1/x", true, &err), -1);
	assert_true(strstr(err.msg, "loop1") != NULL);
}

/* The fallback walk (kernels without openat2) must agree with openat2 on every escape attempt. */
static void test_walk_matches_openat2(void **state)
{
	struct tree *t = *state;
	vt_err err = { 0 };
	char abs_target[160];
	snprintf(abs_target, sizeof(abs_target), "%s", t->outside);
	symlink_in(t, abs_target, "escape");
	symlink_in(t, "../../../../../../..", "up");
	symlink_in(t, "sub/../up/./outside", "chain");
	char dir[256];
	snprintf(dir, sizeof(dir), "%s/sub", t->root);
	assert_int_equal(mkdir(dir, 0755), 0);
	snprintf(dir, sizeof(dir), "%s/outside", t->root);
	assert_int_equal(mkdir(dir, 0755), 0);
	snprintf(dir, sizeof(dir), "%s%s", t->root, t->outside);
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", dir);
	assert_int_equal(system(cmd), 0);
	const char *paths[] = { "/escape", "up/outside", "/../../outside", "chain", "sub/../../..", "/", "" };
	for (size_t i = 0; i < ARRAY_SIZE(paths); i++) {
		int a = rt_rootfs_ensure(t->rootfd, paths[i], true, &err);
		int b = rt_rootfs_resolve_walk(t->rootfd, paths[i], &err);
		char pa[256], pb[256];
		assert_true(a >= 0 && b >= 0);
		where(a, pa, sizeof(pa));
		where(b, pb, sizeof(pb));
		if (strcmp(pa, pb))
			fail_msg("%s: openat2 gives %s, the walk gives %s", paths[i], pa, pb);
		assert_true(strncmp(pb, t->root, strlen(t->root)) == 0);
		close(a);
		close(b);
	}
	assert_int_equal(rt_rootfs_resolve_walk(t->rootfd, "missing/x", &err), -1);
	assert_int_equal(err.errnum, ENOENT);
	symlink_in(t, "loop2", "loop1");
	symlink_in(t, "loop1", "loop2");
	assert_int_equal(rt_rootfs_resolve_walk(t->rootfd, "loop1", &err), -1);
	assert_int_equal(err.errnum, ELOOP);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_creates_missing_directories, tree_setup, tree_teardown),
		cmocka_unit_test_setup_teardown(test_absolute_symlink_stays_inside, tree_setup, tree_teardown),
		cmocka_unit_test_setup_teardown(test_dotdot_symlink_is_clamped, tree_setup, tree_teardown),
		cmocka_unit_test_setup_teardown(test_dangling_symlink_is_created_inside, tree_setup, tree_teardown),
		cmocka_unit_test_setup_teardown(test_symlink_loop_fails, tree_setup, tree_teardown),
		cmocka_unit_test_setup_teardown(test_walk_matches_openat2, tree_setup, tree_teardown),
	};
	return cmocka_run_group_tests_name("runtime rootfs resolution", tests, NULL, NULL);
}

/* A store's run root (container.h: what lasts only while containers run) and lib's mkdir_on_tmpfs: where it
 * is, that it is a tmpfs, that a container's run dir goes whole, that a deleted store's run root is swept. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>
#include <cmocka.h>

#include "container/container.h"
#include "lib/util.h"
#include "runtime/rt.h"

static char base[PATH_MAX];

static long fs_type(const char *path)
{
	struct statfs f;
	return statfs(path, &f) ? -1 : (long)f.f_type;
}

static void path_in_base(char *out, size_t cap, const char *name)
{
	snprintf(out, cap, "%s/%s", base, name);
}

static int setup(void **state)
{
	(void)state;
	/* /var/tmp: on a disk on most hosts, where /tmp may be a tmpfs already */
	snprintf(base, sizeof(base), "/var/tmp/virtus-runroot-XXXXXX");
	unsetenv("VIRTUS_RUNROOT");
	return mkdtemp(base) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	rt_remove_tree(base);
	return 0;
}

static void need_root(void)
{
	if (geteuid() != 0)
		skip();
}

static void test_an_empty_dir_on_a_disk_gets_a_tmpfs(void **state)
{
	(void)state;
	need_root();
	char dir[PATH_MAX + 8];
	path_in_base(dir, sizeof(dir), "empty");
	bool on_tmpfs_already = fs_type(base) == TMPFS_MAGIC;
	assert_int_equal(mkdir_on_tmpfs(dir, 0755), 0);
	assert_int_equal(fs_type(dir), TMPFS_MAGIC);
	/* a second call stacks nothing */
	assert_int_equal(mkdir_on_tmpfs(dir, 0755), 0);
	if (!on_tmpfs_already) {
		assert_int_equal(umount2(dir, 0), 0);
		assert_int_not_equal(fs_type(dir), TMPFS_MAGIC);
		assert_int_equal(umount2(dir, 0) == -1 && errno == EINVAL, true);
	}
}

static void test_a_dir_that_holds_files_is_left_as_it_is(void **state)
{
	(void)state;
	need_root();
	char dir[PATH_MAX + 8], file[PATH_MAX + 16];
	path_in_base(dir, sizeof(dir), "full");
	snprintf(file, sizeof(file), "%s/lease", dir);
	assert_int_equal(mkdir(dir, 0755), 0);
	int fd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	long before = fs_type(dir);
	assert_int_equal(mkdir_on_tmpfs(dir, 0755), 0);
	assert_int_equal(fs_type(dir), before);
	assert_int_equal(access(file, F_OK), 0); /* not hidden under a mount */
}

static void test_the_default_run_root_is_on_a_tmpfs_and_names_its_store(void **state)
{
	(void)state;
	need_root();
	char root[PATH_MAX + 8], link[PATH_MAX + 8], target[PATH_MAX];
	path_in_base(root, sizeof(root), "store");
	struct ctr_store s;
	vt_err err = { 0 };
	assert_int_equal(ctr_store_init(&s, root, &err), 0);
	assert_int_equal(strncmp(s.run_root, CTR_RUN_ROOTS "/", strlen(CTR_RUN_ROOTS) + 1), 0);
	assert_int_equal(fs_type(s.run_root), TMPFS_MAGIC);
	snprintf(link, sizeof(link), "%s/store", s.run_root);
	ssize_t n = readlink(link, target, sizeof(target) - 1);
	assert_true(n > 0);
	target[n] = '\0';
	char *real = realpath(root, NULL);
	assert_string_equal(target, real);
	free(real);
	struct stat st;
	assert_int_equal(stat(s.run, &st), 0);
	assert_int_equal(stat(s.run_ctrs, &st), 0);
	/* the same store by another spelling of its path has the same run root */
	char again[PATH_MAX + 16];
	snprintf(again, sizeof(again), "%s/./", root);
	struct ctr_store s2;
	assert_int_equal(ctr_store_init(&s2, again, &err), 0);
	assert_string_equal(s2.run_root, s.run_root);
	ctr_store_clear(&s2);
	rt_remove_tree(s.run_root);
	ctr_store_clear(&s);
}

static void test_a_containers_run_dir_goes_whole(void **state)
{
	(void)state;
	need_root();
	char root[PATH_MAX + 8], rr[PATH_MAX + 8];
	path_in_base(root, sizeof(root), "store");
	path_in_base(rr, sizeof(rr), "run");
	setenv("VIRTUS_RUNROOT", rr, 1);
	struct ctr_store s;
	vt_err err = { 0 };
	assert_int_equal(ctr_store_init(&s, root, &err), 0);
	unsetenv("VIRTUS_RUNROOT");
	assert_string_equal(s.run_root, rr);
	const char *id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
	assert_int_equal(ctr_run_dir_make(&s, id, &err), 0);
	char *rootfs = ctr_rootfs(&s, id), *hosts = ctr_run_path(&s, id, "hosts"), *dir = ctr_run_path(&s, id, NULL);
	assert_int_equal(mkdir(rootfs, 0755), 0);
	int fd = open(hosts, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	close(fd);
	ctr_run_dir_remove(&s, id);
	assert_int_equal(access(dir, F_OK) == -1 && errno == ENOENT, true);
	free(rootfs);
	free(hosts);
	free(dir);
	ctr_store_clear(&s);
}

static void test_the_run_root_of_a_deleted_store_is_swept(void **state)
{
	(void)state;
	need_root();
	char gone[PATH_MAX + 8], kept[PATH_MAX + 8];
	path_in_base(gone, sizeof(gone), "gone");
	path_in_base(kept, sizeof(kept), "kept");
	struct ctr_store a, b;
	vt_err err = { 0 };
	assert_int_equal(ctr_store_init(&a, gone, &err), 0);
	char *old = strdup(a.run_root);
	ctr_store_clear(&a);
	assert_int_equal(rt_remove_tree(gone), 0);
	assert_int_equal(ctr_store_init(&b, kept, &err), 0); /* a new run root: the sweep runs */
	assert_int_equal(access(old, F_OK) == -1 && errno == ENOENT, true);
	rt_remove_tree(b.run_root);
	ctr_store_clear(&b);
	free(old);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_an_empty_dir_on_a_disk_gets_a_tmpfs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_dir_that_holds_files_is_left_as_it_is, setup, teardown),
		cmocka_unit_test_setup_teardown(test_the_default_run_root_is_on_a_tmpfs_and_names_its_store, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_a_containers_run_dir_goes_whole, setup, teardown),
		cmocka_unit_test_setup_teardown(test_the_run_root_of_a_deleted_store_is_swept, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

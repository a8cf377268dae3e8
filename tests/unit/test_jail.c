/* The VMM's jail (vmm/jail.c) without KVM, against the real kernel (root only; skipped otherwise): a body
 * runs jailed and checks from inside what it sees; the supervisor's status and what is left are checked from
 * outside. On this host / is a real file system, so pivot_root is used (the nested bed's initramfs takes the
 * move-and-chroot path, checked by tests/suite-nested). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vmm/jail.h"

static char marker_dir[] = "/tmp/virtus-jail-test-XXXXXX";

static unsigned entries(const char *dir)
{
	DIR *d = opendir(dir);
	unsigned n = 0;
	for (struct dirent *e; d && (e = readdir(d));)
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	if (d)
		closedir(d);
	return d ? n : 999;
}

/* Inside: the exit status says what was wrong (0: all as expected). */
static int body_checks(void *arg, struct jail *j)
{
	(void)arg;
	if (getpid() != 1)
		return 10;
	int host_file = open("/etc/hostname", O_RDONLY); /* opened before the jail closes: stays usable */
	vt_err err;
	if (jail_enter(j, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 11;
	}
	if (getuid() != 12345 || getgid() != 23456)
		return 12;
	if (entries("/") != 1 || entries(marker_dir) != 0) {
		fprintf(stderr, "jail root: %u entries, %s: %u\n", entries("/"), marker_dir, entries(marker_dir));
		return 13; /* only the bound directory's path, and it is empty */
	}
	if (access("/etc/hostname", F_OK) == 0 || access("/dev/kvm", F_OK) == 0)
		return 14;
	if (mkdir("/new", 0755) == 0 || errno != EROFS)
		return 15; /* the jail's root is read-only */
	char c;
	if (host_file >= 0 && read(host_file, &c, 1) != 1)
		return 16;
	if (mount("none", "/", "tmpfs", 0, NULL) == 0 || chroot("/") == 0)
		return 17; /* no capabilities left */
	return 0;
}

static bool leftovers(void)
{
	if (access("/run/virtus", F_OK) == 0 && entries("/run/virtus") != 0)
		return true;
	DIR *d = opendir("/sys/fs/cgroup/memory/virtus");
	for (struct dirent *e; d && (e = readdir(d));)
		if (!strncmp(e->d_name, "vm-", 3)) {
			closedir(d);
			return true;
		}
	if (d)
		closedir(d);
	return false;
}

/* jail_run unshares a PID namespace for its children, which a process may do once: each run in a fork.
 * Returns jail_run's status, or -1 with its message in msg. */
static int jail_run_forked(const struct jail_config *cfg, int (*body)(void *, struct jail *), char *msg, size_t cap)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		vt_err err;
		int rc = jail_run(cfg, body, NULL, &err);
		if (rc < 0 && write(p[1], err.msg, strlen(err.msg)) < 0)
			_exit(251);
		_exit(rc < 0 ? 250 : rc);
	}
	close(p[1]);
	ssize_t n = read(p[0], msg, cap - 1);
	msg[n > 0 ? n : 0] = '\0';
	close(p[0]);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status) == 250 ? -1 : WEXITSTATUS(status);
}

static void need_root(void)
{
	if (geteuid() != 0 || access("/sys/fs/cgroup", F_OK) != 0)
		skip();
}

static void test_jailed_body_sees_only_the_jail(void **s)
{
	(void)s;
	need_root();
	assert_non_null(mkdtemp(marker_dir));
	assert_int_equal(chmod(marker_dir, 0755), 0);
	struct jail_config cfg = { .uid = 12345, .gid = 23456, .new_netns = true, .bind = { marker_dir }, .nbind = 1 };
	char msg[512];
	int status = jail_run_forked(&cfg, body_checks, msg, sizeof(msg));
	rmdir(marker_dir);
	if (status != 0)
		fail_msg("jailed body status %d (see test_jail.c body_checks) %s", status, msg);
	assert_false(leftovers());
}

static int body_fails(void *arg, struct jail *j)
{
	(void)arg, (void)j;
	return 7;
}

static void test_body_status_passes_through_and_nothing_is_left(void **s)
{
	(void)s;
	need_root();
	struct jail_config cfg = { .uid = 65534, .gid = 65534 };
	char msg[512];
	int status = jail_run_forked(&cfg, body_fails, msg, sizeof(msg));
	if (status != 7)
		fail_msg("status %d: %s", status, msg);
	assert_false(leftovers());
}

/* Inside, before jail_enter: the jailed process (pid 1 here) is the one member of each of its cgroups,
 * which it joined itself. 20 + i: cgroup i does not list it. */
static int body_in_its_cgroups(void *arg, struct jail *j)
{
	(void)arg;
	if (j->ncgroups == 0)
		return 19;
	for (unsigned i = 0; i < j->ncgroups; i++) {
		char path[PATH_MAX], buf[64] = "";
		snprintf(path, sizeof(path), "%s/cgroup.procs", j->cgroup[i]);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
		if (fd >= 0)
			close(fd);
		if (n <= 0 || strcmp(buf, "1\n")) {
			fprintf(stderr, "%s: '%s'\n", path, buf);
			return 20 + (int)i;
		}
	}
	return 0;
}

static void test_the_jailed_process_is_in_its_cgroups(void **s)
{
	(void)s;
	need_root();
	struct jail_config cfg = { .uid = 65534, .gid = 65534 };
	char msg[512];
	int status = jail_run_forked(&cfg, body_in_its_cgroups, msg, sizeof(msg));
	if (status != 0)
		fail_msg("status %d (see test_jail.c body_in_its_cgroups) %s", status, msg);
	assert_false(leftovers());
}

static void test_uid_zero_refused(void **s)
{
	(void)s;
	struct jail_config cfg = { .uid = 0, .gid = 65534 };
	char msg[512];
	assert_int_equal(jail_run_forked(&cfg, body_fails, msg, sizeof(msg)), -1);
	assert_non_null(strstr(msg, "must not be 0"));
	assert_false(leftovers());
}

static void test_missing_bind_fails_cleanly(void **s)
{
	(void)s;
	need_root();
	struct jail_config cfg = { .uid = 65534, .gid = 65534, .bind = { "/nonexistent-virtus-dir" }, .nbind = 1 };
	char msg[512];
	assert_int_equal(jail_run_forked(&cfg, body_checks, msg, sizeof(msg)), 11);
	assert_false(leftovers());
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_jailed_body_sees_only_the_jail),
		cmocka_unit_test(test_body_status_passes_through_and_nothing_is_left),
		cmocka_unit_test(test_the_jailed_process_is_in_its_cgroups),
		cmocka_unit_test(test_uid_zero_refused),
		cmocka_unit_test(test_missing_bind_fails_cleanly),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

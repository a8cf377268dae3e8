/* linux.seccomp: filters built from JSON, every error naming its field, and real filters applied in a
 * forked child (no root needed: the child sets no_new_privs first, as process.noNewPrivileges would). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/seccomp.h"

static struct rt_seccomp *prepare_ok(const char *json)
{
	json_object *j = json_tokener_parse(json);
	assert_non_null(j);
	struct rt_seccomp *sc = NULL;
	vt_err err = { 0 };
	if (rt_seccomp_prepare(j, &sc, &err) < 0)
		fail_msg("unexpected error: %s", err.msg);
	json_object_put(j);
	return sc;
}

static void expect_error(const char *json, const char *needle)
{
	json_object *j = json_tokener_parse(json);
	assert_non_null(j);
	struct rt_seccomp *sc = NULL;
	vt_err err = { 0 };
	assert_int_equal(rt_seccomp_prepare(j, &sc, &err), -1);
	assert_null(sc);
	if (!strstr(err.msg, needle))
		fail_msg("error '%s' does not contain '%s'", err.msg, needle);
	json_object_put(j);
}

static void test_errors_name_their_field(void **state)
{
	(void)state;
	expect_error("{}", "linux.seccomp.defaultAction: required");
	expect_error("{\"defaultAction\":\"SCMP_ACT_BOGUS\"}", "linux.seccomp.defaultAction: unknown action 'SCMP_ACT_BOGUS'");
	expect_error("{\"defaultAction\":7}", "linux.seccomp.defaultAction: must be a string");
	expect_error("{\"defaultAction\":\"SCMP_ACT_NOTIFY\"}", "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY is not supported");
	expect_error("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"defaultErrnoRet\":1}", "linux.seccomp.defaultErrnoRet");
	expect_error("{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"defaultErrnoRet\":-1}", "linux.seccomp.defaultErrnoRet");
	expect_error("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"architectures\":[\"SCMP_ARCH_VAX\"]}",
		     "linux.seccomp.architectures[0]: unknown architecture 'SCMP_ARCH_VAX'");
	expect_error("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"flags\":[\"SECCOMP_FILTER_FLAG_NOPE\"]}",
		     "linux.seccomp.flags[0]: 'SECCOMP_FILTER_FLAG_NOPE' is not supported");
	expect_error("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"listenerPath\":\"/run/agent.sock\",\"syscalls\":["
		     "{\"names\":[\"mount\"],\"action\":\"SCMP_ACT_NOTIFY\"}]}",
		     "linux.seccomp.syscalls[0].action: SCMP_ACT_NOTIFY is not supported");
	expect_error("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":{}}", "linux.seccomp.syscalls: must be an array");
	expect_error("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"read\"],\"action\":\"SCMP_ACT_ERRNO\"},"
		     "{\"names\":[\"getcwd\",\"no_such_call\"],\"action\":\"SCMP_ACT_ERRNO\"}]}",
		     "linux.seccomp.syscalls[1].names[1]: unknown syscall 'no_such_call'");
	expect_error("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[],\"action\":\"SCMP_ACT_ERRNO\"}]}",
		     "linux.seccomp.syscalls[0].names");
	expect_error("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"read\"]}]}",
		     "linux.seccomp.syscalls[0].action: required");
	expect_error("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"read\"],\"action\":\"SCMP_ACT_KILL\","
		     "\"errnoRet\":5}]}", "linux.seccomp.syscalls[0].errnoRet");
	expect_error("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"read\"],\"action\":\"SCMP_ACT_ERRNO\","
		     "\"args\":[{\"index\":6,\"value\":1,\"op\":\"SCMP_CMP_EQ\"}]}]}", "linux.seccomp.syscalls[0].args[0].index");
	expect_error("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"read\"],\"action\":\"SCMP_ACT_ERRNO\","
		     "\"args\":[{\"index\":0,\"value\":1,\"op\":\"SCMP_CMP_ALMOST\"}]}]}",
		     "linux.seccomp.syscalls[0].args[0].op: unknown operator 'SCMP_CMP_ALMOST'");
	expect_error("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"read\"],\"action\":\"SCMP_ACT_ERRNO\","
		     "\"args\":[{\"index\":0,\"op\":\"SCMP_CMP_EQ\"}]}]}", "linux.seccomp.syscalls[0].args[0].value: required");
}

static void test_builds_full_profiles(void **state)
{
	(void)state;
	const char *actions[] = { "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
				  "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_LOG" };
	for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++) {
		char json[512];
		snprintf(json, sizeof(json),
			 "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"architectures\":[\"SCMP_ARCH_X86_64\",\"SCMP_ARCH_X86\","
			 "\"SCMP_ARCH_X32\"],\"flags\":[\"SECCOMP_FILTER_FLAG_LOG\"],\"syscalls\":[{\"names\":[\"getcwd\","
			 "\"socketcall\"],\"action\":\"%s\"}]}", actions[i]);
		rt_seccomp_free(prepare_ok(json));
	}
	/* listenerPath without SCMP_ACT_NOTIFY is ignored, as the spec says. */
	rt_seccomp_free(prepare_ok("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"listenerPath\":\"/run/agent.sock\"}"));
	/* A rule repeating the default action, and repeated argument indexes (OR semantics), are accepted. */
	rt_seccomp_free(prepare_ok("{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"defaultErrnoRet\":38,\"syscalls\":["
				   "{\"names\":[\"read\"],\"action\":\"SCMP_ACT_ERRNO\"},"
				   "{\"names\":[\"personality\"],\"action\":\"SCMP_ACT_ALLOW\",\"args\":["
				   "{\"index\":0,\"value\":0,\"op\":\"SCMP_CMP_EQ\"},"
				   "{\"index\":0,\"value\":8,\"op\":\"SCMP_CMP_EQ\"}]}]}"));
}

/* ---- filters applied for real ---- */

struct observed {
	int getcwd_errno, mkdir_errno, getpid_ok, dup0_errno, dup1_ok, masked_errno, masked_other_ok;
};

static int errno_of(long rc)
{
	return rc < 0 ? errno : 0;
}

static void child_observe(struct rt_seccomp *sc, int out_fd)
{
	vt_err err = { 0 };
	struct observed o = { 0 };
	char buf[256];
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || rt_seccomp_apply(sc, &err) < 0)
		_exit(2);
	o.getcwd_errno = errno_of(syscall(SYS_getcwd, buf, sizeof(buf)));
	o.mkdir_errno = errno_of(mkdir("/tmp/virtus-seccomp-should-not-exist", 0700));
	o.getpid_ok = syscall(SYS_getpid) == getpid();
	o.dup0_errno = errno_of(dup(0));
	long fd = dup(1);
	o.dup1_ok = fd >= 0;
	/* MASKED_EQ on umask's mode: any mode with the 0100 bit set is refused. */
	o.masked_errno = errno_of(syscall(SYS_umask, 0177) == -1 ? -1 : 0);
	o.masked_other_ok = syscall(SYS_umask, 0022) >= 0;
	if (write(out_fd, &o, sizeof(o)) != sizeof(o))
		_exit(3);
	_exit(0);
}

static void test_errno_and_argument_filters_in_child(void **state)
{
	(void)state;
	struct rt_seccomp *sc = prepare_ok(
		"{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"architectures\":[\"SCMP_ARCH_X86_64\"],\"syscalls\":["
		"{\"names\":[\"getcwd\",\"mkdir\",\"mkdirat\"],\"action\":\"SCMP_ACT_ERRNO\"},"
		"{\"names\":[\"dup\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":99,"
		" \"args\":[{\"index\":0,\"value\":0,\"op\":\"SCMP_CMP_EQ\"}]},"
		"{\"names\":[\"umask\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":13,"
		" \"args\":[{\"index\":0,\"value\":64,\"valueTwo\":64,\"op\":\"SCMP_CMP_MASKED_EQ\"}]}]}");
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		child_observe(sc, p[1]);
	close(p[1]);
	struct observed o;
	assert_int_equal(read(p[0], &o, sizeof(o)), sizeof(o));
	close(p[0]);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	rt_seccomp_free(sc);

	assert_int_equal(o.getcwd_errno, EPERM);
	assert_int_equal(o.mkdir_errno, EPERM);
	assert_true(o.getpid_ok);
	assert_int_equal(o.dup0_errno, 99);
	assert_true(o.dup1_ok);
	assert_int_equal(o.masked_errno, 13);
	assert_true(o.masked_other_ok);
}

static void test_kill_process_action(void **state)
{
	(void)state;
	struct rt_seccomp *sc = prepare_ok("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"getppid\"],"
					   "\"action\":\"SCMP_ACT_KILL_PROCESS\"}]}");
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		vt_err err = { 0 };
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || rt_seccomp_apply(sc, &err) < 0)
			_exit(2);
		syscall(SYS_getppid);
		_exit(0); /* not reached when the filter works */
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	rt_seccomp_free(sc);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGSYS);
}

static void test_default_errno(void **state)
{
	(void)state;
	/* Default ERRNO(ENOSYS) with the process-essential calls allowed: anything else fails with ENOSYS. */
	struct rt_seccomp *sc = prepare_ok("{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"defaultErrnoRet\":38,\"syscalls\":["
					   "{\"names\":[\"write\",\"exit\",\"exit_group\"],\"action\":\"SCMP_ACT_ALLOW\"}]}");
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		vt_err err = { 0 };
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || rt_seccomp_apply(sc, &err) < 0)
			_exit(2);
		int e = errno_of(syscall(SYS_getuid));
		if (write(p[1], &e, sizeof(e)) != sizeof(e))
			_exit(3);
		syscall(SYS_exit_group, 0);
	}
	close(p[1]);
	int e = -1;
	assert_int_equal(read(p[0], &e, sizeof(e)), sizeof(e));
	close(p[0]);
	waitpid(pid, NULL, 0);
	rt_seccomp_free(sc);
	assert_int_equal(e, ENOSYS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_errors_name_their_field),
		cmocka_unit_test(test_builds_full_profiles),
		cmocka_unit_test(test_errno_and_argument_filters_in_child),
		cmocka_unit_test(test_kill_process_action),
		cmocka_unit_test(test_default_errno),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

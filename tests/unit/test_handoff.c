/* The handoff socket (api/handoff.h): a client hands descriptors with a word; the VMM's side takes them,
 * answers, and refuses malformed requests. A forked client against a real Unix socket. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api/handoff.h"
#include "lib/unixsock.h"

static char dir[] = "/tmp/virtus-handoff-test-XXXXXX";
static char path[sizeof(dir) + 16];

static int wait_readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	return poll(&p, 1, 5000);
}

/* The child: hands the write ends of two pipes with "snapshot"; exits 0 if the answer is "nope: 2". */
static void client_hands_two(void)
{
	int a[2], b[2];
	if (pipe(a) < 0 || pipe(b) < 0)
		_exit(10);
	int fds[2] = { a[1], b[1] };
	vt_err err;
	int rc = handoff_call(path, "snapshot", fds, 2, &err);
	char got[16] = { 0 };
	/* the VMM wrote through the descriptors before it answered */
	if (read(a[0], got, 1) != 1 || read(b[0], got + 1, 1) != 1 || strcmp(got, "sm"))
		_exit(11);
	_exit(rc < 0 && !strcmp(err.msg, "nope: 2") ? 0 : 12);
}

/* Each test's listening socket (*state), as the VMM makes it. */
static int listen_setup(void **state)
{
	vt_err err;
	static int lfd;
	lfd = unix_listen(path, 4, &err);
	*state = &lfd;
	return lfd < 0 ? -1 : 0;
}

static int listen_teardown(void **state)
{
	close(*(int *)*state);
	return unlink(path);
}

static void expect_child_ok(pid_t pid)
{
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_descriptors_and_answer(void **state)
{
	int lfd = *(int *)*state;
	vt_err err;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		client_hands_two();
	assert_int_equal(wait_readable(lfd), 1);
	struct handoff_request req;
	assert_int_equal(handoff_accept(lfd, &req), 0);
	assert_string_equal(req.op, "snapshot");
	assert_int_equal(req.nfds, 2);
	assert_int_equal(write(req.fds[0], "s", 1), 1);
	assert_int_equal(write(req.fds[1], "m", 1), 1);
	assert_true(fcntl(req.fds[0], F_GETFD) & FD_CLOEXEC);
	vt_fail(&err, "nope: %u", req.nfds);
	handoff_answer(&req, &err);
	assert_int_equal(req.conn, -1);
	expect_child_ok(pid);
}

/* A request that is not one lowercase word is answered with an error, nothing is kept. */
static void test_malformed_request(void **state)
{
	int lfd = *(int *)*state;
	vt_err err;
	struct handoff_request req;
	assert_int_equal(handoff_accept(lfd, &req), 1); /* nobody there */
	int c = unix_connect(path, &err);
	assert_true(c >= 0);
	assert_int_equal(unix_send_fds(c, "Snap shot", 9, NULL, 0), 9);
	assert_int_equal(wait_readable(lfd), 1);
	assert_int_equal(handoff_accept(lfd, &req), -1);
	char answer[256] = { 0 };
	assert_true(read(c, answer, sizeof(answer) - 1) > 0);
	assert_non_null(strstr(answer, "1 a handoff request is one word"));
	close(c);
}

/* A client whose VMM closes without an answer gets an error naming that. */
static void test_no_answer(void **state)
{
	int lfd = *(int *)*state;
	vt_err err;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int rc = handoff_call(path, "snapshot", NULL, 0, &err);
		_exit(rc < 0 && strstr(err.msg, "without an answer") ? 0 : 1);
	}
	assert_int_equal(wait_readable(lfd), 1);
	int c = accept(lfd, NULL, NULL);
	assert_true(c >= 0);
	char got[16];
	assert_int_equal(read(c, got, sizeof(got)), 8); /* "snapshot", then the VMM is gone */
	close(c);
	expect_child_ok(pid);
}

static int setup(void **state)
{
	(void)state;
	if (!mkdtemp(dir))
		return -1;
	snprintf(path, sizeof(path), "%s/h.sock", dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_descriptors_and_answer, listen_setup, listen_teardown),
		cmocka_unit_test_setup_teardown(test_malformed_request, listen_setup, listen_teardown),
		cmocka_unit_test_setup_teardown(test_no_answer, listen_setup, listen_teardown),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}

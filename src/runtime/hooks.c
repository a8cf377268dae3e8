/* OCI hooks: each runs with the container state on stdin, its own args and env, and an optional timeout
 * after which it is killed. A failing hook fails the lifecycle step (the caller decides what is fatal). */
#include "runtime/rt.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>

static const char *const kind_names[RT_HOOK_KINDS] = {
	"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop",
};

static void exec_hook(const struct rt_hook *h, int stdin_fd)
{
	static const char *const no_env[] = { NULL };
	const char *argv0[] = { h->path, NULL };
	if (dup2(stdin_fd, 0) < 0)
		_exit(127);
	/* Hooks must not see the runtime's own descriptors: 0-2 stay, the rest are close-on-exec. */
	execve(h->path, (char *const *)(h->args && h->args[0] ? h->args : argv0),
	       (char *const *)(h->env ? h->env : no_env));
	_exit(127);
}

/* Wait for the hook, killing it when the timeout expires. Returns its wait status or -1 on timeout. */
static int wait_hook(pid_t pid, int timeout_s)
{
	int status;
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pfd >= 0 && timeout_s > 0) {
		struct pollfd p = { .fd = pfd, .events = POLLIN };
		int rc;
		do
			rc = poll(&p, 1, timeout_s * 1000);
		while (rc < 0 && errno == EINTR);
		if (rc == 0) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			close(pfd);
			return -1;
		}
	}
	if (pfd >= 0)
		close(pfd);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return 0x7f00;
	return status;
}

static int run_one(const struct rt_hook *h, const char *what, const char *state_json, vt_err *err)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC))
		return vt_fail_errno(err, errno, "%s hook %s: pipe", what, h->path);
	pid_t pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return vt_fail_errno(err, errno, "%s hook %s: fork", what, h->path);
	}
	if (pid == 0) {
		close(p[1]);
		exec_hook(h, p[0]);
	}
	close(p[0]);
	/* A hook that does not read its stdin must not make us die of SIGPIPE. */
	struct sigaction ign = { .sa_handler = SIG_IGN }, old;
	sigaction(SIGPIPE, &ign, &old);
	write_all(p[1], state_json, strlen(state_json));
	close(p[1]);
	sigaction(SIGPIPE, &old, NULL);
	int status = wait_hook(pid, h->timeout);
	if (status == -1)
		return vt_fail(err, "%s hook %s timed out after %d s", what, h->path, h->timeout);
	if (WIFSIGNALED(status))
		return vt_fail(err, "%s hook %s was killed by signal %d", what, h->path, WTERMSIG(status));
	if (WEXITSTATUS(status) == 127)
		return vt_fail(err, "%s hook %s could not be executed (exit 127)", what, h->path);
	if (WEXITSTATUS(status))
		return vt_fail(err, "%s hook %s failed with exit status %d", what, h->path, WEXITSTATUS(status));
	return 0;
}

int rt_hooks_run(const struct rt_hooks *h, enum rt_hook_kind kind, const char *state_json, vt_err *err)
{
	for (size_t i = 0; i < h->n[kind]; i++)
		if (run_one(&h->list[kind][i], kind_names[kind], state_json, err))
			return -1;
	return 0;
}

size_t rt_hooks_run_each(const struct rt_hooks *h, enum rt_hook_kind kind, const char *state_json,
			 void (*warn)(void *arg, const char *msg), void *arg)
{
	size_t failed = 0;
	for (size_t i = 0; i < h->n[kind]; i++) {
		vt_err err = { 0 };
		if (run_one(&h->list[kind][i], kind_names[kind], state_json, &err)) {
			failed++;
			warn(arg, err.msg);
		}
	}
	return failed;
}

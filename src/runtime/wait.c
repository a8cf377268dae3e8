/* Waiting for a container process while forwarding the signals a user sends to us (Ctrl-C, kill) to it,
 * as runc does for `run` and `exec`. signalfd + pidfd: no signal handlers, no global state. */
#include "runtime/rt.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>

static const int forwarded[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH };

int rt_reap(pid_t pid)
{
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return status;
}

static void forward_pending(int sfd, pid_t pid)
{
	struct signalfd_siginfo si;
	while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		kill(pid, (int)si.ssi_signo);
}

int rt_wait_forwarding(pid_t pid, int *exit_status)
{
	sigset_t set, old;
	sigemptyset(&set);
	for (size_t i = 0; i < ARRAY_SIZE(forwarded); i++)
		sigaddset(&set, forwarded[i]);
	sigprocmask(SIG_BLOCK, &set, &old);
	int sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	while (sfd >= 0 && pfd >= 0) {
		struct pollfd p[2] = { { .fd = pfd, .events = POLLIN }, { .fd = sfd, .events = POLLIN } };
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			forward_pending(sfd, pid);
		if (p[0].revents)
			break;
	}
	int ws = rt_reap(pid);
	if (sfd >= 0)
		close(sfd);
	if (pfd >= 0)
		close(pfd);
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (ws < 0)
		return -1;
	*exit_status = WIFSIGNALED(ws) ? 128 + WTERMSIG(ws) : WEXITSTATUS(ws);
	return 0;
}

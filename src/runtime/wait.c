/* Waiting for a container process while forwarding the signals a user sends to us (Ctrl-C, kill) to it,
 * as runc does for `run` and `exec`; optionally relaying our stdio to the container's pty.
 * signalfd + pidfd + poll: no signal handlers, no global state. */
#include "runtime/rt.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>

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

/* Copy what is readable on `from` to `to` (and to `copy` when it is not -1); false at EOF or error. */
static bool pump(int from, int to, int copy)
{
	char buf[4096];
	ssize_t n = read(from, buf, sizeof(buf));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return true;
	if (n > 0 && copy >= 0)
		write_all(copy, buf, (size_t)n);
	return n > 0 && !write_all(to, buf, (size_t)n);
}

enum { POLL_PID, POLL_SIG, POLL_STDIN, POLL_PTY, POLL_N };

struct waiter {
	pid_t pid;
	int master;        /* -1: no relay */
	int log;           /* where the pty's output is copied too, or -1 */
	bool stdin_open, pty_open;
};

/* One poll round; false once the process has exited. */
static bool wait_round(struct waiter *w, int pfd, int sfd)
{
	struct pollfd p[POLL_N] = {
		[POLL_PID] = { .fd = pfd, .events = POLLIN },
		[POLL_SIG] = { .fd = sfd, .events = POLLIN },
		[POLL_STDIN] = { .fd = w->stdin_open ? 0 : -1, .events = POLLIN },
		[POLL_PTY] = { .fd = w->pty_open ? w->master : -1, .events = POLLIN },
	};
	if (poll(p, POLL_N, -1) < 0)
		return errno == EINTR;
	if (p[POLL_SIG].revents)
		forward_pending(sfd, w->pid);
	if (p[POLL_STDIN].revents && !pump(0, w->master, -1)) {
		w->stdin_open = false;
		write_all(w->master, "\x04", 1); /* end of input for the program reading the tty */
	}
	if (p[POLL_PTY].revents && !pump(w->master, 1, w->log))
		w->pty_open = false; /* EIO: every holder of the slave is gone */
	if (!p[POLL_PID].revents)
		return true;
	while (w->pty_open && pump(w->master, 1, w->log)) /* the last output before the exit */
		;
	return false;
}

static int wait_loop(pid_t pid, int master, int log, int *exit_status)
{
	sigset_t set, old;
	sigemptyset(&set);
	for (size_t i = 0; i < ARRAY_SIZE(forwarded); i++)
		sigaddset(&set, forwarded[i]);
	sigprocmask(SIG_BLOCK, &set, &old);
	int sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	struct waiter w = { .pid = pid, .master = master, .log = log, .stdin_open = master >= 0, .pty_open = master >= 0 };
	if (master >= 0)
		fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
	while (sfd >= 0 && pfd >= 0 && wait_round(&w, pfd, sfd))
		;
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

int rt_wait_forwarding(pid_t pid, int *exit_status)
{
	return wait_loop(pid, -1, -1, exit_status);
}

int rt_wait_relaying(pid_t pid, int master, int *exit_status)
{
	return rt_wait_relaying_logged(pid, master, -1, exit_status);
}

int rt_wait_relaying_logged(pid_t pid, int master, int log, int *exit_status)
{
	struct termios saved, raw;
	bool tty = isatty(0) && !tcgetattr(0, &saved);
	if (tty) {
		/* Our terminal passes keys straight through; the container's pty does the line editing. */
		raw = saved;
		cfmakeraw(&raw);
		tcsetattr(0, TCSANOW, &raw);
	}
	int rc = wait_loop(pid, master, log, exit_status);
	if (tty)
		tcsetattr(0, TCSANOW, &saved);
	return rc;
}

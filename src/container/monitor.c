/* The per-container monitor: the process that owns a running container. It creates the container with the
 * runtime library, plumbs its network, starts it, reaps it, records how it ended, and cleans up after it.
 * A session leader and child subreaper, so it outlives the command that forked it (`run -d`). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "container/ctr_int.h"
#include "lib/util.h"
#include "runtime/rt.h"

static const int forwarded[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH };

struct monitor {
	struct ctr_launch *l;
	struct rt_globals rt;
	int sock;
	pid_t init;
	int master;   /* the container's pty, or -1 */
	int log;      /* the log file (detached, or foreground without a terminal), or -1 */
	int tee[2];   /* foreground without a terminal: the read ends of the container's stdout and stderr */
	int caller[2]; /* ... and the caller's stdout and stderr, where they are copied besides the log */
};

static int open_log(struct monitor *mo, vt_err *err)
{
	cleanup_free char *path = ctr_path(mo->l->store, mo->l->id, "ctr.log");
	mo->log = path ? open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600) : -1;
	if (mo->log < 0)
		return vt_fail_errno(err, errno, "cannot open the container's log");
	return 0;
}

/* Foreground without a terminal: the container writes into pipes that the monitor copies to the caller's
 * stdout and stderr and to the log. */
static int setup_tee(struct monitor *mo, vt_err *err)
{
	if (open_log(mo, err))
		return -1;
	for (int i = 0; i < 2; i++) {
		int p[2];
		if (pipe2(p, O_CLOEXEC))
			return vt_fail_errno(err, errno, "pipe");
		mo->caller[i] = fcntl(1 + i, F_DUPFD_CLOEXEC, 3);
		dup2(p[1], 1 + i);
		close(p[1]);
		mo->tee[i] = p[0];
		fcntl(p[0], F_SETFL, O_NONBLOCK);
	}
	return 0;
}

/* Detached: stdout and stderr go to the log, stdin is empty. Foreground: the caller's (copied to the log
 * when there is no terminal), stdin only with -i. */
static int setup_stdio(struct monitor *mo, vt_err *err)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null < 0)
		return vt_fail_errno(err, errno, "/dev/null");
	if (mo->l->detach || !mo->l->interactive)
		dup2(null, 0);
	close(null);
	if (!mo->l->detach)
		return mo->l->tty ? 0 : setup_tee(mo, err);
	if (open_log(mo, err))
		return -1;
	dup2(mo->log, 1);
	dup2(mo->log, 2);
	return 0;
}

/* Everything the monitor set up, in reverse: the runtime's container, the network, the rootfs mount. */
static void teardown(struct monitor *mo)
{
	vt_err ignored;
	if (rt_cmd_delete(&mo->rt, mo->l->id, true, &ignored) == 0)
		cnet_detach_exited(mo->l->store->root, mo->l->id, &mo->l->lease, &ignored);
	else
		cnet_detach(mo->l->store->root, mo->l->id, &mo->l->lease, &ignored);
	ctr_unmount_rootfs(mo->l->store, mo->l->id);
	ctr_run_dir_remove(mo->l->store, mo->l->id);
}

static __attribute__((noreturn)) void fail_start(struct monitor *mo, vt_err *err)
{
	if (mo->init > 0) {
		kill(mo->init, SIGKILL);
		rt_reap(mo->init);
	}
	teardown(mo);
	ctr_monitor_send(mo->sock, CTR_MSG_ERROR, ctr_error_status(err), err->msg, -1);
	_exit(CTR_EXIT_ERROR);
}

static int create_and_start(struct monitor *mo, vt_err *err)
{
	cleanup_free char *bundle = ctr_path(mo->l->store, mo->l->id, "bundle");
	struct rt_create_opts co = { .bundle = bundle, .own_console = mo->l->tty };
	if (!bundle)
		return vt_fail_errno(err, ENOMEM, "bundle");
	if (rt_cmd_create_owned(&mo->rt, mo->l->id, &co, &mo->init, &mo->master, err))
		return -1;
	/* Before start: the program's first look at its terminal must see the caller's size. */
	struct winsize ws;
	if (mo->master >= 0 && !mo->l->detach && !ioctl(0, TIOCGWINSZ, &ws))
		ioctl(mo->master, TIOCSWINSZ, &ws);
	if (cnet_attach(mo->l->store->root, mo->l->id, &mo->l->net, mo->init, &mo->l->lease, err))
		return vt_err_prefix(err, "network");
	if (rt_cmd_start(&mo->rt, mo->l->id, err))
		return -1;
	struct ctr_started s = { .pid = mo->init, .monitor = getpid(), .addr = mo->l->lease.addr };
	rt_proc_start_time(s.monitor, &s.monitor_start);
	return ctr_record_update(mo->l->store, mo->l->id, ctr_rec_set_running, &s, err);
}

/* Copy what the pty has to the log (detached with a terminal): the container must never block on it. */
static bool drain(int from, int to)
{
	char buf[4096];
	ssize_t n = read(from, buf, sizeof(buf));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return true;
	return n > 0 && !write_all(to, buf, (size_t)n);
}

/* One read of the container's stdout or stderr, to the caller's and to the log; false at its end. */
static bool copy_tee(struct monitor *mo, int i)
{
	char buf[16384];
	ssize_t n = read(mo->tee[i], buf, sizeof(buf));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return errno == EINTR;
	if (n <= 0) {
		close(mo->tee[i]);
		mo->tee[i] = -1;
		return false;
	}
	write_all(mo->caller[i], buf, (size_t)n); /* a caller that stopped reading still gets a full log */
	write_all(mo->log, buf, (size_t)n);
	return true;
}

static void on_signal(struct monitor *mo, int sfd)
{
	struct signalfd_siginfo si;
	while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		/* The caller's terminal changed size: the container's pty follows (the kernel then signals it). */
		if (si.ssi_signo == SIGWINCH && mo->master >= 0 && !mo->l->detach) {
			struct winsize ws;
			if (!ioctl(0, TIOCGWINSZ, &ws))
				ioctl(mo->master, TIOCSWINSZ, &ws);
			continue;
		}
		kill(mo->init, (int)si.ssi_signo);
	}
}

/* Wait for init to end, forwarding signals and draining the pty; its exit status (128+n when killed). */
static int wait_container(struct monitor *mo, int sfd)
{
	int pfd = (int)syscall(SYS_pidfd_open, mo->init, 0);
	bool pty = mo->master >= 0 && mo->l->detach;
	if (pty)
		fcntl(mo->master, F_SETFL, fcntl(mo->master, F_GETFL) | O_NONBLOCK);
	while (pfd >= 0) {
		struct pollfd p[5] = {
			{ .fd = pfd, .events = POLLIN },
			{ .fd = sfd, .events = POLLIN },
			{ .fd = pty ? mo->master : -1, .events = POLLIN },
			{ .fd = mo->tee[0], .events = POLLIN },
			{ .fd = mo->tee[1], .events = POLLIN },
		};
		if (poll(p, 5, -1) < 0 && errno != EINTR)
			break;
		for (int i = 0; i < 2; i++)
			if (p[3 + i].revents)
				copy_tee(mo, i);
		if (p[1].revents)
			on_signal(mo, sfd);
		if (p[2].revents && !drain(mo->master, mo->log))
			pty = false;
		if (p[0].revents)
			break;
	}
	while (pty && drain(mo->master, mo->log))
		;
	for (int i = 0; i < 2; i++)
		while (mo->tee[i] >= 0 && copy_tee(mo, i))
			;
	if (pfd >= 0)
		close(pfd);
	int ws = rt_reap(mo->init);
	if (ws < 0)
		return 255;
	return WIFSIGNALED(ws) ? 128 + WTERMSIG(ws) : WEXITSTATUS(ws);
}

/* The container has its copies: ours of the pipes' write ends go, so that their end is the container's.
 * A caller that stops reading must not kill the monitor. */
static void release_stdio(struct monitor *mo)
{
	if (mo->tee[0] < 0)
		return;
	signal(SIGPIPE, SIG_IGN);
	int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, 1);
		dup2(null, 2);
		close(null);
	}
}

static int block_signals(void)
{
	sigset_t set;
	sigemptyset(&set);
	for (size_t i = 0; i < ARRAY_SIZE(forwarded); i++)
		sigaddset(&set, forwarded[i]);
	sigprocmask(SIG_BLOCK, &set, NULL);
	return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

void ctr_monitor_main(struct ctr_launch *l, int sock)
{
	struct monitor mo = { .l = l, .rt = { .root = l->store->run }, .sock = sock, .master = -1, .log = -1,
			   .tee = { -1, -1 }, .caller = { -1, -1 } };
	vt_err err = { 0 };
	if (l->vm)
		ctr_vm_monitor_main(l, sock);
	setsid();
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	/* Blocked before the container exists: a Ctrl-C that arrives during create is forwarded, not lost. */
	int sfd = block_signals();
	if (sfd < 0) {
		vt_fail_errno(&err, errno, "signalfd");
		fail_start(&mo, &err);
	}
	if (setup_stdio(&mo, &err) || create_and_start(&mo, &err))
		fail_start(&mo, &err);
	release_stdio(&mo);
	/* Foreground with a terminal: the caller relays it; we keep a copy only to follow its window size. */
	ctr_monitor_send(sock, CTR_MSG_STARTED, mo.init, NULL, l->detach ? -1 : mo.master);
	close(sock);
	int status = wait_container(&mo, sfd);
	if (!l->auto_remove) /* (a --rm container's record goes at once) */
		ctr_record_update(l->store, l->id, ctr_rec_set_exited, &status, &err);
	teardown(&mo);
	if (l->auto_remove)
		ctr_remove_dir(l->store, l->id, &err);
	_exit(status);
}

/* Running a `virtus` command for an action (serve/serve.h): this very program, its output captured, a time
 * limit. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/util.h"
#include "serve/serve.h"

char **serve_full_argv(struct serve *s, char *const argv[])
{
	size_t n = 0;
	while (argv[n])
		n++;
	char **v = calloc(n + 4, sizeof(*v));
	if (!v)
		return NULL;
	v[0] = s->program;
	v[1] = "--root";
	v[2] = s->root;
	memcpy(v + 3, argv, n * sizeof(*v));
	return v;
}

struct capture {
	int fd;
	char *buf;
	size_t len;
};

static void capture_read(struct capture *c)
{
	char chunk[4096];
	ssize_t n = read(c->fd, chunk, sizeof(chunk));
	if (n < 0 && errno == EINTR)
		return;
	if (n <= 0) {
		close(c->fd);
		c->fd = -1;
		return;
	}
	size_t keep = MIN((size_t)n, SERVE_OUTPUT_MAX - c->len);
	if (keep) {
		char *b = realloc(c->buf, c->len + keep + 1);
		if (b) {
			memcpy(b + c->len, chunk, keep);
			c->len += keep;
			b[c->len] = '\0';
			c->buf = b;
		}
	}
}

/* Start the command with stdout and stderr on pipes; its pid, or -1 with errno set. */
static pid_t spawn_captured(char **argv, int out_fd, int err_fd)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, defaults;
	sigemptyset(&none);
	sigemptyset(&defaults);
	sigaddset(&defaults, SIGPIPE);
	sigaddset(&defaults, SIGINT);
	sigaddset(&defaults, SIGTERM);
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&at);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
	posix_spawn_file_actions_adddup2(&fa, err_fd, 2);
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	/* the server's threads block SIGINT and SIGTERM for its sigwait: the command gets them back */
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &defaults);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	pid_t pid;
	int rc = posix_spawn(&pid, argv[0], &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (rc) {
		errno = rc;
		return -1;
	}
	return pid;
}

static int exit_status(int wstatus)
{
	return WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
}

int serve_run_cli(struct serve *s, char *const argv[], int timeout_s, char **out, char **err_out)
{
	*out = *err_out = NULL;
	char **full = serve_full_argv(s, argv);
	int out_pipe[2], err_pipe[2];
	if (!full || pipe2(out_pipe, O_CLOEXEC)) {
		free(full);
		return -1;
	}
	if (pipe2(err_pipe, O_CLOEXEC)) {
		close(out_pipe[0]);
		close(out_pipe[1]);
		free(full);
		return -1;
	}
	pid_t pid = spawn_captured(full, out_pipe[1], err_pipe[1]);
	int spawn_errno = errno;
	free(full);
	close(out_pipe[1]);
	close(err_pipe[1]);
	struct capture cap[2] = { { out_pipe[0], NULL, 0 }, { err_pipe[0], NULL, 0 } };
	uint64_t deadline = now_ns() + (uint64_t)timeout_s * 1000000000ull;
	bool timed_out = false, ended = pid < 0;
	int wstatus = 0;
	/* until the command ends (what it started in the background may keep the pipes: not waited for), then
	 * what it left in them */
	while (!ended) {
		struct pollfd p[2] = { { cap[0].fd, POLLIN, 0 }, { cap[1].fd, POLLIN, 0 } };
		if (now_ns() >= deadline && !timed_out) {
			timed_out = true;
			kill(pid, SIGKILL);
		}
		if (poll(p, 2, cap[0].fd < 0 && cap[1].fd < 0 ? 5 : 100) < 0 && errno != EINTR)
			break;
		for (int i = 0; i < 2; i++)
			if (cap[i].fd >= 0 && p[i].revents)
				capture_read(&cap[i]);
		ended = waitpid(pid, &wstatus, WNOHANG) == pid;
	}
	for (int i = 0; i < 2; i++) {
		if (cap[i].fd >= 0)
			fcntl(cap[i].fd, F_SETFL, O_NONBLOCK);
		while (cap[i].fd >= 0)
			capture_read(&cap[i]); /* to EOF, or EAGAIN: a background child holds the pipe */
	}
	if (pid < 0) {
		free(cap[0].buf);
		free(cap[1].buf);
		if (asprintf(err_out, "cannot run %s: %s", s->program, strerror(spawn_errno)) < 0)
			*err_out = NULL;
		return -1;
	}
	*out = cap[0].buf;
	*err_out = cap[1].buf;
	if (timed_out) {
		free(*err_out);
		if (asprintf(err_out, "the command took longer than %d s and was stopped", timeout_s) < 0)
			*err_out = NULL;
	}
	return exit_status(wstatus);
}

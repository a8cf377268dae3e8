/* A terminal over a WebSocket (serve/serve.h): the command runs on a pseudo-terminal; its output goes to the
 * page in binary messages, the page's keys (binary messages) to it, and {"resize": {...}} sets its size.
 * Either end going ends both: the command's end closes the WebSocket (1000), the page's close or a broken
 * connection hangs the command up (SIGHUP, then SIGKILL). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "lib/util.h"
#include "serve/serve.h"
#include "serve/ws.h"

#define TERM_CHUNK 16384
#define TERM_WRITE_TIMEOUT_MS 10000 /* a page that takes nothing for this long ends the terminal */
#define TERM_HANGUP_GRACE_MS 500

struct term {
	int sock, pty;
	pid_t pid;
	uint8_t input[TERM_CHUNK]; /* the page's keys not yet taken by the terminal */
	size_t input_len;
	uint16_t close_code;  /* set: end the WebSocket with this */
	bool broken;          /* a write failed: the end that took nothing is gone */
};

/* Send the frame (header and payload in one segment when they fit: a keystroke's echo must not wait for an
 * acknowledgement of its header), waiting at most TERM_WRITE_TIMEOUT_MS for room each time. */
static bool send_waiting(int fd, const uint8_t *header, size_t header_len, const void *data, size_t len)
{
	struct iovec iov[2] = { { (void *)header, header_len }, { (void *)data, len } };
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 2 };
	while (iov[0].iov_len + iov[1].iov_len) {
		ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			for (int i = 0; i < 2; i++) {
				size_t take = MIN((size_t)n, iov[i].iov_len);
				iov[i].iov_base = (uint8_t *)iov[i].iov_base + take;
				iov[i].iov_len -= take;
				n -= (ssize_t)take;
			}
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
			return false;
		struct pollfd pf = { fd, POLLOUT, 0 };
		if (poll(&pf, 1, TERM_WRITE_TIMEOUT_MS) <= 0)
			return false;
	}
	return true;
}

static void send_frame(struct term *t, enum ws_opcode op, const void *data, size_t len)
{
	uint8_t header[WS_HEADER_MAX];
	size_t hl = ws_frame_header(header, op, len);
	if (t->broken || !send_waiting(t->sock, header, hl, data, len))
		t->broken = true;
}

static void send_close(struct term *t, uint16_t code)
{
	uint8_t payload[2] = { (uint8_t)(code >> 8), (uint8_t)code };
	send_frame(t, WS_CLOSE, payload, sizeof(payload));
}

/* ---- from the page -------------------------------------------------------------------------------------- */

/* Kept until the terminal takes it: the socket is not read meanwhile, so one read's worth at most (a paste
 * bigger than the terminal's buffer must not stall the output that would let the command read on). */
static void on_binary(void *opaque, const uint8_t *data, size_t len)
{
	struct term *t = opaque;
	size_t room = sizeof(t->input) - t->input_len;
	if (len > room) /* cannot happen: the reader gets at most TERM_CHUNK bytes at a time */
		len = room;
	memcpy(t->input + t->input_len, data, len);
	t->input_len += len;
}

/* Give the terminal what it takes of the page's keys now. */
static void flush_input(struct term *t)
{
	ssize_t n = write(t->pty, t->input, t->input_len);
	if (n > 0) {
		memmove(t->input, t->input + n, t->input_len - (size_t)n);
		t->input_len -= (size_t)n;
	} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
		t->input_len = 0; /* EIO: the command is gone; its end is seen on the read side */
	}
}

/* {"resize": {"cols": C, "rows": R}}; anything else is ignored (a newer page's command). */
static void on_text(void *opaque, const char *text, size_t len)
{
	struct term *t = opaque;
	(void)len;
	json_object *o = json_tokener_parse(text), *r, *cols, *rows;
	if (o && json_object_object_get_ex(o, "resize", &r) && json_object_object_get_ex(r, "cols", &cols) &&
	    json_object_object_get_ex(r, "rows", &rows)) {
		int64_t c = json_object_get_int64(cols), rw = json_object_get_int64(rows);
		if (c > 0 && c <= 1000 && rw > 0 && rw <= 1000) {
			struct winsize ws = { .ws_row = (unsigned short)rw, .ws_col = (unsigned short)c };
			ioctl(t->pty, TIOCSWINSZ, &ws); /* the kernel sends the command SIGWINCH */
		}
	}
	json_object_put(o);
}

static void on_ping(void *opaque, const uint8_t *data, size_t len)
{
	send_frame(opaque, WS_PONG, data, len);
}

static void on_close(void *opaque, uint16_t code)
{
	struct term *t = opaque;
	(void)code;
	t->close_code = WS_CLOSE_NORMAL; /* answered with a close of our own */
}

/* ---- the command ---------------------------------------------------------------------------------------- */

/* Fork argv on a new pseudo-terminal (the child's controlling terminal, in a session of its own). */
static pid_t spawn_on_pty(char **argv, int *pty)
{
	int master, slave;
	struct winsize ws = { .ws_row = 24, .ws_col = 80 };
	if (openpty(&master, &slave, NULL, NULL, &ws) < 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		/* only async-signal-safe calls from here: the server has other threads */
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		setsid();
		ioctl(slave, TIOCSCTTY, 0);
		dup2(slave, 0);
		dup2(slave, 1);
		dup2(slave, 2);
		close_range(3, ~0u, 0);
		execv(argv[0], argv);
		_exit(127);
	}
	close(slave);
	if (pid < 0) {
		close(master);
		return -1;
	}
	fcntl(master, F_SETFD, FD_CLOEXEC);
	fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
	*pty = master;
	return pid;
}

static void end_command(struct term *t)
{
	kill(-t->pid, SIGHUP); /* its session: the command and what it started */
	for (int waited = 0; waited < TERM_HANGUP_GRACE_MS; waited += 10) {
		if (waitpid(t->pid, NULL, WNOHANG) == t->pid)
			return;
		usleep(10000);
	}
	kill(-t->pid, SIGKILL);
	waitpid(t->pid, NULL, 0);
}

/* Carry bytes both ways until one end goes. */
static void relay(struct term *t, const uint8_t *early, size_t early_len)
{
	struct ws_reader reader;
	struct ws_events ev = { on_binary, on_text, on_ping, on_close, t };
	uint8_t *buf = malloc(TERM_CHUNK);
	ws_reader_init(&reader);
	if (buf && early_len) {
		memcpy(buf, early, MIN(early_len, (size_t)TERM_CHUNK));
		uint16_t bad = ws_read(&reader, buf, MIN(early_len, (size_t)TERM_CHUNK), &ev);
		if (bad)
			t->close_code = bad;
	}
	while (buf && !t->close_code && !t->broken) {
		/* the page is read only when its previous keys are all taken */
		struct pollfd p[2] = { { t->input_len ? -1 : t->sock, POLLIN, 0 },
				       { t->pty, (short)(POLLIN | (t->input_len ? POLLOUT : 0)), 0 } };
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents & POLLOUT)
			flush_input(t);
		if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = read(t->pty, buf, TERM_CHUNK);
			if (n > 0) {
				send_frame(t, WS_BINARY, buf, (size_t)n);
			} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
				t->close_code = WS_CLOSE_NORMAL; /* EIO: the command ended */
				break;
			}
		}
		if (p[0].revents) {
			ssize_t n = recv(t->sock, buf, TERM_CHUNK, MSG_DONTWAIT);
			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
				t->broken = true; /* the page went without a close */
				break;
			}
			uint16_t bad = n > 0 ? ws_read(&reader, buf, (size_t)n, &ev) : 0;
			if (bad)
				t->close_code = bad;
		}
	}
	free(buf);
}

void serve_term_run(struct serve *s, int sock, char *const argv[], const uint8_t *early, size_t early_len)
{
	char **full = serve_full_argv(s, argv);
	struct term t = { .sock = sock, .pty = -1, .pid = -1 }; /* 16 KiB: fine on a thread's stack */
	if (full) {
		t.pid = spawn_on_pty(full, &t.pty);
		free(full);
	}
	if (t.pid < 0) {
		static const char msg[] = "virtus serve: cannot start the terminal's command\r\n";
		send_frame(&t, WS_BINARY, msg, sizeof(msg) - 1);
		send_close(&t, 1011);
		return;
	}
	int one = 1; /* keystrokes and their echoes are small writes: no Nagle delay (fails harmlessly on a socketpair) */
	setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	relay(&t, early, early_len);
	if (!t.broken)
		send_close(&t, t.close_code ? t.close_code : WS_CLOSE_NORMAL);
	end_command(&t);
	close(t.pty);
}

/* `virtus exec` in a VM-isolated container (contract in vm_exec.h). */
#include "container/vm_exec.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "container/ctr_int.h"
#include "lib/unixsock.h"
#include "lib/util.h"

#define MSG_MAX    65536
#define ARGS_MAX   4096
#define STDIN_CHUNK 16384

/* The socket's address through the directory's descriptor: /proc/self/fd/N/exec.sock fits sun_path
 * whatever the length of the store's root. *dfd stays open until bind/connect is done. */
static int socket_addr(const char *dir, struct sockaddr_un *addr, int *dfd, vt_err *err)
{
	*dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (*dfd < 0)
		return vt_fail_errno(err, errno, "%s", dir);
	*addr = (struct sockaddr_un){ .sun_family = AF_UNIX };
	snprintf(addr->sun_path, sizeof(addr->sun_path), "/proc/self/fd/%d/" VM_EXEC_SOCKET, *dfd);
	return 0;
}

static void send_json(int sock, const char *key, json_object *val)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, key, val);
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	if (send(sock, s, strlen(s), MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		/* the client went: its connection's end is seen by poll */
	}
	json_object_put(o);
}

/* One message and up to three descriptors; returns its length, 0 at the end, -1 on an error. */
static ssize_t recv_msg(int sock, char *buf, size_t len, int fds[3], unsigned *nfds)
{
	return unix_recv_fds(sock, buf, len, fds, 3, nfds, MSG_DONTWAIT);
}

/* ================= the monitor's side ================= */

static const struct vm_exec idle_exec = { .conn = -1, .in = -1, .out = { { .fd = -1 }, { .fd = -1 } } };

enum { TAG_LISTEN, TAG_CONN, TAG_IN, TAG_OUT /* + stream */ };

void vm_execs_init(struct vm_execs *x)
{
	memset(x, 0, sizeof(*x));
	x->listen = -1;
	for (unsigned i = 0; i < AGENT_MAX_PROCS; i++)
		x->e[i] = idle_exec;
}

int vm_execs_listen(struct vm_execs *x, const char *dir, json_object *process, vt_err *err)
{
	struct sockaddr_un addr;
	int dfd;
	if (!process || json_object_deep_copy(process, &x->base, NULL))
		return vt_fail(err, "exec: the container's config.json has no process");
	if (socket_addr(dir, &addr, &dfd, err))
		return -1;
	unlinkat(dfd, VM_EXEC_SOCKET, 0);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	mode_t old = umask(0177);   /* srw------- */
	bool bad = fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) || listen(fd, 16);
	umask(old);
	close(dfd);
	if (bad) {
		vt_fail_errno(err, errno, "the exec socket in %s", dir);
		closep(&fd);
		return -1;
	}
	x->listen = fd;
	return 0;
}

static void exec_free(struct vm_exec *e)
{
	closep(&e->conn);
	closep(&e->in);
	outq_free(&e->out[0]);
	outq_free(&e->out[1]);
	*e = idle_exec;
}

static void fail_exec(struct vm_exec *e, const char *msg)
{
	send_json(e->conn, "error", json_object_new_string(msg));
	exec_free(e);
}

/* ---- output to the client, never blocking (outq.h) ---- */

static size_t queued(const struct vm_exec *e)
{
	return e->out[0].len + e->out[1].len;
}

/* The process's output: written now, or queued; a queue past the mark stops the agent reading it. */
static void output(struct vm_exec *e, unsigned id, struct agent_conn *a, int stream, const uint8_t *data, size_t len)
{
	outq_put(&e->out[stream], data, len);
	vt_err ignored;
	if (!e->held && queued(e) > VM_EXEC_OUT_HOLD && !agent_send_flow(a, id, true, &ignored))
		e->held = true;
}

static void report_exit(struct vm_exec *e)
{
	send_json(e->conn, "exit", json_object_new_int(e->status));
	exec_free(e);
}

/* The client's descriptor takes more: write the queue; below the low mark the agent reads again; an exit
 * that waited for the output goes to the client. */
static void flush_output(struct vm_exec *e, unsigned id, struct agent_conn *a, int stream)
{
	outq_flush(&e->out[stream]);
	vt_err ignored;
	if (e->held && queued(e) <= VM_EXEC_OUT_RESUME && !agent_send_flow(a, id, false, &ignored))
		e->held = false;
	if (e->exited && !queued(e))
		report_exit(e);
}

/* ---- the request: the container's process with the client's args, env, cwd and user ---- */

static bool string_array(json_object *a, size_t max)
{
	if (!json_object_is_type(a, json_type_array) || json_object_array_length(a) > max)
		return false;
	for (size_t i = 0; i < json_object_array_length(a); i++)
		if (!json_object_is_type(json_object_array_get_idx(a, i), json_type_string))
			return false;
	return true;
}

static int set_user(json_object *p, const char *spec, vt_err *err)
{
	unsigned long long uid, gid;
	char end;
	if (sscanf(spec, "%llu:%llu%c", &uid, &gid, &end) != 2 || uid >= UINT32_MAX || gid >= UINT32_MAX)
		return vt_fail(err, "exec: user '%s' is not UID:GID", spec);
	json_object *u = json_object_new_object();
	json_object_object_add(u, "uid", json_object_new_int64((int64_t)uid));
	json_object_object_add(u, "gid", json_object_new_int64((int64_t)gid));
	json_object_object_add(p, "user", u);
	return 0;
}

static int add_env(json_object *p, json_object *extra)
{
	json_object *env;
	if (!json_object_object_get_ex(p, "env", &env) || !json_object_is_type(env, json_type_array)) {
		env = json_object_new_array();
		json_object_object_add(p, "env", env);
	}
	for (size_t i = 0; i < json_object_array_length(extra); i++)
		json_object_array_add(env, json_object_get(json_object_array_get_idx(extra, i)));
	return 0;
}

/* The OCI process to run, from the container's own and the request; NULL with err on a bad request. */
static json_object *exec_process(const struct vm_execs *x, json_object *rq, vt_err *err)
{
	json_object *args, *env = NULL, *cwd = NULL, *user = NULL, *p = NULL;
	if (!json_object_object_get_ex(rq, "args", &args) || !string_array(args, ARGS_MAX) ||
	    !json_object_array_length(args)) {
		vt_fail(err, "exec: \"args\" must be a non-empty array of strings");
		return NULL;
	}
	if ((json_object_object_get_ex(rq, "env", &env) && !string_array(env, ARGS_MAX)) ||
	    (json_object_object_get_ex(rq, "cwd", &cwd) &&
	     (!json_object_is_type(cwd, json_type_string) || json_object_get_string(cwd)[0] != '/')) ||
	    (json_object_object_get_ex(rq, "user", &user) && !json_object_is_type(user, json_type_string))) {
		vt_fail(err, "exec: env must be strings, cwd an absolute path, user UID:GID");
		return NULL;
	}
	if (json_object_deep_copy(x->base, &p, NULL)) {
		vt_fail(err, "exec: out of memory");
		return NULL;
	}
	json_object_object_add(p, "args", json_object_get(args));
	if (env)
		add_env(p, env);
	if (cwd)
		json_object_object_add(p, "cwd", json_object_get(cwd));
	json_object_object_del(p, "oomScoreAdj");   /* the container's, not its execs' */
	json_object_object_del(p, "consoleSize");   /* the agent sets the exec's own */
	if (user && set_user(p, json_object_get_string(user), err)) {
		json_object_put(p);
		return NULL;
	}
	return p;
}

static bool flag(json_object *rq, const char *key)
{
	json_object *v;
	return json_object_object_get_ex(rq, key, &v) && json_object_get_boolean(v);
}

static unsigned short dimension(json_object *rq, const char *key, unsigned short dflt)
{
	json_object *v;
	int64_t n = json_object_object_get_ex(rq, key, &v) ? json_object_get_int64(v) : 0;
	return n > 0 && n < 65536 ? (unsigned short)n : dflt;
}

/* The client's first message: the process to run, with its stdio. */
static void take_request(struct vm_execs *x, unsigned id, struct agent_conn *a)
{
	struct vm_exec *e = &x->e[id];
	char buf[MSG_MAX + 1];
	int fds[3];
	unsigned nfds;
	ssize_t n = recv_msg(e->conn, buf, MSG_MAX, fds, &nfds);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	for (unsigned i = 0; i < nfds; i++)   /* stdin, stdout, stderr: held here from now on */
		i == 0 ? (void)(e->in = fds[i]) : outq_open(&e->out[i - 1], fds[i]);
	if (n <= 0) {
		exec_free(e);
		return;
	}
	buf[n] = 0;
	vt_err err;
	json_object *rq = json_tokener_parse(buf), *p = NULL;
	if (nfds != 3) {
		fail_exec(e, "exec: the request must carry stdin, stdout and stderr");
	} else if (!rq || !json_object_is_type(rq, json_type_object)) {
		fail_exec(e, "exec: the request is not a JSON object");
	} else if (!(p = exec_process(x, rq, &err))) {
		fail_exec(e, err.msg);
	} else {
		struct agent_stdio io = { .tty = flag(rq, "tty"), .stdin_open = flag(rq, "stdin"),
					  .rows = dimension(rq, "rows", 24), .cols = dimension(rq, "cols", 80) };
		if (agent_send_exec(a, id, p, &io, &err)) {
			fail_exec(e, err.msg);
		} else {
			e->busy = true;
			e->tty = io.tty;
			if (!io.stdin_open)
				closep(&e->in);
		}
	}
	json_object_put(p);
	json_object_put(rq);
}

/* A later message: a window size or a signal; the connection's end kills the process. */
static void take_message(struct vm_exec *e, unsigned id, struct agent_conn *a)
{
	char buf[256];
	int fds[3];
	unsigned nfds;
	ssize_t n = recv_msg(e->conn, buf, sizeof(buf) - 1, fds, &nfds);
	for (unsigned i = 0; i < nfds; i++)
		close(fds[i]);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	vt_err ignored;
	if (n <= 0) {
		agent_send_signal(a, id, SIGKILL, &ignored);
		closep(&e->conn);
		closep(&e->in);
		outq_drop(&e->out[0]);   /* nobody waits for it: the exit is not held up by a stopped reader */
		outq_drop(&e->out[1]);
		return;
	}
	buf[n] = 0;
	json_object *m = json_tokener_parse(buf), *v;
	if (m && json_object_object_get_ex(m, "resize", &v) && json_object_is_type(v, json_type_array) &&
	    json_object_array_length(v) == 2) {
		int64_t rows = json_object_get_int64(json_object_array_get_idx(v, 0));
		int64_t cols = json_object_get_int64(json_object_array_get_idx(v, 1));
		if (e->tty && rows > 0 && rows < 65536 && cols > 0 && cols < 65536)
			agent_send_resize(a, id, (unsigned short)rows, (unsigned short)cols, &ignored);
	} else if (m && json_object_object_get_ex(m, "signal", &v)) {
		int64_t sig = json_object_get_int64(v);
		if (sig > 0 && sig < 65)
			agent_send_signal(a, id, (int)sig, &ignored);
	}
	json_object_put(m);
}

static void relay_stdin(struct vm_exec *e, unsigned id, struct agent_conn *a)
{
	uint8_t buf[STDIN_CHUNK];
	vt_err ignored;
	ssize_t n = read(e->in, buf, sizeof(buf));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		if (!e->tty) /* a terminal's reader never sees EOF; a pipe's does */
			agent_send_stdin(a, id, NULL, 0, &ignored);
		closep(&e->in);
		return;
	}
	agent_send_stdin(a, id, buf, (size_t)n, &ignored);
}

static void accept_client(struct vm_execs *x)
{
	int conn = accept4(x->listen, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (conn < 0)
		return;
	for (unsigned id = 1; id < AGENT_MAX_PROCS; id++)
		if (!x->e[id].busy && x->e[id].conn < 0) {
			x->e[id].conn = conn;
			return;
		}
	send_json(conn, "error", json_object_new_string("exec: the container runs as many processes as it can take"));
	close(conn);
}

unsigned vm_execs_poll(struct vm_execs *x, struct pollfd *p, bool agent_busy)
{
	unsigned n = 0;
	if (x->listen >= 0) {
		x->tag[n].id = 0, x->tag[n].what = TAG_LISTEN;
		p[n++] = (struct pollfd){ .fd = x->listen, .events = POLLIN };
	}
	for (unsigned id = 1; id < AGENT_MAX_PROCS; id++) {
		struct vm_exec *e = &x->e[id];
		if (e->conn >= 0) {
			x->tag[n].id = id, x->tag[n].what = TAG_CONN;
			p[n++] = (struct pollfd){ .fd = e->conn, .events = POLLIN };
		}
		if (e->in >= 0 && e->busy && !agent_busy) {
			x->tag[n].id = id, x->tag[n].what = TAG_IN;
			p[n++] = (struct pollfd){ .fd = e->in, .events = POLLIN };
		}
		for (int s = 0; s < 2; s++)
			if (e->out[s].len) {
				x->tag[n].id = id, x->tag[n].what = TAG_OUT + s;
				p[n++] = (struct pollfd){ .fd = e->out[s].fd, .events = POLLOUT };
			}
	}
	x->ntag = n;
	return n;
}

void vm_execs_ready(struct vm_execs *x, struct agent_conn *a, const struct pollfd *p)
{
	for (unsigned k = 0; k < x->ntag; k++) {
		if (!p[k].revents)
			continue;
		unsigned id = x->tag[k].id;
		int what = x->tag[k].what;
		struct vm_exec *e = &x->e[id];
		/* (each check: the descriptor was not closed, or the slot freed, by an earlier entry) */
		if (what == TAG_LISTEN)
			accept_client(x);
		else if (what == TAG_CONN && p[k].fd == e->conn)
			e->busy ? take_message(e, id, a) : take_request(x, id, a);
		else if (what == TAG_IN && p[k].fd == e->in)
			relay_stdin(e, id, a);
		else if (what >= TAG_OUT && p[k].fd == e->out[what - TAG_OUT].fd && outq_waiting(&e->out[what - TAG_OUT]))
			flush_output(e, id, a, what - TAG_OUT);
	}
}

void vm_execs_event(struct vm_execs *x, struct agent_conn *a, const struct agent_event *ev)
{
	if (!ev->proc || ev->proc >= AGENT_MAX_PROCS || !x->e[ev->proc].busy)
		return;
	struct vm_exec *e = &x->e[ev->proc];
	switch (ev->kind) {
	case AGENT_EV_STARTED:
		e->started = true;
		send_json(e->conn, "started", json_object_new_int(ev->pid));
		break;
	case AGENT_EV_STDOUT:
	case AGENT_EV_STDERR:
		output(e, ev->proc, a, ev->kind == AGENT_EV_STDERR && !e->tty, ev->data, ev->len);
		break;
	case AGENT_EV_EXIT:
		e->exited = true, e->status = ev->status;
		if (!queued(e))
			report_exit(e);
		break;
	case AGENT_EV_ERROR:
		if (!e->started) /* its exec was refused; later errors (a signal too late) change nothing */
			fail_exec(e, ev->text);
		break;
	default:
		break;
	}
}

void vm_execs_end(struct vm_execs *x, const char *dir)
{
	for (unsigned id = 1; id < AGENT_MAX_PROCS; id++)
		if (x->e[id].conn >= 0)
			fail_exec(&x->e[id], "the container stopped");
		else
			exec_free(&x->e[id]);
	if (x->listen >= 0) {
		int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			unlinkat(dfd, VM_EXEC_SOCKET, 0);
			close(dfd);
		}
	}
	closep(&x->listen);
	json_object_put(x->base);
	x->base = NULL;
}

/* ================= the client's side ================= */

static int send_request(int sock, json_object *rq, vt_err *err)
{
	const char *text = json_object_to_json_string_ext(rq, JSON_C_TO_STRING_PLAIN);
	static const int fds[3] = { 0, 1, 2 };
	size_t len = strlen(text);
	if (len > MSG_MAX)
		return vt_fail(err, "exec: the command line is too long (%zu bytes of JSON, at most %d)", len, MSG_MAX);
	if (unix_send_fds(sock, text, len, fds, 3) < 0)
		return vt_fail_errno(err, errno, "exec: sending the request to the container's monitor");
	return 0;
}

static json_object *strings(const char *const *v, size_t n)
{
	json_object *a = json_object_new_array();
	for (size_t i = 0; i < n; i++)
		json_object_array_add(a, json_object_new_string(v[i]));
	return a;
}

static json_object *request(const struct ctr_exec_opts *o, const char *user)
{
	json_object *rq = json_object_new_object();
	json_object_object_add(rq, "args", strings(o->args, o->n_args));
	json_object_object_add(rq, "env", strings(o->env, o->n_env));
	if (o->workdir)
		json_object_object_add(rq, "cwd", json_object_new_string(o->workdir));
	if (user)
		json_object_object_add(rq, "user", json_object_new_string(user));
	json_object_object_add(rq, "tty", json_object_new_boolean(o->tty));
	json_object_object_add(rq, "stdin", json_object_new_boolean(o->interactive));
	struct winsize ws;
	if (o->tty && (!ioctl(0, TIOCGWINSZ, &ws) || !ioctl(1, TIOCGWINSZ, &ws)) && ws.ws_row) {
		json_object_object_add(rq, "rows", json_object_new_int(ws.ws_row));
		json_object_object_add(rq, "cols", json_object_new_int(ws.ws_col));
	}
	return rq;
}

static void forward_signal(int sock, int sfd, bool tty)
{
	struct signalfd_siginfo si;
	while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		struct winsize ws;
		if (si.ssi_signo != SIGWINCH) {
			send_json(sock, "signal", json_object_new_int((int)si.ssi_signo));
		} else if (tty && (!ioctl(0, TIOCGWINSZ, &ws) || !ioctl(1, TIOCGWINSZ, &ws))) {
			json_object *size = json_object_new_array();
			json_object_array_add(size, json_object_new_int(ws.ws_row));
			json_object_array_add(size, json_object_new_int(ws.ws_col));
			send_json(sock, "resize", size);
		}
	}
}

/* 1: the process ended (*status), 0: go on, -1: failed (err, *status). */
static int take_reply(int sock, int *status, vt_err *err)
{
	char buf[VT_ERR_MSG_MAX + 64];
	ssize_t n = recv(sock, buf, sizeof(buf) - 1, 0);
	if (n < 0 && errno == EINTR)
		return 0;
	if (n <= 0) {
		*status = CTR_EXIT_ERROR;
		return vt_fail(err, "the container's monitor went away before the process ended");
	}
	buf[n] = 0;
	json_object *m = json_tokener_parse(buf), *v;
	int rc = 0;
	if (m && json_object_object_get_ex(m, "exit", &v)) {
		*status = json_object_get_int(v);
		rc = 1;
	} else if (m && json_object_object_get_ex(m, "error", &v)) {
		const char *msg = json_object_get_string(v);
		vt_fail(err, "%s", msg);
		/* the runtime's refusal came as text: a file that exists but cannot run is 126, as in a shell */
		if (strstr(msg, "is not an executable file") && !strstr(msg, "does not exist"))
			err->errnum = EACCES;
		*status = ctr_error_status(err);
		rc = -1;
	}
	json_object_put(m);
	return rc;
}

static int wait_process(int sock, bool tty, int *status, vt_err *err)
{
	sigset_t set, old;
	sigemptyset(&set);
	sigaddset(&set, SIGWINCH);
	for (int s = 0, f[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 }; !tty && s < 6; s++)
		sigaddset(&set, f[s]);   /* with -t the terminal's keys reach the process as bytes */
	sigprocmask(SIG_BLOCK, &set, &old);
	int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK), rc = 0;
	while (!rc) {
		struct pollfd p[2] = { { .fd = sock, .events = POLLIN }, { .fd = sfd, .events = POLLIN } };
		if (poll(p, 2, -1) < 0 && errno != EINTR) {
			rc = vt_fail_errno(err, errno, "poll");
			break;
		}
		if (p[1].revents)
			forward_signal(sock, sfd, tty);
		if (p[0].revents)
			rc = take_reply(sock, status, err);
	}
	closep(&sfd);
	sigprocmask(SIG_SETMASK, &old, NULL);
	return rc < 0 ? -1 : 0;
}

int vm_exec_run(const char *dir, const struct ctr_exec_opts *o, const char *user, int *status, vt_err *err)
{
	struct sockaddr_un addr;
	int dfd;
	*status = CTR_EXIT_ERROR;
	if (socket_addr(dir, &addr, &dfd, err))
		return -1;
	int sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (sock < 0 || connect(sock, (struct sockaddr *)&addr, sizeof(addr))) {
		vt_fail_errno(err, errno, "cannot reach the container's monitor (%s/%s; a container started by an older "
					  "virtus has none: restart it)", dir, VM_EXEC_SOCKET);
		close(dfd);
		closep(&sock);
		return -1;
	}
	close(dfd);
	json_object *rq = request(o, user);
	int rc = send_request(sock, rq, err);
	json_object_put(rq);
	struct termios saved, raw;
	bool restore = false;
	if (!rc && o->tty && !tcgetattr(0, &saved)) {
		raw = saved;
		cfmakeraw(&raw);
		restore = !tcsetattr(0, TCSANOW, &raw);
	}
	if (!rc)
		rc = wait_process(sock, o->tty, status, err);
	if (restore)
		tcsetattr(0, TCSANOW, &saved);
	close(sock);
	return rc;
}

/* The container and its processes: the bundle the runtime library runs (create, start, exec), stdio through
 * pipes or a pty, signals, window size, exits. Process 0 is the container's init, the others are execs. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "agent.h"
#include "isolation/vmbox.h"
#include "isolation/agent_proto.h"
#include "lib/util.h"
#include "runtime/rt.h"

struct stdio_req {
	bool tty, in;
	int rows, cols;
};

static int parse_stdio(json_object *msg, struct stdio_req *io, vt_err *err)
{
	json_object *s, *v;
	memset(io, 0, sizeof(*io));
	if (!json_object_object_get_ex(msg, "stdio", &s) || !json_object_is_type(s, json_type_object))
		return vt_fail(err, "\"stdio\" missing");
	io->tty = json_object_object_get_ex(s, "tty", &v) && json_object_get_boolean(v);
	io->in = json_object_object_get_ex(s, "stdin", &v) && json_object_get_boolean(v);
	if (json_object_object_get_ex(s, "rows", &v))
		io->rows = json_object_get_int(v);
	if (json_object_object_get_ex(s, "cols", &v))
		io->cols = json_object_get_int(v);
	if (io->rows < 0 || io->rows > 65535 || io->cols < 0 || io->cols > 65535)
		return vt_fail(err, "window size out of range");
	return 0;
}

static void set_winsize(int master, int rows, int cols)
{
	struct winsize ws = { .ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols };
	if (master >= 0 && rows && cols)
		ioctl(master, TIOCSWINSZ, &ws);
}

/* The runtime sizes the pty before the program runs: an exec'd program's first look sees the right size. */
static void set_console_size(json_object *process, const struct stdio_req *io)
{
	if (!io->tty || !io->rows || !io->cols) {
		json_object_object_del(process, "consoleSize");
		return;
	}
	json_object *cs = json_object_new_object();
	json_object_object_add(cs, "height", json_object_new_int(io->rows));
	json_object_object_add(cs, "width", json_object_new_int(io->cols));
	json_object_object_add(process, "consoleSize", cs);
}

/* ---------------- stdio plumbing ---------------- */

/* Pipes for a process without a terminal: child[] become its 0,1,2, ours go in *p. */
struct plumbing {
	int child[3];
	int saved[3];
};

static void plumbing_close(struct plumbing *pl)
{
	for (int i = 0; i < 3; i++)
		closep(&pl->child[i]);
}

static int make_pipes(struct aproc *p, const struct stdio_req *io, struct plumbing *pl, vt_err *err)
{
	int in[2] = { -1, -1 }, out[2], er[2];
	for (int i = 0; i < 3; i++)
		pl->child[i] = pl->saved[i] = -1;
	if (io->in ? pipe2(in, O_CLOEXEC) : (in[0] = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
		return vt_fail_errno(err, errno, "stdin");
	if (pipe2(out, O_CLOEXEC)) {
		close(in[0]);
		closep(&in[1]);
		return vt_fail_errno(err, errno, "pipe");
	}
	if (pipe2(er, O_CLOEXEC)) {
		close(in[0]);
		closep(&in[1]);
		close(out[0]);
		close(out[1]);
		return vt_fail_errno(err, errno, "pipe");
	}
	pl->child[0] = in[0];
	pl->child[1] = out[1];
	pl->child[2] = er[1];
	p->in = in[1];
	p->out = out[0];
	p->err = er[0];
	return 0;
}

/* The runtime's processes inherit our 0,1,2: point them at the pipes for the call, then back. */
static void plumbing_install(struct plumbing *pl)
{
	for (int i = 0; i < 3; i++) {
		pl->saved[i] = fcntl(i, F_DUPFD_CLOEXEC, 3);
		dup2(pl->child[i], i);
	}
}

static void plumbing_restore(struct plumbing *pl)
{
	for (int i = 0; i < 3; i++) {
		if (pl->saved[i] >= 0) {
			dup2(pl->saved[i], i);
			close(pl->saved[i]);
		} else {
			close(i);
		}
		pl->saved[i] = -1;
	}
}

static void proc_free(struct aproc *p)
{
	free(p->inbuf);
	closep(&p->in);
	closep(&p->out);
	closep(&p->err);
	memset(p, 0, sizeof(*p));
	p->in = p->out = p->err = -1;
}

static void nonblocking(int fd)
{
	if (fd >= 0)
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* The process is made: its stdio (with a terminal, the pty's master both ways) becomes non-blocking. */
static void proc_take_stdio(struct aproc *p, const struct stdio_req *io, int master)
{
	if (io->tty) {
		p->out = master;
		p->in = fcntl(master, F_DUPFD_CLOEXEC, 3);
		set_winsize(master, io->rows, io->cols);
	}
	nonblocking(p->in);
	nonblocking(p->out);
	nonblocking(p->err);
	p->used = true;
	p->tty = io->tty;
}

/* ---------------- create / start ---------------- */

/* A string member, "" when absent or of another type (the spec's own checks come later, in the runtime). */
static const char *str_member(json_object *o, const char *key)
{
	json_object *v;
	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return "";
	return json_object_get_string(v);
}

/* The host's spec made to fit the guest: our root, no bind mounts of host paths (those the container needs
 * come with sources under the share: kept), no network namespace (the VM's network is the container's), terminal as asked. */
static int adapt_spec(const struct agent *a, json_object *spec, const struct stdio_req *io, vt_err *err)
{
	json_object *root, *process, *linux_, *v;
	if (!json_object_is_type(spec, json_type_object))
		return vt_fail(err, "spec is not an object");
	if (!json_object_object_get_ex(spec, "process", &process) || !json_object_is_type(process, json_type_object))
		return vt_fail(err, "spec without a process");
	root = json_object_new_object();
	json_object_object_add(root, "path", json_object_new_string(a->rootfs));
	json_object_object_add(spec, "root", root);
	json_object_object_add(process, "terminal", json_object_new_boolean(io->tty));
	set_console_size(process, io);
	if (json_object_object_get_ex(spec, "mounts", &v) && json_object_is_type(v, json_type_array)) {
		json_object *kept = json_object_new_array();
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			json_object *m = json_object_array_get_idx(v, i), *opts;
			bool bind = !strcmp(str_member(m, "type"), "bind");
			if (json_object_object_get_ex(m, "options", &opts) && json_object_is_type(opts, json_type_array))
				for (size_t k = 0; k < json_object_array_length(opts); k++) {
					const char *o = json_object_get_string(json_object_array_get_idx(opts, k));
					bind |= o && (!strcmp(o, "bind") || !strcmp(o, "rbind"));
				}
			/* The host binds what the container needs into the share and points the source there. */
			const char *source = str_member(m, "source");
			bool host_path = source[0] == '/' &&
					 strncmp(source, VMBOX_GUEST_SHARE "/", strlen(VMBOX_GUEST_SHARE) + 1);
			if (!(bind && host_path))
				json_object_array_add(kept, json_object_get(m));
		}
		json_object_object_add(spec, "mounts", kept);
	}
	if (json_object_object_get_ex(spec, "linux", &linux_) &&
	    json_object_object_get_ex(linux_, "namespaces", &v) && json_object_is_type(v, json_type_array)) {
		json_object *kept = json_object_new_array();
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			json_object *ns = json_object_array_get_idx(v, i);
			if (strcmp(str_member(ns, "type"), "network"))
				json_object_array_add(kept, json_object_get(ns));
		}
		json_object_object_add(linux_, "namespaces", kept);
	}
	return 0;
}

static int write_json(const char *path, json_object *o, vt_err *err)
{
	if (json_object_to_file_ext(path, o, JSON_C_TO_STRING_PLAIN))
		return vt_fail(err, "writing %s", path);
	return 0;
}

int proc_create(struct agent *a, json_object *msg, vt_err *err)
{
	struct stdio_req io;
	json_object *spec;
	struct aproc *p = &a->procs[AGENT_INIT_PROC];
	if (a->id[0])
		return vt_fail(err, "this connection already has a container");
	if (parse_stdio(msg, &io, err))
		return -1;
	if (!json_object_object_get_ex(msg, "spec", &spec) || adapt_spec(a, spec, &io, err))
		return vt_err_prefix(err, "create");
	char id[32], bundle[400], config[450];
	snprintf(id, sizeof(id), "ctr%u", ++a->seq);
	snprintf(bundle, sizeof(bundle), "%s/%s", a->state, id);
	snprintf(config, sizeof(config), "%s/config.json", bundle);
	if (mkdir(bundle, 0700) && errno != EEXIST)
		return vt_fail_errno(err, errno, "mkdir %s", bundle);
	if (write_json(config, spec, err))
		return -1;
	struct rt_create_opts co = { .bundle = bundle, .own_console = io.tty };
	struct plumbing pl;
	int master = -1;
	proc_free(p);
	if (!io.tty && make_pipes(p, &io, &pl, err))
		return -1;
	if (!io.tty)
		plumbing_install(&pl);
	int rc = rt_cmd_create_owned(&a->rt, id, &co, &p->pid, &master, err);
	if (!io.tty) {
		plumbing_restore(&pl);
		plumbing_close(&pl);
	}
	if (rc) {
		proc_free(p);
		return vt_err_prefix(err, "create");
	}
	proc_take_stdio(p, &io, master);
	snprintf(a->id, sizeof(a->id), "%s", id);
	json_object *r = json_object_new_object();
	json_object_object_add(r, "pid", json_object_new_int(p->pid));
	agent_send_json(a, AGENT_MSG_CREATED, AGENT_INIT_PROC, r);
	json_object_put(r);
	return 0;
}

static void send_started(struct agent *a, unsigned id)
{
	json_object *r = json_object_new_object();
	json_object_object_add(r, "pid", json_object_new_int(a->procs[id].pid));
	agent_send_json(a, AGENT_MSG_STARTED, id, r);
	json_object_put(r);
}

int proc_start(struct agent *a, vt_err *err)
{
	if (!a->id[0] || !a->procs[AGENT_INIT_PROC].used)
		return vt_fail(err, "start: no container created");
	if (rt_cmd_start(&a->rt, a->id, err))
		return -1;
	send_started(a, AGENT_INIT_PROC);
	return 0;
}

/* ---------------- exec ---------------- */

/* With a terminal the runtime sends the pty master to a socket of ours. */
static int exec_tty(struct agent *a, struct rt_exec_opts *eo, const char *base, int *master, vt_err *err)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	if ((size_t)snprintf(addr.sun_path, sizeof(addr.sun_path), "%s.sock", base) >= sizeof(addr.sun_path))
		return vt_fail(err, "state directory path too long");
	unlink(addr.sun_path);
	cleanup_close int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (ls < 0 || bind(ls, (struct sockaddr *)&addr, sizeof(addr)) || listen(ls, 1))
		return vt_fail_errno(err, errno, "console socket");
	eo->console_socket = addr.sun_path;
	int status, rc = rt_cmd_exec(&a->rt, a->id, eo, &status, err);
	unlink(addr.sun_path);
	if (rc)
		return -1;
	cleanup_close int conn = accept4(ls, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (conn < 0)
		return vt_fail_errno(err, errno, "console socket");
	*master = rt_console_recv(conn, err);
	return *master < 0 ? -1 : 0;
}

static int read_pid(const char *path, pid_t *pid, vt_err *err)
{
	cleanup_free char *text = NULL;
	size_t n;
	if (read_file(path, 64, (void **)&text, &n, err))
		return -1;
	*pid = (pid_t)atoi(text);
	unlink(path);
	return *pid > 0 ? 0 : vt_fail(err, "exec: bad pid file");
}

int proc_exec(struct agent *a, unsigned id, json_object *msg, vt_err *err)
{
	struct stdio_req io;
	json_object *process;
	if (id == AGENT_INIT_PROC || id >= AGENT_MAX_PROCS || a->procs[id].used)
		return vt_fail(err, "exec: process id %u is taken or out of range", id);
	if (!a->id[0])
		return vt_fail(err, "exec: no container");
	if (parse_stdio(msg, &io, err))
		return -1;
	if (!json_object_object_get_ex(msg, "process", &process) || !json_object_is_type(process, json_type_object))
		return vt_fail(err, "exec: \"process\" missing");
	json_object_object_add(process, "terminal", json_object_new_boolean(io.tty));
	set_console_size(process, &io);
	char base[300], file[320], pid_file[320];
	snprintf(base, sizeof(base), "%s/%s-exec%u", a->state, a->id, id);
	snprintf(file, sizeof(file), "%s.json", base);
	snprintf(pid_file, sizeof(pid_file), "%s.pid", base);
	if (write_json(file, process, err))
		return -1;
	struct rt_exec_opts eo = { .process_file = file, .pid_file = pid_file, .detach = true, .tty = io.tty };
	struct aproc *p = &a->procs[id];
	proc_free(p);
	int rc, master = -1, status;
	if (io.tty) {
		rc = exec_tty(a, &eo, base, &master, err);
	} else {
		struct plumbing pl;
		if (make_pipes(p, &io, &pl, err))
			return -1;
		plumbing_install(&pl);
		rc = rt_cmd_exec(&a->rt, a->id, &eo, &status, err);
		plumbing_restore(&pl);
		plumbing_close(&pl);
	}
	unlink(file);
	if (rc || read_pid(pid_file, &p->pid, err)) {
		closep(&master);
		proc_free(p);
		return vt_err_prefix(err, "exec");
	}
	proc_take_stdio(p, &io, master);
	send_started(a, id);
	return 0;
}

/* ---------------- stdio, signals, size ---------------- */

static struct aproc *live(struct agent *a, unsigned id, vt_err *err)
{
	if (id >= AGENT_MAX_PROCS || !a->procs[id].used) {
		vt_fail(err, "no process %u", id);
		return NULL;
	}
	return &a->procs[id];
}

/* Write what the process takes now; at the end of the queue, the EOF that was asked for. */
static int stdin_push(struct aproc *p)
{
	while (p->in_len) {
		ssize_t n = write(p->in, p->inbuf, p->in_len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n <= 0) {
			p->in_len = 0; /* the process closed its stdin: what it did not read is lost, as with a pipe */
			closep(&p->in);
			return -1;
		}
		memmove(p->inbuf, p->inbuf + n, p->in_len - (size_t)n);
		p->in_len -= (size_t)n;
	}
	if (p->in_eof) {
		/* A terminal has no EOF of its own: the EOF character (VEOF, ^D) instead. */
		if (p->tty && write(p->in, "\x04", 1) < 0 && errno == EAGAIN)
			return 0;
		closep(&p->in);
		p->in_eof = false;
	}
	return 0;
}

void proc_stdin_ready(struct agent *a, unsigned id)
{
	if (id < AGENT_MAX_PROCS && a->procs[id].used && a->procs[id].in >= 0)
		stdin_push(&a->procs[id]);
}

int proc_stdin(struct agent *a, unsigned id, const void *data, size_t len, vt_err *err)
{
	struct aproc *p = live(a, id, err);
	if (!p)
		return -1;
	if (p->in < 0 || p->in_eof)
		return len ? vt_fail(err, "process %u: stdin is closed", id) : 0;
	if (!len) {
		p->in_eof = true;
		return stdin_push(p) ? vt_fail(err, "process %u: stdin closed", id) : 0;
	}
	if (p->in_len + len > AGENT_STDIN_MAX)
		return vt_fail(err, "process %u: stdin backlog over %u bytes: input dropped", id, AGENT_STDIN_MAX);
	uint8_t *b = realloc(p->inbuf, p->in_len + len);
	if (!b)
		return vt_fail_errno(err, ENOMEM, "stdin");
	p->inbuf = b;
	memcpy(b + p->in_len, data, len);
	p->in_len += len;
	return stdin_push(p) ? vt_fail(err, "process %u: stdin closed", id) : 0;
}

int proc_signal(struct agent *a, unsigned id, int sig, vt_err *err)
{
	struct aproc *p = live(a, id, err);
	if (!p)
		return -1;
	if (kill(p->pid, sig))
		return vt_fail_errno(err, errno, "signal %d to process %u", sig, id);
	return 0;
}

int proc_resize(struct agent *a, unsigned id, unsigned rows, unsigned cols, vt_err *err)
{
	struct aproc *p = live(a, id, err);
	if (!p)
		return -1;
	if (!p->tty)
		return vt_fail(err, "process %u has no terminal", id);
	set_winsize(p->out, (int)rows, (int)cols);
	return 0;
}

void proc_hold(struct agent *a, unsigned id, bool stop)
{
	if (id < AGENT_MAX_PROCS && a->procs[id].used)
		a->procs[id].held = stop;
}

/* ---------------- output and exits ---------------- */

/* Read what the stream has now; false when it ended (EOF, or EIO: a pty whose other side is gone). */
static bool relay_once(struct agent *a, unsigned id, int fd)
{
	static uint8_t buf[AGENT_MAX_PAYLOAD];
	struct aproc *p = &a->procs[id];
	ssize_t n = read(fd, buf, sizeof(buf));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return errno == EINTR;
	if (n <= 0) {
		if (fd == p->out) {
			closep(&p->out);
			if (p->tty)
				closep(&p->in);
		} else {
			closep(&p->err);
		}
		return false;
	}
	agent_send(a, fd == p->err ? AGENT_MSG_STDERR : AGENT_MSG_STDOUT, id, buf, (size_t)n);
	return true;
}

void proc_relay(struct agent *a, unsigned id, int fd)
{
	if (id < AGENT_MAX_PROCS && a->procs[id].used)
		relay_once(a, id, fd);
}

static void report_exit(struct agent *a, unsigned id, int wstatus)
{
	struct aproc *p = &a->procs[id];
	/* What it wrote before it ended is in the pipe or pty now: send it first. */
	while (p->out >= 0 && relay_once(a, id, p->out))
		;
	while (p->err >= 0 && relay_once(a, id, p->err))
		;
	int status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
	json_object *r = json_object_new_object();
	json_object_object_add(r, "status", json_object_new_int(status));
	agent_send_json(a, AGENT_MSG_EXIT, id, r);
	json_object_put(r);
	proc_free(p);
}

void proc_reap(struct agent *a)
{
	int ws;
	pid_t pid;
	while ((pid = waitpid(-1, &ws, WNOHANG)) > 0)
		for (unsigned i = 0; i < AGENT_MAX_PROCS; i++)
			if (a->procs[i].used && a->procs[i].pid == pid)
				report_exit(a, i, ws);
}

void proc_destroy_all(struct agent *a)
{
	for (unsigned i = 0; i < AGENT_MAX_PROCS; i++) {
		struct aproc *p = &a->procs[i];
		if (p->used && p->pid > 0)
			kill(p->pid, SIGKILL);
		proc_free(p);
	}
	if (a->id[0]) {
		vt_err ignored;
		rt_cmd_delete(&a->rt, a->id, true, &ignored);
		a->id[0] = 0;
	}
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

/* Test driver for the agent protocol: drives `virtus-agent --listen unix:PATH` through the host client
 * (src/isolation/agent.h) and behaves like the process it runs: its stdout and stderr are the process's,
 * its exit status is the process's (the status the agent reported). tests/container/agent.sh asserts them.
 *
 *   agent_driver SOCK [--tty ROWSxCOLS] [--stdin TEXT] [--env K=V]... [--cwd DIR] [--user UID:GID]
 *                [--no-pidns] [--term-after MS] [--exec] [--bad-spec-first] [--bind SRC:DST]
 *                [--resize ROWSxCOLS] [--heartbeat PING_MS:DEAD_MS] -- ARGS...
 *   agent_driver SOCK --shutdown
 *   agent_driver SOCK [--env K=V]... --serve-execs DIR -- ARGS
 *   agent_driver --exec-client DIR [-t] [-i] [--env K=V]... [--cwd DIR] [--user UID:GID] -- ARGS...
 * --exec runs ARGS beside an init `sleep 1000`; --bad-spec-first sends a create the runtime must refuse,
 * prints "refused: MESSAGE" on stderr and goes on with the real one on the same connection.
 * --heartbeat checks the agent as a VM container's monitor does (agent_heartbeat): a dead agent is
 * "agent_driver: the agent did not answer for DEAD_MS ms" on stderr and status 124.
 * --serve-execs plays a VM container's monitor (src/container/vm_exec.h) for the init ARGS: it prints
 * "serving" once DIR/exec.sock listens and serves execs until SIGTERM; --exec-client is `virtus exec`'s side
 * of that channel: it exits with the process's status (its error on stderr). */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "container/vm_exec.h"
#include "isolation/agent.h"
#include "lib/util.h"
#include "runtime/runtime.h"

struct opts {
	const char *sock;
	struct agent_stdio io;
	const char *stdin_text, *cwd, *user, *bind, *serve_dir;
	const char *env[16];
	int n_env, term_after_ms;
	unsigned resize_rows, resize_cols; /* --resize RxC: sent once the process started */
	unsigned ping_ms, dead_ms;         /* --heartbeat */
	bool exec, bad_spec, no_pidns, shutdown;
	char **args;
};

static __attribute__((noreturn)) void die(const char *what, const vt_err *err)
{
	fprintf(stderr, "agent_driver: %s: %s\n", what, err ? err->msg : strerror(errno));
	exit(125);
}

static void parse(int argc, char **argv, struct opts *o)
{
	if (argc < 2)
		die("usage", NULL);
	o->sock = argv[1];
	int i = 2;
	for (; i < argc && strcmp(argv[i], "--"); i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
		if (!strcmp(a, "--tty")) {
			unsigned r, c;
			if (sscanf(v, "%ux%u", &r, &c) != 2)
				die("--tty ROWSxCOLS", NULL);
			o->io.tty = true, o->io.rows = (unsigned short)r, o->io.cols = (unsigned short)c, i++;
		} else if (!strcmp(a, "--stdin")) {
			o->stdin_text = v, o->io.stdin_open = true, i++;
		} else if (!strcmp(a, "--env") && o->n_env < 16) {
			o->env[o->n_env++] = v, i++;
		} else if (!strcmp(a, "--resize")) {
			if (sscanf(v, "%ux%u", &o->resize_rows, &o->resize_cols) != 2)
				die("--resize ROWSxCOLS", NULL);
			i++;
		} else if (!strcmp(a, "--heartbeat")) {
			if (sscanf(v, "%u:%u", &o->ping_ms, &o->dead_ms) != 2 || !o->ping_ms || !o->dead_ms)
				die("--heartbeat PING_MS:DEAD_MS", NULL);
			i++;
		} else if (!strcmp(a, "--bind")) {
			o->bind = v, i++;
		} else if (!strcmp(a, "--cwd")) {
			o->cwd = v, i++;
		} else if (!strcmp(a, "--user")) {
			o->user = v, i++;
		} else if (!strcmp(a, "--term-after")) {
			o->term_after_ms = atoi(v), i++;
		} else if (!strcmp(a, "--exec")) {
			o->exec = true;
		} else if (!strcmp(a, "--bad-spec-first")) {
			o->bad_spec = true;
		} else if (!strcmp(a, "--no-pidns")) {
			o->no_pidns = true;
		} else if (!strcmp(a, "--serve-execs")) {
			o->serve_dir = v, i++;
		} else if (!strcmp(a, "--shutdown")) {
			o->shutdown = true;
		} else {
			die(a, NULL);
		}
	}
	o->args = i < argc ? argv + i + 1 : NULL;
	if (!o->shutdown && (!o->args || !o->args[0]))
		die("no command after --", NULL);
}

static json_object *strings(const char *const *v, int n)
{
	json_object *a = json_object_new_array();
	for (int i = 0; n < 0 ? v[i] != NULL : i < n; i++)
		json_object_array_add(a, json_object_new_string(v[i]));
	return a;
}

/* An OCI process object for ARGS with the options' env, cwd and user. */
static json_object *process_of(const struct opts *o, char **args)
{
	json_object *p = json_object_new_object();
	json_object_object_add(p, "args", strings((const char *const *)args, -1));
	json_object *env = strings(o->env, o->n_env);
	json_object_array_add(env, json_object_new_string("PATH=/bin"));
	json_object_object_add(p, "env", env);
	json_object_object_add(p, "cwd", json_object_new_string(o->cwd ? o->cwd : "/"));
	unsigned uid = 0, gid = 0;
	if (o->user)
		sscanf(o->user, "%u:%u", &uid, &gid);
	json_object *u = json_object_new_object();
	json_object_object_add(u, "uid", json_object_new_int((int)uid));
	json_object_object_add(u, "gid", json_object_new_int((int)gid));
	json_object_object_add(p, "user", u);
	return p;
}

static json_object *spec_of(const struct opts *o, json_object *process)
{
	json_object *spec = rt_spec_default(), *linux_, *ns;
	json_object_object_add(spec, "process", process);
	json_object_object_del(spec, "hostname");
	const char *colon = o->bind ? strchr(o->bind, ':') : NULL;
	json_object *mounts;
	if (colon && json_object_object_get_ex(spec, "mounts", &mounts)) {
		/* a host bind mount: the agent must drop it (in a VM the host has bound it into the shared tree) */
		json_object *m = json_object_new_object();
		json_object_object_add(m, "destination", json_object_new_string(colon + 1));
		json_object_object_add(m, "type", json_object_new_string("bind"));
		json_object_object_add(m, "source", json_object_new_string_len(o->bind, (int)(colon - o->bind)));
		const char *opts[] = { "rbind", "ro" };
		json_object_object_add(m, "options", strings(opts, 2));
		json_object_array_add(mounts, m);
	}
	if (o->no_pidns && json_object_object_get_ex(spec, "linux", &linux_) &&
	    json_object_object_get_ex(linux_, "namespaces", &ns)) {
		json_object *kept = json_object_new_array();
		for (size_t i = 0; i < json_object_array_length(ns); i++) {
			json_object *n = json_object_array_get_idx(ns, i), *t;
			if (json_object_object_get_ex(n, "type", &t) && strcmp(json_object_get_string(t), "pid"))
				json_object_array_add(kept, json_object_get(n));
		}
		json_object_object_add(linux_, "namespaces", kept);
	}
	return spec;
}

static void flush_all(struct agent_conn *c)
{
	vt_err err;
	while (agent_pending(c)) {
		struct pollfd p = { .fd = agent_fd(c), .events = POLLOUT };
		poll(&p, 1, 1000);
		if (agent_flush(c, &err))
			die("flush", &err);
	}
}

/* Wait for the next event other than NONE, up to 20 s. */
static void next_event(struct agent_conn *c, struct agent_event *ev)
{
	vt_err err;
	for (int waited = 0; waited < 20000;) {
		if (agent_recv(c, ev, &err))
			die("recv", &err);
		if (ev->kind != AGENT_EV_NONE)
			return;
		struct pollfd p = { .fd = agent_fd(c), .events = POLLIN };
		if (poll(&p, 1, 100) == 0)
			waited += 100;
	}
	die("timeout waiting for the agent", NULL);
}

static void expect(struct agent_conn *c, enum agent_event_kind kind, unsigned proc)
{
	struct agent_event ev;
	next_event(c, &ev);
	if (ev.kind == AGENT_EV_ERROR) {
		fprintf(stderr, "agent_driver: agent refused: %s\n", ev.text);
		exit(124);
	}
	if (ev.kind != kind || ev.proc != proc) {
		fprintf(stderr, "agent_driver: event %d for %u, expected %d for %u\n", ev.kind, ev.proc, kind, proc);
		exit(125);
	}
}

/* Relay the target's output until its exit; SIGTERM after term_after_ms. Returns its status. */
static int relay(struct agent_conn *c, const struct opts *o, unsigned target)
{
	vt_err err;
	uint64_t term_at = o->term_after_ms ? now_ns() + (uint64_t)o->term_after_ms * 1000000 : 0;
	for (;;) {
		struct agent_event ev;
		if (agent_recv(c, &ev, &err))
			die("recv", &err);
		switch (ev.kind) {
		case AGENT_EV_NONE: {
			struct pollfd p = { .fd = agent_fd(c), .events = POLLIN };
			poll(&p, 1, 50);
			if (o->dead_ms && agent_heartbeat(c, o->ping_ms, o->dead_ms) < 0) {
				fprintf(stderr, "agent_driver: the agent did not answer for %u ms\n", o->dead_ms);
				return 124;
			}
			flush_all(c);
			if (term_at && now_ns() >= term_at) {
				term_at = 0;
				if (agent_send_signal(c, target, SIGTERM, &err))
					die("signal", &err);
				flush_all(c);
			}
			break;
		}
		case AGENT_EV_STDOUT:
		case AGENT_EV_STDERR:
			if (ev.proc == target)
				write_all(ev.kind == AGENT_EV_STDOUT ? 1 : 2, ev.data, ev.len);
			break;
		case AGENT_EV_EXIT:
			if (ev.proc == target)
				return ev.status;
			break;
		case AGENT_EV_ERROR:
			fprintf(stderr, "agent_driver: agent refused: %s\n", ev.text);
			return 124;
		case AGENT_EV_CLOSED:
			die("the agent closed the connection", NULL);
		default:
			break;
		}
	}
}

static void send_stdin(struct agent_conn *c, const struct opts *o, unsigned proc)
{
	vt_err err;
	if (!o->stdin_text)
		return;
	if (agent_send_stdin(c, proc, o->stdin_text, strlen(o->stdin_text), &err) ||
	    agent_send_stdin(c, proc, NULL, 0, &err))
		die("stdin", &err);
	flush_all(c);
}

static struct agent_conn *connect_agent(const char *path)
{
	vt_err err;
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)))
		die("connect", NULL);
	struct agent_conn *c;
	if (agent_connect_fd(fd, 5000, &c, &err))
		die("handshake", &err);
	return c;
}

/* A create the runtime refuses (no process args): the agent must answer with an error and keep serving. */
static void bad_spec(struct agent_conn *c)
{
	vt_err err;
	struct agent_stdio io = { 0 };
	json_object *spec = rt_spec_default(), *process;
	json_object_object_get_ex(spec, "process", &process);
	json_object_object_add(process, "args", json_object_new_string("not an array"));
	if (agent_send_create(c, spec, &io, &err))
		die("create", &err);
	json_object_put(spec);
	flush_all(c);
	struct agent_event ev;
	next_event(c, &ev);
	if (ev.kind != AGENT_EV_ERROR)
		die("a bad spec was not refused", NULL);
	fprintf(stderr, "refused: %s\n", ev.text);
}

/* The monitor's loop, reduced to the exec channel: until SIGTERM or the agent's end. */
static int serve_execs(struct agent_conn *c, const char *dir, json_object *process)
{
	struct vm_execs x;
	vt_err err;
	vm_execs_init(&x);
	if (vm_execs_listen(&x, dir, process, &err))
		die("listen", &err);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, NULL);
	int sfd = signalfd(-1, &set, SFD_CLOEXEC);
	printf("serving\n");
	fflush(stdout);
	bool open = true;
	while (open) {
		struct pollfd p[2 + VM_EXEC_MAX_POLL] = {
			{ .fd = agent_fd(c), .events = POLLIN | (agent_pending(c) ? POLLOUT : 0) },
			{ .fd = sfd, .events = POLLIN },
		};
		unsigned n = 2 + vm_execs_poll(&x, p + 2, agent_pending(c));
		if (poll(p, n, -1) < 0 || p[1].revents)
			break;
		vm_execs_ready(&x, c, p + 2);
		if (agent_pending(c) && agent_flush(c, &err))
			die("flush", &err);
		for (struct agent_event ev = { .kind = AGENT_EV_STDOUT }; open && ev.kind != AGENT_EV_NONE;) {
			if (agent_recv(c, &ev, &err) || ev.kind == AGENT_EV_CLOSED || (ev.kind == AGENT_EV_EXIT && !ev.proc))
				open = false;
			else if (ev.proc)
				vm_execs_event(&x, c, &ev);
		}
	}
	vm_execs_end(&x, dir);
	/* the container goes, as when a monitor's container ends */
	if (open && !agent_send_signal(c, AGENT_INIT_PROC, SIGKILL, &err)) {
		flush_all(c);
		for (struct agent_event ev = { .kind = AGENT_EV_NONE }; !(ev.kind == AGENT_EV_EXIT && !ev.proc);)
			next_event(c, &ev);
	}
	return 0;
}

static int exec_client(int argc, char **argv)
{
	const char *env[16];
	struct ctr_exec_opts eo = { .env = env };
	const char *user = NULL;
	int i = 2;
	for (; i < argc && strcmp(argv[i], "--"); i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : "";
		if (!strcmp(argv[i], "-t"))
			eo.tty = true;
		else if (!strcmp(argv[i], "-i"))
			eo.interactive = true;
		else if (!strcmp(argv[i], "--env") && eo.n_env < 16)
			env[eo.n_env++] = v, i++;
		else if (!strcmp(argv[i], "--cwd"))
			eo.workdir = v, i++;
		else if (!strcmp(argv[i], "--user"))
			user = v, i++;
		else
			die(argv[i], NULL);
	}
	if (argc < 2 || i + 1 >= argc)
		die("usage: --exec-client DIR [options] -- ARGS", NULL);
	eo.args = (const char *const *)argv + i + 1;
	eo.n_args = (size_t)(argc - i - 1);
	int status;
	vt_err err;
	if (vm_exec_run(argv[1], &eo, user, &status, &err))
		fprintf(stderr, "exec: %s\n", err.msg);
	return status;
}

int main(int argc, char **argv)
{
	struct opts o = { 0 };
	vt_err err;
	signal(SIGPIPE, SIG_IGN);
	if (argc > 1 && !strcmp(argv[1], "--exec-client"))
		return exec_client(argc - 1, argv + 1);
	parse(argc, argv, &o);
	struct agent_conn *c = connect_agent(o.sock);
	if (o.shutdown) {
		if (agent_send_shutdown(c, &err))
			die("shutdown", &err);
		flush_all(c);
		struct agent_event ev;
		next_event(c, &ev);
		agent_close(c);
		return ev.kind == AGENT_EV_CLOSED ? 0 : 1;
	}
	if (o.bad_spec)
		bad_spec(c);
	char *init_args[] = { "sleep", "1000", NULL };
	struct agent_stdio init_io = { 0 };
	json_object *spec = spec_of(&o, process_of(&o, o.exec ? init_args : o.args));
	if (agent_send_create(c, spec, o.exec ? &init_io : &o.io, &err))
		die("create", &err);
	json_object_put(spec);
	flush_all(c);
	expect(c, AGENT_EV_CREATED, 0);
	if (agent_send_start(c, &err))
		die("start", &err);
	flush_all(c);
	expect(c, AGENT_EV_STARTED, 0);
	if (o.serve_dir) {
		json_object *process = process_of(&o, o.args);
		int rc = serve_execs(c, o.serve_dir, process);
		json_object_put(process);
		agent_close(c);
		return rc;
	}
	unsigned target = 0;
	if (o.exec) {
		target = 1;
		json_object *p = process_of(&o, o.args);
		if (agent_send_exec(c, target, p, &o.io, &err))
			die("exec", &err);
		json_object_put(p);
		flush_all(c);
		expect(c, AGENT_EV_STARTED, target);
	}
	if (o.resize_rows) {
		if (agent_send_resize(c, target, (unsigned short)o.resize_rows, (unsigned short)o.resize_cols, &err))
			die("resize", &err);
		flush_all(c);
	}
	send_stdin(c, &o, target);
	int status = relay(c, &o, target);
	agent_close(c);
	return status;
}

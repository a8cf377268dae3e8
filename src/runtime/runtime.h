/* The OCI runtime as a library (libvirtus-runtime.a): what `virtus-runtime` (src/runtime/main.c), `virtus run`
 * (src/container/) and `virtus build` (src/image/) call. Each rt_cmd_* is one command of the runc command line,
 * with the same semantics; the state of every container lives under globals->root/<id>. Nothing here prints or
 * exits; errors come back in the vt_err. The internals (config.json parsing, rootfs, cgroups) are in rt.h.
 *
 * Threads and processes: create/run fork the container's processes; call them from a single-threaded process
 * (or one that tolerates fork), and reap what they leave as documented per command. */
#ifndef VIRTUS_RUNTIME_H
#define VIRTUS_RUNTIME_H

#include <json-c/json.h>
#include <stdbool.h>
#include <sys/types.h>

#include "lib/err.h"

/* The default config.json of `virtus-runtime spec`: a starting point to fill in. */
json_object *rt_spec_default(void);
/* "TERM", "SIGTERM", "15" -> 15; -1 if unknown. */
int rt_signal_from_name(const char *s);

struct rt_globals {
	const char *root;
	bool debug;
	bool systemd_cgroup;
	vt_err *warning;  /* filled when a command succeeds with warnings (e.g. a poststart hook failed), one a line */
};

struct rt_create_opts {
	const char *bundle;
	const char *pid_file;
	const char *console_socket;
	bool no_pivot;
	int preserve_fds;
	bool detach;     /* run: return after start instead of waiting */
	bool keep;       /* run: leave the stopped container for the caller to delete */
	bool own_console; /* run: with process.terminal and no --console-socket, give the pty to the caller */
};
int rt_cmd_create(const struct rt_globals *g, const char *id, const struct rt_create_opts *o, vt_err *err);
int rt_cmd_start(const struct rt_globals *g, const char *id, vt_err *err);
/* create + start + wait; *status is the container's exit status (128+n on signal). */
int rt_cmd_run(const struct rt_globals *g, const char *id, const struct rt_create_opts *o, int *status,
	       vt_err *err);
int rt_cmd_state(const struct rt_globals *g, const char *id, json_object **out, vt_err *err);
int rt_cmd_kill(const struct rt_globals *g, const char *id, int sig, bool all, vt_err *err);
int rt_cmd_delete(const struct rt_globals *g, const char *id, bool force, vt_err *err);
int rt_cmd_pause(const struct rt_globals *g, const char *id, bool pause, vt_err *err);
int rt_cmd_list(const struct rt_globals *g, json_object **out, vt_err *err);
int rt_cmd_ps(const struct rt_globals *g, const char *id, pid_t **pids, size_t *n, vt_err *err);

struct rt_exec_opts {
	const char *process_file;
	const char *console_socket;
	const char *pid_file;
	const char *cwd;
	const char *user;        /* uid[:gid] */
	const char **env;        /* extra KEY=VALUE */
	size_t n_env;
	const char **args;       /* when no --process */
	size_t n_args;
	bool tty, detach, no_new_privs;
	int preserve_fds;
	const char *apparmor;       /* --apparmor PROFILE */
	const char *process_label;  /* --process-label LABEL */
};
int rt_cmd_exec(const struct rt_globals *g, const char *id, const struct rt_exec_opts *o, int *status,
		vt_err *err);

#endif

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

struct rt_vm_ops;

struct rt_globals {
	const char *root;
	bool debug;
	bool systemd_cgroup;
	vt_err *warning;  /* filled when a command succeeds with warnings (e.g. a poststart hook failed), one a line */
	/* VM isolation (the annotation RT_ANNOTATION_ISOLATION = "vm"): where its code is, loaded on first use;
	 * NULL, or returning NULL with err set: not available to this caller. */
	const struct rt_vm_ops *(*vm_ops)(vt_err *err);
};

/* A container whose config.json carries this annotation with the value "vm" runs in a microVM of its own
 * (docs/vm-isolation.md). The runtime keeps its state, cgroup, fifos and hooks as for any container; its
 * init is a shim on the host that owns the VM and relays the container's stdio and signals to the guest. */
#define RT_ANNOTATION_ISOLATION "io.virtus.isolation"

struct rt_vm_shim_args {
	const char *id;
	const char *state_dir;   /* the container's state directory: the VM's logs and sockets go there */
	json_object *spec;       /* config.json (root.path absolute) */
	const char *rootfs;      /* absolute */
	int sync;                /* wait for RT_SYNC_GO, report RT_SYNC_READY or RT_SYNC_ERROR */
	int start_fifo;          /* one byte arrives when `start` runs */
	int execed;              /* closed once the container's process runs (start waits for that) */
	int console;             /* a connected console socket for the pty master (process.terminal), or -1 */
};

struct rt_exec_opts;
struct rt_vm_ops {
	/* create's child: the shim. Never returns; exits with the container's status. */
	void (*shim)(const struct rt_vm_shim_args *a);
	/* delete, once the shim and everything in the cgroup is gone: what the shim would have removed. */
	void (*release)(const char *state_dir);
	/* pause (or resume) the VM's vCPUs, through its VMM: the shim and virtiofsd go on. */
	int (*pause)(const char *state_dir, bool pause, vt_err *err);
	/* exec in the running VM container (through its shim). */
	int (*exec)(const char *state_dir, const struct rt_exec_opts *o, int *status, vt_err *err);
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
/* create for a caller that owns the container: *init_pid is init (our child: we become a child subreaper), and
 * with o->own_console and process.terminal *master is the pty's master (else -1), for the caller to close. */
int rt_cmd_create_owned(const struct rt_globals *g, const char *id, const struct rt_create_opts *o, pid_t *init_pid,
			int *master, vt_err *err);
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

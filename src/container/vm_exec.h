/* `virtus exec` in a VM-isolated container. The container runs in the guest, so the command cannot run the
 * runtime itself: it asks the container's monitor, which holds the agent's connection, over a SOCK_SEQPACKET
 * socket in the container's directory (exec.sock, mode 0600). One connection per exec, JSON messages:
 *
 *   client -> monitor  {"args": [...], "env": ["K=V", ...], "cwd": "/", "user": "UID:GID", "tty": false,
 *                       "stdin": true, "rows": 24, "cols": 80}, with the client's stdin, stdout and stderr
 *                      (SCM_RIGHTS); later {"resize": [ROWS, COLS]} or {"signal": N}
 *   monitor -> client  {"started": PID} or {"error": "..."}, then {"exit": STATUS}
 *
 * The monitor relays between the client's descriptors and the agent directly (no copy through the client),
 * never blocking on a client: output its stdout or stderr does not take now waits in a queue, and past
 * VM_EXEC_OUT_HOLD bytes the agent is asked to stop reading that process's output (agent_send_flow) until the
 * queue is down to VM_EXEC_OUT_RESUME: one slow reader holds up its own process only;
 * the client waits, forwards its window size and signals, and puts its terminal in raw mode for -t. A
 * client that goes away takes its process with it (SIGKILL). The process starts from the container's own
 * (its env, cwd, user, capabilities), with the request's args, extra env, cwd and user. Internal to
 * src/container. */
#ifndef VIRTUS_CONTAINER_VM_EXEC_H
#define VIRTUS_CONTAINER_VM_EXEC_H

#include <json-c/json.h>
#include <poll.h>
#include <stdbool.h>

#include "container/container.h"
#include "container/outq.h"
#include "isolation/agent.h"

#define VM_EXEC_SOCKET   "exec.sock"
#define VM_EXEC_MAX_POLL (1 + 4 * AGENT_MAX_PROCS)
#define VM_EXEC_OUT_HOLD   (256 * 1024)
#define VM_EXEC_OUT_RESUME (64 * 1024)

/* ---- the monitor's side ---- */

struct vm_exec {
	bool busy;          /* the agent knows this process id (asked for, running, or killed and not reported) */
	bool started;
	bool tty;
	bool held;          /* the agent was asked to stop reading its output */
	bool exited;        /* the agent reported its end: the exit goes to the client once its output is out */
	int status;
	int conn;           /* the client; -1 once it went */
	int in;             /* its stdin; -1 without -i or after EOF */
	struct outq out[2];      /* its stdout and stderr */
};

struct vm_execs {
	int listen;                                /* -1: no exec channel */
	json_object *base;                         /* the container's OCI process (owned) */
	struct vm_exec e[AGENT_MAX_PROCS];         /* by the agent's process id; 0 is init's */
	struct { unsigned id; int what; } tag[VM_EXEC_MAX_POLL]; /* what: the client, stdin, stdout, stderr */
	unsigned ntag;
};

void vm_execs_init(struct vm_execs *x);
/* Listen at dir/exec.sock (dir: the container's directory); process is the container's "process" (copied). */
int vm_execs_listen(struct vm_execs *x, const char *dir, json_object *process, vt_err *err);
/* Fill p with what to wait for (agent_busy: the agent's send queue is full, so no stdin is read); returns
 * how many entries. */
unsigned vm_execs_poll(struct vm_execs *x, struct pollfd *p, bool agent_busy);
/* Act on the entries vm_execs_poll filled, after poll. */
void vm_execs_ready(struct vm_execs *x, struct agent_conn *a, const struct pollfd *p);
/* An agent event for an exec's process (proc != 0): relayed to its client. */
void vm_execs_event(struct vm_execs *x, struct agent_conn *a, const struct agent_event *ev);
/* The container ended: every client is told, everything closed, the socket removed. */
void vm_execs_end(struct vm_execs *x, const char *dir);

/* ---- the client's side (`virtus exec`) ---- */

/* Run o's command in the VM container whose directory is dir; user is "UID:GID" or NULL. *status: the
 * process's exit status, or 125/126/127 when it could not run. */
int vm_exec_run(const char *dir, const struct ctr_exec_opts *o, const char *user, int *status, vt_err *err);

#endif

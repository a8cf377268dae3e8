/* The in-guest agent (static, PID 1 of the VM-isolation initramfs): internal interfaces between its files.
 * main.c: arguments and the PID 1 setup; server.c: the connection and the protocol; proc.c: the container's
 * processes and their stdio; net.c: eth0. The agent is single-threaded: one poll loop in server.c. */
#ifndef VIRTUS_AGENT_INT_H
#define VIRTUS_AGENT_INT_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "isolation/agent.h"
#include "lib/err.h"
#include "runtime/runtime.h"

struct aproc {
	bool used, tty;
	pid_t pid;
	int in;         /* our end of its stdin (tty: a dup of the master), -1 when closed */
	int out, err;   /* our ends of its stdout / stderr (tty: the master and -1) */
	uint8_t *inbuf; /* stdin the process has not taken yet (bounded: AGENT_STDIN_MAX) */
	size_t in_len;
	bool in_eof;    /* close stdin once inbuf is written */
	bool held;      /* the host asked us to stop reading its output (FLOW) */
};

/* A process that does not read its stdin must not stall the agent: its input waits here, up to this. */
#define AGENT_STDIN_MAX (1u << 20)

struct agent {
	bool pid1;
	const char *rootfs;          /* the container's root file system */
	char state[256];             /* runtime state and bundles */
	char rt_root[300];
	struct rt_globals rt;
	int listen_fd, conn, sigfd;
	bool hello_done;
	uint8_t *rx;
	size_t rx_len;
	char id[32];                 /* the connection's container, "" before create */
	unsigned seq;
	struct aproc procs[AGENT_MAX_PROCS];
};

/* main.c */
__attribute__((noreturn, format(printf, 2, 3))) void agent_fatal(const struct agent *a, const char *fmt, ...);
void agent_power_off(void) __attribute__((noreturn));

/* server.c */
int agent_serve(struct agent *a, vt_err *err);
int agent_send(struct agent *a, uint16_t type, unsigned proc, const void *data, size_t len);
int agent_send_json(struct agent *a, uint16_t type, unsigned proc, json_object *o);

/* proc.c: each returns -1 with err for a refused request (the server reports it and goes on). */
int proc_create(struct agent *a, json_object *msg, vt_err *err);
int proc_start(struct agent *a, vt_err *err);
int proc_exec(struct agent *a, unsigned id, json_object *msg, vt_err *err);
int proc_stdin(struct agent *a, unsigned id, const void *data, size_t len, vt_err *err);
int proc_signal(struct agent *a, unsigned id, int sig, vt_err *err);
int proc_resize(struct agent *a, unsigned id, unsigned rows, unsigned cols, vt_err *err);
/* FLOW: stop or go on reading the process's output (a process already gone: nothing to do). */
void proc_hold(struct agent *a, unsigned id, bool stop);
/* Its stdin is writable: write what is queued. */
void proc_stdin_ready(struct agent *a, unsigned id);
/* Output of process id's fd is readable: relay it. */
void proc_relay(struct agent *a, unsigned id, int fd);
/* SIGCHLD: reap everything, report the exits of our processes. */
void proc_reap(struct agent *a);
/* The connection ended or shutdown: kill the container's processes and delete it. */
void proc_destroy_all(struct agent *a);

/* net.c */
int net_configure(json_object *msg, vt_err *err);
int net_loopback_up(vt_err *err);

#endif

/* The host side of the VM-isolation agent protocol: a client that drives the in-guest agent
 * (guest/agent/) over one stream connection (in production the VMM's vsock socket, "CONNECT <port>";
 * in tests a Unix socket the agent listens on). The wire format is in docs/agent-protocol.md and
 * src/isolation/agent_proto.h; everything the guest sends is untrusted: lengths are bounded, unknown or
 * malformed messages are a protocol error (the connection is dropped, the container reported stopped).
 *
 * One connection carries one container: its init process and any exec processes beside it. Processes are
 * named by a small id the host picks (0 = the container's init). The client never blocks on the guest:
 * agent_fd() is polled by the caller, agent_recv() takes one event when it is readable, agent_send_*()
 * queue bytes and agent_flush() writes what the socket takes (poll for POLLOUT while agent_pending()).
 *
 * Threads: a connection belongs to one thread. Nothing here prints or exits. */
#ifndef VIRTUS_ISOLATION_AGENT_H
#define VIRTUS_ISOLATION_AGENT_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"

#define AGENT_VSOCK_PORT   1024          /* where the agent listens in the guest */
#define AGENT_INIT_PROC    0             /* process id of the container's init */
#define AGENT_MAX_PROCS    64            /* processes (init + execs) per connection */

struct agent_conn;

/* Connect through a virtus vsock socket PATH ("CONNECT port\n" / "OK ...\n"), retrying while the guest
 * boots, until timeout_ms; then the version handshake. err->errnum is EPROTO when the agent answered but
 * wrongly (another protocol version, a bad hello): retrying cannot help. */
int agent_connect_vsock(const char *vsock_path, unsigned port, int timeout_ms, struct agent_conn **out,
			vt_err *err);
/* The same over an already connected stream socket (tests: a socketpair or a Unix socket). Takes fd. */
int agent_connect_fd(int fd, int timeout_ms, struct agent_conn **out, vt_err *err);
void agent_close(struct agent_conn *c);

int agent_fd(const struct agent_conn *c);
bool agent_pending(const struct agent_conn *c);      /* bytes queued for the guest */
int agent_flush(struct agent_conn *c, vt_err *err);  /* write what the socket takes now */

/* The guest's network (the VM's eth0), set before create; absent = loopback only. */
struct agent_net {
	char ifname[16];          /* "eth0" */
	uint32_t addr;            /* host byte order */
	unsigned prefix;
	uint32_t gateway;         /* 0: no default route */
};
int agent_send_net(struct agent_conn *c, const struct agent_net *net, vt_err *err);

/* Process stdio: with tty the process gets a pty in the guest (window rows x cols) and one output stream. */
struct agent_stdio {
	bool tty;
	bool stdin_open;          /* else the process's stdin is /dev/null */
	unsigned short rows, cols;
};

/* Create the container from its OCI config.json (spec): the agent runs it with the runtime library on the
 * root file system the VM was given (root.path is replaced by the guest's rootfs; mounts whose source is a
 * host path are dropped: the host bound them into the shared rootfs already). Then start it. */
int agent_send_create(struct agent_conn *c, json_object *spec, const struct agent_stdio *io, vt_err *err);
int agent_send_start(struct agent_conn *c, vt_err *err);
/* Run another process in the container (podman exec): process is an OCI "process" object. */
int agent_send_exec(struct agent_conn *c, unsigned proc, json_object *process, const struct agent_stdio *io,
		    vt_err *err);
/* Bytes for the process's stdin; len 0 closes it (EOF). */
int agent_send_stdin(struct agent_conn *c, unsigned proc, const void *buf, size_t len, vt_err *err);
int agent_send_signal(struct agent_conn *c, unsigned proc, int sig, vt_err *err);
int agent_send_resize(struct agent_conn *c, unsigned proc, unsigned short rows, unsigned short cols, vt_err *err);
/* Flow control of a process's output: stop, the agent stops reading it (the process blocks on a full pipe, as
 * it would writing to a slow reader on the host); !stop, it reads again. For a host whose consumer of that
 * output is slow: the other processes on the connection go on. */
int agent_send_flow(struct agent_conn *c, unsigned proc, bool stop, vt_err *err);
/* Is the agent still answering? Any frame from it counts; after interval_ms without one a ping is queued
 * (the agent answers every ping with a pong, which agent_recv consumes). Returns how many ms until the next
 * check is due (a poll timeout for the caller), or -1 once nothing has come for dead_ms: the agent (or its
 * VM) stopped answering. agent_heartbeat_reset() starts the silence over (a VM that was paused on purpose). */
int agent_heartbeat(struct agent_conn *c, unsigned interval_ms, unsigned dead_ms);
void agent_heartbeat_reset(struct agent_conn *c);
/* Ask the guest to power off (after the container ended, or for stop -t timeout). */
int agent_send_shutdown(struct agent_conn *c, vt_err *err);

enum agent_event_kind {
	AGENT_EV_NONE,            /* nothing complete yet: poll again */
	AGENT_EV_CREATED,         /* create done; pid = the process's pid in the guest */
	AGENT_EV_STARTED,         /* init (or exec proc) started */
	AGENT_EV_STDOUT,          /* data, len: output of proc (tty: all output) */
	AGENT_EV_STDERR,
	AGENT_EV_EXIT,            /* proc ended: status as the runtime reports it (128+n when killed by n) */
	AGENT_EV_ERROR,           /* the agent refused a request: message in text (already sanitised) */
	AGENT_EV_CLOSED,          /* the guest closed the connection */
};

struct agent_event {
	enum agent_event_kind kind;
	unsigned proc;
	int pid, status;
	const uint8_t *data;      /* valid until the next agent_recv */
	size_t len;
	char text[256];
};

/* Read what is available and return at most one event in *ev. -1 (with err) on a protocol error: the
 * connection is then unusable. Several events can arrive in one read and wait in the client's buffer, where
 * poll() cannot see them: when agent_fd() is readable, call agent_recv until it returns AGENT_EV_NONE. */
int agent_recv(struct agent_conn *c, struct agent_event *ev, vt_err *err);

#endif

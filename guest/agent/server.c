/* The agent's one loop: accept a connection (one at a time: it carries one container), read frames, do
 * what they ask, relay the processes' output and report their exits. A malformed frame from the host ends
 * the connection; a request that cannot be done is answered with an error and the agent goes on. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "agent.h"
#include "isolation/agent_proto.h"
#include "lib/util.h"

#define RX_CAP (AGENT_HDR_SIZE + AGENT_MAX_PAYLOAD)

int agent_send(struct agent *a, uint16_t type, unsigned proc, const void *data, size_t len)
{
	uint8_t hdr[AGENT_HDR_SIZE];
	struct agent_hdr h = { .len = (uint32_t)len, .type = type, .proc = (uint16_t)proc };
	if (a->conn < 0 || len > AGENT_MAX_PAYLOAD)
		return -1;
	agent_hdr_encode(hdr, &h);
	if (write_all(a->conn, hdr, sizeof(hdr)) || (len && write_all(a->conn, data, len)))
		return -1;
	return 0;
}

int agent_send_json(struct agent *a, uint16_t type, unsigned proc, json_object *o)
{
	size_t len;
	const char *s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);
	return s ? agent_send(a, type, proc, s, len) : -1;
}

static void send_error(struct agent *a, unsigned proc, const char *msg)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "message", json_object_new_string(msg));
	agent_send_json(a, AGENT_MSG_ERROR, proc, o);
	json_object_put(o);
}

static void drop_connection(struct agent *a)
{
	proc_destroy_all(a);
	if (a->conn >= 0)
		close(a->conn);
	a->conn = -1;
	a->rx_len = 0;
	a->hello_done = false;
}


static int int_member(json_object *o, const char *key, int min, int max, int *out, vt_err *err)
{
	json_object *v;
	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
		return vt_fail(err, "\"%s\" missing or not a number", key);
	int64_t n = json_object_get_int64(v);
	if (n < min || n > max)
		return vt_fail(err, "\"%s\" out of range", key);
	*out = (int)n;
	return 0;
}

static __attribute__((noreturn)) void shutdown_now(struct agent *a)
{
	drop_connection(a);
	if (a->pid1)
		agent_power_off();
	exit(0);
}

static int hello(struct agent *a, json_object *o)
{
	int version;
	vt_err err;
	if (int_member(o, "version", 0, 65535, &version, &err) || version != AGENT_PROTO_VERSION)
		return -1;
	a->hello_done = true;
	json_object *r = json_object_new_object();
	json_object_object_add(r, "version", json_object_new_int(AGENT_PROTO_VERSION));
	int rc = agent_send_json(a, AGENT_MSG_HELLO, 0, r);
	json_object_put(r);
	return rc;
}

/* One control request; -1 only for a protocol error (drop the connection). */
static int control(struct agent *a, const struct agent_hdr *h, json_object *o)
{
	vt_err err = { 0 };
	int rc = 0, n1, n2;
	if (!a->hello_done)
		return h->type == AGENT_MSG_HELLO ? hello(a, o) : -1;
	switch (h->type) {
	case AGENT_MSG_NET:
		rc = a->pid1 ? net_configure(o, &err) : vt_fail(&err, "the network is configured only in the VM");
		break;
	case AGENT_MSG_CREATE:
		rc = h->proc ? vt_fail(&err, "create is for process 0") : proc_create(a, o, &err);
		break;
	case AGENT_MSG_START:
		rc = proc_start(a, &err);
		break;
	case AGENT_MSG_EXEC:
		rc = proc_exec(a, h->proc, o, &err);
		break;
	case AGENT_MSG_SIGNAL:
		rc = int_member(o, "signal", 1, 64, &n1, &err) ? -1 : proc_signal(a, h->proc, n1, &err);
		break;
	case AGENT_MSG_RESIZE:
		rc = int_member(o, "rows", 0, 65535, &n1, &err) || int_member(o, "cols", 0, 65535, &n2, &err)
			     ? -1
			     : proc_resize(a, h->proc, (unsigned)n1, (unsigned)n2, &err);
		break;
	case AGENT_MSG_FLOW: {
		json_object *v;
		if (!json_object_object_get_ex(o, "stop", &v) || !json_object_is_type(v, json_type_boolean))
			return -1;
		proc_hold(a, h->proc, json_object_get_boolean(v));
		return 0;
	}
	case AGENT_MSG_PING: {
		json_object *r = json_object_new_object();
		rc = agent_send_json(a, AGENT_MSG_PONG, 0, r);
		json_object_put(r);
		return rc;
	}
	case AGENT_MSG_SHUTDOWN:
		shutdown_now(a);
	default:
		return -1;
	}
	if (rc)
		send_error(a, h->proc, err.msg);
	return 0;
}

/* Handle every complete frame in the buffer; -1 on a protocol error. */
static int handle_frames(struct agent *a)
{
	size_t off = 0;
	while (a->rx_len - off >= AGENT_HDR_SIZE) {
		struct agent_hdr h;
		if (!agent_hdr_decode(a->rx + off, &h))
			return -1;
		if (a->rx_len - off < AGENT_HDR_SIZE + h.len)
			break;
		const uint8_t *p = a->rx + off + AGENT_HDR_SIZE;
		off += AGENT_HDR_SIZE + h.len;
		if (h.type == AGENT_MSG_STDIN) {
			vt_err err;
			if (!a->hello_done)
				return -1;
			if (proc_stdin(a, h.proc, p, h.len, &err))
				send_error(a, h.proc, err.msg);
			continue;
		}
		if (agent_msg_is_raw(h.type))
			return -1;
		json_object *o = agent_parse_object(p, h.len);
		int rc = o ? control(a, &h, o) : -1;
		json_object_put(o);
		if (rc)
			return -1;
	}
	memmove(a->rx, a->rx + off, a->rx_len - off);
	a->rx_len -= off;
	return 0;
}

static void on_readable(struct agent *a)
{
	ssize_t n = recv(a->conn, a->rx + a->rx_len, RX_CAP - a->rx_len, 0);
	if (n < 0 && errno == EINTR)
		return;
	if (n <= 0 || (a->rx_len += (size_t)n, handle_frames(a)))
		drop_connection(a);
}

static void on_accept(struct agent *a)
{
	int fd = accept4(a->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd >= 0)
		a->conn = fd;
}

/* The poll set: listener or connection, SIGCHLD, every open process output. */
static size_t poll_set(struct agent *a, struct pollfd *p, unsigned *who)
{
	size_t n = 0;
	p[n++] = (struct pollfd){ .fd = a->sigfd, .events = POLLIN };
	p[n++] = (struct pollfd){ .fd = a->conn >= 0 ? a->conn : a->listen_fd, .events = POLLIN };
	for (unsigned i = 0; i < AGENT_MAX_PROCS && a->conn >= 0; i++) {
		struct aproc *pr = &a->procs[i];
		if (!pr->used)
			continue;
		int fds[3] = { pr->held ? -1 : pr->out, pr->held ? -1 : pr->err, pr->in_len || pr->in_eof ? pr->in : -1 };
		for (int k = 0; k < 3; k++) {
			if (fds[k] < 0)
				continue;
			who[n] = i;
			p[n++] = (struct pollfd){ .fd = fds[k], .events = k < 2 ? POLLIN : POLLOUT };
		}
	}
	return n;
}

int agent_serve(struct agent *a, vt_err *err)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	a->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	a->rx = malloc(RX_CAP);
	if (a->sigfd < 0 || !a->rx)
		return vt_fail_errno(err, errno, "agent setup");
	a->conn = -1;
	for (;;) {
		struct pollfd p[2 + 3 * AGENT_MAX_PROCS];
		unsigned who[2 + 3 * AGENT_MAX_PROCS];
		size_t n = poll_set(a, p, who);
		if (poll(p, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			return vt_fail_errno(err, errno, "poll");
		}
		/* Output before exits: a process's last words go out before its exit status. */
		for (size_t i = 2; i < n; i++) {
			if (p[i].revents && p[i].events == POLLOUT)
				proc_stdin_ready(a, who[i]);
			else if (p[i].revents)
				proc_relay(a, who[i], p[i].fd);
		}
		if (p[0].revents) {
			struct signalfd_siginfo si;
			while (read(a->sigfd, &si, sizeof(si)) > 0)
				;
			proc_reap(a);
		}
		if (p[1].revents)
			a->conn >= 0 ? on_readable(a) : on_accept(a);
	}
}

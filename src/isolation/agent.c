/* Host side of the agent protocol (contract in agent.h, format in agent_proto.h). Non-blocking: frames
 * queue in a growing transmit buffer; received bytes collect in a bounded buffer and come out one frame
 * (one event) per agent_recv. Everything from the guest is checked before use. */
#include "isolation/agent.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "isolation/agent_proto.h"
#include "lib/util.h"

#define RX_CAP (AGENT_HDR_SIZE + AGENT_MAX_PAYLOAD)

enum { PROC_NONE, PROC_ASKED, PROC_LIVE }; /* a refused create/exec frees the id again */

struct agent_conn {
	int fd;
	uint8_t *rx;           /* RX_CAP bytes */
	size_t rx_len, rx_used; /* rx_used: the frame handed out by the last agent_recv, dropped on the next */
	uint8_t *tx;
	size_t tx_len, tx_cap;
	uint8_t known[AGENT_MAX_PROCS]; /* PROC_*: processes the host asked for and that have not exited */
	bool closed;
	uint64_t heard_ns;     /* when the agent last sent anything */
	uint64_t pinged_ns;    /* when the last ping was queued (0: none since heard_ns) */
	unsigned pings_out;    /* pings not answered yet: a pong beyond them is a protocol error (no flood) */
};

int agent_fd(const struct agent_conn *c) { return c->fd; }
bool agent_pending(const struct agent_conn *c) { return c->tx_len > 0; }

void agent_close(struct agent_conn *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	free(c->rx);
	free(c->tx);
	free(c);
}

static int queue_frame(struct agent_conn *c, uint16_t type, unsigned proc, const void *data, size_t len,
		       vt_err *err)
{
	if (proc >= AGENT_MAX_PROCS)
		return vt_fail(err, "agent: process id %u out of range", proc);
	if (len > AGENT_MAX_PAYLOAD)
		return vt_fail(err, "agent: message of %zu bytes is too long", len);
	size_t need = c->tx_len + AGENT_HDR_SIZE + len;
	if (need > c->tx_cap) {
		size_t cap = c->tx_cap ? c->tx_cap : 4096;
		while (cap < need)
			cap *= 2;
		uint8_t *p = realloc(c->tx, cap);
		if (!p)
			return vt_fail_errno(err, ENOMEM, "agent");
		c->tx = p;
		c->tx_cap = cap;
	}
	struct agent_hdr h = { .len = (uint32_t)len, .type = type, .proc = (uint16_t)proc };
	agent_hdr_encode(c->tx + c->tx_len, &h);
	if (len)
		memcpy(c->tx + c->tx_len + AGENT_HDR_SIZE, data, len);
	c->tx_len = need;
	return 0;
}

static int queue_json(struct agent_conn *c, uint16_t type, unsigned proc, json_object *obj, vt_err *err)
{
	size_t len;
	const char *s = json_object_to_json_string_length(obj, JSON_C_TO_STRING_PLAIN, &len);
	if (!s)
		return vt_fail_errno(err, ENOMEM, "agent");
	return queue_frame(c, type, proc, s, len, err);
}

int agent_flush(struct agent_conn *c, vt_err *err)
{
	while (c->tx_len) {
		ssize_t n = send(c->fd, c->tx, c->tx_len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n < 0)
			return vt_fail_errno(err, errno, "agent: sending");
		memmove(c->tx, c->tx + n, c->tx_len - (size_t)n);
		c->tx_len -= (size_t)n;
	}
	return 0;
}

static json_object *stdio_json(const struct agent_stdio *io)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "tty", json_object_new_boolean(io->tty));
	json_object_object_add(o, "stdin", json_object_new_boolean(io->stdin_open));
	json_object_object_add(o, "rows", json_object_new_int(io->rows));
	json_object_object_add(o, "cols", json_object_new_int(io->cols));
	return o;
}

/* {"key": obj, "stdio": {...}}; obj is borrowed. */
static int queue_with_stdio(struct agent_conn *c, uint16_t type, unsigned proc, const char *key, json_object *obj,
			    const struct agent_stdio *io, vt_err *err)
{
	if (proc >= AGENT_MAX_PROCS)
		return vt_fail(err, "agent: process id %u out of range", proc);
	if (c->known[proc])
		return vt_fail(err, "agent: process %u is already running", proc);
	json_object *msg = json_object_new_object();
	json_object_object_add(msg, key, json_object_get(obj));
	json_object_object_add(msg, "stdio", stdio_json(io));
	int rc = queue_json(c, type, proc, msg, err);
	json_object_put(msg);
	if (!rc)
		c->known[proc] = PROC_ASKED;
	return rc;
}

int agent_send_create(struct agent_conn *c, json_object *spec, const struct agent_stdio *io, vt_err *err)
{
	return queue_with_stdio(c, AGENT_MSG_CREATE, AGENT_INIT_PROC, "spec", spec, io, err);
}

int agent_send_exec(struct agent_conn *c, unsigned proc, json_object *process, const struct agent_stdio *io,
		    vt_err *err)
{
	if (proc == AGENT_INIT_PROC)
		return vt_fail(err, "agent: process 0 is the container's init");
	return queue_with_stdio(c, AGENT_MSG_EXEC, proc, "process", process, io, err);
}

static int queue_empty(struct agent_conn *c, uint16_t type, vt_err *err)
{
	return queue_frame(c, type, AGENT_INIT_PROC, "{}", 2, err);
}

int agent_send_start(struct agent_conn *c, vt_err *err) { return queue_empty(c, AGENT_MSG_START, err); }
int agent_send_shutdown(struct agent_conn *c, vt_err *err) { return queue_empty(c, AGENT_MSG_SHUTDOWN, err); }

void agent_heartbeat_reset(struct agent_conn *c)
{
	c->heard_ns = now_ns();
	c->pinged_ns = 0;
}

int agent_heartbeat(struct agent_conn *c, unsigned interval_ms, unsigned dead_ms)
{
	uint64_t now = now_ns(), silent_ms = (now - c->heard_ns) / 1000000;
	vt_err ignored;
	if (silent_ms >= dead_ms)
		return -1;
	if (silent_ms >= interval_ms && (!c->pinged_ns || (now - c->pinged_ns) / 1000000 >= interval_ms) &&
	    !queue_empty(c, AGENT_MSG_PING, &ignored)) {
		c->pinged_ns = now;
		c->pings_out++;
	}
	uint64_t since = c->pinged_ns ? (now - c->pinged_ns) / 1000000 : silent_ms;
	uint64_t next = since < interval_ms ? interval_ms - since : interval_ms;
	uint64_t left = dead_ms - silent_ms;
	return (int)(next < left ? next : left);
}

int agent_send_stdin(struct agent_conn *c, unsigned proc, const void *buf, size_t len, vt_err *err)
{
	/* Split big writes: each frame is bounded. */
	const uint8_t *p = buf;
	do {
		size_t n = len > AGENT_MAX_PAYLOAD ? AGENT_MAX_PAYLOAD : len;
		if (queue_frame(c, AGENT_MSG_STDIN, proc, p, n, err))
			return -1;
		p += n;
		len -= n;
	} while (len);
	return 0;
}

static int queue_ints(struct agent_conn *c, uint16_t type, unsigned proc, const char *k1, int v1, const char *k2,
		      int v2, vt_err *err)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, k1, json_object_new_int(v1));
	if (k2)
		json_object_object_add(o, k2, json_object_new_int(v2));
	int rc = queue_json(c, type, proc, o, err);
	json_object_put(o);
	return rc;
}

int agent_send_signal(struct agent_conn *c, unsigned proc, int sig, vt_err *err)
{
	return queue_ints(c, AGENT_MSG_SIGNAL, proc, "signal", sig, NULL, 0, err);
}

int agent_send_resize(struct agent_conn *c, unsigned proc, unsigned short rows, unsigned short cols, vt_err *err)
{
	return queue_ints(c, AGENT_MSG_RESIZE, proc, "rows", rows, "cols", cols, err);
}

int agent_send_flow(struct agent_conn *c, unsigned proc, bool stop, vt_err *err)
{
	const char *body = stop ? "{\"stop\":true}" : "{\"stop\":false}";
	return queue_frame(c, AGENT_MSG_FLOW, proc, body, strlen(body), err);
}

static void ip_text(uint32_t addr, char out[INET_ADDRSTRLEN])
{
	struct in_addr a = { .s_addr = htonl(addr) };
	inet_ntop(AF_INET, &a, out, INET_ADDRSTRLEN);
}

int agent_send_net(struct agent_conn *c, const struct agent_net *net, vt_err *err)
{
	char addr[INET_ADDRSTRLEN], gw[INET_ADDRSTRLEN];
	if (net->prefix > 32 || !memchr(net->ifname, 0, sizeof(net->ifname)))
		return vt_fail(err, "agent: bad network settings");
	ip_text(net->addr, addr);
	ip_text(net->gateway, gw);
	json_object *o = json_object_new_object();
	json_object_object_add(o, "ifname", json_object_new_string(net->ifname));
	json_object_object_add(o, "addr", json_object_new_string(addr));
	json_object_object_add(o, "prefix", json_object_new_int((int)net->prefix));
	if (net->gateway)
		json_object_object_add(o, "gateway", json_object_new_string(gw));
	int rc = queue_json(c, AGENT_MSG_NET, AGENT_INIT_PROC, o, err);
	json_object_put(o);
	return rc;
}

/* ---------------- receiving ---------------- */

static int proto_error(struct agent_conn *c, vt_err *err, const char *what)
{
	c->closed = true;
	vt_fail(err, "agent protocol error: %s", what);
	err->errnum = EPROTO; /* the agent answered, wrongly: trying again cannot help */
	return -1;
}

/* An integer member of a JSON payload, within [min, max]. */
static bool int_member(json_object *o, const char *key, int min, int max, int *out)
{
	json_object *v;
	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
		return false;
	int64_t n = json_object_get_int64(v);
	if (n < min || n > max)
		return false;
	*out = (int)n;
	return true;
}

/* Printable ASCII only: the text may end up on the user's terminal. */
static void sanitise(char *out, size_t cap, const char *in)
{
	size_t i = 0;
	for (; in[i] && i + 1 < cap; i++)
		out[i] = isprint((unsigned char)in[i]) ? in[i] : '?';
	out[i] = 0;
}


static int control_event(struct agent_conn *c, const struct agent_hdr *h, const uint8_t *p,
			 struct agent_event *ev, vt_err *err)
{
	json_object *o = agent_parse_object(p, h->len);
	if (!o)
		return proto_error(c, err, "malformed JSON payload");
	int rc = 0;
	json_object *msg;
	switch (h->type) {
	case AGENT_MSG_CREATED:
	case AGENT_MSG_STARTED:
		ev->kind = h->type == AGENT_MSG_CREATED ? AGENT_EV_CREATED : AGENT_EV_STARTED;
		if (!int_member(o, "pid", 1, 0x3fffffff, &ev->pid))
			rc = proto_error(c, err, "bad pid");
		else
			c->known[h->proc] = PROC_LIVE;
		break;
	case AGENT_MSG_EXIT:
		ev->kind = AGENT_EV_EXIT;
		if (!int_member(o, "status", 0, 255, &ev->status))
			rc = proto_error(c, err, "bad exit status");
		else
			c->known[h->proc] = PROC_NONE;
		break;
	case AGENT_MSG_ERROR:
		ev->kind = AGENT_EV_ERROR;
		if (!json_object_object_get_ex(o, "message", &msg) || !json_object_is_type(msg, json_type_string))
			rc = proto_error(c, err, "error without a message");
		else
			sanitise(ev->text, sizeof(ev->text), json_object_get_string(msg));
		if (c->known[h->proc] == PROC_ASKED)
			c->known[h->proc] = PROC_NONE;
		break;
	default:
		rc = proto_error(c, err, "unexpected message type");
	}
	json_object_put(o);
	return rc;
}

/* One complete frame at c->rx: check it and turn it into *ev. */
static int frame_event(struct agent_conn *c, const struct agent_hdr *h, struct agent_event *ev, vt_err *err)
{
	const uint8_t *p = c->rx + AGENT_HDR_SIZE;
	ev->proc = h->proc;
	if (h->type == AGENT_MSG_HELLO)
		return proto_error(c, err, "a second hello");
	/* Errors may name a process the host never asked for (a refused request for a bad id): the rest may not. */
	if (h->type != AGENT_MSG_ERROR && !c->known[h->proc])
		return proto_error(c, err, "message for an unknown process");
	if (h->type == AGENT_MSG_STDOUT || h->type == AGENT_MSG_STDERR) {
		ev->kind = h->type == AGENT_MSG_STDOUT ? AGENT_EV_STDOUT : AGENT_EV_STDERR;
		ev->data = p;
		ev->len = h->len;
		return 0;
	}
	if (agent_msg_is_raw(h->type))
		return proto_error(c, err, "unexpected message type");
	return control_event(c, h, p, ev, err);
}

/* A complete frame in the buffer? -1 on a header that can never be valid. */
static int next_frame(struct agent_conn *c, struct agent_hdr *h, vt_err *err)
{
	if (c->rx_len < AGENT_HDR_SIZE)
		return 0;
	if (!agent_hdr_decode(c->rx, h))
		return proto_error(c, err, "frame too long or process id out of range");
	return c->rx_len >= AGENT_HDR_SIZE + h->len;
}

/* A pong is the heartbeat's business, not an event: an empty object for process 0, one per ping sent (so a
 * guest cannot keep the host busy with pongs it was not asked for). */
static int take_pong(struct agent_conn *c, const struct agent_hdr *h, vt_err *err)
{
	if (!c->pings_out)
		return proto_error(c, err, "a pong for no ping");
	json_object *o = agent_parse_object(c->rx + AGENT_HDR_SIZE, h->len);
	bool ok = o && h->proc == AGENT_INIT_PROC;
	json_object_put(o);
	c->pinged_ns = 0;
	c->pings_out--;
	return ok ? 0 : proto_error(c, err, "bad pong");
}

int agent_recv(struct agent_conn *c, struct agent_event *ev, vt_err *err)
{
	memset(ev, 0, sizeof(*ev));
	if (c->closed)
		return vt_fail(err, "agent: connection unusable");
	for (;;) {
		if (c->rx_used) {
			memmove(c->rx, c->rx + c->rx_used, c->rx_len - c->rx_used);
			c->rx_len -= c->rx_used;
			c->rx_used = 0;
		}
		struct agent_hdr h;
		int have = next_frame(c, &h, err);
		if (have == 0 && c->rx_len < RX_CAP) {
			ssize_t n = recv(c->fd, c->rx + c->rx_len, RX_CAP - c->rx_len, MSG_DONTWAIT);
			if (n < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
				return vt_fail_errno(err, errno, "agent: receiving");
			if (n == 0) {
				if (c->rx_len)
					return proto_error(c, err, "connection closed inside a frame");
				ev->kind = AGENT_EV_CLOSED;
				c->closed = true;
				return 0;
			}
			if (n > 0) {
				c->rx_len += (size_t)n;
				c->heard_ns = now_ns();
			}
			have = next_frame(c, &h, err);
		}
		if (have <= 0) {
			ev->kind = AGENT_EV_NONE;
			return have;
		}
		c->rx_used = AGENT_HDR_SIZE + h.len;
		if (h.type != AGENT_MSG_PONG)
			return frame_event(c, &h, ev, err);
		if (take_pong(c, &h, err))
			return -1;
	}
}

/* ---------------- connecting ---------------- */

static int remaining_ms(uint64_t deadline)
{
	uint64_t now = now_ns();
	return now >= deadline ? 0 : (int)((deadline - now) / 1000000);
}

/* The agent's hello: the first frame, with our version. */
static int await_hello(struct agent_conn *c, uint64_t deadline, vt_err *err)
{
	for (;;) {
		struct agent_hdr h;
		int have = next_frame(c, &h, err);
		if (have < 0)
			return -1;
		if (have) {
			int version;
			json_object *o = h.type == AGENT_MSG_HELLO ? agent_parse_object(c->rx + AGENT_HDR_SIZE, h.len) : NULL;
			bool ok = o && int_member(o, "version", 0, 65535, &version);
			json_object_put(o);
			if (!ok)
				return proto_error(c, err, "bad hello");
			if (version != AGENT_PROTO_VERSION) {
				vt_fail(err, "agent speaks protocol version %d, we speak %d (the guest's agent and virtus "
					"come from different builds: rebuild the guest, guest/build)", version,
					AGENT_PROTO_VERSION);
				err->errnum = EPROTO;
				return -1;
			}
			c->rx_used = AGENT_HDR_SIZE + h.len;
			return 0;
		}
		struct pollfd p = { .fd = c->fd, .events = POLLIN | (c->tx_len ? POLLOUT : 0) };
		int ms = remaining_ms(deadline);
		if (!ms)
			return vt_fail(err, "agent: no hello before the timeout");
		if (poll(&p, 1, ms) < 0 && errno != EINTR)
			return vt_fail_errno(err, errno, "agent: poll");
		if (agent_flush(c, err))
			return -1;
		ssize_t n = recv(c->fd, c->rx + c->rx_len, RX_CAP - c->rx_len, MSG_DONTWAIT);
		if (n == 0)
			return vt_fail(err, "agent: connection closed during the handshake");
		if (n < 0 && errno != EINTR && errno != EAGAIN)
			return vt_fail_errno(err, errno, "agent: receiving");
		if (n > 0)
			c->rx_len += (size_t)n;
	}
}

static int new_conn(int fd, struct agent_conn **out, vt_err *err)
{
	struct agent_conn *c = calloc(1, sizeof(*c));
	if (!c || !(c->rx = malloc(RX_CAP))) {
		free(c);
		close(fd);
		return vt_fail_errno(err, ENOMEM, "agent");
	}
	c->fd = fd;
	c->heard_ns = now_ns();
	*out = c;
	return 0;
}

int agent_connect_fd(int fd, int timeout_ms, struct agent_conn **out, vt_err *err)
{
	struct agent_conn *c = NULL;
	*out = NULL;
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK)) {
		int e = errno;
		close(fd);
		return vt_fail_errno(err, e, "agent: socket");
	}
	if (new_conn(fd, &c, err))
		return -1;
	uint64_t deadline = now_ns() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms) * 1000000;
	json_object *hello = json_object_new_object();
	json_object_object_add(hello, "version", json_object_new_int(AGENT_PROTO_VERSION));
	int rc = queue_json(c, AGENT_MSG_HELLO, AGENT_INIT_PROC, hello, err);
	json_object_put(hello);
	if (rc || agent_flush(c, err) || await_hello(c, deadline, err)) {
		agent_close(c);
		return vt_err_prefix(err, "agent handshake");
	}
	*out = c;
	return 0;
}

/* Read the VMM's one-line answer byte by byte: what follows it belongs to the agent. */
static int vsock_answer(int fd, uint64_t deadline, vt_err *err)
{
	char line[32];
	size_t n = 0;
	while (n < sizeof(line) - 1) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int ms = remaining_ms(deadline);
		if (!ms || poll(&p, 1, ms) <= 0)
			return vt_fail(err, "vsock: no answer to CONNECT");
		ssize_t r = read(fd, line + n, 1);
		if (r <= 0)
			return vt_fail(err, "vsock: connection refused");
		if (line[n] == '\n') {
			line[n] = 0;
			return strncmp(line, "OK ", 3) ? vt_fail(err, "vsock: unexpected answer") : 0;
		}
		n++;
	}
	return vt_fail(err, "vsock: answer too long");
}

static int vsock_try(const char *path, unsigned port, uint64_t deadline, int *out, vt_err *err)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(a.sun_path))
		return vt_fail(err, "vsock socket path too long: %s", path);
	strcpy(a.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return vt_fail_errno(err, errno, "socket");
	char cmd[32];
	int len = snprintf(cmd, sizeof(cmd), "CONNECT %u\n", port);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)))
		vt_fail_errno(err, errno, "vsock: connecting to %s", path);
	else if (write_all(fd, cmd, (size_t)len))
		vt_fail_errno(err, errno, "vsock: CONNECT");
	else if (!vsock_answer(fd, deadline, err)) {
		*out = fd;
		return 0;
	}
	close(fd);
	return -1;
}

int agent_connect_vsock(const char *vsock_path, unsigned port, int timeout_ms, struct agent_conn **out,
			vt_err *err)
{
	uint64_t deadline = now_ns() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms) * 1000000;
	int fd = -1;
	/* The guest may still be booting: retry until it listens. A REQUEST the guest's vsock driver never saw
	 * (not loaded yet) gets no answer at all, so one attempt waits at most a second. */
	for (;;) {
		uint64_t attempt = now_ns() + 1000000000ull;
		if (!vsock_try(vsock_path, port, attempt < deadline ? attempt : deadline, &fd, err))
			break;
		if (!remaining_ms(deadline))
			return vt_err_prefix(err, "agent not reachable");
		struct timespec ts = { 0, 50 * 1000000 };
		nanosleep(&ts, NULL);
	}
	return agent_connect_fd(fd, remaining_ms(deadline) + 1, out, err);
}

/* libFuzzer target for the host client of the agent protocol (src/isolation/agent.c): the bytes are what a
 * hostile guest sends after a valid hello. The first byte picks which process ids the host asked for (so
 * messages for known and unknown processes are both reached); the rest is the stream. Every event must be
 * well-formed (data within the input, status and pid in range) and every error must say why; never a crash,
 * leak or undefined behaviour. Build and run: tests/fuzz/run-fuzz-agent-proto.sh [seconds]. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "isolation/agent.h"
#include "isolation/agent_proto.h"
#include "lib/util.h"

volatile uint8_t fuzz_sink; /* the bytes of every event are read into this */

#define STR_(x) #x
#define STR(x) STR_(x)

static void put_hello(int fd)
{
	static const char hello[] = "{\"version\":" STR(AGENT_PROTO_VERSION) "}";
	uint8_t hdr[AGENT_HDR_SIZE];
	struct agent_hdr h = { .len = sizeof(hello) - 1, .type = AGENT_MSG_HELLO };
	agent_hdr_encode(hdr, &h);
	if (write_all(fd, hdr, sizeof(hdr)) || write_all(fd, hello, h.len))
		abort();
}

static void ask_for(struct agent_conn *c, uint8_t mask)
{
	vt_err err;
	struct agent_stdio io = { 0 };
	json_object *spec = json_object_new_object();
	if (mask & 1)
		agent_send_create(c, spec, &io, &err);
	for (unsigned i = 1; i < 8; i++)
		if (mask & (1u << i))
			agent_send_exec(c, i, spec, &io, &err);
	json_object_put(spec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int sv[2];
	if (size < 1 || size > 200000 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return 0;
	int buf = 1 << 20;
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	put_hello(sv[1]);
	struct agent_conn *c;
	vt_err err = { 0 };
	if (agent_connect_fd(sv[0], 1000, &c, &err))
		abort(); /* a valid hello always connects */
	ask_for(c, data[0]);
	if (write_all(sv[1], data + 1, size - 1))
		abort();
	close(sv[1]);
	for (;;) {
		struct agent_event ev;
		err.msg[0] = 0;
		if (agent_recv(c, &ev, &err)) {
			if (!err.msg[0])
				abort();
			break;
		}
		if (ev.kind == AGENT_EV_CLOSED)
			break;
		if (ev.proc >= AGENT_MAX_PROCS || ev.status < 0 || ev.status > 255 || ev.pid < 0 ||
		    ev.len > AGENT_MAX_PAYLOAD || strnlen(ev.text, sizeof(ev.text)) == sizeof(ev.text))
			abort();
		for (size_t i = 0; i < ev.len; i++) /* touch every byte: ASan checks they are in the buffer */
			fuzz_sink ^= ev.data[i];
	}
	agent_close(c);
	return 0;
}

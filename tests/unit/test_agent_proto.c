/* The host client of the agent protocol (src/isolation/agent.c) against a fake agent on a socketpair: the
 * handshake, the frames it sends, the events it returns, and malformed input from the guest (short or
 * oversize frames, unknown types, bad JSON, messages for processes never asked for) -> an error, never a
 * crash or an event built from garbage. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "isolation/agent.h"
#include "isolation/agent_proto.h"
#include "lib/util.h"

#define STR_(x) #x
#define STR(x) STR_(x)
#define HELLO_JSON "{\"version\":" STR(AGENT_PROTO_VERSION) "}"

struct fixture {
	struct agent_conn *c;
	int peer;  /* the fake agent's end */
};

static void put_frame(int fd, uint16_t type, uint16_t proc, const void *data, size_t len)
{
	uint8_t hdr[AGENT_HDR_SIZE];
	struct agent_hdr h = { .len = (uint32_t)len, .type = type, .proc = proc };
	agent_hdr_encode(hdr, &h);
	assert_int_equal(write_all(fd, hdr, sizeof(hdr)), 0);
	if (len)
		assert_int_equal(write_all(fd, data, len), 0);
}

static void put_json(int fd, uint16_t type, uint16_t proc, const char *json)
{
	put_frame(fd, type, proc, json, strlen(json));
}

/* One frame the client sent: its header and payload (NUL-terminated). */
static void get_frame(int fd, struct agent_hdr *h, char *payload, size_t cap)
{
	uint8_t hdr[AGENT_HDR_SIZE];
	assert_int_equal(recv(fd, hdr, sizeof(hdr), MSG_WAITALL), (ssize_t)sizeof(hdr));
	assert_true(agent_hdr_decode(hdr, h));
	assert_true(h->len < cap);
	if (h->len)
		assert_int_equal(recv(fd, payload, h->len, MSG_WAITALL), (ssize_t)h->len);
	payload[h->len] = 0;
}

static int setup(void **state)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	put_json(sv[1], AGENT_MSG_HELLO, 0, HELLO_JSON);
	struct fixture *f = calloc(1, sizeof(*f));
	vt_err err = { 0 };
	assert_int_equal(agent_connect_fd(sv[0], 2000, &f->c, &err), 0);
	f->peer = sv[1];
	struct agent_hdr h;
	char p[64];
	get_frame(f->peer, &h, p, sizeof(p));
	assert_int_equal(h.type, AGENT_MSG_HELLO);
	assert_string_equal(p, HELLO_JSON);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	agent_close(f->c);
	close(f->peer);
	free(f);
	return 0;
}

static int recv_one(struct fixture *f, struct agent_event *ev, vt_err *err)
{
	return agent_recv(f->c, ev, err);
}

/* Ask for process 0 (so messages for it are expected), flushing the create to the peer. */
static void create_init(struct fixture *f)
{
	vt_err err;
	struct agent_stdio io = { .tty = true, .rows = 24, .cols = 80 };
	json_object *spec = json_tokener_parse("{\"process\":{\"args\":[\"sh\"]}}");
	assert_int_equal(agent_send_create(f->c, spec, &io, &err), 0);
	json_object_put(spec);
	assert_int_equal(agent_flush(f->c, &err), 0);
	assert_false(agent_pending(f->c));
	struct agent_hdr h;
	char p[512];
	get_frame(f->peer, &h, p, sizeof(p));
	assert_int_equal(h.type, AGENT_MSG_CREATE);
	assert_int_equal(h.proc, 0);
	json_object *o = json_tokener_parse(p), *stdio, *v;
	assert_non_null(o);
	assert_true(json_object_object_get_ex(o, "stdio", &stdio));
	assert_true(json_object_object_get_ex(stdio, "rows", &v));
	assert_int_equal(json_object_get_int(v), 24);
	assert_true(json_object_object_get_ex(o, "spec", &v));
	json_object_put(o);
}

static void expect_error(struct fixture *f, const char *what)
{
	struct agent_event ev;
	vt_err err = { 0 };
	assert_int_equal(recv_one(f, &ev, &err), -1);
	if (!strstr(err.msg, what))
		fail_msg("error '%s' does not mention '%s'", err.msg, what);
	/* and the connection stays unusable */
	assert_int_equal(recv_one(f, &ev, &err), -1);
}

static void test_events_in_order(void **state)
{
	struct fixture *f = *state;
	struct agent_event ev;
	vt_err err;
	create_init(f);
	put_json(f->peer, AGENT_MSG_CREATED, 0, "{\"pid\":42}");
	put_frame(f->peer, AGENT_MSG_STDOUT, 0, "hi\n", 3);
	put_json(f->peer, AGENT_MSG_EXIT, 0, "{\"status\":143}");
	assert_int_equal(recv_one(f, &ev, &err), 0);
	assert_int_equal(ev.kind, AGENT_EV_CREATED);
	assert_int_equal(ev.pid, 42);
	/* one event per call, even when more are buffered */
	assert_int_equal(recv_one(f, &ev, &err), 0);
	assert_int_equal(ev.kind, AGENT_EV_STDOUT);
	assert_int_equal(ev.len, 3);
	assert_memory_equal(ev.data, "hi\n", 3);
	assert_int_equal(recv_one(f, &ev, &err), 0);
	assert_int_equal(ev.kind, AGENT_EV_EXIT);
	assert_int_equal(ev.status, 143);
	assert_int_equal(recv_one(f, &ev, &err), 0);
	assert_int_equal(ev.kind, AGENT_EV_NONE);
	/* after its exit, process 0 is unknown again */
	put_frame(f->peer, AGENT_MSG_STDOUT, 0, "x", 1);
	expect_error(f, "unknown process");
}

static void test_frame_split_byte_by_byte(void **state)
{
	struct fixture *f = *state;
	struct agent_event ev;
	vt_err err;
	create_init(f);
	const char *json = "{\"pid\":7}";
	uint8_t buf[64];
	struct agent_hdr h = { .len = (uint32_t)strlen(json), .type = AGENT_MSG_STARTED, .proc = 0 };
	agent_hdr_encode(buf, &h);
	memcpy(buf + AGENT_HDR_SIZE, json, h.len);
	for (size_t i = 0; i < AGENT_HDR_SIZE + h.len; i++) {
		assert_int_equal(recv_one(f, &ev, &err), 0);
		assert_int_equal(ev.kind, AGENT_EV_NONE);
		assert_int_equal(write(f->peer, buf + i, 1), 1);
	}
	assert_int_equal(recv_one(f, &ev, &err), 0);
	assert_int_equal(ev.kind, AGENT_EV_STARTED);
	assert_int_equal(ev.pid, 7);
}

static void test_short_header_then_close(void **state)
{
	struct fixture *f = *state;
	struct agent_event ev;
	vt_err err;
	assert_int_equal(write(f->peer, "\x05\x00\x00", 3), 3);
	assert_int_equal(recv_one(f, &ev, &err), 0);
	assert_int_equal(ev.kind, AGENT_EV_NONE);
	close(f->peer);
	f->peer = -1;
	expect_error(f, "inside a frame");
}

static void test_clean_close(void **state)
{
	struct fixture *f = *state;
	struct agent_event ev;
	vt_err err;
	close(f->peer);
	f->peer = -1;
	assert_int_equal(recv_one(f, &ev, &err), 0);
	assert_int_equal(ev.kind, AGENT_EV_CLOSED);
}

static void test_oversize_length(void **state)
{
	struct fixture *f = *state;
	uint8_t hdr[AGENT_HDR_SIZE];
	struct agent_hdr h = { .len = AGENT_MAX_PAYLOAD + 1, .type = AGENT_MSG_STDOUT, .proc = 0 };
	create_init(f);
	agent_hdr_encode(hdr, &h);
	assert_int_equal(write_all(f->peer, hdr, sizeof(hdr)), 0);
	expect_error(f, "too long");
}

static void test_proc_id_out_of_range(void **state)
{
	struct fixture *f = *state;
	put_json(f->peer, AGENT_MSG_EXIT, AGENT_MAX_PROCS, "{\"status\":0}");
	expect_error(f, "out of range");
}

static void test_unknown_type(void **state)
{
	struct fixture *f = *state;
	create_init(f);
	put_json(f->peer, 999, 0, "{}");
	expect_error(f, "unexpected message type");
}

static void test_host_only_type_from_guest(void **state)
{
	struct fixture *f = *state;
	create_init(f);
	put_frame(f->peer, AGENT_MSG_STDIN, 0, "x", 1);
	expect_error(f, "unexpected message type");
}

static void test_bad_json(void **state)
{
	struct fixture *f = *state;
	create_init(f);
	put_json(f->peer, AGENT_MSG_EXIT, 0, "{\"status\":");
	expect_error(f, "malformed JSON");
}

static void test_json_trailing_garbage(void **state)
{
	struct fixture *f = *state;
	create_init(f);
	put_json(f->peer, AGENT_MSG_EXIT, 0, "{\"status\":0}xyz");
	expect_error(f, "malformed JSON");
}

static void test_json_not_an_object(void **state)
{
	struct fixture *f = *state;
	create_init(f);
	put_json(f->peer, AGENT_MSG_EXIT, 0, "[1,2]");
	expect_error(f, "malformed JSON");
}

static void test_json_nul_inside(void **state)
{
	struct fixture *f = *state;
	create_init(f);
	put_frame(f->peer, AGENT_MSG_EXIT, 0, "{\"status\":0}\0", 13);
	expect_error(f, "malformed JSON");
}

static void test_exit_status_out_of_range(void **state)
{
	struct fixture *f = *state;
	create_init(f);
	put_json(f->peer, AGENT_MSG_EXIT, 0, "{\"status\":256}");
	expect_error(f, "exit status");
}

static void test_pid_wrong_type(void **state)
{
	struct fixture *f = *state;
	create_init(f);
	put_json(f->peer, AGENT_MSG_CREATED, 0, "{\"pid\":\"42\"}");
	expect_error(f, "bad pid");
}

static void test_data_for_unknown_process(void **state)
{
	struct fixture *f = *state;
	create_init(f);
	put_frame(f->peer, AGENT_MSG_STDERR, 3, "x", 1);
	expect_error(f, "unknown process");
}

/* Queue n pings (one per heartbeat interval of 1 ms) and take them off the peer's side. */
static void ping(struct fixture *f, int n)
{
	vt_err err;
	for (int i = 0; i < n; i++) {
		usleep(3000);
		assert_true(agent_heartbeat(f->c, 1, 60000) >= 0);
		assert_int_equal(agent_flush(f->c, &err), 0);
		struct agent_hdr h;
		char p[64];
		get_frame(f->peer, &h, p, sizeof(p));
		assert_int_equal(h.type, AGENT_MSG_PING);
	}
}

/* Pongs are the heartbeat's: consumed between events (never one themselves), one per ping, and only {} for
 * process 0. */
static void test_pong_is_not_an_event(void **state)
{
	struct fixture *f = *state;
	struct agent_event ev;
	vt_err err;
	create_init(f);
	ping(f, 3);
	put_json(f->peer, AGENT_MSG_PONG, 0, "{}");
	put_json(f->peer, AGENT_MSG_CREATED, 0, "{\"pid\":42}");
	put_json(f->peer, AGENT_MSG_PONG, 0, "{}");
	assert_int_equal(recv_one(f, &ev, &err), 0);
	assert_int_equal(ev.kind, AGENT_EV_CREATED);
	assert_int_equal(recv_one(f, &ev, &err), 0);
	assert_int_equal(ev.kind, AGENT_EV_NONE);
	put_json(f->peer, AGENT_MSG_PONG, 3, "{}");
	expect_error(f, "bad pong");
}

static void test_unasked_pong(void **state)
{
	struct fixture *f = *state;
	ping(f, 1);
	put_json(f->peer, AGENT_MSG_PONG, 0, "{}");
	put_json(f->peer, AGENT_MSG_PONG, 0, "{}");
	struct agent_event ev;
	vt_err err;
	assert_int_equal(recv_one(f, &ev, &err), -1);
	assert_non_null(strstr(err.msg, "a pong for no ping"));
}

/* A silent agent is pinged after the interval and dead after the limit; anything it sends starts over. */
static void test_heartbeat(void **state)
{
	struct fixture *f = *state;
	struct agent_event ev;
	struct agent_hdr h;
	char p[64];
	vt_err err;
	int next = agent_heartbeat(f->c, 100, 400);
	assert_true(next > 0 && next <= 100);
	assert_false(agent_pending(f->c));          /* just heard the hello: no ping yet */
	usleep(120000);
	assert_true(agent_heartbeat(f->c, 100, 400) > 0);
	assert_true(agent_pending(f->c));
	assert_int_equal(agent_flush(f->c, &err), 0);
	get_frame(f->peer, &h, p, sizeof(p));
	assert_int_equal(h.type, AGENT_MSG_PING);
	assert_string_equal(p, "{}");
	put_json(f->peer, AGENT_MSG_PONG, 0, "{}");
	assert_int_equal(recv_one(f, &ev, &err), 0);
	assert_int_equal(ev.kind, AGENT_EV_NONE);
	assert_true(agent_heartbeat(f->c, 100, 400) > 0); /* the pong reset the silence */
	assert_false(agent_pending(f->c));
	usleep(420000);                                  /* no answer at all: dead */
	assert_int_equal(agent_heartbeat(f->c, 100, 400), -1);
	agent_heartbeat_reset(f->c);                     /* a pause on purpose starts it over */
	assert_true(agent_heartbeat(f->c, 100, 400) > 0);
}

static void test_second_hello(void **state)
{
	struct fixture *f = *state;
	put_json(f->peer, AGENT_MSG_HELLO, 0, HELLO_JSON);
	expect_error(f, "hello");
}

static void test_error_text_sanitised(void **state)
{
	struct fixture *f = *state;
	struct agent_event ev;
	vt_err err;
	put_json(f->peer, AGENT_MSG_ERROR, 5, "{\"message\":\"bad \\u001b[31mred\\n\"}");
	assert_int_equal(recv_one(f, &ev, &err), 0);
	assert_int_equal(ev.kind, AGENT_EV_ERROR);
	assert_int_equal(ev.proc, 5);
	assert_string_equal(ev.text, "bad ?[31mred?");
	/* a long message is cut to the buffer */
	char big[2048] = "{\"message\":\"";
	memset(big + strlen(big), 'a', 1500);
	strcpy(big + 12 + 1500, "\"}");
	put_json(f->peer, AGENT_MSG_ERROR, 0, big);
	assert_int_equal(recv_one(f, &ev, &err), 0);
	assert_int_equal(strlen(ev.text), sizeof(ev.text) - 1);
}

static void test_refused_create_frees_the_id(void **state)
{
	struct fixture *f = *state;
	struct agent_event ev;
	vt_err err;
	create_init(f);
	put_json(f->peer, AGENT_MSG_ERROR, 0, "{\"message\":\"no\"}");
	assert_int_equal(recv_one(f, &ev, &err), 0);
	assert_int_equal(ev.kind, AGENT_EV_ERROR);
	create_init(f); /* asserts the second create is accepted */
	put_frame(f->peer, AGENT_MSG_STDOUT, 1, "x", 1);
	expect_error(f, "unknown process");
}

static void test_sends(void **state)
{
	struct fixture *f = *state;
	vt_err err;
	struct agent_hdr h;
	char p[256];
	assert_int_equal(agent_send_stdin(f->c, 2, "abc", 3, &err), 0);
	assert_int_equal(agent_send_stdin(f->c, 2, NULL, 0, &err), 0);
	assert_int_equal(agent_send_signal(f->c, 2, 15, &err), 0);
	assert_int_equal(agent_send_resize(f->c, 2, 50, 132, &err), 0);
	struct agent_net net = { .ifname = "eth0", .addr = 0x0a000002, .prefix = 24, .gateway = 0x0a000001 };
	assert_int_equal(agent_send_net(f->c, &net, &err), 0);
	assert_int_equal(agent_send_shutdown(f->c, &err), 0);
	assert_int_equal(agent_flush(f->c, &err), 0);
	get_frame(f->peer, &h, p, sizeof(p));
	assert_int_equal(h.type, AGENT_MSG_STDIN);
	assert_int_equal(h.proc, 2);
	assert_string_equal(p, "abc");
	get_frame(f->peer, &h, p, sizeof(p));
	assert_int_equal(h.type, AGENT_MSG_STDIN);
	assert_int_equal(h.len, 0);
	get_frame(f->peer, &h, p, sizeof(p));
	assert_int_equal(h.type, AGENT_MSG_SIGNAL);
	assert_string_equal(p, "{\"signal\":15}");
	get_frame(f->peer, &h, p, sizeof(p));
	assert_int_equal(h.type, AGENT_MSG_RESIZE);
	assert_string_equal(p, "{\"rows\":50,\"cols\":132}");
	get_frame(f->peer, &h, p, sizeof(p));
	assert_int_equal(h.type, AGENT_MSG_NET);
	assert_string_equal(p, "{\"ifname\":\"eth0\",\"addr\":\"10.0.0.2\",\"prefix\":24,\"gateway\":\"10.0.0.1\"}");
	get_frame(f->peer, &h, p, sizeof(p));
	assert_int_equal(h.type, AGENT_MSG_SHUTDOWN);
	/* out-of-range ids are refused before anything is queued */
	assert_int_equal(agent_send_signal(f->c, AGENT_MAX_PROCS, 9, &err), -1);
	assert_false(agent_pending(f->c));
}

static void test_handshake_refusals(void **state)
{
	(void)state;
	static const char *const hellos[] = { "{\"version\":1}", "{}", "nonsense", "{\"version\":\"1\"}" };
	for (size_t i = 0; i < ARRAY_SIZE(hellos); i++) {
		int sv[2];
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
		put_json(sv[1], AGENT_MSG_HELLO, 0, hellos[i]);
		struct agent_conn *c = (struct agent_conn *)1;
		vt_err err = { 0 };
		assert_int_equal(agent_connect_fd(sv[0], 1000, &c, &err), -1);
		assert_null(c);
		assert_true(strlen(err.msg) > 0);
		assert_int_equal(err.errnum, EPROTO); /* an answer, but a wrong one: not worth retrying */
		close(sv[1]);
	}
	/* silence: the timeout, not a hang */
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	struct agent_conn *c;
	vt_err err = { 0 };
	assert_int_equal(agent_connect_fd(sv[0], 200, &c, &err), -1);
	assert_non_null(strstr(err.msg, "timeout"));
	assert_int_not_equal(err.errnum, EPROTO);
	close(sv[1]);
}

/* A fake VMM vsock socket: the first CONNECT is refused (closed: the guest is not listening yet), the second
 * answered with "OK" and, in the same write, the agent's hello: the client must not eat past the line. */
static void fake_vmm(int ls)
{
	char line[64];
	for (int round = 0; round < 2; round++) {
		int c = accept(ls, NULL, NULL);
		ssize_t n = c < 0 ? -1 : read(c, line, sizeof(line) - 1);
		if (n <= 0)
			_exit(2);
		line[n] = 0;
		if (strcmp(line, "CONNECT 1024\n"))
			_exit(3);
		if (round == 0) {
			close(c);
			continue;
		}
		static const char hello[] = HELLO_JSON;
		uint8_t buf[64] = "OK 1024\n";
		struct agent_hdr h = { .len = sizeof(hello) - 1, .type = AGENT_MSG_HELLO };
		agent_hdr_encode(buf + 8, &h);
		memcpy(buf + 8 + AGENT_HDR_SIZE, hello, h.len);
		if (write_all(c, buf, 8 + AGENT_HDR_SIZE + h.len))
			_exit(4);
		uint8_t hdr[AGENT_HDR_SIZE];
		struct agent_hdr got;
		if (recv(c, hdr, sizeof(hdr), MSG_WAITALL) != sizeof(hdr) || !agent_hdr_decode(hdr, &got) ||
		    got.type != AGENT_MSG_HELLO)
			_exit(5);
		_exit(0);
	}
	_exit(6);
}

static void test_connect_vsock(void **state)
{
	(void)state;
	char dir[] = "/tmp/vt-agent-test.XXXXXX";
	assert_non_null(mkdtemp(dir));
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "%s/vsock", dir);
	vt_err err = { 0 };
	struct agent_conn *c = NULL;
	/* nobody there: an error within the timeout */
	assert_int_equal(agent_connect_vsock(a.sun_path, AGENT_VSOCK_PORT, 300, &c, &err), -1);
	assert_non_null(strstr(err.msg, "not reachable"));
	int ls = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(ls, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(ls, 4), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		fake_vmm(ls);
	close(ls);
	int rc = agent_connect_vsock(a.sun_path, AGENT_VSOCK_PORT, 5000, &c, &err);
	if (rc)
		fail_msg("connect: %s", err.msg);
	int ws;
	assert_int_equal(waitpid(pid, &ws, 0), pid);
	assert_true(WIFEXITED(ws));
	assert_int_equal(WEXITSTATUS(ws), 0);
	agent_close(c);
	unlink(a.sun_path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_events_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_frame_split_byte_by_byte, setup, teardown),
		cmocka_unit_test_setup_teardown(test_short_header_then_close, setup, teardown),
		cmocka_unit_test_setup_teardown(test_clean_close, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oversize_length, setup, teardown),
		cmocka_unit_test_setup_teardown(test_proc_id_out_of_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_type, setup, teardown),
		cmocka_unit_test_setup_teardown(test_host_only_type_from_guest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_json, setup, teardown),
		cmocka_unit_test_setup_teardown(test_json_trailing_garbage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_json_not_an_object, setup, teardown),
		cmocka_unit_test_setup_teardown(test_json_nul_inside, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exit_status_out_of_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pid_wrong_type, setup, teardown),
		cmocka_unit_test_setup_teardown(test_data_for_unknown_process, setup, teardown),
		cmocka_unit_test_setup_teardown(test_second_hello, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pong_is_not_an_event, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unasked_pong, setup, teardown),
		cmocka_unit_test_setup_teardown(test_heartbeat, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_text_sanitised, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused_create_frees_the_id, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sends, setup, teardown),
		cmocka_unit_test(test_handshake_refusals),
		cmocka_unit_test(test_connect_vsock),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

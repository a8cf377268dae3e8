/* The VM API's HTTP transport (src/api/http.h): the libmicrohttpd server on a Unix socket, driven by a
 * thread that loops poll + dispatch as the VMM's main loop will, checked with api_call and with raw bytes on
 * the socket (sizes, content types, the replies the server makes itself, a half-sent request that must not
 * hold up another client, stale and live socket files); and the client against a fake raw server whose
 * malformed, over-long, cut-short or missing answers must be errors, never a crash or a hang. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "api/http.h"
#include "lib/util.h"

#define CALL_TIMEOUT_MS 3000

/* What the handler saw, written on the serving thread. */
struct recorder {
	pthread_mutex_t lock;
	int calls;
	char method[16];
	char path[256];
	char *body;
	size_t body_len;
	bool body_terminated;
};

struct fixture {
	char dir[64];
	char sock[128];
	struct api_server *srv;
	struct recorder rec;
	pthread_t loop;
	atomic_bool stop;
	int wake;                 /* eventfd: ends the serving thread's poll */
};

static void handler(void *opaque, const struct api_request *req, struct api_reply *reply)
{
	struct recorder *r = opaque;
	pthread_mutex_lock(&r->lock);
	r->calls++;
	snprintf(r->method, sizeof(r->method), "%s", req->method);
	snprintf(r->path, sizeof(r->path), "%s", req->path);
	free(r->body);
	r->body = malloc(req->body_len + 1);
	memcpy(r->body, req->body, req->body_len + 1);
	r->body_len = req->body_len;
	r->body_terminated = req->body[req->body_len] == '\0';
	pthread_mutex_unlock(&r->lock);

	if (!strcmp(req->path, "/empty")) {
		reply->status = 204;
		reply->body = strdup("{\"dropped\": true}"); /* 204: the server must not send it */
	} else if (!strcmp(req->path, "/bad-status")) {
		reply->status = 42;
	} else {
		reply->status = 200;
		assert_true(asprintf(&reply->body, "{\"method\": \"%s\", \"path\": \"%s\", \"length\": %zu}",
				     req->method, req->path, req->body_len) > 0);
	}
}

static int calls(struct fixture *f)
{
	pthread_mutex_lock(&f->rec.lock);
	int n = f->rec.calls;
	pthread_mutex_unlock(&f->rec.lock);
	return n;
}

/* The VMM's main loop in miniature: poll MHD's fd with exactly MHD's timeout (-1: none), then dispatch. A
 * loop that woke up on its own every few ms would hide a server that forgets to ask for a wake-up. */
static void *serve(void *arg)
{
	struct fixture *f = arg;
	while (!atomic_load(&f->stop)) {
		struct pollfd p[2] = { { .fd = api_server_poll_fd(f->srv), .events = POLLIN },
				       { .fd = f->wake, .events = POLLIN } };
		poll(p, 2, api_server_timeout_ms(f->srv));
		api_server_dispatch(f->srv);
	}
	return NULL;
}

static void start_loop(struct fixture *f)
{
	atomic_store(&f->stop, false);
	f->wake = eventfd(0, EFD_CLOEXEC);
	assert_true(f->wake >= 0);
	assert_int_equal(pthread_create(&f->loop, NULL, serve, f), 0);
}

static void stop_loop(struct fixture *f)
{
	atomic_store(&f->stop, true);
	uint64_t one = 1;
	assert_int_equal(write(f->wake, &one, sizeof(one)), (ssize_t)sizeof(one));
	pthread_join(f->loop, NULL);
	close(f->wake);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	strcpy(f->dir, "/tmp/virtus-api-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->sock, sizeof(f->sock), "%s/api.sock", f->dir);
	pthread_mutex_init(&f->rec.lock, NULL);
	vt_err err = { 0 };
	int rc = api_server_start(f->sock, handler, &f->rec, &f->srv, &err);
	if (rc)
		fprintf(stderr, "api_server_start: %s\n", err.msg);
	assert_int_equal(rc, 0);
	start_loop(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	stop_loop(f);
	api_server_stop(f->srv);
	unlink(f->sock);
	rmdir(f->dir);
	free(f->rec.body);
	pthread_mutex_destroy(&f->rec.lock);
	free(f);
	return 0;
}

/* ---- raw sockets -------------------------------------------------------------------------------------- */

static int raw_connect(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return fd;
}

/* Write what the server takes (it may close early, EPIPE is fine), then read to EOF (3 s at most). */
static size_t raw_exchange(const char *path, const char *req, size_t req_len, char *out, size_t cap)
{
	int fd = raw_connect(path);
	for (size_t done = 0; done < req_len;) {
		ssize_t n = send(fd, req + done, req_len - done, MSG_NOSIGNAL);
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	size_t got = 0;
	uint64_t deadline = now_ns() + 3000000000ULL;
	while (got < cap - 1 && now_ns() < deadline) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 100) <= 0)
			continue;
		ssize_t n = recv(fd, out + got, cap - 1 - got, 0);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	out[got] = '\0';
	close(fd);
	return got;
}

static const char *body_of(const char *response)
{
	const char *b = strstr(response, "\r\n\r\n");
	assert_non_null(b);
	return b + 4;
}

/* ---- the server --------------------------------------------------------------------------------------- */

static void get_returns_handler_json(void **state)
{
	struct fixture *f = *state;
	int status = 0;
	char *reply = NULL;
	vt_err err = { 0 };
	assert_int_equal(api_call(f->sock, "GET", "/vm/config", NULL, CALL_TIMEOUT_MS, &status, &reply, &err), 0);
	assert_int_equal(status, 200);
	assert_string_equal(reply, "{\"method\": \"GET\", \"path\": \"/vm/config\", \"length\": 0}");
	free(reply);
	assert_int_equal(calls(f), 1);
	assert_string_equal(f->rec.method, "GET");
	assert_string_equal(f->rec.body, "");
	assert_true(f->rec.body_terminated);

	char out[4096];
	const char req[] = "GET /machine-config HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	raw_exchange(f->sock, req, sizeof(req) - 1, out, sizeof(out));
	assert_memory_equal(out, "HTTP/1.1 200", 12);
	assert_non_null(strcasestr(out, "\r\nContent-Type: application/json\r\n"));
	assert_string_equal(body_of(out), "{\"method\": \"GET\", \"path\": \"/machine-config\", \"length\": 0}");
}

static void put_body_reaches_handler_byte_exact(void **state)
{
	struct fixture *f = *state;
	/* a JSON string of every printable byte and a few escapes, then padding up to the exact limit */
	size_t len = API_BODY_MAX;
	char *body = malloc(len + 1);
	int head = snprintf(body, len, "{\"path_on_host\": \"/x\\\"y\\\\z \xc3\xa9\", \"pad\": \"");
	static const char chars[] = "abcXYZ019 {}[]:,.-_/";
	for (size_t i = (size_t)head; i < len - 2; i++)
		body[i] = chars[(i * 7) % (sizeof(chars) - 1)];
	memcpy(body + len - 2, "\"}", 3);
	assert_int_equal(strlen(body), len);

	int status = 0;
	char *reply = NULL;
	vt_err err = { 0 };
	assert_int_equal(api_call(f->sock, "PUT", "/drives/rootfs", body, CALL_TIMEOUT_MS, &status, &reply, &err), 0);
	assert_int_equal(status, 200);
	free(reply);
	assert_int_equal(calls(f), 1);
	assert_string_equal(f->rec.method, "PUT");
	assert_string_equal(f->rec.path, "/drives/rootfs");
	assert_int_equal(f->rec.body_len, len);
	assert_memory_equal(f->rec.body, body, len);
	assert_true(f->rec.body_terminated);

	/* PATCH with a content type that has parameters is JSON too */
	char out[4096];
	const char req[] = "PATCH /vm HTTP/1.1\r\nHost: x\r\nContent-Type: Application/JSON; charset=utf-8\r\n"
			   "Content-Length: 20\r\nConnection: close\r\n\r\n{\"state\": \"Paused\"}\n";
	raw_exchange(f->sock, req, sizeof(req) - 1, out, sizeof(out));
	assert_memory_equal(out, "HTTP/1.1 200", 12);
	assert_string_equal(f->rec.body, "{\"state\": \"Paused\"}\n");
	free(body);
}

static void no_content_has_no_body(void **state)
{
	struct fixture *f = *state;
	int status = 0;
	char *reply = NULL;
	vt_err err = { 0 };
	assert_int_equal(api_call(f->sock, "PUT", "/empty", "{}", CALL_TIMEOUT_MS, &status, &reply, &err), 0);
	assert_int_equal(status, 204);
	assert_string_equal(reply, "");
	free(reply);

	char out[4096];
	const char req[] = "PUT /empty HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	raw_exchange(f->sock, req, sizeof(req) - 1, out, sizeof(out));
	assert_memory_equal(out, "HTTP/1.1 204", 12);
	assert_null(strcasestr(out, "Content-Type"));
	assert_string_equal(body_of(out), "");
}

static void assert_fault(const char *response, const char *status)
{
	assert_memory_equal(response, status, strlen(status));
	assert_non_null(strcasestr(response, "\r\nContent-Type: application/json\r\n"));
	assert_memory_equal(body_of(response), "{\"fault_message\": \"", 19);
}

static void over_64k_is_413_without_the_handler(void **state)
{
	struct fixture *f = *state;
	size_t len = API_BODY_MAX + 1;
	char *body = malloc(len + 1);
	memset(body, 'a', len);
	body[0] = '"', body[len - 1] = '"', body[len] = '\0';
	int status = 0;
	char *reply = NULL;
	vt_err err = { 0 };
	int rc = api_call(f->sock, "PUT", "/drives/big", body, CALL_TIMEOUT_MS, &status, &reply, &err);
	if (rc)
		fprintf(stderr, "api_call: %s\n", err.msg);
	assert_int_equal(rc, 0);
	assert_int_equal(status, 413);
	assert_memory_equal(reply, "{\"fault_message\": \"", 19);
	free(reply);

	/* the same size without a Content-Length (chunked): read, counted, refused at the end */
	size_t cap = 2 * API_BODY_MAX, n = 0;
	char *req = malloc(cap);
	n += (size_t)sprintf(req, "PUT /drives/big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
				  "Content-Type: application/json\r\nConnection: close\r\n\r\n");
	for (int i = 0; i < 5; i++) {
		n += (size_t)sprintf(req + n, "4000\r\n");
		memset(req + n, 'b', 0x4000);
		n += 0x4000;
		n += (size_t)sprintf(req + n, "\r\n");
	}
	n += (size_t)sprintf(req + n, "0\r\n\r\n");
	char out[4096];
	raw_exchange(f->sock, req, n, out, sizeof(out));
	assert_fault(out, "HTTP/1.1 413");
	assert_int_equal(calls(f), 0);
	free(req);
	free(body);
}

static void other_content_type_is_415(void **state)
{
	struct fixture *f = *state;
	char out[4096];
	const char req[] = "PUT /actions HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
			   "Content-Length: 2\r\nConnection: close\r\n\r\n{}";
	raw_exchange(f->sock, req, sizeof(req) - 1, out, sizeof(out));
	assert_fault(out, "HTTP/1.1 415");
	const char req2[] = "PUT /actions HTTP/1.1\r\nHost: x\r\nContent-Type: application/jsonx\r\n"
			    "Content-Length: 2\r\nConnection: close\r\n\r\n{}";
	raw_exchange(f->sock, req2, sizeof(req2) - 1, out, sizeof(out));
	assert_fault(out, "HTTP/1.1 415");
	assert_int_equal(calls(f), 0);
	/* no body: the type does not matter */
	const char req3[] = "GET / HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n";
	raw_exchange(f->sock, req3, sizeof(req3) - 1, out, sizeof(out));
	assert_memory_equal(out, "HTTP/1.1 200", 12);
}

static void invalid_handler_status_is_500(void **state)
{
	struct fixture *f = *state;
	char out[4096];
	const char req[] = "GET /bad-status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	raw_exchange(f->sock, req, sizeof(req) - 1, out, sizeof(out));
	assert_fault(out, "HTTP/1.1 500");
}

static void half_sent_request_blocks_nobody(void **state)
{
	struct fixture *f = *state;
	int slow_body = raw_connect(f->sock), slow_head = raw_connect(f->sock);
	const char part1[] = "PUT /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab";
	const char part2[] = "GET /half HTTP/1.1\r\nHo";
	assert_int_equal(write(slow_body, part1, sizeof(part1) - 1), (ssize_t)sizeof(part1) - 1);
	assert_int_equal(write(slow_head, part2, sizeof(part2) - 1), (ssize_t)sizeof(part2) - 1);
	usleep(100000);
	for (int i = 0; i < 3; i++) {
		int status = 0;
		char *reply = NULL;
		vt_err err = { 0 };
		uint64_t t0 = now_ns();
		assert_int_equal(api_call(f->sock, "GET", "/ok", NULL, CALL_TIMEOUT_MS, &status, &reply, &err), 0);
		assert_true(now_ns() - t0 < 1000000000ULL);
		assert_int_equal(status, 200);
		free(reply);
	}
	assert_int_equal(calls(f), 3);
	assert_string_equal(f->rec.path, "/ok");
	/* the slow client finishes later and is served too */
	const char rest[] = "cdefghij";
	assert_int_equal(write(slow_body, rest, 8), 8);
	char out[1024];
	size_t got = 0;
	for (int i = 0; i < 30 && !strstr(out, "\r\n\r\n{"); i++) {
		struct pollfd p = { .fd = slow_body, .events = POLLIN };
		if (poll(&p, 1, 100) > 0) {
			ssize_t n = recv(slow_body, out + got, sizeof(out) - 1 - got, 0);
			if (n <= 0)
				break;
			got += (size_t)n;
		}
		out[got] = '\0';
	}
	assert_memory_equal(out, "HTTP/1.1 200", 12);
	assert_string_equal(f->rec.body, "abcdefghij");
	close(slow_body);
	close(slow_head);
}

static void many_idle_connections_then_a_call(void **state)
{
	struct fixture *f = *state;
	int fds[40];
	for (int i = 0; i < 40; i++)
		fds[i] = raw_connect(f->sock); /* past the limit of 32: MHD closes or leaves them in the backlog */
	for (int i = 0; i < 40; i++)
		close(fds[i]);
	usleep(100000);
	for (int i = 0; i < 3; i++) {
		int status = 0;
		char *reply = NULL;
		vt_err err = { 0 };
		int rc = api_call(f->sock, "GET", "/", NULL, 1000, &status, &reply, &err);
		if (rc)
			fprintf(stderr, "api_call after the connection limit: %s\n", err.msg);
		assert_int_equal(rc, 0);
		assert_int_equal(status, 200);
		free(reply);
	}
}

/* Driven from this thread alone: no connection, no timeout; a half-sent request asks for a wake-up within the
 * 10 s connection timeout, which closes it. */
static void idle_connection_sets_the_timeout(void **state)
{
	(void)state;
	char dir[] = "/tmp/virtus-api-XXXXXX", path[96];
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/t.sock", dir);
	struct recorder rec = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct api_server *s = NULL;
	vt_err err = { 0 };
	assert_int_equal(api_server_start(path, handler, &rec, &s, &err), 0);
	assert_int_equal(api_server_timeout_ms(s), -1);
	int fd = raw_connect(path);
	const char half[] = "PUT /x HTTP/1.1\r\nHost: x\r\nContent-Le";
	assert_int_equal(write(fd, half, sizeof(half) - 1), (ssize_t)sizeof(half) - 1);
	for (int i = 0; i < 5; i++) {
		struct pollfd p = { .fd = api_server_poll_fd(s), .events = POLLIN };
		poll(&p, 1, 50);
		api_server_dispatch(s);
	}
	int t = api_server_timeout_ms(s);
	assert_in_range(t, 9000, 10000);
	assert_int_equal(rec.calls, 0);
	close(fd);
	api_server_stop(s);
	rmdir(dir);
}

static void socket_is_private(void **state)
{
	struct fixture *f = *state;
	struct stat st;
	assert_int_equal(lstat(f->sock, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
}

static void live_socket_is_refused(void **state)
{
	struct fixture *f = *state;
	struct api_server *second = NULL;
	vt_err err = { 0 };
	assert_int_equal(api_server_start(f->sock, handler, &f->rec, &second, &err), -1);
	assert_non_null(strstr(err.msg, "is in use"));
	assert_null(second);
	int status = 0;
	char *reply = NULL;
	assert_int_equal(api_call(f->sock, "GET", "/", NULL, CALL_TIMEOUT_MS, &status, &reply, &err), 0);
	assert_int_equal(status, 200);
	free(reply);
}

static void stale_socket_is_replaced_and_stop_removes_it(void **state)
{
	(void)state;
	char dir[] = "/tmp/virtus-api-XXXXXX", path[96];
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/stale.sock", dir);
	/* a socket file whose server is gone */
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	int old = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(old, (struct sockaddr *)&a, sizeof(a)), 0);
	close(old);

	struct recorder rec = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct fixture f = { .rec = rec };
	snprintf(f.sock, sizeof(f.sock), "%s", path);
	vt_err err = { 0 };
	assert_int_equal(api_server_start(path, handler, &f.rec, &f.srv, &err), 0);
	start_loop(&f);
	int status = 0;
	char *reply = NULL;
	assert_int_equal(api_call(path, "GET", "/", NULL, CALL_TIMEOUT_MS, &status, &reply, &err), 0);
	assert_int_equal(status, 200);
	free(reply);
	stop_loop(&f);
	api_server_stop(f.srv);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(errno, ENOENT);
	free(f.rec.body);

	/* a regular file there is not ours to replace */
	int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	struct api_server *s = NULL;
	assert_int_equal(api_server_start(path, handler, &f.rec, &s, &err), -1);
	assert_non_null(strstr(err.msg, "not a socket"));
	assert_int_equal(access(path, F_OK), 0);
	unlink(path);
	rmdir(dir);
}

/* ---- the client against a fake server ----------------------------------------------------------------- */

static void missing_socket_is_no_vm_api(void **state)
{
	(void)state;
	int status = 0;
	char *reply = NULL;
	vt_err err = { 0 };
	assert_int_equal(api_call("/tmp/virtus-api-none/nothing.sock", "GET", "/", NULL, 500, &status, &reply, &err), -1);
	assert_memory_equal(err.msg, "no VM API at /tmp/virtus-api-none/nothing.sock: ", 48);
	assert_int_equal(api_call("/tmp/x", "GET", "/a b", NULL, 500, &status, &reply, &err), -1);
	assert_non_null(strstr(err.msg, "invalid API request line"));
}

static void full_backlog_times_out(void **state)
{
	(void)state;
	char dir[] = "/tmp/virtus-api-XXXXXX", path[96];
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/full.sock", dir);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(l, 0), 0);
	/* a server that never accepts: fill its queue */
	int queued[4], n = 0;
	for (; n < 4; n++) {
		queued[n] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (connect(queued[n], (struct sockaddr *)&a, sizeof(a)) < 0) {
			assert_int_equal(errno, EAGAIN);
			close(queued[n]);
			break;
		}
	}
	assert_true(n < 4);
	int status = 0;
	char *reply = NULL;
	vt_err err = { 0 };
	uint64_t t0 = now_ns();
	assert_int_equal(api_call(path, "GET", "/", NULL, 300, &status, &reply, &err), -1);
	assert_true(now_ns() - t0 < 2000000000ULL);
	assert_non_null(strstr(err.msg, "timed out connecting"));
	for (int i = 0; i < n; i++)
		close(queued[i]);
	close(l);
	unlink(path);
	rmdir(dir);
}

struct fake_case {
	const char *response;
	size_t filler;           /* bytes of 'x' sent after the response text */
	bool silent;             /* answer nothing, wait for the client to give up */
	int want_rc, want_status;
	const char *want;        /* the body on success, a piece of the message on failure */
};

struct fake_server {
	int listen_fd;
	const struct fake_case *c;
	char request[4096];
};

static void *fake_serve(void *arg)
{
	struct fake_server *s = arg;
	int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return NULL;
	size_t got = 0;
	while (got < sizeof(s->request) - 1 && !strstr(s->request, "\r\n\r\n")) {
		ssize_t n = recv(fd, s->request + got, sizeof(s->request) - 1 - got, 0);
		if (n <= 0)
			break;
		got += (size_t)n;
		s->request[got] = '\0';
	}
	if (s->c->silent) {
		char b[64];
		while (recv(fd, b, sizeof(b), 0) > 0) { /* until the client closes */ }
	} else {
		send(fd, s->c->response, strlen(s->c->response), MSG_NOSIGNAL);
		static char chunk[65536];
		memset(chunk, 'x', sizeof(chunk));
		for (size_t left = s->c->filler; left;) {
			ssize_t n = send(fd, chunk, MIN(left, sizeof(chunk)), MSG_NOSIGNAL);
			if (n <= 0)
				break;
			left -= (size_t)n;
		}
	}
	close(fd);
	return NULL;
}

static void run_fake_case(const struct fake_case *c)
{
	char dir[] = "/tmp/virtus-api-XXXXXX", path[96];
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/fake.sock", dir);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	struct fake_server s = { .c = c };
	s.listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(s.listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(s.listen_fd, 1), 0);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, fake_serve, &s), 0);

	int status = 0;
	char *reply = NULL;
	vt_err err = { 0 };
	uint64_t t0 = now_ns();
	int rc = api_call(path, "PUT", "/snapshot/create", "{\"snapshot_path\": \"s\"}", 500, &status, &reply, &err);
	assert_true(now_ns() - t0 < 2000000000ULL);
	pthread_join(t, NULL);
	if (rc != c->want_rc)
		fprintf(stderr, "case '%.40s': rc %d, %s\n", c->response ? c->response : "(silent)", rc, err.msg);
	assert_int_equal(rc, c->want_rc);
	if (rc == 0) {
		assert_int_equal(status, c->want_status);
		assert_string_equal(reply, c->want);
		free(reply);
	} else {
		if (!strstr(err.msg, c->want))
			fprintf(stderr, "message '%s' lacks '%s'\n", err.msg, c->want);
		assert_non_null(strstr(err.msg, c->want));
	}
	/* what the client sent */
	assert_memory_equal(s.request, "PUT /snapshot/create HTTP/1.1\r\n", 31);
	assert_non_null(strstr(s.request, "\r\nContent-Type: application/json\r\nContent-Length: 22\r\n"));
	assert_non_null(strstr(s.request, "\r\nConnection: close\r\n"));
	close(s.listen_fd);
	unlink(path);
	rmdir(dir);
}

static void client_takes_good_responses(void **state)
{
	(void)state;
	static const struct fake_case cases[] = {
		{ "HTTP/1.0 201 Created\r\nContent-Length: 4\r\nX-Other:  y \r\n\r\nabcdEXTRA", 0, false, 0, 201, "abcd" },
		{ "HTTP/1.1 200 OK\r\n\r\n{\"to\": \"eof\"}", 0, false, 0, 200, "{\"to\": \"eof\"}" },
		{ "HTTP/1.1 400\r\ncontent-length: 2\r\n\r\n{}", 0, false, 0, 400, "{}" },
		{ "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", 0, false, 0, 204, "" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		run_fake_case(&cases[i]);
}

static void client_refuses_bad_responses(void **state)
{
	(void)state;
	static const struct fake_case cases[] = {
		{ "garbage\r\n\r\n", 0, false, -1, 0, "no valid status line" },
		{ "HTTP/1.1 2x0 OK\r\n\r\n", 0, false, -1, 0, "no valid status line" },
		{ "HTTP/2 200 OK\r\n\r\n", 0, false, -1, 0, "no valid status line" },
		{ "HTTP/1.1 200\n\n{}", 0, false, -1, 0, "before a complete response" },
		{ "", 0, false, -1, 0, "closed the connection before a complete response" },
		{ "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", 0, false, -1, 0, "malformed header" },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 12x\r\n\r\n", 0, false, -1, 0, "malformed header" },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 0, false, -1, 0, "malformed header" },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 5000000\r\n\r\n", 0, false, -1, 0, "longer than" },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n", 0, false, -1, 0, "malformed header" },
		{ "HTTP/1.1 200 OK\r\n\r\n", 5 * 1024 * 1024, false, -1, 0, "longer than" },
		{ "HTTP/1.1 200 OK\r\nX: ", 64 * 1024, false, -1, 0, "headers exceed" },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 0, false, -1, 0, "cut short" },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", 0, false, -1, 0,
		  "Transfer-Encoding" },
		{ NULL, 0, true, -1, 0, "timed out" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		run_fake_case(&cases[i]);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN); /* as in the VMM */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(get_returns_handler_json, setup, teardown),
		cmocka_unit_test_setup_teardown(put_body_reaches_handler_byte_exact, setup, teardown),
		cmocka_unit_test_setup_teardown(no_content_has_no_body, setup, teardown),
		cmocka_unit_test_setup_teardown(over_64k_is_413_without_the_handler, setup, teardown),
		cmocka_unit_test_setup_teardown(other_content_type_is_415, setup, teardown),
		cmocka_unit_test_setup_teardown(invalid_handler_status_is_500, setup, teardown),
		cmocka_unit_test_setup_teardown(half_sent_request_blocks_nobody, setup, teardown),
		cmocka_unit_test_setup_teardown(many_idle_connections_then_a_call, setup, teardown),
		cmocka_unit_test(idle_connection_sets_the_timeout),
		cmocka_unit_test_setup_teardown(socket_is_private, setup, teardown),
		cmocka_unit_test_setup_teardown(live_socket_is_refused, setup, teardown),
		cmocka_unit_test(stale_socket_is_replaced_and_stop_removes_it),
		cmocka_unit_test(missing_socket_is_no_vm_api),
		cmocka_unit_test(full_backlog_times_out),
		cmocka_unit_test(client_takes_good_responses),
		cmocka_unit_test(client_refuses_bad_responses),
	};
	return cmocka_run_group_tests_name("api_http", tests, NULL, NULL);
}

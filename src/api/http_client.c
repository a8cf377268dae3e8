/* The API's HTTP client: one request per connection, for the `virtus vm ...` verbs.
 *
 * Hand-written because it needs so little (no keep-alive, no redirects, no TLS), but bounded everywhere: the
 * whole exchange has one deadline, the response is at most API_REPLY_MAX bytes of body behind at most
 * REPLY_HEAD_MAX bytes of status line and headers, and anything malformed is an error. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "api/http.h"
#include "lib/unixsock.h"
#include "lib/util.h"

#define REPLY_HEAD_MAX (16 * 1024)
#define REPLY_BUF_MAX (REPLY_HEAD_MAX + API_REPLY_MAX)

/* What the status line and headers said. */
struct reply_head {
	int status;
	size_t head_len;         /* bytes up to and including the blank line */
	long long content_length; /* -1: none given, the body runs to EOF */
	bool chunked;
};

static int ms_left(uint64_t deadline_ns)
{
	uint64_t now = now_ns();
	if (now >= deadline_ns)
		return 0;
	uint64_t ms = (deadline_ns - now + 999999) / 1000000;
	return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

/* A VMM that did not answer in time (errnum ETIMEDOUT, so that a caller can wait longer for a busy one). */
static int timed_out(vt_err *err, const char *path, const char *doing)
{
	vt_fail(err, "VM API at %s: timed out %s", path, doing);
	if (err)
		err->errnum = ETIMEDOUT;
	return -1;
}

/* Wait for events on fd until the deadline: 1 ready, 0 timed out, -1 error (errno). */
static int wait_fd(int fd, short events, uint64_t deadline_ns)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = events };
		int rc = poll(&p, 1, ms_left(deadline_ns));
		if (rc < 0 && errno == EINTR)
			continue;
		return rc < 0 ? -1 : rc;
	}
}

/* A blocking connect() to a Unix socket whose backlog is full waits with no limit (a server at its connection
 * limit stops accepting), so connect without blocking: that fails at once with EAGAIN, retried until the
 * deadline. */
static int connect_api(const char *path, uint64_t deadline_ns, vt_err *err)
{
	struct sockaddr_un addr;
	if (unix_socket_addr(path, &addr, err))
		return -1;
	cleanup_close int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return vt_fail_errno(err, errno, "socket");
	while (connect(fd, (const struct sockaddr *)&addr, sizeof(addr)) < 0) {
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return vt_fail_errno(err, errno, "no VM API at %s", path);
		if (ms_left(deadline_ns) == 0)
			return timed_out(err, path, "connecting (its queue of connections is full)");
		usleep(10000);
	}
	return steal_fd(fd);
}

/* A method or URI goes into the request line as is: no spaces, no control characters. */
static bool is_token(const char *s, size_t max)
{
	size_t n = 0;
	for (; s[n]; n++)
		if (n >= max || s[n] <= ' ' || s[n] == 0x7f)
			return false;
	return n > 0;
}

static int format_request(const char *method, const char *uri, const char *body, char **out, size_t *len,
			  vt_err *err)
{
	if (!is_token(method, 16) || !is_token(uri, 4096) || uri[0] != '/')
		return vt_fail(err, "invalid API request line '%s %s'", method, uri);
	int n = body ? asprintf(out,
				"%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
				"Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
				method, uri, strlen(body), body)
		     : asprintf(out, "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", method, uri);
	if (n < 0)
		return vt_fail_errno(err, ENOMEM, "API request");
	*len = (size_t)n;
	return 0;
}

/* Write the whole request. A server that answers early and closes (413 to a large body) makes the write
 * fail with EPIPE or ECONNRESET: that is not an error here, its answer is still to be read. */
static int send_request(int fd, const char *req, size_t len, uint64_t deadline_ns, const char *path, vt_err *err)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = send(fd, req + done, len - done, MSG_NOSIGNAL);
		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
			return 0;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN)
			return vt_fail_errno(err, errno, "writing to the VM API at %s", path);
		int w = wait_fd(fd, POLLOUT, deadline_ns);
		if (w <= 0)
			return w < 0 ? vt_fail_errno(err, errno, "poll") : timed_out(err, path, "sending the request");
	}
	return 0;
}

/* "HTTP/1.x NNN" followed by a space or the line's end. */
static int parse_status_line(const char *line, size_t len, int *status)
{
	if (len < 12 || memcmp(line, "HTTP/1.", 7) || !isdigit((unsigned char)line[7]) || line[8] != ' ')
		return -1;
	if (!isdigit((unsigned char)line[9]) || !isdigit((unsigned char)line[10]) || !isdigit((unsigned char)line[11]))
		return -1;
	if (len > 12 && line[12] != ' ')
		return -1;
	*status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
	return *status >= 100 ? 0 : -1;
}

/* One "Name: value" line (without its CRLF): remember what framing needs. */
static int parse_header(const char *line, size_t len, struct reply_head *h)
{
	const char *colon = memchr(line, ':', len);
	if (!colon || colon == line)
		return -1;
	size_t name_len = (size_t)(colon - line);
	const char *v = colon + 1, *end = line + len;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	size_t vlen = (size_t)(end - v);
	if (name_len == 14 && !strncasecmp(line, "Content-Length", 14)) {
		char num[24];
		uint64_t n;
		if (vlen == 0 || vlen >= sizeof(num))
			return -1;
		memcpy(num, v, vlen);
		num[vlen] = '\0';
		if (parse_uint(num, 0, UINT64_MAX, &n) || (h->content_length >= 0 && (uint64_t)h->content_length != n))
			return -1;
		h->content_length = n > API_REPLY_MAX ? API_REPLY_MAX + 1LL : (long long)n;
	} else if (name_len == 17 && !strncasecmp(line, "Transfer-Encoding", 17)) {
		h->chunked = true; /* any transfer coding: none is handled */
	}
	return 0;
}

/* Parse the head in buf[0..len). 1: complete, 0: needs more bytes, -1: malformed (message in err). */
static int parse_head(const char *buf, size_t len, struct reply_head *h, vt_err *err)
{
	const char *end = NULL;
	for (size_t i = 0; i + 3 < len; i++)
		if (!memcmp(buf + i, "\r\n\r\n", 4)) {
			end = buf + i;
			break;
		}
	const char *first_eol = memchr(buf, '\n', len);
	if (first_eol || len >= 12) { /* the status line can be judged before the whole head is in */
		size_t l = first_eol ? (size_t)(first_eol - buf) : len;
		int status;
		if (first_eol && l > 0 && buf[l - 1] == '\r')
			l--;
		if (parse_status_line(buf, first_eol ? l : 12, &status))
			return vt_fail(err, "the VM API's response has no valid status line");
	}
	if (!end)
		return len > REPLY_HEAD_MAX ? vt_fail(err, "the VM API's response headers exceed %d bytes", REPLY_HEAD_MAX) : 0;
	*h = (struct reply_head){ .content_length = -1 };
	const char *line = buf, *stop = end + 2;
	const char *eol = memchr(line, '\n', (size_t)(stop - line));
	if (!eol || eol == line || eol[-1] != '\r' || parse_status_line(line, (size_t)(eol - 1 - line), &h->status))
		return vt_fail(err, "the VM API's response has no valid status line");
	for (line = eol + 1; line < stop; line = eol + 1) {
		eol = memchr(line, '\n', (size_t)(stop - line));
		if (!eol || eol == line || eol[-1] != '\r' || parse_header(line, (size_t)(eol - 1 - line), h))
			return vt_fail(err, "the VM API's response has a malformed header line");
	}
	h->head_len = (size_t)(end + 4 - buf);
	return 1;
}

/* Bytes that the body must have once complete, or -1 when it runs to EOF. */
static long long body_expected(const struct reply_head *h, const char *method)
{
	if (!strcmp(method, "HEAD") || h->status < 200 || h->status == 204 || h->status == 304)
		return 0;
	return h->content_length;
}

struct reply_buf {
	char *data;
	size_t len, cap;
};

/* Read more of the response (up to REPLY_BUF_MAX). 1: got bytes, 0: EOF, -1: error. */
static int read_more(int fd, struct reply_buf *b, uint64_t deadline_ns, const char *path, vt_err *err)
{
	if (b->len == REPLY_BUF_MAX)
		return vt_fail(err, "the VM API's response is longer than %d bytes", API_REPLY_MAX);
	if (b->cap - b->len < 4096 + 1 && b->cap < REPLY_BUF_MAX + 1) {
		size_t cap = MIN(MAX(b->cap * 2, (size_t)8192), (size_t)REPLY_BUF_MAX + 1);
		char *grown = realloc(b->data, cap);
		if (!grown)
			return vt_fail_errno(err, ENOMEM, "API response");
		b->data = grown;
		b->cap = cap;
	}
	for (;;) {
		ssize_t n = recv(fd, b->data + b->len, b->cap - 1 - b->len, 0);
		if (n > 0) {
			b->len += (size_t)n;
			return 1;
		}
		/* ECONNRESET: a server that closed with part of our request unread (it answered early). Whatever it
		 * sent was read before this; the framing checks decide whether that was a whole response. */
		if (n == 0 || errno == ECONNRESET)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return vt_fail_errno(err, errno, "reading from the VM API at %s", path);
		int w = wait_fd(fd, POLLIN, deadline_ns);
		if (w <= 0)
			return w < 0 ? vt_fail_errno(err, errno, "poll") : timed_out(err, path, "waiting for the response");
	}
}

/* Read and check the response; on success the body is moved to the front of b->data, NUL-terminated. */
static int read_response(int fd, const char *method, struct reply_buf *b, uint64_t deadline_ns, const char *path,
			 int *status, vt_err *err)
{
	struct reply_head h = { 0 };
	int head = 0;
	long long want = -1;
	for (;;) {
		int more = read_more(fd, b, deadline_ns, path, err);
		if (more < 0)
			return -1;
		if (!head && (head = parse_head(b->data, b->len, &h, err)) < 0)
			return -1;
		if (head && h.chunked)
			return vt_fail(err, "the VM API sent a response with a Transfer-Encoding, which this client does not handle");
		if (head && (want = body_expected(&h, method)) > API_REPLY_MAX)
			return vt_fail(err, "the VM API's response is longer than %d bytes", API_REPLY_MAX);
		if (head && want >= 0 && b->len - h.head_len >= (size_t)want)
			break;
		if (head && want < 0 && b->len - h.head_len > API_REPLY_MAX)
			return vt_fail(err, "the VM API's response is longer than %d bytes", API_REPLY_MAX);
		if (!more && !head)
			return vt_fail(err, "the VM API at %s closed the connection before a complete response", path);
		if (!more && want >= 0)
			return vt_fail(err, "the VM API's response was cut short (%zu of %lld body bytes)",
				       b->len - h.head_len, want);
		if (!more)
			break; /* no length: the body ran to EOF */
	}
	size_t body_len = want >= 0 ? (size_t)want : b->len - h.head_len;
	if (body_len > API_REPLY_MAX)
		return vt_fail(err, "the VM API's response is longer than %d bytes", API_REPLY_MAX);
	memmove(b->data, b->data + h.head_len, body_len);
	b->data[body_len] = '\0';
	*status = h.status;
	return 0;
}

int api_call(const char *path, const char *method, const char *uri, const char *body, int timeout_ms,
	     int *status, char **reply, vt_err *err)
{
	uint64_t deadline_ns = now_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000;
	cleanup_free char *req = NULL;
	size_t req_len = 0;
	if (format_request(method, uri, body, &req, &req_len, err))
		return -1;
	cleanup_close int fd = connect_api(path, deadline_ns, err);
	if (fd < 0 || send_request(fd, req, req_len, deadline_ns, path, err))
		return -1;
	struct reply_buf b = { 0 };
	if (read_response(fd, method, &b, deadline_ns, path, status, err)) {
		free(b.data);
		return -1;
	}
	*reply = b.data;
	return 0;
}

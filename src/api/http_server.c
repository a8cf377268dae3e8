/* The API's HTTP server: libmicrohttpd in external-event-loop mode on a Unix socket.
 *
 * MHD reads requests and writes replies; this file enforces the socket's rules (body size, content type,
 * JSON errors) and hands each complete request to the handler. MHD_USE_EPOLL without an internal thread
 * gives one epoll fd that the caller polls, and MHD_run never blocks: the VMM's main thread stays the only
 * thread that touches the server, and a client that sends half a request only holds its own connection.
 *
 * libmicrohttpd is not linked: a server start loads it (api/mhd.h). */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "api/http.h"
#include "api/mhd.h"
#include "lib/unixsock.h"
#include "lib/util.h"

#define API_MAX_CONNECTIONS 32u
#define API_CONNECTION_TIMEOUT_S 10u

struct api_server {
	struct mhd_api mhd;
	struct MHD_Daemon *daemon;
	int epoll_fd;                 /* MHD's; the caller polls it */
	api_handler_fn handler;
	void *opaque;
	char *path;
};

/* One request being received (MHD's per-request pointer). */
struct pending {
	char *body;
	size_t len, cap;
	bool too_large;
};

/* ---- replies ------------------------------------------------------------------------------------------ */

/* Queue status with body (malloc'd JSON or NULL, owned from here on). */
static enum MHD_Result queue_reply(const struct mhd_api *mhd, struct MHD_Connection *c, int status, char *body)
{
	if (status == MHD_HTTP_NO_CONTENT || (body && !*body)) {
		free(body);
		body = NULL;
	}
	struct MHD_Response *r = body ? mhd->response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE)
				      : mhd->response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	if (!r) {
		free(body);
		return MHD_NO; /* out of memory: MHD closes the connection */
	}
	enum MHD_Result ok = MHD_YES;
	if (body)
		ok = mhd->add_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	if (ok == MHD_YES)
		ok = mhd->queue_response(c, (unsigned)status, r);
	mhd->destroy_response(r);
	return ok;
}

/* An error the server answers itself; message is a constant without quotes or backslashes. */
static enum MHD_Result queue_fault(const struct mhd_api *mhd, struct MHD_Connection *c, int status,
				   const char *message)
{
	char *body = NULL;
	if (asprintf(&body, "{\"fault_message\": \"%s\"}", message) < 0)
		return MHD_NO;
	return queue_reply(mhd, c, status, body);
}

/* ---- requests ----------------------------------------------------------------------------------------- */

/* "application/json", any case, optionally followed by parameters ("; charset=utf-8"). */
static bool is_json_type(const char *type)
{
	static const char json[] = "application/json";
	type += strspn(type, " \t");
	if (strncasecmp(type, json, sizeof(json) - 1))
		return false;
	type += sizeof(json) - 1;
	type += strspn(type, " \t");
	return *type == '\0' || *type == ';';
}

/* The declared body length, or -1 when none is declared (chunked, or no Content-Length). MHD itself has
 * already refused a malformed Content-Length. */
static long long declared_length(const struct mhd_api *mhd, struct MHD_Connection *c)
{
	const char *v = mhd->lookup_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	uint64_t n;
	if (!v || parse_uint(v, 0, UINT64_MAX, &n))
		return -1;
	return n > LLONG_MAX ? LLONG_MAX : (long long)n;
}

/* Checks made once the headers are in, before any body is read. Returns 0 or the status to refuse with. */
static int check_headers(const struct mhd_api *mhd, struct MHD_Connection *c, const char **why)
{
	long long declared = declared_length(mhd, c);
	bool chunked = mhd->lookup_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL;
	if (declared > API_BODY_MAX) {
		*why = "request body larger than 65536 bytes";
		return MHD_HTTP_CONTENT_TOO_LARGE;
	}
	const char *type = mhd->lookup_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	if ((declared > 0 || chunked) && type && !is_json_type(type)) {
		*why = "request body must be application/json";
		return MHD_HTTP_UNSUPPORTED_MEDIA_TYPE;
	}
	return 0;
}

/* Keep a body chunk; past API_BODY_MAX the body is dropped and only counted as too large. */
static void take_body(struct pending *p, const char *data, size_t len)
{
	if (p->too_large)
		return;
	if (len > API_BODY_MAX - p->len) {
		p->too_large = true;
		free(p->body);
		p->body = NULL;
		p->len = p->cap = 0;
		return;
	}
	if (p->len + len + 1 > p->cap) {
		size_t cap = MAX(p->cap * 2, (size_t)1024);
		cap = MAX(cap, p->len + len + 1);
		char *grown = realloc(p->body, cap);
		if (!grown) {
			p->too_large = true; /* refuse rather than serve a truncated body */
			return;
		}
		p->body = grown;
		p->cap = cap;
	}
	memcpy(p->body + p->len, data, len);
	p->len += len;
	p->body[p->len] = '\0';
}

static enum MHD_Result run_handler(struct api_server *s, struct MHD_Connection *c, const char *method,
				   const char *url, const struct pending *p)
{
	struct api_request req = { .method = method, .path = url, .body = p->body ? p->body : "",
				   .body_len = p->len };
	struct api_reply reply = { .status = MHD_HTTP_INTERNAL_SERVER_ERROR, .body = NULL };
	s->handler(s->opaque, &req, &reply);
	if (reply.status < 100 || reply.status > 599) {
		free(reply.body);
		return queue_fault(&s->mhd, c, MHD_HTTP_INTERNAL_SERVER_ERROR, "the API handler gave no valid status");
	}
	return queue_reply(&s->mhd, c, reply.status, reply.body);
}

/* MHD calls this once when the headers are in, then once per body chunk, then once with no data. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
				  const char *version, const char *upload_data, size_t *upload_data_size,
				  void **req_cls)
{
	struct api_server *s = cls;
	struct pending *p = *req_cls;
	(void)version;
	if (!p) {
		const char *why = NULL;
		int refuse = check_headers(&s->mhd, c, &why);
		if (refuse)
			return queue_fault(&s->mhd, c, refuse, why); /* MHD closes: the body is never read */
		p = calloc(1, sizeof(*p));
		if (!p)
			return MHD_NO;
		*req_cls = p;
		return MHD_YES;
	}
	if (*upload_data_size) {
		take_body(p, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (p->too_large)
		return queue_fault(&s->mhd, c, MHD_HTTP_CONTENT_TOO_LARGE, "request body larger than 65536 bytes");
	return run_handler(s, c, method, url, p);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **req_cls,
			 enum MHD_RequestTerminationCode why)
{
	(void)cls, (void)c, (void)why;
	struct pending *p = *req_cls;
	if (p) {
		free(p->body);
		free(p);
		*req_cls = NULL;
	}
}

/* ---- the socket --------------------------------------------------------------------------------------- */

/* Unlinked by path, without looking first: the VMM's confined main thread may unlink but not stat a path. */
static void remove_socket(const struct api_server *s)
{
	unlink(s->path);
}

static int start_daemon(struct api_server *s, int listen_fd, vt_err *err)
{
	/* No Date header: it would read /etc/localtime on the first reply, after the VMM's seccomp filter is in
	 * place, and a local control socket's client has the same clock. */
	s->daemon = s->mhd.start_daemon(MHD_USE_EPOLL | MHD_USE_SUPPRESS_DATE_NO_CLOCK, 0, NULL, NULL, on_request, s,
					MHD_OPTION_LISTEN_SOCKET, (MHD_socket)listen_fd,
					MHD_OPTION_CONNECTION_LIMIT, API_MAX_CONNECTIONS,
					MHD_OPTION_CONNECTION_TIMEOUT, API_CONNECTION_TIMEOUT_S,
					MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
					MHD_OPTION_END);
	if (!s->daemon)
		return vt_fail(err, "libmicrohttpd could not start a server on %s", s->path);
	const union MHD_DaemonInfo *info = s->mhd.get_daemon_info(s->daemon, MHD_DAEMON_INFO_EPOLL_FD);
	if (!info || info->epoll_fd < 0)
		return vt_fail(err, "libmicrohttpd gave no epoll fd for %s", s->path);
	s->epoll_fd = info->epoll_fd;
	return 0;
}

void api_server_set_handler(struct api_server *s, api_handler_fn fn, void *opaque)
{
	s->handler = fn;
	s->opaque = opaque;
}

int api_server_start(const char *path, api_handler_fn fn, void *opaque, struct api_server **out, vt_err *err)
{
	struct api_server *s = calloc(1, sizeof(*s));
	if (!s || !(s->path = strdup(path))) {
		free(s);
		return vt_fail_errno(err, ENOMEM, "API server");
	}
	s->handler = fn;
	s->opaque = opaque;
	s->epoll_fd = -1;
	if (mhd_load(&s->mhd, "the VM API", err)) {
		api_server_stop(s);
		return -1;
	}
	int fd = unix_listen(path, (int)API_MAX_CONNECTIONS, err);
	if (fd < 0) {
		api_server_stop(s);
		return -1;
	}
	/* MHD owns the listening fd from here (it closes it when stopped). It is handed a duplicate so that
	 * closing ours on a failed start is right whatever MHD did with its copy. */
	int mhd_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	int rc = mhd_fd < 0 ? vt_fail_errno(err, errno, "dup") : start_daemon(s, mhd_fd, err);
	close(fd);
	if (rc) {
		remove_socket(s);
		api_server_stop(s);
		return -1;
	}
	*out = s;
	return 0;
}

int api_server_poll_fd(const struct api_server *s)
{
	return s->epoll_fd;
}

int api_server_timeout_ms(const struct api_server *s)
{
	MHD_UNSIGNED_LONG_LONG ms;
	if (s->mhd.get_timeout(s->daemon, &ms) != MHD_YES)
		return -1;
	return ms > INT_MAX ? INT_MAX : (int)ms;
}

static unsigned connections(const struct api_server *s)
{
	const union MHD_DaemonInfo *info = s->mhd.get_daemon_info(s->daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
	return info ? info->num_connections : 0;
}

/* At the connection limit MHD takes its listening socket out of the epoll set, and puts it back at the start
 * of the run after one that closed a connection. A caller that then polls with no timeout (MHD asks for
 * none) would never see a new client: so run again as long as a run closed connections. */
void api_server_dispatch(struct api_server *s)
{
	unsigned before = connections(s);
	for (unsigned i = 0; i <= API_MAX_CONNECTIONS; i++) {
		s->mhd.run(s->daemon);
		unsigned after = connections(s);
		if (after >= before)
			break;
		before = after;
	}
}

void api_server_stop(struct api_server *s)
{
	if (!s)
		return;
	if (s->daemon) {
		s->mhd.stop_daemon(s->daemon);
		remove_socket(s);
	}
	if (s->mhd.handle)
		dlclose(s->mhd.handle);
	free(s->path);
	free(s);
}

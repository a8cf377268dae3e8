/* The transport of a VM's API: HTTP/1.1 with JSON bodies on a Unix socket, in Firecracker's shape.
 *
 * Server: libmicrohttpd, driven by the caller's own poll loop (no thread of the library's: the VMM's main
 * thread runs it, seccomp-confined after start-up). The library is dlopen()ed by the first server start,
 * never linked, so that `virtus` invocations without an API do not pay its start-up cost. The server owns
 * the socket's protocol rules (sizes, content type, errors it makes itself); what a request means is the
 * handler's business (the router).
 *
 * Client: one request per connection, hand-written and bounded (used by the `virtus vm ...` verbs).
 *
 * Neither side is thread-safe on one object: a server is started, polled, dispatched and stopped by one
 * thread; api_call keeps no state. */
#ifndef VIRTUS_API_HTTP_H
#define VIRTUS_API_HTTP_H

#include <stddef.h>

#include "lib/err.h"

#define API_BODY_MAX (64 * 1024)          /* a request body above this gets 413 */
#define API_REPLY_MAX (4 * 1024 * 1024)   /* a response body above this is a client error */

struct api_request {
	const char *method;   /* "GET", "PUT", "PATCH", ... */
	const char *path;     /* URL path, e.g. "/drives/rootfs" (%-escapes decoded, query string removed) */
	const char *body;     /* NUL-terminated request body ("" when none) */
	size_t body_len;
};

struct api_reply {
	int status;           /* HTTP status (100..599, else the client gets 500); 204 means no body */
	char *body;           /* malloc'd JSON text or NULL; the server frees it */
};

/* Called once per complete request, on the thread that calls api_server_dispatch. reply arrives as
 * { 500, NULL }. */
typedef void (*api_handler_fn)(void *opaque, const struct api_request *req, struct api_reply *reply);

struct api_server;

/* Listen on a new Unix socket at path (mode 0600; a stale socket file nobody listens on is replaced, a live
 * one is an error "... is in use", anything else at path is left alone and an error), serve with MHD in
 * external-event-loop mode (MHD_USE_EPOLL, no internal thread), requests handled by fn.
 * Rules the server enforces itself, each answered with JSON {"fault_message": "..."} without calling fn:
 * a body over API_BODY_MAX (413), a body whose Content-Type is given and is not application/json (415).
 * Connections: at most 32, each closed after 10 s without progress. */
int api_server_start(const char *path, api_handler_fn fn, void *opaque, struct api_server **out, vt_err *err);
/* Hand later requests to fn (a VM configured through the API, once started, gets the running VM's routes). */
void api_server_set_handler(struct api_server *s, api_handler_fn fn, void *opaque);
int api_server_poll_fd(const struct api_server *s);    /* poll for POLLIN, then call dispatch */
int api_server_timeout_ms(const struct api_server *s); /* -1: none; for the caller's poll timeout */
void api_server_dispatch(struct api_server *s);        /* MHD_run: never blocks */
void api_server_stop(struct api_server *s);            /* close everything, unlink the socket path; NULL ok */

/* Client: one request over a new connection to the Unix socket at path ("Connection: close"), body may be
 * NULL (a body is sent as application/json). On success *status is the HTTP status and *reply the malloc'd
 * response body (NUL-terminated, "" when none). Fails with a clear message when nobody listens ("no VM API at
 * PATH: ..."), on timeout_ms (for the whole exchange), or on a malformed or over-long (> API_REPLY_MAX)
 * response; a chunked response is refused (MHD sends buffer responses with Content-Length). */
int api_call(const char *path, const char *method, const char *uri, const char *body, int timeout_ms,
	     int *status, char **reply, vt_err *err);

#endif

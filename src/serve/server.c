/* `virtus serve`'s HTTP side (serve/serve.h): libmicrohttpd with a thread per connection, requests handed to
 * serve_handle, WebSocket upgrades handed to a terminal thread, until SIGINT or SIGTERM. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api/mhd.h"
#include "lib/util.h"
#include "serve/serve.h"
#include "serve/ws.h"

#define SERVE_CONNECTIONS_MAX 128u
#define SERVE_CONNECTIONS_PER_IP 32u
#define SERVE_IDLE_TIMEOUT_S 60u   /* an HTTP connection quiet this long is closed (not a WebSocket) */
#define SERVE_TERMS_STOP_WAIT_MS 2000

struct server {
	struct serve *s;
	struct mhd_api mhd;
	struct MHD_Daemon *daemon;
	char *tls_cert, *tls_key;
};

/* One request being received (MHD's per-request pointer). */
struct pending {
	char *body;
	size_t len;
	bool too_large;
};

/* ---- terminals ------------------------------------------------------------------------------------------- */

/* A terminal: made with the 101 (what it runs), completed by MHD's upgrade callback (the socket). */
struct term_job {
	struct server *srv;
	char *argv[SERVE_ARGV_MAX];
	int sock;
	struct MHD_UpgradeResponseHandle *urh;
	uint8_t *early;
	size_t early_len;
};

static bool term_register(struct serve *s, int sock)
{
	pthread_mutex_lock(&s->terms_lock);
	bool ok = !s->stopping && s->n_terms < SERVE_TERMS_MAX;
	if (ok)
		s->term_socks[s->n_terms++] = sock;
	pthread_mutex_unlock(&s->terms_lock);
	return ok;
}

static void term_unregister(struct serve *s, int sock)
{
	pthread_mutex_lock(&s->terms_lock);
	for (unsigned i = 0; i < s->n_terms; i++)
		if (s->term_socks[i] == sock) {
			s->term_socks[i] = s->term_socks[--s->n_terms];
			break;
		}
	pthread_mutex_unlock(&s->terms_lock);
}

static void term_job_free(struct term_job *j)
{
	serve_argv_free(j->argv);
	free(j->early);
	free(j);
}

static bool terminals_full(struct serve *s)
{
	pthread_mutex_lock(&s->terms_lock);
	bool full = s->n_terms >= SERVE_TERMS_MAX;
	pthread_mutex_unlock(&s->terms_lock);
	return full;
}

static void *term_thread(void *arg)
{
	struct term_job *j = arg;
	struct serve *s = j->srv->s;
	if (term_register(s, j->sock)) {
		serve_term_run(s, j->sock, j->argv, j->early, j->early_len);
		term_unregister(s, j->sock);
	}
	j->srv->mhd.upgrade_action(j->urh, MHD_UPGRADE_ACTION_CLOSE);
	term_job_free(j);
	return NULL;
}

/* MHD hands over the connection's socket once the 101 is sent; the terminal runs on a thread of its own
 * (this one is MHD's, which forwards TLS for it). */
static void on_upgraded(void *cls, struct MHD_Connection *c, void *req_cls, const char *extra_in, size_t extra_len,
			MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
	struct term_job *j = cls; /* MHD calls this once; a handshake the client left before it leaks j */
	(void)c;
	(void)req_cls;
	j->sock = sock;
	j->urh = urh;
	if (extra_len && (j->early = malloc(extra_len))) {
		memcpy(j->early, extra_in, extra_len);
		j->early_len = extra_len;
	}
	pthread_t t;
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	if ((extra_len && !j->early) || pthread_create(&t, &at, term_thread, j)) {
		j->srv->mhd.upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
		term_job_free(j);
	}
	pthread_attr_destroy(&at);
}

/* ---- answers ---------------------------------------------------------------------------------------------- */

static enum MHD_Result add_headers(const struct mhd_api *mhd, struct MHD_Response *r, const char *type, bool api)
{
	/* The page loads nothing from elsewhere and may not be framed; xterm.js sets inline styles. */
	static const char *const common[][2] = {
		{ "X-Content-Type-Options", "nosniff" },
		{ "X-Frame-Options", "DENY" },
		{ "Referrer-Policy", "no-referrer" },
		{ "Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; "
					     "connect-src 'self'; frame-ancestors 'none'" },
	};
	enum MHD_Result ok = MHD_YES;
	for (size_t i = 0; i < ARRAY_SIZE(common) && ok == MHD_YES; i++)
		ok = mhd->add_header(r, common[i][0], common[i][1]);
	if (ok == MHD_YES && type)
		ok = mhd->add_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	if (ok == MHD_YES)
		ok = mhd->add_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, api ? "no-store" : "no-cache");
	return ok;
}

static enum MHD_Result queue(const struct mhd_api *mhd, struct MHD_Connection *c, unsigned status,
			     struct MHD_Response *r, const char *type, bool api)
{
	if (!r)
		return MHD_NO;
	enum MHD_Result ok = add_headers(mhd, r, type, api);
	if (ok == MHD_YES)
		ok = mhd->queue_response(c, status, r);
	mhd->destroy_response(r);
	return ok;
}

static enum MHD_Result queue_json(const struct mhd_api *mhd, struct MHD_Connection *c, int status, char *body)
{
	struct MHD_Response *r = body ? mhd->response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE)
				      : mhd->response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	if (!r)
		free(body);
	return queue(mhd, c, (unsigned)status, r, "application/json", true);
}

static enum MHD_Result queue_error(const struct mhd_api *mhd, struct MHD_Connection *c, int status, const char *msg)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "error", json_object_new_string(msg));
	char *body = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return queue_json(mhd, c, status, body);
}

/* Whether the page that opens a WebSocket is this server's own (its Origin names the Host it asked). */
static bool same_origin(const struct mhd_api *mhd, struct MHD_Connection *c)
{
	const char *origin = mhd->lookup_value(c, MHD_HEADER_KIND, "Origin");
	const char *host = mhd->lookup_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
	if (!origin)
		return true; /* not a browser: the token is what counts */
	const char *sep = strstr(origin, "://");
	return host && sep && !strcasecmp(sep + 3, host);
}

static enum MHD_Result queue_upgrade(struct server *srv, struct MHD_Connection *c, struct serve_reply *reply)
{
	const struct mhd_api *mhd = &srv->mhd;
	const char *version = mhd->lookup_value(c, MHD_HEADER_KIND, "Sec-WebSocket-Version");
	char accept[WS_ACCEPT_LEN + 1];
	if (!version || strcmp(version, "13"))
		return queue_error(mhd, c, 426, "a WebSocket of version 13 (RFC 6455) is needed");
	if (!ws_accept_key(mhd->lookup_value(c, MHD_HEADER_KIND, "Sec-WebSocket-Key"), accept))
		return queue_error(mhd, c, 400, "a WebSocket needs a Sec-WebSocket-Key of 16 bytes in base64");
	if (!same_origin(mhd, c))
		return queue_error(mhd, c, 403, "a WebSocket from another site's page");
	if (terminals_full(srv->s))
		return queue_error(mhd, c, 503, "32 terminals are open already: close one");
	struct term_job *j = calloc(1, sizeof(*j));
	if (!j)
		return MHD_NO;
	j->srv = srv;
	j->sock = -1;
	memcpy(j->argv, reply->term_argv, sizeof(j->argv));
	memset(reply->term_argv, 0, sizeof(reply->term_argv)); /* now the job's */
	struct MHD_Response *r = mhd->response_for_upgrade(on_upgraded, j);
	if (!r || mhd->add_header(r, MHD_HTTP_HEADER_UPGRADE, "websocket") != MHD_YES ||
	    mhd->add_header(r, "Sec-WebSocket-Accept", accept) != MHD_YES) {
		if (r)
			mhd->destroy_response(r);
		term_job_free(j);
		return MHD_NO;
	}
	enum MHD_Result ok = mhd->queue_response(c, MHD_HTTP_SWITCHING_PROTOCOLS, r);
	mhd->destroy_response(r);
	return ok;
}

/* ---- requests ----------------------------------------------------------------------------------------------- */

static void client_address(const struct mhd_api *mhd, struct MHD_Connection *c, char *out, size_t len)
{
	const union MHD_ConnectionInfo *ci = mhd->get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	snprintf(out, len, "?");
	if (!ci || !ci->client_addr)
		return;
	const struct sockaddr *sa = ci->client_addr;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)len);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)len);
}

static bool wants_websocket(const struct mhd_api *mhd, struct MHD_Connection *c)
{
	const char *up = mhd->lookup_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_UPGRADE);
	return up && !strcasecmp(up, "websocket");
}

static enum MHD_Result answer(struct server *srv, struct MHD_Connection *c, const char *url, const char *method,
			      struct pending *p)
{
	const struct mhd_api *mhd = &srv->mhd;
	if (p->too_large)
		return queue_error(mhd, c, 413, "request body larger than 65536 bytes");
	char client[INET6_ADDRSTRLEN];
	client_address(mhd, c, client, sizeof(client));
	struct serve_request req = {
		.method = method,
		.path = url,
		.query_token = mhd->lookup_value(c, MHD_GET_ARGUMENT_KIND, "token"),
		.authorization = mhd->lookup_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION),
		.client = client,
		.body = p->body ? p->body : "",
		.body_len = p->len,
		.websocket = wants_websocket(mhd, c),
	};
	struct serve_reply reply;
	serve_handle(srv->s, &req, &reply);
	enum MHD_Result ok;
	if (reply.status == 101) {
		ok = queue_upgrade(srv, c, &reply);
	} else if (reply.file) {
		struct MHD_Response *r = mhd->response_from_buffer(reply.file->len, reply.file->data, MHD_RESPMEM_PERSISTENT);
		ok = queue(mhd, c, 200, r, reply.file->type, false);
	} else {
		ok = queue_json(mhd, c, reply.status, steal_ptr(reply.body));
	}
	serve_reply_free(&reply);
	return ok;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
				  const char *version, const char *upload_data, size_t *upload_size, void **req_cls)
{
	(void)version;
	struct pending *p = *req_cls;
	if (!p) {
		if (!(p = calloc(1, sizeof(*p))))
			return MHD_NO;
		*req_cls = p;
		return MHD_YES;
	}
	if (*upload_size) {
		if (!p->too_large && p->len + *upload_size <= SERVE_BODY_MAX) {
			char *b = realloc(p->body, p->len + *upload_size + 1);
			if (!b)
				return MHD_NO;
			memcpy(b + p->len, upload_data, *upload_size);
			p->len += *upload_size;
			b[p->len] = '\0';
			p->body = b;
		} else {
			p->too_large = true;
		}
		*upload_size = 0;
		return MHD_YES;
	}
	return answer(cls, c, url, method, p);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **req_cls, enum MHD_RequestTerminationCode why)
{
	(void)cls;
	(void)c;
	(void)why;
	struct pending *p = *req_cls;
	if (p) {
		free(p->body);
		free(p);
		*req_cls = NULL;
	}
}

/* ---- the socket ------------------------------------------------------------------------------------------------ */

/* "ADDR:PORT" or "[ADDR6]:PORT" into addr. */
static int parse_listen(const char *spec, struct sockaddr_storage *addr, socklen_t *len, vt_err *err)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon = strrchr(spec, ':');
	uint64_t port;
	if (!colon || colon == spec || (size_t)(colon - spec) >= sizeof(host) || parse_uint(colon + 1, 0, 65535, &port))
		return vt_fail(err, "--listen wants ADDR:PORT (e.g. 127.0.0.1:8006 or [::1]:8006), got '%s'", spec);
	memcpy(host, spec, (size_t)(colon - spec));
	host[colon - spec] = '\0';
	memset(addr, 0, sizeof(*addr));
	struct sockaddr_in *v4 = (struct sockaddr_in *)addr;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)addr;
	size_t hl = strlen(host);
	if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
		host[hl - 1] = '\0';
		if (inet_pton(AF_INET6, host + 1, &v6->sin6_addr) != 1)
			return vt_fail(err, "--listen: '%s' is not an IPv6 address", host + 1);
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*v6);
		return 0;
	}
	if (inet_pton(AF_INET, host, &v4->sin_addr) != 1)
		return vt_fail(err, "--listen: '%s' is not an IPv4 address (IPv6: [ADDR]:PORT)", host);
	v4->sin_family = AF_INET;
	v4->sin_port = htons((uint16_t)port);
	*len = sizeof(*v4);
	return 0;
}

static int listen_on(const char *spec, char *url_host, size_t url_len, unsigned *port, vt_err *err)
{
	struct sockaddr_storage addr;
	socklen_t len;
	if (parse_listen(spec, &addr, &len, err))
		return -1;
	int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0)
		return vt_fail_errno(err, errno, "socket");
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (addr.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&addr, len) < 0 || listen(fd, 64) < 0) {
		int e = errno;
		close(fd);
		return vt_fail_errno(err, e, "cannot listen on %s", spec);
	}
	getsockname(fd, (struct sockaddr *)&addr, &len);
	char host[INET6_ADDRSTRLEN];
	if (addr.ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&addr)->sin6_addr, host, sizeof(host));
		snprintf(url_host, url_len, "[%s]", host);
		*port = ntohs(((struct sockaddr_in6 *)&addr)->sin6_port);
	} else {
		inet_ntop(AF_INET, &((struct sockaddr_in *)&addr)->sin_addr, host, sizeof(host));
		snprintf(url_host, url_len, "%s", host);
		*port = ntohs(((struct sockaddr_in *)&addr)->sin_port);
	}
	return fd;
}

int serve_check_options(const struct serve_options *o, vt_err *err)
{
	struct sockaddr_storage addr;
	socklen_t len;
	if (!o->tls_cert != !o->tls_key)
		return vt_fail(err, "--tls-cert and --tls-key go together");
	if (o->tls_cert && access(o->tls_cert, R_OK))
		return vt_fail_errno(err, errno, "--tls-cert %s", o->tls_cert);
	if (o->tls_key && access(o->tls_key, R_OK))
		return vt_fail_errno(err, errno, "--tls-key %s", o->tls_key);
	return parse_listen(o->listen ? o->listen : SERVE_DEFAULT_LISTEN, &addr, &len, err);
}

static bool is_loopback(const char *url_host)
{
	return !strncmp(url_host, "127.", 4) || !strcmp(url_host, "[::1]");
}

static int read_tls(struct server *srv, const struct serve_options *o, vt_err *err)
{
	if (!o->tls_cert)
		return 0;
	void *cert, *key;
	size_t len;
	if (read_file(o->tls_cert, MiB, &cert, &len, err) < 0)
		return -1;
	srv->tls_cert = cert;
	if (read_file(o->tls_key, MiB, &key, &len, err) < 0)
		return -1;
	srv->tls_key = key;
	return 0;
}

static int start_daemon(struct server *srv, int fd, bool ipv6, vt_err *err)
{
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_ALLOW_UPGRADE |
			 (ipv6 ? MHD_USE_IPv6 : 0) | (srv->tls_cert ? MHD_USE_TLS : 0);
	struct MHD_OptionItem tls[] = {
		{ srv->tls_cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, srv->tls_cert },
		{ MHD_OPTION_HTTPS_MEM_KEY, 0, srv->tls_key },
		{ MHD_OPTION_END, 0, NULL },
	};
	srv->daemon = srv->mhd.start_daemon(flags, 0, NULL, NULL, on_request, srv,
					    MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
					    MHD_OPTION_CONNECTION_LIMIT, SERVE_CONNECTIONS_MAX,
					    MHD_OPTION_PER_IP_CONNECTION_LIMIT, SERVE_CONNECTIONS_PER_IP,
					    MHD_OPTION_CONNECTION_TIMEOUT, SERVE_IDLE_TIMEOUT_S,
					    MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
					    MHD_OPTION_ARRAY, tls,
					    MHD_OPTION_END);
	if (!srv->daemon)
		return vt_fail(err, "libmicrohttpd could not start the server%s", srv->tls_cert ?
			       " (are --tls-cert and --tls-key a PEM certificate and its key?)" : "");
	return 0;
}

/* End the open terminals (their commands are hung up) before MHD, which waits for upgraded connections. */
static void stop_terminals(struct serve *s)
{
	pthread_mutex_lock(&s->terms_lock);
	s->stopping = true;
	for (unsigned i = 0; i < s->n_terms; i++)
		shutdown(s->term_socks[i], SHUT_RDWR);
	pthread_mutex_unlock(&s->terms_lock);
	for (int waited = 0; waited < SERVE_TERMS_STOP_WAIT_MS; waited += 10) {
		pthread_mutex_lock(&s->terms_lock);
		unsigned n = s->n_terms;
		pthread_mutex_unlock(&s->terms_lock);
		if (!n)
			break;
		usleep(10000);
	}
}

int serve_run(struct serve *s, const struct serve_options *o, vt_err *err)
{
	struct server srv = { .s = s };
	char host[INET6_ADDRSTRLEN + 2];
	unsigned port = 0;
	pthread_mutex_init(&s->terms_lock, NULL);
	if (read_tls(&srv, o, err) || mhd_load(&srv.mhd, "virtus serve", err)) {
		free(srv.tls_cert);
		free(srv.tls_key);
		return -1;
	}
	int fd = listen_on(o->listen ? o->listen : SERVE_DEFAULT_LISTEN, host, sizeof(host), &port, err);
	/* the threads MHD starts inherit this mask: only sigwait below takes these signals */
	sigset_t stop;
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	signal(SIGPIPE, SIG_IGN);
	int rc = fd < 0 ? -1 : start_daemon(&srv, fd, host[0] == '[', err);
	if (rc == 0) {
		printf("virtus serve: open %s://%s:%u/#token=%s (token in %s)\n", srv.tls_cert ? "https" : "http", host,
		       port, s->token, s->token_file);
		if (!srv.tls_cert && !is_loopback(host))
			fprintf(stderr, "virtus serve: warning: listening on %s without TLS: the token and everything "
				"else cross the network in the clear (--tls-cert, --tls-key)\n", host);
		fflush(stdout);
		int sig;
		sigwait(&stop, &sig);
		stop_terminals(s);
		srv.mhd.stop_daemon(srv.daemon);
	} else if (fd >= 0) {
		close(fd);
	}
	free(srv.tls_cert);
	free(srv.tls_key);
	return rc;
}

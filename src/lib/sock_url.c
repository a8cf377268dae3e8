/* Stream socket URLs (contract in sock_url.h). */
#include "lib/sock_url.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/unixsock.h"
#include "lib/util.h"

#define HOST_MAX 256

struct tcp_url {
	char host[HOST_MAX];
	char port[8];
};

/* "tcp:HOST:PORT" into its parts ("[v6]" loses its brackets); 0 if url is a tcp URL, -1 with err if it is a
 * malformed one, 1 if it is not tcp at all. */
static int parse_tcp(const char *url, struct tcp_url *t, vt_err *err)
{
	if (strncmp(url, "tcp:", 4))
		return 1;
	const char *host = url + 4, *colon = strrchr(host, ':');
	size_t hlen = colon ? (size_t)(colon - host) : 0;
	if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']')
		host++, hlen -= 2;
	uint64_t port;
	if (!colon || !hlen || hlen >= HOST_MAX || parse_uint(colon + 1, 1, 65535, &port) < 0)
		return vt_fail(err, "'%s': expected tcp:HOST:PORT (a port from 1 to 65535)", url);
	memcpy(t->host, host, hlen);
	t->host[hlen] = 0;
	snprintf(t->port, sizeof(t->port), "%u", (unsigned)port);
	return 0;
}

static int check_scheme(const char *url, vt_err *err)
{
	if (strncmp(url, "tcp:", 4) && strncmp(url, "unix:", 5))
		return vt_fail(err, "'%s': expected tcp:HOST:PORT or unix:PATH", url);
	if (!strncmp(url, "unix:", 5) && !url[5])
		return vt_fail(err, "'%s': the socket path is empty", url);
	return 0;
}

static int lookup(const struct tcp_url *t, bool numeric, bool passive, struct addrinfo **res, vt_err *err)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = (numeric ? AI_NUMERICHOST : 0) | (passive ? AI_PASSIVE : 0) | AI_NUMERICSERV };
	int rc = getaddrinfo(t->host, t->port, &hints, res);
	if (rc == EAI_NONAME && numeric)
		return vt_fail(err, "'%s' is not an IP address (give an address, or let 'virtus vm migrate' resolve the name)",
			       t->host);
	if (rc)
		return vt_fail(err, "cannot resolve '%s': %s", t->host, gai_strerror(rc));
	return 0;
}

int sock_url_resolve(const char *url, char *out, size_t len, vt_err *err)
{
	struct tcp_url t;
	struct addrinfo *res;
	char addr[NI_MAXHOST];
	if (check_scheme(url, err) < 0)
		return -1;
	int rc = parse_tcp(url, &t, err);
	if (rc < 0)
		return -1;
	if (rc > 0) {
		if (strlen(url) >= len)
			return vt_fail(err, "'%s' is too long", url);
		strcpy(out, url);
		return 0;
	}
	if (lookup(&t, false, false, &res, err) < 0)
		return -1;
	rc = getnameinfo(res->ai_addr, res->ai_addrlen, addr, sizeof(addr), NULL, 0, NI_NUMERICHOST);
	bool v6 = res->ai_family == AF_INET6;
	freeaddrinfo(res);
	if (rc)
		return vt_fail(err, "cannot write %s's address: %s", t.host, gai_strerror(rc));
	if ((size_t)snprintf(out, len, v6 ? "tcp:[%s]:%s" : "tcp:%s:%s", addr, t.port) >= len)
		return vt_fail(err, "'%s' is too long", url);
	return 0;
}

/* connect() within timeout_ms: non-blocking, then poll, then blocking again. */
static int connect_within(int fd, const struct sockaddr *a, socklen_t alen, int timeout_ms)
{
	int flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return -1;
	if (connect(fd, a, alen) < 0) {
		if (errno != EINPROGRESS)
			return -1;
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		int rc = poll(&p, 1, timeout_ms), soerr = 0;
		socklen_t sl = sizeof(soerr);
		if (rc == 0)
			errno = ETIMEDOUT;
		if (rc <= 0)
			return -1;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
			return -1;
		if (soerr) {
			errno = soerr;
			return -1;
		}
	}
	return fcntl(fd, F_SETFL, flags);
}

/* url's address: 0 and *res for tcp, 1 for unix (the path is url + 5), -1 with err. */
static int url_address(const char *url, bool numeric, bool passive, struct addrinfo **res, vt_err *err)
{
	struct tcp_url t;
	if (check_scheme(url, err) < 0)
		return -1;
	int rc = parse_tcp(url, &t, err);
	if (rc != 0)
		return rc;
	return lookup(&t, numeric, passive, res, err);
}

int sock_url_connect(const char *url, int timeout_ms, bool numeric_only, vt_err *err)
{
	struct addrinfo *res;
	int rc = url_address(url, numeric_only, false, &res, err);
	if (rc != 0)
		return rc < 0 ? -1 : unix_connect(url + 5, err);
	int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect_within(fd, res->ai_addr, res->ai_addrlen, timeout_ms) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		freeaddrinfo(res);
		return vt_fail_errno(err, e, "cannot connect to %s", url);
	}
	freeaddrinfo(res);
	return fd;
}

int sock_url_listen(const char *url, vt_err *err)
{
	struct addrinfo *res;
	int rc = url_address(url, false, true, &res, err);
	if (rc != 0)
		return rc < 0 ? -1 : unix_listen(url + 5, 1, err);
	int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 1) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		freeaddrinfo(res);
		return vt_fail_errno(err, e, "cannot listen on %s", url);
	}
	freeaddrinfo(res);
	return fd;
}

/* vsock: a tiny netcat for AF_VSOCK (busybox has none) and for virtus's hybrid Unix sockets, so one static
 * binary serves both the guest and the host side of a test. Every sub-command copies stdin to the socket
 * and the socket to stdout until both have ended; stdin's EOF becomes shutdown(SHUT_WR).
 *
 *   vsock connect CID PORT          connect to an AF_VSOCK port
 *   vsock listen PORT               accept one AF_VSOCK connection on PORT
 *   vsock unix-connect PATH [LINE]  connect to a Unix socket; send LINE + "\n" first and print the reply
 *                                   line to stderr (virtus's "CONNECT P" handshake: exit 1 unless "OK ...")
 *   vsock unix-listen PATH          accept one connection on a new Unix socket PATH (removed after accept)
 *
 * Exit status 0 when both directions ended cleanly, 1 on any error (printed to stderr). */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

static int fail(const char *what)
{
	fprintf(stderr, "vsock: %s: %s\n", what, strerror(errno));
	return -1;
}

static int parse_u32(const char *s, unsigned *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (!*s || *end || errno || v > 0xffffffffUL) {
		fprintf(stderr, "vsock: '%s' is not a number\n", s);
		return -1;
	}
	*out = (unsigned)v;
	return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w, n -= (size_t)w;
	}
	return 0;
}

/* Send what is pending for the socket without blocking; -1 if the peer is gone. */
static int flush_to_sock(int sock, const char *buf, size_t *off, size_t *len)
{
	ssize_t w = send(sock, buf + *off, *len, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (w < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : fail("writing to the socket");
	*off += (size_t)w, *len -= (size_t)w;
	return 0;
}

/* Copy stdin -> sock and sock -> stdout until both are at EOF. The socket is never written with a blocking
 * call: two such copiers facing each other (each blocked writing while the other is too) would deadlock
 * once both directions' buffers are full, so the socket is always read while our bytes wait for room. */
static int bridge(int sock)
{
	static char in[65536], out[65536];
	size_t in_off = 0, in_len = 0;
	bool in_open = true, sock_open = true;
	while (in_open || in_len || sock_open) {
		short sock_events = (short)((sock_open ? POLLIN : 0) | (in_len ? POLLOUT : 0));
		struct pollfd p[2] = { { .fd = in_open && !in_len ? 0 : -1, .events = POLLIN },
				       { .fd = sock_events ? sock : -1, .events = sock_events } };
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return fail("poll");
		}
		if (p[0].revents) {
			ssize_t n = read(0, in, sizeof(in));
			if (n < 0 && errno != EINTR)
				return fail("reading stdin");
			if (n == 0) {
				in_open = false;
				shutdown(sock, SHUT_WR);
			} else if (n > 0) {
				in_off = 0, in_len = (size_t)n;
			}
		}
		if (in_len && (p[1].revents & (POLLOUT | POLLERR | POLLHUP)) && flush_to_sock(sock, in, &in_off, &in_len) < 0)
			return -1;
		if (sock_open && (p[1].revents & (POLLIN | POLLERR | POLLHUP))) {
			ssize_t n = recv(sock, out, sizeof(out), MSG_DONTWAIT);
			if (n < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
				return fail("reading the socket");
			if (n == 0)
				sock_open = false;
			else if (n > 0 && write_all(1, out, (size_t)n) < 0)
				return fail("writing stdout");
		}
	}
	return 0;
}

static int vsock_connect(const char *cid_s, const char *port_s)
{
	unsigned cid, port;
	if (parse_u32(cid_s, &cid) < 0 || parse_u32(port_s, &port) < 0)
		return -1;
	struct sockaddr_vm sa = { .svm_family = AF_VSOCK, .svm_cid = cid, .svm_port = port };
	int fd = socket(AF_VSOCK, SOCK_STREAM, 0);
	if (fd < 0)
		return fail("socket(AF_VSOCK)");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return fail("connect");
	return fd;
}

static int vsock_listen(const char *port_s)
{
	unsigned port;
	if (parse_u32(port_s, &port) < 0)
		return -1;
	struct sockaddr_vm sa = { .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port };
	int fd = socket(AF_VSOCK, SOCK_STREAM, 0);
	if (fd < 0)
		return fail("socket(AF_VSOCK)");
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0)
		return fail("bind/listen");
	fprintf(stderr, "vsock: listening on port %u\n", port);
	int c = accept(fd, NULL, NULL);
	if (c < 0)
		return fail("accept");
	close(fd);
	return c;
}

static int unix_addr(struct sockaddr_un *sa, const char *path)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path)) {
		fprintf(stderr, "vsock: path too long: %s\n", path);
		return -1;
	}
	strcpy(sa->sun_path, path);
	return 0;
}

/* Send LINE, read the reply line byte by byte (so no data after it is swallowed). */
static int handshake(int fd, const char *line)
{
	char reply[64];
	size_t n = 0;
	if (write_all(fd, line, strlen(line)) < 0 || write_all(fd, "\n", 1) < 0)
		return fail("sending the line");
	while (n < sizeof(reply) - 1) {
		ssize_t r = read(fd, reply + n, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (reply[n] == '\n')
			break;
		n++;
	}
	reply[n] = 0;
	fprintf(stderr, "%s\n", n ? reply : "vsock: connection closed without a reply");
	return strncmp(reply, "OK ", 3) ? -1 : 0;
}

static int unix_connect(const char *path, const char *line)
{
	struct sockaddr_un sa;
	if (unix_addr(&sa, path) < 0)
		return -1;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0)
		return fail("socket(AF_UNIX)");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return fail(path);
	if (line && handshake(fd, line) < 0)
		return -1;
	return fd;
}

static int unix_listen(const char *path)
{
	struct sockaddr_un sa;
	if (unix_addr(&sa, path) < 0)
		return -1;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0)
		return fail("socket(AF_UNIX)");
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0)
		return fail(path);
	fprintf(stderr, "vsock: listening on %s\n", path);
	int c = accept(fd, NULL, NULL);
	unlink(path);
	if (c < 0)
		return fail("accept");
	close(fd);
	return c;
}

static int usage(void)
{
	fputs("usage: vsock connect CID PORT | listen PORT | unix-connect PATH [LINE] | unix-listen PATH\n", stderr);
	return 2;
}

int main(int argc, char **argv)
{
	int fd;
	if (argc == 4 && !strcmp(argv[1], "connect"))
		fd = vsock_connect(argv[2], argv[3]);
	else if (argc == 3 && !strcmp(argv[1], "listen"))
		fd = vsock_listen(argv[2]);
	else if ((argc == 3 || argc == 4) && !strcmp(argv[1], "unix-connect"))
		fd = unix_connect(argv[2], argc == 4 ? argv[3] : NULL);
	else if (argc == 3 && !strcmp(argv[1], "unix-listen"))
		fd = unix_listen(argv[2]);
	else
		return usage();
	if (fd < 0)
		return 1;
	return bridge(fd) < 0 ? 1 : 0;
}

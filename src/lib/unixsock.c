#include "lib/unixsock.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/util.h"

int unix_socket_addr(const char *path, struct sockaddr_un *addr, vt_err *err)
{
	size_t len = strlen(path);
	if (len == 0 || len >= sizeof(addr->sun_path))
		return vt_fail(err, "socket path '%s' is empty or longer than %zu bytes", path, sizeof(addr->sun_path) - 1);
	*addr = (struct sockaddr_un){ .sun_family = AF_UNIX };
	memcpy(addr->sun_path, path, len + 1);
	return 0;
}

int unix_connect(const char *path, vt_err *err)
{
	struct sockaddr_un a;
	if (unix_socket_addr(path, &a, err) < 0)
		return -1;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return vt_fail_errno(err, errno, "socket");
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		int e = errno;
		close(fd);
		vt_fail_errno(err, e, "cannot connect to %s", path);
		errno = e;
		return -1;
	}
	return fd;
}

/* Whatever is at path may be replaced only if it is a socket nobody listens on. */
static int clear_stale(const char *path, const struct sockaddr_un *a, vt_err *err)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : vt_fail_errno(err, errno, "cannot look at %s", path);
	if (!S_ISSOCK(st.st_mode))
		return vt_fail(err, "%s exists and is not a socket: not replacing it", path);
	cleanup_close int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (probe < 0)
		return vt_fail_errno(err, errno, "socket");
	if (connect(probe, (const struct sockaddr *)a, sizeof(*a)) == 0)
		return vt_fail(err, "%s is in use by a running program", path);
	if (errno != ECONNREFUSED)
		return vt_fail_errno(err, errno, "cannot probe the socket %s", path);
	if (unlink(path) < 0 && errno != ENOENT)
		return vt_fail_errno(err, errno, "cannot remove the stale socket %s", path);
	return 0;
}

/* The mode is set before listen(): until then a connect() is refused anyway, so no client ever reaches the
 * socket with the umask's mode (and the process-wide umask is left alone). */
int unix_listen(const char *path, int backlog, vt_err *err)
{
	struct sockaddr_un a;
	if (unix_socket_addr(path, &a, err) < 0 || clear_stale(path, &a, err) < 0)
		return -1;
	cleanup_close int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return vt_fail_errno(err, errno, "socket");
	if (bind(fd, (const struct sockaddr *)&a, sizeof(a)) < 0)
		return vt_fail_errno(err, errno, "cannot bind the socket %s", path);
	if (chmod(path, 0600) < 0 || listen(fd, backlog) < 0) {
		int e = errno;
		unlink(path);
		return vt_fail_errno(err, e, "cannot listen on %s", path);
	}
	return steal_fd(fd);
}

#define UNIX_MAX_FDS 8

ssize_t unix_send_fds(int sock, const void *buf, size_t len, const int *fds, unsigned nfds)
{
	union {
		char buf[CMSG_SPACE(UNIX_MAX_FDS * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (nfds > UNIX_MAX_FDS) {
		errno = EINVAL;
		return -1;
	}
	if (nfds) {
		m.msg_control = ctl.buf;
		m.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		struct cmsghdr *c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
	}
	return sendmsg(sock, &m, MSG_NOSIGNAL);
}

ssize_t unix_recv_fds(int sock, void *buf, size_t len, int *fds, unsigned max, unsigned *nfds, int flags)
{
	union {
		char buf[CMSG_SPACE(UNIX_MAX_FDS * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
	ssize_t n = recvmsg(sock, &m, flags | MSG_CMSG_CLOEXEC);
	*nfds = 0;
	for (struct cmsghdr *c = n >= 0 ? CMSG_FIRSTHDR(&m) : NULL; c; c = CMSG_NXTHDR(&m, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (*nfds < max)
				fds[(*nfds)++] = fd;
			else
				close(fd);
		}
	}
	if (n >= 0 && (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)))
		return -1;
	return n;
}

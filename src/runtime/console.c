/* --console-socket: the container's pty is created inside the container (its own devpts) and the master
 * is handed to the caller over a unix socket with SCM_RIGHTS; the slave becomes the process's stdio. */
#include "runtime/rt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>

int rt_console_connect(const char *path, vt_err *err)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(addr.sun_path))
		return vt_fail(err, "--console-socket path '%s' is too long", path);
	strcpy(addr.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return vt_fail_errno(err, errno, "console socket");
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr))) {
		int e = errno;
		close(fd);
		return vt_fail_errno(err, e, "--console-socket: cannot connect to %s", path);
	}
	return fd;
}

int rt_console_send(int sock, int fd, const char *name, vt_err *err)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { .iov_base = (void *)name, .iov_len = strlen(name) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	if (sendmsg(sock, &msg, MSG_NOSIGNAL) < 0)
		return vt_fail_errno(err, errno, "cannot send the pty master over the console socket");
	return 0;
}

int rt_console_recv(int sock, vt_err *err)
{
	char name[64], cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { .iov_base = name, .iov_len = sizeof(name) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	ssize_t n;
	do
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	struct cmsghdr *c = n > 0 ? CMSG_FIRSTHDR(&msg) : NULL;
	if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
		return vt_fail_errno(err, n < 0 ? errno : EPROTO, "no pty master arrived from the container");
	int fd;
	memcpy(&fd, CMSG_DATA(c), sizeof(int));
	return fd;
}

int rt_console_setup(int sock, unsigned short rows, unsigned short cols, vt_err *err)
{
	cleanup_close int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master < 0)
		return vt_fail_errno(err, errno, "process.terminal: cannot open /dev/ptmx (is devpts mounted?)");
	if (unlockpt(master))
		return vt_fail_errno(err, errno, "unlockpt");
	char name[64];
	if (ptsname_r(master, name, sizeof(name)))
		return vt_fail_errno(err, errno, "ptsname");
	cleanup_close int slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (slave < 0)
		return vt_fail_errno(err, errno, "cannot open %s", name);
	struct winsize ws = { .ws_row = rows, .ws_col = cols };
	if (rows && cols && ioctl(slave, TIOCSWINSZ, &ws))
		return vt_fail_errno(err, errno, "process.consoleSize");
	if (rt_console_send(sock, master, name, err))
		return -1;
	if (setsid() < 0 && errno != EPERM)
		return vt_fail_errno(err, errno, "setsid");
	if (ioctl(slave, TIOCSCTTY, 0))
		return vt_fail_errno(err, errno, "cannot make %s the controlling terminal", name);
	for (int i = 0; i < 3; i++)
		if (dup2(slave, i) < 0)
			return vt_fail_errno(err, errno, "dup2 pty");
	return 0;
}

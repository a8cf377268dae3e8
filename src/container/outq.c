/* A non-blocking output queue (contract in outq.h). */
#include "container/outq.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* O_NONBLOCK cannot be set on the descriptor itself (its open file is shared with the client's shell or
 * terminal): a pipe or a terminal is opened again (a file of its own, O_NONBLOCK); a socket takes
 * MSG_DONTWAIT; a regular file never blocks (and must keep the shared offset the client's shell writes at),
 * nor does anything else worth a reopening. */
void outq_open(struct outq *q, int fd)
{
	struct stat st;
	q->fd = fd;
	if (fstat(fd, &st))
		return;
	if (S_ISSOCK(st.st_mode)) {
		q->sock = true;
	} else if (S_ISFIFO(st.st_mode) || (S_ISCHR(st.st_mode) && st.st_rdev != makedev(5, 2))) {
		/* (not /dev/ptmx, 5:2: opening it again would make a new terminal, not reach this one) */
		char path[64];
		int flags = fcntl(fd, F_GETFL);
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		int nb = flags < 0 ? -1 : open(path, O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC | (flags & O_APPEND));
		if (nb >= 0) {
			close(fd);
			q->fd = nb;
		}
	}
}

/* Write what the descriptor takes now; false when the reader is gone. */
static bool write_some(struct outq *q, const uint8_t *data, size_t len, size_t *done)
{
	*done = 0;
	while (*done < len) {
		ssize_t n = q->sock ? send(q->fd, data + *done, len - *done, MSG_DONTWAIT | MSG_NOSIGNAL)
				    : write(q->fd, data + *done, len - *done);
		if (n > 0) {
			*done += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
	}
	return true;
}

void outq_drop(struct outq *q)
{
	if (q->fd >= 0)
		close(q->fd);
	q->fd = -1;
	q->len = 0;
}

void outq_free(struct outq *q)
{
	outq_drop(q);
	free(q->buf);
	*q = OUTQ_NONE;
}

static void enqueue(struct outq *q, const uint8_t *data, size_t len)
{
	if (q->len + len > q->cap) {
		size_t cap = q->cap ? q->cap : 65536;
		while (cap < q->len + len)
			cap *= 2;
		uint8_t *b = realloc(q->buf, cap);
		if (!b) {
			outq_drop(q);
			return;
		}
		q->buf = b;
		q->cap = cap;
	}
	memcpy(q->buf + q->len, data, len);
	q->len += len;
}

void outq_put(struct outq *q, const uint8_t *data, size_t len)
{
	size_t done = 0;
	if (q->fd < 0)
		return;
	if (!q->len && !write_some(q, data, len, &done)) {
		outq_drop(q);
		return;
	}
	if (done < len)
		enqueue(q, data + done, len - done);
}

void outq_flush(struct outq *q)
{
	size_t done;
	if (q->fd < 0)
		return;
	if (!write_some(q, q->buf, q->len, &done)) {
		outq_drop(q);
		return;
	}
	memmove(q->buf, q->buf + done, q->len - done);
	q->len -= done;
}

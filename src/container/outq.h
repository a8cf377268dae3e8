/* Output to a descriptor the monitor of a VM-isolated container must never block on (a `virtus exec`
 * client's stdout, the foreground caller's): what the descriptor does not take now waits in a queue,
 * written when poll says the descriptor takes more. The caller watches the queue's size to have the agent
 * stop reading the process (FLOW) and so hold the process up, as a full pipe would. Internal to
 * src/container. */
#ifndef VIRTUS_CONTAINER_OUTQ_H
#define VIRTUS_CONTAINER_OUTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct outq {
	int fd;             /* the descriptor, or our non-blocking reopening of it; -1 once gone */
	bool sock;          /* a socket: written with MSG_DONTWAIT */
	uint8_t *buf;
	size_t len, cap;
};

#define OUTQ_NONE ((struct outq){ .fd = -1 })

/* Take fd (it is ours from now on, closed by outq_free/outq_drop). */
void outq_open(struct outq *q, int fd);
/* Write what the descriptor takes now, queue the rest. A reader that is gone drops the output (as a closed
 * pipe's would be) and closes the descriptor. */
void outq_put(struct outq *q, const uint8_t *data, size_t len);
/* Write the queue as far as the descriptor takes it. */
void outq_flush(struct outq *q);
/* Poll the descriptor for POLLOUT? */
static inline bool outq_waiting(const struct outq *q) { return q->fd >= 0 && q->len; }
/* Close the descriptor and forget the queue (the buffer is kept for outq_free). */
void outq_drop(struct outq *q);
void outq_free(struct outq *q);

#endif

/* The device thread: one epoll loop for every device of a VM. It waits on the queues' ioeventfds (and,
 * later, device fds: tap, disk completions, sockets) and runs the device's handler there, never on a vCPU.
 *
 * Why one thread for all devices rather than one per device: this host has 2 cores; device work per kick
 * is short (copying buffers, a syscall), so extra threads would buy contention and context switches, not
 * throughput. A device whose work blocks (disk I/O) keeps its own worker pool or io_uring and reports
 * completions through an fd watched here. */
#ifndef VIRTUS_EVENTLOOP_H
#define VIRTUS_EVENTLOOP_H

#include <pthread.h>
#include <stdbool.h>

#include "lib/err.h"

#define EVLOOP_MAX_WATCHES 64

struct evloop_watch {
	int fd;
	void (*fn)(void *arg);
	void *arg;
};

struct evloop {
	int epfd;
	int stop_fd;              /* eventfd: wakes the loop to end it */
	pthread_t thread;
	bool running;
	unsigned n;
	struct evloop_watch watch[EVLOOP_MAX_WATCHES];
};

int evloop_init(struct evloop *l, vt_err *err);
/* Call fn(arg) on the loop thread whenever fd is readable. Add watches before evloop_start. */
int evloop_watch(struct evloop *l, int fd, void (*fn)(void *arg), void *arg, vt_err *err);
int evloop_start(struct evloop *l, vt_err *err);
/* Stop and join the thread (if started), close the loop's own fds. Watched fds stay open. */
void evloop_destroy(struct evloop *l);

#endif

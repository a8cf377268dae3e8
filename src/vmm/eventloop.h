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
#include <stdint.h>

#include "lib/err.h"

#define EVLOOP_MAX_WATCHES 64

struct evloop_watch {
	int fd;                   /* -1: a free entry */
	void (*fn)(void *arg);    /* NULL once unwatched (read atomically by the loop) */
	void *arg;
};

struct evloop {
	int epfd;
	int stop_fd;              /* eventfd: wakes the loop to end it */
	int sync_fd;              /* eventfd: wakes the loop so that it reports a finished batch */
	pthread_t thread;
	bool running;
	unsigned n;               /* entries in use or once used: watch[0..n) */
	struct evloop_watch watch[EVLOOP_MAX_WATCHES];
	/* Removal barrier: a remover waits until the loop has finished a batch begun after its request. */
	pthread_mutex_t sync_lock;
	pthread_cond_t synced;
	uint64_t sync_asked, sync_done;
};

int evloop_init(struct evloop *l, vt_err *err);
/* Call fn(arg) on the loop thread whenever fd is readable. One controlling thread adds and removes watches,
 * before or while the loop runs (a device plugged into a running VM). */
int evloop_watch(struct evloop *l, int fd, void (*fn)(void *arg), void *arg, vt_err *err);
/* Stop watching fd: when this returns, the loop is not running fn for it and never will again (so fd and
 * arg may go). Never called from the loop thread itself. Unknown fds are ignored. */
void evloop_unwatch(struct evloop *l, int fd);
int evloop_start(struct evloop *l, vt_err *err);
/* Stop and join the thread (if started), close the loop's own fds. Watched fds stay open. */
void evloop_destroy(struct evloop *l);

#endif

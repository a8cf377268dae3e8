#include "vmm/eventloop.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "lib/thread_role.h"

#define EVLOOP_BATCH 16

int evloop_init(struct evloop *l, vt_err *err)
{
	memset(l, 0, sizeof(*l));
	l->epfd = l->stop_fd = -1;
	if ((l->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
		return vt_fail_errno(err, errno, "epoll_create1");
	if ((l->stop_fd = eventfd(0, EFD_CLOEXEC)) < 0)
		return vt_fail_errno(err, errno, "eventfd");
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL }; /* NULL marks the stop fd */
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->stop_fd, &ev) < 0)
		return vt_fail_errno(err, errno, "epoll_ctl");
	return 0;
}

int evloop_watch(struct evloop *l, int fd, void (*fn)(void *arg), void *arg, vt_err *err)
{
	if (l->running)
		return vt_fail(err, "event loop: watches must be added before it starts");
	if (l->n == EVLOOP_MAX_WATCHES)
		return vt_fail(err, "event loop: more than %d watched fds", EVLOOP_MAX_WATCHES);
	struct evloop_watch *w = &l->watch[l->n];
	*w = (struct evloop_watch){ .fd = fd, .fn = fn, .arg = arg };
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = w };
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return vt_fail_errno(err, errno, "event loop: epoll_ctl");
	l->n++;
	return 0;
}

static void *loop_thread(void *arg)
{
	struct evloop *l = arg;
	thread_role_enter(THREAD_DEVICE);
	for (;;) {
		struct epoll_event ev[EVLOOP_BATCH];
		int n = epoll_wait(l->epfd, ev, EVLOOP_BATCH, -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return NULL;
		for (int i = 0; i < n; i++) {
			struct evloop_watch *w = ev[i].data.ptr;
			if (!w)
				return NULL;
			w->fn(w->arg);
		}
	}
}

int evloop_start(struct evloop *l, vt_err *err)
{
	int rc = pthread_create(&l->thread, NULL, loop_thread, l);
	if (rc)
		return vt_fail_errno(err, rc, "cannot start the device thread");
	l->running = true;
	return 0;
}

void evloop_destroy(struct evloop *l)
{
	if (l->running) {
		uint64_t one = 1;
		if (write(l->stop_fd, &one, sizeof(one)) < 0) {
			/* only on counter overflow, when a stop is already pending */
		}
		pthread_join(l->thread, NULL);
		l->running = false;
	}
	if (l->stop_fd >= 0)
		close(l->stop_fd);
	if (l->epfd >= 0)
		close(l->epfd);
	l->stop_fd = l->epfd = -1;
}

#include "vmm/eventloop.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "lib/thread_role.h"

#define EVLOOP_BATCH 16

/* epoll data of the loop's own fds (a watch's is its entry) */
static char stop_marker, sync_marker;

static int add_own_fd(struct evloop *l, int *fd, void *marker, vt_err *err)
{
	if ((*fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
		return vt_fail_errno(err, errno, "eventfd");
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = marker };
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, *fd, &ev) < 0)
		return vt_fail_errno(err, errno, "epoll_ctl");
	return 0;
}

int evloop_init(struct evloop *l, vt_err *err)
{
	memset(l, 0, sizeof(*l));
	l->epfd = l->stop_fd = l->sync_fd = -1;
	pthread_mutex_init(&l->sync_lock, NULL);
	pthread_cond_init(&l->synced, NULL);
	if ((l->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
		return vt_fail_errno(err, errno, "epoll_create1");
	if (add_own_fd(l, &l->stop_fd, &stop_marker, err) < 0 || add_own_fd(l, &l->sync_fd, &sync_marker, err) < 0)
		return -1;
	return 0;
}

/* A free entry: never used, or unwatched (the removal barrier has passed, so no event names it any more). */
static struct evloop_watch *free_entry(struct evloop *l)
{
	for (unsigned i = 0; i < l->n; i++)
		if (l->watch[i].fd < 0)
			return &l->watch[i];
	return l->n < EVLOOP_MAX_WATCHES ? &l->watch[l->n++] : NULL;
}

int evloop_watch(struct evloop *l, int fd, void (*fn)(void *arg), void *arg, vt_err *err)
{
	struct evloop_watch *w = free_entry(l);
	if (!w)
		return vt_fail(err, "event loop: more than %d watched fds", EVLOOP_MAX_WATCHES);
	w->arg = arg;
	__atomic_store_n(&w->fn, fn, __ATOMIC_RELEASE);
	w->fd = fd;
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = w };
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		w->fd = -1;
		return vt_fail_errno(err, errno, "event loop: epoll_ctl");
	}
	return 0;
}

/* Wait until the loop finishes a batch that it began after this call: it is then past every event
 * returned before (an entry cleared before the call is never run after it). */
static void wait_for_batch(struct evloop *l)
{
	pthread_mutex_lock(&l->sync_lock);
	uint64_t ticket = __atomic_add_fetch(&l->sync_asked, 1, __ATOMIC_ACQ_REL);
	uint64_t one = 1;
	if (write(l->sync_fd, &one, sizeof(one)) < 0) {
		/* only on counter overflow: a wakeup is pending anyway */
	}
	while (l->running && l->sync_done < ticket)
		pthread_cond_wait(&l->synced, &l->sync_lock);
	pthread_mutex_unlock(&l->sync_lock);
}

void evloop_unwatch(struct evloop *l, int fd)
{
	for (unsigned i = 0; i < l->n; i++) {
		struct evloop_watch *w = &l->watch[i];
		if (w->fd != fd)
			continue;
		epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
		__atomic_store_n(&w->fn, NULL, __ATOMIC_RELEASE);
		if (l->running)
			wait_for_batch(l);
		w->fd = -1;
		return;
	}
}

/* The batch is over: every remover that asked before it began may go on. */
static void report_batch(struct evloop *l, uint64_t asked)
{
	uint64_t count;
	if (read(l->sync_fd, &count, sizeof(count)) < 0) {
		/* EAGAIN: already read */
	}
	pthread_mutex_lock(&l->sync_lock);
	if (l->sync_done < asked)
		l->sync_done = asked;
	uint64_t one = 1;
	/* a request that came in after the batch began needs another one (its wakeup was read above) */
	if (l->sync_asked > asked && write(l->sync_fd, &one, sizeof(one)) < 0) {
		/* only on counter overflow */
	}
	pthread_cond_broadcast(&l->synced);
	pthread_mutex_unlock(&l->sync_lock);
}

static void *loop_thread(void *arg)
{
	struct evloop *l = arg;
	thread_role_enter(THREAD_DEVICE);
	for (;;) {
		struct epoll_event ev[EVLOOP_BATCH];
		/* requests made before this batch begins (written under sync_lock; no lock on the hot path) */
		uint64_t asked = __atomic_load_n(&l->sync_asked, __ATOMIC_ACQUIRE);
		int n = epoll_wait(l->epfd, ev, EVLOOP_BATCH, -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return NULL;
		bool sync = false;
		for (int i = 0; i < n; i++) {
			struct evloop_watch *w = ev[i].data.ptr;
			if (ev[i].data.ptr == &stop_marker)
				return NULL;
			if (ev[i].data.ptr == &sync_marker) {
				sync = true;
				continue;
			}
			void (*fn)(void *) = __atomic_load_n(&w->fn, __ATOMIC_ACQUIRE);
			if (fn)
				fn(w->arg);
		}
		if (sync)
			report_batch(l, asked);
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
	if (l->sync_fd >= 0)
		close(l->sync_fd);
	if (l->epfd >= 0)
		close(l->epfd);
	l->stop_fd = l->sync_fd = l->epfd = -1;
	pthread_cond_destroy(&l->synced);
	pthread_mutex_destroy(&l->sync_lock);
}

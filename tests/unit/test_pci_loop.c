/* The device thread: a watched eventfd's callback runs on the loop thread (not the caller's), kicks written
 * before the loop reads them coalesce, destroy stops and joins the thread; watches come and go while the loop
 * runs (a device plugged into a running VM), and an unwatch returns only once the callback cannot run. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <cmocka.h>

#include "vmm/eventloop.h"

struct counter {
	int fd;
	uint64_t total;
	unsigned calls;
	pthread_t ran_on;
};

static void drain(void *arg)
{
	struct counter *c = arg;
	uint64_t n;
	if (read(c->fd, &n, sizeof(n)) == sizeof(n)) {
		__atomic_add_fetch(&c->total, n, __ATOMIC_SEQ_CST);
		c->ran_on = pthread_self();
		__atomic_add_fetch(&c->calls, 1, __ATOMIC_SEQ_CST);
	}
}

static void wait_for(const uint64_t *v, uint64_t want)
{
	for (int i = 0; i < 500 && __atomic_load_n(v, __ATOMIC_SEQ_CST) < want; i++)
		usleep(2000);
}

static void loop_runs_callbacks_on_its_thread(void **state)
{
	(void)state;
	struct evloop l;
	vt_err err;
	struct counter c = { .fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC) };
	assert_true(c.fd >= 0);
	assert_int_equal(evloop_init(&l, &err), 0);
	assert_int_equal(evloop_watch(&l, c.fd, drain, &c, &err), 0);
	uint64_t three = 3;
	assert_int_equal(write(c.fd, &three, sizeof(three)), sizeof(three)); /* pending before start */
	assert_int_equal(evloop_start(&l, &err), 0);
	assert_int_equal(evloop_watch(&l, c.fd, drain, &c, &err), -1);       /* the same fd twice: refused */
	wait_for(&c.total, 3);
	assert_int_equal(c.total, 3);
	uint64_t one = 1;
	assert_int_equal(write(c.fd, &one, sizeof(one)), sizeof(one));
	wait_for(&c.total, 4);
	assert_int_equal(c.total, 4);
	assert_false(pthread_equal(c.ran_on, pthread_self()));
	evloop_destroy(&l);
	assert_int_equal(write(c.fd, &one, sizeof(one)), sizeof(one));
	usleep(20000);
	assert_int_equal(c.total, 4); /* stopped: nobody reads any more */
	close(c.fd);
}

/* A callback that takes its time: the unwatch that comes meanwhile must wait for it. */
struct slow {
	struct counter c;
	unsigned running;     /* inside the callback now */
	unsigned after_unwatch; /* calls that began after evloop_unwatch returned */
	unsigned unwatched;
};

static void slow_drain(void *arg)
{
	struct slow *s = arg;
	__atomic_store_n(&s->running, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&s->unwatched, __ATOMIC_SEQ_CST))
		__atomic_add_fetch(&s->after_unwatch, 1, __ATOMIC_SEQ_CST);
	usleep(30000);
	drain(&s->c);
	__atomic_store_n(&s->running, 0, __ATOMIC_SEQ_CST);
}

static void watches_come_and_go_while_it_runs(void **state)
{
	(void)state;
	struct evloop l;
	vt_err err;
	assert_int_equal(evloop_init(&l, &err), 0);
	assert_int_equal(evloop_start(&l, &err), 0);
	uint64_t one = 1;
	for (int round = 0; round < 20; round++) {
		struct slow s = { .c = { .fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC) } };
		assert_true(s.c.fd >= 0);
		assert_int_equal(evloop_watch(&l, s.c.fd, slow_drain, &s, &err), 0);
		assert_int_equal(write(s.c.fd, &one, sizeof(one)), sizeof(one));
		while (!__atomic_load_n(&s.running, __ATOMIC_SEQ_CST) && !__atomic_load_n(&s.c.calls, __ATOMIC_SEQ_CST))
			usleep(100);
		assert_int_equal(write(s.c.fd, &one, sizeof(one)), sizeof(one)); /* more work queued meanwhile */
		evloop_unwatch(&l, s.c.fd);
		assert_int_equal(__atomic_load_n(&s.running, __ATOMIC_SEQ_CST), 0); /* the call in progress has ended */
		__atomic_store_n(&s.unwatched, 1, __ATOMIC_SEQ_CST);
		assert_int_equal(write(s.c.fd, &one, sizeof(one)), sizeof(one));
		usleep(5000);
		assert_int_equal(s.after_unwatch, 0);
		close(s.c.fd); /* the entry is free for the next round's fd */
	}
	assert_true(l.n <= 2); /* entries are reused */
	evloop_destroy(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(loop_runs_callbacks_on_its_thread),
		cmocka_unit_test(watches_come_and_go_while_it_runs),
	};
	return cmocka_run_group_tests_name("pci-loop", tests, NULL, NULL);
}

/* Worker-pool engine: a few threads run requests synchronously (blk_exec_sync) and queue them as done;
 * the owner runs the callbacks in blk_poll_completions, so callbacks never run on a worker.
 *
 * Flush ordering mirrors io_uring's IOSQE_IO_DRAIN: a flush at the head of the queue waits until no
 * request is running, and nothing behind it starts until it has finished. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "block/engine.h"
#include "lib/thread_role.h"
#include "lib/util.h"

struct pool {
	pthread_mutex_t lock;
	pthread_cond_t work;
	struct blk_fifo todo;         /* kicked, not started */
	struct blk_fifo done;         /* finished, callback not run */
	struct blk_fifo staged;       /* submitted, not yet kicked (owner thread only) */
	unsigned running;
	bool flushing;
	bool stopping;
	unsigned nthreads;
	pthread_t *threads;
	struct blk *b;
};

static bool can_start(const struct pool *p)
{
	const struct blk_req *r = p->todo.head;
	if (!r || p->flushing)
		return false;
	return r->op != BLK_OP_FLUSH || p->running == 0;
}

/* Called with the lock held; returns with it held. */
static void run_one(struct pool *p)
{
	struct blk_req *r = blk_fifo_pop(&p->todo);
	bool flush = r->op == BLK_OP_FLUSH;
	p->running++;
	p->flushing |= flush;
	pthread_mutex_unlock(&p->lock);
	r->res = blk_exec_sync(p->b, r);
	pthread_mutex_lock(&p->lock);
	p->running--;
	if (flush)
		p->flushing = false;
	blk_fifo_push(&p->done, r);
	blk_signal(p->b);
	pthread_cond_broadcast(&p->work);   /* a waiting flush, or work that a flush held back */
}

static void *worker(void *arg)
{
	struct pool *p = arg;
	thread_role_enter(THREAD_IO_WORKER);
	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (!can_start(p) && !(p->stopping && !p->todo.head))
			pthread_cond_wait(&p->work, &p->lock);
		if (!p->todo.head)
			break;
		run_one(p);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

static void pool_free(struct pool *p)
{
	pthread_cond_destroy(&p->work);
	pthread_mutex_destroy(&p->lock);
	free(p->threads);
	free(p);
}

static void stop_threads(struct pool *p, unsigned started)
{
	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < started; i++)
		pthread_join(p->threads[i], NULL);
}

static int pool_start(struct blk *b, void **state, vt_err *err)
{
	struct pool *p = calloc(1, sizeof(*p));
	if (!p || !(p->threads = calloc(b->pool_threads, sizeof(pthread_t)))) {
		free(p);
		return vt_fail_errno(err, ENOMEM, "I/O worker pool");
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->work, NULL);
	p->b = b;
	for (unsigned i = 0; i < b->pool_threads; i++) {
		int e = pthread_create(&p->threads[i], NULL, worker, p);
		if (e) {
			stop_threads(p, i);
			pool_free(p);
			return vt_fail_errno(err, e, "cannot start I/O thread %u", i);
		}
	}
	p->nthreads = b->pool_threads;
	*state = p;
	return 0;
}

static void pool_submit(struct blk *b, void *state, struct blk_req *r)
{
	(void)b;
	blk_fifo_push(&((struct pool *)state)->staged, r);
}

static void pool_kick(struct blk *b, void *state)
{
	(void)b;
	struct pool *p = state;
	if (!p->staged.head)
		return;
	pthread_mutex_lock(&p->lock);
	if (p->todo.tail)
		p->todo.tail->next = p->staged.head;
	else
		p->todo.head = p->staged.head;
	p->todo.tail = p->staged.tail;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
	p->staged.head = p->staged.tail = NULL;
}

static unsigned pool_reap(struct blk *b, void *state)
{
	struct pool *p = state;
	pthread_mutex_lock(&p->lock);
	struct blk_fifo done = p->done;
	p->done.head = p->done.tail = NULL;
	pthread_mutex_unlock(&p->lock);
	unsigned n = 0;
	struct blk_req *r;
	while ((r = blk_fifo_pop(&done))) {
		blk_complete(b, r, r->res);
		n++;
	}
	return n;
}

static void pool_stop(struct blk *b, void *state)
{
	(void)b;
	struct pool *p = state;
	if (!p)
		return;
	stop_threads(p, p->nthreads);
	pool_free(p);
}

const struct blk_engine_ops blk_pool_ops = {
	.kind = BLK_ENGINE_POOL,
	.start = pool_start,
	.submit = pool_submit,
	.kick = pool_kick,
	.reap = pool_reap,
	.stop = pool_stop,
};

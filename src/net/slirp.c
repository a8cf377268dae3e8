/* User-mode networking through libslirp.
 *
 * Slirp runs on a thread of its own rather than on the device event loop: it needs a poll() over a set of
 * sockets that changes with every connection and a handful of timers, while the event loop takes a fixed
 * set of fds before it starts. libslirp is not thread-safe, so one mutex (`lock`) guards every call into it:
 * the slirp thread holds it except while sleeping in poll(), and the device thread takes it for slirp_input().
 * After an input the device thread wakes the slirp thread (an eventfd), since the input may have opened a
 * socket or armed a timer that the sleeping poll() does not know about.
 *
 * Frames slirp sends to the guest (send_packet) go to the sink from whichever thread runs slirp at that
 * moment; the sink only copies them. Lock order: device lock, then `lock`, then the sink's own lock.
 *
 * libslirp (and glib behind it) is not linked into virtus: it doubled the VMM's own RSS and added start-up
 * time for every VM, networked or not. The first `--net user` backend dlopen()s it and takes the few entry
 * points it uses into a table held by the backend (the header is still used for the types, so a mismatch
 * with the installed ABI is a compile error, not a crash). */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <slirp/libslirp.h>

#include "lib/thread_role.h"
#include "lib/util.h"
#include "net/backend.h"

#define SLIRP_MAX_TIMERS 16
#define SLIRP_MAX_POLLFDS 1024
#define SLIRP_IDLE_MS 1000
#define SLIRP_LIBRARY "libslirp.so.0"

/* The libslirp entry points virtus calls, resolved with dlsym. */
struct slirp_api {
	void *handle;
	__typeof__(slirp_new) *new_;
	__typeof__(slirp_cleanup) *cleanup;
	__typeof__(slirp_pollfds_fill) *pollfds_fill;
	__typeof__(slirp_pollfds_poll) *pollfds_poll;
	__typeof__(slirp_input) *input;
	__typeof__(slirp_add_hostfwd) *add_hostfwd;
};

struct slirp_timer {
	bool used, armed;
	int64_t expire_ms;
	SlirpTimerCb cb;
	void *cb_opaque;
};

struct slirp_backend {
	struct net_backend be;
	struct net_sink sink;
	struct slirp_api api;
	Slirp *slirp;
	pthread_mutex_t lock;
	pthread_t thread;
	bool thread_started;
	bool stopping;               /* under lock */
	int wake_fd;
	struct slirp_timer timers[SLIRP_MAX_TIMERS];
	unsigned npoll;
	struct pollfd poll[SLIRP_MAX_POLLFDS];
};

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void wake(struct slirp_backend *s)
{
	uint64_t one = 1;
	if (write(s->wake_fd, &one, sizeof(one)) < 0) {
		/* the counter is saturated: a wake-up is already pending */
	}
}

/* ---- libslirp callbacks (called with lock held) --------------------------------------------------- */

static ssize_t cb_send_packet(const void *buf, size_t len, void *opaque)
{
	struct slirp_backend *s = opaque;
	s->sink.deliver(s->sink.opaque, buf, len);
	return (ssize_t)len;
}

static void cb_guest_error(const char *msg, void *opaque)
{
	(void)msg, (void)opaque; /* the guest's own mistake: slirp drops the packet, nothing to report */
}

static int64_t cb_clock_get_ns(void *opaque)
{
	(void)opaque;
	return mono_ns();
}

static void *cb_timer_new(SlirpTimerCb cb, void *cb_opaque, void *opaque)
{
	struct slirp_backend *s = opaque;
	for (unsigned i = 0; i < SLIRP_MAX_TIMERS; i++)
		if (!s->timers[i].used) {
			s->timers[i] = (struct slirp_timer){ .used = true, .cb = cb, .cb_opaque = cb_opaque };
			return &s->timers[i];
		}
	return NULL; /* libslirp makes a few timers (ra, dns); more would be a libslirp change */
}

static void cb_timer_free(void *timer, void *opaque)
{
	(void)opaque;
	if (timer)
		memset(timer, 0, sizeof(struct slirp_timer));
}

static void cb_timer_mod(void *timer, int64_t expire_ms, void *opaque)
{
	struct slirp_timer *t = timer;
	if (!t)
		return;
	t->armed = true;
	t->expire_ms = expire_ms;
	wake(opaque);
}

static void cb_register_poll_fd(int fd, void *opaque)
{
	(void)fd, (void)opaque; /* the fd set is rebuilt before every poll() */
}

static void cb_notify(void *opaque)
{
	wake(opaque);
}

static const SlirpCb slirp_callbacks = {
	.send_packet = cb_send_packet,
	.guest_error = cb_guest_error,
	.clock_get_ns = cb_clock_get_ns,
	.timer_new = cb_timer_new,
	.timer_free = cb_timer_free,
	.timer_mod = cb_timer_mod,
	.register_poll_fd = cb_register_poll_fd,
	.unregister_poll_fd = cb_register_poll_fd,
	.notify = cb_notify,
};

/* ---- The slirp thread --------------------------------------------------------------------------- */

static int add_poll(int fd, int events, void *opaque)
{
	struct slirp_backend *s = opaque;
	if (s->npoll == SLIRP_MAX_POLLFDS)
		return -1;
	short ev = 0;
	ev |= (events & SLIRP_POLL_IN) ? POLLIN : 0;
	ev |= (events & SLIRP_POLL_OUT) ? POLLOUT : 0;
	ev |= (events & SLIRP_POLL_PRI) ? POLLPRI : 0;
	s->poll[s->npoll] = (struct pollfd){ .fd = fd, .events = ev };
	return (int)s->npoll++;
}

static int get_revents(int idx, void *opaque)
{
	struct slirp_backend *s = opaque;
	if (idx < 0 || (unsigned)idx >= s->npoll)
		return 0;
	short r = s->poll[idx].revents;
	return ((r & POLLIN) ? SLIRP_POLL_IN : 0) | ((r & POLLOUT) ? SLIRP_POLL_OUT : 0) |
	       ((r & POLLPRI) ? SLIRP_POLL_PRI : 0) | ((r & POLLERR) ? SLIRP_POLL_ERR : 0) |
	       ((r & POLLHUP) ? SLIRP_POLL_HUP : 0);
}

/* Milliseconds until the earliest armed timer, at most `limit`. */
static uint32_t timer_timeout(const struct slirp_backend *s, uint32_t limit)
{
	int64_t now = mono_ns() / 1000000;
	for (unsigned i = 0; i < SLIRP_MAX_TIMERS; i++) {
		const struct slirp_timer *t = &s->timers[i];
		if (t->used && t->armed)
			limit = (uint32_t)MIN((int64_t)limit, MAX(t->expire_ms - now, 0));
	}
	return limit;
}

static void run_timers(struct slirp_backend *s)
{
	int64_t now = mono_ns() / 1000000;
	for (unsigned i = 0; i < SLIRP_MAX_TIMERS; i++) {
		struct slirp_timer *t = &s->timers[i];
		if (t->used && t->armed && t->expire_ms <= now) {
			t->armed = false;
			t->cb(t->cb_opaque);
		}
	}
}

static void drain_wake(struct slirp_backend *s)
{
	uint64_t n;
	if (read(s->wake_fd, &n, sizeof(n)) < 0) {
		/* EAGAIN: nothing pending */
	}
}

static void *slirp_thread(void *arg)
{
	struct slirp_backend *s = arg;
	thread_role_enter(THREAD_SLIRP);
	pthread_mutex_lock(&s->lock);
	while (!s->stopping) {
		s->npoll = 0;
		add_poll(s->wake_fd, SLIRP_POLL_IN, s);
		uint32_t timeout = SLIRP_IDLE_MS;
		s->api.pollfds_fill(s->slirp, &timeout, add_poll, s);
		timeout = timer_timeout(s, timeout);
		pthread_mutex_unlock(&s->lock);
		int n = poll(s->poll, s->npoll, (int)MIN(timeout, (uint32_t)SLIRP_IDLE_MS));
		bool poll_failed = n < 0 && errno != EINTR;
		pthread_mutex_lock(&s->lock);
		if (n > 0 && (s->poll[0].revents & POLLIN))
			drain_wake(s);
		if (s->stopping)
			break;
		s->api.pollfds_poll(s->slirp, poll_failed, get_revents, s);
		run_timers(s);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* ---- The backend -------------------------------------------------------------------------------- */

static void slirp_send(struct net_backend *be, const uint8_t *frame, size_t len)
{
	struct slirp_backend *s = (struct slirp_backend *)be;
	if (len > INT32_MAX)
		return;
	pthread_mutex_lock(&s->lock);
	s->api.input(s->slirp, frame, (int)len);
	pthread_mutex_unlock(&s->lock);
	wake(s);
}

static void slirp_destroy(struct net_backend *be)
{
	struct slirp_backend *s = (struct slirp_backend *)be;
	if (s->thread_started) {
		pthread_mutex_lock(&s->lock);
		s->stopping = true;
		pthread_mutex_unlock(&s->lock);
		wake(s);
		pthread_join(s->thread, NULL);
	}
	if (s->slirp)
		s->api.cleanup(s->slirp);
	if (s->wake_fd >= 0)
		close(s->wake_fd);
	if (s->api.handle)
		dlclose(s->api.handle);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* Load libslirp and resolve every entry point, or fail naming the library (and the package to install). */
static int load_slirp(struct slirp_api *api, vt_err *err)
{
	/* NODELETE: glib, pulled in by libslirp, cannot be unloaded safely once it has run. */
	api->handle = dlopen(SLIRP_LIBRARY, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
	if (!api->handle)
		return vt_fail(err, "user networking needs %s (Debian package libslirp0): %s", SLIRP_LIBRARY, dlerror());
	/* Each slot is a function pointer; dlsym's void * is copied into it bytewise (POSIX guarantees the
	 * representations match), which keeps the assignment free of aliasing questions. */
	struct { void *slot; const char *name; } syms[] = {
		{ &api->new_, "slirp_new" },
		{ &api->cleanup, "slirp_cleanup" },
		{ &api->pollfds_fill, "slirp_pollfds_fill" },
		{ &api->pollfds_poll, "slirp_pollfds_poll" },
		{ &api->input, "slirp_input" },
		{ &api->add_hostfwd, "slirp_add_hostfwd" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(syms); i++) {
		void *sym = dlsym(api->handle, syms[i].name);
		if (!sym)
			return vt_fail(err, "user networking: %s has no %s (too old?)", SLIRP_LIBRARY, syms[i].name);
		memcpy(syms[i].slot, &sym, sizeof(sym));
	}
	return 0;
}

static Slirp *new_slirp(struct slirp_backend *s, bool host_loopback)
{
	SlirpConfig cfg = { .version = 1, .in_enabled = true, .vhostname = "virtus" };
	/* Without it, a guest connecting to 10.0.2.2 reaches services bound only to the host's 127.0.0.1. */
	cfg.disable_host_loopback = !host_loopback;
	cfg.vnetwork.s_addr = htonl(0x0a000200);     /* 10.0.2.0 */
	cfg.vnetmask.s_addr = htonl(0xffffff00);
	cfg.vhost.s_addr = htonl(0x0a000202);        /* 10.0.2.2: the host, as the guest sees it */
	cfg.vdhcp_start.s_addr = htonl(0x0a00020f);  /* 10.0.2.15 */
	cfg.vnameserver.s_addr = htonl(0x0a000203);  /* 10.0.2.3: slirp's DNS proxy */
	return s->api.new_(&cfg, &slirp_callbacks, s);
}

static int add_forwards(struct slirp_backend *s, const struct net_opts *o, vt_err *err)
{
	for (unsigned i = 0; i < o->nfwd; i++) {
		const struct net_hostfwd *f = &o->fwd[i];
		if (s->api.add_hostfwd(s->slirp, f->udp, f->host_addr, f->host_port, f->guest_addr, f->guest_port) < 0)
			return vt_fail(err, "hostfwd %s:%s:%u: cannot listen on the host port (already in use?)",
				       f->udp ? "udp" : "tcp", inet_ntoa(f->host_addr), f->host_port);
	}
	return 0;
}

int net_slirp_create(const struct net_opts *o, struct net_sink sink, struct net_backend **out, vt_err *err)
{
	struct slirp_backend *s = calloc(1, sizeof(*s));
	if (!s)
		return vt_fail_errno(err, ENOMEM, "user networking");
	s->be = (struct net_backend){ .send = slirp_send, .destroy = slirp_destroy };
	s->sink = sink;
	s->wake_fd = -1;
	pthread_mutex_init(&s->lock, NULL);
	if (load_slirp(&s->api, err) < 0)
		goto fail;
	if ((s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		vt_fail_errno(err, errno, "user networking: eventfd");
		goto fail;
	}
	if (!(s->slirp = new_slirp(s, o->host_loopback))) {
		vt_fail(err, "user networking: libslirp refused its configuration");
		goto fail;
	}
	if (add_forwards(s, o, err) < 0)
		goto fail;
	int rc = pthread_create(&s->thread, NULL, slirp_thread, s);
	if (rc) {
		vt_fail_errno(err, rc, "user networking: cannot start its thread");
		goto fail;
	}
	s->thread_started = true;
	*out = &s->be;
	return 0;
fail:
	slirp_destroy(&s->be);
	return -1;
}

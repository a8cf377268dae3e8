/* The VMM's control loop (contract in vm_control.h). */
#include "cli/vm_control.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <stdio.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "devices/virtio/console.h"
#include "lib/unixsock.h"
#include "lib/util.h"

#define RETRY_INPUT_MS 5      /* while the guest's receive FIFO is full */
#define PENDING_MAX 4096      /* console input held for the guest; beyond it, input is not read */
#define HUB_PIPE_SIZE (1 << 20)

/* ---- Detached console ----------------------------------------------------------------------------- */

int console_hub_open(struct console_hub *h, const char *log_path, const char *socket_path, int *out_wr, vt_err *err)
{
	*h = (struct console_hub){ .out_rd = -1, .log_fd = -1, .listen_fd = -1, .client_fd = -1 };
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return vt_fail_errno(err, errno, "console pipe");
	h->out_rd = p[0];
	*out_wr = p[1];
	/* the guest's console writes block when the pipe is full: give the loop room */
	fcntl(p[1], F_SETPIPE_SZ, HUB_PIPE_SIZE);
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	h->log_fd = open(log_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (h->log_fd < 0) {
		vt_fail_errno(err, errno, "cannot create %s", log_path);
		goto fail;
	}
	if ((h->listen_fd = unix_listen(socket_path, 4, err)) < 0)
		goto fail;
	return 0;
fail:
	close(*out_wr);
	*out_wr = -1;
	console_hub_close(h);
	return -1;
}

void console_hub_close(struct console_hub *h)
{
	int *fds[] = { &h->out_rd, &h->log_fd, &h->listen_fd, &h->client_fd };
	for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
		if (*fds[i] >= 0)
			close(*fds[i]), *fds[i] = -1;
}

/* The log keeps the guest's latest output: past CONSOLE_LOG_MAX it keeps its newer half and goes on (a guest
 * must not fill the host's disk through its console). Done on the open fd: the confined main thread may not
 * open or rename files. */
static void trim_log(struct console_hub *h)
{
	const uint64_t keep = CONSOLE_LOG_MAX / 2;
	cleanup_free uint8_t *tail = malloc(keep);
	if (!tail || pread(h->log_fd, tail, keep, (off_t)(h->log_bytes - keep)) != (ssize_t)keep ||
	    pwrite(h->log_fd, tail, keep, 0) != (ssize_t)keep || ftruncate(h->log_fd, (off_t)keep) < 0) {
		if (ftruncate(h->log_fd, 0) == 0)
			h->log_bytes = 0;
		return;
	}
	h->log_bytes = keep;
}

static void log_output(struct console_hub *h, const uint8_t *buf, size_t n)
{
	if (h->log_fd < 0)
		return;
	if (h->log_bytes + n > CONSOLE_LOG_MAX)
		trim_log(h);
	if (pwrite(h->log_fd, buf, n, (off_t)h->log_bytes) == (ssize_t)n)
		h->log_bytes += n;
}

static void drop_client(struct console_hub *h)
{
	close(h->client_fd);
	h->client_fd = -1;
}

void console_hub_flush(struct console_hub *h)
{
	uint8_t buf[16384];
	ssize_t n;
	while ((n = read(h->out_rd, buf, sizeof(buf))) > 0) {
		log_output(h, buf, (size_t)n);
		/* a client that cannot keep up loses output (the log has it), never stalls the guest */
		if (h->client_fd >= 0 && send(h->client_fd, buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 &&
		    errno != EAGAIN)
			drop_client(h);
	}
}

static void hub_accept(struct console_hub *h)
{
	int fd = accept4(h->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	if (h->client_fd >= 0) {
		static const char busy[] = "virtus: this VM's console is attached elsewhere\n";
		if (send(fd, busy, sizeof(busy) - 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
			/* it goes anyway */
		}
		close(fd);
		return;
	}
	h->client_fd = fd;
}

/* ---- The loop --------------------------------------------------------------------------------------- */

/* Console input on its way to the guest, held while the guest's receive FIFO is full. */
struct pending_input {
	uint8_t buf[PENDING_MAX];
	size_t len;
};

/* Host input goes to whichever device is the guest's console: virtio-console (hvc0) if configured, else
 * the serial port. Both take what fits; the rest waits for the next round. */
static void deliver(struct vm *vm, struct pending_input *p)
{
	size_t sent = vm->pci.console ? virtio_console_input(vm->pci.console, p->buf, p->len)
				      : uart_receive(&vm->uart, p->buf, p->len);
	memmove(p->buf, p->buf + sent, p->len - sent);
	p->len -= sent;
}

enum { P_STOP, P_SIG, P_API, P_IN, P_HUB_OUT, P_HUB_LISTEN, P_HUB_CLIENT, P_MIGRATION, P_EJECTED, P_HANDOFF, P_COUNT };

static struct migration_out *active_migration(const struct vm_control *c)
{
	struct migration_progress p;
	if (!c->api_ctx || !c->api_ctx->migration)
		return NULL;
	migration_out_progress(c->api_ctx->migration, &p);
	return p.phase == MIGRATION_ACTIVE ? c->api_ctx->migration : NULL;
}

/* A migration went as far as it could this step. Completed: the guest runs at the destination; this VMM
 * ends once a client has read the outcome (or MIGRATED_LINGER_MS later). */
static void migration_stepped(struct vm_control *c, uint64_t *migrated_ns)
{
	struct migration_progress p;
	migration_out_progress(c->api_ctx->migration, &p);
	if (p.phase == MIGRATION_COMPLETED && !*migrated_ns) {
		fprintf(stderr, "virtus: migrated to %s (%llu ms, %llu ms paused)\n", c->api_ctx->migration_url,
			(unsigned long long)p.total_ms, (unsigned long long)p.downtime_ms);
		*migrated_ns = now_ns();
	} else if (p.phase == MIGRATION_FAILED) {
		fprintf(stderr, "virtus: migration to %s failed, the VM goes on here: %s\n", c->api_ctx->migration_url,
			p.error);
	}
}

static void fill_pollset(const struct vm_control *c, const struct pending_input *p, struct pollfd *fds)
{
	bool room = p->len + 256 <= PENDING_MAX;
	struct console_hub *h = c->hub;
	fds[P_STOP] = (struct pollfd){ .fd = c->vm->stop_fd, .events = POLLIN };
	fds[P_SIG] = (struct pollfd){ .fd = c->sig_fd, .events = POLLIN };
	fds[P_API] = (struct pollfd){ .fd = c->api ? api_server_poll_fd(c->api) : -1, .events = POLLIN };
	fds[P_IN] = (struct pollfd){ .fd = room ? c->in_fd : -1, .events = POLLIN };
	fds[P_HUB_OUT] = (struct pollfd){ .fd = h ? h->out_rd : -1, .events = POLLIN };
	fds[P_HUB_LISTEN] = (struct pollfd){ .fd = h ? h->listen_fd : -1, .events = POLLIN };
	fds[P_HUB_CLIENT] = (struct pollfd){ .fd = h && room ? h->client_fd : -1, .events = POLLIN };
	struct migration_out *m = active_migration(c);
	fds[P_MIGRATION] = (struct pollfd){ .fd = m ? migration_out_fd(m) : -1, .events = POLLOUT };
	fds[P_EJECTED] = (struct pollfd){ .fd = c->api_ctx ? vm_api_ejected_fd(c->api_ctx) : -1, .events = POLLIN };
	fds[P_HANDOFF] = (struct pollfd){ .fd = c->api_ctx ? c->handoff_fd : -1, .events = POLLIN };
}

static int min_timeout(int a, int b)
{
	return a < 0 ? b : b < 0 ? a : a < b ? a : b;
}

static int poll_timeout(const struct vm_control *c, const struct pending_input *p, uint64_t stop_deadline_ns,
			uint64_t migrated_ns)
{
	int t = c->api ? api_server_timeout_ms(c->api) : -1;
	if (c->api_ctx)
		t = min_timeout(t, vm_api_hotplug_timeout_ms(c->api_ctx)); /* a disk removal's deadline */
	if (p->len)
		t = min_timeout(t, RETRY_INPUT_MS);
	if (migrated_ns)
		t = min_timeout(t, 50); /* until a client has asked, or the linger is over */
	if (stop_deadline_ns) {
		uint64_t now = now_ns();
		t = min_timeout(t, now >= stop_deadline_ns ? 0 : (int)((stop_deadline_ns - now) / 1000000 + 1));
	}
	return t;
}

/* Returns the deadline of a graceful stop (0: none pending). */
static uint64_t on_signal(struct vm_control *c, uint64_t deadline_ns)
{
	struct signalfd_siginfo si;
	if (read(c->sig_fd, &si, sizeof(si)) != sizeof(si))
		return deadline_ns;
	if (si.ssi_signo == SIGTERM && !deadline_ns && c->stop_timeout_s) {
		fprintf(stderr, "virtus: SIGTERM: pressing the power button; the VM stops in %u s if the guest has not "
				"powered off\n", c->stop_timeout_s);
		vm_press_power_button(c->vm);
		return now_ns() + (uint64_t)c->stop_timeout_s * 1000000000ULL;
	}
	vm_request_stop(c->vm, VM_EXIT_INTERRUPTED);
	return deadline_ns;
}

/* Reads console input from fd into p; false at its end (or an error). */
static bool read_input(int fd, struct pending_input *p, struct escape_state *esc, bool *quit)
{
	uint8_t buf[256];
	ssize_t n = read(fd, buf, sizeof(buf));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return true;
	if (n <= 0)
		return false;
	if (!esc) {
		memcpy(p->buf + p->len, buf, (size_t)n);
		p->len += (size_t)n;
		return true;
	}
	size_t out_n;
	uint8_t out[2 * sizeof(buf)];
	*quit = !console_escape_filter(esc, buf, (size_t)n, out, &out_n);
	out_n = MIN(out_n, PENDING_MAX - p->len);
	memcpy(p->buf + p->len, out, out_n);
	p->len += out_n;
	return true;
}

void vm_control_loop(struct vm_control *c)
{
	struct escape_state esc = { false };
	struct pending_input pending = { .len = 0 };
	uint64_t stop_deadline = 0; /* a graceful stop's, after SIGTERM */
	uint64_t migrated = 0;      /* when a migration completed */
	for (;;) {
		struct pollfd fds[P_COUNT];
		fill_pollset(c, &pending, fds);
		if (poll(fds, P_COUNT, poll_timeout(c, &pending, stop_deadline, migrated)) < 0 && errno != EINTR) {
			vm_request_stop(c->vm, VM_EXIT_ERROR);
			return;
		}
		if (fds[P_STOP].revents)
			return;
		if (fds[P_SIG].revents & POLLIN)
			stop_deadline = on_signal(c, stop_deadline);
		if (stop_deadline && now_ns() >= stop_deadline) {
			fprintf(stderr, "virtus: the guest did not power off within %u s: stopping the VM\n", c->stop_timeout_s);
			vm_request_stop(c->vm, VM_EXIT_INTERRUPTED);
		}
		if (c->api)
			api_server_dispatch(c->api); /* requests, and the timeouts of idle or half-sent connections */
		if (c->api_ctx && (fds[P_EJECTED].revents || vm_api_hotplug_timeout_ms(c->api_ctx) == 0))
			vm_api_hotplug_step(c->api_ctx);
		if (fds[P_HANDOFF].revents)
			vm_api_handoff(c->api_ctx, c->handoff_fd);
		if (fds[P_MIGRATION].revents && migration_out_step(c->api_ctx->migration))
			migration_stepped(c, &migrated);
		if (migrated && (c->api_ctx->migration_end_reported || now_ns() - migrated >= MIGRATED_LINGER_MS * 1000000ULL)) {
			vm_request_stop(c->vm, VM_EXIT_POWEROFF);
			return;
		}
		bool quit = false;
		if (fds[P_IN].revents && !read_input(c->in_fd, &pending, c->escape_quits ? &esc : NULL, &quit))
			c->in_fd = -1; /* end of input: keep running, stop listening */
		if (quit) {
			vm_request_stop(c->vm, VM_EXIT_INTERRUPTED);
			return;
		}
		struct console_hub *h = c->hub;
		if (h && fds[P_HUB_OUT].revents)
			console_hub_flush(h);
		if (h && fds[P_HUB_LISTEN].revents)
			hub_accept(h);
		if (h && h->client_fd >= 0 && fds[P_HUB_CLIENT].revents && !read_input(h->client_fd, &pending, NULL, &quit))
			drop_client(h);
		if (pending.len)
			deliver(c->vm, &pending);
	}
}

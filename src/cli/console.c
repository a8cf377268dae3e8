#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <termios.h>
#include <unistd.h>

#include "cli/cli.h"
#include "devices/virtio/console.h"

#define ESCAPE_CHAR 0x01 /* Ctrl-A */
#define POLL_FULL_MS 5   /* retry interval while the guest's receive FIFO is full */

_Static_assert(sizeof(struct termios) <= sizeof(((struct term_state *)0)->saved), "termios fits");

void term_raw(struct term_state *t, int fd)
{
	t->active = false;
	struct termios tio;
	if (!isatty(fd) || tcgetattr(fd, &tio) < 0)
		return;
	memcpy(t->saved, &tio, sizeof(tio));
	cfmakeraw(&tio);
	tio.c_oflag |= OPOST | ONLCR; /* keep host output readable; the guest's bytes pass through unchanged */
	if (tcsetattr(fd, TCSANOW, &tio) == 0) {
		t->active = true;
		t->fd = fd;
	}
}

void term_restore(struct term_state *t)
{
	if (!t->active)
		return;
	struct termios tio;
	memcpy(&tio, t->saved, sizeof(tio));
	tcsetattr(t->fd, TCSANOW, &tio);
	t->active = false;
}

struct escape_state {
	bool pending;
};

/* Returns false when the user asked to quit. Bytes for the guest are appended to out. */
static bool filter_escape(struct escape_state *st, const uint8_t *in, size_t n, uint8_t *out, size_t *out_n)
{
	*out_n = 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = in[i];
		if (st->pending) {
			st->pending = false;
			if (c == 'x' || c == 'X')
				return false;
			if (c != ESCAPE_CHAR)
				out[(*out_n)++] = ESCAPE_CHAR;
			out[(*out_n)++] = c;
		} else if (c == ESCAPE_CHAR) {
			st->pending = true;
		} else {
			out[(*out_n)++] = c;
		}
	}
	return true;
}

/* Host input goes to whichever device is the guest's console: virtio-console (hvc0) if configured, else
 * the serial port. Both accept what fits and the rest is retried, so the escape filter above serves both. */
static size_t console_receive(struct vm *vm, const uint8_t *buf, size_t n)
{
	if (vm->pci.console)
		return virtio_console_input(vm->pci.console, buf, n);
	return uart_receive(&vm->uart, buf, n);
}

static void deliver(struct vm *vm, const uint8_t *buf, size_t n, int stop_fd)
{
	while (n) {
		size_t sent = console_receive(vm, buf, n);
		buf += sent;
		n -= sent;
		if (n) {
			struct pollfd p = { .fd = stop_fd, .events = POLLIN };
			if (poll(&p, 1, POLL_FULL_MS) > 0)
				return; /* the VM stopped while input was queued */
		}
	}
}

void console_pump(struct vm *vm, int in_fd, int sig_fd)
{
	struct escape_state esc = { false };
	for (;;) {
		struct pollfd p[3] = {
			{ .fd = vm->stop_fd, .events = POLLIN },
			{ .fd = sig_fd, .events = POLLIN },
			{ .fd = in_fd, .events = POLLIN },
		};
		if (poll(p, in_fd >= 0 ? 3 : 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			vm_request_stop(vm, VM_EXIT_ERROR);
			return;
		}
		if (p[0].revents)
			return;
		if (p[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(sig_fd, &si, sizeof(si)) > 0)
				vm_request_stop(vm, VM_EXIT_INTERRUPTED);
			continue;
		}
		if (in_fd < 0 || !p[2].revents)
			continue;
		uint8_t buf[256], out[2 * sizeof(buf)];
		ssize_t n = read(in_fd, buf, sizeof(buf));
		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			in_fd = -1; /* end of input: keep running, stop listening */
			continue;
		}
		size_t out_n;
		if (!filter_escape(&esc, buf, (size_t)n, out, &out_n)) {
			vm_request_stop(vm, VM_EXIT_INTERRUPTED);
			return;
		}
		deliver(vm, out, out_n, vm->stop_fd);
	}
}

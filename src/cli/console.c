/* The host terminal of a console: raw mode and the escape sequence (vm run in the foreground, vm console). */
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli/cli.h"

#define ESCAPE_CHAR 0x01 /* Ctrl-A */

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

/* Returns false when the user typed Ctrl-A x. Bytes for the guest are appended to out. */
bool console_escape_filter(struct escape_state *st, const uint8_t *in, size_t n, uint8_t *out, size_t *out_n)
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

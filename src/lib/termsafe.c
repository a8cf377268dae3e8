/* The terminal filter of termsafe.h: ECMA-48's escape, CSI and control-string shapes, with an allow-list. */
#include "lib/termsafe.h"

#include <string.h>
#include <unistd.h>

#include "lib/util.h"

#define ESC 0x1b
#define BEL 0x07

enum { GROUND, AFTER_ESC, ESC_INTERMEDIATE, CSI, CSI_DROP, CONTROL_STRING, CONTROL_STRING_ESC };

/* CSI finals that only draw: colours (m), cursor movement and positioning, erasing, inserting and deleting
 * characters or lines, scrolling, cursor save/restore. None makes the terminal answer or change modes. */
static bool safe_csi_final(uint8_t f)
{
	return f && strchr("mABCDEFGHJKfPX@LMSTdsu", f) != NULL;
}

static bool safe_c0(uint8_t b)
{
	return b == '\t' || b == '\n' || b == '\r' || b == '\b' || b == BEL;
}

static bool csi_param_byte(uint8_t b) { return b >= 0x30 && b <= 0x3f; }
static bool intermediate_byte(uint8_t b) { return b >= 0x20 && b <= 0x2f; }
static bool final_byte(uint8_t b) { return b >= 0x40 && b <= 0x7e; }

/* Only plain numeric parameters: '?', '>', '<', '=' mark private sequences (modes, reports). */
static bool plain_params(const struct termsafe *t)
{
	for (unsigned i = 0; i < t->nparams; i++)
		if (!((t->params[i] >= '0' && t->params[i] <= '9') || t->params[i] == ';'))
			return false;
	return true;
}

static size_t emit_csi(const struct termsafe *t, uint8_t final, uint8_t *out)
{
	size_t k = 0;
	out[k++] = ESC;
	out[k++] = '[';
	memcpy(out + k, t->params, t->nparams);
	k += t->nparams;
	out[k++] = final;
	return k;
}

static size_t ground(struct termsafe *t, uint8_t b, uint8_t *out)
{
	size_t k = 0;
	if (t->pending_c2) {
		t->pending_c2 = false;
		if (b >= 0x80 && b <= 0x9f)
			return 0; /* U+0080-U+009F: a C1 control in UTF-8 */
		out[k++] = 0xc2;
	}
	if (b == ESC)
		t->state = AFTER_ESC;
	else if (b == 0xc2)
		t->pending_c2 = true;
	else if (b >= 0x20 || safe_c0(b))
		out[k++] = b; /* text, UTF-8 bytes, DEL */
	return k;        /* other C0 controls: dropped */
}

static size_t after_esc(struct termsafe *t, uint8_t b)
{
	if (b == '[') {
		t->state = CSI;
		t->nparams = 0;
	} else if (b == ']' || b == 'P' || b == '_' || b == '^' || b == 'X') {
		t->state = CONTROL_STRING; /* OSC, DCS, APC, PM, SOS: titles, clipboard, terminal queries */
	} else if (intermediate_byte(b)) {
		t->state = ESC_INTERMEDIATE; /* character sets and the like */
	} else if (b != ESC) {
		t->state = GROUND; /* two-byte escapes (ESC c resets the terminal): dropped */
	}
	return 0;
}

static size_t csi(struct termsafe *t, uint8_t b, uint8_t *out)
{
	if (csi_param_byte(b)) {
		if (t->nparams == TERMSAFE_MAX_PARAMS)
			t->state = CSI_DROP;
		else
			t->params[t->nparams++] = (char)b;
		return 0;
	}
	if (intermediate_byte(b)) {
		t->state = CSI_DROP;
		return 0;
	}
	t->state = GROUND;
	if (final_byte(b))
		return safe_csi_final(b) && plain_params(t) ? emit_csi(t, b, out) : 0;
	return ground(t, b, out); /* a control inside the sequence ends it */
}

static size_t step(struct termsafe *t, uint8_t b, uint8_t *out)
{
	switch (t->state) {
	case AFTER_ESC:
		return after_esc(t, b);
	case ESC_INTERMEDIATE: /* ESC ( 0: the final byte of an escape sequence is 0x30-0x7e */
	case CSI_DROP:
		if (b < 0x20 || final_byte(b) || (t->state == ESC_INTERMEDIATE && b >= 0x30 && b <= 0x7e)) {
			t->state = GROUND;
			return b < 0x20 ? ground(t, b, out) : 0;
		}
		return 0;
	case CSI:
		return csi(t, b, out);
	case CONTROL_STRING:
		if (b == BEL) {
			t->state = GROUND;
		} else if (b == ESC) {
			t->state = CONTROL_STRING_ESC;
		} else if (b == '\n') { /* never terminated: give the operator their console back at the line end */
			t->state = GROUND;
			return ground(t, b, out);
		}
		return 0;
	case CONTROL_STRING_ESC:
		if (b == '\\') {
			t->state = GROUND; /* ST */
			return 0;
		}
		t->state = AFTER_ESC;
		return after_esc(t, b);
	default:
		return ground(t, b, out);
	}
}

size_t termsafe_filter(struct termsafe *t, const uint8_t *in, size_t n, uint8_t *out)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		k += step(t, in[i], out + k);
	return k;
}

void console_sink_init(struct console_sink *s, int fd)
{
	memset(s, 0, sizeof(*s));
	s->fd = fd;
	s->filter = fd >= 0 && isatty(fd);
}

void console_sink_write(struct console_sink *s, const uint8_t *buf, size_t n)
{
	if (s->fd < 0)
		return;
	if (!s->filter) {
		write_all(s->fd, buf, n);
		return;
	}
	enum { CHUNK = 512 };
	uint8_t out[TERMSAFE_OUT_MAX(CHUNK)];
	for (size_t done = 0; done < n; done += CHUNK) {
		size_t len = MIN(CHUNK, n - done);
		size_t k = termsafe_filter(&s->ts, buf + done, len, out);
		if (k && write_all(s->fd, out, k) < 0)
			return;
	}
}

/* Guest console output bound for an operator's terminal, made harmless.
 *
 * A guest's console bytes are hostile input to the terminal that shows them: escape sequences can set the
 * window title and then ask the terminal to type it back (answers arrive as input, to the guest or, after
 * virtus exits, to the shell), write the clipboard (OSC 52), switch character sets, remap keys, turn on
 * mouse reporting, or reset the terminal. When the console is a terminal, output passes through a filter
 * that keeps text (UTF-8 included), \t \n \r \b and BEL, and the CSI sequences a shell's line editing and
 * coloured output use (SGR colours, cursor movement and erasing); every other control sequence is dropped
 * whole, and C1 controls (raw 0x80-0x9f, or encoded in UTF-8 as U+0080-U+009F) go too. Pipes and files get
 * the bytes unchanged.
 *
 * The filter is a small state machine, so a sequence split across writes is still recognised. */
#ifndef VIRTUS_LIB_TERMSAFE_H
#define VIRTUS_LIB_TERMSAFE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TERMSAFE_MAX_PARAMS 32   /* a longer CSI parameter string is not one a shell sends: dropped */

struct termsafe {
	uint8_t state;               /* private: where in a sequence the stream is */
	uint8_t nparams;             /* bytes of the current CSI's parameters */
	char params[TERMSAFE_MAX_PARAMS];
	bool pending_c2;             /* a 0xC2 lead byte is held back: U+0080-U+009F would follow it */
};

/* Room `out` needs for n input bytes: a CSI sequence begun in an earlier call is emitted whole at its end. */
#define TERMSAFE_OUT_MAX(n) ((n) + TERMSAFE_MAX_PARAMS + 4)

/* Filter n bytes of `in` into `out` (TERMSAFE_OUT_MAX(n) bytes); returns how many bytes to write. */
size_t termsafe_filter(struct termsafe *t, const uint8_t *in, size_t n, uint8_t *out);

/* Where a console device writes: an fd (-1 discards), filtered when it is a terminal. */
struct console_sink {
	int fd;
	bool filter;
	struct termsafe ts;
};

/* Filter iff fd is a terminal. */
void console_sink_init(struct console_sink *s, int fd);
/* Write n bytes (filtered if the sink filters); a write error drops the rest, as a closed console would. */
void console_sink_write(struct console_sink *s, const uint8_t *buf, size_t n);

#endif

/* The console filter (lib/termsafe.h): what reaches a terminal from a hostile guest, and that pipes stay
 * byte-exact. The serial port is checked end to end over a real pseudo-terminal and a pipe. */
#include <fcntl.h>
#include <pty.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>
#include <cmocka.h>

#include "devices/serial.h"
#include "lib/termsafe.h"

static char out[4096];

/* Filter s in pieces of `chunk` bytes (sequences split across calls must still be recognised). */
static const char *filtered(const char *s, size_t chunk)
{
	struct termsafe t = { 0 };
	size_t n = strlen(s), k = 0;
	uint8_t buf[TERMSAFE_OUT_MAX(64)];
	for (size_t i = 0; i < n; i += chunk) {
		size_t len = n - i < chunk ? n - i : chunk;
		size_t got = termsafe_filter(&t, (const uint8_t *)s + i, len, buf);
		memcpy(out + k, buf, got);
		k += got;
	}
	out[k] = 0;
	return out;
}

static void check_all_chunkings(const char *in, const char *want)
{
	for (size_t chunk = 1; chunk <= 8; chunk++)
		assert_string_equal(filtered(in, chunk), want);
	assert_string_equal(filtered(in, 64), want);
}

static void text_and_line_controls_pass(void **state)
{
	(void)state;
	check_all_chunkings("login: root\r\n\tdone\b\a", "login: root\r\n\tdone\b\a");
	check_all_chunkings("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\xa7", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\xa7");
	check_all_chunkings("\xc2\xa0nbsp", "\xc2\xa0nbsp"); /* U+00A0: a C2 lead that is text */
}

static void colours_and_line_editing_pass(void **state)
{
	(void)state;
	check_all_chunkings("\x1b[1;32mOK\x1b[0m", "\x1b[1;32mOK\x1b[0m");
	check_all_chunkings("ab\x1b[D\x1b[K\x1b[2J\x1b[H\x1b[10;5H", "ab\x1b[D\x1b[K\x1b[2J\x1b[H\x1b[10;5H");
}

static void reprogramming_sequences_are_dropped(void **state)
{
	(void)state;
	check_all_chunkings("a\x1b]0;evil title\x07" "b", "ab");                  /* OSC title, BEL-terminated */
	check_all_chunkings("a\x1b]52;c;ZXZpbA==\x1b\\b", "ab");                   /* OSC 52 clipboard, ST */
	check_all_chunkings("a\x1b[21tb", "ab");                                   /* report the title back */
	check_all_chunkings("a\x1b[6nb\x1b[cc\x1b[>0cd", "abcd");                  /* cursor/device reports */
	check_all_chunkings("a\x1b" "cb", "ab");                                   /* full reset */
	check_all_chunkings("a\x1b(0b\x1b)Bc", "abc");                             /* character sets */
	check_all_chunkings("a\x1b[?1000hb\x1b[?1049lc", "abc");                   /* mouse, alternate screen */
	check_all_chunkings("a\x1bP+q544e\x1b\\b", "ab");                          /* DCS query */
	check_all_chunkings("a\x1b_apc\x1b\\b\x1b^pm\x1b\\c", "abc");              /* APC, PM */
	check_all_chunkings("a\xc2\x9b" "6nb\xc2\x9d" "0;t\x07", "a6nb0;t\x07");   /* UTF-8 C1 CSI and OSC */
	check_all_chunkings("a\x01\x02\x0e\x0f\x1a" "b", "ab");                    /* other C0 controls */
	check_all_chunkings("a\x1b[1;2;3;4;5;6;7;8;9;10;11;12;13;14;15;16;17mb", "ab"); /* overlong parameters */
}

static void unterminated_string_ends_at_newline(void **state)
{
	(void)state;
	check_all_chunkings("a\x1b]0;never ends\nvisible", "a\nvisible");
}

static void serial_output_filtered_on_a_terminal_exact_on_a_pipe(void **state)
{
	(void)state;
	static const char guest[] = "ok\x1b]0;pwned\x07\x1b[31mred\x1b[0m\x1b[6n\n";
	static const char safe[] = "ok\x1b[31mred\x1b[0m\n";
	int master, slave;
	assert_int_equal(openpty(&master, &slave, NULL, NULL, NULL), 0);
	struct termios tio;
	tcgetattr(slave, &tio);
	cfmakeraw(&tio); /* no \n -> \r\n on the way through */
	tcsetattr(slave, TCSANOW, &tio);
	int p[2];
	assert_int_equal(pipe(p), 0);
	int fds[2] = { slave, p[1] }, readers[2] = { master, p[0] };
	const char *want[2] = { safe, guest };
	for (unsigned k = 0; k < 2; k++) {
		struct uart8250 u;
		uart_init(&u, fds[k], NULL, NULL);
		for (size_t i = 0; i < sizeof(guest) - 1; i++) {
			uint8_t b = (uint8_t)guest[i];
			uart_io(&u, 0, &b, 1, true); /* THR */
		}
		char got[256] = { 0 };
		size_t n = 0, len = strlen(want[k]);
		while (n < len) {
			ssize_t r = read(readers[k], got + n, sizeof(got) - 1 - n);
			assert_true(r > 0);
			n += (size_t)r;
		}
		assert_int_equal(n, len);
		assert_memory_equal(got, want[k], len);
		uart_destroy(&u);
	}
	close(master), close(slave), close(p[0]), close(p[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(text_and_line_controls_pass),
		cmocka_unit_test(colours_and_line_editing_pass),
		cmocka_unit_test(reprogramming_sequences_are_dropped),
		cmocka_unit_test(unterminated_string_ends_at_newline),
		cmocka_unit_test(serial_output_filtered_on_a_terminal_exact_on_a_pipe),
	};
	return cmocka_run_group_tests_name("termsafe", tests, NULL, NULL);
}

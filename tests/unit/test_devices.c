/* Device models without KVM: 8250 UART registers and interrupts, the I/O bus, i8042 and ACPI sleep. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "devices/bus.h"
#include "devices/platform.h"
#include "devices/serial.h"

struct irq_log {
	int level;
	int raises, lowers;
};

static void log_irq(void *opaque, int level)
{
	struct irq_log *l = opaque;
	l->level = level;
	if (level)
		l->raises++;
	else
		l->lowers++;
}

static uint8_t rd(struct uart8250 *u, unsigned reg)
{
	uint8_t v = 0;
	uart_io(u, reg, &v, 1, false);
	return v;
}

static void wr(struct uart8250 *u, unsigned reg, uint8_t v)
{
	uart_io(u, reg, &v, 1, true);
}

static void uart_probe_registers(void **state)
{
	(void)state;
	struct uart8250 u;
	uart_init(&u, -1, NULL, NULL);
	wr(&u, UART_SCR, 0xa5);
	assert_int_equal(rd(&u, UART_SCR), 0xa5);
	wr(&u, UART_IER, 0xff);
	assert_int_equal(rd(&u, UART_IER), 0x0f); /* only the low nibble exists */
	wr(&u, UART_IER, 0);
	/* Linux's probe: loopback with RTS|OUT2 must read back CTS|DCD in MSR. */
	wr(&u, UART_MCR, UART_MCR_LOOP | 0x0a);
	assert_int_equal(rd(&u, UART_MSR) & 0xf0, 0x90);
	wr(&u, UART_MCR, 0x08);
	assert_int_equal(rd(&u, UART_MSR) & 0xf0, 0xb0);
	/* FIFO enabled shows in IIR's top bits (a 16550A). */
	wr(&u, UART_IIR_FCR, UART_FCR_ENABLE);
	assert_int_equal(rd(&u, UART_IIR_FCR) & UART_IIR_FIFO, UART_IIR_FIFO);
	/* Divisor latch behind DLAB does not disturb IER/THR. */
	wr(&u, UART_LCR, UART_LCR_DLAB | 3);
	wr(&u, UART_RBR_THR, 0x01);
	wr(&u, UART_IER, 0x00);
	assert_int_equal(rd(&u, UART_RBR_THR), 0x01);
	wr(&u, UART_LCR, 3);
	assert_int_equal(u.tx_bytes, 0);
	assert_int_equal(rd(&u, UART_LSR) & (UART_LSR_THRE | UART_LSR_TEMT), UART_LSR_THRE | UART_LSR_TEMT);
	uart_destroy(&u);
}

static void uart_transmits_and_interrupts(void **state)
{
	(void)state;
	int p[2];
	assert_int_equal(pipe(p), 0);
	struct irq_log irq = { 0 };
	struct uart8250 u;
	uart_init(&u, p[1], log_irq, &irq);
	const char *msg = "hi\n";
	for (const char *c = msg; *c; c++)
		wr(&u, UART_RBR_THR, (uint8_t)*c);
	char buf[8] = { 0 };
	assert_int_equal(read(p[0], buf, sizeof(buf)), 3);
	assert_string_equal(buf, msg);
	assert_int_equal(irq.raises, 0); /* interrupts disabled: the line stays low */

	wr(&u, UART_IER, UART_IER_THRI); /* enabling THRI with an empty THR interrupts at once */
	assert_int_equal(irq.level, 1);
	assert_int_equal(rd(&u, UART_IIR_FCR) & 0x0f, UART_IIR_THRI);
	assert_int_equal(irq.level, 0); /* reading IIR acknowledged it */
	assert_int_equal(rd(&u, UART_IIR_FCR) & 0x0f, UART_IIR_NONE);
	wr(&u, UART_RBR_THR, 'x'); /* each transmitted byte raises THRE again */
	assert_int_equal(irq.level, 1);
	assert_int_equal(irq.raises, 2);
	uart_destroy(&u);
	close(p[0]);
	close(p[1]);
}

static void uart_receives(void **state)
{
	(void)state;
	struct irq_log irq = { 0 };
	struct uart8250 u;
	uart_init(&u, -1, log_irq, &irq);
	assert_int_equal(rd(&u, UART_LSR) & UART_LSR_DR, 0);
	assert_int_equal(uart_receive(&u, (const uint8_t *)"ab", 2), 2);
	assert_int_equal(irq.level, 0); /* RDI not enabled yet */
	wr(&u, UART_IER, UART_IER_RDI);
	assert_int_equal(irq.level, 1);
	assert_int_equal(rd(&u, UART_IIR_FCR) & 0x0f, UART_IIR_RDI);
	assert_true(rd(&u, UART_LSR) & UART_LSR_DR);
	assert_int_equal(rd(&u, UART_RBR_THR), 'a');
	assert_int_equal(rd(&u, UART_RBR_THR), 'b');
	assert_int_equal(irq.level, 0);
	assert_int_equal(rd(&u, UART_LSR) & UART_LSR_DR, 0);
	assert_int_equal(rd(&u, UART_RBR_THR), 0); /* empty FIFO reads 0, does not underflow */

	uint8_t big[UART_RX_FIFO + 10];
	memset(big, 'z', sizeof(big));
	assert_int_equal(uart_receive(&u, big, sizeof(big)), UART_RX_FIFO); /* the rest is refused */
	assert_int_equal(uart_rx_space(&u), 0);
	wr(&u, UART_IIR_FCR, UART_FCR_ENABLE | UART_FCR_CLEAR_RX);
	assert_int_equal(uart_rx_space(&u), UART_RX_FIFO);
	/* loopback: transmitted bytes come back as received ones */
	wr(&u, UART_MCR, UART_MCR_LOOP);
	wr(&u, UART_RBR_THR, 'L');
	assert_int_equal(rd(&u, UART_RBR_THR), 'L');
	uart_destroy(&u);
}

struct rec {
	uint64_t addr;
	uint32_t len;
	bool write;
	uint8_t data[8];
	int calls;
};

static void record(void *opaque, uint64_t addr, uint8_t *data, uint32_t len, bool is_write)
{
	struct rec *r = opaque;
	r->addr = addr, r->len = len, r->write = is_write, r->calls++;
	if (is_write)
		memcpy(r->data, data, len);
	else
		memset(data, 0x42, len);
}

static void bus_dispatch_and_overlap(void **state)
{
	(void)state;
	struct io_bus bus = { 0 };
	struct rec a = { 0 }, b = { 0 };
	vt_err err;
	assert_int_equal(bus_register(&bus, 0x100, 8, record, &b, "b", &err), 0);
	assert_int_equal(bus_register(&bus, 0x10, 4, record, &a, "a", &err), 0);
	assert_int_equal(bus_register(&bus, 0x12, 4, record, &a, "overlap-a", &err), -1);
	assert_non_null(strstr(err.msg, "overlaps a"));
	assert_int_equal(bus_register(&bus, 0xf0, 0x11, record, &a, "overlap-b", &err), -1);
	assert_int_equal(bus_register(&bus, 0x200, 0, record, &a, "empty", &err), -1);
	assert_int_equal(bus_register(&bus, UINT64_MAX - 1, 4, record, &a, "wraps", &err), -1);

	uint8_t v[4] = { 1, 2, 3, 4 };
	assert_true(bus_dispatch(&bus, 0x104, v, 4, true));
	assert_int_equal(b.addr, 4); /* offset within the range */
	assert_int_equal(b.len, 4);
	assert_memory_equal(b.data, v, 4);
	assert_true(bus_dispatch(&bus, 0x13, v, 1, false));
	assert_int_equal(a.addr, 3);
	assert_int_equal(v[0], 0x42);
	/* An access running past the end of a range, or to nothing, is unclaimed: reads are all ones. */
	assert_false(bus_dispatch(&bus, 0x13, v, 4, false));
	assert_int_equal(v[0], 0xff);
	assert_false(bus_dispatch(&bus, 0x50, v, 2, true));
	assert_int_equal(bus.unhandled, 2);
	assert_false(bus_dispatch(&bus, 0x50, v, 1, false));
	assert_int_equal(bus.unclaimed[0].addr, 0x13);
	assert_int_equal(bus.unclaimed[0].count, 1);
	assert_int_equal(bus.unclaimed[1].addr, 0x50);
	assert_int_equal(bus.unclaimed[1].count, 2);
	assert_int_equal(bus_find(&bus, 0x10)->accesses, 1);
	assert_int_equal(bus_find(&bus, 0x107)->accesses, 1);
	assert_null(bus_find(&bus, 0x108));
}

struct events {
	int poweroff, reset;
};

static void on_event(void *opaque, enum platform_event ev)
{
	struct events *e = opaque;
	if (ev == PLATFORM_POWEROFF)
		e->poweroff++;
	else
		e->reset++;
}

static void platform_reset_and_sleep(void **state)
{
	(void)state;
	struct events ev = { 0 };
	struct platform_dev p = { on_event, &ev };
	uint8_t v = 0x55;
	i8042_io(&p, 4, &v, 1, false);
	assert_int_equal(v, 0); /* status: buffers empty, so kb_wait() loops end */
	v = 0xfe;
	i8042_io(&p, 0, &v, 1, true); /* the data port is not the command port */
	assert_int_equal(ev.reset, 0);
	i8042_io(&p, 4, &v, 1, true);
	assert_int_equal(ev.reset, 1);

	v = 5 << 2; /* S5 without SLP_EN: nothing */
	acpi_sleep_io(&p, 0, &v, 1, true);
	v = (3 << 2) | 0x20; /* S3 is not supported: nothing */
	acpi_sleep_io(&p, 0, &v, 1, true);
	v = (5 << 2) | 0x20;
	acpi_sleep_io(&p, 1, &v, 1, true); /* status register */
	assert_int_equal(ev.poweroff, 0);
	acpi_sleep_io(&p, 0, &v, 1, true);
	assert_int_equal(ev.poweroff, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(uart_probe_registers),
		cmocka_unit_test(uart_transmits_and_interrupts),
		cmocka_unit_test(uart_receives),
		cmocka_unit_test(bus_dispatch_and_overlap),
		cmocka_unit_test(platform_reset_and_sleep),
	};
	return cmocka_run_group_tests_name("devices", tests, NULL, NULL);
}

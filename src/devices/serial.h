/* 16550A-compatible UART (COM1). Transmit is instantaneous (bytes go straight to the console sink, filtered
 * when it is a terminal: lib/termsafe.h); receive has a
 * FIFO filled by the console thread. Interrupts follow the 8250 rules Linux's driver relies on. */
#ifndef VIRTUS_SERIAL_H
#define VIRTUS_SERIAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"
#include "lib/termsafe.h"

#define UART_RX_FIFO 256

typedef void (*irq_line_fn)(void *opaque, int level);

struct uart8250 {
	pthread_mutex_t lock;
	uint8_t ier, lcr, mcr, scr, dll, dlm, fcr;
	bool thre_pending;       /* "transmitter empty" interrupt not yet acknowledged */
	uint8_t rx[UART_RX_FIFO];
	unsigned rx_head, rx_count;
	struct console_sink out;  /* fd -1 discards output */
	irq_line_fn set_irq;
	void *irq_opaque;
	int irq_level;
	uint64_t tx_bytes;
};

void uart_init(struct uart8250 *u, int out_fd, irq_line_fn set_irq, void *irq_opaque);
void uart_destroy(struct uart8250 *u);
/* Snapshot section "serial" (lib/state_file.h): registers and receive FIFO. */
struct state_writer;
struct state_reader;
int uart_state_save(struct uart8250 *u, struct state_writer *w);
int uart_state_load(struct uart8250 *u, const struct state_reader *r, vt_err *err);
/* Bus handler for the 8 registers. */
void uart_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);
/* Queue host input; returns how many bytes fit. */
size_t uart_receive(struct uart8250 *u, const uint8_t *buf, size_t len);
size_t uart_rx_space(struct uart8250 *u);

/* Register offsets and bits (PC16550D data sheet). */
enum {
	UART_RBR_THR = 0, UART_IER = 1, UART_IIR_FCR = 2, UART_LCR = 3, UART_MCR = 4, UART_LSR = 5, UART_MSR = 6, UART_SCR = 7,
};
#define UART_IER_RDI   0x01
#define UART_IER_THRI  0x02
#define UART_IIR_NONE  0x01
#define UART_IIR_THRI  0x02
#define UART_IIR_RDI   0x04
#define UART_IIR_FIFO  0xc0
#define UART_LCR_DLAB  0x80
#define UART_MCR_LOOP  0x10
#define UART_LSR_DR    0x01
#define UART_LSR_THRE  0x20
#define UART_LSR_TEMT  0x40
#define UART_FCR_ENABLE 0x01
#define UART_FCR_CLEAR_RX 0x02

#endif

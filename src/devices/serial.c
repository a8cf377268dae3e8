#include "devices/serial.h"

#include <string.h>

#include "lib/state_file.h"
#include "lib/util.h"

#define UART_STATE_VERSION 1

static void update_irq(struct uart8250 *u);

/* The registers and the receive FIFO, as the guest sees them; the IRQ line's level follows from them. */
struct uart_state {
	uint8_t ier, lcr, mcr, scr, dll, dlm, fcr, thre_pending;
	uint32_t rx_head, rx_count;
	uint8_t rx[UART_RX_FIFO];
};

void uart_init(struct uart8250 *u, int out_fd, irq_line_fn set_irq, void *irq_opaque)
{
	memset(u, 0, sizeof(*u));
	pthread_mutex_init(&u->lock, NULL);
	console_sink_init(&u->out, out_fd);
	u->set_irq = set_irq;
	u->irq_opaque = irq_opaque;
	u->lcr = 0x03;           /* 8N1, as firmware would leave it */
	u->mcr = 0x08;           /* OUT2 */
}

int uart_state_save(struct uart8250 *u, struct state_writer *w)
{
	struct uart_state st = { 0 };
	pthread_mutex_lock(&u->lock);
	st = (struct uart_state){ .ier = u->ier, .lcr = u->lcr, .mcr = u->mcr, .scr = u->scr, .dll = u->dll, .dlm = u->dlm,
				  .fcr = u->fcr, .thre_pending = u->thre_pending, .rx_head = u->rx_head, .rx_count = u->rx_count };
	memcpy(st.rx, u->rx, sizeof(st.rx));
	pthread_mutex_unlock(&u->lock);
	state_put(w, "serial", UART_STATE_VERSION, &st, sizeof(st));
	return 0;
}

int uart_state_load(struct uart8250 *u, const struct state_reader *r, vt_err *err)
{
	struct uart_state st;
	if (state_get(r, "serial", UART_STATE_VERSION, &st, sizeof(st), err) < 0)
		return -1;
	if (st.rx_head >= UART_RX_FIFO || st.rx_count > UART_RX_FIFO)
		return vt_fail(err, "snapshot section serial: receive FIFO position out of range");
	pthread_mutex_lock(&u->lock);
	u->ier = st.ier, u->lcr = st.lcr, u->mcr = st.mcr, u->scr = st.scr, u->dll = st.dll, u->dlm = st.dlm;
	u->fcr = st.fcr, u->thre_pending = st.thre_pending != 0;
	u->rx_head = st.rx_head, u->rx_count = st.rx_count;
	memcpy(u->rx, st.rx, sizeof(u->rx));
	/* The interrupt line follows the registers: drive it whatever the restored interrupt controller says
	 * (a line left high with nothing pending makes the guest's driver see an interrupt nobody raised, and
	 * Linux then turns the port's IRQ off). */
	u->irq_level = -1;
	update_irq(u);
	pthread_mutex_unlock(&u->lock);
	return 0;
}

void uart_destroy(struct uart8250 *u)
{
	pthread_mutex_destroy(&u->lock);
}

static bool rx_interrupt(const struct uart8250 *u) { return (u->ier & UART_IER_RDI) && u->rx_count; }
static bool tx_interrupt(const struct uart8250 *u) { return (u->ier & UART_IER_THRI) && u->thre_pending; }

static uint8_t iir(const struct uart8250 *u)
{
	uint8_t fifo = (u->fcr & UART_FCR_ENABLE) ? UART_IIR_FIFO : 0;
	if (rx_interrupt(u))
		return fifo | UART_IIR_RDI;
	if (tx_interrupt(u))
		return fifo | UART_IIR_THRI;
	return fifo | UART_IIR_NONE;
}

/* Called with the lock held after every state change: drive the IRQ line to the pending state. */
static void update_irq(struct uart8250 *u)
{
	int level = rx_interrupt(u) || tx_interrupt(u);
	if (level != u->irq_level && u->set_irq)
		u->set_irq(u->irq_opaque, level);
	u->irq_level = level;
}

static void rx_push(struct uart8250 *u, uint8_t b)
{
	if (u->rx_count == UART_RX_FIFO)
		return; /* overrun: the byte is lost, as on hardware */
	u->rx[(u->rx_head + u->rx_count) % UART_RX_FIFO] = b;
	u->rx_count++;
}

static uint8_t rx_pop(struct uart8250 *u)
{
	if (!u->rx_count)
		return 0;
	uint8_t b = u->rx[u->rx_head];
	u->rx_head = (u->rx_head + 1) % UART_RX_FIFO;
	u->rx_count--;
	return b;
}

static void transmit(struct uart8250 *u, uint8_t b)
{
	if (u->mcr & UART_MCR_LOOP) {
		rx_push(u, b);
	} else {
		console_sink_write(&u->out, &b, 1);
	}
	u->tx_bytes++;
	u->thre_pending = true; /* sent at once: the holding register is empty again */
}

/* Loopback mode wires MCR outputs to MSR inputs; Linux's probe checks this to find the UART. */
static uint8_t msr(const struct uart8250 *u)
{
	if (!(u->mcr & UART_MCR_LOOP))
		return 0xb0; /* DCD, DSR, CTS */
	uint8_t m = u->mcr;
	return (uint8_t)(((m & 0x02) ? 0x10 : 0) | ((m & 0x01) ? 0x20 : 0) | ((m & 0x04) ? 0x40 : 0) | ((m & 0x08) ? 0x80 : 0));
}

static uint8_t uart_read(struct uart8250 *u, unsigned reg)
{
	bool dlab = u->lcr & UART_LCR_DLAB;
	switch (reg) {
	case UART_RBR_THR: return dlab ? u->dll : rx_pop(u);
	case UART_IER:     return dlab ? u->dlm : u->ier;
	case UART_IIR_FCR: {
		uint8_t v = iir(u);
		if ((v & 0x0f) == UART_IIR_THRI)
			u->thre_pending = false; /* reading IIR acknowledges THRE */
		return v;
	}
	case UART_LCR:     return u->lcr;
	case UART_MCR:     return u->mcr;
	case UART_LSR:     return (uint8_t)(UART_LSR_THRE | UART_LSR_TEMT | (u->rx_count ? UART_LSR_DR : 0));
	case UART_MSR:     return msr(u);
	default:           return u->scr;
	}
}

static void uart_write(struct uart8250 *u, unsigned reg, uint8_t v)
{
	bool dlab = u->lcr & UART_LCR_DLAB;
	switch (reg) {
	case UART_RBR_THR:
		if (dlab)
			u->dll = v;
		else
			transmit(u, v);
		break;
	case UART_IER:
		if (dlab) {
			u->dlm = v;
		} else {
			if ((v & UART_IER_THRI) && !(u->ier & UART_IER_THRI))
				u->thre_pending = true; /* enabling THRI with an empty THR interrupts at once */
			u->ier = v & 0x0f;
		}
		break;
	case UART_IIR_FCR:
		u->fcr = v & 0xc9;
		if (v & UART_FCR_CLEAR_RX)
			u->rx_head = u->rx_count = 0;
		break;
	case UART_LCR: u->lcr = v; break;
	case UART_MCR: u->mcr = v & 0x1f; break;
	case UART_SCR: u->scr = v; break;
	default: break; /* LSR and MSR are read-only */
	}
}

void uart_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct uart8250 *u = opaque;
	pthread_mutex_lock(&u->lock);
	for (uint32_t i = 0; i < len; i++) {
		unsigned reg = (unsigned)(offset + i) & 7;
		if (is_write)
			uart_write(u, reg, data[i]);
		else
			data[i] = uart_read(u, reg);
	}
	update_irq(u);
	pthread_mutex_unlock(&u->lock);
}

size_t uart_receive(struct uart8250 *u, const uint8_t *buf, size_t len)
{
	pthread_mutex_lock(&u->lock);
	size_t n = 0;
	while (n < len && u->rx_count < UART_RX_FIFO)
		rx_push(u, buf[n++]);
	update_irq(u);
	pthread_mutex_unlock(&u->lock);
	return n;
}

size_t uart_rx_space(struct uart8250 *u)
{
	pthread_mutex_lock(&u->lock);
	size_t n = UART_RX_FIFO - u->rx_count;
	pthread_mutex_unlock(&u->lock);
	return n;
}

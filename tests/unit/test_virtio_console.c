/* virtio-console over fake guest memory through the real virtio-pci transport: the guest's output reaches
 * the output fd, host input is held (bounded) while no receive buffer is posted and delivered, split across
 * buffers, once the driver posts some; malformed chains break the device without a crash. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>
#include <cmocka.h>

#include "devices/virtio/console.h"
#include "vdev_harness.h"

struct fx {
	struct harness h;
	int pipe[2]; /* the device writes the guest's output to pipe[1] */
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	h_init(&f->h);
	assert_int_equal(pipe2(f->pipe, O_NONBLOCK), 0);
	struct virtio_device *d;
	vt_err err;
	assert_int_equal(virtio_console_create(&d, f->pipe[1], &err), 0);
	assert_int_equal(d->id, VIRTIO_ID_CONSOLE);
	assert_int_equal(d->nqueues, 2);
	h_plug(&f->h, d);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	h_fini(&f->h, virtio_console_destroy);
	close(f->pipe[0]);
	close(f->pipe[1]);
	free(f);
	return 0;
}

/* The guest writes one byte to its console (what proves its port is connected). */
static void guest_speaks(struct fx *f)
{
	f->h.ram[H_BUF + 0x3000] = '$';
	h_post(&f->h, VCON_TXQ, H_BUF + 0x3000, 1, 0);
	h_kick(&f->h, VCON_TXQ);
	char c;
	assert_int_equal(read(f->pipe[0], &c, 1), 1);
}

static void transmit_reaches_output_fd(void **state)
{
	struct fx *f = *state;
	h_driver_ok(&f->h, 1u << VIRTIO_F_EVENT_IDX);
	memcpy(f->h.ram + H_BUF, "hello, ", 7);
	memcpy(f->h.ram + H_BUF + 0x100, "hvc0\n", 5);
	h_post(&f->h, VCON_TXQ, H_BUF, 7, 0);
	h_post(&f->h, VCON_TXQ, H_BUF + 0x100, 5, 0);
	h_kick(&f->h, VCON_TXQ);
	char out[64] = { 0 };
	assert_int_equal(read(f->pipe[0], out, sizeof(out)), 12);
	assert_string_equal(out, "hello, hvc0\n");
	assert_int_equal(h_used_idx(&f->h, VCON_TXQ), 2);
	assert_int_equal(h_bar_read(&f->h, VPCI_ISR_OFF, 1), 1); /* queue interrupt raised */
}

static void input_held_until_buffers_posted(void **state)
{
	struct fx *f = *state;
	/* typed before the driver even started: held */
	assert_int_equal(virtio_console_input(f->h.dev, (const uint8_t *)"ech", 3), 3);
	h_driver_ok(&f->h, 1u << VIRTIO_F_EVENT_IDX);
	assert_int_equal(virtio_console_input(f->h.dev, (const uint8_t *)"o 42\n", 5), 5);
	h_kick(&f->h, VCON_RXQ); /* what the host's wake does: no buffer yet, nothing delivered */
	assert_int_equal(h_used_idx(&f->h, VCON_RXQ), 0);
	/* with event idx the device asked to be kicked on the next posted buffer (avail_event = 0) */
	uint16_t avail_event;
	memcpy(&avail_event, f->h.ram + H_RING(VCON_RXQ) + 0x2000 + 4 + 8 * H_QSIZE, 2);
	assert_int_equal(avail_event, 0);
	/* a 3-byte buffer takes the first 3 bytes, the next buffer the rest */
	memset(f->h.ram + H_BUF, '.', 0x200);
	h_post(&f->h, VCON_RXQ, H_BUF, 3, VIRTQ_DESC_F_WRITE);
	h_kick(&f->h, VCON_RXQ);
	assert_int_equal(h_used_idx(&f->h, VCON_RXQ), 0); /* still held: the guest's console has not spoken */
	guest_speaks(f);
	assert_int_equal(h_used_idx(&f->h, VCON_RXQ), 1);
	assert_int_equal(h_used_len(&f->h, VCON_RXQ, 0), 3);
	assert_memory_equal(f->h.ram + H_BUF, "ech", 3);
	h_post(&f->h, VCON_RXQ, H_BUF + 0x100, 64, VIRTQ_DESC_F_WRITE);
	h_kick(&f->h, VCON_RXQ);
	assert_int_equal(h_used_idx(&f->h, VCON_RXQ), 2);
	assert_int_equal(h_used_len(&f->h, VCON_RXQ, 1), 5);
	assert_memory_equal(f->h.ram + H_BUF + 0x100, "o 42\n.", 6);
	/* nothing pending: a posted buffer stays posted until input comes */
	h_post(&f->h, VCON_RXQ, H_BUF + 0x200, 64, VIRTQ_DESC_F_WRITE);
	h_kick(&f->h, VCON_RXQ);
	assert_int_equal(h_used_idx(&f->h, VCON_RXQ), 2);
	assert_int_equal(virtio_console_input(f->h.dev, (const uint8_t *)"x", 1), 1);
	h_kick(&f->h, VCON_RXQ);
	assert_int_equal(h_used_idx(&f->h, VCON_RXQ), 3);
	assert_int_equal(h_used_len(&f->h, VCON_RXQ, 2), 1);
}

static void held_input_is_bounded(void **state)
{
	struct fx *f = *state;
	static uint8_t big[VCON_PENDING_MAX + 100];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)i;
	assert_int_equal(virtio_console_input(f->h.dev, big, sizeof(big)), VCON_PENDING_MAX);
	assert_int_equal(virtio_console_input(f->h.dev, big, 1), 0); /* full: the caller retries later */
	h_driver_ok(&f->h, 0);
	guest_speaks(f);
	for (unsigned i = 0; i < 4; i++)
		h_post(&f->h, VCON_RXQ, H_BUF + i * 0x1000, 0x1000, VIRTQ_DESC_F_WRITE);
	h_kick(&f->h, VCON_RXQ);
	assert_int_equal(h_used_idx(&f->h, VCON_RXQ), 1); /* 4096 bytes fill exactly the first buffer */
	assert_memory_equal(f->h.ram + H_BUF, big, VCON_PENDING_MAX);
	/* and the FIFO wrapped correctly: room again, order kept */
	assert_int_equal(virtio_console_input(f->h.dev, big + 7, 10), 10);
	h_kick(&f->h, VCON_RXQ);
	assert_int_equal(h_used_idx(&f->h, VCON_RXQ), 2);
	assert_memory_equal(f->h.ram + H_BUF + 0x1000, big + 7, 10);
}

/* Input the driver has not taken (used_event behind used idx, e.g. its interrupt came before the port was
 * ready) gets its interrupt again each time the guest transmits; input taken does not. */
static void untaken_input_interrupts_again(void **state)
{
	struct fx *f = *state;
	h_driver_ok(&f->h, 1u << VIRTIO_F_EVENT_IDX);
	guest_speaks(f);
	h_post(&f->h, VCON_RXQ, H_BUF, 64, VIRTQ_DESC_F_WRITE);
	h_kick(&f->h, VCON_RXQ);
	assert_int_equal(virtio_console_input(f->h.dev, (const uint8_t *)"ls\n", 3), 3);
	h_kick(&f->h, VCON_RXQ);
	assert_int_equal(h_used_idx(&f->h, VCON_RXQ), 1);
	uint64_t before = f->h.t->q[VCON_RXQ].interrupts;
	assert_int_equal(before, 1);
	guest_speaks(f); /* used_event still 0: not taken */
	assert_int_equal(f->h.t->q[VCON_RXQ].interrupts, 2);
	uint16_t used_event = 1; /* the driver took it */
	memcpy(f->h.ram + H_RING(VCON_RXQ) + 0x1000 + 4 + 2 * H_QSIZE, &used_event, 2);
	guest_speaks(f);
	assert_int_equal(f->h.t->q[VCON_RXQ].interrupts, 2);
}

static void malformed_chains_break_device(void **state)
{
	struct fx *f = *state;
	h_driver_ok(&f->h, 0);
	h_post(&f->h, VCON_TXQ, H_RAM - 16, 64, 0); /* runs off the end of guest RAM */
	h_kick(&f->h, VCON_TXQ);
	assert_true(h_needs_reset(&f->h));
	char out[8];
	assert_int_equal(read(f->pipe[0], out, sizeof(out)), -1); /* nothing written */

	h_bar_write(&f->h, VPCI_STATUS, 1, 0); /* reset, then a bad receive buffer */
	memset(f->h.ram + H_RING(0), 0, 0x8000);
	memset(f->h.avail_idx, 0, sizeof(f->h.avail_idx));
	memset(f->h.next_desc, 0, sizeof(f->h.next_desc));
	h_driver_ok(&f->h, 0);
	assert_false(h_needs_reset(&f->h));
	guest_speaks(f);
	assert_int_equal(virtio_console_input(f->h.dev, (const uint8_t *)"abc", 3), 3);
	h_post(&f->h, VCON_RXQ, 0xfffffffffffff000ULL, 64, VIRTQ_DESC_F_WRITE);
	h_kick(&f->h, VCON_RXQ);
	assert_true(h_needs_reset(&f->h));
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(transmit_reaches_output_fd),
		T(input_held_until_buffers_posted),
		T(held_input_is_bounded),
		T(untaken_input_interrupts_again),
		T(malformed_chains_break_device),
	};
	return cmocka_run_group_tests_name("virtio_console", tests, NULL, NULL);
}

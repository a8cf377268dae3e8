/* PCI without KVM: config space through conf1 and ECAM, BAR sizing and allocation, the capability chain,
 * the command register, MSI-X masking with a fake route setter, and the virtio-pci transport (common cfg,
 * status machine, reset, the PCI_CFG access window) driving virtio-rng over fake guest memory; slots plugged
 * and unplugged while vCPUs use them, and the ACPI hot-plug registers. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <cmocka.h>

#include "devices/pci.h"
#include "devices/pci_hotplug.h"
#include "devices/virtio/pci.h"
#include "devices/virtio/virtio.h"
#include "pci_driver.h"

#define MMIO_BASE 0xc0000000ULL
#define MMIO_SIZE 0x20000000ULL
#define ECAM_BASE 0xe0000000ULL
#define IO_BASE   0x1000
#define IO_SIZE   0x1000
#define IO_SHARE  (IO_SIZE / PCI_MAX_SLOTS) /* each slot's ports */
#define GUEST_RAM (1u << 20)

/* ---- fakes ---- */


struct moved_log {
	unsigned calls;
	uint64_t addr;
	bool decoding;
};

struct fixture {
	struct pci_bus bus;
	struct fake_irq irq;
	struct guest_mem mem;
	uint8_t *ram;
	struct virtio_device *rng;
	struct virtio_transport *t;
	unsigned slot;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	f->ram = calloc(1, GUEST_RAM);
	gmem_init_fixed(&f->mem, f->ram, GUEST_RAM);
	pci_bus_init(&f->bus, MMIO_BASE, MMIO_SIZE, ECAM_BASE);
	pci_bus_set_io_window(&f->bus, IO_BASE, IO_SIZE);
	vt_err err;
	struct virtio_pci_host host = { .msix_ops = &fake_msix_ops, .msix_opaque = &f->irq };
	assert_int_equal(virtio_rng_create(&f->rng, &err), 0);
	assert_int_equal(virtio_pci_create(f->rng, &f->mem, &host, &f->t, &err), 0);
	assert_int_equal(pci_bus_plug(&f->bus, &f->t->pci, &f->slot, &err), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	virtio_pci_destroy(f->t);
	virtio_rng_destroy(f->rng);
	pci_bus_destroy(&f->bus);
	free(f->ram);
	free(f);
	return 0;
}

/* ---- helpers ---- */

static uint32_t ecam_read(struct pci_bus *b, unsigned bus, unsigned slot, unsigned off, unsigned len)
{
	uint8_t d[4] = { 0 };
	pci_ecam_io(b, (uint64_t)bus << 20 | slot << 15 | off, d, len, false);
	return pci_get(d, len);
}

/* ---- PCI config space ---- */

static void conf1_reads_host_bridge_and_device(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(conf1_read(&f->bus, 0, PCI_VENDOR_ID, 4), 0x00081b36);
	assert_int_equal(conf1_read(&f->bus, f->slot, PCI_VENDOR_ID, 2), 0x1af4);
	assert_int_equal(conf1_read(&f->bus, f->slot, PCI_DEVICE_ID, 2), 0x1040 + VIRTIO_ID_RNG);
	/* byte and word offsets within the data window */
	assert_int_equal(conf1_read(&f->bus, f->slot, PCI_DEVICE_ID + 1, 1), 0x10);
	assert_int_equal(conf1_read(&f->bus, f->slot, PCI_REVISION_ID, 1), 1);
	/* no device: all ones */
	assert_int_equal(conf1_read(&f->bus, 7, PCI_VENDOR_ID, 4), 0xffffffff);
	/* enable bit clear: all ones */
	uint8_t d[4];
	pci_put(d, 4, 0);
	pci_conf1_io(&f->bus, 0, d, 4, true);
	pci_conf1_io(&f->bus, 4, d, 4, false);
	assert_int_equal(pci_get(d, 4), 0xffffffff);
	/* the address register reads back what was written, byte accesses to it do not change it */
	pci_put(d, 4, 0x80000800);
	pci_conf1_io(&f->bus, 0, d, 4, true);
	d[0] = 0x01;
	pci_conf1_io(&f->bus, 3, d, 1, true);
	pci_conf1_io(&f->bus, 0, d, 4, false);
	assert_int_equal(pci_get(d, 4), 0x80000800);
}

static void ecam_matches_conf1(void **state)
{
	struct fixture *f = *state;
	for (unsigned off = 0; off < 0x40; off += 4)
		assert_int_equal(ecam_read(&f->bus, 0, f->slot, off, 4), conf1_read(&f->bus, f->slot, off, 4));
	assert_int_equal(ecam_read(&f->bus, 1, 0, 0, 4), 0xffffffff);       /* no bus 1 */
	assert_int_equal(ecam_read(&f->bus, 0, f->slot, 0x100, 4), 0);       /* no extended capabilities */
	uint8_t d[4] = { 0 };
	pci_ecam_io(&f->bus, (uint64_t)f->slot << 15 | 1 << 12, d, 4, false); /* function 1 */
	assert_int_equal(pci_get(d, 4), 0xffffffff);
	/* a write through ECAM is seen through conf1 */
	pci_put(d, 1, 0x5a);
	pci_ecam_io(&f->bus, (uint64_t)f->slot << 15 | PCI_INTERRUPT_LINE, d, 1, true);
	assert_int_equal(conf1_read(&f->bus, f->slot, PCI_INTERRUPT_LINE, 1), 0x5a);
}

static void read_only_fields_stay(void **state)
{
	struct fixture *f = *state;
	conf1_write(&f->bus, f->slot, PCI_VENDOR_ID, 4, 0x12345678);
	assert_int_equal(conf1_read(&f->bus, f->slot, PCI_VENDOR_ID, 2), 0x1af4);
	conf1_write(&f->bus, f->slot, PCI_COMMAND, 2, 0xffff);
	assert_int_equal(conf1_read(&f->bus, f->slot, PCI_COMMAND, 2),
			 PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE);
}

static void bar_sizing_and_allocation(void **state)
{
	struct fixture *f = *state;
	uint32_t addr = conf1_read(&f->bus, f->slot, PCI_BAR0, 4);
	assert_int_equal(addr, MMIO_BASE); /* first BAR in the window, 32-bit memory */
	conf1_write(&f->bus, f->slot, PCI_BAR0, 4, 0xffffffff);
	assert_int_equal(conf1_read(&f->bus, f->slot, PCI_BAR0, 4), (uint32_t)~(VPCI_BAR_SIZE - 1));
	conf1_write(&f->bus, f->slot, PCI_BAR0, 4, addr);
	assert_int_equal(conf1_read(&f->bus, f->slot, PCI_BAR0, 4), addr);
	assert_int_equal(conf1_read(&f->bus, f->slot, PCI_BAR0 + 4, 4), 0); /* BAR 1 unimplemented */
	conf1_write(&f->bus, f->slot, PCI_BAR0 + 4, 4, 0xffffffff);
	assert_int_equal(conf1_read(&f->bus, f->slot, PCI_BAR0 + 4, 4), 0);

	/* A second device gets the next aligned block; a 64-bit BAR sizes through both halves. */
	struct pci_device d2;
	vt_err err;
	pci_device_init(&d2, 0x1234, 0x5678, 0, 0, 0, "second");
	assert_int_equal(pci_device_add_bar(&d2, 0, 0x10000, true, &err), 0);
	unsigned s2;
	assert_int_equal(pci_bus_plug(&f->bus, &d2, &s2, &err), 0);
	uint32_t lo = conf1_read(&f->bus, s2, PCI_BAR0, 4);
	assert_int_equal(lo & ~0xfu, MMIO_BASE + 0x10000);
	assert_int_equal(lo & 0x6, PCI_BAR_MEM_64);
	conf1_write(&f->bus, s2, PCI_BAR0, 4, 0xffffffff);
	conf1_write(&f->bus, s2, PCI_BAR0 + 4, 4, 0xffffffff);
	assert_int_equal(conf1_read(&f->bus, s2, PCI_BAR0, 4), 0xffff0000u | PCI_BAR_MEM_64);
	assert_int_equal(conf1_read(&f->bus, s2, PCI_BAR0 + 4, 4), 0xffffffff);

	/* Window exhausted: a clear error. */
	struct pci_device big;
	pci_device_init(&big, 0x1234, 0x5679, 0, 0, 0, "big");
	assert_int_equal(pci_device_add_bar(&big, 0, MMIO_SIZE, false, &err), 0);
	assert_int_equal(pci_bus_plug(&f->bus, &big, NULL, &err), -1);
	assert_non_null(strstr(err.msg, "no room"));
	assert_int_equal(pci_device_add_bar(&big, 0, 0x3000, false, &err), -1);
}

static void capability_chain(void **state)
{
	struct fixture *f = *state;
	assert_true(conf1_read(&f->bus, f->slot, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
	unsigned ptr = conf1_read(&f->bus, f->slot, PCI_CAP_PTR, 1);
	unsigned types[8], bars[8], offsets[8], nvendor = 0, msix = 0, vendor_after_msix = 0, hops = 0;
	while (ptr && hops++ < 16) {
		assert_int_equal(ptr % 4, 0);
		unsigned id = conf1_read(&f->bus, f->slot, ptr, 1);
		if (id == PCI_CAP_ID_VENDOR) {
			types[nvendor] = conf1_read(&f->bus, f->slot, ptr + 3, 1);
			bars[nvendor] = conf1_read(&f->bus, f->slot, ptr + 4, 1);
			offsets[nvendor++] = conf1_read(&f->bus, f->slot, ptr + 8, 4);
			vendor_after_msix += msix != 0;
		} else if (id == PCI_CAP_ID_MSIX) {
			msix = ptr;
		}
		ptr = conf1_read(&f->bus, f->slot, ptr + 1, 1);
	}
	assert_int_equal(ptr, 0); /* the chain ends */
	assert_int_equal(nvendor, 5); /* rng has no device config */
	assert_int_equal(types[0], VPCI_CAP_COMMON);
	assert_int_equal(types[1], VPCI_CAP_NOTIFY); /* the first notify area a driver finds: ports */
	assert_int_equal(bars[1], VPCI_PIO_BAR);
	assert_int_equal(offsets[1], 0);
	assert_int_equal(types[2], VPCI_CAP_ISR);
	assert_int_equal(types[3], VPCI_CAP_PCI_CFG);
	assert_int_equal(types[4], VPCI_CAP_NOTIFY); /* BAR 0's, after MSI-X so the others keep their offsets */
	assert_int_equal(bars[4], VPCI_BAR);
	assert_int_equal(offsets[4], VPCI_NOTIFY_OFF);
	assert_int_equal(vendor_after_msix, 1);
	for (unsigned i = 0; i < 4; i++)
		if (i != 1)
			assert_int_equal(bars[i], VPCI_BAR);
	assert_int_not_equal(msix, 0);
	assert_int_equal(conf1_read(&f->bus, f->slot, msix + 2, 2) & 0x7ff, 1); /* 2 vectors: queue + config */
	assert_int_equal(conf1_read(&f->bus, f->slot, msix + 4, 4), VPCI_MSIX_TABLE_OFF | VPCI_BAR);
	assert_int_equal(conf1_read(&f->bus, f->slot, msix + 8, 4), VPCI_MSIX_PBA_OFF | VPCI_BAR);
}

static void moved(struct pci_device *d, unsigned bar, uint64_t addr, bool decoding)
{
	struct moved_log *l = d->opaque;
	(void)bar;
	l->calls++, l->addr = addr, l->decoding = decoding;
}

static void bar_echo(void *opaque, uint64_t addr, uint8_t *data, uint32_t len, bool is_write)
{
	(void)opaque;
	if (!is_write)
		for (uint32_t i = 0; i < len; i++)
			data[i] = (uint8_t)(PCI_BAR_OFFSET(addr) + i);
}

static void echo_device(struct pci_device *d, const struct pci_device_ops *ops, void *opaque)
{
	vt_err err;
	pci_device_init(d, 0x1234, 0x2, 0, 0, 0, "echo");
	d->ops = ops, d->opaque = opaque;
	assert_int_equal(pci_device_add_bar(d, 0, 0x1000, false, &err), 0);
}

static void command_register_gates_decode(void **state)
{
	struct fixture *f = *state;
	struct pci_device d;
	struct moved_log log = { 0 };
	const struct pci_device_ops ops = { .bar_io = bar_echo, .bar_moved = moved };
	vt_err err;
	pci_device_init(&d, 0x1234, 0x1, 0, 0, 0, "echo");
	d.ops = &ops, d.opaque = &log;
	assert_int_equal(pci_device_add_bar(&d, 2, 0x1000, false, &err), 0);
	unsigned s;
	assert_int_equal(pci_bus_plug(&f->bus, &d, &s, &err), 0);
	uint64_t at = conf1_read(&f->bus, s, PCI_BAR0 + 8, 4) - MMIO_BASE;
	uint8_t v[4] = { 0 };
	pci_mmio_io(&f->bus, at + 4, v, 4, false);
	assert_int_equal(pci_get(v, 4), 0xffffffff); /* decode off */
	conf1_write(&f->bus, s, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	assert_int_equal(log.calls, 1);
	assert_true(log.decoding);
	pci_mmio_io(&f->bus, at + 4, v, 4, false);
	assert_int_equal(pci_get(v, 4), 0x07060504);
	/* moving the BAR moves the decode and tells the device */
	conf1_write(&f->bus, s, PCI_BAR0 + 8, 4, (uint32_t)(MMIO_BASE + 0x100000));
	assert_int_equal(log.addr, MMIO_BASE + 0x100000);
	pci_mmio_io(&f->bus, at + 4, v, 4, false);
	assert_int_equal(pci_get(v, 4), 0xffffffff);
	pci_mmio_io(&f->bus, 0x100000 + 8, v, 1, false);
	assert_int_equal(v[0], 8);
	conf1_write(&f->bus, s, PCI_COMMAND, 2, 0);
	assert_false(log.decoding);
}

/* An I/O BAR: bit 0 set, sized like a 32-bit BAR, placed in its slot's share of the window, decoded only
 * while PCI_COMMAND_IO is set (never by the memory bit) and only inside the window. */
static void io_bar_decode_and_window(void **state)
{
	struct fixture *f = *state;
	struct pci_device d;
	struct moved_log log = { 0 };
	const struct pci_device_ops ops = { .bar_io = bar_echo, .bar_moved = moved };
	vt_err err;
	echo_device(&d, &ops, &log); /* memory BAR 0, and the I/O BAR below */
	assert_int_equal(pci_device_add_io_bar(&d, 1, 3, &err), -1);  /* not a power of two */
	assert_int_equal(pci_device_add_io_bar(&d, 1, 512, &err), -1); /* PCI's limit is 256 */
	assert_non_null(strstr(err.msg, "I/O BAR of 512 ports"));
	assert_int_equal(pci_device_add_io_bar(&d, 1, 16, &err), 0);
	assert_int_equal(pci_bus_plug_at(&f->bus, &d, 9, &err), 0);
	uint32_t reg = conf1_read(&f->bus, 9, PCI_BAR0 + 4, 4);
	assert_int_equal(reg, (IO_BASE + 9 * IO_SHARE) | PCI_BAR_IO);
	conf1_write(&f->bus, 9, PCI_BAR0 + 4, 4, 0xffffffff);
	assert_int_equal(conf1_read(&f->bus, 9, PCI_BAR0 + 4, 4), 0xfffffff0u | PCI_BAR_IO);
	conf1_write(&f->bus, 9, PCI_BAR0 + 4, 4, reg);
	uint64_t port = reg & ~3u;
	uint8_t v[2] = { 0 };
	conf1_write(&f->bus, 9, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	pci_pio_io(&f->bus, port - IO_BASE + 6, v, 2, false);
	assert_int_equal(pci_get(v, 2), 0xffff); /* the memory bit does not decode ports */
	assert_false(log.decoding);
	conf1_write(&f->bus, 9, PCI_COMMAND, 2, PCI_COMMAND_IO);
	assert_true(log.decoding);
	assert_int_equal(log.addr, port);
	pci_pio_io(&f->bus, port - IO_BASE + 6, v, 2, false);
	assert_int_equal(pci_get(v, 2), 0x0706); /* offset 6 of the BAR */
	pci_pio_io(&f->bus, port - IO_BASE + 15, v, 2, false); /* runs past the BAR's end */
	assert_int_equal(pci_get(v, 2), 0xffff);
	/* the guest may move it inside the window; outside, it decodes nothing */
	conf1_write(&f->bus, 9, PCI_BAR0 + 4, 4, IO_BASE + 0x40);
	assert_true(log.decoding);
	pci_pio_io(&f->bus, 0x40 + 2, v, 1, false);
	assert_int_equal(v[0], 2);
	conf1_write(&f->bus, 9, PCI_BAR0 + 4, 4, 0x3f0);
	assert_int_equal(log.addr, 0x3f0);
	assert_false(log.decoding);
	/* a slot's share is reused by the next device in it; a BAR larger than the share does not fit */
	pci_bus_unplug(&f->bus, 9);
	struct pci_device e;
	pci_device_init(&e, 0x1234, 0x3, 0, 0, 0, "io-big");
	assert_int_equal(pci_device_add_io_bar(&e, 0, 16, &err), 0);
	assert_int_equal(pci_bus_plug_at(&f->bus, &e, 9, &err), 0);
	assert_int_equal(conf1_read(&f->bus, 9, PCI_BAR0, 4), (IO_BASE + 9 * IO_SHARE) | PCI_BAR_IO);
	pci_bus_unplug(&f->bus, 9);
	assert_int_equal(pci_device_add_io_bar(&e, 0, IO_SHARE * 2, &err), 0);
	assert_int_equal(pci_bus_plug_at(&f->bus, &e, 9, &err), -1);
	assert_non_null(strstr(err.msg, "no room for a 256-port I/O BAR"));
}

/* ioeventfds as the VMM sees them: one per queue in each notify area, there only while its BAR decodes. */
struct placed {
	uint64_t addr[8];
	bool port[8];
	unsigned n, removed;
};

static int record_ioeventfd(void *opaque, uint64_t addr, bool port, int fd, bool assign)
{
	struct placed *p = opaque;
	(void)fd;
	if (!assign) {
		p->removed++;
		return 0;
	}
	if (p->n < 8)
		p->addr[p->n] = addr, p->port[p->n++] = port;
	return 0;
}

static int watch_nothing(void *o, int fd, void (*fn)(void *arg), void *arg, vt_err *err)
{
	(void)o, (void)fd, (void)fn, (void)arg, (void)err;
	return 0;
}

static void ioeventfds_follow_both_notify_areas(void **state)
{
	struct fixture *f = *state;
	struct placed p = { .n = 0 };
	struct virtio_pci_host host = { .msix_ops = &fake_msix_ops, .msix_opaque = &f->irq,
					.ioeventfd = record_ioeventfd, .opaque = &p, .watch = watch_nothing };
	struct virtio_device *rng;
	struct virtio_transport *t;
	vt_err err;
	unsigned s;
	assert_int_equal(virtio_rng_create(&rng, &err), 0);
	assert_int_equal(virtio_pci_create(rng, &f->mem, &host, &t, &err), 0);
	assert_int_equal(pci_bus_plug(&f->bus, &t->pci, &s, &err), 0);
	assert_int_equal(p.n, 0);
	conf1_write(&f->bus, s, PCI_COMMAND, 2, PCI_COMMAND_IO);
	assert_int_equal(p.n, 1);
	assert_true(p.port[0]);
	assert_int_equal(p.addr[0], IO_BASE + s * IO_SHARE);
	assert_int_equal(t->q[0].kick_port, IO_BASE + s * IO_SHARE);
	assert_int_equal(t->q[0].kick_gpa, 0);
	conf1_write(&f->bus, s, PCI_COMMAND, 2, PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
	assert_int_equal(p.n, 2);
	assert_false(p.port[1]);
	assert_int_equal(p.addr[1], (conf1_read(&f->bus, s, PCI_BAR0, 4) & ~0xfu) + VPCI_NOTIFY_OFF);
	conf1_write(&f->bus, s, PCI_COMMAND, 2, 0);
	assert_int_equal(p.removed, 2);
	assert_int_equal(t->q[0].kick_port, 0);
	assert_int_equal(t->q[0].kick_gpa, 0);
	/* a transport destroyed while both BARs decode takes both ioeventfds away */
	conf1_write(&f->bus, s, PCI_COMMAND, 2, PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
	assert_int_equal(p.n, 4);
	pci_bus_unplug(&f->bus, s);
	virtio_pci_destroy(t);
	assert_int_equal(p.removed, 4);
	virtio_rng_destroy(rng);
}

static void bad_config_accesses(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(pci_cfg_read(&f->bus, f->slot, 1, 2), 0xffff);       /* unaligned word */
	assert_int_equal(pci_cfg_read(&f->bus, f->slot, 2, 4), 0xffffffff);   /* unaligned dword */
	assert_int_equal(pci_cfg_read(&f->bus, f->slot, 0, 3), 0xffffff);     /* odd width */
	assert_int_equal(pci_cfg_read(&f->bus, 99, 0, 4), 0xffffffff);        /* slot out of range */
	assert_int_equal(pci_cfg_read(&f->bus, f->slot, 4096, 4), 0xffffffff); /* past ECAM's 4 KiB */
	pci_cfg_write(&f->bus, f->slot, 1, 2, 0);                              /* dropped, no crash */
	pci_cfg_write(&f->bus, f->slot, 0xfff, 4, 0);
	uint8_t d[8];
	pci_conf1_io(&f->bus, 4, d, 8, false);                                 /* wider than the window */
	pci_ecam_io(&f->bus, 0xffffffc, d, 8, false);
	assert_int_equal(d[0], 0xff);
}

/* ---- MSI-X ---- */

static void msix_entry(struct fixture *f, unsigned v, uint64_t addr, uint32_t data, bool masked)
{
	uint64_t base = VPCI_MSIX_TABLE_OFF + v * MSIX_ENTRY_SIZE;
	bar_write(f, base, 4, (uint32_t)addr);
	bar_write(f, base + 4, 4, addr >> 32);
	bar_write(f, base + 8, 4, data);
	bar_write(f, base + 12, 4, masked);
}

static unsigned msix_cap(struct fixture *f)
{
	unsigned ptr = conf1_read(&f->bus, f->slot, PCI_CAP_PTR, 1);
	while (ptr && conf1_read(&f->bus, f->slot, ptr, 1) != PCI_CAP_ID_MSIX)
		ptr = conf1_read(&f->bus, f->slot, ptr + 1, 1);
	return ptr;
}

static void msix_routes_and_masking(void **state)
{
	struct fixture *f = *state;
	unsigned cap = msix_cap(f);
	assert_int_equal(bar_read(f, VPCI_MSIX_TABLE_OFF + 12, 4), MSIX_ENTRY_MASKED); /* starts masked */
	msix_entry(f, 1, 0xfee00000, 0x4041, false);
	assert_int_equal(f->irq.last_vector, 1);
	assert_int_equal(f->irq.last_addr, 0xfee00000);
	assert_int_equal(f->irq.last_data, 0x4041);
	assert_int_equal(bar_read(f, VPCI_MSIX_TABLE_OFF + 16 + 8, 4), 0x4041);

	/* MSI-X disabled: the message is held pending, and sent on enable */
	msix_notify(&f->t->msix, 1);
	assert_int_equal(f->irq.signals[1], 0);
	assert_int_equal(bar_read(f, VPCI_MSIX_PBA_OFF, 8), 2);
	conf1_write(&f->bus, f->slot, cap + 2, 2, MSIX_CTRL_ENABLE);
	assert_int_equal(f->irq.signals[1], 1);
	assert_int_equal(bar_read(f, VPCI_MSIX_PBA_OFF, 8), 0);

	/* entry mask */
	msix_entry(f, 1, 0xfee00000, 0x4041, true);
	msix_notify(&f->t->msix, 1);
	msix_notify(&f->t->msix, 1);
	assert_int_equal(f->irq.signals[1], 1);
	assert_int_equal(bar_read(f, VPCI_MSIX_PBA_OFF, 1), 2);
	bar_write(f, VPCI_MSIX_TABLE_OFF + 16 + 12, 4, 0);
	assert_int_equal(f->irq.signals[1], 2); /* one pending bit: one message */

	/* function mask */
	conf1_write(&f->bus, f->slot, cap + 2, 2, MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL);
	msix_notify(&f->t->msix, 1);
	assert_int_equal(f->irq.signals[1], 2);
	conf1_write(&f->bus, f->slot, cap + 2, 2, MSIX_CTRL_ENABLE);
	assert_int_equal(f->irq.signals[1], 3);
	assert_int_equal(conf1_read(&f->bus, f->slot, cap + 2, 2) & 0x7ff, 1); /* table size read-only */

	/* hostile accesses: out of range vector, bad widths, beyond the table, PBA writes */
	msix_notify(&f->t->msix, 40);
	assert_int_equal(bar_read(f, VPCI_MSIX_TABLE_OFF + 2, 2), 0xffff);
	assert_int_equal(bar_read(f, VPCI_MSIX_TABLE_OFF + 2 * MSIX_ENTRY_SIZE, 4), 0xffffffff);
	bar_write(f, VPCI_MSIX_PBA_OFF, 8, ~0ULL);
	assert_int_equal(bar_read(f, VPCI_MSIX_PBA_OFF, 8), 0);
}

/* ---- virtio-pci common configuration ---- */

static uint32_t features_window(struct fixture *f, uint32_t sel)
{
	bar_write(f, VPCI_DFSELECT, 4, sel);
	return (uint32_t)bar_read(f, VPCI_DF, 4);
}

static void common_cfg_features(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(features_window(f, 0), (1u << VIRTIO_F_EVENT_IDX) | (1u << VIRTIO_F_INDIRECT_DESC));
	assert_int_equal(features_window(f, 1), 1); /* VERSION_1 */
	assert_int_equal(features_window(f, 2), 0);
	assert_int_equal(bar_read(f, VPCI_NUM_QUEUES, 2), 1);

	/* without VERSION_1, FEATURES_OK does not stick */
	bar_write(f, VPCI_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	bar_write(f, VPCI_GFSELECT, 4, 0);
	bar_write(f, VPCI_GF, 4, 1u << VIRTIO_F_EVENT_IDX);
	bar_write(f, VPCI_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
	assert_int_equal(bar_read(f, VPCI_STATUS, 1) & VIRTIO_STATUS_FEATURES_OK, 0);
	/* a feature the device did not offer: refused too */
	bar_write(f, VPCI_GFSELECT, 4, 1);
	bar_write(f, VPCI_GF, 4, 1 | 2);
	bar_write(f, VPCI_STATUS, 1, VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
	assert_int_equal(bar_read(f, VPCI_STATUS, 1) & VIRTIO_STATUS_FEATURES_OK, 0);
	/* DRIVER_OK without FEATURES_OK is not accepted */
	bar_write(f, VPCI_STATUS, 1, VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DRIVER_OK);
	assert_int_equal(bar_read(f, VPCI_STATUS, 1) & VIRTIO_STATUS_DRIVER_OK, 0);

	bar_write(f, VPCI_GF, 4, 1);
	assert_int_equal(bar_read(f, VPCI_GF, 4), 1);
	bar_write(f, VPCI_STATUS, 1, VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
	/* ACKNOWLEDGE, set earlier, stays: the driver cannot clear a status bit (2.1.1), only reset */
	assert_int_equal(bar_read(f, VPCI_STATUS, 1),
			 VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
	assert_true(virtio_has_feature(f->rng, VIRTIO_F_VERSION_1));
	assert_true(virtio_has_feature(f->rng, VIRTIO_F_EVENT_IDX));
	/* frozen after FEATURES_OK */
	bar_write(f, VPCI_GFSELECT, 4, 0);
	bar_write(f, VPCI_GF, 4, 0);
	assert_int_equal(bar_read(f, VPCI_GF, 4), 1u << VIRTIO_F_EVENT_IDX);

	/* reset: status 0 forgets everything */
	uint8_t gen = (uint8_t)bar_read(f, VPCI_CFG_GEN, 1);
	bar_write(f, VPCI_STATUS, 1, 0);
	assert_int_equal(bar_read(f, VPCI_STATUS, 1), 0);
	assert_int_equal(bar_read(f, VPCI_GF, 4), 0);
	assert_int_equal(f->rng->negotiated, 0);
	assert_int_not_equal(bar_read(f, VPCI_CFG_GEN, 1), gen);
}

static void common_cfg_queues(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(bar_read(f, VPCI_Q_SIZE, 2), 256);
	bar_write(f, VPCI_Q_SIZE, 2, 100);   /* not a power of two */
	assert_int_equal(bar_read(f, VPCI_Q_SIZE, 2), 256);
	bar_write(f, VPCI_Q_SIZE, 2, 512);   /* above the maximum */
	assert_int_equal(bar_read(f, VPCI_Q_SIZE, 2), 256);
	bar_write(f, VPCI_Q_SIZE, 2, 64);
	assert_int_equal(bar_read(f, VPCI_Q_SIZE, 2), 64);
	bar_write(f, VPCI_Q_MSIX, 2, 0);
	assert_int_equal(bar_read(f, VPCI_Q_MSIX, 2), 0);
	bar_write(f, VPCI_Q_MSIX, 2, 7);     /* no such vector */
	assert_int_equal(bar_read(f, VPCI_Q_MSIX, 2), VIRTIO_NO_VECTOR);
	bar_write(f, VPCI_MSIX_CONFIG, 2, 1);
	assert_int_equal(bar_read(f, VPCI_MSIX_CONFIG, 2), 1);
	/* 64-bit addresses as two dwords or one qword */
	bar_write(f, VPCI_Q_DESC, 4, 0x1000);
	bar_write(f, VPCI_Q_DESC + 4, 4, 0x2);
	assert_int_equal(bar_read(f, VPCI_Q_DESC, 8), 0x200001000ULL);
	bar_write(f, VPCI_Q_DRIVER, 8, 0x3000);
	assert_int_equal(bar_read(f, VPCI_Q_DRIVER, 4), 0x3000);
	assert_int_equal(bar_read(f, VPCI_Q_NOFF, 2), 0);
	/* a queue that does not exist */
	bar_write(f, VPCI_Q_SELECT, 2, 5);
	assert_int_equal(bar_read(f, VPCI_Q_SIZE, 2), 0);
	bar_write(f, VPCI_Q_ENABLE, 2, 1);
	assert_int_equal(bar_read(f, VPCI_Q_ENABLE, 2), 0);
	/* bad widths and offsets read as ones, writes are dropped */
	assert_int_equal(bar_read(f, VPCI_Q_SELECT, 4), 0xffffffff);
	assert_int_equal(bar_read(f, VPCI_DF + 1, 1), 0xff);
	assert_int_equal(bar_read(f, VPCI_COMMON_LEN, 4), 0xffffffff);
	assert_int_equal(bar_read(f, VPCI_BAR_SIZE - 4, 4), 0);           /* PBA tail: zeros */
	uint8_t d[8];
	virtio_pci_bar_io(f->t, PCI_BAR_ADDR(0, VPCI_BAR_SIZE), d, 4, false);
	assert_int_equal(pci_get(d, 4), 0xffffffff);
	virtio_pci_bar_io(f->t, PCI_BAR_ADDR(3, 0), d, 4, false);
	assert_int_equal(pci_get(d, 4), 0xffffffff);
	bar_write(f, VPCI_Q_SELECT, 1, 0);                               /* wrong width: dropped */
	assert_int_equal(bar_read(f, VPCI_Q_SELECT, 2), 5);
	assert_int_equal(bar_read(f, VPCI_DEVICE_OFF, 4), 0xffffffff);    /* rng: no device config */
	bar_write(f, VPCI_NOTIFY_OFF + 4 * 3, 2, 3);                     /* kick of a queue that does not exist */
}

/* ---- virtio-rng end to end over fake guest memory ---- */

#define DESC_GPA  0x10000
#define AVAIL_GPA 0x11000
#define USED_GPA  0x12000
#define BUF_GPA   0x20000

static void driver_ok(struct fixture *f, uint16_t qsize, uint64_t features_lo)
{
	bar_write(f, VPCI_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	bar_write(f, VPCI_GFSELECT, 4, 0);
	bar_write(f, VPCI_GF, 4, features_lo);
	bar_write(f, VPCI_GFSELECT, 4, 1);
	bar_write(f, VPCI_GF, 4, 1);
	bar_write(f, VPCI_STATUS, 1, VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
	bar_write(f, VPCI_MSIX_CONFIG, 2, 1);
	bar_write(f, VPCI_Q_SELECT, 2, 0);
	bar_write(f, VPCI_Q_SIZE, 2, qsize);
	bar_write(f, VPCI_Q_MSIX, 2, 0);
	bar_write(f, VPCI_Q_DESC, 8, DESC_GPA);
	bar_write(f, VPCI_Q_DRIVER, 8, AVAIL_GPA);
	bar_write(f, VPCI_Q_DEVICE, 8, USED_GPA);
	bar_write(f, VPCI_Q_ENABLE, 2, 1);
	bar_write(f, VPCI_STATUS, 1, VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
	conf1_write(&f->bus, f->slot, msix_cap(f) + 2, 2, MSIX_CTRL_ENABLE);
	msix_entry(f, 0, 0xfee00000, 0x30, false);
	msix_entry(f, 1, 0xfee00000, 0x31, false);
}

static void post_buffer(struct fixture *f, uint16_t slot, uint16_t desc, uint64_t gpa, uint32_t len, uint16_t flags)
{
	uint8_t *d = f->ram + DESC_GPA + 16u * desc;
	memcpy(d, &gpa, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	uint16_t *avail = (uint16_t *)(void *)(f->ram + AVAIL_GPA);
	avail[2 + slot] = desc;
	avail[1] = (uint16_t)(slot + 1);
}

static void rng_fills_buffers_and_interrupts(void **state)
{
	struct fixture *f = *state;
	driver_ok(f, 16, 1u << VIRTIO_F_EVENT_IDX);
	assert_int_equal(bar_read(f, VPCI_STATUS, 1) & VIRTIO_STATUS_DRIVER_OK, VIRTIO_STATUS_DRIVER_OK);
	post_buffer(f, 0, 0, BUF_GPA, 64, VIRTQ_DESC_F_WRITE);
	bar_write(f, VPCI_NOTIFY_OFF, 2, 0); /* no device thread in tests: handled at once */
	uint16_t used_idx;
	uint32_t elem[2];
	memcpy(&used_idx, f->ram + USED_GPA + 2, 2);
	memcpy(elem, f->ram + USED_GPA + 4, 8);
	assert_int_equal(used_idx, 1);
	assert_int_equal(elem[0], 0);
	assert_int_equal(elem[1], 64);
	static const uint8_t zeros[64];
	assert_memory_not_equal(f->ram + BUF_GPA, zeros, 64);
	assert_int_equal(f->irq.signals[0], 1);
	assert_int_equal(bar_read(f, VPCI_ISR_OFF, 1), 1); /* reading the ISR clears it */
	assert_int_equal(bar_read(f, VPCI_ISR_OFF, 1), 0);
	assert_int_equal(f->t->q[0].trapped_kicks, 1);
	/* event idx: the device re-armed notifications (avail_event = next slot) or the driver would stop kicking */
	uint16_t avail_event;
	memcpy(&avail_event, f->ram + USED_GPA + 4 + 8 * 16, 2);
	assert_int_equal(avail_event, 1);
}

/* The driver kicks through the I/O BAR, as the first notify capability tells it to. */
static void rng_kicked_by_port(void **state)
{
	struct fixture *f = *state;
	driver_ok(f, 16, 0);
	post_buffer(f, 0, 0, BUF_GPA, 64, VIRTQ_DESC_F_WRITE);
	uint32_t reg = conf1_read(&f->bus, f->slot, PCI_BAR0 + 4 * VPCI_PIO_BAR, 4);
	assert_int_equal(reg & PCI_BAR_IO, PCI_BAR_IO);
	uint8_t q[2] = { 0, 0 };
	pci_pio_io(&f->bus, (reg & ~3u) - IO_BASE, q, 2, true); /* I/O decode off: nothing happens */
	assert_int_equal(f->t->q[0].trapped_kicks, 0);
	conf1_write(&f->bus, f->slot, PCI_COMMAND, 2, PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	pci_pio_io(&f->bus, (reg & ~3u) - IO_BASE, q, 2, true);
	assert_int_equal(f->t->q[0].trapped_kicks, 1);
	uint16_t used_idx;
	memcpy(&used_idx, f->ram + USED_GPA + 2, 2);
	assert_int_equal(used_idx, 1);
	assert_int_equal(f->irq.signals[0], 1);
	/* reads of the notify ports give ones; a kick of a queue the device lacks is dropped */
	pci_pio_io(&f->bus, (reg & ~3u) - IO_BASE, q, 2, false);
	assert_int_equal(pci_get(q, 2), 0xffff);
	q[0] = 1;
	pci_pio_io(&f->bus, (reg & ~3u) - IO_BASE + VPCI_NOTIFY_MULT, q, 2, true);
	assert_int_equal(f->t->q[0].trapped_kicks, 1);
}

/* A snapshot taken before the I/O BAR existed: BAR 2's address 0, I/O decode off, the notify capability
 * naming BAR 0 and nothing after MSI-X. It loads; BAR 2 decodes nothing and the driver kicks at BAR 0. */
static void snapshot_from_before_the_io_bar(void **state)
{
	struct fixture *f = *state;
	struct pci_function_state s;
	vt_err err;
	conf1_write(&f->bus, f->slot, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	pci_function_state_get(&f->t->pci, &f->t->msix, &s);
	s.bar_addr[VPCI_PIO_BAR] = 0;
	unsigned notify = s.cfg[PCI_CAP_PTR], msix = 0;
	notify = s.cfg[notify + 1]; /* the second capability: common, then notify */
	assert_int_equal(s.cfg[notify + 3], VPCI_CAP_NOTIFY);
	s.cfg[notify + 4] = VPCI_BAR;
	pci_put(s.cfg + notify + 8, 4, VPCI_NOTIFY_OFF);
	for (unsigned p = s.cfg[PCI_CAP_PTR]; p; p = s.cfg[p + 1])
		if (s.cfg[p] == PCI_CAP_ID_MSIX)
			msix = p;
	s.cfg[msix + 1] = 0;
	s.bar_addr[VPCI_PIO_BAR + 1] = 0x1000; /* a BAR this function lacks must be 0 */
	assert_int_equal(pci_function_state_set(&f->t->pci, &f->t->msix, &s, &err), -1);
	s.bar_addr[VPCI_PIO_BAR + 1] = 0;
	assert_int_equal(pci_function_state_set(&f->t->pci, &f->t->msix, &s, &err), 0);
	assert_int_equal(conf1_read(&f->bus, f->slot, PCI_BAR0 + 4 * VPCI_PIO_BAR, 4), PCI_BAR_IO);
	uint8_t v[2] = { 0 };
	pci_pio_io(&f->bus, 0, v, 2, false);
	assert_int_equal(pci_get(v, 2), 0xffff);
	driver_ok(f, 16, 0);
	post_buffer(f, 0, 0, BUF_GPA, 64, VIRTQ_DESC_F_WRITE);
	uint64_t bar0 = conf1_read(&f->bus, f->slot, PCI_BAR0, 4) & ~0xfu;
	pci_put(v, 2, 0);
	pci_mmio_io(&f->bus, bar0 - MMIO_BASE + VPCI_NOTIFY_OFF, v, 2, true);
	assert_int_equal(f->t->q[0].trapped_kicks, 1);
}

static void rng_bad_chain_needs_reset(void **state)
{
	struct fixture *f = *state;
	driver_ok(f, 16, 0);
	post_buffer(f, 0, 0, GUEST_RAM - 16, 64, VIRTQ_DESC_F_WRITE); /* runs off the end of RAM */
	bar_write(f, VPCI_NOTIFY_OFF, 2, 0);
	assert_int_equal(bar_read(f, VPCI_STATUS, 1) & VIRTIO_STATUS_NEEDS_RESET, VIRTIO_STATUS_NEEDS_RESET);
	assert_int_equal(f->irq.signals[1], 1); /* config change interrupt */
	assert_int_equal(f->irq.signals[0], 0);
	/* further kicks are ignored until reset, and reset recovers */
	bar_write(f, VPCI_NOTIFY_OFF, 2, 0);
	bar_write(f, VPCI_STATUS, 1, 0);
	assert_int_equal(bar_read(f, VPCI_STATUS, 1), 0);
	assert_int_equal(bar_read(f, VPCI_Q_ENABLE, 2), 0);
	memset(f->ram + USED_GPA, 0, 4096);
	driver_ok(f, 16, 0);
	post_buffer(f, 0, 0, BUF_GPA, 32, VIRTQ_DESC_F_WRITE);
	bar_write(f, VPCI_NOTIFY_OFF, 2, 0);
	uint16_t used_idx;
	memcpy(&used_idx, f->ram + USED_GPA + 2, 2);
	assert_int_equal(used_idx, 1);
}

static void queue_outside_memory_breaks_at_enable(void **state)
{
	struct fixture *f = *state;
	bar_write(f, VPCI_STATUS, 1, VIRTIO_STATUS_DRIVER);
	bar_write(f, VPCI_GFSELECT, 4, 1);
	bar_write(f, VPCI_GF, 4, 1);
	bar_write(f, VPCI_STATUS, 1, VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
	bar_write(f, VPCI_Q_DESC, 8, 0xfffffffffffff000ULL);
	bar_write(f, VPCI_Q_ENABLE, 2, 1);
	assert_int_equal(bar_read(f, VPCI_STATUS, 1) & VIRTIO_STATUS_NEEDS_RESET, VIRTIO_STATUS_NEEDS_RESET);
	bar_write(f, VPCI_Q_DESC, 8, 0); /* live queue: its configuration is fixed */
	assert_int_equal(bar_read(f, VPCI_Q_DESC, 8), 0xfffffffffffff000ULL);
}

/* ---- The VIRTIO_PCI_CAP_PCI_CFG access window ---- */

/* Config offset of the first vendor capability of cfg_type `type`, 0 if none. */
static unsigned find_virtio_cap(struct fixture *f, unsigned type)
{
	unsigned ptr = conf1_read(&f->bus, f->slot, PCI_CAP_PTR, 1);
	for (unsigned hops = 0; ptr && hops < 16; hops++) {
		if (conf1_read(&f->bus, f->slot, ptr, 1) == PCI_CAP_ID_VENDOR && conf1_read(&f->bus, f->slot, ptr + 3, 1) == type)
			return ptr;
		ptr = conf1_read(&f->bus, f->slot, ptr + 1, 1);
	}
	return 0;
}

static void window_select(struct fixture *f, unsigned cap, unsigned bar, uint32_t off, uint32_t len)
{
	conf1_write(&f->bus, f->slot, cap + VPCI_CFGCAP_BAR, 1, bar);
	conf1_write(&f->bus, f->slot, cap + VPCI_CFGCAP_OFFSET, 4, off);
	conf1_write(&f->bus, f->slot, cap + VPCI_CFGCAP_LENGTH, 4, len);
}

static void pci_cfg_window_reads_the_bar(void **state)
{
	struct fixture *f = *state;
	unsigned cap = find_virtio_cap(f, VPCI_CAP_PCI_CFG);
	assert_int_not_equal(cap, 0);
	assert_int_equal(conf1_read(&f->bus, f->slot, cap + 2, 1), VPCI_CFGCAP_LEN);
	for (uint32_t select = 0; select < 2; select++) {
		bar_write(f, VPCI_DFSELECT, 4, select);
		window_select(f, cap, VPCI_BAR, VPCI_DF, 4);
		uint32_t via_window = conf1_read(&f->bus, f->slot, cap + VPCI_CFGCAP_DATA, 4);
		assert_int_equal(via_window, bar_read(f, VPCI_DF, 4));
		assert_int_equal(via_window, select ? 1u : (1u << VIRTIO_F_EVENT_IDX) | (1u << VIRTIO_F_INDIRECT_DESC));
	}
	/* ECAM reaches the same window; a 2-byte read of num_queues fills the first two data bytes */
	window_select(f, cap, VPCI_BAR, VPCI_NUM_QUEUES, 2);
	assert_int_equal(ecam_read(&f->bus, 0, f->slot, cap + VPCI_CFGCAP_DATA, 4), 1);
	/* reading the ISR through the window acknowledges it, as a BAR read does */
	f->t->isr = 3;
	window_select(f, cap, VPCI_BAR, VPCI_ISR_OFF, 1);
	assert_int_equal(conf1_read(&f->bus, f->slot, cap + VPCI_CFGCAP_DATA, 1), 3);
	assert_int_equal(bar_read(f, VPCI_ISR_OFF, 1), 0);
}

static void pci_cfg_window_writes_the_bar(void **state)
{
	struct fixture *f = *state;
	unsigned cap = find_virtio_cap(f, VPCI_CAP_PCI_CFG);
	window_select(f, cap, VPCI_BAR, VPCI_Q_SELECT, 2);
	conf1_write(&f->bus, f->slot, cap + VPCI_CFGCAP_DATA, 4, 0xbeef0003); /* only `length` bytes count */
	assert_int_equal(bar_read(f, VPCI_Q_SELECT, 2), 3);
	assert_int_equal(bar_read(f, VPCI_Q_SIZE, 2), 0);                      /* no queue 3 */
	conf1_write(&f->bus, f->slot, cap + VPCI_CFGCAP_DATA, 2, 0);
	assert_int_equal(bar_read(f, VPCI_Q_SELECT, 2), 0);
	assert_int_equal(bar_read(f, VPCI_Q_SIZE, 2), 256);
	/* a 1-byte write selects a 1-byte access: the driver features written through it stick */
	bar_write(f, VPCI_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	window_select(f, cap, VPCI_BAR, VPCI_STATUS, 1);
	conf1_write(&f->bus, f->slot, cap + VPCI_CFGCAP_DATA, 1, 0);
	assert_int_equal(bar_read(f, VPCI_STATUS, 1), 0);                      /* reset through the window */
}

/* Anything but BAR 0 with a naturally aligned 1/2/4-byte access inside it is ignored and reads zeros. */
static void pci_cfg_window_rejects_bad_selections(void **state)
{
	struct fixture *f = *state;
	unsigned cap = find_virtio_cap(f, VPCI_CAP_PCI_CFG);
	bar_write(f, VPCI_Q_SELECT, 2, 0);
	const struct { unsigned bar; uint32_t off, len; } bad[] = {
		{ 1, VPCI_Q_SELECT, 2 },                 /* a BAR the device does not have */
		{ 0xff, VPCI_Q_SELECT, 2 },
		{ VPCI_BAR, VPCI_Q_SELECT, 3 },          /* odd length */
		{ VPCI_BAR, VPCI_Q_SELECT, 8 },          /* wider than the window */
		{ VPCI_BAR, VPCI_Q_SELECT, 0 },
		{ VPCI_BAR, VPCI_Q_SELECT + 1, 2 },      /* unaligned */
		{ VPCI_BAR, VPCI_BAR_SIZE, 4 },          /* past the end of the BAR */
		{ VPCI_BAR, 0xfffffffc, 4 },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		window_select(f, cap, bad[i].bar, bad[i].off, bad[i].len);
		conf1_write(&f->bus, f->slot, cap + VPCI_CFGCAP_DATA, 4, 0x00070007);
		assert_int_equal(bar_read(f, VPCI_Q_SELECT, 2), 0);
		assert_int_equal(conf1_read(&f->bus, f->slot, cap + VPCI_CFGCAP_DATA, 4), 0);
	}
	/* the selection fields read back what the driver wrote; the header stays read-only */
	assert_int_equal(conf1_read(&f->bus, f->slot, cap + VPCI_CFGCAP_OFFSET, 4), 0xfffffffc);
	conf1_write(&f->bus, f->slot, cap + 3, 1, VPCI_CAP_COMMON);
	assert_int_equal(conf1_read(&f->bus, f->slot, cap + 3, 1), VPCI_CAP_PCI_CFG);
}

/* ---- Hot-plug ---- */

static void slots_plugged_and_unplugged(void **state)
{
	struct fixture *f = *state;
	const struct pci_device_ops ops = { .bar_io = bar_echo };
	struct pci_device a, b, c;
	echo_device(&a, &ops, NULL), echo_device(&b, &ops, NULL), echo_device(&c, &ops, NULL);
	vt_err err;
	assert_int_equal(pci_bus_plug_at(&f->bus, &a, 5, &err), 0);
	assert_int_equal(pci_bus_plug_at(&f->bus, &b, 5, &err), -1);
	assert_non_null(strstr(err.msg, "PCI slot 5 holds echo"));
	assert_int_equal(pci_bus_plug_at(&f->bus, &b, 0, &err), -1);
	assert_int_equal(pci_bus_plug_at(&f->bus, &b, PCI_MAX_SLOTS, &err), -1);
	/* a reserved slot (a removed device's) is skipped by the automatic choice, taken when asked for */
	f->bus.reserved = 1u << (f->slot + 1);
	unsigned s;
	assert_int_equal(pci_bus_plug(&f->bus, &b, &s, &err), 0);
	assert_int_equal(s, f->slot + 2);
	assert_int_equal(pci_bus_plug_at(&f->bus, &c, f->slot + 1, &err), 0);
	assert_int_equal(f->bus.reserved, 0);
	assert_int_equal(pci_bus_slot_of(&f->bus, &a), 5);
	/* decoding, then gone: config space and the BAR read all ones, the slot takes another device */
	conf1_write(&f->bus, 5, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	uint64_t bar = conf1_read(&f->bus, 5, PCI_BAR0, 4) - MMIO_BASE;
	uint8_t v[4] = { 0 };
	pci_mmio_io(&f->bus, bar + 4, v, 4, false);
	assert_int_equal(pci_get(v, 4), 0x07060504);
	pci_bus_unplug(&f->bus, 5);
	assert_int_equal(conf1_read(&f->bus, 5, PCI_VENDOR_ID, 4), 0xffffffff);
	pci_mmio_io(&f->bus, bar + 4, v, 4, false);
	assert_int_equal(pci_get(v, 4), 0xffffffff);
	assert_int_equal(pci_bus_slot_of(&f->bus, &a), 0);
	pci_bus_unplug(&f->bus, 5); /* twice, or an empty slot: nothing */
	pci_bus_unplug(&f->bus, 0);
	assert_int_equal(pci_bus_plug_at(&f->bus, &a, 5, &err), 0);
}

struct slow_bar {
	unsigned inside, done;
};

static void slow_bar_io(void *opaque, uint64_t addr, uint8_t *data, uint32_t len, bool is_write)
{
	struct slow_bar *sb = opaque;
	(void)addr, (void)data, (void)len, (void)is_write;
	__atomic_store_n(&sb->inside, 1, __ATOMIC_SEQ_CST);
	usleep(50000);
	__atomic_store_n(&sb->inside, 0, __ATOMIC_SEQ_CST);
	__atomic_add_fetch(&sb->done, 1, __ATOMIC_SEQ_CST);
}

struct vcpu_access {
	struct pci_bus *bus;
	uint64_t off;
};

static void *vcpu_reads_bar(void *p)
{
	struct vcpu_access *a = p;
	uint8_t v[4];
	pci_mmio_io(a->bus, a->off, v, 4, false);
	return NULL;
}

/* A vCPU inside the device's BAR handler when the device is unplugged: the unplug returns only after it. */
static void unplug_waits_for_a_bar_access(void **state)
{
	struct fixture *f = *state;
	struct slow_bar sb = { 0 };
	const struct pci_device_ops ops = { .bar_io = slow_bar_io };
	struct pci_device d;
	echo_device(&d, &ops, &sb);
	d.opaque = &sb;
	vt_err err;
	assert_int_equal(pci_bus_plug_at(&f->bus, &d, 7, &err), 0);
	conf1_write(&f->bus, 7, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	struct vcpu_access a = { &f->bus, conf1_read(&f->bus, 7, PCI_BAR0, 4) - MMIO_BASE };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, vcpu_reads_bar, &a), 0);
	while (!__atomic_load_n(&sb.inside, __ATOMIC_SEQ_CST))
		usleep(100);
	pci_bus_unplug(&f->bus, 7);
	assert_int_equal(__atomic_load_n(&sb.inside, __ATOMIC_SEQ_CST), 0);
	assert_int_equal(__atomic_load_n(&sb.done, __ATOMIC_SEQ_CST), 1);
	pthread_join(t, NULL);
	assert_int_equal(d.bar_users, 0);
}

static uint32_t hp_read(struct pci_hotplug *h, unsigned off)
{
	uint8_t v[4] = { 0xee, 0xee, 0xee, 0xee };
	pci_hotplug_io(h, off, v, 4, false);
	return pci_get(v, 4);
}

static void hp_write(struct pci_hotplug *h, unsigned off, uint32_t val, uint32_t len)
{
	uint8_t v[4];
	pci_put(v, 4, val);
	pci_hotplug_io(h, off, v, len, true);
}

/* The registers the DSDT's PSCN and _EJ0 use: news read once, an eject counted only where it was asked. */
static void hotplug_registers(void **state)
{
	(void)state;
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	struct pci_hotplug h;
	pci_hotplug_init(&h, fd);
	pci_hotplug_announce(&h, 3);
	pci_hotplug_announce(&h, 0);            /* the host bridge: never */
	pci_hotplug_announce(&h, PCI_MAX_SLOTS); /* no such slot: nothing */
	assert_int_equal(hp_read(&h, PCI_HOTPLUG_UP), 1u << 3);
	assert_int_equal(hp_read(&h, PCI_HOTPLUG_UP), 0);
	pci_hotplug_ask_eject(&h, 3);
	assert_int_equal(hp_read(&h, PCI_HOTPLUG_DOWN), 1u << 3);
	assert_int_equal(hp_read(&h, PCI_HOTPLUG_DOWN), 0);
	uint8_t odd[2] = { 0 };
	pci_hotplug_io(&h, PCI_HOTPLUG_UP, odd, 2, false); /* other widths and offsets: zero, nothing happens */
	assert_int_equal(pci_get(odd, 2), 0);
	assert_int_equal(hp_read(&h, 5), 0);
	hp_write(&h, PCI_HOTPLUG_EJECT, 0xffffffff, 2);
	assert_int_equal(pci_hotplug_take_ejected(&h), 0);
	uint64_t n = 0;
	assert_int_equal(read(fd, &n, sizeof(n)), -1); /* not told */
	hp_write(&h, PCI_HOTPLUG_EJECT, 0xffffffff, 4); /* every slot: only the one asked counts */
	assert_int_equal(read(fd, &n, sizeof(n)), sizeof(n));
	assert_int_equal(pci_hotplug_take_ejected(&h), 1u << 3);
	assert_int_equal(pci_hotplug_take_ejected(&h), 0);
	hp_write(&h, PCI_HOTPLUG_EJECT, 1u << 3, 4); /* done with: a second _EJ0 changes nothing */
	assert_int_equal(pci_hotplug_take_ejected(&h), 0);
	pci_hotplug_ask_eject(&h, 9);
	pci_hotplug_cancel_eject(&h, 9); /* the host gave up: a late _EJ0 is ignored, the news is gone */
	assert_int_equal(hp_read(&h, PCI_HOTPLUG_DOWN), 0);
	hp_write(&h, PCI_HOTPLUG_EJECT, 1u << 9, 4);
	assert_int_equal(pci_hotplug_take_ejected(&h), 0);
	pci_hotplug_destroy(&h);
	close(fd);
}

/* An arrival the guest has not read goes into a snapshot and is read by the restored guest; only real slots. */
static void unread_arrivals_survive_a_snapshot(void **state)
{
	(void)state;
	struct pci_hotplug before, after;
	pci_hotplug_init(&before, -1);
	pci_hotplug_init(&after, -1);
	pci_hotplug_announce(&before, 4);
	uint32_t saved = pci_hotplug_unread_arrivals(&before);
	assert_int_equal(saved, 1u << 4);
	assert_int_equal(hp_read(&before, PCI_HOTPLUG_UP), 1u << 4); /* saving does not consume it */
	pci_hotplug_restore_arrivals(&after, saved | 1u);             /* slot 0, the host bridge, is dropped */
	assert_int_equal(hp_read(&after, PCI_HOTPLUG_UP), 1u << 4);
	assert_int_equal(hp_read(&after, PCI_HOTPLUG_UP), 0);
	assert_int_equal(pci_hotplug_unread_arrivals(&after), 0);
	pci_hotplug_destroy(&before);
	pci_hotplug_destroy(&after);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(conf1_reads_host_bridge_and_device),
		T(ecam_matches_conf1),
		T(read_only_fields_stay),
		T(bar_sizing_and_allocation),
		T(capability_chain),
		T(command_register_gates_decode),
		T(io_bar_decode_and_window),
		T(rng_kicked_by_port),
		T(ioeventfds_follow_both_notify_areas),
		T(snapshot_from_before_the_io_bar),
		T(bad_config_accesses),
		T(msix_routes_and_masking),
		T(common_cfg_features),
		T(common_cfg_queues),
		T(rng_fills_buffers_and_interrupts),
		T(rng_bad_chain_needs_reset),
		T(queue_outside_memory_breaks_at_enable),
		T(pci_cfg_window_reads_the_bar),
		T(pci_cfg_window_writes_the_bar),
		T(pci_cfg_window_rejects_bad_selections),
		T(slots_plugged_and_unplugged),
		T(unplug_waits_for_a_bar_access),
		cmocka_unit_test(hotplug_registers),
		cmocka_unit_test(unread_arrivals_survive_a_snapshot),
	};
	return cmocka_run_group_tests_name("pci", tests, NULL, NULL);
}

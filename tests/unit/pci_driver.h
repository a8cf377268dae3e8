/* The driver side of PCI for unit tests: config space through conf1, and 8/16/32/64-bit accesses to a
 * virtio-pci transport's BAR 0. Shared by the tests that drive devices through the real transport. */
#ifndef VIRTUS_TEST_PCI_DRIVER_H
#define VIRTUS_TEST_PCI_DRIVER_H

#include <stdint.h>
#include <string.h>

#include "devices/pci.h"
#include "devices/virtio/pci.h"

/* MSI-X that records instead of interrupting: routes set (and the last one), signals per vector. */
struct fake_irq {
	unsigned signals[MSIX_MAX_VECTORS];
	unsigned routes;
	unsigned last_vector;
	uint64_t last_addr;
	uint32_t last_data;
};

static inline int fake_route(void *opaque, unsigned vector, uint64_t addr, uint32_t data)
{
	struct fake_irq *f = opaque;
	f->routes++;
	f->last_vector = vector, f->last_addr = addr, f->last_data = data;
	return 0;
}

static inline void fake_signal(void *opaque, unsigned vector)
{
	struct fake_irq *f = opaque;
	f->signals[vector]++;
}

static const struct msix_ops fake_msix_ops = { .set_route = fake_route, .signal = fake_signal };

static inline uint32_t conf1_read(struct pci_bus *b, unsigned slot, unsigned off, unsigned len)
{
	uint8_t d[4];
	pci_put(d, 4, 0x80000000u | slot << 11 | (off & 0xfc));
	pci_conf1_io(b, 0, d, 4, true);
	memset(d, 0, sizeof(d));
	pci_conf1_io(b, 4 + (off & 3), d, len, false);
	return pci_get(d, len);
}

static inline void conf1_write(struct pci_bus *b, unsigned slot, unsigned off, unsigned len, uint32_t v)
{
	uint8_t d[4];
	pci_put(d, 4, 0x80000000u | slot << 11 | (off & 0xfc));
	pci_conf1_io(b, 0, d, 4, true);
	pci_put(d, len, v);
	pci_conf1_io(b, 4 + (off & 3), d, len, true);
}

static inline uint64_t vpci_bar_read(struct virtio_transport *t, uint64_t off, unsigned len)
{
	uint8_t d[8] = { 0 };
	virtio_pci_bar_io(t, PCI_BAR_ADDR(0, off), d, len, false);
	uint64_t v = 0;
	memcpy(&v, d, len);
	return v;
}

static inline void vpci_bar_write(struct virtio_transport *t, uint64_t off, unsigned len, uint64_t v)
{
	uint8_t d[8];
	memcpy(d, &v, sizeof(d));
	virtio_pci_bar_io(t, PCI_BAR_ADDR(0, off), d, len, true);
}

/* Tests keep a fixture `f` with the transport in f->t. */
#define bar_read(f, off, len)     vpci_bar_read((f)->t, (off), (len))
#define bar_write(f, off, len, v) vpci_bar_write((f)->t, (off), (len), (v))

#endif

/* libFuzzer target for the ACPI PCI hot-plug registers (devices/pci_hotplug.h): the guest's reads and writes
 * of any offset, width and value, interleaved with the host's announcements, eject requests, cancellations and
 * collections. Checked against a model: a slot the guest let go of counts only if the host asked for it and
 * still waits; slot 0 (the host bridge) never appears; a read returns each piece of news once.
 * Build and run: tests/fuzz/run-fuzz-pci-hotplug.sh [seconds]. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "devices/pci.h"
#include "devices/pci_hotplug.h"

struct model {
	uint32_t up, down, asked, ejected;
};

static void guest_io(struct pci_hotplug *h, struct model *m, const uint8_t *op)
{
	static const uint32_t widths[] = { 1, 2, 4, 8 };
	uint64_t addr = op[1] % (PCI_HOTPLUG_PORTS + 4);
	uint32_t len = widths[op[2] & 3];
	bool is_write = op[2] & 4;
	uint8_t data[8];
	memcpy(data, op + 3, 4);
	memset(data + 4, 0xa5, 4);
	uint32_t v = pci_get(data, 4);
	pci_hotplug_io(h, addr, data, len, is_write);
	if (is_write) {
		if (addr == PCI_HOTPLUG_EJECT && len == 4)
			m->ejected |= v & m->asked & ~1u;
		return;
	}
	uint32_t got = pci_get(data, len < 4 ? len : 4), want = 0;
	if (addr == PCI_HOTPLUG_UP && len == 4)
		want = m->up, m->up = 0;
	else if (addr == PCI_HOTPLUG_DOWN && len == 4)
		want = m->down, m->down = 0;
	if (got != want || (got & 1))
		abort();
}

static void host_op(struct pci_hotplug *h, struct model *m, const uint8_t *op)
{
	unsigned slot = op[1] % (PCI_MAX_SLOTS + 2); /* out-of-range slots must change nothing */
	uint32_t bit = slot >= 1 && slot < PCI_MAX_SLOTS ? 1u << slot : 0;
	switch (op[0] % 4) {
	case 0:
		pci_hotplug_announce(h, slot);
		m->up |= bit, m->down &= ~bit;
		break;
	case 1:
		pci_hotplug_ask_eject(h, slot);
		m->down |= bit, m->up &= ~bit, m->asked |= bit, m->ejected &= ~bit;
		break;
	case 2:
		pci_hotplug_cancel_eject(h, slot);
		m->down &= ~bit, m->asked &= ~bit, m->ejected &= ~bit;
		break;
	default: {
		uint32_t got = pci_hotplug_take_ejected(h);
		if (got != m->ejected || (got & ~m->asked) || (got & 1))
			abort();
		m->asked &= ~got, m->ejected = 0;
	}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	struct pci_hotplug h;
	struct model m = { 0 };
	pci_hotplug_init(&h, fd);
	for (size_t i = 0; i + 7 <= size; i += 7) {
		if (data[i] & 0x80)
			guest_io(&h, &m, data + i);
		else
			host_op(&h, &m, data + i);
	}
	uint64_t signals = 0;
	if (read(fd, &signals, sizeof(signals)) < 0 && m.ejected)
		abort(); /* a slot was let go of and the host was never told */
	pci_hotplug_destroy(&h);
	close(fd);
	return 0;
}

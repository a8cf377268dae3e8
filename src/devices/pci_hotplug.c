#include "devices/pci_hotplug.h"

#include <string.h>
#include <unistd.h>

#include "devices/pci.h"

#define SLOT_BITS 0xfffffffeu /* slots 1..31: slot 0 is the host bridge */

void pci_hotplug_init(struct pci_hotplug *h, int ejected_fd)
{
	memset(h, 0, sizeof(*h));
	pthread_mutex_init(&h->lock, NULL);
	h->ejected_fd = ejected_fd;
}

void pci_hotplug_destroy(struct pci_hotplug *h)
{
	pthread_mutex_destroy(&h->lock);
}

static uint32_t slot_bit(unsigned slot)
{
	return slot < PCI_MAX_SLOTS ? (1u << slot) & SLOT_BITS : 0;
}

/* A read that clears what it returns. */
static uint32_t take(struct pci_hotplug *h, uint32_t *reg)
{
	pthread_mutex_lock(&h->lock);
	uint32_t v = *reg;
	*reg = 0;
	pthread_mutex_unlock(&h->lock);
	return v;
}

static void guest_ejected(struct pci_hotplug *h, uint32_t slots)
{
	pthread_mutex_lock(&h->lock);
	uint32_t news = slots & h->eject_asked & ~h->ejected;
	h->ejected |= news;
	pthread_mutex_unlock(&h->lock);
	uint64_t one = 1;
	if (news && h->ejected_fd >= 0 && write(h->ejected_fd, &one, sizeof(one)) < 0) {
		/* only on counter overflow: the host is told anyway */
	}
}

void pci_hotplug_io(void *opaque, uint64_t addr, uint8_t *data, uint32_t len, bool is_write)
{
	struct pci_hotplug *h = opaque;
	uint32_t v = 0;
	if (len == 4 && !is_write && addr == PCI_HOTPLUG_UP)
		v = take(h, &h->up);
	else if (len == 4 && !is_write && addr == PCI_HOTPLUG_DOWN)
		v = take(h, &h->down);
	else if (len == 4 && is_write && addr == PCI_HOTPLUG_EJECT)
		guest_ejected(h, pci_get(data, 4) & SLOT_BITS);
	if (!is_write)
		pci_put(data, len <= 4 ? len : 4, v);
}

void pci_hotplug_announce(struct pci_hotplug *h, unsigned slot)
{
	pthread_mutex_lock(&h->lock);
	h->up |= slot_bit(slot);
	h->down &= ~slot_bit(slot);
	pthread_mutex_unlock(&h->lock);
}

void pci_hotplug_ask_eject(struct pci_hotplug *h, unsigned slot)
{
	pthread_mutex_lock(&h->lock);
	h->down |= slot_bit(slot);
	h->up &= ~slot_bit(slot);
	h->eject_asked |= slot_bit(slot);
	h->ejected &= ~slot_bit(slot);
	pthread_mutex_unlock(&h->lock);
}

void pci_hotplug_cancel_eject(struct pci_hotplug *h, unsigned slot)
{
	pthread_mutex_lock(&h->lock);
	h->down &= ~slot_bit(slot);
	h->eject_asked &= ~slot_bit(slot);
	h->ejected &= ~slot_bit(slot);
	pthread_mutex_unlock(&h->lock);
}

uint32_t pci_hotplug_take_ejected(struct pci_hotplug *h)
{
	pthread_mutex_lock(&h->lock);
	uint32_t v = h->ejected;
	h->eject_asked &= ~v;
	h->ejected = 0;
	pthread_mutex_unlock(&h->lock);
	return v;
}

uint32_t pci_hotplug_unread_arrivals(struct pci_hotplug *h)
{
	pthread_mutex_lock(&h->lock);
	uint32_t v = h->up;
	pthread_mutex_unlock(&h->lock);
	return v;
}

void pci_hotplug_restore_arrivals(struct pci_hotplug *h, uint32_t slots)
{
	pthread_mutex_lock(&h->lock);
	h->up = slots & SLOT_BITS;
	pthread_mutex_unlock(&h->lock);
}

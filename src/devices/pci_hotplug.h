/* ACPI PCI hot-plug of bus 0's slots: the registers the DSDT's AML reads and writes (vmm/boot/acpi.c), in
 * three 32-bit system-I/O registers, one bit per slot (bit n: slot n; slot 0 is the host bridge):
 *
 *   +0 PCIU (read)  slots whose device arrived since the last read; the read clears them
 *   +4 PCID (read)  slots whose device the host asks the guest to let go of; the read clears them
 *   +8 PCEJ (write) the guest's _EJ0: it has let go of the slots written
 *
 * The Generic Event Device's interrupt runs \_SB.PCI0.PSCN, which reads PCIU and PCID once each and notifies
 * each slot's ACPI device (1: check, 3: eject request); Linux's acpiphp then scans the slot, or removes the
 * device and calls the slot's _EJ0. A guest may write PCEJ at any time and for any slot: only the slots the
 * host asked to eject count, and nothing else happens (the VMM removes a device only when asked to). Other
 * offsets and widths read as zero and writes to them are dropped. */
#ifndef VIRTUS_PCI_HOTPLUG_H
#define VIRTUS_PCI_HOTPLUG_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define PCI_HOTPLUG_PORTS 12
#define PCI_HOTPLUG_UP    0
#define PCI_HOTPLUG_DOWN  4
#define PCI_HOTPLUG_EJECT 8

struct pci_hotplug {
	pthread_mutex_t lock;
	uint32_t up, down;         /* news the guest has not read yet */
	uint32_t eject_asked;      /* slots the host asked the guest to let go of, and waits for */
	uint32_t ejected;          /* of those, the ones the guest let go of (until the host takes them) */
	int ejected_fd;            /* eventfd written when ejected gains a slot; -1: none */
};

void pci_hotplug_init(struct pci_hotplug *h, int ejected_fd);
void pci_hotplug_destroy(struct pci_hotplug *h);
/* The port handler (vCPU threads). */
void pci_hotplug_io(void *opaque, uint64_t addr, uint8_t *data, uint32_t len, bool is_write);
/* Tell the guest (at its next PSCN) that slot's device arrived, or ask it to let go of it. The caller raises
 * the interrupt. A new request for a slot replaces an unread one. */
void pci_hotplug_announce(struct pci_hotplug *h, unsigned slot);
void pci_hotplug_ask_eject(struct pci_hotplug *h, unsigned slot);
/* The host gives up waiting: a later _EJ0 for slot is ignored. */
void pci_hotplug_cancel_eject(struct pci_hotplug *h, unsigned slot);
/* The slots the guest has let go of since the last call (and stops waiting for them). */
uint32_t pci_hotplug_take_ejected(struct pci_hotplug *h);

/* Arrivals the guest has not read (PCIU), for a snapshot: a device plugged in just before it is announced
 * to the restored guest. Removals are not state: snapshots are refused while the host waits for one, and
 * PCID is empty otherwise. */
uint32_t pci_hotplug_unread_arrivals(struct pci_hotplug *h);
void pci_hotplug_restore_arrivals(struct pci_hotplug *h, uint32_t slots);

#endif

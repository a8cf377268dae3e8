/* The VM's PCI side: the bus, the MSI routes, the device thread and the virtio devices on them. Present only
 * when a PCI device is configured, so a VM without one boots exactly as before (no MCFG, no PCI probing,
 * which costs an exit per config access). */
#ifndef VIRTUS_VM_PCI_H
#define VIRTUS_VM_PCI_H

#include <stdbool.h>
#include <stdio.h>

#include "devices/pci.h"
#include "devices/virtio/pci.h"
#include "lib/err.h"
#include "vmm/eventloop.h"
#include "vmm/msi.h"

#define VM_PCI_MAX_VIRTIO 16 /* 8 disks + rng + 4 nets + console + balloon + vsock; bus 0 has 31 free slots */

struct vm_virtio {
	struct virtio_device *dev;
	void (*destroy)(struct virtio_device *dev);
	struct virtio_transport *t;
	struct msi_vectors vectors;
};

struct vm_pci {
	bool enabled;
	struct pci_bus bus;
	struct msi_routes routes;
	struct evloop loop;
	unsigned n;
	struct vm_virtio virtio[VM_PCI_MAX_VIRTIO];
	struct virtio_device *console; /* virtio-console, if configured: host input goes there */
	struct virtio_device *balloon;
	struct virtio_device *vsock;
};

struct vm;
struct vm_config;
struct acpi_config;

int vm_pci_setup(struct vm *vm, const struct vm_config *cfg, vt_err *err);
void vm_pci_describe(const struct vm *vm, struct acpi_config *acpi);
int vm_pci_start(struct vm *vm, vt_err *err);
void vm_pci_destroy(struct vm *vm);
void vm_pci_print_stats(const struct vm *vm, FILE *f);

#endif

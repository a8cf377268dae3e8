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

/* Snapshot of the PCI side (docs/snapshot.md): section "pci" lists the devices, "pciN" and "pciN.dev" hold
 * device N's transport and own state. */
struct state_writer;
struct state_reader;
/* Whether every device can be snapshotted; an error names the one that cannot and why. */
int vm_pci_snapshot_supported(const struct vm *vm, vt_err *err);
/* Hold every device still for a save: waits (devices running, up to VM_PCI_QUIESCE_MS) until none holds a
 * request in flight, then returns with every device's lock held, until vm_pci_thaw. */
#define VM_PCI_QUIESCE_MS 10000
int vm_pci_freeze(struct vm *vm, vt_err *err);
void vm_pci_thaw(struct vm *vm);
int vm_pci_state_save(struct vm *vm, struct state_writer *w, vt_err *err);   /* frozen */
/* After a completed migration, frozen: the destination owns the rings; a request still queued here must
 * never run (it would run twice: a disk write after the destination's newer one). */
void vm_pci_retire(struct vm *vm);
/* The disk images' locks, handed over by a migration: the source lets go just before the destination
 * may run the guest, which takes them then (its disks were opened without). */
int vm_pci_lock_disks(struct vm *vm, vt_err *err);
/* The k-th disk (--disk order) as a virtio device; NULL past the last. */
struct virtio_device *vm_pci_disk(struct vm *vm, unsigned k);
void vm_pci_unlock_disks(struct vm *vm);
/* Into devices just built from the same configuration, before the VM runs. */
int vm_pci_state_load(struct vm *vm, const struct state_reader *r, vt_err *err);

#endif

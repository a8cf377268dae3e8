/* The VM's PCI side: the bus, the MSI routes, the device thread and the virtio devices on them. Present only
 * when a PCI device is configured, so a VM without one boots exactly as before (no MCFG, no PCI probing,
 * which costs an exit per config access). */
#ifndef VIRTUS_VM_PCI_H
#define VIRTUS_VM_PCI_H

#include <stdbool.h>
#include <stdio.h>

#include "devices/pci.h"
#include "devices/pci_hotplug.h"
#include "devices/virtio/pci.h"
#include "lib/err.h"
#include "vmm/eventloop.h"
#include "vmm/msi.h"

#define VM_PCI_MAX_VIRTIO 16 /* of 8 disks, rng, 4 nets, console, balloon, vsock, 4 virtio-fs, a CD drive; the
                              * section sizes of snapshots depend on it */

struct vm_virtio {
	struct virtio_device *dev;
	void (*destroy)(struct virtio_device *dev);
	struct virtio_transport *t;
	struct msi_vectors *vectors;  /* its own allocation: the transport keeps a pointer while entries move */
	int own_fd;                   /* the device's own fd watched on the device thread (disk completions, a
	                               * net backend's frames, ...); -1: none */
};

struct vm_pci {
	bool enabled;
	struct pci_bus bus;
	struct msi_routes routes;
	struct evloop loop;
	struct pci_hotplug hotplug;   /* ACPI hot-plug registers (devices/pci_hotplug.h) */
	int ejected_fd;               /* eventfd: the guest let go of a device the host asked it to eject */
	unsigned n;
	struct vm_virtio virtio[VM_PCI_MAX_VIRTIO];
	struct virtio_device *console; /* virtio-console, if configured: host input goes there */
	struct virtio_device *balloon;
	struct virtio_device *vsock;
	struct virtio_device *cdrom;   /* virtio-scsi with the CD drive, if configured */
};

struct vm;
struct vm_config;
struct acpi_config;

int vm_pci_setup(struct vm *vm, const struct vm_config *cfg, vt_err *err);
void vm_pci_describe(const struct vm *vm, struct acpi_config *acpi);
int vm_pci_start(struct vm *vm, vt_err *err);
/* Add the virtio-blk device of c (at c->pci_slot, or the first free slot if 0); incoming: without its lock. */
struct vm_disk_config;
int vm_pci_add_disk(struct vm *vm, const struct vm_disk_config *c, bool incoming, vt_err *err);
/* Add virtio-net for --net spec (its default MAC from index), at slot or the first free one if 0. */
int vm_pci_add_net(struct vm *vm, const char *spec, unsigned index, unsigned slot, vt_err *err);
/* Destroy an entry's transport, vectors and device (its slot and watches are already gone). */
void vm_pci_free_device(struct vm_virtio *v);
void vm_pci_destroy(struct vm *vm);
void vm_pci_print_stats(const struct vm *vm, FILE *f);

/* ---- Devices plugged and unplugged while the VM runs (ACPI PCI hot-plug, vmm/vm_hotplug.c) ----------------
 * One controlling thread (the VMM's main thread) calls these. A disk plugged in gets the lowest free slot,
 * recorded in c->pci_slot so that a snapshot's or migration's VM is built with it in the same place; a
 * device removed leaves its slot reserved in the configuration (cfg->pci_reserved) for the same reason. */
struct vm_disk_config;
/* Build disk c, plug it into a free slot (c->pci_slot set) and tell the guest. Changes nothing on failure. */
int vm_pci_hotplug_disk(struct vm *vm, struct vm_disk_config *c, vt_err *err);
/* The same for a network interface (spec as --net, with its MAC: its place among the interfaces may change);
 * *slot gets its slot. A tap only: libslirp cannot be set up once the sandbox is closed. */
int vm_pci_hotplug_net(struct vm *vm, const char *spec, unsigned *slot, vt_err *err);
/* The slot of the k-th network interface (0 if none). */
unsigned vm_pci_net_slot(struct vm *vm, unsigned k);
/* The slot of the k-th disk (0 if none); ask the guest to let go of the device in slot. */
unsigned vm_pci_disk_slot(struct vm *vm, unsigned k);
void vm_pci_ask_eject(struct vm *vm, unsigned slot);
/* The host stops waiting for slot's eject: a later _EJ0 from the guest changes nothing. */
void vm_pci_cancel_eject(struct vm *vm, unsigned slot);
/* Readable when the guest has let go of a device it was asked to eject; -1 without PCI. */
int vm_pci_ejected_fd(const struct vm *vm);
/* Remove the devices the guest has let go of: returns their slots (bit n: slot n). */
uint32_t vm_pci_remove_ejected(struct vm *vm);

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

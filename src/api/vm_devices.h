/* The device half of a VM's configuration as JSON, carried by a snapshot (its "config" section) and by a
 * migration stream, so that `vm run --restore DIR` and `vm run --incoming URL` build the source's devices
 * without being told. The command line still chooses the host side: a class of devices it gives (disks,
 * vsock, rng, balloon, console device) replaces the source's class entirely; the others come from the source.
 * Network interfaces are the exception: the guest holds their slots and MACs, so --net gives each source
 * interface's host side (one per interface, in order) and the interface keeps its ID, slot and MAC. The device state then checks that the result is the source's machine.
 *
 *   {"rng": true, "virtio_console": false, "balloon": true, "balloon_mib": 0, "balloon_stats_s": 0,
 *    "disks": [{"path": "/img", "readonly": false, "serial": "vda", "format": "qcow2", "layer": "disk0.raw"}],
 *    "nets": ["user", {"spec": "tap=t1,mac=52:54:00:12:34:57", "id": "lan", "pci_slot": 5}],
 *            (an object for an interface plugged in while the VM ran, or renamed when another left)
 *    "vsock": {"cid": 3, "path": "/run/v.sock"},
 *    "cdrom": {"path": "/iso/install.iso"}}          (a CD drive; {} when it is empty) */
#ifndef VIRTUS_API_VM_DEVICES_H
#define VIRTUS_API_VM_DEVICES_H

#include <limits.h>

#include "lib/err.h"
#include "vmm/vm.h"

/* What the configuration's strings point into once read. */
struct vm_devices_store {
	char disk_path[VM_MAX_DISKS][PATH_MAX];
	char disk_serial[VM_MAX_DISKS][32];
	char disk_layer[VM_MAX_DISKS][64];
	char net[VM_MAX_NETS][256];
	char net_id[VM_MAX_NETS][16];
	char vsock_path[108];
	char cdrom_path[PATH_MAX];
};

/* cfg's devices as JSON text (malloc()ed), NULL if out of memory. */
char *vm_devices_to_json(const struct vm_config *cfg);
/* Fill each class of devices cfg has none of from text (strings copied into store). An error names the
 * field that is malformed. */
int vm_devices_from_json(const char *text, struct vm_config *cfg, struct vm_devices_store *store, vt_err *err);

#endif

/* virtio-pci, modern transport only (virtio 1.x, 4.1): a PCI function 1af4:(1040 + device id) whose BAR 0
 * holds, at fixed offsets, the common configuration, the ISR, the device configuration, a notify area
 * (4 bytes per queue) and the MSI-X table and PBA. One MSI-X vector per queue plus one for configuration
 * changes.
 *
 * The first notify capability points at BAR 2, an I/O BAR holding the notify area again: a kick by port
 * write exits with port and value decoded by the CPU, where a kick by MMIO write is (on AMD) a nested page
 * fault whose instruction KVM must fetch and emulate. A second notify capability, after MSI-X, offers BAR 0's
 * area to drivers that cannot use ports (and a snapshot from before the I/O BAR existed still kicks there).
 * Kicks are meant to arrive through ioeventfds (one per queue and area, no datamatch) so a kick never exits
 * to userspace; a kick that does trap (no ioeventfd yet, odd width) is forwarded to the same fd. */
#ifndef VIRTUS_VIRTIO_PCI_H
#define VIRTUS_VIRTIO_PCI_H

#include <pthread.h>
#include <stdio.h>

#include "devices/pci.h"
#include "devices/virtio/virtio.h"
#include "lib/err.h"

#define VPCI_BAR             0
#define VPCI_BAR_SIZE        0x8000
#define VPCI_PIO_BAR         2       /* I/O BAR: the notify area at offset 0, same layout as BAR 0's */
#define VPCI_COMMON_OFF      0x0000
#define VPCI_COMMON_LEN      0x38
#define VPCI_ISR_OFF         0x1000
#define VPCI_DEVICE_OFF      0x2000
#define VPCI_DEVICE_MAX      0x1000
#define VPCI_NOTIFY_OFF      0x3000
#define VPCI_NOTIFY_MULT     4
#define VPCI_MSIX_TABLE_OFF  0x4000
#define VPCI_MSIX_PBA_OFF    0x5000
#define VIRTIO_NO_VECTOR     0xffff

/* Common configuration layout (virtio 1.x, 4.1.4.3). */
#define VPCI_DFSELECT     0x00
#define VPCI_DF           0x04
#define VPCI_GFSELECT     0x08
#define VPCI_GF           0x0c
#define VPCI_MSIX_CONFIG  0x10
#define VPCI_NUM_QUEUES   0x12
#define VPCI_STATUS       0x14
#define VPCI_CFG_GEN      0x15
#define VPCI_Q_SELECT     0x16
#define VPCI_Q_SIZE       0x18
#define VPCI_Q_MSIX       0x1a
#define VPCI_Q_ENABLE     0x1c
#define VPCI_Q_NOFF       0x1e
#define VPCI_Q_DESC       0x20
#define VPCI_Q_DRIVER     0x28
#define VPCI_Q_DEVICE     0x30

/* virtio_pci_cap cfg_type values. */
#define VPCI_CAP_COMMON 1
#define VPCI_CAP_NOTIFY 2
#define VPCI_CAP_ISR    3
#define VPCI_CAP_DEVICE 4
#define VPCI_CAP_PCI_CFG 5

/* struct virtio_pci_cfg_cap (virtio 1.x, 4.1.4.9): an access window onto the BARs through config space.
 * Offsets within the capability. */
#define VPCI_CFGCAP_BAR    4
#define VPCI_CFGCAP_OFFSET 8
#define VPCI_CFGCAP_LENGTH 12
#define VPCI_CFGCAP_DATA   16
#define VPCI_CFGCAP_LEN    20

/* What the machine provides. Every member may be NULL/-1 in tests: then kicks are handled at once on the
 * calling thread and interrupts go only to msix_ops. */
struct virtio_pci_host {
	const struct msix_ops *msix_ops;
	void *msix_opaque;
	/* Attach (assign) or detach the eventfd to 2-byte writes at addr: a port if `port`, else a gpa. */
	int (*ioeventfd)(void *opaque, uint64_t addr, bool port, int fd, bool assign);
	void *opaque;
	/* Watch fd for input on the device thread, calling fn(arg). */
	int (*watch)(void *watch_opaque, int fd, void (*fn)(void *arg), void *arg, vt_err *err);
	/* Stop watching fd: once it returns, the device thread does not run fn for it (a hot-unplug). */
	void (*unwatch)(void *watch_opaque, int fd);
	void *watch_opaque;
};

struct vpci_queue {
	uint16_t size, msix_vector;
	bool enabled;
	uint64_t desc, driver, device;
	int kick_fd;                 /* eventfd, -1 without a host loop */
	uint64_t kick_gpa;           /* where kick_fd is attached as ioeventfd in BAR 0; 0 = nowhere */
	uint64_t kick_port;          /* ...and in the I/O BAR; 0 = nowhere */
	uint64_t kicks, trapped_kicks, interrupts; /* --stats */
	uint64_t deferred_passes;    /* passes the device cut short and re-queued (virtio_queue_reschedule) */
	bool pass_again;             /* no host loop: run queue_notify again before kick() returns */
	struct virtio_transport *t;
	unsigned index;
};

struct virtio_transport {
	struct pci_device pci;
	struct msix msix;
	unsigned pci_cfg_cap;        /* config offset of the VIRTIO_PCI_CAP_PCI_CFG window */
	struct virtio_device *dev;
	struct virtio_pci_host host;
	pthread_mutex_t lock;        /* everything below, and every device op */
	uint32_t dfselect, gfselect;
	uint64_t driver_features;
	uint16_t config_vector, queue_select;
	uint8_t status, config_generation, isr;
	struct vpci_queue q[VIRTIO_MAX_QUEUES];
	struct virtq vq[VIRTIO_MAX_QUEUES];
	const struct guest_mem *mem;
};

/* Build the PCI function for dev (not yet plugged into a bus). */
int virtio_pci_create(struct virtio_device *dev, const struct guest_mem *mem, const struct virtio_pci_host *host,
		      struct virtio_transport **out, vt_err *err);
void virtio_pci_destroy(struct virtio_transport *t);
/* After the function has left its bus while the VM runs (hot-unplug): its kicks are no longer watched and
 * the device is reset (a disk's requests in flight complete first), so that it can be destroyed. */
void virtio_pci_unplugged(struct virtio_transport *t);
void virtio_pci_print_stats(struct virtio_transport *t, FILE *f);
/* The device's own counters (its ops->counters under the transport lock); returns how many. */
unsigned virtio_pci_counters(struct virtio_transport *t, struct virtio_counter *out);
/* Queue q's: kicks (ioeventfd and trapped), the trapped ones, interrupts sent. */
struct virtio_queue_counters {
	uint64_t kicks, trapped_kicks, interrupts;
};
void virtio_pci_queue_counters(struct virtio_transport *t, unsigned q, struct virtio_queue_counters *out);

/* Snapshot (docs/snapshot.md): the transport's state is section `name` (the PCI function, feature
 * negotiation, status, every queue's configuration and ring positions), the device's own is `name`.dev.
 * Save with the VM paused and the lock held (below). Load into a transport built from the same device
 * configuration (id, queues and offered features are checked) before the VM runs; an active device is
 * activated again and its queues looked at, as after DRIVER_OK.
 *
 * A save holds every device's lock (virtio_pci_lock) from the check that each is quiesced until guest memory
 * is written too: the device thread then cannot move a ring between the state and the memory it describes. */
struct state_writer;
struct state_reader;
void virtio_pci_lock(struct virtio_transport *t);
void virtio_pci_unlock(struct virtio_transport *t);
bool virtio_pci_quiesced(struct virtio_transport *t);   /* lock held */
int virtio_pci_state_save(struct virtio_transport *t, struct state_writer *w, const char *name, vt_err *err); /* lock held */
int virtio_pci_state_load(struct virtio_transport *t, const struct state_reader *r, const char *name, vt_err *err);
/* The guest now runs elsewhere (a migration completed): never touch its rings again. Lock held. */
void virtio_pci_retire(struct virtio_transport *t);

/* The BAR handler (also reachable as t->pci.ops->bar_io); exposed for tests. */
void virtio_pci_bar_io(void *t, uint64_t addr, uint8_t *data, uint32_t len, bool is_write);

#endif

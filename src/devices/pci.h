/* A conventional PCI bus 0 behind a host bridge: configuration space reached through the conf1 ports
 * (0xcf8 address, 0xcfc-0xcff data) and an ECAM window, memory BARs allocated from the MMIO hole and I/O
 * BARs from a port window, the command register's decode bits, a capability list, and MSI-X (table, PBA,
 * masking) for devices.
 *
 * Everything the guest writes is hostile: out-of-range offsets, odd widths and absent devices read as all
 * ones and writes to them are dropped. Config accesses from several vCPUs are serialised by the bus lock;
 * BAR accesses go straight to the device, which does its own locking. */
#ifndef VIRTUS_PCI_H
#define VIRTUS_PCI_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/bus.h"
#include "lib/err.h"

#define PCI_CFG_SIZE      256     /* conventional config space; ECAM's 4 KiB per function reads 0 above */
#define PCI_ECAM_FN_SIZE  4096
#define PCI_MAX_SLOTS     32
#define PCI_NUM_BARS      6

/* Type 0 header offsets (PCI Local Bus 3.0, 6.1). */
#define PCI_VENDOR_ID     0x00
#define PCI_DEVICE_ID     0x02
#define PCI_COMMAND       0x04
#define PCI_STATUS        0x06
#define PCI_REVISION_ID   0x08
#define PCI_CLASS_PROG    0x09
#define PCI_HEADER_TYPE   0x0e
#define PCI_BAR0          0x10
#define PCI_SUBSYS_VENDOR 0x2c
#define PCI_SUBSYS_ID     0x2e
#define PCI_CAP_PTR       0x34
#define PCI_INTERRUPT_LINE 0x3c
#define PCI_INTERRUPT_PIN 0x3d

#define PCI_COMMAND_IO     0x0001
#define PCI_COMMAND_MEMORY 0x0002
#define PCI_COMMAND_MASTER 0x0004
#define PCI_COMMAND_INTX_DISABLE 0x0400
#define PCI_STATUS_CAP_LIST 0x0010
#define PCI_BAR_MEM_64    0x4
#define PCI_BAR_IO        0x1     /* bit 0 of a BAR register: the BAR is in I/O space */
#define PCI_IO_BAR_MAX    256     /* PCI 3.0 6.2.5.1: an I/O BAR asks for at most 256 ports */
#define PCI_CAP_ID_MSIX   0x11
#define PCI_CAP_ID_VENDOR 0x09

struct pci_device;

#define PCI_BAR_ADDR(bar, off) (((uint64_t)(bar) << 56) | (off))
#define PCI_BAR_OF(addr)       ((unsigned)((addr) >> 56))
#define PCI_BAR_OFFSET(addr)   ((addr) & ((1ULL << 56) - 1))

/* The device's side: BAR accesses (offset within the BAR) and a hook when a BAR's guest address or its
 * decode state changes (so the device can move ioeventfds). Both optional except bar_io for sized BARs. */
struct pci_device_ops {
	io_handler_fn bar_io;    /* addr = PCI_BAR_ADDR(bar, offset in the BAR) */
	void (*bar_moved)(struct pci_device *d, unsigned bar, uint64_t addr, bool decoding);
};

struct pci_bar {
	uint64_t size;           /* power of two: memory >= 4 KiB, I/O 4..256 ports; 0 = not implemented */
	uint64_t addr;
	bool is64;               /* occupies this and the next BAR register */
	bool io;                 /* ports, decoded while PCI_COMMAND_IO is set and inside the bus's I/O window */
};

struct pci_device {
	uint8_t cfg[PCI_CFG_SIZE];
	uint8_t wmask[PCI_CFG_SIZE];   /* bits the guest may change (BARs are handled separately) */
	struct pci_bar bar[PCI_NUM_BARS];
	uint8_t cap_end;               /* where the next capability goes */
	uint8_t *last_cap_next;        /* the next pointer to patch when a capability is added */
	const struct pci_device_ops *ops;
	void *opaque;                  /* for ops->bar_io */
	const char *name;
	/* Written by config space when the guest changes a capability (MSI-X control); under the bus lock. */
	void (*cfg_written)(struct pci_device *d, unsigned off, unsigned len);
	/* Called before the guest reads [off, off+len) of config space, so that a device can fill in bytes
	 * whose value is produced by the read itself (virtio's PCI_CFG window); under the bus lock. Optional. */
	void (*cfg_reading)(struct pci_device *d, unsigned off, unsigned len);
	unsigned bar_users;            /* vCPUs inside ops->bar_io right now (atomic): an unplug waits for them */
	uint64_t io_window_base, io_window_end; /* the bus's I/O window, copied at plug time */
};

struct pci_bus {
	struct pci_device *slot[PCI_MAX_SLOTS];
	uint32_t reserved;           /* slots pci_bus_plug leaves free (bit n: slot n), for pci_bus_plug_at */
	pthread_mutex_t lock;
	uint32_t conf1_addr;
	uint64_t mmio_base, mmio_size, mmio_next; /* BAR window and bump allocator */
	uint64_t io_base, io_size;   /* I/O BAR window: each slot owns io_size / PCI_MAX_SLOTS ports of it */
	uint64_t ecam_base;
	struct pci_device host_bridge;
};

/* A bus with a host bridge at 00:00.0; memory BARs are allocated from [mmio_base, mmio_base+mmio_size). */
void pci_bus_init(struct pci_bus *bus, uint64_t mmio_base, uint64_t mmio_size, uint64_t ecam_base);
/* The ports I/O BARs come from (none until this is called: a device with an I/O BAR then cannot be
 * plugged). Slot s's I/O BARs start at base + s * (size / PCI_MAX_SLOTS), so an unplugged slot's ports are
 * free again for the next device in it. */
void pci_bus_set_io_window(struct pci_bus *bus, uint64_t base, uint64_t size);
void pci_bus_destroy(struct pci_bus *bus);

/* Fill in the identity of a type 0 function. */
void pci_device_init(struct pci_device *d, uint16_t vendor, uint16_t device, uint32_t class_code,
		     uint16_t subsys_vendor, uint16_t subsys_id, const char *name);
/* Declare a memory BAR before plugging; size must be a power of two >= 4 KiB. */
int pci_device_add_bar(struct pci_device *d, unsigned bar, uint64_t size, bool is64, vt_err *err);
/* Declare an I/O BAR of `ports` ports (a power of two, 4..256) before plugging. */
int pci_device_add_io_bar(struct pci_device *d, unsigned bar, uint64_t ports, vt_err *err);
/* Append a capability of len bytes (id and next pointer included) and return its config offset, or 0 if
 * config space is full. The caller fills bytes 2..len-1. */
unsigned pci_device_add_cap(struct pci_device *d, uint8_t id, unsigned len);
/* Put d in the first free slot, allocate its BARs (memory decode stays off until the guest enables it). */
int pci_bus_plug(struct pci_bus *bus, struct pci_device *d, unsigned *slot, vt_err *err);
/* Plug into the given slot (1..31), which must be free; a reserved slot stops being reserved. Safe while
 * the guest runs (a hot-plugged device). */
int pci_bus_plug_at(struct pci_bus *bus, struct pci_device *d, unsigned slot, vt_err *err);
/* Take the device out of its slot: when this returns no vCPU is in its config space or BARs, and none will
 * reach it again (the guest reads all ones there). Its BAR space is not reused. */
void pci_bus_unplug(struct pci_bus *bus, unsigned slot);
/* The slot that holds d, 0 if none. */
unsigned pci_bus_slot_of(struct pci_bus *bus, const struct pci_device *d);

/* Bus handlers: register conf1 at port 0xcf8 (8 ports), ECAM at ecam_base, the BAR window at mmio_base,
 * the I/O BAR window at io_base (on the port bus). */
void pci_conf1_io(void *bus, uint64_t addr, uint8_t *data, uint32_t len, bool is_write);
void pci_ecam_io(void *bus, uint64_t addr, uint8_t *data, uint32_t len, bool is_write);
void pci_mmio_io(void *bus, uint64_t addr, uint8_t *data, uint32_t len, bool is_write);
void pci_pio_io(void *bus, uint64_t addr, uint8_t *data, uint32_t len, bool is_write);

/* Config space of bus 0 slot `slot`, function 0 (tests, conf1 and ECAM all end here). */
uint32_t pci_cfg_read(struct pci_bus *bus, unsigned slot, unsigned off, unsigned len);
void pci_cfg_write(struct pci_bus *bus, unsigned slot, unsigned off, unsigned len, uint32_t val);

/* Little-endian helpers for config space and register files. */
static inline uint32_t pci_get(const uint8_t *p, unsigned len)
{
	uint32_t v = 0;
	for (unsigned i = 0; i < len; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return v;
}

static inline void pci_put(uint8_t *p, unsigned len, uint32_t v)
{
	for (unsigned i = 0; i < len; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* ---- MSI-X (PCI 3.0, 6.8.2) ----------------------------------------------------------------------
 * The table and PBA live in a BAR of the owning device, which forwards accesses to msix_table_io /
 * msix_pba_io. How a vector reaches the CPU is the platform's business: set_route is called whenever
 * an entry's address/data may have changed (KVM: GSI routing), signal delivers one message (KVM: write
 * the vector's irqfd). A masked vector (entry or function mask, or MSI-X disabled) records a pending bit
 * instead and fires when unmasked. */
struct msix_ops {
	int (*set_route)(void *opaque, unsigned vector, uint64_t addr, uint32_t data);
	void (*signal)(void *opaque, unsigned vector);
};

#define MSIX_ENTRY_SIZE   16
#define MSIX_MAX_VECTORS  64
#define MSIX_CTRL_ENABLE  0x8000
#define MSIX_CTRL_MASKALL 0x4000
#define MSIX_ENTRY_MASKED 0x1

struct msix {
	struct pci_device *pci;
	unsigned cap;                  /* config offset of the capability */
	unsigned nvectors;
	uint8_t table[MSIX_MAX_VECTORS * MSIX_ENTRY_SIZE];
	uint64_t pending;              /* PBA: one bit per vector */
	pthread_mutex_t lock;          /* table, pending: vCPU threads write, the device thread signals */
	const struct msix_ops *ops;
	void *opaque;
};

/* Add the capability to d: table at table_off, PBA at pba_off, both in BAR bar. */
int msix_init(struct msix *m, struct pci_device *d, unsigned nvectors, unsigned bar, uint32_t table_off,
	      uint32_t pba_off, const struct msix_ops *ops, void *opaque, vt_err *err);
void msix_destroy(struct msix *m);
void msix_table_io(struct msix *m, uint64_t off, uint8_t *data, uint32_t len, bool is_write);
void msix_pba_io(struct msix *m, uint64_t off, uint8_t *data, uint32_t len, bool is_write);
/* Deliver vector v (or make it pending). Out-of-range vectors are dropped. Thread-safe. */
void msix_notify(struct msix *m, unsigned v);
/* Call from the device's cfg_written hook: the control word may have unmasked pending vectors. */
void msix_control_written(struct msix *m);
bool msix_enabled(struct msix *m);

/* ---- Snapshot state of a function: config space, BAR addresses, MSI-X table and pending bits ---------- */
struct pci_function_state {
	uint8_t cfg[PCI_CFG_SIZE];
	uint64_t bar_addr[PCI_NUM_BARS];
	uint8_t msix_table[MSIX_MAX_VECTORS * MSIX_ENTRY_SIZE];
	uint64_t msix_pending;
};

/* m: the function's MSI-X (NULL if it has none). */
void pci_function_state_get(const struct pci_device *d, struct msix *m, struct pci_function_state *s);
/* Put a saved state into a function built the same way (identity and BAR sizes are checked): the BARs move
 * (the device's bar_moved hook runs) and every MSI-X route is programmed again. Before the VM runs. */
int pci_function_state_set(struct pci_device *d, struct msix *m, const struct pci_function_state *s, vt_err *err);

#endif

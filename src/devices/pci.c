#include "devices/pci.h"

#include <sched.h>
#include <string.h>

#include "lib/util.h"

#define CONF1_ENABLE   0x80000000u
#define ALL_ONES       0xffffffffu
#define HOST_BRIDGE_VENDOR 0x1b36 /* Red Hat, Inc.: the PCIe host bridge ID QEMU also uses (1b36:0008) */
#define HOST_BRIDGE_DEVICE 0x0008
#define CLASS_HOST_BRIDGE  0x060000
#define PCI_CAP_FIRST  0x40

void pci_device_init(struct pci_device *d, uint16_t vendor, uint16_t device, uint32_t class_code,
		     uint16_t subsys_vendor, uint16_t subsys_id, const char *name)
{
	memset(d, 0, sizeof(*d));
	pci_put(d->cfg + PCI_VENDOR_ID, 2, vendor);
	pci_put(d->cfg + PCI_DEVICE_ID, 2, device);
	pci_put(d->cfg + PCI_CLASS_PROG, 3, class_code);
	pci_put(d->cfg + PCI_SUBSYS_VENDOR, 2, subsys_vendor);
	pci_put(d->cfg + PCI_SUBSYS_ID, 2, subsys_id);
	pci_put(d->wmask + PCI_COMMAND, 2,
		PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE);
	d->wmask[PCI_INTERRUPT_LINE] = 0xff;
	d->cap_end = PCI_CAP_FIRST;
	d->last_cap_next = d->cfg + PCI_CAP_PTR;
	d->name = name;
}

int pci_device_add_bar(struct pci_device *d, unsigned bar, uint64_t size, bool is64, vt_err *err)
{
	if (bar >= PCI_NUM_BARS || (is64 && bar + 1 >= PCI_NUM_BARS))
		return vt_fail(err, "%s: BAR %u does not exist", d->name, bar);
	if (size < 4096 || (size & (size - 1)))
		return vt_fail(err, "%s: BAR size 0x%llx is not a power of two >= 4 KiB", d->name, (unsigned long long)size);
	d->bar[bar] = (struct pci_bar){ .size = size, .is64 = is64 };
	return 0;
}

int pci_device_add_io_bar(struct pci_device *d, unsigned bar, uint64_t ports, vt_err *err)
{
	if (bar >= PCI_NUM_BARS)
		return vt_fail(err, "%s: BAR %u does not exist", d->name, bar);
	if (ports < 4 || ports > PCI_IO_BAR_MAX || (ports & (ports - 1)))
		return vt_fail(err, "%s: I/O BAR of %llu ports is not a power of two from 4 to %d", d->name,
			       (unsigned long long)ports, PCI_IO_BAR_MAX);
	d->bar[bar] = (struct pci_bar){ .size = ports, .io = true };
	return 0;
}

unsigned pci_device_add_cap(struct pci_device *d, uint8_t id, unsigned len)
{
	unsigned at = ALIGN_UP(d->cap_end, 4u);
	if (len < 2 || at + len > PCI_CFG_SIZE)
		return 0;
	d->cfg[at] = id;
	d->cfg[at + 1] = 0;
	*d->last_cap_next = (uint8_t)at;
	d->last_cap_next = d->cfg + at + 1;
	d->cap_end = (uint8_t)MIN(at + len, 0xffu);
	pci_put(d->cfg + PCI_STATUS, 2, pci_get(d->cfg + PCI_STATUS, 2) | PCI_STATUS_CAP_LIST);
	return at;
}

void pci_bus_init(struct pci_bus *bus, uint64_t mmio_base, uint64_t mmio_size, uint64_t ecam_base)
{
	memset(bus, 0, sizeof(*bus));
	pthread_mutex_init(&bus->lock, NULL);
	bus->mmio_base = bus->mmio_next = mmio_base;
	bus->mmio_size = mmio_size;
	bus->ecam_base = ecam_base;
	pci_device_init(&bus->host_bridge, HOST_BRIDGE_VENDOR, HOST_BRIDGE_DEVICE, CLASS_HOST_BRIDGE, 0, 0, "host-bridge");
	bus->slot[0] = &bus->host_bridge;
}

void pci_bus_set_io_window(struct pci_bus *bus, uint64_t base, uint64_t size)
{
	bus->io_base = base;
	bus->io_size = size;
}

void pci_bus_destroy(struct pci_bus *bus)
{
	pthread_mutex_destroy(&bus->lock);
}

/* I/O BARs go in the slot's own share of the window, so a slot's ports are reused when its device is. */
static int allocate_io_bars(struct pci_bus *bus, struct pci_device *d, unsigned slot, vt_err *err)
{
	uint64_t share = bus->io_size / PCI_MAX_SLOTS;
	uint64_t next = bus->io_base + slot * share, end = next + share;
	for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
		struct pci_bar *b = &d->bar[i];
		if (!b->size || !b->io)
			continue;
		uint64_t at = ALIGN_UP(next, b->size);
		if (at + b->size > end)
			return vt_fail(err, "%s: no room for a %llu-port I/O BAR in slot %u's %llu ports of the PCI I/O window",
				       d->name, (unsigned long long)b->size, slot, (unsigned long long)share);
		b->addr = at;
		next = at + b->size;
	}
	d->io_window_base = bus->io_base;
	d->io_window_end = bus->io_base + bus->io_size;
	return 0;
}

static int allocate_bars(struct pci_bus *bus, struct pci_device *d, unsigned slot, vt_err *err)
{
	if (allocate_io_bars(bus, d, slot, err) < 0)
		return -1;
	for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
		struct pci_bar *b = &d->bar[i];
		if (!b->size || b->io)
			continue;
		uint64_t at = ALIGN_UP(bus->mmio_next, b->size);
		if (at < bus->mmio_next || at + b->size > bus->mmio_base + bus->mmio_size)
			return vt_fail(err, "%s: no room for a 0x%llx-byte BAR in the PCI MMIO window", d->name,
				       (unsigned long long)b->size);
		b->addr = at;
		bus->mmio_next = at + b->size;
	}
	return 0;
}

static int plug_locked(struct pci_bus *bus, struct pci_device *d, unsigned s, vt_err *err)
{
	if (allocate_bars(bus, d, s, err) < 0)
		return -1;
	bus->slot[s] = d;
	bus->reserved &= ~(1u << s);
	return 0;
}

int pci_bus_plug(struct pci_bus *bus, struct pci_device *d, unsigned *slot, vt_err *err)
{
	pthread_mutex_lock(&bus->lock);
	unsigned s = 1;
	while (s < PCI_MAX_SLOTS && (bus->slot[s] || (bus->reserved & (1u << s))))
		s++;
	int rc = s == PCI_MAX_SLOTS ? vt_fail(err, "%s: all %d PCI slots are taken", d->name, PCI_MAX_SLOTS - 1)
				    : plug_locked(bus, d, s, err);
	pthread_mutex_unlock(&bus->lock);
	if (rc == 0 && slot)
		*slot = s;
	return rc;
}

int pci_bus_plug_at(struct pci_bus *bus, struct pci_device *d, unsigned slot, vt_err *err)
{
	if (slot == 0 || slot >= PCI_MAX_SLOTS)
		return vt_fail(err, "%s: PCI slot %u does not exist (1 to %d)", d->name, slot, PCI_MAX_SLOTS - 1);
	pthread_mutex_lock(&bus->lock);
	int rc = bus->slot[slot] ? vt_fail(err, "%s: PCI slot %u holds %s", d->name, slot, bus->slot[slot]->name)
				 : plug_locked(bus, d, slot, err);
	pthread_mutex_unlock(&bus->lock);
	return rc;
}

void pci_bus_unplug(struct pci_bus *bus, unsigned slot)
{
	if (slot == 0 || slot >= PCI_MAX_SLOTS)
		return;
	pthread_mutex_lock(&bus->lock);
	struct pci_device *d = bus->slot[slot];
	bus->slot[slot] = NULL;
	pthread_mutex_unlock(&bus->lock);
	/* a BAR access that found d before it left is still running (without the lock): let it end */
	while (d && __atomic_load_n(&d->bar_users, __ATOMIC_ACQUIRE))
		sched_yield();
}

unsigned pci_bus_slot_of(struct pci_bus *bus, const struct pci_device *d)
{
	pthread_mutex_lock(&bus->lock);
	unsigned s = 1;
	while (s < PCI_MAX_SLOTS && bus->slot[s] != d)
		s++;
	pthread_mutex_unlock(&bus->lock);
	return s < PCI_MAX_SLOTS ? s : 0;
}

static uint16_t command(const struct pci_device *d)
{
	return (uint16_t)pci_get(d->cfg + PCI_COMMAND, 2);
}

/* An I/O BAR moved out of the bus's window (where nothing routes its ports) decodes nothing. */
static bool bar_decoding(const struct pci_device *d, const struct pci_bar *b)
{
	if (!b->io)
		return command(d) & PCI_COMMAND_MEMORY;
	return (command(d) & PCI_COMMAND_IO) && b->addr >= d->io_window_base && b->addr + b->size <= d->io_window_end;
}

static void tell_bars(struct pci_device *d)
{
	if (!d->ops || !d->ops->bar_moved)
		return;
	for (unsigned i = 0; i < PCI_NUM_BARS; i++)
		if (d->bar[i].size)
			d->ops->bar_moved(d, i, d->bar[i].addr, bar_decoding(d, &d->bar[i]));
}

/* Which BAR (and which half of a 64-bit one) register `reg` (0..5) belongs to; -1 if none. */
static int bar_of_register(const struct pci_device *d, unsigned reg, bool *high)
{
	*high = false;
	if (d->bar[reg].size)
		return (int)reg;
	if (reg > 0 && d->bar[reg - 1].size && d->bar[reg - 1].is64) {
		*high = true;
		return (int)reg - 1;
	}
	return -1;
}

static uint32_t bar_register(const struct pci_device *d, unsigned reg)
{
	bool high;
	int i = bar_of_register(d, reg, &high);
	if (i < 0)
		return 0;
	const struct pci_bar *b = &d->bar[i];
	if (high)
		return (uint32_t)(b->addr >> 32);
	return (uint32_t)b->addr | (b->is64 ? PCI_BAR_MEM_64 : 0) | (b->io ? PCI_BAR_IO : 0);
}

/* BAR sizing: writing all ones reads back the size mask, because the bits below the size do not stick. */
static void write_bar_register(struct pci_device *d, unsigned reg, uint32_t val)
{
	bool high;
	int i = bar_of_register(d, reg, &high);
	if (i < 0)
		return;
	struct pci_bar *b = &d->bar[i];
	uint64_t mask = ~(b->size - 1);
	if (!b->is64)
		mask &= ALL_ONES;
	uint64_t v = high ? ((uint64_t)val << 32) | (b->addr & ALL_ONES) : (b->addr & ~(uint64_t)ALL_ONES) | val;
	b->addr = v & mask;
	tell_bars(d);
}

static uint32_t read_cfg(const struct pci_device *d, unsigned off, unsigned len)
{
	uint8_t bytes[4];
	for (unsigned i = 0; i < len; i++) {
		unsigned o = off + i;
		if (o >= PCI_BAR0 && o < PCI_BAR0 + 4 * PCI_NUM_BARS)
			bytes[i] = (uint8_t)(bar_register(d, (o - PCI_BAR0) / 4) >> (8 * (o % 4)));
		else
			bytes[i] = o < PCI_CFG_SIZE ? d->cfg[o] : 0;
	}
	return pci_get(bytes, len);
}

static void write_bars(struct pci_device *d, unsigned off, unsigned len, uint32_t val)
{
	/* Merge the bytes written into each 32-bit BAR register they touch. */
	for (unsigned reg = (off - PCI_BAR0) / 4; reg <= (off + len - 1 - PCI_BAR0) / 4 && reg < PCI_NUM_BARS; reg++) {
		uint8_t cur[4];
		pci_put(cur, 4, bar_register(d, reg));
		for (unsigned i = 0; i < len; i++) {
			unsigned o = off + i;
			if (o >= PCI_BAR0 + 4 * reg && o < PCI_BAR0 + 4 * reg + 4)
				cur[o % 4] = (uint8_t)(val >> (8 * i));
		}
		write_bar_register(d, reg, pci_get(cur, 4));
	}
}

static void write_cfg(struct pci_device *d, unsigned off, unsigned len, uint32_t val)
{
	if (off + len > PCI_CFG_SIZE)
		return;
	if (off < PCI_BAR0 + 4 * PCI_NUM_BARS && off + len > PCI_BAR0) {
		write_bars(d, off, len, val);
		return;
	}
	uint16_t decode_bits = PCI_COMMAND_IO | PCI_COMMAND_MEMORY, was = command(d) & decode_bits;
	for (unsigned i = 0; i < len; i++) {
		uint8_t m = d->wmask[off + i];
		d->cfg[off + i] = (uint8_t)((d->cfg[off + i] & ~m) | ((val >> (8 * i)) & m));
	}
	if ((command(d) & decode_bits) != was)
		tell_bars(d);
	if (d->cfg_written)
		d->cfg_written(d, off, len);
}

static bool valid_access(unsigned off, unsigned len)
{
	return (len == 1 || len == 2 || len == 4) && off % len == 0 && off < PCI_ECAM_FN_SIZE;
}

uint32_t pci_cfg_read(struct pci_bus *bus, unsigned slot, unsigned off, unsigned len)
{
	if (slot >= PCI_MAX_SLOTS || !valid_access(off, len))
		return ALL_ONES >> (32 - 8 * MIN(len, 4u));
	pthread_mutex_lock(&bus->lock);
	struct pci_device *d = bus->slot[slot];
	if (d && d->cfg_reading && off < PCI_CFG_SIZE)
		d->cfg_reading(d, off, len);
	uint32_t v = d ? read_cfg(d, off, len) : ALL_ONES >> (32 - 8 * len);
	pthread_mutex_unlock(&bus->lock);
	return v;
}

void pci_cfg_write(struct pci_bus *bus, unsigned slot, unsigned off, unsigned len, uint32_t val)
{
	if (slot >= PCI_MAX_SLOTS || !valid_access(off, len))
		return;
	pthread_mutex_lock(&bus->lock);
	if (bus->slot[slot])
		write_cfg(bus->slot[slot], off, len, val);
	pthread_mutex_unlock(&bus->lock);
}

static void fill_ones(uint8_t *data, uint32_t len)
{
	memset(data, 0xff, len);
}

/* One config access for bus/device/function; only bus 0 function 0 exists. */
static void cfg_access(struct pci_bus *bus, unsigned busno, unsigned dev, unsigned fn, unsigned off, uint8_t *data,
		       uint32_t len, bool is_write)
{
	bool exists = busno == 0 && fn == 0 && len <= 4;
	if (is_write) {
		if (exists)
			pci_cfg_write(bus, dev, off, len, pci_get(data, len));
		return;
	}
	if (!exists) {
		fill_ones(data, len);
		return;
	}
	pci_put(data, len, pci_cfg_read(bus, dev, off, len));
}

void pci_conf1_io(void *opaque, uint64_t addr, uint8_t *data, uint32_t len, bool is_write)
{
	struct pci_bus *bus = opaque;
	if (addr < 4) {
		/* Only whole-dword accesses reach the address register (byte accesses are legacy probing). */
		if (addr != 0 || len != 4) {
			if (!is_write)
				fill_ones(data, len);
			return;
		}
		if (is_write)
			__atomic_store_n(&bus->conf1_addr, pci_get(data, 4), __ATOMIC_SEQ_CST);
		else
			pci_put(data, 4, __atomic_load_n(&bus->conf1_addr, __ATOMIC_SEQ_CST));
		return;
	}
	uint32_t a = __atomic_load_n(&bus->conf1_addr, __ATOMIC_SEQ_CST);
	if (!(a & CONF1_ENABLE) || (addr - 4) + len > 4) {
		if (!is_write)
			fill_ones(data, len);
		return;
	}
	unsigned off = (a & 0xfc) + (unsigned)(addr - 4);
	cfg_access(bus, (a >> 16) & 0xff, (a >> 11) & 0x1f, (a >> 8) & 7, off, data, len, is_write);
}

void pci_ecam_io(void *opaque, uint64_t addr, uint8_t *data, uint32_t len, bool is_write)
{
	cfg_access(opaque, (unsigned)(addr >> 20) & 0xff, (unsigned)(addr >> 15) & 0x1f, (unsigned)(addr >> 12) & 7,
		   (unsigned)(addr & 0xfff), data, len, is_write);
}

/* A BAR window: find the decoding BAR of the space (memory or ports) that holds the address, then call the
 * device without the lock. */
static void bar_access(struct pci_bus *bus, bool io, uint64_t where, uint8_t *data, uint32_t len, bool is_write)
{
	struct pci_device *hit = NULL;
	uint64_t off = 0;
	unsigned bar = 0;
	pthread_mutex_lock(&bus->lock);
	for (unsigned s = 1; s < PCI_MAX_SLOTS && !hit; s++) {
		struct pci_device *d = bus->slot[s];
		if (!d)
			continue;
		for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
			const struct pci_bar *b = &d->bar[i];
			if (b->size && b->io == io && bar_decoding(d, b) && where >= b->addr && where - b->addr < b->size &&
			    len <= b->size - (where - b->addr)) {
				hit = d, off = where - b->addr, bar = i;
				break;
			}
		}
	}
	if (hit)
		__atomic_add_fetch(&hit->bar_users, 1, __ATOMIC_ACQ_REL); /* before the lock goes: see pci_bus_unplug */
	pthread_mutex_unlock(&bus->lock);
	if (!hit || !hit->ops || !hit->ops->bar_io) {
		if (!is_write)
			fill_ones(data, len);
	} else {
		hit->ops->bar_io(hit->opaque, PCI_BAR_ADDR(bar, off), data, len, is_write);
	}
	if (hit)
		__atomic_sub_fetch(&hit->bar_users, 1, __ATOMIC_ACQ_REL);
}

void pci_mmio_io(void *opaque, uint64_t addr, uint8_t *data, uint32_t len, bool is_write)
{
	struct pci_bus *bus = opaque;
	bar_access(bus, false, bus->mmio_base + addr, data, len, is_write);
}

void pci_pio_io(void *opaque, uint64_t addr, uint8_t *data, uint32_t len, bool is_write)
{
	struct pci_bus *bus = opaque;
	bar_access(bus, true, bus->io_base + addr, data, len, is_write);
}

/* ---- MSI-X ---------------------------------------------------------------------------------------- */

#define MSIX_CAP_LEN 12

int msix_init(struct msix *m, struct pci_device *d, unsigned nvectors, unsigned bar, uint32_t table_off,
	      uint32_t pba_off, const struct msix_ops *ops, void *opaque, vt_err *err)
{
	if (nvectors == 0 || nvectors > MSIX_MAX_VECTORS)
		return vt_fail(err, "%s: %u MSI-X vectors (1..%d supported)", d->name, nvectors, MSIX_MAX_VECTORS);
	unsigned cap = pci_device_add_cap(d, PCI_CAP_ID_MSIX, MSIX_CAP_LEN);
	if (!cap)
		return vt_fail(err, "%s: no room for the MSI-X capability", d->name);
	memset(m, 0, sizeof(*m));
	m->pci = d, m->cap = cap, m->nvectors = nvectors, m->ops = ops, m->opaque = opaque;
	pthread_mutex_init(&m->lock, NULL);
	pci_put(d->cfg + cap + 2, 2, nvectors - 1);
	pci_put(d->wmask + cap + 2, 2, MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL);
	pci_put(d->cfg + cap + 4, 4, table_off | bar);
	pci_put(d->cfg + cap + 8, 4, pba_off | bar);
	for (unsigned v = 0; v < nvectors; v++)
		m->table[v * MSIX_ENTRY_SIZE + 12] = MSIX_ENTRY_MASKED; /* entries start masked */
	return 0;
}

void msix_destroy(struct msix *m)
{
	pthread_mutex_destroy(&m->lock);
}

static uint16_t control(const struct msix *m)
{
	return (uint16_t)__atomic_load_n((const uint16_t *)(const void *)(m->pci->cfg + m->cap + 2), __ATOMIC_SEQ_CST);
}

bool msix_enabled(struct msix *m)
{
	return control(m) & MSIX_CTRL_ENABLE;
}

/* Caller holds m->lock. */
static bool vector_masked(const struct msix *m, unsigned v)
{
	uint16_t ctl = control(m);
	return !(ctl & MSIX_CTRL_ENABLE) || (ctl & MSIX_CTRL_MASKALL) ||
	       (m->table[v * MSIX_ENTRY_SIZE + 12] & MSIX_ENTRY_MASKED);
}

/* Fire every pending vector that is no longer masked. Caller holds m->lock. */
static void deliver_unmasked(struct msix *m)
{
	for (unsigned v = 0; v < m->nvectors; v++) {
		if ((m->pending & (1ULL << v)) && !vector_masked(m, v)) {
			m->pending &= ~(1ULL << v);
			m->ops->signal(m->opaque, v);
		}
	}
}

void msix_control_written(struct msix *m)
{
	pthread_mutex_lock(&m->lock);
	deliver_unmasked(m);
	pthread_mutex_unlock(&m->lock);
}

static void update_route(struct msix *m, unsigned v)
{
	const uint8_t *e = m->table + v * MSIX_ENTRY_SIZE;
	uint64_t addr = pci_get(e, 4) | (uint64_t)pci_get(e + 4, 4) << 32;
	if (m->ops->set_route)
		m->ops->set_route(m->opaque, v, addr, pci_get(e + 8, 4));
}

/* The guest writes entries with dword (or qword) accesses; anything else is dropped, reads give ones. */
void msix_table_io(struct msix *m, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	bool ok = (len == 4 || len == 8) && off % len == 0 && off + len <= (uint64_t)m->nvectors * MSIX_ENTRY_SIZE;
	if (!ok) {
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	pthread_mutex_lock(&m->lock);
	if (!is_write) {
		memcpy(data, m->table + off, len);
	} else {
		unsigned v = (unsigned)(off / MSIX_ENTRY_SIZE);
		memcpy(m->table + off, data, len);
		m->table[v * MSIX_ENTRY_SIZE + 12] &= MSIX_ENTRY_MASKED; /* other control bits are reserved */
		memset(m->table + v * MSIX_ENTRY_SIZE + 13, 0, 3);
		if (off % MSIX_ENTRY_SIZE < 12)
			update_route(m, v);
		deliver_unmasked(m);
	}
	pthread_mutex_unlock(&m->lock);
}

void msix_pba_io(struct msix *m, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	if (is_write)
		return; /* the PBA is read-only */
	pthread_mutex_lock(&m->lock);
	uint64_t pending = m->pending;
	pthread_mutex_unlock(&m->lock);
	for (uint32_t i = 0; i < len; i++)
		data[i] = off + i < 8 ? (uint8_t)(pending >> (8 * (off + i))) : 0;
}

void msix_notify(struct msix *m, unsigned v)
{
	if (v >= m->nvectors)
		return;
	pthread_mutex_lock(&m->lock);
	if (vector_masked(m, v))
		m->pending |= 1ULL << v;
	else
		m->ops->signal(m->opaque, v);
	pthread_mutex_unlock(&m->lock);
}

/* ---- Snapshot state ------------------------------------------------------------------------------------ */

void pci_function_state_get(const struct pci_device *d, struct msix *m, struct pci_function_state *s)
{
	memset(s, 0, sizeof(*s));
	memcpy(s->cfg, d->cfg, sizeof(s->cfg));
	for (unsigned i = 0; i < PCI_NUM_BARS; i++)
		s->bar_addr[i] = d->bar[i].addr;
	if (!m)
		return;
	pthread_mutex_lock(&m->lock);
	memcpy(s->msix_table, m->table, sizeof(s->msix_table));
	s->msix_pending = m->pending;
	pthread_mutex_unlock(&m->lock);
}

/* A saved function is this one if its identity (ids, class, subsystem) is, and each BAR address is one this
 * function's BAR could have been given: aligned to its size, or 0 where it has no BAR. */
static int check_function_state(const struct pci_device *d, const struct pci_function_state *s, vt_err *err)
{
	static const unsigned identity[][2] = { { PCI_VENDOR_ID, 4 }, { PCI_REVISION_ID, 4 }, { PCI_SUBSYS_VENDOR, 4 } };
	for (size_t i = 0; i < ARRAY_SIZE(identity); i++)
		if (memcmp(d->cfg + identity[i][0], s->cfg + identity[i][0], identity[i][1]))
			return vt_fail(err, "%s: the snapshot holds a different PCI function (%04x:%04x)", d->name,
				       pci_get(s->cfg + PCI_VENDOR_ID, 2), pci_get(s->cfg + PCI_DEVICE_ID, 2));
	for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
		uint64_t size = d->bar[i].size;
		if (size ? s->bar_addr[i] % size : s->bar_addr[i] != 0)
			return vt_fail(err, "%s: BAR %u address 0x%llx in the snapshot does not fit the BAR", d->name, i,
				       (unsigned long long)s->bar_addr[i]);
	}
	return 0;
}

int pci_function_state_set(struct pci_device *d, struct msix *m, const struct pci_function_state *s, vt_err *err)
{
	if (check_function_state(d, s, err) < 0)
		return -1;
	memcpy(d->cfg, s->cfg, sizeof(d->cfg));
	for (unsigned i = 0; i < PCI_NUM_BARS; i++)
		d->bar[i].addr = s->bar_addr[i];
	if (m) {
		pthread_mutex_lock(&m->lock);
		memcpy(m->table, s->msix_table, sizeof(m->table));
		m->pending = s->msix_pending & (m->nvectors < 64 ? (1ULL << m->nvectors) - 1 : ~0ULL);
		for (unsigned v = 0; v < m->nvectors; v++)
			update_route(m, v);
		pthread_mutex_unlock(&m->lock);
	}
	tell_bars(d);
	return 0;
}

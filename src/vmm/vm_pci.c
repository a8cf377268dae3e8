#include "vmm/vm_pci.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "devices/virtio/balloon.h"
#include "devices/virtio/console.h"
#include "devices/virtio/fs.h"
#include "devices/virtio/net.h"
#include "devices/virtio/scsi.h"
#include "devices/virtio/vsock.h"
#include "lib/state_file.h"
#include "lib/util.h"
#include "vmm/boot/acpi.h"
#include "vmm/layout.h"
#include "vmm/vm.h"

static int watch_fd(void *opaque, int fd, void (*fn)(void *arg), void *arg, vt_err *err)
{
	return evloop_watch(opaque, fd, fn, arg, err);
}

static int attach_ioeventfd(void *opaque, uint64_t addr, bool port, int fd, bool assign)
{
	const struct vm *vm = opaque;
	return kvm_ioeventfd(vm->vm_fd, addr, port, fd, assign);
}

static void unwatch_fd(void *opaque, int fd)
{
	evloop_unwatch(opaque, fd);
}

/* slot: where to plug it, 0 for the first free one. */
static int add_virtio(struct vm *vm, struct virtio_device *dev, void (*destroy)(struct virtio_device *), unsigned slot,
		      vt_err *err)
{
	struct vm_pci *p = &vm->pci;
	if (p->n == VM_PCI_MAX_VIRTIO) {
		destroy(dev);
		return vt_fail(err, "more than %d virtio devices", VM_PCI_MAX_VIRTIO);
	}
	struct vm_virtio *v = &p->virtio[p->n++];
	*v = (struct vm_virtio){ .dev = dev, .destroy = destroy, .own_fd = -1, .vectors = calloc(1, sizeof(*v->vectors)) };
	if (!v->vectors)
		return vt_fail_errno(err, ENOMEM, "%s", dev->name);
	if (msi_vectors_create(&p->routes, dev->nqueues + 1, v->vectors, err) < 0)
		return vt_err_prefix(err, "%s", dev->name);
	struct virtio_pci_host host = {
		.msix_ops = &msi_kvm_ops, .msix_opaque = v->vectors, .ioeventfd = attach_ioeventfd, .opaque = vm,
		.watch = watch_fd, .unwatch = unwatch_fd, .watch_opaque = &p->loop,
	};
	if (virtio_pci_create(dev, &vm->mem, &host, &v->t, err) < 0)
		return -1;
	return slot ? pci_bus_plug_at(&p->bus, &v->t->pci, slot, err) : pci_bus_plug(&p->bus, &v->t->pci, NULL, err);
}

/* Watch the last added device's own fd on the device thread (it is unwatched when the device goes). */
static int watch_own(struct vm *vm, int fd, void (*fn)(void *arg), void *arg, vt_err *err)
{
	vm->pci.virtio[vm->pci.n - 1].own_fd = fd;
	return evloop_watch(&vm->pci.loop, fd, fn, arg, err);
}

/* virtio-net, plus a watch on its backend's "frames pending" fd so rx runs on the device thread too.
 * index: the device's place among the --net options (its default MAC depends on it); slot as for a disk. */
int vm_pci_add_net(struct vm *vm, const char *spec, unsigned index, unsigned slot, vt_err *err)
{
	struct net_opts o;
	struct virtio_device *net;
	if (net_opts_parse(spec, &o, err) < 0)
		return -1;
	net_opts_default_mac(&o, index);
	if (virtio_net_create(&o, &net, err) < 0)
		return -1;
	if (add_virtio(vm, net, virtio_net_destroy, slot, err) < 0)
		return -1;
	return watch_own(vm, virtio_net_rx_fd(net), virtio_net_rx_ready, net, err);
}

/* virtio-vsock, plus a watch on its sockets' epoll fd: they are served on the device thread. */
static int add_vsock(struct vm *vm, uint64_t cid, const char *path, vt_err *err)
{
	struct virtio_device *vs;
	if (virtio_vsock_create(cid, path, &vs, err) < 0 || add_virtio(vm, vs, virtio_vsock_destroy, 0, err) < 0)
		return -1;
	vm->pci.vsock = vs;
	return watch_own(vm, virtio_vsock_fd(vs), virtio_vsock_ready, vs, err);
}

/* virtio-fs, plus a watch on its backend's completion signals (call eventfds behind one epoll fd). */
static int add_fs(struct vm *vm, const struct vm_fs_config *c, vt_err *err)
{
	struct virtio_device *fs;
	if (virtio_fs_create(c->tag, c->socket, &vm->mem, &fs, err) < 0 || add_virtio(vm, fs, virtio_fs_destroy, 0, err) < 0)
		return -1;
	return watch_own(vm, virtio_fs_fd(fs), virtio_fs_ready, fs, err);
}

static int register_bus(struct vm *vm, vt_err *err)
{
	struct vm_pci *p = &vm->pci;
	struct pci_bus *b = &p->bus;
	if ((p->ejected_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
		return vt_fail_errno(err, errno, "eventfd");
	pci_hotplug_init(&p->hotplug, p->ejected_fd);
	if (bus_register(&vm->pio, PORT_PCI_CONF1, 8, pci_conf1_io, b, "pci-conf1", err) < 0 ||
	    bus_register(&vm->pio, PORT_PCI_HOTPLUG, PCI_HOTPLUG_PORTS, pci_hotplug_io, &p->hotplug, "pci-hotplug", err) < 0 ||
	    bus_register(&vm->mmio, LAYOUT_PCI_ECAM, LAYOUT_PCI_ECAM_SIZE, pci_ecam_io, b, "pci-ecam", err) < 0 ||
	    bus_register(&vm->mmio, LAYOUT_PCI_MMIO, LAYOUT_PCI_MMIO_SIZE, pci_mmio_io, b, "pci-bars", err) < 0 ||
	    bus_register(&vm->pio, PORT_PCI_IO_BARS, PORT_PCI_IO_BARS_SIZE, pci_pio_io, b, "pci-io-bars", err) < 0)
		return -1;
	return 0;
}

/* incoming: the image's lock is taken when the migration hands the VM over (vm_pci_lock_disks). */
int vm_pci_add_disk(struct vm *vm, const struct vm_disk_config *c, bool incoming, vt_err *err)
{
	struct virtio_device *blk;
	struct blk_opts o = { .readonly = c->readonly, .serial = c->serial, .defer_lock = incoming,
			      .format = c->format, .overlay = c->overlay };
	if (virtio_blk_create_opts(c->path, &o, &blk, err) < 0)
		return -1;
	if (add_virtio(vm, blk, virtio_blk_destroy, c->pci_slot, err) < 0)
		return -1;
	return watch_own(vm, virtio_blk_eventfd(blk), virtio_blk_complete, blk, err);
}

/* virtio-balloon, plus (with statistics) a watch on its refresh timer so the requests run on the device thread. */
static int add_balloon(struct vm *vm, const struct vm_config *cfg, vt_err *err)
{
	struct virtio_device *b;
	if (virtio_balloon_create(&b, &vm->mem, cfg->balloon_size, err) < 0)
		return -1;
	if (cfg->balloon_stats_s && virtio_balloon_enable_stats(b, cfg->balloon_stats_s, err) < 0) {
		virtio_balloon_destroy(b);
		return -1;
	}
	if (add_virtio(vm, b, virtio_balloon_destroy, 0, err) < 0)
		return -1;
	vm->pci.balloon = b;
	if (virtio_balloon_stats_fd(b) < 0)
		return 0;
	return watch_own(vm, virtio_balloon_stats_fd(b), virtio_balloon_stats_tick, b, err);
}

int vm_pci_setup(struct vm *vm, const struct vm_config *cfg, vt_err *err)
{
	struct vm_pci *p = &vm->pci;
	if (!vm_config_wants_pci(cfg))
		return 0;
	p->enabled = true;
	p->ejected_fd = -1;
	pci_bus_init(&p->bus, LAYOUT_PCI_MMIO, LAYOUT_PCI_MMIO_SIZE, LAYOUT_PCI_ECAM);
	pci_bus_set_io_window(&p->bus, PORT_PCI_IO_BARS, PORT_PCI_IO_BARS_SIZE);
	msi_routes_init(&p->routes, vm->vm_fd);
	if (evloop_init(&p->loop, err) < 0 || register_bus(vm, err) < 0)
		return -1;
	/* Devices plugged while the VM ran keep their slots, and removed ones' slots stay free: the others
	 * fill the remaining slots in order, as they did when the VM was first built. */
	p->bus.reserved = cfg->pci_reserved;
	for (unsigned i = 0; i < cfg->ndisks; i++)
		if (cfg->disk[i].pci_slot)
			p->bus.reserved |= 1u << cfg->disk[i].pci_slot;
	for (unsigned i = 0; i < cfg->nnets; i++)
		if (cfg->net_slot[i])
			p->bus.reserved |= 1u << cfg->net_slot[i];
	struct virtio_device *rng;
	if (cfg->rng && (virtio_rng_create(&rng, err) < 0 || add_virtio(vm, rng, virtio_rng_destroy, 0, err) < 0))
		return -1;
	for (unsigned i = 0; i < cfg->nnets; i++)
		if (!cfg->net_slot[i] && vm_pci_add_net(vm, cfg->net[i], i, 0, err) < 0)
			return -1;
	struct virtio_device *con;
	if (cfg->virtio_console) {
		if (virtio_console_create(&con, cfg->console_out_fd, err) < 0 ||
		    add_virtio(vm, con, virtio_console_destroy, 0, err) < 0)
			return -1;
		p->console = con;
	}
	if (cfg->balloon && add_balloon(vm, cfg, err) < 0)
		return -1;
	for (unsigned i = 0; i < cfg->ndisks; i++)
		if (!cfg->disk[i].pci_slot && vm_pci_add_disk(vm, &cfg->disk[i], cfg->incoming, err) < 0)
			return vt_err_prefix(err, "--disk");
	if (cfg->vsock_cid && add_vsock(vm, cfg->vsock_cid, cfg->vsock_path, err) < 0)
		return -1;
	for (unsigned i = 0; i < cfg->nfs; i++)
		if (add_fs(vm, &cfg->fs[i], err) < 0)
			return -1;
	struct virtio_device *cd;
	if (cfg->cdrom) {
		if (virtio_scsi_cd_create(cfg->cdrom_path, &cd, err) < 0)
			return vt_err_prefix(err, "--cdrom");
		if (add_virtio(vm, cd, virtio_scsi_cd_destroy, 0, err) < 0)
			return -1;
		p->cdrom = cd;
	}
	/* last, at their slots (a restore matches the state's devices to them by slot) */
	for (unsigned i = 0; i < cfg->ndisks; i++)
		if (cfg->disk[i].pci_slot && vm_pci_add_disk(vm, &cfg->disk[i], cfg->incoming, err) < 0)
			return vt_err_prefix(err, "--disk");
	for (unsigned i = 0; i < cfg->nnets; i++)
		if (cfg->net_slot[i] && vm_pci_add_net(vm, cfg->net[i], i, cfg->net_slot[i], err) < 0)
			return -1;
	return 0;
}

void vm_pci_describe(const struct vm *vm, struct acpi_config *acpi)
{
	if (!vm->pci.enabled)
		return;
	acpi->ecam_base = LAYOUT_PCI_ECAM;
	acpi->pci_bus_start = 0;
	/* Only bus 0 exists. Describing buses 0-255 made Linux probe every one of them through conf1: measured
	 * in the nested bed, 16,953 conf1 exits per boot against 635 with bus 0 only (~1 s of L2 boot). */
	acpi->pci_bus_end = 0;
	acpi->mmio32_base = LAYOUT_PCI_MMIO;
	acpi->mmio32_size = LAYOUT_PCI_MMIO_SIZE;
	acpi->pci_io_base = PORT_PCI_IO_BARS;
	acpi->pci_io_size = PORT_PCI_IO_BARS_SIZE;
	acpi->pci_hotplug_port = PORT_PCI_HOTPLUG;
	acpi->pci_hotplug_gsi = GSI_PCI_HOTPLUG;
}

void vm_pci_free_device(struct vm_virtio *v)
{
	virtio_pci_destroy(v->t);
	if (v->vectors)
		msi_vectors_destroy(v->vectors);
	free(v->vectors);
	if (v->dev)
		v->destroy(v->dev);
	*v = (struct vm_virtio){ .own_fd = -1 };
}

int vm_pci_start(struct vm *vm, vt_err *err)
{
	return vm->pci.enabled ? evloop_start(&vm->pci.loop, err) : 0;
}

/* After the vCPUs have stopped: the device thread first, then what it used. */
void vm_pci_destroy(struct vm *vm)
{
	struct vm_pci *p = &vm->pci;
	if (!p->enabled)
		return;
	evloop_destroy(&p->loop);
	for (unsigned i = 0; i < p->n; i++)
		vm_pci_free_device(&p->virtio[i]);
	msi_routes_destroy(&p->routes);
	pci_hotplug_destroy(&p->hotplug);
	if (p->ejected_fd >= 0)
		close(p->ejected_fd);
	p->ejected_fd = -1;
	pci_bus_destroy(&p->bus);
	p->console = p->balloon = p->vsock = p->cdrom = NULL;
	p->enabled = false;
}

void vm_pci_print_stats(const struct vm *vm, FILE *f)
{
	for (unsigned i = 0; i < vm->pci.n; i++)
		if (vm->pci.virtio[i].t) {
			virtio_pci_print_stats(vm->pci.virtio[i].t, f);
			if (vm->pci.virtio[i].dev->id == VIRTIO_ID_NET)
				virtio_net_print_stats(vm->pci.virtio[i].dev, f);
		}
	if (vm->pci.balloon)
		virtio_balloon_print_stats(vm->pci.balloon, f);
	if (vm->pci.vsock)
		virtio_vsock_print_stats(vm->pci.vsock, f);
}

/* ---- Snapshot ----------------------------------------------------------------------------------------- */

#define PCI_LIST_VERSION 1

/* Section "pci": which virtio device is where, so that a restore into other devices says what differs. */
struct pci_list {
	uint32_t n, pad;
	uint16_t id[VM_PCI_MAX_VIRTIO];
};

int vm_pci_snapshot_supported(const struct vm *vm, vt_err *err)
{
	for (unsigned i = 0; i < vm->pci.n; i++)
		if (vm->pci.virtio[i].dev->snapshot_refusal)
			return vt_fail(err, "%s", vm->pci.virtio[i].dev->snapshot_refusal);
	return 0;
}

static void lock_all(struct vm_pci *p)
{
	for (unsigned i = 0; i < p->n; i++)
		virtio_pci_lock(p->virtio[i].t);
}

void vm_pci_thaw(struct vm *vm)
{
	struct vm_pci *p = &vm->pci;
	for (unsigned i = p->n; i-- > 0;)
		virtio_pci_unlock(p->virtio[i].t);
}

static bool all_quiesced(struct vm_pci *p)
{
	for (unsigned i = 0; i < p->n; i++)
		if (!virtio_pci_quiesced(p->virtio[i].t))
			return false;
	return true;
}

int vm_pci_freeze(struct vm *vm, vt_err *err)
{
	struct vm_pci *p = &vm->pci;
	for (unsigned waited = 0;; waited++) {
		lock_all(p);
		if (all_quiesced(p))
			return 0;
		vm_pci_thaw(vm);
		if (waited == VM_PCI_QUIESCE_MS)
			return vt_fail(err, "a device's requests did not complete within %d s (a disk's storage stalls?)",
				       VM_PCI_QUIESCE_MS / 1000);
		struct timespec ms = { 0, 1000000 };
		nanosleep(&ms, NULL);
	}
}

int vm_pci_lock_disks(struct vm *vm, vt_err *err)
{
	for (unsigned i = 0; i < vm->pci.n; i++)
		if (vm->pci.virtio[i].dev->id == VIRTIO_ID_BLOCK && virtio_blk_lock(vm->pci.virtio[i].dev, err) < 0)
			return -1;
	return 0;
}

struct virtio_device *vm_pci_disk(struct vm *vm, unsigned k)
{
	for (unsigned i = 0; i < vm->pci.n; i++)
		if (vm->pci.virtio[i].dev->id == VIRTIO_ID_BLOCK && k-- == 0)
			return vm->pci.virtio[i].dev;
	return NULL;
}

void vm_pci_unlock_disks(struct vm *vm)
{
	for (unsigned i = 0; i < vm->pci.n; i++)
		if (vm->pci.virtio[i].dev->id == VIRTIO_ID_BLOCK)
			virtio_blk_unlock(vm->pci.virtio[i].dev);
}

void vm_pci_retire(struct vm *vm)
{
	for (unsigned i = 0; i < vm->pci.n; i++)
		virtio_pci_retire(vm->pci.virtio[i].t);
}

static void section_name(char *buf, size_t len, unsigned i)
{
	snprintf(buf, len, "pci%u", i);
}

/* Section "pci.slots": each device's PCI slot (devices plugged in while the VM ran are not in order). */
#define PCI_SLOTS_VERSION 1
struct pci_slots {
	uint8_t slot[VM_PCI_MAX_VIRTIO];
};

static void list_slots(struct vm_pci *p, struct pci_slots *out)
{
	memset(out, 0, sizeof(*out));
	for (unsigned i = 0; i < p->n; i++)
		out->slot[i] = (uint8_t)pci_bus_slot_of(&p->bus, &p->virtio[i].t->pci);
}

/* Section "pci.hotplug": the slots whose arrival the guest has not read yet (pci_hotplug.h). */
#define PCI_HOTPLUG_VERSION 1
struct pci_hotplug_section {
	uint32_t unread_arrivals;
	uint32_t reserved;
};

static uint32_t occupied_slots(struct vm_pci *p)
{
	uint32_t slots = 0;
	for (unsigned i = 0; i < p->n; i++)
		slots |= 1u << pci_bus_slot_of(&p->bus, &p->virtio[i].t->pci);
	return slots & ~1u;
}

/* Optional: a snapshot written before the section existed announces nothing. */
static void load_hotplug_news(struct vm_pci *p, const struct state_reader *r)
{
	vt_err ignored;
	struct pci_hotplug_section h;
	if (state_find(r, "pci.hotplug", PCI_HOTPLUG_VERSION, &ignored) &&
	    state_get(r, "pci.hotplug", PCI_HOTPLUG_VERSION, &h, sizeof(h), &ignored) == 0)
		pci_hotplug_restore_arrivals(&p->hotplug, h.unread_arrivals & occupied_slots(p));
}

int vm_pci_state_save(struct vm *vm, struct state_writer *w, vt_err *err)
{
	struct vm_pci *p = &vm->pci;
	struct pci_list list = { .n = p->n };
	if (p->enabled) {
		struct pci_hotplug_section h = { .unread_arrivals = pci_hotplug_unread_arrivals(&p->hotplug) };
		state_put(w, "pci.hotplug", PCI_HOTPLUG_VERSION, &h, sizeof(h));
	}
	for (unsigned i = 0; i < p->n; i++)
		list.id[i] = p->virtio[i].dev->id;
	state_put(w, "pci", PCI_LIST_VERSION, &list, sizeof(list));
	struct pci_slots slots;
	list_slots(p, &slots);
	state_put(w, "pci.slots", PCI_SLOTS_VERSION, &slots, sizeof(slots));
	for (unsigned i = 0; i < p->n; i++) {
		char name[STATE_NAME_MAX + 1];
		section_name(name, sizeof(name), i);
		if (virtio_pci_state_save(p->virtio[i].t, w, name, err) < 0)
			return -1;
	}
	return 0;
}

static const char *id_name(uint16_t id)
{
	switch (id) {
	case VIRTIO_ID_NET: return "virtio-net";
	case VIRTIO_ID_BLOCK: return "virtio-blk";
	case VIRTIO_ID_CONSOLE: return "virtio-console";
	case VIRTIO_ID_RNG: return "virtio-rng";
	case VIRTIO_ID_BALLOON: return "virtio-balloon";
	case VIRTIO_ID_VSOCK: return "virtio-vsock";
	case VIRTIO_ID_FS: return "virtio-fs";
	case VIRTIO_ID_SCSI: return "virtio-scsi (the CD drive)";
	}
	return "an unknown device";
}

/* The devices, in order, must be the snapshot's: same kinds in the same places. */
static int check_list(const struct vm_pci *p, const struct pci_list *list, vt_err *err)
{
	if (list->n > VM_PCI_MAX_VIRTIO)
		return vt_fail(err, "snapshot section pci: %u devices", list->n);
	for (unsigned i = 0; i < MAX(list->n, p->n); i++) {
		if (i >= list->n)
			return vt_fail(err, "this VM has more devices than the snapshot's: %s is not in it (the snapshot's "
					    "VM had %u virtio devices)", p->virtio[i].dev->name, list->n);
		if (i >= p->n)
			return vt_fail(err, "the snapshot's VM had %s as its virtio device %u, which this VM lacks (give "
					    "the options the snapshot's VM was started with: --disk, --net, --vsock, --rng, ...)",
				       id_name(list->id[i]), i + 1);
		if (list->id[i] != p->virtio[i].dev->id)
			return vt_fail(err, "the snapshot's VM had %s as its virtio device %u, this VM has %s (the same "
					    "device options must be given in the same order)", id_name(list->id[i]), i + 1,
				       p->virtio[i].dev->name);
	}
	return 0;
}

/* The devices must sit in the snapshot's slots (a snapshot written before slots were recorded had them in order). */
static int check_slots(struct vm_pci *p, const struct state_reader *r, vt_err *err)
{
	vt_err ignored;
	struct pci_slots want, have;
	if (!state_find(r, "pci.slots", PCI_SLOTS_VERSION, &ignored))
		return 0;
	if (state_get(r, "pci.slots", PCI_SLOTS_VERSION, &want, sizeof(want), err) < 0)
		return -1;
	list_slots(p, &have);
	for (unsigned i = 0; i < p->n; i++)
		if (want.slot[i] != have.slot[i])
			return vt_fail(err, "the snapshot's VM had its %s in PCI slot %u, this VM has it in slot %u (a device "
					    "was plugged in or removed while it ran: restore with the snapshot's own device options)",
				       p->virtio[i].dev->name, want.slot[i], have.slot[i]);
	return 0;
}

/* Devices plugged in while the VM ran are listed in the order they came (disks and network interfaces
 * mixed), this VM built them kind by kind: put the entries in the snapshot's order, found by slot. */
static void order_by_slots(struct vm_pci *p, const struct state_reader *r)
{
	vt_err ignored;
	struct pci_slots want;
	if (!state_find(r, "pci.slots", PCI_SLOTS_VERSION, &ignored) ||
	    state_get(r, "pci.slots", PCI_SLOTS_VERSION, &want, sizeof(want), &ignored) < 0)
		return;
	for (unsigned i = 0; i < p->n; i++)
		for (unsigned j = i + 1; j < p->n; j++)
			if (want.slot[i] && pci_bus_slot_of(&p->bus, &p->virtio[j].t->pci) == want.slot[i]) {
				struct vm_virtio tmp = p->virtio[i];
				p->virtio[i] = p->virtio[j];
				p->virtio[j] = tmp;
				break;
			}
}

int vm_pci_state_load(struct vm *vm, const struct state_reader *r, vt_err *err)
{
	struct vm_pci *p = &vm->pci;
	struct pci_list list;
	order_by_slots(p, r);
	if (state_get(r, "pci", PCI_LIST_VERSION, &list, sizeof(list), err) < 0 || check_list(p, &list, err) < 0 ||
	    check_slots(p, r, err) < 0)
		return -1;
	for (unsigned i = 0; i < p->n; i++) {
		char name[STATE_NAME_MAX + 1];
		section_name(name, sizeof(name), i);
		if (virtio_pci_state_load(p->virtio[i].t, r, name, err) < 0)
			return vt_err_prefix(err, "%s", p->virtio[i].dev->name);
	}
	if (p->enabled)
		load_hotplug_news(p, r);
	return 0;
}

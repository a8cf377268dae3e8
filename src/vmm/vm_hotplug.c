/* Devices plugged into and unplugged from a running VM (contract in vm_pci.h): ACPI PCI hot-plug on bus 0.
 *
 * Plugging: the device is built and plugged into a free slot exactly as at start (its BAR, MSI-X vectors and
 * kick eventfds with it), then the slot's bit goes into PCIU and the GED's interrupt makes the guest's PSCN
 * notify the slot: Linux's acpiphp scans it, gives the BAR an address and binds the driver.
 *
 * Unplugging is the guest's to agree to: the slot's bit goes into PCID, the guest's driver lets go of the
 * device and its _EJ0 writes PCEJ; only then (vm_pci_remove_ejected, on the main thread) does the device
 * leave the bus, its kicks and fds stop being watched, it is reset (requests in flight complete) and freed. */
#include "vmm/vm_pci.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "net/net_opts.h"
#include "vmm/layout.h"
#include "vmm/vm.h"

static void raise_hotplug_gsi(struct vm *vm)
{
	/* an edge: the GED runs _E06 once per rising edge */
	struct kvm_irq_level irq = { .irq = GSI_PCI_HOTPLUG, .level = 1 };
	ioctl(vm->vm_fd, KVM_IRQ_LINE, &irq);
	irq.level = 0;
	ioctl(vm->vm_fd, KVM_IRQ_LINE, &irq);
}

static unsigned lowest_free_slot(struct pci_bus *bus)
{
	for (unsigned s = 1; s < PCI_MAX_SLOTS; s++)
		if (!bus->slot[s])
			return s;
	return 0;
}

/* Take entry i out of the running VM: off the bus (no vCPU in it any more), its kicks and fds unwatched (no
 * callback running), reset (requests in flight complete), freed; later entries move down. */
static void remove_entry(struct vm *vm, unsigned i)
{
	struct vm_pci *p = &vm->pci;
	struct vm_virtio *v = &p->virtio[i];
	if (v->t) {
		pci_bus_unplug(&p->bus, pci_bus_slot_of(&p->bus, &v->t->pci));
		virtio_pci_unplugged(v->t);
	}
	if (v->own_fd >= 0)
		evloop_unwatch(&p->loop, v->own_fd);
	if (p->console == v->dev)
		p->console = NULL;
	if (p->balloon == v->dev)
		p->balloon = NULL;
	if (p->vsock == v->dev)
		p->vsock = NULL;
	vm_pci_free_device(v);
	memmove(&p->virtio[i], &p->virtio[i + 1], (p->n - i - 1) * sizeof(p->virtio[0]));
	p->n--;
}

/* What is being plugged in: a disk or a network interface. */
struct plug {
	const struct vm_disk_config *disk;
	const char *net_spec;
};

static int plug_device(struct vm *vm, const struct plug *what, unsigned slot, vt_err *err)
{
	if (what->disk) {
		struct vm_disk_config want = *what->disk;
		want.pci_slot = slot;
		return vm_pci_add_disk(vm, &want, false, err);
	}
	return vm_pci_add_net(vm, what->net_spec, 0, slot, err);   /* the spec names its MAC */
}

/* Build the device into the lowest free slot and tell the guest; *slot_out gets the slot. */
static int hotplug(struct vm *vm, const struct plug *what, unsigned *slot_out, vt_err *err)
{
	struct vm_pci *p = &vm->pci;
	if (!p->enabled)
		return vt_fail(err, "the VM has no PCI bus to plug a device into (start it with a PCI device: --disk, "
				    "--net, --rng, ...)");
	if (p->n == VM_PCI_MAX_VIRTIO)
		return vt_fail(err, "the VM has %d virtio devices already, the most it can have", VM_PCI_MAX_VIRTIO);
	pthread_mutex_lock(&p->bus.lock);
	unsigned slot = lowest_free_slot(&p->bus);
	pthread_mutex_unlock(&p->bus.lock);
	if (!slot)
		return vt_fail(err, "every PCI slot of the VM is taken");
	unsigned before = p->n;
	if (plug_device(vm, what, slot, err) < 0) {
		if (p->n > before) /* the device was half added: undo it */
			remove_entry(vm, p->n - 1);
		return -1;
	}
	*slot_out = slot;
	pci_hotplug_announce(&p->hotplug, slot);
	raise_hotplug_gsi(vm);
	return 0;
}

int vm_pci_hotplug_disk(struct vm *vm, struct vm_disk_config *c, vt_err *err)
{
	struct plug what = { .disk = c };
	return hotplug(vm, &what, &c->pci_slot, err);
}

int vm_pci_hotplug_net(struct vm *vm, const char *spec, unsigned *slot, vt_err *err)
{
	struct net_opts o;
	if (net_opts_parse(spec, &o, err) < 0)
		return -1;
	/* libslirp is dlopen()ed, its host forwards bound and its thread's seccomp filter compiled before the
	 * sandbox closes: the confined main thread can do none of that */
	if (o.kind == NET_USER)
		return vt_fail(err, "only a tap interface can be plugged into a running VM (user-mode networking, "
				    "libslirp, is set up when the VM starts)");
	struct plug what = { .net_spec = spec };
	return hotplug(vm, &what, slot, err);
}

static unsigned slot_of(struct vm *vm, struct virtio_device *d)
{
	return d ? pci_bus_slot_of(&vm->pci.bus, &d->transport->pci) : 0;
}

unsigned vm_pci_disk_slot(struct vm *vm, unsigned k)
{
	return slot_of(vm, vm_pci_disk(vm, k));
}

unsigned vm_pci_net_slot(struct vm *vm, unsigned k)
{
	for (unsigned i = 0; i < vm->pci.n; i++)
		if (vm->pci.virtio[i].dev->id == VIRTIO_ID_NET && k-- == 0)
			return slot_of(vm, vm->pci.virtio[i].dev);
	return 0;
}

void vm_pci_ask_eject(struct vm *vm, unsigned slot)
{
	pci_hotplug_ask_eject(&vm->pci.hotplug, slot);
	raise_hotplug_gsi(vm);
}

void vm_pci_cancel_eject(struct vm *vm, unsigned slot)
{
	pci_hotplug_cancel_eject(&vm->pci.hotplug, slot);
}

int vm_pci_ejected_fd(const struct vm *vm)
{
	return vm->pci.enabled ? vm->pci.ejected_fd : -1;
}

uint32_t vm_pci_remove_ejected(struct vm *vm)
{
	struct vm_pci *p = &vm->pci;
	uint64_t count;
	if (!p->enabled || read(p->ejected_fd, &count, sizeof(count)) < 0) {
		/* EAGAIN: nothing new (the slots are taken below anyway) */
	}
	uint32_t slots = p->enabled ? pci_hotplug_take_ejected(&p->hotplug) : 0;
	for (unsigned i = p->n; i-- > 0;) {
		unsigned s = pci_bus_slot_of(&p->bus, &p->virtio[i].t->pci);
		if (s && (slots & (1u << s)))
			remove_entry(vm, i);
	}
	return slots;
}

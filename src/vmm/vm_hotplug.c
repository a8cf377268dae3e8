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

int vm_pci_hotplug_disk(struct vm *vm, struct vm_disk_config *c, vt_err *err)
{
	struct vm_pci *p = &vm->pci;
	if (!p->enabled)
		return vt_fail(err, "the VM has no PCI bus to plug a disk into (start it with a PCI device: --disk, --net, "
				    "--rng, ...)");
	if (p->n == VM_PCI_MAX_VIRTIO)
		return vt_fail(err, "the VM has %d virtio devices already, the most it can have", VM_PCI_MAX_VIRTIO);
	pthread_mutex_lock(&p->bus.lock);
	unsigned slot = lowest_free_slot(&p->bus);
	pthread_mutex_unlock(&p->bus.lock);
	if (!slot)
		return vt_fail(err, "every PCI slot of the VM is taken");
	struct vm_disk_config want = *c;
	want.pci_slot = slot;
	unsigned before = p->n;
	if (vm_pci_add_disk(vm, &want, false, err) < 0) {
		if (p->n > before) /* the device was half added: undo it */
			remove_entry(vm, p->n - 1);
		return -1;
	}
	c->pci_slot = slot;
	pci_hotplug_announce(&p->hotplug, slot);
	raise_hotplug_gsi(vm);
	return 0;
}

unsigned vm_pci_disk_slot(struct vm *vm, unsigned k)
{
	struct virtio_device *d = vm_pci_disk(vm, k);
	if (!d)
		return 0;
	struct virtio_transport *t = d->transport;
	return pci_bus_slot_of(&vm->pci.bus, &t->pci);
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

/* GET /metrics: the running VM's counters (contract in vm_api.h). Everything is read from the VMM's own
 * counters, which the devices and vCPUs keep anyway; nothing here runs on the data path. */
#include <json-c/json.h>
#include <string.h>

#include "api/vm_api.h"
#include "devices/virtio/pci.h"
#include "lib/util.h"
#include "vmm/vm.h"
#include "vmm/vm_pci.h"

static json_object *vcpu_exits(const struct vm *vm)
{
	json_object *o = json_object_new_object();
	uint64_t all = 0;
	for (unsigned r = 0; r < VCPU_EXIT_REASONS; r++) {
		uint64_t n = 0;
		for (unsigned i = 0; i < vm->ncpus; i++)
			n += __atomic_load_n(&vm->vcpus[i].exits[r], __ATOMIC_RELAXED);
		if (n)
			json_object_object_add(o, kvm_exit_name(r), json_object_new_int64((int64_t)n));
		all += n;
	}
	json_object_object_add(o, "total", json_object_new_int64((int64_t)all));
	return o;
}

/* The ID a user knows a disk or interface by (GET /vm/config's), else the device's kind and slot. */
static void device_id(const struct vm_api *a, struct virtio_device *d, unsigned nth_of_kind, unsigned slot, char *out,
		      size_t len)
{
	char pos[16];
	const char *id = NULL;
	if (d->id == VIRTIO_ID_BLOCK && nth_of_kind < a->cfg->ndisks)
		id = vm_api_drive_id(a->cfg, nth_of_kind, pos);
	else if (d->id == VIRTIO_ID_NET && nth_of_kind < a->cfg->nnets)
		id = vm_api_net_id(a->cfg, nth_of_kind, pos);
	if (id)
		snprintf(out, len, "%s", id);
	else
		snprintf(out, len, "%s@%u", d->name, slot);
}

static json_object *device_metrics(const struct vm_api *a, const struct vm_virtio *v, unsigned nth_of_kind)
{
	struct vm_pci *p = &a->vm->pci;
	unsigned slot = pci_bus_slot_of(&p->bus, &v->t->pci);
	char id[64];
	device_id(a, v->dev, nth_of_kind, slot, id, sizeof(id));
	json_object *o = json_object_new_object(), *counters = json_object_new_object(), *queues = json_object_new_array();
	json_object_object_add(o, "id", json_object_new_string(id));
	json_object_object_add(o, "kind", json_object_new_string(v->dev->name));
	json_object_object_add(o, "pci_slot", json_object_new_int((int)slot));
	struct virtio_counter c[VIRTIO_MAX_COUNTERS];
	unsigned n = virtio_pci_counters(v->t, c);
	for (unsigned i = 0; i < n; i++)
		json_object_object_add(counters, c[i].name, json_object_new_int64((int64_t)c[i].value));
	json_object_object_add(o, "counters", counters);
	for (unsigned q = 0; q < v->dev->nqueues; q++) {
		struct virtio_queue_counters qc;
		virtio_pci_queue_counters(v->t, q, &qc);
		json_object *e = json_object_new_object();
		json_object_object_add(e, "kicks", json_object_new_int64((int64_t)qc.kicks));
		json_object_object_add(e, "trapped_kicks", json_object_new_int64((int64_t)qc.trapped_kicks));
		json_object_object_add(e, "interrupts", json_object_new_int64((int64_t)qc.interrupts));
		json_object_array_add(queues, e);
	}
	json_object_object_add(o, "queues", queues);
	return o;
}

json_object *vm_api_metrics_json(const struct vm_api *a)
{
	const struct vm *vm = a->vm;
	json_object *o = json_object_new_object(), *devices = json_object_new_array();
	json_object_object_add(o, "uptime_ms", json_object_new_int64((int64_t)((now_ns() - vm->start_ns) / 1000000)));
	json_object_object_add(o, "vcpu_exits", vcpu_exits(vm));
	unsigned disks = 0, nets = 0;
	for (unsigned i = 0; vm->pci.enabled && i < vm->pci.n; i++) {
		const struct vm_virtio *v = &vm->pci.virtio[i];
		if (!v->t)
			continue;
		unsigned nth = v->dev->id == VIRTIO_ID_BLOCK ? disks++ : v->dev->id == VIRTIO_ID_NET ? nets++ : 0;
		json_object_array_add(devices, device_metrics(a, v, nth));
	}
	json_object_object_add(o, "devices", devices);
	return o;
}

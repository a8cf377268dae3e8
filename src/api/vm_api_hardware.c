/* The VM API's routes that change a running VM's hardware (contract in vm_api.h). Firecracker's shapes:
 *
 *   GET   /balloon             {"amount_mib", "deflate_on_oom", "stats_polling_interval_s"}
 *   PATCH /balloon             {"amount_mib": N}               the guest inflates or deflates towards N MiB
 *   GET   /balloon/statistics  {"target_pages", "actual_pages", "target_mib", "actual_mib", "free_memory", ...}
 *   PATCH /balloon/statistics  {"stats_polling_interval_s": S} (S > 0; only when statistics were on at start)
 *   PATCH /drives/ID           {"drive_id": ID, "path_on_host": P}  a new image under a running disk
 *   PUT   /drives/ID           {"drive_id": ID, "path_on_host": P, "is_read_only": B}  (virtus, once running)
 *                              a new disk plugged into the running VM (ACPI PCI hot-plug)
 *   DELETE /drives/ID          [{"timeout_s": S}]  (virtus) the guest is asked to let go of the disk: 202, and
 *                              the disk goes when it has (GET /drives/ID then answers 404), or stays after S s
 *   GET   /drives/ID           {"drive_id", "path_on_host", "is_read_only", "state": "attached"|"ejecting",
 *                              "eject_error"?}
 *   PUT   /network-interfaces/ID  {"iface_id": ID, "host_dev_name": TAP | "virtus_net": SPEC, "guest_mac"?: M}
 *                              (virtus, once running) a new virtio-net interface plugged into the running VM
 *   DELETE /network-interfaces/ID  [{"timeout_s": S}]  (virtus) as DELETE /drives/ID
 *   GET   /network-interfaces/ID  {"iface_id", "virtus_net", "state", "eject_error"?}
 *   GET   /cdrom               {"path_on_host": P|null, "locked": B, "tray_open": B}   (virtus: the CD drive)
 *   PUT   /cdrom/medium        {"path_on_host": P, "force"?: B}   a disc in the drive (another one swapped out)
 *   DELETE /cdrom/medium       [{"force": B}]                     the drive emptied
 *                              (both 409 while the guest has locked the tray, unless force)
 *
 * A change is also written into the VM's configuration, so a snapshot or migration carries it (the
 * device state carries the target too; the configuration is what GET /vm/config shows). */
#include "api/vm_api.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "devices/virtio/balloon.h"
#include "devices/virtio/scsi.h"
#include "net/net_opts.h"
#include "lib/util.h"
#include "vmm/vm_pci.h"

#define MiB_SHIFT 20
#define MAX_STATS_INTERVAL_S 3600
#define DRIVE_ID_MAX 20          /* it is the disk's serial: virtio-blk's 20 bytes */
#define EJECT_TIMEOUT_S 10       /* Linux's acpiphp lets go of a disk within a second */
#define EJECT_TIMEOUT_MAX_S 600

/* The balloon, or NULL after answering 400 (the VM was started without one). */
static struct virtio_device *balloon_of(struct vm_api *a, struct api_reply *r)
{
	if (!a->vm->pci.balloon)
		vm_api_fault(r, 400, "the VM has no balloon device (start it with --balloon SIZE, 0 for none yet, or PUT "
				     "/balloon before InstanceStart)");
	return a->vm->pci.balloon;
}

static void get_balloon(struct vm_api *a, struct api_reply *r)
{
	struct virtio_device *b = balloon_of(a, r);
	if (!b)
		return;
	json_object *o = json_object_new_object();
	json_object_object_add(o, "amount_mib", json_object_new_int64((int64_t)(virtio_balloon_target(b) >> MiB_SHIFT)));
	json_object_object_add(o, "deflate_on_oom", json_object_new_boolean(false));
	json_object_object_add(o, "stats_polling_interval_s", json_object_new_int((int)virtio_balloon_stats_interval(b)));
	vm_api_reply_json(r, 200, o);
}

/* The one member of a PATCH body for the balloon, a whole number from 0 to max; false once answered (no
 * balloon, a body that is not that). */
static bool balloon_patch_value(struct vm_api *a, const struct api_request *req, struct api_reply *r, const char *key,
				int64_t max, struct virtio_device **b, int64_t *value)
{
	const char *const known[] = { key, NULL };
	json_object *o = (*b = balloon_of(a, r)) ? vm_api_parse_body(req, r) : NULL;
	bool ok = o && vm_api_int_field(o, key, true, 0, max, value, r) && vm_api_only_fields(o, known, r);
	json_object_put(o);
	return ok;
}

static void patch_balloon(struct vm_api *a, const struct api_request *req, struct api_reply *r)
{
	struct virtio_device *b;
	int64_t mib;
	vt_err err;
	if (!balloon_patch_value(a, req, r, "amount_mib", 1 << 22, &b, &mib))
		return;
	if ((uint64_t)mib << MiB_SHIFT >= a->cfg->mem_size) {
		vm_api_fault(r, 400, "amount_mib: %lld MiB is not smaller than the VM's memory (%llu MiB)", (long long)mib,
			     (unsigned long long)(a->cfg->mem_size >> MiB_SHIFT));
	} else if (virtio_balloon_set_target(b, (uint64_t)mib << MiB_SHIFT, &err) < 0) {
		vm_api_fault(r, 400, "%s", err.msg);
	} else {
		a->cfg->balloon_size = (uint64_t)mib << MiB_SHIFT;
		r->status = 204;
	}
}

/* Firecracker's BalloonStats member names of the guest's statistics (tags 0-9 of virtio 1.x 5.5.6.3.1). */
static const char *const stat_members[] = {
	"swap_in", "swap_out", "major_faults", "minor_faults", "free_memory", "total_memory", "available_memory",
	"disk_caches", "hugetlb_allocations", "hugetlb_failures",
};

static void get_balloon_statistics(struct vm_api *a, struct api_reply *r)
{
	struct virtio_device *b = balloon_of(a, r);
	if (!b)
		return;
	uint64_t target = virtio_balloon_target(b), actual = (uint64_t)virtio_balloon_actual(b) << VBALLOON_PAGE_SHIFT;
	json_object *o = json_object_new_object();
	json_object_object_add(o, "target_pages", json_object_new_int64((int64_t)(target >> VBALLOON_PAGE_SHIFT)));
	json_object_object_add(o, "actual_pages", json_object_new_int64((int64_t)(actual >> VBALLOON_PAGE_SHIFT)));
	json_object_object_add(o, "target_mib", json_object_new_int64((int64_t)(target >> MiB_SHIFT)));
	json_object_object_add(o, "actual_mib", json_object_new_int64((int64_t)(actual >> MiB_SHIFT)));
	struct vballoon_stats s;
	virtio_balloon_stats(b, &s);
	for (unsigned i = 0; i < s.n; i++)
		if (s.stat[i].tag < ARRAY_SIZE(stat_members))
			json_object_object_add(o, stat_members[s.stat[i].tag], json_object_new_int64((int64_t)s.stat[i].val));
	vm_api_reply_json(r, 200, o);
}

static void patch_balloon_statistics(struct vm_api *a, const struct api_request *req, struct api_reply *r)
{
	struct virtio_device *b;
	int64_t secs;
	vt_err err;
	if (!balloon_patch_value(a, req, r, "stats_polling_interval_s", MAX_STATS_INTERVAL_S, &b, &secs))
		return;
	if (virtio_balloon_set_stats_interval(b, (unsigned)secs, &err) < 0) {
		vm_api_fault(r, 400, "%s", err.msg);
	} else {
		a->cfg->balloon_stats_s = (unsigned)secs;
		r->status = 204;
	}
}

/* Firecracker's PATCH /drives/{drive_id}: the disk keeps its ID, serial and read-only mode; its image and
 * capacity are the new file's. */
static void patch_drive(struct vm_api *a, const char *id, const struct api_request *req, struct api_reply *r)
{
	static const char *const known[] = { "drive_id", "path_on_host", NULL };
	json_object *o = vm_api_parse_body(req, r);
	if (!o)
		return;
	const char *body_id = vm_api_string_field(o, "drive_id", "the drive's ID", r), *path = NULL;
	int k = vm_api_find_drive(a->cfg, id);
	char *copy = NULL;
	vt_err err;
	if (!body_id || !(path = vm_api_string_field(o, "path_on_host", "the new image's path", r)) ||
	    !vm_api_only_fields(o, known, r)) {
		/* answered */
	} else if (strcmp(body_id, id)) {
		vm_api_fault(r, 400, "drive_id: '%s' is not the ID of the path (%s)", body_id, id);
	} else if (k < 0) {
		vm_api_fault(r, 400, "no drive '%s' (GET /vm/config lists the drives)", id);
	} else if (!*path) {
		vm_api_fault(r, 400, "path_on_host: empty");
	} else if (vm_api_migrating(a)) {
		vm_api_fault(r, 409, "a migration is running: its destination opens the disks it was told of");
	} else if (!(copy = strdup(path))) {
		vm_api_fault(r, 500, "out of memory");
	} else if (virtio_blk_change(vm_pci_disk(a->vm, (unsigned)k), path, BLK_FORMAT_AUTO, &err) < 0) {
		vm_api_fault(r, 400, "%s", err.msg);
	} else {
		struct vm_disk_config *c = &a->cfg->disk[k];
		free(a->disk_path[k]);
		a->disk_path[k] = copy, copy = NULL;
		c->path = a->disk_path[k];
		c->format = BLK_FORMAT_AUTO;
		c->layer = NULL;
		r->status = 204;
	}
	free(copy);
	json_object_put(o);
}

/* ---- Disks plugged in and removed ------------------------------------------------------------------------- */

static bool valid_drive_id(const char *id, struct api_reply *r)
{
	if (!vm_api_id_chars("drive_id", id, r))
		return false;
	if (!*id || strlen(id) > DRIVE_ID_MAX) {
		vm_api_fault(r, 400, "drive_id: 1 to %d letters, digits, '_' and '-' (it is the disk's serial)", DRIVE_ID_MAX);
		return false;
	}
	return true;
}

static bool can_change_disks(struct vm_api *a, struct api_reply *r)
{
	if (vm_api_migrating(a)) {
		vm_api_fault(r, 409, "a migration is running: its destination builds the disks it was told of");
		return false;
	}
	return true;
}

/* Record disk k's strings (owned here) and bump the count. */
static void append_disk(struct vm_api *a, const struct vm_disk_config *c, char *path, char *serial)
{
	unsigned k = a->cfg->ndisks++;
	a->disk_path[k] = path, a->disk_serial[k] = serial;
	a->cfg->disk[k] = *c;
	a->cfg->disk[k].path = path;
	a->cfg->disk[k].serial = serial;
}

/* The drive of this VM whose image is the file at path, -1 if none (its lock would say "another process"). */
static int drive_with_image(const struct vm_config *c, const char *path)
{
	struct stat want, have;
	if (stat(path, &want) < 0)
		return -1;
	for (unsigned i = 0; i < c->ndisks; i++)
		if (stat(c->disk[i].path, &have) == 0 && have.st_dev == want.st_dev && have.st_ino == want.st_ino)
			return (int)i;
	return -1;
}

/* PUT /drives/ID once the VM runs: a new disk, plugged in. */
static void put_drive(struct vm_api *a, const char *id, const struct api_request *req, struct api_reply *r)
{
	static const char *const known[] = { "drive_id", "path_on_host", "is_read_only", "is_root_device", NULL };
	json_object *o = vm_api_parse_body(req, r), *v;
	if (!o)
		return;
	const char *body_id = vm_api_string_field(o, "drive_id", "the drive's ID", r), *path = NULL;
	struct vm_disk_config c = { .format = BLK_FORMAT_AUTO };
	char *path_copy = NULL, *serial_copy = NULL, pos[8];
	int k;
	vt_err err;
	if (!body_id || !(path = vm_api_string_field(o, "path_on_host", "the image's path", r)) ||
	    !vm_api_only_fields(o, known, r) || !valid_drive_id(id, r) || !can_change_disks(a, r)) {
		/* answered */
	} else if (strcmp(body_id, id)) {
		vm_api_fault(r, 400, "drive_id: '%s' is not the ID of the path (%s)", body_id, id);
	} else if (json_object_object_get_ex(o, "is_read_only", &v) && !json_object_is_type(v, json_type_boolean)) {
		vm_api_fault(r, 400, "is_read_only: expected true or false");
	} else if (json_object_object_get_ex(o, "is_root_device", &v) && json_object_get_boolean(v)) {
		vm_api_fault(r, 400, "is_root_device: a disk plugged into a running VM cannot be its root device");
	} else if (vm_api_find_drive(a->cfg, id) >= 0) {
		vm_api_fault(r, 400, "drive '%s' exists (PATCH /drives/%s gives it a new image)", id, id);
	} else if (!*path) {
		vm_api_fault(r, 400, "path_on_host: empty");
	} else if ((k = drive_with_image(a->cfg, path)) >= 0) {
		vm_api_fault(r, 400, "path_on_host: %s is the image of this VM's drive %s", path, vm_api_drive_id(a->cfg, (unsigned)k, pos));
	} else if (a->cfg->ndisks == VM_MAX_DISKS) {
		vm_api_fault(r, 400, "the VM has %d disks, the most it can have", VM_MAX_DISKS);
	} else if (!(path_copy = strdup(path)) || !(serial_copy = strdup(id))) {
		vm_api_fault(r, 500, "out of memory");
	} else {
		c.path = path_copy, c.serial = serial_copy;
		c.readonly = json_object_object_get_ex(o, "is_read_only", &v) && json_object_get_boolean(v);
		if (vm_pci_hotplug_disk(a->vm, &c, &err) < 0) {
			vm_api_fault(r, 400, "%s", err.msg);
		} else {
			append_disk(a, &c, path_copy, serial_copy);
			a->cfg->pci_reserved &= ~(1u << c.pci_slot); /* a removed disk's slot, taken again */
			path_copy = serial_copy = NULL;
			r->status = 204;
		}
	}
	free(path_copy);
	free(serial_copy);
	json_object_put(o);
}

/* The optional body of DELETE /drives/ID: {"timeout_s": S}; false once answered. */
static bool removal_timeout(const struct api_request *req, struct api_reply *r, unsigned *timeout_s)
{
	static const char *const known[] = { "timeout_s", NULL };
	int64_t secs = EJECT_TIMEOUT_S;
	*timeout_s = EJECT_TIMEOUT_S;
	if (!req->body_len)
		return true;
	json_object *o = vm_api_parse_body(req, r);
	bool ok = o && vm_api_int_field(o, "timeout_s", false, 1, EJECT_TIMEOUT_MAX_S, &secs, r) &&
		  vm_api_only_fields(o, known, r);
	json_object_put(o);
	*timeout_s = (unsigned)secs;
	return ok;
}

const char *vm_api_removal_kind(const struct vm_api *a)
{
	return a->removal.net ? "network interface" : "drive";
}

/* Ask the guest to let go of the device in slot (the drive or interface named id): 202, the control loop
 * sees it through (vm_api_hotplug_step). */
static void start_removal(struct vm_api *a, const char *id, bool net, unsigned slot, unsigned timeout_s,
			  struct api_reply *r)
{
	a->removal = (struct vm_api_removal){ .slot = slot, .net = net, .timeout_s = timeout_s,
					      .deadline_ns = now_ns() + timeout_s * 1000000000ULL };
	snprintf(a->removal.id, sizeof(a->removal.id), "%s", id);
	a->eject_error_id[0] = 0;
	vm_pci_ask_eject(a->vm, slot);
	json_object *o = json_object_new_object();
	json_object_object_add(o, net ? "iface_id" : "drive_id", json_object_new_string(a->removal.id));
	json_object_object_add(o, "state", json_object_new_string("ejecting"));
	json_object_object_add(o, "timeout_s", json_object_new_int((int)timeout_s));
	vm_api_reply_json(r, 202, o);
}

/* DELETE /drives/ID or /network-interfaces/ID (net): the removal begins. */
static void delete_device(struct vm_api *a, bool net, const char *id, const struct api_request *req,
			  struct api_reply *r)
{
	const char *kind = net ? "network interface" : "drive";
	int k = net ? vm_api_find_net(a->cfg, id) : vm_api_find_drive(a->cfg, id);
	unsigned timeout_s, slot;
	char pos[16];
	if (!removal_timeout(req, r, &timeout_s) || !can_change_disks(a, r))
		return;
	if (k < 0)
		vm_api_fault(r, 404, "no %s '%s' (GET /vm/config lists them)", kind, id);
	else if (a->removal.slot)
		vm_api_fault(r, 409, "%s '%s' is being removed: one removal at a time", vm_api_removal_kind(a), a->removal.id);
	else if (!(slot = net ? vm_pci_net_slot(a->vm, (unsigned)k) : vm_pci_disk_slot(a->vm, (unsigned)k)))
		vm_api_fault(r, 500, "%s '%s' has no PCI slot", kind, id);
	else
		start_removal(a, net ? vm_api_net_id(a->cfg, (unsigned)k, pos) : vm_api_drive_id(a->cfg, (unsigned)k, pos),
			      net, slot, timeout_s, r);
}

static void get_drive(struct vm_api *a, const char *id, struct api_reply *r)
{
	int k = vm_api_find_drive(a->cfg, id);
	if (k < 0) {
		vm_api_fault(r, 404, "no drive '%s'", id);
		return;
	}
	char pos[8];
	const struct vm_disk_config *c = &a->cfg->disk[k];
	const char *name = vm_api_drive_id(a->cfg, (unsigned)k, pos);
	json_object *o = json_object_new_object();
	json_object_object_add(o, "drive_id", json_object_new_string(name));
	json_object_object_add(o, "path_on_host", json_object_new_string(c->path));
	json_object_object_add(o, "is_read_only", json_object_new_boolean(c->readonly));
	bool ejecting = a->removal.slot && !a->removal.net && !strcmp(a->removal.id, name);
	json_object_object_add(o, "state", json_object_new_string(ejecting ? "ejecting" : "attached"));
	if (!ejecting && !a->eject_error_net && !strcmp(a->eject_error_id, name))
		json_object_object_add(o, "eject_error", json_object_new_string(a->eject_error));
	vm_api_reply_json(r, 200, o);
}

/* Disk k left the VM: out of the configuration, its slot kept free for the devices after it. */
static void forget_disk(struct vm_api *a, unsigned k, unsigned slot)
{
	struct vm_config *c = a->cfg;
	free(a->disk_path[k]);
	free(a->disk_serial[k]);
	for (unsigned i = k; i + 1 < c->ndisks; i++) {
		c->disk[i] = c->disk[i + 1];
		a->disk_path[i] = a->disk_path[i + 1];
		a->disk_serial[i] = a->disk_serial[i + 1];
	}
	c->ndisks--;
	c->disk[c->ndisks] = (struct vm_disk_config){ 0 };
	a->disk_path[c->ndisks] = a->disk_serial[c->ndisks] = NULL;
	c->pci_reserved |= 1u << slot;
}

/* ---- Network interfaces plugged in and removed ------------------------------------------------------------ */

#define IFACE_ID_MAX 15

/* Append ",mac=" and mac as text to spec. */
static bool append_mac(char *spec, size_t len, const uint8_t mac[6])
{
	size_t n = strlen(spec);
	return (size_t)snprintf(spec + n, len - n, ",mac=%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3],
				mac[4], mac[5]) < len - n;
}

/* The --net spec of a new interface from the body: a tap (host_dev_name) or virtus's own spec (virtus_net),
 * with its MAC written in (guest_mac, else the default of its place: its place may change later, its MAC
 * must not). False once answered. */
static bool iface_spec(struct vm_api *a, json_object *o, char *spec, size_t len, struct api_reply *r)
{
	const char *dev = NULL, *own = NULL, *mac = NULL;
	struct net_opts no;
	vt_err err;
	if (!vm_api_optional_string(o, "host_dev_name", &dev, r) || !vm_api_optional_string(o, "virtus_net", &own, r) ||
	    !vm_api_optional_string(o, "guest_mac", &mac, r))
		return false;
	if (!dev == !own)
		return vm_api_fault(r, 400, "give host_dev_name (a tap device) or virtus_net (a --net spec), one of them"), false;
	if ((dev && (!*dev || strlen(dev) > 15 || strchr(dev, ','))) || (mac && strchr(mac, ',')))
		return vm_api_fault(r, 400, "%s: not a network device name (1 to 15 bytes, no commas)",
				    mac && strchr(mac, ',') ? "guest_mac" : "host_dev_name"), false;
	if ((size_t)snprintf(spec, len, "%s%s%s%s", dev ? "tap=" : "", dev ? dev : own, mac ? ",mac=" : "", mac ? mac : "") >= len ||
	    net_opts_parse(spec, &no, &err) < 0)
		return vm_api_fault(r, 400, "%s", err.msg), false;
	net_opts_default_mac(&no, a->cfg->nnets);
	if (!no.mac_set && !append_mac(spec, len, no.mac))
		return vm_api_fault(r, 400, "the interface's spec is too long"), false;
	return true;
}

static bool valid_iface_id(const char *id, struct api_reply *r)
{
	if (!vm_api_id_chars("iface_id", id, r))
		return false;
	if (!*id || strlen(id) > IFACE_ID_MAX) {
		vm_api_fault(r, 400, "iface_id: 1 to %d letters, digits, '_' and '-'", IFACE_ID_MAX);
		return false;
	}
	return true;
}

/* PUT /network-interfaces/ID once the VM runs: a new interface, plugged in. */
static void put_iface(struct vm_api *a, const char *id, const struct api_request *req, struct api_reply *r)
{
	static const char *const known[] = { "iface_id", "host_dev_name", "virtus_net", "guest_mac", NULL };
	json_object *o = vm_api_parse_body(req, r);
	if (!o)
		return;
	const char *body_id = vm_api_string_field(o, "iface_id", "the interface's ID", r);
	char spec[256], *spec_copy = NULL, *id_copy = NULL;
	unsigned slot;
	vt_err err;
	if (!body_id || !vm_api_only_fields(o, known, r) || !valid_iface_id(id, r) || !can_change_disks(a, r)) {
		/* answered */
	} else if (strcmp(body_id, id)) {
		vm_api_fault(r, 400, "iface_id: '%s' is not the ID of the path (%s)", body_id, id);
	} else if (vm_api_find_net(a->cfg, id) >= 0) {
		vm_api_fault(r, 400, "network interface '%s' exists", id);
	} else if (a->cfg->nnets == VM_MAX_NETS) {
		vm_api_fault(r, 400, "the VM has %d network interfaces, the most it can have", VM_MAX_NETS);
	} else if (!iface_spec(a, o, spec, sizeof(spec), r)) {
		/* answered */
	} else if (!(spec_copy = strdup(spec)) || !(id_copy = strdup(id))) {
		vm_api_fault(r, 500, "out of memory");
	} else if (vm_pci_hotplug_net(a->vm, spec, &slot, &err) < 0) {
		vm_api_fault(r, 400, "%s", err.msg);
	} else {
		unsigned k = a->cfg->nnets++;
		a->cfg->net[k] = a->net_spec[k] = spec_copy;
		a->cfg->net_id[k] = a->net_id[k] = id_copy;
		a->cfg->net_slot[k] = slot;
		a->cfg->pci_reserved &= ~(1u << slot);
		spec_copy = id_copy = NULL;
		r->status = 204;
	}
	free(spec_copy);
	free(id_copy);
	json_object_put(o);
}

static void get_iface(struct vm_api *a, const char *id, struct api_reply *r)
{
	int k = vm_api_find_net(a->cfg, id);
	if (k < 0) {
		vm_api_fault(r, 404, "no network interface '%s'", id);
		return;
	}
	char pos[16];
	const char *name = vm_api_net_id(a->cfg, (unsigned)k, pos);
	json_object *o = json_object_new_object();
	json_object_object_add(o, "iface_id", json_object_new_string(name));
	json_object_object_add(o, "virtus_net", json_object_new_string(a->cfg->net[k]));
	bool ejecting = a->removal.slot && a->removal.net && !strcmp(a->removal.id, name);
	json_object_object_add(o, "state", json_object_new_string(ejecting ? "ejecting" : "attached"));
	if (!ejecting && a->eject_error_net && !strcmp(a->eject_error_id, name))
		json_object_object_add(o, "eject_error", json_object_new_string(a->eject_error));
	vm_api_reply_json(r, 200, o);
}

/* Every interface's ID and MAC written into its configuration: an interface leaving moves the ones after it,
 * whose default name (ethN) and MAC follow their place, and a snapshot's VM must see them unchanged. */
static void freeze_ifaces(struct vm_api *a)
{
	struct vm_config *c = a->cfg;
	for (unsigned j = 0; j < c->nnets; j++) {
		char pos[16], spec[256];
		struct net_opts no;
		vt_err err;
		if (!c->net_id[j] && (a->net_id[j] = strdup(vm_api_net_id(c, j, pos))))
			c->net_id[j] = a->net_id[j];
		if (net_opts_parse(c->net[j], &no, &err) < 0 || no.mac_set)
			continue;
		net_opts_default_mac(&no, j);
		char *copy;
		if ((size_t)snprintf(spec, sizeof(spec), "%s", c->net[j]) >= sizeof(spec) ||
		    !append_mac(spec, sizeof(spec), no.mac) || !(copy = strdup(spec)))
			continue;
		free(a->net_spec[j]);
		c->net[j] = a->net_spec[j] = copy;
	}
}

/* Interface k left the VM: out of the configuration, its slot kept free. */
static void forget_iface(struct vm_api *a, unsigned k, unsigned slot)
{
	struct vm_config *c = a->cfg;
	freeze_ifaces(a);
	free(a->net_spec[k]);
	free(a->net_id[k]);
	for (unsigned i = k; i + 1 < c->nnets; i++) {
		c->net[i] = c->net[i + 1], c->net_id[i] = c->net_id[i + 1], c->net_slot[i] = c->net_slot[i + 1];
		a->net_spec[i] = a->net_spec[i + 1], a->net_id[i] = a->net_id[i + 1];
	}
	c->nnets--;
	c->net[c->nnets] = c->net_id[c->nnets] = NULL;
	c->net_slot[c->nnets] = 0;
	a->net_spec[c->nnets] = a->net_id[c->nnets] = NULL;
	c->pci_reserved |= 1u << slot;
}

int vm_api_ejected_fd(const struct vm_api *a)
{
	return vm_pci_ejected_fd(a->vm);
}

int vm_api_hotplug_timeout_ms(const struct vm_api *a)
{
	if (!a->removal.slot)
		return -1;
	uint64_t now = now_ns();
	return now >= a->removal.deadline_ns ? 0 : (int)((a->removal.deadline_ns - now) / 1000000 + 1);
}

bool vm_api_removing(const struct vm_api *a)
{
	return a->removal.slot != 0;
}

void vm_api_hotplug_step(struct vm_api *a)
{
	/* the device leaves the configuration by its ID, found before it goes (the lookup needs it) */
	const char *kind = vm_api_removal_kind(a);
	int k = !a->removal.slot ? -1 : a->removal.net ? vm_api_find_net(a->cfg, a->removal.id)
						       : vm_api_find_drive(a->cfg, a->removal.id);
	uint32_t gone = vm_pci_remove_ejected(a->vm);
	if (a->removal.slot && (gone & (1u << a->removal.slot))) {
		if (k >= 0 && a->removal.net)
			forget_iface(a, (unsigned)k, a->removal.slot);
		else if (k >= 0)
			forget_disk(a, (unsigned)k, a->removal.slot);
		fprintf(stderr, "virtus: %s %s removed (the guest let go of it)\n", kind, a->removal.id);
		a->removal.slot = 0;
	} else if (a->removal.slot && now_ns() >= a->removal.deadline_ns) {
		vm_pci_cancel_eject(a->vm, a->removal.slot);
		snprintf(a->eject_error_id, sizeof(a->eject_error_id), "%s", a->removal.id);
		a->eject_error_net = a->removal.net;
		snprintf(a->eject_error, sizeof(a->eject_error),
			 "the guest did not let go of %s %s within %u s, so it stays (a guest without ACPI PCI hot-plug, or "
			 "one that refuses, never does)", kind, a->removal.id, a->removal.timeout_s);
		fprintf(stderr, "virtus: %s\n", a->eject_error);
		a->removal.slot = 0;
	}
}

/* ---- The CD drive --------------------------------------------------------------------------------------- */

static struct virtio_device *cdrom_of(struct vm_api *a, struct api_reply *r)
{
	if (!a->vm->pci.cdrom)
		vm_api_fault(r, 400, "the VM has no CD drive (start it with --cdrom [ISO])");
	return a->vm->pci.cdrom;
}

static void get_cdrom(struct vm_api *a, struct api_reply *r)
{
	struct virtio_device *cd = cdrom_of(a, r);
	if (!cd)
		return;
	struct virtio_scsi_cd_status st;
	virtio_scsi_cd_status(cd, &st);
	json_object *o = json_object_new_object();
	const char *path = st.medium ? a->cfg->cdrom_path : NULL;
	json_object_object_add(o, "path_on_host", path ? json_object_new_string(path) : NULL);
	json_object_object_add(o, "locked", json_object_new_boolean(st.locked));
	json_object_object_add(o, "tray_open", json_object_new_boolean(st.tray_open));
	vm_api_reply_json(r, 200, o);
}

/* "force" of a CD request's body: false when absent; false return once answered. */
static bool force_field(json_object *o, struct api_reply *r, bool *force)
{
	json_object *v;
	*force = false;
	if (!json_object_object_get_ex(o, "force", &v))
		return true;
	if (!json_object_is_type(v, json_type_boolean)) {
		vm_api_fault(r, 400, "force: expected true or false");
		return false;
	}
	*force = json_object_get_boolean(v);
	return true;
}

/* A refusal because the guest locked the tray is a conflict with the guest's state (409), not a bad request. */
static void cd_fault(struct virtio_device *cd, const vt_err *err, struct api_reply *r)
{
	struct virtio_scsi_cd_status st;
	virtio_scsi_cd_status(cd, &st);
	vm_api_fault(r, st.locked ? 409 : 400, "%s", err->msg);
}

static bool can_change_cd(struct vm_api *a, struct api_reply *r)
{
	if (vm_api_migrating(a)) {
		vm_api_fault(r, 409, "a migration is running: its destination opens the disc it was told of");
		return false;
	}
	return true;
}

static void put_cdrom_medium(struct vm_api *a, const struct api_request *req, struct api_reply *r)
{
	static const char *const known[] = { "path_on_host", "force", NULL };
	struct virtio_device *cd = cdrom_of(a, r);
	json_object *o = cd ? vm_api_parse_body(req, r) : NULL;
	const char *path;
	char *copy = NULL;
	bool force;
	vt_err err;
	if (!o || !(path = vm_api_string_field(o, "path_on_host", "the ISO image's path", r)) ||
	    !force_field(o, r, &force) || !vm_api_only_fields(o, known, r) || !can_change_cd(a, r)) {
		/* answered */
	} else if (!*path) {
		vm_api_fault(r, 400, "path_on_host: empty");
	} else if (!(copy = strdup(path))) {
		vm_api_fault(r, 500, "out of memory");
	} else if (virtio_scsi_cd_insert(cd, path, force, &err) < 0) {
		cd_fault(cd, &err, r);
	} else {
		free(a->cdrom_path);
		a->cfg->cdrom_path = a->cdrom_path = copy, copy = NULL;
		r->status = 204;
	}
	free(copy);
	json_object_put(o);
}

static void delete_cdrom_medium(struct vm_api *a, const struct api_request *req, struct api_reply *r)
{
	static const char *const known[] = { "force", NULL };
	struct virtio_device *cd = cdrom_of(a, r);
	json_object *o = NULL;
	bool force = false;
	vt_err err;
	if (!cd || (req->body_len && (!(o = vm_api_parse_body(req, r)) || !force_field(o, r, &force) ||
				      !vm_api_only_fields(o, known, r))) || !can_change_cd(a, r)) {
		/* answered */
	} else if (virtio_scsi_cd_eject(cd, force, &err) < 0) {
		cd_fault(cd, &err, r);
	} else {
		a->cfg->cdrom_path = NULL;
		r->status = 204;
	}
	json_object_put(o);
}

bool vm_api_hardware_route(struct vm_api *a, const struct api_request *req, struct api_reply *r)
{
	bool drive = !strncmp(req->path, "/drives/", 8) && req->path[8];
	bool iface = !strncmp(req->path, "/network-interfaces/", 20) && req->path[20];
	if (iface && !strcmp(req->method, "PUT"))
		put_iface(a, req->path + 20, req, r);
	else if (iface && !strcmp(req->method, "DELETE"))
		delete_device(a, true, req->path + 20, req, r);
	else if (iface && !strcmp(req->method, "GET"))
		get_iface(a, req->path + 20, r);
	else if (drive && !strcmp(req->method, "PUT"))
		put_drive(a, req->path + 8, req, r);
	else if (drive && !strcmp(req->method, "DELETE"))
		delete_device(a, false, req->path + 8, req, r);
	else if (drive && !strcmp(req->method, "GET"))
		get_drive(a, req->path + 8, r);
	else if (drive && !strcmp(req->method, "PATCH"))
		patch_drive(a, req->path + 8, req, r);
	else if (vm_api_is(req, "GET", "/cdrom"))
		get_cdrom(a, r);
	else if (vm_api_is(req, "PUT", "/cdrom/medium"))
		put_cdrom_medium(a, req, r);
	else if (vm_api_is(req, "DELETE", "/cdrom/medium"))
		delete_cdrom_medium(a, req, r);
	else if (vm_api_is(req, "GET", "/balloon"))
		get_balloon(a, r);
	else if (vm_api_is(req, "PATCH", "/balloon"))
		patch_balloon(a, req, r);
	else if (vm_api_is(req, "GET", "/balloon/statistics"))
		get_balloon_statistics(a, r);
	else if (vm_api_is(req, "PATCH", "/balloon/statistics"))
		patch_balloon_statistics(a, req, r);
	else
		return false;
	return true;
}

bool vm_api_hardware_path(const char *path)
{
	return !strcmp(path, "/balloon") || !strcmp(path, "/balloon/statistics") || !strcmp(path, "/cdrom") ||
	       !strcmp(path, "/cdrom/medium");
}

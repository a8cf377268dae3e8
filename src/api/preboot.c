/* The pre-boot API (contract in preboot.h). */
#include "api/preboot.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "api/vm_api.h"
#include "devices/virtio/balloon.h"
#include "devices/virtio/vsock.h"
#include "lib/util.h"

#define MiB_SHIFT 20

void preboot_init(struct preboot *p, struct vm_config *cfg, const char *id, const char *version,
		  int (*start)(void *opaque, vt_err *err),
		  int (*load)(void *opaque, const char *state_path, const char *mem_path, bool resume, vt_err *err),
		  void *start_opaque)
{
	memset(p, 0, sizeof(*p));
	p->cfg = cfg;
	p->id = id;
	p->version = version;
	p->start = start;
	p->load = load;
	p->start_opaque = start_opaque;
}

/* ---- Field readers: each one that fails has answered 400 naming the field -------------------------- */

static bool bool_field(json_object *o, const char *key, bool *out, struct api_reply *r)
{
	json_object *v;
	if (!json_object_object_get_ex(o, key, &v))
		return true;
	if (!json_object_is_type(v, json_type_boolean)) {
		vm_api_fault(r, 400, "%s: expected true or false", key);
		return false;
	}
	*out = json_object_get_boolean(v);
	return true;
}

static bool copy_string(const char *key, const char *value, char *out, size_t len, struct api_reply *r)
{
	if (!*value || strlen(value) >= len) {
		vm_api_fault(r, 400, "%s: expected 1 to %zu bytes", key, len - 1);
		return false;
	}
	snprintf(out, len, "%s", value);
	return true;
}

/* The ID in /drives/ID (or /network-interfaces/ID), which the body's id field must repeat. */
static bool path_id(const char *path, const char *prefix, json_object *o, const char *key, char *out, size_t len,
		    struct api_reply *r)
{
	const char *id = path + strlen(prefix);
	const char *body_id = vm_api_string_field(o, key, "the ID in the path", r);
	if (!body_id)
		return false;
	if (strcmp(body_id, id)) {
		vm_api_fault(r, 400, "%s: '%s' is not the ID of the path (%s)", key, body_id, id);
		return false;
	}
	return vm_api_id_chars(key, id, r) && copy_string(key, id, out, len, r);
}

/* ---- The resources ------------------------------------------------------------------------------------ */

static void put_boot_source(struct preboot *p, json_object *o, struct api_reply *r)
{
	static const char *const known[] = { "kernel_image_path", "initrd_path", "boot_args", NULL };
	const char *kernel = vm_api_string_field(o, "kernel_image_path", "the kernel's path", r), *initrd, *args;
	char k[PATH_MAX], i[PATH_MAX] = "", a[BOOT_CMDLINE_MAX + 1] = "";
	if (!kernel || !vm_api_optional_string(o, "initrd_path", &initrd, r) ||
	    !vm_api_optional_string(o, "boot_args", &args, r) || !vm_api_only_fields(o, known, r) ||
	    !copy_string("kernel_image_path", kernel, k, sizeof(k), r) ||
	    (initrd && !copy_string("initrd_path", initrd, i, sizeof(i), r)) ||
	    (args && strlen(args) >= sizeof(a) && (vm_api_fault(r, 400, "boot_args: at most %d bytes", BOOT_CMDLINE_MAX), 1)))
		return;
	snprintf(a, sizeof(a), "%s", args ? args : "");
	memcpy(p->kernel, k, sizeof(k)), memcpy(p->initrd, i, sizeof(i)), memcpy(p->cmdline, a, sizeof(a));
	p->cfg->kernel_path = p->kernel;
	p->cfg->initrd_path = initrd ? p->initrd : NULL;
	p->cfg->cmdline = args ? p->cmdline : NULL;
	r->status = 204;
}

static void put_machine_config(struct preboot *p, json_object *o, struct api_reply *r)
{
	static const char *const known[] = { "vcpu_count", "mem_size_mib", "smt", "track_dirty_pages", "cpu_template", NULL };
	int64_t cpus = p->cfg->ncpus, mib = (int64_t)(p->cfg->mem_size >> MiB_SHIFT);
	bool smt = false, dirty = false;
	if (!vm_api_int_field(o, "vcpu_count", true, 1, 255, &cpus, r) ||
	    !vm_api_int_field(o, "mem_size_mib", true, 4, 1 << 22, &mib, r) ||
	    !bool_field(o, "smt", &smt, r) || !bool_field(o, "track_dirty_pages", &dirty, r) ||
	    !vm_api_only_fields(o, known, r))
		return;
	if (smt || dirty || json_object_object_get_ex(o, "cpu_template", NULL)) {
		vm_api_fault(r, 400, "%s: not supported by virtus", smt ? "smt" : dirty ? "track_dirty_pages" : "cpu_template");
		return;
	}
	p->cfg->ncpus = (unsigned)cpus;
	p->cfg->mem_size = (uint64_t)mib << MiB_SHIFT;
	r->status = 204;
}

static struct preboot_drive *drive_slot(struct preboot *p, const char *id)
{
	for (unsigned i = 0; i < p->ndrives; i++)
		if (!strcmp(p->drive[i].id, id))
			return &p->drive[i];
	return p->ndrives < VM_MAX_DISKS ? &p->drive[p->ndrives++] : NULL;
}

static void put_drive(struct preboot *p, const char *path, json_object *o, struct api_reply *r)
{
	static const char *const known[] = { "drive_id", "path_on_host", "is_root_device", "is_read_only", NULL };
	struct preboot_drive d = { .readonly = false };
	const char *host;
	if (!path_id(path, "/drives/", o, "drive_id", d.id, sizeof(d.id), r) ||
	    !(host = vm_api_string_field(o, "path_on_host", "the image's path", r)) ||
	    !copy_string("path_on_host", host, d.path, sizeof(d.path), r) || !bool_field(o, "is_root_device", &d.root, r) ||
	    !bool_field(o, "is_read_only", &d.readonly, r) || !vm_api_only_fields(o, known, r))
		return;
	if (strlen(d.id) > 20) {
		vm_api_fault(r, 400, "drive_id: at most 20 bytes (it is the disk's serial)");
		return;
	}
	struct preboot_drive *slot = drive_slot(p, d.id);
	if (!slot) {
		vm_api_fault(r, 400, "drive_id %s: at most %d drives", d.id, VM_MAX_DISKS);
		return;
	}
	*slot = d;
	r->status = 204;
}

static void put_network_interface(struct preboot *p, const char *path, json_object *o, struct api_reply *r)
{
	static const char *const known[] = { "iface_id", "host_dev_name", "guest_mac", NULL };
	struct preboot_net n;
	const char *dev, *mac;
	if (!path_id(path, "/network-interfaces/", o, "iface_id", n.id, sizeof(n.id), r) ||
	    !(dev = vm_api_string_field(o, "host_dev_name", "a tap device's name", r)) ||
	    !vm_api_optional_string(o, "guest_mac", &mac, r) || !vm_api_only_fields(o, known, r))
		return;
	if (!*dev || strlen(dev) > 15 || strchr(dev, ',') || (mac && strchr(mac, ','))) {
		vm_api_fault(r, 400, "%s: not a network device name (1 to 15 bytes, no commas)", mac && strchr(mac, ',') ? "guest_mac" : "host_dev_name");
		return;
	}
	snprintf(n.spec, sizeof(n.spec), "tap=%s%s%s", dev, mac ? ",mac=" : "", mac ? mac : "");
	unsigned i = 0;
	while (i < p->nnets && strcmp(p->net[i].id, n.id))
		i++;
	if (i == VM_MAX_NETS) {
		vm_api_fault(r, 400, "iface_id %s: at most %d network interfaces", n.id, VM_MAX_NETS);
		return;
	}
	p->net[i] = n;
	if (i == p->nnets)
		p->nnets++;
	r->status = 204;
}

static void put_vsock(struct preboot *p, json_object *o, struct api_reply *r)
{
	static const char *const known[] = { "guest_cid", "uds_path", "vsock_id", NULL };
	int64_t cid;
	const char *uds = NULL;
	vt_err err;
	if (!vm_api_int_field(o, "guest_cid", true, VSOCK_CID_MIN, (int64_t)VSOCK_CID_MAX, &cid, r) ||
	    !(uds = vm_api_string_field(o, "uds_path", "the host socket's path", r)) || !vm_api_only_fields(o, known, r))
		return;
	if (vsock_check_path(uds, &err) < 0) {
		vm_api_fault(r, 400, "uds_path: %s", err.msg);
		return;
	}
	snprintf(p->vsock_path, sizeof(p->vsock_path), "%s", uds);
	p->cfg->vsock_cid = (uint64_t)cid;
	p->cfg->vsock_path = p->vsock_path;
	r->status = 204;
}

static void put_balloon(struct preboot *p, json_object *o, struct api_reply *r)
{
	static const char *const known[] = { "amount_mib", "deflate_on_oom", "stats_polling_interval_s", NULL };
	int64_t mib, stats = VBALLOON_STATS_DEFAULT_SECONDS;
	bool deflate = false;
	if (!vm_api_int_field(o, "amount_mib", true, 0, 1 << 22, &mib, r) || !bool_field(o, "deflate_on_oom", &deflate, r) ||
	    !vm_api_int_field(o, "stats_polling_interval_s", false, 0, 3600, &stats, r) || !vm_api_only_fields(o, known, r))
		return;
	if (deflate) {
		vm_api_fault(r, 400, "deflate_on_oom: not supported by virtus");
		return;
	}
	p->cfg->balloon = true;
	p->cfg->balloon_size = (uint64_t)mib << MiB_SHIFT;
	p->cfg->balloon_stats_s = (unsigned)stats;
	r->status = 204;
}

/* The drives (root device first, as Firecracker orders them) and interfaces into the configuration. */
static void apply_lists(struct preboot *p)
{
	struct vm_config *c = p->cfg;
	c->ndisks = 0;
	for (int root = 1; root >= 0; root--)
		for (unsigned i = 0; i < p->ndrives; i++)
			if (p->drive[i].root == (bool)root)
				c->disk[c->ndisks++] = (struct vm_disk_config){ .path = p->drive[i].path,
										.readonly = p->drive[i].readonly,
										.serial = p->drive[i].id,
										.root_device = p->drive[i].root };
	c->nnets = p->nnets;
	for (unsigned i = 0; i < p->nnets; i++)
		c->net[i] = p->net[i].spec;
}

static void put_actions(struct preboot *p, json_object *o, struct api_reply *r)
{
	static const char *const known[] = { "action_type", NULL };
	const char *action = vm_api_string_field(o, "action_type", "\"InstanceStart\"", r);
	vt_err err;
	if (!action || !vm_api_only_fields(o, known, r))
		return;
	if (!strcmp(action, "Kill")) {
		p->killed = true; /* the VMM ends without a VM */
		r->status = 204;
		return;
	}
	if (strcmp(action, "InstanceStart")) {
		vm_api_fault(r, 400, "action_type %s: the microVM is not started yet (PUT /actions InstanceStart first)", action);
		return;
	}
	if (!p->cfg->kernel_path) {
		vm_api_fault(r, 400, "InstanceStart: no boot source (PUT /boot-source with kernel_image_path first)");
		return;
	}
	if (p->cfg->balloon && p->cfg->balloon_size >= p->cfg->mem_size) {
		vm_api_fault(r, 400, "balloon: amount_mib must be smaller than the machine's mem_size_mib");
		return;
	}
	apply_lists(p);
	if (p->start(p->start_opaque, &err) < 0) {
		vm_api_fault(r, 400, "InstanceStart: %s", err.msg);
		return;
	}
	p->started = true;
	r->status = 204;
}

/* Firecracker's LoadSnapshot: {"snapshot_path", "mem_backend": {"backend_path", "backend_type": "File"} (or
 * the older "mem_file_path"), "enable_diff_snapshots": false, "resume_vm"}. The devices are the snapshot's,
 * but a kind configured here (drives, network interfaces, vsock) replaces the snapshot's host side. */
static void put_snapshot_load(struct preboot *p, json_object *o, struct api_reply *r)
{
	static const char *const known[] = { "snapshot_path", "mem_backend", "mem_file_path", "enable_diff_snapshots",
					     "resume_vm", "network_overrides", NULL };
	static const char *const backend_known[] = { "backend_path", "backend_type", NULL };
	const char *state = vm_api_string_field(o, "snapshot_path", "the state file's path", r), *mem = NULL, *type = NULL;
	json_object *backend = NULL;
	bool diff = false, resume = false;
	vt_err err;
	if (!state || !vm_api_only_fields(o, known, r) || !bool_field(o, "enable_diff_snapshots", &diff, r) ||
	    !bool_field(o, "resume_vm", &resume, r))
		return;
	if (json_object_object_get_ex(o, "network_overrides", NULL)) {
		vm_api_fault(r, 400, "network_overrides: not supported (PUT /network-interfaces/ID first instead)");
		return;
	}
	if (json_object_object_get_ex(o, "mem_backend", &backend)) {
		if (!json_object_is_type(backend, json_type_object)) {
			vm_api_fault(r, 400, "mem_backend: must be an object");
			return;
		}
		if (!(mem = vm_api_string_field(backend, "backend_path", "the memory file's path", r)) ||
		    !vm_api_optional_string(backend, "backend_type", &type, r) || !vm_api_only_fields(backend, backend_known, r))
			return;
		if (type && strcmp(type, "File")) {
			vm_api_fault(r, 400, "mem_backend.backend_type: '%s' is not supported (only \"File\")", type);
			return;
		}
	} else if (!(mem = vm_api_string_field(o, "mem_file_path", "the memory file's path (or mem_backend)", r))) {
		return;
	}
	if (diff) {
		vm_api_fault(r, 400, "enable_diff_snapshots: not supported by virtus");
		return;
	}
	apply_lists(p);
	if (p->load(p->start_opaque, state, mem, resume, &err) < 0) {
		vm_api_fault(r, 400, "PUT /snapshot/load: %s", err.msg);
		return;
	}
	p->started = true;
	r->status = 204;
}

static void get_instance_info(struct preboot *p, struct api_reply *r)
{
	vm_api_reply_json(r, 200, vm_api_instance_info(p->id, "Not started", p->version));
}

void preboot_handle(void *opaque, const struct api_request *req, struct api_reply *r)
{
	struct preboot *p = opaque;
	if (vm_api_is(req, "GET", "/")) {
		get_instance_info(p, r);
		return;
	}
	if (vm_api_is(req, "GET", "/machine-config")) {
		json_object *c = vm_api_config_json(p->cfg), *m = NULL;
		json_object_object_get_ex(c, "machine-config", &m);
		vm_api_reply_json(r, 200, json_object_get(m));
		json_object_put(c);
		return;
	}
	if (vm_api_is(req, "GET", "/vm/config")) {
		apply_lists(p);
		vm_api_reply_json(r, 200, vm_api_config_json(p->cfg));
		return;
	}
	bool put = !strcmp(req->method, "PUT");
	const char *path = req->path;
	if (!put || (!vm_api_pre_boot_resource(path) && strcmp(path, "/actions") && strcmp(path, "/snapshot/load"))) {
		vm_api_fault(r, !strcmp(path, "/vm") || !strcmp(path, "/snapshot/create") ? 400 : 404,
			     "%s %s: not available before the microVM starts", req->method, path);
		return;
	}
	json_object *o = vm_api_parse_body(req, r);
	if (!o)
		return;
	if (!strcmp(path, "/boot-source"))
		put_boot_source(p, o, r);
	else if (!strcmp(path, "/machine-config"))
		put_machine_config(p, o, r);
	else if (!strncmp(path, "/drives/", 8))
		put_drive(p, path, o, r);
	else if (!strncmp(path, "/network-interfaces/", 20))
		put_network_interface(p, path, o, r);
	else if (!strcmp(path, "/vsock"))
		put_vsock(p, o, r);
	else if (!strcmp(path, "/balloon"))
		put_balloon(p, o, r);
	else if (!strcmp(path, "/actions"))
		put_actions(p, o, r);
	else if (!strcmp(path, "/snapshot/load"))
		put_snapshot_load(p, o, r);
	else
		vm_api_fault(r, 400, "%s: not supported by virtus", path);
	json_object_put(o);
}

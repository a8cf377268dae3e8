/* The VM API's routes that change a running VM's hardware (contract in vm_api.h). Firecracker's shapes:
 *
 *   GET   /balloon             {"amount_mib", "deflate_on_oom", "stats_polling_interval_s"}
 *   PATCH /balloon             {"amount_mib": N}               the guest inflates or deflates towards N MiB
 *   GET   /balloon/statistics  {"target_pages", "actual_pages", "target_mib", "actual_mib", "free_memory", ...}
 *   PATCH /balloon/statistics  {"stats_polling_interval_s": S} (S > 0; only when statistics were on at start)
 *   PATCH /drives/ID           {"drive_id": ID, "path_on_host": P}  a new image under a running disk
 *
 * A change is also written into the VM's configuration, so a snapshot or migration carries it (the
 * device state carries the target too; the configuration is what GET /vm/config shows). */
#include "api/vm_api.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "devices/virtio/balloon.h"
#include "lib/util.h"
#include "vmm/vm_pci.h"

#define MiB_SHIFT 20
#define MAX_STATS_INTERVAL_S 3600

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

bool vm_api_hardware_route(struct vm_api *a, const struct api_request *req, struct api_reply *r)
{
	if (vm_api_is(req, "GET", "/balloon"))
		get_balloon(a, r);
	else if (vm_api_is(req, "PATCH", "/balloon"))
		patch_balloon(a, req, r);
	else if (vm_api_is(req, "GET", "/balloon/statistics"))
		get_balloon_statistics(a, r);
	else if (vm_api_is(req, "PATCH", "/balloon/statistics"))
		patch_balloon_statistics(a, req, r);
	else if (!strcmp(req->method, "PATCH") && !strncmp(req->path, "/drives/", 8) && req->path[8])
		patch_drive(a, req->path + 8, req, r);
	else
		return false;
	return true;
}

bool vm_api_hardware_path(const char *path)
{
	return !strcmp(path, "/balloon") || !strcmp(path, "/balloon/statistics");
}

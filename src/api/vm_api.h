/* The VM API's routes: Firecracker's published endpoints (and virtus extensions in the same style) mapped
 * onto a running VM. Transport: api/http.h. Endpoints and their answers: docs/api.md. */
#ifndef VIRTUS_API_VM_API_H
#define VIRTUS_API_VM_API_H

#include <json-c/json.h>
#include <stdbool.h>

#include "api/http.h"
#include "vmm/state/migration.h"
#include "vmm/vm.h"

struct vm_api {
	struct vm *vm;               /* the running VM */
	struct vm_config *cfg;       /* what it was built from (a snapshot's disk checkpoints change its disks) */
	const char *id;              /* its name */
	const char *version;         /* virtus's version */
	long long started;           /* wall clock, seconds */
	/* --jail: the VMM reaches no host path (what it writes or plugs in must be opened before the jail
	 * closes), and no host at all when the jail has a network namespace of its own (a VM without --net) */
	bool jailed;
	bool jail_own_network;
	/* PUT /migrate: the running or last migration (the control loop steps it), where it goes, and whether
	 * GET /migrate has told a client how it ended (a completed source ends once it has, or soon after) */
	struct migration_out *migration;
	char migration_url[160];
	bool migration_end_reported;
	char *disk_path[VM_MAX_DISKS]; /* a disk's new image (PATCH /drives/ID): cfg->disk[k].path points here */
	char *disk_serial[VM_MAX_DISKS]; /* a disk plugged in while running: its ID, cfg->disk[k].serial */
	/* DELETE /drives/ID: the removal the guest was asked to agree to (one at a time) */
	struct vm_api_removal {
		unsigned slot;           /* 0: none under way */
		bool net;                /* of a network interface (else of a drive) */
		char id[32];
		unsigned timeout_s;
		uint64_t deadline_ns;
	} removal;
	char eject_error_id[32];     /* the last removal that the guest did not agree to, and why (GET /drives/ID) */
	bool eject_error_net;        /* ... of a network interface (GET /network-interfaces/ID) */
	char eject_error[256];
	char *cdrom_path;            /* the disc inserted while running (PUT /cdrom/medium): cfg->cdrom_path */
	/* a network interface plugged in while running, or one whose ID and MAC were made explicit when another
	 * left (its position, and so its default name and MAC, changed): cfg->net[k], cfg->net_id[k] */
	char *net_spec[VM_MAX_NETS];
	char *net_id[VM_MAX_NETS];
};

/* ---- Disks plugged in and removed while the VM runs (api/vm_api_hardware.c) -------------------------------
 * The control loop polls vm_api_ejected_fd (readable when the guest let go of a disk) and calls
 * vm_api_hotplug_step then, and when vm_api_hotplug_timeout_ms has passed. */
int vm_api_ejected_fd(const struct vm_api *a);
int vm_api_hotplug_timeout_ms(const struct vm_api *a);   /* -1: no removal under way */
void vm_api_hotplug_step(struct vm_api *a);
/* Whether a removal is under way: snapshots and migrations wait for its end. */
bool vm_api_removing(const struct vm_api *a);

/* What the VM's API holds beyond the VM (a migration, changed disks' paths); after the VM is gone. */
void vm_api_release(struct vm_api *a);
/* Whether a migration the API started is running (or has completed and the VMM is about to end). */
bool vm_api_migrating(const struct vm_api *a);
/* Disk i's ID in the API: its stated serial (id=, drive_id), else "vda", "vdb", ... by position (pos). */
const char *vm_api_drive_id(const struct vm_config *c, unsigned i, char pos[8]);
/* GET /metrics: {"uptime_ms", "vcpu_exits": {REASON: N, ..., "total"}, "devices": [{"id", "kind", "pci_slot",
 * "counters": {NAME: N, ...}, "queues": [{"kicks", "trapped_kicks", "interrupts"}, ...]}]} (vm_metrics.c). */
struct json_object;
struct json_object *vm_api_metrics_json(const struct vm_api *a);
/* The disk whose ID is id (or, failing that, whose position name is), -1 if none. */
int vm_api_find_drive(const struct vm_config *c, const char *id);
/* Network interface i's ID: its iface_id, else "ethN" by position (pos). */
const char *vm_api_net_id(const struct vm_config *c, unsigned i, char pos[16]);
int vm_api_find_net(const struct vm_config *c, const char *id);
/* "drive" or "network interface": what the removal under way takes out. */
const char *vm_api_removal_kind(const struct vm_api *a);

/* An api_handler_fn; opaque is a struct vm_api. */
void vm_api_handle(void *opaque, const struct api_request *req, struct api_reply *reply);
/* A client on the handoff socket (api/handoff.h; a jailed VMM's): take its request, answer, close. */
void vm_api_handoff(struct vm_api *a, int listen_fd);

/* The routes that change a running VM's hardware (api/vm_api_hardware.c): true when req was one of them
 * (and is answered). */
bool vm_api_hardware_route(struct vm_api *a, const struct api_request *req, struct api_reply *reply);
bool vm_api_hardware_path(const char *path);

/* A VMM waiting for a migration (vm run --incoming): GET / says so ("Waiting for migration"), PUT /actions
 * Kill ends the wait, anything else is refused until the VM has arrived. An api_handler_fn. */
struct vm_api_waiting {
	const char *id, *version, *url;
	bool killed;
};
void vm_api_waiting_handle(void *opaque, const struct api_request *req, struct api_reply *reply);

/* Firecracker's InstanceInfo (GET /): app_name, id, state, vmm_version. */
json_object *vm_api_instance_info(const char *id, const char *state, const char *version);

/* "Running", "Paused" or "Stopping". */
const char *vm_api_state(struct vm *vm);

/* Firecracker's full VM configuration object (GET /vm/config) of cfg. */
json_object *vm_api_config_json(const struct vm_config *cfg);

/* Helpers the routes share (api/preboot.c too). Each one that fails has answered the request. */
void vm_api_reply_json(struct api_reply *r, int status, json_object *o); /* takes o */
__attribute__((format(printf, 3, 4)))
void vm_api_fault(struct api_reply *r, int status, const char *fmt, ...);
json_object *vm_api_parse_body(const struct api_request *req, struct api_reply *r); /* an object, or NULL */
const char *vm_api_string_field(json_object *o, const char *key, const char *expected, struct api_reply *r);
bool vm_api_optional_string(json_object *o, const char *key, const char **out, struct api_reply *r);
/* The integer member key in [min, max] (absent: fine unless required, *out untouched). */
bool vm_api_int_field(json_object *o, const char *key, bool required, int64_t min, int64_t max, int64_t *out,
		      struct api_reply *r);
bool vm_api_only_fields(json_object *o, const char *const *known, struct api_reply *r);
/* An ID in a path (/drives/ID, /network-interfaces/ID): letters, digits, '_' and '-' only. */
bool vm_api_id_chars(const char *key, const char *id, struct api_reply *r);
bool vm_api_is(const struct api_request *req, const char *method, const char *path);
/* Firecracker's pre-boot resources: /boot-source, /machine-config, /drives/ID, ... */
bool vm_api_pre_boot_resource(const char *path);

#endif

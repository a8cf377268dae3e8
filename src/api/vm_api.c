/* The VM API's routes (contract in vm_api.h). Every answer is JSON; every error is a status with
 * {"fault_message": "..."} naming what was wrong, as Firecracker answers. */
#include "api/vm_api.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "api/handoff.h"
#include "api/vm_devices.h"
#include "devices/virtio/virtio.h"
#include "lib/sock_url.h"
#include "lib/util.h"
#include "vmm/state/snapshot.h"
#include "vmm/vm_pci.h"

#define MiB_SHIFT 20

void vm_api_reply_json(struct api_reply *r, int status, json_object *o)
{
	r->status = status;
	r->body = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

void vm_api_fault(struct api_reply *r, int status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_object *o = json_object_new_object();
	json_object_object_add(o, "fault_message", json_object_new_string(msg));
	vm_api_reply_json(r, status, o);
}

const char *vm_api_state(struct vm *vm)
{
	if (__atomic_load_n(&vm->stopping, __ATOMIC_SEQ_CST))
		return "Stopping";
	return vm_is_paused(vm) ? "Paused" : "Running";
}

/* ---- GET ------------------------------------------------------------------------------------------------ */

json_object *vm_api_instance_info(const char *id, const char *state, const char *version)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "app_name", json_object_new_string("virtus"));
	json_object_object_add(o, "id", json_object_new_string(id));
	json_object_object_add(o, "state", json_object_new_string(state));
	json_object_object_add(o, "vmm_version", json_object_new_string(version));
	return o;
}

static void get_instance_info(struct vm_api *a, struct api_reply *r)
{
	json_object *o = vm_api_instance_info(a->id, vm_api_state(a->vm), a->version);
	/* virtus addition: when the VM started (Unix time) */
	json_object_object_add(o, "started", json_object_new_int64(a->started));
	vm_api_reply_json(r, 200, o);
}

static json_object *machine_config(const struct vm_config *c)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "vcpu_count", json_object_new_int((int)c->ncpus));
	json_object_object_add(o, "mem_size_mib", json_object_new_int64((int64_t)(c->mem_size >> MiB_SHIFT)));
	json_object_object_add(o, "smt", json_object_new_boolean(false));
	json_object_object_add(o, "track_dirty_pages", json_object_new_boolean(false));
	return o;
}

static json_object *string_or_null(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

static json_object *boot_source(const struct vm_config *c)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "kernel_image_path", string_or_null(c->kernel_path));
	json_object_object_add(o, "initrd_path", string_or_null(c->initrd_path));
	json_object_object_add(o, "boot_args", string_or_null(c->cmdline));
	return o;
}

const char *vm_api_drive_id(const struct vm_config *c, unsigned i, char pos[8])
{
	snprintf(pos, 8, "vd%c", 'a' + i);
	return c->disk[i].serial ? c->disk[i].serial : pos;
}

int vm_api_find_drive(const struct vm_config *c, const char *id)
{
	char pos[8];
	for (unsigned i = 0; i < c->ndisks; i++)
		if (!strcmp(vm_api_drive_id(c, i, pos), id))
			return (int)i;
	for (unsigned i = 0; i < c->ndisks; i++) { /* "vdb" for the second disk, whatever its serial */
		vm_api_drive_id(c, i, pos);
		if (!strcmp(pos, id))
			return (int)i;
	}
	return -1;
}

const char *vm_api_net_id(const struct vm_config *c, unsigned i, char pos[16])
{
	snprintf(pos, 16, "eth%u", i);
	return c->net_id[i] ? c->net_id[i] : pos;
}

int vm_api_find_net(const struct vm_config *c, const char *id)
{
	char pos[16];
	for (unsigned i = 0; i < c->nnets; i++)
		if (!strcmp(vm_api_net_id(c, i, pos), id))
			return (int)i;
	return -1;
}

static json_object *drives(const struct vm_config *c)
{
	json_object *a = json_object_new_array();
	for (unsigned i = 0; i < c->ndisks; i++) {
		char pos[8];
		json_object *d = json_object_new_object();
		json_object_object_add(d, "drive_id", json_object_new_string(vm_api_drive_id(c, i, pos)));
		json_object_object_add(d, "path_on_host", json_object_new_string(c->disk[i].path));
		json_object_object_add(d, "is_root_device", json_object_new_boolean(c->disk[i].root_device));
		json_object_object_add(d, "is_read_only", json_object_new_boolean(c->disk[i].readonly));
		json_object_array_add(a, d);
	}
	return a;
}

static json_object *network_interfaces(const struct vm_config *c)
{
	json_object *a = json_object_new_array();
	for (unsigned i = 0; i < c->nnets; i++) {
		char pos[16];
		json_object *n = json_object_new_object();
		json_object_object_add(n, "iface_id", json_object_new_string(vm_api_net_id(c, i, pos)));
		if (!strncmp(c->net[i], "tap=", 4)) {
			const char *name = c->net[i] + 4, *comma = strchr(name, ','), *mac = strstr(name, ",mac=");
			json_object_object_add(n, "host_dev_name", json_object_new_string_len(name, comma ? (int)(comma - name) : (int)strlen(name)));
			if (mac)
				json_object_object_add(n, "guest_mac", json_object_new_string_len(mac + 5, (int)strcspn(mac + 5, ",")));
		} else
			json_object_object_add(n, "virtus_net", json_object_new_string(c->net[i]));
		json_object_array_add(a, n);
	}
	return a;
}

json_object *vm_api_config_json(const struct vm_config *c)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "boot-source", boot_source(c));
	json_object_object_add(o, "machine-config", machine_config(c));
	json_object_object_add(o, "drives", drives(c));
	json_object_object_add(o, "network-interfaces", network_interfaces(c));
	if (c->vsock_cid) {
		json_object *v = json_object_new_object();
		json_object_object_add(v, "guest_cid", json_object_new_int64((int64_t)c->vsock_cid));
		json_object_object_add(v, "uds_path", json_object_new_string(c->vsock_path));
		json_object_object_add(o, "vsock", v);
	}
	if (c->balloon) {
		json_object *b = json_object_new_object();
		json_object_object_add(b, "amount_mib", json_object_new_int64((int64_t)(c->balloon_size >> MiB_SHIFT)));
		json_object_object_add(b, "deflate_on_oom", json_object_new_boolean(false));
		json_object_object_add(b, "stats_polling_interval_s", json_object_new_int((int)c->balloon_stats_s));
		json_object_object_add(o, "balloon", b);
	}
	if (c->cdrom) {
		json_object *cd = json_object_new_object();
		json_object_object_add(cd, "path_on_host", c->cdrom_path ? json_object_new_string(c->cdrom_path) : NULL);
		json_object_object_add(o, "cdrom", cd);
	}
	return o;
}

/* ---- Bodies ------------------------------------------------------------------------------------------- */

/* The request's JSON object, or NULL after answering 400. */
json_object *vm_api_parse_body(const struct api_request *req, struct api_reply *r)
{
	enum json_tokener_error jerr;
	json_object *o = json_tokener_parse_verbose(req->body, &jerr);
	if (!o) {
		vm_api_fault(r, 400, "the request body is not JSON: %s", json_tokener_error_desc(jerr));
		return NULL;
	}
	if (!json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		vm_api_fault(r, 400, "the request body must be a JSON object");
		return NULL;
	}
	return o;
}

/* The string member `key` of o, or NULL after answering 400 naming it. */
const char *vm_api_string_field(json_object *o, const char *key, const char *expected, struct api_reply *r)
{
	json_object *v;
	if (!json_object_object_get_ex(o, key, &v)) {
		vm_api_fault(r, 400, "%s: missing; expected %s", key, expected);
		return NULL;
	}
	if (!json_object_is_type(v, json_type_string)) {
		vm_api_fault(r, 400, "%s: must be a string, one of %s", key, expected);
		return NULL;
	}
	return json_object_get_string(v);
}

/* Members other than the known ones are an error (a typo must not pass as "done"). */
bool vm_api_only_fields(json_object *o, const char *const *known, struct api_reply *r)
{
	json_object_object_foreach(o, key, val) {
		(void)val;
		bool ok = false;
		for (const char *const *k = known; *k && !ok; k++)
			ok = !strcmp(key, *k);
		if (!ok) {
			vm_api_fault(r, 400, "%s: unknown field", key);
			return false;
		}
	}
	return true;
}

/* ---- Changes -------------------------------------------------------------------------------------------- */

static void patch_vm(struct vm_api *a, const struct api_request *req, struct api_reply *r)
{
	static const char *const known[] = { "state", NULL };
	json_object *o = vm_api_parse_body(req, r);
	if (!o)
		return;
	const char *state = vm_api_string_field(o, "state", "\"Paused\" or \"Resumed\"", r);
	vt_err err;
	if (!state || !vm_api_only_fields(o, known, r)) {
		/* answered */
	} else if (__atomic_load_n(&a->vm->stopping, __ATOMIC_SEQ_CST)) {
		vm_api_fault(r, 400, "the VM is stopping");
	} else if (!strcmp(state, "Paused")) {
		if (vm_pause(a->vm, &err) < 0)
			vm_api_fault(r, 500, "%s", err.msg);
		else
			r->status = 204;
	} else if (!strcmp(state, "Resumed")) {
		vm_resume(a->vm);
		r->status = 204;
	} else {
		vm_api_fault(r, 400, "state: '%s' is not \"Paused\" or \"Resumed\"", state);
	}
	json_object_put(o);
}

static void put_actions(struct vm_api *a, const struct api_request *req, struct api_reply *r)
{
	static const char *const known[] = { "action_type", NULL };
	json_object *o = vm_api_parse_body(req, r);
	if (!o)
		return;
	const char *action = vm_api_string_field(o, "action_type", "\"SendCtrlAltDel\", \"PowerButton\" or \"Kill\"", r);
	if (!action || !vm_api_only_fields(o, known, r)) {
		/* answered */
	} else if (!strcmp(action, "InstanceStart")) {
		vm_api_fault(r, 400, "action_type InstanceStart: the microVM is already running");
	} else if (!strcmp(action, "Kill")) {
		vm_request_stop(a->vm, VM_EXIT_INTERRUPTED);
		r->status = 204;
	} else if (!strcmp(action, "SendCtrlAltDel") || !strcmp(action, "PowerButton")) {
		/* Firecracker's clean shutdown; this machine has no keyboard: its power button means the same */
		vm_press_power_button(a->vm);
		r->status = 204;
	} else if (!strcmp(action, "FlushMetrics")) {
		vm_api_fault(r, 400, "action_type FlushMetrics: this VM has no metrics sink");
	} else {
		vm_api_fault(r, 400, "action_type: '%s' is not SendCtrlAltDel, PowerButton, Kill or InstanceStart", action);
	}
	json_object_put(o);
}

bool vm_api_int_field(json_object *o, const char *key, bool required, int64_t min, int64_t max, int64_t *out,
		      struct api_reply *r)
{
	json_object *v;
	if (!json_object_object_get_ex(o, key, &v)) {
		if (required)
			vm_api_fault(r, 400, "%s: missing; expected a whole number from %lld to %lld", key, (long long)min,
				     (long long)max);
		return !required;
	}
	if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < min || json_object_get_int64(v) > max) {
		vm_api_fault(r, 400, "%s: expected a whole number from %lld to %lld", key, (long long)min, (long long)max);
		return false;
	}
	*out = json_object_get_int64(v);
	return true;
}

/* The string member key of o if present (NULL if absent); false after answering 400 for a wrong type. */
bool vm_api_optional_string(json_object *o, const char *key, const char **out, struct api_reply *r)
{
	json_object *v;
	*out = NULL;
	if (!json_object_object_get_ex(o, key, &v))
		return true;
	if (!json_object_is_type(v, json_type_string)) {
		vm_api_fault(r, 400, "%s: must be a string", key);
		return false;
	}
	*out = json_object_get_string(v);
	return true;
}

/* A frozen disk, as a configuration says it: its path is a qcow2 overlay now, and its serial is kept
 * stated (a restore's overlay is another file, whose derived serial would differ). */
static void describe_frozen_disk(struct vm_disk_config *c, const struct virtio_device *d)
{
	c->format = BLK_FORMAT_QCOW2;
	if (!c->serial)
		c->serial = virtio_blk_serial(d);
}

/* The configuration a snapshot keeps: each disk it freezes also names the file that keeps it. */
static char *snapshot_config(struct vm_api *a, char layers[][32])
{
	struct vm_config c = *a->cfg;
	for (unsigned k = 0; k < c.ndisks; k++) {
		if (!vm_snapshot_disk_layer(a->vm, k, layers[k], sizeof(layers[k])))
			continue;
		c.disk[k].layer = layers[k];
		describe_frozen_disk(&c.disk[k], vm_pci_disk(a->vm, k));
	}
	return vm_devices_to_json(&c);
}

/* After a snapshot the VM's own configuration says so too: a later snapshot or migration opens its disks
 * as the overlays they now are. */
static void disks_checkpointed(struct vm_api *a)
{
	for (unsigned k = 0; k < a->cfg->ndisks; k++) {
		struct virtio_device *d = vm_pci_disk(a->vm, k);
		if (d && virtio_blk_format(d) == BLK_FORMAT_QCOW2)
			describe_frozen_disk(&a->cfg->disk[k], d);
	}
}

/* What refuses a snapshot of this VM now, as an HTTP status and a message (0: none). */
static int snapshot_refusal(struct vm_api *a, int *status, vt_err *err)
{
	*status = 400;
	if (vm_api_removing(a)) {
		*status = 409;
		return vt_fail(err, "%s '%s' is being removed: snapshot once it is gone or stays", vm_api_removal_kind(a),
			       a->removal.id);
	}
	if (!vm_is_paused(a->vm))
		return vt_fail(err, "the VM must be paused first (PATCH /vm {\"state\": \"Paused\"})");
	return vm_snapshot_supported(a->vm, err);
}

/* Firecracker's SnapshotCreateParams: a full snapshot of a paused VM into two new files (and, a virtus
 * extension, its writable disks frozen beside the state file). */
static void put_snapshot_create(struct vm_api *a, const struct api_request *req, struct api_reply *r)
{
	static const char *const known[] = { "snapshot_path", "mem_file_path", "snapshot_type", "version", NULL };
	json_object *o = vm_api_parse_body(req, r);
	if (!o)
		return;
	const char *state = vm_api_string_field(o, "snapshot_path", "a path for the state file", r), *mem = NULL, *type = NULL;
	char *config = NULL, layers[VM_MAX_DISKS][32];
	vt_err err;
	int status;
	if (!state || !(mem = vm_api_string_field(o, "mem_file_path", "a path for the memory file", r)) ||
	    !vm_api_optional_string(o, "snapshot_type", &type, r) || !vm_api_only_fields(o, known, r)) {
		/* answered */
	} else if (type && strcmp(type, "Full")) {
		vm_api_fault(r, 400, "snapshot_type: '%s' is not supported (only \"Full\")", type);
	} else if (a->jailed) {
		vm_api_fault(r, 400, "the VMM is jailed (--jail): it cannot create files on the host by path (virtus vm "
			     "snapshot hands it the files it made; docs/snapshot.md)");
	} else if (snapshot_refusal(a, &status, &err) < 0) {
		vm_api_fault(r, status, "%s", err.msg);
	} else if (!(config = snapshot_config(a, layers))) {
		vm_api_fault(r, 500, "out of memory");
	} else if (vm_snapshot_save(a->vm, state, mem, config, &err) < 0) {
		vm_api_fault(r, strstr(err.msg, "cannot create") || strstr(err.msg, "absolute") ? 400 : 500, "%s", err.msg);
	} else {
		disks_checkpointed(a);
		r->status = 204;
	}
	free(config);
	json_object_put(o);
}

/* A snapshot into the files a handoff brought (the state file, then the memory file). */
static int handoff_snapshot(struct vm_api *a, struct handoff_request *req, vt_err *err)
{
	char layers[VM_MAX_DISKS][32];
	int status;
	if (req->nfds != 2)
		return vt_fail(err, "snapshot: expected 2 descriptors (the state file, the memory file), got %u", req->nfds);
	if (snapshot_refusal(a, &status, err) < 0)
		return -1;
	char *config = snapshot_config(a, layers);
	if (!config)
		return vt_fail_errno(err, ENOMEM, "snapshot");
	int state_fd = req->fds[0];
	req->fds[0] = -1; /* vm_snapshot_save_fds closes it */
	int rc = vm_snapshot_save_fds(a->vm, state_fd, req->fds[1], config, err);
	free(config);
	return rc;
}

void vm_api_handoff(struct vm_api *a, int listen_fd)
{
	struct handoff_request req;
	if (handoff_accept(listen_fd, &req) != 0)
		return;
	vt_err err;
	int rc = !strcmp(req.op, "snapshot") ? handoff_snapshot(a, &req, &err)
					     : vt_fail(&err, "'%s' is not a handoff this VMM takes", req.op);
	handoff_answer(&req, rc < 0 ? &err : NULL);
}

/* ---- Migration (a virtus extension in Firecracker's style) ----------------------------------------------- */

#define MIGRATION_CONNECT_MS 10000
#define MIGRATION_SEND_TIMEOUT_S 30

/* A destination that stops reading fails the migration instead of holding the VMM's control loop. */
static int connect_destination(const char *url, vt_err *err)
{
	int fd = sock_url_connect(url, MIGRATION_CONNECT_MS, true, err);
	struct timeval tv = { .tv_sec = MIGRATION_SEND_TIMEOUT_S };
	if (fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0) {
		close(fd);
		return vt_fail_errno(err, errno, "the connection to %s", url);
	}
	return fd;
}

void vm_api_release(struct vm_api *a)
{
	migration_out_free(a->migration);
	a->migration = NULL;
	for (unsigned k = 0; k < VM_MAX_DISKS; k++) {
		free(a->disk_path[k]);
		free(a->disk_serial[k]);
		a->disk_path[k] = a->disk_serial[k] = NULL;
	}
	free(a->cdrom_path);
	a->cdrom_path = NULL;
	for (unsigned k = 0; k < VM_MAX_NETS; k++) {
		free(a->net_spec[k]);
		free(a->net_id[k]);
		a->net_spec[k] = a->net_id[k] = NULL;
	}
}

bool vm_api_migrating(const struct vm_api *a)
{
	struct migration_progress p;
	if (!a->migration)
		return false;
	migration_out_progress(a->migration, &p);
	return p.phase == MIGRATION_ACTIVE || p.phase == MIGRATION_COMPLETED;
}

/* {"destination_url": "tcp:ADDR:PORT" | "unix:PATH", "downtime_ms": 300}: starts sending; GET /migrate follows. */
static void put_migrate(struct vm_api *a, const struct api_request *req, struct api_reply *r)
{
	static const char *const known[] = { "destination_url", "downtime_ms", NULL };
	json_object *o = vm_api_parse_body(req, r);
	if (!o)
		return;
	const char *url = vm_api_string_field(o, "destination_url", "tcp:ADDR:PORT or unix:PATH", r);
	int64_t downtime = MIGRATION_DEFAULT_DOWNTIME_MS;
	char *config = NULL;
	vt_err err;
	int fd;
	if (!url || !vm_api_int_field(o, "downtime_ms", false, 1, MIGRATION_MAX_DOWNTIME_MS, &downtime, r) ||
	    !vm_api_only_fields(o, known, r)) {
		/* answered */
	} else if (strlen(url) >= sizeof(a->migration_url)) {
		vm_api_fault(r, 400, "destination_url: longer than %zu bytes", sizeof(a->migration_url) - 1);
	} else if (vm_api_removing(a)) {
		vm_api_fault(r, 409, "%s '%s' is being removed: migrate once it is gone or stays", vm_api_removal_kind(a), a->removal.id);
	} else if (__atomic_load_n(&a->vm->stopping, __ATOMIC_SEQ_CST)) {
		vm_api_fault(r, 400, "the VM is stopping");
	} else if (vm_api_migrating(a)) {
		vm_api_fault(r, 409, "a migration is already running (GET /migrate)");
	} else if (vm_snapshot_supported(a->vm, &err) < 0) {
		vm_api_fault(r, 400, "this VM cannot be migrated: %s", err.msg);
	} else if (a->jailed && !strncmp(url, "unix:", 5)) {
		vm_api_fault(r, 400, "destination_url: the VMM is jailed (--jail) and reaches no host path: migrate it "
			     "over tcp: (its jail shares the host's network when the VM has --net)");
	} else if (a->jail_own_network) {
		vm_api_fault(r, 400, "destination_url: the VMM is jailed (--jail) in a network namespace of its own "
			     "(the VM has no --net): it reaches no other host");
	} else if (!(config = vm_devices_to_json(a->cfg))) {
		vm_api_fault(r, 500, "out of memory");
	} else if ((fd = connect_destination(url, &err)) < 0) {
		vm_api_fault(r, 400, "destination_url: %s", err.msg);
	} else {
		migration_out_free(a->migration);
		a->migration = NULL;
		a->migration_end_reported = false;
		if (migration_out_start(a->vm, fd, (unsigned)downtime, config, &a->migration, &err) < 0) {
			vm_api_fault(r, 500, "%s", err.msg);
		} else {
			snprintf(a->migration_url, sizeof(a->migration_url), "%s", url);
			r->status = 204;
		}
	}
	free(config);
	json_object_put(o);
}

static void add_mib(json_object *o, const char *key, uint64_t bytes)
{
	char text[32]; /* one decimal, as written: a double would print 75.599999999999994 */
	double mib = (double)(bytes * 10 / MiB) / 10;
	snprintf(text, sizeof(text), "%.1f", mib);
	json_object_object_add(o, key, json_object_new_double_s(mib, text));
}

static void get_migrate(struct vm_api *a, struct api_reply *r)
{
	struct migration_progress p = { .phase = MIGRATION_NONE };
	json_object *o = json_object_new_object();
	if (a->migration)
		migration_out_progress(a->migration, &p);
	json_object_object_add(o, "state", json_object_new_string(migration_phase_name(p.phase)));
	if (p.phase != MIGRATION_NONE) {
		json_object_object_add(o, "destination_url", json_object_new_string(a->migration_url));
		json_object_object_add(o, "pass", json_object_new_int((int)p.pass));
		add_mib(o, "ram_mib", p.ram_bytes);
		add_mib(o, "sent_mib", p.sent_bytes);
		add_mib(o, "remaining_mib", p.remaining_bytes);
		add_mib(o, "dirty_mib_per_s", p.dirty_bytes_s);
		add_mib(o, "bandwidth_mib_per_s", p.bandwidth_bytes_s);
		json_object_object_add(o, "total_ms", json_object_new_int64((int64_t)p.total_ms));
	}
	if (p.phase == MIGRATION_COMPLETED)
		json_object_object_add(o, "downtime_ms", json_object_new_int64((int64_t)p.downtime_ms));
	if (p.phase == MIGRATION_FAILED)
		json_object_object_add(o, "error", json_object_new_string(p.error));
	if (p.phase == MIGRATION_COMPLETED || p.phase == MIGRATION_FAILED)
		a->migration_end_reported = true;
	vm_api_reply_json(r, 200, o);
}

/* ---- A VMM waiting for a migration ------------------------------------------------------------------------ */

void vm_api_waiting_handle(void *opaque, const struct api_request *req, struct api_reply *r)
{
	struct vm_api_waiting *w = opaque;
	if (vm_api_is(req, "GET", "/")) {
		vm_api_reply_json(r, 200, vm_api_instance_info(w->id, "Waiting for migration", w->version));
		return;
	}
	if (!vm_api_is(req, "PUT", "/actions")) {
		vm_api_fault(r, 400, "%s %s: the VM has not arrived yet (it waits for a migration on %s)", req->method,
			     req->path, w->url);
		return;
	}
	static const char *const known[] = { "action_type", NULL };
	json_object *o = vm_api_parse_body(req, r);
	if (!o)
		return;
	const char *action = vm_api_string_field(o, "action_type", "\"Kill\"", r);
	if (!action || !vm_api_only_fields(o, known, r)) {
		/* answered */
	} else if (strcmp(action, "Kill")) {
		vm_api_fault(r, 400, "action_type %s: the VM has not arrived yet; only Kill ends the wait", action);
	} else {
		w->killed = true;
		r->status = 204;
	}
	json_object_put(o);
}

/* ---- Routing -------------------------------------------------------------------------------------------- */

bool vm_api_id_chars(const char *key, const char *id, struct api_reply *r)
{
	if (id[strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")]) {
		vm_api_fault(r, 400, "%s: use letters, digits, '_' and '-'", key);
		return false;
	}
	return true;
}

bool vm_api_is(const struct api_request *req, const char *method, const char *path)
{
	return !strcmp(req->method, method) && !strcmp(req->path, path);
}

/* The pre-boot resources exist (Firecracker's clients PUT them) but only before the VM starts. */
bool vm_api_pre_boot_resource(const char *path)
{
	static const char *const exact[] = { "/boot-source", "/machine-config", "/vsock", "/balloon", "/logger",
					     "/metrics", "/mmds/config", "/entropy", NULL };
	static const char *const prefix[] = { "/drives/", "/network-interfaces/", NULL };
	for (const char *const *p = exact; *p; p++)
		if (!strcmp(path, *p))
			return true;
	for (const char *const *p = prefix; *p; p++)
		if (!strncmp(path, *p, strlen(*p)) && path[strlen(*p)])
			return true;
	return false;
}

static bool known_path(const char *path)
{
	return !strcmp(path, "/") || !strcmp(path, "/vm") || !strcmp(path, "/vm/config") ||
	       !strcmp(path, "/actions") || !strcmp(path, "/snapshot/create") || !strcmp(path, "/snapshot/load") ||
	       !strcmp(path, "/migrate") || vm_api_hardware_path(path) ||
	       vm_api_pre_boot_resource(path);
}

void vm_api_handle(void *opaque, const struct api_request *req, struct api_reply *r)
{
	struct vm_api *a = opaque;
	if (vm_api_hardware_route(a, req, r))
		return;
	if (vm_api_is(req, "GET", "/"))
		get_instance_info(a, r);
	else if (vm_api_is(req, "GET", "/vm/config"))
		vm_api_reply_json(r, 200, vm_api_config_json(a->cfg));
	else if (vm_api_is(req, "GET", "/machine-config"))
		vm_api_reply_json(r, 200, machine_config(a->cfg));
	else if (vm_api_is(req, "PATCH", "/vm"))
		patch_vm(a, req, r);
	else if (vm_api_is(req, "GET", "/metrics"))
		vm_api_reply_json(r, 200, vm_api_metrics_json(a));
	else if (vm_api_is(req, "PUT", "/actions"))
		put_actions(a, req, r);
	else if (vm_api_is(req, "PUT", "/snapshot/create"))
		put_snapshot_create(a, req, r);
	else if (vm_api_is(req, "PUT", "/migrate"))
		put_migrate(a, req, r);
	else if (vm_api_is(req, "GET", "/migrate"))
		get_migrate(a, r);
	else if (vm_api_is(req, "PUT", "/snapshot/load"))
		vm_api_fault(r, 400, "PUT /snapshot/load: the microVM is already running (restore with virtus vm run --restore DIR)");
	else if ((!strcmp(req->method, "PUT") || !strcmp(req->method, "PATCH")) && vm_api_pre_boot_resource(req->path))
		vm_api_fault(r, 400, "%s %s: the operation is not supported after starting the microVM", req->method, req->path);
	else if (known_path(req->path))
		vm_api_fault(r, 405, "%s is not a method of %s", req->method, req->path);
	else
		vm_api_fault(r, 404, "no resource %s", req->path);
}

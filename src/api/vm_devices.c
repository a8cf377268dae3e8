/* A VM's devices as JSON (contract in vm_devices.h). */
#include "api/vm_devices.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/virtio/vsock.h"
#include "lib/util.h"
#include "net/net_opts.h"

char *vm_devices_to_json(const struct vm_config *c)
{
	json_object *o = json_object_new_object(), *disks = json_object_new_array(), *nets = json_object_new_array();
	json_object_object_add(o, "rng", json_object_new_boolean(c->rng));
	json_object_object_add(o, "virtio_console", json_object_new_boolean(c->virtio_console));
	json_object_object_add(o, "balloon", json_object_new_boolean(c->balloon));
	json_object_object_add(o, "balloon_mib", json_object_new_int64((int64_t)(c->balloon_size / MiB)));
	json_object_object_add(o, "balloon_stats_s", json_object_new_int((int)c->balloon_stats_s));
	for (unsigned i = 0; i < c->ndisks; i++) {
		json_object *d = json_object_new_object();
		json_object_object_add(d, "path", json_object_new_string(c->disk[i].path));
		json_object_object_add(d, "readonly", json_object_new_boolean(c->disk[i].readonly));
		if (c->disk[i].serial)
			json_object_object_add(d, "serial", json_object_new_string(c->disk[i].serial));
		if (c->disk[i].format != BLK_FORMAT_AUTO)
			json_object_object_add(d, "format", json_object_new_string(blk_format_name(c->disk[i].format)));
		if (c->disk[i].layer)
			json_object_object_add(d, "layer", json_object_new_string(c->disk[i].layer));
		if (c->disk[i].pci_slot)
			json_object_object_add(d, "pci_slot", json_object_new_int((int)c->disk[i].pci_slot));
		json_object_array_add(disks, d);
	}
	json_object_object_add(o, "disks", disks);
	if (c->pci_reserved)
		json_object_object_add(o, "pci_reserved", json_object_new_int64(c->pci_reserved));
	for (unsigned i = 0; i < c->nnets; i++) {
		if (!c->net_id[i] && !c->net_slot[i]) {    /* given at start: its spec says it all */
			json_object_array_add(nets, json_object_new_string(c->net[i]));
			continue;
		}
		json_object *n = json_object_new_object();
		json_object_object_add(n, "spec", json_object_new_string(c->net[i]));
		if (c->net_id[i])
			json_object_object_add(n, "id", json_object_new_string(c->net_id[i]));
		if (c->net_slot[i])
			json_object_object_add(n, "pci_slot", json_object_new_int((int)c->net_slot[i]));
		json_object_array_add(nets, n);
	}
	json_object_object_add(o, "nets", nets);
	if (c->vsock_cid) {
		json_object *v = json_object_new_object();
		json_object_object_add(v, "cid", json_object_new_int64((int64_t)c->vsock_cid));
		json_object_object_add(v, "path", json_object_new_string(c->vsock_path));
		json_object_object_add(o, "vsock", v);
	}
	if (c->cdrom) {
		json_object *cd = json_object_new_object();
		if (c->cdrom_path)
			json_object_object_add(cd, "path", json_object_new_string(c->cdrom_path));
		json_object_object_add(o, "cdrom", cd);
	}
	char *text = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return text;
}

/* ---- Reading: every member checked, a missing one means "none" ------------------------------------------ */

static json_object *member(json_object *o, const char *key, json_type type, bool *bad)
{
	json_object *v;
	if (!json_object_object_get_ex(o, key, &v))
		return NULL;
	if (!json_object_is_type(v, type)) {
		*bad = true;
		return NULL;
	}
	return v;
}

static int copy(const char *what, json_object *s, char *out, size_t len, vt_err *err)
{
	if (!s || !json_object_is_type(s, json_type_string) || !json_object_get_string_len(s) ||
	    (size_t)json_object_get_string_len(s) >= len)
		return vt_fail(err, "the source's configuration: %s is missing, not a string or too long", what);
	memcpy(out, json_object_get_string(s), (size_t)json_object_get_string_len(s) + 1);
	return 0;
}

static int read_disks(json_object *a, struct vm_config *c, struct vm_devices_store *st, vt_err *err)
{
	size_t n = json_object_array_length(a);
	uint32_t taken = 0;
	if (n > VM_MAX_DISKS)
		return vt_fail(err, "the source's configuration has %zu disks (at most %d)", n, VM_MAX_DISKS);
	for (size_t i = 0; i < n; i++) {
		json_object *d = json_object_array_get_idx(a, i), *path, *ro, *serial, *fmt, *layer, *slot;
		if (!json_object_is_type(d, json_type_object) || !json_object_object_get_ex(d, "path", &path) ||
		    copy("a disk's path", path, st->disk_path[i], sizeof(st->disk_path[i]), err) < 0)
			return vt_fail(err, "the source's configuration: disk %zu is malformed", i + 1);
		c->disk[i] = (struct vm_disk_config){ .path = st->disk_path[i] };
		if (json_object_object_get_ex(d, "readonly", &ro))
			c->disk[i].readonly = json_object_get_boolean(ro);
		if (json_object_object_get_ex(d, "serial", &serial)) {
			if (copy("a disk's serial", serial, st->disk_serial[i], sizeof(st->disk_serial[i]), err) < 0)
				return -1;
			c->disk[i].serial = st->disk_serial[i];
		}
		if (json_object_object_get_ex(d, "format", &fmt)) {
			const char *f = json_object_get_string(fmt);
			if (!f || (strcmp(f, "raw") && strcmp(f, "qcow2")))
				return vt_fail(err, "the source's configuration: disk %zu has an unknown format", i + 1);
			c->disk[i].format = !strcmp(f, "raw") ? BLK_FORMAT_RAW : BLK_FORMAT_QCOW2;
		}
		if (json_object_object_get_ex(d, "layer", &layer)) {
			/* a file in the snapshot's directory, nothing else */
			if (copy("a disk's layer", layer, st->disk_layer[i], sizeof(st->disk_layer[i]), err) < 0)
				return -1;
			if (strchr(st->disk_layer[i], '/') || st->disk_layer[i][0] == '.')
				return vt_fail(err, "the source's configuration: disk %zu's layer '%s' is not a plain file name",
					       i + 1, st->disk_layer[i]);
			c->disk[i].layer = st->disk_layer[i];
		}
		if (json_object_object_get_ex(d, "pci_slot", &slot)) {
			int64_t s = json_object_get_int64(slot);
			if (!json_object_is_type(slot, json_type_int) || s < 1 || s >= PCI_MAX_SLOTS || (taken & (1u << s)))
				return vt_fail(err, "the source's configuration: disk %zu's PCI slot is not one of 1 to %d, or "
						    "another disk's", i + 1, PCI_MAX_SLOTS - 1);
			c->disk[i].pci_slot = (unsigned)s;
			taken |= 1u << s;
		}
	}
	c->ndisks = (unsigned)n;
	return 0;
}

static int read_nets(json_object *a, struct vm_config *c, struct vm_devices_store *st, vt_err *err)
{
	size_t n = json_object_array_length(a);
	if (n > VM_MAX_NETS)
		return vt_fail(err, "the source's configuration has %zu network interfaces (at most %d)", n, VM_MAX_NETS);
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(a, i), *spec = e, *id, *slot;
		bool obj = json_object_is_type(e, json_type_object);
		if (obj && !json_object_object_get_ex(e, "spec", &spec))
			return vt_fail(err, "the source's configuration: network interface %zu has no spec", i + 1);
		if (copy("a network interface", spec, st->net[i], sizeof(st->net[i]), err) < 0)
			return -1;
		c->net[i] = st->net[i];
		c->net_id[i] = NULL;
		c->net_slot[i] = 0;
		if (obj && json_object_object_get_ex(e, "id", &id)) {
			if (copy("a network interface's ID", id, st->net_id[i], sizeof(st->net_id[i]), err) < 0)
				return -1;
			c->net_id[i] = st->net_id[i];
		}
		if (obj && json_object_object_get_ex(e, "pci_slot", &slot)) {
			int64_t sl = json_object_get_int64(slot);
			if (!json_object_is_type(slot, json_type_int) || sl < 1 || sl >= PCI_MAX_SLOTS)
				return vt_fail(err, "the source's configuration: network interface %zu's PCI slot is not one of 1 "
						    "to %d", i + 1, PCI_MAX_SLOTS - 1);
			c->net_slot[i] = (unsigned)sl;
		}
	}
	c->nnets = (unsigned)n;
	return 0;
}

/* Interface i as the guest knew it on the source, with the command line's host side: the source's ID, PCI
 * slot and MAC (a tap's default MAC comes from its name, and the destination's tap is another one). */
static int adopt_net_identity(struct vm_config *c, unsigned i, const struct vm_config *src,
			      struct vm_devices_store *st, vt_err *err)
{
	struct net_opts mine, theirs;
	if (net_opts_parse(c->net[i], &mine, err) < 0)
		return -1;
	if (net_opts_parse(src->net[i], &theirs, err) < 0)
		return vt_err_prefix(err, "the source's configuration");
	if (src->net_id[i]) {
		snprintf(st->net_id[i], sizeof(st->net_id[i]), "%s", src->net_id[i]);
		c->net_id[i] = st->net_id[i];
	}
	c->net_slot[i] = src->net_slot[i];
	if (mine.mac_set)
		return 0;
	net_opts_default_mac(&theirs, i);
	const uint8_t *m = theirs.mac;
	if ((size_t)snprintf(st->net[i], sizeof(st->net[i]), "%s,mac=%02x:%02x:%02x:%02x:%02x:%02x", c->net[i], m[0], m[1],
			     m[2], m[3], m[4], m[5]) >= sizeof(st->net[i]))
		return vt_fail(err, "--net '%s': too long", c->net[i]);
	c->net[i] = st->net[i];
	return 0;
}

/* --net given with a VM that the source brings: one per source interface, in its order, each taking that
 * interface's identity (the guest's drivers hold the slot and MAC they found). */
static int adopt_net_identities(json_object *a, struct vm_config *c, struct vm_devices_store *st, vt_err *err)
{
	struct vm_config src = { 0 };
	struct vm_devices_store *tmp = calloc(1, sizeof(*tmp));
	if (!tmp)
		return vt_fail(err, "out of memory");
	int rc = read_nets(a, &src, tmp, err);
	if (rc == 0 && src.nnets != c->nnets)
		rc = vt_fail(err, "the source VM has %u network interface%s and %u --net %s given: give one --net per "
				  "interface, in the source's order (each takes that interface's ID, PCI slot and MAC)",
			     src.nnets, src.nnets == 1 ? "" : "s", c->nnets, c->nnets == 1 ? "was" : "were");
	for (unsigned i = 0; rc == 0 && i < c->nnets; i++)
		rc = adopt_net_identity(c, i, &src, st, err);
	free(tmp);
	return rc;
}

static int read_vsock(json_object *v, struct vm_config *c, struct vm_devices_store *st, vt_err *err)
{
	json_object *cid, *path;
	if (!json_object_object_get_ex(v, "cid", &cid) || !json_object_is_type(cid, json_type_int) ||
	    json_object_get_int64(cid) < VSOCK_CID_MIN || (uint64_t)json_object_get_int64(cid) > VSOCK_CID_MAX ||
	    !json_object_object_get_ex(v, "path", &path) ||
	    copy("the vsock socket's path", path, st->vsock_path, sizeof(st->vsock_path), err) < 0)
		return vt_fail(err, "the source's configuration: its vsock is malformed");
	c->vsock_cid = (uint64_t)json_object_get_int64(cid);
	c->vsock_path = st->vsock_path;
	return 0;
}

static int read_cdrom(json_object *cd, struct vm_config *c, struct vm_devices_store *st, vt_err *err)
{
	json_object *path;
	c->cdrom = true;
	c->cdrom_path = NULL;
	if (!json_object_object_get_ex(cd, "path", &path))
		return 0;                          /* an empty drive */
	if (copy("the CD's image path", path, st->cdrom_path, sizeof(st->cdrom_path), err) < 0)
		return -1;
	c->cdrom_path = st->cdrom_path;
	return 0;
}

static int read_devices(json_object *o, struct vm_config *c, struct vm_devices_store *st, vt_err *err)
{
	bool bad = false;
	json_object *rng = member(o, "rng", json_type_boolean, &bad), *con = member(o, "virtio_console", json_type_boolean, &bad);
	json_object *balloon = member(o, "balloon", json_type_boolean, &bad);
	json_object *mib = member(o, "balloon_mib", json_type_int, &bad), *stats = member(o, "balloon_stats_s", json_type_int, &bad);
	json_object *disks = member(o, "disks", json_type_array, &bad), *nets = member(o, "nets", json_type_array, &bad);
	json_object *vsock = member(o, "vsock", json_type_object, &bad), *reserved = member(o, "pci_reserved", json_type_int, &bad);
	json_object *cdrom = member(o, "cdrom", json_type_object, &bad);
	if (bad)
		return vt_fail(err, "the source's configuration has a member of the wrong type");
	if (!c->rng && rng)
		c->rng = json_object_get_boolean(rng);
	if (!c->virtio_console && con)
		c->virtio_console = json_object_get_boolean(con);
	/* before "balloon" was written, a balloon was there when its target was not 0 */
	if (!c->balloon && mib && (balloon ? json_object_get_boolean(balloon) : json_object_get_int64(mib) != 0)) {
		int64_t m = json_object_get_int64(mib), s = stats ? json_object_get_int64(stats) : 0;
		if (m < 0 || m > (1 << 22) || s < 0 || s > 3600)
			return vt_fail(err, "the source's configuration: its balloon is out of range");
		c->balloon = true;
		c->balloon_size = (uint64_t)m * MiB;
		c->balloon_stats_s = (unsigned)s;
	}
	if (!c->ndisks && disks && reserved) { /* the slots go with the source's disks, never with --disk */
		int64_t r = json_object_get_int64(reserved);
		if (r < 0 || r > UINT32_MAX || (r & 1))
			return vt_fail(err, "the source's configuration: pci_reserved is not a set of slots 1 to %d",
				       PCI_MAX_SLOTS - 1);
		c->pci_reserved = (uint32_t)r;
	}
	if ((!c->ndisks && disks && read_disks(disks, c, st, err) < 0) ||
	    (nets && (c->nnets ? adopt_net_identities(nets, c, st, err) : read_nets(nets, c, st, err)) < 0) ||
	    (!c->vsock_cid && vsock && read_vsock(vsock, c, st, err) < 0) ||
	    (!c->cdrom && cdrom && read_cdrom(cdrom, c, st, err) < 0))
		return -1;
	return 0;
}

int vm_devices_from_json(const char *text, struct vm_config *c, struct vm_devices_store *st, vt_err *err)
{
	enum json_tokener_error jerr;
	json_object *o = json_tokener_parse_verbose(text, &jerr);
	if (!o || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return vt_fail(err, "the source's configuration is not a JSON object");
	}
	int rc = read_devices(o, c, st, err);
	json_object_put(o);
	return rc;
}

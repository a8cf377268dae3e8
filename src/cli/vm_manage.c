/* `virtus vm ls|info|pause|resume|kill|console|logs`: clients of each VM's API (api/http.h) and of its
 * directory (vm_state.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api/handoff.h"
#include "api/http.h"
#include "cli/cli.h"
#include "cli/vm_state.h"
#include "lib/sock_url.h"
#include "lib/termsafe.h"
#include "lib/unixsock.h"
#include "lib/util.h"
#include "vmm/state/migration.h"

#define API_TIMEOUT_MS 5000
#define KILL_WAIT_MS 5000

const char vm_manage_usage[] =
	"usage: virtus vm ls\n"
	"       virtus vm info [--json] NAME\n"
	"       virtus vm metrics [--json] NAME\n"
	"       virtus vm pause NAME | resume NAME | kill NAME\n"
	"       virtus vm stop [-t SECS] NAME\n"
	"       virtus vm snapshot [--stop] NAME DIR\n"
	"       virtus vm migrate [--downtime MS] NAME tcp:HOST:PORT|unix:PATH\n"
	"       virtus vm balloon NAME [SIZE]\n"
	"       virtus vm disk NAME add ID PATH [--ro] | NAME remove ID [--timeout SECS] | NAME change ID PATH\n"
	"       virtus vm net NAME add ID tap=TAP[,mac=MAC] | NAME remove ID [--timeout SECS]\n"
	"       virtus vm cd NAME [insert ISO [--force] | eject [--force]]\n"
	"       virtus vm console NAME\n"
	"       virtus vm logs NAME\n"
	"       virtus vm api NAME METHOD PATH [JSON]\n"
	"\n"
	"  ls       the VMs of this host: name, state, vCPUs, memory, uptime, pid, API socket\n"
	"  info     a VM's state and configuration (--json: as the API gives them)\n"
	"  metrics  the VM's counters (GET /metrics): uptime, vCPU exits by reason, and per device its own\n"
	"           counters (disk requests and bytes, frames, connections, balloon pages) and each queue's\n"
	"           kicks and interrupts; one 'name value' per line (DEVICE.COUNTER, DEVICE.qN.COUNTER)\n"
	"  pause    stop the VM's vCPUs where they are (its devices finish what is in flight); resume goes on\n"
	"  kill     end the VM now (no shutdown in the guest)\n"
	"  stop     press the guest's ACPI power button and wait for it to power off; after SECS (-t, default\n"
	"           10) end it as kill does\n"
	"  snapshot a checkpoint of the VM in the new directory DIR (its vCPUs, devices and memory: DIR/state,\n"
	"           DIR/memory, where zero pages take no space; each writable disk's image as it is, DIR/diskK.*,\n"
	"           while the VM goes on in a new qcow2 overlay at the disk's path); the VM is paused meanwhile and\n"
	"           goes on after (--stop: ends); 'virtus vm run --restore DIR' continues it, its disks put back\n"
	"  migrate  move the running VM, live, to a 'virtus vm run --incoming URL' waiting at URL (disks must be\n"
	"           at the same paths there, or given to --incoming): memory is copied while the guest runs,\n"
	"           then the guest pauses for at most about --downtime MS (default 300) while the rest and\n"
	"           the device state move; progress on stderr. On success the VM ends here; on any failure\n"
	"           it goes on here\n"
	"  balloon  set the target of the VM's balloon (started with --balloon) to SIZE (whole MiB, e.g. 256M; 0\n"
	"           gives everything back): the guest hands that much of its RAM to the host, which frees it.\n"
	"           Without SIZE: the target, what the guest has given (target_mib, actual_mib) and the guest's\n"
	"           memory statistics, one 'name value' per line\n"
	"  disk     add: plug a new virtio-blk disk into the running VM (ACPI PCI hot-plug), its serial ID (1 to\n"
	"           20 letters, digits, '_', '-'); the guest's kernel finds it (Linux: /dev/disk/by-id/virtio-ID)\n"
	"           remove: ask the guest to let go of disk ID (ACPI eject), and wait until it has (the disk goes)\n"
	"           or SECS (default 10) have passed (the disk stays, exit status 1). Linux lets go of a mounted\n"
	"           disk too, and its file system then fails: unmount first\n"
	"           change: give the running VM's disk ID (its id=, else vda, vdb, ... by --disk order) the image\n"
	"           PATH (raw or qcow2, probed; read-only if the disk is): the guest is told of its new capacity\n"
	"           and reads the new image from then on. Safe only while the guest does not use the disk (not\n"
	"           mounted): a mounted file system would find another disk under it\n"
	"  net      add: plug a new virtio-net interface ID (1 to 15 letters, digits, '_', '-') on the tap device\n"
	"           TAP (created if missing, gone when the VM ends or the interface leaves) into the running VM;\n"
	"           the guest's kernel finds it (Linux: a new ethN). remove: as disk remove. Snapshots and\n"
	"           migrations keep interfaces in their slots with their IDs and MACs\n"
	"  cd       the VM's CD drive (started with --cdrom): insert puts the ISO image in (a disc already there\n"
	"           is swapped out), eject takes the disc out; the guest sees the change at its next look (Linux:\n"
	"           mounting /dev/sr0, or its media polling). While the guest has locked the tray (a mounted disc)\n"
	"           both are refused unless --force. Without a verb: the disc and the tray's state\n"
	"  console  attach to a detached VM's console; Ctrl-A x detaches and leaves the VM running,\n"
	"           Ctrl-A Ctrl-A sends Ctrl-A\n"
	"  logs     what a detached VM's console printed (the latest 1 MiB at most)\n"
	"  api      one request to the VM's API (docs/api.md), e.g. 'virtus vm api web1 GET /vm/config': the\n"
	"           answer's body on stdout; status 0 for a 2xx answer, else 1 with the HTTP status on stderr\n";

static int fail(const char *what, const vt_err *err)
{
	fprintf(stderr, "virtus: %s%s%s\n", what ? what : "", what ? ": " : "", err->msg);
	return 1;
}

/* One API request to VM `name`; a non-2xx answer is an error carrying the VM's fault_message. The reply
 * body (JSON) is returned in *out when out is not NULL. */
/* status: the HTTP status, if the VM answered (NULL: not wanted). */
static int vm_call(const struct vm_state *st, const char *method, const char *uri, const char *body,
		   int *status_out, json_object **out, vt_err *err)
{
	int status;
	cleanup_free char *reply = NULL;
	if (out)
		*out = NULL;
	if (api_call(st->api_socket, method, uri, body, API_TIMEOUT_MS, &status, &reply, err) < 0)
		return -1;
	if (status_out)
		*status_out = status;
	json_object *o = *reply ? json_tokener_parse(reply) : NULL;
	if (status < 200 || status > 299) {
		json_object *m;
		const char *msg = o && json_object_object_get_ex(o, "fault_message", &m) ? json_object_get_string(m) : reply;
		vt_fail(err, "VM '%s' answered %d: %s", st->name, status, msg);
		json_object_put(o);
		return -1;
	}
	if (out)
		*out = o;
	else
		json_object_put(o);
	return 0;
}

static int vm_request(const struct vm_state *st, const char *method, const char *uri, const char *body,
		      json_object **out, vt_err *err)
{
	return vm_call(st, method, uri, body, NULL, out, err);
}

static const char *get_str(json_object *o, const char *key)
{
	json_object *v;
	return o && json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "-";
}

static int64_t get_int(json_object *o, const char *key)
{
	json_object *v;
	return o && json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : 0;
}

static void format_uptime(long long started, char *out, size_t len)
{
	long long s = (long long)time(NULL) - started;
	if (started <= 0 || s < 0)
		snprintf(out, len, "-");
	else if (s < 120)
		snprintf(out, len, "%llds", s);
	else if (s < 7200)
		snprintf(out, len, "%lldm", s / 60);
	else if (s < 172800)
		snprintf(out, len, "%lldh", s / 3600);
	else
		snprintf(out, len, "%lldd", s / 86400);
}

/* One line of `vm ls`; a VM whose VMM is gone is removed instead (false). */
static bool list_one(const char *name)
{
	struct vm_state st;
	vt_err err;
	if (vm_state_load(name, &st, &err) < 0)
		return false; /* starting (no vm.json yet) or removed meanwhile */
	if (!vm_state_alive(&st)) {
		vm_state_remove(&st);
		return false;
	}
	json_object *info = NULL, *mc = NULL;
	const char *state = "unresponsive";
	if (vm_request(&st, "GET", "/", NULL, &info, &err) == 0) {
		state = get_str(info, "state");
		vm_request(&st, "GET", "/machine-config", NULL, &mc, &err);
	}
	char uptime[24], mem[24];
	format_uptime(st.started, uptime, sizeof(uptime));
	snprintf(mem, sizeof(mem), "%lldM", (long long)get_int(mc, "mem_size_mib"));
	printf("%-20s %-12s %4lld %8s %7s %8d  %s\n", st.name, state, (long long)get_int(mc, "vcpu_count"),
	       mc ? mem : "-", uptime, (int)st.pid, st.api_socket);
	json_object_put(info);
	json_object_put(mc);
	return true;
}

static int vm_ls(int argc, char **argv)
{
	(void)argv;
	if (argc > 1)
		return fprintf(stderr, "virtus vm ls: unexpected argument '%s'\n", argv[1]), EXIT_USAGE;
	char **names;
	size_t n;
	vt_err err;
	if (vm_state_list(&names, &n, &err) < 0)
		return fail(NULL, &err);
	printf("%-20s %-12s %4s %8s %7s %8s  %s\n", "NAME", "STATE", "CPUS", "MEMORY", "UPTIME", "PID", "API");
	for (size_t i = 0; i < n; i++)
		list_one(names[i]);
	vm_state_free_names(names, n);
	return 0;
}

/* The VM called name, loaded; the exit status on failure, -1 when loaded. */
static int load_vm(const char *name, struct vm_state *st)
{
	vt_err err;
	if (vm_state_load(name, st, &err) < 0)
		return fail(NULL, &err);
	if (!vm_state_alive(st)) {
		vm_state_remove(st);
		return fprintf(stderr, "virtus: VM '%s' is no longer running\n", st->name), 1;
	}
	return -1;
}

/* The single NAME argument of a verb, loaded; the exit status on failure, -1 when loaded. */
static int load_named(int argc, char **argv, int first, struct vm_state *st)
{
	if (argc - first != 1)
		return fprintf(stderr, "virtus vm %s: expected one VM name\n%s", argv[0], vm_manage_usage), EXIT_USAGE;
	return load_vm(argv[first], st);
}

static int vm_pause_resume(int argc, char **argv, bool pause)
{
	struct vm_state st;
	vt_err err;
	int rc = load_named(argc, argv, 1, &st);
	if (rc >= 0)
		return rc;
	const char *body = pause ? "{\"state\":\"Paused\"}" : "{\"state\":\"Resumed\"}";
	if (vm_request(&st, "PATCH", "/vm", body, NULL, &err) < 0)
		return fail(NULL, &err);
	return 0;
}

static int vm_balloon(int argc, char **argv)
{
	if (argc != 2 && argc != 3)
		return fprintf(stderr, "virtus vm balloon: expected NAME [SIZE]\n%s", vm_manage_usage), EXIT_USAGE;
	uint64_t size = 0;
	vt_err err;
	if (argc == 3 && strcmp(argv[2], "0") && parse_size(argv[2], &size, &err) < 0)
		return fprintf(stderr, "virtus vm balloon: %s\n", err.msg), EXIT_USAGE;
	if (size % MiB)
		return fprintf(stderr, "virtus vm balloon: SIZE must be whole MiB, got '%s'\n", argv[2]), EXIT_USAGE;
	struct vm_state st;
	int rc = load_vm(argv[1], &st);
	if (rc >= 0)
		return rc;
	if (argc == 3) {
		char body[64];
		snprintf(body, sizeof(body), "{\"amount_mib\": %llu}", (unsigned long long)(size / MiB));
		return vm_request(&st, "PATCH", "/balloon", body, NULL, &err) < 0 ? fail(NULL, &err) : 0;
	}
	json_object *o;
	if (vm_request(&st, "GET", "/balloon/statistics", NULL, &o, &err) < 0)
		return fail(NULL, &err);
	json_object_object_foreach(o, key, val)
		printf("%s %s\n", key, json_object_get_string(val));
	json_object_put(o);
	return 0;
}

/* PUT or PATCH /drives/ID with the image at path (made absolute: the VMM runs elsewhere, maybe in a jail). */
static int send_drive(const struct vm_state *st, const char *method, const char *id, const char *path, bool ro)
{
	cleanup_free char *abs = realpath(path, NULL);
	if (!abs)
		return fprintf(stderr, "virtus: %s: %s\n", path, strerror(errno)), 1;
	json_object *body = json_object_new_object();
	json_object_object_add(body, "drive_id", json_object_new_string(id));
	json_object_object_add(body, "path_on_host", json_object_new_string(abs));
	if (!strcmp(method, "PUT"))
		json_object_object_add(body, "is_read_only", json_object_new_boolean(ro));
	char uri[96];
	snprintf(uri, sizeof(uri), "/drives/%s", id);
	vt_err err;
	int rc = vm_request(st, method, uri, json_object_to_json_string(body), NULL, &err);
	json_object_put(body);
	return rc < 0 ? fail(NULL, &err) : 0;
}

/* DELETE /drives/ID (or /network-interfaces/ID: collection), then wait until the device is gone (404) or the
 * VMM gave up on the guest (eject_error). */
static int remove_device(const struct vm_state *st, const char *collection, const char *id, unsigned timeout_s)
{
	char uri[96], body[48];
	snprintf(uri, sizeof(uri), "%s%s", collection, id);
	snprintf(body, sizeof(body), "{\"timeout_s\": %u}", timeout_s);
	vt_err err;
	if (vm_request(st, "DELETE", uri, body, NULL, &err) < 0)
		return fail(NULL, &err);
	for (unsigned waited_ms = 0; waited_ms <= (timeout_s + 5) * 1000; waited_ms += 20) {
		int status = 0;
		json_object *o = NULL;
		if (vm_call(st, "GET", uri, NULL, &status, &o, &err) < 0)
			return status == 404 ? 0 : fail(NULL, &err);
		json_object *e;
		if (json_object_object_get_ex(o, "eject_error", &e)) {
			fprintf(stderr, "virtus: %s\n", json_object_get_string(e));
			json_object_put(o);
			return 1;
		}
		json_object_put(o);
		usleep(20000); /* a local request costs well under a millisecond */
	}
	return fprintf(stderr, "virtus: VM '%s' did not say whether %s went\n", st->name, uri), 1;
}

static int disk_usage(void)
{
	fprintf(stderr, "virtus vm disk: expected NAME add ID PATH [--ro] | NAME remove ID [--timeout SECS] | "
			"NAME change ID PATH\n%s", vm_manage_usage);
	return EXIT_USAGE;
}

static int vm_disk(int argc, char **argv)
{
	if (argc < 4)
		return disk_usage();
	const char *op = argv[2], *id = argv[3];
	uint64_t timeout_s = 10;
	bool add = !strcmp(op, "add"), change = !strcmp(op, "change"), remove = !strcmp(op, "remove");
	bool ro = add && argc == 6 && !strcmp(argv[5], "--ro");
	if (!((add && (argc == 5 || ro)) || (change && argc == 5) || (remove && (argc == 4 || argc == 6))))
		return disk_usage();
	if (remove && argc == 6 && (strcmp(argv[4], "--timeout") || parse_uint(argv[5], 1, 600, &timeout_s) < 0))
		return fprintf(stderr, "virtus vm disk remove: --timeout wants seconds from 1 to 600\n"), EXIT_USAGE;
	if (strlen(id) > 64)
		return fprintf(stderr, "virtus vm disk: disk ID '%.64s...' is too long\n", id), EXIT_USAGE;
	struct vm_state st;
	int rc = load_vm(argv[1], &st);
	if (rc >= 0)
		return rc;
	if (remove)
		return remove_device(&st, "/drives/", id, (unsigned)timeout_s);
	return send_drive(&st, add ? "PUT" : "PATCH", id, argv[4], ro);
}

#define CD_LOCK_WAIT_MS 2000

static int net_usage(void)
{
	fprintf(stderr, "virtus vm net: expected NAME add ID tap=TAP[,mac=MAC] | NAME remove ID [--timeout SECS]\n%s",
		vm_manage_usage);
	return EXIT_USAGE;
}

/* vm net NAME add ID SPEC | remove ID [--timeout S]: PUT or DELETE /network-interfaces/ID. */
static int vm_net(int argc, char **argv)
{
	if (argc < 4)
		return net_usage();
	const char *op = argv[2], *id = argv[3];
	uint64_t timeout_s = 10;
	bool add = !strcmp(op, "add"), remove = !strcmp(op, "remove");
	if (!((add && argc == 5) || (remove && (argc == 4 || argc == 6))))
		return net_usage();
	if (remove && argc == 6 && (strcmp(argv[4], "--timeout") || parse_uint(argv[5], 1, 600, &timeout_s) < 0))
		return fprintf(stderr, "virtus vm net remove: --timeout wants seconds from 1 to 600\n"), EXIT_USAGE;
	if (strlen(id) > 64)
		return fprintf(stderr, "virtus vm net: interface ID '%.64s...' is too long\n", id), EXIT_USAGE;
	struct vm_state st;
	int rc = load_vm(argv[1], &st);
	if (rc >= 0)
		return rc;
	if (remove)
		return remove_device(&st, "/network-interfaces/", id, (unsigned)timeout_s);
	json_object *body = json_object_new_object();
	json_object_object_add(body, "iface_id", json_object_new_string(id));
	json_object_object_add(body, "virtus_net", json_object_new_string(argv[4]));
	char uri[96];
	snprintf(uri, sizeof(uri), "/network-interfaces/%s", id);
	vt_err err;
	rc = vm_request(&st, "PUT", uri, json_object_to_json_string(body), NULL, &err);
	json_object_put(body);
	return rc < 0 ? fail(NULL, &err) : 0;
}

static int cd_usage(void)
{
	fprintf(stderr, "virtus vm cd: expected NAME [insert ISO [--force] | eject [--force]]\n%s", vm_manage_usage);
	return EXIT_USAGE;
}

static int cd_status(const struct vm_state *st)
{
	json_object *o, *path;
	vt_err err;
	if (vm_request(st, "GET", "/cdrom", NULL, &o, &err) < 0)
		return fail(NULL, &err);
	bool has = json_object_object_get_ex(o, "path_on_host", &path) && json_object_is_type(path, json_type_string);
	printf("disc:   %s\ntray:   %s%s\n", has ? json_object_get_string(path) : "(none)",
	       json_object_get_boolean(json_object_object_get(o, "tray_open")) ? "open" : "closed",
	       json_object_get_boolean(json_object_object_get(o, "locked")) ? ", locked by the guest" : "");
	json_object_put(o);
	return 0;
}

/* PUT /cdrom/medium with the ISO (made absolute: the VMM runs elsewhere), or DELETE it. */
static int cd_change(const struct vm_state *st, const char *iso, bool force)
{
	cleanup_free char *abs = iso ? realpath(iso, NULL) : NULL;
	if (iso && !abs)
		return fprintf(stderr, "virtus: %s: %s\n", iso, strerror(errno)), 1;
	json_object *body = json_object_new_object();
	if (abs)
		json_object_object_add(body, "path_on_host", json_object_new_string(abs));
	json_object_object_add(body, "force", json_object_new_boolean(force));
	vt_err err;
	int rc, status = 0;
	/* An open of the drive locks its tray for as long as it lasts (Linux's cdrom driver): such a lock is
	 * waited out; a mount's lasts, and is reported after CD_LOCK_WAIT_MS. */
	for (unsigned waited = 0;; waited += 50) {
		rc = vm_call(st, iso ? "PUT" : "DELETE", "/cdrom/medium", json_object_to_json_string(body), &status, NULL, &err);
		if (rc == 0 || status != 409 || !strstr(err.msg, "locked") || waited >= CD_LOCK_WAIT_MS)
			break;
		usleep(50000);
	}
	json_object_put(body);
	return rc < 0 ? fail(NULL, &err) : 0;
}

static int vm_cd(int argc, char **argv)
{
	if (argc < 2)
		return cd_usage();
	const char *op = argc > 2 ? argv[2] : NULL;
	bool insert = op && !strcmp(op, "insert"), eject = op && !strcmp(op, "eject");
	int nargs = insert ? 4 : 3;                 /* vm-name, verb and the ISO before the flag */
	bool force = argc == nargs + 1 && !strcmp(argv[nargs], "--force");
	if (op && !((insert || eject) && (argc == nargs || force)))
		return cd_usage();
	struct vm_state st;
	int rc = load_vm(argv[1], &st);
	if (rc >= 0)
		return rc;
	if (!op)
		return cd_status(&st);
	return cd_change(&st, insert ? argv[3] : NULL, force);
}

static bool wait_gone(const struct vm_state *st, int ms)
{
	for (int waited = 0; waited < ms; waited += 20) {
		if (!vm_state_alive(st))
			return true;
		usleep(20000);
	}
	return !vm_state_alive(st);
}

/* Through the API; a VMM that does not answer, or does not end, gets SIGKILL. */
static int vm_kill(int argc, char **argv)
{
	struct vm_state st;
	vt_err err;
	int rc = load_named(argc, argv, 1, &st);
	if (rc >= 0)
		return rc;
	if (vm_request(&st, "PUT", "/actions", "{\"action_type\":\"Kill\"}", NULL, &err) < 0)
		fprintf(stderr, "virtus: %s; sending SIGKILL to its VMM (pid %d)\n", err.msg, (int)st.pid);
	else if (wait_gone(&st, KILL_WAIT_MS))
		return 0;
	if (kill(st.pid, SIGKILL) < 0 && errno != ESRCH)
		return fprintf(stderr, "virtus: cannot kill pid %d: %s\n", (int)st.pid, strerror(errno)), 1;
	wait_gone(&st, KILL_WAIT_MS);
	unlink(st.api_socket); /* an --api-socket outside the VM's directory: nobody serves it now */
	vm_state_remove(&st);
	return 0;
}

static int vm_stop(int argc, char **argv)
{
	uint64_t secs = 10;
	int first = 1;
	if (argc > 2 && !strcmp(argv[1], "-t")) {
		if (parse_uint(argv[2], 0, 3600, &secs) < 0)
			return fprintf(stderr, "virtus vm stop: -t wants seconds from 0 to 3600, got '%s'\n", argv[2]), EXIT_USAGE;
		first = 3;
	}
	struct vm_state st;
	vt_err err;
	int rc = load_named(argc, argv, first, &st);
	if (rc >= 0)
		return rc;
	if (vm_request(&st, "PUT", "/actions", "{\"action_type\":\"PowerButton\"}", NULL, &err) < 0)
		return fail(NULL, &err);
	if (wait_gone(&st, (int)secs * 1000))
		return 0;
	fprintf(stderr, "virtus: VM '%s' did not power off within %llu s: killing it\n", st.name, (unsigned long long)secs);
	char *kill_argv[] = { "kill", st.name };
	return vm_kill(2, kill_argv);
}

static long long file_blocks_bytes(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (long long)st.st_blocks * 512 : -1;
}

/* URL for the VMM, which runs elsewhere (its own working directory) and resolves no names. */
static int migration_url(const char *arg, char *out, size_t len, vt_err *err)
{
	char cwd[PATH_MAX];
	if (!strncmp(arg, "unix:", 5) && arg[5] && arg[5] != '/') {
		if (!getcwd(cwd, sizeof(cwd)) || (size_t)snprintf(out, len, "unix:%s/%s", cwd, arg + 5) >= len)
			return vt_fail(err, "'%s': its absolute path is too long", arg);
	} else if (sock_url_resolve(arg, out, len, err) < 0) {
		return -1;
	}
	if (strpbrk(out, "\"\\"))
		return vt_fail(err, "'%s': quotes and backslashes cannot be sent", arg);
	return 0;
}

static void print_migration(json_object *p, unsigned *shown_pass)
{
	unsigned pass = (unsigned)get_int(p, "pass");
	if (pass == *shown_pass)
		return;
	*shown_pass = pass;
	fprintf(stderr, "pass %u: %s of %s MiB sent; %s MiB dirty at the end of the last pass (dirtied at %s MiB/s, "
			"sent at %s MiB/s)\n", pass, get_str(p, "sent_mib"), get_str(p, "ram_mib"),
		get_str(p, "remaining_mib"), get_str(p, "dirty_mib_per_s"), get_str(p, "bandwidth_mib_per_s"));
}

/* Follow GET /migrate until the migration ends; its exit status. */
/* The last pass is one step of the source's control loop (its guest paused, the destination loading the
 * VM): its API is silent until the destination answered, which it must within MIGRATION_ANSWER_S. */
#define MIGRATION_BUSY_NS ((uint64_t)(MIGRATION_ANSWER_S + 15) * 1000000000)

static int follow_migration(const struct vm_state *st, const char *url)
{
	unsigned shown_pass = 0;
	uint64_t silent_since = 0;
	vt_err err;
	for (;;) {
		json_object *p = NULL;
		if (vm_request(st, "GET", "/migrate", NULL, &p, &err) < 0) {
			if (err.errnum == ETIMEDOUT && (!silent_since || now_ns() - silent_since < MIGRATION_BUSY_NS)) {
				silent_since = silent_since ? silent_since : now_ns();
				continue;
			}
			return fprintf(stderr, "virtus: the VM's VMM stopped answering while migrating (%s); see 'virtus vm "
					       "ls' here and at the destination\n", err.msg), 1;
		}
		silent_since = 0;
		const char *state = get_str(p, "state");
		int rc = -1;
		if (!strcmp(state, "completed")) {
			printf("%s migrated to %s in %lld ms (paused %lld ms; %s MiB sent in %lld passes)\n", st->name, url,
			       (long long)get_int(p, "total_ms"), (long long)get_int(p, "downtime_ms"), get_str(p, "sent_mib"),
			       (long long)get_int(p, "pass"));
			rc = 0;
		} else if (!strcmp(state, "failed")) {
			fprintf(stderr, "virtus: migrating %s to %s failed; it goes on here: %s\n", st->name, url,
				get_str(p, "error"));
			rc = 1;
		} else {
			print_migration(p, &shown_pass);
		}
		json_object_put(p);
		if (rc >= 0)
			return rc;
		usleep(100000);
	}
}

static int vm_migrate(int argc, char **argv)
{
	uint64_t downtime = 300;
	int first = 1;
	if (argc > 2 && !strcmp(argv[1], "--downtime")) {
		if (parse_uint(argv[2], 1, 60000, &downtime) < 0)
			return fprintf(stderr, "virtus vm migrate: --downtime wants milliseconds from 1 to 60000, got '%s'\n",
				       argv[2]), EXIT_USAGE;
		first = 3;
	}
	if (argc - first != 2)
		return fprintf(stderr, "virtus vm migrate: expected [--downtime MS] NAME URL\n%s", vm_manage_usage), EXIT_USAGE;
	struct vm_state st;
	vt_err err;
	char url[160], body[256];
	char *name_only[] = { argv[0], argv[first] };
	int rc = load_named(2, name_only, 1, &st);
	if (rc >= 0)
		return rc;
	if (migration_url(argv[first + 1], url, sizeof(url), &err) < 0)
		return fail("vm migrate", &err);
	snprintf(body, sizeof(body), "{\"destination_url\":\"%s\",\"downtime_ms\":%llu}", url, (unsigned long long)downtime);
	if (vm_request(&st, "PUT", "/migrate", body, NULL, &err) < 0)
		return fail(NULL, &err);
	return follow_migration(&st, argv[first + 1]);
}

/* The disks the snapshot froze (DIR/diskK.*: the VMM's checkpoint names them so). */
static void print_frozen_disks(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	while (d && (e = readdir(d)))
		if (!strncmp(e->d_name, "disk", 4))
			printf("%s/%s: a disk as it was (the disk's path is now a qcow2 overlay over it)\n", dir, e->d_name);
	if (d)
		closedir(d);
}

/* A jailed VMM (it has a handoff socket) reaches no host path: it gets the two files made here. */
static int handoff_snapshot(const char *handoff, const char *dir, vt_err *err)
{
	char state_path[PATH_MAX + 8], mem_path[PATH_MAX + 8];
	snprintf(state_path, sizeof(state_path), "%s/state", dir);
	snprintf(mem_path, sizeof(mem_path), "%s/memory", dir);
	int fds[2] = { open(state_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600),
		       open(mem_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600) };
	int rc = fds[0] < 0 || fds[1] < 0 ? vt_fail_errno(err, errno, "cannot create the snapshot's files in %s", dir)
					  : handoff_call(handoff, "snapshot", fds, 2, err);
	for (int i = 0; i < 2; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (rc < 0)
		unlink(state_path), unlink(mem_path);
	return rc;
}

/* The paused VM's snapshot into the new directory dir: through the API (body), or handed the files. */
static int create_snapshot(const struct vm_state *st, const char *dir, const char *body, vt_err *err)
{
	char handoff[PATH_MAX + 16];
	snprintf(handoff, sizeof(handoff), "%s/" HANDOFF_SOCKET, st->dir);
	if (access(handoff, F_OK) == 0)
		return handoff_snapshot(handoff, dir, err);
	return vm_request(st, "PUT", "/snapshot/create", body, NULL, err);
}

/* Paused for the snapshot, then as it was (or killed with --stop); DIR is new and is removed on failure. */
static int vm_snapshot(int argc, char **argv)
{
	bool stop = argc > 1 && !strcmp(argv[1], "--stop");
	int first = stop ? 2 : 1;
	if (argc - first != 2)
		return fprintf(stderr, "virtus vm snapshot: expected [--stop] NAME DIR\n%s", vm_manage_usage), EXIT_USAGE;
	const char *dir_arg = argv[first + 1];
	struct vm_state st;
	vt_err err;
	char *name_only[] = { argv[0], argv[first] };
	int rc = load_named(2, name_only, 1, &st);
	if (rc >= 0)
		return rc;
	if (mkdir(dir_arg, 0700) < 0)
		return fprintf(stderr, "virtus: snapshot directory %s: %s%s\n", dir_arg, strerror(errno),
			       errno == EEXIST ? " (a snapshot goes into a new directory)" : ""), 1;
	char dir[PATH_MAX], body[3 * PATH_MAX];
	if (!realpath(dir_arg, dir) || (size_t)snprintf(body, sizeof(body),
		"{\"snapshot_type\":\"Full\",\"snapshot_path\":\"%s/state\",\"mem_file_path\":\"%s/memory\"}", dir, dir) >= sizeof(body) ||
	    strpbrk(dir, "\"\\")) {
		rmdir(dir_arg);
		return fprintf(stderr, "virtus: snapshot directory %s: its path cannot be used\n", dir_arg), 1;
	}
	json_object *info = NULL;
	bool was_paused = vm_request(&st, "GET", "/", NULL, &info, &err) == 0 && !strcmp(get_str(info, "state"), "Paused");
	json_object_put(info);
	rc = 0;
	if (vm_request(&st, "PATCH", "/vm", "{\"state\":\"Paused\"}", NULL, &err) < 0 ||
	    create_snapshot(&st, dir, body, &err) < 0) {
		fprintf(stderr, "virtus: %s\n", err.msg);
		rmdir(dir);
		rc = 1;
	}
	if (rc == 0 && stop) {
		char *kill_argv[] = { "kill", st.name };
		rc = vm_kill(2, kill_argv);
	} else if (!was_paused && vm_request(&st, "PATCH", "/vm", "{\"state\":\"Resumed\"}", NULL, &err) < 0) {
		fprintf(stderr, "virtus: %s\n", err.msg);
		rc = 1;
	}
	if (rc == 0) {
		char state_path[PATH_MAX + 8], mem_path[PATH_MAX + 8];
		snprintf(state_path, sizeof(state_path), "%s/state", dir);
		snprintf(mem_path, sizeof(mem_path), "%s/memory", dir);
		printf("%s: state %lld KiB, memory %lld MiB on disk\n", dir, file_blocks_bytes(state_path) >> 10,
		       file_blocks_bytes(mem_path) >> 20);
		print_frozen_disks(dir);
	}
	return rc;
}

static void print_info(const struct vm_state *st, json_object *info, json_object *cfg)
{
	json_object *mc = NULL, *boot = NULL, *drives = NULL, *nets = NULL, *vsock = NULL;
	json_object_object_get_ex(cfg, "machine-config", &mc);
	json_object_object_get_ex(cfg, "boot-source", &boot);
	json_object_object_get_ex(cfg, "drives", &drives);
	json_object_object_get_ex(cfg, "network-interfaces", &nets);
	json_object_object_get_ex(cfg, "vsock", &vsock);
	char uptime[24];
	format_uptime(st->started, uptime, sizeof(uptime));
	printf("name:     %s\nstate:    %s\npid:      %d\nuptime:   %s\napi:      %s\n", st->name, get_str(info, "state"),
	       (int)st->pid, uptime, st->api_socket);
	if (st->console_socket[0])
		printf("console:  %s\n", st->console_socket);
	printf("vcpus:    %lld\nmemory:   %lld MiB\nkernel:   %s\ncmdline:  %s\n", (long long)get_int(mc, "vcpu_count"),
	       (long long)get_int(mc, "mem_size_mib"), get_str(boot, "kernel_image_path"), get_str(boot, "boot_args"));
	for (size_t i = 0; drives && i < json_object_array_length(drives); i++) {
		json_object *d = json_object_array_get_idx(drives, i);
		printf("disk:     %s %s%s\n", get_str(d, "drive_id"), get_str(d, "path_on_host"),
		       json_object_get_boolean(json_object_object_get(d, "is_read_only")) ? " (read-only)" : "");
	}
	for (size_t i = 0; nets && i < json_object_array_length(nets); i++) {
		json_object *n = json_object_array_get_idx(nets, i), *v;
		printf("net:      %s %s\n", get_str(n, "iface_id"),
		       json_object_object_get_ex(n, "host_dev_name", &v) ? json_object_get_string(v) : get_str(n, "virtus_net"));
	}
	if (vsock)
		printf("vsock:    cid %lld, %s\n", (long long)get_int(vsock, "guest_cid"), get_str(vsock, "uds_path"));
	json_object *cd, *iso;
	if (json_object_object_get_ex(cfg, "cdrom", &cd))
		printf("cdrom:    %s\n", json_object_object_get_ex(cd, "path_on_host", &iso) && iso ? json_object_get_string(iso)
											    : "(empty)");
}

/* `[--json] NAME`: whether --json came first, and the VM; >= 0 is the exit status of a failed lookup. */
static int load_json_verb(int argc, char **argv, bool *as_json, struct vm_state *st)
{
	*as_json = argc > 1 && !strcmp(argv[1], "--json");
	return load_named(argc, argv, *as_json ? 2 : 1, st);
}

static void print_json(json_object *o)
{
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
}

static int vm_info(int argc, char **argv)
{
	bool as_json;
	struct vm_state st;
	vt_err err;
	int rc = load_json_verb(argc, argv, &as_json, &st);
	if (rc >= 0)
		return rc;
	json_object *info, *cfg;
	if (vm_request(&st, "GET", "/", NULL, &info, &err) < 0)
		return fail(NULL, &err);
	if (vm_request(&st, "GET", "/vm/config", NULL, &cfg, &err) < 0) {
		json_object_put(info);
		return fail(NULL, &err);
	}
	if (as_json) {
		json_object *all = json_object_new_object();
		json_object_object_add(all, "instance", info);
		json_object_object_add(all, "config", cfg);
		json_object_object_add(all, "pid", json_object_new_int(st.pid));
		json_object_object_add(all, "started", json_object_new_int64(st.started));
		print_json(all);
		json_object_put(all);
		return 0;
	}
	print_info(&st, info, cfg);
	json_object_put(info);
	json_object_put(cfg);
	return 0;
}

/* {"a": {"b": 1}, "c": [{"d": 2}]} as "a.b 1" and "c.q0.d 2"; a device is named by its "id". */
static void print_flat(const char *prefix, json_object *o)
{
	char name[256];
	if (json_object_is_type(o, json_type_object)) {
		json_object_object_foreach(o, key, val) {
			if (!strcmp(key, "id") || !strcmp(key, "devices"))
				continue;
			bool nest = !strcmp(key, "counters") || !strcmp(key, "queues");
			snprintf(name, sizeof(name), "%s%s%s", prefix, *prefix && !nest ? "." : "", nest ? "" : key);
			print_flat(name, val);
		}
	} else if (json_object_is_type(o, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(o); i++) {
			snprintf(name, sizeof(name), "%s.q%zu", prefix, i);
			print_flat(name, json_object_array_get_idx(o, i));
		}
	} else {
		printf("%s %s\n", prefix, json_object_get_string(o));
	}
}

static int vm_metrics(int argc, char **argv)
{
	bool as_json;
	struct vm_state st;
	vt_err err;
	int rc = load_json_verb(argc, argv, &as_json, &st);
	if (rc >= 0)
		return rc;
	json_object *m, *devices;
	if (vm_request(&st, "GET", "/metrics", NULL, &m, &err) < 0)
		return fail(NULL, &err);
	if (as_json) {
		print_json(m);
	} else {
		print_flat("", m);
		for (size_t i = 0; json_object_object_get_ex(m, "devices", &devices) && i < json_object_array_length(devices); i++) {
			json_object *d = json_object_array_get_idx(devices, i), *id;
			print_flat(json_object_object_get_ex(d, "id", &id) ? json_object_get_string(id) : "device", d);
		}
	}
	json_object_put(m);
	return 0;
}

static int vm_logs(int argc, char **argv)
{
	vt_err err;
	struct vm_state st;
	if (argc != 2)
		return fprintf(stderr, "virtus vm logs: expected one VM name\n%s", vm_manage_usage), EXIT_USAGE;
	if (vm_state_load(argv[1], &st, &err) < 0)
		return fail(NULL, &err);
	if (!st.detached)
		return fprintf(stderr, "virtus: VM '%s' is not detached: its console is the terminal or file it was started with\n",
			       st.name), 1;
	char path[PATH_MAX + 16];
	snprintf(path, sizeof(path), "%s/console.log", st.dir);
	cleanup_free void *data = NULL;
	size_t size;
	if (read_file(path, 4 << 20, &data, &size, &err) < 0)
		return fail(NULL, &err);
	struct console_sink out;
	console_sink_init(&out, STDOUT_FILENO);
	console_sink_write(&out, data, size);
	return 0;
}

/* Relay between the terminal and the console socket until Ctrl-A x or the VM ends. */
static int relay_console(int sock, const char *name)
{
	struct console_sink out;
	struct escape_state esc = { false };
	struct term_state term = { 0 };
	console_sink_init(&out, STDOUT_FILENO);
	if (isatty(STDIN_FILENO))
		fprintf(stderr, "virtus: attached to %s's console; Ctrl-A x detaches\r\n", name);
	term_raw(&term, STDIN_FILENO);
	int in_fd = STDIN_FILENO, rc = 0;
	for (;;) {
		struct pollfd p[2] = { { .fd = sock, .events = POLLIN }, { .fd = in_fd, .events = POLLIN } };
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			rc = 1;
			break;
		}
		uint8_t buf[4096], fwd[2 * sizeof(buf)];
		if (p[0].revents) {
			ssize_t n = read(sock, buf, sizeof(buf));
			if (n <= 0)
				break; /* the VM ended */
			console_sink_write(&out, buf, (size_t)n);
		}
		if (in_fd >= 0 && p[1].revents) {
			ssize_t n = read(in_fd, buf, sizeof(buf));
			size_t fwd_n = 0;
			if (n <= 0) {
				in_fd = -1; /* end of input: keep showing output */
				continue;
			}
			bool go_on = console_escape_filter(&esc, buf, (size_t)n, fwd, &fwd_n);
			if (fwd_n && write_all(sock, fwd, fwd_n) < 0)
				break;
			if (!go_on)
				break;
		}
	}
	term_restore(&term);
	return rc;
}

static int vm_console(int argc, char **argv)
{
	struct vm_state st;
	vt_err err;
	int rc = load_named(argc, argv, 1, &st);
	if (rc >= 0)
		return rc;
	if (!st.console_socket[0])
		return fprintf(stderr, "virtus: VM '%s' is not detached: its console is on the terminal or file it was "
				       "started with\n", st.name), 1;
	int sock = unix_connect(st.console_socket, &err);
	if (sock < 0)
		return fail(NULL, &err);
	signal(SIGPIPE, SIG_IGN);
	rc = relay_console(sock, st.name);
	close(sock);
	return rc;
}

static int vm_api(int argc, char **argv)
{
	if (argc != 4 && argc != 5)
		return fprintf(stderr, "virtus vm api: expected NAME METHOD PATH [JSON]\n%s", vm_manage_usage), EXIT_USAGE;
	struct vm_state st;
	vt_err err;
	int rc = load_vm(argv[1], &st);
	if (rc >= 0)
		return rc;
	int status;
	cleanup_free char *reply = NULL;
	if (api_call(st.api_socket, argv[2], argv[3], argc == 5 ? argv[4] : NULL, API_TIMEOUT_MS, &status, &reply, &err) < 0)
		return fail(NULL, &err);
	if (*reply)
		printf("%s\n", reply);
	if (status >= 200 && status <= 299)
		return 0;
	fprintf(stderr, "virtus: HTTP %d\n", status);
	return 1;
}

int cmd_vm_manage(int argc, char **argv)
{
	if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		fputs(vm_manage_usage, stdout);
		return 0;
	}
	const char *verb = argv[0];
	if (!strcmp(verb, "ls"))
		return vm_ls(argc, argv);
	if (!strcmp(verb, "info"))
		return vm_info(argc, argv);
	if (!strcmp(verb, "metrics"))
		return vm_metrics(argc, argv);
	if (!strcmp(verb, "pause") || !strcmp(verb, "resume"))
		return vm_pause_resume(argc, argv, !strcmp(verb, "pause"));
	if (!strcmp(verb, "kill"))
		return vm_kill(argc, argv);
	if (!strcmp(verb, "stop"))
		return vm_stop(argc, argv);
	if (!strcmp(verb, "snapshot"))
		return vm_snapshot(argc, argv);
	if (!strcmp(verb, "migrate"))
		return vm_migrate(argc, argv);
	if (!strcmp(verb, "balloon"))
		return vm_balloon(argc, argv);
	if (!strcmp(verb, "disk"))
		return vm_disk(argc, argv);
	if (!strcmp(verb, "cd"))
		return vm_cd(argc, argv);
	if (!strcmp(verb, "net"))
		return vm_net(argc, argv);
	if (!strcmp(verb, "console"))
		return vm_console(argc, argv);
	if (!strcmp(verb, "logs"))
		return vm_logs(argc, argv);
	if (!strcmp(verb, "api"))
		return vm_api(argc, argv);
	return -1;
}

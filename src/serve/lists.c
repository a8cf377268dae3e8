/* What the page lists (serve/serve.h): the host, its VMs, containers, images and the ISOs for CD drives.
 * Read from the same places as `vm ls`, `ps -a` and `image ls`; a VM's state from its API, bounded by
 * SERVE_VM_API_TIMEOUT_MS so that one VM that does not answer cannot hold the page. */
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "api/http.h"
#include "cli/vm_state.h"
#include "container/container.h"
#include "image/image.h"
#include "lib/util.h"
#include "serve/serve.h"

/* ---- resource use --------------------------------------------------------------------------------------- */

json_object *serve_cpu_percent(struct serve_usage *u, const char *key, uint64_t cpu_ns)
{
	uint64_t now = now_ns();
	double pct = -1;
	pthread_mutex_lock(&u->lock);
	int found = -1, oldest = 0;
	for (int i = 0; i < SERVE_USAGE_SLOTS; i++) {
		if (!strcmp(u->slot[i].key, key)) {
			found = i;
			break;
		}
		if (u->slot[i].at_ns < u->slot[oldest].at_ns)
			oldest = i; /* unused slots have at_ns 0: taken first */
	}
	if (found >= 0 && now > u->slot[found].at_ns && cpu_ns >= u->slot[found].cpu_ns)
		pct = 100.0 * (double)(cpu_ns - u->slot[found].cpu_ns) / (double)(now - u->slot[found].at_ns);
	int i = found >= 0 ? found : oldest;
	snprintf(u->slot[i].key, sizeof(u->slot[i].key), "%s", key);
	u->slot[i].cpu_ns = cpu_ns;
	u->slot[i].at_ns = now;
	pthread_mutex_unlock(&u->lock);
	return pct < 0 ? NULL : json_object_new_double((double)(long long)(pct * 10 + 0.5) / 10);
}

/* bytes in MiB, to a tenth */
static json_object *mib(uint64_t bytes)
{
	return json_object_new_double((double)((bytes * 10 + MiB / 2) / MiB) / 10);
}

/* CPU time (user + system) and resident memory of a process; false if it is gone. */
static bool process_usage(pid_t pid, uint64_t *cpu_ns, uint64_t *rss)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
	unsigned long long utime, stime;
	long long rss_pages;
	/* after ")": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime
	 * cstime priority nice threads itrealvalue starttime vsize rss */
	if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d "
			 "%*u %*u %lld", &utime, &stime, &rss_pages) != 3)
		return false;
	long tick = sysconf(_SC_CLK_TCK);
	*cpu_ns = (utime + stime) * (1000000000ull / (uint64_t)(tick > 0 ? tick : 100));
	*rss = (uint64_t)(rss_pages > 0 ? rss_pages : 0) * (uint64_t)sysconf(_SC_PAGESIZE);
	return true;
}

/* One number from a cgroup file: /sys/fs/cgroup/<dir>/<path>/<file> (dir "" for the unified hierarchy). */
static bool cgroup_number(const char *dir, const char *path, const char *file, const char *key, uint64_t *out)
{
	char name[PATH_MAX], line[256];
	if ((size_t)snprintf(name, sizeof(name), "/sys/fs/cgroup%s%s%s/%s", *dir ? "/" : "", dir, path, file) >= sizeof(name))
		return false;
	FILE *f = fopen(name, "re");
	bool found = false;
	size_t klen = key ? strlen(key) : 0;
	unsigned long long v;
	while (f && !found && fgets(line, sizeof(line), f))
		if ((!key || (!strncmp(line, key, klen) && line[klen] == ' ')) && sscanf(line + klen, "%llu", &v) == 1)
			found = true;
	if (f)
		fclose(f);
	if (found)
		*out = v;
	return found;
}

/* A container's cgroup usage, CPU time and memory in use: cgroup v2 (cpu.stat, memory.current), else v1
 * (cpuacct.usage, memory.usage_in_bytes). */
static bool cgroup_usage(pid_t pid, uint64_t *cpu_ns, uint64_t *mem)
{
	char path[64], line[PATH_MAX];
	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	FILE *f = fopen(path, "re");
	bool cpu = false, memory = false;
	uint64_t usec;
	while (f && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		char *controllers = strchr(line, ':'), *where = controllers ? strchr(controllers + 1, ':') : NULL;
		if (!where)
			continue;
		*where++ = '\0';
		controllers++;
		if (!*controllers) { /* v2: meaningful when the controllers are there */
			if (!cpu && cgroup_number("", where, "cpu.stat", "usage_usec", &usec)) {
				*cpu_ns = usec * 1000;
				cpu = true;
			}
			memory = memory || cgroup_number("", where, "memory.current", NULL, mem);
		} else if (!cpu && strstr(controllers, "cpuacct")) {
			cpu = cgroup_number(controllers, where, "cpuacct.usage", NULL, cpu_ns);
		} else if (!memory && !strcmp(controllers, "memory")) {
			memory = cgroup_number(controllers, where, "memory.usage_in_bytes", NULL, mem);
		}
	}
	if (f)
		fclose(f);
	return cpu && memory;
}

/* ---- the host --------------------------------------------------------------------------------------------- */

static long long meminfo_mib(const char *key)
{
	FILE *f = fopen("/proc/meminfo", "re");
	char line[256];
	long long kib = -1;
	size_t klen = strlen(key);
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, key, klen) && line[klen] == ':') {
			kib = strtoll(line + klen + 1, NULL, 10);
			break;
		}
	if (f)
		fclose(f);
	return kib < 0 ? -1 : kib / 1024;
}

json_object *serve_list_host(void)
{
	char name[256] = "";
	gethostname(name, sizeof(name) - 1);
	json_object *o = json_object_new_object();
	json_object_object_add(o, "hostname", json_object_new_string(name));
	json_object_object_add(o, "cpus", json_object_new_int64(sysconf(_SC_NPROCESSORS_ONLN)));
	json_object_object_add(o, "mem_total_mib", json_object_new_int64(meminfo_mib("MemTotal")));
	json_object_object_add(o, "mem_available_mib", json_object_new_int64(meminfo_mib("MemAvailable")));
	json_object_object_add(o, "time", json_object_new_int64((int64_t)time(NULL)));
	return o;
}

/* ---- VMs ---------------------------------------------------------------------------------------------------- */

/* GET uri from the VM's API as JSON (NULL: no answer, or not a 2xx one). */
static json_object *vm_get(const struct vm_state *st, const char *uri)
{
	int status;
	char *reply = NULL;
	vt_err err;
	json_object *o = NULL;
	if (api_call(st->api_socket, "GET", uri, NULL, SERVE_VM_API_TIMEOUT_MS, &status, &reply, &err) == 0 &&
	    status >= 200 && status < 300)
		o = json_tokener_parse(reply);
	free(reply);
	return o;
}

static json_object *member(json_object *o, const char *key)
{
	json_object *v;
	return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static json_object *copy_member(json_object *o, const char *key)
{
	json_object *v = member(o, key);
	return v ? json_object_get(v) : NULL;
}

/* The container a VM-isolated container's VM ("ctr-" and its id's first 12 digits) belongs to. */
static json_object *vm_container(const char *name)
{
	if (strncmp(name, "ctr-", 4) || strlen(name) != 16 || strspn(name + 4, "0123456789abcdef") != 12)
		return NULL;
	return json_object_new_string(name + 4);
}

static json_object *vm_entry(struct serve *s, const struct vm_state *st)
{
	json_object *o = json_object_new_object(), *info = vm_get(st, "/");
	json_object *cfg = info ? vm_get(st, "/vm/config") : NULL;
	json_object *mc = member(cfg, "machine-config"), *cd_cfg = member(cfg, "cdrom");
	json_object *cd = cd_cfg ? vm_get(st, "/cdrom") : NULL;
	json_object_object_add(o, "name", json_object_new_string(st->name));
	json_object *state = member(info, "state");
	json_object_object_add(o, "state", state ? json_object_get(state) : json_object_new_string("unresponsive"));
	json_object_object_add(o, "vcpus", copy_member(mc, "vcpu_count"));
	json_object_object_add(o, "memory_mib", copy_member(mc, "mem_size_mib"));
	json_object_object_add(o, "started", json_object_new_int64(st->started));
	json_object_object_add(o, "pid", json_object_new_int64(st->pid));
	uint64_t cpu_ns, rss;
	char key[80];
	snprintf(key, sizeof(key), "vm:%s", st->name);
	bool usage = process_usage(st->pid, &cpu_ns, &rss);
	json_object_object_add(o, "cpu_percent", usage ? serve_cpu_percent(&s->usage, key, cpu_ns) : NULL);
	json_object_object_add(o, "rss_mib", usage ? mib(rss) : NULL);
	json_object *cdrom = NULL;
	if (cd_cfg) {
		cdrom = json_object_new_object();
		json_object_object_add(cdrom, "disc", copy_member(cd ? cd : cd_cfg, "path_on_host"));
		json_object *locked = member(cd, "locked");
		json_object_object_add(cdrom, "locked", json_object_new_boolean(locked && json_object_get_boolean(locked)));
	}
	json_object_object_add(o, "cdrom", cdrom);
	json_object_object_add(o, "container", vm_container(st->name));
	json_object_put(info);
	json_object_put(cfg);
	json_object_put(cd);
	return o;
}

json_object *serve_list_vms(struct serve *s)
{
	json_object *a = json_object_new_array();
	char **names;
	size_t n;
	vt_err err;
	if (vm_state_list(&names, &n, &err) < 0)
		return a; /* no VM directory yet: no VMs */
	for (size_t i = 0; i < n; i++) {
		struct vm_state st;
		if (vm_state_load(names[i], &st, &err) == 0 && vm_state_alive(&st))
			json_object_array_add(a, vm_entry(s, &st)); /* a stale one is left for `vm ls` to reclaim */
	}
	vm_state_free_names(names, n);
	return a;
}

/* ---- containers ------------------------------------------------------------------------------------------------ */

static json_object *command_json(json_object *rec)
{
	json_object *a = json_object_new_array();
	static const char *const parts[] = { "Entrypoint", "Cmd" };
	for (size_t p = 0; p < ARRAY_SIZE(parts); p++) {
		json_object *v = member(rec, parts[p]);
		for (size_t i = 0; v && json_object_is_type(v, json_type_array) && i < json_object_array_length(v); i++)
			json_object_array_add(a, json_object_get(json_object_array_get_idx(v, i)));
	}
	return a;
}

static json_object *container_entry(struct serve *s, json_object *rec, const char *id)
{
	json_object *o = json_object_new_object();
	const char *status = ctr_status(rec), *image = ctr_rec_str(rec, "ImageName"), *iso = ctr_rec_str(rec, "Isolation");
	bool active = !strcmp(status, "running") || !strcmp(status, "paused");
	json_object_object_add(o, "id", json_object_new_string(id));
	json_object_object_add(o, "name", json_object_new_string(ctr_rec_str(rec, "Name")));
	json_object_object_add(o, "image", json_object_new_string(*image ? image : ctr_rec_str(rec, "Rootfs")));
	json_object_object_add(o, "command", command_json(rec));
	json_object_object_add(o, "status", json_object_new_string(status));
	json_object_object_add(o, "isolation", json_object_new_string(*iso ? iso : "container"));
	json_object *ports = member(rec, "Ports");
	json_object_object_add(o, "ports", ports ? json_object_get(ports) : json_object_new_array());
	json_object_object_add(o, "created", json_object_new_string(ctr_rec_str(rec, "Created")));
	json_object_object_add(o, "started", json_object_new_string(ctr_rec_str(rec, "StartedAt")));
	json_object_object_add(o, "exit_code", json_object_new_int64(ctr_rec_int(rec, "ExitCode")));
	pid_t pid = active ? (pid_t)ctr_rec_int(rec, "Pid") : 0;
	json_object_object_add(o, "pid", json_object_new_int64(pid));
	uint64_t cpu_ns = 0, mem = 0;
	bool usage = pid > 0 && (!strcmp(iso, "vm") ? process_usage(pid, &cpu_ns, &mem) : cgroup_usage(pid, &cpu_ns, &mem));
	char key[80];
	snprintf(key, sizeof(key), "ctr:%s", id);
	json_object_object_add(o, "cpu_percent", usage ? serve_cpu_percent(&s->usage, key, cpu_ns) : NULL);
	json_object_object_add(o, "memory_mib", usage ? mib(mem) : NULL);
	return o;
}

json_object *serve_list_containers(struct serve *s, vt_err *err)
{
	struct ctr_store store;
	char **ids;
	if (ctr_store_init(&store, s->root, err))
		return NULL;
	if (ctr_list(&store, &ids, err)) {
		ctr_store_clear(&store);
		return NULL;
	}
	json_object *a = json_object_new_array();
	for (size_t i = 0; ids[i]; i++) {
		json_object *rec;
		if (ctr_record_load(&store, ids[i], &rec, NULL))
			continue; /* removed meanwhile */
		json_object_array_add(a, container_entry(s, rec, ids[i]));
		json_object_put(rec);
	}
	ctr_strv_free(ids);
	ctr_store_clear(&store);
	return a;
}

/* ---- images and ISOs --------------------------------------------------------------------------------------------- */

json_object *serve_list_images(struct serve *s, vt_err *err)
{
	struct img_store *store;
	struct img_summary *l;
	size_t n;
	if (img_store_open(s->root, &store, err))
		return NULL;
	int rc = img_list(store, &l, &n, err);
	img_store_close(store);
	if (rc < 0)
		return NULL;
	json_object *a = json_object_new_array();
	for (size_t i = 0; i < n; i++) {
		json_object *o = json_object_new_object(), *names = json_object_new_array();
		for (size_t k = 0; k < l[i].n_names; k++)
			json_object_array_add(names, json_object_new_string(l[i].names[k]));
		json_object_object_add(o, "id", json_object_new_string(l[i].id));
		json_object_object_add(o, "names", names);
		json_object_object_add(o, "size", json_object_new_int64((int64_t)l[i].size));
		json_object_object_add(o, "created", json_object_new_int64(l[i].created));
		json_object_array_add(a, o);
	}
	img_list_free(l, n);
	return a;
}

static int compare_names(const void *a, const void *b)
{
	return strcmp(json_object_get_string(*(json_object *const *)a), json_object_get_string(*(json_object *const *)b));
}

json_object *serve_list_isos(struct serve *s)
{
	json_object *o = json_object_new_object(), *isos = json_object_new_array();
	json_object_object_add(o, "dir", json_object_new_string(s->iso_dir));
	DIR *d = opendir(s->iso_dir);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		size_t n = strlen(e->d_name);
		if (e->d_name[0] != '.' && n > 4 && !strcasecmp(e->d_name + n - 4, ".iso"))
			json_object_array_add(isos, json_object_new_string(e->d_name));
	}
	if (d)
		closedir(d);
	json_object_array_sort(isos, compare_names);
	json_object_object_add(o, "isos", isos);
	return o;
}

/* cgroup v1: one directory per controller hierarchy; each resource goes to the hierarchy of its controller. */
#include "runtime/cgroup_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lib/util.h"

/* The directory of the hierarchy that carries controller `ctrl`, NULL if the host has none. */
static const char *v1_dir(const struct rt_cgroup *cg, const char *ctrl)
{
	size_t len = strlen(ctrl);
	for (size_t i = 0; i < cg->nhier; i++) {
		const struct rt_cg_hier *h = &cg->hier[i];
		if (h->v2)
			continue;
		/* controllers is a comma list such as "cpu,cpuacct" */
		for (const char *p = h->controllers; (p = strstr(p, ctrl)); p += len)
			if ((p == h->controllers || p[-1] == ',') && (p[len] == ',' || p[len] == '\0'))
				return h->dir;
	}
	return NULL;
}

static int need_dir(const struct rt_cgroup *cg, const char *ctrl, const char *field, const char **dir, vt_err *err)
{
	*dir = v1_dir(cg, ctrl);
	if (!*dir)
		return vt_fail(err, "%s: the host has no cgroup v1 '%s' controller mounted", field, ctrl);
	return 0;
}

static int write_i64(const char *dir, const char *file, int64_t v, const char *field, vt_err *err)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "%lld", (long long)v);
	if (rt_cg_write(dir, file, buf, err) < 0)
		return vt_err_prefix(err, "%s", field);
	return 0;
}

static int write_str(const char *dir, const char *file, const char *v, const char *field, vt_err *err)
{
	if (rt_cg_write(dir, file, v, err) < 0)
		return vt_err_prefix(err, "%s", field);
	return 0;
}

int rt_cg_v1_prepare_cpuset(const char *dir, vt_err *err)
{
	/* A new cpuset starts with empty cpus/mems and refuses tasks until they are set: copy the parent's. */
	char parent[4096], buf[4096];
	snprintf(parent, sizeof(parent), "%s", dir);
	char *slash = strrchr(parent, '/');
	if (!slash)
		return vt_fail(err, "bad cpuset cgroup directory %s", dir);
	*slash = '\0';
	static const char *const files[] = { "cpuset.cpus", "cpuset.mems" };
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		if (rt_cg_read(dir, files[i], buf, sizeof(buf), err) < 0)
			return -1;
		if (buf[0] != '\0' && buf[0] != '\n')
			continue;
		if (rt_cg_read(parent, files[i], buf, sizeof(buf), err) < 0 || rt_cg_write(dir, files[i], buf, err) < 0)
			return -1;
	}
	return 0;
}

/* A kernel memory limit must exist and hold: since Linux 6.1 the kernel takes memory.kmem.limit_in_bytes and
 * ignores it (it reads back unlimited), which would drop the field silently. */
static int apply_kmem(const char *dir, const char *file, int64_t v, const char *field, vt_err *err)
{
	char buf[64];
	if (!rt_cg_file_exists(dir, file))
		return vt_fail(err, "%s: not supported here: the kernel has no %s", field, file);
	if (write_i64(dir, file, v, field, err) < 0)
		return -1;
	if (v == -1)
		return 0;
	long page = sysconf(_SC_PAGESIZE);
	int64_t want = v - v % (page > 0 ? page : 4096); /* the kernel counts whole pages */
	if (rt_cg_read(dir, file, buf, sizeof(buf), err) < 0)
		return vt_err_prefix(err, "%s", field);
	if (strtoll(buf, NULL, 10) != want)
		return vt_fail(err, "%s: not supported here: the kernel ignores %s (it reads back %lld, not %lld)", field,
			       file, strtoll(buf, NULL, 10), (long long)want);
	return 0;
}

static int apply_memory_kernel(const char *dir, const struct rt_cg_resources *r, vt_err *err)
{
	if (r->has_mem_kernel &&
	    apply_kmem(dir, "memory.kmem.limit_in_bytes", r->mem_kernel, "linux.resources.memory.kernel", err) < 0)
		return -1;
	if (r->has_mem_kernel_tcp && apply_kmem(dir, "memory.kmem.tcp.limit_in_bytes", r->mem_kernel_tcp,
						"linux.resources.memory.kernelTCP", err) < 0)
		return -1;
	/* Kernels since 5.x only know hierarchical accounting: "0" is refused by the write itself. */
	if (r->has_use_hierarchy && write_i64(dir, "memory.use_hierarchy", r->use_hierarchy ? 1 : 0,
					      "linux.resources.memory.useHierarchy", err) < 0)
		return -1;
	return 0;
}

static int apply_memory(const struct rt_cgroup *cg, const struct rt_cg_resources *r, vt_err *err)
{
	const char *dir;
	bool any = r->has_mem_limit || r->has_mem_reservation || r->has_mem_swap || r->has_swappiness ||
		   r->disable_oom_killer || r->has_mem_kernel || r->has_mem_kernel_tcp || r->has_use_hierarchy;
	if (!any)
		return 0;
	if (need_dir(cg, "memory", "linux.resources.memory", &dir, err) < 0)
		return -1;
	if (r->has_mem_limit &&
	    write_i64(dir, "memory.limit_in_bytes", r->mem_limit, "linux.resources.memory.limit", err) < 0)
		return -1;
	if (r->has_mem_reservation &&
	    write_i64(dir, "memory.soft_limit_in_bytes", r->mem_reservation, "linux.resources.memory.reservation", err) < 0)
		return -1;
	/* Without swap accounting the kernel has no memsw file; memory.limit alone then bounds RAM (runc does the same). */
	if (r->has_mem_swap && rt_cg_file_exists(dir, "memory.memsw.limit_in_bytes") &&
	    write_i64(dir, "memory.memsw.limit_in_bytes", r->mem_swap, "linux.resources.memory.swap", err) < 0)
		return -1;
	if (r->has_swappiness &&
	    write_i64(dir, "memory.swappiness", (int64_t)r->swappiness, "linux.resources.memory.swappiness", err) < 0)
		return -1;
	if (r->disable_oom_killer &&
	    write_str(dir, "memory.oom_control", "1", "linux.resources.memory.disableOOMKiller", err) < 0)
		return -1;
	return apply_memory_kernel(dir, r, err);
}

static int apply_cpu(const struct rt_cgroup *cg, const struct rt_cg_resources *r, vt_err *err)
{
	const char *dir;
	if (r->has_cpu_shares || r->has_cpu_quota || r->has_cpu_period) {
		if (need_dir(cg, "cpu", "linux.resources.cpu", &dir, err) < 0)
			return -1;
		if (r->has_cpu_shares && r->cpu_shares &&
		    write_i64(dir, "cpu.shares", (int64_t)r->cpu_shares, "linux.resources.cpu.shares", err) < 0)
			return -1;
		/* Period first: the kernel checks quota against the current period. */
		if (r->has_cpu_period &&
		    write_i64(dir, "cpu.cfs_period_us", (int64_t)r->cpu_period, "linux.resources.cpu.period", err) < 0)
			return -1;
		if (r->has_cpu_quota &&
		    write_i64(dir, "cpu.cfs_quota_us", r->cpu_quota, "linux.resources.cpu.quota", err) < 0)
			return -1;
	}
	if (r->has_cpu_burst || r->has_cpu_idle) {
		if (need_dir(cg, "cpu", "linux.resources.cpu", &dir, err) < 0)
			return -1;
		if (r->has_cpu_burst &&
		    write_i64(dir, "cpu.cfs_burst_us", (int64_t)r->cpu_burst, "linux.resources.cpu.burst", err) < 0)
			return -1;
		if (r->has_cpu_idle && write_i64(dir, "cpu.idle", r->cpu_idle, "linux.resources.cpu.idle", err) < 0)
			return -1;
	}
	if (r->cpus || r->mems) {
		if (need_dir(cg, "cpuset", "linux.resources.cpu.cpus", &dir, err) < 0)
			return -1;
		if (r->cpus && write_str(dir, "cpuset.cpus", r->cpus, "linux.resources.cpu.cpus", err) < 0)
			return -1;
		if (r->mems && write_str(dir, "cpuset.mems", r->mems, "linux.resources.cpu.mems", err) < 0)
			return -1;
	}
	return 0;
}

static int apply_pids(const struct rt_cgroup *cg, const struct rt_cg_resources *r, vt_err *err)
{
	const char *dir;
	if (!r->has_pids_limit)
		return 0;
	if (need_dir(cg, "pids", "linux.resources.pids.limit", &dir, err) < 0)
		return -1;
	if (r->pids_limit <= 0) /* OCI: -1 (and runc: 0) mean unlimited */
		return write_str(dir, "pids.max", "max", "linux.resources.pids.limit", err);
	return write_i64(dir, "pids.max", r->pids_limit, "linux.resources.pids.limit", err);
}

static int apply_blkio_weight(const char *dir, const struct rt_cg_resources *r, vt_err *err)
{
	const char *field = "linux.resources.blockIO.weight";
	if (!r->has_blkio_weight)
		return 0;
	/* CFQ's blkio.weight is gone from multiqueue kernels; BFQ's weight has the same range. */
	const char *file = rt_cg_file_exists(dir, "blkio.weight") ? "blkio.weight" :
			   rt_cg_file_exists(dir, "blkio.bfq.weight") ? "blkio.bfq.weight" : NULL;
	if (!file)
		return vt_fail(err, "%s: the kernel offers neither blkio.weight nor blkio.bfq.weight "
			       "(no CFQ/BFQ I/O scheduler)", field);
	return write_i64(dir, file, (int64_t)r->blkio_weight, field, err);
}

/* The v1 file of each per-device list; weights go to whichever scheduler's file exists. */
static const char *blkio_list_file(const char *dir, enum rt_cg_blkio_list l)
{
	static const char *const throttle[] = { NULL, "blkio.throttle.read_bps_device", "blkio.throttle.write_bps_device",
		"blkio.throttle.read_iops_device", "blkio.throttle.write_iops_device" };
	if (l != RT_CG_BLKIO_WEIGHT)
		return throttle[l];
	return rt_cg_file_exists(dir, "blkio.weight_device") ? "blkio.weight_device" : "blkio.bfq.weight_device";
}

static int apply_blkio_devices(const char *dir, const struct rt_cg_resources *r, vt_err *err)
{
	for (enum rt_cg_blkio_list l = 0; l < RT_CG_BLKIO_LISTS; l++) {
		for (size_t i = 0; i < r->nblkio_devs[l]; i++) {
			const struct rt_cg_blkio_dev *d = &r->blkio_devs[l][i];
			char line[64], field[96];
			snprintf(line, sizeof(line), "%lld:%lld %llu", (long long)d->major, (long long)d->minor,
				 (unsigned long long)d->value);
			snprintf(field, sizeof(field), "linux.resources.blockIO.%s[%zu]", rt_cg_blkio_list_name(l), i);
			if (write_str(dir, blkio_list_file(dir, l), line, field, err) < 0)
				return -1;
		}
	}
	return 0;
}

static int apply_blkio(const struct rt_cgroup *cg, const struct rt_cg_resources *r, vt_err *err)
{
	const char *dir;
	bool any = r->has_blkio_weight;
	for (enum rt_cg_blkio_list l = 0; l < RT_CG_BLKIO_LISTS; l++)
		any |= r->nblkio_devs[l] > 0;
	if (!any)
		return 0;
	if (need_dir(cg, "blkio", "linux.resources.blockIO", &dir, err) < 0)
		return -1;
	return apply_blkio_weight(dir, r, err) < 0 || apply_blkio_devices(dir, r, err) < 0 ? -1 : 0;
}

static int apply_hugepages(const struct rt_cgroup *cg, const struct rt_cg_resources *r, vt_err *err)
{
	const char *dir;
	if (r->nhugepages == 0)
		return 0;
	if (need_dir(cg, "hugetlb", "linux.resources.hugepageLimits", &dir, err) < 0)
		return -1;
	for (size_t i = 0; i < r->nhugepages; i++) {
		char file[64], field[64];
		snprintf(file, sizeof(file), "hugetlb.%s.limit_in_bytes", r->hugepages[i].size);
		snprintf(field, sizeof(field), "linux.resources.hugepageLimits[%zu]", i);
		if (write_i64(dir, file, (int64_t)r->hugepages[i].limit, field, err) < 0)
			return -1;
	}
	return 0;
}

static int apply_network(const struct rt_cgroup *cg, const struct rt_cg_resources *r, vt_err *err)
{
	const char *dir;
	if (r->has_net_classid) {
		if (need_dir(cg, "net_cls", "linux.resources.network.classID", &dir, err) < 0 ||
		    write_i64(dir, "net_cls.classid", r->net_classid, "linux.resources.network.classID", err) < 0)
			return -1;
	}
	if (r->nnet_prios && need_dir(cg, "net_prio", "linux.resources.network.priorities", &dir, err) < 0)
		return -1;
	for (size_t i = 0; i < r->nnet_prios; i++) {
		char line[64], field[64];
		snprintf(line, sizeof(line), "%s %u", r->net_prios[i].name, r->net_prios[i].priority);
		snprintf(field, sizeof(field), "linux.resources.network.priorities[%zu]", i);
		if (write_str(dir, "net_prio.ifpriomap", line, field, err) < 0)
			return -1;
	}
	return 0;
}

static int apply_devices(const struct rt_cgroup *cg, const struct rt_cg_resources *r, vt_err *err)
{
	const char *dir = v1_dir(cg, "devices");
	if (!dir)
		return r->ndevices ? vt_fail(err, "linux.resources.devices: the host has no devices cgroup") : 0;
	cleanup_free struct rt_cg_dev_write *w = NULL;
	size_t n;
	if (rt_cg_v1_device_writes(r->devices, r->ndevices, &w, &n, err) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (rt_cg_write(dir, w[i].file, w[i].line, err) < 0)
			return vt_err_prefix(err, "linux.resources.devices");
	return 0;
}

int rt_cg_v1_apply(struct rt_cgroup *cg, const struct rt_cg_resources *r, vt_err *err)
{
	if (r->unified && json_object_object_length(r->unified) > 0)
		return vt_fail(err, "linux.resources.unified: needs a cgroup v2 host (this one drives v1 controllers)");
	if (apply_memory(cg, r, err) < 0 || apply_cpu(cg, r, err) < 0 || apply_pids(cg, r, err) < 0 ||
	    apply_blkio(cg, r, err) < 0 || apply_hugepages(cg, r, err) < 0 || apply_network(cg, r, err) < 0 ||
	    apply_devices(cg, r, err) < 0)
		return -1;
	return 0;
}

/* ---- freezer ---- */

static bool freezer_state_is(const char *dir, const char *want, vt_err *err, int *rc)
{
	char buf[64];
	*rc = rt_cg_read(dir, "freezer.state", buf, sizeof(buf), err);
	return *rc == 0 && strncmp(buf, want, strlen(want)) == 0 && (buf[strlen(want)] == '\n' || buf[strlen(want)] == '\0');
}

int rt_cg_v1_freeze(const char *dir, bool frozen, vt_err *err)
{
	const char *want = frozen ? "FROZEN" : "THAWED";
	/* FREEZING can linger while tasks are in uninterruptible sleep; re-writing nudges the kernel. */
	for (int attempt = 0; attempt < 2000; attempt++) {
		int rc;
		if (attempt % 10 == 0 && rt_cg_write(dir, "freezer.state", want, err) < 0)
			return -1;
		if (freezer_state_is(dir, want, err, &rc))
			return 0;
		if (rc < 0)
			return -1;
		nanosleep(&(struct timespec){ .tv_nsec = 1000 * 1000 }, NULL);
	}
	return vt_fail(err, "cgroup %s did not reach %s within 2 s", dir, want);
}

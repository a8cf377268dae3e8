/* cgroup v2: one tree; controllers are enabled top-down through cgroup.subtree_control and OCI's v1-shaped
 * values are converted (crun's documented table: swap is memory+swap, shares -> weight, blkio -> io). */
#include "runtime/cgroup_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lib/util.h"

static int write_value(const char *dir, const char *file, const char *v, const char *field, vt_err *err)
{
	if (rt_cg_write(dir, file, v, err) < 0) {
		if (err && err->errnum == ENOENT)
			vt_err_prefix(err, "%s: controller not available in this cgroup", field);
		else
			vt_err_prefix(err, "%s", field);
		return -1;
	}
	return 0;
}

/* -1 means "max" in OCI; cgroup v2 spells it out. */
static void limit_str(int64_t v, char *buf, size_t len)
{
	if (v < 0)
		snprintf(buf, len, "max");
	else
		snprintf(buf, len, "%lld", (long long)v);
}

/* Enable each controller the parent offers; a controller that refuses is reported later, when (and only
 * if) a resource needs its files. */
static void enable_offered(const char *dir)
{
	char offered[1024];
	if (rt_cg_read(dir, "cgroup.controllers", offered, sizeof(offered), NULL) < 0)
		return;
	char *save = NULL;
	for (char *tok = strtok_r(offered, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save)) {
		char plus[64];
		snprintf(plus, sizeof(plus), "+%s", tok);
		rt_cg_write(dir, "cgroup.subtree_control", plus, NULL);
	}
}

int rt_cg_v2_enable_controllers(const char *mount, const char *path, vt_err *err)
{
	char dir[4096];
	int n = snprintf(dir, sizeof(dir), "%s%s", mount, path);
	if (n < 0 || (size_t)n >= sizeof(dir))
		return vt_fail(err, "cgroup path too long: %s%s", mount, path);
	/* Every ancestor of the leaf (the mount root included) delegates to its children. */
	size_t mlen = strlen(mount);
	for (char *p = dir + mlen;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		if (*p == '\0')
			return 0; /* the leaf itself keeps no-internal-process freedom */
		*p = '\0';
		enable_offered(dir);
		*p = '/';
	}
}

static int apply_memory(const char *dir, const struct rt_cg_resources *r, vt_err *err)
{
	char buf[32];
	if (r->has_mem_limit) {
		limit_str(r->mem_limit, buf, sizeof(buf));
		if (write_value(dir, "memory.max", buf, "linux.resources.memory.limit", err) < 0)
			return -1;
	}
	if (r->has_mem_reservation) {
		limit_str(r->mem_reservation, buf, sizeof(buf));
		if (write_value(dir, "memory.low", buf, "linux.resources.memory.reservation", err) < 0)
			return -1;
	}
	if (r->has_mem_swap) {
		if (r->mem_swap == -1 || (r->has_mem_limit && r->mem_limit == -1))
			snprintf(buf, sizeof(buf), "max");
		else if (!r->has_mem_limit)
			return vt_fail(err, "linux.resources.memory.swap: on cgroup v2 swap needs memory.limit "
				       "(OCI swap is memory+swap)");
		else
			snprintf(buf, sizeof(buf), "%lld", (long long)(r->mem_swap - r->mem_limit));
		if (rt_cg_file_exists(dir, "memory.swap.max") &&
		    write_value(dir, "memory.swap.max", buf, "linux.resources.memory.swap", err) < 0)
			return -1;
	}
	/* swappiness and disableOOMKiller have no v2 interface; the memory.oom.group default is kept. */
	if (r->has_mem_kernel)
		return vt_fail(err, "linux.resources.memory.kernel: not supported on cgroup v2 (kernel memory is "
			       "counted in memory.max; there is no separate limit)");
	if (r->has_mem_kernel_tcp)
		return vt_fail(err, "linux.resources.memory.kernelTCP: not supported on cgroup v2 (socket memory is "
			       "counted in memory.max; there is no separate limit)");
	if (r->has_use_hierarchy && !r->use_hierarchy)
		return vt_fail(err, "linux.resources.memory.useHierarchy: cgroup v2 is always hierarchical");
	return 0;
}

static int apply_cpu(const char *dir, const struct rt_cg_resources *r, vt_err *err)
{
	char buf[64];
	if (r->has_cpu_shares && r->cpu_shares) {
		snprintf(buf, sizeof(buf), "%llu", (unsigned long long)rt_cg_shares_to_weight(r->cpu_shares));
		if (write_value(dir, "cpu.weight", buf, "linux.resources.cpu.shares", err) < 0)
			return -1;
	}
	if (r->has_cpu_quota || r->has_cpu_period) {
		/* cpu.max holds both numbers; an unset one keeps the kernel default. */
		char quota[32];
		limit_str(r->has_cpu_quota ? r->cpu_quota : -1, quota, sizeof(quota));
		snprintf(buf, sizeof(buf), "%s %llu", quota,
			 (unsigned long long)(r->has_cpu_period ? r->cpu_period : 100000));
		if (write_value(dir, "cpu.max", buf, r->has_cpu_quota ? "linux.resources.cpu.quota" :
				"linux.resources.cpu.period", err) < 0)
			return -1;
	}
	if (r->has_cpu_burst) {
		snprintf(buf, sizeof(buf), "%llu", (unsigned long long)r->cpu_burst);
		if (write_value(dir, "cpu.max.burst", buf, "linux.resources.cpu.burst", err) < 0)
			return -1;
	}
	if (r->has_cpu_idle && write_value(dir, "cpu.idle", r->cpu_idle ? "1" : "0", "linux.resources.cpu.idle", err) < 0)
		return -1;
	if (r->cpus && write_value(dir, "cpuset.cpus", r->cpus, "linux.resources.cpu.cpus", err) < 0)
		return -1;
	if (r->mems && write_value(dir, "cpuset.mems", r->mems, "linux.resources.cpu.mems", err) < 0)
		return -1;
	return 0;
}

static int apply_pids(const char *dir, const struct rt_cg_resources *r, vt_err *err)
{
	char buf[32];
	if (!r->has_pids_limit)
		return 0;
	limit_str(r->pids_limit <= 0 ? -1 : r->pids_limit, buf, sizeof(buf));
	return write_value(dir, "pids.max", buf, "linux.resources.pids.limit", err);
}

/* BFQ takes the v1 weight range as is; otherwise io.weight with its own range. `dev` is "" or "maj:min ". */
static int write_io_weight(const char *dir, const char *dev, uint64_t weight, const char *field, vt_err *err)
{
	char buf[64];
	bool bfq = rt_cg_file_exists(dir, "io.bfq.weight");
	if (!bfq && !rt_cg_file_exists(dir, "io.weight"))
		return vt_fail(err, "%s: the kernel offers neither io.weight nor io.bfq.weight (no BFQ scheduler nor "
			       "io.cost controller)", field);
	snprintf(buf, sizeof(buf), "%s%llu", *dev ? dev : bfq ? "" : "default ",
		 (unsigned long long)(bfq ? weight : rt_cg_blkio_to_io_weight(weight)));
	return write_value(dir, bfq ? "io.bfq.weight" : "io.weight", buf, field, err);
}

static int apply_io(const char *dir, const struct rt_cg_resources *r, vt_err *err)
{
	static const char *const io_max_key[] = { NULL, "rbps", "wbps", "riops", "wiops" };
	if (r->has_blkio_weight && write_io_weight(dir, "", r->blkio_weight, "linux.resources.blockIO.weight", err) < 0)
		return -1;
	for (enum rt_cg_blkio_list l = 0; l < RT_CG_BLKIO_LISTS; l++) {
		for (size_t i = 0; i < r->nblkio_devs[l]; i++) {
			const struct rt_cg_blkio_dev *d = &r->blkio_devs[l][i];
			char dev[48], field[96], line[96];
			snprintf(dev, sizeof(dev), "%lld:%lld ", (long long)d->major, (long long)d->minor);
			snprintf(field, sizeof(field), "linux.resources.blockIO.%s[%zu]", rt_cg_blkio_list_name(l), i);
			if (l == RT_CG_BLKIO_WEIGHT) {
				if (write_io_weight(dir, dev, d->value, field, err) < 0)
					return -1;
				continue;
			}
			/* io.max takes one key at a time; 0 lifts the limit, as in v1 */
			if (d->value)
				snprintf(line, sizeof(line), "%s%s=%llu", dev, io_max_key[l], (unsigned long long)d->value);
			else
				snprintf(line, sizeof(line), "%s%s=max", dev, io_max_key[l]);
			if (write_value(dir, "io.max", line, field, err) < 0)
				return -1;
		}
	}
	return 0;
}

static int apply_hugepages(const char *dir, const struct rt_cg_resources *r, vt_err *err)
{
	for (size_t i = 0; i < r->nhugepages; i++) {
		char file[64], field[64], buf[32];
		snprintf(file, sizeof(file), "hugetlb.%s.max", r->hugepages[i].size);
		snprintf(field, sizeof(field), "linux.resources.hugepageLimits[%zu]", i);
		snprintf(buf, sizeof(buf), "%llu", (unsigned long long)r->hugepages[i].limit);
		if (write_value(dir, file, buf, field, err) < 0)
			return -1;
	}
	return 0;
}

static int apply_unified(const char *dir, const struct rt_cg_resources *r, vt_err *err)
{
	if (!r->unified)
		return 0;
	json_object_object_foreach(r->unified, key, val) {
		char field[256];
		snprintf(field, sizeof(field), "linux.resources.unified.%s", key);
		if (write_value(dir, key, json_object_get_string(val), field, err) < 0)
			return -1;
	}
	return 0;
}

int rt_cg_v2_apply(const char *dir, const struct rt_cg_resources *r, vt_err *err)
{
	if (r->has_net_classid || r->nnet_prios)
		return vt_fail(err, "linux.resources.network: not supported on cgroup v2 (it has no net_cls/net_prio "
			       "controllers)");
	if (apply_memory(dir, r, err) < 0 || apply_cpu(dir, r, err) < 0 || apply_pids(dir, r, err) < 0 || apply_io(dir, r, err) < 0 || apply_hugepages(dir, r, err) < 0 ||
	    apply_unified(dir, r, err) < 0)
		return -1;
	return rt_cg_bpf_attach_devices(dir, r->devices, r->ndevices, err);
}

/* ---- freezer ---- */

static int frozen_state(const char *dir, int *state, vt_err *err)
{
	char buf[1024];
	if (rt_cg_read(dir, "cgroup.events", buf, sizeof(buf), err) < 0)
		return -1;
	char *line = strstr(buf, "frozen ");
	if (!line || (line != buf && line[-1] != '\n'))
		return vt_fail(err, "%s/cgroup.events has no 'frozen' key (kernel older than 5.2?)", dir);
	*state = line[7] == '1';
	return 0;
}

int rt_cg_v2_freeze(const char *dir, bool frozen, vt_err *err)
{
	if (rt_cg_write(dir, "cgroup.freeze", frozen ? "1" : "0", err) < 0)
		return -1;
	for (int attempt = 0; attempt < 2000; attempt++) {
		int state;
		if (frozen_state(dir, &state, err) < 0)
			return -1;
		if (state == frozen)
			return 0;
		nanosleep(&(struct timespec){ .tv_nsec = 1000 * 1000 }, NULL);
	}
	if (frozen) /* not half frozen: what did freeze runs on, as before the pause */
		rt_cg_write(dir, "cgroup.freeze", "0", NULL);
	return vt_fail(err, "cgroup %s did not become %s within 2 s", dir, frozen ? "frozen" : "thawed");
}

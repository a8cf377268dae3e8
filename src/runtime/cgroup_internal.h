/* Internal interface of the cgroup backends (cgroup.c dispatches, cgroup_v1.c / cgroup_v2.c drive the
 * kernel files, cgroup_res.c parses linux.resources, cgroup_bpf.c builds the v2 device program).
 * The pure parts (path computation, parsing, conversions, device rules) are exposed for unit tests. */
#ifndef VIRTUS_RT_CGROUP_INTERNAL_H
#define VIRTUS_RT_CGROUP_INTERNAL_H

#include <linux/bpf.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "runtime/cgroup.h"

#define RT_CG_DEFAULT_PARENT "/virtus"

enum rt_cg_mode { RT_CG_V1, RT_CG_V2, RT_CG_HYBRID };

/* One hierarchy the container's cgroup lives in. */
struct rt_cg_hier {
	char *dir;         /* the container's directory in it, e.g. /sys/fs/cgroup/memory/virtus/c1 */
	char *mount;       /* where the hierarchy is mounted */
	char *controllers; /* v1 mount options naming the controllers ("cpu", "name=systemd"); "" for cgroup2 */
	bool v2;
};

struct rt_cgroup {
	enum rt_cg_mode mode;
	char *path; /* the cgroup path relative to every hierarchy root, "/virtus/c1" */
	struct rt_cg_hier *hier;
	size_t nhier;
	bool forked_into_v2; /* rt_cgroup_fork's child started in the v2 directory (the child's copy tells it) */
};

/* ---- host layout (cgroup.c) ---- */

struct rt_cg_layout {
	enum rt_cg_mode mode;
	struct rt_cg_hier *hier; /* dir unset: mounts only */
	size_t nhier;
};

/* Parse /proc/self/mountinfo text into the cgroup mounts (one per hierarchy) and the mode. */
int rt_cg_layout_from_mountinfo(const char *text, struct rt_cg_layout *out, vt_err *err);
/* The running host's layout: statfs on /sys/fs/cgroup, then mountinfo. */
int rt_cg_layout_detect(struct rt_cg_layout *out, vt_err *err);
void rt_cg_layout_free(struct rt_cg_layout *l);

/* linux.cgroupsPath (may be NULL) -> normalized absolute cgroup path. */
int rt_cg_compute_path(const char *id, const char *cgroups_path, char **out, vt_err *err);

/* ---- resources (cgroup_res.c) ---- */

struct rt_cg_dev_rule {
	bool allow;
	char type;             /* 'a', 'c' or 'b' */
	int64_t major, minor;  /* -1: any */
	char access[4];        /* subset of "rwm", in that order */
};

/* One per-device blockIO entry: a weight (weightDevice) or a rate (throttle*Device). */
struct rt_cg_blkio_dev {
	int64_t major, minor;
	uint64_t value;
};

enum rt_cg_blkio_list {
	RT_CG_BLKIO_WEIGHT, RT_CG_BLKIO_READ_BPS, RT_CG_BLKIO_WRITE_BPS, RT_CG_BLKIO_READ_IOPS, RT_CG_BLKIO_WRITE_IOPS,
	RT_CG_BLKIO_LISTS
};

/* The OCI field name of each list ("weightDevice", "throttleReadBpsDevice", ...). */
const char *rt_cg_blkio_list_name(enum rt_cg_blkio_list l);

struct rt_cg_resources {
	bool has_mem_limit, has_mem_reservation, has_mem_swap, has_swappiness, disable_oom_killer;
	int64_t mem_limit, mem_reservation, mem_swap;
	uint64_t swappiness;
	/* memory.kernel / kernelTCP (v1 kmem files; refused where the kernel lacks or ignores them), useHierarchy */
	bool has_mem_kernel, has_mem_kernel_tcp, has_use_hierarchy, use_hierarchy;
	int64_t mem_kernel, mem_kernel_tcp;

	/* linux.resources.network: v1 net_cls / net_prio */
	bool has_net_classid;
	uint32_t net_classid;
	struct rt_cg_net_prio { char name[32]; uint32_t priority; } *net_prios;
	size_t nnet_prios;

	bool has_cpu_shares, has_cpu_quota, has_cpu_period;
	uint64_t cpu_shares, cpu_period;
	int64_t cpu_quota;
	char *cpus, *mems;

	bool has_pids_limit;
	int64_t pids_limit;

	bool has_cpu_burst, has_cpu_idle;
	uint64_t cpu_burst;
	int64_t cpu_idle;

	bool has_blkio_weight;
	uint64_t blkio_weight;
	/* blockIO.weightDevice and the four throttle lists, in that order (enum rt_cg_blkio_list) */
	struct rt_cg_blkio_dev *blkio_devs[5];
	size_t nblkio_devs[5];

	struct rt_cg_dev_rule *devices; /* user rules, then the defaults every container gets */
	size_t ndevices;

	struct rt_cg_hugepage { char size[16]; uint64_t limit; } *hugepages; /* size as in OCI: "2MB" */
	size_t nhugepages;

	json_object *unified; /* linux.resources.unified (v2 only), a reference we hold */
};

/* Parse linux.resources (linux_obj may be NULL). Every error names the offending field. */
int rt_cg_resources_parse(json_object *linux_obj, struct rt_cg_resources *out, vt_err *err);
void rt_cg_resources_free(struct rt_cg_resources *r);

/* OCI cpu.shares [2, 262144] -> cgroup v2 cpu.weight [1, 10000] (crun's documented linear formula). */
uint64_t rt_cg_shares_to_weight(uint64_t shares);
/* OCI blkio weight [10, 1000] -> cgroup v2 io.weight [1, 10000]. */
uint64_t rt_cg_blkio_to_io_weight(uint64_t weight);

/* One write a v1 devices cgroup needs: "devices.allow" or "devices.deny" and the rule line. */
struct rt_cg_dev_write {
	const char *file;
	char line[64];
};
/* The v1 device writes in order: deny everything, then each rule (later rules win, as in the kernel). */
int rt_cg_v1_device_writes(const struct rt_cg_dev_rule *rules, size_t n, struct rt_cg_dev_write **out,
			   size_t *nout, vt_err *err);
/* One rule as a v1 line: "c 1:3 rwm", "a *:* rwm", "b 8:* r". */
void rt_cg_dev_rule_line(const struct rt_cg_dev_rule *r, char *buf, size_t len);

/* ---- v2 device program (cgroup_bpf.c) ---- */

/* A BPF_PROG_TYPE_CGROUP_DEVICE program: the last matching rule decides, default deny. */
int rt_cg_bpf_device_program(const struct rt_cg_dev_rule *rules, size_t n, struct bpf_insn **prog,
			     size_t *ninsn, vt_err *err);
/* Load the program and attach it to the cgroup directory. */
int rt_cg_bpf_attach_devices(const char *dir, const struct rt_cg_dev_rule *rules, size_t n, vt_err *err);

/* ---- kernel file helpers (cgroup_fs.c) ---- */

int rt_cg_write(const char *dir, const char *file, const char *value, vt_err *err);
int rt_cg_read(const char *dir, const char *file, char *buf, size_t len, vt_err *err);
bool rt_cg_file_exists(const char *dir, const char *file);
/* mkdir -p below the mount; appends each directory it creates to *created (for rollback). */
int rt_cg_mkdir_p(const char *mount, const char *path, char ***created, size_t *ncreated, vt_err *err);
/* rmdir, retrying briefly while the kernel still reports the cgroup busy. ENOENT is success. */
int rt_cg_rmdir(const char *dir, vt_err *err);
/* rt_cg_rmdir of dir and, first, of every cgroup below it. */
int rt_cg_rmdir_tree(const char *dir, vt_err *err);

/* ---- backends ---- */

/* v1: new directories in the cpuset hierarchy inherit cpus/mems from the parent so tasks can join. */
int rt_cg_v1_prepare_cpuset(const char *dir, vt_err *err);
int rt_cg_v1_apply(struct rt_cgroup *cg, const struct rt_cg_resources *r, vt_err *err);
int rt_cg_v1_freeze(const char *freezer_dir, bool frozen, vt_err *err);

int rt_cg_v2_enable_controllers(const char *mount, const char *path, vt_err *err);
int rt_cg_v2_apply(const char *dir, const struct rt_cg_resources *r, vt_err *err);
int rt_cg_v2_freeze(const char *dir, bool frozen, vt_err *err);

#endif

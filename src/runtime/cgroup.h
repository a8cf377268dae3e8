/* The container's cgroup, on cgroup v1 (one directory per controller), v2 (unified) or a hybrid host.
 * Contract between the lifecycle code (create/start/kill/delete/pause) and the cgroup backends. */
#ifndef VIRTUS_RT_CGROUP_H
#define VIRTUS_RT_CGROUP_H

#include <json-c/json.h>
#include <stdbool.h>
#include <sys/types.h>

#include "lib/err.h"

struct rt_cgroup;

/* Create the cgroup named by linux.cgroupsPath (default: "/virtus/<id>") in every hierarchy the host has,
 * and apply linux.resources (memory, cpu, cpuset, pids, blockIO, devices). linux_obj may be NULL.
 * On failure nothing is left behind (directories created so far are removed). */
int rt_cgroup_create(const char *id, json_object *linux_obj, struct rt_cgroup **out, vt_err *err);

/* Move pid into the container's cgroup (every hierarchy). */
int rt_cgroup_add_pid(struct rt_cgroup *cg, pid_t pid, vt_err *err);

/* Moving another process into a cgroup takes the kernel's global threadgroup lock for writing, which waits
 * for an RCU grace period: 5-25 ms on a small host, the largest single cost of starting a container. A
 * single-threaded process can get there without it:
 * rt_cgroup_fork() is fork() whose child starts in the cgroup's v2 directory when there is one (clone3 with
 * CLONE_INTO_CGROUP, only from a single-threaded caller; otherwise a plain fork), and the child then calls
 * rt_cgroup_join_self() before it starts another thread, which moves the calling thread -- the whole process
 * -- into every v1 hierarchy (and the v2 one if the fork could not). Returns as fork(), errno set on -1. */
pid_t rt_cgroup_fork(struct rt_cgroup *cg);
int rt_cgroup_join_self(const struct rt_cgroup *cg, vt_err *err);

/* Persist in the container state so that a later command from a fresh process finds the cgroup. */
json_object *rt_cgroup_to_json(const struct rt_cgroup *cg);
int rt_cgroup_from_json(json_object *j, struct rt_cgroup **out, vt_err *err);

/* The pids currently in the cgroup (for `ps`, `kill --all`). *pids is malloc'd. */
int rt_cgroup_pids(struct rt_cgroup *cg, pid_t **pids, size_t *n, vt_err *err);

/* Freeze or thaw every task (pause/resume); returns once the state has been reached. */
int rt_cgroup_freeze(struct rt_cgroup *cg, bool frozen, vt_err *err);

/* Remove the cgroup directories (they must be empty of tasks; the caller kills first). */
int rt_cgroup_destroy(struct rt_cgroup *cg, vt_err *err);

void rt_cgroup_free(struct rt_cgroup *cg);

/* What the container sees at /sys/fs/cgroup on a v1 or hybrid host: one entry per hierarchy, its own cgroup
 * directory (dir) shown under the hierarchy's name (the last component of its mount point: "memory",
 * "cpu,cpuacct", "systemd", "unified"). None on a v2 host (a cgroup2 mount in the cgroup namespace does it).
 * The strings point into cg. */
/* Memory pressure in the container's cgroup: how many tasks the OOM killer ended in it (v1 memory.oom_control
 * "oom_kill", v2 memory.events "oom_kill"), its limit and the peak usage, in bytes (-1 when unknown or
 * unlimited). Returns -1 when the host has no memory controller for it. */
struct rt_cgroup_oom {
	unsigned long long kills;
	long long limit, peak;
};
int rt_cgroup_oom_info(const struct rt_cgroup *cg, struct rt_cgroup_oom *out);

struct rt_cgroup_view {
	const char *dir, *name, *controllers;
};
int rt_cgroup_views(const struct rt_cgroup *cg, struct rt_cgroup_view **out, size_t *n);

#endif

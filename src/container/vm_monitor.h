/* The owner of a VM-isolated container's VM, whoever started it: `virtus run --isolation=vm`'s monitor
 * (vm_monitor.c: a record in the store, its network and its mounted rootfs) or the OCI runtime's shim
 * (oci_vm.c: a bundle, the runtime keeps the state). Both start the VM the same way (virtiofsd sharing the
 * rootfs and binds, the VMM booting the agent), create and start the container through the agent, relay its
 * stdio and signals, serve exec.sock, watch the agent's heartbeat and end the VM; what differs is behind
 * struct vmon_ops. Internal to src/container. */
#ifndef VIRTUS_CONTAINER_VM_MONITOR_H
#define VIRTUS_CONTAINER_VM_MONITOR_H

#include <json-c/json.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "container/container.h"
#include "container/outq.h"
#include "container/vm_exec.h"
#include "isolation/agent.h"
#include "isolation/vmbox.h"

#define VM_RAM_DEFAULT  (256 * MiB)
#define VM_RAM_OVERHEAD (64 * MiB)  /* the guest kernel and the agent, on top of the container's memory limit */

struct vmon;

struct vmon_ops {
	/* The VMM's --net spec (spec empty: no network device) and what the agent sets on eth0. */
	int (*network)(struct vmon *mo, char *spec, size_t len, struct agent_net *n, vt_err *err);
	/* The container exists in the guest and waits; true from here on: the OCI shim reports "created" and
	 * waits for `start`. NULL: start at once. */
	int (*created)(struct vmon *mo, vt_err *err);
	/* Its process runs. NULL: nothing to do. */
	int (*started)(struct vmon *mo, vt_err *err);
	/* The agent is silent: is that because the VM was paused on purpose? NULL: never. */
	bool (*paused)(struct vmon *mo);
	/* After the VM is gone: what the owner set up for it (network, mounts). NULL: nothing. */
	void (*release)(struct vmon *mo);
};

struct vmon {
	const struct vmon_ops *ops;
	void *owner;            /* the caller's own, for its ops */
	char dir[PATH_MAX];     /* the container's directory: console.log, vmm.log, vm-share, exec.sock */
	char name[CTR_SHORT_ID_LEN + 1]; /* the VM's short name */
	uint64_t memory;        /* the VM's RAM */
	unsigned cpus;
	bool tty;               /* the container's process has a terminal (one output stream) */
	struct vmbox box;
	struct agent_conn *agent;
	int vmm_pidfd, sfd;
	int log;                /* ctr.log, or -1 */
	struct outq out[2];     /* the caller's stdout and stderr (with a terminal, out[0] is it) */
	bool held;              /* the agent was asked to stop reading init's output (FLOW) */
	int pty;                /* a terminal: our end (the slave) of the pty whose master the caller has */
	int in;                 /* what feeds the container's stdin, or -1 */
	bool exited;
	int status;
	unsigned agent_dead_ms; /* silence that makes the agent dead; 0: never */
	uint64_t last_check_ns; /* when the heartbeat was last looked at */
	struct vm_execs execs;  /* exec processes */
	struct vmbox_bind binds[VMBOX_MAX_BINDS];
	size_t n_binds;
	char share[PATH_MAX];
};

/* dir: the container's directory; id: its name (the VM's name is its first CTR_SHORT_ID_LEN characters). */
void vmon_init(struct vmon *mo, const struct vmon_ops *ops, void *owner, const char *dir, const char *id);
/* Signals to forward to the container (and SIGRTMIN, whose value is one) go to mo->sfd; VIRTUS_AGENT_TIMEOUT
 * is read. */
int vmon_prepare(struct vmon *mo, vt_err *err);
/* The container's stdio (tty: its process has a terminal in the guest). attached: with a terminal, a local
 * pty whose master goes to *master for the caller; else our stdout and stderr, and stdin when stdin is true.
 * log: also append the output to dir/ctr.log. Our own stdio is /dev/null afterwards. */
int vmon_setup_stdio(struct vmon *mo, bool attached, bool tty, bool stdin, bool log, int *master, vt_err *err);
/* config.json rewritten for the guest, in place: root and every bind's source under the share, no network
 * namespace (the VM's is the container's), no isolation annotation. */
int vmon_guest_spec(struct vmon *mo, json_object *spec, vt_err *err);
/* Start the VM (vmm: the `virtus` program, NULL for this one) on rootfs, create the container in it from
 * spec (vmon_guest_spec's), start it, and listen for execs. */
int vmon_start(struct vmon *mo, json_object *spec, const char *rootfs, const char *vmm, vt_err *err);
/* Relay until the container ends; mo->status is then its exit status. */
void vmon_wait(struct vmon *mo);
/* graceful: let the guest power off first (its file systems synced). Then end everything, and release
 * (ops->release). */
void vmon_end(struct vmon *mo, bool graceful);
/* What the caller has not read of the output yet, for as long as it reads (a signal gives up). */
void vmon_drain_output(struct vmon *mo);

#endif

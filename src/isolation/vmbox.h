/* A container's microVM seen from the host: the directory tree shared into the guest through virtio-fs
 * (served by Debian's virtiofsd, one per VM), the VMM (`virtus vm run`, a child process) booting the default
 * guest's kernel with the agent's initramfs, and the vsock socket the agent answers on.
 *
 * Sockets live in /run/virtus-vm/<name>/ (a Unix socket path must fit in 108 bytes; a store root can be
 * long), removed by vmbox_stop. The caller (the container's monitor) prepares the shared tree, starts the
 * box, talks to the agent (isolation/agent.h), and stops the box when the container ended. */
#ifndef VIRTUS_ISOLATION_VMBOX_H
#define VIRTUS_ISOLATION_VMBOX_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/err.h"

#define VMBOX_RUN_DIR   "/run/virtus-vm"
#define VMBOX_FS_TAG    "share"                 /* the virtio-fs tag the agent mounts */
#define VMBOX_GUEST_SHARE "/run/virtus/share"   /* where the agent mounts it in the guest */
#define VMBOX_VIRTIOFSD "/usr/lib/qemu/virtiofsd"
#define VMBOX_AGENT_INITRD "agent-initrd.cpio"  /* in the default guest's directory */
#define VMBOX_GUEST_CID 3

/* A host file or directory bound into the shared tree at share/target. */
struct vmbox_bind {
	const char *source;
	char target[64];          /* relative to the share */
	bool ro;
};

#define VMBOX_MAX_BINDS 64

struct vmbox_config {
	const char *name;         /* a short unique name: the socket directory's */
	/* An empty host directory: virtiofsd, in a mount namespace of its own, mounts a tmpfs there and binds
	 * binds[] into it, so the tree exists only for the VM's life and nothing is mounted on the host. */
	const char *share;
	const struct vmbox_bind *binds;
	size_t n_binds;
	const char *log_dir;      /* console.log (the guest's serial console), vmm.log and virtiofsd.log go there */
	unsigned cpus;
	uint64_t memory;          /* guest RAM in bytes */
	const char *net;          /* a `virtus vm run --net` spec, or NULL for no network device */
	const char *cmdline_extra; /* appended to the kernel command line, or NULL */
	const char *vmm;          /* the `virtus` program that runs the VM; NULL: the running program */
};

struct vmbox {
	pid_t vmm, fsd;
	char dir[PATH_MAX];       /* the socket directory */
	char vsock[PATH_MAX];     /* the agent's vsock socket (CONNECT AGENT_VSOCK_PORT) */
	char vm_name[24];         /* the VMM's --name: ctr-<first 12 of the container's name> */
};

/* The default guest's kernel and the agent's initramfs: checked before anything starts. */
int vmbox_find_guest(char kernel[PATH_MAX], char initrd[PATH_MAX], vt_err *err);
/* Start virtiofsd and the VMM. On failure nothing is left running or on disk. */
int vmbox_start(const struct vmbox_config *c, struct vmbox *b, vt_err *err);
/* Are the VM's vCPUs paused through its API (`virtus vm pause ctr-...`)? A VMM that does not answer its API
 * within a second is not paused. */
bool vmbox_paused(const struct vmbox *b);
/* End what still runs (SIGKILL), reap both processes, remove the sockets. Returns the VMM's wait status
 * (or -1 when it was reaped elsewhere). Idempotent. */
int vmbox_stop(struct vmbox *b);
/* Pause (or resume) the vCPUs of the box of that name through its VMM's API. */
int vmbox_pause(const char *name, bool pause, vt_err *err);
/* What the box of that name left on disk when its owner was killed (its processes already gone): the socket
 * directory and the VMM's state. */
void vmbox_forget(const char *name);

#endif
